/**
 * Structural invariants of an iommufd context, checked from the outside
 * after any sequence of ioctls (model and fuzz tests call this after every
 * step):
 *
 * - per IOAS: areas sorted, disjoint and outside every reserved range;
 *   every area's iova, length and sub-page offset aligned to iova_alignment;
 *   iova_alignment equal to what the domains, accesses and the large-page
 *   setting imply; reservations owned by a domain of the IOAS or a device
 *   attached to it, and every domain's aperture complement and every
 *   attached device's reserved regions present; allowed ranges sorted,
 *   disjoint and clear of reserved ones; the domains are exactly those of
 *   the IOAS's HWPTs;
 * - per domain: the mapped IOVA is exactly the union of the areas, each
 *   byte translating to the physical page its page set pinned, with the
 *   area's permission; no leaf above PAGE_SIZE while large pages are off;
 * - pins: an area is filled iff its IOAS has a domain; per page set, each
 *   page's user count is the number of filled areas covering it (plus
 *   access pins) and `npinned` the number of such pages, so a page set with
 *   no filled area pins nothing; per physical page, the pin count is the
 *   number of page sets pinning it; PhysRam's total is the sum of `npinned`
 *   (one pin per page per page set, however many areas and domains).
 *
 * Assumption: every pin in `kernel.memory` comes from `ctx` (one context per
 * kernel, as the fixtures build it).
 */
import assert from 'node:assert/strict';
import { U64_MAX } from '../../src/abi/layout.ts';
import type { Kernel } from '../../src/host/kernel.ts';
import { Domain } from '../../src/iommu/domain.ts';
import type { IommufdCtx } from '../../src/iommufd/context.ts';
import { IommufdDevice } from '../../src/iommufd/device.ts';
import { HwptPaging } from '../../src/iommufd/hw-pagetable.ts';
import type { Area } from '../../src/iommufd/io-pagetable.ts';
import { Ioas } from '../../src/iommufd/ioas.ts';
import type { IoptPages } from '../../src/iommufd/pages.ts';

const hex = (x: bigint): string => `0x${x.toString(16)}`;

/** A translation run: `[iova, last]` ↦ `phys…` with a permission. */
interface Seg {
  iova: bigint;
  last: bigint;
  phys: bigint;
  prot: number;
}

/** Append `s`, merging it into the previous segment when IOVA, phys and prot continue. */
function push(out: Seg[], s: Seg): void {
  const prev = out[out.length - 1];
  if (
    prev &&
    prev.last + 1n === s.iova &&
    prev.phys + (prev.last - prev.iova + 1n) === s.phys &&
    prev.prot === s.prot
  ) {
    prev.last = s.last;
  } else out.push({ ...s });
}

const fmt = (segs: Seg[]): string =>
  segs.map((s) => `[${hex(s.iova)}..${hex(s.last)}]→${hex(s.phys)}/${s.prot}`).join(' ');

/** What a domain maps, across its apertures, normalised to maximal segments. */
function domainSegs(domain: Domain, pageSize: bigint, noLargePages: boolean, what: string): Seg[] {
  const out: Seg[] = [];
  for (const ap of domain.apertures) {
    for (const pte of ap.table.runs(ap.start, ap.last - ap.start + 1n)) {
      if (noLargePages) {
        assert.ok(pte.pageSize <= pageSize, `${what}: leaf above PAGE_SIZE at ${hex(pte.iova)}`);
      }
      push(out, {
        iova: pte.iova,
        last: pte.iova + pte.length - 1n,
        phys: pte.phys,
        prot: pte.prot,
      });
    }
  }
  return out;
}

/** Byte offset (relative to uptr, as physRuns takes it) of page `index` of a page set. */
function pageOffsetOf(pages: IoptPages, index: bigint): bigint {
  return index * pages.memory.pageSize - (pages.uptr - pages.base);
}

