import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  argInt,
  argU32,
  decodeI32s,
  decodeNodeStat,
  decodeRequest,
  decodeResponse,
  decodeWriteback,
  emptyRequest,
  encodeI32s,
  encodeNodeStat,
  encodeRequest,
  encodeResponse,
  encodeResponseInto,
  FrameError,
  FrameReader,
  MAX_PAYLOAD,
  OP,
  payloadString,
  REQUEST_HEADER_SIZE,
  RESPONSE_HEADER_SIZE,
  RequestReader,
} from '../../src/server/protocol.ts';

test('op numbers are the documented ones', () => {
  assert.deepEqual(OP, {
    HELLO: 1,
    FORK_BEGIN: 2,
    FORK_END: 3,
    EXEC_BEGIN: 4,
    EXEC_ABORT: 5,
    OPEN: 10,
    CLOSE: 11,
    DUP: 12,
    IOCTL: 13,
    READ: 14,
    WRITE: 15,
    PREAD: 16,
    PWRITE: 17,
    FSTAT: 18,
    STAT: 19,
    PROC_STATUS: 20,
    SYSFS_READ: 21,
    MMAP: 30,
    MUNMAP: 31,
    MREMAP: 32,
    MMIO: 33,
    MMIO_FAULT: 34,
    SYNC: 35,
    CHANNEL: 36,
    DOORBELL: 37,
  });
});

test('request header: 64 bytes, fields at their C offsets, little-endian', () => {
  const b = encodeRequest({
    op: OP.IOCTL,
    pid: 1234,
    tid: -2,
    args: [3n, 0x3b80n, 0x7fff_0000_1000n, 2n ** 64n - 1n, 5n, 6n],
    payload: Uint8Array.of(0xaa, 0xbb),
  });
  assert.equal(b.length, REQUEST_HEADER_SIZE + 2);
  const v = new DataView(b.buffer);
  assert.equal(v.getUint32(0, true), 13);
  assert.equal(v.getUint32(4, true), 2);
  assert.equal(v.getInt32(8, true), 1234);
  assert.equal(v.getInt32(12, true), -2);
  assert.equal(v.getBigUint64(16, true), 3n);
  assert.equal(v.getBigUint64(24, true), 0x3b80n);
  assert.equal(v.getBigUint64(32, true), 0x7fff_0000_1000n);
  assert.equal(v.getBigInt64(40, true), -1n);
  assert.equal(v.getBigUint64(56, true), 6n);
  assert.deepEqual([...b.subarray(64)], [0xaa, 0xbb]);
  const back = decodeRequest(b);
  assert.equal(back.tid, -2);
  assert.equal(argInt(back.args[3]!), -1);
});

test('arguments as C int and unsigned int: the low 32 bits of the u64', () => {
  const ints: [bigint, number, number][] = [
    [0n, 0, 0],
    [0x7fff_ffffn, 0x7fff_ffff, 0x7fff_ffff],
    [0x8000_0000n, -0x8000_0000, 0x8000_0000],
    [0xffff_ffffn, -1, 0xffff_ffff],
    [0x1_0000_3b84n, 0x3b84, 0x3b84],
    [(1n << 64n) - 1n, -1, 0xffff_ffff],
    [(1n << 64n) - 2n, -2, 0xffff_fffe],
  ];
  for (const [a, int, u32] of ints) {
    assert.equal(argInt(a), int, `argInt(${a})`);
    assert.equal(argU32(a), u32, `argU32(${a})`);
  }
});

test('a RequestReader reads each frame into the same request, every field anew', () => {
  const buf = new Uint8Array(REQUEST_HEADER_SIZE + 64);
  const v = new DataView(buf.buffer);
  const reader = new RequestReader(v, buf.subarray(REQUEST_HEADER_SIZE));
  const req = emptyRequest();
  const frames = [
    {
      op: OP.IOCTL,
      flags: 3,
      pid: 7,
      tid: 8,
      args: [3n, 0x3b84n, 0x7fff_0000_1000n, (1n << 64n) - 1n, 0n, 9n],
      payload: new Uint8Array([1, 2, 3]),
    },
    { op: OP.CLOSE, pid: 9, tid: 10, args: [4n], payload: new Uint8Array() },
    { op: OP.OPEN, pid: 11, tid: 11, args: [5n, 2n], payload: new Uint8Array([4, 5, 6]) },
    // the same words again, then one argument's high or low half alone changed (a kept bigint must not be reused)
    { op: OP.OPEN, pid: 11, tid: 11, args: [5n, 2n], payload: new Uint8Array([4, 5, 6]) },
    { op: OP.OPEN, pid: 11, tid: 11, args: [5n | (1n << 32n), 2n], payload: new Uint8Array([7]) },
    { op: OP.OPEN, pid: 11, tid: 11, args: [6n | (1n << 32n), 2n], payload: new Uint8Array([8]) },
    { op: OP.OPEN, pid: 11, tid: 11, args: [6n, 0n], payload: new Uint8Array([8, 9]) },
  ];
  for (const f of frames) {
    buf.set(encodeRequest(f));
    req.oversize = true;
    assert.equal(reader.read(req), req);
    assert.deepEqual(
      { ...req, payload: [...req.payload!] },
      {
        ...decodeRequest(encodeRequest(f)),
        payload: [...f.payload],
      },
    );
  }
});

