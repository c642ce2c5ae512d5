/**
 * The user bitmap of one IOMMU_HWPT_GET_DIRTY_BITMAP (the kernel's
 * iova_bitmap, drivers/iommu/iommufd/iova_bitmap.c since v6.9): bit n is
 * byte `data + n/8`, mask `1 << n%8`, and stands for the IOVAs from
 * `iova + (n << pgshift)` on, where pgshift is the lowest set bit of
 * page_size (a page_size that is no power of two counts as that bit).
 *
 * The kernel pins the bitmap's pages as IOPTEs are recorded, a window at a
 * time from the page of a record's first bit: a page that cannot be pinned
 * for writing (unmapped, read-only, device memory) drops that record's bits
 * from there to its end, silently — the ioctl still answers 0 — and the
 * next record starts pinning again at its own first bit. The dirty flags
 * were read (and cleared) all the same.
 *
 * `record` collects the dirty ranges in ascending order; `flush` writes
 * them. While every page takes its bits (the usual case), the bits are ORed
 * in with one read and one write per group of neighbouring pages, in
 * numbers; the first page that refuses makes `flush` redo every record
 * exactly as the kernel walks it (ORing twice is harmless).
 *
 * @example
 * const bitmap = new IovaBitmap(mm, data, iova, length, pageSize);
 * bitmap.record(iova, iova + 0xfffn, 0x1000n); // one dirty 4 KiB IOPTE
 * bitmap.flush();
 */
import { Errno } from '../abi/errno.ts';
import { U64_MAX } from '../abi/layout.ts';
import type { Mm } from '../iommu/mm.ts';

/** Bytes of user bitmap read and written in one piece, at most. */
const GROUP_BYTES = 1 << 16;
/** Offsets below this are exact as numbers. */
const NUMBER_SAFE = 1n << 53n;

/** Lowest set bit of a non-zero u64 (the kernel's __ffs). */
function lowestBitIndex(x: bigint): bigint {
  let n = 0n;
  while (((x >> n) & 1n) === 0n) n++;
  return n;
}

export class IovaBitmap {
  private readonly shift: bigint;
  /**
   * Records as (first, last, leafSize) triples, in order, for the exact
   * walk: numbers, first and last counted from iova, while `bits` is kept
   * (leaf sizes are powers of two, exact as numbers); else bigints.
   */
  private readonly records: number[] | bigint[];
  /** The records' bits as merged (first, last) number pairs; undefined when they may not fit numbers. */
  private readonly bits: number[] | undefined;
  /** 2^shift as a number (the bits' IOVA span). */
  private readonly unit: number;

  constructor(
    private readonly mm: Mm,
    private readonly data: bigint,
    private readonly iova: bigint,
    length: bigint,
    pageSize: bigint,
  ) {
    this.shift = lowestBitIndex(pageSize);
    this.unit = 2 ** Number(this.shift);
    // numbers hold every offset from iova and every byte address of the bitmap exactly
    const span = BigInt.asUintN(64, length - 1n);
    const lastByte = span >> (this.shift + 3n);
    this.bits = span < NUMBER_SAFE && data + lastByte <= U64_MAX ? [] : undefined;
    this.records = this.bits ? ([] as number[]) : ([] as bigint[]);
  }

  /**
   * The dirty IOVAs `[first, last]`: whole IOPTEs of `leafSize` bytes on
   * the leafSize grid, except that the first and last may be cut by the
   * request's range (a cut IOPTE counts as starting at `first`).
   * Records come in ascending order.
   */
  record(first: bigint, last: bigint, leafSize: bigint): void {
    const bits = this.bits;
    if (!bits) {
      (this.records as bigint[]).push(first, last, leafSize);
      return;
    }
    const f = Number(first - this.iova);
    const l = Number(last - this.iova);
    (this.records as number[]).push(f, l, Number(leafSize));
    const b0 = Math.floor(f / this.unit);
    const b1 = Math.floor(l / this.unit);
    const n = bits.length;
    if (n > 0 && b0 <= bits[n - 1]! + 1) {
      if (b1 > bits[n - 1]!) bits[n - 1] = b1;
    } else bits.push(b0, b1);
  }

  /** OR the recorded bits into the user's bitmap. Never fails: what the kernel cannot pin is dropped. */
  flush(): void {
    const r = this.records;
    if (this.bits) {
      if (this.orGroups(this.bits)) return;
      for (let i = 0; i < r.length; i += 3) {
        const [f, l, size] = [r[i] as number, r[i + 1] as number, r[i + 2] as number];
        this.recordExactly(this.iova + BigInt(f), this.iova + BigInt(l), BigInt(size));
      }
    } else {
      for (let i = 0; i < r.length; i += 3)
        this.recordExactly(r[i] as bigint, r[i + 1] as bigint, r[i + 2] as bigint);
    }
  }

