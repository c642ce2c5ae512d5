/**
 * Reasons of the IOAS rules (iommufd-uapi.md §3.1–§3.9, §6): the IOAS
 * ioctls, the io-pagetable below them (EADDRINUSE, wraps, area splits), the
 * object table, the dispatcher and VFIO compatibility on /dev/iommu. Each row
 * triggers its rule through the ioctl and pins errno, reason and where.
 */
import { IOMMU_OPTION_ID, IOMMU_OPTION_OP, IOMMU_VFIO_IOAS_OP } from '../../src/abi/iommufd.ts';
import {
  type VfioIoctlName,
  VfioIommuType1DmaMap,
  VfioIommuType1DmaUnmap,
  vfioIoctlNumber,
} from '../../src/abi/vfio.ts';
import { FIXED, map, memAt, PAGE, R, RW, U64_MAX } from '../iommufd/util.ts';
import type { Fixture } from '../support.ts';
import { ioasAllocNumber, onSelftest as on, pin, type Row, VA } from './reasons-support.ts';

/** An IOAS with `length` bytes mapped at IOVA `iova` from a page-aligned VA plus `offset`. */
function mapped(f: Fixture, iova: bigint, length: bigint, offset = 0n) {
  const ioas = f.ioas();
  map(f, ioas, memAt(f, VA, 4n * PAGE) + offset, length, { iova });
  return ioas;
}

const option = (f: Fixture, v: Record<string, number | bigint>) => f.call('IOMMU_OPTION', v);
const HUGE = IOMMU_OPTION_ID.HUGE_PAGES;

/** A VFIO container ioctl on /dev/iommu with `bytes` as its argument. */
function vfio(f: Fixture, name: VfioIoctlName, bytes: Uint8Array | bigint) {
  const arg = typeof bytes === 'bigint' ? bytes : f.proc.scratch(bytes);
  f.proc.ioctl(f.fd, vfioIoctlNumber(f.kernel.abi, name), arg);
}

