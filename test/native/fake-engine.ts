/**
 * A fake engine for the preload library's tests: speaks the frames of
 * docs/engine-protocol.md on a Unix socket, keeps a per-pid fd table just
 * deep enough to answer HELLO kind 2, and records every request. Its answers
 * are fixed by `request & 0xffff` (see test/native/client.c).
 */
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OP } from '../../src/server/protocol.ts';

export { OP };

/** The `request & 0xffff` values client.c uses. */
export const REQ = {
  ECHO: 0x3b80,
  ENOTTY: 0x3b81,
  DROP: 0x3bff,
  GET_DEVICE_FD: 0x3b6a,
  FAULT_ALLOC: 0x3b8e,
  VEVENTQ_ALLOC: 0x3b93,
  TEST_CMD: 0x3ba0,
  FEATURE: 0x3b75,
} as const;

const ENOENT = 2;
const EBADF = 9;
const ESRCH = 3;
const ENOTTY = 25;
const ENOSYS = 38;
/** The fake /dev/iommu: char 10:59, 0660. */
const NODE = { mode: 0o660, major: 10, minor: 59 };
const NODES = new Set(['/dev/iommu', '/dev/vfio/vfio', '/dev/vfio/devices/vfio0']);

export interface Request {
  /** Which connection (in accept order, from 0). */
  conn: number;
  op: number;
  /** REQ_FLAGS bits. */
  flags: number;
  pid: number;
  tid: number;
  a: bigint[];
  payload: Buffer;
  /** The payload as a NUL-terminated string, for OPEN and STAT. */
  path: string;
}

interface File {
  anon: boolean;
}

type Table = Map<number, File>;

export class FakeEngine {
  readonly dir = mkdtempSync(join(tmpdir(), 'uiommu-fake-'));
  readonly path = join(this.dir, 'engine.sock');
  readonly requests: Request[] = [];
  private readonly server: net.Server;
  private readonly tables = new Map<number, Table>();
  private readonly snapshots = new Map<bigint, Table>();
  private nextToken = 100n;
  private conns = 0;

