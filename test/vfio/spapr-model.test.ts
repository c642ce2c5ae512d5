/**
 * Model-based test of the SPAPR TCE v2 container (src/vfio/spapr/) on the
 * powernv preset: random programs of TCE_CREATE / TCE_REMOVE / MAP_DMA /
 * UNMAP_DMA / group SET_CONTAINER / UNSET_CONTAINER, checked after every
 * command against a small reference model with the invariant "every group
 * of a container sees the same windows and the same TCEs".
 *
 * Where the outcome follows a simple rule (spapr-tce.md §3–§6) the model
 * predicts it; a failed ioctl must change nothing — except that MAP, UNMAP
 * and CREATE first materialize the pending default 32-bit window, as the
 * kernel's tce_iommu_create_default_window() does before any check.
 *
 * @slow: model-based random programs (left out of npm run test:quick)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Layout } from '../../src/abi/layout.ts';
import {
  type VfioIoctlName,
  VfioIommuSpaprRegisterMemory,
  VfioIommuSpaprTceCreate,
  VfioIommuSpaprTceRemove,
  vfioIoctlNumber,
} from '../../src/abi/vfio.ts';
import type { Group } from '../../src/iommu/group.ts';
import { legacyContainerOf } from '../../src/vfio/container.ts';
import type { VfioSpaprTce } from '../../src/vfio/spapr/tce-container.ts';
import { VfioClient } from './client.ts';

const KIB = 1n << 10n;
const MIB = 1n << 20n;
const GIB = 1n << 30n;
const DDW = 1n << 59n;
const BASES = [0n, DDW] as const;
const RAM = 8n * MIB;
const DEFAULT_WINDOW: Win = { slot: 0, start: 0n, last: 2n * GIB - 1n, ps: 4n * KIB };
/** Group id → PHB (powernv preset: group 0 on phb0, groups 1 and 2 on phb1). */
const PHB = [0, 1, 1] as const;

const SEED = Number(process.env.UIOMMU_SPAPR_MODEL_SEED ?? 0x5ba9);
const RUNS = Number(process.env.UIOMMU_SPAPR_MODEL_RUNS ?? 60);

// ---- reference model ------------------------------------------------------------

interface Win {
  slot: 0 | 1;
  start: bigint;
  last: bigint;
  ps: bigint;
}

interface Tce {
  /** Offset of the TCE page in the registered RAM. */
  off: bigint;
  ps: bigint;
}

interface Model {
  pending: boolean;
  windows: Win[];
  /** TCE page start → backing. */
  tces: Map<bigint, Tce>;
  attached: number[];
}

function windowOf(m: Model, iova: bigint): Win | undefined {
  return m.windows.find((w) => w.start <= iova && iova <= w.last);
}

function dropTces(m: Model, start: bigint, last: bigint): void {
  for (const k of [...m.tces.keys()]) if (k >= start && k <= last) m.tces.delete(k);
}

/** MAP/UNMAP/CREATE: the pending default window comes first, whatever follows. */
function materialize(m: Model): void {
  if (!m.pending) return;
  m.pending = false;
  m.windows.push({ ...DEFAULT_WINDOW });
  m.windows.sort((a, b) => a.slot - b.slot);
}

// ---- commands -------------------------------------------------------------------

type Pos = 'slot0' | 'slot1' | 'end0' | 'end1' | 'far' | 'dma32edge';

type Cmd =
  | { k: 'create'; ps: number; sizeLog: number; bad: boolean }
  | { k: 'remove'; at: Pos; off: bigint }
  | {
      k: 'map';
      at: Pos;
      idx: bigint;
      unit: bigint;
      mis: bigint;
      count: bigint;
      sunit: bigint;
      smis: bigint;
      vaddr: bigint;
      other: boolean;
    }
  | {
      k: 'unmap';
      at: Pos;
      idx: bigint;
      unit: bigint;
      mis: bigint;
      count: bigint;
      sunit: bigint;
      smis: bigint;
    }
  | { k: 'add'; pick: number }
  | { k: 'del'; pick: number };

const posArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom<Pos>('slot0', 'slot1') },
  { weight: 2, arbitrary: fc.constantFrom<Pos>('end0', 'end1') },
  { weight: 1, arbitrary: fc.constantFrom<Pos>('far', 'dma32edge') },
);
const unitArb = fc.constantFrom(4n * KIB, 64n * KIB, 2n * MIB);
const misArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant(0n) },
  { weight: 1, arbitrary: fc.constantFrom(4n * KIB, 0x800n, 64n * KIB) },
);
/** True one time in ten. */
const rare = fc.nat(9).map((n) => n === 0);
const rangeFields = {
  at: posArb,
  idx: fc.bigInt(0n, 7n),
  unit: unitArb,
  mis: misArb,
  count: fc.bigInt(0n, 4n),
  sunit: unitArb,
  smis: misArb,
};

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant('create' as const),
      ps: fc.constantFrom(12, 16, 21),
      sizeLog: fc.constantFrom(21, 24, 28, 30, 32),
      bad: rare,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant('remove' as const),
      at: posArb,
      off: fc.bigInt(0n, 4n * MIB),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant('map' as const),
      ...rangeFields,
      vaddr: fc
        .bigInt(0n, 3n)
        .chain((h) => fc.bigInt(0n, 31n).map((s) => h * 2n * MIB + s * 64n * KIB)),
      other: rare,
    }),
  },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('unmap' as const), ...rangeFields }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('add' as const), pick: fc.nat(5) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('del' as const), pick: fc.nat(5) }) },
);

// ---- the system under test --------------------------------------------------------

class Sut extends VfioClient {
  container = -1;
  readonly groupFds: number[] = [];
  ram = 0n;
  other = 0n;
  private runs: { va: bigint; length: bigint; phys: bigint }[] = [];

  constructor(first: number) {
    super({ host: 'powernv', personality: { vfioContainer: 'type1' } });
    this.container = this.open('/dev/vfio/vfio').ret;
    for (const id of [0, 1, 2]) this.groupFds.push(this.open(`/dev/vfio/${id}`).ret);
    assert.equal(this.setContainer(this.groupFds[first]!, this.container).ret, 0);
    assert.equal(this.ioctl(this.container, 'VFIO_SET_IOMMU', 7n).ret, 0);
    const prot = { read: true, write: true };
    this.ram = this.proc.mm.mmap({ length: RAM, prot, hugetlb: true });
    this.other = this.proc.mm.mmap({ length: RAM, prot, hugetlb: true });
    const r = this.call('VFIO_IOMMU_SPAPR_REGISTER_MEMORY', VfioIommuSpaprRegisterMemory, {
      argsz: 24,
      vaddr: this.ram,
      size: RAM,
    });
    assert.equal(r.ret, 0);
    this.runs = this.proc.mm.resolve(this.ram, RAM, true);
  }

  call<V>(name: VfioIoctlName, layout: Layout<V>, value: Partial<V>) {
    return this.proc.call(this.container, vfioIoctlNumber(this.kernel.abi, name), layout, value);
  }

  /** Physical address of byte `off` of the registered RAM. */
  phys(off: bigint): bigint {
    const va = this.ram + off;
    const run = this.runs.find((r) => r.va <= va && va < r.va + r.length);
    assert.ok(run, `RAM offset 0x${off.toString(16)} not resolved`);
    return run.phys + (va - run.va);
  }

  group(id: number): Group {
    for (const d of this.kernel.host.devices.values()) {
      if (d.device.group.id === id) return d.device.group;
    }
    assert.fail(`no group ${id}`);
  }

  backend(): VfioSpaprTce {
    return legacyContainerOf(this.proc.file(this.container)!)!.backend as VfioSpaprTce;
  }
}

// ---- invariant ------------------------------------------------------------------

const hex = (x: bigint) => `0x${x.toString(16)}`;

function expectedPhys(s: Sut, m: Model, iova: bigint): bigint | undefined {
  const w = windowOf(m, iova);
  if (!w) return undefined;
  const key = iova - ((iova - w.start) % w.ps);
  const t = m.tces.get(key);
  return t ? s.phys(t.off + (iova - key)) : undefined;
}

