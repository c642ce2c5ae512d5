import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  IommuIoasAlloc,
  IommuIoasMap,
  IommuIoasMapFile,
  iommufdCmdNumber,
} from '../../src/abi/iommufd.ts';
import {
  IOMMU_TEST_OP,
  IommuTestCmdCreateAccess,
  IommuTestCmdMockDomain,
  iommuTestCmdNumber,
} from '../../src/abi/iommufd-test.ts';
import { VfioDeviceBindIommufd, vfioIoctlNumber } from '../../src/abi/vfio.ts';
import { type FileOps, POLLIN, POLLOUT } from '../../src/host/file.ts';
import { ROOT } from '../../src/host/kernel.ts';
import type { Process, ProcessMm } from '../../src/host/process.ts';
import { ctxOfFd } from '../../src/iommufd/fops.ts';
import {
  IOMMU_MINOR,
  MISC_MAJOR,
  S_IFCHR,
  VFIO_DEV_MAJOR,
  VFIO_GROUP_MAJOR,
} from '../../src/server/devices.ts';
import type { TraceRecord } from '../../src/server/engine.ts';
import { decodeI32s, decodeNodeStat, HELLO_KIND, OP } from '../../src/server/protocol.ts';
import { NOIOMMU_HOST } from '../vfio/noiommu-host.ts';
import { answer, cstr, engineFixture, recordingPollSync, TestClient } from './fixture.ts';

const IOAS_ALLOC = iommufdCmdNumber('generic', 'IOMMU_IOAS_ALLOC');
const IOAS_MAP = iommufdCmdNumber('generic', 'IOMMU_IOAS_MAP');
const TEST_CMD = iommuTestCmdNumber('generic');
const GET_DEVICE_FD = vfioIoctlNumber('generic', 'VFIO_GROUP_GET_DEVICE_FD');
const SET_CONTAINER = vfioIoctlNumber('generic', 'VFIO_GROUP_SET_CONTAINER');
const SET_IOMMU = vfioIoctlNumber('generic', 'VFIO_SET_IOMMU');
const BIND = vfioIoctlNumber('generic', 'VFIO_DEVICE_BIND_IOMMUFD');
const NIC = '0000:03:00.0'; // x86 preset: group 13, the last host device

function ioasAlloc(c: TestClient, fd: number): number {
  const r = c.call(fd, IOAS_ALLOC, IommuIoasAlloc, {});
  assert.equal(r.ret, 0, `IOAS_ALLOC: ${r.errno}`);
  return r.out.out_ioas_id;
}

/** A fresh engine whose pid 100 holds /dev/iommu as fd 3 with one IOAS: its client and that context. */
function iommufdWithIoas() {
  const f = engineFixture();
  const c = f.client(100);
  c.open(3, '/dev/iommu');
  const ctx = ctxOfFd(f.engine.process(100)!, 3);
  ioasAlloc(c, 3);
  return { f, c, ctx };
}

describe('engine: HELLO and the fd table', () => {
  it('OPEN installs the file at the fd the library reserved', () => {
    const f = engineFixture();
    const c = f.client(100);
    assert.deepEqual(c.hello, { ret: 0, errno: undefined, newfd: -1, payload: new Uint8Array() });
    assert.equal(c.open(7, '/dev/iommu').ret, 0);
    const proc = f.engine.process(100)!;
    assert.deepEqual([...proc.fds.keys()], [7]);
    assert.equal(proc.file(7)?.kind, 'iommufd');
    assert.equal(ioasAlloc(c, 7), 1);
  });

  it('OPEN of a path the kernel does not serve is ENOENT and installs nothing', () => {
    const f = engineFixture();
    const c = f.client(100);
    assert.equal(c.open(3, '/dev/vfio/99').errno, 'ENOENT');
    assert.equal(c.open(3, '/dev/null').errno, 'ENOENT');
    assert.equal(f.engine.process(100)!.fds.size, 0);
  });

  it('a request before HELLO is ESRCH; an unknown op ENOSYS; a bad HELLO kind EINVAL', () => {
    const f = engineFixture();
    const stranger = new TestClient(f, 55);
    assert.equal(stranger.open(3, '/dev/iommu').errno, 'ESRCH');
    assert.equal(stranger.req(OP.HELLO, [7]).errno, 'EINVAL');
    const c = f.client(100);
    assert.equal(c.req(99).errno, 'ENOSYS');
  });

  it('CLOSE releases the file; a second CLOSE or an unknown fd is EBADF', () => {
    const { c, ctx } = iommufdWithIoas();
    assert.equal(c.req(OP.CLOSE, [3]).ret, 0);
    assert.equal(ctx.objectCount, 0);
    assert.equal(c.req(OP.CLOSE, [3]).errno, 'EBADF');
    assert.equal(c.req(OP.CLOSE, [-1]).errno, 'EBADF');
  });

  it('DUP: newfd shares oldfd’s open file; an engine file at newfd is closed first', () => {
    const f = engineFixture();
    const c = f.client(100);
    c.open(3, '/dev/iommu');
    c.open(4, '/dev/iommu');
    const proc = f.engine.process(100)!;
    const four = ctxOfFd(proc, 4);
    ioasAlloc(c, 4);
    assert.equal(c.req(OP.DUP, [3, 4]).ret, 4);
    assert.equal(four.objectCount, 0, 'the file at 4 was released');
    assert.equal(ctxOfFd(proc, 4), ctxOfFd(proc, 3));
    assert.equal(c.req(OP.DUP, [3, 10]).ret, 10);
    assert.equal(c.req(OP.CLOSE, [3]).ret, 0);
    assert.equal(ioasAlloc(c, 10), 1, 'the context lives on through 4 and 10');
    assert.equal(c.req(OP.DUP, [3, 5]).errno, 'EBADF', 'oldfd not an engine fd');
    assert.equal(c.req(OP.DUP, [4, 4]).ret, 4);
  });
});

