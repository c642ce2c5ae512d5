import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { IommuIoasAlloc, iommufdCmdNumber } from '../../src/abi/iommufd.ts';
import { ProcHandle } from '../../src/host/proc-handle.ts';
import { ctxOfFd } from '../../src/iommufd/fops.ts';
import {
  decodeI32s,
  decodeResponse,
  encodeRequest,
  FrameReader,
  MAX_PAYLOAD,
  OP,
  type Request,
  type Response,
} from '../../src/server/protocol.ts';
import { type EngineServer, serveEngine } from '../../src/server/server.ts';
import { answer, cstr, type EngineFixture, engineFixture } from './fixture.ts';

const IOAS_ALLOC = iommufdCmdNumber('generic', 'IOMMU_IOAS_ALLOC');

/** A protocol client over a real Unix socket; answers come back in request order. */
class SocketClient {
  private readonly reader = new FrameReader('response');
  private readonly waiting: ((r: Response) => void)[] = [];
  closed: Promise<void>;

  private constructor(
    readonly socket: Socket,
    readonly pid: number,
  ) {
    socket.on('data', (chunk: Buffer) => {
      for (const frame of this.reader.push(chunk)) this.waiting.shift()!(decodeResponse(frame));
    });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static async connect(path: string, pid: number): Promise<SocketClient> {
    const socket = createConnection(path);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new SocketClient(socket, pid);
  }

  /**
   * Send raw bytes and wait for `n` answers; with `chunk`, in writes of that
   * many bytes, each waiting for the previous one to be flushed.
   */
  async sendRaw(bytes: Uint8Array, n: number, chunk = bytes.length): Promise<Response[]> {
    const answers = Array.from(
      { length: n },
      () => new Promise<Response>((resolve) => this.waiting.push(resolve)),
    );
    for (let at = 0; at < bytes.length; at += chunk) {
      const piece = bytes.subarray(at, at + chunk);
      await new Promise<void>((resolve) => this.socket.write(piece, () => resolve()));
    }
    return Promise.all(answers);
  }

  frame(op: number, args: bigint[] = [], payload?: Uint8Array): Uint8Array {
    const req: Request = {
      op,
      pid: this.pid,
      tid: this.pid,
      args,
      ...(payload ? { payload } : {}),
    };
    return encodeRequest(req);
  }

  async req(op: number, args: bigint[] = [], payload?: Uint8Array) {
    const [r] = await this.sendRaw(this.frame(op, args, payload), 1);
    return answer(r!);
  }

  async end(): Promise<void> {
    this.socket.end();
    await this.closed;
  }
}

/** Wait until `cond` holds (the server handles the close on its own schedule). */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 1));
  assert.ok(cond(), 'condition never held');
}

