/**
 * IOMMU_IOAS_CHANGE_PROCESS (selftest-mock.md §3.2, ioas.c): the pinned
 * pages of every IOAS of a context move to the calling process's (and its
 * user's) counters, shown as VmPin/VmLck. A forked child is modelled by a
 * second process holding the same open file.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { iommufdCmd, iommufdCmdNumber } from '../../src/abi/iommufd.ts';
import { vmStatusLines } from '../../src/host/accounting.ts';
import { Kernel } from '../../src/host/kernel.ts';
import type { Process } from '../../src/host/process.ts';
import { selftestCmd } from '../../src/iommufd/selftest.ts';
import { client, type Fixture } from '../support.ts';
import { mockDomain } from './mock.ts';
import { FIXED, PAGE, RW } from './util.ts';

type Mode = 'none' | 'user' | 'mm';

/** The fixture's setup: CAP_IPC_LOCK dropped, RLIMIT_MODE set (unless 'none'), an IOAS with a mock domain. */
function cpSetup(mode: Mode, creds: { capIpcLock?: boolean; uid?: number } = {}) {
  const kernel = new Kernel({ selftestCmd: selftestCmd() });
  const f = client(kernel, kernel.spawn({ capIpcLock: false, ...creds }));
  if (mode !== 'none') {
    const r = f.call('IOMMU_OPTION', { option_id: 0, op: 0, val64: mode === 'mm' ? 1n : 0n });
    assert.equal(r.errno, undefined);
  }
  const ioas = f.ioas();
  mockDomain(f, ioas);
  return { kernel, f, ioas };
}

/** fork(): a child process of the same kernel sharing the parent's open iommufd file. */
function fork(f: Fixture, creds: { uid?: number; rlimitMemlock?: bigint } = {}): Process {
  const child = f.kernel.spawn({ capIpcLock: false, ...creds });
  const file = f.proc.fds.get(f.fd)!;
  file.get();
  child.fds.set(f.fd, file);
  return child;
}

const CHANGE_PROCESS = iommufdCmd('IOMMU_IOAS_CHANGE_PROCESS');

/** IOAS_CHANGE_PROCESS by `proc` on `fd`: its errno. */
function changeProcess(proc: Process, fd: number, reserved = 0) {
  const nr = iommufdCmdNumber(proc.kernel.abi, 'IOMMU_IOAS_CHANGE_PROCESS');
  return proc.call(fd, nr, CHANGE_PROCESS.layout, { __reserved: reserved }).errno;
}

/** MAP_FILE of one page of a new memfd at `iova`. */
function mapFile(f: Fixture, ioas: number, iova: bigint, length = PAGE) {
  const mfd = f.proc.memfd(length);
  const r = f.call('IOMMU_IOAS_MAP_FILE', {
    ioas_id: ioas,
    fd: mfd,
    start: 0n,
    length,
    iova,
    flags: FIXED | RW,
  });
  assert.equal(r.errno, undefined);
}

const BASE = 1n << 24n;

