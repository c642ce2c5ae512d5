/**
 * @slow: builds and runs a C child whose memory it reads (left out of npm run test:quick)
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import { Errno } from '../../src/abi/errno.ts';
import { duringCall, foreignMemory } from '../../src/host/foreign-memory.ts';
import { PhysRam } from '../../src/host/phys-ram.ts';
import { remoteFileRef } from '../../src/host/remote-file.ts';
import { parseMaps, RemoteMm } from '../../src/host/remote-mm.ts';
import type { PhysRun } from '../../src/iommu/mm.ts';
import { type MemChild, PAGE, peek, startMemChild } from './mem-child.ts';

function errno(code: string) {
  return (e: unknown) => e instanceof Errno && e.code === code;
}

const text = (s: string) => new TextEncoder().encode(s);

/** The physical address of the single page at `va`. */
function physOf(mm: RemoteMm, va: bigint, write = false): bigint {
  const runs = mm.resolve(va, PAGE, write);
  assert.equal(runs.length, 1);
  return runs[0]!.phys;
}

let child: MemChild;
before(async () => {
  child = await startMemChild();
});
after(async () => {
  await child.close();
});

test('parseMaps reads perms, sharing, offset, device, inode and name of the lines in range', () => {
  const maps =
    '1000-3000 rw-s 00002000 00:01 1026                       /memfd:buf (deleted)\n' +
    '3000-4000 r--p 00000000 00:00 0 \n' +
    '7fff0000-7fff1000 rw-p 00000000 fd:0a 77  /a file\n';
  const all = parseMaps(maps, 0n, (1n << 64n) - 1n);
  assert.equal(all.length, 3);
  assert.deepEqual(all[0], {
    start: 0x1000n,
    end: 0x3000n,
    read: true,
    write: true,
    shared: true,
    offset: 0x2000n,
    dev: '0:1',
    ino: 1026n,
    name: '/memfd:buf (deleted)',
  });
  assert.equal(all[1]!.write, false);
  assert.equal(all[1]!.name, '');
  assert.equal(all[2]!.dev, '253:10');
  assert.equal(all[2]!.name, '/a file');
  assert.deepEqual(
    parseMaps(maps, 0x2fffn, 0x3000n).map((v) => v.start),
    [0x1000n, 0x3000n],
  );
  assert.deepEqual(parseMaps(maps, 0x4000n, 0x7ffeffffn), []);
});

test('two mappings of one memfd resolve to the same physical pages', () => {
  const ram = new PhysRam();
  const mm = new RemoteMm(child.handle, ram);
  const { m1, m2 } = child.at;
  assert.equal(physOf(mm, m2), physOf(mm, m1 + 2n * PAGE));
  assert.equal(physOf(mm, m2 + PAGE, true), physOf(mm, m1 + 3n * PAGE, true));
  assert.notEqual(physOf(mm, m1), physOf(mm, m1 + 2n * PAGE));
  const runs = mm.resolve(m1 + 0x800n, 4n * PAGE - 0x800n, true);
  assert.deepEqual(
    runs.map((r) => r.length),
    [4n * PAGE - 0x800n],
    'one contiguous run over the whole file',
  );
  assert.equal(runs[0]!.va, m1 + 0x800n);
  assert.equal(ram.isCompound(runs[0]!.phys), false);
  mm.exit();
});

test('shared anonymous memory is one object across fork; private memory is per process', () => {
  const ram = new PhysRam();
  const parent = new RemoteMm(child.handle, ram);
  const kid = new RemoteMm(child.kidHandle, ram);
  const { sh, pv } = child.at;
  assert.equal(physOf(kid, sh), physOf(parent, sh));
  assert.equal(physOf(kid, sh + PAGE, true), physOf(parent, sh + PAGE));
  assert.notEqual(physOf(kid, pv), physOf(parent, pv));
  assert.notEqual(physOf(parent, pv), physOf(parent, pv + PAGE));
  assert.equal(physOf(parent, pv), physOf(parent, pv), 'stable');
  kid.exit();
  parent.exit();
});

