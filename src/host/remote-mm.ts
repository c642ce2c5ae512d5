import fs from 'node:fs';
import { fail } from '../abi/errno.ts';
import { appendRun, type Mm, type PhysRun, refusePfnMaps } from '../iommu/mm.ts';
import {
  type ForeignMemory,
  type FsKind,
  faultOnExit,
  foreignMemory,
  type SpanRun,
} from './foreign-memory.ts';
import { closeFd, vmRead, vmWrite } from './native.ts';
import type { PhysRam } from './phys-ram.ts';

const U64_END = 1n << 64n;

/** Special mappings GUP refuses (VM_IO/VM_PFNMAP, the vsyscall gate). */
const UNPINNABLE = new Set(['[vvar]', '[vvar_vclock]', '[vsyscall]']);

/** One line of /proc/<pid>/maps: the VMA `[start, end)`. */
export interface MapsEntry {
  start: bigint;
  end: bigint;
  read: boolean;
  write: boolean;
  /** 's': a shared mapping (VM_MAYSHARE). */
  shared: boolean;
  /** File offset of `start` (for private anonymous memory, its first page number). */
  offset: bigint;
  /** Device `major:minor` (decimal) of the mapped file. */
  dev: string;
  /** Inode of the mapped file; 0 for anonymous memory. */
  ino: bigint;
  /** Path or pseudo-name ("[heap]", "/memfd:x (deleted)"); empty for anonymous memory. */
  name: string;
}

const MAPS_LINE =
  /^([0-9a-f]+)-([0-9a-f]+) ([r-])([w-])[x-]([sp]) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) (\d+) *(.*)$/;

/** The entries of a maps text that intersect `[va, last]`, ascending. */
export function parseMaps(text: string, va: bigint, last: bigint): MapsEntry[] {
  const out: MapsEntry[] = [];
  for (const line of text.split('\n')) {
    const dash = line.indexOf('-');
    if (dash < 0) continue;
    const start = BigInt(`0x${line.slice(0, dash)}`);
    if (start > last) break;
    const m = MAPS_LINE.exec(line);
    if (!m) continue;
    const end = BigInt(`0x${m[2]}`);
    if (end <= va) continue;
    out.push({
      start,
      end,
      read: m[3] === 'r',
      write: m[4] === 'w',
      shared: m[5] === 's',
      offset: BigInt(`0x${m[6]}`),
      dev: `${Number.parseInt(m[7]!, 16)}:${Number.parseInt(m[8]!, 16)}`,
      ino: BigInt(m[9]!),
      name: m[10]!,
    });
  }
  return out;
}

/**
 * The address space of a live real process (served through the preload
 * library), as GUP sees it: VMAs come from /proc/<pid>/maps at each
 * resolve, bytes are copied with process_vm_readv/writev.
 *
 * Physical addresses are synthetic but give page identity: pages of a
 * shared mapping (memfd, shmem, MAP_SHARED|MAP_ANONYMOUS, hugetlbfs, any
 * MAP_SHARED file) are keyed by (device, inode, file offset), so every
 * mapping of one file in any process, and any MAP_FILE of it, meets on the
 * same physical page; private pages by (this address space, virtual
 * address) — a long-term pin of a private page unshares it, so it is the
 * process's own, and an exec'd image is a new address space. Pages of
 * hugetlbfs are compound. The physical ranges are foreign PhysRam ranges
 * whose bytes are the live pages (src/host/foreign-memory.ts).
 *
 * Known limits: a private page unmapped and mapped again at the same
 * address keeps its physical address; a pinned private page of an exited
 * process reads and writes as EFAULT.
 */
export class RemoteMm implements Mm {
  readonly pageSize: bigint;
  private live = true;
  private readonly foreign: ForeignMemory;
  /** See `observeMaps`. */
  private tracked = false;
  private cache: MapsEntry[] | undefined;

  constructor(
    readonly pid: number,
    ram: PhysRam,
  ) {
    this.pageSize = ram.pageSize;
    this.foreign = foreignMemory(ram);
  }

  get alive(): boolean {
    return this.live;
  }

  /**
   * GUP: EFAULT after exit, for a byte in no VMA, in a VMA without read
   * permission (write permission when `write`), in a special mapping
   * ([vvar], [vsyscall]), or past the end of a shared file's last page.
   */
  resolve(va: bigint, length: bigint, write: boolean): PhysRun[] {
    if (!this.live) fail('EFAULT', 'mm has exited');
    if (length === 0n) return [];
    if (va < 0n || length < 0n || va + length > U64_END) fail('EFAULT', 'range wraps');
    refusePfnMaps(this, va, length);
    const last = va + length - 1n;
    const cached = this.cache !== undefined;
    let vmas = this.vmasOf(va, last, false);
    let fault = uncovered(vmas, va, last, write);
    // a cached answer is trusted only when it finds the range: anything else looks again
    if (fault !== undefined && cached) {
      vmas = this.vmasOf(va, last, true);
      fault = uncovered(vmas, va, last, write);
    }
    if (fault !== undefined) fail('EFAULT', fault);
    const out: PhysRun[] = [];
    for (const v of vmas) {
      const s = v.start > va ? v.start : va;
      const n = (v.end <= last ? v.end : last + 1n) - s;
      let runs: SpanRun[];
      let vaOf: (offset: bigint) => bigint;
      if (v.shared && v.ino !== 0n) {
        const file = this.foreign.file(`${v.dev}:${v.ino}`, () => this.openMapped(v));
        const off = v.offset + (s - v.start);
        file.checkInFile(off, n);
        file.setView(off, n, this.pid, s);
        runs = file.runs(off, n);
        vaOf = (o) => s + (o - off);
      } else {
        const hugetlb = v.ino !== 0n && this.fsKind(v).hugetlb;
        runs = this.foreign.private(this, hugetlb).runs(s, n);
        vaOf = (o) => o;
      }
      for (const r of runs) appendRun(out, vaOf(r.offset), r.length, r.phys);
    }
    return out;
  }

