import { fail } from '../abi/errno.ts';
import { hex } from '../abi/hex.ts';
import { U64_MAX } from '../abi/layout.ts';
import type { Domain } from '../iommu/domain.ts';
import { faultPoint } from '../iommu/fault-inject.ts';
import { IOMMU_WRITE } from '../iommu/prot.ts';
import { type Range, SortedRanges } from '../util/sorted-ranges.ts';
import { DmabufPages, type IoptPages } from './pages.ts';

/**
 * One IOVA mapping of an IOAS (the kernel's iopt_area): `[start, last]`
 * backed by bytes `[pagesOffset, pagesOffset+length)` of a page set.
 */
export class Area implements Range {
  /** In-kernel access pins currently inside this area. */
  numAccesses = 0;
  /** Pins of internal accesses (HW queues): the area cannot be unmapped (num_locks). */
  numLocks = 0;
  /** Holds a page-set user on behalf of the IOAS's domains. */
  filled = false;

  constructor(
    public start: bigint,
    public last: bigint,
    readonly pages: IoptPages,
    /** Offset of the area's first byte from pages.uptr. */
    readonly pagesOffset: bigint,
    /** IOMMU_READ | IOMMU_WRITE */
    readonly prot: number,
  ) {}

  get length(): bigint {
    return this.last - this.start + 1n;
  }

  /** Offset from pages.uptr of the byte mapped at `iova`. */
  offsetOf(iova: bigint): bigint {
    return this.pagesOffset + (iova - this.start);
  }

  /** Page-index range of the page set this area covers. */
  pageIndexes(): [bigint, bigint] {
    return [
      this.pages.indexOf(this.pagesOffset),
      this.pages.indexOf(this.pagesOffset + this.length - 1n),
    ];
  }

  /** Sub-page offset of the first byte (the kernel's area->page_offset). */
  pageOffset(): bigint {
    return (this.pages.uptr + this.pagesOffset) & (this.pages.memory.pageSize - 1n);
  }
}

/** A reserved IOVA range and who reserved it (a domain, a device, or null for ADD_RESERVED). */
export interface Reserved extends Range {
  readonly owner: unknown;
}

/** An in-kernel user of the IOAS (iommufd_access) as the page table sees it. */
export interface IoptAccess {
  /** Alignment this access needs (PAGE_SIZE for pinning accesses, else 1). */
  readonly iovaAlignment: bigint;
  /** The range is being unmapped: drop every pin inside it now. */
  notifyUnmap(iova: bigint, length: bigint): void;
}

/** A slice of a page set to be mapped (iopt_pages_list element). */
export interface PagesSlice {
  pages: IoptPages;
  offset: bigint;
  length: bigint;
}

/** Bytes an unmap removed so far: readable after it threw (the kernel's `*unmapped` out-parameter). */
export interface UnmapProgress {
  unmapped: bigint;
}

/** Version-dependent io_pagetable behaviour. */
export interface IoptPersonality {
  /** IOMMU_IOAS_UNMAP of an explicit range holding no area: 'ENOENT' (Linux) or 'success'. */
  readonly unmapEmpty: 'ENOENT' | 'success';
  /** Cap of the automatic IOVA alignment (HPAGE_PMD_SIZE with THP), or undefined for none. */
  readonly maxAutoAlignment: bigint | undefined;
}

/** The least power of two ≥ x (x ≥ 1): one past the bit length of x - 1, in numbers below 2^32. */
function roundupPow2(x: bigint): bigint {
  if (x <= 1n) return 1n;
  const n = x - 1n;
  const bits = n < 0x1_0000_0000n ? 32 - Math.clz32(Number(n)) : n.toString(2).length;
  return 1n << BigInt(bits);
}

function lowestBit(x: bigint): bigint {
  return x & -x;
}

/** ALIGN(x, a) on u64; undefined when it overflows (check_add_overflow). */
function alignUp(x: bigint, a: bigint): bigint | undefined {
  return x + a - 1n > U64_MAX ? undefined : (x + a - 1n) & ~(a - 1n);
}