test('a new address space of the same pid (exec) gets new private pages, the same file pages', () => {
  const ram = new PhysRam();
  const image1 = new RemoteMm(child.handle, ram);
  const oldPrivate = physOf(image1, child.at.pv);
  const oldShared = physOf(image1, child.at.sh);
  ram.pin(oldPrivate, PAGE);
  ram.pin(oldShared, PAGE);
  image1.exit();
  const image2 = new RemoteMm(child.handle, ram);
  assert.notEqual(physOf(image2, child.at.pv), oldPrivate);
  assert.equal(physOf(image2, child.at.sh), oldShared);
  ram.unpin(oldPrivate, PAGE);
  ram.unpin(oldShared, PAGE);
  image2.exit();
});

test('PhysRam reads and writes at resolved addresses reach the live process', () => {
  const ram = new PhysRam();
  const mm = new RemoteMm(child.handle, ram);
  const { m1, m2, sh, pv } = child.at;
  assert.deepEqual(ram.read(physOf(mm, m2), 12), text('memfd page 2'));
  assert.deepEqual(ram.read(physOf(mm, sh), 11), text('shared anon'));
  assert.deepEqual(ram.read(physOf(mm, pv), 12), text('private anon'));
  ram.write(physOf(mm, m2) + 0x100n, text('dma into memfd'));
  assert.deepEqual(peek(child.handle, m1 + 2n * PAGE + 0x100n, 14), text('dma into memfd'));
  ram.write(physOf(mm, pv + PAGE) + 5n, text('dma private'));
  assert.deepEqual(mm.read(pv + PAGE + 5n, 11), text('dma private'));
  ram.write(physOf(mm, sh) + 0xff8n, text('across pages'));
  assert.deepEqual(
    peek(child.kidHandle, sh + 0xff8n, 12),
    text('across pages'),
    'the fork sees it',
  );
  mm.exit();
});

test('Mm read and write copy bytes; EFAULT where the process has no memory', () => {
  const ram = new PhysRam();
  const mm = new RemoteMm(child.handle, ram);
  const { pv, ro, hole } = child.at;
  mm.write(pv + 0x40n, text('copy_to_user'));
  assert.deepEqual(mm.read(pv + 0x40n, 12), text('copy_to_user'));
  assert.equal(mm.read(0n, 0).length, 0);
  assert.throws(() => mm.read(hole + PAGE, 1), errno('EFAULT'));
  assert.throws(() => mm.write(ro, text('x')), errno('EFAULT'));
  mm.exit();
});

test('prefetched bytes serve the reads they cover until the call ends; writes update them', () => {
  const ram = new PhysRam();
  const mm = new RemoteMm(child.handle, ram);
  const { pv } = child.at;
  const at = pv + 0x100n;
  mm.write(at, text('in the process'));
  // the library's copy differs from the memory: a covered read shows which one answered
  mm.prefetch(at, text('the library copy'));
  assert.deepEqual(mm.read(at + 4n, 7), text('library'));
  const served = mm.read(at, 3);
  served[0] = 0x58;
  assert.deepEqual(mm.read(at, 3), text('the'), 'a read hands out its own bytes');
  assert.deepEqual(mm.read(at + 12n, 6), text('ss\0\0\0\0'), 'running past the copy: the process');
  mm.write(at + 4n, text('LIB'));
  assert.deepEqual(mm.read(at, 8), text('the LIBr'), 'a write lands in the copy');
  assert.deepEqual(peek(child.handle, at, 7), text('in tLIB'), 'and in the process');
  mm.prefetch(at, new Uint8Array(8));
  mm.checkZeroed(at, 8n);
  mm.prefetch(at, text('\0\0x'));
  assert.throws(() => mm.checkZeroed(at, 3n), errno('E2BIG'));
  mm.prefetch();
  assert.deepEqual(mm.read(at, 7), text('in tLIB'), 'the call ended: the process again');
  mm.exit();
  mm.prefetch(at, text('gone'));
  assert.throws(() => mm.read(at, 4), errno('EFAULT'), 'an exited mm stays EFAULT');
});

