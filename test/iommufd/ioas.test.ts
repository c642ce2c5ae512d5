/**
 * IOAS ioctls (facts sheet §3.1–3.7): ALLOC, IOVA_RANGES, ALLOW_IOVAS, MAP,
 * automatic IOVA placement, MAP_FILE, COPY and UNMAP.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ErrnoName } from '../../src/abi/errno.ts';
import { IOMMU_OPTION_ID, IOMMU_OPTION_OP, IommuIoasIovaRanges } from '../../src/abi/iommufd.ts';
import { Kernel } from '../../src/host/kernel.ts';
import type { MemObject } from '../../src/host/mem-object.ts';
import { SimMm } from '../../src/host/sim-mm.ts';
import { DmaFaultError } from '../../src/iommu/device.ts';
import { client, type Fixture, setup } from '../support.ts';
import { mockDomain, ok, st, tc } from './mock.ts';
import {
  allow,
  encode,
  FIXED,
  ioctlAt,
  map,
  memAt,
  PAGE,
  pinCounts,
  R,
  RW,
  ranges,
  readRanges,
  SZ_2M,
  U64_MAX,
  unmapAll,
  W,
} from './util.ts';

const MSI: [bigint, bigint] = [0xfee0_0000n, 0xfeef_ffffn];
const msiRegion = { start: MSI[0], last: MSI[1], kind: 'msi' as const };
const GIB = 1n << 30n;
const VA = 0x4000_0000n; // 1 GiB aligned

/** MAP returning the errno (undefined on success) and the iova field after the call. */
function tryMap(
  f: Fixture,
  fields: Record<string, number | bigint>,
): { errno: ErrnoName | undefined; iova: bigint } {
  const r = f.call('IOMMU_IOAS_MAP', { flags: RW, ...fields });
  return { errno: r.errno, iova: r.out.iova as bigint };
}

function copy(f: Fixture, fields: Record<string, number | bigint>) {
  const r = f.call('IOMMU_IOAS_COPY', { flags: RW, ...fields });
  return { errno: r.errno, dst: r.out.dst_iova as bigint };
}

function unmap(f: Fixture, ioas: number, iova: bigint, length: bigint) {
  const r = f.call('IOMMU_IOAS_UNMAP', { ioas_id: ioas, iova, length });
  return { errno: r.errno, length: r.out.length as bigint };
}

// ---- IOMMU_IOAS_ALLOC ----------------------------------------------------------

test('IOAS_ALLOC: non-zero flags are EOPNOTSUPP and create nothing', () => {
  const f = setup();
  for (const flags of [1, 0x8000_0000]) {
    const r = f.call('IOMMU_IOAS_ALLOC', { flags, out_ioas_id: 77 });
    assert.equal(r.errno, 'EOPNOTSUPP');
    assert.equal(r.out.out_ioas_id, 77, 'not written back');
  }
  assert.equal(f.ctx.objectCount, 0);
});

test('IOAS_ALLOC: a new IOAS has no areas, no reserved IOVA, alignment 1, large pages on', () => {
  const f = setup();
  const ioas = f.ioas();
  assert.deepEqual(ranges(f, ioas), { ranges: [[0n, U64_MAX]], align: 1n });
  const opt = f.call('IOMMU_OPTION', {
    option_id: IOMMU_OPTION_ID.HUGE_PAGES,
    op: IOMMU_OPTION_OP.GET,
    object_id: ioas,
  });
  assert.equal(opt.out.val64, 1n);
  assert.equal(unmapAll(f, ioas), 0n);
  // byte granularity: one byte at IOVA 1 and at the very top
  map(f, ioas, memAt(f, VA, PAGE), 1n, { iova: 1n });
  map(f, ioas, VA, 1n, { iova: U64_MAX - 1n });
  assert.equal(unmapAll(f, ioas), 2n);
});

// ---- IOMMU_IOAS_IOVA_RANGES ---------------------------------------------------------

test('IOVA_RANGES: EOPNOTSUPP for __reserved, ENOENT for ids that are not an IOAS', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  const buf = f.mem(PAGE);
  const q = (fields: Record<string, number | bigint>) =>
    f.call('IOMMU_IOAS_IOVA_RANGES', {
      ioas_id: ioas,
      num_iovas: 4,
      allowed_iovas: buf,
      ...fields,
    });
  assert.equal(q({ __reserved: 1 }).errno, 'EOPNOTSUPP');
  assert.equal(q({ ioas_id: 0 }).errno, 'ENOENT');
  assert.equal(q({ ioas_id: idev.id }).errno, 'ENOENT');
  assert.equal(q({ ioas_id: 99 }).errno, 'ENOENT');
  assert.equal(q({ allowed_iovas: 0n }).errno, 'EFAULT', 'array not writable');
  assert.equal(q({}).out.num_iovas, 1);
});

test('IOVA_RANGES: EMSGSIZE writes the struct back with the total and fills only capacity entries', () => {
  const f = setup();
  const ioas = f.ioas();
  f.intelDevice({ reserved: [msiRegion] }).attach(ioas);
  const buf = f.mem(PAGE);
  const sentinel = new Uint8Array(64).fill(0xa5);
  const expected: [bigint, bigint][] = [
    [0n, MSI[0] - 1n],
    [MSI[1] + 1n, (1n << 48n) - 1n],
  ];
  for (const cap of [0, 1, 2, 3]) {
    f.proc.mm.write(buf, sentinel);
    const r = f.call('IOMMU_IOAS_IOVA_RANGES', {
      ioas_id: ioas,
      num_iovas: cap,
      allowed_iovas: buf,
    });
    assert.equal(r.errno, cap < 2 ? 'EMSGSIZE' : undefined, `capacity ${cap}`);
    assert.equal(r.out.num_iovas, 2);
    assert.equal(r.out.out_iova_alignment, PAGE);
    const n = Math.min(cap, 2);
    assert.deepEqual(readRanges(f, buf, n), expected.slice(0, n));
    assert.deepEqual(f.proc.mm.read(buf + BigInt(16 * n), 64 - 16 * n), sentinel.subarray(16 * n));
  }
});

test('IOVA_RANGES: a fault writing the array is EFAULT and the struct is not written back', () => {
  const f = setup();
  const ioas = f.ioas();
  const arg = f.mem(PAGE);
  f.proc.mm.write(
    arg,
    encode('IOMMU_IOAS_IOVA_RANGES', { ioas_id: ioas, num_iovas: 3, allowed_iovas: 0xdead_0000n }),
  );
  assert.equal(ioctlAt(f, 'IOMMU_IOAS_IOVA_RANGES', arg), 'EFAULT');
  const out = IommuIoasIovaRanges.decode(f.proc.mm.read(arg, 32));
  assert.equal(out.num_iovas, 3);
  assert.equal(out.out_iova_alignment, 0n);
});

test('IOVA_RANGES narrow with a domain aperture and MSI region, and widen again on detach', () => {
  const f = setup();
  const ioas = f.ioas();
  const dev48 = f.intelDevice({ reserved: [msiRegion] });
  const dev39 = f.intelDevice({ addressWidth: 39 });
  dev48.attach(ioas);
  assert.deepEqual(ranges(f, ioas), {
    ranges: [
      [0n, MSI[0] - 1n],
      [MSI[1] + 1n, (1n << 48n) - 1n],
    ],
    align: PAGE,
  });
  const h39 = dev39.attach(ioas);
  assert.notEqual(h39, dev48.hwpt, 'another IOMMU unit: a second domain');
  assert.deepEqual(ranges(f, ioas).ranges, [
    [0n, MSI[0] - 1n],
    [MSI[1] + 1n, (1n << 39n) - 1n],
  ]);
  dev48.detach();
  assert.deepEqual(ranges(f, ioas), { ranges: [[0n, (1n << 39n) - 1n]], align: PAGE });
  dev39.detach();
  assert.deepEqual(ranges(f, ioas), { ranges: [[0n, U64_MAX]], align: 1n });
});

