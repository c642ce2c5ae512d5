/**
 * Model-based test of the IOAS ioctls: random programs of MAP (fixed and
 * automatic IOVA), UNMAP, COPY between two IOASes, device attach / replace /
 * detach (intel devices; one with the x86 MSI window reserved, one behind a
 * 39-bit unit with 4 KiB pages only), manual HWPT_ALLOC and DESTROY,
 * ALLOW_IOVAS, OPTION HUGE_PAGES and IOVA_RANGES, run against a small
 * reference model that predicts every result: errno or success, the IOVA
 * chosen (automatic placement is re-implemented from the facts sheet §3.5),
 * bytes unmapped (including UNMAP's partial progress), object IDs. After
 * every step the areas, alignment and HWPTs of each IOAS must equal the
 * model's, and checkInvariants() must hold. At the end the fd is closed and
 * the devices unbound: nothing may stay pinned.
 *
 * Deterministic: fixed seed and 200 runs (UIOMMU_MODEL_SEED and
 * UIOMMU_MODEL_RUNS override); fast-check prints the seed, path, shrunk
 * command list and the assertion of a failure.
 *
 * @slow: model-based random programs (left out of npm run test:quick)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Errno, type ErrnoName } from '../../src/abi/errno.ts';
import { IOMMU_OPTION_ID, IOMMU_OPTION_OP } from '../../src/abi/iommufd.ts';
import { IntelIommu, intelReservedRegions } from '../../src/drivers/intel/driver.ts';
import type { IommufdDevice } from '../../src/iommufd/device.ts';
import type { HwptPaging } from '../../src/iommufd/hw-pagetable.ts';
import type { Ioas } from '../../src/iommufd/ioas.ts';
import { type Fixture, setup } from '../support.ts';
import { checkInvariants } from './invariants.ts';
import { FIXED, memAt, PAGE, R, readRanges, SZ_2M, U64_MAX, W, writeRanges } from './util.ts';

// ---- the process's memory ------------------------------------------------------------

/** 4 MiB read/write. */
const RW_VA = 0x4000_0000n;
const RW_LEN = 0x40_0000n;
/** 64 KiB read-only. */
const RO_VA = 0x5000_0000n;
const RO_LEN = 0x1_0000n;
/** Never mapped. */
const HOLE_VA = 0x6000_0000n;

const MSI = intelReservedRegions()[0]!;
const BOGUS_ID = 999;

// ---- reference model --------------------------------------------------------------

interface Range {
  start: bigint;
  last: bigint;
}

/** A page set: identity matters (COPY shares it). */
interface MPages {
  uptr: bigint;
  length: bigint;
  writable: boolean;
}

interface MArea extends Range {
  pages: MPages;
  offset: bigint;
  /** MAP flags' R/W bits */
  rw: number;
}

interface MHwpt {
  id: number;
  unit: number;
  auto: boolean;
  devs: Set<MDev>;
}

interface MIoas {
  id: number;
  areas: MArea[];
  allowed: Range[];
  noHuge: boolean;
  hwpts: MHwpt[];
}

interface MDev {
  id: number;
  unit: number;
  /** Last IOVA of the unit's aperture. */
  apLast: bigint;
  regions: Range[];
  hwpt: MHwpt | undefined;
  ioas: MIoas | undefined;
}

/** An expected (or observed) outcome: an errno, or success with a value. */
type Outcome = { errno: ErrnoName } | { ok: bigint | number };

class ModelErr {
  constructor(readonly errno: ErrnoName) {}
}
const err = (e: ErrnoName): never => {
  throw new ModelErr(e);
};

const hits = (a: Range, start: bigint, last: bigint) => a.start <= last && start <= a.last;

function roundupPow2(x: bigint): bigint {
  let p = 1n;
  while (p < x) p <<= 1n;
  return p;
}

/** Pages of `[va, va+len)` can be pinned (GUP with write when `write`). */
function pinnable(va: bigint, len: bigint, write: boolean): boolean {
  const first = va & ~(PAGE - 1n);
  const last = (va + len - 1n) | (PAGE - 1n);
  if (first >= RW_VA && last < RW_VA + RW_LEN) return true;
  return !write && first >= RO_VA && last < RO_VA + RO_LEN;
}

class Model {
  readonly ids = new Set<number>();
  readonly ioas: MIoas[] = [];
  readonly devs: MDev[] = [];

  lowestFree(): number {
    let id = 1;
    while (this.ids.has(id)) id++;
    return id;
  }