test('a span prefetched with the argument serves the reads it covers as the argument does', () => {
  const ram = new PhysRam();
  const mm = new RemoteMm(child.handle, ram);
  const { pv } = child.at;
  const arg = pv + 0x400n;
  const src = pv + 0x300n;
  mm.write(src, text('the process src'));
  mm.prefetch(arg, text('argumentlibrary src'), src, 8);
  assert.deepEqual(mm.read(arg, 8), text('argument'));
  assert.deepEqual(mm.read(src + 8n, 3), text('src'), 'the span answered');
  assert.deepEqual(mm.read(src + 8n, 6), text('ess sr'), 'running past it: the process');
  mm.write(src + 1n, text('IBR'));
  assert.deepEqual(mm.read(src, 6), text('lIBRar'), 'a write lands in the span');
  assert.deepEqual(peek(child.handle, src, 6), text('tIBRpr'), 'and in the process');
  mm.clearUser(src + 4n, 1n);
  assert.deepEqual(mm.read(src, 6), text('tIBR\0r'), 'cleared: the process again');
  mm.prefetch(arg, text('argumentx'), src, 8);
  assert.deepEqual(mm.read(arg, 9), new Uint8Array(9), 'the argument ends where the span begins');
  mm.prefetch();
  assert.deepEqual(mm.read(src, 1), text('t'), 'the call ended');
  const high = 0xffff_ffff_ffff_0000n;
  mm.prefetch(high, text('a high window'), high - 0x1000n, 7);
  assert.deepEqual(mm.read(high + 2n, 4), text('high'), 'a window past 2^53');
  assert.deepEqual(mm.read(high - 0x1000n, 6), text('window'), 'and its span');
  assert.throws(() => mm.read(high + 2n, 6), errno('EFAULT'), 'past it: the process');
  assert.throws(() => mm.write(high + 6n, text('x')), errno('EFAULT'));
  assert.throws(() => mm.read(high, 1), errno('EFAULT'), 'dropped by the write');
  mm.exit();
});

test('deferred writes: kept where the cached maps allow, made first when the memory is read', () => {
  const ram = new PhysRam();
  const mm = new RemoteMm(child.handle, ram);
  const { pv, ro } = child.at;
  const at = pv + 0x300n;
  mm.write(at, text('before'));
  // the maps moved with this request: nothing is kept (the maps are not read for it)
  mm.observeMaps(true, true);
  mm.deferWrites();
  mm.write(at, text('B'));
  assert.deepEqual(mm.endWrites(false), []);
  assert.deepEqual(peek(child.handle, at, 6), text('Before'), 'made at once');
  // they stood still: writes into writable VMAs are kept, in order, up to the limits
  mm.observeMaps(true, false);
  mm.prefetch(at, text('Before'));
  mm.deferWrites();
  mm.write(at, text('kept'));
  mm.write(at + 0x10n, text('too'));
  assert.deepEqual(mm.read(at, 6), text('keptre'), 'a covered read sees a kept write');
  assert.deepEqual(peek(child.handle, at, 6), text('Before'), 'not made yet');
  assert.throws(() => mm.write(ro, text('x')), errno('EFAULT'), 'a read-only page: at once');
  assert.deepEqual(peek(child.handle, at, 6), text('keptre'), 'after the kept ones');
  for (let i = 0; i < 8; i++) mm.write(at + 0x20n + BigInt(i), text('y'));
  assert.deepEqual(peek(child.handle, at + 0x20n, 1), new Uint8Array(1), 'eight kept');
  mm.write(at + 0x40n, text('ninth'));
  assert.deepEqual(peek(child.handle, at + 0x20n, 8), text('yyyyyyyy'), 'the ninth: them first');
  assert.deepEqual(peek(child.handle, at + 0x40n, 5), text('ninth'));
  mm.write(at + 0x48n, new Uint8Array(1025));
  assert.deepEqual(mm.endWrites(false), [], 'over the byte limit: made at once');
  mm.deferWrites();
  mm.write(at, text('last'));
  assert.deepEqual(
    mm.endWrites(false).map((w) => [w.va, w.bytes]),
    [[at, text('last')]],
    'handed over, not made',
  );
  assert.deepEqual(peek(child.handle, at, 4), text('kept'));
  mm.deferWrites();
  mm.write(at, text('made'));
  mm.read(at + 0x100n, 1);
  assert.deepEqual(peek(child.handle, at, 4), text('made'), 'a read outside the copy: made first');
  mm.write(at, text('redo'));
  assert.deepEqual(mm.endWrites(true), [], 'with make: made now');
  assert.deepEqual(peek(child.handle, at, 4), text('redo'));
  mm.prefetch();
  mm.exit();
});

