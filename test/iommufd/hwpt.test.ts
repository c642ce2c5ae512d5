/**
 * HWPT ioctls and device attach (facts sheet §3.10–3.12, §4): HWPT_ALLOC,
 * GET_HW_INFO, dirty tracking, and automatic domains shared by devices.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  IOMMU_HW_INFO_FLAGS,
  IOMMU_HW_INFO_TYPE,
  IOMMU_HWPT_ALLOC_FLAGS,
  IOMMU_HWPT_DATA_TYPE,
  IOMMU_HWPT_GET_DIRTY_BITMAP_FLAGS,
  IommuHwInfoVtd,
} from '../../src/abi/iommufd.ts';
import { IntelIommu } from '../../src/drivers/intel/driver.ts';
import { vtdCapReg, vtdEcapReg } from '../../src/drivers/intel/hw-info.ts';
import { Device, DmaFaultError } from '../../src/iommu/device.ts';
import { Domain } from '../../src/iommu/domain.ts';
import type { IommuDriver } from '../../src/iommu/driver.ts';
import { Group } from '../../src/iommu/group.ts';
import { RadixPgtable } from '../../src/iommu/radix-pgtable.ts';
import { IommufdDevice } from '../../src/iommufd/device.ts';
import type { HwptPaging } from '../../src/iommufd/hw-pagetable.ts';
import type { Ioas } from '../../src/iommufd/ioas.ts';
import { type Fixture, setup } from '../support.ts';
import { allow, map, memAt, PAGE, pinCounts, ranges, SZ_2M, U64_MAX, unmapAll } from './util.ts';

const { DIRTY_TRACKING, NEST_PARENT, FAULT_ID_VALID } = IOMMU_HWPT_ALLOC_FLAGS;
const VA = 0x4000_0000n;
const W48 = (1n << 48n) - 1n;

function hwptAlloc(f: Fixture, fields: Record<string, number | bigint>) {
  const r = f.call('IOMMU_HWPT_ALLOC', fields);
  return { errno: r.errno, id: r.out.out_hwpt_id as number };
}

// ---- IOMMU_HWPT_ALLOC -----------------------------------------------------------

test('HWPT_ALLOC argument checks, in order', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  const plain = f.intelDevice({ dirtyTracking: false });
  const base = { dev_id: idev.id, pt_id: ioas };
  for (const [what, fields, errno] of [
    ['__reserved', { __reserved: 1, dev_id: 99, data_len: 8 }, 'EOPNOTSUPP'],
    ['NONE with data_len', { data_len: 8, dev_id: 99 }, 'EINVAL'],
    ['VTD_S1 without data_len', { data_type: IOMMU_HWPT_DATA_TYPE.VTD_S1, dev_id: 99 }, 'EINVAL'],
    ['unknown device', { dev_id: 99, pt_id: 99 }, 'ENOENT'],
    ['dev_id of an IOAS', { dev_id: ioas }, 'ENOENT'],
    ['pt_id absent', { pt_id: 99 }, 'EINVAL'],
    ['pt_id 0', { pt_id: 0 }, 'EINVAL'],
    ['pt_id of a device', { pt_id: idev.id }, 'EINVAL'],
    ['unknown flag', { flags: 1 << 4 }, 'EOPNOTSUPP'],
    [
      'DIRTY_TRACKING on a unit without it',
      { dev_id: plain.id, flags: DIRTY_TRACKING },
      'EOPNOTSUPP',
    ],
    [
      'FAULT_ID_VALID with NEST_PARENT',
      { flags: FAULT_ID_VALID | NEST_PARENT, fault_id: 99 },
      'EOPNOTSUPP',
    ],
    ['fault_id of no FAULT object', { flags: FAULT_ID_VALID, fault_id: 99 }, 'ENOENT'],
    ['fault_id of an IOAS', { flags: FAULT_ID_VALID, fault_id: ioas }, 'ENOENT'],
  ] as const) {
    assert.deepEqual(hwptAlloc(f, { ...base, ...fields }), { errno, id: 0 }, what);
  }
  assert.equal(f.ctx.objectCount, 3, 'no HWPT was created');
  assert.deepEqual(ranges(f, ioas), { ranges: [[0n, U64_MAX]], align: 1n });
  assert.equal(f.ioas(), 4, 'every failed HWPT released its ID');
});

test('HWPT_ALLOC on an IOAS: a manual domain filled with the existing areas', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice({
    reserved: [{ start: 0xfee0_0000n, last: 0xfeef_ffffn, kind: 'msi' }],
  });
  const va = memAt(f, VA, 4n * PAGE);
  f.proc.mm.write(va + PAGE, Uint8Array.of(0x42));
  const iova = map(f, ioas, va, 4n * PAGE);
  assert.equal(f.kernel.memory.pinnedPages(), 0n, 'lazy');
  const hwpt = hwptAlloc(f, { dev_id: idev.id, pt_id: ioas, flags: NEST_PARENT });
  assert.deepEqual(hwpt, { errno: undefined, id: 3 });
  assert.deepEqual(pinCounts(f, va, 4), [1, 1, 1, 1]);
  // the aperture is reserved; the device's MSI window only once it attaches
  assert.deepEqual(ranges(f, ioas), { ranges: [[0n, W48]], align: PAGE });
  assert.equal(f.call('IOMMU_DESTROY', { id: ioas }).errno, 'EBUSY');
  assert.equal(idev.attach(hwpt.id).id, hwpt.id);
  assert.equal(ranges(f, ioas).ranges.length, 2);
  assert.deepEqual(idev.dev.dmaRead(iova + PAGE, 1), Uint8Array.of(0x42));
  assert.equal(f.call('IOMMU_DESTROY', { id: hwpt.id }).errno, 'EBUSY');
  idev.detach();
  assert.equal(f.ctx.lookup(hwpt.id)?.type, 'hwpt_paging', 'a manual HWPT survives detach');
  assert.equal(f.call('IOMMU_DESTROY', { id: hwpt.id }).errno, undefined);
  assert.equal(f.kernel.memory.pinnedPages(), 0n);
  assert.deepEqual(ranges(f, ioas), { ranges: [[0n, U64_MAX]], align: 1n });
  assert.equal(f.call('IOMMU_DESTROY', { id: ioas }).errno, undefined);
});

test('HWPT_ALLOC on an auto HWPT (nesting) is EOPNOTSUPP', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  const auto = idev.attach(ioas);
  assert.deepEqual(hwptAlloc(f, { dev_id: idev.id, pt_id: auto.id }), {
    errno: 'EOPNOTSUPP',
    id: 0,
  });
});

test('a manual HWPT is never picked by an attach to its IOAS', () => {
  const f = setup();
  const unit = new IntelIommu();
  const ioas = f.ioas();
  const a = f.intelDevice({ iommu: unit });
  const b = f.intelDevice({ iommu: unit });
  const manual = hwptAlloc(f, { dev_id: a.id, pt_id: ioas }).id;
  const auto = b.attach(ioas);
  assert.notEqual(auto.id, manual);
  assert.equal(auto.autoDomain, true);
  assert.equal((f.ctx.lookup(ioas) as Ioas).iopt.domains.length, 2);
  b.detach();
  assert.equal(f.ctx.lookup(auto.id), undefined);
  assert.equal(f.ctx.lookup(manual)?.type, 'hwpt_paging');
});

test('domain add: EADDRINUSE for areas outside the aperture or misaligned; nothing changes', () => {
  for (const [what, iova, offset, length, addressWidth] of [
    ['area above 2^39', 1n << 39n, 0n, PAGE, 39],
    ['area straddling 2^39', (1n << 39n) - PAGE, 0n, 2n * PAGE, 39],
    ['iova not page aligned', 0x1_0800n, 0n, PAGE, 48],
    ['length not page aligned', 0x1_0000n, 0n, 0x1800n, 48],
    ['sub-page offset of the VA', 0x1_0000n, 0x800n, PAGE, 48],
  ] as const) {
    const f = setup();
    const ioas = f.ioas();
    const idev = f.intelDevice({ addressWidth });
    const va = memAt(f, VA, 4n * PAGE);
    map(f, ioas, va + offset, length, { iova });
    assert.deepEqual(
      hwptAlloc(f, { dev_id: idev.id, pt_id: ioas }),
      { errno: 'EADDRINUSE', id: 0 },
      what,
    );
    assert.throws(() => idev.attach(ioas), { code: 'EADDRINUSE' }, what);
    assert.equal(f.ctx.objectCount, 2, what);
    assert.deepEqual(ranges(f, ioas), { ranges: [[0n, U64_MAX]], align: 1n }, what);
    assert.equal(f.kernel.memory.pinnedPages(), 0n);
    assert.equal(unmapAll(f, ioas), length, what);
  }
});

test('domain add: EADDRINUSE when the aperture would cut into an allowed range', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice({ addressWidth: 39 });
  assert.equal(allow(f, ioas, [[(1n << 39n) - PAGE, (1n << 39n) + PAGE]]), undefined);
  assert.equal(hwptAlloc(f, { dev_id: idev.id, pt_id: ioas }).errno, 'EADDRINUSE');
  assert.equal(allow(f, ioas, [[0x1000n, (1n << 39n) - 1n]]), undefined);
  assert.equal(hwptAlloc(f, { dev_id: idev.id, pt_id: ioas }).errno, undefined);
});

test('domain add: pinning errors propagate (EFAULT) and leave no trace', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  const va = memAt(f, VA, PAGE);
  map(f, ioas, va, PAGE, { iova: 0x1000n });
  map(f, ioas, 0x7000_0000n, PAGE, { iova: 0x2000n }); // nothing behind it
  assert.equal(hwptAlloc(f, { dev_id: idev.id, pt_id: ioas }).errno, 'EFAULT');
  assert.deepEqual(pinCounts(f, va, 1), [0]);
  assert.equal(f.ctx.objectCount, 2);
  assert.deepEqual(ranges(f, ioas).align, 1n);
});

test('domain add: a domain whose smallest page exceeds PAGE_SIZE is EINVAL', () => {
  const f = setup();
  const big: IommuDriver = {
    name: 'big-pages',
    domainAllocPaging: () =>
      new Domain(
        big,
        [
          {
            start: 0n,
            last: W48,
            table: new RadixPgtable({
              pageShift: 12,
              bitsPerLevel: 9,
              levels: 4,
              base: 0n,
              pgsizeBitmap: SZ_2M,
            }),
          },
        ],
        { dirtyCapable: false },
      ),
    attachDev() {},
    hwInfo: () => undefined,
    dirtyTrackingCapable: () => false,
    maxPasidLog2: () => 0,
  };
  const ioas = f.ioas();
  const idev = IommufdDevice.bind(f.ctx, new Device('big', big, new Group(100), f.kernel.memory));
  assert.deepEqual(hwptAlloc(f, { dev_id: idev.id, pt_id: ioas }), { errno: 'EINVAL', id: 0 });
  assert.throws(() => idev.attach(ioas), { code: 'EINVAL' });
  assert.equal(idev.hwpt, undefined);
  assert.equal(f.ctx.objectCount, 2);
  // GET_HW_INFO of a driver without hw_info: type NONE, no data, buffer zeroed
  const buf = f.mem(PAGE);
  f.proc.mm.write(buf, new Uint8Array(16).fill(0xff));
  const r = f.call('IOMMU_GET_HW_INFO', { dev_id: idev.id, data_len: 8, data_uptr: buf });
  assert.equal(r.errno, undefined);
  assert.deepEqual(
    [r.out.out_data_type, r.out.data_len, r.out.out_capabilities, r.out.out_max_pasid_log2],
    [IOMMU_HW_INFO_TYPE.NONE, 0, 0n, 0],
  );
  assert.deepEqual(
    f.proc.mm.read(buf, 16),
    Uint8Array.from([...Array(8).fill(0), ...Array(8).fill(0xff)]),
  );
});

/**
 * A driver whose devices named `cc*` report IOMMU_CAP_ENFORCE_CACHE_COHERENCY
 * and whose domains can enforce it iff `enforceable`; the op's calls are counted.
 */
