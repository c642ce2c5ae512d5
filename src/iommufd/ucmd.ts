import { Errno, fail } from '../abi/errno.ts';
import { hex } from '../abi/hex.ts';
import type { Layout } from '../abi/layout.ts';
import type { GatheredEntries, Mm } from '../iommu/mm.ts';
import type { IommuUserDataArray } from '../iommu/viommu.ts';

/**
 * One iommufd ioctl call in flight (the kernel's iommufd_ucmd): the caller's
 * memory, the user struct's address and size, and the decoded command.
 */
export class Ucmd<in out V> {
  constructor(
    readonly mm: Mm,
    readonly addr: bigint,
    /** The `size` the user passed (may be smaller or larger than the kernel's struct). */
    readonly userSize: number,
    readonly layout: Layout<V>,
    /** The kernel's copy of the struct, zero-extended. */
    readonly cmd: V,
    /** The bytes copied in, `min(userSize, sizeof)` of them (not zero-extended). */
    readonly bytes: Uint8Array,
  ) {}

  /**
   * copy_struct_from_user(): bytes beyond the kernel's struct must be zero,
   * checked first (check_zeroed_user: E2BIG or EFAULT, whichever comes
   * first in address order; a huge tail may restart the call, see
   * RestartCall); then `min(userSize, sizeof)` bytes are read (EFAULT).
   */
  static copyIn<V>(mm: Mm, addr: bigint, userSize: number, layout: Layout<V>): Ucmd<V> {
    if (userSize > layout.size) {
      checkZeroed(mm, addr + BigInt(layout.size), BigInt(userSize - layout.size), true);
    }
    const bytes = mm.read(addr, Math.min(userSize, layout.size));
    return new Ucmd(mm, addr, userSize, layout, layout.decode(bytes), bytes);
  }

  /** iommufd_ucmd_respond(): copy `min(userSize, sizeof)` bytes of the whole struct back. */
  respond(): void {
    const bytes = this.layout.encode(this.cmd);
    // a view of a small array costs more than the call (V8 moves its bytes off the heap first)
    const n = Math.min(this.userSize, this.layout.size);
    this.mm.write(this.addr, n === bytes.length ? bytes : bytes.slice(0, n));
  }
}

/** Pages per step of the user-copy loops below. */
const CHUNK_PAGES = 64n;

/**
 * Apply `op` to `[addr, addr+length)` in ascending chunks; a chunk that
 * faults is redone page by page, so EFAULT surfaces at the first bad page
 * with everything before it done, like the kernel's user-copy loops, and a
 * huge length costs what is mapped, not what was asked.
 */
function inChunks(
  pageSize: bigint,
  addr: bigint,
  length: bigint,
  op: (from: bigint, to: bigint) => void,
): void {
  const end = addr + length;
  for (let cur = addr; cur < end; ) {
    const chunkEnd = (cur & ~(pageSize - 1n)) + CHUNK_PAGES * pageSize;
    const stop = chunkEnd < end ? chunkEnd : end;
    try {
      op(cur, stop);
    } catch (e) {
      if (!(e instanceof Errno) || e.code !== 'EFAULT') throw e;
      for (let p = cur; p < stop; ) {
        const pageEnd = (p & ~(pageSize - 1n)) + pageSize;
        const next = pageEnd < stop ? pageEnd : stop;
        op(p, next);
        p = next;
      }
    }
    cur = stop;
  }
}

/**
 * check_zeroed_user(): scan `[addr, addr+length)` in ascending order: E2BIG
 * at the first non-zero byte, EFAULT at the first unreadable page before
 * one. With `restart` (the call has changed nothing yet) the memory
 * backend may throw RestartCall rather than scan a huge range on the
 * engine's thread.
 */
export function checkZeroed(mm: Mm, addr: bigint, length: bigint, restart = false): void {
  if (mm.checkZeroed) {
    mm.checkZeroed(addr, length, restart);
    return;
  }
  inChunks(mm.pageSize, addr, length, (from, to) => {
    if (mm.read(from, Number(to - from)).some((b) => b !== 0))
      fail('E2BIG', `non-zero byte in the struct's tail at ${hex(from)}`, 'check_zeroed_user');
  });
}

/**
 * clear_user(): zero `[addr, addr+length)`; EFAULT at the first unwritable
 * page, those before it zeroed. With `restart` (the call has written nothing
 * its redo would not write again) the memory backend may throw RestartCall
 * rather than clear a huge range on the engine's thread.
 */
export function clearUser(mm: Mm, addr: bigint, length: bigint, restart = false): void {
  if (mm.clearUser) {
    mm.clearUser(addr, length, restart);
    return;
  }
  const zero = new Uint8Array(Number(CHUNK_PAGES * mm.pageSize));
  inChunks(mm.pageSize, addr, length, (from, to) => {
    mm.write(from, zero.subarray(0, Number(to - from)));
  });
}

/** Arrays with more entries, or more bytes, are copied in windows off the engine's thread. */
const SYNC_ARRAY_ENTRIES = 1024;
const SYNC_ARRAY_BYTES = 1n << 20n;
/** Entries per window of an array handled entry by entry: a driver's slice of work between restarts. */
const ARRAY_WINDOW = 1 << 12;
/** The most bytes of structs gathered at once for a whole array (the kernel copies it into one kmalloc). */
const WHOLE_ARRAY_BYTES = 1 << 26;

/**
 * struct iommu_user_data_array over the caller's memory. A long array
 * (over SYNC_ARRAY_ENTRIES entries or SYNC_ARRAY_BYTES bytes), when the
 * memory backend can, is copied on a worker thread, the call restarting
 * before each copy (RestartCall): whole when the driver copies the whole
 * array first, else ARRAY_WINDOW entries at a time, each attempt resuming
 * where the previous one stopped (`start`).
 */
export function userDataArray(
  mm: Mm,
  type: number,
  uptr: bigint,
  entryLen: number,
  entryNum: number,
): IommuUserDataArray {
  const long =
    mm.gatherEntries !== undefined &&
    (entryNum > SYNC_ARRAY_ENTRIES || BigInt(entryNum) * BigInt(entryLen) > SYNC_ARRAY_BYTES);
  let window: GatheredEntries | undefined;
  let windowLen = 0;
  return {
    type,
    uptr,
    entryLen,
    entryNum,
    start: (long && mm.gatheredFrom?.(uptr, entryLen)) || 0,
    read: (addr, len) => mm.read(addr, len),
    checkZeroed: (addr, len) => checkZeroed(mm, addr, len),
    gathered(index, ksize, whole = false) {
      if (!long) return undefined;
      if (!window || index < window.first || index >= window.first + windowLen) {
        windowLen = whole ? entryNum - index : Math.min(ARRAY_WINDOW, entryNum - index);
        if (windowLen * ksize > WHOLE_ARRAY_BYTES) return undefined;
        window = mm.gatherEntries!(uptr, entryLen, ksize, index, windowLen);
        if (!window) return undefined;
      }
      const at = index - window.first;
      if (at >= window.done) {
        fail(window.err ?? 'EFAULT', `entry ${index} of the user array`, 'copy_struct_from_user');
      }
      return window.data.subarray(at * ksize, (at + 1) * ksize);
    },
  };
}