test('resolve: EFAULT for unmapped bytes and missing permission', () => {
  const ram = new PhysRam();
  const mm = new RemoteMm(child.handle, ram);
  const { ro, none, hole } = child.at;
  assert.throws(() => mm.resolve(hole + PAGE, PAGE, false), errno('EFAULT'), 'the hole');
  assert.throws(() => mm.resolve(hole, 2n * PAGE, false), errno('EFAULT'), 'into the hole');
  assert.throws(() => mm.resolve(hole + PAGE - 1n, 2n, false), errno('EFAULT'));
  assert.equal(mm.resolve(hole, PAGE, true).length, 1);
  assert.equal(mm.resolve(hole + 2n * PAGE, PAGE, true).length, 1);
  assert.equal(mm.resolve(ro, PAGE, false).length, 1, 'read-only pages pin for reading');
  assert.throws(() => mm.resolve(ro, PAGE, true), errno('EFAULT'), 'not for writing');
  assert.throws(() => mm.resolve(none, 1n, false), errno('EFAULT'), 'PROT_NONE');
  assert.throws(() => mm.resolve(0x10n, 1n, false), errno('EFAULT'));
  assert.throws(() => mm.resolve((1n << 64n) - 1n, 2n, false), errno('EFAULT'), 'wraps');
  assert.deepEqual(mm.resolve(0x10n, 0n, true), []);
  mm.exit();
});

test('copy_from_user through kept maps answers as through PROCMAP_QUERY', () => {
  const ram = new PhysRam();
  const asked = new RemoteMm(child.handle, ram);
  const kept = new RemoteMm(child.handle, ram);
  kept.observeMaps(true, false);
  kept.resolve(child.at.pv, 1n, false); // reads the maps it keeps
  const { pv, ro, sh, m1, none, hole } = child.at;
  for (const [va, n] of [
    [pv, 12],
    [ro, 100],
    [sh + 0x10n, 3],
    [m1 + PAGE - 8n, 16],
  ] as const) {
    assert.deepEqual(kept.read(va, n), asked.read(va, n), `0x${va.toString(16)}`);
  }
  for (const [va, n, what] of [
    [none, 1, 'PROT_NONE'],
    [hole + PAGE, 8, 'the hole'],
    [hole + PAGE - 4n, 8, 'into the hole'],
  ] as const) {
    assert.throws(() => asked.read(va, n), errno('EFAULT'), what);
    assert.throws(() => kept.read(va, n), errno('EFAULT'), `${what}, kept maps`);
  }
  asked.exit();
  kept.exit();
});

test('resolving and pinning a TiB costs its mappings, not its pages', () => {
  const ram = new PhysRam();
  const mm = new RemoteMm(child.handle, ram);
  const tib = 1n << 40n;
  const runs = mm.resolve(child.at.big, tib, false);
  assert.ok(runs.length <= 2, 'at most one run per TiB chunk');
  assert.equal(
    runs.reduce((n, r) => n + r.length, 0n),
    tib,
  );
  for (const r of runs) ram.pin(r.phys, r.length);
  assert.equal(ram.pinnedPages(), tib / PAGE);
  assert.equal(ram.pinCount(physOf(mm, child.at.big + tib - PAGE)), 1);
  for (const r of runs) ram.unpin(r.phys, r.length);
  assert.equal(ram.allocatedBytes, 0n, 'foreign space is not memory');
  mm.exit();
});

test('pins count per page through every mapping of it', () => {
  const ram = new PhysRam();
  const mm = new RemoteMm(child.handle, ram);
  const kid = new RemoteMm(child.kidHandle, ram);
  const { m1, m2, sh } = child.at;
  ram.pin(physOf(mm, m2), PAGE);
  assert.equal(ram.pinCount(physOf(mm, m1 + 2n * PAGE)), 1);
  assert.equal(ram.pinCount(physOf(mm, m1 + 3n * PAGE)), 0);
  ram.pin(physOf(kid, sh), 1n);
  assert.equal(ram.pinCount(physOf(mm, sh)), 1);
  ram.unpin(physOf(mm, m2), PAGE);
  ram.unpin(physOf(mm, sh), PAGE);
  assert.equal(ram.pinnedPages(), 0n);
  kid.exit();
  mm.exit();
});

