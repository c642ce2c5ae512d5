/**
 * The file-operations contract (the kernel's file_operations): what an open
 * file does with each syscall of the task calling through it (`Caller`, the
 * kernel's `current`: its memory, credentials, files and pin accounting).
 * /dev/iommu, iommufd's anonymous files (access, fault, vEVENTQ) and VFIO's
 * files implement FileOps; the host's fd table holds them and provides the
 * Caller of every call.
 */
import type { IoctlAbi } from '../abi/ioctl.ts';
import type { Mm, PhysRun } from '../iommu/mm.ts';
import type { AccountMode, PinAccount } from './pin-account.ts';

/** poll(2) event bits. */
export const POLLIN = 0x1;
export const POLLOUT = 0x4;
/** Reported with POLLIN by the event queues (fault, vEVENTQ). */
export const POLLRDNORM = 0x40;

/**
 * Where the bytes of a page set come from: a process's address space
 * (addresses are user VAs) or a file (addresses are file offsets).
 */
export interface PagesSource {
  /** GUP-like resolution to physically contiguous runs; EFAULT when unreachable. */
  resolve(start: bigint, length: bigint, write: boolean): PhysRun[];
  /** A file's pages (memfd, shmem: IOPT_ADDRESS_FILE) rather than a process's VAs. */
  readonly file?: boolean;
}

/** A file as iommufd sees one handed to it by fd number (IOAS_MAP_FILE). */
export interface FileRef {
  /** Present for memory-backed files (memfd, shmem, hugetlbfs); MAP_FILE of any other file is EINVAL. */
  readonly pages?: { source: PagesSource; size: bigint };
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

/** The calling task: memory, credentials, files, rlimit accounting. */
export interface Caller {
  readonly mm: Mm;
  /** Ioctl number encoding of the emulated architecture (request decoding). */
  readonly abi: IoctlAbi;
  /** CAP_SYS_RESOURCE (RLIMIT_MODE changes). */
  readonly capSysResource: boolean;
  /** CAP_SYS_RAWIO (VFIO no-IOMMU mode); absent = not held. */
  readonly capSysRawio?: boolean;
  /** The pin account for a page set created now under `mode` (none when CAP_IPC_LOCK). */
  pinAccount(mode: AccountMode): PinAccount;
  /** This task's account in `mode` whatever its capabilities (IOAS_CHANGE_PROCESS); absent: EOPNOTSUPP. */
  accountIn?(mode: AccountMode): PinAccount;
  /** fget(): the operations of the file open at `fd`; undefined when not open. */
  file(fd: number): FileOps | undefined;
  /** fd_install() of a new file (O_CLOEXEC) at the lowest free fd; EMFILE (and the file released) when full. */
  installFile(file: FileOps): number;
}
