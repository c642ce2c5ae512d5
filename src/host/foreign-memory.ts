import fs from 'node:fs';
import { Errno, fail } from '../abi/errno.ts';
import { type Range, SortedRanges } from '../util/sorted-ranges.ts';
import { FileMapping } from './file-map.ts';
import { closeFd, fileSize, fstatFd, fstatfsFd, HUGETLBFS_MAGIC } from './native.ts';
import type { PhysRam } from './phys-ram.ts';

/** Spans take physical address space in chunks of 1 TiB, allocated when first touched. */
const CHUNK_SHIFT = 40n;
const CHUNK = 1n << CHUNK_SHIFT;
/** Chunk alignment: enough for any huge page size up to 1 GiB. */
const CHUNK_ALIGN = 1n << 30n;

/** The syscall being run (`duringCall`): 0 outside any, a new number for each. */
let currentCall = 0;
let lastCall = 0;

/**
 * Run the body of one syscall of a client (Process.sys): file sizes read
 * during it are reused until it returns. Outside a syscall (a device's
 * DMA between calls) every access reads them again.
 */
export function duringCall<T>(fn: () => T): T {
  const outer = currentCall;
  currentCall = ++lastCall;
  try {
    return fn();
  } finally {
    currentCall = outer === 0 ? 0 : ++lastCall;
  }
}

/** Span bytes `[offset, offset+length)` are physical `[phys, phys+length)`. */
export interface SpanRun {
  offset: bigint;
  length: bigint;
  phys: bigint;
}

/**
 * The physical pages of one backing identity of a real process's memory: a
 * file's pages by file offset, or one process's private pages by virtual
 * address. The same identity always yields the same physical address, so
 * pins, MD_CHECK_REFS and DMA meet on the same page whichever mapping, fd
 * or process reached it. Physical space is taken lazily in 1 TiB chunks,
 * so a span costs what is touched, not its size.
 */
abstract class ForeignSpan {
  /** Chunk index → physical base. */
  private readonly chunks = new Map<bigint, bigint>();

  constructor(
    protected readonly ram: PhysRam,
    readonly key: string,
    /** Pages of huge folios (hugetlb): MD_CHECK_REFS skips them. */
    readonly compound: boolean,
  ) {}

  /** The physical runs of span bytes `[offset, offset+length)`, one per chunk touched. */
  runs(offset: bigint, length: bigint): SpanRun[] {
    const out: SpanRun[] = [];
    const end = offset + length;
    for (let at = offset; at < end; ) {
      const index = at >> CHUNK_SHIFT;
      const chunkEnd = (index + 1n) << CHUNK_SHIFT;
      const n = (chunkEnd < end ? chunkEnd : end) - at;
      out.push({ offset: at, length: n, phys: this.chunk(index) + (at - (index << CHUNK_SHIFT)) });
      at += n;
    }
    return out;
  }

  /** True while some page of the span is pinned. */
  pinned(): boolean {
    for (const base of this.chunks.values()) if (this.ram.pinnedIn(base, CHUNK)) return true;
    return false;
  }

  /** Give the physical space back (only when nothing is pinned). */
  release(): void {
    for (const base of this.chunks.values()) this.ram.free(base, CHUNK);
    this.chunks.clear();
  }

  /** Bytes at span offset `offset`; EFAULT when unreachable. */
  protected abstract readAt(offset: bigint, length: number): Uint8Array;
  protected abstract writeAt(offset: bigint, data: Uint8Array): void;

  /**
   * Copy between `buf` and span bytes `[offset, offset+buf.length)` (an
   * exact Number) when that can be done directly: true when done; false
   * when only readAt/writeAt can (a prefix may have been copied).
   */
  copy(_offset: number, _buf: Uint8Array, _write: boolean): boolean {
    return false;
  }

  private chunk(index: bigint): bigint {
    let base = this.chunks.get(index);
    if (base === undefined) {
      const start = index << CHUNK_SHIFT;
      let phys = 0n;
      // span offset = phys - delta; exact as a Number below 2^53 (copy is only offered there)
      let delta = 0;
      phys = this.ram.alloc(CHUNK, {
        align: CHUNK_ALIGN,
        compound: this.compound,
        backing: {
          read: (p, n) => this.readAt(start + (p - phys), n),
          write: (p, data) => this.writeAt(start + (p - phys), data),
          copy: (p, buf, write) => this.copy(p - delta, buf, write),
        },
      });
      delta = Number(phys) - Number(start);
      base = phys;
      this.chunks.set(index, base);
    }
    return base;
  }
}

/** Where an address space maps file bytes `[start, last]`: at `va` onwards. */
interface View extends Range {
  space: AddressSpace;
  va: bigint;
}