function check(s: Sut, m: Model, probes: readonly bigint[], what: string): void {
  const groups = m.attached.map((id) => s.group(id));
  // windows: every attached group's domain has exactly the model's apertures
  for (const [i, g] of groups.entries()) {
    const id = m.attached[i]!;
    if (m.windows.length === 0) {
      assert.equal(g.domain, undefined, `${what}: group ${id} has a domain without windows`);
      continue;
    }
    assert.ok(g.domain, `${what}: group ${id} has no domain`);
    const aps = g.domain.apertures.map((a) => ({
      start: a.start,
      last: a.last,
      ps: a.table.config.pgsizeBitmap,
    }));
    assert.deepEqual(
      aps,
      m.windows.map((w) => ({ start: w.start, last: w.last, ps: w.ps })),
      `${what}: group ${id} windows`,
    );
  }
  // groups of one PHB share one domain; other PHBs have their own
  for (const a of m.attached) {
    for (const b of m.attached) {
      if (a < b && m.windows.length > 0) {
        const same = s.group(a).domain === s.group(b).domain;
        assert.equal(same, PHB[a] === PHB[b], `${what}: domain sharing of groups ${a}, ${b}`);
      }
    }
  }
  // detached groups are off every container domain
  const live = new Set(groups.map((g) => g.domain));
  for (const id of [0, 1, 2]) {
    if (m.attached.includes(id)) continue;
    const d = s.group(id).domain;
    assert.ok(
      d === undefined || !live.has(d),
      `${what}: detached group ${id} on a container domain`,
    );
  }
  // TCEs: every tracked TCE page (first and last byte; sampled when many) and the probes
  const keys = [...m.tces.keys()];
  const stride = Math.max(1, Math.floor(keys.length / 128));
  const iovas: bigint[] = [...probes];
  for (let i = 0; i < keys.length; i += stride) {
    const k = keys[i]!;
    iovas.push(k, k + m.tces.get(k)!.ps - 1n);
  }
  for (const w of m.windows) iovas.push(w.start, w.last, w.last + 1n, w.start + w.ps);
  for (const iova of iovas) {
    const want = expectedPhys(s, m, iova);
    for (const [i, g] of groups.entries()) {
      const got = g.domain?.iovaToPhys(iova);
      assert.equal(got, want, `${what}: group ${m.attached[i]} iova ${hex(iova)}`);
    }
  }
  // the container's mapping table holds exactly the model's TCE bytes
  let mapped = 0n;
  for (const a of s.backend().iopt.areas) mapped += a.last - a.start + 1n;
  let want = 0n;
  for (const t of m.tces.values()) want += t.ps;
  assert.equal(mapped, want, `${what}: mapped bytes`);
}

// ---- running a command ------------------------------------------------------------

function addressOf(m: Model, at: Pos): bigint {
  const w = (slot: 0 | 1) => m.windows.find((x) => x.slot === slot);
  switch (at) {
    case 'slot0':
      return BASES[0];
    case 'slot1':
      return BASES[1];
    case 'end0':
      return (w(0)?.last ?? 2n * GIB - 1n) + 1n;
    case 'end1':
      return (w(1)?.last ?? DDW + GIB - 1n) + 1n;
    case 'far':
      return 1n << 40n;
    case 'dma32edge':
      return 2n * GIB;
  }
}

/** IOVA and size of a MAP/UNMAP: `end*` positions count back from the window end. */
function rangeOf(
  m: Model,
  c: Extract<Cmd, { k: 'map' | 'unmap' }>,
): { iova: bigint; size: bigint } {
  const size = c.count * c.sunit + c.smis;
  const base = addressOf(m, c.at);
  const iova = c.at.startsWith('end')
    ? base - (c.idx + 1n) * c.unit + c.mis
    : base + c.idx * c.unit + c.mis;
  return { iova, size };
}

type Outcome = 'ok' | 'fail' | 'one' | 'any';

/** The return value of the last command's ioctl (0 when it issued none). */
let lastRet = 0;

function expectOutcome(
  ret: number,
  errno: string | undefined,
  want: Outcome,
  wantErrno: string | undefined,
  what: string,
): boolean {
  lastRet = ret;
  if (want === 'ok') assert.equal(ret, 0, `${what}: expected success, got ${errno}`);
  if (want === 'one') assert.equal(ret, 1, `${what}: expected the positive 1`);
  if (want === 'fail') {
    assert.ok(ret < 0, `${what}: expected failure, got ${ret}`);
    if (wantErrno) assert.equal(errno, wantErrno, what);
  }
  return ret === 0;
}