describe('engine server over a Unix socket', () => {
  let dir: string;
  let f: EngineFixture;
  let server: EngineServer;
  const path = () => join(dir, 'engine.sock');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'uiommu-test-'));
    f = engineFixture();
    server = await serveEngine(f.engine, path());
  });

  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers requests split into one-byte writes', async () => {
    const c = await SocketClient.connect(path(), 500);
    const hello = c.frame(OP.HELLO, [0n]);
    const open = c.frame(OP.OPEN, [3n, 2n], cstr('/dev/iommu'));
    const bytes = new Uint8Array([...hello, ...open]);
    // byte by byte, each its own write, waiting for the previous one to leave
    const [h, o] = await c.sendRaw(bytes, 2, 1);
    assert.equal(h!.ret, 0n);
    assert.equal(o!.ret, 0n);
    await c.end();
    await until(() => f.engine.process(500) === undefined);
  });

  it('answers coalesced frames in order', async () => {
    const c = await SocketClient.connect(path(), 501);
    const frames = [
      c.frame(OP.HELLO, [0n]),
      c.frame(OP.OPEN, [3n, 2n], cstr('/dev/iommu')),
      c.frame(OP.CLOSE, [3n]),
      c.frame(OP.CLOSE, [3n]),
    ];
    const rs = await c.sendRaw(new Uint8Array(frames.flatMap((x) => [...x])), 4);
    assert.deepEqual(
      rs.map((r) => [r.ret, r.err]),
      [
        [0n, 0],
        [0n, 0],
        [0n, 0],
        [-1n, 9],
      ],
    );
    await c.end();
  });

  it('serves two connections as two processes; closing one exits only that one', async () => {
    const a = await SocketClient.connect(path(), 600);
    const b = await SocketClient.connect(path(), 601);
    assert.equal((await a.req(OP.HELLO, [0n])).ret, 0);
    assert.equal((await b.req(OP.HELLO, [0n])).ret, 0);
    assert.equal((await a.req(OP.OPEN, [3n, 2n], cstr('/dev/iommu'))).ret, 0);
    assert.equal((await b.req(OP.OPEN, [3n, 2n], cstr('/dev/iommu'))).ret, 0);
    const ctxA = ctxOfFd(f.engine.process(600)!, 3);
    const ctxB = ctxOfFd(f.engine.process(601)!, 3);
    assert.notEqual(ctxA, ctxB);
    const addr = f.mms.get(600)!.mmap({ length: 4096n, prot: { read: true, write: true } });
    f.mms.get(600)!.write(addr, IommuIoasAlloc.encode({ size: 12 }));
    const r = await a.req(OP.IOCTL, [3n, BigInt(IOAS_ALLOC), addr, 2n ** 64n - 1n]);
    assert.equal(r.ret, 0);
    assert.equal(ctxA.objectCount, 1);
    await a.end();
    await until(() => f.engine.process(600) === undefined);
    assert.equal(ctxA.objectCount, 0, 'exit closed the fd: the context is gone');
    assert.ok(f.engine.process(601), 'the other process is untouched');
    assert.equal((await b.req(OP.FSTAT, [3n])).ret, 1);
    await b.end();
    await until(() => f.engine.process(601) === undefined);
  });

  it('fork and exec across connections: the child’s HELLO with the token, the new image’s HELLO', async () => {
    const parent = await SocketClient.connect(path(), 800);
    await parent.req(OP.HELLO, [0n]);
    await parent.req(OP.OPEN, [5n, 2n], cstr('/dev/vfio/vfio'));
    const token = (await parent.req(OP.FORK_BEGIN)).ret;
    assert.ok(token > 0);
    const child = await SocketClient.connect(path(), 801);
    assert.equal((await child.req(OP.HELLO, [1n, BigInt(token)])).ret, 0);
    assert.equal((await parent.req(OP.FORK_END, [BigInt(token), 801n])).ret, 0);
    assert.equal((await child.req(OP.FSTAT, [5n])).ret, 1, 'the child has fd 5');
    // the child execs: its old connection closes, the new image says HELLO kind 2
    assert.equal((await child.req(OP.EXEC_BEGIN)).ret, 0);
    await child.end();
    const image = await SocketClient.connect(path(), 801);
    const hello = await image.req(OP.HELLO, [2n]);
    assert.deepEqual(decodeI32s(hello.payload), [5]);
    await image.end();
    await parent.end();
    await until(() => f.engine.pids.every((p) => p !== 800 && p !== 801));
  });

  it('answers an oversized payload with the errno of an overlong argument and keeps serving', async () => {
    const c = await SocketClient.connect(path(), 700);
    await c.req(OP.HELLO, [0n]);
    const tooBig = new Uint8Array(MAX_PAYLOAD + 1).fill(0x61);
    assert.equal((await c.req(OP.STAT, [], tooBig)).errno, 'ENAMETOOLONG');
    assert.equal((await c.req(OP.IOCTL, [3n, 0n, 0n, 0n], tooBig)).errno, 'E2BIG');
    // the thrown-away bytes did not desynchronise the stream
    assert.equal((await c.req(OP.OPEN, [3n, 2n], cstr('/dev/iommu'))).ret, 0);
    // nor do they when the frames around them arrive in the same read
    const coalesced = [
      c.frame(OP.FSTAT, [3n]),
      c.frame(OP.STAT, [], tooBig),
      c.frame(OP.CLOSE, [3n]),
    ];
    const rs = await c.sendRaw(new Uint8Array(coalesced.flatMap((x) => [...x])), 3);
    assert.deepEqual(
      rs.map((r) => [r.ret, r.err]),
      [
        [1n, 0],
        [-1n, 36],
        [0n, 0],
      ],
    );
    await c.end();
    await until(() => f.engine.process(700) === undefined);
  });
});

describe('engine server with the peer bound at accept (SO_PEERPIDFD)', () => {
  it('a connection speaks only for the process at its other end', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uiommu-test-'));
    const f = engineFixture();
    const server = await serveEngine(f.engine, join(dir, 'engine.sock'), {
      peer: (fd) => ProcHandle.ofPeer(fd),
    });
    try {
      const impostor = await SocketClient.connect(join(dir, 'engine.sock'), process.pid + 1);
      assert.equal((await impostor.req(OP.HELLO, [0n])).errno, 'EPERM');
      assert.equal(f.engine.process(process.pid + 1), undefined);
      await impostor.end();
      const self = await SocketClient.connect(join(dir, 'engine.sock'), process.pid);
      assert.equal((await self.req(OP.HELLO, [0n])).ret, 0);
      await self.end();
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('engine server without a way to tell the peer', () => {
  it('drops the connection instead of serving it unchecked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uiommu-test-'));
    const f = engineFixture();
    const peer = (): number => {
      throw new Error('addon not built');
    };
    const server = await serveEngine(f.engine, join(dir, 'engine.sock'), { peer });
    try {
      const c = await SocketClient.connect(join(dir, 'engine.sock'), process.pid);
      await c.closed;
      assert.equal(f.engine.process(process.pid), undefined);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