test('IOVA_RANGES: direct-relaxable regions are not reserved, direct ones are', () => {
  const f = setup();
  const ioas = f.ioas();
  f.intelDevice({
    reserved: [
      { start: 0x10_0000n, last: 0x1f_ffffn, kind: 'direct-relaxable' },
      { start: 0x40_0000n, last: 0x40_0fffn, kind: 'direct' },
    ],
  }).attach(ioas);
  assert.deepEqual(ranges(f, ioas).ranges, [
    [0n, 0x3f_ffffn],
    [0x40_1000n, (1n << 48n) - 1n],
  ]);
});

test('IOVA_RANGES ignores the allowed list', () => {
  const f = setup();
  const ioas = f.ioas();
  assert.equal(allow(f, ioas, [[0x1000n, 0x1fffn]]), undefined);
  assert.deepEqual(ranges(f, ioas).ranges, [[0n, U64_MAX]]);
});

// ---- IOMMU_IOAS_ALLOW_IOVAS -----------------------------------------------------------

test('ALLOW_IOVAS: EOPNOTSUPP for __reserved, ENOENT for a non-IOAS id', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  assert.equal(
    f.call('IOMMU_IOAS_ALLOW_IOVAS', { ioas_id: ioas, __reserved: 1 }).errno,
    'EOPNOTSUPP',
  );
  assert.equal(f.call('IOMMU_IOAS_ALLOW_IOVAS', { ioas_id: idev.id }).errno, 'ENOENT');
  assert.equal(f.call('IOMMU_IOAS_ALLOW_IOVAS', { ioas_id: 0 }).errno, 'ENOENT');
});

test('ALLOW_IOVAS: bad entries are EINVAL/EFAULT and the old list stays', () => {
  const f = setup();
  const ioas = f.ioas();
  const va = memAt(f, VA + PAGE, PAGE); // lowest bit 4 KiB: placement alignment 4 KiB
  assert.equal(allow(f, ioas, [[0x10_0000n, 0x1f_ffffn]]), undefined);
  const bad: [string, [bigint, bigint][], ErrnoName][] = [
    ['one byte (start == last)', [[0x30_0000n, 0x30_0000n]], 'EINVAL'],
    ['start > last', [[0x30_1000n, 0x30_0000n]], 'EINVAL'],
    [
      'overlap with an earlier entry',
      [
        [0x30_0000n, 0x3f_ffffn],
        [0x3f_f000n, 0x4f_ffffn],
      ],
      'EINVAL',
    ],
    [
      'overlap, unsorted',
      [
        [0x50_0000n, 0x5f_ffffn],
        [0x40_0000n, 0x50_0000n],
      ],
      'EINVAL',
    ],
    [
      'a good entry then a bad one',
      [
        [0x30_0000n, 0x3f_ffffn],
        [5n, 5n],
      ],
      'EINVAL',
    ],
  ];
  for (const [what, list, errno] of bad) assert.equal(allow(f, ioas, list), errno, what);
  assert.equal(
    f.call('IOMMU_IOAS_ALLOW_IOVAS', { ioas_id: ioas, num_iovas: 2, allowed_iovas: 0n }).errno,
    'EFAULT',
  );
  assert.equal(map(f, ioas, va, PAGE), 0x10_0000n, 'the first list still rules placement');
});

test('ALLOW_IOVAS checks entries in order: an overlap is EINVAL before a later entry faults', () => {
  const f = setup();
  const ioas = f.ioas();
  const page = f.mem(2n * PAGE);
  f.proc.mm.munmap(page + PAGE, PAGE);
  const at = page + PAGE - 32n; // two entries end the page; a third would fault
  const entries = new Uint8Array(32);
  const dv = new DataView(entries.buffer);
  dv.setBigUint64(0, 0x10_0000n, true);
  dv.setBigUint64(8, 0x1f_ffffn, true);
  dv.setBigUint64(16, 0x1f_f000n, true);
  dv.setBigUint64(24, 0x2f_ffffn, true);
  f.proc.mm.write(at, entries);
  const r = (n: number) =>
    f.call('IOMMU_IOAS_ALLOW_IOVAS', { ioas_id: ioas, num_iovas: n, allowed_iovas: at }).errno;
  assert.equal(r(3), 'EINVAL', 'entry 1 overlaps entry 0 before entry 2 is read');
  dv.setBigUint64(16, 0x20_0000n, true);
  f.proc.mm.write(at, entries);
  assert.equal(r(3), 'EFAULT', 'entries 0 and 1 are fine, entry 2 is unreadable');
  assert.equal(r(2), undefined);
});

test('ALLOW_IOVAS replaces the whole list; num_iovas 0 clears it', () => {
  const f = setup();
  const ioas = f.ioas();
  const va = memAt(f, VA + PAGE, PAGE);
  assert.equal(allow(f, ioas, [[0x10_0000n, 0x1f_ffffn]]), undefined);
  assert.equal(map(f, ioas, va, PAGE), 0x10_0000n);
  assert.equal(
    allow(f, ioas, [
      [0x80_0000n, 0x8f_ffffn],
      [0x40_0000n, 0x4f_ffffn],
    ]),
    undefined,
  );
  assert.equal(map(f, ioas, va, PAGE), 0x40_0000n, 'lowest allowed span first');
  assert.equal(allow(f, ioas, []), undefined);
  assert.equal(map(f, ioas, va, PAGE), 0x1000n);
});

test('ALLOW_IOVAS: a range touching reserved IOVA is EADDRINUSE and nothing changes', () => {
  const f = setup();
  const ioas = f.ioas();
  const va = memAt(f, VA + PAGE, PAGE);
  f.intelDevice({ addressWidth: 39, reserved: [msiRegion] }).attach(ioas);
  assert.equal(allow(f, ioas, [[0x10_0000n, 0x1f_ffffn]]), undefined);
  for (const list of [
    [[1n << 39n, (1n << 39n) + 0xfffn]],
    [[(1n << 39n) - 0x1000n, 1n << 39n]],
    [[MSI[1], MSI[1] + 0x1000n]],
    [
      [0x1000n, 0x1fffn],
      [MSI[0] - 0x1000n, MSI[0]],
    ],
  ] as [bigint, bigint][][]) {
    assert.equal(allow(f, ioas, list), 'EADDRINUSE');
  }
  assert.equal(map(f, ioas, va, PAGE), 0x10_0000n, 'the old list is kept');
});

test('ALLOW_IOVAS: later reservations into allowed ranges fail with EADDRINUSE', () => {
  const f = setup();
  const ioas = f.ioas();
  const dev = f.intelDevice({ reserved: [msiRegion] });
  const dev39 = f.intelDevice({ addressWidth: 39 });
  assert.equal(allow(f, ioas, [[MSI[0] + 0x1000n, MSI[0] + 0x1fffn]]), undefined);
  assert.throws(() => dev.attach(ioas), { code: 'EADDRINUSE' }, 'MSI region');
  assert.equal(dev.hwpt, undefined);
  assert.equal(allow(f, ioas, [[1n << 40n, (1n << 40n) + 0xffffn]]), undefined);
  assert.throws(() => dev39.attach(ioas), { code: 'EADDRINUSE' }, 'aperture');
  assert.equal(f.call('IOMMU_HWPT_ALLOC', { dev_id: dev39.id, pt_id: ioas }).errno, 'EADDRINUSE');
  assert.deepEqual(ranges(f, ioas), { ranges: [[0n, U64_MAX]], align: 1n });
  assert.equal(f.ctx.objectCount, 3, 'no HWPT left behind');
  dev.attach(ioas);
});