const rows: Row[] = [
  [
    'MAP with __reserved set',
    on((f) => f.call('IOMMU_IOAS_MAP', { ioas_id: f.ioas(), __reserved: 1, flags: RW })),
    'EOPNOTSUPP',
    '__reserved is not zero',
    'iommufd_ioas_map',
  ],
  [
    'UNMAP at iova U64_MAX',
    on((f) => f.call('IOMMU_IOAS_UNMAP', { ioas_id: f.ioas(), iova: U64_MAX, length: PAGE })),
    'EOVERFLOW',
    'iova or length is U64_MAX',
    'iommufd_ioas_unmap',
  ],
  [
    'UNMAP whose range wraps',
    on((f) => f.call('IOMMU_IOAS_UNMAP', { ioas_id: f.ioas(), iova: PAGE, length: U64_MAX - 1n })),
    'EOVERFLOW',
    'iova 0x1000 + length 0xfffffffffffffffe wraps',
    'iopt_unmap_iova',
  ],
  [
    'COPY with an unknown flag',
    on((f) => f.call('IOMMU_IOAS_COPY', { flags: RW | 0x100 })),
    'EOPNOTSUPP',
    'unknown flags 0x100',
    'iommufd_ioas_copy',
  ],
  [
    'COPY of length U64_MAX',
    on((f) => f.call('IOMMU_IOAS_COPY', { flags: RW, length: U64_MAX })),
    'EOVERFLOW',
    'length, src_iova or dst_iova is U64_MAX',
    'iommufd_ioas_copy',
  ],
  [
    'COPY without READABLE or WRITEABLE',
    on((f) => f.call('IOMMU_IOAS_COPY', { flags: 0, length: PAGE })),
    'EINVAL',
    'neither READABLE nor WRITEABLE',
    'iommufd_ioas_copy',
  ],
  [
    'COPY of length 0',
    on((f) => {
      const src = mapped(f, 0x10000n, PAGE);
      f.call('IOMMU_IOAS_COPY', {
        flags: RW,
        src_ioas_id: src,
        dst_ioas_id: src,
        src_iova: 0x10000n,
      });
    }),
    'EINVAL',
    'length is zero',
    'iopt_get_pages',
  ],
  [
    'COPY whose source range wraps',
    on((f) => {
      const src = mapped(f, 0x10000n, PAGE);
      f.call('IOMMU_IOAS_COPY', {
        flags: RW,
        src_ioas_id: src,
        dst_ioas_id: src,
        src_iova: 0x10000n,
        length: U64_MAX - 0x1000n,
      });
    }),
    'EOVERFLOW',
    'iova 0x10000 + length 0xffffffffffffefff wraps',
    'iopt_get_pages',
  ],
  [
    'FIXED MAP whose range wraps',
    on((f) =>
      f.call('IOMMU_IOAS_MAP', {
        ioas_id: f.ioas(),
        flags: RW | FIXED,
        user_va: memAt(f, VA, 2n * PAGE),
        length: 2n * PAGE,
        iova: U64_MAX - PAGE + 1n,
      }),
    ),
    'EOVERFLOW',
    'iova 0xfffffffffffff000 + length 0x2000 wraps',
    'iopt_check_iova',
  ],
  [
    'automatic MAP of a length no IOVA can hold',
    on((f) =>
      f.call('IOMMU_IOAS_MAP', {
        ioas_id: f.ioas(),
        flags: RW,
        user_va: PAGE,
        length: U64_MAX - PAGE,
      }),
    ),
    'EOVERFLOW',
    'length 0xffffffffffffefff cannot be placed',
    'iopt_alloc_iova',
  ],
  [
    'COPY with WRITEABLE of a read-only mapping',
    on((f) => {
      const ioas = f.ioas();
      map(f, ioas, memAt(f, VA, PAGE, false), PAGE, { iova: 0x10000n, flags: R });
      f.call('IOMMU_IOAS_COPY', {
        flags: RW,
        src_ioas_id: ioas,
        dst_ioas_id: ioas,
        src_iova: 0x10000n,
        length: PAGE,
      });
    }),
    'EPERM',
    'WRITEABLE asked of read-only pages',
    'iopt_alloc_area_pages',
  ],
  [
    'OPTION HUGE_PAGES off with an area not page aligned',
    on((f) => {
      const ioas = mapped(f, 0x10800n, 0x800n);
      option(f, { option_id: HUGE, op: IOMMU_OPTION_OP.SET, object_id: ioas, val64: 0n });
    }),
    'EADDRINUSE',
    'area at 0x10800 does not suit the new alignment 0x1000',
    'iopt_check_iova_alignment',
  ],
  [
    'OPTION with __reserved set',
    on((f) => option(f, { option_id: HUGE, __reserved: 1 })),
    'EOPNOTSUPP',
    '__reserved is not zero',
    'iommufd_option',
  ],
  [
    'OPTION with an unknown option_id',
    on((f) => option(f, { option_id: 7 })),
    'EOPNOTSUPP',
    'unknown option_id 7',
    'iommufd_option',
  ],
  [
    'OPTION RLIMIT_MODE on an object',
    on((f) => option(f, { option_id: IOMMU_OPTION_ID.RLIMIT_MODE, object_id: f.ioas() })),
    'EOPNOTSUPP',
    'RLIMIT_MODE takes object_id 0',
    'iommufd_option_rlimit_mode',
  ],
  [
    'OPTION RLIMIT_MODE with an unknown op',
    on((f) => option(f, { option_id: IOMMU_OPTION_ID.RLIMIT_MODE, op: 5 })),
    'EOPNOTSUPP',
    'unknown op 5',
    'iommufd_option_rlimit_mode',
  ],
  [
    'OPTION RLIMIT_MODE set to 2',
    on((f) =>
      option(f, { option_id: IOMMU_OPTION_ID.RLIMIT_MODE, op: IOMMU_OPTION_OP.SET, val64: 2n }),
    ),
    'EINVAL',
    'val64 2 is neither 0 nor 1',
    'iommufd_option_rlimit_mode',
  ],
  [
    'OPTION HUGE_PAGES with an unknown op',
    on((f) => option(f, { option_id: HUGE, op: 5, object_id: f.ioas() })),
    'EOPNOTSUPP',
    'unknown op 5',
    'iommufd_ioas_option_huge_pages',
  ],
  [
    'VFIO_IOAS with __reserved set',
    on((f) => f.call('IOMMU_VFIO_IOAS', { op: IOMMU_VFIO_IOAS_OP.GET, __reserved: 1 })),
    'EOPNOTSUPP',
    '__reserved is not zero',
    'iommufd_vfio_ioas',
  ],
  [
    'VFIO_IOAS with an unknown op',
    on((f) => f.call('IOMMU_VFIO_IOAS', { op: 3 })),
    'EOPNOTSUPP',
    'unknown op 3',
    'iommufd_vfio_ioas',
  ],
  [
    'CHANGE_PROCESS with __reserved set',
    on((f) => f.call('IOMMU_IOAS_CHANGE_PROCESS', { __reserved: 1 })),
    'EOPNOTSUPP',
    '__reserved is not zero',
    'iommufd_ioas_change_process',
  ],
  [
    'CHANGE_PROCESS while process memory is mapped',
    on((f) => {
      mapped(f, 0x10000n, PAGE);
      f.call('IOMMU_IOAS_CHANGE_PROCESS', {});
    }),
    'EINVAL',
    'area at 0x10000 maps process memory, not a file',
    'iommufd_ioas_change_process',
  ],
  [
    'DESTROY of an id that is free',
    on((f) => f.call('IOMMU_DESTROY', { id: 5 })),
    'ENOENT',
    'no object with ID 5',
    'iommufd_object_remove',
  ],
  [
    'an ioctl number past the last command goes to VFIO compat',
    on((f) => f.proc.ioctl(f.fd, ioasAllocNumber(f) + 0x40, f.proc.scratch(Uint8Array.of(12)))),
    'ENOTTY',
    'no VFIO container ioctl on an iommufd',
    'iommufd_vfio_ioctl',
  ],
  [
    'a VFIO ioctl /dev/iommu does not serve',
    on((f) => vfio(f, 'VFIO_GROUP_GET_STATUS', new Uint8Array(8))),
    'ENOTTY',
    'no VFIO container ioctl on an iommufd',
    'iommufd_vfio_ioctl',
  ],
  [
    'compat IOMMU_GET_INFO with a short argsz',
    on((f) => vfio(f, 'VFIO_IOMMU_GET_INFO', new Uint8Array(16))),
    'EINVAL',
    'argsz 0 below 16',
    'iommufd_vfio_iommu_get_info',
  ],
  [
    'compat MAP_DMA with a short argsz',
    on((f) => vfio(f, 'VFIO_IOMMU_MAP_DMA', VfioIommuType1DmaMap.encode({ argsz: 8 }))),
    'EINVAL',
    'argsz 8 below 32',
    'iommufd_vfio_map_dma',
  ],
  [
    'compat UNMAP_DMA with a short argsz',
    on((f) => vfio(f, 'VFIO_IOMMU_UNMAP_DMA', VfioIommuType1DmaUnmap.encode({ argsz: 8 }))),
    'EINVAL',
    'argsz 8 below 24',
    'iommufd_vfio_unmap_dma',
  ],
  [
    'compat UNMAP_DMA with an unknown flag',
    on((f) =>
      vfio(f, 'VFIO_IOMMU_UNMAP_DMA', VfioIommuType1DmaUnmap.encode({ argsz: 24, flags: 8 })),
    ),
    'EINVAL',
    'flags 0x8 beyond UNMAP_ALL',
    'iommufd_vfio_unmap_dma',
  ],
];

pin('iommufd-uapi.md §3 (IOAS, OPTION, VFIO_IOAS, dispatch, VFIO compat)', rows);