function ccDriver(enforceable: boolean) {
  const calls = { enforce: 0 };
  const driver: IommuDriver = {
    name: 'cc',
    domainAllocPaging: () => {
      const table = new RadixPgtable({
        pageShift: 12,
        bitsPerLevel: 9,
        levels: 4,
        base: 0n,
        pgsizeBitmap: PAGE,
      });
      const d = new Domain(driver, [{ start: 0n, last: W48, table }], { dirtyCapable: false });
      d.enforceCacheCoherency = () => {
        calls.enforce++;
        return enforceable;
      };
      return d;
    },
    attachDev() {},
    hwInfo: () => undefined,
    dirtyTrackingCapable: () => false,
    enforceCacheCoherencyCapable: (dev) => dev.name.startsWith('cc'),
    maxPasidLog2: () => 0,
  };
  return { driver, calls };
}

test('enforce_cache_coherency is set at HWPT allocation for a capable device, never at attach', () => {
  const f = setup();
  const { driver, calls } = ccDriver(true);
  const bind = (name: string, group: number) =>
    IommufdDevice.bind(f.ctx, new Device(name, driver, new Group(group), f.kernel.memory));
  const cc = bind('cc0', 100);
  const plain = bind('plain0', 101);
  const ioas = f.ioas();
  const enforced = (id: number) => (f.ctx.lookup(id) as HwptPaging).enforceCacheCoherency;
  const forCc = hwptAlloc(f, { dev_id: cc.id, pt_id: ioas });
  assert.equal(forCc.errno, undefined);
  assert.equal(enforced(forCc.id), true);
  assert.equal(calls.enforce, 1);
  // the device is not capable: the op is not even asked, though the domain could
  const forPlain = hwptAlloc(f, { dev_id: plain.id, pt_id: ioas });
  assert.equal(enforced(forPlain.id), false);
  assert.equal(calls.enforce, 1);
  // a capable device may attach to the non-enforcing HWPT; it stays non-enforcing
  cc.attach(forPlain.id);
  assert.equal(enforced(forPlain.id), false);
  assert.equal(calls.enforce, 1);
  // the auto domain made for the capable device enforces it
  const auto = bind('cc1', 102).attach(f.ioas());
  assert.equal(enforced(auto.id), true);
  assert.equal(calls.enforce, 2);
});