test('ALLOW_IOVAS restricts automatic placement only: FIXED maps go anywhere not reserved', () => {
  const f = setup();
  const ioas = f.ioas();
  const va = memAt(f, VA + PAGE, 2n * PAGE);
  assert.equal(allow(f, ioas, [[0x10_0000n, 0x10_1fffn]]), undefined);
  map(f, ioas, va, PAGE, { iova: 0x1000n });
  map(f, ioas, va, PAGE, { iova: 0x10_1000n });
  assert.equal(map(f, ioas, va, PAGE), 0x10_0000n);
  assert.equal(tryMap(f, { ioas_id: ioas, user_va: va, length: PAGE }).errno, 'ENOSPC');
  assert.equal(unmapAll(f, ioas), 3n * PAGE);
});

// ---- IOMMU_IOAS_MAP ----------------------------------------------------------------

test('MAP checks run in the kernel order and a failure maps nothing', () => {
  const f = setup();
  const ioas = f.ioas();
  const va = memAt(f, VA, 4n * PAGE);
  const cases: [string, Record<string, number | bigint>, ErrnoName][] = [
    ['unknown flag', { flags: RW | 8, iova: U64_MAX, ioas_id: 99, length: 0n }, 'EOPNOTSUPP'],
    ['__reserved', { __reserved: 1, flags: 0, iova: U64_MAX, length: 0n }, 'EOPNOTSUPP'],
    ['iova U64_MAX', { iova: U64_MAX, flags: 0, ioas_id: 99 }, 'EOVERFLOW'],
    ['length U64_MAX', { length: U64_MAX, flags: FIXED, ioas_id: 99 }, 'EOVERFLOW'],
    ['no permission', { flags: FIXED, ioas_id: 99, length: 0n }, 'EINVAL'],
    ['unknown IOAS', { flags: W, ioas_id: 99, length: 0n }, 'ENOENT'],
    ['user_va + length wraps', { user_va: U64_MAX - 0xfffn, length: PAGE }, 'EOVERFLOW'],
    ['length 0', { user_va: va, length: 0n }, 'EINVAL'],
    ['length > U64_MAX - PAGE_SIZE', { user_va: 0n, length: U64_MAX - PAGE + 1n }, 'EINVAL'],
  ];
  for (const [what, fields, errno] of cases) {
    assert.equal(
      tryMap(f, { ioas_id: ioas, user_va: va, length: PAGE, ...fields }).errno,
      errno,
      what,
    );
  }
  assert.equal(unmapAll(f, ioas), 0n);
  // the largest length passes the page-set check and fails automatic placement
  assert.equal(
    tryMap(f, { ioas_id: ioas, user_va: 0n, length: U64_MAX - PAGE }).errno,
    'EOVERFLOW',
  );
  // write-only is a valid permission
  assert.equal(tryMap(f, { ioas_id: ioas, flags: W, user_va: va, length: PAGE }).errno, undefined);
});

test('MAP with a domain: length, FIXED iova and sub-page offset must suit the alignment', () => {
  const f = setup();
  const ioas = f.ioas();
  f.intelDevice().attach(ioas);
  const va = memAt(f, VA, 4n * PAGE);
  const cases: [string, Record<string, number | bigint>][] = [
    ['length not a multiple of 4 KiB', { length: 0x1800n }],
    ['FIXED iova not aligned', { flags: RW | FIXED, iova: 0x1_0800n }],
    [
      'FIXED, user_va sub-page offset',
      { flags: RW | FIXED, iova: 0x1_0000n, user_va: va + 0x800n },
    ],
    ['automatic, user_va sub-page offset', { user_va: va + 0x800n }],
  ];
  for (const [what, fields] of cases) {
    assert.equal(
      tryMap(f, { ioas_id: ioas, user_va: va, length: PAGE, ...fields }).errno,
      'EINVAL',
      what,
    );
  }
  assert.equal(unmapAll(f, ioas), 0n);
  assert.equal(f.kernel.memory.pinnedPages(), 0n);
});

test('MAP FIXED: wrap EOVERFLOW, reserved EINVAL (before EEXIST), existing area EEXIST', () => {
  const f = setup();
  const ioas = f.ioas();
  const va = memAt(f, VA, 4n * PAGE);
  // no domain: the whole u64 space, byte granular
  assert.equal(
    tryMap(f, {
      ioas_id: ioas,
      flags: RW | FIXED,
      user_va: va,
      length: 0x2000n,
      iova: U64_MAX - 0xfffn,
    }).errno,
    'EOVERFLOW',
  );
  map(f, ioas, va, 2n * PAGE, { iova: 0x10_0000n });
  for (const iova of [0x10_0000n, 0xf_f001n, 0x10_1fffn]) {
    assert.equal(
      tryMap(f, { ioas_id: ioas, flags: RW | FIXED, user_va: va, length: PAGE, iova }).errno,
      'EEXIST',
    );
  }
  // a 39-bit domain reserves [2^39, U64_MAX]; the MSI window is reserved too
  f.intelDevice({ addressWidth: 39, reserved: [msiRegion] }).attach(ioas);
  for (const iova of [1n << 39n, (1n << 39n) - PAGE, MSI[0], MSI[0] - PAGE]) {
    assert.equal(
      tryMap(f, { ioas_id: ioas, flags: RW | FIXED, user_va: va, length: 2n * PAGE, iova }).errno,
      'EINVAL',
      `iova 0x${iova.toString(16)}`,
    );
  }
  map(f, ioas, va, PAGE, { iova: MSI[0] - 2n * PAGE });
  assert.equal(
    tryMap(f, {
      ioas_id: ioas,
      flags: RW | FIXED,
      user_va: va,
      length: 3n * PAGE,
      iova: MSI[0] - 2n * PAGE,
    }).errno,
    'EINVAL',
    'reserved wins over an existing area',
  );
  assert.equal(unmapAll(f, ioas), 3n * PAGE, 'the existing areas are untouched');
});

test('MAP writes the chosen iova back and the device sees the user pages', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  idev.attach(ioas);
  const va = memAt(f, VA + 0x3000n, 4n * PAGE);
  f.proc.mm.write(va + 0x1ffen, Uint8Array.of(7, 8, 9, 10));
  const r = tryMap(f, { ioas_id: ioas, user_va: va, length: 4n * PAGE, iova: 0xdead_0000n });
  assert.deepEqual(r, { errno: undefined, iova: 0x1000n });
  assert.deepEqual(idev.dev.dmaRead(0x2ffen, 4), Uint8Array.of(7, 8, 9, 10));
  idev.dev.dmaWrite(0x4000n, Uint8Array.of(0x55));
  assert.deepEqual(f.proc.mm.read(va + 0x3000n, 1), Uint8Array.of(0x55), 'live pages, no copy');
  assert.deepEqual(pinCounts(f, va, 4), [1, 1, 1, 1]);
});

test('MAP permissions: read-only maps refuse DMA writes, write-only maps refuse reads', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  idev.attach(ioas);
  const va = memAt(f, VA, 2n * PAGE);
  f.proc.mm.write(va, Uint8Array.of(1));
  const ro = map(f, ioas, va, PAGE, { flags: R });
  const wo = map(f, ioas, va + PAGE, PAGE, { flags: W });
  assert.deepEqual(idev.dev.dmaRead(ro, 1), Uint8Array.of(1));
  assert.throws(() => idev.dev.dmaWrite(ro, Uint8Array.of(9)), DmaFaultError);
  assert.deepEqual(f.proc.mm.read(va, 1), Uint8Array.of(1));
  idev.dev.dmaWrite(wo, Uint8Array.of(2));
  assert.deepEqual(f.proc.mm.read(va + PAGE, 1), Uint8Array.of(2));
  assert.throws(() => idev.dev.dmaRead(wo, 1), DmaFaultError);
});