  constructor() {
    this.server = net.createServer((sock) => this.serve(sock, this.conns++));
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.path, resolve));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Forgets recorded requests (tables stay: pids do not repeat within a test run). */
  reset(): void {
    this.requests.length = 0;
  }

  /** Recorded requests of an op, optionally of one pid. */
  of(op: number, pid?: number): Request[] {
    return this.requests.filter((r) => r.op === op && (pid === undefined || r.pid === pid));
  }

  private serve(sock: net.Socket, conn: number): void {
    let buf = Buffer.alloc(0);
    sock.on('error', () => {});
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 64) {
        const len = buf.readUInt32LE(4);
        if (buf.length < 64 + len) break;
        const a = [0, 1, 2, 3, 4, 5].map((i) => buf.readBigUInt64LE(16 + 8 * i));
        const payload = Buffer.from(buf.subarray(64, 64 + len));
        const nul = payload.indexOf(0);
        const req: Request = {
          conn,
          op: buf.readUInt16LE(0),
          flags: buf.readUInt16LE(2),
          pid: buf.readInt32LE(8),
          tid: buf.readInt32LE(12),
          a,
          payload,
          path: payload.subarray(0, nul < 0 ? payload.length : nul).toString(),
        };
        buf = buf.subarray(64 + len);
        if (req.op === OP.CHANNEL) {
          // no channel (an engine may refuse one): every call comes here as a frame, recorded
          sock.write(reply(-1, ENOSYS));
          continue;
        }
        this.requests.push(req);
        const answer = this.answer(req);
        if (answer === 'drop') {
          sock.destroy();
          return;
        }
        sock.write(answer);
      }
    });
  }

  private table(pid: number): Table {
    let t = this.tables.get(pid);
    if (!t) {
      t = new Map();
      this.tables.set(pid, t);
    }
    return t;
  }

  private answer(r: Request): Buffer | 'drop' {
    const t = this.table(r.pid);
    const fd = Number(BigInt.asIntN(64, r.a[0]!));
    switch (r.op) {
      case OP.HELLO:
        if (r.a[0] === 0n) this.tables.set(r.pid, new Map());
        if (r.a[0] === 1n) {
          const snap = this.snapshots.get(r.a[1]!);
          if (!snap) return reply(-1, ESRCH);
          this.tables.set(r.pid, new Map(snap));
        }
        if (r.a[0] === 2n) {
          const fds = [...t.keys()];
          const p = Buffer.alloc(4 * fds.length);
          for (const [i, f] of fds.entries()) p.writeInt32LE(f, 4 * i);
          return reply(0, 0, -1, p);
        }
        return reply(0);
      case OP.FORK_BEGIN: {
        // as the engine: nothing to inherit, no token
        if (t.size === 0) return reply(0);
        const token = this.nextToken++;
        this.snapshots.set(token, new Map(t));
        return reply(Number(token));
      }
      case OP.FORK_END:
      case OP.EXEC_BEGIN:
      case OP.EXEC_ABORT:
        return reply(0);
      case OP.OPEN:
        if (!NODES.has(r.path)) return reply(-1, ENOENT);
        t.set(fd, { anon: false });
        return reply(0);
      case OP.CLOSE:
        return t.delete(fd) ? reply(0) : reply(-1, EBADF);
      case OP.DUP: {
        const f = t.get(fd);
        if (!f) return reply(-1, EBADF);
        t.set(Number(r.a[1]), f);
        return reply(Number(r.a[1]));
      }
      case OP.IOCTL:
        return this.ioctl(t, r);
      case OP.READ:
        return t.has(fd) ? reply(42) : reply(-1, EBADF);
      case OP.WRITE:
      case OP.PREAD:
      case OP.PWRITE:
        return t.has(fd) ? reply(Number(r.a[2])) : reply(-1, EBADF);
      case OP.FSTAT: {
        const f = t.get(fd);
        if (!f) return reply(-1, EBADF);
        return f.anon ? reply(0) : reply(1, 0, -1, node());
      }
      case OP.STAT:
        return r.path === '/dev/iommu' ? reply(1, 0, -1, node()) : reply(-1, ENOENT);
      case OP.PROC_STATUS: {
        // pids that said HELLO are served: a short file naming the pid
        const pid = Number(BigInt.asIntN(64, r.a[0]!));
        if (!this.tables.has(pid)) return reply(-1, ENOENT);
        const text = Buffer.from(procStatus(pid));
        return reply(text.length, 0, -1, text);
      }
      default:
        return reply(-1, ENOSYS);
    }
  }

  private ioctl(t: Table, r: Request): Buffer | 'drop' {
    const fd = Number(r.a[0]);
    if (!t.has(fd)) return reply(-1, EBADF);
    const spare = Number(BigInt.asIntN(64, r.a[3]!));
    switch (Number(r.a[1]! & 0xffffn)) {
      case REQ.DROP:
        return 'drop';
      case REQ.ENOTTY:
        return reply(-1, ENOTTY);
      case REQ.GET_DEVICE_FD:
      case REQ.FAULT_ALLOC:
      case REQ.VEVENTQ_ALLOC:
        if (spare < 0) return reply(-1, 22);
        t.set(spare, { anon: true });
        return reply(0, 0, spare);
      case REQ.TEST_CMD:
      case REQ.FEATURE:
        return reply(0);
      default:
        return reply(Number(r.a[2]! & 0xffffffn));
    }
  }
}

function reply(ret: number, err = 0, newfd = -1, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(24);
  h.writeBigInt64LE(BigInt(ret), 0);
  h.writeInt32LE(err, 8);
  h.writeInt32LE(newfd, 12);
  h.writeUInt32LE(payload.length, 16);
  return Buffer.concat([h, payload]);
}

/** The fake PROC_STATUS answer for `pid`: VmLck 8 kB, VmPin 12 kB, between ordinary lines. */
export function procStatus(pid: number): string {
  return `Name:\tfake\nPid:\t${pid}\nVmLck:\t       8 kB\nVmPin:\t      12 kB\nThreads:\t1\n`;
}

function node(): Buffer {
  const p = Buffer.alloc(16);
  p.writeUInt32LE(NODE.mode, 0);
  p.writeUInt32LE(NODE.major, 4);
  p.writeUInt32LE(NODE.minor, 8);
  return p;
}