/**
 * The kernel's io_pagetable: the IOVA space of one IOAS. Areas never
 * overlap each other or a reserved range; every domain holds exactly the
 * areas; pages are pinned only while a domain or an access needs them.
 */
export class IoPagetable {
  readonly areas = new SortedRanges<Area>();
  readonly reserved: Reserved[] = [];
  /** iovaRanges() of the current reserved set, until it changes. */
  private usable: readonly Range[] | undefined;
  /** Allowed ranges, sorted and disjoint; empty = everything allowed. */
  allowed: Range[] = [];
  readonly domains: Domain[] = [];
  readonly accesses = new Set<IoptAccess>();
  iovaAlignment = 1n;
  disableLargePages = false;
  /** The dma-buf page sets some area here maps, with their detach (dma_buf_detach). */
  private readonly dmabufs = new Map<DmabufPages, () => void>();

  constructor(
    readonly pageSize: bigint,
    readonly personality: IoptPersonality,
  ) {}

  // ---- reserved and allowed ranges ------------------------------------------------

  /** True if some reserved range intersects `[start, last]`. */
  reservedIntersects(start: bigint, last: bigint): boolean {
    return this.reserved.some((r) => r.start <= last && start <= r.last);
  }

  private allowedIntersects(start: bigint, last: bigint): boolean {
    return this.allowed.some((r) => r.start <= last && start <= r.last);
  }

  /** iopt_reserve_iova(): EADDRINUSE if an area or an allowed range is in the way. */
  reserve(start: bigint, last: bigint, owner: unknown): void {
    if (this.areas.intersects(start, last) || this.allowedIntersects(start, last)) {
      fail(
        'EADDRINUSE',
        `[${hex(start)}, ${hex(last)}] holds a mapping or an allowed range`,
        'iopt_reserve_iova',
      );
    }
    this.reserved.push({ start, last, owner });
    this.usable = undefined;
  }

  /** Drop every reservation made by `owner`. */
  unreserve(owner: unknown): void {
    for (let i = this.reserved.length - 1; i >= 0; i--) {
      if (this.reserved[i]!.owner === owner) {
        this.reserved.splice(i, 1);
        this.usable = undefined;
      }
    }
  }

  /** Replace the allowed list (sorted, disjoint); EADDRINUSE if any range hits a reserved one. */
  setAllowed(ranges: Range[]): void {
    for (const r of ranges) {
      if (this.reservedIntersects(r.start, r.last))
        fail(
          'EADDRINUSE',
          `allowed [${hex(r.start)}, ${hex(r.last)}] hits a reserved range`,
          'iopt_set_allow_iova',
        );
    }
    this.allowed = ranges;
  }

  /**
   * The usable IOVA ranges: holes of the reserved set over [0, U64_MAX].
   * Computed once per change of the reserved set; callers must not modify them.
   */
  iovaRanges(): readonly Range[] {
    this.usable ??= [...this.holes(0n, U64_MAX, false)];
    return this.usable;
  }

  /** Merged reserved ranges (and areas when `withAreas`) intersecting `[start, last]`, ascending. */
  private *used(start: bigint, last: bigint, withAreas: boolean): Generator<Range> {
    const res = this.reserved
      .filter((r) => r.start <= last && start <= r.last)
      .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    const areas = withAreas ? this.areas.from(start) : undefined;
    let nextArea = areas?.next();
    let ri = 0;
    let cur: Range | undefined;
    for (;;) {
      const area =
        nextArea && !nextArea.done && nextArea.value.start <= last ? nextArea.value : undefined;
      const r = res[ri];
      let pick: Range | undefined;
      if (area && (!r || area.start <= r.start)) {
        pick = area;
        nextArea = areas!.next();
      } else if (r) {
        pick = r;
        ri++;
      }
      if (!pick) break;
      if (cur && pick.start <= cur.last + 1n && cur.last !== U64_MAX) {
        if (pick.last > cur.last) cur.last = pick.last;
      } else if (cur && cur.last === U64_MAX) {
        break;
      } else {
        if (cur) yield cur;
        cur = { start: pick.start, last: pick.last };
      }
    }
    if (cur) yield cur;
  }