test('MAP is lazy without a domain: a wild user_va is accepted, the later attach fails', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  const iova = map(f, ioas, 0x7000_0000n, 2n * PAGE);
  assert.equal(f.kernel.memory.pinnedPages(), 0n);
  assert.throws(() => idev.attach(ioas), { code: 'EFAULT' });
  assert.equal(idev.hwpt, undefined);
  assert.equal(idev.dev.group.domain, undefined);
  assert.deepEqual(ranges(f, ioas), { ranges: [[0n, U64_MAX]], align: 1n });
  assert.equal(f.ctx.objectCount, 2, 'no HWPT left');
  assert.equal(f.kernel.memory.pinnedPages(), 0n);
  // half-backed memory also fails, and releases what it pinned
  const va = memAt(f, VA, PAGE);
  assert.equal(unmap(f, ioas, iova, 2n * PAGE).errno, undefined);
  map(f, ioas, va, 2n * PAGE);
  assert.throws(() => idev.attach(ioas), { code: 'EFAULT' });
  assert.equal(f.kernel.memory.pinnedPages(), 0n);
  assert.deepEqual(pinCounts(f, va, 1), [0]);
  // a read-only page mapped WRITEABLE fails at attach too
  unmapAll(f, ioas);
  const ro = memAt(f, VA + GIB, PAGE, false);
  map(f, ioas, ro, PAGE);
  assert.throws(() => idev.attach(ioas), { code: 'EFAULT' });
  unmapAll(f, ioas);
  map(f, ioas, ro, PAGE, { flags: R });
  idev.attach(ioas);
  assert.equal(f.kernel.memory.pinnedPages(), 1n);
});

test('MAP pins at once with a domain: a wild or read-only user_va is EFAULT, nothing mapped', () => {
  const f = setup();
  const ioas = f.ioas();
  f.intelDevice().attach(ioas);
  const va = memAt(f, VA, PAGE);
  const ro = memAt(f, VA + GIB, PAGE, false);
  for (const [what, user_va, length, flags] of [
    ['unmapped', 0x7000_0000n, PAGE, RW],
    ['second page unmapped', va, 2n * PAGE, RW],
    ['read-only page, WRITEABLE', ro, PAGE, RW],
    ['read-only page, write-only', ro, PAGE, W],
  ] as const) {
    assert.equal(tryMap(f, { ioas_id: ioas, flags, user_va, length }).errno, 'EFAULT', what);
  }
  assert.equal(unmapAll(f, ioas), 0n);
  assert.equal(f.kernel.memory.pinnedPages(), 0n);
  assert.equal(tryMap(f, { ioas_id: ioas, flags: R, user_va: ro, length: PAGE }).errno, undefined);
});

/** A process without CAP_IPC_LOCK, RLIMIT_MEMLOCK of `pages` pages, with a domain on `ioas`. */
function limited(f: Fixture, uid: number, pages: bigint, capSysResource = false) {
  const proc = f.kernel.spawn({
    uid,
    capIpcLock: false,
    capSysResource,
    rlimitMemlock: pages * PAGE,
  });
  return client(f.kernel, proc);
}

test('MAP over RLIMIT_MEMLOCK is ENOMEM for a process without CAP_IPC_LOCK; nothing changes', () => {
  const f = setup();
  const u = limited(f, 1000, 4n);
  const ioas = u.ioas();
  u.intelDevice().attach(ioas);
  const va = memAt(u, VA, 8n * PAGE);
  const acct = f.kernel.userAccount(1000);
  assert.equal(tryMap(u, { ioas_id: ioas, user_va: va, length: 5n * PAGE }).errno, 'ENOMEM');
  assert.equal(unmapAll(u, ioas), 0n);
  assert.equal(acct.lockedVm, 0n);
  assert.equal(f.kernel.memory.pinnedPages(), 0n);
  map(u, ioas, va, 4n * PAGE);
  assert.equal(acct.lockedVm, 4n);
  assert.equal(u.proc.counters.pinnedVm, 4n);
  assert.equal(tryMap(u, { ioas_id: ioas, user_va: va + 4n * PAGE, length: PAGE }).errno, 'ENOMEM');
  // the same pages again (another page set) are charged again
  assert.equal(tryMap(u, { ioas_id: ioas, user_va: va, length: PAGE }).errno, 'ENOMEM');
  assert.equal(unmapAll(u, ioas), 4n * PAGE);
  assert.equal(acct.lockedVm, 0n);
  assert.equal(u.proc.counters.pinnedVm, 0n);
  // root (CAP_IPC_LOCK) is never charged
  const ioas0 = f.ioas();
  f.intelDevice().attach(ioas0);
  map(f, ioas0, memAt(f, VA, 64n * PAGE), 64n * PAGE);
  assert.equal(f.kernel.userAccount(0).lockedVm, 0n);
});

test('RLIMIT_MEMLOCK is checked when a lazy map gets pinned by a later attach', () => {
  const f = setup();
  const u = limited(f, 1000, 4n);
  const ioas = u.ioas();
  const idev = u.intelDevice();
  map(u, ioas, memAt(u, VA, 8n * PAGE), 8n * PAGE);
  assert.throws(() => idev.attach(ioas), { code: 'ENOMEM' });
  assert.equal(f.kernel.userAccount(1000).lockedVm, 0n);
  assert.equal(f.kernel.memory.pinnedPages(), 0n);
});

test('per-user accounting (default) is shared by every process of the uid', () => {
  const f = setup();
  const a = limited(f, 1000, 4n);
  const b = limited(f, 1000, 4n);
  const other = limited(f, 2000, 4n);
  for (const c of [a, b, other]) {
    const ioas = c.ioas();
    c.intelDevice().attach(ioas);
  }
  map(a, 1, memAt(a, VA, 3n * PAGE), 3n * PAGE);
  const vb = memAt(b, VA, 2n * PAGE);
  assert.equal(tryMap(b, { ioas_id: 1, user_va: vb, length: 2n * PAGE }).errno, 'ENOMEM');
  map(b, 1, vb, PAGE);
  assert.equal(f.kernel.userAccount(1000).lockedVm, 4n);
  map(other, 1, memAt(other, VA, 4n * PAGE), 4n * PAGE);
  assert.equal(f.kernel.userAccount(2000).lockedVm, 4n);
  assert.deepEqual([a.proc.counters.pinnedVm, b.proc.counters.pinnedVm], [3n, 1n]);
});

test('per-mm accounting (RLIMIT_MODE 1) charges the mapping process, not the user', () => {
  const f = setup();
  const a = limited(f, 1000, 4n);
  const b = limited(f, 1000, 4n, true);
  const set = b.call('IOMMU_OPTION', {
    option_id: IOMMU_OPTION_ID.RLIMIT_MODE,
    op: IOMMU_OPTION_OP.SET,
    val64: 1n,
  });
  assert.equal(set.errno, undefined);
  for (const c of [a, b]) {
    const ioas = c.ioas();
    c.intelDevice().attach(ioas);
  }
  map(a, 1, memAt(a, VA, 3n * PAGE), 3n * PAGE);
  const vb = memAt(b, VA, 8n * PAGE);
  map(b, 1, vb, 4n * PAGE);
  assert.equal(f.kernel.userAccount(1000).lockedVm, 3n, 'only a');
  assert.equal(b.proc.counters.lockedVm, 4n);
  assert.equal(tryMap(b, { ioas_id: 1, user_va: vb + 4n * PAGE, length: PAGE }).errno, 'ENOMEM');
  assert.equal(unmapAll(b, 1), 4n * PAGE);
  assert.equal(b.proc.counters.lockedVm, 0n);
});