/** Check every invariant listed above; throws an AssertionError naming the first broken one. */
export function checkInvariants(ctx: IommufdCtx, kernel: Kernel): void {
  const ps = kernel.memory.pageSize;
  const objects = ctx.list();
  const ioases = objects.filter((o): o is Ioas => o instanceof Ioas);
  const hwpts = objects.filter((o): o is HwptPaging => o instanceof HwptPaging);
  const devices = objects.filter((o): o is IommufdDevice => o instanceof IommufdDevice);
  /** Filled areas by page set; every page set seen. */
  const pageSets = new Map<IoptPages, Area[]>();
  let anyAccess = false;

  for (const dev of devices) {
    const what = `device ${dev.id}`;
    assert.equal(dev.dev.group.domain, dev.hwpt?.domain, `${what}: group domain is its HWPT's`);
    if (dev.hwpt) assert.ok(dev.hwpt.live, `${what}: attached to a dead HWPT`);
  }
  for (const hwpt of hwpts) {
    const what = `hwpt ${hwpt.id}`;
    const attached = devices.filter((d) => d.hwpt === hwpt).length;
    assert.equal(hwpt.users, attached, `${what}: users = attached devices`);
    if (hwpt.autoDomain) assert.ok(attached > 0, `${what}: auto domain without devices lives on`);
    assert.ok(ioases.includes(hwpt.ioas), `${what}: its IOAS is live`);
  }

  for (const ioas of ioases) {
    const iopt = ioas.iopt;
    const what = `ioas ${ioas.id}`;
    if (iopt.accesses.size > 0) anyAccess = true;

    // domains are exactly those of the live HWPTs on this IOAS
    const mine = hwpts.filter((h) => h.ioas === ioas);
    assert.deepEqual(
      new Set(iopt.domains),
      new Set(mine.map((h) => h.domain)),
      `${what}: domains are its HWPTs' domains`,
    );
    assert.equal(iopt.domains.length, mine.length, `${what}: one domain per HWPT`);
    assert.equal(ioas.users, mine.length + iopt.accesses.size, `${what}: users = HWPTs + accesses`);

    // alignment implied by domains, accesses and the large-page setting
    let align = iopt.disableLargePages ? ps : 1n;
    for (const d of iopt.domains) if (d.minPageSize > align) align = d.minPageSize;
    for (const a of iopt.accesses) if (a.iovaAlignment > align) align = a.iovaAlignment;
    assert.equal(iopt.iovaAlignment, align, `${what}: iova_alignment`);
    const mask = align - 1n;

    // reservations: owners, aperture complements, device regions
    const attachedDevs = devices.filter((d) => d.hwpt?.ioas === ioas);
    for (const r of iopt.reserved) {
      // the selftest's ADD_RESERVED (owner null) wraps start + length - 1 as the kernel does
      if (r.owner !== null) {
        assert.ok(r.start <= r.last, `${what}: reserved range [${hex(r.start)}, ${hex(r.last)}]`);
      }
      const stale =
        (r.owner instanceof Domain && !iopt.domains.includes(r.owner)) ||
        (r.owner instanceof IommufdDevice && !attachedDevs.includes(r.owner));
      assert.ok(!stale, `${what}: stale reservation [${hex(r.start)}, ${hex(r.last)}]`);
    }
    const hasRes = (start: bigint, last: bigint, owner: unknown) =>
      iopt.reserved.some((r) => r.start === start && r.last === last && r.owner === owner);
    for (const d of iopt.domains) {
      let cur = 0n;
      let top = false;
      for (const ap of d.apertures) {
        if (ap.start > cur) {
          assert.ok(hasRes(cur, ap.start - 1n, d), `${what}: hole below aperture not reserved`);
        }
        if (ap.last === U64_MAX) {
          top = true;
          break;
        }
        cur = ap.last + 1n;
      }
      if (!top) assert.ok(hasRes(cur, U64_MAX, d), `${what}: space above aperture not reserved`);
    }
    for (const dev of attachedDevs) {
      for (const r of dev.dev.reservedRegions) {
        if (r.kind === 'direct-relaxable') continue;
        assert.ok(hasRes(r.start, r.last, dev), `${what}: device ${dev.id} region not reserved`);
      }
    }

    // allowed ranges
    let prevAllowed: bigint | undefined;
    for (const r of iopt.allowed) {
      assert.ok(r.start < r.last, `${what}: allowed range start < last`);
      assert.ok(prevAllowed === undefined || r.start > prevAllowed, `${what}: allowed sorted`);
      prevAllowed = r.last;
      assert.ok(!iopt.reservedIntersects(r.start, r.last), `${what}: allowed range is reserved`);
    }

    // areas
    const expected: Seg[] = [];
    let prevLast: bigint | undefined;
    let count = 0;
    for (const area of iopt.areas) {
      count++;
      const at = `${what} area [${hex(area.start)}, ${hex(area.last)}]`;
      assert.ok(area.start <= area.last && area.last <= U64_MAX, `${at}: bad bounds`);
      assert.ok(prevLast === undefined || area.start > prevLast, `${at}: areas sorted, disjoint`);
      prevLast = area.last;
      assert.ok(!iopt.reservedIntersects(area.start, area.last), `${at}: intersects reserved`);
      assert.equal(area.start & mask, 0n, `${at}: iova aligned to ${hex(align)}`);
      assert.equal(area.length & mask, 0n, `${at}: length aligned to ${hex(align)}`);
      assert.equal(area.pageOffset() & mask, 0n, `${at}: page offset aligned to ${hex(align)}`);
      assert.ok(
        area.pagesOffset >= 0n && area.pagesOffset + area.length <= area.pages.length,
        `${at}: inside its page set`,
      );
      assert.equal(area.filled, iopt.domains.length > 0, `${at}: filled iff the IOAS has domains`);
      const list = pageSets.get(area.pages) ?? [];
      pageSets.set(area.pages, list);
      if (!area.filled) continue;
      list.push(area);
      const runs = area.pages.physRuns(area.pagesOffset, area.length);
      let iova = area.start;
      for (const run of runs) {
        push(expected, { iova, last: iova + run.length - 1n, phys: run.phys, prot: area.prot });
        iova += run.length;
      }
      assert.equal(iova, area.last + 1n, `${at}: every page of a filled area is pinned`);
    }
    assert.equal(count, iopt.areas.size, `${what}: area count`);

    for (const d of iopt.domains) {
      const dwhat = `${what} domain of hwpt ${mine.find((h) => h.domain === d)?.id}`;
      const got = domainSegs(d, ps, iopt.disableLargePages, dwhat);
      assert.ok(
        got.length === expected.length &&
          got.every(
            (g, i) =>
              g.iova === expected[i]!.iova &&
              g.last === expected[i]!.last &&
              g.phys === expected[i]!.phys &&
              g.prot === expected[i]!.prot,
          ),
        `${dwhat}: mappings differ from the areas\n  domain: ${fmt(got)}\n  areas:  ${fmt(expected)}`,
      );
      for (const area of iopt.areas) {
        const phys = area.pages.physRuns(area.pagesOffset, 1n)[0]?.phys;
        assert.equal(d.iovaToPhys(area.start), phys, `${dwhat}: iova_to_phys(${hex(area.start)})`);
      }
    }
  }

  // pins: per page set, then per physical page, then the global total
  let total = 0n;
  /** [physStart, physLast] once per page set pinning it. */
  const physPins: [bigint, bigint][] = [];
  for (const [pages, filled] of pageSets) {
    const what = `page set at uptr ${hex(pages.uptr)} (+${hex(pages.length)})`;
    const edges = new Map<bigint, number>();
    for (const a of filled) {
      const [first, last] = a.pageIndexes();
      edges.set(first, (edges.get(first) ?? 0) + 1);
      edges.set(last + 1n, (edges.get(last + 1n) ?? 0) - 1);
    }
    const points = [...edges.keys()].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    let users = 0;
    let covered = 0n;
    for (let i = 0; i + 1 < points.length; i++) {
      users += edges.get(points[i]!)!;
      if (users === 0) continue;
      const first = points[i]!;
      const last = points[i + 1]! - 1n;
      covered += last - first + 1n;
      for (const idx of [first, last]) {
        const got = pages.usersOf(idx);
        if (anyAccess) assert.ok(got >= users, `${what}: page ${idx} has ${got} users`);
        else assert.equal(got, users, `${what}: users of page ${idx}`);
      }
      for (const run of pages.physRuns(pageOffsetOf(pages, first), (last - first + 1n) * ps)) {
        physPins.push([run.phys, run.phys + run.length - 1n]);
      }
    }
    if (anyAccess) assert.ok(pages.npinned >= covered, `${what}: npinned ≥ pages in filled areas`);
    else assert.equal(pages.npinned, covered, `${what}: npinned = pages in filled areas`);
    total += pages.npinned;
  }
  if (!anyAccess) {
    // per physical page: pin count = page sets pinning it
    const edges = new Map<bigint, number>();
    for (const [s, l] of physPins) {
      edges.set(s, (edges.get(s) ?? 0) + 1);
      edges.set(l + 1n, (edges.get(l + 1n) ?? 0) - 1);
    }
    const points = [...edges.keys()].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    let n = 0;
    for (let i = 0; i + 1 < points.length; i++) {
      n += edges.get(points[i]!)!;
      if (n === 0) continue;
      const last = points[i + 1]! - ps;
      for (const p of [points[i]!, last]) {
        assert.equal(kernel.memory.pinCount(p), n, `pin count of phys ${hex(p)}`);
      }
    }
  }
  assert.equal(
    kernel.memory.pinnedPages(),
    total,
    'PhysRam pinned pages = Σ npinned over distinct page sets',
  );
}