test('a capable device whose domain cannot enforce coherency: EINVAL, nothing remains', () => {
  const f = setup();
  const { driver, calls } = ccDriver(false);
  const idev = IommufdDevice.bind(
    f.ctx,
    new Device('cc0', driver, new Group(100), f.kernel.memory),
  );
  const ioas = f.ioas();
  assert.deepEqual(hwptAlloc(f, { dev_id: idev.id, pt_id: ioas }), { errno: 'EINVAL', id: 0 });
  assert.throws(() => idev.attach(ioas), { code: 'EINVAL' });
  assert.equal(calls.enforce, 2);
  assert.equal(idev.hwpt, undefined);
  assert.equal((f.ctx.lookup(ioas) as Ioas).hwpts.length, 0);
  assert.equal(f.ctx.objectCount, 2);
});

// ---- IOMMU_GET_HW_INFO -------------------------------------------------------------

test('GET_HW_INFO checks: flags, reserved bytes, dev_id, requested type', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  const { INPUT_TYPE } = IOMMU_HW_INFO_FLAGS;
  for (const [what, fields, errno] of [
    ['unknown flag', { flags: 2 }, 'EOPNOTSUPP'],
    ['__reserved[0]', { __reserved_0: 1 }, 'EOPNOTSUPP'],
    ['__reserved[2]', { __reserved_2: 0x80 }, 'EOPNOTSUPP'],
    ['unknown device', { dev_id: 99 }, 'ENOENT'],
    ['dev_id of an IOAS', { dev_id: ioas }, 'ENOENT'],
    [
      'INPUT_TYPE of another type',
      { flags: INPUT_TYPE, out_data_type: IOMMU_HW_INFO_TYPE.ARM_SMMUV3 },
      'EOPNOTSUPP',
    ],
    [
      'INPUT_TYPE VT-d',
      { flags: INPUT_TYPE, out_data_type: IOMMU_HW_INFO_TYPE.INTEL_VTD },
      undefined,
    ],
    ['INPUT_TYPE DEFAULT', { flags: INPUT_TYPE, out_data_type: 0 }, undefined],
    ['no INPUT_TYPE: in_data_type ignored', { out_data_type: 7 }, undefined],
  ] as const) {
    const r = f.call('IOMMU_GET_HW_INFO', { dev_id: idev.id, ...fields });
    assert.equal(r.errno, errno, what);
    if (!errno) assert.equal(r.out.out_data_type, IOMMU_HW_INFO_TYPE.INTEL_VTD, what);
  }
});

