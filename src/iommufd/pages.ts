import { Errno, fail } from '../abi/errno.ts';
import { faultPoint } from '../iommu/fault-inject.ts';
import type { Mm, PhysRun } from '../iommu/mm.ts';
import type { PhysMemory } from '../iommu/phys-memory.ts';
import type { DmaBufExporter, PagesSource } from '../kernel/file.ts';
import type { PinAccount } from '../kernel/pin-account.ts';
import { SortedRanges } from '../util/sorted-ranges.ts';

/** The largest bigint a Number holds exactly. */
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** IOMMUFD_ACCESS_RW_* flags of IommufdAccess.rw() (the selftest's MOCK_ACCESS_RW_* share the values). */
export const ACCESS_RW = { WRITE: 1, KTHREAD: 2, SLOW_PATH: 4 } as const;

/** A run of pinned pages `[start, last]` (page indexes) with linear phys and one user count. */
interface PinSeg {
  start: bigint;
  last: bigint;
  users: number;
  phys: bigint;
}

/** A pinned segment's bytes `[from, to)` (from the page set's base) at physical `phys`, as Numbers. */
interface HotSeg {
  pages: IoptPages;
  from: number;
  to: number;
  phys: number;
}

/**
 * The pinned segment copyLive used last, of any page set (one for the
 * engine rather than a field per page set: an area costs no more heap);
 * dropped whenever that page set's pins change.
 */
let hot: HotSeg | undefined;

/**
 * The kernel's iopt_pages: a page-granular window `[uptr, uptr+length)` of a
 * source, shared by every area that maps it (MAP creates one, COPY shares
 * it). Pages are pinned lazily, once per page set however many domains,
 * areas and accesses use them: each user adds one count over a page-index
 * range, and a page is pinned while its count is non-zero. Pinned pages keep
 * their physical address, so every later user sees the same pages.
 */
export class IoptPages {
  /** First byte's address in the source, rounded down to a page. */
  readonly base: bigint;
  private segs: SortedRanges<PinSeg> | undefined;
  /** Pages currently pinned (and charged). */
  npinned = 0n;

  constructor(
    readonly source: PagesSource,
    /** Source address of the first byte (user VA or file offset). */
    readonly uptr: bigint,
    readonly length: bigint,
    readonly writable: boolean,
    /** Charged for every pinned page; IOAS_CHANGE_PROCESS moves it to another task. */
    public account: PinAccount,
    readonly memory: PhysMemory,
  ) {
    const ps = memory.pageSize;
    // share uptr's bigint when it is page-aligned: one heap bigint less per MAP
    this.base = (uptr & (ps - 1n)) === 0n ? uptr : uptr & ~(ps - 1n);
  }

  /** The dma-buf these pages are a window of (IOPT_ADDRESS_DMABUF): a DmabufPages'. */
  get dmabuf(): DmaBufExporter | undefined {
    return undefined;
  }

  /** iopt_dmabuf_revoked(): only a DmabufPages can be. */
  get revoked(): boolean {
    return false;
  }

  /** Pages the window touches (computed: a field would cost every page set a bigint). */
  get npages(): bigint {
    const ps = this.memory.pageSize;
    return (this.uptr + this.length - 1n) / ps - this.uptr / ps + 1n;
  }

  /** Page index holding byte `offset` (relative to uptr). */
  indexOf(offset: bigint): bigint {
    return (this.uptr - this.base + offset) / this.memory.pageSize;
  }

  /**
   * Add one user to pages `[first, last]`, pinning those that had none.
   * All-or-nothing: EFAULT (unreachable memory) or ENOMEM (over the locked
   * limit) leave the page set unchanged.
   */
  addUser(first: bigint, last: bigint): void {
    if (hot?.pages === this) hot = undefined;
    const ps = this.memory.pageSize;
    const gaps = this.gaps(first, last);
    const fresh: PinSeg[] = [];
    let newPages = 0n;
    for (const [gs, gl] of gaps) {
      faultPoint('pin_user_pages');
      for (const run of this.source.resolve(
        this.base + gs * ps,
        (gl - gs + 1n) * ps,
        this.writable,
      )) {
        const s = (run.va - this.base) / ps;
        fresh.push({ start: s, last: s + run.length / ps - 1n, users: 0, phys: run.phys });
      }
      newPages += gl - gs + 1n;
    }
    if (newPages > 0n) this.account.charge(newPages);
    this.segs ??= new SortedRanges();
    const segs = this.segs;
    for (const seg of fresh) {
      this.memory.pin(seg.phys, (seg.last - seg.start + 1n) * ps);
      segs.insert(seg);
    }
    this.npinned += newPages;
    for (const seg of this.split(first, last)) seg.users++;
  }

  /** Drop one user from pages `[first, last]`; pages reaching zero users are unpinned. */
  removeUser(first: bigint, last: bigint): void {
    if (hot?.pages === this) hot = undefined;
    const ps = this.memory.pageSize;
    const segs = this.segs;
    if (!segs) throw new Error('removeUser on unpinned pages');
    let freed = 0n;
    for (const seg of this.split(first, last)) {
      if (--seg.users > 0) continue;
      segs.delete(seg);
      const n = seg.last - seg.start + 1n;
      this.memory.unpin(seg.phys, n * ps);
      freed += n;
    }
    if (freed > 0n) {
      this.npinned -= freed;
      this.account.uncharge(freed);
    }
  }

  /**
   * Physical runs of pinned bytes `[offset, offset+length)` (relative to
   * uptr), ascending. Every page in the range must be pinned.
   */
  physRuns(offset: bigint, length: bigint): PhysRun[] {
    const ps = this.memory.pageSize;
    const head = this.uptr - this.base;
    const startByte = head + offset;
    const endByte = startByte + length;
    const out: PhysRun[] = [];
    for (const seg of this.segs?.overlapping(startByte / ps, (endByte - 1n) / ps) ?? []) {
      const segStart = seg.start * ps;
      const segEnd = (seg.last + 1n) * ps;
      const s = segStart > startByte ? segStart : startByte;
      const e = segEnd < endByte ? segEnd : endByte;
      const phys = seg.phys + (s - segStart);
      const prev = out[out.length - 1];
      if (prev && prev.phys + prev.length === phys) prev.length += e - s;
      else out.push({ va: s - head, length: e - s, phys });
    }
    return out;
  }

  /**
   * iopt_pages_rw_access()'s way for `length` bytes at `offset` (relative
   * to uptr, Numbers) copied with ACCESS_RW `flags` by a task of address
   * space `mm`: true to copy through the source's current mapping, pins
   * ignored (copy_to_user in the caller's own address space without
   * SLOW_PATH, or KTHREAD; within one page, the page mapped there now in
   * another, or under SLOW_PATH); false for the pinned pages, elsewhere the
   * source's pages looked up now (a file's pages, several pages of another
   * address space or under SLOW_PATH, or an address space that is gone).
   */
  rwCurrent(offset: number, length: number, flags: number, mm: Mm | undefined): boolean {
    const source = this.source;
    if (source.file) return false;
    if (mm === source && (flags & ACCESS_RW.SLOW_PATH) === 0) return true;
    if (source.alive === false) return false;
    if ((flags & ACCESS_RW.KTHREAD) !== 0) return true;
    // within one page: in Numbers while the page set's addresses are exact (the common case)
    if (this.uptr > MAX_SAFE)
      return this.indexOf(BigInt(offset)) === this.indexOf(BigInt(offset + length - 1));
    const ps = Number(this.memory.pageSize);
    const at = offset + (Number(this.uptr) % ps);
    return Math.floor(at / ps) === Math.floor((at + length - 1) / ps);
  }

  /**
   * Copy the bytes `[offset, offset+buf.length)` (relative to uptr, a
   * Number) into `buf`, or from it with `write`, when that is quick: with
   * `current` (rwCurrent) or nothing pinned, through the source
   * (PagesSource.copy); else inside one pinned segment of a memory that
   * copies directly (PhysMemory.copy). True when done; false when the
   * caller must resolve the runs and copy them.
   */
  copyLive(offset: number, buf: Uint8Array, write: boolean, current: boolean): boolean {
    if (this.uptr > MAX_SAFE) return false;
    if (!current && this.segs?.size) return this.copyPinned(offset, buf, write);
    return this.source.copy?.(Number(this.uptr) + offset, buf, write) ?? false;
  }

  /** copyLive within one pinned segment. */
  private copyPinned(offset: number, buf: Uint8Array, write: boolean): boolean {
    if (!this.memory.copy) return false;
    const at = offset + (Number(this.uptr) - Number(this.base));
    const end = at + buf.length;
    let h = hot;
    if (!h || h.pages !== this || at < h.from || end > h.to) {
      h = this.hotSeg(at, end);
      if (!h) return false;
    }
    return this.memory.copy(h.phys + (at - h.from), buf, write);
  }

  /** The pinned segment holding bytes `[at, end)` from base, kept as the module's `hot`; undefined if none does. */
  private hotSeg(at: number, end: number): HotSeg | undefined {
    if (!this.segs?.size || at < 0) return undefined;
    const ps = Number(this.memory.pageSize);
    const seg = this.segs.find(BigInt(Math.floor(at / ps)));
    if (!seg) return undefined;
    const from = Number(seg.start) * ps;
    const to = (Number(seg.last) + 1) * ps;
    const phys = Number(seg.phys);
    if (end > to || phys + (to - from) > Number.MAX_SAFE_INTEGER) return undefined;
    hot = { pages: this, from, to, phys };
    return hot;
  }

  /** Offset from uptr of the first byte of page `index` (negative for page 0 of an unaligned set). */
  offsetOfPage(index: bigint): bigint {
    return index * this.memory.pageSize - (this.uptr - this.base);
  }

  /**
   * The live memory behind bytes `[offset, offset+length)` (relative to
   * uptr), ascending: pinned pages where pinned (unless `current`),
   * elsewhere the source as it is mapped now, resolved without pinning
   * (EFAULT when unreachable).
   */
  liveRuns(offset: bigint, length: bigint, write: boolean, current = false): PhysRun[] {
    if (current || !this.segs?.size) return this.source.resolve(this.uptr + offset, length, write);
    const end = offset + length;
    const gaps = this.gaps(this.indexOf(offset), this.indexOf(end - 1n));
    if (gaps.length === 0) return this.physRuns(offset, length);
    const out: PhysRun[] = [];
    let cur = offset;
    for (const [gs, gl] of gaps) {
      const from = this.offsetOfPage(gs) > offset ? this.offsetOfPage(gs) : offset;
      const to = this.offsetOfPage(gl + 1n) < end ? this.offsetOfPage(gl + 1n) : end;
      if (cur < from) out.push(...this.physRuns(cur, from - cur));
      out.push(...this.source.resolve(this.uptr + from, to - from, write));
      cur = to;
    }
    if (cur < end) out.push(...this.physRuns(cur, end - cur));
    return out;
  }

  /**
   * What copy_to_user() reaches of bytes `[offset, offset+length)`
   * (relative to uptr) in the source's current mapping once a resolve of
   * them all failed: the runs of the pages from `offset` on that resolve
   * for writing, up to the first that does not (EFAULT).
   */
  writablePrefix(offset: bigint, length: bigint): PhysRun[] {
    const ps = this.memory.pageSize;
    const end = offset + length;
    const out: PhysRun[] = [];
    for (let cur = offset; cur < end; ) {
      const next = ((this.uptr + cur) / ps + 1n) * ps - this.uptr;
      const to = next < end ? next : end;
      try {
        out.push(...this.source.resolve(this.uptr + cur, to - cur, true));
      } catch (e) {
        if (e instanceof Errno && e.code === 'EFAULT') break;
        throw e;
      }
      cur = to;
    }
    return out;
  }

  /** True when every page of `[first, last]` is pinned. */
  isPinned(first: bigint, last: bigint): boolean {
    return this.gaps(first, last).length === 0;
  }

  /** True when some pinned page has more than `n` users (e.g. mapped beyond a holder's own use). */
  hasUsersAbove(n: number): boolean {
    for (const seg of this.segs ?? []) if (seg.users > n) return true;
    return false;
  }

  /** Users of page `index` (0 when not pinned). */
  usersOf(index: bigint): number {
    return this.segs?.find(index)?.users ?? 0;
  }

  /** Unpinned sub-ranges of `[first, last]`. */
  private gaps(first: bigint, last: bigint): [bigint, bigint][] {
    const out: [bigint, bigint][] = [];
    let cur = first;
    for (const seg of this.segs?.overlapping(first, last) ?? []) {
      if (seg.start > cur) out.push([cur, seg.start - 1n]);
      cur = seg.last + 1n;
    }
    if (cur <= last) out.push([cur, last]);
    return out;
  }

  /** Split segments at `first` and `last+1`; return those inside `[first, last]`. */
  private split(first: bigint, last: bigint): PinSeg[] {
    const segs = this.segs!;
    const ps = this.memory.pageSize;
    const cut = (at: bigint) => {
      const seg = segs.find(at);
      if (!seg || seg.start === at) return;
      segs.delete(seg);
      const right: PinSeg = {
        start: at,
        last: seg.last,
        users: seg.users,
        phys: seg.phys + (at - seg.start) * ps,
      };
      seg.last = at - 1n;
      segs.insert(seg);
      segs.insert(right);
    };
    cut(first);
    cut(last + 1n);
    const inside = segs.overlapping(first, last);
    let covered = 0n;
    for (const s of inside) covered += s.last - s.start + 1n;
    if (covered !== last - first + 1n)
      fail('EFAULT', 'page range not pinned', 'uiommu_pages_split');
    return inside;
  }
}

/**
 * The page set of a dma-buf window (IOPT_ADDRESS_DMABUF). A subclass, so
 * that the page sets of ordinary maps carry no field for it.
 */
export class DmabufPages extends IoptPages {
  private isRevoked = false;

  constructor(
    source: PagesSource,
    uptr: bigint,
    length: bigint,
    writable: boolean,
    account: PinAccount,
    memory: PhysMemory,
    private readonly exporter: DmaBufExporter,
  ) {
    super(source, uptr, length, writable, account, memory);
  }

  override get dmabuf(): DmaBufExporter {
    return this.exporter;
  }

  override get revoked(): boolean {
    return this.isRevoked;
  }

  /** The exporter invalidated it since it was mapped: its areas stay but map nothing, for good. */
  revoke(): void {
    this.isRevoked = true;
  }
}