/**
 * `file` installed in served process `proc` at its lowest free fd, as a
 * stand-in for an ioctl creating it (a served process takes new files only
 * at a spare fd otherwise).
 */
function installOutright(proc: Process<ProcessMm>, file: FileOps): number {
  proc.sparesOnly = false;
  try {
    return proc.installFile(file);
  } finally {
    proc.sparesOnly = true;
  }
}

describe('engine: IOCTL and the spare fd', () => {
  /** Container at 3, group 13 at 4, attached with type1v2. */
  function vfioReady() {
    const f = engineFixture();
    const c = f.client(100);
    assert.equal(c.open(3, '/dev/vfio/vfio').ret, 0);
    assert.equal(c.open(4, '/dev/vfio/13').ret, 0);
    const fdArg = new Uint8Array(4);
    new DataView(fdArg.buffer).setInt32(0, 3, true);
    assert.equal(c.req(OP.IOCTL, [4, SET_CONTAINER, c.scratch(fdArg), -1]).ret, 0);
    assert.equal(c.req(OP.IOCTL, [3, SET_IOMMU, 3, -1]).ret, 0);
    return { f, c };
  }

  it('VFIO_GROUP_GET_DEVICE_FD installs the device at the spare fd and reports it', () => {
    const { f, c } = vfioReady();
    const r = c.req(OP.IOCTL, [4, GET_DEVICE_FD, c.scratch(cstr(NIC)), 6]);
    assert.deepEqual([r.ret, r.newfd], [6, 6]);
    assert.equal(f.engine.process(100)!.file(6)?.kind, 'vfio-device');
  });

  it('a failing GET_DEVICE_FD leaves the spare unused', () => {
    const { f, c } = vfioReady();
    const r = c.req(OP.IOCTL, [4, GET_DEVICE_FD, c.scratch(cstr('0000:42:00.0')), 6]);
    assert.deepEqual([r.ret, r.errno, r.newfd], [-1, 'ENODEV', -1]);
    assert.equal(f.engine.process(100)!.fds.has(6), false);
  });

  it('CREATE_ACCESS installs its access fd at the spare fd', () => {
    const f = engineFixture();
    const c = f.client(100);
    c.open(3, '/dev/iommu');
    const ioas = ioasAlloc(c, 3);
    const r = c.call(
      3,
      TEST_CMD,
      IommuTestCmdCreateAccess,
      { op: IOMMU_TEST_OP.CREATE_ACCESS, id: ioas, flags: 0 },
      5,
    );
    assert.deepEqual([r.ret, r.newfd, r.out.out_access_fd], [0, 5, 5]);
    assert.equal(f.engine.process(100)!.file(5)?.kind, 'access');
  });

  it("without a spare, a new file is the kernel's failed fd allocation, never installed", () => {
    const { f, c } = vfioReady();
    const dev = c.req(OP.IOCTL, [4, GET_DEVICE_FD, c.scratch(cstr(NIC)), -1]);
    assert.deepEqual([dev.ret, dev.errno, dev.newfd], [-1, 'EMFILE', -1]);
    c.open(5, '/dev/iommu');
    const ioas = ioasAlloc(c, 5);
    const cmd = { op: IOMMU_TEST_OP.CREATE_ACCESS, id: ioas, flags: 0 };
    const r = c.call(5, TEST_CMD, IommuTestCmdCreateAccess, cmd);
    assert.deepEqual([r.ret, r.errno, r.newfd], [-1, 'ENOMEM', -1], 'the selftest makes it ENOMEM');
    assert.deepEqual([...f.engine.process(100)!.fds.keys()].sort(), [3, 4, 5]);
    // the access was released with its file: a later one is the IOAS's only access
    const ok = c.call(5, TEST_CMD, IommuTestCmdCreateAccess, cmd, 6);
    assert.deepEqual([ok.ret, ok.newfd], [0, 6]);
  });

  it('an ioctl creating no file leaves the spare unused (newfd -1)', () => {
    const f = engineFixture();
    const c = f.client(100);
    c.open(3, '/dev/iommu');
    const r = c.call(3, IOAS_ALLOC, IommuIoasAlloc, {}, 4);
    assert.deepEqual([r.ret, r.newfd], [0, -1]);
    assert.equal(f.engine.process(100)!.fds.has(4), false);
  });

  it('the request is the low 32 bits of the unsigned long; errors are errno', () => {
    const f = engineFixture();
    const c = f.client(100);
    c.open(3, '/dev/iommu');
    const addr = c.scratch(IommuIoasAlloc.encode({ size: 12 }));
    assert.equal(c.req(OP.IOCTL, [3, (1n << 32n) | BigInt(IOAS_ALLOC), addr, -1]).ret, 0);
    assert.equal(c.req(OP.IOCTL, [3, IOAS_ALLOC, 0x10, -1]).errno, 'EFAULT');
    assert.equal(c.req(OP.IOCTL, [9, IOAS_ALLOC, addr, -1]).errno, 'EBADF');
  });

  it('PREAD/PWRITE reach config space at the region offset; READ/WRITE too', () => {
    const { f, c } = vfioReady();
    c.req(OP.IOCTL, [4, GET_DEVICE_FD, c.scratch(cstr(NIC)), 6]);
    const buf = c.mem();
    const CONFIG = 7n << 40n;
    assert.equal(c.req(OP.PREAD, [6, buf, 4, CONFIG]).ret, 4);
    const spec = f.kernel.host.devices.get(NIC)!.spec;
    assert.equal(new DataView(c.mm.read(buf, 4).buffer).getUint16(0, true), spec.vendor);
    c.mm.write(buf, Uint8Array.of(0x33));
    assert.equal(c.req(OP.PWRITE, [6, buf, 1, CONFIG + 0x3cn]).ret, 1);
    assert.equal(c.req(OP.PREAD, [6, buf + 16n, 1, CONFIG + 0x3cn]).ret, 1);
    assert.equal(c.mm.read(buf + 16n, 1)[0], 0x33);
    assert.equal(c.req(OP.PREAD, [6, buf, 4, -1]).errno, 'EINVAL');
    assert.equal(c.req(OP.PREAD, [6, 0x10, 4, CONFIG]).errno, 'EFAULT');
    c.mm.write(buf, Uint8Array.of(0, 0));
    assert.equal(c.req(OP.PWRITE, [6, buf, 2, CONFIG + 4n]).ret, 2, 'memory decode off');
    assert.equal(c.req(OP.READ, [6, buf, 4]).errno, 'EIO', 'offset 0: BAR0 with memory decode off');
    assert.equal(c.req(OP.WRITE, [3, buf, 4]).errno, 'EINVAL', 'the container has no write');
    assert.equal(c.req(OP.READ, [8, buf, 4]).errno, 'EBADF');
  });
});