test('GET_HW_INFO copies min(data_len, 24) bytes, zero-fills the rest, reports the full length', () => {
  const f = setup();
  const idev = f.intelDevice({ addressWidth: 57 });
  const unit = idev.dev.driver as IntelIommu;
  const vtd = IommuHwInfoVtd.encode({
    flags: 0,
    cap_reg: vtdCapReg(unit.features),
    ecap_reg: vtdEcapReg(unit.features),
  });
  const buf = f.mem(PAGE);
  for (const dataLen of [0, 4, 16, 24, 64]) {
    f.proc.mm.write(buf, new Uint8Array(128).fill(0xcc));
    const r = f.call('IOMMU_GET_HW_INFO', { dev_id: idev.id, data_len: dataLen, data_uptr: buf });
    assert.equal(r.errno, undefined);
    assert.equal(r.out.data_len, 24, `data_len ${dataLen}`);
    assert.equal(r.out.out_data_type, IOMMU_HW_INFO_TYPE.INTEL_VTD);
    assert.equal(r.out.out_capabilities, 1n, 'DIRTY_TRACKING');
    assert.equal(r.out.out_max_pasid_log2, 20);
    const got = f.proc.mm.read(buf, 128);
    const n = Math.min(dataLen, 24);
    assert.deepEqual(got.subarray(0, n), vtd.subarray(0, n));
    assert.deepEqual(got.subarray(n, dataLen), new Uint8Array(Math.max(0, dataLen - n)), 'zeroed');
    assert.deepEqual(got.subarray(dataLen), new Uint8Array(128 - dataLen).fill(0xcc), 'untouched');
  }
  const decoded = IommuHwInfoVtd.decode(vtd);
  assert.equal((decoded.cap_reg >> 16n) & 0x3fn, 56n, 'MGAW = width - 1');
  assert.equal(
    f.call('IOMMU_GET_HW_INFO', { dev_id: idev.id, data_len: 8, data_uptr: 0xdead_0000n }).errno,
    'EFAULT',
  );
  assert.equal(
    f.call('IOMMU_GET_HW_INFO', { dev_id: idev.id, data_len: 0, data_uptr: 0xdead_0000n }).errno,
    undefined,
  );
});

test('GET_HW_INFO capabilities and PASID width follow the unit', () => {
  const f = setup();
  const idev = f.intelDevice({ dirtyTracking: false, maxPasidLog2: 0 });
  const r = f.call('IOMMU_GET_HW_INFO', { dev_id: idev.id });
  assert.equal(r.out.out_capabilities, 0n);
  assert.equal(r.out.out_max_pasid_log2, 0);
});

// ---- dirty tracking ------------------------------------------------------------------

