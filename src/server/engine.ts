/**
 * The engine: one Kernel serving the processes behind the preload library,
 * one request at a time (docs/engine-protocol.md). It owns the pid →
 * process map, the fork tokens and the exec-pending state; the transport
 * (server.ts) only cuts frames and calls `handle`.
 *
 * What the engine cannot do itself is injected (`EngineOptions`): the
 * memory backend of a pid, the credentials of a pid, mirroring a pollable
 * file's readiness into the process's real eventfd, and whether a pid
 * still exists.
 *
 * @example
 * const engine = createEngine({ kernel, mmFor: (pid) => new RemoteMm(pid, kernel.memory) });
 * const conn = engine.connect();
 * engine.handle(conn, { op: OP.HELLO, pid, tid: pid, args: [0n] });
 * engine.handle(conn, { op: OP.OPEN, pid, tid: pid, args: [3n, 2n], payload: path('/dev/iommu') });
 * engine.disconnect(conn); // the process exits: its fds close in ascending order
 */
import { readFileSync } from 'node:fs';
import { ERRNO, Errno, type ErrnoName, fail } from '../abi/errno.ts';
import { formatFd, formatSyscall } from '../abi/strace.ts';
import { vmStatusLines } from '../host/accounting.ts';
import { type FileOps, type OpenFile, POLLIN } from '../host/file.ts';
import type { IoMaps } from '../host/io-maps.ts';
import { type Kernel, ROOT } from '../host/kernel.ts';
import { closeFd } from '../host/native.ts';
import type { ProcHandle } from '../host/proc-handle.ts';
import type { Credentials, FdTable, Process, ProcessMm, TraceEvent } from '../host/process.ts';
import { memfdStore } from '../host/shared-memory.ts';
import { sysfsAttr } from '../host/sysfs-attrs.ts';
import { type Warning, Warnings } from '../host/warnings.ts';
import { asTask, enterTask, leaveTask } from '../iommu/fault-inject.ts';
import { RestartCall } from '../iommu/mm.ts';
import type { SharedMemoryProvider } from '../kernel/file.ts';
import { deviceMmapOp } from './device-mmap.ts';
import { type CharDevice, charDeviceAt } from './devices.ts';
import {
  argInt,
  argU32,
  copyRequest,
  encodeI32s,
  encodeNodeStat,
  HELLO_KIND,
  MAX_PAYLOAD,
  OP,
  payloadString,
  REQ_FLAGS,
  type Request,
  type Response,
} from './protocol.ts';
import {
  leaseWindowsOf,
  leavesLeases,
  unmapDmaRequest,
  unmapLeasedRun,
  unmapRecordArg,
} from './unmap-lease-rules.ts';
import { UnmapLeases, type UnmapRecord } from './unmap-leases.ts';

/**
 * Mirrors the readiness of pollable engine files into the real process:
 * `attach` takes a copy of the eventfd the library reserved at `fd` of
 * `pid` (pidfd_getfd) and returns a handle, or undefined (or throws) when
 * it cannot; `set` keeps its counter at 1 (ready) or 0; `wake` wakes its
 * waiters again while it is ready, leaving it ready (a new event on a file
 * that was readable already: edge-triggered epoll reports it); `release`
 * drops the copy. Failures of `set`, `wake` and `release` are ignored (the
 * process may be gone).
 */
export interface PollSync<H = unknown> {
  attach(pid: number, fd: number, handle?: ProcHandle): H | undefined;
  set(handle: H, ready: boolean): void;
  wake(handle: H): void;
  release(handle: H): void;
}

/** One line of `--trace-json`. */
export interface TraceRecord {
  pid: number;
  tid: number;
  call: string;
  fd: number;
  /** The kind of file `fd` names (`vfio-device`, `fault`, `iommufd`, ...); null when none. */
  fdKind: string | null;
  /** The ioctl request's name; null for other calls. */
  request: string | null;
  ret: number;
  errno: ErrnoName | null;
  /** Why the call failed, in words; null for a success or when the model does not say. */
  reason: string | null;
  /** The kernel function whose rule the failure follows; null when unknown. */
  where: string | null;
  /** The call as the strace-like trace prints it (arguments and out-fields decoded). */
  text: string;
}

/**
 * The hooks below get the process's `handle` when its connection came with
 * one (a real process: see Engine.connect); they must reach the process
 * through it, never by the pid number alone.
 */
