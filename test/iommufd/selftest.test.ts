/**
 * IOMMU_TEST_CMD through the syscall surface (facts sheet selftest-mock.md
 * §1.4–§1.5, with the fixtures of §3.3–§3.5 in mind): mock domains and
 * their IDs, reserved ranges, map and pin checks, access objects, DIRTY.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ErrnoName } from '../../src/abi/errno.ts';
import {
  IOMMU_HWPT_ALLOC_FLAGS,
  IOMMU_HWPT_GET_DIRTY_BITMAP_FLAGS,
} from '../../src/abi/iommufd.ts';
import {
  IOMMU_TEST_CMD_SIZE,
  IOMMU_TEST_OP,
  type IommuTestOpName,
  iommuTestCmdLayout,
  iommuTestCmdNumber,
  MOCK_ACCESS_RW_FLAGS,
  MOCK_FLAGS_ACCESS,
  MOCK_FLAGS_DEVICE,
} from '../../src/abi/iommufd-test.ts';
import { Kernel } from '../../src/host/kernel.ts';
import { selftestCmd } from '../../src/iommufd/selftest.ts';
import { client, type Fixture, setup } from '../support.ts';
import { allow, FIXED, map, memAt, PAGE, R, RW, ranges, U64_MAX, unmapAll, W } from './util.ts';

type Vals = Record<string, number | bigint>;

const BASE = 1n << 24n;
const APERTURE: [bigint, bigint] = [BASE, (1n << 31n) - 1n];
const BUF = 16n * PAGE;
const VA = 0x4000_0000n;
const { NO_DIRTY, HUGE_IOVA, PASID } = MOCK_FLAGS_DEVICE;

/** A fixture whose kernel has its own IOMMU_TEST_CMD. */
function st(): Fixture {
  return setup({ selftestCmd: selftestCmd() });
}

/** IOMMU_TEST_CMD `op` with its union member's fields; `fd` defaults to /dev/iommu. */
function tc(f: Fixture, op: IommuTestOpName, value: Vals, fd = f.fd) {
  const n = IOMMU_TEST_OP[op];
  const r = f.proc.call(fd, iommuTestCmdNumber(f.kernel.abi), iommuTestCmdLayout(n)!, {
    ...value,
    op: n,
  });
  return { errno: r.errno, out: r.out as Vals };
}

function ok(r: { errno: ErrnoName | undefined; out: Vals }, what?: string): Vals {
  assert.equal(r.errno, undefined, what);
  return r.out;
}

/** MOCK_DOMAIN(_FLAGS) on `pt`; returns the three IDs. */
function mockDomain(f: Fixture, pt: number, devFlags = 0) {
  const out = ok(
    devFlags === 0
      ? tc(f, 'MOCK_DOMAIN', { id: pt })
      : tc(f, 'MOCK_DOMAIN_FLAGS', { id: pt, dev_flags: devFlags }),
  );
  return {
    stdev: out.out_stdev_id as number,
    hwpt: out.out_hwpt_id as number,
    idev: out.out_idev_id as number,
  };
}

function refs(f: Fixture, uptr: bigint, length: bigint, n: number, fd = f.fd) {
  return tc(f, 'MD_CHECK_REFS', { uptr, length, refs: n }, fd).errno;
}

function checkMap(f: Fixture, hwpt: number, iova: bigint, uptr: bigint, length: bigint) {
  return tc(f, 'MD_CHECK_MAP', { id: hwpt, iova, uptr, length }).errno;
}

function createAccess(f: Fixture, ioas: number, pin: boolean): number {
  return ok(tc(f, 'CREATE_ACCESS', { id: ioas, flags: pin ? 1 : 0 })).out_access_fd as number;
}

function pin(f: Fixture, fd: number, iova: bigint, length: bigint, o: Vals = {}) {
  const r = tc(f, 'ACCESS_PAGES', { id: fd, iova, length, ...o });
  return { errno: r.errno, item: r.out.out_access_pages_id as number };
}

/** ACCESS_RW: read `length` bytes at `iova` (undefined → returns the errno). */
function rwRead(f: Fixture, fd: number, iova: bigint, length: number, flags = 0) {
  const buf = f.mem(BigInt(length) + 1n);
  const errno = tc(f, 'ACCESS_RW', {
    id: fd,
    iova,
    length: BigInt(length),
    uptr: buf,
    flags,
  }).errno;
  return errno ?? f.proc.mm.read(buf, length);
}

function rwWrite(f: Fixture, fd: number, iova: bigint, data: Uint8Array, flags = 0) {
  const buf = f.mem(BigInt(data.length) + 1n);
  f.proc.mm.write(buf, data);
  return tc(f, 'ACCESS_RW', {
    id: fd,
    iova,
    length: BigInt(data.length),
    uptr: buf,
    flags: flags | MOCK_ACCESS_RW_FLAGS.WRITE,
  }).errno;
}

/** A 16-page buffer at VA filled with a byte pattern. */
function buffer(f: Fixture, length = BUF): bigint {
  const va = memAt(f, VA, length);
  f.proc.mm.write(
    va,
    Uint8Array.from({ length: Number(length) }, (_, i) => (i * 7 + 3) & 0xff),
  );
  return va;
}

// ---- dispatch -------------------------------------------------------------------------

test('TEST_CMD dispatch: ENOTTY without the selftest, EINVAL below 68 bytes, EOPNOTSUPP for unknown ops', () => {
  const plain = setup({ personality: { selftest: false } });
  assert.equal(tc(plain, 'SET_TEMP_MEMORY_LIMIT', { limit: 65536 }).errno, 'ENOTTY');
  const offKernel = new Kernel({ selftestCmd: selftestCmd(), personality: { selftest: false } });
  const off = client(offKernel, offKernel.spawn());
  assert.equal(tc(off, 'SET_TEMP_MEMORY_LIMIT', { limit: 65536 }).errno, 'ENOTTY');
  const f = st();
  assert.equal(tc(f, 'SET_TEMP_MEMORY_LIMIT', { limit: 65536, size: 67 }).errno, 'EINVAL');
  assert.equal(tc(f, 'SET_TEMP_MEMORY_LIMIT', { limit: 65536, size: 68 }).errno, undefined);
  const r = f.proc.call(f.fd, iommuTestCmdNumber(f.kernel.abi), iommuTestCmdLayout(1)!, {
    op: 99,
  } as Vals);
  assert.equal(r.errno, 'EOPNOTSUPP');
  // a larger struct needs a zero tail
  const big = new Uint8Array(IOMMU_TEST_CMD_SIZE + 8);
  const view = new DataView(big.buffer);
  view.setUint32(0, big.length, true);
  view.setUint32(4, IOMMU_TEST_OP.SET_TEMP_MEMORY_LIMIT, true);
  view.setUint32(16, 65536, true);
  big[IOMMU_TEST_CMD_SIZE + 3] = 1;
  const addr = f.proc.scratch(big);
  assert.equal(f.proc.ioctl(f.fd, iommuTestCmdNumber(f.kernel.abi), addr), -1);
  assert.equal(f.proc.errno, 'E2BIG');
});