describe('engine: FSTAT and STAT', () => {
  it('FSTAT of a node fd answers its numbers; of an anonymous file ret 0; EBADF', () => {
    const f = engineFixture();
    const c = f.client(100);
    c.open(3, '/dev/iommu');
    const st = c.req(OP.FSTAT, [3]);
    assert.equal(st.ret, 1);
    assert.deepEqual(decodeNodeStat(st.payload), {
      mode: S_IFCHR | 0o660,
      major: MISC_MAJOR,
      minor: IOMMU_MINOR,
    });
    const ioas = ioasAlloc(c, 3);
    c.call(3, TEST_CMD, IommuTestCmdCreateAccess, { op: IOMMU_TEST_OP.CREATE_ACCESS, id: ioas }, 4);
    const anon = c.req(OP.FSTAT, [4]);
    assert.deepEqual([anon.ret, anon.payload.length], [0, 0]);
    assert.equal(c.req(OP.FSTAT, [5]).errno, 'EBADF');
  });

  it('STAT: groups by index in host order, cdevs by device index; ENOENT elsewhere', () => {
    const f = engineFixture();
    const c = f.client(100);
    const groups = [...f.kernel.vfioGroups.keys()];
    const g13 = decodeNodeStat(c.req(OP.STAT, [], cstr('/dev/vfio/13')).payload);
    assert.deepEqual(g13, {
      mode: S_IFCHR | 0o600,
      major: VFIO_GROUP_MAJOR,
      minor: groups.indexOf(13),
    });
    const last = f.kernel.host.devices.size - 1;
    const cdev = c.req(OP.STAT, [], cstr(`/dev/vfio/devices/vfio${last}`));
    assert.equal(cdev.ret, 1);
    assert.deepEqual(decodeNodeStat(cdev.payload).major, VFIO_DEV_MAJOR);
    assert.deepEqual(decodeNodeStat(cdev.payload).minor, last);
    assert.equal(c.req(OP.STAT, [], cstr('/dev/vfio/vfio')).ret, 1);
    assert.equal(c.req(OP.STAT, [], cstr('/dev/vfio/99')).errno, 'ENOENT');
    assert.equal(c.req(OP.STAT, [], cstr(`/dev/vfio/devices/vfio${last + 1}`)).errno, 'ENOENT');
    assert.equal(c.req(OP.STAT, [], cstr('/dev/vfio')).errno, 'ENOENT');
  });

  it('a no-IOMMU group is STAT and FSTAT as /dev/vfio/noiommu-N (its index), never as N', () => {
    const f = engineFixture({
      kernel: { host: NOIOMMU_HOST, personality: { vfioNoiommu: true } },
    });
    const c = f.client(100);
    const want = { mode: S_IFCHR | 0o600, major: VFIO_GROUP_MAJOR, minor: 0 };
    const st = c.req(OP.STAT, [], cstr('/dev/vfio/noiommu-30'));
    assert.equal(st.ret, 1);
    assert.deepEqual(decodeNodeStat(st.payload), want);
    assert.equal(c.req(OP.STAT, [], cstr('/dev/vfio/30')).errno, 'ENOENT');
    assert.deepEqual(decodeNodeStat(c.req(OP.STAT, [], cstr('/dev/vfio/31')).payload), {
      ...want,
      minor: 1,
    });
    assert.equal(c.open(3, '/dev/vfio/noiommu-30').ret, 0);
    const fst = c.req(OP.FSTAT, [3]);
    assert.equal(fst.ret, 1);
    assert.deepEqual(decodeNodeStat(fst.payload), want);
  });
});