for (const mode of ['none', 'user', 'mm'] as const) {
  test(`CHANGE_PROCESS (${mode}): EINVAL while process memory is mapped; file pages move to the caller`, () => {
    const { f, ioas } = cpSetup(mode);
    const buf = f.mem(PAGE);
    const m = f.call('IOMMU_IOAS_MAP', {
      ioas_id: ioas,
      user_va: buf,
      length: PAGE,
      iova: BASE,
      flags: FIXED | RW,
    });
    assert.equal(m.errno, undefined);
    assert.equal(changeProcess(f.proc, f.fd), 'EINVAL');
    assert.equal(
      f.call('IOMMU_IOAS_UNMAP', { ioas_id: ioas, iova: BASE, length: PAGE }).errno,
      undefined,
    );
    mapFile(f, ioas, BASE);
    assert.equal(changeProcess(f.proc, f.fd), undefined, 'already the caller: nothing moves');
    const parent = f.proc.counters;
    assert.deepEqual(parent, { pinnedVm: 1n, lockedVm: mode === 'mm' ? 1n : 0n });
    const child = fork(f);
    assert.deepEqual(child.counters, { pinnedVm: 0n, lockedVm: 0n });
    assert.equal(changeProcess(child, f.fd), undefined);
    assert.deepEqual(parent, { pinnedVm: 0n, lockedVm: 0n });
    assert.deepEqual(child.counters, { pinnedVm: 1n, lockedVm: mode === 'mm' ? 1n : 0n });
    assert.equal(
      vmStatusLines(child.counters, PAGE),
      `VmLck:\t       ${mode === 'mm' ? 4 : 0} kB\nVmPin:\t       4 kB\n`,
    );
    // a page set the parent makes now is the parent's; unpinning the moved one uncharges the child
    mapFile(f, ioas, BASE + PAGE);
    const one = { pinnedVm: 1n, lockedVm: mode === 'mm' ? 1n : 0n };
    assert.deepEqual(parent, one);
    assert.deepEqual(child.counters, one);
    assert.equal(
      f.call('IOMMU_IOAS_UNMAP', { ioas_id: ioas, iova: 0n, length: (1n << 64n) - 1n }).errno,
      undefined,
    );
    assert.deepEqual(parent, { pinnedVm: 0n, lockedVm: 0n });
    assert.deepEqual(child.counters, { pinnedVm: 0n, lockedVm: 0n });
  });
}

test('CHANGE_PROCESS: EOPNOTSUPP for a non-zero __reserved', () => {
  const { f } = cpSetup('user');
  assert.equal(changeProcess(f.proc, f.fd, 1), 'EOPNOTSUPP');
});

test('CHANGE_PROCESS: with no IOAS or no areas it succeeds', () => {
  const kernel = new Kernel({ selftestCmd: selftestCmd() });
  const f = client(kernel, kernel.spawn());
  assert.equal(changeProcess(f.proc, f.fd), undefined);
  f.ioas();
  assert.equal(changeProcess(fork(f), f.fd), undefined);
});

test('CHANGE_PROCESS: ENOMEM past the caller RLIMIT_MEMLOCK, nothing moved', () => {
  const { f, ioas } = cpSetup('mm');
  mapFile(f, ioas, BASE, 4n * PAGE);
  const child = fork(f, { rlimitMemlock: 2n * PAGE });
  assert.equal(changeProcess(child, f.fd), 'ENOMEM');
  assert.deepEqual(f.proc.counters, { pinnedVm: 4n, lockedVm: 4n });
  assert.deepEqual(child.counters, { pinnedVm: 0n, lockedVm: 0n });
});

test('CHANGE_PROCESS (user): the user locked_vm moves to the caller user; page sets shared by COPY count once', () => {
  const { kernel, f, ioas } = cpSetup('user', { uid: 500 });
  mapFile(f, ioas, BASE, 2n * PAGE);
  const other = f.ioas();
  mockDomain(f, other);
  const c = f.call('IOMMU_IOAS_COPY', {
    dst_ioas_id: other,
    src_ioas_id: ioas,
    src_iova: BASE,
    dst_iova: BASE,
    length: 2n * PAGE,
    flags: FIXED | RW,
  });
  assert.equal(c.errno, undefined);
  assert.equal(kernel.userAccount(500).lockedVm, 2n);
  const child = fork(f, { uid: 501 });
  assert.equal(changeProcess(child, f.fd), undefined);
  assert.equal(kernel.userAccount(500).lockedVm, 0n);
  assert.equal(kernel.userAccount(501).lockedVm, 2n);
  assert.deepEqual(child.counters, { pinnedVm: 2n, lockedVm: 0n });
  assert.equal(f.proc.counters.pinnedVm, 0n);
});

test('CHANGE_PROCESS: page sets made under CAP_IPC_LOCK are charged to nobody and stay so', () => {
  const { f, ioas } = cpSetup('mm', { capIpcLock: true });
  mapFile(f, ioas, BASE);
  const child = fork(f);
  assert.equal(changeProcess(child, f.fd), undefined);
  assert.deepEqual(f.proc.counters, { pinnedVm: 0n, lockedVm: 0n });
  assert.deepEqual(child.counters, { pinnedVm: 0n, lockedVm: 0n });
});