// ---- automatic IOVA placement (§3.5) ---------------------------------------------------

test('placement: lowest first fit from PAGE_SIZE, alignment min(pow2(length), VA low bit)', () => {
  const f = setup();
  const ioas = f.ioas();
  memAt(f, VA, 8n * GIB);
  const at = (va: bigint, length: bigint) => map(f, ioas, va, length);
  assert.equal(at(VA + PAGE, PAGE), 0x1000n, 'never IOVA 0');
  assert.equal(at(VA + PAGE, PAGE), 0x2000n);
  assert.equal(at(VA, 0x3000n), 0x4000n, 'pow2(0x3000) = 0x4000');
  assert.equal(at(VA + 0x4000n, 0x10000n), 0x8000n, 'VA low bit 0x4000');
  assert.equal(at(VA, 4n * SZ_2M), SZ_2M, 'capped at 2 MiB');
  assert.equal(at(VA, GIB), 5n * SZ_2M, 'a 1 GiB map is also only 2 MiB aligned');
  assert.equal(at(VA + PAGE, PAGE), 0x3000n, 'the first hole that fits');
  assert.equal(unmap(f, ioas, 0x1000n, PAGE).errno, undefined);
  assert.equal(at(VA + PAGE, PAGE), 0x1000n, 'a freed hole is reused');
});

test('placement keeps the sub-page offset (and more low bits) of the VA', () => {
  const f = setup();
  const ioas = f.ioas();
  memAt(f, VA, 4n * PAGE);
  assert.equal(map(f, ioas, VA + 0x123n, 0x10n), 0x1123n, 'alignment 1, offset 0x123');
  // alignment 0x40: the span starts at ALIGN(0x1000, 0x40) | 0x840
  assert.equal(map(f, ioas, VA + 0x840n, 0x1c0n), 0x1840n);
  // the next hole starts at 0x1a00: ALIGN(0x1a00, 0x40) | 0x840 = 0x1a40
  assert.equal(map(f, ioas, VA + 0x840n, 0x40n), 0x1a40n);
  // below 0x1123 a hole of 0x113 bytes still fits 0x10 bytes at offset 0x010
  assert.equal(map(f, ioas, VA + 0x1010n, 0x10n), 0x1010n);
});

test('placement of address 0 uses roundup_pow_of_two(length)', () => {
  const f = setup();
  const ioas = f.ioas();
  assert.equal(map(f, ioas, 0n, 0x3000n), 0x4000n, 'user_va 0 is accepted lazily');
  assert.equal(map(f, ioas, 0n, 0x10_0001n), 0x20_0000n);
});

test('placement alignment cap follows the personality', () => {
  for (const [cap, expected] of [
    [undefined, GIB],
    [PAGE, PAGE],
    [SZ_2M, SZ_2M],
  ] as const) {
    const f = setup({ personality: { maxAutoAlignment: cap } });
    const ioas = f.ioas();
    assert.equal(map(f, ioas, memAt(f, GIB, GIB), GIB), expected, `cap ${cap}`);
  }
});

test('placement: alignment below the IOAS alignment is EINVAL', () => {
  const f = setup();
  const ioas = f.ioas();
  f.intelDevice().attach(ioas);
  const va = memAt(f, VA, 4n * PAGE);
  assert.equal(tryMap(f, { ioas_id: ioas, user_va: va + 0x800n, length: PAGE }).errno, 'EINVAL');
  assert.equal(tryMap(f, { ioas_id: ioas, user_va: va, length: PAGE }).iova, 0x1000n);
});

test('placement: ENOSPC when no allowed hole fits; the first and last page are never used', () => {
  const f = setup();
  const ioas = f.ioas();
  const va = memAt(f, VA + PAGE, 4n * PAGE);
  const tryAt = (length: bigint) => tryMap(f, { ioas_id: ioas, user_va: va, length });
  assert.equal(allow(f, ioas, [[0n, 0xfffn]]), undefined);
  assert.equal(tryAt(PAGE).errno, 'ENOSPC', 'below PAGE_SIZE only');
  assert.equal(allow(f, ioas, [[0n, 0x2fffn]]), undefined);
  assert.equal(tryAt(0x3000n).errno, 'ENOSPC');
  assert.equal(tryAt(0x2000n).iova, 0x1000n);
  assert.equal(tryAt(PAGE).errno, 'ENOSPC');
  const top = U64_MAX - 0x3fffn;
  assert.equal(allow(f, ioas, [[top, U64_MAX]]), undefined);
  assert.equal(tryAt(0x3000n).iova, top, 'up to U64_MAX - PAGE_SIZE');
  assert.equal(tryAt(PAGE).errno, 'ENOSPC', 'the last page is never used');
  assert.equal(unmapAll(f, ioas), 0x5000n);
});

test('placement: length >= 2^63 is EOVERFLOW; FIXED has no such limit', () => {
  const f = setup();
  const ioas = f.ioas();
  const big = 1n << 63n;
  assert.equal(tryMap(f, { ioas_id: ioas, user_va: 0x1_0000n, length: big }).errno, 'EOVERFLOW');
  assert.equal(
    tryMap(f, { ioas_id: ioas, flags: RW | FIXED, user_va: 0x1_0000n, length: big, iova: PAGE })
      .errno,
    undefined,
  );
  assert.equal(unmapAll(f, ioas), big);
});

test('placement: a candidate must start before the hole end (one-byte holes are never used)', () => {
  const f = setup();
  const ioas = f.ioas();
  const va = memAt(f, VA + PAGE, PAGE);
  assert.equal(allow(f, ioas, [[0x1000n, 0x2fffn]]), undefined);
  map(f, ioas, va, 0x1fffn, { iova: 0x1000n });
  assert.equal(tryMap(f, { ioas_id: ioas, user_va: va, length: 1n }).errno, 'ENOSPC');
  assert.equal(unmap(f, ioas, 0x1000n, 0x1fffn).errno, undefined);
  map(f, ioas, va, 0x1ffen, { iova: 0x1000n });
  assert.equal(map(f, ioas, va, 1n), 0x2ffen, 'a two-byte hole takes one byte');
});

test('placement never wraps to IOVA 0 when aligning the start of a span overflows', () => {
  const f = setup();
  const ioas = f.ioas();
  memAt(f, VA, 0x10_2000n);
  assert.equal(allow(f, ioas, [[U64_MAX - 0x17_ffffn, U64_MAX]]), undefined);
  // 2 MiB alignment: ALIGN(2^64 - 0x180000, 2 MiB) overflows, so nothing fits
  const r = tryMap(f, { ioas_id: ioas, user_va: VA, length: 0x10_0001n });
  assert.equal(r.errno, 'ENOSPC');
  assert.equal(unmapAll(f, ioas), 0n);
});

// ---- IOMMU_IOAS_MAP_FILE -----------------------------------------------------------

/** A memfd of `size` bytes in `f`'s process, its MemObject and a shared mapping of it. */
function memfd(f: Fixture, size: bigint) {
  const fd = f.proc.memfd(size);
  const object = (f.proc.fds.get(fd)!.ops as unknown as { object: MemObject }).object;
  const va = f.proc.mm.mmap({ length: size, prot: { read: true, write: true }, object });
  return { fd, va, object };
}

