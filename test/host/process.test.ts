import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IommuIoasAlloc, iommufdCmdNumber } from '../../src/abi/iommufd.ts';
import { Kernel } from '../../src/host/kernel.ts';

const IOAS_ALLOC = iommufdCmdNumber('generic', 'IOMMU_IOAS_ALLOC');

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
    'ioctl(3, IOMMU_IOAS_ALLOC, {size=12, flags=0x1, out_ioas_id=0}) = -1 EOPNOTSUPP (Operation not supported)',
    'close(3) = 0',
  ]);
});
