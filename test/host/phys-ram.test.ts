import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Errno } from '../../src/abi/errno.ts';
import { type ForeignBacking, PhysRam } from '../../src/host/phys-ram.ts';

const PS = 0x1000n;
const TIB = 1n << 40n;

function errno(code: string) {
  return (e: unknown) => e instanceof Errno && e.code === code;
}

test('alloc hands out page-aligned, aligned, disjoint ranges with a guard page between', () => {
  const ram = new PhysRam();
  const a = ram.alloc(100n);
  const b = ram.alloc(PS);
  const c = ram.alloc(PS, { align: 0x20_0000n });
  assert.equal(a, 0x1_0000_0000n);
  assert.equal(a % PS, 0n);
  assert.ok(b >= a + 2n * PS, 'one unbacked page after a');
  assert.equal(c % 0x20_0000n, 0n);
  assert.equal(ram.allocatedBytes, 3n * PS);
  assert.throws(() => ram.read(a + PS, 1), errno('EFAULT'));
  assert.throws(() => ram.alloc(0n), errno('EINVAL'));
  assert.throws(() => ram.alloc(PS, { align: 0x3000n }), errno('EINVAL'));
});

test('reads of never-written pages are zero and store nothing', () => {
  const ram = new PhysRam();
  const p = ram.alloc(TIB);
  assert.deepEqual(ram.read(p + TIB - 16n, 16), new Uint8Array(16));
  ram.write(p + 0x5000n, new Uint8Array(8192));
  assert.equal(ram.storedPages, 0, 'writing zeros to fresh pages stores nothing');
});

test('write/read round trip across page boundaries', () => {
  const ram = new PhysRam();
  const p = ram.alloc(4n * PS);
  const data = Uint8Array.from({ length: 9000 }, (_, i) => (i * 7 + 1) & 0xff);
  ram.write(p + 0xff0n, data);
  assert.deepEqual(ram.read(p + 0xff0n, data.length), data);
  assert.equal(ram.storedPages, 4);
  assert.deepEqual(ram.read(p, 0xff0), new Uint8Array(0xff0));
});

test('EFAULT outside allocated memory, and a straddling write writes nothing', () => {
  const ram = new PhysRam();
  const p = ram.alloc(2n * PS);
  assert.throws(() => ram.read(p - 1n, 2), errno('EFAULT'));
  assert.throws(() => ram.read(p + 2n * PS, 1), errno('EFAULT'));
  assert.throws(() => ram.write(p + 2n * PS - 2n, Uint8Array.of(1, 2, 3)), errno('EFAULT'));
  assert.deepEqual(ram.read(p + 2n * PS - 2n, 2), new Uint8Array(2));
  assert.equal(ram.storedPages, 0);
  assert.deepEqual(ram.read(p, 0), new Uint8Array(0));
});

test('pinning 1 TiB is one segment; unpinning a middle range splits it in three', () => {
  const ram = new PhysRam();
  const p = ram.alloc(TIB);
  ram.pin(p, TIB);
  assert.equal(ram.pinRanges, 1);
  assert.equal(ram.pinnedPages(), TIB / PS);
  const mid = p + TIB / 2n;
  ram.unpin(mid, 16n * PS);
  assert.equal(ram.pinRanges, 2);
  assert.equal(ram.pinCount(mid - 1n), 1);
  assert.equal(ram.pinCount(mid), 0);
  assert.equal(ram.pinCount(mid + 15n * PS), 0);
  assert.equal(ram.pinCount(mid + 16n * PS), 1);
  assert.equal(ram.pinnedPages(), TIB / PS - 16n);
  ram.pin(p + PS, TIB - 2n * PS);
  assert.equal(ram.pinCount(p), 1);
  assert.equal(ram.pinCount(p + PS), 2);
  assert.equal(ram.pinCount(mid), 1);
  assert.equal(ram.pinCount(p + TIB - PS), 1);
  assert.ok(ram.pinRanges <= 5, `segments: ${ram.pinRanges}`);
  ram.unpin(p + PS, TIB - 2n * PS);
  ram.pin(mid, 16n * PS);
  assert.equal(ram.pinRanges, 1, 'equal neighbours merge back');
  ram.unpin(p, TIB);
  assert.equal(ram.pinRanges, 0);
  assert.equal(ram.pinnedPages(), 0n);
});