function mapFile(f: Fixture, fields: Record<string, number | bigint>) {
  const r = f.call('IOMMU_IOAS_MAP_FILE', { flags: RW, ...fields });
  return { errno: r.errno, iova: r.out.iova as bigint };
}

test('MAP_FILE: checks in order, EBADF for a bad fd', () => {
  const f = setup();
  const ioas = f.ioas();
  const { fd } = memfd(f, 0x4000n);
  const cases: [string, Record<string, number | bigint>, ErrnoName][] = [
    ['unknown flag', { flags: RW | 8, fd: 99 }, 'EOPNOTSUPP'],
    ['length U64_MAX', { length: U64_MAX, fd: 99 }, 'EOVERFLOW'],
    ['no permission', { flags: 0, fd: 99 }, 'EINVAL'],
    ['IOAS before fd', { ioas_id: 99, fd: 99 }, 'ENOENT'],
    ['closed fd', { fd: 99 }, 'EBADF'],
    ['negative fd', { fd: -1 }, 'EBADF'],
    ['length 0', { length: 0n }, 'EINVAL'],
    ['start + length - 1 wraps', { start: U64_MAX - 0xfffn, length: 0x2000n }, 'EOVERFLOW'],
  ];
  for (const [what, fields, errno] of cases) {
    assert.equal(
      mapFile(f, { ioas_id: ioas, fd, start: 0n, length: PAGE, ...fields }).errno,
      errno,
      what,
    );
  }
  assert.equal(unmapAll(f, ioas), 0n);
  assert.equal(mapFile(f, { ioas_id: ioas, fd, start: 0x3000n, length: PAGE }).errno, undefined);
});

/**
 * Files memfd_pin_folios() refuses (Linux 7.2, asked with the selftest's mock
 * domain and ACCESS_PAGES): IOAS_MAP_FILE takes them while nothing pins
 * pages; every pin — the domain fill of a MAP, a domain's attach, an
 * access — is EINVAL, and leaves nothing pinned or mapped behind.
 */
test('MAP_FILE of an unpinnable range: 0 with no domain, EINVAL when its pages are pinned', () => {
  const f = st();
  const m = memfd(f, 0x4000n);
  const cases: [string, Record<string, number | bigint>][] = [
    ['/dev/iommu itself', { fd: f.fd, start: 0n, length: PAGE }],
    ['a memfd range past its size', { fd: m.fd, start: 0x3000n, length: 0x2000n }],
    ['a memfd range at its size', { fd: m.fd, start: 0x4000n, length: PAGE }],
    ['start + length = 2^64', { fd: m.fd, start: U64_MAX - 0xfffn, length: PAGE }],
  ];
  for (const [what, fields] of cases) {
    const bare = f.ioas();
    const a = mapFile(f, { ioas_id: bare, ...fields });
    assert.equal(a.errno, undefined, `${what}: no domain`);
    const idev = f.intelDevice();
    assert.throws(() => idev.attach(bare), { code: 'EINVAL' }, `${what}: attach after the map`);
    assert.deepEqual(pinCounts(f, m.va, 4), [0, 0, 0, 0], `${what}: nothing left pinned`);
    const access = ok(tc(f, 'CREATE_ACCESS', { id: bare, flags: 1 })).out_access_fd as number;
    const pin = tc(f, 'ACCESS_PAGES', {
      id: access,
      iova: a.iova,
      length: fields.length,
      uptr: f.mem(0x2000n),
    });
    assert.equal(pin.errno, 'EINVAL', `${what}: access pin`);
    assert.equal(unmapAll(f, bare), fields.length, `${what}: the area is still there`);

    const attached = f.ioas();
    idev.attach(attached);
    assert.equal(
      mapFile(f, { ioas_id: attached, ...fields }).errno,
      'EINVAL',
      `${what}: with a domain`,
    );
    assert.equal(unmapAll(f, attached), 0n, `${what}: nothing mapped`);
    assert.deepEqual(pinCounts(f, m.va, 4), [0, 0, 0, 0]);
  }
});

test("MAP_FILE past a memfd's size: pins within the size work; growing the file lets the rest pin", () => {
  const f = st();
  const m = memfd(f, 0x1000n);
  const ioas = f.ioas();
  const { iova } = mapFile(f, { ioas_id: ioas, fd: m.fd, start: 0n, length: 0x2000n });
  const access = ok(tc(f, 'CREATE_ACCESS', { id: ioas, flags: 1 })).out_access_fd as number;
  const first = tc(f, 'ACCESS_PAGES', { id: access, iova, length: PAGE, uptr: m.va });
  assert.equal(first.errno, undefined, 'the first page is inside the file');
  const idev = f.intelDevice();
  assert.throws(() => idev.attach(ioas), { code: 'EINVAL' });
  m.object.resize(0x2000n);
  idev.attach(ioas);
  assert.deepEqual(idev.dev.dmaRead(iova + PAGE, 1), Uint8Array.of(0), 'the grown page is mapped');
});

test('MAP_FILE maps the file pages; placement uses the file offset', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  idev.attach(ioas);
  const { fd, va } = memfd(f, 0x8000n);
  f.proc.mm.write(va + 0x1000n, Uint8Array.of(0xf1));
  f.proc.mm.write(va + 0x3000n, Uint8Array.of(0xf3));
  const a = mapFile(f, { ioas_id: ioas, fd, start: 0x1000n, length: 0x3000n });
  assert.deepEqual(a, { errno: undefined, iova: 0x1000n });
  const b = mapFile(f, { ioas_id: ioas, fd, start: 0n, length: 0x3000n });
  assert.deepEqual(b, { errno: undefined, iova: 0x4000n }, 'offset 0: pow2(length) alignment');
  assert.deepEqual(idev.dev.dmaRead(0x1000n, 1), Uint8Array.of(0xf1));
  assert.deepEqual(idev.dev.dmaRead(0x3000n, 1), Uint8Array.of(0xf3));
  assert.deepEqual(idev.dev.dmaRead(0x5000n, 1), Uint8Array.of(0xf1));
  idev.dev.dmaWrite(0x6000n, Uint8Array.of(0x66));
  assert.deepEqual(f.proc.mm.read(va + 0x2000n, 1), Uint8Array.of(0x66));
  assert.equal(f.proc.close(fd), 0);
  assert.deepEqual(idev.dev.dmaRead(0x3000n, 1), Uint8Array.of(0xf3), 'the map holds the pages');
});

// ---- IOMMU_IOAS_COPY -------------------------------------------------------------------

test('COPY checks run in the kernel order', () => {
  const f = setup();
  const src = f.ioas();
  const dst = f.ioas();
  map(f, src, memAt(f, VA, 4n * PAGE), 2n * PAGE, { iova: 0x10_0000n });
  const base = { dst_ioas_id: dst, src_ioas_id: src, length: PAGE, src_iova: 0x10_0000n };
  const cases: [string, Record<string, number | bigint>, ErrnoName][] = [
    ['unknown flag', { flags: RW | 8, length: U64_MAX, src_ioas_id: 99 }, 'EOPNOTSUPP'],
    ['length U64_MAX', { length: U64_MAX, flags: 0 }, 'EOVERFLOW'],
    ['src_iova U64_MAX', { src_iova: U64_MAX, flags: 0 }, 'EOVERFLOW'],
    ['dst_iova U64_MAX without FIXED', { dst_iova: U64_MAX, flags: 0 }, 'EOVERFLOW'],
    ['no permission', { flags: FIXED, src_ioas_id: 99 }, 'EINVAL'],
    ['unknown source IOAS', { src_ioas_id: 99, length: 0n }, 'ENOENT'],
    ['length 0', { length: 0n, dst_ioas_id: 99 }, 'EINVAL'],
    ['source range wraps', { src_iova: U64_MAX - 1n, length: 3n, dst_ioas_id: 99 }, 'EOVERFLOW'],
    ['source not mapped', { src_iova: 0x20_0000n, dst_ioas_id: 99 }, 'ENOENT'],
    ['unknown destination IOAS', { dst_ioas_id: 99 }, 'ENOENT'],
    ['destination is a device', { dst_ioas_id: f.intelDevice().id }, 'ENOENT'],
  ];
  for (const [what, fields, errno] of cases) {
    assert.equal(copy(f, { ...base, ...fields }).errno, errno, what);
  }
  assert.equal(unmapAll(f, dst), 0n);
});

