import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IommuFaultAlloc, IommuIoasAlloc, iommufdCmdNumber } from '../../src/abi/iommufd.ts';
import { vfioIoctlNumber } from '../../src/abi/vfio.ts';
import { O_RDONLY, O_WRONLY } from '../../src/host/file.ts';
import { Kernel } from '../../src/host/kernel.ts';
import type { TraceEvent } from '../../src/host/process.ts';
import { SimMm } from '../../src/host/sim-mm.ts';
import { ctxOfFd } from '../../src/iommufd/fops.ts';

const IOAS_ALLOC = iommufdCmdNumber('generic', 'IOMMU_IOAS_ALLOC');
const FAULT_QUEUE_ALLOC = iommufdCmdNumber('generic', 'IOMMU_FAULT_QUEUE_ALLOC');

test('open: /dev/iommu gets the lowest free fd from 3; unknown paths are ENOENT', () => {
  const p = new Kernel().spawn();
  assert.equal(p.open('/dev/iommu'), 3);
  assert.equal(p.open('/dev/iommu'), 4);
  assert.equal(p.open('/dev/nonexistent'), -1);
  assert.equal(p.errno, 'ENOENT');
  assert.equal(p.close(3), 0);
  assert.equal(p.open('/dev/iommu'), 3);
});

test('close and ioctl on a closed or never-opened fd are EBADF', () => {
  const p = new Kernel().spawn();
  const fd = p.open('/dev/iommu');
  assert.equal(p.close(fd), 0);
  assert.equal(p.close(fd), -1);
  assert.equal(p.errno, 'EBADF');
  assert.equal(p.ioctl(fd, IOAS_ALLOC, 0n), -1);
  assert.equal(p.errno, 'EBADF');
  assert.equal(p.ioctl(77, IOAS_ALLOC, 0n), -1);
  assert.equal(p.errno, 'EBADF');
});

test('ioctl on a file without ioctls (a memfd) is ENOTTY', () => {
  const p = new Kernel().spawn();
  const fd = p.memfd(4096n);
  assert.equal(p.ioctl(fd, IOAS_ALLOC, 0n), -1);
  assert.equal(p.errno, 'ENOTTY');
});

test('a wild or unmapped argument pointer is EFAULT', () => {
  const p = new Kernel().spawn();
  const fd = p.open('/dev/iommu');
  assert.equal(p.ioctl(fd, IOAS_ALLOC, 0x1234_5000n), -1);
  assert.equal(p.errno, 'EFAULT');
  const addr = p.scratch(IommuIoasAlloc.encode({ size: 12 }));
  assert.equal(p.ioctl(fd, IOAS_ALLOC, addr), 0, 'the same call with a valid pointer works');
});

test('a read-only argument struct fails at copy-back with EFAULT and leaves no object', () => {
  const k = new Kernel();
  const p = k.spawn();
  const fd = p.open('/dev/iommu');
  const page = p.mm.mmap({ length: 4096n, prot: { read: true, write: true } });
  p.mm.write(page, IommuIoasAlloc.encode({ size: 12 }));
  p.mm.mprotect(page, 4096n, { read: true, write: false });
  assert.equal(p.ioctl(fd, IOAS_ALLOC, page), -1);
  assert.equal(p.errno, 'EFAULT');
  const again = p.call(fd, IOAS_ALLOC, IommuIoasAlloc, {});
  assert.equal(again.out.out_ioas_id, 1, 'the failed IOAS_ALLOC freed its id');
});

test('dup/dup2 share the open file: the context lives until the last fd closes', () => {
  const k = new Kernel();
  const p = k.spawn();
  const fd = p.open('/dev/iommu');
  const a = p.call(fd, IOAS_ALLOC, IommuIoasAlloc, {});
  assert.equal(a.out.out_ioas_id, 1);
  const d = p.dup(fd);
  assert.equal(d, 4);
  assert.equal(p.close(fd), 0);
  const b = p.call(d, IOAS_ALLOC, IommuIoasAlloc, {});
  assert.equal(b.ret, 0);
  assert.equal(b.out.out_ioas_id, 2, 'same context: ids continue');
  assert.equal(p.dup2(d, 10), 10);
  assert.equal(p.close(d), 0);
  assert.equal(p.call(10, IOAS_ALLOC, IommuIoasAlloc, {}).out.out_ioas_id, 3);
  assert.equal(p.dup2(3, 10), -1, 'dup2 from a closed fd');
  assert.equal(p.errno, 'EBADF');
});