  /** Holes of the used set inside `[start, last]`, ascending. */
  private *holes(start: bigint, last: bigint, withAreas: boolean): Generator<Range> {
    let cur = start;
    for (const u of this.used(start, last, withAreas)) {
      if (u.start > cur) yield { start: cur, last: u.start - 1n };
      if (u.last >= last) return;
      cur = u.last + 1n;
    }
    yield { start: cur, last };
  }

  // ---- alignment ---------------------------------------------------------------

  /** EADDRINUSE unless every area's iova, length and sub-page offset suit `align`. */
  private checkAlignment(align: bigint): void {
    const mask = align - 1n;
    for (const a of this.areas) {
      if ((a.start & mask) !== 0n || (a.length & mask) !== 0n || (a.pageOffset() & mask) !== 0n) {
        fail(
          'EADDRINUSE',
          `area at ${hex(a.start)} does not suit the new alignment ${hex(align)}`,
          'iopt_check_iova_alignment',
        );
      }
    }
  }

  /** iopt_calculate_iova_alignment(): recompute from domains, accesses and large-page state. */
  recalcAlignment(): void {
    let align = this.disableLargePages ? this.pageSize : 1n;
    for (const d of this.domains) if (d.minPageSize > align) align = d.minPageSize;
    for (const a of this.accesses) if (a.iovaAlignment > align) align = a.iovaAlignment;
    if (align > this.iovaAlignment) this.checkAlignment(align);
    this.iovaAlignment = align;
  }

  /** OPTION HUGE_PAGES: disabling needs no domain+area pair; EADDRINUSE rolls back. */
  setLargePages(enable: boolean): void {
    if (enable) {
      this.disableLargePages = false;
      this.recalcAlignment();
      return;
    }
    if (this.disableLargePages) return;
    if (this.domains.length > 0 && this.areas.size > 0)
      fail(
        'EINVAL',
        'large pages cannot be disabled while the IOAS has both domains and mappings',
        'iopt_disable_large_pages',
      );
    this.disableLargePages = true;
    try {
      this.recalcAlignment();
    } catch (e) {
      this.disableLargePages = false;
      throw e;
    }
  }

  /** Register an in-kernel access; EADDRINUSE if its alignment does not suit the areas. */
  addAccess(access: IoptAccess): void {
    this.accesses.add(access);
    try {
      this.recalcAlignment();
    } catch (e) {
      this.accesses.delete(access);
      throw e;
    }
  }

  removeAccess(access: IoptAccess): void {
    this.accesses.delete(access);
    this.recalcAlignment();
  }

  // ---- IOVA allocation ---------------------------------------------------------

  /** The kernel's automatic placement: lowest first fit keeping the source's low bits. */
  allocIova(addr: bigint, length: bigint): bigint {
    if (length === 0n || length >= U64_MAX / 2n)
      fail('EOVERFLOW', `length ${hex(length)} cannot be placed`, 'iopt_alloc_iova');
    let align = roundupPow2(length);
    if (addr !== 0n && lowestBit(addr) < align) align = lowestBit(addr);
    const cap = this.personality.maxAutoAlignment;
    if (cap !== undefined && align > cap) align = cap;
    if (align < this.iovaAlignment)
      fail(
        'EINVAL',
        `user_va alignment ${hex(align)} is below the IOAS alignment ${hex(this.iovaAlignment)}`,
        'iopt_alloc_iova',
      );
    const pageOffset = addr & (this.pageSize - 1n);
    const lo = this.pageSize;
    const hi = U64_MAX - this.pageSize;
    const spans: Range[] =
      this.allowed.length === 0
        ? [{ start: lo, last: hi }]
        : this.allowed
            .filter((r) => r.last >= lo && r.start <= hi)
            .map((r) => ({ start: r.start < lo ? lo : r.start, last: r.last > hi ? hi : r.last }));
    // __alloc_iova_check_range(): the candidate must start strictly before `l`
    const fits = (s: bigint, l: bigint): bigint | undefined => {
      if (l - s < length - 1n) return undefined;
      const a = alignUp(s, align);
      if (a === undefined) return undefined;
      const c = a | pageOffset;
      if (c >= l || l - c < length - 1n) return undefined;
      return c;
    };
    for (const span of spans) {
      const s = fits(span.start, span.last);
      if (s === undefined) continue;
      for (const hole of this.holes(s, span.last, true)) {
        const c = fits(hole.start, hole.last);
        if (c !== undefined) {
          this.checkIova(c, length);
          return c;
        }
      }
    }
    fail('ENOSPC', `no free IOVA hole fits length ${hex(length)}`, 'iopt_alloc_iova');
  }