/**
 * A file's pages (shmem, memfd, hugetlbfs, or any file mapped MAP_SHARED),
 * keyed by device and inode. Bytes are reached through an fd of the file
 * when the engine holds one (reads; writes except on hugetlbfs, which has
 * no write(2)), else through the last process mapping seen for each range.
 */
export class ForeignFile extends ForeignSpan {
  /** Live MAP_FILE references (FileRefs whose pages source is still reachable). */
  fileRefs = 0;
  private readonly views = new SortedRanges<View>();
  /** st_size as read in call `sizeCall` (see `size`); sizeCall 0: not read in a call. */
  private sizeSeen = 0n;
  private sizeCall = 0;
  /** The file mapped into the engine (see copy); null: it cannot be, undefined: not tried yet. */
  private mapping: FileMapping | null | undefined;

  constructor(
    ram: PhysRam,
    key: string,
    readonly hugetlb: boolean,
    /** Allocation unit: the page size, or the huge page size on hugetlbfs. */
    readonly granule: bigint,
    /** The engine's own fd of the file, closed on release. */
    private fd: number | undefined,
  ) {
    super(ram, key, hugetlb);
  }

  /** Take ownership of `fd` if the file has none yet; otherwise close it. */
  adoptFd(fd: number): void {
    if (this.fd === undefined) this.fd = fd;
    else closeFd(fd);
  }

  /**
   * The file size (st_size), when the engine holds an fd: read once a
   * syscall (`duringCall`), so a resolve and the copy after it cost one
   * fstat. A truncate by another process during the call counts from the
   * next one, as a racing truncate could have come after the call.
   */
  size(): bigint | undefined {
    if (this.fd === undefined) return undefined;
    if (currentCall !== 0 && this.sizeCall === currentCall) return this.sizeSeen;
    const size = fileSize(this.fd);
    this.sizeSeen = size;
    this.sizeCall = currentCall;
    return size;
  }

  /**
   * EFAULT when `[offset, offset+length)` goes past the granule holding
   * end-of-file (SIGBUS for a mapping). A range within the mapped size is
   * checked by touching its last page in the mapping (the pages before it
   * are in the file when that one is): no fstat.
   */
  checkInFile(offset: bigint, length: bigint): void {
    const m = this.mapping;
    if (m && length > 0n && m.reaches(Number(offset + length - 1n))) return;
    const size = this.size();
    if (size === undefined) return;
    const limit = ((size + this.granule - 1n) / this.granule) * this.granule;
    if (offset + length > limit)
      fail('EFAULT', 'beyond the end of the file', 'uiommu_foreign_memory');
  }

  /** Record that `space` maps file bytes `[offset, offset+length)` at `va`. */
  setView(offset: bigint, length: bigint, space: AddressSpace, va: bigint): void {
    const last = offset + length - 1n;
    const known = this.views.find(offset);
    if (known && known.space === space && known.last >= last) {
      if (known.va + (offset - known.start) === va) return; // recorded already
    }
    this.cutViews(offset, last);
    this.views.insert({ start: offset, last, space, va });
    let prev: View | undefined;
    for (const v of this.views.overlapping(offset > 0n ? offset - 1n : 0n, last + 1n)) {
      if (
        prev &&
        prev.space === v.space &&
        prev.last + 1n === v.start &&
        v.va === prev.va + (v.start - prev.start)
      ) {
        prev.last = v.last;
        this.views.delete(v);
      } else prev = v;
    }
  }

  /** Forget every mapping of `space`. */
  dropViews(space: AddressSpace): void {
    for (const v of [...this.views]) if (v.space === space) this.views.delete(v);
  }

  /** True while no live process is known to map the file. */
  get unmapped(): boolean {
    return this.views.size === 0;
  }

  /** Close the fd and give the physical space back. */
  override release(): void {
    super.release();
    this.views.clear();
    this.mapping?.unmap();
    this.mapping = null;
    if (this.fd !== undefined) closeFd(this.fd);
    this.fd = undefined;
  }

  /**
   * Through the file mapped into the engine (FileMapping), made at the
   * first copy and again when the file has grown, for shmem files only;
   * bytes past its size then, a write to a read-only mapping, or a page
   * truncated away since go through readAt/writeAt, which answer for bytes
   * past end-of-file. A shrink to within a page leaves that page in the
   * file: bytes written past the new end in it stay in the page, as a
   * device's DMA to the page would (readAt/writeAt read zeros there and
   * drop such writes).
   */
  override copy(offset: number, buf: Uint8Array, write: boolean): boolean {
    let m = this.mapping;
    if (m === null) return false;
    if (m === undefined || offset + buf.length > m.size) {
      m = this.remap(offset + buf.length);
      if (!m) return false;
    }
    return m.copy(offset, buf, write);
  }