describe('engine: PROC_STATUS', () => {
  const status = (c: TestClient, pid: number) => {
    const a = c.req(OP.PROC_STATUS, [pid]);
    return { ...a, text: Buffer.from(a.payload).toString('latin1') };
  };
  const line = (text: string, tag: string) => text.split('\n').filter((l) => l.startsWith(tag));

  it('the real file of a served pid with VmLck/VmPin from the model; ret is its length', () => {
    // a served process under this test's own pid, so the real /proc file exists
    const pid = process.pid;
    const f = engineFixture({ credsFor: () => ({ ...ROOT, capIpcLock: false }) });
    const c = f.client(pid);
    const before = status(c, pid);
    assert.equal(before.ret, before.payload.length);
    assert.deepEqual(line(before.text, 'VmLck:'), ['VmLck:\t       0 kB']);
    assert.deepEqual(line(before.text, 'VmPin:'), ['VmPin:\t       0 kB']);
    // every other line is the real file's
    assert.deepEqual(line(before.text, 'Pid:'), [`Pid:\t${pid}`]);
    const real = readFileSync(`/proc/${pid}/status`, 'latin1');
    assert.deepEqual(line(before.text, 'Name:'), line(real, 'Name:'));
    assert.equal(before.text.split('\n').length, real.split('\n').length);

    // one page pinned without CAP_IPC_LOCK in the default (per-user) mode: VmPin only
    c.open(3, '/dev/iommu');
    const ioas = ioasAlloc(c, 3);
    c.call(3, TEST_CMD, IommuTestCmdMockDomain, { op: IOMMU_TEST_OP.MOCK_DOMAIN, id: ioas });
    const map = c.call(3, IOAS_MAP, IommuIoasMap, {
      ioas_id: ioas,
      flags: 6,
      user_va: c.mem(4096n),
      length: 4096n,
    });
    assert.equal(map.ret, 0, `IOAS_MAP: ${map.errno}`);
    const after = status(c, pid).text;
    assert.deepEqual(line(after, 'VmPin:'), ['VmPin:\t       4 kB']);
    assert.deepEqual(line(after, 'VmLck:'), ['VmLck:\t       0 kB']);
    f.engine.process(pid)!.counters.lockedVm = 3n;
    assert.deepEqual(line(status(c, pid).text, 'VmLck:'), ['VmLck:\t      12 kB']);
  });

  it('ENOENT for a pid the engine does not serve, or whose real file is gone; another served pid is answered', () => {
    const f = engineFixture();
    const c = f.client(process.pid);
    assert.equal(c.req(OP.PROC_STATUS, [process.pid + 1]).errno, 'ENOENT');
    // served, but no such real process (above the largest pid_max)
    const ghost = f.client(1 << 30);
    assert.equal(ghost.req(OP.PROC_STATUS, [1 << 30]).errno, 'ENOENT');
    // another served process: its status, as the world-readable file shows it
    assert.equal(ghost.req(OP.PROC_STATUS, [process.pid]).ret > 0, true);
    assert.equal(c.req(OP.PROC_STATUS, [1 << 30]).errno, 'ENOENT');
  });
});