  /** iopt_check_iova(): alignment EINVAL, wrap EOVERFLOW, reserved EINVAL, existing area EEXIST. */
  checkIova(iova: bigint, length: bigint): void {
    if ((iova & (this.iovaAlignment - 1n)) !== 0n)
      fail(
        'EINVAL',
        `iova ${hex(iova)} not aligned to the IOAS alignment ${hex(this.iovaAlignment)}`,
        'iopt_check_iova',
      );
    const last = iova + length - 1n;
    if (last > U64_MAX)
      fail('EOVERFLOW', `iova ${hex(iova)} + length ${hex(length)} wraps`, 'iopt_check_iova');
    if (this.reservedIntersects(iova, last))
      fail('EINVAL', `[${hex(iova)}, ${hex(last)}] hits a reserved range`, 'iopt_check_iova');
    if (this.areas.intersects(iova, last))
      fail(
        'EEXIST',
        `[${hex(iova)}, ${hex(last)}] overlaps an existing mapping`,
        'iopt_check_iova',
      );
  }

  // ---- map / unmap ---------------------------------------------------------------

  /**
   * The first check of a map (iopt_alloc_area_pages): EINVAL for a length
   * of zero or not a multiple of the IOAS alignment. Callers may ask it
   * before building the page set, so that a map failing it allocates nothing.
   */
  checkMapLength(length: bigint): void {
    if ((length & (this.iovaAlignment - 1n)) !== 0n || length === 0n)
      fail(
        'EINVAL',
        `length ${hex(length)} is zero or not aligned to the IOAS alignment ${hex(this.iovaAlignment)}`,
        'iopt_map_pages',
      );
  }

  /**
   * iopt_map_pages(): place the slices back to back at `iova` (or an
   * allocated IOVA when undefined), then fill every domain. All-or-nothing.
   * Returns the IOVA used.
   */
  mapPages(slices: PagesSlice[], length: bigint, iova: bigint | undefined, prot: number): bigint {
    this.checkMapLength(length);
    const first = slices[0]!;
    const at = iova ?? this.allocIova(first.pages.uptr + first.offset, length);
    if (iova !== undefined) this.checkIova(at, length);
    const created: Area[] = [];
    try {
      let cur = at;
      for (const s of slices) {
        if ((prot & IOMMU_WRITE) !== 0 && !s.pages.writable)
          fail('EPERM', 'WRITEABLE asked of read-only pages', 'iopt_alloc_area_pages');
        faultPoint('iopt_alloc_area');
        const area = new Area(cur, cur + s.length - 1n, s.pages, s.offset, prot);
        if ((area.pageOffset() & (this.iovaAlignment - 1n)) !== 0n)
          fail(
            'EINVAL',
            `page offset ${hex(area.pageOffset())} not aligned to the IOAS alignment ${hex(this.iovaAlignment)}`,
            'iopt_alloc_area_pages',
          );
        if (area.last > U64_MAX)
          fail('EOVERFLOW', 'the mapping wraps past 2^64', 'iopt_alloc_area_pages');
        this.areas.insert(area);
        created.push(area);
        cur += s.length;
      }
      for (let i = 0; i < created.length; i++) this.fillArea(created[i]!);
    } catch (e) {
      for (const a of created) {
        if (a.filled) this.unfillArea(a);
        this.areas.delete(a);
      }
      throw e;
    }
    for (const { pages } of slices) {
      if (pages instanceof DmabufPages && !this.dmabufs.has(pages))
        this.dmabufs.set(
          pages,
          pages.dmabuf.attach(() => this.revokeDmabuf(pages)),
        );
    }
    return at;
  }

