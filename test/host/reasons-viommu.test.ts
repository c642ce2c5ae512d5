/**
 * Reasons of the vIOMMU rules (iommufd-uapi.md §6, the 6.13+ objects):
 * VIOMMU_ALLOC, VDEVICE_ALLOC, VEVENTQ_ALLOC and its fd, HW_QUEUE_ALLOC,
 * nested HWPTs on a vIOMMU, the user invalidation arrays, and the fault
 * queue's fd. The selftest's mock driver serves as the vIOMMU, as in the
 * kernel selftest. Each row triggers its rule through a syscall and pins
 * errno, reason and where.
 */
import { IOMMU_HWPT_ALLOC_FLAGS } from '../../src/abi/iommufd.ts';
import {
  MOCK_APERTURE_START as BASE,
  IOMMU_HW_QUEUE_TYPE_SELFTEST,
  IOMMU_VEVENTQ_TYPE_SELFTEST,
  IOMMU_VIOMMU_TYPE_SELFTEST,
} from '../../src/abi/iommufd-test.ts';
import { selftestCmd } from '../../src/iommufd/selftest.ts';
import { faultQueue, hwptAlloc, mockDomain, nestedAlloc, tc } from '../iommufd/mock.ts';
import { map, memAt, PAGE, U64_MAX } from '../iommufd/util.ts';
import { type Fixture, setup } from '../support.ts';
import { pin, type Row, traced } from './reasons-support.ts';

type Vals = Record<string, number | bigint>;

/** A traced fixture with IOMMU_TEST_CMD (`personality` overrides), a mock device and a vIOMMU on its nesting parent. */
function viommuOf(personality = {}) {
  const f = traced(setup({ selftestCmd: selftestCmd(), personality }));
  const ioas = f.ioas();
  const { stdev, idev } = mockDomain(f, ioas);
  const parent = hwptAlloc(f, idev, ioas, IOMMU_HWPT_ALLOC_FLAGS.NEST_PARENT).id;
  const viommu = f.call('IOMMU_VIOMMU_ALLOC', {
    dev_id: idev,
    hwpt_id: parent,
    type: IOMMU_VIOMMU_TYPE_SELFTEST,
  }).out.out_viommu_id as number;
  return { f, ioas, stdev, idev, parent, viommu };
}
type V = ReturnType<typeof viommuOf>;

/** A row's act on such a fixture; the process to read. */
const on =
  (act: (v: V) => unknown, personality = {}) =>
  () => {
    const v = viommuOf(personality);
    act(v);
    return v.f.proc;
  };

const veventq = (v: V, extra: Vals = {}) =>
  v.f.call('IOMMU_VEVENTQ_ALLOC', {
    viommu_id: v.viommu,
    type: IOMMU_VEVENTQ_TYPE_SELFTEST,
    veventq_depth: 2,
    ...extra,
  }).out.out_veventq_fd as number;
const hwQueue = (v: V, extra: Vals) =>
  v.f.call('IOMMU_HW_QUEUE_ALLOC', {
    viommu_id: v.viommu,
    type: IOMMU_HW_QUEUE_TYPE_SELFTEST,
    nesting_parent_iova: 0n,
    length: PAGE,
    ...extra,
  });
const vdevice = (v: V, dev = v.idev, virtId = 0x99n) =>
  v.f.call('IOMMU_VDEVICE_ALLOC', { viommu_id: v.viommu, dev_id: dev, virt_id: virtId });
/** HWPT_INVALIDATE of the vIOMMU with `entry_num` zeroed entries of `entry_len` bytes. */
const invalidate = (v: V, v2: Vals) =>
  v.f.call('IOMMU_HWPT_INVALIDATE', {
    hwpt_id: v.viommu,
    data_uptr: v.f.mem(PAGE),
    entry_len: 16,
    entry_num: 1,
    ...v2,
  });
/** read(2) of `count` bytes (pread at `offset` when given) from `fd`. */
function readFd(f: Fixture, fd: number, count: number, offset?: bigint) {
  const buf = f.mem(PAGE);
  if (offset === undefined) f.proc.read(fd, buf, count);
  else f.proc.pread(fd, buf, count, offset);
}

