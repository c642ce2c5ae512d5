/**
 * IOMMU_OPTION (facts sheet §3.8: RLIMIT_MODE, HUGE_PAGES) and
 * IOMMU_VFIO_IOAS (§3.9).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  IOMMU_OPTION_ID,
  IOMMU_OPTION_OP,
  IOMMU_VFIO_IOAS_OP,
  IommuOption,
} from '../../src/abi/iommufd.ts';
import { client, type Fixture, setup } from '../support.ts';
import {
  encode,
  FIXED,
  ioctlAt,
  map,
  memAt,
  PAGE,
  RW,
  ranges,
  roBoundary,
  U64_MAX,
  unmapAll,
} from './util.ts';

const { RLIMIT_MODE, HUGE_PAGES } = IOMMU_OPTION_ID;
const { GET, SET } = IOMMU_OPTION_OP;
const VA = 0x4000_0000n;
const SENTINEL = 0x5a5a_5a5a_5a5a_5a5an;

function option(f: Fixture, fields: Record<string, number | bigint>) {
  const r = f.call('IOMMU_OPTION', { val64: SENTINEL, ...fields });
  return { errno: r.errno, val64: r.out.val64 as bigint };
}

function hugePages(f: Fixture, ioas: number): bigint {
  const r = option(f, { option_id: HUGE_PAGES, op: GET, object_id: ioas });
  assert.equal(r.errno, undefined);
  return r.val64;
}

// ---- generic --------------------------------------------------------------------

test('OPTION: __reserved, unknown option_id or op are EOPNOTSUPP and val64 is untouched', () => {
  const f = setup();
  const ioas = f.ioas();
  for (const [what, fields, errno] of [
    ['__reserved', { option_id: RLIMIT_MODE, op: GET, __reserved: 1 }, 'EOPNOTSUPP'],
    ['option 2', { option_id: 2, op: GET }, 'EOPNOTSUPP'],
    ['option 0xffffffff', { option_id: 0xffff_ffff, op: GET, object_id: ioas }, 'EOPNOTSUPP'],
    ['RLIMIT_MODE op 2', { option_id: RLIMIT_MODE, op: 2 }, 'EOPNOTSUPP'],
    ['HUGE_PAGES op 2', { option_id: HUGE_PAGES, op: 2, object_id: ioas }, 'EOPNOTSUPP'],
    ['HUGE_PAGES op 2, no IOAS: lookup first', { option_id: HUGE_PAGES, op: 2 }, 'ENOENT'],
  ] as const) {
    assert.deepEqual(option(f, fields), { errno, val64: SENTINEL }, what);
  }
});

test('OPTION writes back only val64 (8 bytes at offset 16)', () => {
  const f = setup();
  const ioas = f.ioas();
  // bytes 0..15 on a read-only page, val64 on the writable page after it
  const base = f.mem(2n * PAGE);
  const at = base + PAGE - 16n;
  f.proc.mm.write(at, encode('IOMMU_OPTION', { option_id: HUGE_PAGES, op: GET, object_id: ioas }));
  f.proc.mm.mprotect(base, PAGE, { read: true, write: false });
  assert.equal(ioctlAt(f, 'IOMMU_OPTION', at), undefined);
  assert.equal(IommuOption.decode(f.proc.mm.read(at, 24)).val64, 1n);
  // val64 not writable: EFAULT, but a SET has already taken effect
  const ro = roBoundary(
    f,
    encode('IOMMU_OPTION', { option_id: HUGE_PAGES, op: SET, object_id: ioas }),
  );
  assert.equal(ioctlAt(f, 'IOMMU_OPTION', ro), 'EFAULT');
  assert.equal(hugePages(f, ioas), 0n);
});

// ---- RLIMIT_MODE --------------------------------------------------------------------

test('RLIMIT_MODE: object_id must be 0; GET is 0 (per-user) for /dev/iommu', () => {
  const f = setup();
  assert.deepEqual(option(f, { option_id: RLIMIT_MODE, op: GET, object_id: 1 }), {
    errno: 'EOPNOTSUPP',
    val64: SENTINEL,
  });
  assert.deepEqual(option(f, { option_id: RLIMIT_MODE, op: GET }), { errno: undefined, val64: 0n });
});

test('RLIMIT_MODE SET: EPERM without CAP_SYS_RESOURCE, then EBUSY with objects, then EINVAL', () => {
  const f = setup();
  const u = client(f.kernel, f.kernel.spawn({ uid: 1000, capSysResource: false }));
  const set = (c: Fixture, val64: bigint) => option(c, { option_id: RLIMIT_MODE, op: SET, val64 });
  assert.equal(set(u, 1n).errno, 'EPERM');
  u.ioas();
  assert.equal(set(u, 7n).errno, 'EPERM', 'EPERM before EBUSY');
  // root: objects of any type make it EBUSY, even with a bad value
  const idev = f.intelDevice();
  assert.equal(set(f, 7n).errno, 'EBUSY', 'a DEVICE object');
  assert.equal(set(f, 1n).errno, 'EBUSY');
  idev.unbind();
  f.ioas();
  assert.equal(set(f, 1n).errno, 'EBUSY', 'an IOAS');
  assert.equal(f.call('IOMMU_DESTROY', { id: 1 }).ret, 0);
  for (const bad of [2n, 0x1_0000_0000n, U64_MAX]) {
    assert.deepEqual(set(f, bad), { errno: 'EINVAL', val64: bad });
  }
  assert.equal(option(f, { option_id: RLIMIT_MODE, op: GET }).val64, 0n, 'unchanged');
  assert.deepEqual(set(f, 1n), { errno: undefined, val64: 1n });
  assert.equal(option(f, { option_id: RLIMIT_MODE, op: GET }).val64, 1n);
  assert.deepEqual(set(f, 0n), { errno: undefined, val64: 0n });
  assert.equal(option(f, { option_id: RLIMIT_MODE, op: GET }).val64, 0n);
  assert.equal(option(u, { option_id: RLIMIT_MODE, op: GET }).val64, 0n, 'GET needs no capability');
});

test('RLIMIT_MODE applies to page sets created afterwards', () => {
  const f = setup();
  const u = client(
    f.kernel,
    f.kernel.spawn({
      uid: 1000,
      capIpcLock: false,
      capSysResource: true,
      rlimitMemlock: 8n * PAGE,
    }),
  );
  assert.equal(option(u, { option_id: RLIMIT_MODE, op: SET, val64: 1n }).errno, undefined);
  const ioas = u.ioas();
  u.intelDevice().attach(ioas);
  map(u, ioas, memAt(u, VA, 2n * PAGE), 2n * PAGE);
  assert.equal(u.proc.counters.lockedVm, 2n);
  assert.equal(f.kernel.userAccount(1000).lockedVm, 0n);
  assert.equal(u.proc.counters.pinnedVm, 2n);
});

// ---- HUGE_PAGES ----------------------------------------------------------------------

test('HUGE_PAGES: object_id must name an IOAS', () => {
  const f = setup();
  f.ioas();
  const idev = f.intelDevice();
  for (const object_id of [0, idev.id, 99]) {
    for (const op of [GET, SET]) {
      assert.deepEqual(option(f, { option_id: HUGE_PAGES, op, object_id, val64: 0n }), {
        errno: 'ENOENT',
        val64: 0n,
      });
    }
  }
});

test('HUGE_PAGES SET 0 raises the IOAS alignment to PAGE_SIZE, SET 1 lowers it again', () => {
  const f = setup();
  const ioas = f.ioas();
  const other = f.ioas();
  const va = memAt(f, VA, 4n * PAGE);
  const tryMap = (fields: Record<string, number | bigint>) =>
    f.call('IOMMU_IOAS_MAP', { flags: RW, ioas_id: ioas, user_va: va, length: PAGE, ...fields })
      .errno;
  assert.equal(hugePages(f, ioas), 1n);
  assert.deepEqual(option(f, { option_id: HUGE_PAGES, op: SET, object_id: ioas, val64: 0n }), {
    errno: undefined,
    val64: 0n,
  });
  assert.equal(hugePages(f, ioas), 0n);
  assert.equal(ranges(f, ioas).align, PAGE);
  assert.equal(ranges(f, other).align, 1n, 'per IOAS');
  assert.equal(tryMap({ length: 0x800n }), 'EINVAL');
  assert.equal(tryMap({ flags: RW | FIXED, iova: 0x1800n }), 'EINVAL');
  assert.equal(tryMap({ user_va: va + 0x800n }), 'EINVAL', 'automatic alignment 0x800 < PAGE_SIZE');
  assert.equal(tryMap({}), undefined);
  assert.equal(
    option(f, { option_id: HUGE_PAGES, op: SET, object_id: ioas, val64: 0n }).errno,
    undefined,
    'again',
  );
  assert.equal(
    option(f, { option_id: HUGE_PAGES, op: SET, object_id: ioas, val64: 1n }).errno,
    undefined,
  );
  assert.equal(hugePages(f, ioas), 1n);
  assert.equal(ranges(f, ioas).align, 1n);
  assert.equal(tryMap({ user_va: va + 0x800n, length: 0x800n }), undefined);
  for (const bad of [2n, U64_MAX]) {
    assert.equal(
      option(f, { option_id: HUGE_PAGES, op: SET, object_id: ioas, val64: bad }).errno,
      'EINVAL',
    );
  }
  assert.equal(hugePages(f, ioas), 1n);
});

test('HUGE_PAGES SET 0 with an unaligned area is EADDRINUSE and rolled back', () => {
  for (const [what, iova, offset, length] of [
    ['iova', 0x1_0800n, 0n, PAGE],
    ['length', 0x1_0000n, 0n, 0x1800n],
    ['sub-page offset of the VA', 0x1_0000n, 0x800n, PAGE],
  ] as const) {
    const f = setup();
    const ioas = f.ioas();
    map(f, ioas, memAt(f, VA, 4n * PAGE) + offset, length, { iova });
    const r = option(f, { option_id: HUGE_PAGES, op: SET, object_id: ioas, val64: 0n });
    assert.deepEqual(r, { errno: 'EADDRINUSE', val64: 0n }, what);
    assert.equal(hugePages(f, ioas), 1n, what);
    assert.equal(ranges(f, ioas).align, 1n);
    assert.equal(unmapAll(f, ioas), length, 'the area is intact');
  }
});

test('HUGE_PAGES SET 0 is EINVAL only when the IOAS has both a domain and an area', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  const va = memAt(f, VA, PAGE);
  const off = () => option(f, { option_id: HUGE_PAGES, op: SET, object_id: ioas, val64: 0n }).errno;
  const on = () => option(f, { option_id: HUGE_PAGES, op: SET, object_id: ioas, val64: 1n }).errno;
  map(f, ioas, va, PAGE);
  assert.equal(off(), undefined, 'areas, no domain');
  assert.equal(on(), undefined);
  idev.attach(ioas);
  assert.equal(off(), 'EINVAL', 'a domain and an area');
  assert.equal(hugePages(f, ioas), 1n);
  unmapAll(f, ioas);
  assert.equal(off(), undefined, 'a domain, no area');
  assert.equal(hugePages(f, ioas), 0n);
  idev.detach();
  assert.equal(ranges(f, ioas).align, PAGE, 'the setting outlives the domain');
  assert.equal(on(), undefined);
  assert.equal(ranges(f, ioas).align, 1n);
});

test('HUGE_PAGES 0 maps page by page: no leaf above PAGE_SIZE; with large pages a 2 MiB leaf', () => {
  const MIB2 = 2n << 20n;
  const leafSizes = (hugeOff: boolean) => {
    const f = setup();
    const ioas = f.ioas();
    if (hugeOff) option(f, { option_id: HUGE_PAGES, op: SET, object_id: ioas, val64: 0n });
    const idev = f.intelDevice();
    const hwpt = idev.attach(ioas);
    const va = f.proc.mm.mmap({ length: MIB2, prot: { read: true, write: true }, hugetlb: true });
    assert.equal(
      f.call('IOMMU_IOAS_MAP', {
        flags: FIXED | RW,
        ioas_id: ioas,
        user_va: va,
        length: MIB2,
        iova: MIB2,
      }).ret,
      0,
    );
    const table = hwpt.domain.apertures[0]!.table;
    return new Set(table.runs(MIB2, MIB2).map((r) => r.pageSize));
  };
  assert.deepEqual(leafSizes(false), new Set([MIB2]));
  assert.deepEqual(leafSizes(true), new Set([PAGE]));
});

// ---- IOMMU_VFIO_IOAS ----------------------------------------------------------------

function vfioIoas(f: Fixture, op: number, ioas_id = 0, extra: Record<string, number> = {}) {
  const r = f.call('IOMMU_VFIO_IOAS', { op, ioas_id, ...extra });
  return { errno: r.errno, ioas_id: r.out.ioas_id as number };
}

test('VFIO_IOAS: GET is ENODEV until SET; SET needs an IOAS; CLEAR forgets it', () => {
  const f = setup();
  const { GET: G, SET: S, CLEAR: C } = IOMMU_VFIO_IOAS_OP;
  assert.deepEqual(vfioIoas(f, G, 55), { errno: 'ENODEV', ioas_id: 55 });
  assert.deepEqual(vfioIoas(f, C), { errno: undefined, ioas_id: 0 }, 'CLEAR of nothing');
  const a = f.ioas();
  const idev = f.intelDevice();
  const b = f.ioas();
  assert.equal(vfioIoas(f, S, 0).errno, 'ENOENT');
  assert.equal(vfioIoas(f, S, idev.id).errno, 'ENOENT');
  assert.equal(vfioIoas(f, S, 99).errno, 'ENOENT');
  assert.equal(vfioIoas(f, G).errno, 'ENODEV');
  assert.equal(vfioIoas(f, S, b).errno, undefined);
  assert.deepEqual(vfioIoas(f, G, 0), { errno: undefined, ioas_id: b });
  assert.equal(vfioIoas(f, S, a).errno, undefined);
  assert.equal(vfioIoas(f, G).ioas_id, a);
  assert.equal(vfioIoas(f, C).errno, undefined);
  assert.equal(vfioIoas(f, G).errno, 'ENODEV');
  assert.equal(f.ctx.lookup(a)?.type, 'ioas', 'CLEAR does not destroy');
});

test('VFIO_IOAS: EOPNOTSUPP for __reserved or an unknown op; SET takes no reference', () => {
  const f = setup();
  const a = f.ioas();
  assert.equal(vfioIoas(f, IOMMU_VFIO_IOAS_OP.SET, a, { __reserved: 1 }).errno, 'EOPNOTSUPP');
  assert.equal(vfioIoas(f, IOMMU_VFIO_IOAS_OP.GET).errno, 'ENODEV');
  assert.equal(vfioIoas(f, 3, a).errno, 'EOPNOTSUPP');
  assert.equal(vfioIoas(f, IOMMU_VFIO_IOAS_OP.SET, a).errno, undefined);
  assert.equal(f.call('IOMMU_DESTROY', { id: a }).errno, undefined, 'not held');
  assert.equal(vfioIoas(f, IOMMU_VFIO_IOAS_OP.GET).errno, 'ENODEV', 'destroy cleared it');
  assert.equal(f.ioas(), a);
  assert.equal(
    vfioIoas(f, IOMMU_VFIO_IOAS_OP.GET).errno,
    'ENODEV',
    'a new IOAS at the old id is not it',
  );
});