  /** copy_from_user: EFAULT if any byte is unreadable or the process is gone. */
  read(va: bigint, length: number): Uint8Array {
    if (!this.live) fail('EFAULT', 'mm has exited');
    if (length === 0) return new Uint8Array(0);
    return faultOnExit(() => vmRead(this.pid, va, length));
  }

  /**
   * copy_to_user: EFAULT if any byte is unwritable or the process is gone.
   * As in Linux, the bytes before the faulting page may have been written.
   */
  write(va: bigint, data: Uint8Array): void {
    if (!this.live) fail('EFAULT', 'mm has exited');
    if (data.length === 0) return;
    faultOnExit(() => vmWrite(this.pid, va, data));
  }

  /**
   * The process has exited, or exec'd (a new image gets a new RemoteMm):
   * `alive` becomes false, its private pages unreachable.
   */
  exit(): void {
    if (!this.live) return;
    this.live = false;
    this.foreign.exited(this.pid);
  }

  /**
   * What the preload library says with each request (its REQ_FLAGS): whether
   * it tracks the program's mmap, munmap, mremap and mprotect calls, and
   * whether one happened since its previous request. While tracked and
   * unchanged, the VMAs read from /proc/<pid>/maps are reused; a lookup
   * they do not satisfy (memory mapped behind the library's back, e.g. by
   * malloc) reads them again before answering EFAULT.
   */
  observeMaps(tracked: boolean, changed: boolean): void {
    if (!tracked || changed) this.cache = undefined;
    this.tracked = tracked;
  }

  /** The VMAs intersecting `[va, last]`, ascending: cached, or read now (`fresh`). */
  private vmasOf(va: bigint, last: bigint, fresh: boolean): MapsEntry[] {
    let all = fresh ? undefined : this.cache;
    if (!all) {
      all = parseMaps(this.maps(), 0n, U64_END - 1n);
      this.cache = this.tracked ? all : undefined;
    }
    // the first VMA ending above va (they are sorted and disjoint)
    let lo = 0;
    let hi = all.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (all[mid]!.end <= va) lo = mid + 1;
      else hi = mid;
    }
    const out: MapsEntry[] = [];
    for (let i = lo; i < all.length && all[i]!.start <= last; i++) out.push(all[i]!);
    return out;
  }

  private maps(): string {
    try {
      return fs.readFileSync(`/proc/${this.pid}/maps`, 'latin1');
    } catch (e) {
      fail('EFAULT', `process ${this.pid} is gone: ${(e as Error).message}`);
    }
  }

  /** The file system kind of a file-backed VMA, cached by device. */
  private fsKind(v: MapsEntry): FsKind {
    let kind = this.foreign.fsKinds.get(v.dev);
    if (!kind) {
      const fd = this.openMapFile(v, 'r');
      if (fd === undefined) kind = this.smapsKind(v);
      else {
        try {
          kind = this.kindOf(fd);
        } finally {
          closeFd(fd);
        }
      }
    }
    return kind;
  }

  /** What a new file span needs: an fd of the mapped file (when /proc lets us) and its kind. */
  private openMapped(v: MapsEntry): { kind: FsKind; fd: number | undefined } {
    const fd = this.openMapFile(v, 'r+') ?? this.openMapFile(v, 'r');
    if (fd === undefined) return { kind: this.fsKind(v), fd };
    try {
      return { kind: this.kindOf(fd), fd };
    } catch (e) {
      closeFd(fd);
      throw e;
    }
  }

  private kindOf(fd: number): FsKind {
    return this.foreign.fsKindOf(fd);
  }

  /** Open the file behind a VMA through /proc/<pid>/map_files (needs CAP_SYS_ADMIN). */
  private openMapFile(v: MapsEntry, flags: 'r' | 'r+'): number | undefined {
    try {
      return fs.openSync(
        `/proc/${this.pid}/map_files/${v.start.toString(16)}-${v.end.toString(16)}`,
        flags,
      );
    } catch {
      return undefined;
    }
  }

  /** The kind of a VMA's file system from its KernelPageSize in /proc/<pid>/smaps. */
  private smapsKind(v: MapsEntry): FsKind {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${this.pid}/smaps`, 'latin1');
    } catch (e) {
      fail('EFAULT', `process ${this.pid} is gone: ${(e as Error).message}`);
    }
    const at = text.indexOf(`${v.start.toString(16)}-`);
    const m = at < 0 ? null : /KernelPageSize:\s+(\d+) kB/.exec(text.slice(at));
    const pageSize = m ? BigInt(m[1]!) * 1024n : this.pageSize;
    const kind = { hugetlb: pageSize > this.pageSize, pageSize };
    this.foreign.fsKinds.set(v.dev, kind);
    return kind;
  }
}

/**
 * Why GUP of `[va, last]` fails over `vmas` (the VMAs intersecting it,
 * ascending), or undefined when every byte is in a VMA with the access.
 */
function uncovered(
  vmas: readonly MapsEntry[],
  va: bigint,
  last: bigint,
  write: boolean,
): string | undefined {
  let cursor = va;
  for (const v of vmas) {
    if (v.start > cursor) break;
    if (!(write ? v.write : v.read) || UNPINNABLE.has(v.name)) {
      return `no ${write ? 'write' : 'read'} access at ${hex(cursor)}`;
    }
    cursor = v.end;
  }
  return cursor <= last ? `unmapped address ${hex(cursor)}` : undefined;
}

function hex(x: bigint): string {
  return `0x${x.toString(16)}`;
}