  /**
   * The fast way: bit runs whose bytes share a page or lie in neighbouring
   * pages are one read and one write (a run longer than GROUP_BYTES, a
   * group at a time). False at the first group some page of which refuses
   * its bits (the groups before it are written).
   */
  private orGroups(bits: readonly number[]): boolean {
    const page = Number(this.mm.pageSize);
    const skew = Number(this.data % this.mm.pageSize);
    const pageOf = (byte: number) => Math.floor((skew + byte) / page);
    // run i from bit `from` on (past its start once a group cut it)
    let i = 0;
    let from = bits[0]!;
    while (i < bits.length) {
      const firstByte = Math.floor(from / 8);
      let lastByte = Math.floor(bits[i + 1]! / 8);
      let j = i + 2;
      if (lastByte - firstByte >= GROUP_BYTES) {
        lastByte = firstByte + GROUP_BYTES - 1;
        j = i;
      } else {
        for (; j < bits.length; j += 2) {
          const nextLast = Math.floor(bits[j + 1]! / 8);
          if (pageOf(Math.floor(bits[j]! / 8)) > pageOf(lastByte) + 1) break;
          if (nextLast - firstByte >= GROUP_BYTES) break;
          lastByte = nextLast;
        }
      }
      const at = this.data + BigInt(firstByte);
      const n = lastByte - firstByte + 1;
      if (this.mm.pfnMaps?.overlaps(at, BigInt(n))) return false;
      try {
        const buf = this.mm.read(at, n);
        setBits(buf, firstByte, from, bits[i + 1]!);
        for (let k = i + 2; k < j; k += 2) setBits(buf, firstByte, bits[k]!, bits[k + 1]!);
        this.mm.write(at, buf);
      } catch (e) {
        if (e instanceof Errno && e.code === 'EFAULT') return false;
        throw e;
      }
      if (j === i) from = (lastByte + 1) * 8;
      else {
        i = j;
        from = bits[j]!;
      }
    }
    return true;
  }

  /**
   * The kernel's walk of one record: bits from its first on, a bitmap page
   * at a time; a page that refuses stops the IOPTE holding that bit, and
   * the next IOPTE starting past that page starts again.
   */
  private recordExactly(first: bigint, last: bigint, leafSize: bigint): void {
    const pageBits = this.mm.pageSize * 8n;
    const b1 = (last - this.iova) >> this.shift;
    let b = (first - this.iova) >> this.shift;
    while (b <= b1) {
      // the bits of this bitmap page: from b to the page's end or b1
      const byte = b >> 3n;
      const addr = BigInt.asUintN(64, this.data + byte);
      const pageEndBit = b + (pageBits - (addr % this.mm.pageSize) * 8n) - (b & 7n) - 1n;
      const e = pageEndBit < b1 ? pageEndBit : b1;
      if (this.orExact(addr, byte, b, e)) {
        b = e + 1n;
        continue;
      }
      // refused: the IOPTE holding b loses its bits to its end; the next one past this page starts over
      // (past `first`, so on the IOPTE grid)
      const resume = this.iova + ((pageEndBit + 1n) << this.shift);
      const nextLeaf = ((resume + leafSize - 1n) / leafSize) * leafSize;
      if (nextLeaf > last) return;
      b = (nextLeaf - this.iova) >> this.shift;
    }
  }

  /** OR bits `[b0, b1]`, all in the page of `addr` (byte `byte` of the bitmap); false if that page refuses. */
  private orExact(addr: bigint, byte: bigint, b0: bigint, b1: bigint): boolean {
    const n = Number((b1 >> 3n) - byte) + 1;
    if (this.mm.pfnMaps?.overlaps(addr, BigInt(n))) return false;
    try {
      const buf = this.mm.read(addr, n);
      setRange(buf, Number(b0 - byte * 8n), Number(b1 - byte * 8n));
      this.mm.write(addr, buf);
      return true;
    } catch (e) {
      if (e instanceof Errno && e.code === 'EFAULT') return false;
      throw e;
    }
  }
}

/** Set bits `[b0, b1]` of the bitmap in `buf`, which holds its bytes from `firstByte` on. */
function setBits(buf: Uint8Array, firstByte: number, b0: number, b1: number): void {
  const from = Math.max(b0, firstByte * 8) - firstByte * 8;
  const to = Math.min(b1, (firstByte + buf.length) * 8 - 1) - firstByte * 8;
  setRange(buf, from, to);
}

/** Set bits `[from, to]` of `buf` (bit n: byte n/8, mask 1 << n%8). */
function setRange(buf: Uint8Array, from: number, to: number): void {
  if (from > to) return;
  const first = from >> 3;
  const last = to >> 3;
  if (first === last) {
    buf[first]! |= (0xff << (from & 7)) & (0xff >> (7 - (to & 7)));
    return;
  }
  buf[first]! |= (0xff << (from & 7)) & 0xff;
  buf.fill(0xff, first + 1, last);
  buf[last]! |= 0xff >> (7 - (to & 7));
}
