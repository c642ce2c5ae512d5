import fs from 'node:fs';
import { ERRNO, Errno, fail } from '../abi/errno.ts';
import {
  appendRun,
  type GatheredEntries,
  type Mm,
  type PfnMaps,
  type PhysRun,
  RestartCall,
  refusePfnMaps,
} from '../iommu/mm.ts';
import {
  type AddressSpace,
  type ForeignFile,
  type ForeignMemory,
  type FsKind,
  faultOnExit,
  foreignMemory,
  type SpanRun,
} from './foreign-memory.ts';
import {
  closeFd,
  memClear,
  memClearAsync,
  memGatherAsync,
  memRead,
  memWrite,
  memZeroed,
  memZeroedAsync,
} from './native.ts';
import type { PhysRam } from './phys-ram.ts';
import type { ProcHandle } from './proc-handle.ts';
import type { UserWrite } from './process.ts';

const U64_END = 1n << 64n;
/** Most writes, and bytes in all, one call leaves to the library (UIOMMU_WRITEBACK_MAX_*). */
const DEFERRED_MAX_WRITES = 8;
const DEFERRED_MAX_BYTES = 1024;

/** Tails up to this many bytes are checked on the engine's thread (~0.1 ms); longer ones on a worker. */
export const SYNC_ZERO_CHECK = 1n << 20n;

/** A range's zero check or clear done on a worker thread, kept for the restarted call. */
interface RangeWork {
  kind: 'zeroed' | 'cleared';
  addr: bigint;
  length: bigint;
  answer: number;
}

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

/** A shared file's VMA `[start, end)` of the kept maps `maps`: file offset = va - delta (RemoteMm.copy). */
interface FileVma {
  maps: MapsEntry[];
  start: number;
  end: number;
  read: boolean;
  write: boolean;
  file: ForeignFile;
  delta: number;
}

/** Windows starting below this have their bounds kept as Numbers too (exact with room to spare). */
const WINDOW_NUMBER_MAX = BigInt(2 ** 53 - 2 ** 20);

/**
 * Prefetched bytes of `[va, va+len)`: `bytes` from index `from` on
 * (RemoteMm.prefetch). Below WINDOW_NUMBER_MAX, `at` is va as a Number
 * and lookups make no bigint; `at` is -1 above it.
 */
class PrefetchWindow {
  va = 0n;
  at = 0;
  len = 0;
  bytes: Uint8Array = new Uint8Array(0);
  from = 0;

  /** This window holding `bytes[from, to)` at `va`; undefined when that is empty. */
  set(
    va: bigint | undefined,
    bytes: Uint8Array,
    from: number,
    to: number,
  ): PrefetchWindow | undefined {
    if (va === undefined || to <= from) return undefined;
    this.va = va;
    this.at = va <= WINDOW_NUMBER_MAX ? Number(va) : -1;
    this.len = to - from;
    this.bytes = bytes;
    this.from = from;
    return this;
  }

  /** Index in the window of `[va, va+length)` when it covers all of it, else -1. */
  private indexOf(va: bigint, length: bigint): number {
    if (this.at >= 0) {
      // a va or length past 2^53 rounds, but stays far past the window's end
      const i = Number(va) - this.at;
      return i >= 0 && i + Number(length) <= this.len ? i : -1;
    }
    return va >= this.va && va + length <= this.va + BigInt(this.len) ? Number(va - this.va) : -1;
  }

  /** The bytes of `[va, va+length)` when the window covers all of it (a view, or a copy with `copy`). */
  covered(va: bigint, length: bigint, copy: boolean): Uint8Array | undefined {
    const i = this.indexOf(va, length);
    if (i < 0) return undefined;
    const at = this.from + i;
    const end = at + Number(length);
    // a copy straight away: a view and then a copy of it would make two arrays
    return copy ? this.bytes.slice(at, end) : this.bytes.subarray(at, end);
  }

  /** Whether `[va, va+length)` meets the window. */
  overlaps(va: bigint, length: number): boolean {
    if (this.at >= 0) return this.overlapsBelow(Number(va), length);
    return va < this.va + BigInt(this.len) && va + BigInt(length) > this.va;
  }