  newIoas(): MIoas {
    const id = this.lowestFree();
    this.ids.add(id);
    return { id, areas: [], allowed: [], noHuge: false, hwpts: [] };
  }

  ioasById(id: number): MIoas {
    return this.ioas.find((i) => i.id === id) ?? err('ENOENT');
  }

  align(ioas: MIoas): bigint {
    return ioas.hwpts.length > 0 || ioas.noHuge ? PAGE : 1n;
  }

  reserved(ioas: MIoas): Range[] {
    const out: Range[] = [];
    for (const h of ioas.hwpts) {
      const apLast = this.devs.find((d) => d.unit === h.unit)!.apLast;
      out.push({ start: apLast + 1n, last: U64_MAX });
    }
    for (const d of this.devs) if (d.ioas === ioas) out.push(...d.regions);
    return out;
  }

  /** The usable ranges IOVA_RANGES reports: holes of the reserved set. */
  iovaRanges(ioas: MIoas): Range[] {
    return holes(this.reserved(ioas), 0n, U64_MAX);
  }

  checkIova(ioas: MIoas, iova: bigint, length: bigint): void {
    if (iova % this.align(ioas) !== 0n) err('EINVAL');
    const last = iova + length - 1n;
    if (last > U64_MAX) err('EOVERFLOW');
    if (this.reserved(ioas).some((r) => hits(r, iova, last))) err('EINVAL');
    if (ioas.areas.some((a) => hits(a, iova, last))) err('EEXIST');
  }

  /** §3.5: lowest first fit keeping the sub-page offset, alignment from length and address. */
  allocIova(ioas: MIoas, addr: bigint, length: bigint): bigint {
    if (length === 0n || length >= U64_MAX / 2n) err('EOVERFLOW');
    let a = roundupPow2(length);
    if (addr !== 0n && (addr & -addr) < a) a = addr & -addr;
    if (a > SZ_2M) a = SZ_2M;
    if (a < this.align(ioas)) err('EINVAL');
    const off = addr & (PAGE - 1n);
    const check = (hs: bigint, hl: bigint): bigint | undefined => {
      if (hs + a - 1n > U64_MAX) return undefined;
      const c = ((hs + a - 1n) & ~(a - 1n)) | off;
      return c >= hl || hl - c < length - 1n ? undefined : c;
    };
    const lo = PAGE;
    const hi = U64_MAX - PAGE;
    const spans =
      ioas.allowed.length === 0
        ? [{ start: lo, last: hi }]
        : ioas.allowed
            .filter((r) => r.last >= lo && r.start <= hi)
            .map((r) => ({ start: r.start < lo ? lo : r.start, last: r.last > hi ? hi : r.last }));
    const used = [...this.reserved(ioas), ...ioas.areas];
    for (const span of spans) {
      const s = check(span.start, span.last);
      if (s === undefined) continue;
      for (const h of holes(used, s, span.last)) {
        const c = check(h.start, h.last);
        if (c !== undefined) {
          this.checkIova(ioas, c, length);
          return c;
        }
      }
    }
    return err('ENOSPC');
  }

  /** iopt_map_pages(): place slices back to back; all-or-nothing. */
  mapSlices(
    ioas: MIoas,
    slices: { pages: MPages; offset: bigint; length: bigint }[],
    length: bigint,
    iova: bigint | undefined,
    rw: number,
  ): bigint {
    const align = this.align(ioas);
    if (length % align !== 0n || length === 0n) err('EINVAL');
    const first = slices[0]!;
    const at = iova ?? this.allocIova(ioas, first.pages.uptr + first.offset, length);
    if (iova !== undefined) this.checkIova(ioas, at, length);
    const created: MArea[] = [];
    let cur = at;
    for (const s of slices) {
      if (rw & W && !s.pages.writable) err('EPERM');
      if (((s.pages.uptr + s.offset) & (PAGE - 1n)) % align !== 0n) err('EINVAL');
      created.push({ start: cur, last: cur + s.length - 1n, pages: s.pages, offset: s.offset, rw });
      cur += s.length;
    }
    if (ioas.hwpts.length > 0 && !created.every((a) => this.areaPinnable(a))) err('EFAULT');
    ioas.areas.push(...created);
    ioas.areas.sort((x, y) => (x.start < y.start ? -1 : 1));
    return at;
  }

  areaPinnable(a: MArea): boolean {
    return pinnable(a.pages.uptr + a.offset, a.last - a.start + 1n, a.pages.writable);
  }