describe('engine: fork', () => {
  it('the child gets the parent’s fd table as it was at FORK_BEGIN', () => {
    const f = engineFixture();
    const parent = f.client(100);
    parent.open(3, '/dev/iommu');
    parent.open(4, '/dev/iommu');
    ioasAlloc(parent, 3);
    const ctx = ctxOfFd(f.engine.process(100)!, 3);
    const token = parent.req(OP.FORK_BEGIN).ret;
    assert.ok(token > 0);
    // after the snapshot: the parent closes 3 and opens 5; neither reaches the child
    assert.equal(parent.req(OP.CLOSE, [3]).ret, 0);
    parent.open(5, '/dev/iommu');
    assert.equal(ctx.objectCount, 1, 'the token holds the file');
    const child = f.client(200, HELLO_KIND.FORK_CHILD, BigInt(token));
    assert.equal(child.hello?.ret, 0);
    assert.equal(parent.req(OP.FORK_END, [token, 200]).ret, 0);
    const cp = f.engine.process(200)!;
    assert.deepEqual([...cp.fds.keys()].sort(), [3, 4]);
    assert.equal(ctxOfFd(cp, 3), ctx, 'the same open file');
    assert.equal(ctxOfFd(cp, 4), ctxOfFd(f.engine.process(100)!, 4));
    assert.equal(ioasAlloc(child, 3), 2, 'the shared context continues');
    assert.equal(f.engine.pendingForks, 0);
  });

  it('a parent holding no engine fd and no device mapping gets no token: 0, nothing pending', () => {
    const f = engineFixture();
    const parent = f.client(100);
    assert.equal(parent.req(OP.FORK_BEGIN).ret, 0);
    assert.equal(f.engine.pendingForks, 0);
    // its child comes as a new process, with an empty table
    const child = f.client(200);
    assert.equal(child.hello?.ret, 0);
    assert.equal(f.engine.process(200)!.fds.size, 0);
    // once it holds one, the snapshot is back; closing it again ends that
    parent.open(3, '/dev/iommu');
    assert.ok(parent.req(OP.FORK_BEGIN).ret > 0);
    assert.equal(f.engine.pendingForks, 1);
    assert.equal(parent.req(OP.CLOSE, [3]).ret, 0);
    assert.equal(parent.req(OP.FORK_BEGIN).ret, 0);
    assert.equal(f.engine.pendingForks, 1);
  });

  it('FORK_END may come before or after the child’s HELLO; a failed fork drops the token', () => {
    const { f, c: parent, ctx } = iommufdWithIoas();
    const t1 = parent.req(OP.FORK_BEGIN).ret;
    parent.req(OP.FORK_END, [t1, 201]);
    const child = f.client(201, HELLO_KIND.FORK_CHILD, BigInt(t1));
    assert.equal(f.engine.process(201)!.fds.size, 1);
    child.disconnect();
    const t2 = parent.req(OP.FORK_BEGIN).ret;
    assert.notEqual(t2, t1);
    assert.equal(parent.req(OP.FORK_END, [t2, -1]).ret, 0);
    assert.equal(f.engine.pendingForks, 0);
    parent.req(OP.CLOSE, [3]);
    assert.equal(ctx.objectCount, 0, 'no reference left behind by the failed fork');
  });

  it('HELLO with an unknown token is ENOENT, and the child is served with no engine fds', () => {
    const f = engineFixture();
    const child = f.client(300, HELLO_KIND.FORK_CHILD, 77n);
    assert.equal(child.hello?.errno, 'ENOENT');
    assert.equal(f.engine.process(300)!.fds.size, 0);
    assert.equal(child.open(3, '/dev/iommu').ret, 0);
  });

  it('a token goes only to the forked child: FORK_END’s pid, or before it a child of the parent', () => {
    const parents = new Map([
      [200, 100],
      [201, 999],
      [202, 100],
      [203, 100],
    ]);
    const f = engineFixture({ parentOf: (pid) => parents.get(pid) });
    const parent = f.client(100);
    parent.open(3, '/dev/iommu');
    const t1 = parent.req(OP.FORK_BEGIN).ret;
    const stranger = f.client(201, HELLO_KIND.FORK_CHILD, BigInt(t1));
    assert.equal(stranger.hello?.errno, 'ENOENT', 'not a child of the token’s parent');
    assert.equal(f.engine.process(201)!.fds.size, 0);
    assert.equal(f.client(200, HELLO_KIND.FORK_CHILD, BigInt(t1)).hello?.ret, 0);
    assert.equal(f.engine.process(200)!.fds.size, 1, 'the real child still gets the table');
    const t2 = parent.req(OP.FORK_BEGIN).ret;
    parent.req(OP.FORK_END, [t2, 202]);
    assert.equal(f.client(203, HELLO_KIND.FORK_CHILD, BigInt(t2)).hello?.errno, 'ENOENT');
    assert.equal(f.client(202, HELLO_KIND.FORK_CHILD, BigInt(t2)).hello?.ret, 0);
  });

  it('FORK_END counts only from the token’s creator, naming a child of the caller, once', () => {
    const parents = new Map([
      [200, 100],
      [301, 300],
    ]);
    const f = engineFixture({ parentOf: (pid) => parents.get(pid) });
    const parent = f.client(100);
    parent.open(3, '/dev/iommu');
    const thief = f.client(300);
    const t = parent.req(OP.FORK_BEGIN).ret;
    // another client points the token at its own child: as an unknown token, no effect
    assert.equal(thief.req(OP.FORK_END, [t, 301]).ret, 0);
    assert.equal(f.client(301, HELLO_KIND.FORK_CHILD, BigInt(t)).hello?.errno, 'ENOENT');
    // the creator naming a process that is not its child: ignored too
    assert.equal(parent.req(OP.FORK_END, [t, 301]).ret, 0);
    parent.req(OP.FORK_END, [t, 200]);
    assert.equal(parent.req(OP.FORK_END, [t, 999]).ret, 0, 'a second FORK_END changes nothing');
    assert.equal(f.client(200, HELLO_KIND.FORK_CHILD, BigInt(t)).hello?.ret, 0);
    assert.equal(f.engine.process(200)!.fds.size, 1, 'the real child inherits');
  });

  it('a process’s credentials are refreshed before each of its requests, not per property', () => {
    let refreshes = 0;
    const creds = {
      uid: 0,
      capSysResource: true,
      capIpcLock: true,
      rlimitMemlock: 1n << 30n,
      refresh: () => refreshes++,
    };
    const f = engineFixture({ credsFor: () => creds });
    const c = f.client(100);
    const before = refreshes;
    c.open(3, '/dev/iommu');
    c.req(OP.CLOSE, [3]);
    assert.equal(refreshes - before, 2);
  });

  it('with the socket’s peer pid known, a HELLO for another pid is EPERM', () => {
    const f = engineFixture();
    const impostor = new TestClient(f, 100, f.engine.connect(555));
    assert.equal(impostor.req(OP.HELLO, [0n]).errno, 'EPERM');
    assert.equal(
      impostor.req(OP.OPEN, [3, 2], new TextEncoder().encode('/dev/iommu\0')).errno,
      'ESRCH',
    );
    const honest = new TestClient(f, 555, f.engine.connect(555));
    assert.equal(honest.req(OP.HELLO, [0n]).ret, 0);
  });

  it('the reaper drops a token whose child (or, before FORK_END, parent) is gone', () => {
    const { f, c: parent, ctx } = iommufdWithIoas();
    const t1 = parent.req(OP.FORK_BEGIN).ret;
    parent.req(OP.FORK_END, [t1, 400]);
    f.alive.add(400);
    f.engine.reap();
    assert.equal(f.engine.pendingForks, 1, 'the child lives: its HELLO may still come');
    f.alive.delete(400);
    f.engine.reap();
    assert.equal(f.engine.pendingForks, 0);
    parent.req(OP.FORK_BEGIN);
    parent.disconnect();
    f.alive.delete(100);
    f.engine.reap();
    assert.equal(f.engine.pendingForks, 0);
    assert.equal(ctx.objectCount, 0);
  });
});

