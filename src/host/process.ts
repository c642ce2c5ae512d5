import { Errno, type ErrnoName, fail } from '../abi/errno.ts';
import type { IoctlAbi } from '../abi/ioctl.ts';
import type { Layout } from '../abi/layout.ts';
import { formatIoctl, formatSyscall } from '../abi/strace.ts';
import type { AccountMode, Caller } from '../iommufd/context.ts';
import type { PinAccount } from '../iommufd/pages.ts';
import { type MmCounters, NO_ACCOUNT, pinAccount } from './accounting.ts';
import { type FileOps, OpenFile } from './file.ts';
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

/** Highest fd number (RLIMIT_NOFILE - 1). */
const FD_MAX = 1023;

/** The result of a struct-carrying ioctl made through `Process.call`. */
export interface CallResult<V> {
  ret: number;
  errno: ErrnoName | undefined;
  /** The struct as it is in memory after the call. */
  out: V;
}

/**
 * A client of the emulated kernel: an fd table, an address space and
 * credentials. Its syscalls behave like libc's: they return -1 and set
 * `errno` on failure. Every error crossing the boundary is an errno; any
 * other exception is a bug of the model and is rethrown.
 */
export class Process implements Caller {
  errno: ErrnoName | undefined;
  readonly fds = new Map<number, OpenFile>();
  /** VmLck / VmPin in pages. */
  readonly counters: MmCounters = { lockedVm: 0n, pinnedVm: 0n };
  /** Receives one strace-like line per syscall when set. */
  trace: ((line: string) => void) | undefined;
  private scratchBase = 0n;
  private scratchSize = 0n;

  constructor(
    readonly kernel: Kernel,
    readonly pid: number,
    readonly mm: SimMm,
    readonly creds: Credentials,
  ) {
    for (let fd = 0; fd < 3; fd++) this.fds.set(fd, new OpenFile({ kind: 'tty', release() {} }));
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
    const limit = this.creds.rlimitMemlock / this.mm.pageSize;
    return pinAccount(mode, this.kernel.userAccount(this.creds.uid), this.counters, limit);
  }

  file(fd: number): FileOps | undefined {
    return this.fds.get(fd)?.ops;
  }

  installFile(file: FileOps): number {
    return this.install(new OpenFile(file));
  }

  // ---- syscalls ----------------------------------------------------------------

  /** Run a syscall body: errno on Errno, rethrow anything else (a model bug). */
  private sys(fn: () => number): number {
    try {
      const r = fn();
      this.errno = undefined;
      return r;
    } catch (e) {
      if (e instanceof Errno) {
        this.errno = e.code;
        return -1;
      }
      this.kernel.bugs.push(e);
      throw e;
    }
  }

  private traceLine(line: string): void {
    this.trace?.(line);
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
    fail('EMFILE');
  }

  private fileOf(fd: number): OpenFile {
    const f = this.fds.get(fd);
    if (!f) fail('EBADF');
    return f;
  }

  /** open(2) of a device node: ENOENT for paths the kernel does not serve. */
  open(path: string): number {
    const r = this.sys(() => this.install(new OpenFile(this.kernel.openPath(this, path))));
    this.traceLine(
      formatSyscall('openat', ['AT_FDCWD', JSON.stringify(path), 'O_RDWR'], r, this.errno),
    );
    return r;
  }

  /** close(2): the file is released when its last fd goes; effects are immediate. */
  close(fd: number): number {
    const r = this.sys(() => {
      const f = this.fileOf(fd);
      this.fds.delete(fd);
      f.put();
      return 0;
    });
    this.traceLine(formatSyscall('close', [String(fd)], r, this.errno));
    return r;
  }

  /** ioctl(2) with the argument's address in this process's memory. */
  ioctl(fd: number, request: number, arg: bigint): number {
    const r = this.sys(() => this.fileOf(fd).ioctl(this, request, arg));
    if (this.trace) {
      let bytes: Uint8Array | undefined;
      try {
        const size = new DataView(this.mm.read(arg, 4).buffer).getUint32(0, true);
        bytes = this.mm.read(arg, Math.min(size, 256));
      } catch {
        bytes = undefined;
      }
      this.traceLine(
        formatIoctl({
          fd,
          abi: this.kernel.abi,
          cmd: request,
          arg: bytes,
          argAddr: arg,
          result: r,
          fdKind: this.fds.get(fd)?.ops.kind,
          ...(this.errno ? { errno: this.errno } : {}),
        }),
      );
    }
    return r;
  }

  /** read(2) into `buf`; returns bytes read. */
  read(fd: number, buf: bigint, count: number): number {
    return this.sys(() => {
      const data = this.fileOf(fd).read(this, count);
      this.mm.write(buf, data);
      return data.length;
    });
  }

  /** write(2) from `buf`; returns bytes consumed. */
  write(fd: number, buf: bigint, count: number): number {
    return this.sys(() => this.fileOf(fd).write(this, this.mm.read(buf, count)));
  }

  /** poll(2) on one fd: the ready events among `events` (POLLNVAL 0x20 for a closed fd). */
  poll(fd: number, events: number): number {
    const f = this.fds.get(fd);
    return f ? f.poll() & events : 0x20;
  }

  /** dup(2): lowest free fd sharing the open file. */
  dup(fd: number): number {
    return this.sys(() => {
      const f = this.fileOf(fd);
      f.get();
      return this.install(f);
    });
  }

  /** dup2(2): `newfd` now refers to `oldfd`'s file (closing what it had). */
  dup2(oldfd: number, newfd: number): number {
    return this.sys(() => {
      const f = this.fileOf(oldfd);
      if (newfd < 0 || newfd > FD_MAX) fail('EBADF');
      if (oldfd === newfd) return newfd;
      f.get();
      const old = this.fds.get(newfd);
      this.fds.set(newfd, f);
      old?.put();
      return newfd;
    });
  }

  /** memfd_create(2) + ftruncate(2): a memory file of `size` bytes. */
  memfd(size: bigint): number {
    return this.sys(() => this.install(new OpenFile(this.kernel.memfd(size))));
  }

  /** exit(2): every fd is closed in ascending order, then the address space goes. */
  exit(): void {
    for (const fd of [...this.fds.keys()].sort((a, b) => a - b)) this.close(fd);
    this.mm.exit();
    this.kernel.reap(this);
  }

  // ---- conveniences for TypeScript callers ---------------------------------------

  /** Copy `data` into a private scratch area of this process; returns its address. */
  scratch(data: Uint8Array): bigint {
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
  call<V>(fd: number, request: number, layout: Layout<V>, value: Partial<V>): CallResult<V> {
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
