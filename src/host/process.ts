import { Errno, type ErrnoName, fail } from '../abi/errno.ts';
import type { IoctlAbi } from '../abi/ioctl.ts';
import type { Layout } from '../abi/layout.ts';
import { openFlagsText } from '../abi/open-flags.ts';
import {
  formatFd,
  formatIoctl,
  formatReason,
  formatSyscall,
  ioctlRequestName,
} from '../abi/strace.ts';
import { type Mm, RestartCall } from '../iommu/mm.ts';
import type { Caller } from '../kernel/file.ts';
import { type AccountMode, NO_ACCOUNT, type PinAccount } from '../kernel/pin-account.ts';
import { type MmCounters, pinAccount } from './accounting.ts';
import { type FileOps, O_RDWR, OpenFile } from './file.ts';
import { duringCall } from './foreign-memory.ts';
import { IoMaps } from './io-maps.ts';
import type { Kernel } from './kernel.ts';
import type { SimMm } from './sim-mm.ts';

export interface Credentials {
  readonly uid: number;
  /** CAP_SYS_RESOURCE: may change iommufd's RLIMIT mode. */
  readonly capSysResource: boolean;
  /** CAP_IPC_LOCK: pinned pages are not accounted. */
  readonly capIpcLock: boolean;
  /** RLIMIT_MEMLOCK in bytes. */
  readonly rlimitMemlock: bigint;
  /** CAP_SYS_RAWIO: may use VFIO's no-IOMMU mode; absent = not held. */
  readonly capSysRawio?: boolean;
}

/**
 * A process's address space as the host needs it: what iommufd sees (`Mm`)
 * plus the teardown at exit or exec. SimMm and the remote real-process
 * backend implement it.
 */
export type ProcessMm = Mm & {
  exit(): void;
  /** Whether the preload library tracks the address space's changes, and saw one (see RemoteMm). */
  observeMaps?(tracked: boolean, changed: boolean): void;
  /**
   * Bytes of the caller's memory at `va` (from index `spanAt` on: at
   * `spanVa`) read by its library as the call began; none: the call ended
   * (see RemoteMm).
   */
  prefetch?(va?: bigint, bytes?: Uint8Array, spanVa?: bigint, spanAt?: number): void;
  /** Until `endWrites`, copy_to_user may be left for the caller's library to make (see RemoteMm). */
  deferWrites?(): void;
  /** The writes left to the library, in order (deferral ends); with `make`, they are made now instead. */
  endWrites?(make: boolean): UserWrite[];
};

/** A copy_to_user the preload library makes into its own memory (docs/engine-protocol.md, IOCTL). */
export interface UserWrite {
  readonly va: bigint;
  readonly bytes: Uint8Array;
}

/** Highest fd number (RLIMIT_NOFILE - 1). */
const FD_MAX = 1023;

/** Largest byte count one read or write moves (MAX_RW_COUNT: INT_MAX rounded down to a page). */
export const MAX_RW_COUNT = 0x7fff_f000;

/** The result of a struct-carrying ioctl made through `Process.call`. */
export interface CallResult<V> {
  ret: number;
  errno: ErrnoName | undefined;
  /** The struct as it is in memory after the call. */
  out: V;
}

/** An ioctl made with a spare fd (see `Process.ioctlSpare`). */
export interface SpareIoctlResult {
  ret: number;
  /** The spare fd when the call installed a new file there, else -1. */
  newfd: number;
}

/** One traced syscall, for structured (JSON) traces. */
export interface TraceEvent {
  /** Syscall name as strace prints it (`openat`, `ioctl`, `pread64`, ...). */
  call: string;
  fd: number;
  /** The kind of file `fd` names (`FileOps.kind`: `vfio-device`, `fault`, ...), when it names one. */
  fdKind?: string;
  /** The ioctl's request name (or hex number when unknown). */
  request?: string;
  ret: number;
  errno?: ErrnoName;
  /** Why the call failed, in words (`Errno.reason`), when the model says. */
  reason?: string;
  /** The kernel function whose rule the failure follows, when known. */
  where?: string;
  /** An ioctl's argument bytes as they are after the call (see `traceIoctl`), when readable. */
  arg?: Uint8Array;
}