test('SET_TEMP_MEMORY_LIMIT: EINVAL below 12; the value is per host', () => {
  const cmd = selftestCmd();
  const f = setup({ selftestCmd: cmd });
  assert.equal(tc(f, 'SET_TEMP_MEMORY_LIMIT', { limit: 11 }).errno, 'EINVAL');
  assert.equal(cmd.state.memoryLimit, 65536);
  assert.equal(tc(f, 'SET_TEMP_MEMORY_LIMIT', { limit: 12 }).errno, undefined);
  assert.equal(tc(f, 'SET_TEMP_MEMORY_LIMIT', { limit: 16, id: 999 }).errno, undefined);
  assert.equal(cmd.state.memoryLimit, 16, 'shared by every context of the host');
  const other = st();
  assert.equal(tc(other, 'SET_TEMP_MEMORY_LIMIT', { limit: 99 }).errno, undefined);
  assert.equal(cmd.state.memoryLimit, 16, 'another host has its own');
});

// ---- MOCK_DOMAIN ------------------------------------------------------------------------

test('MOCK_DOMAIN: IDs stdev, idev, auto hwpt; a second device shares the auto domain', () => {
  const f = st();
  const ioas = f.ioas();
  const a = mockDomain(f, ioas);
  assert.deepEqual(a, { stdev: 2, idev: 3, hwpt: 4 });
  const b = mockDomain(f, ioas, PASID);
  assert.deepEqual(b, { stdev: 5, idev: 6, hwpt: 4 });
  assert.deepEqual(ranges(f, ioas), { ranges: [APERTURE], align: 2048n });
  for (const idev of [a.idev, b.idev]) {
    for (let slot = 0; slot < 4; slot++) {
      const r = tc(f, 'DEV_CHECK_CACHE', { id: idev, check_dev_cache_id: slot, cache: 0xbaddad });
      assert.equal(r.errno, undefined);
    }
  }
  // the users of each object
  assert.equal(f.call('IOMMU_DESTROY', { id: ioas }).errno, 'EBUSY');
  assert.equal(f.call('IOMMU_DESTROY', { id: a.hwpt }).errno, 'EBUSY');
  assert.equal(f.call('IOMMU_DESTROY', { id: a.idev }).errno, 'EBUSY');
  // destroying the stdev frees the idev; the last device takes the auto domain along
  assert.equal(f.call('IOMMU_DESTROY', { id: a.stdev }).errno, undefined);
  assert.equal(f.call('IOMMU_DESTROY', { id: a.idev }).errno, 'ENOENT');
  assert.equal(f.call('IOMMU_DESTROY', { id: b.stdev }).errno, undefined);
  assert.equal(f.call('IOMMU_DESTROY', { id: a.hwpt }).errno, 'ENOENT');
  assert.deepEqual(ranges(f, ioas), { ranges: [[0n, U64_MAX]], align: 1n });
  assert.equal(f.call('IOMMU_DESTROY', { id: ioas }).errno, undefined);
  assert.equal(f.ctx.objectCount, 0);
});

test('MOCK_DOMAIN: the whole struct is written back, untouched bytes echoed', () => {
  const f = st();
  const ioas = f.ioas();
  const r = tc(f, 'MOCK_DOMAIN_FLAGS', { id: ioas, dev_flags: PASID, __reserved: 7, last: 9 });
  assert.deepEqual(
    [r.out.out_stdev_id, r.out.out_idev_id, r.out.out_hwpt_id, r.out.dev_flags],
    [2, 3, 4, PASID],
  );
  assert.deepEqual([r.out.__reserved, r.out.last], [7, 9]);
  // MOCK_DOMAIN's member ends at 28; the dev_flags slot is still echoed
  const plain = f.proc.call(
    f.fd,
    iommuTestCmdNumber(f.kernel.abi),
    iommuTestCmdLayout(IOMMU_TEST_OP.MOCK_DOMAIN_FLAGS)!,
    { op: IOMMU_TEST_OP.MOCK_DOMAIN, id: ioas, dev_flags: 0xabcd },
  );
  assert.equal(plain.errno, undefined);
  assert.deepEqual([plain.out.out_stdev_id, plain.out.dev_flags], [5, 0xabcd]);
});

test('MOCK_DOMAIN errors roll everything back and free every ID', () => {
  const f = st();
  const ioas = f.ioas();
  assert.equal(tc(f, 'MOCK_DOMAIN_FLAGS', { id: ioas, dev_flags: 8 }).errno, 'EINVAL');
  assert.equal(tc(f, 'MOCK_DOMAIN', { id: 99 }).errno, 'ENOENT');
  assert.equal(tc(f, 'MOCK_DOMAIN', { id: 0 }).errno, 'ENOENT');
  const dev = mockDomain(f, ioas);
  assert.equal(tc(f, 'MOCK_DOMAIN', { id: dev.idev }).errno, 'EINVAL', 'a DEVICE is no pt');
  assert.equal(tc(f, 'MOCK_DOMAIN', { id: dev.stdev }).errno, 'EINVAL');
  // an area the new auto domain cannot pin: EFAULT
  const other = f.ioas();
  map(f, other, 0x7000_0000n, PAGE, { iova: BASE });
  assert.equal(tc(f, 'MOCK_DOMAIN', { id: other }).errno, 'EFAULT');
  // an area outside the aperture: EADDRINUSE
  const low = f.ioas();
  map(f, low, buffer(f), PAGE, { iova: PAGE });
  assert.equal(tc(f, 'MOCK_DOMAIN', { id: low }).errno, 'EADDRINUSE');
  // an area not aligned to the 2 KiB IOPTE: EADDRINUSE
  const odd = f.ioas();
  map(f, odd, buffer(f), 1024n, { iova: BASE });
  assert.equal(tc(f, 'MOCK_DOMAIN', { id: odd }).errno, 'EADDRINUSE');
  assert.equal(f.ctx.objectCount, 7);
  assert.equal(f.ioas(), 8, 'no failed call kept an ID');
  assert.equal(refs(f, VA, PAGE, 0), undefined);
});

test('MOCK_DOMAIN on a HWPT id, and NO_DIRTY against dirty-tracking domains', () => {
  const f = st();
  const ioas = f.ioas();
  const dev = mockDomain(f, ioas);
  const { DIRTY_TRACKING } = IOMMU_HWPT_ALLOC_FLAGS;
  const dirty = f.call('IOMMU_HWPT_ALLOC', {
    dev_id: dev.idev,
    pt_id: ioas,
    flags: DIRTY_TRACKING,
  });
  const hwpt = ok(dirty).out_hwpt_id as number;
  const on = mockDomain(f, hwpt);
  assert.equal(on.hwpt, hwpt);
  const objects = f.ctx.objectCount;
  assert.equal(tc(f, 'MOCK_DOMAIN_FLAGS', { id: hwpt, dev_flags: NO_DIRTY }).errno, 'EINVAL');
  assert.equal(f.ctx.objectCount, objects, 'nothing left behind');
  // on an IOAS a NO_DIRTY device skips nothing: auto domains are never dirty-capable
  const nd = mockDomain(f, ioas, NO_DIRTY);
  assert.equal(nd.hwpt, dev.hwpt);
  const refused = f.call('IOMMU_HWPT_ALLOC', {
    dev_id: nd.idev,
    pt_id: ioas,
    flags: DIRTY_TRACKING,
  });
  assert.equal(refused.errno, 'EOPNOTSUPP');
  assert.equal(f.call('IOMMU_DESTROY', { id: on.stdev }).errno, undefined);
  assert.equal(f.call('IOMMU_DESTROY', { id: hwpt }).errno, undefined, 'manual HWPT now unused');
});