test('dup2 onto an open fd closes what it held first', () => {
  const p = new Kernel().spawn();
  const x = p.open('/dev/iommu');
  const y = p.open('/dev/iommu');
  p.call(y, IOAS_ALLOC, IommuIoasAlloc, {});
  assert.equal(p.dup2(x, y), y);
  const r = p.call(y, IOAS_ALLOC, IommuIoasAlloc, {});
  assert.equal(r.out.out_ioas_id, 1, 'y now names x’s fresh context');
});

test('poll reports POLLNVAL for a closed fd', () => {
  const p = new Kernel().spawn();
  const fd = p.open('/dev/iommu');
  assert.equal(p.poll(fd, 0x1) & 0x1, 0x1);
  p.close(fd);
  assert.equal(p.poll(fd, 0x1), 0x20);
});

test('exit closes every fd and tears the address space down', () => {
  const k = new Kernel();
  const p = k.spawn();
  const fd = p.open('/dev/iommu');
  p.call(fd, IOAS_ALLOC, IommuIoasAlloc, {});
  p.exit();
  assert.equal(p.fds.size, 0);
  assert.equal(p.mm.alive, false);
});

test('tracing prints one decoded line per syscall', () => {
  const p = new Kernel().spawn();
  const lines: string[] = [];
  p.trace = (l) => lines.push(l);
  const fd = p.open('/dev/iommu');
  p.call(fd, IOAS_ALLOC, IommuIoasAlloc, { flags: 1 });
  p.close(fd);
  assert.deepEqual(lines, [
    'openat(AT_FDCWD, "/dev/iommu", O_RDWR) = 3',
    'ioctl(3, IOMMU_IOAS_ALLOC, {size=12, flags=0x1, out_ioas_id=0}) = -1 EOPNOTSUPP (Operation not supported) <unknown flags 0x1; iommufd_ioas_alloc_ioctl>',
    'close(3) = 0',
  ]);
});

// ---- fds chosen by the caller, spare fds, pread/pwrite, fork, exec -----------------

const NIC = '0000:03:00.0'; // x86 preset: alone in group 13

/** A process with container + group 13 set up for GET_DEVICE_FD. */
function groupReady() {
  const k = new Kernel();
  const p = k.spawn();
  const container = p.open('/dev/vfio/vfio');
  const group = p.open('/dev/vfio/13');
  const fdArg = new Uint8Array(4);
  new DataView(fdArg.buffer).setInt32(0, container, true);
  assert.equal(
    p.ioctl(group, vfioIoctlNumber('generic', 'VFIO_GROUP_SET_CONTAINER'), p.scratch(fdArg)),
    0,
  );
  assert.equal(p.ioctl(container, vfioIoctlNumber('generic', 'VFIO_SET_IOMMU'), 3n), 0);
  const name = p.scratch(new TextEncoder().encode(`${NIC}\0`));
  return { k, p, container, group, name };
}

const GET_DEVICE_FD = vfioIoctlNumber('generic', 'VFIO_GROUP_GET_DEVICE_FD');

test('openAt installs at the chosen fd, replacing a stale file there; EBADF out of range', () => {
  const k = new Kernel();
  const p = k.spawn();
  assert.equal(p.openAt(40, '/dev/iommu'), 40);
  assert.equal(p.file(40)?.kind, 'iommufd');
  assert.equal(p.open('/dev/iommu'), 3, 'lowest free is unaffected');
  const stale = ctxOfFd(p, 40);
  p.call(40, IOAS_ALLOC, IommuIoasAlloc, {});
  assert.equal(p.openAt(40, '/dev/iommu'), 40);
  assert.notEqual(ctxOfFd(p, 40), stale, 'a fresh context at 40');
  assert.equal(stale.objectCount, 0, 'the replaced context was released');
  assert.equal(p.openAt(41, '/dev/nope'), -1);
  assert.equal(p.errno, 'ENOENT');
  assert.equal(p.fds.has(41), false);
  assert.equal(p.openAt(-1, '/dev/iommu'), -1);
  assert.equal(p.errno, 'EBADF');
  assert.equal(p.openAt(1024, '/dev/iommu'), -1);
  assert.equal(p.errno, 'EBADF');
});

