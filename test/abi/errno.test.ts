import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ERRNO, Errno, errnoName, fail, strerror } from '../../src/abi/errno.ts';

test('errno numbers match Linux asm-generic', () => {
  assert.equal(ERRNO.EPERM, 1);
  assert.equal(ERRNO.ENOENT, 2);
  assert.equal(ERRNO.EFAULT, 14);
  assert.equal(ERRNO.EBUSY, 16);
  assert.equal(ERRNO.EEXIST, 17);
  assert.equal(ERRNO.EINVAL, 22);
  assert.equal(ERRNO.ENOTTY, 25);
  assert.equal(ERRNO.ENOSPC, 28);
  assert.equal(ERRNO.EOVERFLOW, 75);
  assert.equal(ERRNO.EBADFD, 77);
  assert.equal(ERRNO.EMSGSIZE, 90);
  assert.equal(ERRNO.EOPNOTSUPP, 95);
  assert.equal(ERRNO.EADDRINUSE, 98);
});

test('errno numbers are unique and round-trip through errnoName', () => {
  const seen = new Set<number>();
  for (const [name, no] of Object.entries(ERRNO)) {
    assert.ok(!seen.has(no), `${name} duplicates ${no}`);
    seen.add(no);
    assert.equal(errnoName(no), name);
  }
  assert.equal(errnoName(0), undefined);
  assert.equal(errnoName(4095), undefined);
});

test('strerror gives glibc texts', () => {
  assert.equal(strerror('EEXIST'), 'File exists');
  assert.equal(strerror('ENOTTY'), 'Inappropriate ioctl for device');
  assert.equal(strerror('EOPNOTSUPP'), 'Operation not supported');
  for (const name of Object.keys(ERRNO) as (keyof typeof ERRNO)[]) {
    assert.ok(strerror(name).length > 0, name);
  }
});

test('fail throws an Errno carrying name and number', () => {
  assert.throws(
    () => fail('EADDRINUSE', 'reserved', 'iopt_reserve_iova'),
    (e: unknown) =>
      e instanceof Errno &&
      e.code === 'EADDRINUSE' &&
      e.errno === 98 &&
      e.message === 'EADDRINUSE: reserved' &&
      e.where === 'iopt_reserve_iova' &&
      e.name === 'Errno',
  );
  const e = new Errno('EINVAL');
  assert.equal(e.message, 'EINVAL');
  assert.equal(e.errno, 22);
  assert.ok(e instanceof Error);
});

test('an Errno built without its message reads it whole after the call', () => {
  // the message is made when read (traces, stacks): the same text as one made at the throw
  let caught: unknown;
  try {
    fail('EINVAL', 'iova 0x1001 not aligned to the IOAS alignment 0x1000', 'iopt_check_iova');
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof Errno);
  const text = 'EINVAL: iova 0x1001 not aligned to the IOAS alignment 0x1000';
  assert.equal(caught.message, text);
  assert.equal(String(caught), `Errno: ${text}`);
  assert.equal(caught.stack, `Errno: ${text}`);
  assert.equal(caught.reason, 'iova 0x1001 not aligned to the IOAS alignment 0x1000');
  assert.equal(new Errno('EPERM').stack, 'Errno: EPERM');
  assert.deepEqual(Object.keys(caught).includes('message'), false);
});