test('COPY takes any sub-range of contiguous areas; a gap anywhere is ENOENT', () => {
  const f = setup();
  const src = f.ioas();
  const dst = f.ioas();
  const idev = f.intelDevice();
  idev.attach(dst);
  const va1 = memAt(f, VA, 4n * PAGE);
  const va2 = memAt(f, VA + GIB, 4n * PAGE);
  f.proc.mm.write(va1 + 0x2000n, Uint8Array.of(0x12));
  f.proc.mm.write(va2 + 0x1000n, Uint8Array.of(0x21));
  map(f, src, va1, 4n * PAGE, { iova: 0x10_0000n });
  map(f, src, va2, 4n * PAGE, { iova: 0x10_4000n });
  map(f, src, va1, PAGE, { iova: 0x10_9000n }); // gap at 0x108000
  const fixed = (src_iova: bigint, length: bigint, dst_iova: bigint) =>
    copy(f, { flags: RW | FIXED, dst_ioas_id: dst, src_ioas_id: src, src_iova, length, dst_iova });
  assert.equal(fixed(0x10_2000n, 0x4000n, 0x40_0000n).errno, undefined, 'across two areas');
  assert.deepEqual(idev.dev.dmaRead(0x40_0000n, 1), Uint8Array.of(0x12));
  assert.deepEqual(idev.dev.dmaRead(0x40_3000n, 1), Uint8Array.of(0x21));
  // each source area became its own area in the destination
  assert.deepEqual(unmap(f, dst, 0x40_0000n, 0x2000n), { errno: undefined, length: 0x2000n });
  assert.equal(fixed(0x10_6000n, 0x3000n, 0x50_0000n).errno, 'ENOENT', 'runs into the gap');
  assert.equal(fixed(0x10_8000n, PAGE, 0x50_0000n).errno, 'ENOENT', 'starts in the gap');
  assert.equal(fixed(0xf_f000n, 0x2000n, 0x50_0000n).errno, 'ENOENT', 'starts before');
  assert.equal(fixed(0x10_9000n, 0x1001n, 0x50_0000n).errno, 'ENOENT', 'ends after');
  assert.equal(unmapAll(f, dst), 0x2000n, 'failed copies left nothing');
});

test('COPY destination follows MAP rules: EEXIST, reserved EINVAL, alignment EINVAL, ENOSPC', () => {
  const f = setup();
  const src = f.ioas();
  const dst = f.ioas();
  const va = memAt(f, VA, 4n * PAGE);
  map(f, src, va, 4n * PAGE, { iova: 0x10_0000n });
  map(f, src, va + 0x800n, PAGE, { iova: 0x20_0800n }); // sub-page offset 0x800
  map(f, src, va, 0x800n, { iova: 0x30_0000n }); // half a page
  f.intelDevice({ addressWidth: 39 }).attach(dst);
  map(f, dst, va, PAGE, { iova: 0x1000n });
  const c = (fields: Record<string, number | bigint>) =>
    copy(f, { dst_ioas_id: dst, src_ioas_id: src, src_iova: 0x10_0000n, length: PAGE, ...fields })
      .errno;
  assert.equal(c({ flags: RW | FIXED, dst_iova: 0x1000n }), 'EEXIST');
  assert.equal(c({ flags: RW | FIXED, dst_iova: 1n << 39n }), 'EINVAL', 'reserved');
  assert.equal(c({ flags: RW | FIXED, dst_iova: 0x2800n }), 'EINVAL', 'iova alignment');
  assert.equal(
    c({ flags: RW | FIXED, src_iova: 0x30_0000n, length: 0x800n, dst_iova: 0x2000n }),
    'EINVAL',
  );
  assert.equal(
    c({ flags: RW | FIXED, src_iova: 0x20_0800n, dst_iova: 0x2000n }),
    'EINVAL',
    'sub-page offset',
  );
  assert.equal(c({ src_iova: 0x20_0800n }), 'EINVAL', 'automatic: alignment 0x800 < 4 KiB');
  assert.equal(allow(f, dst, [[0x8000n, 0x8fffn]]), undefined);
  assert.equal(c({ length: 2n * PAGE }), 'ENOSPC');
  assert.equal(
    copy(f, { dst_ioas_id: dst, src_ioas_id: src, src_iova: 0x10_1000n, length: PAGE }).dst,
    0x8000n,
  );
  assert.equal(unmapAll(f, dst), 2n * PAGE);
});

test('COPY places automatically from the source VA of the first byte copied', () => {
  const f = setup();
  const src = f.ioas();
  const dst = f.ioas();
  const va = memAt(f, VA, 2n * SZ_2M);
  map(f, src, va, 2n * SZ_2M, { iova: 0x1234_5000n });
  map(f, dst, va, PAGE, { iova: 0x1000n });
  const r = copy(f, { dst_ioas_id: dst, src_ioas_id: src, src_iova: 0x1234_5000n, length: SZ_2M });
  assert.deepEqual(r, { errno: undefined, dst: SZ_2M });
  const r2 = copy(f, {
    dst_ioas_id: dst,
    src_ioas_id: src,
    src_iova: 0x1234_6000n,
    length: 0x4000n,
  });
  assert.deepEqual(r2, { errno: undefined, dst: 0x2000n }, 'VA low bit 0x1000');
});

test('COPY requesting WRITEABLE from a read-only map is EPERM', () => {
  const f = setup();
  const src = f.ioas();
  const dst = f.ioas();
  const va = memAt(f, VA, 2n * PAGE);
  map(f, src, va, PAGE, { iova: 0x1000n, flags: R });
  map(f, src, va + PAGE, PAGE, { iova: 0x2000n, flags: W });
  const c = (flags: number, src_iova: bigint, length = PAGE) =>
    copy(f, { flags, dst_ioas_id: dst, src_ioas_id: src, src_iova, length }).errno;
  assert.equal(c(RW, 0x1000n), 'EPERM');
  assert.equal(c(W, 0x1000n), 'EPERM');
  assert.equal(c(RW, 0x1000n, 2n * PAGE), 'EPERM');
  assert.equal(unmapAll(f, dst), 0n);
  assert.equal(c(R, 0x1000n), undefined);
  assert.equal(c(RW, 0x2000n), undefined, 'a write-only map has writable pages');
  assert.equal(c(R, 0x1000n, 2n * PAGE), undefined);
  assert.equal(unmapAll(f, dst), 4n * PAGE);
});

test('COPY within one IOAS shares the pages', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  idev.attach(ioas);
  const va = memAt(f, VA, 2n * PAGE);
  map(f, ioas, va, 2n * PAGE, { iova: 0x10_0000n });
  const r = copy(f, {
    flags: RW | FIXED,
    dst_ioas_id: ioas,
    src_ioas_id: ioas,
    src_iova: 0x10_1000n,
    length: PAGE,
    dst_iova: 0x20_0000n,
  });
  assert.equal(r.errno, undefined);
  idev.dev.dmaWrite(0x20_0000n, Uint8Array.of(0x77));
  assert.deepEqual(idev.dev.dmaRead(0x10_1000n, 1), Uint8Array.of(0x77));
  assert.deepEqual(pinCounts(f, va, 2), [1, 1]);
});

