/**
 * The vIOMMU family on the selftest mock (facts sheet selftest-mock.md
 * §2.5, §2.8, §3.7 and the iommufd_ioas alloc_hwpt_nested test): nested
 * HWPTs and their IOTLB, HWPT_INVALIDATE on nested HWPTs and vIOMMUs,
 * VIOMMU_ALLOC, VDEVICE_ALLOC, VEVENTQ_ALLOC with its fd, TRIGGER_VEVENT,
 * HW_QUEUE_ALLOC.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ErrnoName } from '../../src/abi/errno.ts';
import { IOMMU_HWPT_ALLOC_FLAGS, IOMMU_HWPT_DATA_TYPE } from '../../src/abi/iommufd.ts';
import {
  IOMMU_HW_QUEUE_TYPE_SELFTEST,
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID,
  IOMMU_TEST_DEV_CACHE_DEFAULT,
  IOMMU_TEST_INVALIDATE_FLAG_ALL,
  IOMMU_TEST_IOTLB_DEFAULT,
  IOMMU_VEVENTQ_TYPE_SELFTEST,
  IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
  IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID,
  IOMMU_VIOMMU_TYPE_SELFTEST,
} from '../../src/abi/iommufd-test.ts';
import { POLLIN, POLLOUT } from '../../src/kernel/file.ts';
import type { Fixture } from '../support.ts';
import { destroy, replace, st, tc, type Vals } from './mock.ts';
import { map, memAt, PAGE, physOf, pinCounts, U64_MAX } from './util.ts';

const { NEST_PARENT, FAULT_ID_VALID, PASID, DIRTY_TRACKING } = IOMMU_HWPT_ALLOC_FLAGS;
const POLLRDNORM = 0x40;
const VDEV_ID = 0x99n;

/** `bytes` in fresh user memory; returns the address. */
function user(f: Fixture, bytes: Uint8Array): bigint {
  const va = f.mem(PAGE);
  f.proc.mm.write(va, bytes);
  return va;
}

function u32s(...vals: number[]): Uint8Array {
  const out = new Uint8Array(vals.length * 4);
  const dv = new DataView(out.buffer);
  vals.forEach((v, i) => {
    dv.setUint32(i * 4, v >>> 0, true);
  });
  return out;
}

function mockDomain(f: Fixture, pt: number) {
  const r = tc(f, 'MOCK_DOMAIN', { id: pt });
  assert.equal(r.errno, undefined);
  return { stdev: r.out.out_stdev_id as number, idev: r.out.out_idev_id as number };
}

function hwptAlloc(f: Fixture, dev: number, pt: number, flags: number): number {
  const r = f.call('IOMMU_HWPT_ALLOC', { dev_id: dev, pt_id: pt, flags });
  assert.equal(r.errno, undefined);
  return r.out.out_hwpt_id as number;
}

interface NestedOpts {
  flags?: number;
  type?: number;
  len?: number;
  uptr?: bigint;
  iotlb?: number;
}

/** HWPT_ALLOC of a nested HWPT with selftest data {iotlb} unless overridden. */
function nestedAlloc(f: Fixture, dev: number, pt: number, o: NestedOpts = {}) {
  const r = f.call('IOMMU_HWPT_ALLOC', {
    dev_id: dev,
    pt_id: pt,
    flags: o.flags ?? 0,
    data_type: o.type ?? IOMMU_HWPT_DATA_SELFTEST,
    data_len: o.len ?? 4,
    data_uptr: o.uptr ?? user(f, u32s(o.iotlb ?? IOMMU_TEST_IOTLB_DEFAULT)),
  });
  return { errno: r.errno, id: r.out.out_hwpt_id as number };
}

function nested(f: Fixture, dev: number, pt: number, o: NestedOpts = {}): number {
  const r = nestedAlloc(f, dev, pt, o);
  assert.equal(r.errno, undefined);
  return r.id;
}

function viommuAlloc(f: Fixture, dev: number, hwpt: number, extra: Vals = {}) {
  const r = f.call('IOMMU_VIOMMU_ALLOC', {
    dev_id: dev,
    hwpt_id: hwpt,
    type: IOMMU_VIOMMU_TYPE_SELFTEST,
    ...extra,
  });
  return { errno: r.errno, id: r.out.out_viommu_id as number };
}

function vdeviceAlloc(f: Fixture, viommu: number, dev: number, virtId = VDEV_ID) {
  const r = f.call('IOMMU_VDEVICE_ALLOC', { viommu_id: viommu, dev_id: dev, virt_id: virtId });
  return { errno: r.errno, id: r.out.out_vdevice_id as number };
}

function veventqAlloc(f: Fixture, viommu: number, extra: Vals = {}) {
  const r = f.call('IOMMU_VEVENTQ_ALLOC', {
    viommu_id: viommu,
    type: IOMMU_VEVENTQ_TYPE_SELFTEST,
    veventq_depth: 2,
    ...extra,
  });
  return {
    errno: r.errno,
    id: r.out.out_veventq_id as number,
    fd: r.out.out_veventq_fd as number,
  };
}

function invalidate(
  f: Fixture,
  id: number,
  o: { type: number; entries?: Uint8Array; entryLen: number; num: number; uptr?: bigint },
) {
  const uptr = o.uptr ?? user(f, o.entries ?? new Uint8Array(64));
  const r = f.call('IOMMU_HWPT_INVALIDATE', {
    hwpt_id: id,
    data_uptr: uptr,
    data_type: o.type,
    entry_len: o.entryLen,
    entry_num: o.num,
  });
  return { errno: r.errno, num: r.out.entry_num as number };
}

function checkIotlb(f: Fixture, id: number, slot: number, value: number) {
  return tc(f, 'MD_CHECK_IOTLB', { id, check_iotlb_id: slot, iotlb: value }).errno;
}

function iotlbs(f: Fixture, id: number, values: number[]): void {
  values.forEach((v, slot) => {
    assert.equal(checkIotlb(f, id, slot, v), undefined, `IOTLB slot ${slot}`);
  });
}