test('GET_HW_INFO of a mock device', () => {
  const f = st();
  const ioas = f.ioas();
  const plain = mockDomain(f, ioas);
  const pasid = mockDomain(f, ioas, PASID | NO_DIRTY);
  const data = f.mem(PAGE);
  const info = (dev_id: number, data_len: number) =>
    ok(f.call('IOMMU_GET_HW_INFO', { dev_id, data_len, data_uptr: data }));
  const a = info(plain.idev, 16);
  assert.deepEqual(
    [a.out_data_type, a.data_len, a.out_capabilities, a.out_max_pasid_log2],
    [0xfeedbeef, 8, 1n, 0],
  );
  assert.deepEqual([...f.proc.mm.read(data + 4n, 4)], [0xef, 0xbe, 0xad, 0xde]);
  const b = info(pasid.idev, 0);
  assert.deepEqual([b.out_capabilities, b.out_max_pasid_log2, b.data_len], [0n, 20, 8]);
});

test('MOCK_DOMAIN_REPLACE: auto domains die with their last device; IOAS and HWPT targets', () => {
  const f = st();
  const ioas = f.ioas();
  const dev = mockDomain(f, ioas);
  assert.equal(tc(f, 'MOCK_DOMAIN_REPLACE', { id: 99, pt_id: ioas }).errno, 'ENOENT');
  assert.equal(tc(f, 'MOCK_DOMAIN_REPLACE', { id: dev.idev, pt_id: ioas }).errno, 'ENOENT');
  assert.equal(tc(f, 'MOCK_DOMAIN_REPLACE', { id: dev.stdev, pt_id: 99 }).errno, 'ENOENT');
  assert.equal(tc(f, 'MOCK_DOMAIN_REPLACE', { id: dev.stdev, pt_id: dev.idev }).errno, 'EINVAL');
  const next = f.ioas();
  const moved = ok(tc(f, 'MOCK_DOMAIN_REPLACE', { id: dev.stdev, pt_id: next }));
  const newHwpt = moved.pt_id as number;
  assert.notEqual(newHwpt, next, 'pt_id becomes the auto HWPT');
  assert.equal(
    tc(f, 'MOCK_DOMAIN_REPLACE', { id: dev.stdev, pt_id: dev.hwpt }).errno,
    'ENOENT',
    'the old auto domain died',
  );
  assert.equal(ok(tc(f, 'MOCK_DOMAIN_REPLACE', { id: dev.stdev, pt_id: next })).pt_id, newHwpt);
  assert.equal(f.call('IOMMU_DESTROY', { id: next }).errno, 'EBUSY');
  // onto a manual HWPT and back
  const manual = ok(f.call('IOMMU_HWPT_ALLOC', { dev_id: dev.idev, pt_id: ioas })).out_hwpt_id;
  assert.equal(ok(tc(f, 'MOCK_DOMAIN_REPLACE', { id: dev.stdev, pt_id: manual })).pt_id, manual);
  assert.equal(f.call('IOMMU_DESTROY', { id: manual }).errno, 'EBUSY');
  assert.equal(f.call('IOMMU_DESTROY', { id: next }).errno, undefined);
  ok(tc(f, 'MOCK_DOMAIN_REPLACE', { id: dev.stdev, pt_id: ioas }));
  assert.equal(f.call('IOMMU_DESTROY', { id: manual }).errno, undefined);
  // a NO_DIRTY device refuses a dirty-tracking HWPT and stays where it was
  const nd = mockDomain(f, ioas, NO_DIRTY);
  const dirty = ok(
    f.call('IOMMU_HWPT_ALLOC', {
      dev_id: dev.idev,
      pt_id: ioas,
      flags: IOMMU_HWPT_ALLOC_FLAGS.DIRTY_TRACKING,
    }),
  ).out_hwpt_id;
  assert.equal(tc(f, 'MOCK_DOMAIN_REPLACE', { id: nd.stdev, pt_id: dirty }).errno, 'EINVAL');
  assert.equal(f.call('IOMMU_DESTROY', { id: nd.hwpt }).errno, 'EBUSY');
});

test('mock-only ops refuse other drivers: EINVAL for their domains and devices', () => {
  const f = st();
  const ioas = f.ioas();
  const va = buffer(f);
  map(f, ioas, va, PAGE, { iova: BASE });
  const intel = f.intelDevice();
  const hwpt = ok(f.call('IOMMU_HWPT_ALLOC', { dev_id: intel.id, pt_id: ioas })).out_hwpt_id;
  assert.equal(checkMap(f, hwpt as number, BASE, va, 2048n), 'EINVAL');
  const bitmap = f.mem(PAGE);
  const dirty = tc(f, 'DIRTY', {
    id: hwpt,
    iova: BASE,
    length: PAGE,
    page_size: 2048n,
    uptr: bitmap,
  });
  assert.equal(dirty.errno, 'EINVAL');
  const cache = tc(f, 'DEV_CHECK_CACHE', { id: intel.id, check_dev_cache_id: 0, cache: 0xbaddad });
  assert.equal(cache.errno, 'EINVAL');
});

test('closing /dev/iommu tears down mock devices, domains and pins', () => {
  const f = st();
  const ioas = f.ioas();
  const va = buffer(f);
  map(f, ioas, va, BUF, { iova: BASE });
  mockDomain(f, ioas);
  mockDomain(f, ioas);
  assert.equal(refs(f, va, BUF, 1), undefined);
  f.proc.close(f.fd);
  const fd = f.proc.open('/dev/iommu');
  assert.equal(refs(f, va, BUF, 0, fd), undefined);
  assert.equal(f.kernel.memory.pinnedPages(), 0n);
});

// ---- ADD_RESERVED ---------------------------------------------------------------------

test('ADD_RESERVED: ENOENT, EADDRINUSE over areas and allowed ranges, overlaps allowed', () => {
  const f = st();
  const ioas = f.ioas();
  const add = (id: number, start: bigint, length: bigint) =>
    tc(f, 'ADD_RESERVED', { id, start, length }).errno;
  assert.equal(add(99, PAGE, PAGE), 'ENOENT');
  const dev = mockDomain(f, ioas);
  assert.equal(add(dev.hwpt, PAGE, PAGE), 'ENOENT');
  map(f, ioas, buffer(f), PAGE, { iova: BASE + 4n * PAGE });
  assert.equal(add(ioas, BASE + 4n * PAGE, 1n), 'EADDRINUSE');
  assert.equal(add(ioas, BASE, 4n * PAGE), undefined);
  assert.equal(add(ioas, BASE + 2n * PAGE, 2n * PAGE), undefined, 'overlapping reservations');
  assert.equal(add(ioas, 0n, 2n * PAGE), undefined, 'inside the aperture complement');
  assert.deepEqual(ranges(f, ioas).ranges, [[BASE + 4n * PAGE, APERTURE[1]]]);
  assert.equal(allow(f, ioas, [[BASE + 100n * PAGE, BASE + 200n * PAGE]]), undefined);
  assert.equal(add(ioas, BASE + 150n * PAGE, PAGE), 'EADDRINUSE');
  // the reservation outlives the domain
  assert.equal(f.call('IOMMU_DESTROY', { id: dev.stdev }).errno, undefined);
  assert.deepEqual(ranges(f, ioas).ranges, [
    [2n * PAGE, BASE - 1n],
    [BASE + 4n * PAGE, U64_MAX],
  ]);
});

