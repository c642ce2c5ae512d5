import { fail } from '../abi/errno.ts';
import type { PhysMemory } from '../iommu/phys-memory.ts';
import { type Range, SortedRanges } from '../util/sorted-ranges.ts';

const U64_END = 1n << 64n;

/**
 * The bytes of a foreign allocation, which live outside PhysRam: a real
 * process's memory or a file (src/host/foreign-memory.ts). Calls stay
 * within one allocation; addresses are physical.
 */
export interface ForeignBacking {
  /**
   * The current bytes of `[phys, phys+length)`, in an array the caller
   * keeps (a shorter one reads as zeros after it); EFAULT when they cannot be reached.
   */
  read(phys: bigint, length: number): Uint8Array;
  /** Store `data` at `phys`; EFAULT when it cannot be reached (a prefix may have been stored). */
  write(phys: bigint, data: Uint8Array): void;
  /**
   * PhysMemory.copy within this allocation (`phys` exact, below 2^53): true
   * when done, false when only read/write can (a prefix may have been copied).
   */
  copy?(phys: number, buf: Uint8Array, write: boolean): boolean;
}

/** An allocated physical range. `freed` ones are kept only for their pinned pages. */
interface Alloc extends Range {
  compound: boolean;
  freed: boolean;
  /** Set for foreign ranges: their bytes are read and written there, not stored here. */
  backing: ForeignBacking | undefined;
}

/** An allocation's bounds `[start, end)` as Numbers, and its backing if foreign (PhysRam.copy). */
interface HotAlloc {
  start: number;
  end: number;
  backing: ForeignBacking | undefined;
}

/** Pages `[start, last]` (page-aligned byte addresses) holding `count` long-term pins each. */
interface PinSeg extends Range {
  count: number;
}

export interface PhysRamOptions {
  /** PAGE_SIZE: a power of two of at least 4 KiB; default 4096. */
  pageSize?: bigint;
  /** Huge page size for hugetlb objects: a power of two ≥ pageSize; default 2 MiB. */
  hugePageSize?: bigint;
  /** First physical address handed out; default 4 GiB. */
  base?: bigint;
}

/**
 * A synthetic physical address space. `alloc` hands out fresh ranges from a
 * bump pointer (never reused, one guard page between allocations so an
 * overrun faults); page contents are stored sparsely, a page's bytes only
 * once something non-zero is written to it. Pins are a sorted set of
 * `[start, last]` segments with one count each, so pinning 1 TiB costs one
 * segment. Freeing a range whose pages are still pinned keeps those pages
 * (readable, writable, pinned) until their last unpin, as a folio outlives
 * its page-cache entry while a pin holds it.
 *
 * A foreign allocation (`backing`) is physical address space whose bytes
 * live elsewhere — a real process's pages: reads and writes go to its
 * backing, pins are counted here like any page's. It does not count as
 * allocated memory, however large.
 *
 * @example
 * const ram = new PhysRam();
 * const phys = ram.alloc(0x3000n);
 * ram.write(phys + 0xffen, Uint8Array.of(1, 2, 3, 4));
 * ram.pin(phys, 0x3000n); // pinCount(phys + 0x2000n) === 1
 */
export class PhysRam implements PhysMemory {
  readonly pageSize: bigint;
  readonly hugePageSize: bigint;
  private readonly pageShift: bigint;
  private readonly pageBytes: number;
  private next: bigint;
  private readonly allocs = new SortedRanges<Alloc>();
  private readonly pins = new SortedRanges<PinSeg>();
  /** Page number → contents, for pages something non-zero was written to. */
  private readonly pages = new Map<number, Uint8Array>();
  private pinned = 0n;
  private allocated = 0n;
  /** Set by the first foreign allocation; until then reads and writes skip the backing lookup. */
  private hasForeign = false;
  /** The allocation `copy` used last; dropped whenever an allocation changes. */
  private hot: HotAlloc | undefined;
  /** See PhysMemory.beforeDma. */
  beforeDma: (() => void) | undefined;

  constructor(opts: PhysRamOptions = {}) {
    this.pageSize = opts.pageSize ?? 0x1000n;
    this.hugePageSize = opts.hugePageSize ?? 0x20_0000n;
    if (!isPow2(this.pageSize) || this.pageSize < 0x1000n)
      fail('EINVAL', 'bad page size', 'uiommu_phys_ram');
    if (!isPow2(this.hugePageSize) || this.hugePageSize < this.pageSize) {
      fail('EINVAL', 'bad huge page size', 'uiommu_phys_ram');
    }
    this.pageShift = BigInt(this.pageSize.toString(2).length - 1);
    this.pageBytes = Number(this.pageSize);
    this.next = alignUp(opts.base ?? 0x1_0000_0000n, this.pageSize);
  }