/** An IOAS, a device attached to a manual HWPT allocated with `flags`, 8 pages mapped at 0x10_0000. */
function dirtySetup(flags: number = DIRTY_TRACKING) {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  const va = memAt(f, VA, 8n * PAGE);
  map(f, ioas, va, 8n * PAGE, { iova: 0x10_0000n });
  const hwpt = hwptAlloc(f, { dev_id: idev.id, pt_id: ioas, flags }).id;
  idev.attach(hwpt);
  const bitmap = f.mem(PAGE);
  const track = (enable: boolean) =>
    f.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: hwpt, flags: enable ? 1 : 0 }).errno;
  /** GET_DIRTY_BITMAP into a zeroed bitmap; returns the first 8 bytes as a bigint. */
  const read = (fields: Record<string, number | bigint> = {}) => {
    f.proc.mm.write(bitmap, new Uint8Array(64));
    const r = f.call('IOMMU_HWPT_GET_DIRTY_BITMAP', {
      hwpt_id: hwpt,
      iova: 0x10_0000n,
      length: 8n * PAGE,
      page_size: PAGE,
      data: bitmap,
      ...fields,
    });
    const bits = new DataView(f.proc.mm.read(bitmap, 8).buffer).getBigUint64(0, true);
    return { errno: r.errno, bits };
  };
  return { f, ioas, idev, hwpt, va, track, read, dev: idev.dev };
}

test('SET_DIRTY_TRACKING: EOPNOTSUPP for unknown flags or domains without dirty tracking', () => {
  const { f, ioas, hwpt, track } = dirtySetup();
  assert.equal(
    f.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: hwpt, flags: 2 }).errno,
    'EOPNOTSUPP',
  );
  for (const id of [ioas, 0, 99]) {
    assert.equal(
      f.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: id, flags: 1 }).errno,
      'ENOENT',
    );
  }
  assert.equal(track(true), undefined);
  assert.equal(track(false), undefined);
  assert.equal(
    f.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: hwpt, flags: 1, __reserved: 1 }).errno,
    undefined,
    '__reserved is not checked',
  );
  const plain = dirtySetup(0);
  assert.equal(plain.track(true), 'EOPNOTSUPP', 'allocated without DIRTY_TRACKING');
  const g = setup();
  const auto = g.intelDevice().attach(g.ioas());
  assert.equal(
    g.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: auto.id, flags: 1 }).errno,
    'EOPNOTSUPP',
  );
});

test('GET_DIRTY_BITMAP argument checks, in order', () => {
  const { read } = dirtySetup();
  const { NO_CLEAR } = IOMMU_HWPT_GET_DIRTY_BITMAP_FLAGS;
  for (const [what, fields, errno] of [
    ['unknown flag', { flags: NO_CLEAR | 2, hwpt_id: 99 }, 'EOPNOTSUPP'],
    ['__reserved', { __reserved: 1, hwpt_id: 99 }, 'EOPNOTSUPP'],
    ['unknown HWPT', { hwpt_id: 99, page_size: 0n }, 'ENOENT'],
    ['range wraps', { length: U64_MAX, page_size: 0n }, 'EOVERFLOW'],
    ['length 0 (length - 1 wraps past iova)', { length: 0n, page_size: 0n }, 'EOVERFLOW'],
    [
      'length 0 at iova 0 is the whole space: page_size next',
      { iova: 0n, length: 0n, page_size: 0n },
      'EINVAL',
    ],
    ['iova below IOAS alignment', { iova: 0x10_0800n, page_size: 0n }, 'EINVAL'],
    ['end below IOAS alignment', { length: 0x1800n, page_size: 0n }, 'EINVAL'],
    ['page_size 0', { page_size: 0n }, 'EINVAL'],
    [
      'iova not page_size aligned',
      { iova: 0x10_1000n, length: 0x2000n, page_size: 0x2000n },
      'EINVAL',
    ],
    ['end not page_size aligned', { length: 0x3000n, page_size: 0x2000n }, 'EINVAL'],
  ] as const) {
    assert.equal(read(fields).errno, errno, what);
  }
  const plain = dirtySetup(0);
  assert.equal(plain.read({ page_size: 0n }).errno, 'EINVAL', 'the range is checked first');
  assert.equal(plain.read().errno, 'EOPNOTSUPP', 'then the dirty ops');
  // Linux 7.2 (npm run differential, seed 2044.103): iova 0, length 0 passes the range checks
  assert.equal(plain.read({ iova: 0n, length: 0n }).errno, 'EOPNOTSUPP');
});

test('DMA writes set dirty bits while tracking; a read clears them unless NO_CLEAR', () => {
  const { track, read, dev } = dirtySetup();
  assert.equal(track(true), undefined);
  assert.deepEqual(read(), { errno: undefined, bits: 0n });
  dev.dmaWrite(0x10_1000n, Uint8Array.of(1));
  dev.dmaWrite(0x10_5ff0n, new Uint8Array(0x20)); // pages 5 and 6
  dev.dmaRead(0x10_3000n, 16); // reads set nothing
  assert.deepEqual(read({ flags: IOMMU_HWPT_GET_DIRTY_BITMAP_FLAGS.NO_CLEAR }), {
    errno: undefined,
    bits: 0b0110_0010n,
  });
  assert.equal(read().bits, 0b0110_0010n, 'NO_CLEAR kept them');
  assert.equal(read().bits, 0n, 'the previous read cleared them');
  dev.dmaWrite(0x10_7000n, Uint8Array.of(1));
  assert.equal(read().bits, 0b1000_0000n);
});