export interface EngineOptions {
  readonly kernel: Kernel;
  /** The memory backend of a new process image (HELLO, fork child, after exec). */
  mmFor(pid: number, handle?: ProcHandle): ProcessMm;
  /** Credentials of a process (default: root-like, every capability). */
  credsFor?(pid: number, handle?: ProcHandle): Credentials & { refresh?(): void };
  /** Readiness of pollable files (fault queue, vEVENTQ); without it nothing is mirrored. */
  readonly pollSync?: PollSync;
  /**
   * A file of the real process `pid` at `fd` that is no engine file (an
   * eventfd, a memfd), for handlers that take fds; without it such fds are
   * EBADF. See `Process.foreignFile`.
   */
  foreignFile?(pid: number, fd: number, handle?: ProcHandle): FileOps | undefined;
  /** Creates the shared files behind mapped BARs (default: memfds, src/host/shared-memory.ts). */
  sharedMemory?: SharedMemoryProvider;
  /** Whether `pid` still exists, for processes without a handle (default: kill(pid, 0) and not a zombie). */
  pidAlive?(pid: number): boolean;
  /** The parent pid of a live process (checks FORK_END's child and fork-token claims made before FORK_END). */
  parentOf?(pid: number, handle?: ProcHandle): number | undefined;
  /** Receives one strace-like line per syscall, prefixed `[pid N] `. */
  trace?(line: string): void;
  /** Receives one record per syscall. */
  traceJson?(record: TraceRecord): void;
  /** Receives the warnings (src/host/warnings.ts) derived from the traced calls; needs a trace. */
  warn?(warning: Warning): void;
  /** Told that a process is about to exit, its fds still open (`--dump-state` writes then). */
  exiting?(proc: Process<ProcessMm>): void;
}

/** One client connection (one process image); opaque to the transport. */
export class Connection {
  /** The pid its HELLO named. */
  pid: number | undefined;
  /** The peer process's handle until its HELLO hands it to the process it names. */
  handle: ProcHandle | undefined;
  /** The pid the kernel reports for the other end (SO_PEERCRED), when the transport knows it. */
  readonly peer: number | undefined;

  constructor(peer?: number | ProcHandle) {
    if (typeof peer === 'object') {
      this.handle = peer;
      this.peer = peer.pid;
    } else this.peer = peer;
  }
}

/** A process served by the engine. */
interface Client {
  readonly proc: Process<ProcessMm>;
  /** The credentials of `proc`'s current image, refreshed before each of its requests. */
  creds: Credentials & { refresh?(): void };
  /** The process's handle (a real process): every access to it goes through this. */
  handle: ProcHandle | undefined;
  /** The connection speaking for it; undefined while an exec is in flight. */
  conn: Connection | undefined;
  /** EXEC_BEGIN seen: the connection's close is not an exit. */
  execPending: boolean;
}

/** FORK_BEGIN's snapshot of the parent's fd table, waiting for the child's HELLO. */
interface ForkToken {
  readonly parent: number;
  /** The process that made it: only it may name the child (FORK_END). */
  readonly creator: Client;
  readonly fds: FdTable;
  /** The parent's device mappings, inherited by the child. */
  readonly ioMaps: IoMaps;
  /** Known after FORK_END. */
  child: number | undefined;
}

/** A pollable file being mirrored into fd `fd` of `pid`. */
interface Polled {
  readonly file: OpenFile;
  readonly handle: unknown;
  ready: boolean | undefined;
  /** The file's wakeup count when last mirrored. */
  wakeups: number;
  /** The last syncPoll pass that found the file open. */
  pass: number;
}

/**
 * Fork tokens one process may hold unclaimed (its children have not said
 * HELLO yet); FORK_BEGIN beyond is EAGAIN, as fork(2) at RLIMIT_NPROC.
 * Tokens are snapshots of an fd table the reaper walks: unbounded, a client
 * could make every pass (and so every other client) slower without end.
 */
export const MAX_FORK_TOKENS = 256;

/** Build an engine; the one place where the memory backend and the poll hook are plugged in. */
export function createEngine(opts: EngineOptions): Engine {
  return new Engine(opts);
}

export class Engine {
  readonly kernel: Kernel;
  private readonly clients = new Map<number, Client>();
  private readonly tokens = new Map<number, ForkToken>();
  private readonly polled = new Map<string, Polled>();
  private nextToken = 1;
  /** Numbers syncPoll's passes. */
  private pollPass = 0;
  /** The tid of the request being handled, for traces. */
  private tid = 0;
  private readonly warnings: Warnings | undefined;
  /** The library's SPAPR unmap rings (created with the first ring a client offers). */
  private leases: UnmapLeases<Connection> | undefined;
  /** Requests being answered (a device's DMA inside one needs no settling: see `settle`). */
  private depth = 0;

  constructor(private readonly opts: EngineOptions) {
    this.kernel = opts.kernel;
    const traced = opts.trace !== undefined || opts.traceJson !== undefined;
    this.warnings = opts.warn && traced ? new Warnings(opts.kernel, opts.warn) : undefined;
  }

  /** The process the engine serves as `pid`, if any. */
  process(pid: number): Process<ProcessMm> | undefined {
    return this.clients.get(pid)?.proc;
  }

  /** Pids served, ascending. */
  get pids(): number[] {
    return [...this.clients.keys()].sort((a, b) => a - b);
  }

