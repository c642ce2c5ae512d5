import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as iommufd from '../../src/abi/iommufd.ts';
import {
  IOMMUFD_CMDS,
  type IommufdCmdName,
  iommufdCmd,
  iommufdCmdByNumber,
  iommufdCmdNumber,
} from '../../src/abi/iommufd.ts';
import * as selftest from '../../src/abi/iommufd-test.ts';
import {
  IOMMU_TEST_CMD_LAYOUTS,
  IOMMU_TEST_CMD_MIN_SIZE,
  IOMMU_TEST_OP,
  IommuTestCmd,
  iommuTestCmdLayout,
  iommuTestCmdNumber,
  iommuTestOpName,
} from '../../src/abi/iommufd-test.ts';
import type { Layout } from '../../src/abi/layout.ts';

// Expected sizes and layouts, written from the uAPI header (Linux 6.18) and
// iommufd_test.h independently of src/: [field, offset, type] per struct.
type Row = readonly [string, number, string];
const STRUCTS: Record<string, { size: number; rows: readonly Row[] }> = {
  IommuDestroy: {
    size: 8,
    rows: [
      ['size', 0, 'u32'],
      ['id', 4, 'u32'],
    ],
  },
  IommuIoasAlloc: {
    size: 12,
    rows: [
      ['size', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['out_ioas_id', 8, 'u32'],
    ],
  },
  IommuIovaRange: {
    size: 16,
    rows: [
      ['start', 0, 'u64'],
      ['last', 8, 'u64'],
    ],
  },
  IommuIoasAllowIovas: {
    size: 24,
    rows: [
      ['size', 0, 'u32'],
      ['ioas_id', 4, 'u32'],
      ['num_iovas', 8, 'u32'],
      ['__reserved', 12, 'u32'],
      ['allowed_iovas', 16, 'u64'],
    ],
  },
  IommuIoasCopy: {
    size: 40,
    rows: [
      ['size', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['dst_ioas_id', 8, 'u32'],
      ['src_ioas_id', 12, 'u32'],
      ['length', 16, 'u64'],
      ['dst_iova', 24, 'u64'],
      ['src_iova', 32, 'u64'],
    ],
  },
  IommuIoasIovaRanges: {
    size: 32,
    rows: [
      ['size', 0, 'u32'],
      ['ioas_id', 4, 'u32'],
      ['num_iovas', 8, 'u32'],
      ['__reserved', 12, 'u32'],
      ['allowed_iovas', 16, 'u64'],
      ['out_iova_alignment', 24, 'u64'],
    ],
  },
  IommuIoasMap: {
    size: 40,
    rows: [
      ['size', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['ioas_id', 8, 'u32'],
      ['__reserved', 12, 'u32'],
      ['user_va', 16, 'u64'],
      ['length', 24, 'u64'],
      ['iova', 32, 'u64'],
    ],
  },
  IommuIoasUnmap: {
    size: 24,
    rows: [
      ['size', 0, 'u32'],
      ['ioas_id', 4, 'u32'],
      ['iova', 8, 'u64'],
      ['length', 16, 'u64'],
    ],
  },
  IommuOption: {
    size: 24,
    rows: [
      ['size', 0, 'u32'],
      ['option_id', 4, 'u32'],
      ['op', 8, 'u16'],
      ['__reserved', 10, 'u16'],
      ['object_id', 12, 'u32'],
      ['val64', 16, 'u64'],
    ],
  },
  IommuVfioIoas: {
    size: 12,
    rows: [
      ['size', 0, 'u32'],
      ['ioas_id', 4, 'u32'],
      ['op', 8, 'u16'],
      ['__reserved', 10, 'u16'],
    ],
  },
  IommuHwptAlloc: {
    size: 48,
    rows: [
      ['size', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['dev_id', 8, 'u32'],
      ['pt_id', 12, 'u32'],
      ['out_hwpt_id', 16, 'u32'],
      ['__reserved', 20, 'u32'],
      ['data_type', 24, 'u32'],
      ['data_len', 28, 'u32'],
      ['data_uptr', 32, 'u64'],
      ['fault_id', 40, 'u32'],
      ['__reserved2', 44, 'u32'],
    ],
  },
  IommuHwInfo: {
    size: 40,
    rows: [
      ['size', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['dev_id', 8, 'u32'],
      ['data_len', 12, 'u32'],
      ['data_uptr', 16, 'u64'],
      ['out_data_type', 24, 'u32'],
      ['out_max_pasid_log2', 28, 'u8'],
      ['__reserved_0', 29, 'u8'],
      ['__reserved_1', 30, 'u8'],
      ['__reserved_2', 31, 'u8'],
      ['out_capabilities', 32, 'u64'],
    ],
  },
  IommuHwptSetDirtyTracking: {
    size: 16,
    rows: [
      ['size', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['hwpt_id', 8, 'u32'],
      ['__reserved', 12, 'u32'],
    ],
  },
  IommuHwptGetDirtyBitmap: {
    size: 48,
    rows: [
      ['size', 0, 'u32'],
      ['hwpt_id', 4, 'u32'],
      ['flags', 8, 'u32'],
      ['__reserved', 12, 'u32'],
      ['iova', 16, 'u64'],
      ['length', 24, 'u64'],
      ['page_size', 32, 'u64'],
      ['data', 40, 'u64'],
    ],
  },
  IommuHwptInvalidate: {
    size: 32,
    rows: [
      ['size', 0, 'u32'],
      ['hwpt_id', 4, 'u32'],
      ['data_uptr', 8, 'u64'],
      ['data_type', 16, 'u32'],
      ['entry_len', 20, 'u32'],
      ['entry_num', 24, 'u32'],
      ['__reserved', 28, 'u32'],
    ],
  },
  IommuFaultAlloc: {
    size: 16,
    rows: [
      ['size', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['out_fault_id', 8, 'u32'],
      ['out_fault_fd', 12, 'u32'],
    ],
  },
  IommuIoasMapFile: {
    size: 40,
    rows: [
      ['size', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['ioas_id', 8, 'u32'],
      ['fd', 12, 's32'],
      ['start', 16, 'u64'],
      ['length', 24, 'u64'],
      ['iova', 32, 'u64'],
    ],
  },
  IommuViommuAlloc: {
    size: 40,
    rows: [
      ['size', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['type', 8, 'u32'],
      ['dev_id', 12, 'u32'],
      ['hwpt_id', 16, 'u32'],
      ['out_viommu_id', 20, 'u32'],
      ['data_len', 24, 'u32'],
      ['__reserved', 28, 'u32'],
      ['data_uptr', 32, 'u64'],
    ],
  },
  IommuVdeviceAlloc: {
    size: 24,
    rows: [
      ['size', 0, 'u32'],
      ['viommu_id', 4, 'u32'],
      ['dev_id', 8, 'u32'],
      ['out_vdevice_id', 12, 'u32'],
      ['virt_id', 16, 'u64'],
    ],
  },
  IommuIoasChangeProcess: {
    size: 8,
    rows: [
      ['size', 0, 'u32'],
      ['__reserved', 4, 'u32'],
    ],
  },
  IommuVeventqAlloc: {
    size: 32,
    rows: [
      ['size', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['viommu_id', 8, 'u32'],
      ['type', 12, 'u32'],
      ['veventq_depth', 16, 'u32'],
      ['out_veventq_id', 20, 'u32'],
      ['out_veventq_fd', 24, 'u32'],
      ['__reserved', 28, 'u32'],
    ],
  },
  IommuHwQueueAlloc: {
    size: 40,
    rows: [
      ['size', 0, 'u32'],
      ['flags', 4, 'u32'],
      ['viommu_id', 8, 'u32'],
      ['type', 12, 'u32'],
      ['index', 16, 'u32'],
      ['out_hw_queue_id', 20, 'u32'],
      ['nesting_parent_iova', 24, 'u64'],
      ['length', 32, 'u64'],
    ],
  },
  IommuHwptPgfault: {
    size: 40,
    rows: [
      ['flags', 0, 'u32'],
      ['dev_id', 4, 'u32'],
      ['pasid', 8, 'u32'],
      ['grpid', 12, 'u32'],
      ['perm', 16, 'u32'],
      ['__reserved', 20, 'u32'],
      ['addr', 24, 'u64'],
      ['length', 32, 'u32'],
      ['cookie', 36, 'u32'],
    ],
  },
  IommuHwptPageResponse: {
    size: 8,
    rows: [
      ['cookie', 0, 'u32'],
      ['code', 4, 'u32'],
    ],
  },
  IommufdVeventHeader: {
    size: 8,
    rows: [
      ['flags', 0, 'u32'],
      ['sequence', 4, 'u32'],
    ],
  },
  IommuHwInfoVtd: {
    size: 24,
    rows: [
      ['flags', 0, 'u32'],
      ['__reserved', 4, 'u32'],
      ['cap_reg', 8, 'u64'],
      ['ecap_reg', 16, 'u64'],
    ],
  },
  IommuHwptVtdS1: {
    size: 24,
    rows: [
      ['flags', 0, 'u64'],
      ['pgtbl_addr', 8, 'u64'],
      ['addr_width', 16, 'u32'],
      ['__reserved', 20, 'u32'],
    ],
  },
  IommuHwptVtdS1Invalidate: {
    size: 24,
    rows: [
      ['addr', 0, 'u64'],
      ['npages', 8, 'u64'],
      ['flags', 16, 'u32'],
      ['__reserved', 20, 'u32'],
    ],
  },
};

const TEST_HEADER: readonly Row[] = [
  ['size', 0, 'u32'],
  ['op', 4, 'u32'],
  ['id', 8, 'u32'],
  ['__reserved', 12, 'u32'],
  ['last', 64, 'u32'],
];
const testCmd = (rows: readonly Row[]) => ({ size: 72, rows: [...TEST_HEADER, ...rows] });

const SELFTEST_STRUCTS: Record<string, { size: number; rows: readonly Row[] }> = {
  IommuTestCmd: testCmd([]),
  IommuTestCmdAddReserved: testCmd([
    ['start', 16, 'u64'],
    ['length', 24, 'u64'],
  ]),
  IommuTestCmdMockDomain: testCmd([
    ['out_stdev_id', 16, 'u32'],
    ['out_hwpt_id', 20, 'u32'],
    ['out_idev_id', 24, 'u32'],
  ]),
  IommuTestCmdMockDomainFlags: testCmd([
    ['out_stdev_id', 16, 'u32'],
    ['out_hwpt_id', 20, 'u32'],
    ['out_idev_id', 24, 'u32'],
    ['dev_flags', 28, 'u32'],
  ]),
  IommuTestCmdMockDomainReplace: testCmd([['pt_id', 16, 'u32']]),
  IommuTestCmdCheckMap: testCmd([
    ['iova', 16, 'u64'],
    ['length', 24, 'u64'],
    ['uptr', 32, 'u64'],
  ]),
  IommuTestCmdCheckRefs: testCmd([
    ['length', 16, 'u64'],
    ['uptr', 24, 'u64'],
    ['refs', 32, 'u32'],
  ]),
  IommuTestCmdCreateAccess: testCmd([
    ['out_access_fd', 16, 'u32'],
    ['flags', 20, 'u32'],
  ]),
  IommuTestCmdDestroyAccessPages: testCmd([['access_pages_id', 16, 'u32']]),
  IommuTestCmdAccessPages: testCmd([
    ['flags', 16, 'u32'],
    ['out_access_pages_id', 20, 'u32'],
    ['iova', 24, 'u64'],
    ['length', 32, 'u64'],
    ['uptr', 40, 'u64'],
  ]),
  IommuTestCmdAccessRw: testCmd([
    ['iova', 16, 'u64'],
    ['length', 24, 'u64'],
    ['uptr', 32, 'u64'],
    ['flags', 40, 'u32'],
  ]),
  IommuTestCmdMemoryLimit: testCmd([['limit', 16, 'u32']]),
  IommuTestCmdAccessReplaceIoas: testCmd([['ioas_id', 16, 'u32']]),
  IommuTestCmdDirty: testCmd([
    ['flags', 16, 'u32'],
    ['iova', 24, 'u64'],
    ['length', 32, 'u64'],
    ['page_size', 40, 'u64'],
    ['uptr', 48, 'u64'],
    ['out_nr_dirty', 56, 'u64'],
  ]),
  IommuTestCmdCheckIotlb: testCmd([
    ['check_iotlb_id', 16, 'u32'],
    ['iotlb', 20, 'u32'],
  ]),
  IommuTestCmdTriggerIopf: testCmd([
    ['dev_id', 16, 'u32'],
    ['pasid', 20, 'u32'],
    ['grpid', 24, 'u32'],
    ['perm', 28, 'u32'],
    ['addr', 32, 'u64'],
  ]),
  IommuTestCmdCheckDevCache: testCmd([
    ['check_dev_cache_id', 16, 'u32'],
    ['cache', 20, 'u32'],
  ]),
  IommuTestCmdTriggerVevent: testCmd([['dev_id', 16, 'u32']]),
  IommuTestCmdPasidAttach: testCmd([
    ['pasid', 16, 'u32'],
    ['pt_id', 20, 'u32'],
  ]),
  IommuTestCmdPasidReplace: testCmd([
    ['pasid', 16, 'u32'],
    ['pt_id', 20, 'u32'],
  ]),
  IommuTestCmdPasidDetach: testCmd([['pasid', 16, 'u32']]),
  IommuTestCmdPasidCheck: testCmd([
    ['pasid', 16, 'u32'],
    ['hwpt_id', 20, 'u32'],
  ]),
  IommuTestCmdDmabufGet: testCmd([
    ['length', 16, 'u32'],
    ['open_flags', 20, 'u32'],
  ]),
  IommuTestCmdDmabufRevoke: testCmd([
    ['dmabuf_fd', 16, 's32'],
    ['revoked', 20, 'u32'],
  ]),
  IommuTestHwInfo: {
    size: 8,
    rows: [
      ['flags', 0, 'u32'],
      ['test_reg', 4, 'u32'],
    ],
  },
  IommuHwptSelftest: {
    size: 8,
    rows: [
      ['iotlb', 0, 'u32'],
      ['pagetable_type', 4, 'u32'],
    ],
  },
  IommuHwptInvalidateSelftest: {
    size: 8,
    rows: [
      ['flags', 0, 'u32'],
      ['iotlb_id', 4, 'u32'],
    ],
  },
  IommuViommuSelftest: {
    size: 24,
    rows: [
      ['in_data', 0, 'u32'],
      ['out_data', 4, 'u32'],
      ['out_mmap_offset', 8, 'u64'],
      ['out_mmap_length', 16, 'u64'],
    ],
  },
  IommuViommuInvalidateSelftest: {
    size: 12,
    rows: [
      ['flags', 0, 'u32'],
      ['vdev_id', 4, 'u32'],
      ['cache_id', 8, 'u32'],
    ],
  },
  IommuViommuEventSelftest: { size: 4, rows: [['virt_id', 0, 'u32']] },
};

function checkLayouts(
  mod: Record<string, unknown>,
  expected: Record<string, { size: number; rows: readonly Row[] }>,
): void {
  for (const [exportName, want] of Object.entries(expected)) {
    const layout = mod[exportName] as Layout<unknown> | undefined;
    assert.ok(layout, `${exportName} is exported`);
    assert.equal(layout.size, want.size, `sizeof ${exportName}`);
    const got = layout.fields.map((f) => [f.name, f.offset, f.type] as const);
    assert.deepEqual(
      [...got].sort((a, b) => a[1] - b[1]),
      [...want.rows].sort((a, b) => a[1] - b[1]),
      `fields of ${exportName}`,
    );
  }
  // Every exported layout is pinned above.
  for (const [name, value] of Object.entries(mod)) {
    if (value && typeof value === 'object' && 'fields' in value && 'size' in value) {
      assert.ok(name in expected, `${name} has an expected layout row`);
    }
  }
}

test('iommufd uAPI struct sizes and field offsets', () => {
  checkLayouts(iommufd as Record<string, unknown>, STRUCTS);
});

test('selftest struct sizes and field offsets', () => {
  checkLayouts(selftest as Record<string, unknown>, SELFTEST_STRUCTS);
});

test('field directions: reserved fields are reserved, out_* fields are written', () => {
  for (const c of IOMMUFD_CMDS) {
    for (const f of c.layout.fields) {
      if (f.name.startsWith('__reserved')) assert.equal(f.dir, 'reserved', `${c.name}.${f.name}`);
      if (f.name.startsWith('out_')) assert.ok(f.dir === 'out' || f.dir === 'inout', f.name);
      if (f.name === 'size') assert.equal(f.dir, 'in');
    }
  }
});

// [name, nr, sizeof, min size]
const CMDS: readonly [IommufdCmdName, number, number, number][] = [
  ['IOMMU_DESTROY', 0x80, 8, 8],
  ['IOMMU_IOAS_ALLOC', 0x81, 12, 12],
  ['IOMMU_IOAS_ALLOW_IOVAS', 0x82, 24, 24],
  ['IOMMU_IOAS_COPY', 0x83, 40, 40],
  ['IOMMU_IOAS_IOVA_RANGES', 0x84, 32, 32],
  ['IOMMU_IOAS_MAP', 0x85, 40, 40],
  ['IOMMU_IOAS_UNMAP', 0x86, 24, 24],
  ['IOMMU_OPTION', 0x87, 24, 24],
  ['IOMMU_VFIO_IOAS', 0x88, 12, 12],
  ['IOMMU_HWPT_ALLOC', 0x89, 48, 24],
  ['IOMMU_GET_HW_INFO', 0x8a, 40, 32],
  ['IOMMU_HWPT_SET_DIRTY_TRACKING', 0x8b, 16, 16],
  ['IOMMU_HWPT_GET_DIRTY_BITMAP', 0x8c, 48, 48],
  ['IOMMU_HWPT_INVALIDATE', 0x8d, 32, 32],
  ['IOMMU_FAULT_QUEUE_ALLOC', 0x8e, 16, 16],
  ['IOMMU_IOAS_MAP_FILE', 0x8f, 40, 40],
  ['IOMMU_VIOMMU_ALLOC', 0x90, 40, 24],
  ['IOMMU_VDEVICE_ALLOC', 0x91, 24, 24],
  ['IOMMU_IOAS_CHANGE_PROCESS', 0x92, 8, 8],
  ['IOMMU_VEVENTQ_ALLOC', 0x93, 32, 28],
  ['IOMMU_HW_QUEUE_ALLOC', 0x94, 40, 40],
];

test('command table: order, nr, sizeof and min size', () => {
  assert.equal(IOMMUFD_CMDS.length, CMDS.length);
  CMDS.forEach(([name, nr, size, minSize], i) => {
    const c = IOMMUFD_CMDS[i]!;
    assert.equal(c.name, name);
    assert.equal(c.nr, nr, name);
    assert.equal(c.nr, 0x80 + i, name);
    assert.equal(c.layout.size, size, `sizeof ${name}`);
    assert.equal(c.minSize, minSize, `min size ${name}`);
    assert.equal(iommufdCmd(name), c);
  });
});

test('ioctl numbers in both encodings', () => {
  for (const [name, nr] of CMDS) {
    const generic = 0x3b00 | nr;
    const powerpc = 0x20000000 + generic;
    assert.equal(iommufdCmdNumber('generic', name), generic, name);
    assert.equal(iommufdCmdNumber('powerpc', name), powerpc, name);
    assert.equal(iommufdCmdByNumber('generic', generic)?.name, name);
    assert.equal(iommufdCmdByNumber('powerpc', powerpc)?.name, name);
    // A number from the other ABI, or with size/direction bits, is not the command.
    assert.equal(iommufdCmdByNumber('generic', powerpc), undefined);
    assert.equal(iommufdCmdByNumber('powerpc', generic), undefined);
    assert.equal(iommufdCmdByNumber('generic', generic | (40 << 16)), undefined);
  }
  assert.equal(iommufdCmdNumber('generic', 'IOMMU_DESTROY'), 0x3b80);
  assert.equal(iommufdCmdNumber('powerpc', 'IOMMU_DESTROY'), 0x20003b80);
  assert.equal(iommufdCmdByNumber('generic', 0x3b7f), undefined);
  assert.equal(iommufdCmdByNumber('generic', 0x3b95), undefined);
  assert.equal(iommufdCmdByNumber('generic', 0x3ba0), undefined);
  assert.equal(iommufdCmdByNumber('generic', 0x3c80), undefined);
});

test('IOMMU_TEST_CMD number, size and min size', () => {
  assert.equal(iommuTestCmdNumber('generic'), 0x3ba0);
  assert.equal(iommuTestCmdNumber('powerpc'), 0x20003ba0);
  assert.equal(IommuTestCmd.size, 72);
  assert.equal(IommuTestCmd.endOf('last'), 68);
  assert.equal(IOMMU_TEST_CMD_MIN_SIZE, 68);
  for (const layout of Object.values(IOMMU_TEST_CMD_LAYOUTS)) {
    assert.equal(layout.size, 72, layout.name);
    assert.equal(layout.endOf('last'), 68, layout.name);
  }
});

test('selftest op numbers and per-op layouts', () => {
  const ops: [string, number, Layout<unknown>][] = [
    ['ADD_RESERVED', 1, selftest.IommuTestCmdAddReserved],
    ['MOCK_DOMAIN', 2, selftest.IommuTestCmdMockDomain],
    ['MD_CHECK_MAP', 3, selftest.IommuTestCmdCheckMap],
    ['MD_CHECK_REFS', 4, selftest.IommuTestCmdCheckRefs],
    ['CREATE_ACCESS', 5, selftest.IommuTestCmdCreateAccess],
    ['DESTROY_ACCESS_PAGES', 6, selftest.IommuTestCmdDestroyAccessPages],
    ['ACCESS_PAGES', 7, selftest.IommuTestCmdAccessPages],
    ['ACCESS_RW', 8, selftest.IommuTestCmdAccessRw],
    ['SET_TEMP_MEMORY_LIMIT', 9, selftest.IommuTestCmdMemoryLimit],
    ['MOCK_DOMAIN_REPLACE', 10, selftest.IommuTestCmdMockDomainReplace],
    ['ACCESS_REPLACE_IOAS', 11, selftest.IommuTestCmdAccessReplaceIoas],
    ['MOCK_DOMAIN_FLAGS', 12, selftest.IommuTestCmdMockDomainFlags],
    ['DIRTY', 13, selftest.IommuTestCmdDirty],
    ['MD_CHECK_IOTLB', 14, selftest.IommuTestCmdCheckIotlb],
    ['TRIGGER_IOPF', 15, selftest.IommuTestCmdTriggerIopf],
    ['DEV_CHECK_CACHE', 16, selftest.IommuTestCmdCheckDevCache],
    ['TRIGGER_VEVENT', 17, selftest.IommuTestCmdTriggerVevent],
    ['PASID_ATTACH', 18, selftest.IommuTestCmdPasidAttach],
    ['PASID_REPLACE', 19, selftest.IommuTestCmdPasidReplace],
    ['PASID_DETACH', 20, selftest.IommuTestCmdPasidDetach],
    ['PASID_CHECK_HWPT', 21, selftest.IommuTestCmdPasidCheck],
    ['DMABUF_GET', 22, selftest.IommuTestCmdDmabufGet],
    ['DMABUF_REVOKE', 23, selftest.IommuTestCmdDmabufRevoke],
  ];
  assert.equal(Object.keys(IOMMU_TEST_OP).length, ops.length);
  for (const [name, op, layout] of ops) {
    assert.equal(IOMMU_TEST_OP[name as keyof typeof IOMMU_TEST_OP], op, name);
    assert.equal(iommuTestOpName(op), name);
    assert.equal(iommuTestCmdLayout(op), layout, name);
  }
  assert.equal(iommuTestCmdLayout(0), undefined);
  assert.equal(iommuTestCmdLayout(24), undefined);
  assert.equal(iommuTestOpName(24), undefined);
});

test('selftest flag and mock constants', () => {
  assert.deepEqual(selftest.MOCK_FLAGS_DEVICE, { NO_DIRTY: 1, HUGE_IOVA: 2, PASID: 4 });
  assert.deepEqual(selftest.MOCK_FLAGS_ACCESS, { WRITE: 1, SYZ: 0x10000 });
  assert.deepEqual(selftest.MOCK_ACCESS_RW_FLAGS, { WRITE: 1, SLOW_PATH: 4, SYZ: 0x10000 });
  assert.deepEqual(selftest.MOCK_FLAGS_ACCESS_CREATE, { NEEDS_PIN_PAGES: 1 });
  assert.equal(selftest.MOCK_APERTURE_START, 0x100_0000n);
  assert.equal(selftest.MOCK_APERTURE_LAST, 0x7fff_ffffn);
  assert.equal(selftest.IOMMU_HW_INFO_TYPE_SELFTEST, 0xfeedbeef);
  assert.equal(selftest.IOMMU_HW_INFO_SELFTEST_REGVAL, 0xdeadbeef);
  assert.equal(selftest.IOMMU_HWPT_DATA_SELFTEST, 0xdead);
  assert.equal(selftest.IOMMU_TEST_IOTLB_DEFAULT, 0xbadbeef);
  assert.equal(selftest.IOMMU_TEST_DEV_CACHE_DEFAULT, 0xbaddad);
  assert.equal(selftest.IOMMU_VEVENTQ_TYPE_SELFTEST, 0xbeefbeef);
  assert.equal(selftest.IOMMU_TEST_PASID_RESERVED, 1024);
  assert.equal(selftest.MOCK_PASID_WIDTH, 20);
  assert.equal(selftest.IOMMU_TEST_HW_QUEUE_MAX, 2);
});

test('uAPI flag and enum values', () => {
  assert.deepEqual(iommufd.IOMMU_IOAS_MAP_FLAGS, { FIXED_IOVA: 1, WRITEABLE: 2, READABLE: 4 });
  assert.deepEqual(iommufd.IOMMU_OPTION_ID, { RLIMIT_MODE: 0, HUGE_PAGES: 1 });
  assert.deepEqual(iommufd.IOMMU_OPTION_OP, { SET: 0, GET: 1 });
  assert.deepEqual(iommufd.IOMMU_VFIO_IOAS_OP, { GET: 0, SET: 1, CLEAR: 2 });
  assert.deepEqual(iommufd.IOMMU_HWPT_ALLOC_FLAGS, {
    NEST_PARENT: 1,
    DIRTY_TRACKING: 2,
    FAULT_ID_VALID: 4,
    PASID: 8,
  });
  assert.deepEqual(iommufd.IOMMU_HWPT_DATA_TYPE, {
    NONE: 0,
    VTD_S1: 1,
    ARM_SMMUV3: 2,
    AMD_GUEST: 3,
  });
  assert.deepEqual(iommufd.IOMMU_HW_CAP, {
    DIRTY_TRACKING: 1,
    PCI_PASID_EXEC: 2,
    PCI_PASID_PRIV: 4,
    PCI_ATS_NOT_SUPPORTED: 8,
  });
  assert.equal(iommufd.IOMMU_HW_INFO_TYPE.INTEL_VTD, 1);
  assert.equal(iommufd.IOMMU_HW_INFO_TYPE.TEGRA241_CMDQV, 3);
  assert.equal(iommufd.IOMMU_HW_INFO_TYPE.AMD, 4);
  assert.equal(iommufd.IOMMU_HW_INFO_FLAGS.INPUT_TYPE, 1);
  assert.equal(iommufd.IOMMU_HWPT_DIRTY_TRACKING_FLAGS.ENABLE, 1);
  assert.equal(iommufd.IOMMU_HWPT_GET_DIRTY_BITMAP_FLAGS.NO_CLEAR, 1);
  assert.deepEqual(iommufd.IOMMU_PGFAULT_PERM, { READ: 1, WRITE: 2, EXEC: 4, PRIV: 8 });
  assert.equal(iommufd.IOMMU_VEVENTQ_FLAG.LOST_EVENTS, 1);
});

test('IOAS_MAP_FILE fd is signed; decoded u64 fields are bigint', () => {
  const bytes = iommufd.IommuIoasMapFile.encode({ size: 40, fd: -1, start: 0x1000n });
  const v = iommufd.IommuIoasMapFile.decode(bytes);
  assert.equal(v.fd, -1);
  assert.equal(v.start, 0x1000n);
  assert.equal(typeof iommufd.IommuIoasMap.decode(new Uint8Array(40)).iova, 'bigint');
});