  map(c: MapCmd, ioasId: number): bigint {
    if ((c.flags & ~7) !== 0) err('EOPNOTSUPP');
    if (c.iova >= U64_MAX || c.length >= U64_MAX) err('EOVERFLOW');
    if ((c.flags & (R | W)) === 0) err('EINVAL');
    const ioas = this.ioasById(ioasId);
    if (c.va + c.length > U64_MAX) err('EOVERFLOW');
    if (c.length === 0n || c.length > U64_MAX - PAGE) err('EINVAL');
    const pages = { uptr: c.va, length: c.length, writable: (c.flags & W) !== 0 };
    return this.mapSlices(
      ioas,
      [{ pages, offset: 0n, length: c.length }],
      c.length,
      c.flags & FIXED ? c.iova : undefined,
      c.flags & (R | W),
    );
  }

  copy(
    flags: number,
    dstId: number,
    srcId: number,
    length: bigint,
    dstIova: bigint,
    srcIova: bigint,
  ): bigint {
    if ((flags & ~7) !== 0) err('EOPNOTSUPP');
    if (length >= U64_MAX || srcIova >= U64_MAX || dstIova >= U64_MAX) err('EOVERFLOW');
    if ((flags & (R | W)) === 0) err('EINVAL');
    const src = this.ioasById(srcId);
    if (length === 0n) err('EINVAL');
    const last = srcIova + length - 1n;
    if (last > U64_MAX) err('EOVERFLOW');
    const slices: { pages: MPages; offset: bigint; length: bigint }[] = [];
    let cur = srcIova;
    for (;;) {
      const a = src.areas.find((x) => x.start <= cur && cur <= x.last) ?? err('ENOENT');
      const end = a.last < last ? a.last : last;
      slices.push({ pages: a.pages, offset: a.offset + (cur - a.start), length: end - cur + 1n });
      if (a.last >= last) break;
      cur = a.last + 1n;
    }
    const dst = this.ioasById(dstId);
    return this.mapSlices(
      dst,
      slices,
      length,
      flags & FIXED ? dstIova : undefined,
      flags & (R | W),
    );
  }

  /** UNMAP; areas removed before a straddling one stay removed (not atomic). */
  unmap(ioasId: number, iova: bigint, length: bigint): bigint {
    const ioas = this.ioasById(ioasId);
    if (iova === 0n && length === U64_MAX) {
      const n = ioas.areas.reduce((s, a) => s + a.last - a.start + 1n, 0n);
      ioas.areas = [];
      return n;
    }
    if (iova >= U64_MAX || length >= U64_MAX) err('EOVERFLOW');
    if (length === 0n) err('EINVAL');
    const last = iova + length - 1n;
    if (last > U64_MAX) err('EOVERFLOW');
    let n = 0n;
    for (const a of ioas.areas.filter((x) => hits(x, iova, last))) {
      if (a.start < iova || a.last > last) err('ENOENT');
      ioas.areas.splice(ioas.areas.indexOf(a), 1);
      n += a.last - a.start + 1n;
    }
    if (n === 0n) err('ENOENT');
    return n;
  }

  /** iopt_table_add_domain() of a new domain of `unit`: alignment, aperture, fill. */
  addDomainCheck(ioas: MIoas, dev: MDev): void {
    if (this.align(ioas) !== PAGE) {
      for (const a of ioas.areas) {
        const off = (a.pages.uptr + a.offset) & (PAGE - 1n);
        if (a.start % PAGE || (a.last - a.start + 1n) % PAGE || off) err('EADDRINUSE');
      }
    }
    const top = { start: dev.apLast + 1n, last: U64_MAX };
    if ([...ioas.areas, ...ioas.allowed].some((a) => hits(a, top.start, top.last))) {
      err('EADDRINUSE');
    }
    if (!ioas.areas.every((a) => this.areaPinnable(a))) err('EFAULT');
  }

  regionsConflict(ioas: MIoas, dev: MDev): boolean {
    return dev.regions.some((r) =>
      [...ioas.areas, ...ioas.allowed].some((a) => hits(a, r.start, r.last)),
    );
  }

  /** The device leaves its HWPT; an emptied automatic one is destroyed. */
  leave(dev: MDev): void {
    const old = dev.hwpt;
    if (!old) return;
    old.devs.delete(dev);
    dev.hwpt = undefined;
    const ioas = dev.ioas!;
    dev.ioas = undefined;
    if (old.auto && old.devs.size === 0) this.dropHwpt(ioas, old);
  }

