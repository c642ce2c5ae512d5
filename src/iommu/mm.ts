/**
 * What the IOMMU side needs from a process's address space (the kernel's
 * mm_struct as seen by GUP): resolving user VAs to physical pages, and byte
 * access for copies. Memory backends in `src/host/` implement it.
 */
import { fail } from '../abi/errno.ts';

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

/** The device mappings (VM_IO | VM_PFNMAP vmas) of an address space, as GUP needs to see them. */
export interface PfnMaps {
  /** No device mapping at all. */
  readonly empty: boolean;
  /** Whether any byte of `[va, va+length)` lies in a device mapping. */
  overlaps(va: bigint, length: bigint): boolean;
  /** The bus addresses behind `[va, va+length)`; EFAULT unless all of it is device-mapped. */
  resolve(va: bigint, length: bigint): PhysRun[];
}

/** GUP refuses device mappings (VM_IO | VM_PFNMAP): EFAULT when `[va, va+length)` touches one. */
export function refusePfnMaps(mm: Mm, va: bigint, length: bigint): void {
  if (mm.pfnMaps?.overlaps(va, length))
    fail('EFAULT', 'device memory (VM_PFNMAP) cannot be pinned', 'check_vma_flags');
}

export interface Mm {
  /** Host page size in bytes (PAGE_SIZE), a power of two. */
  readonly pageSize: bigint;
  /** The address space's device mappings, set by the process owning it. */
  pfnMaps?: PfnMaps;
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
  /**
   * check_zeroed_user() of `[va, va+length)` in bounded memory whatever the
   * length (optional: `checkZeroed` in iommufd/ucmd.ts reads chunks
   * without it): E2BIG at the first non-zero byte, EFAULT at an unreadable
   * one before it. With `restart`, a long scan may instead be started off
   * the caller's thread and `RestartCall` thrown; the redone call finds the answer.
   */
  checkZeroed?(va: bigint, length: bigint, restart: boolean): void;
  /**
   * clear_user() of `[va, va+length)` in bounded memory (optional:
   * `clearUser` in iommufd/ucmd.ts writes chunks without it): EFAULT at the
   * first unwritable byte, those before it zeroed. `restart` as for checkZeroed.
   */
  clearUser?(va: bigint, length: bigint, restart: boolean): void;
  /**
   * copy_struct_from_user() of `count` entries from index `first` of the
   * user array at `uptr` (`entryLen` bytes each) as `ksize`-byte structs,
   * off the caller's thread (optional): RestartCall now, the window when the
   * call is redone with the same arguments; undefined when it cannot.
   */
  gatherEntries?(
    uptr: bigint,
    entryLen: number,
    ksize: number,
    first: number,
    count: number,
  ): GatheredEntries | undefined;
  /** The first entry of the window gathered for the user array at `uptr` (the redone call resumes there), if any. */
  gatheredFrom?(uptr: bigint, entryLen: number): number | undefined;
}

/** A window of a user array's entries, each copied as a struct (Mm.gatherEntries). */
export interface GatheredEntries {
  first: number;
  /** Entries copied from `first`: `done * ksize` bytes of `data`. */
  done: number;
  /** The errno of entry `first + done` when the window stopped there. */
  err?: 'E2BIG' | 'EFAULT';
  data: Uint8Array;
}

/**
 * Thrown instead of doing long work on the engine's thread (a huge struct
 * tail's check, a huge clear_user): nothing has changed yet but what the
 * redone call writes again identically, and the call is to be made again
 * once `ready` settles, as the kernel restarts an interrupted syscall.
 * Only a call's first step may throw it; Process and the engine pass it on.
 */
export class RestartCall extends Error {
  constructor(readonly ready: Promise<void>) {
    super('restart the call when ready');
    this.name = 'RestartCall';
  }
}