  /** The file mapped anew at its current size when that reaches `end` and grew since; else undefined. */
  private remap(end: number): FileMapping | undefined {
    const fd = this.fd;
    if (fd === undefined) return undefined;
    if (this.hugetlb) {
      this.mapping = null;
      return undefined;
    }
    const size = Number(this.size());
    const old = this.mapping;
    if (size < end || (old && size <= old.size)) return undefined;
    old?.unmap();
    const m = FileMapping.map(fd, size);
    this.mapping = m ?? null;
    return m;
  }

  protected readAt(offset: bigint, length: number): Uint8Array {
    const fd = this.fd;
    if (fd !== undefined && length <= SMALL_IO) {
      // bytes past end-of-file read as zeros
      smallIo.fill(0, 0, length);
      fileIo(() => fs.readSync(fd, smallIo, 0, length, offset));
      return smallIo.slice(0, length);
    }
    const out = new Uint8Array(length);
    if (fd === undefined) {
      this.viaViews(offset, length, (space, va, pos, n) => out.set(space.read(va, n), pos));
    } else fileIo(() => fs.readSync(fd, out, 0, length, offset));
    return out;
  }

  protected writeAt(offset: bigint, data: Uint8Array): void {
    const fd = this.fd;
    if (fd === undefined || this.hugetlb) {
      this.viaViews(offset, data.length, (space, va, pos, n) =>
        space.write(va, data.subarray(pos, pos + n)),
      );
      return;
    }
    // bytes past end-of-file (the tail of the last page) are dropped: writing them would grow the file
    const room = this.size()! - offset;
    const n = room <= 0n ? 0 : room < BigInt(data.length) ? Number(room) : data.length;
    if (n <= 0) return;
    let from = data;
    if (n <= SMALL_IO) {
      smallIo.set(data.subarray(0, n));
      from = smallIo;
    }
    fileIo(() => fs.writeSync(fd, from, 0, n, Number(offset)));
  }

  /** Reach `[offset, offset+length)` piecewise through the recorded mappings; EFAULT for a gap. */
  private viaViews(
    offset: bigint,
    length: number,
    copy: (space: AddressSpace, va: bigint, pos: number, n: number) => void,
  ): void {
    const last = offset + BigInt(length) - 1n;
    let cursor = offset;
    for (const v of this.views.overlapping(offset, last)) {
      if (v.start > cursor) break;
      const end = v.last < last ? v.last : last;
      const at = cursor;
      faultOnExit(() =>
        copy(v.space, v.va + (at - v.start), Number(at - offset), Number(end - at + 1n)),
      );
      cursor = end + 1n;
    }
    if (cursor <= last) {
      fail(
        'EFAULT',
        `file ${this.key} offset 0x${cursor.toString(16)} is mapped nowhere`,
        'uiommu_foreign_memory',
      );
    }
  }

  /** Remove the views' coverage of `[start, last]`, keeping their parts outside it. */
  private cutViews(start: bigint, last: bigint): void {
    for (const v of this.views.overlapping(start, last)) {
      this.views.delete(v);
      if (v.start < start) this.views.insert({ ...v, last: start - 1n });
      if (v.last > last) {
        this.views.insert({ ...v, start: last + 1n, va: v.va + (last + 1n - v.start) });
      }
    }
  }
}

/**
 * One process image's address space (exec starts a new one), reached
 * through handles bound to it (RemoteMm): it owns private pages and maps
 * files. `read`/`write` are copy_from_user/copy_to_user: EFAULT for a bad
 * address or once the image is gone.
 */
export interface AddressSpace {
  readonly pid: number;
  readonly alive: boolean;
  read(va: bigint, length: number): Uint8Array;
  write(va: bigint, data: Uint8Array): void;
}

/**
 * The private pages of one address space (anonymous memory, and private
 * file mappings, whose long-term pins unshare them), keyed by virtual
 * address. Bytes are read and written in the live process; once it has
 * exited, EFAULT.
 */
export class ForeignPrivate extends ForeignSpan {
  constructor(
    ram: PhysRam,
    key: string,
    compound: boolean,
    readonly owner: AddressSpace,
  ) {
    super(ram, key, compound);
  }

  protected readAt(va: bigint, length: number): Uint8Array {
    return this.owner.read(va, length);
  }

  protected writeAt(va: bigint, data: Uint8Array): void {
    this.owner.write(va, data);
  }
}

/** How a file system backs mappings: hugetlbfs pages are huge folios of `pageSize`. */
export interface FsKind {
  hugetlb: boolean;
  pageSize: bigint;
}

