import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Errno } from '../../src/abi/errno.ts';
import {
  addressOf,
  closeFd,
  eventfdSet,
  fileSize,
  fstatFd,
  fstatfsFd,
  memRead,
  memWrite,
  memZeroed,
  memZeroedAsync,
  TMPFS_MAGIC,
} from '../../src/host/native.ts';
import { ProcHandle } from '../../src/host/proc-handle.ts';
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

/** The mem and maps files of the process of `handle`, closed after `fn`. */
function withMem<T>(handle: ProcHandle, fn: (mem: number, maps: number) => T): T {
  const mem = handle.openAt('mem', true);
  const maps = handle.openAt('maps');
  try {
    return fn(mem, maps);
  } finally {
    closeFd(mem);
    closeFd(maps);
  }
}

test('memRead and memWrite reach our own memory', () => {
  const self = ProcHandle.ofPid(process.pid);
  const buf = Buffer.alloc(64, 0x11);
  buf.write('hello', 10);
  const at = addressOf(buf);
  withMem(self, (mem, maps) => {
    assert.equal(Buffer.from(memRead(mem, maps, at + 10n, 5)).toString(), 'hello');
    memWrite(mem, maps, at + 20n, Uint8Array.of(1, 2, 3));
    assert.equal(memRead(mem, maps, at, 0).length, 0);
  });
  assert.deepEqual([...buf.subarray(19, 24)], [0x11, 1, 2, 3, 0x11]);
  self.close();
});

test('memRead/memWrite: EFAULT for unmapped memory and kernel addresses; a gone process is ESRCH to bind', () => {
  withMem(child.handle, (mem, maps) => {
    assert.throws(() => memRead(mem, maps, 0x10n, 4), errno('EFAULT'));
    assert.throws(() => memWrite(mem, maps, 0x10n, Uint8Array.of(1)), errno('EFAULT'));
    assert.throws(() => memRead(mem, maps, 0xffff_ffff_ff60_0000n, 8), errno('EFAULT'));
    assert.throws(() => memRead(mem, -1, 0xffff_ffff_ff60_0000n, 8), errno('EFAULT'));
  });
  const gone = spawnSync('true').pid!;
  assert.throws(() => ProcHandle.ofPid(gone), errno('ESRCH'));
});

test('memRead/memWrite: EFAULT when the range runs into a hole, a read-only or a PROT_NONE page', () => {
  const hole = child.at.hole;
  withMem(child.handle, (mem, maps) => {
    assert.deepEqual(memRead(mem, maps, hole + PAGE - 4n, 4), new Uint8Array(4));
    assert.throws(() => memRead(mem, maps, hole + PAGE - 4n, 8), errno('EFAULT'));
    assert.throws(() => memRead(mem, maps, hole + PAGE, 1), errno('EFAULT'));
    // the mem file itself would write a read-only page and read a PROT_NONE one: the VMAs say no
    assert.throws(() => memWrite(mem, maps, child.at.ro, Uint8Array.of(1)), errno('EFAULT'));
    assert.throws(() => memRead(mem, maps, child.at.none, 1), errno('EFAULT'));
    assert.throws(
      () => memWrite(mem, maps, hole + PAGE - 2n, Uint8Array.of(1, 2, 3, 4)),
      errno('EFAULT'),
    );
    assert.deepEqual(memRead(mem, maps, child.at.pv, 12), new TextEncoder().encode('private anon'));
  });
});

test('memZeroed is check_zeroed_user: 0, E2BIG at a non-zero byte, EFAULT at a hole before one', async () => {
  const { hole, pv, big } = child.at;
  const mem = child.handle.openAt('mem', true);
  const maps = child.handle.openAt('maps');
  try {
    assert.equal(memZeroed(mem, maps, hole + 2n * PAGE, PAGE), 0);
    assert.equal(memZeroed(mem, maps, hole + PAGE, 1n), 14, 'the hole');
    assert.equal(memZeroed(mem, maps, child.at.none, 8n), 14, 'PROT_NONE');
    assert.equal(memZeroed(mem, maps, pv, 16n), 7, 'private anon');
    const pending = memZeroedAsync(mem, maps, big, 0x10_0000n);
    closeFd(mem); // the worker reads through its own copies
    assert.equal(await pending, 0, 'untouched NORESERVE memory');
  } finally {
    closeFd(maps);
  }
});

test('a handle copies a process fd (pidfd_getfd); fstat and fstatfs see the file', () => {
  const fd = child.handle.getfd(child.fd.mfd);
  try {
    const st = fstatFd(fd);
    assert.equal(st.size, 4n * PAGE);
    assert.equal(st.mode & 0o170000, 0o100000, 'a regular file');
    assert.equal(fstatfsFd(fd).type, TMPFS_MAGIC);
    assert.equal(fs.readlinkSync(`/proc/self/fd/${fd}`), '/memfd:uiommu-test (deleted)');
  } finally {
    closeFd(fd);
  }
  assert.throws(() => child.handle.getfd(999), errno('EBADF'));
  assert.throws(() => fstatFd(fd), errno('EBADF'), 'closed');
  assert.throws(() => closeFd(fd), errno('EBADF'));
});

test('readText is the file as generated now, each time, whole; none once closed', (t) => {
  const probe = spawnSync('prlimit', ['--version']);
  if (probe.status !== 0) {
    t.skip('prlimit(1) unavailable');
    return;
  }
  const kid = spawn('sleep', ['30']);
  const handle = ProcHandle.ofPid(kid.pid!);
  const memlock = () =>
    /^Max locked memory\s+(\d+|unlimited)/m.exec(handle.readText('limits'))?.[1];
  try {
    // the soft limit only: raising a hard one needs CAP_SYS_RESOURCE
    const lim = (n: number) => spawnSync('prlimit', [`--pid=${kid.pid}`, `--memlock=${n}:`]);
    assert.equal(lim(12288).status, 0);
    assert.equal(memlock(), '12288');
    assert.equal(lim(16384).status, 0);
    assert.equal(memlock(), '16384', 'read again, not remembered');
    // the lines that cannot change between the two reads (context switches and memory can)
    const ids = (text: string) =>
      text.split('\n').filter((l) => /^(Tgid|Pid|PPid|Uid|Gid):/.test(l));
    const status = handle.readText('status');
    assert.ok(status.endsWith('\n'), 'whole');
    assert.deepEqual(ids(status), ids(fs.readFileSync(`/proc/${kid.pid}/status`, 'latin1')));
    assert.equal(ids(status).length, 5);
    const smaps = handle.readText('smaps');
    assert.ok(smaps.length > 8192 && smaps.endsWith('\n'), 'a file of many records, whole');
  } finally {
    handle.close();
    kid.kill();
  }
  assert.throws(() => handle.readText('limits'), errno('ESRCH'));
});

test('fstatFd matches fs.fstatSync; fileSize is st_size as of each call, EBADF once closed', () => {
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
    assert.equal(fileSize(fd), 12n);
    fs.truncateSync(file, 5);
    assert.equal(fileSize(fd), 5n, 'asked again each time');
  } finally {
    fs.closeSync(fd);
    fs.unlinkSync(file);
  }
  assert.throws(() => fileSize(fd), errno('EBADF'), 'closed');
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
  const fd = child.handle.getfd(child.fd.efd);
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
  const fd = child.handle.getfd(child.fd.bfd);
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
