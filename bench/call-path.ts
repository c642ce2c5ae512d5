/**
 * The call path of real programs under `uiommu run` (issue 10), each figure
 * with its reference measured in the same run:
 *  - the interposed round trip (IOMMU_IOAS_IOVA_RANGES, native/build/bench/
 *    ioctl-rtt) with the engine and the client pinned to one CPU and to two
 *    CPUs, against a blocking C-to-C Unix socket round trip placed the same;
 *  - 262,144 sequential 4 KiB VFIO_IOMMU_UNMAP_DMA over a 1 GiB SPAPR TCE v2
 *    window (native/build/bench/spapr-unmap, powernv preset): the pseries
 *    guest clearing its default window;
 *  - the kernel's iommufd selftest (built outside the repository, see
 *    ../shared/yardsticks.md) under uiommu (the npm bin), and the same source
 *    built static and booted with the reference kernel under QEMU TCG, boot
 *    included: several runs of each in alternation, compared by medians.
 * The machine's load average is part of the result: every figure here is a
 * wall time on a shared machine.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, homedir, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { now } from './harness.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const UIOMMU = join(ROOT, 'bin/uiommu.js');
/** The npm bin, as a user types `uiommu` (the native launcher when built). */
const UIOMMU_BIN = join(ROOT, 'bin/uiommu');
const RTT = join(ROOT, 'native/build/bench/ioctl-rtt');
const UNMAP = join(ROOT, 'native/build/bench/spapr-unmap');
const CACHE = join(homedir(), '.cache/uiommu');
/** The selftest binary (dynamic, for uiommu) and its static twin (for the guest). */
const SELFTEST = process.env.UIOMMU_SELFTEST_BIN ?? join(CACHE, 'bench/iommufd');
const REF_KERNEL = process.env.UIOMMU_REF_KERNEL ?? join(CACHE, 'refkernel/bzImage-legacy');
/** boot.sh of ../shared/refkernel, from the main checkout or a worktree beside it. */
const REF_BOOT =
  process.env.UIOMMU_REF_BOOT ??
  [join(ROOT, '../shared/refkernel/boot.sh'), join(ROOT, '../../shared/refkernel/boot.sh')].find(
    (p) => existsSync(p),
  ) ??
  '../shared/refkernel/boot.sh';

/** The 1-minute load average, as printed with each figure. */
export const load = (): string => loadavg()[0]!.toFixed(2);

export interface RoundTrip {
  placement: 'one CPU' | 'two CPUs';
  interposedNs: number;
  floorNs: number;
}

/** Median round trips with the engine on CPU 0 and the client (and the echo process) placed. */
export function benchRoundTrips(calls = 20000): RoundTrip[] | string {
  if (!existsSync(RTT)) return 'native/build/bench/ioctl-rtt missing (make -C native)';
  if (cpus().length < 2) return 'needs two CPUs';
  if (spawnSync('taskset', ['-c', '0', 'true']).status !== 0) return 'taskset unavailable';
  const out: RoundTrip[] = [];
  for (const [placement, client] of [
    ['one CPU', '0'],
    ['two CPUs', '1'],
  ] as const) {
    const text = execFileSync(
      'taskset',
      [
        '-c',
        '0',
        process.execPath,
        UIOMMU,
        'run',
        '--',
        'taskset',
        '-c',
        client,
        RTT,
        String(calls),
        '0',
      ],
      { encoding: 'utf8' },
    );
    const num = (key: string) => Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(text)?.[1]);
    out.push({ placement, interposedNs: num('iommufd_ns'), floorNs: num('ipc_floor_ns') });
  }
  return out;
}

/**
 * Seconds for `count` UNMAP_DMA (timed inside the program), or why not;
 * `leases` false runs them with the library's unmap leases off
 * (UIOMMU_UNMAP_LEASE=0: every call a round trip).
 */