describe('engine: exec', () => {
  it('EXEC_BEGIN + close keeps the process; HELLO after exec lists its fds and gets a new mm', () => {
    const f = engineFixture();
    const c = f.client(100);
    c.open(3, '/dev/iommu');
    c.open(9, '/dev/vfio/vfio');
    ioasAlloc(c, 3);
    const oldMm = c.mm;
    assert.equal(c.req(OP.EXEC_BEGIN).ret, 0);
    c.disconnect();
    assert.ok(f.engine.process(100), 'still served while the exec is in flight');
    const img = f.client(100, HELLO_KIND.AFTER_EXEC);
    assert.equal(img.hello?.ret, 0);
    assert.deepEqual(decodeI32s(img.hello!.payload), [3, 9]);
    assert.equal(oldMm.alive, false, 'the old image’s address space is gone');
    assert.notEqual(img.mm, oldMm);
    assert.equal(ioasAlloc(img, 3), 2, 'the context survived the exec');
    // the library closes what exec closed (O_CLOEXEC)
    assert.equal(img.req(OP.CLOSE, [9]).ret, 0);
    img.disconnect();
    assert.equal(f.engine.process(100), undefined, 'no exec pending: an exit');
  });

  it('the new image gets its own credentials, refreshed before its requests', () => {
    const made: { uid: number; refreshes: number }[] = [];
    const f = engineFixture({
      credsFor: () => {
        const c = { ...ROOT, uid: made.length, refreshes: 0, refresh: () => c.refreshes++ };
        made.push(c);
        return c;
      },
    });
    const c = f.client(100);
    c.req(OP.EXEC_BEGIN);
    c.disconnect();
    const img = f.client(100, HELLO_KIND.AFTER_EXEC);
    assert.equal(made.length, 2, 'asked again for the new image');
    assert.equal(f.engine.process(100)!.creds.uid, 1);
    const before = made[0]!.refreshes;
    img.open(3, '/dev/iommu');
    assert.equal(made[1]!.refreshes, 1);
    assert.equal(made[0]!.refreshes, before, 'the old image’s are no longer read');
  });

  it('the new image’s HELLO may arrive before the old connection’s close', () => {
    const f = engineFixture();
    const c = f.client(100);
    c.open(3, '/dev/iommu');
    c.req(OP.EXEC_BEGIN);
    const img = f.client(100, HELLO_KIND.AFTER_EXEC);
    c.disconnect();
    assert.ok(f.engine.process(100), 'the late close of the old connection is not an exit');
    assert.equal(c.req(OP.CLOSE, [3]).errno, 'ESRCH', 'the old connection speaks for nobody');
    assert.equal(img.req(OP.FSTAT, [3]).ret, 1);
  });

  it('EXEC_ABORT: the process goes on and its close is an exit again', () => {
    const f = engineFixture();
    const c = f.client(100);
    c.open(3, '/dev/iommu');
    c.req(OP.EXEC_BEGIN);
    assert.equal(c.req(OP.EXEC_ABORT).ret, 0);
    assert.equal(c.req(OP.FSTAT, [3]).ret, 1);
    c.disconnect();
    assert.equal(f.engine.process(100), undefined);
  });

  it('the reaper exits an exec-pending process whose pid is gone', () => {
    const { f, c, ctx } = iommufdWithIoas();
    c.req(OP.EXEC_BEGIN);
    c.disconnect();
    f.engine.reap();
    assert.ok(f.engine.process(100), 'alive: still waiting');
    f.alive.delete(100);
    f.engine.reap();
    assert.equal(f.engine.process(100), undefined);
    assert.equal(ctx.objectCount, 0);
  });

  it('HELLO after exec for a pid the engine does not know: a new process, no fds', () => {
    const f = engineFixture();
    const img = f.client(100, HELLO_KIND.AFTER_EXEC);
    assert.equal(img.hello?.ret, 0);
    assert.deepEqual(decodeI32s(img.hello!.payload), []);
  });
});

describe('engine: exit', () => {
  it('closing the connection exits the process: fds close, pins are released', () => {
    const f = engineFixture();
    const c = f.client(100);
    c.open(3, '/dev/iommu');
    const ioas = ioasAlloc(c, 3);
    const md = c.call(3, TEST_CMD, IommuTestCmdMockDomain, {
      op: IOMMU_TEST_OP.MOCK_DOMAIN,
      id: ioas,
    });
    assert.equal(md.ret, 0, `MOCK_DOMAIN: ${md.errno}`);
    const buf = c.mem(1n << 20n);
    const map = c.call(3, IOAS_MAP, IommuIoasMap, {
      ioas_id: ioas,
      flags: 6, // WRITEABLE | READABLE
      user_va: buf,
      length: 1n << 20n,
    });
    assert.equal(map.ret, 0, `IOAS_MAP: ${map.errno}`);
    assert.equal(f.kernel.memory.pinnedPages(), 256n);
    const mm = c.mm;
    c.disconnect();
    assert.equal(f.engine.process(100), undefined);
    assert.equal(f.kernel.process(100), undefined);
    assert.equal(f.kernel.memory.pinnedPages(), 0n);
    assert.equal(mm.alive, false);
  });

  it('a pid has one live connection: a second HELLO is EBUSY until the first closes', () => {
    const { f, c, ctx } = iommufdWithIoas();
    const b = f.client(100);
    assert.equal(b.hello?.errno, 'EBUSY');
    assert.equal(b.req(OP.FSTAT, [3]).errno, 'ESRCH', 'not served');
    assert.equal(c.req(OP.HELLO, [0n]).errno, 'EBUSY', 'one HELLO per connection');
    assert.equal(f.engine.process(100)!.fds.size, 1, 'the first connection still speaks for 100');
    f.engine.disconnect(c.conn);
    const d = f.client(100);
    assert.equal(d.hello?.ret, 0, 'the first process has exited');
    assert.equal(f.engine.process(100)!.fds.size, 0);
    assert.equal(ctx.objectCount, 0);
  });

  it('shutdown exits every process', () => {
    const f = engineFixture();
    f.client(100).open(3, '/dev/iommu');
    f.client(101).open(3, '/dev/iommu');
    f.engine.shutdown();
    assert.deepEqual(f.engine.pids, []);
  });
});

