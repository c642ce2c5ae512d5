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
  /**
   * What resolve() then a DMA copy to or from the runs would do for
   * `[start, start+buf.length)` (`start` a Number, exact), when it can be
   * done at once: true when done. False when the caller must resolve (a
   * prefix may have been copied: the caller does it all again).
   */
  copy?(start: number, buf: Uint8Array, write: boolean): boolean;
  /** A file's pages (memfd, shmem: IOPT_ADDRESS_FILE) rather than a process's VAs. */
  readonly file?: boolean;
  /** A process's address space: false once it is gone (mmget_not_zero() fails). */
  readonly alive?: boolean;
}

/** A file as iommufd sees one handed to it by fd number (IOAS_MAP_FILE). */
export interface FileRef {
  /** Present for memory-backed files (memfd, shmem, hugetlbfs); any other file maps but pinning it is EINVAL. */
  readonly pages?: { source: PagesSource; size: bigint; readonly dmabuf?: DmaBufExporter };
}

/**
 * A dma-buf exporter iommufd can map (7.2: the selftest's test dma-buf and
 * vfio-pci's BAR dma-bufs; MAP_FILE takes [start, start+length) of the
 * buffer, and charges no pinned pages for it).
 */
export interface DmaBufExporter {
  /** Revoked by its exporter: MAP_FILE answers ENODEV until restored. */
  readonly revoked: boolean;
  /** The exporter's refusals when iommufd maps it (vfio-pci: EOPNOTSUPP for more than one range). */
  iommufdMap?(): void;
  /**
   * dma_buf_dynamic_attach() with invalidate_mappings: `invalidate` runs
   * each time the exporter moves or revokes the buffer, until the returned
   * detach is called.
   */
  attach(invalidate: () => void): () => void;
}

/** An exporter's attachments: add them with `attach`, tell them all with `invalidate`. */
export class DmaBufAttachments {
  private readonly importers = new Set<() => void>();

  attach(invalidate: () => void): () => void {
    const entry = () => invalidate();
    this.importers.add(entry);
    return () => this.importers.delete(entry);
  }

  /** dma_buf_invalidate_mappings(): every importer's invalidate callback. */
  invalidate(): void {
    for (const fn of [...this.importers]) fn();
  }
}

/** A shared memory file holding a device's bytes (a memfd the engine creates), mapped by clients. */
export interface SharedStore {
  /** The file's descriptor in the engine (clients open it through /proc). */
  readonly fd: number;
  read(offset: bigint, length: number): Uint8Array;
  write(offset: bigint, data: Uint8Array): void;
  /** Zero `[offset, offset+length)` (punch a hole: mapped pages read 0 at once). */
  zero(offset: bigint, length: bigint): void;
  /** The engine lets go of the file (mappings already made keep it). */
  close?(): void;
}

/** Creates a shared store: `size` bytes of zeros, `name` shown in /proc/<pid>/maps. */
export type SharedMemoryProvider = (name: string, size: bigint) => SharedStore;

/** Bytes reached by bus address whose access is served elsewhere (a BAR, for peer-to-peer DMA). */
export interface BusBacking {
  read(phys: bigint, length: number): Uint8Array;
  write(phys: bigint, data: Uint8Array): void;
}

/** What an mmap of a device file may use from the host: shared memory and bus addresses. */
export interface MmapHost {
  readonly share: SharedMemoryProvider;
  /** A fresh physical (bus) range of `size` bytes whose accesses go to `backing`; its start. */
  busRange(size: bigint, backing: BusBacking): bigint;
}

/**
 * What an mmap of a device file maps (docs/device-mmap.md): `length`
 * bytes of a shared file from `fileOffset`, where the ranges in `registers`
 * (offsets from the mapping's start, page-aligned) are device registers
 * whose every access must reach the device (`access`).
 */
export interface DeviceMapping {
  readonly file: SharedStore;
  readonly fileOffset: bigint;
  readonly registers: readonly [bigint, bigint][];
  /** One access at `offset` from the mapping's start: the bytes read, or a write of `data`. EIO → SIGBUS. */
  access(offset: bigint, size: number, data?: Uint8Array): Uint8Array;
  /** A fault on a memory page after a zap: fine (the page comes back), or EIO → SIGBUS. */
  fault(): void;
  /** How many times the device has zapped its mappings (decode turned off). */
  zaps(): number;
  /** The bus address of the byte at `offset` from the mapping's start (peer-to-peer DMA). */
  phys(offset: bigint): bigint;
  /** vm_ops->open: a piece of the mapping came to be (mapped, split off, copied at fork). */
  open?(): void;
  /** vm_ops->close: a piece of the mapping went away. */
  close?(): void;
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
  /**
   * True once the process that handed the eventfd over has closed it: the
   * kernel's virqfd sees EPOLLHUP when the file's last reference goes and
   * tears itself down (QEMU relies on it for the INTx unmask eventfd).
   * Absent where the owner cannot be asked.
   */
  closed?(): boolean;
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
   * mmap(2) of `length` bytes (whole pages) at file `offset`: the file's
   * checks (EINVAL, ...) and what the mapping shows, using `host` for its
   * shared file and bus addresses. `exec`: PROT_EXEC was asked (VM_EXEC).
   */
  mmap?(
    caller: Caller,
    offset: bigint,
    length: bigint,
    shared: boolean,
    host: MmapHost,
    exec?: boolean,
  ): DeviceMapping;
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
