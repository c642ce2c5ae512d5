/**
 * What the IOMMU side needs from a process's address space (the kernel's
 * mm_struct as seen by GUP): resolving user VAs to physical pages, and byte
 * access for copies. Memory backends in `src/host/` implement it.
 */

/** A physically contiguous piece of a user VA range: `[va, va+length)` ↦ `[phys, phys+length)`. */
export interface PhysRun {
  va: bigint;
  length: bigint;
  phys: bigint;
}

/** Append a run to ascending `runs`, merging it into the last one when both VA and phys continue it. */
export function appendRun(runs: PhysRun[], va: bigint, length: bigint, phys: bigint): void {
  const prev = runs[runs.length - 1];
  if (prev && prev.va + prev.length === va && prev.phys + prev.length === phys) {
    prev.length += length;
  } else runs.push({ va, length, phys });
}

export interface Mm {
  /** Host page size in bytes (PAGE_SIZE), a power of two. */
  readonly pageSize: bigint;
  /** False once the owning process has exited and its mm is torn down. */
  readonly alive: boolean;
  /**
   * Resolve `[va, va+length)` into ascending physically contiguous runs,
   * faulting pages in like get_user_pages(). With `write`, copy-on-write
   * sharing is broken first so the pages stay the process's own.
   * Throws EFAULT if any byte is unmapped, or not writable when `write`.
   */
  resolve(va: bigint, length: bigint, write: boolean): PhysRun[];
  /** copy_from_user: EFAULT if any byte is unreadable. */
  read(va: bigint, length: number): Uint8Array;
  /** copy_to_user: EFAULT if any byte is unwritable; nothing is written then. */
  write(va: bigint, data: Uint8Array): void;
}
