import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Errno } from '../../src/abi/errno.ts';
import {
  addressOf,
  closeFd,
  eventfdSet,
  fstatFd,
  fstatfsFd,
  pidfdGetfd,
  TMPFS_MAGIC,
  vmRead,
  vmWrite,
} from '../../src/host/native.ts';
import { type MemChild, PAGE, startMemChild } from './mem-child.ts';

function errno(code: string) {
  return (e: unknown) => e instanceof Errno && e.code === code;
}

let child: MemChild;
before(async () => {
  child = await startMemChild();
});
after(async () => {
  await child.close();
});

test('vmRead and vmWrite reach our own memory', () => {
  const buf = Buffer.alloc(64, 0x11);
  buf.write('hello', 10);
  const at = addressOf(buf);
  assert.equal(Buffer.from(vmRead(process.pid, at + 10n, 5)).toString(), 'hello');
  vmWrite(process.pid, at + 20n, Uint8Array.of(1, 2, 3));
  assert.deepEqual([...buf.subarray(19, 24)], [0x11, 1, 2, 3, 0x11]);
  assert.equal(vmRead(process.pid, at, 0).length, 0);
});

test('vmRead/vmWrite: EFAULT for unmapped memory, ESRCH for no such process', () => {
  assert.throws(() => vmRead(process.pid, 0x10n, 4), errno('EFAULT'));
  assert.throws(() => vmWrite(process.pid, 0x10n, Uint8Array.of(1)), errno('EFAULT'));
  const gone = spawnSync('true').pid!;
  assert.throws(() => vmRead(gone, 0x1000n, 4), errno('ESRCH'));
});

test('vmRead/vmWrite: EFAULT when the range runs into a hole or a read-only page', () => {
  const hole = child.at.hole;
  assert.deepEqual(vmRead(child.pid, hole + PAGE - 4n, 4), new Uint8Array(4));
  assert.throws(() => vmRead(child.pid, hole + PAGE - 4n, 8), errno('EFAULT'));
  assert.throws(() => vmRead(child.pid, hole + PAGE, 1), errno('EFAULT'));
  assert.throws(() => vmWrite(child.pid, child.at.ro, Uint8Array.of(1)), errno('EFAULT'));
  assert.throws(
    () => vmWrite(child.pid, hole + PAGE - 2n, Uint8Array.of(1, 2, 3, 4)),
    errno('EFAULT'),
  );
  assert.deepEqual(vmRead(child.pid, child.at.pv, 12), new TextEncoder().encode('private anon'));
});

test('pidfdGetfd copies a process fd; fstat and fstatfs see the file', () => {
  const fd = pidfdGetfd(child.pid, child.fd.mfd);
  try {
    const st = fstatFd(fd);
    assert.equal(st.size, 4n * PAGE);
    assert.equal(st.mode & 0o170000, 0o100000, 'a regular file');
    assert.equal(fstatfsFd(fd).type, TMPFS_MAGIC);
    assert.equal(fs.readlinkSync(`/proc/self/fd/${fd}`), '/memfd:uiommu-test (deleted)');
  } finally {
    closeFd(fd);
  }
  assert.throws(() => pidfdGetfd(child.pid, 999), errno('EBADF'));
  assert.throws(() => fstatFd(fd), errno('EBADF'), 'closed');
  assert.throws(() => closeFd(fd), errno('EBADF'));
});

test('fstatFd matches fs.fstatSync', () => {
  const file = path.join(os.tmpdir(), `uiommu-native-${process.pid}`);
  fs.writeFileSync(file, 'twelve bytes');
  const fd = fs.openSync(file, 'r');
  try {
    const mine = fstatFd(fd);
    const node = fs.fstatSync(fd, { bigint: true });
    assert.equal(mine.dev, node.dev);
    assert.equal(mine.ino, node.ino);
    assert.equal(mine.size, 12n);
    assert.equal(BigInt(mine.mode), node.mode);
  } finally {
    fs.closeSync(fd);
    fs.unlinkSync(file);
  }
});

/** The counter of a non-blocking eventfd (draining it), or undefined when it is 0. */
function drain(fd: number): bigint | undefined {
  const buf = Buffer.alloc(8);
  try {
    fs.readSync(fd, buf, 0, 8, null);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return undefined;
    throw e;
  }
  return buf.readBigUInt64LE();
}

test('eventfdSet makes the counter exactly 1 or 0', () => {
  const fd = pidfdGetfd(child.pid, child.fd.efd);
  try {
    eventfdSet(fd, true);
    eventfdSet(fd, true);
    assert.equal(drain(fd), 1n, 'set twice is still 1');
    assert.equal(drain(fd), undefined);
    eventfdSet(fd, true);
    eventfdSet(fd, false);
    assert.equal(drain(fd), undefined, 'cleared');
    eventfdSet(fd, false);
    assert.equal(drain(fd), undefined);
  } finally {
    closeFd(fd);
  }
  assert.throws(() => eventfdSet(fd, true), errno('EBADF'));
});

test('eventfdSet never blocks on a blocking eventfd', () => {
  const fd = pidfdGetfd(child.pid, child.fd.bfd);
  try {
    eventfdSet(fd, false);
    eventfdSet(fd, true);
    eventfdSet(fd, true);
    const buf = Buffer.alloc(8);
    fs.readSync(fd, buf, 0, 8, null);
    assert.equal(buf.readBigUInt64LE(), 1n);
  } finally {
    closeFd(fd);
  }
});