  /**
   * Allocate `length` bytes (rounded up to pages) of fresh physical memory,
   * aligned to `align` (a power of two; at least a page). `compound` marks
   * the pages as part of huge folios (hugetlb); `backing` makes it a
   * foreign range whose bytes live there. EINVAL on a zero length or bad
   * alignment, ENOMEM when the u64 space is exhausted.
   */
  alloc(
    length: bigint,
    opts: { align?: bigint; compound?: boolean; backing?: ForeignBacking } = {},
  ): bigint {
    const align = opts.align ?? this.pageSize;
    if (length <= 0n) fail('EINVAL', 'zero-length physical allocation', 'uiommu_phys_ram');
    if (!isPow2(align)) fail('EINVAL', 'alignment is not a power of two', 'uiommu_phys_ram');
    const len = alignUp(length, this.pageSize);
    const start = alignUp(this.next, align > this.pageSize ? align : this.pageSize);
    if (start + len > U64_END)
      fail('ENOMEM', 'physical address space exhausted', 'uiommu_phys_ram');
    this.next = start + len + this.pageSize;
    this.allocs.insert({
      start,
      last: start + len - 1n,
      compound: opts.compound ?? false,
      freed: false,
      backing: opts.backing,
    });
    if (opts.backing) this.hasForeign = true;
    else this.allocated += len;
    return start;
  }

  /**
   * Release `[phys, phys+length)` (length rounded up to pages), which must lie
   * in live allocations (EINVAL otherwise). Unpinned pages go at once, their
   * contents dropped; pinned ones stay until their last unpin.
   */
  free(phys: bigint, length: bigint): void {
    if (length <= 0n || (phys & (this.pageSize - 1n)) !== 0n)
      fail('EINVAL', 'bad range to free', 'uiommu_phys_ram');
    const last = alignUp(phys + length, this.pageSize) - 1n;
    if (!covers(this.allocs, phys, last, (a) => !a.freed))
      fail('EINVAL', 'freeing unallocated memory', 'uiommu_phys_ram');
    this.hot = undefined;
    this.splitAlloc(phys);
    this.splitAlloc(last + 1n);
    for (const a of this.allocs.overlapping(phys, last)) a.freed = true;
    this.reap(phys, last);
  }

  /**
   * Read `length` bytes; never-written bytes read as zero. EFAULT if some
   * byte is not allocated, or its foreign backing cannot reach it.
   */
  read(phys: bigint, length: number): Uint8Array {
    const whole = this.foreignHolding(phys, length);
    if (whole) {
      const bytes = whole.read(phys, length);
      if (bytes.length === length) return bytes;
      const out = new Uint8Array(length);
      out.set(bytes);
      return out;
    }
    this.checkBacked(phys, BigInt(length));
    const out = new Uint8Array(length);
    if (this.hasForeign && length > 0) {
      this.eachPiece(phys, length, (a, at, pos, n) => {
        if (a.backing) out.set(a.backing.read(at, n), pos);
        else this.readRam(at, out.subarray(pos, pos + n));
      });
      return out;
    }
    this.readRam(phys, out);
    return out;
  }

  /** Copy the bytes of `[phys, phys+out.length)` into `out` (zeros for pages never written). */
  private readRam(phys: bigint, out: Uint8Array): void {
    const length = out.length;
    let pn = Number(phys >> this.pageShift);
    let off = Number(phys & (this.pageSize - 1n));
    for (let pos = 0; pos < length; pn++, off = 0) {
      const n = Math.min(length - pos, this.pageBytes - off);
      const page = this.pages.get(pn);
      if (page) out.set(page.subarray(off, off + n), pos);
      else out.fill(0, pos, pos + n);
      pos += n;
    }
  }

  /**
   * Write `data`; EFAULT (nothing written) if some byte is not allocated.
   * A foreign backing that cannot reach its bytes also fails with EFAULT,
   * after the pieces before it were written.
   */
  write(phys: bigint, data: Uint8Array): void {
    const whole = this.foreignHolding(phys, data.length);
    if (whole) {
      whole.write(phys, data);
      return;
    }
    this.checkBacked(phys, BigInt(data.length));
    if (this.hasForeign && data.length > 0) {
      this.eachPiece(phys, data.length, (a, at, pos, n) => {
        const piece = data.subarray(pos, pos + n);
        if (a.backing) a.backing.write(at, piece);
        else this.writeRam(at, piece);
      });
      return;
    }
    this.writeRam(phys, data);
  }