  /** overlaps() for an address below 2^53 (a window above it meets none). */
  overlapsBelow(va: number, length: number): boolean {
    return this.at >= 0 && va < this.at + this.len && va + length > this.at;
  }

  /** Take the bytes of `data`, written at `va`, that the window holds. */
  store(va: bigint, data: Uint8Array): void {
    const end = va + BigInt(data.length);
    const wEnd = this.va + BigInt(this.len);
    const from = va > this.va ? va : this.va;
    const to = end < wEnd ? end : wEnd;
    // the whole of `data` as a rule: a view of a small array would move its bytes off V8's heap
    const part =
      from === va && to === end ? data : data.subarray(Number(from - va), Number(to - va));
    this.bytes.set(part, this.from + Number(from - this.va));
  }
}

/**
 * The address space of a live real process (served through the preload
 * library), as GUP sees it, reached only through files bound to it: its
 * /proc/<pid>/mem and /proc/<pid>/maps, opened through the process's handle
 * when the image is adopted (HELLO, exec). They keep naming this address
 * space — once it is gone every access is EFAULT, never another process's
 * memory under a reused pid. VMAs come from the maps file at each resolve;
 * bytes are copied through the mem file after checking the VMAs' access
 * (PROCMAP_QUERY, or for a read the kept maps; the mem file itself would
 * write read-only pages and read PROT_NONE ones).
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
 * process reads and writes as EFAULT; a pinned page of a shared file is
 * the file's page at its offset, so once the file is truncated past it, it
 * reads as the file does there (Linux keeps the pinned page's bytes).
 */
export class RemoteMm implements Mm, AddressSpace {
  readonly pageSize: bigint;
  readonly pid: number;
  /** Mm.pfnMaps: the process's device mappings. */
  pfnMaps?: PfnMaps;
  private live = true;
  private readonly foreign: ForeignMemory;
  /** /proc/<pid>/mem (read-write) and /proc/<pid>/maps of this image; -1 when it was gone already. */
  private readonly mem: number;
  private readonly mapsFd: number;
  /** Whether the kernel answers PROCMAP_QUERY (Linux 6.11); else VMAs come from the maps text. */
  private query = true;
  /** See `observeMaps`. */
  private tracked = false;
  private cache: MapsEntry[] | undefined;
  /** The answer of the last off-thread zero check or clear, for the restarted call. */
  private rangeDone: RangeWork | undefined;
  /** The last window of user-array entries gathered on a worker thread, for the restarted call. */
  private gathered:
    | { uptr: bigint; entryLen: number; ksize: number; window: GatheredEntries }
    | undefined;
  /** See `prefetch`: the argument's window and the span's, each reused from call to call. */
  private window: PrefetchWindow | undefined;
  private span: PrefetchWindow | undefined;
  private readonly windowStore = new PrefetchWindow();
  private readonly spanStore = new PrefetchWindow();
  /** See `deferWrites`; undefined while writes are made at once. */
  private deferred: UserWrite[] | undefined;
  private deferredBytes = 0;
  /** The last request reported an address-space change (observeMaps). */
  private changed = true;
  /** The writable and the readable VMA of the kept maps `maps` found last (see coveredByMaps). */
  private writableVma: { maps: MapsEntry[]; start: bigint; end: bigint } | undefined;
  private readableVma: { maps: MapsEntry[]; start: bigint; end: bigint } | undefined;
  /** The shared file VMA of the kept maps that the last resolve found a range in (see copy). */
  private fileVma: FileVma | undefined;

