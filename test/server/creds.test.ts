import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ProcHandle } from '../../src/host/proc-handle.ts';
import { procCredentials, withCapabilities } from '../../src/server/creds.ts';

function fakeProc(status: string, limits: string) {
  const root = mkdtempSync(join(tmpdir(), 'uiommu-proc-'));
  mkdirSync(join(root, '77'));
  const write = (s: string, l: string) => {
    writeFileSync(join(root, '77/status'), s);
    writeFileSync(join(root, '77/limits'), l);
  };
  write(status, limits);
  return { root, write };
}

const LIMITS = (memlock: string) =>
  `Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 4096                 files     \nMax locked memory         ${memlock}              ${memlock}              bytes     \n`;

test('credentials follow /proc: uid, CapEff bits 14 and 24, the soft memlock limit', () => {
  const { root, write } = fakeProc(
    'Name:\tx\nUid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000001004000\n',
    LIMITS('65536'),
  );
  try {
    const c = procCredentials(77, root);
    assert.equal(c.uid, 1000);
    assert.equal(c.capIpcLock, true);
    assert.equal(c.capSysResource, true);
    assert.equal(c.rlimitMemlock, 65536n);
    // the program drops CAP_IPC_LOCK and lifts its limit: seen at the next read
    write('Uid:\t1000\t0\t0\t0\nCapEff:\t0000000001000000\n', LIMITS('unlimited'));
    assert.equal(
      c.capIpcLock,
      true,
      'until refresh() (before the next request) the snapshot holds',
    );
    c.refresh();
    assert.equal(c.capIpcLock, false);
    assert.equal(c.capSysResource, true);
    assert.equal(c.rlimitMemlock, (1n << 64n) - 1n);
    assert.equal(c.uid, 1000, 'the real uid');
    // gone: the last values stay
    rmSync(join(root, '77'), { recursive: true });
    c.refresh();
    assert.equal(c.capSysResource, true);
    assert.equal(c.uid, 1000);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('credentials of this very process match what Node reports', () => {
  const c = procCredentials(process.pid);
  assert.equal(c.uid, process.getuid!());
  assert.ok(c.rlimitMemlock > 0n);
});

test('CAP_SYS_RAWIO is CapEff bit 17', () => {
  const { root } = fakeProc('Uid:\t0\t0\t0\t0\nCapEff:\t0000000000020000\n', LIMITS('65536'));
  try {
    const c = procCredentials(77, root);
    assert.deepEqual([c.capSysRawio, c.capIpcLock, c.capSysResource], [true, false, false]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('--cap-add: granted capabilities are held whatever /proc says; the rest stays live', () => {
  const { root, write } = fakeProc(
    'Uid:\t1000\t0\t0\t0\nCapEff:\t0000000000004000\n',
    LIMITS('4096'),
  );
  try {
    const c = withCapabilities(procCredentials(77, root), new Set(['sys_resource'] as const));
    assert.deepEqual(
      [c.capSysResource, c.capIpcLock, c.capSysRawio, c.uid, c.rlimitMemlock],
      [true, true, false, 1000, 4096n],
    );
    write('Uid:\t1000\t0\t0\t0\nCapEff:\t0000000000000000\n', LIMITS('8192'));
    c.refresh();
    assert.deepEqual([c.capSysResource, c.capIpcLock, c.rlimitMemlock], [true, false, 8192n]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('each fact is read at most once a call, and only when asked', () => {
  let caps = 1 << 14;
  const reads: string[] = [];
  const c = procCredentials(77, {
    readText(name) {
      reads.push(name);
      return name === 'status' ? 'Uid:\t0\t0\t0\t0\n' : LIMITS('4096');
    },
    capEffective() {
      reads.push('capget');
      return caps;
    },
  });
  assert.deepEqual(reads, ['capget', 'status', 'limits'], 'all at the start');
  reads.length = 0;
  c.refresh();
  assert.equal(c.capIpcLock, true);
  assert.equal(c.capSysResource, false);
  assert.deepEqual(reads, ['capget'], 'a call asking capabilities alone: one capget, no /proc');
  assert.equal(c.uid, 0);
  assert.equal(c.uid, 0);
  assert.deepEqual(reads, ['capget', 'status']);
  caps = 1 << 24;
  c.refresh();
  assert.equal(c.capIpcLock, false, 'the new set is read after refresh()');
  assert.equal(c.capSysResource, true);
  assert.equal(c.rlimitMemlock, 4096n);
  assert.equal(c.rlimitMemlock, 4096n);
  assert.deepEqual(reads, ['capget', 'status', 'capget', 'limits']);
});

test('a real process through its handle: capget says what /proc/<pid>/status says', () => {
  const h = ProcHandle.ofPid(process.pid);
  try {
    const capEff = /^CapEff:\s+([0-9a-f]+)/m.exec(h.readText('status'))![1]!;
    assert.equal(h.capEffective(), Number.parseInt(capEff, 16));
    const c = procCredentials(process.pid, h);
    assert.equal(c.capIpcLock, ((BigInt(`0x${capEff}`) >> 14n) & 1n) === 1n);
    assert.equal(c.uid, process.getuid!());
  } finally {
    h.close();
  }
  assert.throws(() => h.capEffective(), { code: 'ESRCH' });
});

test('a reaped process: capget through its handle is ESRCH, its credentials keep the last values', async () => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  await once(child, 'spawn');
  const h = ProcHandle.ofPid(child.pid!);
  try {
    const c = procCredentials(child.pid!, h);
    const held = c.capSysResource;
    assert.equal(held, (h.capEffective() >>> 24) % 2 === 1);
    child.kill('SIGKILL');
    await once(child, 'exit');
    assert.throws(() => h.capEffective(), { code: 'ESRCH' });
    c.refresh();
    assert.equal(c.capSysResource, held);
  } finally {
    h.close();
  }
});