// ---- MD_CHECK_MAP / MD_CHECK_REFS ----------------------------------------------------------

test('MD_CHECK_MAP: argument errors, then IOPTE against the user page per 2 KiB', () => {
  const f = st();
  const ioas = f.ioas();
  const dev = mockDomain(f, ioas);
  const va = buffer(f);
  map(f, ioas, va, BUF, { iova: BASE });
  assert.equal(checkMap(f, dev.hwpt, BASE + 1n, va, 2048n), 'EINVAL');
  assert.equal(checkMap(f, dev.hwpt, BASE, va, 100n), 'EINVAL');
  assert.equal(checkMap(f, dev.hwpt, BASE, va + 1n, 2048n), 'EINVAL');
  assert.equal(checkMap(f, dev.hwpt, BASE, U64_MAX - 2047n, 4096n), 'EINVAL', 'uptr overflow');
  assert.equal(checkMap(f, ioas, BASE, va, 2048n), 'ENOENT');
  assert.equal(checkMap(f, 99, BASE, va, 2048n), 'ENOENT');
  assert.equal(checkMap(f, dev.hwpt, BASE, va, BUF), undefined);
  assert.equal(checkMap(f, dev.hwpt, BASE + 2048n, va + 2048n, BUF - 2048n), undefined);
  assert.equal(checkMap(f, dev.hwpt, BASE, va, 0n), undefined);
  assert.equal(checkMap(f, dev.hwpt, BASE, va + 2048n, 2048n), 'EINVAL', 'wrong half page');
  assert.equal(checkMap(f, dev.hwpt, BASE + BUF, va, 2048n), 'EINVAL', 'no IOPTE');
  assert.equal(checkMap(f, dev.hwpt, BASE, 0x7000_0000n, 2048n), 'EFAULT');
  // a sub-page offset into the buffer maps at the matching 2 KiB
  const off = f.ioas();
  const d2 = mockDomain(f, off);
  map(f, off, va + 2048n, 4n * PAGE, { iova: BASE + 2048n });
  assert.equal(checkMap(f, d2.hwpt, BASE + 2048n, va + 2048n, 4n * PAGE), undefined);
});

test('MD_CHECK_REFS: one pin per page set however many domains, COPYs and accesses', () => {
  const f = st();
  const ioas = f.ioas();
  const va = buffer(f);
  assert.equal(refs(f, va + 1n, PAGE, 0), 'EINVAL');
  assert.equal(refs(f, va, 100n, 0), 'EINVAL');
  assert.equal(refs(f, U64_MAX - PAGE + 1n, PAGE, 0), 'EINVAL');
  assert.equal(refs(f, 0x7000_0000n, PAGE, 0), 'EFAULT');
  assert.equal(refs(f, va, 0n, 5), undefined, 'length 0');
  map(f, ioas, va, BUF, { iova: BASE });
  assert.equal(refs(f, va, BUF, 0), undefined, 'no domain: lazy');
  const access = createAccess(f, ioas, true);
  assert.equal(pin(f, access, BASE, BUF).errno, undefined);
  assert.equal(refs(f, va, BUF, 1), undefined);
  // pages in order: a page with other pins before an unmapped one is EIO, then EFAULT
  assert.equal(refs(f, va, BUF + PAGE, 0), 'EIO');
  assert.equal(refs(f, va, BUF + PAGE, 1), 'EFAULT');
  const dev = mockDomain(f, ioas);
  assert.equal(refs(f, va, BUF, 1), undefined);
  ok(f.call('IOMMU_HWPT_ALLOC', { dev_id: dev.idev, pt_id: ioas }));
  const copy = f.ioas();
  mockDomain(f, copy);
  ok(
    f.call('IOMMU_IOAS_COPY', {
      dst_ioas_id: copy,
      src_ioas_id: ioas,
      flags: FIXED | RW,
      dst_iova: BASE,
      src_iova: BASE,
      length: BUF,
    }),
  );
  assert.equal(refs(f, va, BUF, 1), undefined, 'two domains, a COPY and an access');
  assert.equal(refs(f, va, BUF, 2), 'EIO');
  // the access fd holds the context past the /dev/iommu close
  f.proc.close(f.fd);
  const fd = f.proc.open('/dev/iommu');
  assert.equal(refs(f, va, BUF, 1, fd), undefined);
  f.proc.close(access);
  assert.equal(refs(f, va, BUF, 0, fd), undefined, 'everything unpinned after the last close');
});

test('MD_CHECK_REFS skips compound (hugetlb) pages', () => {
  const f = st();
  const ioas = f.ioas();
  const huge = f.proc.mm.mmap({
    length: 2n << 20n,
    prot: { read: true, write: true },
    hugetlb: true,
  });
  mockDomain(f, ioas);
  map(f, ioas, huge, 2n << 20n, { iova: BASE });
  assert.equal(refs(f, huge, 2n << 20n, 7), undefined);
});

// ---- accesses ---------------------------------------------------------------------------

test('CREATE_ACCESS: flags, IOAS lookup, fd, IOAS and context references', () => {
  const f = st();
  const ioas = f.ioas();
  assert.equal(tc(f, 'CREATE_ACCESS', { id: ioas, flags: 2 }).errno, 'EOPNOTSUPP');
  assert.equal(tc(f, 'CREATE_ACCESS', { id: 99, flags: 1 }).errno, 'ENOENT');
  assert.equal(tc(f, 'CREATE_ACCESS', { id: f.fd }).errno, 'ENOENT');
  assert.equal(f.ctx.objectCount, 1, 'no access object left');
  const fd = createAccess(f, ioas, false);
  assert.equal(fd, 4, 'lowest free fd');
  assert.equal(f.ctx.lookup(2)?.type, 'access', 'an ID is consumed, never reported');
  assert.equal(f.call('IOMMU_DESTROY', { id: 2 }).errno, 'EBUSY');
  assert.equal(f.call('IOMMU_DESTROY', { id: ioas }).errno, 'EBUSY');
  assert.equal(f.proc.close(fd), 0);
  assert.equal(f.call('IOMMU_DESTROY', { id: 2 }).errno, 'ENOENT');
  assert.equal(f.call('IOMMU_DESTROY', { id: ioas }).errno, undefined);
  // a faulting write-back installs no fd
  const ro = f.ioas();
  const cmd = iommuTestCmdLayout(IOMMU_TEST_OP.CREATE_ACCESS)!.encode({
    size: IOMMU_TEST_CMD_SIZE,
    op: IOMMU_TEST_OP.CREATE_ACCESS,
    id: ro,
  } as Vals);
  const page = f.mem(PAGE);
  f.proc.mm.write(page, cmd);
  f.proc.mm.mprotect(page, PAGE, { read: true, write: false });
  assert.equal(f.proc.ioctl(f.fd, iommuTestCmdNumber(f.kernel.abi), page), -1);
  assert.equal(f.proc.errno, 'EFAULT');
  assert.equal(f.proc.fds.has(4), false);
  assert.equal(f.call('IOMMU_DESTROY', { id: ro }).errno, undefined);
});