test('ioctlSpare: GET_DEVICE_FD installs the device at the spare fd', () => {
  const { p, group, name } = groupReady();
  const r = p.ioctlSpare(group, GET_DEVICE_FD, name, 77);
  assert.deepEqual(r, { ret: 77, newfd: 77 });
  assert.equal(p.file(77)?.kind, 'vfio-device');
  assert.deepEqual(p.ioctlSpare(group, GET_DEVICE_FD, name, 78), { ret: 78, newfd: 78 });
  const bad = p.scratch(new TextEncoder().encode('0000:09:00.0\0'));
  assert.deepEqual(p.ioctlSpare(group, GET_DEVICE_FD, bad, 79), { ret: -1, newfd: -1 });
  assert.equal(p.errno, 'ENODEV');
  assert.equal(p.fds.has(79), false);
});

test('ioctlSpare: an ioctl that creates no file leaves the spare unused', () => {
  const p = new Kernel().spawn();
  const fd = p.open('/dev/iommu');
  const addr = p.scratch(IommuIoasAlloc.encode({ size: 12 }));
  assert.deepEqual(p.ioctlSpare(fd, IOAS_ALLOC, addr, 9), { ret: 0, newfd: -1 });
  assert.equal(p.fds.has(9), false);
  assert.equal(p.open('/dev/iommu'), 4, 'a later install takes the lowest free fd again');
});

test('ioctlSpare with -1 is a plain ioctl: a new file goes to the lowest free fd', () => {
  const { p, group, name } = groupReady();
  const r = p.ioctlSpare(group, GET_DEVICE_FD, name, -1);
  assert.deepEqual(r, { ret: 5, newfd: -1 });
});

test('pread/pwrite reach the device region at the offset; read uses offset 0', () => {
  const { p, group, name } = groupReady();
  const dev = p.ioctl(group, GET_DEVICE_FD, name);
  const buf = p.mm.mmap({ length: 4096n, prot: { read: true, write: true } });
  const CONFIG = 7n << 40n;
  assert.equal(p.pread(dev, buf, 4, CONFIG), 4);
  const spec = p.kernel.host.devices.get(NIC)!.spec;
  const ids = new DataView(p.mm.read(buf, 4).buffer);
  assert.equal(ids.getUint16(0, true), spec.vendor);
  assert.equal(ids.getUint16(2, true), spec.device);
  // interrupt line (0x3c) is writable
  p.mm.write(buf, Uint8Array.of(0x5a));
  assert.equal(p.pwrite(dev, buf, 1, CONFIG + 0x3cn), 1);
  assert.equal(p.pread(dev, buf + 8n, 1, CONFIG + 0x3cn), 1);
  assert.equal(p.mm.read(buf + 8n, 1)[0], 0x5a);
  // plain read: offset 0 is BAR0, a memory BAR: EIO once memory decode is turned off
  p.mm.write(buf, Uint8Array.of(0, 0));
  assert.equal(p.pwrite(dev, buf, 2, CONFIG + 4n), 2);
  assert.equal(p.read(dev, buf, 4), -1);
  assert.equal(p.errno, 'EIO');
  assert.equal(p.pread(dev, buf, 4, -1n), -1);
  assert.equal(p.errno, 'EINVAL');
  assert.equal(p.pwrite(dev, buf, 4, -4096n), -1);
  assert.equal(p.errno, 'EINVAL');
  assert.equal(p.pread(dev, 0x10n, 4, CONFIG), -1, 'unmapped buffer');
  assert.equal(p.errno, 'EFAULT');
  assert.equal(p.pread(99, buf, 4, CONFIG), -1);
  assert.equal(p.errno, 'EBADF');
});