test('MAP_FILE of a memfd meets its mappings on the same pages; other files have no pages', () => {
  const ram = new PhysRam();
  const mm = new RemoteMm(child.handle, ram);
  const ref = remoteFileRef(child.handle, child.fd.mfd, ram);
  const pages = ref.pages!;
  assert.equal(pages.size, 4n * PAGE);
  assert.equal(pages.source.file, true, 'file pages: IOAS_CHANGE_PROCESS may move them');
  const runs: PhysRun[] = pages.source.resolve(2n * PAGE, 2n * PAGE, true);
  assert.deepEqual(
    runs.map((r) => [r.va, r.length]),
    [[2n * PAGE, 2n * PAGE]],
  );
  assert.equal(runs[0]!.phys, physOf(mm, child.at.m2));
  assert.deepEqual(pages.source.resolve(0n, 0n, false), []);
  assert.throws(() => pages.source.resolve(3n * PAGE, 2n * PAGE, false), errno('EFAULT'));
  assert.equal(remoteFileRef(child.handle, 1, ram).pages, undefined, 'a pipe');
  assert.equal(remoteFileRef(child.handle, child.fd.efd, ram).pages, undefined, 'an eventfd');
  assert.throws(() => remoteFileRef(child.handle, 999, ram), errno('EBADF'));
  mm.exit();
});

test('hugetlb pages are compound', (t) => {
  if (child.at.hs === 0n) {
    t.skip('no huge pages reserved (vm.nr_hugepages)');
    return;
  }
  const ram = new PhysRam();
  const mm = new RemoteMm(child.handle, ram);
  const kid = new RemoteMm(child.kidHandle, ram);
  const [run] = mm.resolve(child.at.hs, 2n << 20n, true);
  assert.equal(run!.length, 2n << 20n);
  assert.equal(run!.phys % (2n << 20n), 0n, 'huge-page aligned');
  assert.equal(ram.isCompound(run!.phys + 0x1000n), true);
  assert.equal(physOf(kid, child.at.hs + PAGE), run!.phys + PAGE);
  assert.equal(ram.isCompound(physOf(mm, child.at.pv)), false);
  ram.write(run!.phys + 0x1234n, text('huge'));
  assert.deepEqual(peek(child.handle, child.at.hs + 0x1234n, 4), text('huge'));
  kid.exit();
  mm.exit();
});

test('a file size is read once a syscall: a truncate between calls counts at the next', () => {
  const ram = new PhysRam();
  const mm = new RemoteMm(child.handle, ram);
  const fd = fs.openSync(`/proc/${child.pid}/fd/${child.fd.mfd}`, 'r+');
  const page3 = child.at.m1 + 3n * PAGE;
  try {
    const phys = duringCall(() => physOf(mm, page3));
    fs.ftruncateSync(fd, Number(3n * PAGE));
    assert.throws(
      () => duringCall(() => mm.resolve(page3, PAGE, false)),
      errno('EFAULT'),
      'page 3 is past the end now',
    );
    fs.ftruncateSync(fd, Number(3n * PAGE + 0x800n));
    duringCall(() => ram.write(phys + 0x7f0n, new Uint8Array(0x20).fill(7)));
    assert.equal(fs.fstatSync(fd).size, Number(3n * PAGE + 0x800n), 'the file did not grow');
    assert.deepEqual(
      [...peek(child.handle, page3 + 0x7f0n, 0x10)],
      Array(0x10).fill(7),
      'the bytes before the new end were written',
    );
    // a small read and a large one across the end: the file's bytes, then zeros
    const across = (n: number) => duringCall(() => ram.read(phys + 0x800n - 8n, n));
    for (const n of [16, 0x100]) {
      assert.deepEqual(
        [...across(n)],
        [...Array(8).fill(7), ...Array(n - 8).fill(0)],
        `${n} bytes`,
      );
    }
  } finally {
    fs.ftruncateSync(fd, Number(4n * PAGE));
    fs.closeSync(fd);
    mm.exit();
  }
});

/** The permissions of this process's (the engine's) mapping of memfd `name`, e.g. 'rw-s'. */
function engineMapping(name: string): string | undefined {
  const line = fs
    .readFileSync('/proc/self/maps', 'latin1')
    .split('\n')
    .find((l) => l.includes(`/memfd:${name} `));
  return line?.split(' ')[1];
}

