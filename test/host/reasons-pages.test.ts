/**
 * Reasons of the rules below the IOAS ioctls (iommufd-uapi.md §3.4–§3.7, §4,
 * §5): the io-pagetable's area pages (file and dma-buf sources, alignment of
 * the page offset, reserved ranges), area splits of VFIO compat TYPE1
 * unmaps, and the in-kernel access API (iommufd_access_pin_pages and
 * iommufd_access_rw, driven through IOMMU_TEST_CMD's access, as the kernel
 * selftest does). Each row triggers its rule through a syscall and pins
 * errno, reason and where.
 */

import { IOMMU_VFIO_IOAS_OP } from '../../src/abi/iommufd.ts';
import {
  MOCK_APERTURE_START as BASE,
  IOMMU_TEST_OP,
  iommuTestCmdLayout,
  iommuTestCmdNumber,
  MOCK_FLAGS_ACCESS,
} from '../../src/abi/iommufd-test.ts';
import { VFIO_EXTENSION, VfioIommuType1DmaUnmap, vfioIoctlNumber } from '../../src/abi/vfio.ts';
import { LINUX_7_2 } from '../../src/host/versions.ts';
import { mockDomain, ok, tc } from '../iommufd/mock.ts';
import { FIXED, map, memAt, PAGE, R, RW, U64_MAX } from '../iommufd/util.ts';
import type { Fixture } from '../support.ts';
import { onSelftest as on, pin, type Row, VA } from './reasons-support.ts';

/** An IOAS with one page of `va` (read-only unless `write`) mapped at IOVA `BASE`, and a pinning access on it. */
function accessOn(f: Fixture, write = true) {
  const ioas = f.ioas();
  map(f, ioas, memAt(f, VA, 2n * PAGE, write), 2n * PAGE, { iova: BASE, flags: write ? RW : R });
  const access = ok(tc(f, 'CREATE_ACCESS', { id: ioas, flags: 1 })).out_access_fd as number;
  return { ioas, access };
}
const pinPages = (f: Fixture, access: number, v: Record<string, number | bigint>) =>
  tc(f, 'ACCESS_PAGES', { id: access, iova: BASE, length: PAGE, ...v });
const rw = (f: Fixture, access: number, v: Record<string, number | bigint>) =>
  tc(f, 'ACCESS_RW', { id: access, iova: BASE, length: PAGE, uptr: f.mem(PAGE), ...v });

/** The compat IOAS of `f` with TYPE1 set (large pages off), one 2-page mapping at BASE; UNMAP_DMA of [iova, iova+size). */
function type1Cut(f: Fixture, iova: bigint, size: bigint, before?: (ioas: number) => void) {
  const ioas = f.ioas();
  f.call('IOMMU_VFIO_IOAS', { op: IOMMU_VFIO_IOAS_OP.SET, ioas_id: ioas });
  const nr = (name: 'VFIO_SET_IOMMU' | 'VFIO_IOMMU_UNMAP_DMA') =>
    vfioIoctlNumber(f.kernel.abi, name);
  f.proc.ioctl(f.fd, nr('VFIO_SET_IOMMU'), BigInt(VFIO_EXTENSION.TYPE1_IOMMU));
  map(f, ioas, memAt(f, VA, 2n * PAGE), 2n * PAGE, { iova: BASE });
  before?.(ioas);
  const arg = f.proc.scratch(VfioIommuType1DmaUnmap.encode({ argsz: 24, iova, size }));
  f.proc.ioctl(f.fd, nr('VFIO_IOMMU_UNMAP_DMA'), arg);
}

/** A memfd of `size` bytes. */
const memfd = (f: Fixture, size: bigint) => f.proc.memfd(size);
const mapFile = (f: Fixture, ioas: number, v: Record<string, number | bigint>) =>
  f.call('IOMMU_IOAS_MAP_FILE', { ioas_id: ioas, flags: RW, start: 0n, length: PAGE, ...v });

/** DMABUF_GET of one page: the new dma-buf fd. */
function dmabuf(f: Fixture): number {
  const op = IOMMU_TEST_OP.DMABUF_GET;
  const nr = iommuTestCmdNumber(f.kernel.abi);
  return f.proc.call(f.fd, nr, iommuTestCmdLayout(op)!, { op, length: Number(PAGE) }).ret;
}

