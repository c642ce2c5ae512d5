import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { FILE_MAP_BUDGET, FileMapping } from '../../src/host/file-map.ts';

/** A sparse shmem file of `size` bytes (tmpfs: it has seals, so it maps), unlinked; its fd. */
function sparseShmem(size: number): number {
  const dir = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const p = path.join(dir, `uiommu-file-map-${process.pid}-${Math.random()}`);
  const fd = fs.openSync(p, 'w+');
  fs.unlinkSync(p);
  fs.ftruncateSync(fd, size);
  return fd;
}

test('file mappings never take more of the engine address space than FILE_MAP_BUDGET', (t) => {
  const fds: number[] = [];
  t.after(() => {
    for (const fd of fds) fs.closeSync(fd);
  });
  const probe = sparseShmem(4096);
  fds.push(probe);
  const small = FileMapping.map(probe, 4096);
  if (!small) return t.skip('no shmem file to map here (no /dev/shm tmpfs)');
  small.unmap();

  // a client's sparse file larger than the budget is copied through the file, not mapped
  const huge = sparseShmem(FILE_MAP_BUDGET + 4096);
  fds.push(huge);
  assert.equal(FileMapping.map(huge, FILE_MAP_BUDGET + 4096), undefined);

  // the budget holds across files: a second half does not fit while the first is mapped
  const half = FILE_MAP_BUDGET / 2;
  const a = sparseShmem(half);
  const b = sparseShmem(half + 4096);
  fds.push(a, b);
  const ma = FileMapping.map(a, half);
  // an address-space limit (RLIMIT_AS) may refuse so large a mapping: nothing more to check then
  if (!ma) return t.skip('this process cannot map half of FILE_MAP_BUDGET (RLIMIT_AS?)');
  assert.equal(FileMapping.map(b, half + 4096), undefined);
  ma.unmap();
  const mb = FileMapping.map(b, half + 4096);
  assert.ok(mb, 'room is given back by unmap');
  mb.unmap();
});

test('a mapped shmem file copies both ways and refuses bytes past its size', (t) => {
  const fd = sparseShmem(8192);
  t.after(() => fs.closeSync(fd));
  const m = FileMapping.map(fd, 8192);
  if (!m) return t.skip('no shmem file to map here (no /dev/shm tmpfs)');
  t.after(() => m.unmap());
  fs.writeSync(fd, Buffer.from('hello'), 0, 5, 4094);
  const out = new Uint8Array(5);
  assert.ok(m.copy(4094, out, false));
  assert.equal(Buffer.from(out).toString(), 'hello');
  // a tmpfs file's seals are fixed (F_SEAL_SEAL) and allow writing: the mapping is shared, writable
  assert.ok(m.writable);
  assert.ok(m.copy(100, Buffer.from('world'), true));
  const back = Buffer.alloc(5);
  fs.readSync(fd, back, 0, 5, 100);
  assert.equal(back.toString(), 'world');
  assert.equal(m.copy(8190, new Uint8Array(4), false), false);
});