test('a shmem file is mapped for DMA copies; pages truncated away since go through the file, faulting nothing', () => {
  const ram = new PhysRam();
  const mm = new RemoteMm(child.handle, ram);
  const fd = fs.openSync(`/proc/${child.pid}/fd/${child.fd.mfd}`, 'r+');
  const page3 = child.at.m1 + 3n * PAGE;
  try {
    const p2 = Number(physOf(mm, child.at.m1 + 2n * PAGE));
    const p3 = Number(physOf(mm, page3, true));
    const got = new Uint8Array(12);
    assert.equal(ram.copy(p2, got, false), true, 'read through the mapping');
    assert.deepEqual(got, text('memfd page 2'));
    assert.equal(ram.copy(p3 + 0x10, text('by memcpy'), true), true, 'written through it');
    assert.deepEqual(peek(child.handle, page3 + 0x10n, 9), text('by memcpy'));
    assert.equal(engineMapping('uiommu-test'), 'rw-s', 'its seals are final (F_SEAL_SEAL)');
    // page 3 leaves the file behind the engine's back: a memcpy there would be SIGBUS
    fs.ftruncateSync(fd, Number(3n * PAGE));
    assert.equal(ram.copy(p3 + 0x10, new Uint8Array(4), false), false);
    assert.equal(ram.copy(p3, text('x'), true), false);
    assert.deepEqual(ram.read(BigInt(p3) + 0x10n, 9), new Uint8Array(9), 'past the end: zeros');
    ram.write(BigInt(p3), text('dropped'));
    assert.equal(fs.fstatSync(fd).size, Number(3n * PAGE), 'the file did not grow');
    assert.throws(
      () => duringCall(() => mm.resolve(page3, 1n, false)),
      errno('EFAULT'),
      'GUP past the end',
    );
    assert.equal(ram.copy(p2, got, false), true, 'the pages before the end: still the mapping');
    assert.deepEqual(got, text('memfd page 2'));
  } finally {
    fs.ftruncateSync(fd, Number(4n * PAGE));
    fs.closeSync(fd);
    mm.exit();
  }
});

test('copy: DMA within the shared file VMA the last resolve found, as resolve then a copy would do', () => {
  const ram = new PhysRam();
  const mm = new RemoteMm(child.handle, ram);
  const { m1, mr, sh, pv } = child.at;
  const got = new Uint8Array(11);
  assert.equal(mm.copy(Number(sh), got, false), false, 'nothing resolved yet');
  mm.resolve(sh, PAGE, false);
  assert.equal(mm.copy(Number(sh), got, false), false, 'maps not kept (untracked)');
  mm.observeMaps(true, false);
  mm.resolve(sh, PAGE, false);
  assert.equal(mm.copy(Number(sh), got, false), true);
  assert.deepEqual(got, text('shared anon'));
  assert.equal(mm.copy(Number(sh + 2n * PAGE) - 4, got, false), false, 'past the VMA');
  assert.equal(mm.copy(Number(sh) + 0x40, text('copied in'), true), true);
  assert.deepEqual(peek(child.handle, sh + 0x40n, 9), text('copied in'));
  // bytes the call prefetched are written the slow way, which keeps the window current
  mm.prefetch(sh + 0x80n, new Uint8Array(16));
  assert.equal(mm.copy(Number(sh) + 0x8c, text('into window'), true), false, 'meets the window');
  assert.equal(mm.copy(Number(sh) + 0x90, text('after it'), true), true, 'just past it');
  assert.equal(mm.copy(Number(sh) + 0x80, got, false), true, 'a read of it: the file');
  mm.prefetch();
  mm.resolve(m1 + 2n * PAGE, 12n, false);
  assert.equal(mm.copy(Number(sh), got, false), false, 'another VMA was resolved since');
  mm.resolve(mr, 12n, false);
  assert.equal(mm.copy(Number(mr), got, false), true, 'a read-only shared mapping: read');
  assert.deepEqual(got, text('memfd page '));
  assert.equal(mm.copy(Number(mr), text('x'), true), false, 'but not written');
  mm.resolve(pv, PAGE, false);
  assert.equal(
    mm.copy(Number(pv), got, false),
    false,
    'private memory: resolve, then the mem file',
  );
  mm.resolve(sh, PAGE, true);
  mm.pfnMaps = { empty: false, overlaps: () => false, resolve: () => [] };
  assert.equal(mm.copy(Number(sh), got, false), false, 'device mappings exist');
  mm.pfnMaps = undefined;
  mm.deferWrites();
  mm.write(pv, text('kept'));
  assert.equal(mm.copy(Number(sh), got, false), false, 'a write is kept for the library');
  mm.endWrites(true);
  assert.equal(mm.copy(Number(sh), got, false), true);
  mm.observeMaps(true, true);
  assert.equal(mm.copy(Number(sh), got, false), false, 'the maps changed');
  mm.exit();
});

