/**
 * The reasons of the legacy type1 container's rules (vfio_iommu_type1.c)
 * that reasons.test.ts does not pin: SET_IOMMU of a type the backend
 * advertises but cannot open, group attach conflicts on hosts with a
 * second IOMMU or reserved regions, MAP/UNMAP argument rules under 6.18
 * and 7.2, VADDR updates, `dma_entry_limit` and dirty tracking. Each row
 * goes through the container fd's ioctl as a client calls it.
 */
import assert from 'node:assert/strict';
import {
  VFIO_DMA_MAP_FLAG,
  VFIO_DMA_UNMAP_FLAG,
  VFIO_IOMMU_DIRTY_PAGES_FLAG,
  VfioBitmap,
  VfioIommuType1DirtyBitmap,
  VfioIommuType1DirtyBitmapGet,
  VfioIommuType1DmaUnmap,
  vfioIoctlNumber,
} from '../../src/abi/vfio.ts';
import type { KernelOptions } from '../../src/host/kernel.ts';
import { PAGE, U64_MAX } from '../iommufd/util.ts';
import type { VfioClient } from '../vfio/client.ts';
import { container, i210, MIB, pin, type Row } from './reasons-support.ts';

const { READ, WRITE, VADDR } = VFIO_DMA_MAP_FLAG;
const { GET_DIRTY_BITMAP, ALL } = VFIO_DMA_UNMAP_FLAG;
const { START, GET_BITMAP } = VFIO_IOMMU_DIRTY_PAGES_FLAG;
const V72: KernelOptions = { version: '7.2' };
/** An address above the highest user address (access_ok refuses it). */
const KERNEL_VA = 1n << 63n;

/** `act` on a traced legacy TYPE1v2 container (group 12 set) of a kernel made with `opts`. */
function onType1(
  act: (c: VfioClient, fd: number) => unknown,
  opts: KernelOptions = {},
  type = 3,
): () => VfioClient['proc'] {
  return () => {
    const { c, fd } = container('type1', type, 12, opts);
    act(c, fd);
    return c.proc;
  };
}

/** MAP_DMA of `size` bytes of fresh memory at `iova`, which must succeed. */
function mapped(c: VfioClient, fd: number, iova: bigint, size = MIB): bigint {
  const va = c.mem(size);
  assert.equal(c.mapDma(fd, va, iova, size).ret, 0);
  return va;
}

/** UNMAP_DMA with GET_DIRTY_BITMAP: the 24-byte head, then `bitmap`. */
function unmapBitmap(
  c: VfioClient,
  fd: number,
  iova: bigint,
  size: bigint,
  bitmap: Partial<ReturnType<typeof VfioBitmap.decode>>,
): void {
  const bytes = new Uint8Array(48);
  bytes.set(VfioIommuType1DmaUnmap.encode({ argsz: 48, flags: GET_DIRTY_BITMAP, iova, size }));
  bytes.set(VfioBitmap.encode({ pgsize: PAGE, size: 32n, data: c.mem(PAGE), ...bitmap }), 24);
  c.proc.ioctl(fd, vfioIoctlNumber(c.kernel.abi, 'VFIO_IOMMU_UNMAP_DMA'), c.proc.scratch(bytes));
}

/** DIRTY_PAGES with `flags` (and GET_BITMAP's range, 1 MiB at 0 by default). */
function dirty(
  c: VfioClient,
  fd: number,
  flags: number,
  range: Partial<ReturnType<typeof VfioIommuType1DirtyBitmapGet.decode>> = {},
): number {
  const bytes = new Uint8Array(48);
  bytes.set(VfioIommuType1DirtyBitmap.encode({ argsz: 48, flags }));
  const get = { iova: 0n, size: MIB, bitmap_pgsize: PAGE, bitmap_size: 32n, ...range };
  bytes.set(VfioIommuType1DirtyBitmapGet.encode({ bitmap_data: c.mem(PAGE), ...get }), 8);
  const cmd = vfioIoctlNumber(c.kernel.abi, 'VFIO_IOMMU_DIRTY_PAGES');
  return c.proc.ioctl(fd, cmd, c.proc.scratch(bytes));
}

/** GET_BITMAP with dirty tracking started and 1 MiB mapped at 1 MiB. */
function tracking(c: VfioClient, fd: number): void {
  mapped(c, fd, MIB);
  assert.equal(dirty(c, fd, START), 0);
}

/** Group 13 joins the container after `before` ran on it. */
function join13(opts: KernelOptions, before: (c: VfioClient, fd: number) => unknown) {
  return onType1((c, fd) => {
    before(c, fd);
    c.setContainer(c.open('/dev/vfio/13').ret, fd);
  }, opts);
}