describe('engine: pollable files', () => {
  it('mirrors POLLIN of pollable files into the attached eventfd after every request', () => {
    const sync = recordingPollSync();
    const f = engineFixture({ pollSync: sync });
    const c = f.client(100);
    c.open(3, '/dev/iommu');
    let events = 0;
    const fd = installOutright(f.engine.process(100)!, {
      kind: 'queue',
      poll: () => (events > 0 ? POLLIN : 0) | POLLOUT,
      release() {},
    });
    assert.equal(fd, 0);
    c.req(OP.FSTAT, [3]);
    assert.deepEqual(sync.events, ['attach 100:0 -> 1', 'set 1 false']);
    events = 2;
    c.req(OP.FSTAT, [3]);
    c.req(OP.FSTAT, [3]);
    assert.deepEqual(sync.events.slice(2), ['set 1 true'], 'set only on a change');
    assert.equal(c.req(OP.DUP, [0, 8]).ret, 8);
    assert.deepEqual(sync.events.slice(3), ['attach 100:8 -> 2', 'set 2 true']);
    events = 0;
    assert.equal(c.req(OP.CLOSE, [0]).ret, 0);
    assert.deepEqual(sync.events.slice(5), ['set 2 false', 'release 1']);
    c.disconnect();
    assert.deepEqual(sync.events.slice(7), ['release 2']);
  });

  it('wakes a ready eventfd again for each wakeup of its file, not for reads', () => {
    const sync = recordingPollSync();
    const f = engineFixture({ pollSync: sync });
    const c = f.client(100);
    c.open(3, '/dev/iommu');
    let events = 0;
    let wakeups = 5;
    const queue = (n: number) => {
      events += n;
      wakeups += n;
    };
    installOutright(f.engine.process(100)!, {
      kind: 'queue',
      poll: () => (events > 0 ? POLLIN : 0) | POLLOUT,
      wakeups: () => wakeups,
      release() {},
    });
    c.req(OP.FSTAT, [3]);
    assert.deepEqual(sync.events, ['attach 100:0 -> 1', 'set 1 false'], 'no wake for old wakeups');
    queue(1);
    c.req(OP.FSTAT, [3]);
    assert.deepEqual(sync.events.slice(2), ['set 1 true'], 'readable: set, no wake on top');
    queue(2);
    c.req(OP.FSTAT, [3]);
    assert.deepEqual(sync.events.slice(3), ['wake 1'], 'more while readable: one wake');
    events--;
    c.req(OP.FSTAT, [3]);
    c.req(OP.FSTAT, [3]);
    assert.deepEqual(sync.events.slice(4), [], 'a read wakes nobody');
    events = 0;
    c.req(OP.FSTAT, [3]);
    wakeups++;
    c.req(OP.FSTAT, [3]);
    assert.deepEqual(sync.events.slice(4), ['set 1 false'], 'no wake while not readable');
    queue(1);
    c.req(OP.FSTAT, [3]);
    assert.deepEqual(sync.events.slice(5), ['set 1 true']);
  });

  it('an attach that fails is not retried and does not disturb the request', () => {
    let attempts = 0;
    const f = engineFixture({
      pollSync: {
        attach() {
          attempts++;
          throw new Error('pidfd_getfd: EPERM');
        },
        set() {},
        wake() {},
        release() {},
      },
    });
    const c = f.client(100);
    installOutright(f.engine.process(100)!, { kind: 'queue', poll: () => POLLIN, release() {} });
    assert.equal(c.open(3, '/dev/iommu').ret, 0);
    assert.equal(c.req(OP.FSTAT, [3]).ret, 1);
    assert.equal(attempts, 1);
    assert.deepEqual(f.kernel.bugs, []);
  });

  it('files without poll are not attached', () => {
    const sync = recordingPollSync();
    const f = engineFixture({ pollSync: sync });
    const c = f.client(100);
    c.open(3, '/dev/iommu');
    c.req(OP.FSTAT, [3]);
    assert.deepEqual(sync.events, []);
  });
});

describe('engine: traces', () => {
  it('one strace-like line per syscall, prefixed with the pid; JSON records carry the tid', () => {
    const lines: string[] = [];
    const records: TraceRecord[] = [];
    const f = engineFixture({ trace: (l) => lines.push(l), traceJson: (r) => records.push(r) });
    const c = f.client(100);
    c.open(3, '/dev/iommu');
    c.req(
      OP.IOCTL,
      [3, IOAS_ALLOC, c.scratch(IommuIoasAlloc.encode({ size: 12 })), -1],
      undefined,
      101,
    );
    c.req(OP.FSTAT, [3]);
    c.req(OP.CLOSE, [3]);
    c.req(OP.CLOSE, [3]);
    assert.deepEqual(lines, [
      '[pid 100] openat(AT_FDCWD, "/dev/iommu", O_RDWR) = 3',
      '[pid 100] ioctl(3, IOMMU_IOAS_ALLOC, {size=12, flags=0, out_ioas_id=1}) = 0',
      '[pid 100] fstat(3, {st_mode=S_IFCHR|0660, st_rdev=makedev(0xa, 0x3b), ...}) = 0',
      '[pid 100] close(3) = 0',
      '[pid 100] close(3) = -1 EBADF (Bad file descriptor) <fd 3 is not open; fdget>',
    ]);
    assert.deepEqual(records[1], {
      pid: 100,
      tid: 101,
      call: 'ioctl',
      fd: 3,
      fdKind: 'iommufd',
      request: 'IOMMU_IOAS_ALLOC',
      ret: 0,
      errno: null,
      reason: null,
      where: null,
      text: 'ioctl(3, IOMMU_IOAS_ALLOC, {size=12, flags=0, out_ioas_id=1}) = 0',
    });
    assert.deepEqual(records[4], {
      pid: 100,
      tid: 100,
      call: 'close',
      fd: 3,
      fdKind: null,
      request: null,
      ret: -1,
      errno: 'EBADF',
      reason: 'fd 3 is not open',
      where: 'fdget',
      text: 'close(3) = -1 EBADF (Bad file descriptor) <fd 3 is not open; fdget>',
    });
  });
});

