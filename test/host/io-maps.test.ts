/**
 * A process's device mappings (src/host/io-maps.ts): cutting, splitting,
 * moving and copying pieces keeps one file reference per piece; offsets
 * into the mapping follow the pieces; GUP's view (overlaps, resolve).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Errno } from '../../src/abi/errno.ts';
import { OpenFile } from '../../src/host/file.ts';
import { IoMaps } from '../../src/host/io-maps.ts';
import type { DeviceMapping } from '../../src/kernel/file.ts';

const BASE = 0x7f00_0000_0000n;
const PAGE = 0x1000n;
const BUS = 0xe000_0000n;

/** A file counting its releases and a mapping whose bus address is BUS + offset. */
function rig() {
  let released = 0;
  const file = new OpenFile({ kind: 'vfio-device', release: () => released++ });
  const mapping: DeviceMapping = {
    file: { fd: 7, read: () => new Uint8Array(), write() {}, zero() {} },
    fileOffset: 0n,
    registers: [[0n, PAGE]],
    access: () => new Uint8Array(),
    fault() {},
    zaps: () => 3,
    phys: (offset) => BUS + offset,
  };
  return { file, mapping, released: () => released };
}

describe('IoMaps', () => {
  it('a hole punched in the middle splits the mapping; offsets follow the pieces', () => {
    const { file, mapping, released } = rig();
    const maps = new IoMaps();
    maps.add(BASE, 4n * PAGE, file, mapping);
    file.put(); // the fd is closed: the mapping keeps the file
    assert.equal(released(), 0);
    maps.remove(BASE + PAGE, PAGE);
    assert.equal(maps.size, 2);
    assert.equal(maps.find(BASE + PAGE), undefined);
    assert.equal(maps.find(BASE + 2n * PAGE)?.delta, 2n * PAGE);
    assert.deepEqual(maps.resolve(BASE + 2n * PAGE, 2n * PAGE), [
      { va: BASE + 2n * PAGE, length: 2n * PAGE, phys: BUS + 2n * PAGE },
    ]);
    maps.remove(BASE, PAGE);
    assert.equal(released(), 0);
    maps.remove(BASE, 4n * PAGE);
    assert.equal(released(), 1, 'the last piece releases the file');
  });

  it('GUP: overlaps, and resolve is EFAULT unless every byte is device-mapped', () => {
    const { file, mapping } = rig();
    const maps = new IoMaps();
    maps.add(BASE, 2n * PAGE, file, mapping);
    assert.ok(maps.overlaps(BASE - PAGE, PAGE + 1n));
    assert.ok(!maps.overlaps(BASE - PAGE, PAGE));
    assert.ok(!maps.overlaps(BASE + 2n * PAGE, PAGE));
    assert.throws(
      () => maps.resolve(BASE + PAGE, 2n * PAGE),
      (e) => e instanceof Errno && e.code === 'EFAULT',
    );
    assert.equal(maps.zaps(), 3);
  });

  it('move shrinks and relocates; add over a mapping replaces it (MAP_FIXED)', () => {
    const { file, mapping, released } = rig();
    const maps = new IoMaps();
    maps.add(BASE, 4n * PAGE, file, mapping);
    file.put();
    const to = BASE + 0x100_0000n;
    maps.move(BASE, 4n * PAGE, to, 2n * PAGE);
    assert.equal(maps.find(BASE), undefined);
    assert.equal(maps.find(to + PAGE)?.delta, 0n);
    assert.equal(maps.find(to + 2n * PAGE), undefined);
    assert.equal(released(), 0);
    file.get(); // a new mmap through an open fd
    maps.add(to, 2n * PAGE, file, mapping);
    file.put();
    assert.equal(maps.size, 1);
    assert.equal(released(), 0);
    maps.clear();
    assert.equal(released(), 1);
  });

  it('a fork copy holds its own references', () => {
    const { file, mapping, released } = rig();
    const parent = new IoMaps();
    parent.add(BASE, PAGE, file, mapping);
    file.put();
    const child = parent.clone();
    parent.clear();
    assert.equal(released(), 0);
    assert.ok(child.find(BASE));
    child.clear();
    assert.equal(released(), 1);
  });
});