/** MAP/UNMAP parameter rules: the outcome, or undefined when the command goes through. */
function rangeRule(
  m: Model,
  iova: bigint,
  size: bigint,
  aligned: bigint[],
): [Outcome, string | undefined] | Win {
  const w = windowOf(m, iova);
  if (!w) return ['fail', 'ENXIO'];
  if (aligned.some((x) => x % w.ps !== 0n)) return ['fail', 'EINVAL'];
  if (iova % w.ps !== 0n) return ['one', undefined];
  if (size === 0n) return ['one', undefined]; // "no change" (ret 0 checked below)
  if (iova + size - 1n > w.last) return ['fail', 'EINVAL'];
  return w;
}

/** Runs `c` and keeps the model in sync; the ioctl's return value lands in {@link lastRet}. */
function step(s: Sut, m: Model, c: Cmd, what: string): void {
  lastRet = 0;
  switch (c.k) {
    case 'create': {
      materialize(m);
      const ps = c.bad ? 13 : c.ps;
      const size = 1n << BigInt(c.sizeLog);
      const r = s.call('VFIO_IOMMU_SPAPR_TCE_CREATE', VfioIommuSpaprTceCreate, {
        argsz: 40,
        page_shift: ps,
        window_size: size,
        levels: 1,
      });
      const slot = ([0, 1] as const).find((x) => !m.windows.some((w) => w.slot === x));
      if (slot === undefined) return void expectOutcome(r.ret, r.errno, 'fail', 'ENOSPC', what);
      if (c.bad) return void expectOutcome(r.ret, r.errno, 'fail', 'EINVAL', what);
      if (!expectOutcome(r.ret, r.errno, 'ok', undefined, what)) return;
      const start = BASES[slot];
      assert.equal(r.out.start_addr, start, `${what}: start_addr`);
      const ap = s.group(m.attached[0]!).domain?.apertures.find((a) => a.start === start);
      assert.ok(ap, `${what}: new window missing`);
      assert.ok(ap.last >= start + size - 1n, `${what}: window shorter than asked`);
      m.windows.push({ slot, start, last: ap.last, ps: 1n << BigInt(ps) });
      m.windows.sort((a, b) => a.slot - b.slot);
      return;
    }
    case 'remove': {
      const inWin = windowOf(m, addressOf(m, c.at));
      const addr = addressOf(m, c.at) + (c.at.startsWith('slot') && inWin ? c.off : 0n);
      const r = s.call('VFIO_IOMMU_SPAPR_TCE_REMOVE', VfioIommuSpaprTceRemove, {
        argsz: 16,
        flags: 0,
        start_addr: addr,
      });
      if (m.pending && addr === 0n) {
        expectOutcome(r.ret, r.errno, 'ok', undefined, what);
        m.pending = false;
        return;
      }
      const w = windowOf(m, addr);
      if (!w) return void expectOutcome(r.ret, r.errno, 'fail', 'EINVAL', what);
      expectOutcome(r.ret, r.errno, 'ok', undefined, what);
      dropTces(m, w.start, w.last);
      m.windows = m.windows.filter((x) => x !== w);
      return;
    }
    case 'map': {
      materialize(m);
      const { iova, size } = rangeOf(m, c);
      const vaddr = (c.other ? s.other : s.ram) + c.vaddr + c.smis;
      const r = s.mapDma(s.container, vaddr, iova, size);
      const rule = rangeRule(m, iova, size, [size, vaddr]);
      if (Array.isArray(rule)) {
        if (size === 0n && rule[0] === 'one' && iova % (windowOf(m, iova)?.ps ?? 1n) === 0n) {
          assert.equal(r.ret, 0, `${what}: size 0`);
        } else expectOutcome(r.ret, r.errno, rule[0], rule[1], what);
        return;
      }
      const w = rule;
      const off = vaddr - s.ram;
      const inRam = !c.other && off + size <= RAM;
      if (!inRam) return void expectOutcome(r.ret, r.errno, 'fail', 'EINVAL', what);
      // 2 MiB TCE pages need the region's backing pages to be as large: either outcome
      if (!expectOutcome(r.ret, r.errno, w.ps > 64n * KIB ? 'any' : 'ok', undefined, what)) return;
      dropTces(m, iova, iova + size - 1n);
      for (let p = 0n; p < size; p += w.ps) m.tces.set(iova + p, { off: off + p, ps: w.ps });
      return;
    }
    case 'unmap': {
      materialize(m);
      const { iova, size } = rangeOf(m, c);
      const r = s.unmapDma(s.container, iova, size);
      const rule = rangeRule(m, iova, size, [size]);
      if (Array.isArray(rule)) {
        if (size === 0n && rule[0] === 'one' && iova % (windowOf(m, iova)?.ps ?? 1n) === 0n) {
          assert.equal(r.ret, 0, `${what}: size 0`);
        } else expectOutcome(r.ret, r.errno, rule[0], rule[1], what);
        return;
      }
      expectOutcome(r.ret, r.errno, 'ok', undefined, what);
      dropTces(m, iova, iova + size - 1n);
      return;
    }
    case 'add': {
      const free = [0, 1, 2].filter((id) => !m.attached.includes(id));
      if (free.length === 0) return;
      const id = free[c.pick % free.length]!;
      const r = s.setContainer(s.groupFds[id]!, s.container);
      expectOutcome(r.ret, r.errno, 'ok', undefined, what);
      m.attached.unshift(id);
      return;
    }
    case 'del': {
      if (m.attached.length < 2) return;
      const id = m.attached[c.pick % m.attached.length]!;
      const r = s.ioctl(s.groupFds[id]!, 'VFIO_GROUP_UNSET_CONTAINER');
      expectOutcome(r.ret, r.errno, 'ok', undefined, what);
      // ≥v6.11: detaching a group clears every TCE of the container
      m.tces.clear();
      m.attached = m.attached.filter((x) => x !== id);
      return;
    }
  }
}

