/**
 * The uiommu extension IOMMU_HWPT_DATA_UIOMMU_SPAPR_WINDOWS: IOMMU_HWPT_ALLOC
 * of a multi-window (POWER TCE) paging domain on an IOAS, its errno rules,
 * and the IOAS/DMA behaviour of the windows once a device is attached.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  encodeSpaprWindows,
  IOMMU_HWPT_DATA_UIOMMU_SPAPR_WINDOWS,
  type UiommuHwptSpaprWindow,
  UiommuHwptSpaprWindows,
} from '../../src/abi/uiommu.ts';
import { SpaprIommu } from '../../src/drivers/spapr/driver.ts';
import { IommufdDevice } from '../../src/iommufd/device.ts';
import type { HwptPaging } from '../../src/iommufd/hw-pagetable.ts';
import { type Fixture, setup } from '../support.ts';
import { FIXED, RW, ranges } from './util.ts';

const G = 1n << 30n;
const K64 = 1n << 16n;
const SLOT1 = 1n << 59n;

const WIN0: Partial<UiommuHwptSpaprWindow> = {
  slot: 0,
  start: 0n,
  size: G,
  page_shift: 12,
  levels: 1,
};
const WIN1: Partial<UiommuHwptSpaprWindow> = {
  slot: 1,
  start: SLOT1,
  size: G,
  page_shift: 16,
  levels: 2,
};

/** A powernv fixture with an IOAS and a bound spapr device alone in its PE. */
function spaprSetup(): { f: Fixture; ioas: number; idev: IommufdDevice } {
  const f = setup({ host: 'powernv' });
  const host = [...f.kernel.host.devices.values()].find(
    (d) => d.device.driver instanceof SpaprIommu && d.device.group.devices.length === 1,
  );
  assert.ok(host, 'a spapr device alone in its PE');
  return { f, ioas: f.ioas(), idev: IommufdDevice.bind(f.ctx, host.device) };
}

/** HWPT_ALLOC with `data` copied to user memory (data_len = its length unless given). */
function alloc(
  f: Fixture,
  ioas: number,
  devId: number,
  data: Uint8Array,
  o: { dataLen?: number; uptr?: bigint; dataType?: number; flags?: number; ptId?: number } = {},
) {
  const buf = f.mem(0x1000n);
  f.proc.mm.write(buf, data);
  return f.call('IOMMU_HWPT_ALLOC', {
    flags: o.flags ?? 0,
    dev_id: devId,
    pt_id: o.ptId ?? ioas,
    data_type: o.dataType ?? IOMMU_HWPT_DATA_UIOMMU_SPAPR_WINDOWS,
    data_len: o.dataLen ?? data.length,
    data_uptr: o.uptr ?? buf,
  });
}

const TWO = encodeSpaprWindows({ num_windows: 2, windows: [WIN0, WIN1] });

test('layout: 72 bytes, 8-byte aligned, windows[] at 8 and 40', () => {
  assert.equal(UiommuHwptSpaprWindows.size, 72);
  assert.equal(UiommuHwptSpaprWindows.size % 8, 0);
  const off = (n: string) => UiommuHwptSpaprWindows.fields.find((x) => x.name === n)!.offset;
  assert.equal(off('windows_0_slot'), 8);
  assert.equal(off('windows_0_start'), 24);
  assert.equal(off('windows_1_slot'), 40);
  assert.equal(off('windows_1_size'), 64);
  assert.equal(IOMMU_HWPT_DATA_UIOMMU_SPAPR_WINDOWS, 0x7569_0001);
});

test('two-window HWPT: ranges, MAP inside each window, gap reserved, DMA through both', () => {
  const { f, ioas, idev } = spaprSetup();
  const r = alloc(f, ioas, idev.id, TWO);
  assert.equal(r.errno, undefined);
  const hwptId = r.out.out_hwpt_id as number;
  const hwpt = f.ctx.get<HwptPaging>(hwptId, 'hwpt_paging');
  assert.deepEqual(
    hwpt.domain.apertures.map((a) => [a.start, a.last]),
    [
      [0n, G - 1n],
      [SLOT1, SLOT1 + G - 1n],
    ],
  );
  idev.attach(hwptId);
  assert.deepEqual(ranges(f, ioas).ranges, [
    [0n, G - 1n],
    [SLOT1, SLOT1 + G - 1n],
  ]);

  const small = f.mem(0x4000n);
  const huge = f.proc.mm.mmap({
    length: 2n << 20n,
    prot: { read: true, write: true },
    hugetlb: true,
  });
  const mapAt = (va: bigint, length: bigint, iova: bigint) =>
    f.call('IOMMU_IOAS_MAP', { flags: RW | FIXED, ioas_id: ioas, user_va: va, length, iova });
  assert.equal(mapAt(small, 0x4000n, 0x10_0000n).errno, undefined);
  assert.equal(mapAt(huge, 4n * K64, SLOT1 + K64).errno, undefined);
  assert.equal(mapAt(small, 0x1000n, G).errno, 'EINVAL', 'just past window 0');
  assert.equal(mapAt(small, 0x1000n, 1n << 40n).errno, 'EINVAL', 'in the gap');
  assert.equal(mapAt(small, 0x1000n, SLOT1 - 0x1000n).errno, 'EINVAL', 'just below window 1');

  const dev = idev.dev;
  dev.dmaWrite(0x10_1ffen, Uint8Array.of(1, 2, 3, 4)); // crosses a 4 KiB TCE
  assert.deepEqual([...f.proc.mm.read(small + 0x1ffen, 4)], [1, 2, 3, 4]);
  dev.dmaWrite(SLOT1 + K64 + 0x1_fff0n, Uint8Array.of(9, 8, 7));
  assert.deepEqual([...f.proc.mm.read(huge + 0x1_fff0n, 3)], [9, 8, 7]);
  f.proc.mm.write(huge + 0x3_0000n, Uint8Array.of(0x5a));
  assert.deepEqual([...dev.dmaRead(SLOT1 + K64 + 0x3_0000n, 1)], [0x5a]);
});