  /**
   * iopt_revoke_notify(): the exporter of a dma-buf mapped here moved or
   * revoked it. Every area of its page set leaves every domain, and the
   * page set is revoked for good (new domains get nothing of it either).
   */
  private revokeDmabuf(pages: DmabufPages): void {
    if (pages.revoked) return;
    for (const area of this.areas) {
      if (area.pages !== pages) continue;
      for (const d of this.domains) d.unmap(area.start, area.length);
      if (area.filled) {
        const [first, last] = area.pageIndexes();
        pages.removeUser(first, last);
        area.filled = false;
      }
    }
    pages.revoke();
  }

  /** The last area of a dma-buf page set left this IOAS: detach from its exporter. */
  private forgetDmabuf(pages: IoptPages): void {
    if (!(pages instanceof DmabufPages)) return;
    const detach = this.dmabufs.get(pages);
    if (!detach) return;
    for (const area of this.areas) if (area.pages === pages) return;
    detach();
    this.dmabufs.delete(pages);
  }

  /** Pin an area's pages (once for all domains) and map it into every domain. */
  private fillArea(area: Area, only?: Domain): void {
    const domains = only ? [only] : this.domains;
    if (domains.length === 0 || area.pages.revoked) return;
    const [first, last] = area.pageIndexes();
    const pinHere = !area.filled;
    if (pinHere) area.pages.addUser(first, last);
    const done: Domain[] = [];
    const maxPage = this.disableLargePages ? this.pageSize : undefined;
    try {
      const runs = area.pages.physRuns(area.pagesOffset, area.length);
      for (const d of domains) {
        let iova = area.start;
        try {
          faultPoint('iommu_map');
          for (const run of runs) {
            d.map(iova, run.phys, run.length, area.prot, maxPage);
            iova += run.length;
          }
        } catch (e) {
          // the runs this domain took before the failure go too
          if (iova > area.start) d.unmap(area.start, iova - area.start);
          throw e;
        }
        done.push(d);
      }
    } catch (e) {
      for (const d of done) d.unmap(area.start, area.length);
      if (pinHere) area.pages.removeUser(first, last);
      throw e;
    }
    area.filled = true;
  }

  /** Unmap an area from every domain and drop its domain pin. */
  private unfillArea(area: Area): void {
    for (const d of this.domains) d.unmap(area.start, area.length);
    if (area.filled) {
      const [first, last] = area.pageIndexes();
      area.pages.removeUser(first, last);
      area.filled = false;
    }
  }

  /**
   * iopt_unmap_iova_range(): remove every area inside `[start, last]`, lowest
   * first. Not atomic: an area cut by the range ends the walk with ENOENT
   * after the areas before it are gone. Returns the bytes removed; removing
   * nothing is ENOENT unless `emptyOk`. `progress` holds the bytes removed
   * on every exit, a throw included.
   */
  private unmapRange(
    start: bigint,
    last: bigint,
    emptyOk: boolean,
    progress: UnmapProgress = { unmapped: 0n },
  ): bigint {
    let unmapped = 0n;
    progress.unmapped = 0n;
    for (;;) {
      const area = this.areas.firstIntersecting(start, last);
      if (!area) break;
      if (area.numLocks > 0)
        fail(
          'EBUSY',
          `area at ${hex(area.start)} is locked by a HW queue`,
          'iopt_unmap_iova_range',
        );
      if (area.start < start || area.last > last)
        fail(
          'ENOENT',
          `the range cuts the mapping [${hex(area.start)}, ${hex(area.last)}]`,
          'iopt_unmap_iova_range',
        );
      if (area.numAccesses > 0) {
        for (const acc of [...this.accesses]) acc.notifyUnmap(area.start, area.length);
        if (area.numAccesses > 0) throw new Error('access kept pins across unmap notify');
        continue;
      }
      this.unfillArea(area);
      this.areas.delete(area);
      this.forgetDmabuf(area.pages);
      unmapped += area.length;
      progress.unmapped = unmapped;
    }
    if (unmapped === 0n && !emptyOk)
      fail('ENOENT', `nothing is mapped in [${hex(start)}, ${hex(last)}]`, 'iopt_unmap_iova_range');
    return unmapped;
  }

