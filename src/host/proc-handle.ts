/**
 * A handle on one real process, bound to its lifetime: a pidfd and an
 * O_PATH fd of its /proc/<pid> directory, opened while the pidfd showed the
 * process unreaped (so the directory is that process's, not a later one's
 * under the same number). Everything the engine reads of a client — its
 * memory and maps (RemoteMm opens them here), status and limits, its
 * capabilities (capget, checked against the pidfd), its fds —
 * goes through these: once the process is gone they fail (ENOENT, ESRCH,
 * EBADF, a short read) instead of reaching whoever gets the number next.
 * docs/engine-protocol.md, *Identity*, states why this is safe.
 *
 * @example
 * const handle = ProcHandle.ofPid(pid);
 * handle.readText('status'); // /proc/<pid>/status of that process only
 * handle.close();
 */
import fs from 'node:fs';
import { Errno } from '../abi/errno.ts';
import {
  capEffective,
  closeFd,
  openAt,
  peerPid,
  peerPidfd,
  pidfdExited,
  pidfdGetfd,
  pidfdOpen,
  procDirOpen,
} from './native.ts';

/** The files `readText` keeps open: each generated whole by one read from offset 0. */
const KEPT_OPEN = new Set(['status', 'limits']);
/** Where they are read (a status file is ~1.5 KiB); a longer one gets a bigger buffer. */
const textBuffer = Buffer.allocUnsafe(8192);

/** What the engine knows of a client process: its pid, and the handle when it is a real one. */
export interface ProcessRef {
  readonly pid: number;
  readonly handle?: ProcHandle;
}

export class ProcHandle implements ProcessRef {
  private open = true;
  /** The files `readText` keeps open, by name. */
  private readonly texts = new Map<string, number>();

  private constructor(
    readonly pid: number,
    private readonly pidfd: number,
    private readonly dirfd: number,
  ) {}

  /**
   * The process `pid` is now: ESRCH if there is none. Only for a process the
   * caller knows holds the number (itself, its unreaped child); the engine
   * binds clients with `ofPeer`.
   */
  static ofPid(pid: number): ProcHandle {
    return ProcHandle.bind(pidfdOpen(pid), pid);
  }

  /**
   * The process that connected Unix socket `sock` (SO_PEERPIDFD: the
   * connecting process itself, even if its number has been reused since).
   * On kernels without SO_PEERPIDFD (before 6.5): pidfd_open of the
   * SO_PEERCRED pid, right after accepting (see the protocol's *Identity*).
   * ESRCH when that process has already gone.
   */
  static ofPeer(sock: number): ProcHandle {
    const pid = peerPid(sock);
    let pidfd: number;
    try {
      pidfd = peerPidfd(sock);
    } catch (e) {
      if (!(e instanceof Errno) || e.code !== 'ENOPROTOOPT') throw e;
      pidfd = pidfdOpen(pid);
    }
    return ProcHandle.bind(pidfd, pid);
  }

  private static bind(pidfd: number, pid: number): ProcHandle {
    try {
      return new ProcHandle(pid, pidfd, procDirOpen(pidfd, pid));
    } catch (e) {
      closeFd(pidfd);
      throw e;
    }
  }

  /** ProcessRef: this handle. */
  get handle(): ProcHandle {
    return this;
  }

  /** The process has exited (a zombie has) or the handle is closed. */
  get exited(): boolean {
    return !this.open || pidfdExited(this.pidfd);
  }

  /** Open `name` under /proc/<pid> (e.g. 'mem', 'maps', 'map_files/…'): ENOENT/ESRCH once gone. */
  openAt(name: string, write = false): number {
    if (!this.open) throw new Errno('ESRCH', 'handle closed', 'uiommu_proc_handle');
    return openAt(this.dirfd, name, write);
  }

  /**
   * The whole text of /proc/<pid>/`name`, as generated now. `status` and
   * `limits` (read before many requests, for the credentials) stay open and
   * are read again from offset 0 — /proc generates these one-record files
   * whole at each read from their start — one pread instead of open,
   * fstat, reads and close.
   */
  readText(name: string): string {
    if (!KEPT_OPEN.has(name)) {
      const fd = this.openAt(name);
      try {
        return fs.readFileSync(fd, 'latin1');
      } finally {
        closeFd(fd);
      }
    }
    let fd = this.texts.get(name);
    if (fd === undefined) {
      fd = this.openAt(name);
      this.texts.set(name, fd);
    }
    let buf = textBuffer;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, 0);
      if (n < buf.length) return buf.toString('latin1', 0, n);
      buf = Buffer.allocUnsafe(buf.length * 2);
    }
  }

  /** Its effective capability set now (capget(2); bit n: capability n): ESRCH once gone. */
  capEffective(): number {
    if (!this.open) throw new Errno('ESRCH', 'handle closed', 'uiommu_proc_handle');
    return capEffective(this.pidfd, this.pid);
  }

  /** A local close-on-exec copy of the process's fd `fd` (pidfd_getfd): EBADF, ESRCH, EPERM. */
  getfd(fd: number): number {
    if (!this.open) throw new Errno('ESRCH', 'handle closed', 'uiommu_proc_handle');
    return pidfdGetfd(this.pidfd, fd);
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    for (const fd of this.texts.values()) closeFd(fd);
    this.texts.clear();
    closeFd(this.dirfd);
    closeFd(this.pidfd);
  }
}