  /** Fork tokens not yet claimed. */
  get pendingForks(): number {
    return this.tokens.size;
  }

  /**
   * A new connection (no process until its HELLO). With `peer` (the
   * socket's SO_PEERCRED pid, or the peer process's handle, which the
   * connection then owns) a HELLO naming another pid is EPERM: a process
   * speaks only for itself, and its handle is the one every access to it
   * goes through.
   */
  connect(peer?: number | ProcHandle): Connection {
    return new Connection(peer);
  }

  /**
   * Answer one request completely. Syscall failures are -1/errno; a request
   * on a connection that has not said HELLO is -1/ESRCH; an unknown op
   * -1/ENOSYS; a request whose payload was over MAX_PAYLOAD (`oversize`)
   * -1/ENAMETOOLONG for a path, -1/E2BIG otherwise. A model bug (a
   * non-errno exception) is recorded in `kernel.bugs` and answered -1/EIO.
   * For processes whose memory may restart a call (RemoteMm), use `serve`;
   * here a restart is a bug.
   */
  handle(conn: Connection, req: Request): Response {
    const r = this.attempt(conn, req);
    if (r instanceof RestartCall) return this.bug(r);
    return r;
  }

  /**
   * Answer one request: at once, or — when the call must wait for work
   * done off the engine's thread (RestartCall: a huge struct tail being
   * checked) — with a promise; the call is then made again from the start
   * (it had changed nothing), as the kernel restarts a syscall. Other
   * connections are served meanwhile; the transport sends this one
   * nothing else until the promise settles.
   */
  serve(conn: Connection, req: Request): Response | Promise<Response> {
    const r = this.attempt(conn, req, true);
    if (!(r instanceof RestartCall)) return r;
    // redone from the start, it reads the caller's memory anew (and `req` is the transport's, reused)
    const redo = copyRequest(req, null);
    const again = () => this.serve(conn, redo);
    return r.ready.then(again, again);
  }

  private attempt(conn: Connection, req: Request, writeback = false): Response | RestartCall {
    this.depth++;
    try {
      return this.attemptSettled(conn, req, writeback);
    } finally {
      this.depth--;
    }
  }

  /**
   * One try at `req`. With `writeback` (the socket server, whose client is
   * the preload library), an IOCTL's copy_to_user may be left to the
   * library (ProcessMm.deferWrites): the answer's payload then carries it.
   */
  private attemptSettled(
    conn: Connection,
    req: Request,
    writeback: boolean,
  ): Response | RestartCall {
    const client = conn.pid === undefined ? undefined : this.clients.get(conn.pid);
    if (this.leases) {
      // unmaps the libraries answered are done before anything else is
      if (client && leavesLeases(client.proc, req)) this.leases.drainAll();
      else this.leases.revokeAll();
    }
    this.tid = req.tid;
    client?.creds.refresh?.();
    const flags = req.flags ?? 0;
    client?.proc.mm.observeMaps?.(
      (flags & REQ_FLAGS.MM_TRACKED) !== 0,
      (flags & REQ_FLAGS.MM_CHANGED) !== 0,
    );
    // an IOCTL's payload is its argument struct as the library read it (RemoteMm.prefetch),
    // with SPAN then a5 bytes of the caller's memory at a4
    const mm = client?.proc.mm;
    const p = req.payload;
    if (req.op === OP.IOCTL && p?.length && mm?.prefetch) {
      const span = (flags & REQ_FLAGS.SPAN) !== 0 ? Number(req.args[5] ?? 0n) : 0;
      if (span > 0 && span < p.length) {
        mm.prefetch(req.args[2] ?? 0n, p, req.args[4], p.length - span);
      } else mm.prefetch(req.args[2] ?? 0n, p);
    }
    const deferring = writeback && req.op === OP.IOCTL && mm?.deferWrites !== undefined;
    if (deferring) mm.deferWrites!();
    let r: Response | RestartCall;
    try {
      const task = enterTask(req.tid);
      let res: Response;
      try {
        res = this.dispatch(conn, req);
      } finally {
        leaveTask(task);
      }
      if (client && (flags & REQ_FLAGS.LEASE) !== 0) this.offerLease(client, req, res);
      r = withZaps(res, conn, this.clients);
    } catch (e) {
      if (e instanceof Errno) r = withZaps(failure(e.code), conn, this.clients);
      else if (e instanceof RestartCall) r = e;
      else r = this.bug(e);
    } finally {
      mm?.prefetch?.();
      this.syncPoll();
    }
    if (!deferring) return r;
    // a restarted call is redone from the start: what it wrote is made now
    if (r instanceof RestartCall) quietly(() => mm.endWrites!(true));
    else r.writes = mm.endWrites!(false);
    return r;
  }