/** An fd table: fd number → open file. */
export type FdTable = Map<number, OpenFile>;

/**
 * A client of the emulated kernel: an fd table, an address space and
 * credentials. Its syscalls behave like libc's: they return -1 and set
 * `errno` on failure. Every error crossing the boundary is an errno; any
 * other exception is a bug of the model and is rethrown.
 *
 * `M` is the memory backend: a SimMm for in-process callers (the default,
 * which also gives `scratch` and `call`), any `ProcessMm` for a real process.
 */
export class Process<M extends ProcessMm = SimMm> implements Caller {
  errno: ErrnoName | undefined;
  /** The Errno of the last failed syscall (read only while `ret < 0`: a success does not clear it). */
  failure: Errno | undefined;
  readonly fds: FdTable;
  /** VmLck / VmPin in pages (per address space: fresh after exec). */
  counters: MmCounters = { lockedVm: 0n, pinnedVm: 0n };
  /** Device mappings of the address space (mmap of a device file), see io-maps.ts. */
  ioMaps: IoMaps;
  /**
   * Files of a real process that the kernel does not serve (an eventfd
   * handed to VFIO_DEVICE_SET_IRQS, a memfd handed to IOMMU_IOAS_MAP_FILE),
   * looked up by `file(fd)` when the fd table has nothing there; set by a
   * backend that can reach them. Unset, such fds are EBADF to handlers.
   */
  foreignFile: ((fd: number) => FileOps | undefined) | undefined;
  /** Receives one strace-like line (and its structured form) per syscall when set. */
  trace: ((line: string, event: TraceEvent) => void) | undefined;
  /** While an ioctl runs with a spare fd: that fd, and whether a new file went there. */
  private spare: { fd: number; used: boolean } | undefined;
  /**
   * Set for a real process: its fd numbers are its own kernel's, so a new
   * file goes only to the spare fd the library reserved; without one the
   * allocation fails EMFILE (as get_unused_fd_flags with a full table).
   */
  sparesOnly = false;
  private scratchBase = 0n;
  private scratchSize = 0n;

  /** `fds` is the initial fd table (taken over as is: its references become this process's). */
  constructor(
    readonly kernel: Kernel,
    readonly pid: number,
    private memory: M,
    private credentials: Credentials,
    fds: FdTable = new Map(),
    ioMaps: IoMaps = new IoMaps(),
  ) {
    this.fds = fds;
    this.ioMaps = ioMaps;
    memory.pfnMaps = ioMaps;
  }

  /** The current address space (replaced by `exec`). */
  get mm(): M {
    return this.memory;
  }

  /** The current image's credentials (replaced by `exec`). */
  get creds(): Credentials {
    return this.credentials;
  }

  get capSysResource(): boolean {
    return this.creds.capSysResource;
  }

  get capSysRawio(): boolean {
    return this.creds.capSysRawio === true;
  }

  get abi(): IoctlAbi {
    return this.kernel.abi;
  }

  // ---- Caller (what iommufd sees of the calling task) -------------------------------

  pinAccount(mode: AccountMode): PinAccount {
    if (this.creds.capIpcLock) return NO_ACCOUNT;
    return this.accountIn(mode);
  }

  accountIn(mode: AccountMode): PinAccount {
    const limit = this.creds.rlimitMemlock / this.mm.pageSize;
    return pinAccount(mode, this.kernel.userAccount(this.creds.uid), this.counters, limit);
  }

  file(fd: number): FileOps | undefined {
    return this.fds.get(fd)?.ops ?? this.foreignFile?.(fd);
  }