test('CREATE_ACCESS: a pinning access needs page-aligned areas and raises the alignment', () => {
  const f = st();
  const ioas = f.ioas();
  const va = buffer(f);
  map(f, ioas, va + 2048n, 2048n, { iova: PAGE });
  assert.equal(tc(f, 'CREATE_ACCESS', { id: ioas, flags: 1 }).errno, 'EADDRINUSE');
  const plain = createAccess(f, ioas, false);
  assert.equal(ranges(f, ioas).align, 1n);
  f.proc.close(plain);
  unmapAll(f, ioas);
  const pinning = createAccess(f, ioas, true);
  assert.equal(ranges(f, ioas).align, PAGE);
  assert.equal(
    f.call('IOMMU_IOAS_MAP', {
      ioas_id: ioas,
      flags: FIXED | RW,
      user_va: va,
      length: 2048n,
      iova: PAGE,
    }).errno,
    'EINVAL',
  );
  f.proc.close(pinning);
  assert.equal(ranges(f, ioas).align, 1n);
});

test('ACCESS_PAGES: errors in order', () => {
  const f = st();
  const ioas = f.ioas();
  const va = buffer(f);
  map(f, ioas, va, 4n * PAGE, { iova: BASE });
  map(f, ioas, va + 4n * PAGE, PAGE, { iova: BASE + 5n * PAGE, flags: R });
  map(f, ioas, va + 5n * PAGE, PAGE, { iova: BASE + 6n * PAGE, flags: W });
  map(f, ioas, 0x7000_0000n, PAGE, { iova: BASE + 7n * PAGE });
  const acc = createAccess(f, ioas, true);
  const plain = createAccess(f, ioas, false);
  const e = (fd: number, iova: bigint, length: bigint, o: Vals = {}) =>
    pin(f, fd, iova, length, o).errno;
  assert.equal(e(99, BASE, (16n << 20n) + 1n), 'ENOMEM');
  assert.equal(e(99, BASE, PAGE, { flags: 2 }), 'EOPNOTSUPP');
  assert.equal(e(99, BASE, PAGE), 'EBADFD', 'not open');
  assert.equal(e(f.fd, BASE, PAGE), 'EBADFD', 'not an access fd');
  assert.equal(e(plain, BASE, PAGE), 'EOPNOTSUPP', 'access without NEEDS_PIN_PAGES');
  assert.equal(e(acc, BASE, 0n), 'EINVAL');
  assert.equal(e(acc, U64_MAX, 2n), 'EOVERFLOW');
  assert.equal(e(acc, BASE - PAGE, PAGE), 'ENOENT', 'nothing mapped');
  assert.equal(e(acc, BASE + 3n * PAGE, 2n * PAGE), 'ENOENT', 'hole after the first area');
  assert.equal(e(acc, BASE + 2048n, PAGE), 'EINVAL', 'piece not on a page');
  assert.equal(e(acc, BASE + 5n * PAGE, PAGE, { flags: MOCK_FLAGS_ACCESS.WRITE }), 'EPERM');
  assert.equal(e(acc, BASE + 6n * PAGE, PAGE), 'EPERM', 'read pin of a write-only area');
  assert.equal(e(acc, BASE + 7n * PAGE, PAGE), 'EFAULT', 'nothing behind the VA');
  assert.equal(e(acc, BASE, PAGE, { uptr: va + PAGE }), 'EBADE', 'another page');
  assert.equal(e(acc, BASE, PAGE, { uptr: 0x7000_0000n }), 'EFAULT');
  assert.equal(refs(f, va, BUF, 0), undefined, 'every failure unpinned');
  assert.equal(pin(f, acc, BASE, PAGE).item, 0, 'IDs start at 0');
});

test('ACCESS_PAGES and DESTROY_ACCESS_PAGES: items, identity check, IDs never reused', () => {
  const f = st();
  const ioas = f.ioas();
  const va = buffer(f);
  map(f, ioas, va, BUF, { iova: BASE });
  const acc = createAccess(f, ioas, true);
  for (let n = 1n; n < 16n; n++) {
    const a = pin(f, acc, BASE, n * PAGE, { uptr: va });
    const b = pin(f, acc, BASE, PAGE, { uptr: va, flags: MOCK_FLAGS_ACCESS.WRITE });
    assert.deepEqual([a.errno, b.errno], [undefined, undefined]);
    assert.equal(refs(f, va, n * PAGE, 1), undefined, 'overlapping items pin once');
    assert.equal(refs(f, va + n * PAGE, BUF - n * PAGE, 0), undefined);
    for (const item of [a.item, b.item]) {
      assert.equal(
        tc(f, 'DESTROY_ACCESS_PAGES', { id: acc, access_pages_id: item }).errno,
        undefined,
      );
    }
    assert.equal(refs(f, va, BUF, 0), undefined);
  }
  const last = pin(f, acc, BASE, PAGE);
  assert.equal(last.item, 30, 'two per round, never reused');
  assert.equal(tc(f, 'DESTROY_ACCESS_PAGES', { id: acc, access_pages_id: 0 }).errno, 'ENOENT');
  assert.equal(tc(f, 'DESTROY_ACCESS_PAGES', { id: f.fd, access_pages_id: 30 }).errno, 'EBADFD');
  // the pinned pages fill a domain created later
  const dev = mockDomain(f, ioas);
  assert.equal(checkMap(f, dev.hwpt, BASE, va, BUF), undefined);
  assert.equal(refs(f, va, BUF, 1), undefined);
});

test('ACCESS_PAGES: an IOAS unmap over an item removes it (notification), others stay', () => {
  const f = st();
  const ioas = f.ioas();
  const va = buffer(f);
  map(f, ioas, va, 8n * PAGE, { iova: BASE });
  map(f, ioas, va + 8n * PAGE, 8n * PAGE, { iova: BASE + 8n * PAGE });
  const acc = createAccess(f, ioas, true);
  const across = pin(f, acc, BASE + 6n * PAGE, 4n * PAGE).item;
  const low = pin(f, acc, BASE, PAGE).item;
  const high = pin(f, acc, BASE + 12n * PAGE, PAGE).item;
  assert.equal(refs(f, va + 6n * PAGE, 4n * PAGE, 1), undefined);
  const r = f.call('IOMMU_IOAS_UNMAP', {
    ioas_id: ioas,
    iova: BASE + 8n * PAGE,
    length: 8n * PAGE,
  });
  assert.equal(ok(r).length, 8n * PAGE);
  const destroy = (id: number) =>
    tc(f, 'DESTROY_ACCESS_PAGES', { id: acc, access_pages_id: id }).errno;
  assert.equal(destroy(across), 'ENOENT');
  assert.equal(destroy(high), 'ENOENT');
  assert.equal(refs(f, va + PAGE, 15n * PAGE, 0), undefined);
  assert.equal(refs(f, va, PAGE, 1), undefined);
  assert.equal(destroy(low), undefined);
  // unmap-all of a fully pinned IOAS
  map(f, ioas, va + 8n * PAGE, 8n * PAGE, { iova: BASE + 8n * PAGE });
  pin(f, acc, BASE, BUF);
  assert.equal(unmapAll(f, ioas), BUF);
  assert.equal(refs(f, va, BUF, 0), undefined);
});