test('COPY between two IOASes with domains pins and charges every page once', () => {
  const f = setup();
  const u = limited(f, 1000, 4n);
  const a = u.ioas();
  const b = u.ioas();
  u.intelDevice().attach(a);
  u.intelDevice().attach(b);
  const va = memAt(u, VA, 4n * PAGE);
  map(u, a, va, 4n * PAGE, { iova: 0x10_0000n });
  assert.equal(
    copy(u, { dst_ioas_id: b, src_ioas_id: a, src_iova: 0x10_0000n, length: 4n * PAGE }).errno,
    undefined,
  );
  assert.deepEqual(pinCounts(u, va, 4), [1, 1, 1, 1]);
  assert.equal(f.kernel.memory.pinnedPages(), 4n);
  assert.equal(f.kernel.userAccount(1000).lockedVm, 4n, 'charged once, under the limit');
  assert.equal(unmapAll(u, a), 4n * PAGE);
  assert.deepEqual(pinCounts(u, va, 4), [1, 1, 1, 1], 'still used by b');
  assert.equal(unmapAll(u, b), 4n * PAGE);
  assert.deepEqual(pinCounts(u, va, 4), [0, 0, 0, 0]);
  assert.equal(f.kernel.userAccount(1000).lockedVm, 0n);
});

// ---- IOMMU_IOAS_UNMAP ----------------------------------------------------------------

test('UNMAP: the IOAS is looked up first; unmap-all of an empty IOAS is success with length 0', () => {
  const f = setup();
  const ioas = f.ioas();
  assert.equal(unmap(f, 99, 0n, U64_MAX).errno, 'ENOENT');
  assert.equal(unmap(f, 99, 0n, 0n).errno, 'ENOENT');
  assert.equal(unmap(f, f.intelDevice().id, 0n, U64_MAX).errno, 'ENOENT');
  assert.deepEqual(unmap(f, ioas, 0n, U64_MAX), { errno: undefined, length: 0n });
});

test('UNMAP: EOVERFLOW for U64_MAX fields or a wrapping range, EINVAL for length 0; length kept', () => {
  const f = setup();
  const ioas = f.ioas();
  map(f, ioas, memAt(f, VA, PAGE), PAGE, { iova: U64_MAX - PAGE });
  for (const [iova, length, errno] of [
    [U64_MAX, 1n, 'EOVERFLOW'],
    [1n, U64_MAX, 'EOVERFLOW'],
    [U64_MAX - 1n, 3n, 'EOVERFLOW'],
    [0n, 0n, 'EINVAL'],
    [0x1000n, 0n, 'EINVAL'],
  ] as const) {
    assert.deepEqual(unmap(f, ioas, iova, length), { errno, length }, `${iova} + ${length}`);
  }
  assert.deepEqual(
    unmap(f, ioas, U64_MAX - PAGE, PAGE + 1n),
    { errno: undefined, length: PAGE },
    'up to U64_MAX',
  );
});

test('UNMAP of an explicit range holding no area is ENOENT (success under unmapEmpty)', () => {
  const f = setup();
  const ioas = f.ioas();
  map(f, ioas, memAt(f, VA, PAGE), PAGE, { iova: 0x10_0000n });
  assert.deepEqual(unmap(f, ioas, 0x20_0000n, PAGE), { errno: 'ENOENT', length: PAGE });
  assert.deepEqual(unmap(f, ioas, 0n, 0x10_0000n), { errno: 'ENOENT', length: 0x10_0000n });
  const g = setup({ personality: { unmapEmpty: 'success' } });
  const gi = g.ioas();
  assert.deepEqual(unmap(g, gi, 0x20_0000n, PAGE), { errno: undefined, length: 0n });
  map(g, gi, memAt(g, VA, PAGE), PAGE, { iova: 0x10_0000n });
  assert.deepEqual(
    unmap(g, gi, 0x10_0800n, PAGE),
    { errno: 'ENOENT', length: PAGE },
    'a cut is still ENOENT',
  );
});

test('UNMAP is not atomic: earlier areas go before an area cut at the end fails the call', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  idev.attach(ioas);
  const va = memAt(f, VA, 4n * PAGE);
  map(f, ioas, va, PAGE, { iova: 0x10_0000n });
  map(f, ioas, va + PAGE, PAGE, { iova: 0x20_0000n });
  map(f, ioas, va + 2n * PAGE, 2n * PAGE, { iova: 0x30_0000n });
  assert.deepEqual(pinCounts(f, va, 4), [1, 1, 1, 1]);
  // cut at the start: fails before anything is removed
  assert.deepEqual(unmap(f, ioas, 0x10_0800n, 0x30_0000n), { errno: 'ENOENT', length: 0x30_0000n });
  assert.deepEqual(pinCounts(f, va, 4), [1, 1, 1, 1]);
  // cut at the end: the first two areas are gone, the length is not written back
  assert.deepEqual(unmap(f, ioas, 0x10_0000n, 0x20_1000n), { errno: 'ENOENT', length: 0x20_1000n });
  assert.deepEqual(pinCounts(f, va, 4), [0, 0, 1, 1]);
  assert.throws(() => idev.dev.dmaRead(0x10_0000n, 1), DmaFaultError);
  assert.throws(() => idev.dev.dmaRead(0x20_0000n, 1), DmaFaultError);
  assert.equal(idev.dev.dmaRead(0x30_1000n, 1).length, 1);
  assert.deepEqual(unmap(f, ioas, 0n, U64_MAX), { errno: undefined, length: 2n * PAGE });
});

test('UNMAP does not check alignment and returns the bytes of the areas it removed', () => {
  const f = setup();
  const ioas = f.ioas();
  f.intelDevice().attach(ioas);
  const va = memAt(f, VA, 4n * PAGE);
  map(f, ioas, va, PAGE, { iova: 0x1000n });
  map(f, ioas, va, 2n * PAGE, { iova: 0x3000n });
  assert.deepEqual(unmap(f, ioas, 0xfffn, 0x4002n), { errno: undefined, length: 3n * PAGE });
  assert.equal(f.kernel.memory.pinnedPages(), 0n);
});

test('IOAS_MAP asks for CAP_IPC_LOCK only once past its checks, as the call sees it', () => {
  const kernel = new Kernel();
  let asked = 0;
  let ipcLock = true;
  const creds = {
    uid: 1000,
    capSysResource: false,
    rlimitMemlock: 1n << 30n,
    get capIpcLock() {
      asked++;
      return ipcLock;
    },
  };
  const f = client(kernel, kernel.adopt(4242, new SimMm(kernel.memory), creds, new Map()));
  const ioas = f.ioas();
  mockDomain(f, ioas);
  const va = f.mem(4n * PAGE);
  const mapAt = (offset: bigint, length: bigint) =>
    f.call('IOMMU_IOAS_MAP', { ioas_id: ioas, flags: RW, user_va: va + offset, length }).errno;
  assert.equal(mapAt(0n, PAGE + 1n), 'EINVAL', 'a length off the IOAS alignment');
  assert.equal(asked, 0, 'refused before any page is pinned: no credentials read');
  assert.equal(mapAt(0n, PAGE), undefined);
  assert.ok(asked > 0);
  assert.equal(f.proc.counters.pinnedVm, 0n, 'CAP_IPC_LOCK held: nothing charged');
  ipcLock = false;
  assert.equal(mapAt(PAGE, 2n * PAGE), undefined);
  assert.equal(f.proc.counters.pinnedVm, 2n, 'dropped before this call: its pages are charged');
});