  /**
   * iopt_unmap_iova(): `length` bytes at `iova`. A range holding no area is
   * ENOENT or success as `emptyOk` says (default: the personality's
   * `unmapEmpty`, the IOMMU_IOAS_UNMAP rule; VFIO compat passes its own).
   */
  unmap(
    iova: bigint,
    length: bigint,
    opts: { emptyOk?: boolean; progress?: UnmapProgress } = {},
  ): bigint {
    if (opts.progress) opts.progress.unmapped = 0n;
    if (length === 0n) fail('EINVAL', 'length is zero', 'iopt_unmap_iova');
    const last = iova + length - 1n;
    if (last > U64_MAX)
      fail('EOVERFLOW', `iova ${hex(iova)} + length ${hex(length)} wraps`, 'iopt_unmap_iova');
    const emptyOk = opts.emptyOk ?? this.personality.unmapEmpty === 'success';
    return this.unmapRange(iova, last, emptyOk, opts.progress);
  }

  /** iopt_unmap_all(): everything; an empty IOAS is success. */
  unmapAll(progress?: UnmapProgress): bigint {
    return this.unmapRange(0n, U64_MAX, true, progress);
  }

  /**
   * iopt_cut_iova(): for each IOVA in order, split the area containing it
   * so that the IOVA becomes an area's last byte (VFIO compat TYPE1 uses it
   * to unmap inside a mapping). IOVAs in no area are skipped; the first
   * failing split stops the walk with the earlier splits kept.
   */
  cutIova(iovas: readonly bigint[]): void {
    for (const iova of iovas) {
      const area = this.areas.find(iova);
      if (area) this.areaSplit(area, iova);
    }
  }

  /**
   * iopt_area_split(): replace `area` by `[start, iova]` and `[iova+1, last]`
   * over the same page set and the same domain mappings; a no-op when `iova`
   * is the area's first or last byte. EOPNOTSUPP for a dma-buf's area;
   * EINVAL when the new start or its byte
   * offset in the page set is not iova_alignment aligned, while an access
   * pins the area, or when the area is in a domain that may hold large
   * pages (large pages not disabled). In the one case a filled area splits
   * (large pages disabled) the alignment is at least PAGE_SIZE, so the two
   * halves cover disjoint pages and simply divide the area's page users.
   */
  private areaSplit(area: Area, iova: bigint): void {
    if (iova === area.start || iova === area.last) return;
    if (area.pages.dmabuf)
      fail('EOPNOTSUPP', 'a dma-buf mapping cannot be split', 'iopt_area_split');
    const newStart = iova + 1n;
    const mask = this.iovaAlignment - 1n;
    const startByte = area.pages.uptr - area.pages.base + area.offsetOf(newStart);
    if ((newStart & mask) !== 0n || (startByte & mask) !== 0n)
      fail(
        'EINVAL',
        `split at ${hex(newStart)} not aligned to ${hex(this.iovaAlignment)}`,
        'iopt_area_split',
      );
    if (area.numAccesses > 0)
      fail('EINVAL', 'an access pins the mapping being split', 'iopt_area_split');
    if (area.filled && !this.disableLargePages)
      fail('EINVAL', 'a domain may hold large pages across the split', 'iopt_area_split');
    const lhs = new Area(area.start, iova, area.pages, area.pagesOffset, area.prot);
    const rhs = new Area(newStart, area.last, area.pages, area.offsetOf(newStart), area.prot);
    lhs.filled = area.filled;
    rhs.filled = area.filled;
    this.areas.delete(area);
    this.areas.insert(lhs);
    this.areas.insert(rhs);
  }