test('read/write of a file without them is EINVAL; against the access mode EBADF', () => {
  const p = new Kernel().spawn();
  const buf = p.mm.mmap({ length: 4096n, prot: { read: true, write: true } });
  const rw = p.open('/dev/iommu');
  assert.equal(p.read(rw, buf, 8), -1);
  assert.equal(p.errno, 'EINVAL');
  const ro = p.open('/dev/iommu', O_RDONLY);
  assert.equal(p.write(ro, buf, 8), -1);
  assert.equal(p.errno, 'EBADF');
  assert.equal(p.read(ro, buf, 8), -1);
  assert.equal(p.errno, 'EINVAL', 'readable, but no read method');
  const wo = p.open('/dev/iommu', O_WRONLY);
  assert.equal(p.read(wo, buf, 8), -1);
  assert.equal(p.errno, 'EBADF');
});

test('fork: the child shares every open file; the context lives until both close', () => {
  const k = new Kernel();
  const p = k.spawn();
  const fd = p.open('/dev/iommu');
  p.call(fd, IOAS_ALLOC, IommuIoasAlloc, {});
  const child = p.fork(5000, new SimMm(k.memory));
  assert.equal(k.process(5000), child);
  assert.deepEqual([...child.fds.keys()], [...p.fds.keys()]);
  assert.equal(child.file(fd), p.file(fd), 'the same open file');
  const ctx = ctxOfFd(p, fd);
  p.close(fd);
  assert.equal(ctx.objectCount, 1, 'the child still holds the context');
  child.exit();
  assert.equal(ctx.objectCount, 0);
  assert.equal(k.process(5000), undefined);
});

test('adopt registers a process under its pid with an empty fd table; a taken pid throws', () => {
  const k = new Kernel();
  const p = k.adopt(4242, new SimMm(k.memory), k.spawn().creds);
  assert.equal(p.pid, 4242);
  assert.equal(p.fds.size, 0);
  assert.equal(p.open('/dev/iommu'), 0, 'no stdio placeholders: fd 0 is free');
  assert.throws(() => k.adopt(4242, new SimMm(k.memory), p.creds));
});

test('exec replaces the address space: the old one is gone, fds and their files stay', () => {
  const k = new Kernel();
  const p = k.spawn();
  const fd = p.open('/dev/iommu');
  const old = p.mm;
  const fresh = new SimMm(k.memory);
  p.exec(fresh);
  assert.equal(old.alive, false);
  assert.equal(p.mm, fresh);
  assert.equal(p.call(fd, IOAS_ALLOC, IommuIoasAlloc, {}).ret, 0);
});

test("exec with the new image's credentials: they replace the old ones; without, the old stay", () => {
  const k = new Kernel();
  const p = k.spawn();
  const first = p.creds;
  p.exec(new SimMm(k.memory));
  assert.equal(p.creds, first);
  const next = { ...first, uid: 1000, capIpcLock: false };
  p.exec(new SimMm(k.memory), next);
  assert.equal(p.creds, next);
});

test('structured trace events carry the call, fd, its kind, request name, ret and errno', () => {
  const p = new Kernel().spawn();
  const events: TraceEvent[] = [];
  p.trace = (_l, e) => events.push(e);
  const fd = p.open('/dev/iommu');
  p.call(fd, IOAS_ALLOC, IommuIoasAlloc, {});
  p.ioctl(fd, 0x1234, 0n);
  p.close(fd);
  p.close(fd);
  // the argument as it is after the call (out_ioas_id written back); none for a NULL argument
  assert.deepEqual(events[1]?.arg, Uint8Array.of(12, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0));
  assert.equal(events[2]?.arg, undefined);
  assert.deepEqual(
    events.map(({ arg: _, ...e }) => e),
    [
      { call: 'openat', fd: 3, fdKind: 'iommufd', ret: 3 },
      { call: 'ioctl', fd: 3, fdKind: 'iommufd', request: 'IOMMU_IOAS_ALLOC', ret: 0 },
      {
        call: 'ioctl',
        fd: 3,
        fdKind: 'iommufd',
        request: '0x1234',
        ret: -1,
        errno: 'ENOTTY',
        reason: 'no VFIO container ioctl on an iommufd',
        where: 'iommufd_vfio_ioctl',
      },
      { call: 'close', fd: 3, fdKind: 'iommufd', ret: 0 },
      { call: 'close', fd: 3, ret: -1, errno: 'EBADF', reason: 'fd 3 is not open', where: 'fdget' },
    ],
  );
});

