/**
 * /proc/<pid>/task/<tid>/fail-nth (fs/proc/base.c): read gives the task's
 * counter as "%u\n" (from the file offset), write sets it from an unsigned
 * number (kstrtouint, base 0, one trailing newline allowed: EINVAL
 * otherwise, ERANGE past 2^32-1) and answers the whole count.
 */
import { failNth, setFailNth } from '../iommu/fault-inject.ts';
import type { FileOps } from '../kernel/file.ts';
import { kstrtou } from '../kernel/kstrtox.ts';

/** The path of a task's fail-nth file: pid and tid, or undefined for another path. */
export function failNthPath(path: string): { pid: number; tid: number } | undefined {
  const m = /^\/proc\/([1-9][0-9]{0,9})\/task\/([1-9][0-9]{0,9})\/fail-nth$/.exec(path);
  return m ? { pid: Number(m[1]), tid: Number(m[2]) } : undefined;
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
      setFailNth(tid, kstrtou(new TextDecoder('latin1').decode(data), 32));
      return data.length;
    },
    release() {},
  };
}
