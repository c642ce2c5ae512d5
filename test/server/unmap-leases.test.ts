/**
 * The engine's unmap leases (src/server/unmap-leases.ts) over a ring kept
 * in JavaScript (the addon's functions faked): which records are
 * performed, in what order, and what a revocation or a broken ring does.
 * The real ring and library: unmap-lease.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LeaseRing, LeaseRingAddon } from '../../src/host/native.ts';
import { UnmapLeases, type UnmapRecord } from '../../src/server/unmap-leases.ts';

interface FakeRing {
  gen: number;
  validGen: number;
  table: Buffer;
  /** Posted records not yet taken (tail - head), or 'broken' for a tail out of reach. */
  posted: UnmapRecord[] | 'broken';
  /** (state, result) of every record done, in order. */
  done: [number, number][];
  unmapped: boolean;
}

function fakeAddon(ring: FakeRing): LeaseRingAddon {
  const handle = {} as LeaseRing;
  return {
    leaseMap: () => handle,
    leaseHeader: (_r, gen, validGen, table) => {
      ring.gen = gen;
      ring.validGen = validGen;
      if (gen === validGen) ring.table = table;
    },
    leaseTake: (_r, out) => {
      if (ring.posted === 'broken') return -1;
      const recs = ring.posted.splice(0, out.length / 64);
      recs.forEach((rec, i) => {
        const at = i * 64;
        out.writeBigUInt64LE(rec.arg, at);
        out.writeBigUInt64LE(rec.iova, at + 8);
        out.writeBigUInt64LE(rec.size, at + 16);
        out.writeUInt32LE(rec.argsz, at + 24);
        out.writeUInt32LE(rec.flags, at + 28);
        out.writeInt32LE(rec.fd, at + 32);
        out.writeInt32LE(rec.tid, at + 36);
        out.writeUInt32LE(rec.gen, at + 40);
      });
      return recs.length;
    },
    leaseDone: (_r, results) => {
      for (let i = 0; i < results.length; i += 2) ring.done.push([results[i]!, results[i + 1]!]);
    },
    leaseUnmap: () => {
      ring.unmapped = true;
    },
  };
}

const DONE = 1;
const DROPPED = 2;
const WINDOW = [{ pageShift: 12, start: 0n, last: (1n << 30n) - 1n }];

function setup(answer: (rec: UnmapRecord) => number = () => 0) {
  const ring: FakeRing = {
    gen: 0,
    validGen: 0,
    table: Buffer.alloc(0),
    posted: [],
    done: [],
    unmapped: false,
  };
  const performed: bigint[] = [];
  const leases = new UnmapLeases<'conn'>((_o, recs) => {
    performed.push(...recs.map((r) => r.iova));
    return recs.map(answer);
  }, fakeAddon(ring));
  leases.attach('conn', 99);
  const post = (iova: bigint, gen = ring.gen, fd = 3) => {
    if (ring.posted === 'broken') return;
    ring.posted.push({ arg: 0x1000n, iova, size: 0x1000n, argsz: 24, flags: 0, fd, tid: 7, gen });
  };
  return { ring, leases, performed, post };
}

test('a ring is mapped at generation 1 with nothing leased; a grant publishes the fd and its windows', () => {
  const { ring, leases } = setup();
  assert.deepEqual([ring.gen, ring.validGen], [1, 0]);
  leases.grant('conn', 3, WINDOW);
  assert.equal(ring.gen, ring.validGen);
  assert.equal(ring.table.length, 48);
  assert.equal(ring.table.readInt32LE(0), 3);
  assert.equal(ring.table.readUInt32LE(4), 1, 'one window');
  assert.equal(ring.table.readUInt32LE(8), 12);
  assert.equal(ring.table.readBigUInt64LE(32), (1n << 30n) - 1n, 'last');
});

test('records of the leased generation and fd are performed in order; others are dropped', () => {
  const { ring, leases, performed, post } = setup();
  leases.grant('conn', 3, WINDOW);
  post(0x1000n);
  post(0x2000n, ring.gen + 1);
  post(0x3000n, ring.gen, 4);
  post(0x4000n);
  leases.drainAll();
  assert.deepEqual(performed, [0x1000n, 0x4000n]);
  assert.deepEqual(ring.done, [
    [DONE, 0],
    [DROPPED, 0],
    [DROPPED, 0],
    [DONE, 0],
  ]);
});

test('a revocation performs what was posted under the old generation, then drops it', () => {
  const { ring, leases, performed, post } = setup();
  leases.grant('conn', 3, WINDOW);
  const old = ring.gen;
  post(0x1000n);
  leases.revokeAll();
  assert.notEqual(ring.gen, ring.validGen, 'the library sees the lease gone');
  assert.deepEqual(performed, [0x1000n]);
  post(0x2000n, old); // posted before the library saw the new generation
  leases.drainAll();
  assert.deepEqual(performed, [0x1000n]);
  assert.deepEqual(ring.done.at(-1), [DROPPED, 0]);
  leases.grant('conn', 3, WINDOW);
  post(0x3000n);
  leases.drainAll();
  assert.deepEqual(performed, [0x1000n, 0x3000n], 'a new lease works');
});

test('a record the model refuses ends the leases for good; later records are dropped', () => {
  const { ring, leases, performed, post } = setup((rec) => (rec.iova === 0x2000n ? -22 : 0));
  leases.grant('conn', 3, WINDOW);
  post(0x1000n);
  post(0x2000n);
  leases.drainAll();
  assert.deepEqual(ring.done, [
    [DONE, 0],
    [DONE, -22],
  ]);
  assert.notEqual(ring.gen, ring.validGen);
  leases.grant('conn', 3, WINDOW);
  assert.notEqual(ring.gen, ring.validGen, 'no new lease');
  post(0x3000n);
  leases.drainAll();
  assert.deepEqual(performed, [0x1000n, 0x2000n]);
});

test('a tail out of reach breaks the ring: revoked, never read again', () => {
  const { ring, leases, post } = setup();
  leases.grant('conn', 3, WINDOW);
  ring.posted = 'broken';
  leases.drainAll();
  assert.notEqual(ring.gen, ring.validGen);
  ring.posted = [];
  post(0x1000n);
  leases.drainAll();
  assert.equal(ring.posted.length, 1, 'not taken');
});

test('closing performs what is posted and unmaps the ring', () => {
  const { ring, leases, performed, post } = setup();
  leases.grant('conn', 3, WINDOW);
  post(0x5000n);
  leases.close('conn');
  assert.deepEqual(performed, [0x5000n]);
  assert.equal(ring.unmapped, true);
  assert.equal(leases.has('conn'), false);
});
