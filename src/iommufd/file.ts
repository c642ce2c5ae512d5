/**
 * The file-operations contract (the kernel's file_operations): what an open
 * file does with each syscall of the task calling through it. /dev/iommu,
 * iommufd's anonymous files (access, fault, vEVENTQ) and VFIO's files all
 * implement it; the host's fd table holds them.
 */
import type { Caller } from './context.ts';
import type { PagesSource } from './pages.ts';

/** poll(2) event bits. */
export const POLLIN = 0x1;
export const POLLOUT = 0x4;
/** Reported with POLLIN by the event queues (fault, vEVENTQ). */
export const POLLRDNORM = 0x40;

/** A file as iommufd sees one handed to it by fd number (IOAS_MAP_FILE). */
export interface FileRef {
  /** Present for memory-backed files (memfd, shmem, hugetlbfs); MAP_FILE of any other file is EINVAL. */
  readonly pages?: { source: PagesSource; size: bigint };
}

/**
 * A reference to an eventfd's counter (struct eventfd_ctx), as VFIO holds
 * one for an interrupt trigger: it outlives the fd it came from.
 */
export interface EventfdCtx {
  /** eventfd_signal(): add 1 to the counter (saturating, never blocking) and wake the readers. */
  signal(): void;
  /** eventfd_ctx_do_read() for a consumer in the kernel (virqfd): take the counter; true if it was > 0. */
  consume(): boolean;
  /** eventfd_ctx_put(): drop this reference. */
  put(): void;
}

/** What a kind of open file does with each syscall (struct file_operations). */
export interface FileOps {
  /** Short name used in traces to decode ioctls by fd kind ("iommufd", "access", ...). */
  readonly kind: string;
  ioctl?(caller: Caller, request: number, arg: bigint): number;
  read?(caller: Caller, length: number, offset: bigint | undefined): Uint8Array;
  write?(caller: Caller, data: Uint8Array, offset: bigint | undefined): number;
  poll?(): number;
  /**
   * How many times the file has woken its poll waiters (wake_up on its wait
   * queue: the event queues do it for every event queued, readable or not
   * before). Edge-triggered epoll reports each wakeup.
   */
  wakeups?(): number;
  /** The last reference to the open file went away. */
  release(): void;
  /** What iommufd may do with this file when handed its fd (MAP_FILE). */
  readonly ref?: FileRef;
  /** eventfd_ctx_fileget(): a new reference to the counter; absent on anything but an eventfd (EINVAL). */
  eventfdCtx?(): EventfdCtx;
}