test('dirty bits count from the requested iova in page_size units', () => {
  const { track, read, dev } = dirtySetup();
  track(true);
  dev.dmaWrite(0x10_5000n, Uint8Array.of(1));
  dev.dmaWrite(0x10_1000n, Uint8Array.of(1));
  assert.equal(
    read({ iova: 0x10_4000n, length: 0x4000n, flags: 1 }).bits,
    0b10n,
    'bit 1 = 0x105000',
  );
  assert.equal(read({ page_size: 0x2000n, flags: 1 }).bits, 0b0100n | 0b0001n, '8 KiB units');
  // reading part of the range clears only that part
  assert.equal(read({ iova: 0x10_4000n, length: 0x4000n }).bits, 0b10n);
  assert.equal(read().bits, 0b10n, 'page 1 is still dirty');
  // a range past the mapped areas reports nothing there
  dev.dmaWrite(0x10_7000n, Uint8Array.of(1));
  assert.deepEqual(read({ iova: 0x10_6000n, length: 0x4000n }), { errno: undefined, bits: 0b10n });
});

test('tracking off sets no bits and reports none; enabling clears stale bits', () => {
  const { track, read, dev } = dirtySetup();
  dev.dmaWrite(0x10_0000n, Uint8Array.of(1));
  assert.deepEqual(read(), { errno: undefined, bits: 0n }, 'never enabled');
  track(true);
  dev.dmaWrite(0x10_2000n, Uint8Array.of(1));
  track(false);
  dev.dmaWrite(0x10_3000n, Uint8Array.of(1));
  assert.deepEqual(
    read({ flags: 1 }),
    { errno: undefined, bits: 0n },
    'disabled: nothing reported',
  );
  track(true);
  assert.equal(read().bits, 0n, 'the bit of the previous cycle is gone');
  dev.dmaWrite(0x10_4000n, Uint8Array.of(1));
  assert.equal(read().bits, 0b1_0000n);
});

test('dirty tracking survives unrelated maps and stops at unmapped IOVA', () => {
  const { f, ioas, track, read, dev, va } = dirtySetup();
  track(true);
  dev.dmaWrite(0x10_0000n, Uint8Array.of(1));
  map(f, ioas, va, PAGE, { iova: 0x20_0000n });
  assert.equal(read().bits, 1n);
  f.call('IOMMU_IOAS_UNMAP', { ioas_id: ioas, iova: 0x10_0000n, length: 8n * PAGE });
  assert.throws(() => dev.dmaWrite(0x10_0000n, Uint8Array.of(1)), DmaFaultError);
  assert.deepEqual(read(), { errno: undefined, bits: 0n });
});

test('a DMA write into a 2 MiB leaf dirties the whole leaf', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  const hwpt = hwptAlloc(f, { dev_id: idev.id, pt_id: ioas, flags: DIRTY_TRACKING }).id;
  idev.attach(hwpt);
  const va = f.proc.mm.mmap({ length: SZ_2M, prot: { read: true, write: true }, hugetlb: true });
  map(f, ioas, va, SZ_2M, { iova: SZ_2M });
  f.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: hwpt, flags: 1 });
  idev.dev.dmaWrite(SZ_2M + 0x5000n, Uint8Array.of(1));
  const bitmap = f.mem(PAGE);
  const r = f.call('IOMMU_HWPT_GET_DIRTY_BITMAP', {
    hwpt_id: hwpt,
    iova: SZ_2M,
    length: SZ_2M,
    page_size: PAGE,
    data: bitmap,
  });
  assert.equal(r.errno, undefined);
  assert.deepEqual(f.proc.mm.read(bitmap, 65), Uint8Array.from([...Array(64).fill(0xff), 0]));
});

test('GET_DIRTY_BITMAP from an unaligned IOVA ORs exactly the leaf bits into the bitmap', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  const hwpt = hwptAlloc(f, { dev_id: idev.id, pt_id: ioas, flags: DIRTY_TRACKING }).id;
  idev.attach(hwpt);
  const va = f.proc.mm.mmap({ length: SZ_2M, prot: { read: true, write: true }, hugetlb: true });
  map(f, ioas, va, SZ_2M, { iova: SZ_2M });
  map(f, ioas, f.mem(3n * PAGE), 3n * PAGE, { iova: SZ_2M - 3n * PAGE });
  assert.equal(idev.hwpt!.domain.apertures[0]!.table.lookup(SZ_2M)?.pageSize, SZ_2M);
  f.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: hwpt, flags: 1 });
  idev.dev.dmaWrite(SZ_2M + 0x1_2345n, Uint8Array.of(1));
  const bitmap = f.mem(PAGE);
  f.proc.mm.write(bitmap, Uint8Array.of(0b010));
  const r = f.call('IOMMU_HWPT_GET_DIRTY_BITMAP', {
    hwpt_id: hwpt,
    iova: SZ_2M - 3n * PAGE,
    length: 3n * PAGE + SZ_2M,
    page_size: PAGE,
    data: bitmap,
  });
  assert.equal(r.errno, undefined);
  const bytes = f.proc.mm.read(bitmap, 66);
  assert.equal(bytes[0], 0b1111_1010, 'bits 0-2 (clean pages) keep their old value, 3-7 dirty');
  assert.ok(bytes.subarray(1, 64).every((b) => b === 0xff));
  assert.equal(bytes[64], 0b0000_0111, 'bits 512-514 end the leaf');
  assert.equal(bytes[65], 0);
});