  /**
   * Perform every unmap the libraries posted (docs/engine-protocol.md,
   * *Unmap leases*): before a state snapshot, a device's DMA (the memory's
   * beforeDma hook), or anything else that could observe them outside a
   * request. Inside a request there is nothing to do: every record posted
   * before it began was performed then, and later ones are concurrent
   * with it, as an unmap on another CPU would be.
   */
  settle(): void {
    if (this.depth === 0) this.leases?.drainAll();
  }

  /**
   * After an UNMAP_DMA that asked for a lease (REQ_FLAGS.LEASE): take the
   * ring the library offers in a4 (once), and lease the fd when the call
   * succeeded on a container that allows it. Failures only mean no lease.
   */
  private offerLease(client: Client, req: Request, res: Response): void {
    const conn = client.conn;
    if (!conn || !client.handle) return;
    const ringFd = argInt(req.args[4] ?? 0n);
    try {
      if (!this.leases) {
        this.leases = new UnmapLeases((c, recs) => this.performUnmaps(c, recs));
        this.kernel.memory.beforeDma = () => this.settle();
      }
      if (!this.leases.has(conn) && ringFd >= 0) {
        const copy = client.handle.getfd(ringFd);
        try {
          this.leases.attach(conn, copy);
        } finally {
          closeFd(copy);
        }
      }
      const fd = argInt(req.args[0] ?? 0n);
      const windows = res.ret === 0n ? leaseWindowsOf(client.proc, fd) : undefined;
      if (windows && this.leases.has(conn)) this.leases.grant(conn, fd, windows);
    } catch {
      // no lease: the library goes on with ordinary calls
    }
  }

  /**
   * Posted records, in order, as their process's own UNMAP_DMAs: 0 or
   * -errno each. Plain ones go straight to their container (then each gets
   * its trace line, made as for the ioctl); any other is the ordinary ioctl.
   */
  private performUnmaps(conn: Connection, recs: readonly UnmapRecord[]): number[] {
    const client = conn.pid === undefined ? undefined : this.clients.get(conn.pid);
    if (!client) return recs.map(() => -ERRNO.ESRCH);
    const { proc } = client;
    const request = unmapDmaRequest(this.kernel.abi);
    const out: number[] = [];
    while (out.length < recs.length) {
      const n = unmapLeasedRun(proc, recs, out.length);
      for (let k = 0; k < n; k++) {
        const rec = recs[out.length]!;
        if (proc.trace)
          this.asRecord(proc, rec, () => proc.traceIoctl(rec.fd, request, rec.arg, 0));
        out.push(0);
      }
      if (n === 0) out.push(this.performUnmap(proc, recs[out.length]!, request));
    }
    return out;
  }

  /** Run `fn` as record `rec`'s task, its struct readable from the record (RemoteMm.prefetch). */
  private asRecord<T>(proc: Process<ProcessMm>, rec: UnmapRecord, fn: () => T): T {
    const outer = this.tid;
    this.tid = rec.tid;
    proc.mm.prefetch?.(rec.arg, unmapRecordArg(rec));
    try {
      return asTask(rec.tid, fn);
    } finally {
      proc.mm.prefetch?.();
      this.tid = outer;
    }
  }

  /** One posted record as its process's own UNMAP_DMA ioctl: 0 or -errno. */
  private performUnmap(proc: Process<ProcessMm>, rec: UnmapRecord, request: number): number {
    try {
      const r = this.asRecord(proc, rec, () => proc.ioctl(rec.fd, request, rec.arg));
      return r < 0 ? -ERRNO[proc.errno ?? 'EIO'] : r;
    } catch (e) {
      this.bug(e);
      return -ERRNO.EIO;
    }
  }

  private bug(e: unknown): Response {
    if (!this.kernel.bugs.includes(e)) this.kernel.bugs.push(e);
    return failure('EIO');
  }

  /**
   * The connection closed. Without a pending exec its process has exited:
   * fds close in ascending order, then the address space goes. With one, the
   * process waits for its new image's HELLO (or the reaper).
   */
  disconnect(conn: Connection): void {
    this.leases?.revokeAll();
    this.leases?.close(conn);
    conn.handle?.close();
    conn.handle = undefined;
    const client = conn.pid === undefined ? undefined : this.clients.get(conn.pid);
    if (!client || client.conn !== conn) return;
    client.conn = undefined;
    if (!client.execPending) this.exitClient(client);
    this.syncPoll();
  }

  /**
   * Drop what waits for a pid that no longer exists: exec-pending processes
   * (the exec'd image never said HELLO) exit; fork tokens whose child (or,
   * before FORK_END, parent) is gone are released.
   */
  reap(): void {
    // each pid is looked at once per pass, however many tokens name it
    const seen = new Map<number, boolean>();
    const isAlive = this.opts.pidAlive ?? pidAlive;
    const alive = (pid: number) => {
      const known = seen.get(pid);
      if (known !== undefined) return known;
      const a = isAlive(pid);
      seen.set(pid, a);
      return a;
    };
    for (const client of [...this.clients.values()]) {
      if (client.execPending && !client.conn && !this.clientAlive(client)) this.exitClient(client);
    }
    for (const [token, t] of [...this.tokens]) {
      if (!alive(t.child ?? t.parent)) this.dropToken(token);
    }
    this.syncPoll();
  }