test('closing the access fd unpins its items and detaches it', () => {
  const f = st();
  const ioas = f.ioas();
  const va = buffer(f);
  map(f, ioas, va, BUF, { iova: BASE });
  const acc = createAccess(f, ioas, true);
  const dup = f.proc.dup(acc);
  pin(f, acc, BASE, BUF);
  f.proc.close(acc);
  assert.equal(refs(f, va, BUF, 1), undefined, 'a dup keeps the file open');
  assert.equal(pin(f, dup, BASE, PAGE).item, 1);
  f.proc.close(dup);
  assert.equal(refs(f, va, BUF, 0), undefined);
  assert.equal(f.call('IOMMU_DESTROY', { id: ioas }).errno, undefined);
  assert.equal(pin(f, dup, BASE, PAGE).errno, 'EBADFD');
});

test('ACCESS_RW: round trips through pinned and unpinned pages, both paths', () => {
  const f = st();
  const ioas = f.ioas();
  const va = buffer(f);
  // two areas back to back, the second at a sub-page offset of its own source
  map(f, ioas, va, 8n * PAGE, { iova: BASE });
  map(f, ioas, va + 8n * PAGE, 8n * PAGE, { iova: BASE + 8n * PAGE });
  const expect = (off: bigint, n: number) => f.proc.mm.read(va + off, n);
  for (const pinAccess of [false, true]) {
    const acc = createAccess(f, ioas, pinAccess);
    if (pinAccess) pin(f, acc, BASE + 4n * PAGE, 8n * PAGE);
    for (const flags of [0, MOCK_ACCESS_RW_FLAGS.SLOW_PATH]) {
      for (const off of [0n, PAGE - 50n, 4n * PAGE - 3n, 8n * PAGE - 17n, 12n * PAGE - 1n]) {
        for (const n of [1, 31, Number(PAGE) + 5]) {
          if (off + BigInt(n) > BUF) continue;
          assert.deepEqual(rwRead(f, acc, BASE + off, n, flags), expect(off, n));
          const data = Uint8Array.from({ length: n }, (_, i) => (i * 13 + Number(off)) & 0xff);
          assert.equal(rwWrite(f, acc, BASE + off, data, flags), undefined);
          assert.deepEqual(expect(off, n), data, 'the live buffer changed');
        }
      }
    }
    const whole = rwRead(f, acc, BASE, Number(BUF));
    assert.deepEqual(whole, expect(0n, Number(BUF)));
    f.proc.close(acc);
  }
  // with a domain, pinned pages are what the access sees
  const dev = mockDomain(f, ioas);
  const acc = createAccess(f, ioas, false);
  f.proc.mm.write(va + 5n, Uint8Array.of(0x5a));
  assert.deepEqual(rwRead(f, acc, BASE + 5n, 1), Uint8Array.of(0x5a));
  assert.equal(checkMap(f, dev.hwpt, BASE, va, BUF), undefined);
});

test('ACCESS_RW reads the pages pinned now, after a page set unpinned and pinned other pages', () => {
  const f = st();
  const ioas = f.ioas();
  const va = buffer(f);
  const other = BASE + 32n * PAGE;
  // across a page boundary with SLOW_PATH, Linux copies through the pinned pages (7.2 answers
  // this sequence alike); within one page, or without it, through the caller's VA as mapped
  // now (checked on 7.2.6 by test/server/access-rw-file.c's remap_after_pin)
  const SLOW = MOCK_ACCESS_RW_FLAGS.SLOW_PATH;
  const at = PAGE - 2n;
  map(f, ioas, va, BUF, { iova: BASE });
  map(f, ioas, va, BUF, { iova: other });
  const acc = createAccess(f, ioas, true);
  const before = f.proc.mm.read(va + at, 4);
  // the second page set keeps the first pages pinned (and readable) once the buffer is replaced
  assert.equal(pin(f, acc, other, 2n * PAGE).errno, undefined);
  const item = pin(f, acc, BASE, 2n * PAGE).item;
  assert.deepEqual(rwRead(f, acc, BASE + at, 4, SLOW), before);
  assert.equal(tc(f, 'DESTROY_ACCESS_PAGES', { id: acc, access_pages_id: item }).errno, undefined);
  memAt(f, va, BUF);
  f.proc.mm.write(va + at, Uint8Array.of(0xa1, 0xa2, 0xa3, 0xa4));
  assert.equal(pin(f, acc, BASE, 2n * PAGE).errno, undefined);
  assert.deepEqual(rwRead(f, acc, BASE + at, 4, SLOW), Uint8Array.of(0xa1, 0xa2, 0xa3, 0xa4));
  assert.deepEqual(rwRead(f, acc, other + at, 4, SLOW), before, 'the pages still pinned there');
  assert.equal(rwWrite(f, acc, BASE + at + 1n, Uint8Array.of(0xb1, 0xb2), SLOW), undefined);
  assert.deepEqual(f.proc.mm.read(va + at, 4), Uint8Array.of(0xa1, 0xb1, 0xb2, 0xa4));
  // the old pages stay pinned behind `other`, but the caller's own copy goes through its VA
  assert.deepEqual(rwRead(f, acc, other + at, 4), Uint8Array.of(0xa1, 0xb1, 0xb2, 0xa4));
  assert.deepEqual(rwRead(f, acc, other + at + 2n, 2, SLOW), Uint8Array.of(0xb2, 0xa4));
  assert.equal(rwWrite(f, acc, other + at, Uint8Array.of(0xc1, 0xc2)), undefined);
  assert.deepEqual(f.proc.mm.read(va + at, 4), Uint8Array.of(0xc1, 0xc2, 0xb2, 0xa4));
  assert.deepEqual(rwRead(f, acc, other + at, 4, SLOW), before, 'the pinned pages unchanged');
});

