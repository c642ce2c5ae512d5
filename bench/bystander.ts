/**
 * Part 9: fairness (issue 11). A bystander client's median round trip
 * (IOMMU_IOAS_IOVA_RANGES) while another client makes one huge call (an
 * IOAS_ALLOC whose 256 MiB zeroed struct tail is checked off the engine's
 * thread) and while another floods the socket with garbage frames, each as
 * a ratio to the bystander's idle round trip in the same run
 * (native/build/bench/bystander under `uiommu run`). Bar: ≤ 2× (issue 11).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { load } from './call-path.ts';
import type { Row } from './harness.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'native/build/bench/bystander');

/** The part's rows, or why it was skipped. */
export function benchBystander(): Row[] | string {
  if (!existsSync(BIN)) return 'native/build/bench/bystander missing (make -C native)';
  const text = execFileSync(process.execPath, [join(ROOT, 'bin/uiommu.js'), 'run', '--', BIN], {
    encoding: 'utf8',
  });
  const line = (key: string) =>
    (new RegExp(`^${key} (.*)$`, 'm').exec(text)?.[1] ?? '').split(' ').map(Number);
  const [idle] = line('idle_ns');
  const [huge, hugeCalls] = line('huge_ns');
  const [flood, floodCalls, frames] = line('flood_ns');
  if (!idle || !huge || !flood) return `unexpected output: ${text}`;
  const ratio = (metric: string, value: number, note: string): Row => ({
    id: '9',
    metric,
    value,
    unit: '×',
    bar: '≤ 2×',
    pass: value <= 2,
    note,
  });
  return [
    {
      id: '9',
      metric: 'bystander round trip, idle engine (median of 2,000)',
      value: idle,
      unit: 'ns',
      note: `IOMMU_IOAS_IOVA_RANGES; load ${load()}`,
    },
    ratio(
      'bystander round trip during a huge call / idle',
      huge / idle,
      `IOAS_ALLOC size 0x10000000 over zeroed memory from another client: ${hugeCalls} round trips during it`,
    ),
    ratio(
      'bystander round trip during a garbage flood / idle',
      flood / idle,
      `another client's raw connection sending random frames, 32 in flight: ${floodCalls} round trips and ${frames} frames in 1 s`,
    ),
  ];
}