  /** Exit every process and drop every token (the engine shuts down). */
  shutdown(): void {
    for (const client of [...this.clients.values()]) this.exitClient(client);
    for (const token of [...this.tokens.keys()]) this.dropToken(token);
    this.syncPoll();
  }

  // ---- dispatch -------------------------------------------------------------------

  private dispatch(conn: Connection, req: Request): Response {
    // a path longer than any PATH_MAX, or a payload no op takes
    if (req.oversize) {
      if (req.op === OP.OPEN || req.op === OP.STAT) {
        fail('ENAMETOOLONG', 'path longer than PATH_MAX', 'getname_long');
      }
      fail('E2BIG', 'request payload larger than any op takes', 'uiommu_engine_dispatch');
    }

    if (req.op === OP.HELLO) return this.hello(conn, req);
    const client = conn.pid === undefined ? undefined : this.clients.get(conn.pid);
    if (!client || client.conn !== conn)
      fail('ESRCH', 'no HELLO on this connection', 'uiommu_engine_dispatch');
    const proc = client.proc;
    // by index, not destructured: no iterator per request
    const args = req.args;
    const a0 = args[0] ?? 0n;
    const a1 = args[1] ?? 0n;
    const a2 = args[2] ?? 0n;
    const a3 = args[3] ?? 0n;
    switch (req.op) {
      case OP.FORK_BEGIN: {
        // nothing a child inherits: no token, and the child connects when it needs to, as a new process
        if (proc.fds.size === 0 && proc.ioMaps.size === 0) return ok(0n);
        let held = 0;
        for (const t of this.tokens.values()) if (t.parent === proc.pid) held++;
        if (held >= MAX_FORK_TOKENS)
          fail('EAGAIN', `${held} fork tokens unclaimed`, 'uiommu_engine_dispatch');
        const token = this.nextToken++;
        this.tokens.set(token, {
          parent: proc.pid,
          creator: client,
          fds: proc.snapshotFds(),
          ioMaps: proc.ioMaps.clone(),
          child: undefined,
        });
        return ok(BigInt(token));
      }
      case OP.FORK_END: {
        // another process's token, or a child that is not the caller's, is as an unknown token
        const token = argU32(a0);
        const t = this.tokens.get(token);
        const child = argInt(a1);
        if (!t || t.creator !== client || t.child !== undefined) return ok(0n);
        const parentOf = this.opts.parentOf;
        if (child < 0) this.dropToken(token);
        else if (!parentOf || parentOf(child) === proc.pid) t.child = child;
        return ok(0n);
      }
      case OP.EXEC_BEGIN:
        client.execPending = true;
        return ok(0n);
      case OP.EXEC_ABORT:
        client.execPending = false;
        return ok(0n);
      case OP.SYNC:
        // every posted unmap was performed before this request (attempt)
        return ok(0n);
      case OP.OPEN: {
        const r = proc.openAt(argInt(a0), payloadString(req.payload), argInt(a1));
        return r < 0 ? sysResult(proc, r) : ok(0n);
      }
      case OP.CLOSE:
        return sysResult(proc, proc.close(argInt(a0)));
      case OP.DUP:
        return sysResult(proc, proc.dup2(argInt(a0), argInt(a1)));
      case OP.IOCTL: {
        // ioctl(2)'s cmd is an unsigned int: the upper half of the long is ignored
        const request = argU32(a1);
        const spare = argInt(a3);
        // most ioctls have no spare fd: no result object for them
        if (spare < 0) return sysResult(proc, proc.ioctl(argInt(a0), request, a2));
        const r = proc.ioctlSpare(argInt(a0), request, a2, spare);
        const res = sysResult(proc, r.ret);
        res.newfd = r.newfd;
        return res;
      }
      case OP.READ:
        return sysResult(proc, proc.read(argInt(a0), a1, count(a2)));
      case OP.WRITE:
        return sysResult(proc, proc.write(argInt(a0), a1, count(a2)));
      case OP.PREAD:
        return sysResult(proc, proc.pread(argInt(a0), a1, count(a2), BigInt.asIntN(64, a3)));
      case OP.PWRITE:
        return sysResult(proc, proc.pwrite(argInt(a0), a1, count(a2), BigInt.asIntN(64, a3)));
      case OP.FSTAT:
        return this.fstat(proc, argInt(a0));
      case OP.STAT:
        return this.stat(proc, payloadString(req.payload));
      case OP.PROC_STATUS:
        return this.procStatus(argInt(a0));
      case OP.SYSFS_READ:
        return this.sysfsRead(payloadString(req.payload));
      case OP.MMAP:
      case OP.MUNMAP:
      case OP.MREMAP:
      case OP.MMIO:
      case OP.MMIO_FAULT: {
        const a = deviceMmapOp(proc, req, {
          share: this.opts.sharedMemory ?? memfdStore,
          busRange: (size, backing) => this.kernel.memory.alloc(size, { backing }),
        });
        return ok(a.ret, a.payload);
      }
      default:
        fail('ENOSYS', `op ${req.op}`, 'uiommu_engine_dispatch');
    }
  }

