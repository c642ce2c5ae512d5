/**
 * A native benchmark program (native/build/bench/NAME, built by
 * `make -C native`) run under `uiommu run`, and the `key <integer>` lines
 * it prints. Shared by the parts that time inside such a program
 * (interposed.ts, bar-trap.ts).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The CLI the parts run programs with. */
export const UIOMMU = join(ROOT, 'bin/uiommu.js');

/** What a program printed: `num(key)` is the integer of its `key N` line (NaN without one). */
export interface NativeOutput {
  readonly text: string;
  num(key: string): number;
}

/**
 * Run native/build/bench/`name` with `args` under `uiommu run` (with
 * `runArgs` before `--`); undefined when the program is not built.
 */
export function runNativeBench(
  name: string,
  args: readonly string[],
  runArgs: readonly string[] = [],
): NativeOutput | undefined {
  const program = join(ROOT, 'native/build/bench', name);
  if (!existsSync(program)) return undefined;
  const text = execFileSync(process.execPath, [UIOMMU, 'run', ...runArgs, '--', program, ...args], {
    encoding: 'utf8',
  });
  return { text, num: (key) => Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(text)?.[1]) };
}
