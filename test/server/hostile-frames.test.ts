/**
 * A client speaking raw frames to the engine, as a hostile program would:
 * fork tokens it never lets a child claim, a seeded fuzzer of ops and
 * arguments after HELLO, and a client that never reads its answers.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ERRNO } from '../../src/abi/errno.ts';
import { MAX_FORK_TOKENS } from '../../src/server/engine.ts';
import { encodeRequest, OP } from '../../src/server/protocol.ts';
import { serveEngine } from '../../src/server/server.ts';
import { engineFixture } from './fixture.ts';

const KNOWN_ERRNOS = new Set(Object.values(ERRNO));

describe('hostile clients', () => {
  it('fork tokens a process holds unclaimed are bounded: FORK_BEGIN beyond is EAGAIN', () => {
    const f = engineFixture();
    // holding an engine fd: each fork snapshots it
    const c = f.client(100);
    c.open(3, '/dev/iommu');
    for (let i = 0; i < MAX_FORK_TOKENS; i++) assert.ok(c.req(OP.FORK_BEGIN).ret > 0);
    assert.equal(c.req(OP.FORK_BEGIN).errno, 'EAGAIN');
    assert.equal(f.engine.pendingForks, MAX_FORK_TOKENS);
    // another process has its own allowance
    const other = f.client(101);
    other.open(3, '/dev/iommu');
    assert.ok(other.req(OP.FORK_BEGIN).ret > 0);
  });

  it('the reaper asks about each pid once per pass, however many tokens name it', () => {
    const asked: number[] = [];
    const f = engineFixture({
      pidAlive: (pid) => {
        asked.push(pid);
        return true;
      },
    });
    const c = f.client(100);
    c.open(3, '/dev/iommu');
    for (let i = 0; i < 50; i++) c.req(OP.FORK_END, [c.req(OP.FORK_BEGIN).ret, 1]);
    f.engine.reap();
    assert.deepEqual(asked, [1], 'one look at the child all 50 tokens name');
  });

  it('a seeded fuzzer of raw requests after HELLO gets an answer to each, all -1/errno or ≥ 0', () => {
    const f = engineFixture();
    const c = f.client(100);
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const ops = Object.values(OP).filter((op) => op !== OP.HELLO);
    const args = () => {
      const k = rnd() % 4;
      if (k === 0) return BigInt(rnd() % 16);
      if (k === 1) return (1n << 64n) - 1n;
      if (k === 2) return BigInt(rnd()) << 12n;
      return BigInt(rnd()) * BigInt(rnd());
    };
    const paths = ['/dev/iommu', '/dev/vfio/vfio', '/dev/vfio/0', '/nope'];
    for (let i = 0; i < 4000; i++) {
      const op = ops[rnd() % ops.length]!;
      const a = [BigInt(rnd() % 12), op === OP.IOCTL ? BigInt(0x3b80 + (rnd() % 48)) : args()];
      a.push(args(), BigInt(rnd() % 12));
      const payload =
        op === OP.OPEN || op === OP.STAT
          ? new TextEncoder().encode(`${paths[rnd() % paths.length]}\0`)
          : undefined;
      const r = c.req(op, a, payload);
      assert.ok(r.ret >= -1, `request ${i}: ret ${r.ret}`);
      if (r.ret === -1) assert.ok(r.errno && KNOWN_ERRNOS.has(ERRNO[r.errno]), `request ${i}`);
    }
    assert.deepEqual(f.kernel.bugs, []);
    assert.ok(f.engine.pendingForks <= MAX_FORK_TOKENS);
  });

  it('a client that never reads is paused: its requests wait in its own socket, not in the engine', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uiommu-test-'));
    const f = engineFixture();
    let handled = 0;
    const serve = f.engine.serve.bind(f.engine);
    f.engine.serve = (conn, req) => {
      handled++;
      return serve(conn, req);
    };
    const server = await serveEngine(f.engine, join(dir, 'engine.sock'));
    try {
      const s = createConnection(join(dir, 'engine.sock'));
      await new Promise((r) => s.once('connect', r));
      s.pause();
      const frame = encodeRequest({ op: OP.FSTAT, pid: 100, tid: 100, args: [3n] });
      const n = 200_000;
      const all = new Uint8Array(frame.length * n);
      for (let i = 0; i < n; i++) all.set(frame, i * frame.length);
      s.write(all);
      // the engine answers until the client's receive buffer is full, then stops reading
      let last = -1;
      while (handled !== last) {
        last = handled;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(handled < n, `the engine stopped at ${handled} of ${n} requests`);
      assert.ok(s.writableLength > 0, 'the rest waits on the client side');
      // reading again lets everything through, in order
      let got = 0;
      const done = new Promise<void>((resolve) => {
        s.on('data', (chunk: Buffer) => {
          got += chunk.length;
          if (got === n * 24) resolve();
        });
      });
      s.resume();
      await done;
      assert.equal(handled, n);
      s.destroy();
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