/**
 * Every foreign span of one PhysRam: file spans by `major:minor:inode`,
 * private spans by address space (normal and hugetlb apart). Spans go away when
 * nothing can reach them any more — no live process maps them, no MAP_FILE
 * reference holds them and no page is pinned — checked whenever a process
 * exits (`exited`) or on `sweep`.
 */
export class ForeignMemory {
  /** A number for each address space owning private spans. */
  private readonly owners = new WeakMap<AddressSpace, number>();
  private nextOwner = 1;
  private readonly files = new Map<string, ForeignFile>();
  private readonly privates = new Map<string, ForeignPrivate>();
  /** File system kind by device `major:minor`. */
  readonly fsKinds = new Map<string, FsKind>();
  private readonly fileRefs = new FinalizationRegistry<ForeignFile>((file) => {
    file.fileRefs--;
    this.sweep();
  });

  constructor(readonly ram: PhysRam) {}

  /** `space` has gone (its process exited or exec'd): forget its mappings and drop what nothing reaches any more. */
  exited(space: AddressSpace): void {
    for (const f of this.files.values()) f.dropViews(space);
    this.sweep();
  }

  /** The span of file `key`, made by `make` the first time. */
  file(key: string, make: () => { kind: FsKind; fd: number | undefined }): ForeignFile {
    let f = this.files.get(key);
    if (!f) {
      const { kind, fd } = make();
      f = new ForeignFile(this.ram, key, kind.hugetlb, kind.pageSize, fd);
      this.files.set(key, f);
    }
    return f;
  }

  /** The kind of the file system holding fd's file, recorded for its device. */
  fsKindOf(fd: number): FsKind {
    const st = fstatFd(fd);
    const dev = `${st.devMajor}:${st.devMinor}`;
    let kind = this.fsKinds.get(dev);
    if (!kind) {
      const fsStat = fstatfsFd(fd);
      const hugetlb = fsStat.type === HUGETLBFS_MAGIC;
      kind = { hugetlb, pageSize: hugetlb ? BigInt(fsStat.bsize) : this.ram.pageSize };
      this.fsKinds.set(dev, kind);
    }
    return kind;
  }

  /** Hold `file` while `holder` (a MAP_FILE pages source) is reachable. */
  holdFile(file: ForeignFile, holder: object): void {
    file.fileRefs++;
    this.fileRefs.register(holder, file);
  }

  /** The private span of `owner` (its hugetlb pages apart: they are compound). */
  private(owner: AddressSpace, hugetlb: boolean): ForeignPrivate {
    let id = this.owners.get(owner);
    if (id === undefined) {
      id = this.nextOwner++;
      this.owners.set(owner, id);
    }
    const key = `${owner.pid}.${id}${hugetlb ? ':huge' : ''}`;
    let p = this.privates.get(key);
    if (!p) {
      p = new ForeignPrivate(this.ram, key, hugetlb, owner);
      this.privates.set(key, p);
    }
    return p;
  }

  /** Release the spans nothing reaches: unmapped, unreferenced and unpinned. */
  sweep(): void {
    for (const [key, f] of this.files) {
      if (f.unmapped && f.fileRefs === 0 && !f.pinned()) {
        this.files.delete(key);
        f.release();
      }
    }
    for (const [key, p] of this.privates) {
      if (!p.owner.alive && !p.pinned()) {
        this.privates.delete(key);
        p.release();
      }
    }
  }

  /** Spans currently kept (files, privates), for tests and diagnostics. */
  get spanCount(): { files: number; privates: number } {
    return { files: this.files.size, privates: this.privates.size };
  }
}

const registries = new WeakMap<PhysRam, ForeignMemory>();

/** The foreign spans of `ram` (one registry per emulated kernel's memory). */
export function foreignMemory(ram: PhysRam): ForeignMemory {
  let m = registries.get(ram);
  if (!m) {
    m = new ForeignMemory(ram);
    registries.set(ram, m);
  }
  return m;
}

/**
 * File reads and writes of up to V8's on-heap limit go through this
 * off-heap buffer: a system call given an on-heap array first moves it off
 * the heap (a malloc'd backing store per copy).
 */
const SMALL_IO = 64;
const smallIo = new Uint8Array(new ArrayBuffer(SMALL_IO));

/** Run a read or write on a file fd; any failure is a fault of the physical access. */
function fileIo(fn: () => number): void {
  try {
    fn();
  } catch (e) {
    fail('EFAULT', `file i/o: ${(e as Error).message}`, 'uiommu_foreign_memory');
  }
}

/** Run a process access; its process having gone (ESRCH) is a fault like any other. */
export function faultOnExit<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof Errno && e.code === 'ESRCH')
      fail('EFAULT', e.message, 'uiommu_foreign_memory');
    throw e;
  }
}