  /**
   * fd_install of a new anonymous file: at the spare fd while an ioctl has
   * one, else the lowest free fd (EMFILE for a real process, `sparesOnly`).
   */
  installFile(file: FileOps): number {
    const f = new OpenFile(file);
    const spare = this.spare;
    if (spare && !spare.used) {
      spare.used = true;
      this.installAt(spare.fd, f);
      return spare.fd;
    }
    if (this.sparesOnly) {
      f.put();
      fail('EMFILE', 'no spare fd reserved in the process', 'get_unused_fd_flags');
    }
    return this.install(f);
  }

  // ---- syscalls ----------------------------------------------------------------

  /**
   * Run a syscall body (as one call for the facts it may reuse, `duringCall`):
   * errno on Errno; a RestartCall goes to the caller; anything else is a model bug, rethrown.
   */
  private sys(fn: () => number): number {
    try {
      const r = duringCall(fn);
      this.errno = undefined;
      return r;
    } catch (e) {
      if (e instanceof Errno) {
        this.errno = e.code;
        this.failure = e;
        return -1;
      }
      if (!(e instanceof RestartCall)) this.kernel.bugs.push(e);
      throw e;
    }
  }

  /**
   * `ioctl`'s body, made once (a closure per call was the engine's largest
   * allocation per request): it reads the call's arguments, set just before,
   * first thing, so a nested ioctl may set them anew.
   */
  private readonly ioctlBody = (): number =>
    this.fileOf(this.ioctlFd).ioctl(this, this.ioctlRequest, this.ioctlArg);
  private ioctlFd = -1;
  private ioctlRequest = 0;
  private ioctlArg = 0n;

  /** The kind of file at `fd`, or undefined for a free fd. */
  private kindOf(fd: number): string | undefined {
    return this.fds.get(fd)?.ops.kind;
  }

  /**
   * Emit one trace line for a syscall on `fd` (a file of `kind`) that just
   * returned `ret` (errno from `this.errno`); `args` follow the fd argument
   * unless `fdFirst` is false.
   */
  private traceCall(
    call: string,
    fd: number,
    kind: string | undefined,
    args: string[],
    ret: number,
    fdFirst = true,
  ): void {
    if (!this.trace) return;
    const errno = ret < 0 ? this.errno : undefined;
    const all = fdFirst ? [formatFd(fd, kind), ...args] : args;
    const why = this.why(ret);
    this.trace(formatSyscall(call, all, ret, errno) + formatReason(why.reason, why.where), {
      call,
      fd,
      ...(kind ? { fdKind: kind } : {}),
      ret,
      ...(errno ? { errno } : {}),
      ...why,
    });
  }

  /** The reason and kernel function of a call that returned `ret` (none for a success). */
  private why(ret: number): { reason?: string; where?: string } {
    if (ret >= 0 || !this.failure) return {};
    const { reason, where } = this.failure;
    return { ...(reason ? { reason } : {}), ...(where ? { where } : {}) };
  }

  /** Put an open file at the lowest free fd. */
  private install(file: OpenFile): number {
    for (let fd = 0; fd <= FD_MAX; fd++) {
      if (!this.fds.has(fd)) {
        this.fds.set(fd, file);
        return fd;
      }
    }
    file.put();
    fail('EMFILE', `no free fd up to ${FD_MAX}`, 'alloc_fd');
  }

  /**
   * Put an open file at `fd`, replacing (and releasing) what the table held
   * there: the caller (the preload library) owns the real fd number.
   */
  private installAt(fd: number, file: OpenFile): void {
    if (fd < 0 || fd > FD_MAX) {
      file.put();
      fail('EBADF', `fd ${fd} outside 0..${FD_MAX}`, 'replace_fd');
    }
    const old = this.fds.get(fd);
    this.fds.set(fd, file);
    old?.put();
  }