  dropHwpt(ioas: MIoas, h: MHwpt): void {
    ioas.hwpts.splice(ioas.hwpts.indexOf(h), 1);
    this.ids.delete(h.id);
  }

  join(dev: MDev, ioas: MIoas, h: MHwpt): number {
    this.leave(dev);
    h.devs.add(dev);
    dev.hwpt = h;
    dev.ioas = ioas;
    return h.id;
  }

  /** Attach (or replace) to an IOAS: reuse an auto domain of the unit, else a new one. */
  attach(dev: MDev, ioas: MIoas): number {
    if (dev.ioas === ioas) return dev.hwpt!.id;
    const conflict = this.regionsConflict(ioas, dev);
    for (const cand of ioas.hwpts) {
      if (!cand.auto) continue;
      if (conflict) err('EADDRINUSE');
      if (cand.unit === dev.unit) return this.join(dev, ioas, cand);
    }
    // a new automatic domain: a fresh attach reserves the device's regions
    // before the domain is added; a replace adds the domain first
    if (!dev.hwpt && conflict) err('EADDRINUSE');
    this.addDomainCheck(ioas, dev);
    if (conflict) err('EADDRINUSE');
    const h: MHwpt = { id: this.lowestFree(), unit: dev.unit, auto: true, devs: new Set() };
    this.ids.add(h.id);
    ioas.hwpts.push(h);
    return this.join(dev, ioas, h);
  }

  hwptAlloc(dev: MDev, ptId: number): number {
    const ioas = this.ioas.find((i) => i.id === ptId) ?? err('EINVAL');
    this.addDomainCheck(ioas, dev);
    const h: MHwpt = { id: this.lowestFree(), unit: dev.unit, auto: false, devs: new Set() };
    this.ids.add(h.id);
    ioas.hwpts.push(h);
    return h.id;
  }

  hugePages(ioasId: number, op: number, val: bigint): bigint {
    const ioas = this.ioasById(ioasId);
    if (op === IOMMU_OPTION_OP.GET) return ioas.noHuge ? 0n : 1n;
    if (val === 1n) ioas.noHuge = false;
    else if (val === 0n) {
      if (ioas.noHuge) return val;
      if (ioas.hwpts.length > 0 && ioas.areas.length > 0) err('EINVAL');
      if (this.align(ioas) < PAGE) {
        for (const a of ioas.areas) {
          const off = (a.pages.uptr + a.offset) & (PAGE - 1n);
          if (a.start % PAGE || (a.last - a.start + 1n) % PAGE || off) err('EADDRINUSE');
        }
      }
      ioas.noHuge = true;
    } else err('EINVAL');
    return val;
  }

  allow(ioasId: number, list: [bigint, bigint][]): void {
    const ioas = this.ioasById(ioasId);
    const ranges: Range[] = [];
    for (const [start, last] of list) {
      if (start >= last) err('EINVAL');
      if (ranges.some((r) => hits(r, start, last))) err('EINVAL');
      ranges.push({ start, last });
    }
    const res = this.reserved(ioas);
    if (ranges.some((r) => res.some((x) => hits(x, r.start, r.last)))) err('EADDRINUSE');
    ioas.allowed = ranges.sort((a, b) => (a.start < b.start ? -1 : 1));
  }
}

/** Holes of the union of `used` inside `[start, last]`, ascending. */
function holes(used: Range[], start: bigint, last: bigint): Range[] {
  const sorted = used
    .filter((u) => hits(u, start, last))
    .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: Range[] = [];
  let cur = start;
  for (const u of sorted) {
    if (u.start > cur) out.push({ start: cur, last: u.start - 1n });
    if (u.last >= last) return out;
    if (u.last + 1n > cur) cur = u.last + 1n;
  }
  out.push({ start: cur, last });
  return out;
}

/** Run a model operation: its outcome (the model changed only as the kernel would). */
function predict(fn: () => bigint | number | undefined): Outcome {
  try {
    return { ok: fn() ?? 0 };
  } catch (e) {
    if (e instanceof ModelErr) return { errno: e.errno };
    throw e;
  }
}

// ---- commands --------------------------------------------------------------------

/** IOAS selector: 0 and 1 are the two IOASes, 2 an id that is no IOAS. */
type Sel = 0 | 1 | 2;