  /**
   * PhysMemory.copy within one allocation: its own pages, or a foreign
   * one's whose backing copies directly (a client's mapped shmem file). The
   * allocation found last is kept, so a run of small copies makes no lookup.
   */
  copy(phys: number, buf: Uint8Array, write: boolean): boolean {
    const end = phys + buf.length;
    let h = this.hot;
    if (!h || phys < h.start || end > h.end) {
      if (buf.length === 0 || phys < 0 || end > Number.MAX_SAFE_INTEGER) return false;
      const a = this.allocs.find(BigInt(phys));
      if (!a || Number(a.last) + 1 < end) return false;
      h = { start: Number(a.start), end: Number(a.last) + 1, backing: a.backing };
      this.hot = h;
    }
    if (h.backing) return h.backing.copy?.(phys, buf, write) ?? false;
    if (write) this.writeRam(BigInt(phys), buf);
    else this.readRam(BigInt(phys), buf);
    return true;
  }

  /** Store `data` at `phys` in the sparse page map. */
  private writeRam(phys: bigint, data: Uint8Array): void {
    let pn = Number(phys >> this.pageShift);
    let off = Number(phys & (this.pageSize - 1n));
    for (let pos = 0; pos < data.length; pn++, off = 0) {
      const chunk = data.subarray(pos, pos + Math.min(data.length - pos, this.pageBytes - off));
      pos += chunk.length;
      let page = this.pages.get(pn);
      if (!page) {
        if (isZero(chunk)) continue;
        page = new Uint8Array(this.pageBytes);
        this.pages.set(pn, page);
      }
      page.set(chunk, off);
    }
  }

  /** Pin every page touching `[phys, phys+length)`; EFAULT (nothing pinned) if one is not allocated. */
  pin(phys: bigint, length: bigint): void {
    if (length === 0n) return;
    const [start, last] = this.pageSpan(phys, length);
    if (!covers(this.allocs, start, last))
      fail('EFAULT', `pin of unallocated phys ${hex(phys)}`, 'uiommu_phys_ram');
    this.adjustPins(start, last, 1);
  }

  /** Unpin every page touching `[phys, phys+length)`; throws (a caller bug) if one is not pinned. */
  unpin(phys: bigint, length: bigint): void {
    if (length === 0n) return;
    const [start, last] = this.pageSpan(phys, length);
    if (!covers(this.pins, start, last)) throw new Error(`unpin of unpinned phys ${hex(phys)}`);
    if (this.adjustPins(start, last, -1)) this.reap(start, last);
  }

  pinCount(phys: bigint): number {
    return this.pins.find(phys)?.count ?? 0;
  }

  /** True when some page touching `[phys, phys+length)` holds a pin. */
  pinnedIn(phys: bigint, length: bigint): boolean {
    if (length <= 0n) return false;
    return this.pins.intersects(phys, phys + length - 1n);
  }

  isCompound(phys: bigint): boolean {
    return this.allocs.find(phys)?.compound ?? false;
  }

  /** Sum over all pages of their pin counts. */
  pinnedPages(): bigint {
    return this.pinned;
  }

  /** Number of pin segments (runs of pages with equal non-zero counts); stays small for big pins. */
  get pinRanges(): number {
    return this.pins.size;
  }

  /** Bytes allocated and not yet released (freed-but-pinned pages included). */
  get allocatedBytes(): bigint {
    return this.allocated;
  }

  /** Pages whose contents are materialised. */
  get storedPages(): number {
    return this.pages.size;
  }

  /**
   * The backing of the one foreign allocation holding all of `[phys,
   * phys+length)` (length > 0), if one does: read and write go straight to
   * it (the common case, one lookup instead of a cover check and a split).
   */
  private foreignHolding(phys: bigint, length: number): ForeignBacking | undefined {
    if (!this.hasForeign || length <= 0) return undefined;
    const a = this.allocs.find(phys);
    return a?.backing && phys + BigInt(length) - 1n <= a.last ? a.backing : undefined;
  }

  private checkBacked(phys: bigint, length: bigint): void {
    if (length === 0n) return;
    if (phys < 0n || phys + length > U64_END || !covers(this.allocs, phys, phys + length - 1n)) {
      fail('EFAULT', `phys ${hex(phys)}+${hex(length)} is not backed`, 'uiommu_phys_ram');
    }
  }

  /** The page-aligned `[start, last]` touched by `[phys, phys+length)`; EFAULT past u64. */
  private pageSpan(phys: bigint, length: bigint): [bigint, bigint] {
    if (phys < 0n || length < 0n || phys + length > U64_END)
      fail('EFAULT', 'phys range wraps', 'uiommu_phys_ram');
    return [phys & ~(this.pageSize - 1n), alignUp(phys + length, this.pageSize) - 1n];
  }

