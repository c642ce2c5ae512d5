/**
 * /proc/<pid>/task/<tid>/fail-nth (fs/proc/base.c): read gives the task's
 * counter as "%u\n" (from the file offset), write sets it from an unsigned
 * number (kstrtouint, base 0, one trailing newline allowed: EINVAL
 * otherwise, ERANGE past 2^32-1) and answers the whole count.
 */
import { fail } from '../abi/errno.ts';
import { failNth, setFailNth } from '../iommu/fault-inject.ts';
import type { FileOps } from '../kernel/file.ts';

/** The path of a task's fail-nth file: pid and tid, or undefined for another path. */
export function failNthPath(path: string): { pid: number; tid: number } | undefined {
  const m = /^\/proc\/([1-9][0-9]{0,9})\/task\/([1-9][0-9]{0,9})\/fail-nth$/.exec(path);
  return m ? { pid: Number(m[1]), tid: Number(m[2]) } : undefined;
}

/** kstrtouint(s, 0): decimal, 0x hex or 0 octal, an optional '+', one trailing newline. */
function parseUint(text: string): number {
  const m = /^\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\n?$/.exec(text);
  if (!m) fail('EINVAL', `fail-nth: "${text}" is no unsigned number`, 'kstrtouint');
  const s = m[1]!;
  const n = /^0[xX]/.test(s)
    ? BigInt(s)
    : s.startsWith('0')
      ? BigInt(`0o${s.slice(1) || '0'}`)
      : BigInt(s);
  if (n > 0xffff_ffffn) fail('ERANGE', 'fail-nth: above UINT_MAX', 'kstrtouint');
  return Number(n);
}

export function failNthFile(tid: number): FileOps {
  return {
    kind: 'fail-nth',
    read(_caller, length, offset) {
      const text = new TextEncoder().encode(`${failNth(tid)}\n`);
      const at = Number(offset ?? 0n);
      return text.subarray(Math.min(at, text.length), Math.min(at + length, text.length));
    },
    write(_caller, data) {
      setFailNth(tid, parseUint(new TextDecoder('latin1').decode(data)));
      return data.length;
    },
    release() {},
  };
}