const rows: Row[] = [
  [
    'access pin of length 0',
    on((f) => pinPages(f, accessOn(f).access, { length: 0n })),
    'EINVAL',
    'length 0',
    'iommufd_access_pin_pages',
  ],
  [
    'access pin whose range passes U64_MAX',
    on((f) => pinPages(f, accessOn(f).access, { iova: U64_MAX, length: 2n })),
    'EOVERFLOW',
    'iova + length - 1 passes U64_MAX',
    'iommufd_access_pin_pages',
  ],
  [
    'access pin over a hole',
    on((f) => pinPages(f, accessOn(f).access, { length: 3n * PAGE })),
    'ENOENT',
    'hole in the IOVA range at 0x1002000',
    'iommufd_access_pin_pages',
  ],
  [
    'access pin starting inside a page',
    on((f) => pinPages(f, accessOn(f).access, { iova: BASE + 0x800n, length: 0x100n })),
    'EINVAL',
    'area piece not page aligned',
    'iommufd_access_pin_pages',
  ],
  [
    'access pin for write of a read-only area',
    on((f) => pinPages(f, accessOn(f, false).access, { flags: MOCK_FLAGS_ACCESS.WRITE })),
    'EPERM',
    'the area lacks the permission asked',
    'iommufd_access_pin_pages',
  ],
  [
    'access rw of length 0',
    on((f) => rw(f, accessOn(f).access, { length: 0n })),
    'EINVAL',
    'length 0',
    'iommufd_access_rw',
  ],
  [
    'access rw whose range passes U64_MAX',
    on((f) => rw(f, accessOn(f).access, { iova: U64_MAX, length: 2n })),
    'EOVERFLOW',
    'iova + length - 1 passes U64_MAX',
    'iommufd_access_rw',
  ],
  [
    'access rw over a hole',
    on((f) => rw(f, accessOn(f).access, { length: 3n * PAGE })),
    'ENOENT',
    'hole in the IOVA range at 0x1002000',
    'iommufd_access_rw',
  ],
  [
    'access write of a read-only area',
    on((f) => rw(f, accessOn(f, false).access, { flags: 1 })),
    'EPERM',
    'the area lacks the permission asked',
    'iommufd_access_rw',
  ],
  [
    'compat TYPE1 unmap cutting a mapping off the IOAS alignment',
    on((f) => type1Cut(f, BASE + 0x800n, PAGE)),
    'EINVAL',
    'split at 0x1001800 not aligned to 0x1000',
    'iopt_area_split',
  ],
  [
    'compat TYPE1 unmap cutting a mapping an access pins',
    on((f) =>
      type1Cut(f, BASE, PAGE, (ioas) => {
        const access = ok(tc(f, 'CREATE_ACCESS', { id: ioas, flags: 1 })).out_access_fd as number;
        ok(pinPages(f, access, { length: 2n * PAGE }));
      }),
    ),
    'EINVAL',
    'an access pins the mapping being split',
    'iopt_area_split',
  ],
  [
    'FIXED MAP of memory whose page offset breaks the IOAS alignment',
    on((f) => {
      const ioas = f.ioas();
      mockDomain(f, ioas);
      f.call('IOMMU_IOAS_MAP', {
        ioas_id: ioas,
        flags: RW | FIXED,
        user_va: memAt(f, VA, 2n * PAGE) + 0x400n,
        length: PAGE,
        iova: BASE,
      });
    }),
    'EINVAL',
    'page offset 0x400 not aligned to the IOAS alignment 0x800',
    'iopt_alloc_area_pages',
  ],
  [
    'a reserved range over a mapping',
    on((f) => {
      const ioas = f.ioas();
      map(f, ioas, memAt(f, VA, PAGE), PAGE, { iova: BASE });
      tc(f, 'ADD_RESERVED', { id: ioas, start: BASE, length: PAGE });
    }),
    'EADDRINUSE',
    '[0x1000000, 0x1000fff] holds a mapping or an allowed range',
    'iopt_reserve_iova',
  ],
  [
    'MAP_FILE of /dev/iommu into an IOAS with a domain',
    on((f) => {
      const ioas = f.ioas();
      mockDomain(f, ioas);
      mapFile(f, ioas, { fd: f.fd });
    }),
    'EINVAL',
    `fd 3 is neither a memfd nor hugetlbfs`,
    'memfd_pin_folios',
  ],
  [
    "MAP_FILE past a memfd's size into an IOAS with a domain",
    on((f) => {
      const ioas = f.ioas();
      mockDomain(f, ioas);
      mapFile(f, ioas, { fd: memfd(f, PAGE), length: 2n * PAGE });
    }),
    'EINVAL',
    "pinning 0 + 0x2000 runs past the file's size 0x1000",
    'memfd_pin_folios',
  ],
  [
    "MAP_FILE past a dma-buf's size (7.2)",
    on((f) => mapFile(f, f.ioas(), { fd: dmabuf(f), length: 2n * PAGE }), LINUX_7_2),
    'EINVAL',
    "start + length past the dma-buf's size 0x1000",
    'iopt_alloc_dmabuf_pages',
  ],
];

pin('iommufd-uapi.md §3.4–§5 (area pages, splits, file and dma-buf maps, the access API)', rows);