test('ACCESS_RW: errors in order', () => {
  const f = st();
  const ioas = f.ioas();
  const va = buffer(f);
  map(f, ioas, va, 2n * PAGE, { iova: BASE });
  map(f, ioas, va + 2n * PAGE, PAGE, { iova: BASE + 2n * PAGE, flags: R });
  map(f, ioas, va + 3n * PAGE, PAGE, { iova: BASE + 3n * PAGE, flags: W });
  map(f, ioas, 0x7000_0000n, PAGE, { iova: BASE + 5n * PAGE });
  const acc = createAccess(f, ioas, false);
  const buf = f.mem(PAGE);
  const rw = (fd: number, iova: bigint, length: bigint, flags = 0, uptr = buf) =>
    tc(f, 'ACCESS_RW', { id: fd, iova, length, flags, uptr }).errno;
  const WR = MOCK_ACCESS_RW_FLAGS.WRITE;
  assert.equal(rw(99, BASE, (16n << 20n) + 1n), 'ENOMEM');
  assert.equal(rw(99, BASE, 1n, 2), 'EOPNOTSUPP');
  assert.equal(rw(99, BASE, 1n, MOCK_ACCESS_RW_FLAGS.SLOW_PATH), 'EBADFD');
  assert.equal(rw(acc, BASE, 1n, WR, 0x7000_0000n), 'EFAULT', 'user buffer unreadable');
  assert.equal(rw(acc, BASE, 0n), 'EINVAL');
  assert.equal(rw(acc, U64_MAX, 2n), 'EOVERFLOW');
  assert.equal(rw(acc, BASE - 1n, 2n), 'ENOENT');
  assert.equal(rw(acc, BASE + 4n * PAGE - 1n, 2n, WR), 'ENOENT', 'hole after an area');
  assert.equal(rw(acc, BASE + 2n * PAGE, 1n, WR), 'EPERM', 'write to a read-only area');
  assert.equal(rw(acc, BASE + 3n * PAGE, 1n), 'EPERM', 'read of a write-only area');
  assert.equal(rw(acc, BASE + 5n * PAGE, 1n), 'EFAULT', 'nothing behind the source');
  assert.equal(rw(acc, BASE, 1n, 0, 0x7000_0000n), 'EFAULT', 'user buffer unwritable');
  // areas before the failing one were written already
  f.proc.mm.write(buf, new Uint8Array(8).fill(0xee));
  assert.equal(rw(acc, BASE + 2n * PAGE - 4n, 8n, WR), 'EPERM');
  assert.deepEqual(
    [...f.proc.mm.read(va + 2n * PAGE - 4n, 8)].slice(0, 4),
    [0xee, 0xee, 0xee, 0xee],
  );
  assert.notEqual(f.proc.mm.read(va + 2n * PAGE, 1)[0], 0xee);
});

test('ACCESS_PAGES / ACCESS_RW with SYZ address the nth area', () => {
  const f = st();
  const ioas = f.ioas();
  const va = buffer(f);
  map(f, ioas, va, PAGE, { iova: BASE });
  map(f, ioas, va + 4n * PAGE, 2n * PAGE, { iova: BASE + 8n * PAGE });
  const acc = createAccess(f, ioas, true);
  const syz = (nth: bigint, offset: bigint) => (offset << 32n) | nth;
  const SYZ = MOCK_FLAGS_ACCESS.SYZ;
  assert.equal(
    pin(f, acc, syz(1n, PAGE), PAGE, { flags: SYZ, uptr: va + 5n * PAGE }).errno,
    undefined,
  );
  assert.deepEqual(
    rwRead(f, acc, syz(1n, 5n), 3, MOCK_ACCESS_RW_FLAGS.SYZ),
    f.proc.mm.read(va + 4n * PAGE + 5n, 3),
  );
  assert.equal(rwRead(f, acc, syz(2n, 0n), 1, MOCK_ACCESS_RW_FLAGS.SYZ), 'ENOENT', 'iova 0');
});

test('ACCESS_REPLACE_IOAS: drops every item, moves the IOAS reference', () => {
  const f = st();
  const a = f.ioas();
  const b = f.ioas();
  const va = buffer(f);
  map(f, a, va, BUF, { iova: BASE });
  map(f, b, va, BUF, { iova: BASE });
  const acc = createAccess(f, a, true);
  const item = pin(f, acc, BASE, BUF).item;
  const replace = (fd: number, ioas_id: number) =>
    tc(f, 'ACCESS_REPLACE_IOAS', { id: fd, ioas_id }).errno;
  assert.equal(replace(f.fd, b), 'EBADFD');
  assert.equal(replace(acc, 99), 'ENOENT');
  assert.equal(replace(acc, a), undefined, 'same IOAS: nothing changes');
  assert.equal(refs(f, va, BUF, 1), undefined);
  const c = f.ioas();
  map(f, c, va + 2048n, PAGE, { iova: PAGE });
  assert.equal(replace(acc, c), 'EADDRINUSE', 'misaligned area for a pinning access');
  assert.equal(refs(f, va, BUF, 1), undefined, 'the item survived the failure');
  assert.equal(replace(acc, b), undefined);
  assert.equal(tc(f, 'DESTROY_ACCESS_PAGES', { id: acc, access_pages_id: item }).errno, 'ENOENT');
  assert.equal(refs(f, va, BUF, 0), undefined);
  assert.equal(f.call('IOMMU_DESTROY', { id: a }).errno, undefined);
  assert.equal(f.call('IOMMU_DESTROY', { id: b }).errno, 'EBUSY');
  assert.equal(pin(f, acc, BASE, PAGE, { uptr: va }).item, 1);
});

// ---- DIRTY -----------------------------------------------------------------------------------

/** An IOAS with `length` bytes mapped at BASE and a dirty-tracking HWPT on it. */
function dirtySetup(length: bigint, devFlags = 0, hugetlb = false) {
  const f = st();
  const ioas = f.ioas();
  const dev = mockDomain(f, ioas, devFlags);
  const va = f.proc.mm.mmap({ length, prot: { read: true, write: true }, hugetlb });
  map(f, ioas, va, length, { iova: BASE });
  const hwpt = ok(
    f.call('IOMMU_HWPT_ALLOC', {
      dev_id: dev.idev,
      pt_id: ioas,
      flags: IOMMU_HWPT_ALLOC_FLAGS.DIRTY_TRACKING,
    }),
  ).out_hwpt_id as number;
  return { f, ioas, dev, hwpt };
}

/** GET_DIRTY_BITMAP of [BASE, BASE + length) into `data`, which must succeed. */
function getDirty(
  f: Fixture,
  hwpt: number,
  length: bigint,
  pageSize: bigint,
  data: bigint,
  flags = 0,
) {
  ok(
    f.call('IOMMU_HWPT_GET_DIRTY_BITMAP', {
      hwpt_id: hwpt,
      flags,
      iova: BASE,
      length,
      page_size: pageSize,
      data,
    }),
  );
}

function bitmapOf(f: Fixture, nbits: bigint, set: (i: bigint) => boolean): bigint {
  const bytes = new Uint8Array(Number((nbits + 7n) / 8n));
  for (let i = 0n; i < nbits; i++) if (set(i)) bytes[Number(i / 8n)]! |= 1 << Number(i % 8n);
  const at = f.mem(BigInt(bytes.length) + PAGE);
  f.proc.mm.write(at, bytes);
  return at;
}

function setBits(f: Fixture, at: bigint, nbits: bigint): bigint[] {
  const bytes = f.proc.mm.read(at, Number((nbits + 7n) / 8n));
  const out: bigint[] = [];
  for (let i = 0n; i < nbits; i++) if (bytes[Number(i / 8n)]! & (1 << Number(i % 8n))) out.push(i);
  return out;
}