test('a pinned memfd page outlives its mappings: reached through the file once unmapped', async () => {
  const ram = new PhysRam();
  const foreign = foreignMemory(ram);
  const mm = new RemoteMm(child.handle, ram);
  const phys = physOf(mm, child.at.m2);
  const unpinned = physOf(mm, child.at.m1);
  // a RemoteMm told that the library tracks the address space keeps the map it read
  const cached = new RemoteMm(child.handle, ram);
  cached.observeMaps(true, false);
  physOf(cached, child.at.m2);
  ram.pin(phys, PAGE);
  await child.command('u');
  assert.throws(() => mm.resolve(child.at.m2, PAGE, false), errno('EFAULT'), 'unmapped now');
  assert.equal(physOf(cached, child.at.m2), phys, 'no change reported: the map read before');
  cached.observeMaps(true, true);
  assert.throws(
    () => cached.resolve(child.at.m2, PAGE, false),
    errno('EFAULT'),
    'a change reported: the map is read again',
  );
  cached.exit();
  assert.deepEqual(ram.read(phys, 12), text('memfd page 2'), 'read through the file');
  ram.write(phys + 0x200n, text('still here'));
  assert.deepEqual(ram.read(phys + 0x200n, 10), text('still here'));
  mm.exit();
  assert.equal(foreign.spanCount.files, 1, 'kept while pinned');
  assert.deepEqual(ram.read(phys, 5), text('memfd'));
  assert.equal(ram.pinCount(unpinned), 0);
  ram.unpin(phys, PAGE);
  foreign.sweep();
  assert.deepEqual(foreign.spanCount, { files: 0, privates: 0 }, 'nothing left once unpinned');
});

test('exit: resolve, read and write fail with EFAULT; private pages of a dead process fault', async () => {
  const ram = new PhysRam();
  const foreign = foreignMemory(ram);
  const kid = new RemoteMm(child.kidHandle, ram);
  const phys = physOf(kid, child.at.pv);
  const shared = physOf(kid, child.at.sh);
  ram.pin(phys, PAGE);
  assert.deepEqual(ram.read(phys, 12), text('private anon'));
  await child.command('k');
  assert.throws(() => ram.read(phys, 1), errno('EFAULT'), 'the process is gone');
  assert.throws(() => kid.read(child.at.pv, 1), errno('EFAULT'));
  assert.throws(() => kid.resolve(child.at.pv, PAGE, false), errno('EFAULT'));
  kid.exit();
  assert.equal(kid.alive, false);
  assert.throws(() => kid.resolve(child.at.sh, PAGE, false), errno('EFAULT'));
  assert.throws(() => kid.read(child.at.sh, 1), errno('EFAULT'));
  assert.throws(() => kid.write(child.at.sh, text('x')), errno('EFAULT'));
  assert.throws(() => ram.write(phys, text('x')), errno('EFAULT'));
  assert.throws(() => ram.read(shared, 1), errno('EFAULT'), 'its unpinned spans went');
  assert.equal(ram.pinCount(phys), 1, 'the pin stays');
  ram.unpin(phys, PAGE);
  foreign.sweep();
  assert.deepEqual(foreign.spanCount, { files: 0, privates: 0 });
});

test('a memfd whose seals may change is mapped read-only: writes go through the file, F_SEAL_WRITE still succeeds', async () => {
  const ram = new PhysRam();
  const mm = new RemoteMm(child.handle, ram);
  const phys = physOf(mm, child.at.sm, true);
  const got = new Uint8Array(12);
  assert.equal(
    ram.copy(Number(phys), got, false),
    true,
    'sealed against shrinking: read by memcpy',
  );
  assert.deepEqual(got, text('sealed memfd'));
  assert.equal(engineMapping('uiommu-sealed'), 'r--p');
  assert.equal(ram.copy(Number(phys) + 0x20, text('x'), true), false, 'no writable mapping');
  ram.write(phys + 0x20n, text('by pwrite'));
  assert.deepEqual(peek(child.handle, child.at.sm + 0x20n, 9), text('by pwrite'));
  // the program's own mapping goes; the engine's must not keep the seal from being added (EBUSY)
  await child.command('w');
  assert.throws(() => ram.write(phys + 0x20n, text('y')), errno('EFAULT'), 'sealed against writes');
  assert.deepEqual(ram.read(phys + 0x20n, 9), text('by pwrite'));
  mm.exit();
});