test('pins cover whole pages; pinning unallocated memory is EFAULT; unpinning unpinned throws', () => {
  const ram = new PhysRam();
  const p = ram.alloc(3n * PS);
  ram.pin(p + 0xfffn, 2n);
  assert.equal(ram.pinCount(p), 1);
  assert.equal(ram.pinCount(p + PS), 1);
  assert.equal(ram.pinCount(p + 2n * PS), 0);
  assert.equal(ram.pinnedPages(), 2n);
  assert.throws(() => ram.pin(p + 2n * PS, 2n * PS), errno('EFAULT'));
  assert.equal(ram.pinCount(p + 2n * PS), 0, 'failed pin changes nothing');
  assert.throws(() => ram.unpin(p + PS, 2n * PS));
  assert.equal(ram.pinCount(p + PS), 1, 'failed unpin changes nothing');
});

test('free releases unpinned pages at once and pinned ones at their last unpin', () => {
  const ram = new PhysRam();
  const p = ram.alloc(4n * PS);
  ram.write(p, Uint8Array.of(1));
  ram.write(p + 2n * PS, Uint8Array.of(2));
  ram.pin(p + 2n * PS, PS);
  ram.free(p, 4n * PS);
  assert.equal(ram.allocatedBytes, PS);
  assert.equal(ram.storedPages, 1);
  assert.throws(() => ram.read(p, 1), errno('EFAULT'));
  assert.deepEqual(ram.read(p + 2n * PS, 1), Uint8Array.of(2), 'pinned page outlives free');
  assert.throws(() => ram.free(p + 2n * PS, PS), errno('EINVAL'), 'already freed');
  ram.unpin(p + 2n * PS, PS);
  assert.equal(ram.allocatedBytes, 0n);
  assert.equal(ram.storedPages, 0);
  assert.throws(() => ram.read(p + 2n * PS, 1), errno('EFAULT'));
});

test('free of a sub-range keeps the rest', () => {
  const ram = new PhysRam();
  const p = ram.alloc(4n * PS);
  ram.free(p + PS, 2n * PS);
  assert.deepEqual(ram.read(p, 1), new Uint8Array(1));
  assert.deepEqual(ram.read(p + 3n * PS, 1), new Uint8Array(1));
  assert.throws(() => ram.read(p + PS, 1), errno('EFAULT'));
  assert.equal(ram.allocatedBytes, 2n * PS);
  assert.throws(() => ram.free(p + 1n, PS), errno('EINVAL'));
});

test('isCompound marks hugetlb allocations only', () => {
  const ram = new PhysRam();
  const small = ram.alloc(PS);
  const huge = ram.alloc(0x40_0000n, { align: ram.hugePageSize, compound: true });
  assert.equal(huge % ram.hugePageSize, 0n);
  assert.equal(ram.isCompound(small), false);
  assert.equal(ram.isCompound(huge), true);
  assert.equal(ram.isCompound(huge + 0x3f_ffffn), true);
  assert.equal(ram.isCompound(huge + 0x40_0000n), false);
});

test('page size is configurable', () => {
  const ram = new PhysRam({ pageSize: 0x1_0000n });
  const p = ram.alloc(1n);
  ram.pin(p, 1n);
  assert.equal(ram.pinnedPages(), 1n);
  assert.deepEqual(ram.read(p + 0xffffn, 1), new Uint8Array(1));
  assert.throws(() => new PhysRam({ pageSize: 0x3000n }), errno('EINVAL'));
});

/** A foreign backing over a plain byte array that faults past `reach` bytes of its range. */
function fakeBacking(
  base: () => bigint,
  size: number,
  reach = size,
): ForeignBacking & { bytes: Uint8Array } {
  const bytes = new Uint8Array(size);
  const at = (phys: bigint, n: number) => {
    const off = Number(phys - base());
    if (off + n > reach) throw new Errno('EFAULT', 'fake backing out of reach');
    return off;
  };
  return {
    bytes,
    read: (phys, n) => bytes.slice(at(phys, n), at(phys, n) + n),
    write: (phys, data) => bytes.set(data, at(phys, data.length)),
  };
}