  private fileOf(fd: number): OpenFile {
    const f = this.fds.get(fd);
    if (!f) fail('EBADF', `fd ${fd} is not open`, 'fdget');
    return f;
  }

  /** open(2) of a device node at the lowest free fd: ENOENT for paths the kernel does not serve. */
  open(path: string, flags = O_RDWR): number {
    const r = this.sys(() => this.install(this.openFile(path, flags)));
    this.traceOpen(path, flags, r);
    return r;
  }

  /**
   * open(2) of a device node installed at `fd`, a number the caller chose
   * (the preload library reserved it); a file the table held there is
   * released first. EBADF for an fd out of range.
   */
  openAt(fd: number, path: string, flags = O_RDWR): number {
    const r = this.sys(() => {
      if (fd < 0 || fd > FD_MAX) fail('EBADF', `fd ${fd} outside 0..${FD_MAX}`, 'replace_fd');
      this.installAt(fd, this.openFile(path, flags));
      return fd;
    });
    this.traceOpen(path, flags, r);
    return r;
  }

  private openFile(path: string, flags: number): OpenFile {
    return new OpenFile(this.kernel.openPath(this, path, flags), { path, flags });
  }

  private traceOpen(path: string, flags: number, r: number): void {
    const args = ['AT_FDCWD', JSON.stringify(path), openFlagsText(flags, this.kernel.abi)];
    this.traceCall('openat', r, this.kindOf(r), args, r, false);
  }

  /** close(2): the file is released when its last fd goes; effects are immediate. */
  close(fd: number): number {
    const kind = this.kindOf(fd);
    const r = this.sys(() => {
      const f = this.fileOf(fd);
      this.fds.delete(fd);
      f.put();
      return 0;
    });
    this.traceCall('close', fd, kind, [], r);
    return r;
  }

  /** ioctl(2) with the argument's address in this process's memory. */
  ioctl(fd: number, request: number, arg: bigint): number {
    this.ioctlFd = fd;
    this.ioctlRequest = request;
    this.ioctlArg = arg;
    const r = this.sys(this.ioctlBody);
    if (this.trace) this.traceIoctl(fd, request, arg, r);
    return r;
  }

  /**
   * ioctl(2) for a request that may create a file: a new file goes to
   * `spare` (an fd the caller reserved) instead of the lowest free fd;
   * `newfd` tells whether it did. A negative `spare` is a plain ioctl.
   */
  ioctlSpare(fd: number, request: number, arg: bigint, spare: number): SpareIoctlResult {
    if (spare < 0) return { ret: this.ioctl(fd, request, arg), newfd: -1 };
    const slot = { fd: spare, used: false };
    this.spare = slot;
    try {
      const ret = this.ioctl(fd, request, arg);
      return { ret, newfd: slot.used && this.fds.has(spare) ? spare : -1 };
    } finally {
      this.spare = undefined;
    }
  }

  /**
   * Trace an ioctl that returned: its argument is read now, so out-fields
   * show what the call wrote back. As many bytes as the leading u32 (`size`
   * or `argsz`) says, at least 4 and at most 256 (strings and `int *`
   * arguments have no size: those 4 bytes read as one), cut short at a page
   * end when the rest is unreadable. Also for an ioctl the engine performed
   * itself (unmaps a library posted under a lease, cleared together): each
   * gets its line as if made through `ioctl`.
   */
  traceIoctl(fd: number, request: number, arg: bigint, r: number): void {
    const head = this.readSome(arg, 4);
    const size = head && head.length === 4 ? new DataView(head.buffer).getUint32(0, true) : 0;
    const bytes = this.readSome(arg, Math.max(4, Math.min(size, 256)));
    const errno = r < 0 ? this.errno : undefined;
    const opts = {
      fd,
      abi: this.kernel.abi,
      cmd: request,
      arg: bytes,
      argAddr: arg,
      result: r,
      fdKind: this.kindOf(fd),
      ...(errno ? { errno } : {}),
    };
    const name = ioctlRequestName(opts);
    const why = this.why(r);
    this.trace?.(formatIoctl(opts) + formatReason(why.reason, why.where), {
      call: 'ioctl',
      fd,
      ...(opts.fdKind ? { fdKind: opts.fdKind } : {}),
      request: name,
      ret: r,
      ...(errno ? { errno } : {}),
      ...why,
      ...(bytes ? { arg: bytes } : {}),
    });
  }

