/**
 * The cost of running a real program under `uiommu run`: one interposed
 * ioctl round trip (IOMMU_IOAS_IOVA_RANGES through the preload library, the
 * socket and the engine) against a native ioctl (FIONREAD on a pipe), both
 * timed call by call inside native/build/bench/ioctl-rtt; and the wall-time
 * overhead of `uiommu run -- true` over `true`.
 */
import { execFileSync } from 'node:child_process';
import { now } from './harness.ts';
import { runNativeBench, UIOMMU } from './native-run.ts';

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
  const out = runNativeBench('ioctl-rtt', [String(calls)]);
  if (!out) return undefined;
  const runTrueMs = medianMs(runs, () =>
    execFileSync(process.execPath, [UIOMMU, 'run', '--', 'true']),
  );
  const trueMs = medianMs(runs, () => execFileSync('true'));
  return {
    nativeNs: out.num('native_ns'),
    ipcFloorNs: out.num('ipc_floor_ns'),
    interposedNs: out.num('iommufd_ns'),
    runTrueMs,
    trueMs,
  };
}