test('GET_DIRTY_BITMAP into a bitmap running into a bad page: 0, its bits dropped, the dirty flags cleared all the same', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  const hwpt = hwptAlloc(f, { dev_id: idev.id, pt_id: ioas, flags: DIRTY_TRACKING }).id;
  idev.attach(hwpt);
  map(f, ioas, memAt(f, VA, 64n * PAGE), 64n * PAGE, { iova: 0x10_0000n });
  f.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: hwpt, flags: 1 });
  // 64 bits: bytes 0-3 at the end of one page, bytes 4-7 on the next
  const pages = f.proc.mm.mmap({ length: 2n * PAGE, prot: { read: true, write: true } });
  const data = pages + PAGE - 4n;
  const get = (at = data, flags = 0) =>
    f.call('IOMMU_HWPT_GET_DIRTY_BITMAP', {
      hwpt_id: hwpt,
      flags,
      iova: 0x10_0000n,
      length: 64n * PAGE,
      page_size: PAGE,
      data: at,
    }).errno;
  // every other page dirty: one IOPTE per bit
  const dirty = () => {
    for (let i = 0n; i < 64n; i += 2n) idev.dev.dmaWrite(0x10_0000n + i * PAGE, Uint8Array.of(1));
  };
  dirty();
  assert.equal(get(), undefined);
  assert.deepEqual([...f.proc.mm.read(data, 8)], Array(8).fill(0x55));
  const clean = f.mem(PAGE);
  for (const [what, change] of [
    ['read-only', () => f.proc.mm.mprotect(pages + PAGE, PAGE, { read: true, write: false })],
    ['unmapped', () => f.proc.mm.munmap(pages + PAGE, PAGE)],
  ] as const) {
    change();
    f.proc.mm.write(data, new Uint8Array(4));
    dirty();
    assert.equal(get(data, IOMMU_HWPT_GET_DIRTY_BITMAP_FLAGS.NO_CLEAR), undefined, what);
    assert.deepEqual(
      [...f.proc.mm.read(data, 4)],
      [0x55, 0x55, 0x55, 0x55],
      `${what}: the first page's bits`,
    );
    assert.equal(get(clean, IOMMU_HWPT_GET_DIRTY_BITMAP_FLAGS.NO_CLEAR), undefined);
    assert.deepEqual([...f.proc.mm.read(clean, 8)], Array(8).fill(0x55), 'NO_CLEAR kept them');
    assert.equal(get(), undefined, `${what}: still 0`);
    f.proc.mm.write(clean, new Uint8Array(8));
    assert.equal(get(clean), undefined);
    assert.deepEqual(
      [...f.proc.mm.read(clean, 8)],
      Array(8).fill(0),
      'the refused read cleared them',
    );
  }
});

test('GET_DIRTY_BITMAP with a page_size that is no power of two: masks of page_size - 1, a bit per its lowest set bit', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  const hwpt = hwptAlloc(f, { dev_id: idev.id, pt_id: ioas, flags: DIRTY_TRACKING }).id;
  idev.attach(hwpt);
  map(f, ioas, memAt(f, VA, 48n * PAGE), 48n * PAGE, { iova: 0x10_0000n });
  f.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: hwpt, flags: 1 });
  for (let i = 0n; i < 48n; i += 2n) idev.dev.dmaWrite(0x10_0000n + i * PAGE, Uint8Array.of(1));
  const data = f.mem(PAGE);
  const get = (iova: bigint, length: bigint, page_size: bigint) =>
    f.call('IOMMU_HWPT_GET_DIRTY_BITMAP', {
      hwpt_id: hwpt,
      flags: IOMMU_HWPT_GET_DIRTY_BITMAP_FLAGS.NO_CLEAR,
      iova,
      length,
      page_size,
      data,
    }).errno;
  // 0x3000 - 1 = 0x2fff: 0x10_3000 is a multiple of 0x3000 yet has bit 12 of the mask
  assert.equal(get(0x10_3000n, 0x3000n * 4n, 0x3000n), 'EINVAL');
  assert.equal(get(0x10_0000n, 0x3000n, 0x3000n), 'EINVAL', 'iova + length = 0x10_3000');
  assert.equal(get(0x10_0000n, 0x4000n, 0x3000n), undefined, 'both clear of 0x2fff');
  // one bit per 4 KiB (0x3000's lowest bit), not per 12 KiB: the even bits
  assert.equal(get(0x10_0000n, 48n * PAGE, 3n * PAGE), undefined);
  assert.deepEqual([...f.proc.mm.read(data, 8)], [...Array(6).fill(0x55), 0, 0]);
});

