/**
 * /proc/<pid>/task/<tid>/fail-nth through the engine (src/host/fail-nth-file.ts):
 * pwrite a count, the call reaching that injection point fails with its
 * errno and pread then gives "0\n"; kstrtouint's answers for bad numbers;
 * only the caller's own tasks.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IommuIoasAlloc, iommufdCmdNumber } from '../../src/abi/iommufd.ts';
import { ctxOfFd } from '../../src/iommufd/fops.ts';
import { OP } from '../../src/server/protocol.ts';
import { cstr, engineFixture, type TestClient } from './fixture.ts';

const IOAS_ALLOC = iommufdCmdNumber('generic', 'IOMMU_IOAS_ALLOC');

function write(c: TestClient, fd: number, text: string) {
  const data = new TextEncoder().encode(text);
  return c.req(OP.PWRITE, [fd, c.scratch(data), data.length, 0]);
}

function read(c: TestClient, fd: number): string {
  const buf = c.mem(4096n);
  const r = c.req(OP.PREAD, [fd, buf, 64, 0]);
  assert.ok(r.ret >= 0, `pread: ${r.errno}`);
  return new TextDecoder().decode(c.mm.read(buf, r.ret));
}

describe('engine: fail-nth', () => {
  it('the nth injection point of the task fails; pread gives the counter, "0\\n" once fired', () => {
    const f = engineFixture();
    const c = f.client(100);
    c.open(3, '/dev/iommu');
    assert.equal(c.req(OP.OPEN, [4, 2], cstr('/proc/100/task/100/fail-nth')).ret, 0);
    assert.equal(read(c, 4), '0\n');
    assert.equal(write(c, 4, '1').ret, 1);
    assert.equal(read(c, 4), '1\n');
    const ctx = ctxOfFd(f.engine.process(100)!, 3)!;
    assert.equal(c.call(3, IOAS_ALLOC, IommuIoasAlloc, {}).errno, 'ENOMEM');
    assert.equal(ctx.objectCount, 0, 'nothing half-made');
    assert.equal(read(c, 4), '0\n', 'the fault fired');
    assert.equal(c.call(3, IOAS_ALLOC, IommuIoasAlloc, {}).ret, 0, 'injection is off again');
    // another task of the process counts its own points only
    assert.equal(write(c, 4, '1\n').ret, 2);
    assert.equal(
      c.req(
        OP.IOCTL,
        [3, IOAS_ALLOC, c.scratch(IommuIoasAlloc.encode({ size: 12 })), -1],
        undefined,
        101,
      ).ret,
      0,
    );
    assert.equal(read(c, 4), '1\n');
    assert.equal(write(c, 4, '0').ret, 1);
    assert.equal(c.call(3, IOAS_ALLOC, IommuIoasAlloc, {}).ret, 0, '0 turns it off');
  });

  it('kstrtouint: EINVAL for no number, ERANGE past UINT_MAX; hex and octal accepted', () => {
    const f = engineFixture();
    const c = f.client(100);
    c.open(4, '/proc/100/task/100/fail-nth');
    assert.equal(write(c, 4, 'N').errno, 'EINVAL');
    assert.equal(write(c, 4, ' 1').errno, 'EINVAL');
    assert.equal(write(c, 4, '1\n\n').errno, 'EINVAL');
    assert.equal(write(c, 4, '4294967296').errno, 'ERANGE');
    assert.equal(write(c, 4, '0x10').ret, 4);
    assert.equal(read(c, 4), '16\n');
    assert.equal(write(c, 4, '010').ret, 3);
    assert.equal(read(c, 4), '8\n');
  });

  it('another process’s fail-nth is ENOENT', () => {
    const f = engineFixture();
    const c = f.client(100);
    assert.equal(c.open(4, '/proc/101/task/101/fail-nth').errno, 'ENOENT');
  });
});
