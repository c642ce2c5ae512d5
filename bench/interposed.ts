/**
 * The cost of running a real program under `uiommu run`: one interposed
 * ioctl round trip (IOMMU_IOAS_IOVA_RANGES through the preload library, the
 * socket and the engine) against a native ioctl (FIONREAD on a pipe), both
 * timed call by call inside native/build/bench/ioctl-rtt; and the wall-time
 * overhead of `uiommu run -- true` over `true`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { now } from './harness.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const UIOMMU = join(ROOT, 'bin/uiommu.js');
const RTT = join(ROOT, 'native/build/bench/ioctl-rtt');

export interface InterposedResult {
  nativeNs: number;
  /** Unix socket round trip between two C processes: the floor for any out-of-process engine. */
  ipcFloorNs: number;
  interposedNs: number;
  /** Median wall ms of `uiommu run -- true` and of `true`. */
  runTrueMs: number;
  trueMs: number;
}

function medianMs(runs: number, fn: () => void): number {
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = now();
    fn();
    t.push(now() - t0);
  }
  t.sort((a, b) => a - b);
  return t[runs >> 1]!;
}

/** undefined when the native parts are not built (make -C native). */
export function benchInterposed(calls = 20000, runs = 7): InterposedResult | undefined {
  if (!existsSync(RTT)) return undefined;
  const out = execFileSync(process.execPath, [UIOMMU, 'run', '--', RTT, String(calls)], {
    encoding: 'utf8',
  });
  const num = (key: string) => Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(out)?.[1]);
  const runTrueMs = medianMs(runs, () =>
    execFileSync(process.execPath, [UIOMMU, 'run', '--', 'true']),
  );
  const trueMs = medianMs(runs, () => execFileSync('true'));
  return {
    nativeNs: num('native_ns'),
    ipcFloorNs: num('ipc_floor_ns'),
    interposedNs: num('iommufd_ns'),
    runTrueMs,
    trueMs,
  };
}
