/**
 * The cost of running a real program under `uiommu run`: one interposed
 * ioctl round trip (IOMMU_IOAS_IOVA_RANGES through the preload library, the
 * socket and the engine) against a native ioctl (FIONREAD on a pipe), both
 * timed call by call inside native/build/bench/ioctl-rtt; and the wall-time
 * overhead of `uiommu run -- true` over `true`, run as a user types it: the
 * npm bin (bin/uiommu, the native launcher when built), and for reference
 * the Node CLI (node bin/uiommu.js), in alternation.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { now } from './harness.ts';
import { ROOT, runNativeBench, UIOMMU } from './native-run.ts';

/** The npm bin: what `uiommu` on a user's PATH runs. */
const UIOMMU_BIN = join(ROOT, 'bin/uiommu');

export interface InterposedResult {
  nativeNs: number;
  /** Unix socket round trip between two C processes: the floor for any out-of-process engine. */
  ipcFloorNs: number;
  interposedNs: number;
  /** Median wall ms of `uiommu run -- true` (the npm bin), of `node bin/uiommu.js run -- true`, and of `true`. */
  runTrueMs: number;
  nodeRunTrueMs: number;
  trueMs: number;
}

/** The median wall ms of each of `fns`, run `runs` times in turn (one of each, then again). */
function medianMs(runs: number, fns: readonly (() => void)[]): number[] {
  const t: number[][] = fns.map(() => []);
  for (let i = 0; i < runs; i++) {
    fns.forEach((fn, k) => {
      const t0 = now();
      fn();
      t[k]!.push(now() - t0);
    });
  }
  return t.map((list) => list.sort((a, b) => a - b)[runs >> 1]!);
}

/** undefined when the native parts are not built (make -C native). */
export function benchInterposed(calls = 20000, runs = 7): InterposedResult | undefined {
  const out = runNativeBench('ioctl-rtt', [String(calls)]);
  if (!out) return undefined;
  const [runTrueMs, nodeRunTrueMs, trueMs] = medianMs(runs, [
    () => execFileSync(UIOMMU_BIN, ['run', '--', 'true']),
    () => execFileSync(process.execPath, [UIOMMU, 'run', '--', 'true']),
    () => execFileSync('true'),
  ]) as [number, number, number];
  return {
    nativeNs: out.num('native_ns'),
    ipcFloorNs: out.num('ipc_floor_ns'),
    interposedNs: out.num('iommufd_ns'),
    runTrueMs,
    nodeRunTrueMs,
    trueMs,
  };
}