const rows: Row[] = [
  [
    'VIOMMU_ALLOC with flags',
    on((v) => v.f.call('IOMMU_VIOMMU_ALLOC', { flags: 1, type: IOMMU_VIOMMU_TYPE_SELFTEST })),
    'EOPNOTSUPP',
    'flags not 0, or type DEFAULT',
    'iommufd_viommu_alloc_ioctl',
  ],
  [
    'VIOMMU_ALLOC of a type the driver lacks',
    on((v) => v.f.call('IOMMU_VIOMMU_ALLOC', { dev_id: v.idev, hwpt_id: v.parent, type: 7 })),
    'EOPNOTSUPP',
    'the IOMMU driver has no vIOMMU of type 7',
    'iommufd_viommu_alloc_ioctl',
  ],
  [
    'VIOMMU_ALLOC on a HWPT without NEST_PARENT',
    on((v) =>
      v.f.call('IOMMU_VIOMMU_ALLOC', {
        dev_id: v.idev,
        hwpt_id: hwptAlloc(v.f, v.idev, v.ioas, 0).id,
        type: IOMMU_VIOMMU_TYPE_SELFTEST,
      }),
    ),
    'EINVAL',
    'not a nesting parent',
    'iommufd_viommu_alloc_ioctl',
  ],
  [
    'VDEVICE_ALLOC of a device behind another IOMMU',
    on((v) => vdevice(v, v.f.intelDevice().id)),
    'EINVAL',
    'device behind another IOMMU',
    'iommufd_vdevice_alloc_ioctl',
  ],
  [
    'VDEVICE_ALLOC of a device that has one',
    on((v) => {
      vdevice(v);
      vdevice(v, v.idev, 0x98n);
    }),
    'EEXIST',
    'device already has a vDEVICE',
    'iommufd_vdevice_alloc_ioctl',
  ],
  [
    'VDEVICE_ALLOC of a virt_id in use',
    on((v) => {
      vdevice(v);
      vdevice(v, mockDomain(v.f, v.ioas).idev);
    }),
    'EEXIST',
    'virt_id in use',
    'iommufd_vdevice_alloc_ioctl',
  ],
  [
    'nested HWPT_ALLOC on a vIOMMU of another IOMMU',
    on((v) => nestedAlloc(v.f, v.f.intelDevice().id, v.viommu)),
    'EINVAL',
    'vIOMMU of another IOMMU than the device',
    'iommufd_hwpt_alloc',
  ],
  [
    'nested HWPT_ALLOC on a vIOMMU for a device without a vDEVICE there, attached',
    on((v) =>
      tc(v.f, 'MOCK_DOMAIN_REPLACE', { id: v.stdev, pt_id: nestedAlloc(v.f, v.idev, v.viommu).id }),
    ),
    'ENOENT',
    'device has no vDEVICE in this vIOMMU',
    'iommufd_viommu_get_vdev_id',
  ],
  [
    'TRIGGER_VEVENT without a vEVENTQ of its type',
    on((v) => {
      vdevice(v);
      tc(v.f, 'MOCK_DOMAIN_REPLACE', { id: v.stdev, pt_id: nestedAlloc(v.f, v.idev, v.viommu).id });
      tc(v.f, 'TRIGGER_VEVENT', { dev_id: v.idev });
    }),
    'EOPNOTSUPP',
    'no vEVENTQ of that type',
    'iommufd_viommu_report_event',
  ],
  [
    'VEVENTQ_ALLOC with flags',
    on((v) => veventq(v, { flags: 1 })),
    'EOPNOTSUPP',
    'flags or __reserved not 0, or type DEFAULT',
    'iommufd_veventq_alloc',
  ],
  [
    'VEVENTQ_ALLOC of depth 0',
    on((v) => veventq(v, { veventq_depth: 0 })),
    'EINVAL',
    'depth 0',
    'iommufd_veventq_alloc',
  ],
  [
    'VEVENTQ_ALLOC deeper than 2^19 (7.2)',
    on((v) => veventq(v, { veventq_depth: (1 << 19) + 1 }), { requestBounds: true }),
    'EINVAL',
    'depth above 2^19',
    'iommufd_veventq_alloc',
  ],
  [
    'VEVENTQ_ALLOC of a type the vIOMMU has',
    on((v) => {
      veventq(v);
      veventq(v);
    }),
    'EEXIST',
    'a vEVENTQ of that type exists',
    'iommufd_veventq_alloc',
  ],
  [
    'pread of a vEVENTQ at an offset',
    on((v) => readFd(v.f, veventq(v), 64, 8n)),
    'ESPIPE',
    'offset not 0',
    'iommufd_veventq_fops_read',
  ],
  [
    'read of a vEVENTQ shorter than a header (7.2)',
    on((v) => readFd(v.f, veventq(v), 4), { requestBounds: true }),
    'EINVAL',
    'a read shorter than a vEVENT header',
    'iommufd_veventq_fops_read',
  ],
  [
    'read of a vEVENTQ too short for its first vEVENT (7.2)',
    on(
      (v) => {
        const fd = veventq(v);
        vdevice(v);
        tc(v.f, 'MOCK_DOMAIN_REPLACE', {
          id: v.stdev,
          pt_id: nestedAlloc(v.f, v.idev, v.viommu).id,
        });
        tc(v.f, 'TRIGGER_VEVENT', { dev_id: v.idev });
        readFd(v.f, fd, 8);
      },
      { requestBounds: true },
    ),
    'EINVAL',
    'the first vEVENT does not fit the read',
    'iommufd_veventq_fops_read',
  ],
  [
    'HW_QUEUE_ALLOC with type DEFAULT',
    on((v) => hwQueue(v, { type: 0 })),
    'EOPNOTSUPP',
    'flags not 0, or type DEFAULT',
    'iommufd_hw_queue_alloc_ioctl',
  ],
  [
    'HW_QUEUE_ALLOC of length 0',
    on((v) => hwQueue(v, { length: 0n })),
    'EINVAL',
    'length 0',
    'iommufd_hw_queue_alloc_ioctl',
  ],
  [
    'HW_QUEUE_ALLOC whose range passes U64_MAX',
    on((v) => hwQueue(v, { nesting_parent_iova: U64_MAX })),
    'EOVERFLOW',
    'nesting_parent_iova + length - 1 passes U64_MAX',
    'iommufd_hw_queue_alloc_ioctl',
  ],
  [
    'HW_QUEUE_ALLOC of a type the vIOMMU lacks',
    on((v) => hwQueue(v, { type: 0x1234 })),
    'EOPNOTSUPP',
    'the vIOMMU has no HW queue of type 4660',
    'iommufd_hw_queue_alloc_ioctl',
  ],
  [
    'HW_QUEUE_ALLOC whose page-rounded length overflows',
    on((v) => hwQueue(v, { nesting_parent_iova: 0x10n, length: U64_MAX - 0x10n })),
    'ERANGE',
    'the page-rounded length passes U64_MAX',
    'iommufd_hw_queue_alloc_phys',
  ],
  [
    'HW_QUEUE_ALLOC with a page array past kvcalloc()',
    on((v) => hwQueue(v, { length: 1n << 40n })),
    'ENOMEM',
    'page array of 268435456 pages above the kvcalloc() limit',
    'iommufd_hw_queue_alloc_phys',
  ],
  [
    'HW_QUEUE_ALLOC over pages that are not physically contiguous',
    on((v) => {
      map(v.f, v.ioas, memAt(v.f, 0x7000_0000n, PAGE), PAGE, { iova: BASE });
      map(v.f, v.ioas, memAt(v.f, 0x7100_0000n, PAGE), PAGE, { iova: BASE + PAGE });
      hwQueue(v, { nesting_parent_iova: BASE, length: 2n * PAGE });
    }),
    'EFAULT',
    'HW queue pages are not physically contiguous',
    'iommufd_hw_queue_alloc_phys',
  ],
  [
    'IOAS_UNMAP of a range a HW queue locks',
    on((v) => {
      map(v.f, v.ioas, memAt(v.f, 0x7000_0000n, PAGE), PAGE, { iova: BASE });
      hwQueue(v, { nesting_parent_iova: BASE });
      v.f.call('IOMMU_IOAS_UNMAP', { ioas_id: v.ioas, iova: BASE, length: PAGE });
    }),
    'EBUSY',
    'area at 0x1000000 is locked by a HW queue',
    'iopt_unmap_iova_range',
  ],
  [
    'vIOMMU invalidation with no entries of another type',
    on((v) => invalidate(v, { entry_num: 0, data_type: 0x1234 })),
    'EINVAL',
    'no entries',
    'iommu_copy_struct_from_full_user_array',
  ],
  [
    'vIOMMU invalidation of another data type',
    on((v) => invalidate(v, { data_type: 0x1234 })),
    'EINVAL',
    'data type 4660, not 3735928559',
    'iommu_copy_struct_from_full_user_array',
  ],
  [
    'FAULT_QUEUE_ALLOC with flags',
    on((v) => v.f.call('IOMMU_FAULT_QUEUE_ALLOC', { flags: 1 })),
    'EOPNOTSUPP',
    'flags not 0',
    'iommufd_fault_alloc',
  ],
  [
    'read of a fault queue not a multiple of a record',
    on((v) => readFd(v.f, faultQueue(v.f).fd, 7)),
    'ESPIPE',
    'offset not 0, or 7 not a multiple of 40',
    'iommufd_fault_fops_read',
  ],
  [
    'write of a fault queue not a multiple of a response',
    on((v) => v.f.proc.write(faultQueue(v.f).fd, v.f.mem(PAGE), 7)),
    'ESPIPE',
    'offset not 0, or 7 not a multiple of 8',
    'iommufd_fault_fops_write',
  ],
  [
    'a fault response with an unknown cookie',
    on((v) => v.f.proc.write(faultQueue(v.f).fd, v.f.mem(PAGE), 16)),
    'EINVAL',
    'unknown response code or cookie',
    'iommufd_fault_fops_write',
  ],
];

pin(
  'iommufd-uapi.md §6 (vIOMMU, vDEVICE, vEVENTQ, HW queue, invalidation arrays, fault queue)',
  rows,
);
