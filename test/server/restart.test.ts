/**
 * Bounded work: a call whose struct tail is too long to check on the
 * engine's thread restarts (RestartCall) — the engine answers it once the
 * off-thread check is done, redoing the call from the start, and serves
 * every other connection meanwhile.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fail } from '../../src/abi/errno.ts';
import { IommuIoasAlloc, iommufdCmdNumber } from '../../src/abi/iommufd.ts';
import { SimMm } from '../../src/host/sim-mm.ts';
import { RestartCall } from '../../src/iommu/mm.ts';
import { ctxOfFd } from '../../src/iommufd/fops.ts';
import { OP, type Response } from '../../src/server/protocol.ts';
import { answer, engineFixture, type TestClient } from './fixture.ts';

const IOAS_ALLOC = iommufdCmdNumber('generic', 'IOMMU_IOAS_ALLOC');

/** A SimMm whose long zero checks wait for the test to let them finish (as a worker thread would). */
class GatedMm extends SimMm {
  restarts = 0;
  private done: { va: bigint; length: bigint } | undefined;
  release: (() => void) | undefined;

  checkZeroed(va: bigint, length: bigint, restart: boolean): void {
    const done = this.done;
    this.done = undefined;
    if (restart && length > 4096n && !(done?.va === va && done.length === length)) {
      this.restarts++;
      throw new RestartCall(
        new Promise<void>((resolve) => {
          this.release = () => {
            this.done = { va, length };
            resolve();
          };
        }),
      );
    }
    if (this.read(va, Number(length)).some((b) => b !== 0))
      fail('E2BIG', 'non-zero bytes past the struct', 'check_zeroed_user');
  }
}

/** IOAS_ALLOC with `size` bytes of struct (the tail after 12 bytes is `tail`), through `serve`. */
function allocWithTail(c: TestClient, tail: Uint8Array): Response | Promise<Response> {
  const at = c.mem(1n << 20n);
  c.mm.write(at, IommuIoasAlloc.encode({ size: 12 + tail.length }));
  c.mm.write(at + 12n, tail);
  return c.f.engine.serve(c.conn, {
    op: OP.IOCTL,
    pid: c.pid,
    tid: c.pid,
    args: [3n, BigInt(IOAS_ALLOC), at, BigInt.asUintN(64, -1n)],
  });
}

describe('engine: restarted calls', () => {
  function setup() {
    const f = engineFixture({ newMm: (kernel) => new GatedMm(kernel.memory) });
    const a = f.client(100);
    const b = f.client(101);
    a.open(3, '/dev/iommu');
    b.open(3, '/dev/iommu');
    return { f, a, b, mmA: a.mm as GatedMm };
  }

  it('others are answered while a long tail check is pending; the call is redone once it is done', async () => {
    const { f, a, b, mmA } = setup();
    const pending = allocWithTail(a, new Uint8Array(64 * 1024));
    assert.ok(pending instanceof Promise, 'a long tail waits off the engine’s thread');
    const ctx = ctxOfFd(f.engine.process(100)!, 3);
    for (let i = 0; i < 5; i++) {
      const r = b.call(3, IOAS_ALLOC, IommuIoasAlloc, {});
      assert.equal(r.ret, 0, 'the bystander is served meanwhile');
    }
    assert.equal(ctx.objectCount, 0, 'the waiting call has changed nothing');
    mmA.release!();
    const r = answer(await pending);
    assert.equal(r.ret, 0);
    assert.equal(ctx.objectCount, 1, 'the redone call allocated one IOAS');
    assert.equal(mmA.restarts, 1);
    assert.deepEqual(f.kernel.bugs, []);
  });

  it('the redone call answers as Linux: E2BIG for a non-zero tail; a short tail never waits', async () => {
    const { a, mmA } = setup();
    const tail = new Uint8Array(64 * 1024);
    tail[tail.length - 1] = 1;
    const pending = allocWithTail(a, tail);
    assert.ok(pending instanceof Promise);
    mmA.release!();
    assert.equal(answer(await pending).errno, 'E2BIG');
    const quick = allocWithTail(a, new Uint8Array(16));
    assert.ok(!(quick instanceof Promise));
    assert.equal(answer(quick).ret, 0);
  });

  it('handle() (no restarts expected) reports a restart as a model bug, -1/EIO', () => {
    const { f, a } = setup();
    const at = a.mem(1n << 20n);
    a.mm.write(at, IommuIoasAlloc.encode({ size: 12 + 65536 }));
    assert.equal(a.req(OP.IOCTL, [3, IOAS_ALLOC, at, -1]).errno, 'EIO');
    assert.equal(f.kernel.bugs.length, 1);
  });
});
