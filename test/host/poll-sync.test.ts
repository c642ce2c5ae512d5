import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import { Errno } from '../../src/abi/errno.ts';
import { closeFd } from '../../src/host/native.ts';
import { eventfdPollSync } from '../../src/host/poll-sync.ts';
import { type MemChild, startMemChild } from './mem-child.ts';

let child: MemChild;
before(async () => {
  child = await startMemChild();
});
after(async () => {
  await child.close();
});

/** Whether the client's eventfd is readable, seen through a separate copy (drains it). */
function readable(fd: number): boolean {
  const mine = child.handle.getfd(fd);
  try {
    fs.readSync(mine, Buffer.alloc(8), 0, 8, null);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return false;
    throw e;
  } finally {
    closeFd(mine);
  }
}

test('eventfdPollSync drives the client eventfd; release is idempotent', () => {
  const h = eventfdPollSync.attach(child.pid, child.fd.efd, child.handle);
  eventfdPollSync.set(h, true);
  assert.equal(readable(child.fd.efd), true);
  eventfdPollSync.set(h, true);
  eventfdPollSync.set(h, false);
  assert.equal(readable(child.fd.efd), false);
  eventfdPollSync.release(h);
  eventfdPollSync.release(h);
  eventfdPollSync.set(h, true);
  assert.equal(readable(child.fd.efd), false, 'no effect after release');
});

/** The client eventfd's counter, seen through a separate copy (drains it); 0n when not readable. */
function counter(fd: number): bigint {
  const mine = child.handle.getfd(fd);
  const buf = Buffer.alloc(8);
  try {
    fs.readSync(mine, buf, 0, 8, null);
    return buf.readBigUInt64LE();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return 0n;
    throw e;
  } finally {
    closeFd(mine);
  }
}

test('eventfdPollSync.wake writes the eventfd again (waking its waiters) and leaves it ready', () => {
  const h = eventfdPollSync.attach(child.pid, child.fd.efd, child.handle);
  try {
    eventfdPollSync.set(h, true);
    eventfdPollSync.wake(h);
    eventfdPollSync.wake(h);
    assert.equal(counter(child.fd.efd), 3n, 'one write per wake on top of set');
    eventfdPollSync.set(h, true);
    eventfdPollSync.wake(h);
    eventfdPollSync.set(h, false);
    assert.equal(counter(child.fd.efd), 0n, 'set(false) clears what wakes added');
  } finally {
    eventfdPollSync.release(h);
  }
  eventfdPollSync.wake(h);
  assert.equal(counter(child.fd.efd), 0n, 'no effect after release');
});

test('eventfdPollSync.attach: EBADF for a missing fd, ESRCH without a handle (never by pid alone)', () => {
  assert.throws(
    () => eventfdPollSync.attach(child.pid, 999, child.handle),
    (e) => e instanceof Errno && e.code === 'EBADF',
  );
  assert.throws(
    () => eventfdPollSync.attach(child.pid, child.fd.efd),
    (e) => e instanceof Errno && e.code === 'ESRCH',
  );
});