  /**
   * HELLO: register the connection's process (new, fork child, or a new
   * image after exec). A pid has one live connection: a HELLO for a pid
   * whose process is still served on another open connection is EBUSY
   * (unless that image announced its exec), as is a second HELLO on one
   * connection; a process served under a pid whose holder has exited
   * (reuse) exits first.
   */
  private hello(conn: Connection, req: Request): Response {
    const kind = Number(req.args[0] ?? 0n);
    const pid = req.pid;
    if (conn.peer !== undefined && conn.peer !== pid)
      fail('EPERM', `HELLO for ${pid} from ${conn.peer}`, 'uiommu_engine_hello');
    if (kind !== HELLO_KIND.NEW && kind !== HELLO_KIND.FORK_CHILD && kind !== HELLO_KIND.AFTER_EXEC)
      fail('EINVAL', `HELLO kind ${kind}`, 'uiommu_engine_hello');
    if (conn.pid !== undefined)
      fail('EBUSY', 'this connection has said HELLO', 'uiommu_engine_hello');
    const existing = this.clients.get(pid);
    const handle = conn.handle;
    if (kind === HELLO_KIND.AFTER_EXEC && existing?.execPending) {
      // the new image is read through its own handle: the old one closes below
      existing.creds = this.opts.credsFor?.(pid, handle) ?? existing.creds;
      existing.proc.exec(this.opts.mmFor(pid, handle), existing.creds);
      existing.execPending = false;
      this.adoptHandle(existing, conn);
      const fds = [...existing.proc.fds.keys()].sort((a, b) => a - b);
      return ok(0n, encodeI32s(fds));
    }
    // without a handle an open connection is all there is to tell the holder by
    if (existing?.conn && !(existing.handle?.exited ?? false))
      fail('EBUSY', `pid ${pid} is served on another connection`, 'uiommu_engine_hello');
    // a stale process under a reused pid is gone
    if (existing) this.exitClient(existing);
    let fds: FdTable = new Map();
    let ioMaps: IoMaps | undefined;
    let tokenFound = true;
    if (kind === HELLO_KIND.FORK_CHILD) {
      const token = argU32(req.args[1] ?? 0n);
      const t = this.tokens.get(token);
      if (t && this.claims(t, pid, handle)) {
        this.tokens.delete(token);
        fds = t.fds;
        ioMaps = t.ioMaps;
      } else tokenFound = false;
    }
    const creds = this.opts.credsFor?.(pid, handle) ?? ROOT;
    const proc = this.kernel.adopt(pid, this.opts.mmFor(pid, handle), creds, fds, ioMaps);
    proc.sparesOnly = true;
    // without a reader, no trace line is formatted
    if (this.opts.trace || this.opts.traceJson)
      proc.trace = (line, event) => {
        this.emitTrace(pid, line, event);
        this.warnings?.observe(proc, line, event);
      };
    const client: Client = { proc, creds, conn, execPending: false, handle: undefined };
    const foreign = this.opts.foreignFile;
    if (foreign) proc.foreignFile = (fd) => foreign(pid, fd, client.handle);
    this.clients.set(pid, client);
    this.adoptHandle(client, conn);
    // an unknown fork token: the child is served, with no inherited engine fds
    if (!tokenFound) return failure('ENOENT');
    return ok(0n, kind === HELLO_KIND.AFTER_EXEC ? encodeI32s([]) : undefined);
  }

  /** `conn` now speaks for `client`, whose handle becomes the connection's. */
  private adoptHandle(client: Client, conn: Connection): void {
    if (conn.handle) {
      client.handle?.close();
      client.handle = conn.handle;
      conn.handle = undefined;
    }
    client.conn = conn;
    conn.pid = client.proc.pid;
  }

  /** The client's process has not exited: by its handle, else by its pid. */
  private clientAlive(client: Client): boolean {
    if (client.handle) return !client.handle.exited;
    return (this.opts.pidAlive ?? pidAlive)(client.proc.pid);
  }