describe('engine: VFIO traces', () => {
  it('BIND_IOMMUFD shows out_devid as written back; the fd shows its kind, in text and JSON', () => {
    const lines: string[] = [];
    const records: TraceRecord[] = [];
    const f = engineFixture({ trace: (l) => lines.push(l), traceJson: (r) => records.push(r) });
    const c = f.client(100);
    c.open(3, '/dev/iommu');
    c.open(5, '/dev/vfio/devices/vfio0');
    const r = c.call(5, BIND, VfioDeviceBindIommufd, { argsz: 24, iommufd: 3 });
    assert.equal(r.ret, 0, `BIND_IOMMUFD: ${r.errno}`);
    assert.notEqual(r.out.out_devid, 0);
    assert.equal(
      lines.at(-1),
      `[pid 100] ioctl(5<vfio-device>, VFIO_DEVICE_BIND_IOMMUFD, {argsz=24, flags=0, iommufd=3, out_devid=${r.out.out_devid}, token_uuid_ptr=0}) = 0`,
    );
    assert.equal(records.at(-1)?.fdKind, 'vfio-device');
    assert.equal(records.at(-1)?.request, 'VFIO_DEVICE_BIND_IOMMUFD');
  });

  it('the group fd: SET_CONTAINER shows [fd], GET_DEVICE_FD the name, close the kind', () => {
    const lines: string[] = [];
    const f = engineFixture({ trace: (l) => lines.push(l) });
    const c = f.client(100);
    c.open(3, '/dev/vfio/vfio');
    c.open(4, '/dev/vfio/13');
    const fdArg = c.scratch(new Uint8Array(new Int32Array([3]).buffer));
    assert.equal(c.req(OP.IOCTL, [4, SET_CONTAINER, fdArg, -1]).ret, 0);
    c.req(OP.IOCTL, [4, GET_DEVICE_FD, c.scratch(cstr('0000:99:00.0')), -1]);
    c.req(OP.CLOSE, [4]);
    assert.deepEqual(lines.slice(-3), [
      '[pid 100] ioctl(4<vfio-group>, VFIO_GROUP_SET_CONTAINER, [3]) = 0',
      '[pid 100] ioctl(4<vfio-group>, VFIO_GROUP_GET_DEVICE_FD, "0000:99:00.0") = -1 ENODEV (No such device) <no device "0000:99:00.0" in group 13; vfio_device_get_from_name>',
      '[pid 100] close(4<vfio-group>) = 0',
    ]);
  });
});

describe('engine: model bugs', () => {
  it('a non-errno exception is recorded and answered EIO; the engine goes on', () => {
    const f = engineFixture();
    const c = f.client(100);
    installOutright(f.engine.process(100)!, {
      kind: 'broken',
      ioctl() {
        throw new TypeError('boom');
      },
      release() {},
    });
    const r = answer(
      f.engine.handle(c.conn, {
        op: OP.IOCTL,
        pid: 100,
        tid: 100,
        args: [0n, 1n, 0n, 2n ** 64n - 1n],
      }),
    );
    assert.equal(r.errno, 'EIO');
    assert.equal(f.kernel.bugs.length, 1);
    assert.equal(c.open(3, '/dev/iommu').ret, 0);
  });
});

describe('engine: real fds that are no engine files', () => {
  it('handlers see them through foreignFile (MAP_FILE of a memfd); without it they are EBADF', () => {
    const MAP_FILE = iommufdCmdNumber('generic', 'IOMMU_IOAS_MAP_FILE');
    let memfd: FileOps | undefined;
    const asked: string[] = [];
    const f = engineFixture({
      foreignFile: (pid, fd) => {
        asked.push(`${pid}:${fd}`);
        if (fd !== 50) return undefined;
        memfd ??= f.kernel.memfd(1n << 20n);
        return memfd;
      },
    });
    const c = f.client(100);
    c.open(3, '/dev/iommu');
    const ioas = ioasAlloc(c, 3);
    const map = (fd: number) =>
      c.call(3, MAP_FILE, IommuIoasMapFile, {
        flags: 6,
        ioas_id: ioas,
        fd,
        start: 0n,
        length: 1n << 20n,
      });
    assert.equal(map(50).ret, 0);
    assert.equal(map(51).errno, 'EBADF');
    assert.deepEqual(asked, ['100:50', '100:51']);
    const plain = engineFixture().client(100);
    plain.open(3, '/dev/iommu');
    const r = plain.call(3, MAP_FILE, IommuIoasMapFile, {
      flags: 6,
      ioas_id: ioasAlloc(plain, 3),
      fd: 50,
      length: 4096n,
    });
    assert.equal(r.errno, 'EBADF');
  });
});