test('foreign allocations read and write through their backing and count no memory', () => {
  const ram = new PhysRam();
  let f = 0n;
  const backing = fakeBacking(() => f, 4 * Number(PS), 3 * Number(PS));
  f = ram.alloc(TIB, { backing });
  const local = ram.alloc(PS);
  assert.equal(ram.allocatedBytes, PS, 'a TiB of foreign space is not memory');
  backing.bytes[0x1234] = 0x5a;
  assert.deepEqual(ram.read(f + 0x1233n, 3), Uint8Array.of(0, 0x5a, 0));
  ram.write(f + 0x2ffen, Uint8Array.of(7, 8));
  assert.deepEqual(backing.bytes.subarray(0x2ffe, 0x3000), Uint8Array.of(7, 8));
  assert.equal(ram.storedPages, 0, 'nothing stored locally');
  ram.write(local, Uint8Array.of(9));
  assert.deepEqual(ram.read(local, 1), Uint8Array.of(9), 'local pages still work');
  assert.throws(() => ram.read(f + 3n * PS, 1), errno('EFAULT'), 'out of the backing reach');
  assert.throws(() => ram.write(f + 3n * PS - 1n, Uint8Array.of(1, 2)), errno('EFAULT'));
  assert.throws(() => ram.read(f + TIB, 1), errno('EFAULT'), 'past the foreign range');
});

test('foreign pages pin like RAM pages and stay reachable while pinned after free', () => {
  const ram = new PhysRam();
  let f = 0n;
  const backing = fakeBacking(() => f, 2 * Number(PS));
  f = ram.alloc(2n * PS, { backing, compound: true });
  assert.equal(ram.isCompound(f + PS), true);
  assert.equal(ram.pinnedIn(f, 2n * PS), false);
  ram.pin(f + PS, 1n);
  ram.pin(f + PS, 1n);
  assert.equal(ram.pinCount(f + PS), 2);
  assert.equal(ram.pinCount(f), 0);
  assert.equal(ram.pinnedIn(f, PS), false);
  assert.equal(ram.pinnedIn(f, PS + 1n), true);
  ram.free(f, 2n * PS);
  assert.throws(() => ram.read(f, 1), errno('EFAULT'), 'the unpinned page went');
  backing.bytes[Number(PS)] = 3;
  assert.deepEqual(ram.read(f + PS, 1), Uint8Array.of(3), 'the pinned one still reads its backing');
  ram.unpin(f + PS, 1n);
  ram.unpin(f + PS, 1n);
  assert.throws(() => ram.read(f + PS, 1), errno('EFAULT'));
  assert.equal(ram.allocatedBytes, 0n);
});

test('copy: within one allocation, its own pages or a backing that copies; false where read/write must', () => {
  const ram = new PhysRam();
  const a = ram.alloc(2n * PS);
  const b = ram.alloc(PS);
  ram.write(a + PS - 2n, Uint8Array.of(1, 2, 3, 4));
  const got = new Uint8Array(6).fill(0xee);
  assert.equal(ram.copy(Number(a + PS - 3n), got, false), true);
  assert.deepEqual(got, Uint8Array.of(0, 1, 2, 3, 4, 0), 'never-written bytes read as zero');
  assert.equal(ram.copy(Number(a + 2n * PS - 1n), Uint8Array.of(9), true), true);
  assert.deepEqual(ram.read(a + 2n * PS - 1n, 1), Uint8Array.of(9));
  assert.equal(ram.copy(Number(a + 2n * PS - 1n), new Uint8Array(2), false), false, 'past the end');
  assert.equal(ram.copy(Number(b + PS), new Uint8Array(1), false), false, 'the guard page');
  assert.equal(ram.copy(Number(b), new Uint8Array(0), false), false, 'nothing to copy');
  ram.free(a, 2n * PS);
  assert.equal(
    ram.copy(Number(a), new Uint8Array(1), false),
    false,
    'freed: the one kept is dropped',
  );
  let f = 0n;
  const plain = fakeBacking(() => f, Number(PS));
  f = ram.alloc(PS, { backing: plain });
  assert.equal(ram.copy(Number(f), new Uint8Array(1), false), false, 'a backing without copy');
  let g = 0n;
  const direct = fakeBacking(() => g, Number(PS));
  const copies: [number, number, boolean][] = [];
  g = ram.alloc(PS, {
    backing: {
      ...direct,
      copy: (phys, buf, write) => {
        copies.push([phys - Number(g), buf.length, write]);
        if (write) direct.bytes.set(buf, phys - Number(g));
        else buf.set(direct.bytes.subarray(phys - Number(g), phys - Number(g) + buf.length));
        return true;
      },
    },
  });
  assert.equal(ram.copy(Number(g) + 8, Uint8Array.of(5, 6), true), true);
  assert.deepEqual(direct.bytes.subarray(8, 10), Uint8Array.of(5, 6));
  assert.deepEqual(copies, [[8, 2, true]], 'the backing copied, at its offset');
});