test('response header: 24 bytes { i64 ret; i32 err; i32 newfd; u32 len; u32 reserved }', () => {
  const b = encodeResponse({ ret: -1n, err: 9, newfd: 7, payload: encodeI32s([3, 900]) });
  assert.equal(b.length, RESPONSE_HEADER_SIZE + 8);
  const v = new DataView(b.buffer);
  assert.equal(v.getBigInt64(0, true), -1n);
  assert.equal(v.getInt32(8, true), 9);
  assert.equal(v.getInt32(12, true), 7);
  assert.equal(v.getUint32(16, true), 8);
  assert.equal(v.getUint32(20, true), 0);
  const back = decodeResponse(b);
  assert.deepEqual(decodeI32s(back.payload!), [3, 900]);
});

test('stat payload { u32 mode; u32 major; u32 minor; u32 reserved }', () => {
  const b = encodeNodeStat({ mode: 0o20660, major: 10, minor: 59 });
  assert.equal(b.length, 16);
  assert.deepEqual(decodeNodeStat(b), { mode: 0o20660, major: 10, minor: 59 });
});

test('IOCTL write-back payload { u32 nr; u32 bytes; { u64 addr; u64 len }[nr] } then the bytes', () => {
  const none = decodeResponse(encodeResponse({ ret: 0n, err: 0, newfd: -1, writes: [] }));
  assert.equal(none.payload!.length, 0, 'no writes: no payload');
  const writes = [
    { va: 0x7fff_0000_1000n, bytes: new Uint8Array([1, 2, 3]) },
    { va: 0x10n, bytes: new Uint8Array([9]) },
  ];
  // the record replaces any payload, and is encoded after the header wherever the buffer was used before
  const out = new Uint8Array(RESPONSE_HEADER_SIZE + 200).fill(0xee);
  const n = encodeResponseInto(
    { ret: 0n, err: 0, newfd: -1, payload: new Uint8Array(9), writes },
    out,
  );
  const res = decodeResponse(out.subarray(0, n));
  const b = res.payload!;
  assert.equal(b.length, 8 + 2 * 16 + 4);
  const v = new DataView(b.buffer, b.byteOffset);
  assert.deepEqual([v.getUint32(0, true), v.getUint32(4, true)], [2, 4]);
  assert.deepEqual([v.getBigUint64(8, true), v.getBigUint64(16, true)], [0x7fff_0000_1000n, 3n]);
  assert.deepEqual([v.getBigUint64(24, true), v.getBigUint64(32, true)], [0x10n, 1n]);
  assert.deepEqual([...b.subarray(40)], [1, 2, 3, 9]);
  assert.deepEqual(decodeWriteback(b), writes);
});

test('payload strings stop at the first NUL', () => {
  assert.equal(payloadString(new TextEncoder().encode('/dev/iommu\0junk')), '/dev/iommu');
  assert.equal(payloadString(new TextEncoder().encode('/dev/iommu')), '/dev/iommu');
});

test('FrameReader yields the same frames however the stream is split', () => {
  const frame = fc
    .record({
      op: fc.integer({ min: 1, max: 19 }),
      pid: fc.integer({ min: 1, max: 1 << 22 }),
      payload: fc.uint8Array({ maxLength: 40 }),
    })
    .map((r) => encodeRequest({ op: r.op, pid: r.pid, tid: r.pid, args: [], payload: r.payload }));
  fc.assert(
    fc.property(
      fc.array(frame, { maxLength: 6 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (frames, cuts) => {
        const stream = new Uint8Array(frames.flatMap((x) => [...x]));
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        const reader = new FrameReader('request');
        const got: Uint8Array[] = [];
        let at = 0;
        for (const p of [...points, stream.length]) {
          got.push(...reader.push(stream.subarray(at, p)));
          at = p;
        }
        assert.deepEqual(got, frames);
        assert.equal(reader.pending, 0);
      },
    ),
  );
});

test('FrameReader rejects a frame announcing more than MAX_PAYLOAD bytes', () => {
  const b = encodeRequest({ op: 1, pid: 1, tid: 1, args: [] });
  new DataView(b.buffer).setUint32(4, MAX_PAYLOAD + 1, true);
  assert.throws(() => new FrameReader('request').push(b), FrameError);
});
