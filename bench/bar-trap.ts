/**
 * The cost of a trapped BAR register access (docs/device-mmap.md): one
 * 4-byte load and one 4-byte store through a mapped register page, against
 * a plain load from a memory page of the same mapping and against the
 * engine round trip alone (a 4-byte pread of the register), all measured
 * in one run of native/build/bench/bar-trap under `uiommu run --host x86`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { arch } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const UIOMMU = join(ROOT, 'bin/uiommu.js');
const PROGRAM = join(ROOT, 'native/build/bench/bar-trap');

export interface BarTrapResult {
  trapReadNs: number;
  trapWriteNs: number;
  engineNs: number;
  memReadNs: number;
}

/** undefined when the program is not built, or not on x86-64, or it skipped. */
export function benchBarTrap(calls = 5000): BarTrapResult | undefined {
  if (!existsSync(PROGRAM) || arch() !== 'x64') return undefined;
  const out = execFileSync(
    process.execPath,
    [UIOMMU, 'run', '--host', 'x86', '--', PROGRAM, String(calls)],
    { encoding: 'utf8' },
  );
  const num = (key: string) => Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(out)?.[1]);
  if (/^skip /m.test(out)) return undefined;
  return {
    trapReadNs: num('trap_read_ns'),
    trapWriteNs: num('trap_write_ns'),
    engineNs: num('engine_ns'),
    memReadNs: num('mem_read_cns') / 100,
  };
}