test('a one-window HWPT: slot 1 only', () => {
  const { f, ioas, idev } = spaprSetup();
  // iopt_table_add_domain: a domain whose smallest page exceeds PAGE_SIZE (4 KiB here)
  const only64k = alloc(f, ioas, idev.id, encodeSpaprWindows({ num_windows: 1, windows: [WIN1] }));
  assert.equal(only64k.errno, 'EINVAL');
  const w = { ...WIN1, page_shift: 12, levels: 1 };
  const r = alloc(f, ioas, idev.id, encodeSpaprWindows({ num_windows: 1, windows: [w] }));
  assert.equal(r.errno, undefined);
  idev.attach(r.out.out_hwpt_id as number);
  assert.deepEqual(ranges(f, ioas).ranges, [[SLOT1, SLOT1 + G - 1n]]);
});

test('an IOAS with an area outside the windows: EADDRINUSE', () => {
  const { f, ioas, idev } = spaprSetup();
  const va = f.mem(0x1000n);
  const m = f.call('IOMMU_IOAS_MAP', {
    flags: RW | FIXED,
    ioas_id: ioas,
    user_va: va,
    length: 0x1000n,
    iova: 1n << 40n,
  });
  assert.equal(m.errno, undefined);
  assert.equal(alloc(f, ioas, idev.id, TWO).errno, 'EADDRINUSE');
});

test('errno rules of the data', () => {
  const { f, ioas, idev } = spaprSetup();
  const errno = (data: Uint8Array, o: Parameters<typeof alloc>[4] = {}) =>
    alloc(f, ioas, idev.id, data, o).errno;
  // data_len must be exactly sizeof
  assert.equal(errno(TWO, { dataLen: 64 }), 'EINVAL');
  assert.equal(errno(TWO, { dataLen: 80 }), 'EINVAL');
  assert.equal(errno(TWO, { dataLen: 0 }), 'EINVAL');
  // unreadable data
  assert.equal(errno(TWO, { uptr: 0n }), 'EFAULT');
  // num_windows 1..2
  assert.equal(errno(encodeSpaprWindows({ num_windows: 0, windows: [WIN0, WIN1] })), 'EINVAL');
  assert.equal(errno(encodeSpaprWindows({ num_windows: 3, windows: [WIN0, WIN1] })), 'EINVAL');
  // reserved fields
  assert.equal(
    errno(encodeSpaprWindows({ num_windows: 2, __reserved: 1, windows: [WIN0, WIN1] })),
    'EOPNOTSUPP',
  );
  assert.equal(
    errno(encodeSpaprWindows({ num_windows: 2, windows: [WIN0, { ...WIN1, __reserved: 1 }] })),
    'EOPNOTSUPP',
  );
  // TCE_CREATE rules per window
  const one = (w: Partial<UiommuHwptSpaprWindow>) =>
    errno(encodeSpaprWindows({ num_windows: 1, windows: [w] }));
  assert.equal(one({ ...WIN0, slot: 2 }), 'ENOSPC');
  assert.equal(one({ ...WIN0, page_shift: 13 }), 'EINVAL');
  assert.equal(one({ ...WIN0, size: G + 0x1000n }), 'EINVAL', 'not a power of two');
  assert.equal(one({ ...WIN0, levels: 0 }), 'EINVAL');
  assert.equal(one({ ...WIN0, start: 0x1000n }), 'EINVAL', 'not the slot base');
  assert.equal(errno(encodeSpaprWindows({ num_windows: 2, windows: [WIN0, WIN0] })), 'EBUSY');
  // paging flags are not supported by TCE domains
  assert.equal(errno(TWO, { flags: 2 /* DIRTY_TRACKING */ }), 'EOPNOTSUPP');
  // another data type
  assert.equal(errno(TWO, { dataType: 0x7569_0002 }), 'EOPNOTSUPP');
  // nothing was allocated by the failures
  const ok = alloc(f, ioas, idev.id, TWO);
  assert.equal(ok.errno, undefined);
});

test('any other driver: EOPNOTSUPP', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  assert.equal(alloc(f, ioas, idev.id, TWO).errno, 'EOPNOTSUPP');
  assert.equal(alloc(f, ioas, idev.id, TWO, { uptr: 0n }).errno, 'EOPNOTSUPP', 'before copying');
});
