import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ioc } from '../../src/abi/ioctl.ts';
import type { Layout } from '../../src/abi/layout.ts';
import * as vfio from '../../src/abi/vfio.ts';
import {
  VFIO_API_VERSION,
  VFIO_DMA_MAP_FLAG,
  VFIO_DMA_UNMAP_FLAG,
  VFIO_EXTENSION,
  VFIO_GROUP_FLAGS,
  VFIO_IOCTLS,
  VFIO_IOMMU_DIRTY_PAGES_FLAG,
  VFIO_IOMMU_INFO,
  VFIO_IOMMU_TYPE1_INFO_CAP,
  VFIO_TYPE1_MINSZ,
  type VfioIoctlName,
  vfioIoctl,
  vfioIoctlNumber,
  vfioIoctlsByNumber,
  vfioNrOf,
} from '../../src/abi/vfio.ts';

// Written from include/uapi/linux/vfio.h independently of src/:
// [field, offset, type] per struct, with sizeof.
type Row = readonly [string, number, string];
const HEADER: Row[] = [
  ['id', 0, 'u16'],
  ['version', 2, 'u16'],
  ['next', 4, 'u32'],
];
const STRUCTS: Record<string, { size: number; rows: readonly Row[] }> = {
  VfioGroupStatus: {
    size: 8,
    rows: [
      ['argsz', 0, 'u32'],
      ['flags', 4, 'u32'],
    ],
  },
  VfioInfoCapHeader: { size: 8, rows: HEADER },
  VfioIommuType1Info: {
    size: 24,
    rows: [
      ['argsz', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['iova_pgsizes', 8, 'u64'],
      ['cap_offset', 16, 'u32'],
      ['pad', 20, 'u32'],
    ],
  },
  VfioIovaRange: {
    size: 16,
    rows: [
      ['start', 0, 'u64'],
      ['end', 8, 'u64'],
    ],
  },
  VfioIommuType1InfoCapIovaRange: {
    size: 16,
    rows: [...HEADER, ['nr_iovas', 8, 'u32'], ['reserved', 12, 'u32']],
  },
  VfioIommuType1InfoCapMigration: {
    size: 32,
    rows: [
      ...HEADER,
      ['flags', 8, 'u32'],
      ['pgsize_bitmap', 16, 'u64'],
      ['max_dirty_bitmap_size', 24, 'u64'],
    ],
  },
  VfioIommuType1InfoDmaAvail: { size: 12, rows: [...HEADER, ['avail', 8, 'u32']] },
  VfioIommuType1DmaMap: {
    size: 32,
    rows: [
      ['argsz', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['vaddr', 8, 'u64'],
      ['iova', 16, 'u64'],
      ['size', 24, 'u64'],
    ],
  },
  VfioIommuType1DmaUnmap: {
    size: 24,
    rows: [
      ['argsz', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['iova', 8, 'u64'],
      ['size', 16, 'u64'],
    ],
  },
  VfioBitmap: {
    size: 24,
    rows: [
      ['pgsize', 0, 'u64'],
      ['size', 8, 'u64'],
      ['data', 16, 'u64'],
    ],
  },
  VfioIommuType1DirtyBitmap: {
    size: 8,
    rows: [
      ['argsz', 0, 'u32'],
      ['flags', 4, 'u32'],
    ],
  },
  VfioIommuType1DirtyBitmapGet: {
    size: 40,
    rows: [
      ['iova', 0, 'u64'],
      ['size', 8, 'u64'],
      ['bitmap_pgsize', 16, 'u64'],
      ['bitmap_size', 24, 'u64'],
      ['bitmap_data', 32, 'u64'],
    ],
  },
  VfioIommuSpaprTceInfo: {
    size: 32,
    rows: [
      ['argsz', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['dma32_window_start', 8, 'u32'],
      ['dma32_window_size', 12, 'u32'],
      ['pgsizes', 16, 'u64'],
      ['max_dynamic_windows_supported', 24, 'u32'],
      ['levels', 28, 'u32'],
    ],
  },
  VfioIommuSpaprRegisterMemory: {
    size: 24,
    rows: [
      ['argsz', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['vaddr', 8, 'u64'],
      ['size', 16, 'u64'],
    ],
  },
  VfioIommuSpaprTceCreate: {
    size: 40,
    rows: [
      ['argsz', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['page_shift', 8, 'u32'],
      ['__resv1', 12, 'u32'],
      ['window_size', 16, 'u64'],
      ['levels', 24, 'u32'],
      ['__resv2', 28, 'u32'],
      ['start_addr', 32, 'u64'],
    ],
  },
  VfioIommuSpaprTceRemove: {
    size: 16,
    rows: [
      ['argsz', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['start_addr', 8, 'u64'],
    ],
  },
  VfioEehPeOp: {
    size: 40,
    rows: [
      ['argsz', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['op', 8, 'u32'],
      ['__pad', 12, 'u32'],
      ['err_type', 16, 'u32'],
      ['err_func', 20, 'u32'],
      ['err_addr', 24, 'u64'],
      ['err_mask', 32, 'u64'],
    ],
  },
  VfioDeviceBindIommufd: {
    size: 24,
    rows: [
      ['argsz', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['iommufd', 8, 's32'],
      ['out_devid', 12, 'u32'],
      ['token_uuid_ptr', 16, 'u64'],
    ],
  },
  VfioDeviceAttachIommufdPt: {
    size: 16,
    rows: [
      ['argsz', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['pt_id', 8, 'u32'],
      ['pasid', 12, 'u32'],
    ],
  },
  VfioDeviceDetachIommufdPt: {
    size: 12,
    rows: [
      ['argsz', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['pasid', 8, 'u32'],
    ],
  },
};

test('vfio.h struct sizes and field offsets', () => {
  const mod = vfio as Record<string, unknown>;
  for (const [name, want] of Object.entries(STRUCTS)) {
    const layout = mod[name] as Layout<unknown> | undefined;
    assert.ok(layout, `${name} is exported`);
    assert.equal(layout.size, want.size, `sizeof ${name}`);
    const got = layout.fields.map((f) => [f.name, f.offset, f.type] as const);
    assert.deepEqual(
      [...got].sort((a, b) => a[1] - b[1]),
      [...want.rows].sort((a, b) => a[1] - b[1]),
      `fields of ${name}`,
    );
  }
  for (const [name, value] of Object.entries(mod)) {
    if (value && typeof value === 'object' && 'fields' in value && 'size' in value) {
      assert.ok(name in STRUCTS, `${name} has an expected layout row`);
    }
  }
});

test('argsz minimums are offsetofend of iova_pgsizes, size, size', () => {
  assert.deepEqual(VFIO_TYPE1_MINSZ, {
    VFIO_IOMMU_GET_INFO: 16,
    VFIO_IOMMU_MAP_DMA: 32,
    VFIO_IOMMU_UNMAP_DMA: 24,
  });
});

test('API version, extension ids and flag values', () => {
  assert.equal(VFIO_API_VERSION, 0);
  assert.deepEqual(VFIO_EXTENSION, {
    TYPE1_IOMMU: 1,
    SPAPR_TCE_IOMMU: 2,
    TYPE1v2_IOMMU: 3,
    DMA_CC_IOMMU: 4,
    EEH: 5,
    TYPE1_NESTING_IOMMU: 6,
    SPAPR_TCE_v2_IOMMU: 7,
    NOIOMMU_IOMMU: 8,
    UNMAP_ALL: 9,
    UPDATE_VADDR: 10,
  });
  assert.deepEqual(VFIO_GROUP_FLAGS, { VIABLE: 1, CONTAINER_SET: 2 });
  assert.deepEqual(VFIO_IOMMU_INFO, { PGSIZES: 1, CAPS: 2 });
  assert.deepEqual(VFIO_IOMMU_TYPE1_INFO_CAP, { IOVA_RANGE: 1, MIGRATION: 2, DMA_AVAIL: 3 });
  assert.deepEqual(VFIO_DMA_MAP_FLAG, { READ: 1, WRITE: 2, VADDR: 4 });
  assert.deepEqual(VFIO_DMA_UNMAP_FLAG, { GET_DIRTY_BITMAP: 1, ALL: 2, VADDR: 4 });
  assert.deepEqual(VFIO_IOMMU_DIRTY_PAGES_FLAG, { START: 1, STOP: 2, GET_BITMAP: 4 });
});

// [name, VFIO_BASE offset, fd kind], from vfio.h.
const IOCTLS: readonly (readonly [VfioIoctlName, number, string])[] = [
  ['VFIO_GET_API_VERSION', 0, 'container'],
  ['VFIO_CHECK_EXTENSION', 1, 'container'],
  ['VFIO_SET_IOMMU', 2, 'container'],
  ['VFIO_GROUP_GET_STATUS', 3, 'group'],
  ['VFIO_GROUP_SET_CONTAINER', 4, 'group'],
  ['VFIO_GROUP_UNSET_CONTAINER', 5, 'group'],
  ['VFIO_GROUP_GET_DEVICE_FD', 6, 'group'],
  ['VFIO_DEVICE_GET_INFO', 7, 'device'],
  ['VFIO_DEVICE_GET_REGION_INFO', 8, 'device'],
  ['VFIO_DEVICE_GET_IRQ_INFO', 9, 'device'],
  ['VFIO_DEVICE_SET_IRQS', 10, 'device'],
  ['VFIO_DEVICE_RESET', 11, 'device'],
  ['VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', 12, 'device'],
  ['VFIO_IOMMU_GET_INFO', 12, 'container'],
  ['VFIO_IOMMU_SPAPR_TCE_GET_INFO', 12, 'container'],
  ['VFIO_DEVICE_PCI_HOT_RESET', 13, 'device'],
  ['VFIO_IOMMU_MAP_DMA', 13, 'container'],
  ['VFIO_DEVICE_QUERY_GFX_PLANE', 14, 'device'],
  ['VFIO_IOMMU_UNMAP_DMA', 14, 'container'],
  ['VFIO_DEVICE_GET_GFX_DMABUF', 15, 'device'],
  ['VFIO_IOMMU_ENABLE', 15, 'container'],
  ['VFIO_DEVICE_IOEVENTFD', 16, 'device'],
  ['VFIO_IOMMU_DISABLE', 16, 'container'],
  ['VFIO_DEVICE_FEATURE', 17, 'device'],
  ['VFIO_IOMMU_DIRTY_PAGES', 17, 'container'],
  ['VFIO_IOMMU_SPAPR_REGISTER_MEMORY', 17, 'container'],
  ['VFIO_DEVICE_BIND_IOMMUFD', 18, 'device'],
  ['VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY', 18, 'container'],
  ['VFIO_DEVICE_ATTACH_IOMMUFD_PT', 19, 'device'],
  ['VFIO_IOMMU_SPAPR_TCE_CREATE', 19, 'container'],
  ['VFIO_DEVICE_DETACH_IOMMUFD_PT', 20, 'device'],
  ['VFIO_IOMMU_SPAPR_TCE_REMOVE', 20, 'container'],
  ['VFIO_EEH_PE_OP', 21, 'container'],
];

test('every VFIO ioctl number, generic and powerpc', () => {
  assert.equal(VFIO_IOCTLS.length, IOCTLS.length);
  for (const [name, k, fd] of IOCTLS) {
    const generic = 0x3b00 | (100 + k);
    const powerpc = 0x20000000 + generic;
    assert.equal(vfioIoctl(name).fd, fd, name);
    assert.equal(vfioIoctlNumber('generic', name), generic, name);
    assert.equal(vfioIoctlNumber('powerpc', name), powerpc, name);
    assert.ok(
      vfioIoctlsByNumber('generic', generic).some((c) => c.name === name),
      name,
    );
    assert.ok(
      vfioIoctlsByNumber('powerpc', powerpc).some((c) => c.name === name),
      name,
    );
  }
  // the numbers the selftest's compat tests use
  assert.equal(vfioIoctlNumber('generic', 'VFIO_GET_API_VERSION'), 0x3b64);
  assert.equal(vfioIoctlNumber('generic', 'VFIO_CHECK_EXTENSION'), 0x3b65);
  assert.equal(vfioIoctlNumber('generic', 'VFIO_SET_IOMMU'), 0x3b66);
  assert.equal(vfioIoctlNumber('generic', 'VFIO_IOMMU_GET_INFO'), 0x3b70);
  assert.equal(vfioIoctlNumber('generic', 'VFIO_IOMMU_MAP_DMA'), 0x3b71);
  assert.equal(vfioIoctlNumber('generic', 'VFIO_IOMMU_UNMAP_DMA'), 0x3b72);
});

test('shared numbers name every ioctl that uses them', () => {
  const names = (n: number) => vfioIoctlsByNumber('generic', n).map((c) => c.name);
  assert.deepEqual(names(0x3b70), [
    'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO',
    'VFIO_IOMMU_GET_INFO',
    'VFIO_IOMMU_SPAPR_TCE_GET_INFO',
  ]);
  assert.deepEqual(names(0x3b75), [
    'VFIO_DEVICE_FEATURE',
    'VFIO_IOMMU_DIRTY_PAGES',
    'VFIO_IOMMU_SPAPR_REGISTER_MEMORY',
  ]);
  assert.deepEqual(names(0x3b79), ['VFIO_EEH_PE_OP']);
});

test('only the exact _IO word of the ABI is a VFIO ioctl', () => {
  assert.equal(vfioNrOf('generic', 0x3b71), 0x71);
  assert.equal(vfioNrOf('powerpc', 0x20003b71), 0x71);
  assert.equal(vfioNrOf('generic', 0x20003b71), undefined);
  assert.equal(vfioNrOf('powerpc', 0x3b71), undefined);
  // _IOW(';', 113, 32 bytes): same nr, not the ioctl
  assert.equal(vfioNrOf('generic', ioc('generic', 'write', 0x3b, 0x71, 32)), undefined);
  // other type byte, nr below the base, nr past the last one
  assert.equal(vfioNrOf('generic', 0x3c71), undefined);
  assert.equal(vfioNrOf('generic', 0x3b63), undefined);
  assert.equal(vfioNrOf('generic', 0x3b7a), undefined);
  assert.deepEqual(vfioIoctlsByNumber('generic', 0x3b7f), []);
});