  /** Call `fn` for each piece of `[phys, phys+length)` within one allocation (all allocated). */
  private eachPiece(
    phys: bigint,
    length: number,
    fn: (a: Alloc, at: bigint, pos: number, n: number) => void,
  ): void {
    const end = phys + BigInt(length);
    for (const a of this.allocs.overlapping(phys, end - 1n)) {
      const s = a.start > phys ? a.start : phys;
      const e = a.last + 1n < end ? a.last + 1n : end;
      fn(a, s, Number(s - phys), Number(e - s));
    }
  }

  /** Split the allocation containing `addr` so that one starts there. */
  private splitAlloc(addr: bigint): void {
    const a = this.allocs.find(addr);
    if (!a || a.start === addr) return;
    const right = { ...a, start: addr };
    a.last = addr - 1n;
    this.allocs.insert(right);
  }

  /**
   * Add `delta` to the pin count of every page in `[start, last]` (all
   * pinned already when negative), keeping segments maximal. Returns true
   * when some page's count dropped to zero.
   */
  private adjustPins(start: bigint, last: bigint, delta: 1 | -1): boolean {
    const pins = this.pins;
    for (const at of [start, last + 1n]) {
      const seg = pins.find(at);
      if (seg && seg.start < at) {
        const right = { start: at, last: seg.last, count: seg.count };
        seg.last = at - 1n;
        pins.insert(right);
      }
    }
    let released = false;
    const fresh: PinSeg[] = [];
    let cursor = start;
    for (const seg of pins.overlapping(start, last)) {
      if (seg.start > cursor) fresh.push({ start: cursor, last: seg.start - 1n, count: 1 });
      seg.count += delta;
      if (seg.count === 0) {
        pins.delete(seg);
        released = true;
      }
      cursor = seg.last + 1n;
    }
    if (cursor <= last) fresh.push({ start: cursor, last, count: 1 });
    for (const seg of fresh) pins.insert(seg);
    this.pinned += BigInt(delta) * ((last - start + 1n) >> this.pageShift);
    let prev: PinSeg | undefined;
    for (const seg of pins.overlapping(start > 0n ? start - 1n : 0n, last + 1n)) {
      if (prev && prev.last + 1n === seg.start && prev.count === seg.count) {
        prev.last = seg.last;
        pins.delete(seg);
      } else prev = seg;
    }
    return released;
  }

  /** Release the unpinned pages of freed allocations within `[start, last]`. */
  private reap(start: bigint, last: bigint): void {
    this.hot = undefined;
    for (const a of this.allocs.overlapping(start, last)) {
      if (!a.freed) continue;
      const holes = gaps(
        this.pins,
        a.start > start ? a.start : start,
        a.last < last ? a.last : last,
      );
      if (holes.length === 0) continue;
      this.allocs.delete(a);
      let cursor = a.start;
      for (const h of holes) {
        if (h.start > cursor) this.allocs.insert({ ...a, start: cursor, last: h.start - 1n });
        if (!a.backing) {
          this.dropPages(h.start, h.last);
          this.allocated -= h.last - h.start + 1n;
        }
        cursor = h.last + 1n;
      }
      if (cursor <= a.last) this.allocs.insert({ ...a, start: cursor });
    }
  }

  /** Forget the contents of pages `[start, last]`. */
  private dropPages(start: bigint, last: bigint): void {
    const first = Number(start >> this.pageShift);
    const end = Number(last >> this.pageShift);
    if (end - first < this.pages.size) {
      for (let pn = first; pn <= end; pn++) this.pages.delete(pn);
    } else {
      for (const pn of this.pages.keys()) if (pn >= first && pn <= end) this.pages.delete(pn);
    }
  }
}

/** True when the items of `set` cover `[start, last]` without a gap, each passing `ok`. */
function covers<T extends Range>(
  set: SortedRanges<T>,
  start: bigint,
  last: bigint,
  ok: (item: T) => boolean = () => true,
): boolean {
  let cursor = start;
  for (const item of set.from(start)) {
    if (item.start > cursor || !ok(item)) return false;
    if (item.last >= last) return true;
    cursor = item.last + 1n;
  }
  return false;
}

/** The sub-ranges of `[start, last]` that no item of `set` covers, ascending. */
function gaps<T extends Range>(set: SortedRanges<T>, start: bigint, last: bigint): Range[] {
  const out: Range[] = [];
  let cursor = start;
  for (const item of set.overlapping(start, last)) {
    if (item.start > cursor) out.push({ start: cursor, last: item.start - 1n });
    cursor = item.last + 1n;
  }
  if (cursor <= last) out.push({ start: cursor, last });
  return out;
}

function isPow2(x: bigint): boolean {
  return x > 0n && (x & (x - 1n)) === 0n;
}

function alignUp(x: bigint, align: bigint): bigint {
  return (x + align - 1n) & ~(align - 1n);
}

function isZero(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

function hex(x: bigint): string {
  return `0x${x.toString(16)}`;
}