const type1Rows: Row[] = [
  [
    'SET_IOMMU of an extension type1 answers but cannot open (UNMAP_ALL)',
    () => {
      const { c, fd } = container('type1');
      c.ioctl(fd, 'VFIO_SET_IOMMU', 9n);
      return c.proc;
    },
    'EINVAL',
    'type 9 is not TYPE1 or TYPE1v2',
    'vfio_iommu_type1_open',
  ],
  [
    'an ioctl type1 does not have',
    onType1((c, fd) => c.proc.ioctl(fd, 0x3b7f, 0n)),
    'ENOTTY',
    'no type1 ioctl',
    'vfio_iommu_type1_ioctl',
  ],
  [
    'attach of a group whose aperture misses a mapping',
    join13(i210({ unit: { addressWidth: 39 } }), (c, fd) => mapped(c, fd, 1n << 40n)),
    'EINVAL',
    'the aperture conflicts with the IOVA list or a mapping',
    'vfio_iommu_aper_conflict',
  ],
  [
    'attach of a group whose direct-mapped region holds a mapping',
    join13(i210({ resv: { start: 0x8000_0000n, last: 0x800f_ffffn, kind: 'direct' } }), (c, fd) =>
      mapped(c, fd, 0x8000_0000n),
    ),
    'EINVAL',
    'reserved region [0x80000000, 0x800fffff] overlaps a mapping',
    'vfio_iommu_resv_conflict',
  ],
  [
    'attach of a group whose reserved regions leave no IOVA',
    join13(i210({ resv: { start: 0n, last: (1n << 48n) - 1n, kind: 'reserved' } }), () => {}),
    'EINVAL',
    'no valid IOVA left',
    'vfio_iommu_resv_exclude',
  ],
  [
    'MAP_DMA of size 0 (7.2: checked first)',
    onType1((c, fd) => c.mapDma(fd, c.mem(PAGE), 0n, 0n), V72),
    'EINVAL',
    'size 0',
    'vfio_dma_do_map',
  ],
  [
    'MAP_DMA whose iova + size wraps (7.2)',
    onType1((c, fd) => c.mapDma(fd, c.mem(PAGE), U64_MAX - PAGE + 1n, 2n * PAGE), V72),
    'EOVERFLOW',
    'iova or vaddr + size wraps',
    'vfio_dma_do_map',
  ],
  [
    'MAP_DMA whose iova + size wraps (6.18)',
    onType1((c, fd) => c.mapDma(fd, c.mem(PAGE), U64_MAX - PAGE + 1n, 2n * PAGE)),
    'EINVAL',
    'iova or vaddr + size wraps',
    'vfio_dma_do_map',
  ],
  [
    'MAP_DMA VADDR with READ',
    onType1((c, fd) => c.mapDma(fd, c.mem(PAGE), 0n, PAGE, VADDR | READ)),
    'EINVAL',
    'VADDR with READ or WRITE',
    'vfio_dma_do_map',
  ],
  [
    'MAP_DMA VADDR of a mapping whose vaddr is valid',
    onType1((c, fd) => {
      mapped(c, fd, 0n);
      c.mapDma(fd, c.mem(MIB), 0n, MIB, VADDR);
    }),
    'EINVAL',
    'VADDR needs one whole mapping whose vaddr was invalidated',
    'vfio_dma_do_map',
  ],
  [
    'MAP_DMA past dma_entry_limit',
    onType1(
      (c, fd) => {
        mapped(c, fd, 0n, PAGE);
        mapped(c, fd, PAGE, PAGE);
        c.mapDma(fd, c.mem(PAGE), 2n * PAGE, PAGE, READ | WRITE);
      },
      { personality: { type1DmaEntryLimit: 2 } },
    ),
    'ENOSPC',
    'dma_entry_limit reached',
    'vfio_dma_do_map',
  ],
  [
    'UNMAP_DMA iova not page aligned',
    onType1((c, fd) => c.unmapDma(fd, 0x800n, PAGE)),
    'EINVAL',
    'iova 0x800 not aligned to the smallest page 0x1000',
    'vfio_dma_do_unmap',
  ],
  [
    'UNMAP_DMA ALL with a size',
    onType1((c, fd) => c.unmapDma(fd, 0n, PAGE, ALL)),
    'EINVAL',
    'UNMAP_ALL takes iova 0 and size 0',
    'vfio_dma_do_unmap',
  ],
  [
    'UNMAP_DMA of size 0',
    onType1((c, fd) => c.unmapDma(fd, 0n, 0n)),
    'EINVAL',
    'size 0 zero or not aligned to the smallest page 0x1000',
    'vfio_dma_do_unmap',
  ],
  [
    'UNMAP_DMA whose iova + size wraps (6.18)',
    onType1((c, fd) => c.unmapDma(fd, U64_MAX - PAGE + 1n, 2n * PAGE)),
    'EINVAL',
    'iova 0xfffffffffffff000 + size 0x2000 wraps',
    'vfio_dma_do_unmap',
  ],
  [
    'UNMAP_DMA whose iova + size wraps (7.2)',
    onType1((c, fd) => c.unmapDma(fd, U64_MAX - PAGE + 1n, 2n * PAGE), V72),
    'EOVERFLOW',
    'iova 0xfffffffffffff000 + size 0x2000 wraps',
    'vfio_dma_do_unmap',
  ],
  [
    'UNMAP_DMA whose end bisects a mapping (v2)',
    onType1((c, fd) => {
      mapped(c, fd, MIB);
      c.unmapDma(fd, 0n, MIB + PAGE);
    }),
    'EINVAL',
    "the range's end bisects the mapping at 0x100000",
    'vfio_dma_do_unmap',
  ],
  [
    'UNMAP_DMA VADDR of a mapping invalidated already',
    onType1((c, fd) => {
      mapped(c, fd, 0n);
      assert.equal(c.unmapDma(fd, 0n, MIB, VADDR).ret, 0);
      c.unmapDma(fd, 0n, MIB, VADDR);
    }),
    'EINVAL',
    'the vaddr of the mapping at 0 is invalid already',
    'vfio_dma_do_unmap',
  ],
  [
    'UNMAP_DMA GET_DIRTY_BITMAP into kernel memory',
    onType1((c, fd) => unmapBitmap(c, fd, 0n, MIB, { data: KERNEL_VA })),
    'EINVAL',
    'the bitmap is not user memory',
    'vfio_iommu_type1_unmap_dma',
  ],
  [
    'UNMAP_DMA GET_DIRTY_BITMAP with an empty bitmap',
    onType1((c, fd) => unmapBitmap(c, fd, 0n, MIB, { size: 0n })),
    'EINVAL',
    'bitmap size 0 does not fit 256 pages',
    'verify_bitmap_size',
  ],
  [
    'UNMAP_DMA GET_DIRTY_BITMAP while dirty tracking is off',
    onType1((c, fd) => unmapBitmap(c, fd, 0n, MIB, {})),
    'EINVAL',
    'dirty tracking is off or the bitmap page size is not the smallest page',
    'vfio_dma_do_unmap',
  ],
  [
    'DIRTY_PAGES GET_BITMAP whose iova + size wraps (6.18)',
    onType1((c, fd) => dirty(c, fd, GET_BITMAP, { iova: U64_MAX - PAGE + 1n, size: PAGE })),
    'EINVAL',
    'iova + size wraps',
    'vfio_iommu_type1_dirty_pages',
  ],
  [
    'DIRTY_PAGES GET_BITMAP of size 0 (7.2: checked first)',
    onType1((c, fd) => dirty(c, fd, GET_BITMAP, { size: 0n, bitmap_data: KERNEL_VA }), V72),
    'EINVAL',
    'size 0',
    'vfio_iommu_type1_dirty_pages',
  ],
  [
    'DIRTY_PAGES GET_BITMAP whose iova + size - 1 wraps (7.2)',
    onType1((c, fd) => dirty(c, fd, GET_BITMAP, { iova: U64_MAX, size: 2n * PAGE }), V72),
    'EOVERFLOW',
    'iova + size - 1 wraps',
    'vfio_iommu_type1_dirty_pages',
  ],
  [
    'DIRTY_PAGES GET_BITMAP into kernel memory',
    onType1((c, fd) => dirty(c, fd, GET_BITMAP, { bitmap_data: KERNEL_VA })),
    'EINVAL',
    'the bitmap is not user memory',
    'vfio_iommu_type1_dirty_pages',
  ],
  [
    'DIRTY_PAGES GET_BITMAP with a 64 KiB bitmap page',
    onType1((c, fd) => dirty(c, fd, GET_BITMAP, { bitmap_pgsize: 0x10000n })),
    'EINVAL',
    'bitmap page size 0x10000 is not the smallest page 0x1000',
    'vfio_iommu_type1_dirty_pages',
  ],
  [
    'DIRTY_PAGES GET_BITMAP iova not page aligned',
    onType1((c, fd) => dirty(c, fd, GET_BITMAP, { iova: 0x800n })),
    'EINVAL',
    'iova not aligned to the smallest page',
    'vfio_iommu_type1_dirty_pages',
  ],
  [
    'DIRTY_PAGES GET_BITMAP size not page aligned',
    onType1((c, fd) => dirty(c, fd, GET_BITMAP, { size: MIB + 0x800n })),
    'EINVAL',
    'size zero or not aligned to the smallest page',
    'vfio_iommu_type1_dirty_pages',
  ],
  [
    'DIRTY_PAGES GET_BITMAP before START',
    onType1((c, fd) => dirty(c, fd, GET_BITMAP)),
    'EINVAL',
    'dirty tracking is not started',
    'vfio_iommu_type1_dirty_pages',
  ],
  [
    'DIRTY_PAGES GET_BITMAP from inside a mapping',
    onType1((c, fd) => {
      tracking(c, fd);
      dirty(c, fd, GET_BITMAP, { iova: MIB + PAGE, size: PAGE });
    }),
    'EINVAL',
    'iova bisects a mapping',
    'vfio_iommu_type1_dirty_pages',
  ],
  [
    'DIRTY_PAGES GET_BITMAP ending inside a mapping',
    onType1((c, fd) => {
      tracking(c, fd);
      dirty(c, fd, GET_BITMAP, { iova: MIB, size: PAGE });
    }),
    'EINVAL',
    'the range end bisects a mapping',
    'vfio_iommu_type1_dirty_pages',
  ],
];

pin('vfio-container.md (legacy type1 backend)', type1Rows);
