import assert from 'node:assert/strict';
import { test } from 'node:test';
import { field, struct, widthOf } from '../../src/abi/layout.ts';

const Sample = struct('sample', 24, [
  field('size', 0, 'u32', 'in'),
  field('op', 4, 'u16', 'in'),
  field('tag', 6, 'u8', 'in'),
  field('__reserved', 7, 'u8', 'reserved'),
  field('fd', 8, 's32', 'in'),
  field('id', 12, 'u32', 'out'),
  field('addr', 16, 'u64', 'inout'),
]);

test('encode/decode round trip, little-endian at the declared offsets', () => {
  const value = {
    size: 24,
    op: 0xbeef,
    tag: 0x7f,
    __reserved: 0,
    fd: 5,
    id: 0xdeadbeef,
    addr: 0x1122_3344_5566_7788n,
  };
  const bytes = Sample.encode(value);
  assert.equal(bytes.length, 24);
  assert.deepEqual(Sample.decode(bytes), value);
  assert.deepEqual([...bytes.subarray(16, 24)], [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
  assert.deepEqual([...bytes.subarray(4, 6)], [0xef, 0xbe]);
});

test('encode leaves absent fields zero', () => {
  const bytes = Sample.encode({ id: 1 });
  const v = Sample.decode(bytes);
  assert.equal(v.id, 1);
  assert.equal(v.size, 0);
  assert.equal(v.addr, 0n);
});

test('decode zero-extends a short buffer and ignores bytes past size', () => {
  const full = Sample.encode({ size: 8, op: 3, id: 9, addr: 5n });
  const short = full.subarray(0, 8);
  const v = Sample.decode(short);
  assert.equal(v.size, 8);
  assert.equal(v.op, 3);
  assert.equal(v.id, 0);
  assert.equal(v.addr, 0n);
  assert.deepEqual(Sample.decode(new Uint8Array(0)), Sample.decode(new Uint8Array(24)));

  const long = new Uint8Array(40).fill(0xff);
  long.set(full);
  assert.deepEqual(Sample.decode(long), Sample.decode(full));
});

test('decode honours a view with a byte offset', () => {
  const backing = new Uint8Array(64);
  backing.set(Sample.encode({ id: 42, addr: 7n }), 8);
  const v = Sample.decode(backing.subarray(8, 32));
  assert.equal(v.id, 42);
  assert.equal(v.addr, 7n);
});

test('s32 keeps its sign; u32 wraps negatives to unsigned', () => {
  const bytes = Sample.encode({ fd: -1, id: -1 });
  const v = Sample.decode(bytes);
  assert.equal(v.fd, -1);
  assert.equal(v.id, 0xffffffff);
  assert.equal(Sample.decode(Sample.encode({ fd: -2147483648 })).fd, -2147483648);
});

test('u64 wraps modulo 2^64', () => {
  assert.equal(Sample.decode(Sample.encode({ addr: -1n })).addr, 0xffff_ffff_ffff_ffffn);
  assert.equal(Sample.decode(Sample.encode({ addr: 1n << 64n })).addr, 0n);
  assert.equal(Sample.decode(Sample.encode({ addr: (1n << 64n) + 5n })).addr, 5n);
});

test('endOf is offsetofend', () => {
  assert.equal(Sample.endOf('size'), 4);
  assert.equal(Sample.endOf('tag'), 7);
  assert.equal(Sample.endOf('addr'), 24);
  assert.throws(() => Sample.endOf('nope' as 'size'));
});

test('widthOf', () => {
  assert.deepEqual((['u8', 'u16', 'u32', 's32', 'u64'] as const).map(widthOf), [1, 2, 4, 4, 8]);
});

test('overlapping, misaligned and out-of-bounds fields are rejected', () => {
  assert.throws(
    () => struct('overlap', 8, [field('a', 0, 'u32', 'in'), field('b', 2, 'u16', 'in')]),
    /overlaps/,
  );
  assert.throws(
    () => struct('overlap64', 16, [field('a', 0, 'u64', 'in'), field('b', 4, 'u32', 'in')]),
    /overlaps/,
  );
  assert.throws(() => struct('misaligned', 16, [field('a', 4, 'u64', 'in')]), /misaligned/);
  assert.throws(() => struct('misaligned16', 8, [field('a', 1, 'u16', 'in')]), /misaligned/);
  assert.throws(() => struct('past', 8, [field('a', 8, 'u32', 'in')]), /past size/);
  assert.throws(() => struct('straddle', 6, [field('a', 4, 'u32', 'in')]), /past size/);
  // Adjacent and padded layouts are fine.
  assert.doesNotThrow(() =>
    struct('ok', 16, [field('a', 0, 'u32', 'in'), field('b', 8, 'u64', 'in')]),
  );
});
