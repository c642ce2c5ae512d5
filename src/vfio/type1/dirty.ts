import { fail } from '../../abi/errno.ts';
import type { Mm } from '../../iommu/mm.ts';
import type { VfioDma } from './dma.ts';
import { DIRTY_BITMAP_SIZE_MAX } from './info.ts';

/**
 * The type1 dirty-page bitmaps (VFIO_IOMMU_DIRTY_PAGES and UNMAP_DMA with
 * GET_DIRTY_BITMAP). Type1 never reads IOMMU dirty bits: a mapping that is
 * pinned and mapped while some IOMMU-backed group is attached reports every
 * page dirty; otherwise only pages pinned through the mdev interface (none
 * in this model) or marked by populate_bitmap_full are reported. So a
 * mapping's bitmap is all ones or all zeros and costs O(1).
 */

/** TASK_SIZE_MAX of x86-64 (4-level paging): access_ok() fails for ranges above it. */
export const TASK_SIZE_MAX = (1n << 47n) - 4096n;

/** DIRTY_BITMAP_BYTES(n): bytes of a bitmap of n bits rounded up to u64 words. */
export function dirtyBitmapBytes(bits: bigint): bigint {
  return ((bits + 63n) / 64n) * 8n;
}

/** __ffs(): index of the lowest set bit (0 for 0, where the kernel's is undefined). */
export function ffs(x: bigint): bigint {
  if (x === 0n) return 0n;
  let n = 0n;
  while (((x >> n) & 1n) === 0n) n++;
  return n;
}

/** access_ok(): the user range lies below TASK_SIZE_MAX. */
export function accessOk(addr: bigint, size: bigint): boolean {
  return size <= TASK_SIZE_MAX && addr <= TASK_SIZE_MAX - size;
}

/** verify_bitmap_size(): EINVAL for 0 pages, an empty or oversized bitmap, or one too small. */
export function verifyBitmapSize(npages: bigint, bitmapSize: bigint): void {
  if (
    npages === 0n ||
    bitmapSize === 0n ||
    bitmapSize > DIRTY_BITMAP_SIZE_MAX ||
    bitmapSize < dirtyBitmapBytes(npages)
  ) {
    fail('EINVAL', `bitmap size ${bitmapSize} does not fit ${npages} pages`, 'verify_bitmap_size');
  }
}

const CHUNK = 1 << 16;

/**
 * update_user_bitmap(): write `dma`'s bits into the user bitmap whose bit 0
 * is `baseIova`. The words it covers are overwritten: the bits below the
 * mapping's first bit in the first word keep the user's value, the
 * mapping's bits are `dirty`, the bits after it in the last word become 0.
 * EFAULT if the user bitmap is not accessible.
 */
export function updateUserBitmap(
  mm: Mm,
  bitmap: bigint,
  dma: VfioDma,
  baseIova: bigint,
  pgsize: bigint,
  dirty: boolean,
): void {
  const shiftBits = ffs(pgsize);
  const nbits = dma.size >> shiftBits;
  const bitOffset = (dma.start - baseIova) >> shiftBits;
  const copyOffset = bitOffset / 64n;
  const shift = bitOffset % 64n;
  const at = bitmap + copyOffset * 8n;
  const total = dirtyBitmapBytes(nbits + shift);
  let leftover = 0n;
  if (shift !== 0n) {
    const w = mm.read(at, 8);
    leftover = new DataView(w.buffer, w.byteOffset).getBigUint64(0, true) & ((1n << shift) - 1n);
  }
  // bit i of the written area is set when i < shift (from leftover) or shift <= i < shift + nbits (dirty)
  const end = shift + nbits;
  for (let off = 0n; off < total; off += BigInt(CHUNK)) {
    const len = total - off < BigInt(CHUNK) ? Number(total - off) : CHUNK;
    const buf = new Uint8Array(len);
    const firstBit = off * 8n;
    const lastBit = firstBit + BigInt(len) * 8n;
    if (dirty && end > firstBit && shift < lastBit) {
      const from = shift > firstBit ? shift - firstBit : 0n;
      const to = (end < lastBit ? end : lastBit) - firstBit;
      setBits(buf, Number(from), Number(to));
    }
    if (off === 0n && shift !== 0n) {
      const view = new DataView(buf.buffer);
      view.setBigUint64(0, view.getBigUint64(0, true) | leftover, true);
    }
    mm.write(at + off, buf);
  }
}

/** Set bits [from, to) of a little-endian byte bitmap. */
function setBits(buf: Uint8Array, from: number, to: number): void {
  let i = from;
  while (i < to && i % 8 !== 0) {
    buf[i >> 3]! |= 1 << (i & 7);
    i++;
  }
  const fullEnd = to - (to % 8);
  if (i < fullEnd) {
    buf.fill(0xff, i >> 3, fullEnd >> 3);
    i = fullEnd;
  }
  for (; i < to; i++) buf[i >> 3]! |= 1 << (i & 7);
}