interface MapCmd {
  op: 'map';
  ioas: Sel;
  flags: number;
  va: bigint;
  length: bigint;
  iova: bigint;
}
type Cmd =
  | MapCmd
  | {
      op: 'unmap';
      ioas: Sel;
      kind: 'all' | 'areas' | 'cut' | 'raw';
      pick: number;
      count: number;
      iova: bigint;
      length: bigint;
    }
  | {
      op: 'copy';
      src: Sel;
      dst: Sel;
      flags: number;
      kind: 'rest' | 'two' | 'raw';
      pick: number;
      skip: bigint;
      length: bigint;
      srcIova: bigint;
      dstIova: bigint;
    }
  | { op: 'attach'; dev: number; ioas: 0 | 1 }
  | { op: 'detach'; dev: number }
  | { op: 'hwptAlloc'; dev: number; ioas: Sel }
  | { op: 'destroy'; target: 'manual' | 'auto' | 'ioas' | 'device' | 'bogus'; pick: number }
  | { op: 'allow'; ioas: Sel; ranges: [bigint, bigint][] }
  | { op: 'hugePages'; ioas: Sel; get: boolean; val: bigint }
  | { op: 'ranges'; ioas: 0 | 1 };

const sel: fc.Arbitrary<Sel> = fc.oneof(
  { arbitrary: fc.constantFrom<Sel>(0, 1), weight: 12 },
  { arbitrary: fc.constant<Sel>(2), weight: 1 },
);

const subOff = fc.oneof(
  { arbitrary: fc.constant(0n), weight: 6 },
  { arbitrary: fc.constantFrom(0x10n, 0x800n, 1n), weight: 1 },
);

const vaArb: fc.Arbitrary<bigint> = fc.oneof(
  {
    arbitrary: fc
      .tuple(fc.integer({ min: 0, max: 1023 }), subOff)
      .map(([p, o]) => RW_VA + BigInt(p) * PAGE + o),
    weight: 12,
  },
  {
    arbitrary: fc
      .tuple(fc.integer({ min: 0, max: 15 }), subOff)
      .map(([p, o]) => RO_VA + BigInt(p) * PAGE + o),
    weight: 2,
  },
  { arbitrary: fc.constantFrom(HOLE_VA, RW_VA + RW_LEN - PAGE, 0n, U64_MAX - 0xfffn), weight: 1 },
);

const lengthArb: fc.Arbitrary<bigint> = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 16 }).map((n) => BigInt(n) * PAGE), weight: 10 },
  { arbitrary: fc.constantFrom(0x10000n, SZ_2M, 0x20_1000n), weight: 2 },
  {
    arbitrary: fc.constantFrom(0n, 1n, 0x800n, 0x1800n, 1n << 63n, U64_MAX, U64_MAX - 1n),
    weight: 1,
  },
);

const iovaArb: fc.Arbitrary<bigint> = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 256 }).map((n) => BigInt(n) * PAGE), weight: 10 },
  {
    arbitrary: fc.constantFrom(
      0x800n,
      0x1_0010n,
      MSI.start - PAGE,
      MSI.start,
      MSI.last - 0xfffn,
      (1n << 39n) - PAGE,
      1n << 39n,
      (1n << 48n) - 2n * PAGE,
      1n << 48n,
      1n << 50n,
      U64_MAX - 0xfffn,
      U64_MAX,
    ),
    weight: 3,
  },
);

const flagsArb = fc.oneof(
  { arbitrary: fc.constantFrom(R | W, R | W, R, W), weight: 20 },
  { arbitrary: fc.constantFrom(0, 8, R | W | 0x10), weight: 1 },
);