  constructor(
    private readonly handle: ProcHandle,
    ram: PhysRam,
  ) {
    this.pid = handle.pid;
    this.pageSize = ram.pageSize;
    this.foreign = foreignMemory(ram);
    let mem = -1;
    let maps = -1;
    try {
      mem = handle.openAt('mem', true);
      maps = handle.openAt('maps');
    } catch {
      if (mem >= 0) closeFd(mem);
      mem = -1;
      this.live = false;
    }
    this.mem = mem;
    this.mapsFd = maps;
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
    if (!this.live) fail('EFAULT', 'mm has exited', 'pin_user_pages_fast');
    if (length === 0n) return [];
    if (va < 0n || length < 0n || va + length > U64_END)
      fail('EFAULT', 'range wraps', 'pin_user_pages_fast');
    refusePfnMaps(this, va, length);
    // DMA through the pages may read what was written
    this.flushDeferred();
    const last = va + length - 1n;
    const cached = this.cache !== undefined;
    let vmas = this.vmasOf(va, last, false);
    let fault = uncovered(vmas, va, last, write);
    // a cached answer is trusted only when it finds the range: anything else looks again
    if (fault !== undefined && cached) {
      vmas = this.vmasOf(va, last, true);
      fault = uncovered(vmas, va, last, write);
    }
    if (fault !== undefined) fail('EFAULT', fault, 'pin_user_pages_fast');
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
        file.setView(off, n, this, s);
        runs = file.runs(off, n);
        vaOf = (o) => s + (o - off);
        if (this.cache && vmas.length === 1) this.keepFileVma(this.cache, v, file);
      } else {
        const hugetlb = v.ino !== 0n && this.fsKind(v).hugetlb;
        runs = this.foreign.private(this, hugetlb).runs(s, n);
        vaOf = (o) => o;
      }
      for (const r of runs) appendRun(out, vaOf(r.offset), r.length, r.phys);
    }
    return out;
  }

  /** Keep `v`, a shared file's VMA of the kept maps `maps`, for copy. */
  private keepFileVma(maps: MapsEntry[], v: MapsEntry, file: ForeignFile): void {
    const start = Number(v.start);
    const end = Number(v.end);
    if (end > Number.MAX_SAFE_INTEGER) return;
    const delta = start - Number(v.offset);
    this.fileVma = { maps, start, end, read: v.read, write: v.write, file, delta };
  }

  /**
   * PagesSource.copy: within the shared file's VMA (a memfd, shared
   * anonymous memory) of the kept maps that the last resolve found a range
   * in, straight through the file (ForeignFile.copy): what resolve would
   * answer there, without looking at the VMAs again. False otherwise, while
   * device mappings exist or writes are kept (see deferWrites), and for a
   * write into bytes a prefetch window holds.
   */
  copy(va: number, buf: Uint8Array, write: boolean): boolean {
    const v = this.fileVma;
    const end = va + buf.length;
    if (!v || v.maps !== this.cache || va < v.start || end > v.end || !(write ? v.write : v.read))
      return false;
    if (!this.live || this.deferred?.length || (this.pfnMaps && !this.pfnMaps.empty)) return false;
    // a write the prefetched bytes hold goes the slow way, which keeps them current
    if (
      write &&
      (this.window?.overlapsBelow(va, buf.length) || this.span?.overlapsBelow(va, buf.length))
    )
      return false;
    return v.file.copy(va - v.delta, buf, write);
  }

  /**
   * Bytes the preload library read from its own memory at `va` as the call
   * began (the ioctl's argument struct; with `spanVa`, `bytes` from index
   * `spanAt` on are a SPAN's, at `spanVa`: docs/engine-protocol.md),
   * without faulting and so only where the process could read; until the
   * call ends (`prefetch()`), reads they cover come from them instead of the
   * mem file, and writes through this mm update them (a read after a write
   * sees it). A cache, never the authority: what they do not cover is read
   * from the process.
   */
  prefetch(va?: bigint, bytes?: Uint8Array, spanVa?: bigint, spanAt = bytes?.length ?? 0): void {
    const n = bytes?.length ?? 0;
    const at = spanVa === undefined ? n : Math.min(spanAt, n);
    this.window = bytes && this.windowStore.set(va, bytes, 0, at);
    this.span = bytes && this.spanStore.set(spanVa, bytes, at, n);
  }

  /** The prefetched bytes of `[va, va+length)`, when one window covers all of it (a view, or a copy with `copy`). */
  private prefetched(va: bigint, length: bigint, copy = false): Uint8Array | undefined {
    return this.window?.covered(va, length, copy) ?? this.span?.covered(va, length, copy);
  }

  /**
   * Until `endWrites`: a copy_to_user whose bytes lie in VMAs the cached
   * maps show writable (observeMaps: tracked, and no change reported
   * with this request) is not made but kept, up to
   * DEFERRED_MAX_WRITES writes of DEFERRED_MAX_BYTES in all, for the
   * answer to carry and the library to make (one preadv from its staging
   * memfd, docs/engine-protocol.md): two system calls fewer per write here. Reads
   * of the prefetched bytes see them; any other access of the process's
   * memory makes the kept writes first, and so does a write that cannot be
   * kept, so the process sees them in order. The library answers EFAULT
   * when it cannot make them (the cached maps were stale).
   */
  deferWrites(): void {
    this.deferred = [];
    this.deferredBytes = 0;
  }

  endWrites(make: boolean): UserWrite[] {
    const kept = this.deferred ?? [];
    this.deferred = undefined;
    if (!make) return kept;
    for (const w of kept) this.writeThrough(w.va, w.bytes);
    return [];
  }

  /** Makes the kept writes now (another access of the memory follows). */
  private flushDeferred(): void {
    if (!this.deferred?.length) return;
    const kept = this.deferred;
    this.deferred = [];
    this.deferredBytes = 0;
    for (const w of kept) this.writeThrough(w.va, w.bytes);
  }

  /** Whether a write of `length` bytes at `va` may be kept (see deferWrites). */
  private deferrable(va: bigint, length: number): boolean {
    const d = this.deferred;
    if (!d || !this.tracked || this.changed || d.length >= DEFERRED_MAX_WRITES) return false;
    const end = va + BigInt(length);
    if (this.deferredBytes + length > DEFERRED_MAX_BYTES) return false;
    return this.coveredByMaps(va, end, true, true);
  }

  /** copy_from_user: EFAULT if any byte is in no readable VMA or the process is gone. */
  read(va: bigint, length: number): Uint8Array {
    if (!this.live) fail('EFAULT', 'mm has exited', 'copy_from_user');
    if (length === 0) return new Uint8Array(0);
    // its own buffer, as memRead's
    const known = this.prefetched(va, BigInt(length), true);
    if (known) return known;
    this.flushDeferred();
    if (!this.query) this.checkAccess(va, BigInt(length), 'read');
    // readable in the kept maps: no PROCMAP_QUERY (GUP trusts them as far, see resolve)
    const maps =
      this.query && !this.coveredByMaps(va, va + BigInt(length), false, false) ? this.mapsFd : -1;
    return this.withQuery(() => memRead(this.mem, maps, va, length));
  }

  /**
   * Whether the kept maps (observeMaps: tracked, no change reported since
   * they were read) show every byte of `[va, end)` in VMAs with the access,
   * as GUP would (uncovered). A range inside the VMA found last for the
   * access needs no lookup. Without kept maps: read them if `readMaps`,
   * else false.
   */
  private coveredByMaps(va: bigint, end: bigint, write: boolean, readMaps: boolean): boolean {
    if (end > U64_END || (!this.cache && !readMaps)) return false;
    const hit = write ? this.writableVma : this.readableVma;
    if (hit && hit.maps === this.cache && va >= hit.start && end <= hit.end) return true;
    const vmas = this.vmasOf(va, end - 1n, false);
    if (uncovered(vmas, va, end - 1n, write) !== undefined) return false;
    const all = this.cache;
    if (all && vmas.length > 0) {
      const found = { maps: all, start: vmas[0]!.start, end: vmas[0]!.end };
      if (write) this.writableVma = found;
      else this.readableVma = found;
    }
    return true;
  }

  /**
   * copy_to_user: EFAULT if any byte is in no writable VMA or the process
   * is gone. As in Linux, the bytes before the faulting page may have been written.
   */
  write(va: bigint, data: Uint8Array): void {
    if (!this.live) fail('EFAULT', 'mm has exited', 'copy_to_user');
    if (data.length === 0) return;
    const kept = this.deferrable(va, data.length);
    if (kept) {
      this.deferred!.push({ va, bytes: new Uint8Array(data) });
      this.deferredBytes += data.length;
    } else this.flushDeferred();
    const w = this.window;
    const s = this.span;
    const inW = w?.overlaps(va, data.length) === true;
    const inS = s?.overlaps(va, data.length) === true;
    // the bytes may change in part even when the write fails: served from the process again
    if (inW) this.window = undefined;
    if (inS) this.span = undefined;
    if (!kept) this.writeThrough(va, data);
    if (inW) {
      w!.store(va, data);
      this.window = w;
    }
    if (inS) {
      s!.store(va, data);
      this.span = s;
    }
  }

  private writeThrough(va: bigint, data: Uint8Array): void {
    if (!this.query) this.checkAccess(va, BigInt(data.length), 'write');
    this.withQuery(() => memWrite(this.mem, this.query ? this.mapsFd : -1, va, data));
  }

  /**
   * check_zeroed_user() of `[addr, addr+length)`: E2BIG at the first
   * non-zero byte, EFAULT at an unreadable one before it, a bounded chunk
   * at a time whatever the length. With `restart`, a range over
   * SYNC_ZERO_CHECK bytes is scanned on a worker thread while the engine
   * serves others: RestartCall now, the answer when the call is redone.
   */
  checkZeroed(addr: bigint, length: bigint, restart = false): void {
    const known = this.live ? this.prefetched(addr, length) : undefined;
    if (known) {
      if (known.some((b) => b !== 0)) zeroedAnswer(ERRNO.E2BIG);
      return;
    }
    this.flushDeferred();
    zeroedAnswer(this.rangeWork('zeroed', addr, length, restart, memZeroed, memZeroedAsync));
  }

  /**
   * clear_user() of `[addr, addr+length)`: EFAULT at the first byte outside
   * a writable VMA, the bytes before it zeroed. With `restart`, a range over
   * SYNC_ZERO_CHECK bytes is cleared on a worker thread as for checkZeroed.
   * Prefetched bytes it touches are dropped (served from the process again).
   */
  clearUser(addr: bigint, length: bigint, restart = false): void {
    this.flushDeferred();
    // a length past 2^53 rounds, but still reaches past any window it starts before
    if (this.window?.overlaps(addr, Number(length))) this.window = undefined;
    if (this.span?.overlaps(addr, Number(length))) this.span = undefined;
    if (this.rangeWork('cleared', addr, length, restart, memClear, memClearAsync) !== 0)
      fail('EFAULT', 'clear_user: unwritable byte', 'clear_user');
  }

  /**
   * A window of a user array's entries copied as structs on a worker thread
   * (Mm.gatherEntries): RestartCall now, the window when the call is redone.
   * Undefined without PROCMAP_QUERY (the caller copies entry by entry).
   */
  gatherEntries(
    uptr: bigint,
    entryLen: number,
    ksize: number,
    first: number,
    count: number,
  ): GatheredEntries | undefined {
    if (!this.live) fail('EFAULT', 'mm has exited', 'copy_struct_from_user');
    this.flushDeferred();
    const done = this.gathered;
    this.gathered = undefined;
    if (
      done &&
      done.uptr === uptr &&
      done.entryLen === entryLen &&
      done.ksize === ksize &&
      done.window.first === first
    ) {
      return done.window;
    }
    if (!this.query) return undefined;
    const data = new Uint8Array(count * ksize);
    const work = this.withQuery(() =>
      memGatherAsync(this.mem, this.mapsFd, uptr, entryLen, first, ksize, data),
    );
    throw new RestartCall(
      work.then(({ done, err }) => {
        if (err === ERRNO.ENOTTY) this.query = false; // the redone call copies entry by entry
        const code = err === ERRNO.E2BIG ? 'E2BIG' : err ? 'EFAULT' : undefined;
        const window = { first, done, data, ...(code ? { err: code } : {}) } as GatheredEntries;
        if (err !== ERRNO.ENOTTY) this.gathered = { uptr, entryLen, ksize, window };
      }),
    );
  }

  gatheredFrom(uptr: bigint, entryLen: number): number | undefined {
    const g = this.gathered;
    return g && g.uptr === uptr && g.entryLen === entryLen ? g.window.first : undefined;
  }

  /**
   * A zero check or clear of a user range: its errno number, now, or — when
   * `restart` and the range is long — from a worker thread, the call being
   * restarted (RestartCall) and the answer kept for its redo.
   */
  private rangeWork(
    kind: RangeWork['kind'],
    addr: bigint,
    length: bigint,
    restart: boolean,
    now: typeof memZeroed,
    later: typeof memZeroedAsync,
  ): number {
    if (!this.live)
      fail('EFAULT', 'mm has exited', kind === 'cleared' ? 'clear_user' : 'check_zeroed_user');
    const done = this.rangeDone;
    this.rangeDone = undefined;
    if (done && done.kind === kind && done.addr === addr && done.length === length) {
      return done.answer;
    }
    if (!this.query) this.checkAccess(addr, length, kind === 'zeroed' ? 'read' : 'write');
    const maps = this.query ? this.mapsFd : -1;
    if (restart && length > SYNC_ZERO_CHECK) {
      const work = this.withQuery(() => later(this.mem, maps, addr, length));
      throw new RestartCall(
        work.then((answer) => {
          this.rangeDone = { kind, addr, length, answer };
        }),
      );
    }
    return this.withQuery(() => now(this.mem, maps, addr, length));
  }

  /**
   * The process has exited, or exec'd (a new image gets a new RemoteMm):
   * `alive` becomes false, its private pages unreachable, its files closed.
   */
  exit(): void {
    if (!this.live) return;
    this.live = false;
    closeFd(this.mem);
    closeFd(this.mapsFd);
    this.foreign.exited(this);
  }

  /** Run a mem-file access; a kernel without PROCMAP_QUERY (ENOTTY) switches to the maps text. */
  private withQuery<T>(fn: () => T): T {
    try {
      return faultOnExit(fn);
    } catch (e) {
      if (!(e instanceof Errno) || e.code !== 'ENOTTY' || !this.query) throw e;
      this.query = false;
      return faultOnExit(fn);
    }
  }

  /** EFAULT unless `[va, va+length)` lies in VMAs allowing `access` (the maps text; no PROCMAP_QUERY). */
  private checkAccess(va: bigint, length: bigint, access: 'read' | 'write'): void {
    if (length === 0n) return;
    const where = access === 'read' ? 'copy_from_user' : 'copy_to_user';
    if (va + length > U64_END) fail('EFAULT', 'range wraps', where);
    let cursor = va;
    for (const v of parseMaps(this.maps(), va, va + length - 1n)) {
      if (v.start > cursor || !v[access]) break;
      cursor = v.end;
    }
    if (cursor < va + length) fail('EFAULT', `no ${access} access at ${hex(cursor)}`, where);
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
    // the maps are read for a write check only once they stood still for a request
    this.changed = changed;
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

  /** The maps text of this address space (read again from the start of the bound file). */
  private maps(): string {
    if (this.mapsFd < 0) fail('EFAULT', 'mm has exited', 'uiommu_remote_mm');
    const chunks: Buffer[] = [];
    const buf = Buffer.alloc(1 << 16);
    let pos = 0;
    try {
      for (;;) {
        const n = fs.readSync(this.mapsFd, buf, 0, buf.length, pos);
        if (n === 0) break;
        chunks.push(Buffer.from(buf.subarray(0, n)));
        pos += n;
      }
    } catch (e) {
      fail('EFAULT', `process ${this.pid} is gone: ${(e as Error).message}`, 'uiommu_remote_mm');
    }
    return Buffer.concat(chunks).toString('latin1');
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
      return this.handle.openAt(
        `map_files/${v.start.toString(16)}-${v.end.toString(16)}`,
        flags === 'r+',
      );
    } catch {
      return undefined;
    }
  }

  /** The kind of a VMA's file system from its KernelPageSize in /proc/<pid>/smaps. */
  private smapsKind(v: MapsEntry): FsKind {
    let text: string;
    try {
      text = this.handle.readText('smaps');
    } catch (e) {
      fail('EFAULT', `process ${this.pid} is gone: ${(e as Error).message}`, 'uiommu_remote_mm');
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

/** check_zeroed_user's errno number as the model's answer. */
function zeroedAnswer(r: number): void {
  if (r === ERRNO.E2BIG) fail('E2BIG', "non-zero byte in the struct's tail", 'check_zeroed_user');
  if (r !== 0) fail('EFAULT', "unreadable byte in the struct's tail", 'check_zeroed_user');
}

function hex(x: bigint): string {
  return `0x${x.toString(16)}`;
}
