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
  readonly pages?: { source: PagesSource; size: bigint; readonly dmabuf?: DmaBufExporter };
}

/**
 * A dma-buf exporter iommufd can map (7.2: the selftest's test dma-buf;
 * MAP_FILE takes [start, start+length) of the buffer).
 */
export interface DmaBufExporter {
  /** Revoked by its exporter: MAP_FILE answers ENODEV until restored. */
  readonly revoked: boolean;
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
}