// ---- automatic domains -----------------------------------------------------------------

test('devices behind one unit share the IOAS auto domain, destroyed when the last detaches', () => {
  const f = setup();
  const unit = new IntelIommu({ addressWidth: 39 });
  const ioas = f.ioas();
  const d1 = f.intelDevice({ iommu: unit });
  const d2 = f.intelDevice({ iommu: unit });
  const va = memAt(f, VA, 2n * PAGE);
  f.proc.mm.write(va, Uint8Array.of(0x33));
  const iova = map(f, ioas, va, 2n * PAGE);
  const h1 = d1.attach(ioas);
  const h2 = d2.attach(ioas);
  assert.equal(h2, h1);
  assert.equal(h1.id, 4);
  assert.equal(h1.autoDomain, true);
  assert.equal(d1.dev.group.domain, d2.dev.group.domain);
  assert.deepEqual(pinCounts(f, va, 2), [1, 1]);
  assert.deepEqual(d2.dev.dmaRead(iova, 1), Uint8Array.of(0x33));
  assert.equal(f.call('IOMMU_DESTROY', { id: h1.id }).errno, 'EBUSY');
  d1.detach();
  assert.equal(f.ctx.lookup(h1.id), h1, 'still used by d2');
  assert.throws(() => d1.dev.dmaRead(iova, 1), DmaFaultError);
  assert.deepEqual(d2.dev.dmaRead(iova, 1), Uint8Array.of(0x33));
  d2.detach();
  assert.equal(f.ctx.lookup(h1.id), undefined);
  assert.equal(f.call('IOMMU_DESTROY', { id: h1.id }).errno, 'ENOENT');
  assert.deepEqual(pinCounts(f, va, 2), [0, 0]);
  assert.deepEqual(ranges(f, ioas), { ranges: [[0n, U64_MAX]], align: 1n });
  assert.equal(f.call('IOMMU_DESTROY', { id: ioas }).errno, undefined);
});

test('a device behind another unit gets its own auto domain; pages stay pinned once', () => {
  const f = setup();
  const ioas = f.ioas();
  const d1 = f.intelDevice();
  const d2 = f.intelDevice({ addressWidth: 39 });
  const va = memAt(f, VA, PAGE);
  const iova = map(f, ioas, va, PAGE);
  const h1 = d1.attach(ioas);
  const h2 = d2.attach(ioas);
  assert.notEqual(h2.id, h1.id);
  assert.equal((f.ctx.lookup(ioas) as Ioas).iopt.domains.length, 2);
  assert.deepEqual(pinCounts(f, va, 1), [1]);
  d2.dev.dmaWrite(iova, Uint8Array.of(9));
  assert.deepEqual(d1.dev.dmaRead(iova, 1), Uint8Array.of(9));
  d1.detach();
  assert.deepEqual(pinCounts(f, va, 1), [1], 'the other domain still maps it');
  assert.deepEqual(ranges(f, ioas).ranges, [[0n, (1n << 39n) - 1n]]);
  d2.detach();
  assert.deepEqual(pinCounts(f, va, 1), [0]);
});

test('attach: a reserved region of the device over an existing area is EADDRINUSE', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice({
    reserved: [{ start: 0xfee0_0000n, last: 0xfeef_ffffn, kind: 'msi' }],
  });
  map(f, ioas, memAt(f, VA, PAGE), PAGE, { iova: 0xfeef_f000n });
  assert.throws(() => idev.attach(ioas), { code: 'EADDRINUSE' });
  assert.equal(idev.hwpt, undefined);
  assert.equal(f.ctx.objectCount, 2);
  assert.deepEqual(ranges(f, ioas), { ranges: [[0n, U64_MAX]], align: 1n });
  // a manual HWPT on the IOAS is fine (no device regions), attaching to it is not
  const hwpt = hwptAlloc(f, { dev_id: idev.id, pt_id: ioas });
  assert.equal(hwpt.errno, undefined);
  assert.throws(() => idev.attach(hwpt.id), { code: 'EADDRINUSE' });
  assert.equal(idev.dev.group.domain, undefined);
  assert.deepEqual(ranges(f, ioas).ranges, [[0n, W48]]);
});

test('moving a device to another IOAS releases its old auto domain and reservations', () => {
  const f = setup();
  const a = f.ioas();
  const b = f.ioas();
  const idev = f.intelDevice({
    reserved: [{ start: 0xfee0_0000n, last: 0xfeef_ffffn, kind: 'msi' }],
  });
  const ha = idev.attach(a);
  const hb = idev.attach(b);
  assert.notEqual(hb.id, ha.id);
  assert.equal(f.ctx.lookup(ha.id), undefined);
  assert.deepEqual(ranges(f, a), { ranges: [[0n, U64_MAX]], align: 1n });
  assert.equal(ranges(f, b).ranges.length, 2);
  assert.equal(f.call('IOMMU_DESTROY', { id: a }).errno, undefined);
});
