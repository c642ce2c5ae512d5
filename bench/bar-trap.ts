/**
 * The cost of a trapped BAR register access (docs/device-mmap.md): one
 * 4-byte load and one 4-byte store through a mapped register page, against
 * a plain load from a memory page of the same mapping and against the
 * engine round trip alone (a 4-byte pread of the register), all measured
 * in one run of native/build/bench/bar-trap under `uiommu run --host x86`.
 */
import { arch } from 'node:os';
import { runNativeBench } from './native-run.ts';

export interface BarTrapResult {
  trapReadNs: number;
  trapWriteNs: number;
  engineNs: number;
  memReadNs: number;
}

/** undefined when the program is not built, or not on x86-64, or it skipped. */
export function benchBarTrap(calls = 5000): BarTrapResult | undefined {
  if (arch() !== 'x64') return undefined;
  const out = runNativeBench('bar-trap', [String(calls)], ['--host', 'x86']);
  if (!out || /^skip /m.test(out.text)) return undefined;
  return {
    trapReadNs: out.num('trap_read_ns'),
    trapWriteNs: out.num('trap_write_ns'),
    engineNs: out.num('engine_ns'),
    memReadNs: out.num('mem_read_cns') / 100,
  };
}