test('traces name the kind of non-iommufd fds: read/write on a fault fd, close', () => {
  const p = new Kernel().spawn();
  const lines: string[] = [];
  const events: TraceEvent[] = [];
  p.trace = (l, e) => {
    lines.push(l);
    events.push(e);
  };
  const fd = p.open('/dev/iommu');
  const r = p.call(fd, FAULT_QUEUE_ALLOC, IommuFaultAlloc, {});
  assert.equal(r.ret, 0, `FAULT_QUEUE_ALLOC: ${r.errno}`);
  const fault = r.out.out_fault_fd;
  const buf = p.scratch(new Uint8Array(64));
  p.read(fault, buf, 64);
  p.write(fault, buf, 0);
  p.close(fault);
  const tail = lines.slice(-3);
  assert.match(tail[0]!, new RegExp(`^read\\(${fault}<fault>, 0x[0-9a-f]+, 64\\) = `));
  assert.match(tail[1]!, new RegExp(`^write\\(${fault}<fault>, 0x[0-9a-f]+, 0\\) = `));
  assert.equal(tail[2], `close(${fault}<fault>) = 0`);
  assert.deepEqual(
    events.slice(-3).map((e) => [e.call, e.fdKind]),
    [
      ['read', 'fault'],
      ['write', 'fault'],
      ['close', 'fault'],
    ],
  );
});

test('an ioctl struct cut short by an unmapped page is decoded as far as it reads', () => {
  const p = new Kernel().spawn();
  const lines: string[] = [];
  p.trace = (l) => lines.push(l);
  const fd = p.open('/dev/iommu');
  const va = p.mm.mmap({ length: 0x2000n, prot: { read: true, write: true } });
  p.mm.munmap(va + 0x1000n, 0x1000n);
  const arg = va + 0x1000n - 12n;
  // `size` claims 24 bytes; the kernel's check of the 12 beyond its struct faults
  p.mm.write(arg, IommuIoasAlloc.encode({ size: 24 }));
  assert.equal(p.ioctl(fd, IOAS_ALLOC, arg), -1);
  assert.equal(
    lines.at(-1),
    'ioctl(3, IOMMU_IOAS_ALLOC, {size=24, flags=0, out_ioas_id=0}) = -1 EFAULT (Bad address) <unmapped address 0x7ffefffff000; copy_from_user>',
  );
});

test('pread64/pwrite64 offsets print in hex (vfio-pci puts the region index at bit 40)', () => {
  const p = new Kernel().spawn();
  const lines: string[] = [];
  p.trace = (l) => lines.push(l);
  const buf = p.scratch(new Uint8Array(4));
  p.pread(99, buf, 4, 7n << 40n);
  p.pwrite(99, buf, 4, 0n);
  assert.deepEqual(lines, [
    `pread64(99, 0x${buf.toString(16)}, 4, 0x70000000000) = -1 EBADF (Bad file descriptor) <fd 99 is not open; fdget>`,
    `pwrite64(99, 0x${buf.toString(16)}, 4, 0) = -1 EBADF (Bad file descriptor) <fd 99 is not open; fdget>`,
  ]);
});

test('the compat container (/dev/vfio/vfio on iommufd) shows its kind like the legacy one', () => {
  for (const vfioContainer of ['iommufd', 'type1'] as const) {
    const p = new Kernel({ personality: { vfioContainer } }).spawn();
    const lines: string[] = [];
    p.trace = (l) => lines.push(l);
    const fd = p.open('/dev/vfio/vfio');
    p.close(fd);
    assert.deepEqual(lines.slice(1), [`close(${fd}<vfio-container>) = 0`], vfioContainer);
  }
  const p = new Kernel().spawn();
  const lines: string[] = [];
  p.trace = (l) => lines.push(l);
  p.close(p.open('/dev/iommu'));
  assert.deepEqual(lines.slice(1), ['close(3) = 0'], '/dev/iommu itself stays bare');
});