  /**
   * The areas covering `[iova, last]` back to back, starting with the one
   * containing `iova` (iopt_for_each_contig_area); ENOENT at any gap.
   */
  contigAreas(iova: bigint, last: bigint): Area[] {
    const out: Area[] = [];
    let cur = iova;
    for (;;) {
      const area = this.areas.find(cur);
      if (!area) fail('ENOENT', `nothing is mapped at ${hex(cur)}`, 'iopt_get_pages');
      out.push(area);
      if (area.last >= last) return out;
      cur = area.last + 1n;
    }
  }

  /** iopt_get_pages(): the page-set slices behind `[iova, iova+length)` for COPY. */
  getPages(iova: bigint, length: bigint): PagesSlice[] {
    if (length === 0n) fail('EINVAL', 'length is zero', 'iopt_get_pages');
    const last = iova + length - 1n;
    if (last > U64_MAX)
      fail('EOVERFLOW', `iova ${hex(iova)} + length ${hex(length)} wraps`, 'iopt_get_pages');
    const out: PagesSlice[] = [];
    let cur = iova;
    for (const area of this.contigAreas(iova, last)) {
      const end = area.last < last ? area.last : last;
      out.push({ pages: area.pages, offset: area.offsetOf(cur), length: end - cur + 1n });
      cur = end + 1n;
    }
    return out;
  }

  // ---- domains -------------------------------------------------------------------

  /** Reserve the complement of the domain's apertures on its behalf. */
  private reserveAperture(domain: Domain): void {
    let cur = 0n;
    for (const ap of domain.apertures) {
      if (ap.start > cur) this.reserve(cur, ap.start - 1n, domain);
      cur = ap.last + 1n;
      if (ap.last === U64_MAX) return;
    }
    this.reserve(cur, U64_MAX, domain);
  }

  /**
   * iopt_table_add_domain(): alignment (EINVAL above PAGE_SIZE, EADDRINUSE
   * for misaligned areas), aperture complement reserved (EADDRINUSE), then
   * every area mapped into it. On failure nothing changes.
   */
  addDomain(domain: Domain): void {
    if (this.domains.includes(domain))
      fail('EEXIST', 'the domain is already in this IOAS', 'iopt_table_add_domain');
    let align = domain.minPageSize;
    if (this.iovaAlignment > align) align = this.iovaAlignment;
    if (align > this.pageSize)
      fail(
        'EINVAL',
        `the domain's smallest page ${hex(align)} exceeds PAGE_SIZE`,
        'iopt_table_add_domain',
      );
    if (align !== this.iovaAlignment) this.checkAlignment(align);
    const filled: Area[] = [];
    try {
      this.reserveAperture(domain);
      for (const area of this.areas) {
        this.fillArea(area, domain);
        filled.push(area);
      }
    } catch (e) {
      for (const area of filled) {
        domain.unmap(area.start, area.length);
        if (this.domains.length === 0) {
          const [first, last] = area.pageIndexes();
          area.pages.removeUser(first, last);
          area.filled = false;
        }
      }
      this.unreserve(domain);
      throw e;
    }
    this.iovaAlignment = align;
    this.domains.push(domain);
  }

  /** iopt_table_remove_domain(): unmap everything from it; the last domain drops the pins. */
  removeDomain(domain: Domain): void {
    const i = this.domains.indexOf(domain);
    if (i < 0) return;
    this.domains.splice(i, 1);
    for (const area of this.areas) {
      domain.unmap(area.start, area.length);
      if (this.domains.length === 0 && area.filled) {
        const [first, last] = area.pageIndexes();
        area.pages.removeUser(first, last);
        area.filled = false;
      }
    }
    this.unreserve(domain);
    this.recalcAlignment();
  }
}