  /**
   * Only the forked child may take its parent's fd table: the pid FORK_END
   * named, or before FORK_END a process whose parent (`parentOf`) made
   * the token and is still the process served under its pid.
   */
  private claims(t: ForkToken, pid: number, handle: ProcHandle | undefined): boolean {
    if (t.child !== undefined) return t.child === pid;
    if (this.clients.get(t.parent) !== t.creator) return false;
    const parentOf = this.opts.parentOf;
    return parentOf === undefined || parentOf(pid, handle) === t.parent;
  }

  private fstat(proc: Process<ProcessMm>, fd: number): Response {
    const file = proc.fds.get(fd);
    if (!file) {
      this.traceStat(proc.pid, 'fstat', String(fd), fd, undefined, undefined, 'EBADF');
      return failure('EBADF');
    }
    const node = file.path === undefined ? undefined : charDeviceAt(this.kernel, file.path);
    const kind = file.ops.kind;
    this.traceStat(proc.pid, 'fstat', formatFd(fd, kind), fd, kind, node);
    return node ? nodeAnswer(node) : ok(0n);
  }

  private stat(proc: Process<ProcessMm>, path: string): Response {
    const node = charDeviceAt(this.kernel, path);
    const errno = node ? undefined : 'ENOENT';
    this.traceStat(proc.pid, 'stat', JSON.stringify(path), -1, undefined, node, errno);
    return node ? nodeAnswer(node) : failure('ENOENT');
  }

  /**
   * PROC_STATUS: the real /proc/<pid>/status of a process the engine
   * serves — read through that process's own handle, never by the number
   * — its VmLck and VmPin lines replaced by the model's accounting (the
   * pins and locked pages exist only in the model). Any client may ask for
   * any served pid: the file is world-readable in Linux (0444), VmPin of
   * another process included (the selftest's change_process reads its
   * parent's). ENOENT for a pid not served (the library then reads the
   * real file) or whose process is gone.
   */
  private procStatus(pid: number): Response {
    const target = this.clients.get(pid);
    if (!target) fail('ENOENT', `pid ${pid} not served`, 'uiommu_proc_status');
    const proc = target.proc;
    let text: string;
    try {
      text = target.handle
        ? target.handle.readText('status')
        : readFileSync(`/proc/${pid}/status`, 'latin1');
    } catch {
      fail('ENOENT', `/proc/${pid}/status unreadable`, 'uiommu_proc_status');
    }
    const [lck, pin] = vmStatusLines(proc.counters, proc.mm.pageSize).split('\n');
    const out = text.replace(/^VmLck:.*$/m, lck!).replace(/^VmPin:.*$/m, pin!);
    const payload = Buffer.from(out, 'latin1');
    if (payload.length > MAX_PAYLOAD)
      fail('EFBIG', `/proc/${pid}/status too long`, 'uiommu_proc_status');
    return ok(BigInt(payload.length), payload);
  }

  /**
   * SYSFS_READ: the contents of a file the kernel generates
   * (src/host/sysfs-attrs.ts) as of now, for the library's read-only opens
   * and stdio streams; ENOENT for any other path, EFBIG past MAX_PAYLOAD.
   */
  private sysfsRead(path: string): Response {
    const attr = sysfsAttr(this.kernel, path);
    if (!attr) fail('ENOENT', `${path} is not generated by the kernel`, 'uiommu_sysfs_read');
    const payload = attr.show();
    if (payload.length > MAX_PAYLOAD) fail('EFBIG', `${path} too long`, 'uiommu_sysfs_read');
    return ok(BigInt(payload.length), payload);
  }

  // ---- processes, tokens, poll mirroring ---------------------------------------------

  private exitClient(client: Client): void {
    this.leases?.revokeAll();
    const pid = client.proc.pid;
    if (this.clients.get(pid) === client) this.clients.delete(pid);
    try {
      this.warnings?.exit(client.proc);
      this.opts.exiting?.(client.proc);
      client.proc.exit();
    } catch (e) {
      if (!this.kernel.bugs.includes(e)) this.kernel.bugs.push(e);
    }
    client.handle?.close();
    client.handle = undefined;
  }

  private dropToken(token: number): void {
    const t = this.tokens.get(token);
    if (!t) return;
    this.tokens.delete(token);
    for (const f of t.fds.values()) f.put();
    t.ioMaps.clear();
  }

