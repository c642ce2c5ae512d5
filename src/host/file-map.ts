import { type FileMapAddon, fileMapAddon } from './native.ts';

/** Copies of up to this many bytes go through the addon's scratch buffer (V8 keeps such arrays on its heap). */
const SMALL = 64;

/**
 * Bytes of the engine's address space all mappings may hold at once. A
 * client's file may be sparse and far larger than what it maps (an
 * ftruncate to 2^46 costs it nothing): mapped whole, a few of them would
 * take all of the engine's 2^47 and the next allocation of V8 would abort
 * it. Past this budget copies go through the file instead.
 */
export const FILE_MAP_BUDGET = 2 ** 40;

let addon: FileMapAddon | undefined;
let scratch: Uint8Array | undefined;
/** Bytes mapped by the live FileMappings. */
let mapped = 0;

/**
 * The first `size` bytes of a client's shmem file (a memfd, shared
 * anonymous memory) mapped into the engine (native/file-map.c): a copy is a
 * memcpy instead of a pread or pwrite. A page the owner truncated away
 * since makes the copy fail (false) rather than fault; the caller then
 * goes through the file. Writable only when the file's seals can no longer
 * change and allow writing (see native/file-map.c).
 */
export class FileMapping {
  private constructor(
    private id: number,
    readonly writable: boolean,
    /** The file size when mapped: bytes past it are never copied here. */
    readonly size: number,
  ) {}

  /**
   * Map the first `size` bytes of fd's file; undefined for a file that is
   * not shmem or cannot be mapped, or when that would pass FILE_MAP_BUDGET.
   */
  static map(fd: number, size: number): FileMapping | undefined {
    if (size <= 0 || size > FILE_MAP_BUDGET - mapped) return undefined;
    addon ??= fileMapAddon();
    const m = addon.fileMap(fd, size);
    if (!m) return undefined;
    mapped += size;
    return new FileMapping(m.id, m.writable, size);
  }

  /**
   * Copy between `buf` and the file's bytes `[offset, offset+buf.length)`
   * (a write: from `buf`); false when they are not all in the mapping, a
   * write meets a read-only one, or a page is past the file's end now (a
   * prefix may have been copied).
   */
  copy(offset: number, buf: Uint8Array, write: boolean): boolean {
    const n = buf.length;
    if (this.id < 0 || offset < 0 || offset + n > this.size || (write && !this.writable))
      return false;
    const a = addon!;
    if (n > SMALL) return a.fileMapIo(this.id, offset, n, write, buf) === 0;
    scratch ??= new Uint8Array(a.fileMapScratch());
    const s = scratch;
    if (write) for (let i = 0; i < n; i++) s[i] = buf[i]!;
    if (a.fileMapIo(this.id, offset, n, write) !== 0) return false;
    if (!write) for (let i = 0; i < n; i++) buf[i] = s[i]!;
    return true;
  }

  /** Whether the page holding byte `offset` (within the size) is still in the file. */
  reaches(offset: number): boolean {
    return (
      this.id >= 0 &&
      offset >= 0 &&
      offset < this.size &&
      addon!.fileMapIo(this.id, offset, 1, false) === 0
    );
  }

  unmap(): void {
    if (this.id < 0) return;
    addon!.fileUnmap(this.id);
    this.id = -1;
    mapped -= this.size;
  }
}