function describeCmd(c: Cmd): string {
  return JSON.stringify(c, (_k, v) => (typeof v === 'bigint' ? hex(v) : v));
}

/** The SUT state a failed ioctl must not touch: mapping areas and the groups' domains. */
function snapshot(s: Sut, m: Model) {
  return {
    areas: [...s.backend().iopt.areas].map((a) => [a.start, a.last, a.pagesOffset, a.prot]),
    domains: m.attached.map((id) => s.group(id).domain),
  };
}

function run(first: number, cmds: readonly { cmd: Cmd; probes: bigint[] }[]): void {
  const s = new Sut(first);
  const m: Model = { pending: true, windows: [], tces: new Map(), attached: [first] };
  check(s, m, [], 'setup');
  for (const [i, { cmd, probes }] of cmds.entries()) {
    const what = `#${i} ${describeCmd(cmd)}`;
    const before = snapshot(s, m);
    const defaultDue = m.pending && cmd.k !== 'remove' && cmd.k !== 'add' && cmd.k !== 'del';
    step(s, m, cmd, what);
    if (lastRet < 0) {
      // a failed ioctl changed nothing (but the pending default window may have come)
      const after = snapshot(s, m);
      assert.deepEqual(after.areas, before.areas, `${what}: failed ioctl changed TCEs`);
      if (!defaultDue) {
        assert.deepEqual(after.domains, before.domains, `${what}: failed ioctl changed domains`);
      }
    }
    check(s, m, probes, what);
  }
}

const probeArb = fc.array(
  fc.tuple(fc.constantFrom(0n, DDW, 2n * GIB), fc.bigInt(0n, 64n * MIB)).map(([b, o]) => b + o),
  { maxLength: 3 },
);

test('SPAPR TCE v2 model: windows and TCEs stay identical across every attached group', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(0, 1, 2),
      fc.array(fc.record({ cmd: cmdArb, probes: probeArb }), {
        minLength: 1,
        maxLength: 25,
        size: 'max',
      }),
      (first, cmds) => run(first, cmds),
    ),
    { seed: SEED, numRuns: RUNS, includeErrorInReport: true },
  );
});