  /**
   * Bring every mirrored eventfd in line with its file's POLLIN, and wake it
   * again when the file woke its waiters while staying readable; attach new
   * pollable fds, release gone ones.
   */
  private syncPoll(): void {
    const sync = this.opts.pollSync;
    if (!sync) return;
    // the common case (after every request): nothing pollable open, nothing mirrored
    if (this.polled.size === 0 && !this.anyPollable()) return;
    // entries not marked with this pass's number are gone
    const pass = ++this.pollPass;
    for (const [pid, client] of this.clients) {
      for (const [fd, file] of client.proc.fds) {
        if (!file.ops.poll) continue;
        const key = `${pid}:${fd}`;
        let entry = this.polled.get(key);
        if (entry && entry.file !== file) {
          quietly(() => entry?.handle !== undefined && sync.release(entry.handle));
          entry = undefined;
        }
        const wakeups = file.ops.wakeups?.() ?? 0;
        if (!entry) {
          const handle = quietly(() => sync.attach(pid, fd, client.handle));
          entry = { file, handle, ready: undefined, wakeups, pass };
          this.polled.set(key, entry);
        }
        entry.pass = pass;
        const ready = (file.poll() & POLLIN) !== 0;
        const { handle } = entry;
        if (handle !== undefined && entry.ready !== ready) {
          quietly(() => sync.set(handle, ready));
        } else if (handle !== undefined && ready && entry.wakeups !== wakeups) {
          quietly(() => sync.wake(handle));
        }
        entry.ready = ready;
        entry.wakeups = wakeups;
      }
    }
    for (const [key, entry] of this.polled) {
      if (entry.pass === pass) continue;
      quietly(() => entry.handle !== undefined && sync.release(entry.handle));
      this.polled.delete(key);
    }
  }

  /** Whether a served process has a pollable file open (a walk that makes no entry arrays). */
  private anyPollable(): boolean {
    for (const client of this.clients.values())
      for (const file of client.proc.fds.values()) if (file.ops.poll) return true;
    return false;
  }

  // ---- traces -----------------------------------------------------------------------

  private emitTrace(pid: number, line: string, event: TraceEvent): void {
    this.opts.trace?.(`[pid ${pid}] ${line}`);
    this.opts.traceJson?.({
      pid,
      tid: this.tid,
      call: event.call,
      fd: event.fd,
      fdKind: event.fdKind ?? null,
      request: event.request ?? null,
      ret: event.ret,
      errno: event.errno ?? null,
      reason: event.reason ?? null,
      where: event.where ?? null,
      text: line,
    });
  }

  private traceStat(
    pid: number,
    call: string,
    target: string,
    fd: number,
    fdKind: string | undefined,
    node: CharDevice | undefined,
    errno?: ErrnoName,
  ): void {
    if (!this.opts.trace && !this.opts.traceJson) return;
    const ret = errno ? -1 : 0;
    const st = node
      ? `{st_mode=S_IFCHR|0${(node.mode & 0o7777).toString(8)}, st_rdev=makedev(0x${node.major.toString(16)}, 0x${node.minor.toString(16)}), ...}`
      : errno
        ? '0x0'
        : '{st_mode=0600, ...}';
    this.emitTrace(pid, formatSyscall(call, [target, st], ret, errno), {
      call,
      fd,
      ...(fdKind ? { fdKind } : {}),
      ret,
      ...(errno ? { errno } : {}),
    });
  }
}

// ---- answers ----------------------------------------------------------------------

/** An answer; every answer is made here, so all have one shape (every field present). */
function answer(ret: bigint, err: number, payload: Uint8Array | undefined): Response {
  return { ret, err, newfd: -1, payload, writes: undefined, zaps: 0 };
}

function ok(ret: bigint, payload?: Uint8Array): Response {
  return answer(ret, 0, payload);
}

/** The answer (made for this request) with the zap count of the process's device mappings (docs/device-mmap.md). */
function withZaps(res: Response, conn: Connection, clients: Map<number, Client>): Response {
  const maps = conn.pid === undefined ? undefined : clients.get(conn.pid)?.proc.ioMaps;
  if (maps && maps.size > 0) res.zaps = maps.zaps();
  return res;
}

function failure(code: ErrnoName): Response {
  return answer(-1n, ERRNO[code], undefined);
}

/** A syscall's libc-style result as an answer. */
function sysResult(proc: Process<ProcessMm>, r: number): Response {
  if (r < 0 && proc.errno) return failure(proc.errno);
  return ok(r === 0 ? 0n : BigInt(r));
}

/** FSTAT/STAT of a device node: ret 1 and the node's numbers. */
function nodeAnswer(node: CharDevice): Response {
  return ok(1n, encodeNodeStat(node));
}

/** A size_t count as a number (clamped; Process clamps further to MAX_RW_COUNT). */
function count(a: bigint): number {
  return Number(a > 0xffff_ffffn ? 0xffff_ffffn : a);
}

/**
 * Run a poll-hook call whose failure only means the real process cannot be
 * reached (gone, or pidfd_getfd refused): undefined then, and an attach is
 * not retried for that file.
 */
function quietly<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

/** PPid of a live process from its /proc/<pid>/status (through `handle` when given); undefined when it is gone. */
export function procParentOf(pid: number, handle?: ProcHandle): number | undefined {
  try {
    const text = handle ? handle.readText('status') : readFileSync(`/proc/${pid}/status`, 'latin1');
    const m = /^PPid:\s+(\d+)/m.exec(text);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** kill(pid, 0) succeeds (EPERM counts as alive) and /proc does not show a zombie. */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}