test('DIRTY: errors in order', () => {
  const { f, ioas, hwpt, dev } = dirtySetup(8n * PAGE);
  const bitmap = bitmapOf(f, 16n, () => true);
  const d = (id: number, v: Vals) =>
    tc(f, 'DIRTY', { id, iova: BASE, length: 8n * PAGE, page_size: 2048n, uptr: bitmap, ...v })
      .errno;
  assert.equal(d(99, { page_size: 0n }), 'EINVAL');
  assert.equal(d(99, { length: 0n }), 'EINVAL');
  assert.equal(d(99, { iova: BASE + 1n }), 'EINVAL');
  assert.equal(d(99, { length: 100n }), 'EINVAL');
  assert.equal(d(99, { uptr: 0n }), 'EINVAL');
  assert.equal(d(99, {}), 'ENOENT');
  assert.equal(d(ioas, {}), 'ENOENT');
  assert.equal(d(hwpt, {}), 'EINVAL', 'tracking is off');
  assert.equal(d(dev.hwpt, {}), 'EINVAL', 'an auto domain never tracks');
  ok(f.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: hwpt, flags: 1 }));
  assert.equal(d(hwpt, { uptr: 0x7000_0000n }), 'EFAULT');
  assert.equal(
    ok(tc(f, 'DIRTY', { id: hwpt, iova: BASE, length: 8n * PAGE, page_size: 2048n, uptr: bitmap }))
      .out_nr_dirty,
    16n,
  );
});

test("DIRTY: the bits past length / page_size in the bitmap's last bytes mark nothing", () => {
  const { f, hwpt } = dirtySetup(20n * PAGE);
  ok(f.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: hwpt, flags: 1 }));
  // 37 bits: one whole 32-bit word and one byte of which 3 bits are past the end
  const bitmap = bitmapOf(f, 40n, () => true);
  const dirty = ok(
    tc(f, 'DIRTY', { id: hwpt, iova: BASE, length: 37n * 2048n, page_size: 2048n, uptr: bitmap }),
  );
  assert.equal(dirty.out_nr_dirty, 37n);
  const data = f.mem(PAGE);
  getDirty(f, hwpt, 40n * 2048n, 2048n, data);
  assert.deepEqual(
    setBits(f, data, 40n),
    Array.from({ length: 37 }, (_, i) => BigInt(i)),
  );
});

test('DIRTY + GET_DIRTY_BITMAP: even IOPTEs, cleared by a read unless NO_CLEAR', () => {
  const length = 64n * PAGE;
  const nbits = length / 2048n;
  const { f, hwpt } = dirtySetup(length);
  ok(f.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: hwpt, flags: 1 }));
  const even = (i: bigint) => i % 2n === 0n;
  const { NO_CLEAR } = IOMMU_HWPT_GET_DIRTY_BITMAP_FLAGS;
  const get = (flags: number, offset: bigint) => {
    const data = f.mem(2n * PAGE) + offset;
    getDirty(f, hwpt, length, 2048n, data, flags);
    return setBits(f, data, nbits);
  };
  const expected = Array.from({ length: Number(nbits / 2n) }, (_, i) => BigInt(2 * i));
  for (const [flags, offset] of [
    [0, 0n],
    [0, 2048n],
    [NO_CLEAR, 0xff1n],
  ] as const) {
    const dirty = ok(
      tc(f, 'DIRTY', {
        id: hwpt,
        iova: BASE,
        length,
        page_size: 2048n,
        uptr: bitmapOf(f, nbits, even),
      }),
    );
    assert.equal(dirty.out_nr_dirty, nbits / 2n);
    assert.deepEqual(get(flags, offset), expected);
    assert.deepEqual(get(flags, offset), flags === NO_CLEAR ? expected : []);
    if (flags === NO_CLEAR) get(0, 0n);
  }
});

test('GET_DIRTY_BITMAP: a refused bitmap page drops the rest of each 1 MiB IOPTE crossing it; the next IOPTE starts over', () => {
  const length = 2n << 20n;
  const { f, hwpt } = dirtySetup(length, HUGE_IOVA, true);
  ok(f.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: hwpt, flags: 1 }));
  // bits 0 and 512 at 2 KiB: both 1 MiB IOPTEs
  const marks = bitmapOf(f, length / 2048n, (i) => i % 512n === 0n);
  ok(tc(f, 'DIRTY', { id: hwpt, iova: BASE, length, page_size: 2048n, uptr: marks }));
  // page_size 1: an IOPTE is 2^20 bits, 32 bitmap pages; the second page refuses
  const bytes = length / 8n;
  const get = (data: bigint, flags = 0) => getDirty(f, hwpt, length, 1n, data, flags);
  const pagesOf = (data: bigint) =>
    Array.from({ length: Number(bytes / PAGE) }, (_, p) => {
      const b = f.proc.mm.read(data + BigInt(p) * PAGE, Number(PAGE));
      return b.every((x) => x === 0xff) ? 'f' : b.every((x) => x === 0) ? '.' : '?';
    }).join('');
  const whole = f.proc.mm.mmap({ length: bytes, prot: { read: true, write: true } });
  get(whole, IOMMU_HWPT_GET_DIRTY_BITMAP_FLAGS.NO_CLEAR);
  assert.equal(pagesOf(whole), 'f'.repeat(64), 'one run of 256 KiB of bitmap');
  const data = f.proc.mm.mmap({ length: bytes, prot: { read: true, write: true } });
  f.proc.mm.mprotect(data + PAGE, PAGE, { read: true, write: false });
  get(data);
  assert.equal(
    pagesOf(data),
    `f${'.'.repeat(31)}${'f'.repeat(32)}`,
    'the first IOPTE stops at page 1 (pages 2-31 could take bits but get none); the second fills 32-63',
  );
});

test('DIRTY on HUGE_IOVA with hugetlb memory: a bit dirties the whole 1 MiB IOPTE', () => {
  const length = 4n << 20n;
  const nbits = length / 2048n;
  const { f, hwpt } = dirtySetup(length, HUGE_IOVA, true);
  ok(f.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: hwpt, flags: 1 }));
  const bitmap = bitmapOf(f, nbits, (i) => i % 1024n === 0n);
  const dirty = ok(
    tc(f, 'DIRTY', { id: hwpt, iova: BASE, length, page_size: 2048n, uptr: bitmap }),
  );
  assert.equal(dirty.out_nr_dirty, nbits / 1024n);
  const data = f.mem(PAGE);
  getDirty(f, hwpt, length, 2048n, data);
  const bits = setBits(f, data, nbits);
  assert.equal(bits.length, Number(nbits / 2n));
  assert.ok(bits.every((i) => i % 1024n < 512n));
});

test('DIRTY: bits over unmapped IOPTEs are not counted', () => {
  const { f, hwpt } = dirtySetup(4n * PAGE);
  ok(f.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: hwpt, flags: 1 }));
  const out = ok(
    tc(f, 'DIRTY', {
      id: hwpt,
      iova: BASE,
      length: 8n * PAGE,
      page_size: 2048n,
      uptr: bitmapOf(f, 16n, () => true),
    }),
  );
  assert.equal(out.out_nr_dirty, 8n);
});

// ---- DEV_CHECK_CACHE -------------------------------------------------------------------------

test('DEV_CHECK_CACHE: ENOENT for a non-device, EINVAL for a bad slot or value', () => {
  const f = st();
  const ioas = f.ioas();
  const dev = mockDomain(f, ioas);
  const check = (id: number, slot: number, cache: number) =>
    tc(f, 'DEV_CHECK_CACHE', { id, check_dev_cache_id: slot, cache }).errno;
  assert.equal(check(dev.stdev, 0, 0xbaddad), 'ENOENT');
  assert.equal(check(dev.idev, 4, 0xbaddad), 'EINVAL');
  assert.equal(check(dev.idev, 3, 0xbadda0), 'EINVAL');
  assert.equal(check(dev.idev, 3, 0xbaddad), undefined);
});