  /** `length` bytes at `addr`, or those up to the end of its 4 KiB page; undefined when neither reads. */
  private readSome(addr: bigint, length: number): Uint8Array | undefined {
    const toPageEnd = 0x1000 - Number(addr & 0xfffn);
    for (const n of length > toPageEnd ? [length, toPageEnd] : [length]) {
      try {
        return this.mm.read(addr, n);
      } catch {}
    }
    return undefined;
  }

  /** read(2) into `buf`; returns bytes read (a device file without a position reads at offset 0). */
  read(fd: number, buf: bigint, count: number): number {
    const r = this.sys(() => this.readInto(fd, buf, count, undefined));
    this.traceCall('read', fd, this.kindOf(fd), [hex(buf), String(count)], r);
    return r;
  }

  /** write(2) from `buf`; returns bytes consumed. */
  write(fd: number, buf: bigint, count: number): number {
    const r = this.sys(() => this.writeFrom(fd, buf, count, undefined));
    this.traceCall('write', fd, this.kindOf(fd), [hex(buf), String(count)], r);
    return r;
  }

  /** pread64(2) at `offset` (vfio-pci: region index << 40 | offset); EINVAL for a negative offset. */
  pread(fd: number, buf: bigint, count: number, offset: bigint): number {
    const r = this.sys(() => {
      if (offset < 0n) fail('EINVAL', 'negative offset', 'ksys_pread64');
      return this.readInto(fd, buf, count, offset);
    });
    this.traceCall('pread64', fd, this.kindOf(fd), [hex(buf), String(count), hex(offset)], r);
    return r;
  }

  /** pwrite64(2) at `offset`; EINVAL for a negative offset. */
  pwrite(fd: number, buf: bigint, count: number, offset: bigint): number {
    const r = this.sys(() => {
      if (offset < 0n) fail('EINVAL', 'negative offset', 'ksys_pwrite64');
      return this.writeFrom(fd, buf, count, offset);
    });
    this.traceCall('pwrite64', fd, this.kindOf(fd), [hex(buf), String(count), hex(offset)], r);
    return r;
  }

  private readInto(fd: number, buf: bigint, count: number, offset: bigint | undefined): number {
    const f = this.fileOf(fd);
    const data = f.read(this, Math.min(count, MAX_RW_COUNT), offset);
    this.mm.write(buf, data);
    return data.length;
  }

  private writeFrom(fd: number, buf: bigint, count: number, offset: bigint | undefined): number {
    const f = this.fileOf(fd);
    return f.write(this, this.mm.read(buf, Math.min(count, MAX_RW_COUNT)), offset);
  }

  /** poll(2) on one fd: the ready events among `events` (POLLNVAL 0x20 for a closed fd). */
  poll(fd: number, events: number): number {
    const f = this.fds.get(fd);
    return f ? f.poll() & events : 0x20;
  }

  /** dup(2): lowest free fd sharing the open file. */
  dup(fd: number): number {
    const r = this.sys(() => {
      const f = this.fileOf(fd);
      f.get();
      return this.install(f);
    });
    this.traceCall('dup', fd, this.kindOf(fd), [], r);
    return r;
  }