export function benchUnmapStorm(count = 262144, leases = true): number | string {
  if (!existsSync(UNMAP)) return 'native/build/bench/spapr-unmap missing (make -C native)';
  const text = execFileSync(
    process.execPath,
    [UIOMMU, 'run', '--host', 'powernv', '--', UNMAP, String(count)],
    { encoding: 'utf8', env: { ...process.env, UIOMMU_UNMAP_LEASE: leases ? '1' : '0' } },
  );
  const ns = Number(/^unmap_total_ns (\d+)$/m.exec(text)?.[1]);
  return ns / 1e9;
}

export interface SelftestRun {
  seconds: number;
  /** The TAP totals line ("pass:202 fail:39 ..."). */
  totals: string;
}

/** Both sides of the selftest row, run in alternation (uiommu, TCG, uiommu, TCG, ...). */
export interface SelftestSides {
  /** Every run under uiommu, in order. */
  ours: SelftestRun[];
  /** Every run on the reference kernel under TCG, in order, or why there are none. */
  ref: SelftestRun[] | string;
  /** The 1-minute load average before the first run and after the last. */
  loadBefore: string;
  loadAfter: string;
}

/**
 * The kernel's iommufd selftest `rounds` times under uiommu and, when the
 * static twin and the reference kernel are there, as often on that kernel
 * under TCG, alternating so that a change of the machine's load falls on
 * both sides; or why the selftest binary is absent. One run of either side
 * moves by 20% here, so the row compares medians.
 */
export function benchSelftestSides(rounds = 3): SelftestSides | string {
  if (!existsSync(SELFTEST)) {
    return `no selftest binary at ${SELFTEST} (build it as ../shared/yardsticks.md says, or set UIOMMU_SELFTEST_BIN)`;
  }
  const refMissing = tcgMissing();
  const loadBefore = load();
  const ours: SelftestRun[] = [];
  const ref: SelftestRun[] = [];
  for (let i = 0; i < rounds; i++) {
    ours.push(selftestUnderUiommu());
    if (!refMissing) ref.push(selftestUnderTcg());
  }
  return { ours, ref: refMissing ?? ref, loadBefore, loadAfter: load() };
}

/**
 * The selftest under `uiommu run` as a user types it (the npm bin), with
 * the 7.2 profile, since the binary is Debian's 7.2 build (under 6.18's, 39
 * of its runs fail on 7.2-only ABI).
 */
function selftestUnderUiommu(): SelftestRun {
  const t0 = now();
  const r = spawnSync(
    UIOMMU_BIN,
    ['run', '--host', 'mock', '--kernel', '7.2', '--cap-add', 'sys_resource', '--', SELFTEST],
    { encoding: 'utf8', maxBuffer: 64 << 20 },
  );
  return { seconds: (now() - t0) / 1000, totals: totalsOf(r.stdout) };
}

/** Why the TCG side cannot run, or undefined when it can. */
function tcgMissing(): string | undefined {
  if (!existsSync(`${SELFTEST}-static`)) return `no static selftest at ${SELFTEST}-static`;
  if (!existsSync(REF_KERNEL) || !existsSync(REF_BOOT)) {
    return `no reference kernel (${REF_KERNEL}, ${REF_BOOT})`;
  }
  return undefined;
}

/** `${SELFTEST}-static` booted with the reference kernel under TCG, boot included. */
function selftestUnderTcg(): SelftestRun {
  const dir = mkdtempSync(join(tmpdir(), 'uiommu-bench-'));
  try {
    execFileSync('cp', [`${SELFTEST}-static`, join(dir, 'iommufd')]);
    writeFileSync(join(dir, 'run.sh'), './iommufd > out.txt 2>&1; grep Totals out.txt\n');
    const t0 = now();
    const r = spawnSync('bash', [REF_BOOT, REF_KERNEL, dir], { encoding: 'utf8' });
    return { seconds: (now() - t0) / 1000, totals: totalsOf(r.stdout) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function totalsOf(tap: string): string {
  return /# Totals: (.*)$/m.exec(tap)?.[1]?.trim() ?? 'no totals line';
}