function devCaches(f: Fixture, idev: number, values: number[]): void {
  values.forEach((v, slot) => {
    const r = tc(f, 'DEV_CHECK_CACHE', { id: idev, check_dev_cache_id: slot, cache: v });
    assert.equal(r.errno, undefined, `cache slot ${slot}`);
  });
}

function trigger(f: Fixture, idev: number, n = 1): ErrnoName | undefined {
  for (let i = 0; i < n; i++) {
    const r = tc(f, 'TRIGGER_VEVENT', { dev_id: idev });
    if (r.errno) return r.errno;
  }
  return undefined;
}

/** read(2) of up to `count` bytes; the records as {flags, sequence, payload words}. */
function readEvents(f: Fixture, fd: number, count: number) {
  const buf = f.mem(PAGE);
  const n = f.proc.read(fd, buf, count);
  assert.ok(n >= 0, `read: ${f.proc.errno}`);
  const bytes = f.proc.mm.read(buf, n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const records: { flags: number; sequence: number; virtId?: number }[] = [];
  for (let at = 0; at < n; ) {
    const flags = dv.getUint32(at, true);
    const sequence = dv.getUint32(at + 4, true);
    if (flags & 1) {
      records.push({ flags, sequence });
      at += 8;
    } else {
      records.push({ flags, sequence, virtId: dv.getUint32(at + 8, true) });
      at += 12;
    }
  }
  return { n, records };
}

/** The mock_viommu fixture: IOAS, mock device, nesting parent, vIOMMU, nested HWPT on it. */
function viommuFixture() {
  const p = parentFixture();
  const v = viommuAlloc(p.f, p.idev, p.parent);
  assert.equal(v.errno, undefined);
  return { ...p, viommu: v.id, nested: nested(p.f, p.idev, v.id) };
}

/** The iommufd_ioas fixture with one mock domain and a nesting parent. */
function parentFixture() {
  const f = st();
  const ioas = f.ioas();
  const { stdev, idev } = mockDomain(f, ioas);
  const parent = hwptAlloc(f, idev, ioas, NEST_PARENT);
  return { f, ioas, stdev, idev, parent };
}

// ---- nested HWPTs on a paging parent ------------------------------------------------

describe('HWPT_ALLOC nested on a paging parent', () => {
  test('data type NONE with a length is EINVAL; another type EOPNOTSUPP', () => {
    const { f, idev, parent } = parentFixture();
    assert.equal(nestedAlloc(f, idev, parent, { type: IOMMU_HWPT_DATA_TYPE.NONE }).errno, 'EINVAL');
    const r = nestedAlloc(f, idev, parent, { type: IOMMU_HWPT_DATA_SELFTEST + 1 });
    assert.equal(r.errno, 'EOPNOTSUPP');
  });

  test('data shorter or longer than struct iommu_hwpt_selftest is EINVAL; unreadable EFAULT', () => {
    const { f, idev, parent } = parentFixture();
    assert.equal(nestedAlloc(f, idev, parent, { len: 3 }).errno, 'EINVAL');
    assert.equal(nestedAlloc(f, idev, parent, { len: 5 }).errno, 'EINVAL');
    assert.equal(nestedAlloc(f, idev, parent, { uptr: 0n }).errno, 'EFAULT');
  });

  test('flags beyond FAULT_ID_VALID|PASID are EOPNOTSUPP; no data at all is EOPNOTSUPP', () => {
    const { f, idev, parent } = parentFixture();
    assert.equal(nestedAlloc(f, idev, parent, { flags: NEST_PARENT }).errno, 'EOPNOTSUPP');
    assert.equal(nestedAlloc(f, idev, parent, { flags: DIRTY_TRACKING }).errno, 'EOPNOTSUPP');
    const r = nestedAlloc(f, idev, parent, { type: IOMMU_HWPT_DATA_TYPE.NONE, len: 0 });
    assert.equal(r.errno, 'EOPNOTSUPP');
    assert.equal(nestedAlloc(f, idev, parent, { flags: PASID }).errno, undefined);
  });

  test('a parent that is not a nesting parent, an auto domain or nested is EINVAL', () => {
    const { f, ioas, idev, parent } = parentFixture();
    const plain = hwptAlloc(f, idev, ioas, 0);
    assert.equal(nestedAlloc(f, idev, plain).errno, 'EINVAL');
    const auto = tc(f, 'MOCK_DOMAIN', { id: ioas }).out.out_hwpt_id as number;
    assert.equal(nestedAlloc(f, idev, auto).errno, 'EINVAL');
    const n = nested(f, idev, parent);
    assert.equal(nestedAlloc(f, idev, n).errno, 'EINVAL');
  });

  test('a failed allocation leaves no ID behind', () => {
    const { f, idev, parent } = parentFixture();
    assert.equal(nestedAlloc(f, idev, parent, { len: 3 }).errno, 'EINVAL');
    const a = nested(f, idev, parent);
    assert.equal(a, parent + 1);
  });

  test('FAULT_ID_VALID with a missing fault is ENOENT and releases the ID', () => {
    const { f, idev, parent } = parentFixture();
    const r = nestedAlloc(f, idev, parent, { flags: FAULT_ID_VALID });
    assert.equal(r.errno, 'ENOENT');
    assert.equal(destroy(f, parent), undefined, 'the parent is not held any more');
  });

  test('IOTLB slots start as the data; the parent is held; MD_CHECK_IOTLB errors', () => {
    const { f, ioas, idev, parent } = parentFixture();
    const a = nested(f, idev, parent);
    const b = nested(f, idev, parent, { iotlb: 0x1234 });
    iotlbs(f, a, Array(4).fill(IOMMU_TEST_IOTLB_DEFAULT));
    iotlbs(f, b, Array(4).fill(0x1234));
    assert.equal(checkIotlb(f, a, 0, 0x1234), 'EINVAL');
    assert.equal(checkIotlb(f, a, 4, IOMMU_TEST_IOTLB_DEFAULT), 'EINVAL');
    assert.equal(checkIotlb(f, parent, 0, IOMMU_TEST_IOTLB_DEFAULT), 'ENOENT');
    assert.equal(checkIotlb(f, ioas, 0, IOMMU_TEST_IOTLB_DEFAULT), 'ENOENT');
    assert.equal(destroy(f, parent), 'EBUSY');
    assert.equal(destroy(f, a), undefined);
    assert.equal(destroy(f, b), undefined);
    assert.equal(destroy(f, parent), undefined);
  });

  test('devices attach and replace onto nested HWPTs, which are then busy', () => {
    const { f, ioas, stdev, idev, parent } = parentFixture();
    const a = nested(f, idev, parent);
    const b = nested(f, idev, parent);
    assert.equal(replace(f, stdev, a), undefined);
    assert.equal(destroy(f, a), 'EBUSY');
    assert.equal(replace(f, stdev, b), undefined);
    assert.equal(destroy(f, b), 'EBUSY');
    assert.equal(destroy(f, a), undefined);
    assert.equal(replace(f, stdev, parent), undefined);
    assert.equal(destroy(f, b), undefined);
    assert.equal(replace(f, stdev, ioas), undefined);
    assert.equal(destroy(f, parent), undefined);
    const second = tc(f, 'MOCK_DOMAIN', { id: nested(f, idev, hwptAlloc(f, idev, ioas, 1)) });
    assert.equal(second.errno, undefined, 'MOCK_DOMAIN straight onto a nested HWPT');
  });

  test('DMA through a nested HWPT translates through its parent', () => {
    const { f, ioas, stdev, idev, parent } = parentFixture();
    const va = memAt(f, 0x5000_0000n, PAGE);
    const iova = map(f, ioas, va, PAGE);
    assert.equal(replace(f, stdev, nested(f, idev, parent)), undefined);
    const dev = f.ctx.list().find((o) => o.id === idev) as unknown as {
      dev: { dmaWrite(iova: bigint, d: Uint8Array): void };
    };
    dev.dev.dmaWrite(iova + 8n, u32s(0xcafe));
    assert.deepEqual(f.proc.mm.read(va + 8n, 4), u32s(0xcafe));
  });
});

describe('HWPT_INVALIDATE on a nested HWPT', () => {
  const T = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST;
  const inv = (flags: number, iotlbId: number) => u32s(flags, iotlbId);
  const cat = (...parts: Uint8Array[]) => new Uint8Array(parts.flatMap((p) => [...p]));

  function fx() {
    const p = parentFixture();
    return { ...p, n: nested(p.f, p.idev, p.parent), m: nested(p.f, p.idev, p.parent) };
  }

  test('a paging HWPT is EINVAL and a missing ID ENOENT, with entry_num written back as 0', () => {
    const { f, parent } = fx();
    assert.deepEqual(invalidate(f, parent, { type: T, entryLen: 8, num: 1 }), {
      errno: 'EINVAL',
      num: 0,
    });
    assert.deepEqual(invalidate(f, 999, { type: T, entryLen: 8, num: 1 }), {
      errno: 'ENOENT',
      num: 0,
    });
  });

  test('__reserved is EOPNOTSUPP; entries without a pointer or a length are EINVAL', () => {
    const { f, n } = fx();
    const r = f.call('IOMMU_HWPT_INVALIDATE', {
      hwpt_id: n,
      data_uptr: user(f, inv(0, 0)),
      data_type: T,
      entry_len: 8,
      entry_num: 1,
      __reserved: 1,
    });
    assert.equal(r.errno, 'EOPNOTSUPP');
    assert.equal(r.out.entry_num, 0);
    assert.deepEqual(invalidate(f, n, { type: T, entryLen: 8, num: 1, uptr: 0n }), {
      errno: 'EINVAL',
      num: 0,
    });
    assert.deepEqual(invalidate(f, n, { type: T, entryLen: 0, num: 1 }), {
      errno: 'EINVAL',
      num: 0,
    });
  });

  test('an empty array checks the type only', () => {
    const { f, n } = fx();
    assert.deepEqual(invalidate(f, n, { type: T, entryLen: 8, num: 0 }), {
      errno: undefined,
      num: 0,
    });
    const bad = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID;
    assert.deepEqual(invalidate(f, n, { type: bad, entryLen: 8, num: 0 }), {
      errno: 'EINVAL',
      num: 0,
    });
    assert.deepEqual(invalidate(f, n, { type: bad, entryLen: 8, num: 1 }), {
      errno: 'EINVAL',
      num: 0,
    });
  });

  test('entries of any length but 8 are EINVAL; unreadable ones EFAULT', () => {
    const { f, n } = fx();
    for (const entryLen of [1, 7, 9, 16]) {
      assert.deepEqual(invalidate(f, n, { type: T, entryLen, num: 1 }), {
        errno: 'EINVAL',
        num: 0,
      });
    }
    const r = invalidate(f, n, { type: T, entryLen: 8, num: 1, uptr: 0x10n });
    assert.deepEqual(r, { errno: 'EFAULT', num: 0 });
  });

  test('unknown flags are EOPNOTSUPP and an IOTLB index past 3 EINVAL, even with FLAG_ALL', () => {
    const { f, n } = fx();
    const e1 = invalidate(f, n, { type: T, entries: inv(0xffffffff, 0), entryLen: 8, num: 1 });
    assert.deepEqual(e1, { errno: 'EOPNOTSUPP', num: 0 });
    const e2 = invalidate(f, n, { type: T, entries: inv(0, 4), entryLen: 8, num: 1 });
    assert.deepEqual(e2, { errno: 'EINVAL', num: 0 });
    const all = IOMMU_TEST_INVALIDATE_FLAG_ALL;
    const e3 = invalidate(f, n, { type: T, entries: inv(all, 4), entryLen: 8, num: 1 });
    assert.deepEqual(e3, { errno: 'EINVAL', num: 0 });
    iotlbs(f, n, Array(4).fill(IOMMU_TEST_IOTLB_DEFAULT));
  });

  test('partial progress: the first entry is done, entry_num says 1', () => {
    const { f, n } = fx();
    const D = IOMMU_TEST_IOTLB_DEFAULT;
    const r1 = invalidate(f, n, {
      type: T,
      entries: cat(inv(0, 0), inv(0xffffffff, 1)),
      entryLen: 8,
      num: 2,
    });
    assert.deepEqual(r1, { errno: 'EOPNOTSUPP', num: 1 });
    iotlbs(f, n, [0, D, D, D]);
    const r2 = invalidate(f, n, {
      type: T,
      entries: cat(inv(0, 0), inv(0, 4)),
      entryLen: 8,
      num: 2,
    });
    assert.deepEqual(r2, { errno: 'EINVAL', num: 1 });
    iotlbs(f, n, [0, D, D, D]);
  });

  test('slots are cleared one by one, or all with FLAG_ALL, per nested HWPT', () => {
    const { f, n, m } = fx();
    const D = IOMMU_TEST_IOTLB_DEFAULT;
    assert.deepEqual(invalidate(f, n, { type: T, entries: inv(0, 1), entryLen: 8, num: 1 }), {
      errno: undefined,
      num: 1,
    });
    iotlbs(f, n, [D, 0, D, D]);
    const r = invalidate(f, n, {
      type: T,
      entries: cat(inv(0, 2), inv(0, 3)),
      entryLen: 8,
      num: 2,
    });
    assert.deepEqual(r, { errno: undefined, num: 2 });
    iotlbs(f, n, [D, 0, 0, 0]);
    iotlbs(f, m, [D, D, D, D]);
    const all = inv(IOMMU_TEST_INVALIDATE_FLAG_ALL, 0);
    assert.equal(invalidate(f, m, { type: T, entries: all, entryLen: 8, num: 1 }).num, 1);
    iotlbs(f, m, [0, 0, 0, 0]);
  });
});

// ---- vIOMMU -------------------------------------------------------------------------------

describe('VIOMMU_ALLOC', () => {
  test('flags or type DEFAULT are EOPNOTSUPP before the device is looked up', () => {
    const { f, idev, parent } = viommuFixture();
    assert.equal(viommuAlloc(f, 0, parent, { flags: 1 }).errno, 'EOPNOTSUPP');
    assert.equal(viommuAlloc(f, 0, parent, { type: 0 }).errno, 'EOPNOTSUPP');
    assert.equal(viommuAlloc(f, 0, parent).errno, 'ENOENT');
    assert.equal(viommuAlloc(f, idev, parent, { type: 0xdead }).errno, 'EOPNOTSUPP');
  });

  test('hwpt_id must be a nesting-parent paging HWPT', () => {
    const { f, ioas, idev, nested: n } = viommuFixture();
    assert.equal(viommuAlloc(f, idev, 0).errno, 'ENOENT');
    assert.equal(viommuAlloc(f, idev, ioas).errno, 'ENOENT');
    assert.equal(viommuAlloc(f, idev, n).errno, 'ENOENT');
    const plain = hwptAlloc(f, idev, ioas, 0);
    assert.equal(viommuAlloc(f, idev, plain).errno, 'EINVAL');
    assert.equal(destroy(f, plain), undefined);
  });

  test('the vIOMMU holds its parent and is held by its nested HWPT', () => {
    const { f, parent, viommu, nested: n } = viommuFixture();
    assert.equal(destroy(f, parent), 'EBUSY');
    assert.equal(destroy(f, viommu), 'EBUSY');
    assert.equal(destroy(f, n), undefined);
    assert.equal(destroy(f, viommu), undefined);
    assert.equal(destroy(f, parent), undefined);
  });

  test('selftest data: 8 to 24 bytes, in_data echoed to out_data in user memory', () => {
    const { f, idev, parent } = viommuFixture();
    const data = user(f, u32s(0xbeef, 0));
    const r = viommuAlloc(f, idev, parent, { data_len: 8, data_uptr: data });
    assert.equal(r.errno, undefined);
    assert.deepEqual(f.proc.mm.read(data, 8), u32s(0xbeef, 0xbeef));
    assert.equal(viommuAlloc(f, idev, parent, { data_len: 4, data_uptr: data }).errno, 'EINVAL');
    assert.equal(viommuAlloc(f, idev, parent, { data_len: 25, data_uptr: data }).errno, 'EINVAL');
    assert.equal(viommuAlloc(f, idev, parent, { data_len: 8, data_uptr: 0n }).errno, 'EFAULT');
  });

  test('nested HWPTs on a vIOMMU: same data rules; attach needs a vDEVICE (ENOENT)', () => {
    const { f, stdev, idev, viommu } = viommuFixture();
    assert.equal(nestedAlloc(f, idev, viommu, { flags: 1 << 31 }).errno, 'EOPNOTSUPP');
    assert.equal(nestedAlloc(f, idev, viommu, { len: 3 }).errno, 'EINVAL');
    assert.equal(nestedAlloc(f, idev, viommu, { type: 0xdeae }).errno, 'EOPNOTSUPP');
    const n = nested(f, idev, viommu, { flags: PASID });
    iotlbs(f, n, Array(4).fill(IOMMU_TEST_IOTLB_DEFAULT));
    assert.equal(replace(f, stdev, n), 'ENOENT');
    assert.equal(vdeviceAlloc(f, viommu, idev).errno, undefined);
    assert.equal(replace(f, stdev, n), undefined);
    assert.equal(destroy(f, n), 'EBUSY');
  });
});

describe('VDEVICE_ALLOC', () => {
  test('a missing vIOMMU or device is ENOENT', () => {
    const { f, idev, viommu } = viommuFixture();
    assert.equal(vdeviceAlloc(f, 0, idev).errno, 'ENOENT');
    assert.equal(vdeviceAlloc(f, viommu, 0).errno, 'ENOENT');
    assert.equal(vdeviceAlloc(f, idev, idev).errno, 'ENOENT');
  });

  test('one vDEVICE per device and one device per virt_id (EEXIST)', () => {
    const { f, ioas, idev, viommu } = viommuFixture();
    const v = vdeviceAlloc(f, viommu, idev);
    assert.equal(v.errno, undefined);
    assert.equal(vdeviceAlloc(f, viommu, idev, 0x77n).errno, 'EEXIST');
    const other = mockDomain(f, ioas);
    assert.equal(vdeviceAlloc(f, viommu, other.idev, VDEV_ID).errno, 'EEXIST');
    assert.equal(vdeviceAlloc(f, viommu, other.idev, 0x77n).errno, undefined);
    assert.equal(destroy(f, viommu), 'EBUSY');
    assert.equal(destroy(f, v.id), undefined);
    assert.equal(vdeviceAlloc(f, viommu, idev, 0x55n).errno, undefined);
  });

  test('destroying the device destroys its vDEVICE', () => {
    const { f, stdev, idev, viommu, nested: n } = viommuFixture();
    const v = vdeviceAlloc(f, viommu, idev);
    assert.equal(replace(f, stdev, n), undefined);
    assert.equal(destroy(f, stdev), undefined);
    assert.equal(destroy(f, v.id), 'ENOENT');
    assert.equal(destroy(f, n), undefined);
    assert.equal(destroy(f, viommu), undefined);
  });

  test('the device keeps the virt_id captured at attach until the vIOMMU changes', () => {
    const { f, ioas, stdev, idev, viommu, nested: n } = viommuFixture();
    const q = veventqAlloc(f, viommu, { veventq_depth: 8 });
    const v = vdeviceAlloc(f, viommu, idev);
    assert.equal(replace(f, stdev, n), undefined);
    assert.equal(destroy(f, v.id), undefined, 'destroyable while attached');
    assert.equal(trigger(f, idev), undefined, 'the stale virt_id is still reported');
    assert.equal(readEvents(f, q.fd, 64).records[0]!.virtId, 0x99);
    assert.equal(replace(f, stdev, ioas), undefined);
    assert.equal(trigger(f, idev), 'ENOENT');
  });
});

describe('HWPT_INVALIDATE on a vIOMMU (device caches)', () => {
  const T = IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST;
  const D = IOMMU_TEST_DEV_CACHE_DEFAULT;
  const inv = (flags: number, vdev: number, cache: number) => u32s(flags, vdev, cache);
  const cat = (...parts: Uint8Array[]) => new Uint8Array(parts.flatMap((p) => [...p]));

  function fx() {
    const v = viommuFixture();
    assert.equal(vdeviceAlloc(v.f, v.viommu, v.idev).errno, undefined);
    devCaches(v.f, v.idev, [D, D, D, D]);
    return v;
  }

  test('an empty array checks the type only', () => {
    const { f, viommu } = fx();
    assert.deepEqual(invalidate(f, viommu, { type: T, entryLen: 12, num: 0 }), {
      errno: undefined,
      num: 0,
    });
    const bad = IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID;
    assert.deepEqual(invalidate(f, viommu, { type: bad, entryLen: 12, num: 0 }), {
      errno: 'EINVAL',
      num: 0,
    });
    assert.deepEqual(invalidate(f, viommu, { type: bad, entryLen: 12, num: 1 }), {
      errno: 'EINVAL',
      num: 0,
    });
  });

  test('entries of another length are struct-copied: zeroed entries name no vDEVICE (EINVAL)', () => {
    const { f, viommu, idev } = fx();
    for (const entryLen of [1, 13]) {
      assert.deepEqual(invalidate(f, viommu, { type: T, entryLen, num: 1 }), {
        errno: 'EINVAL',
        num: 0,
      });
    }
    const short = invalidate(f, viommu, { type: T, entries: u32s(0, 0x99), entryLen: 8, num: 1 });
    assert.deepEqual(short, { errno: undefined, num: 1 }, 'cache_id reads as 0');
    devCaches(f, idev, [0, D, D, D]);
  });

  test('a long entry with a non-zero tail is E2BIG; an unreadable array EFAULT', () => {
    const { f, viommu, idev } = fx();
    const entries = cat(inv(0, 0x99, 1), u32s(7));
    const r = invalidate(f, viommu, { type: T, entries, entryLen: 16, num: 1 });
    assert.deepEqual(r, { errno: 'E2BIG', num: 0 });
    const z = cat(inv(0, 0x99, 1), u32s(0));
    assert.deepEqual(invalidate(f, viommu, { type: T, entries: z, entryLen: 16, num: 1 }), {
      errno: undefined,
      num: 1,
    });
    devCaches(f, idev, [D, 0, D, D]);
    const bad = invalidate(f, viommu, { type: T, entryLen: 12, num: 1, uptr: 0x10n });
    assert.deepEqual(bad, { errno: 'EFAULT', num: 0 });
  });

  test('no pointer, no entry length: EINVAL', () => {
    const { f, viommu } = fx();
    assert.deepEqual(invalidate(f, viommu, { type: T, entryLen: 12, num: 1, uptr: 0n }), {
      errno: 'EINVAL',
      num: 0,
    });
    assert.deepEqual(invalidate(f, viommu, { type: T, entryLen: 0, num: 1 }), {
      errno: 'EINVAL',
      num: 0,
    });
  });

  test('unknown flags EOPNOTSUPP; cache_id past 3 EINVAL; unknown virt_id EINVAL', () => {
    const { f, viommu } = fx();
    const one = (e: Uint8Array) =>
      invalidate(f, viommu, { type: T, entries: e, entryLen: 12, num: 1 });
    assert.deepEqual(one(inv(0xffffffff, 0x99, 0)), { errno: 'EOPNOTSUPP', num: 0 });
    assert.deepEqual(one(inv(0, 0x99, 4)), { errno: 'EINVAL', num: 0 });
    assert.deepEqual(one(inv(IOMMU_TEST_INVALIDATE_FLAG_ALL, 0x99, 4)), {
      errno: 'EINVAL',
      num: 0,
    });
    assert.deepEqual(one(inv(0, 0x9, 0)), { errno: 'EINVAL', num: 0 });
  });

  test('partial progress, single slots, then FLAG_ALL', () => {
    const { f, viommu, idev } = fx();
    const run = (...e: Uint8Array[]) =>
      invalidate(f, viommu, { type: T, entries: cat(...e), entryLen: 12, num: e.length });
    assert.deepEqual(run(inv(0, 0x99, 0), inv(0xffffffff, 0x99, 1)), {
      errno: 'EOPNOTSUPP',
      num: 1,
    });
    devCaches(f, idev, [0, D, D, D]);
    assert.deepEqual(run(inv(0, 0x99, 0), inv(0, 0x99, 4)), { errno: 'EINVAL', num: 1 });
    devCaches(f, idev, [0, D, D, D]);
    assert.deepEqual(run(inv(0, 0x99, 1)), { errno: undefined, num: 1 });
    devCaches(f, idev, [0, 0, D, D]);
    assert.deepEqual(run(inv(0, 0x99, 2), inv(0, 0x99, 3)), { errno: undefined, num: 2 });
    devCaches(f, idev, [0, 0, 0, 0]);
  });

  test('FLAG_ALL clears every slot of the named device only', () => {
    const { f, ioas, viommu, idev } = fx();
    const other = mockDomain(f, ioas);
    assert.equal(vdeviceAlloc(f, viommu, other.idev, 0x42n).errno, undefined);
    const e = inv(IOMMU_TEST_INVALIDATE_FLAG_ALL, 0x42, 0);
    assert.equal(invalidate(f, viommu, { type: T, entries: e, entryLen: 12, num: 1 }).num, 1);
    devCaches(f, other.idev, [0, 0, 0, 0]);
    devCaches(f, idev, [D, D, D, D]);
  });
});

// ---- vEVENTQ ------------------------------------------------------------------------------

describe('VEVENTQ_ALLOC', () => {
  test('flags, __reserved or type DEFAULT are EOPNOTSUPP; depth 0 EINVAL; no vIOMMU ENOENT', () => {
    const { f, viommu } = viommuFixture();
    assert.equal(veventqAlloc(f, viommu, { flags: 1 }).errno, 'EOPNOTSUPP');
    assert.equal(veventqAlloc(f, viommu, { __reserved: 1 }).errno, 'EOPNOTSUPP');
    assert.equal(veventqAlloc(f, viommu, { type: 0 }).errno, 'EOPNOTSUPP');
    assert.equal(veventqAlloc(f, viommu, { veventq_depth: 0 }).errno, 'EINVAL');
    assert.equal(veventqAlloc(f, 0).errno, 'ENOENT');
    assert.equal(veventqAlloc(f, viommu + 100).errno, 'ENOENT');
  });

  test('one vEVENTQ per type and vIOMMU (EEXIST); another type is fine', () => {
    const { f, viommu } = viommuFixture();
    const q = veventqAlloc(f, viommu);
    assert.equal(q.errno, undefined);
    assert.ok(q.fd > f.fd);
    assert.equal(veventqAlloc(f, viommu).errno, 'EEXIST');
    assert.equal(veventqAlloc(f, viommu, { type: 0x1234 }).errno, undefined);
  });

  test('the fd holds the queue, the queue holds the vIOMMU, the fd holds the context', () => {
    const { f, viommu } = viommuFixture();
    const q = veventqAlloc(f, viommu);
    assert.equal(destroy(f, q.id), 'EBUSY');
    assert.equal(destroy(f, viommu), 'EBUSY');
    f.proc.close(f.fd);
    assert.ok(f.ctx.objectCount > 0, 'the context outlives /dev/iommu');
    f.proc.close(q.fd);
    assert.equal(f.ctx.objectCount, 0);
  });

  test('after close the queue is destroyable and its type free again', () => {
    const { f, viommu } = viommuFixture();
    const q = veventqAlloc(f, viommu);
    f.proc.close(q.fd);
    assert.equal(veventqAlloc(f, viommu).errno, 'EEXIST', 'the object lives until DESTROY');
    assert.equal(destroy(f, q.id), undefined);
    assert.equal(veventqAlloc(f, viommu).errno, undefined);
  });
});

describe('TRIGGER_VEVENT and reading the vEVENTQ', () => {
  /** vIOMMU fixture with a depth-`depth` queue and the device on the vIOMMU's nested HWPT. */
  function fx(depth = 2) {
    const v = viommuFixture();
    const q = veventqAlloc(v.f, v.viommu, { veventq_depth: depth });
    assert.equal(q.errno, undefined);
    assert.equal(vdeviceAlloc(v.f, v.viommu, v.idev).errno, undefined);
    assert.equal(replace(v.f, v.stdev, v.nested), undefined);
    return { ...v, q };
  }

  test('ENOENT for a non-device ID, a device not on a vIOMMU nested HWPT, or virt_id 0', () => {
    const v = viommuFixture();
    veventqAlloc(v.f, v.viommu);
    assert.equal(trigger(v.f, v.stdev), 'ENOENT');
    assert.equal(trigger(v.f, v.idev), 'ENOENT');
    assert.equal(vdeviceAlloc(v.f, v.viommu, v.idev, 0n).errno, undefined);
    assert.equal(replace(v.f, v.stdev, v.nested), undefined);
    assert.equal(trigger(v.f, v.idev), 'ENOENT');
  });

  test('EOPNOTSUPP without a vEVENTQ of the selftest type', () => {
    const v = viommuFixture();
    assert.equal(vdeviceAlloc(v.f, v.viommu, v.idev).errno, undefined);
    assert.equal(replace(v.f, v.stdev, v.nested), undefined);
    assert.equal(trigger(v.f, v.idev), 'EOPNOTSUPP');
  });

  test('a record is {flags 0, sequence} then {virt_id}: 12 bytes, sequence counting from 0', () => {
    const { f, idev, q } = fx(4);
    assert.equal(trigger(f, idev, 2), undefined);
    const r = readEvents(f, q.fd, 64);
    assert.equal(r.n, 24);
    assert.deepEqual(r.records, [
      { flags: 0, sequence: 0, virtId: 0x99 },
      { flags: 0, sequence: 1, virtId: 0x99 },
    ]);
    assert.equal(readEvents(f, q.fd, 64).n, 0, 'empty queue reads 0');
  });

  test('records are never split: too small a buffer reads 0, then whole records only', () => {
    const { f, idev, q } = fx(4);
    assert.equal(trigger(f, idev, 2), undefined);
    assert.equal(readEvents(f, q.fd, 11).n, 0);
    assert.deepEqual(readEvents(f, q.fd, 23).records, [{ flags: 0, sequence: 0, virtId: 0x99 }]);
    assert.deepEqual(readEvents(f, q.fd, 12).records, [{ flags: 0, sequence: 1, virtId: 0x99 }]);
  });

  test('poll: always POLLOUT, POLLIN|POLLRDNORM while records wait', () => {
    const { f, idev, q } = fx();
    const all = POLLIN | POLLOUT | POLLRDNORM;
    assert.equal(f.proc.poll(q.fd, all), POLLOUT);
    trigger(f, idev);
    assert.equal(f.proc.poll(q.fd, all), all);
    readEvents(f, q.fd, 64);
    assert.equal(f.proc.poll(q.fd, all), POLLOUT);
  });

  test('wakeups: one per record queued (the lost-events marker too), none for reads', () => {
    const { f, idev, q } = fx(2);
    const file = f.proc.file(q.fd)!;
    assert.equal(file.wakeups!(), 0);
    trigger(f, idev);
    assert.equal(file.wakeups!(), 1);
    trigger(f, idev, 3);
    assert.equal(file.wakeups!(), 4, 'the event and the marker re-stamped twice');
    readEvents(f, q.fd, 64);
    assert.equal(file.wakeups!(), 4);
  });

  test('reading at a file offset is ESPIPE', () => {
    const { f, idev, q } = fx();
    trigger(f, idev);
    const file = f.proc.file(q.fd)!;
    assert.throws(() => file.read!(f.proc, 64, 4n), /ESPIPE/);
    assert.equal(readEvents(f, q.fd, 64).n, 12, 'the event is still there');
  });

  test('a full queue drops the event and queues the 8-byte lost-events marker (still 0)', () => {
    const { f, idev, q } = fx(2);
    assert.equal(trigger(f, idev, 3), undefined);
    const r = readEvents(f, q.fd, 36);
    assert.equal(r.n, 32);
    assert.deepEqual(r.records, [
      { flags: 0, sequence: 0, virtId: 0x99 },
      { flags: 0, sequence: 1, virtId: 0x99 },
      { flags: 1, sequence: 2 },
    ]);
    assert.equal(trigger(f, idev), undefined);
    assert.deepEqual(readEvents(f, q.fd, 64).records, [{ flags: 0, sequence: 3, virtId: 0x99 }]);
  });

  test('repeated losses re-stamp the one marker at the tail', () => {
    const { f, idev, q } = fx(2);
    assert.equal(trigger(f, idev, 5), undefined);
    assert.deepEqual(readEvents(f, q.fd, 64).records, [
      { flags: 0, sequence: 0, virtId: 0x99 },
      { flags: 0, sequence: 1, virtId: 0x99 },
      { flags: 1, sequence: 4 },
    ]);
  });

  test('a real event queued after the marker removes it', () => {
    const { f, idev, q } = fx(2);
    assert.equal(trigger(f, idev, 3), undefined);
    assert.equal(readEvents(f, q.fd, 12).records.length, 1, 'one slot freed');
    assert.equal(trigger(f, idev), undefined);
    assert.deepEqual(readEvents(f, q.fd, 64).records, [
      { flags: 0, sequence: 1, virtId: 0x99 },
      { flags: 0, sequence: 3, virtId: 0x99 },
    ]);
  });

  test('the selftest trace: trigger 1, read; new vDEVICE 0x88, trigger 3, overflow; trigger 1', () => {
    const { f, ioas, stdev, idev, viommu, nested: n, q } = fx(2);
    trigger(f, idev);
    assert.deepEqual(readEvents(f, q.fd, 12).records, [{ flags: 0, sequence: 0, virtId: 0x99 }]);
    assert.equal(vdeviceAlloc(f, viommu, idev, 0x99n).errno, 'EEXIST');
    assert.equal(replace(f, stdev, ioas), undefined);
    const vdev = f.ctx.list().find((o) => o.type === 'vdevice')!;
    assert.equal(destroy(f, vdev.id), undefined);
    assert.equal(vdeviceAlloc(f, viommu, idev, 0x88n).errno, undefined);
    assert.equal(replace(f, stdev, n), undefined);
    trigger(f, idev, 3);
    const r = readEvents(f, q.fd, 36);
    assert.equal(r.n, 32);
    assert.deepEqual(r.records[2], { flags: 1, sequence: 3 });
    assert.equal(r.records[0]!.virtId, 0x88);
    trigger(f, idev);
    assert.deepEqual(readEvents(f, q.fd, 12).records, [{ flags: 0, sequence: 4, virtId: 0x88 }]);
  });
});

// ---- HW queues ----------------------------------------------------------------------------

describe('HW_QUEUE_ALLOC', () => {
  function hwQueue(
    f: Fixture,
    viommu: number,
    index: number,
    iova: bigint,
    length: bigint,
    extra: Vals = {},
  ) {
    const r = f.call('IOMMU_HW_QUEUE_ALLOC', {
      viommu_id: viommu,
      type: IOMMU_HW_QUEUE_TYPE_SELFTEST,
      index,
      nesting_parent_iova: iova,
      length,
      ...extra,
    });
    return { errno: r.errno, id: r.out.out_hw_queue_id as number };
  }

  function unmap(f: Fixture, ioas: number, iova: bigint, length: bigint) {
    return f.call('IOMMU_IOAS_UNMAP', { ioas_id: ioas, iova, length }).errno;
  }

  /** The vIOMMU fixture with two one-page mappings of a two-page buffer. */
  function fx() {
    const v = viommuFixture();
    const buf = memAt(v.f, 0x6000_0000n, 2n * PAGE);
    const iova = map(v.f, v.ioas, buf, PAGE);
    const iova2 = map(v.f, v.ioas, buf + PAGE, PAGE);
    return { ...v, buf, iova, iova2 };
  }

  test('argument errors: flags/type DEFAULT, length 0, overflow, missing vIOMMU or type', () => {
    const { f, viommu, iova } = fx();
    assert.equal(hwQueue(f, viommu, 0, iova, PAGE, { type: 0 }).errno, 'EOPNOTSUPP');
    assert.equal(hwQueue(f, viommu, 0, iova, PAGE, { flags: 1 }).errno, 'EOPNOTSUPP');
    assert.equal(hwQueue(f, viommu, 0, iova, 0n).errno, 'EINVAL');
    assert.equal(hwQueue(f, viommu, 0, U64_MAX, PAGE).errno, 'EOVERFLOW');
    assert.equal(hwQueue(f, viommu, 0, 0n, U64_MAX).errno, 'ERANGE', 'page rounding overflows');
    assert.equal(hwQueue(f, viommu, 0, 0n, 1n << 40n).errno, 'ENOMEM', 'page array too big');
    assert.equal(hwQueue(f, 0, 0, iova, PAGE).errno, 'ENOENT');
    assert.equal(hwQueue(f, viommu, 0, iova, PAGE, { type: 0x1234 }).errno, 'EOPNOTSUPP');
  });

  test('an unmapped IOVA is ENOENT and leaves no ID or pin behind', () => {
    const { f, viommu, buf } = fx();
    const before = f.ctx.objectCount;
    assert.equal(hwQueue(f, viommu, 0, 1n << 30n, PAGE).errno, 'ENOENT');
    assert.equal(f.ctx.objectCount, before);
    assert.deepEqual(pinCounts(f, buf, 2), [1, 1], 'pinned once, by the domains');
  });

  test('index rules: past the last EINVAL, a gap EIO, a used slot EEXIST', () => {
    const { f, viommu, iova, buf } = fx();
    assert.equal(hwQueue(f, viommu, 1, iova, PAGE).errno, 'EIO');
    assert.equal(hwQueue(f, viommu, 2, iova, PAGE).errno, 'EINVAL');
    assert.deepEqual(pinCounts(f, buf, 1), [1], 'failed queues unpin');
    assert.equal(hwQueue(f, viommu, 0, iova, PAGE).errno, undefined);
    assert.equal(hwQueue(f, viommu, 0, iova, PAGE).errno, 'EEXIST');
  });

  test('a queue locks its pages against IOAS_UNMAP (EBUSY) until destroyed', () => {
    const { f, ioas, viommu, iova, iova2 } = fx();
    const q0 = hwQueue(f, viommu, 0, iova, PAGE);
    assert.equal(q0.errno, undefined);
    assert.equal(unmap(f, ioas, iova, PAGE), 'EBUSY');
    assert.equal(unmap(f, ioas, iova2, PAGE), undefined);
    assert.equal(destroy(f, viommu), 'EBUSY', 'the queue holds the vIOMMU');
    assert.equal(destroy(f, q0.id), undefined);
    assert.equal(unmap(f, ioas, iova, PAGE), undefined);
  });

  test('queue n depends on queue n-1: destroy in descending order', () => {
    const { f, ioas, viommu, iova } = fx();
    const q0 = hwQueue(f, viommu, 0, iova, PAGE);
    const q1 = hwQueue(f, viommu, 1, iova + PAGE / 2n, PAGE / 2n);
    assert.equal(q1.errno, undefined, 'unaligned base');
    assert.equal(destroy(f, q0.id), 'EBUSY');
    assert.equal(destroy(f, q1.id), undefined);
    assert.equal(destroy(f, q0.id), undefined);
    assert.equal(unmap(f, ioas, iova, PAGE), undefined);
    assert.equal(hwQueue(f, viommu, 1, iova + PAGE, PAGE).errno, 'EIO', 'slot 0 is free again');
  });

  test('pages that are not physically consecutive are EFAULT', () => {
    const v = viommuFixture();
    const { f, ioas, viommu } = v;
    const a = memAt(f, 0x7000_0000n, PAGE);
    const b = memAt(f, 0x7100_0000n, PAGE);
    f.proc.mm.write(b, u32s(1));
    f.proc.mm.write(a, u32s(1));
    assert.notEqual(physOf(f, a) + PAGE, physOf(f, b), 'precondition: scattered pages');
    const iova = map(f, ioas, a, PAGE);
    map(f, ioas, b, PAGE, { iova: iova + PAGE });
    assert.equal(hwQueue(f, viommu, 0, iova, 2n * PAGE).errno, 'EFAULT');
    assert.equal(unmap(f, ioas, iova, PAGE), undefined, 'nothing stays locked');
  });

  test('close tears everything down with the queues alive', () => {
    const { f, viommu, iova, buf } = fx();
    assert.equal(hwQueue(f, viommu, 0, iova, PAGE).errno, undefined);
    assert.equal(hwQueue(f, viommu, 1, iova, PAGE).errno, undefined);
    f.proc.close(f.fd);
    assert.equal(f.ctx.objectCount, 0);
    assert.deepEqual(pinCounts(f, buf, 2), [0, 0]);
  });
});