  /** dup2(2): `newfd` now refers to `oldfd`'s file (closing what it had). */
  dup2(oldfd: number, newfd: number): number {
    const r = this.sys(() => {
      const f = this.fileOf(oldfd);
      if (newfd < 0 || newfd > FD_MAX)
        fail('EBADF', `newfd ${newfd} outside 0..${FD_MAX}`, 'ksys_dup3');

      if (oldfd === newfd) return newfd;
      f.get();
      this.installAt(newfd, f);
      return newfd;
    });
    this.traceCall('dup2', oldfd, this.kindOf(oldfd), [String(newfd)], r);
    return r;
  }

  /** memfd_create(2) + ftruncate(2): a memory file of `size` bytes. */
  memfd(size: bigint): number {
    return this.sys(() => this.install(new OpenFile(this.kernel.memfd(size))));
  }

  /** A copy of the fd table sharing every open file (one reference taken per fd). */
  snapshotFds(): FdTable {
    const copy: FdTable = new Map();
    for (const [fd, f] of this.fds) {
      f.get();
      copy.set(fd, f);
    }
    return copy;
  }

  /**
   * fork(2): a child `pid` with its own address space `mm` and this
   * process's credentials, sharing every open file (like the kernel's
   * copy of the fd table).
   */
  fork<C extends ProcessMm>(pid: number, mm: C): Process<C> {
    return this.kernel.adopt(pid, mm, this.creds, this.snapshotFds(), this.ioMaps.clone());
  }

  /**
   * execve(2) succeeded: the old address space goes (pins a domain holds
   * stay, as in Linux, charged to whom they were) and `mm` replaces it with
   * fresh VmLck/VmPin counters; `creds`, the new image's, replace the old
   * ones when given (a real process's are read through its new handle).
   * The fd table is unchanged; closing the O_CLOEXEC fds is the caller's
   * business.
   */
  exec(mm: M, creds: Credentials = this.credentials): void {
    this.credentials = creds;
    this.ioMaps.clear();
    this.memory.exit();
    this.memory = mm;
    mm.pfnMaps = this.ioMaps;
    this.counters = { lockedVm: 0n, pinnedVm: 0n };
  }

  /** exit(2): every fd is closed in ascending order, then the address space goes. */
  exit(): void {
    this.ioMaps.clear();
    for (const fd of [...this.fds.keys()].sort((a, b) => a - b)) {
      const f = this.fds.get(fd)!;
      this.fds.delete(fd);
      f.put();
    }
    this.mm.exit();
    this.kernel.reap(this);
  }

  // ---- conveniences for TypeScript callers (simulated address space only) ---------

  /** Copy `data` into a private scratch area of this process; returns its address. */
  scratch(this: Process<SimMm>, data: Uint8Array): bigint {
    const need = BigInt(data.length);
    if (need > this.scratchSize) {
      this.scratchSize = need > 1n << 20n ? need : 1n << 20n;
      this.scratchBase = this.mm.mmap({
        length: this.scratchSize,
        prot: { read: true, write: true },
      });
    }
    this.mm.write(this.scratchBase, data);
    return this.scratchBase;
  }

  /**
   * ioctl with a struct: encode `value` (with `size` defaulting to the
   * layout's size when the struct has a size field), call, decode it back.
   */
  call<V>(
    this: Process<SimMm>,
    fd: number,
    request: number,
    layout: Layout<V>,
    value: Partial<V>,
  ): CallResult<V> {
    const withSize = layout.fields.some((f) => f.name === 'size');
    const v =
      withSize && (value as { size?: number }).size === undefined
        ? { size: layout.size, ...value }
        : value;
    const addr = this.scratch(layout.encode(v as Partial<V>));
    const ret = this.ioctl(fd, request, addr);
    const errno = this.errno;
    return { ret, errno, out: layout.decode(this.mm.read(addr, layout.size)) };
  }
}

/** `%#llx`: zero is `0` (a file offset may be); a negative offset stays decimal. */
function hex(x: bigint): string {
  if (x <= 0n) return String(x);
  return `0x${x.toString(16)}`;
}