const ALLOW_POOL: [bigint, bigint][] = [
  [0x1_0000n, 0x1_ffffn],
  [0x10_0000n, 0x2f_ffffn],
  [0x40_0000n, 0x7f_ffffn],
  [(1n << 39n) - 0x10_0000n, (1n << 39n) - 1n],
  [1n << 39n, (1n << 39n) + 0xf_ffffn],
  [1n << 40n, (1n << 40n) + 0xf_ffffn],
  [MSI.start, MSI.last],
  [1n << 50n, (1n << 50n) + 0xffffn],
  [0x5000n, 0x5000n],
  [0x2_0000n, 0x1_0000n],
  [0n, U64_MAX],
];

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  {
    arbitrary: fc.record({
      op: fc.constant('map' as const),
      ioas: sel,
      flags: fc.tuple(flagsArb, fc.boolean()).map(([f, fixed]) => f | (fixed ? FIXED : 0)),
      va: vaArb,
      length: lengthArb,
      iova: iovaArb,
    }),
    weight: 10,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('unmap' as const),
      ioas: sel,
      kind: fc.constantFrom<'all' | 'areas' | 'cut' | 'raw'>(
        'all',
        'areas',
        'areas',
        'areas',
        'cut',
        'raw',
      ),
      pick: fc.nat(),
      count: fc.integer({ min: 1, max: 3 }),
      iova: iovaArb,
      length: lengthArb,
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('copy' as const),
      src: sel,
      dst: sel,
      flags: fc.tuple(flagsArb, fc.boolean()).map(([f, fixed]) => f | (fixed ? FIXED : 0)),
      kind: fc.constantFrom<'rest' | 'two' | 'raw'>('rest', 'rest', 'rest', 'two', 'raw'),
      pick: fc.nat(),
      skip: fc.constantFrom(0n, 0n, PAGE, 2n * PAGE, 0x800n),
      length: lengthArb,
      srcIova: iovaArb,
      dstIova: iovaArb,
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('attach' as const),
      dev: fc.integer({ min: 0, max: 2 }),
      ioas: fc.constantFrom<0 | 1>(0, 1),
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('detach' as const),
      dev: fc.integer({ min: 0, max: 2 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('hwptAlloc' as const),
      dev: fc.integer({ min: 0, max: 2 }),
      ioas: sel,
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('destroy' as const),
      target: fc.constantFrom(
        'manual' as const,
        'manual' as const,
        'auto' as const,
        'ioas' as const,
        'device' as const,
        'bogus' as const,
      ),
      pick: fc.nat(),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('allow' as const),
      ioas: sel,
      ranges: fc.array(fc.constantFrom(...ALLOW_POOL), { maxLength: 3 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('hugePages' as const),
      ioas: sel,
      get: fc.boolean(),
      val: fc.constantFrom(0n, 0n, 1n, 2n),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('ranges' as const),
      ioas: fc.constantFrom<0 | 1>(0, 1),
    }),
    weight: 1,
  },
);

// ---- the system under test -----------------------------------------------------------

interface World {
  f: Fixture;
  m: Model;
  idevs: IommufdDevice[];
  buf: bigint;
}

function build(): World {
  const f = setup();
  const m = new Model();
  memAt(f, RW_VA, RW_LEN);
  memAt(f, RO_VA, RO_LEN, false);
  const buf = f.mem(PAGE);
  for (let i = 0; i < 2; i++) {
    const mi = m.newIoas();
    assert.equal(f.ioas(), mi.id);
    m.ioas.push(mi);
  }
  const unit = new IntelIommu();
  const idevs = [
    f.intelDevice({ iommu: unit }),
    f.intelDevice({ iommu: unit, reserved: intelReservedRegions() }),
    f.intelDevice({ addressWidth: 39, pgsizeBitmap: PAGE }),
  ];
  const units = [0, 0, 1];
  const apLast = [(1n << 48n) - 1n, (1n << 48n) - 1n, (1n << 39n) - 1n];
  idevs.forEach((idev, i) => {
    const id = m.lowestFree();
    m.ids.add(id);
    assert.equal(idev.id, id);
    m.devs.push({
      id,
      unit: units[i]!,
      apLast: apLast[i]!,
      regions: i === 1 ? [{ start: MSI.start, last: MSI.last }] : [],
      hwpt: undefined,
      ioas: undefined,
    });
  });
  return { f, m, idevs, buf };
}

const ioasId = (w: World, s: Sel) => (s === 2 ? BOGUS_ID : w.m.ioas[s]!.id);

/** A device call outside the ioctl boundary: Errno becomes an outcome, anything else is a bug. */
function devCall(fn: () => number): Outcome {
  try {
    return { ok: fn() };
  } catch (e) {
    if (e instanceof Errno) return { errno: e.code };
    throw e;
  }
}

function outcome(r: { errno: ErrnoName | undefined }, value: bigint | number): Outcome {
  return r.errno ? { errno: r.errno } : { ok: value };
}

/** Run one command on model and kernel; returns [expected, actual]. */
function step(w: World, c: Cmd): [Outcome, Outcome] {
  const { f, m } = w;
  switch (c.op) {
    case 'map': {
      const id = ioasId(w, c.ioas);
      const exp = predict(() => m.map(c, id));
      const r = f.call('IOMMU_IOAS_MAP', {
        flags: c.flags,
        ioas_id: id,
        user_va: c.va,
        length: c.length,
        iova: c.iova,
      });
      return [exp, outcome(r, r.out.iova as bigint)];
    }
    case 'unmap': {
      const id = ioasId(w, c.ioas);
      let { iova, length } = c;
      const areas = c.ioas === 2 ? [] : m.ioas[c.ioas]!.areas;
      if (c.kind === 'all') [iova, length] = [0n, U64_MAX];
      else if (c.kind !== 'raw' && areas.length > 0) {
        const i = c.pick % areas.length;
        const a = areas[i]!;
        if (c.kind === 'areas') {
          const b = areas[Math.min(i + c.count - 1, areas.length - 1)]!;
          [iova, length] = [a.start, b.last - a.start + 1n];
        } else [iova, length] = [BigInt.asUintN(64, a.start + PAGE), a.last - a.start + 1n];
      }
      const exp = predict(() => m.unmap(id, iova, length));
      const r = f.call('IOMMU_IOAS_UNMAP', { ioas_id: id, iova, length });
      return [exp, outcome(r, r.out.length as bigint)];
    }
    case 'copy': {
      const src = ioasId(w, c.src);
      const dst = ioasId(w, c.dst);
      let { srcIova, length } = c;
      const areas = c.src === 2 ? [] : m.ioas[c.src]!.areas;
      if (c.kind !== 'raw' && areas.length > 0) {
        const i = c.pick % areas.length;
        const a = areas[i]!;
        if (c.kind === 'rest') {
          srcIova = a.start + (c.skip <= a.last - a.start ? c.skip : 0n);
          length = a.last - srcIova + 1n;
        } else {
          const b = areas[i + 1] ?? a;
          [srcIova, length] = [a.start, b.last - a.start + 1n];
        }
      }
      const exp = predict(() => m.copy(c.flags, dst, src, length, c.dstIova, srcIova));
      const r = f.call('IOMMU_IOAS_COPY', {
        flags: c.flags,
        dst_ioas_id: dst,
        src_ioas_id: src,
        length,
        dst_iova: c.dstIova,
        src_iova: srcIova,
      });
      return [exp, outcome(r, r.out.dst_iova as bigint)];
    }
    case 'attach': {
      const mi = m.ioas[c.ioas]!;
      const exp = predict(() => m.attach(m.devs[c.dev]!, mi));
      return [exp, devCall(() => w.idevs[c.dev]!.attach(mi.id).id)];
    }
    case 'detach': {
      m.leave(m.devs[c.dev]!);
      return [
        { ok: 0 },
        devCall(() => {
          w.idevs[c.dev]!.detach();
          return 0;
        }),
      ];
    }
    case 'hwptAlloc': {
      const id = ioasId(w, c.ioas);
      const dev = m.devs[c.dev]!;
      const exp = predict(() => m.hwptAlloc(dev, id));
      const r = f.call('IOMMU_HWPT_ALLOC', { dev_id: dev.id, pt_id: id });
      return [exp, outcome(r, r.out.out_hwpt_id as number)];
    }
    case 'destroy': {
      const hwpts = m.ioas.flatMap((i) => i.hwpts.map((h) => [i, h] as const));
      let id = BOGUS_ID;
      let exp: Outcome = { errno: 'ENOENT' };
      let realloc: number | undefined;
      if (c.target === 'manual' || c.target === 'auto') {
        const list = hwpts.filter(([, h]) => h.auto === (c.target === 'auto'));
        const pick = list[c.pick % Math.max(1, list.length)];
        if (pick) {
          const [mi, h] = pick;
          id = h.id;
          if (h.devs.size > 0) exp = { errno: 'EBUSY' };
          else {
            m.dropHwpt(mi, h);
            exp = { ok: 0 };
          }
        }
      } else if (c.target === 'ioas') {
        realloc = c.pick % 2;
        const mi = m.ioas[realloc]!;
        id = mi.id;
        if (mi.hwpts.length > 0) {
          exp = { errno: 'EBUSY' };
          realloc = undefined;
        } else {
          m.ids.delete(mi.id);
          exp = { ok: 0 };
        }
      } else if (c.target === 'device') {
        id = m.devs[c.pick % m.devs.length]!.id;
        exp = { errno: 'EBUSY' };
      } else if (c.pick % 2) id = 0;
      const r = f.call('IOMMU_DESTROY', { id });
      const got = outcome(r, 0);
      if (realloc !== undefined && !r.errno) {
        // keep two IOASes: the new one gets the lowest free id
        m.ioas[realloc] = m.newIoas();
        assert.equal(f.ioas(), m.ioas[realloc]!.id, 'IOAS_ALLOC reuses the lowest free id');
      }
      return [exp, got];
    }
    case 'allow': {
      const id = ioasId(w, c.ioas);
      const exp = predict(() => {
        m.allow(id, c.ranges);
        return 0;
      });
      const r = f.call('IOMMU_IOAS_ALLOW_IOVAS', {
        ioas_id: id,
        num_iovas: c.ranges.length,
        allowed_iovas: writeRanges(f, c.ranges),
      });
      return [exp, outcome(r, 0)];
    }
    case 'hugePages': {
      const id = ioasId(w, c.ioas);
      const op = c.get ? IOMMU_OPTION_OP.GET : IOMMU_OPTION_OP.SET;
      const exp = predict(() => m.hugePages(id, op, c.val));
      const r = f.call('IOMMU_OPTION', {
        option_id: IOMMU_OPTION_ID.HUGE_PAGES,
        op,
        object_id: id,
        val64: c.val,
      });
      return [exp, outcome(r, r.out.val64 as bigint)];
    }
    case 'ranges': {
      const mi = m.ioas[c.ioas]!;
      const r = f.call('IOMMU_IOAS_IOVA_RANGES', {
        ioas_id: mi.id,
        num_iovas: 16,
        allowed_iovas: w.buf,
      });
      assert.equal(r.errno, undefined);
      const got = readRanges(f, w.buf, r.out.num_iovas as number);
      assert.deepEqual(
        got,
        m.iovaRanges(mi).map((x) => [x.start, x.last]),
        'IOVA_RANGES',
      );
      return [{ ok: m.align(mi) }, { ok: r.out.out_iova_alignment as bigint }];
    }
  }
}

/** The kernel's IOASes hold what the model says: areas, alignment, HWPTs. */
function compareState(w: World): void {
  for (const mi of w.m.ioas) {
    const ioas = w.f.ctx.get<Ioas>(mi.id, 'ioas');
    const what = `ioas ${mi.id}`;
    assert.deepEqual(
      [...ioas.iopt.areas].map((a) => [a.start, a.last, a.prot]),
      mi.areas.map((a) => [
        a.start,
        a.last,
        ((a.rw & R) !== 0 ? 1 : 0) | ((a.rw & W) !== 0 ? 2 : 0),
      ]),
      `${what}: areas`,
    );
    assert.equal(ioas.iopt.iovaAlignment, w.m.align(mi), `${what}: alignment`);
    assert.equal(ioas.iopt.disableLargePages, mi.noHuge, `${what}: large pages`);
    assert.deepEqual(
      ioas.hwpts.map((h) => (h as HwptPaging).id),
      mi.hwpts.map((h) => h.id),
      `${what}: HWPTs`,
    );
  }
  w.idevs.forEach((idev, i) => {
    assert.equal(idev.hwpt?.id, w.m.devs[i]!.hwpt?.id, `device ${idev.id}: attached HWPT`);
  });
  assert.equal(w.f.ctx.objectCount, w.m.ids.size, 'object count');
}

function run(cmds: Cmd[]): void {
  const w = build();
  try {
    cmds.forEach((c, i) => {
      const [exp, got] = step(w, c);
      assert.deepEqual(got, exp, `step ${i}: ${c.op}`);
      compareState(w);
      checkInvariants(w.f.ctx, w.f.kernel);
    });
  } finally {
    assert.deepEqual(w.f.kernel.bugs, [], 'no exception other than an errno crossed the boundary');
  }
  assert.equal(w.f.proc.close(w.f.fd), 0);
  for (const idev of w.idevs) idev.unbind();
  assert.equal(w.f.ctx.objectCount, 0, 'every object destroyed');
  assert.equal(w.f.kernel.memory.pinnedPages(), 0n, 'nothing pinned after close and unbind');
  assert.ok(w.idevs.every((d) => d.dev.group.domain === undefined));
}

const SEED = Number(process.env.UIOMMU_MODEL_SEED ?? 0x10_4d0e);
const RUNS = Number(process.env.UIOMMU_MODEL_RUNS ?? 200);

test('IOAS model: random MAP/UNMAP/COPY/attach/ALLOW/HUGE_PAGES programs match the reference', () => {
  fc.assert(
    fc.property(fc.array(cmdArb, { minLength: 1, maxLength: 30, size: 'max' }), (cmds) =>
      run(cmds),
    ),
    { seed: SEED, numRuns: RUNS, includeErrorInReport: true },
  );
});
