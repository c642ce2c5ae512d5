/**
 * Small helpers for the benchmarks: a forced-GC heap reading, timers that
 * run a workload in batches until enough time has passed, and the result
 * rows printed as one markdown table. Nothing here ever fails the process:
 * a missed bar is a row marked MISS.
 */

import v8 from 'node:v8';

// Bytecode of functions idle for a few GCs is flushed (and recompiled on the
// next call); with a gc() before and after every heap reading that happens
// in the middle of measurements, by ±100 KB. Benchmarks keep their bytecode.
v8.setFlagsFromString('--no-flush-bytecode');

const gcFn = (globalThis as { gc?: () => void }).gc;

/** True when node runs with --expose-gc (heap figures are meaningless without it). */
export const hasGc = gcFn !== undefined;

/**
 * heapUsed after two full collections, less V8's code spaces: JIT code is
 * installed and flushed at moments of V8's choosing (±150 KB between two
 * readings here), which would drown the data structures being measured.
 */
export function heapAfterGc(): number {
  gcFn?.();
  gcFn?.();
  let code = 0;
  for (const s of v8.getHeapSpaceStatistics()) {
    if (s.space_name.startsWith('code')) code += s.space_used_size;
  }
  return process.memoryUsage().heapUsed - code;
}

/** Milliseconds since some origin, sub-microsecond resolution. */
export const now = (): number => performance.now();

/**
 * Run `batch(n)` (which performs n operations) repeatedly until at least
 * `minMs` and `minBatches` have passed; returns the median nanoseconds per
 * operation over the batches.
 */
export function nsPerOp(
  batch: (n: number) => void,
  n: number,
  opts: { minMs?: number; minBatches?: number; warmup?: number } = {},
): number {
  const minMs = opts.minMs ?? 300;
  const minBatches = opts.minBatches ?? 5;
  for (let w = 0; w < (opts.warmup ?? 1); w++) batch(n);
  const per: number[] = [];
  const t0 = now();
  while (per.length < minBatches || now() - t0 < minMs) {
    const t = now();
    batch(n);
    per.push(((now() - t) * 1e6) / n);
  }
  return median(per);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** One row of the result table. */
export interface Row {
  id: string;
  metric: string;
  value: number;
  unit: string;
  /** Human-readable bar, e.g. "≤ 3×"; absent for informational rows. */
  bar?: string;
  /** Whether the bar is met; absent for informational rows. */
  pass?: boolean;
  note?: string;
}

/** Format a number with a sensible number of significant digits. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 1e6) return `${(x / 1e6).toFixed(2)} M`;
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(3);
}

export function markdownTable(rows: Row[]): string {
  const lines = ['| # | metric | value | bar | result | notes |', '|---|---|---:|---|---|---|'];
  for (const r of rows) {
    const result = r.pass === undefined ? '—' : r.pass ? 'PASS' : '**MISS**';
    lines.push(
      `| ${r.id} | ${r.metric} | ${fmt(r.value)} ${r.unit} | ${r.bar ?? '—'} | ${result} | ${r.note ?? ''} |`,
    );
  }
  return lines.join('\n');
}
