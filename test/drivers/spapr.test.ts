import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Errno } from '../../src/abi/errno.ts';
import { IntelIommu } from '../../src/drivers/intel/driver.ts';
import { SPAPR_POWERNV, SPAPR_PSERIES } from '../../src/drivers/spapr/caps.ts';
import { SpaprDomain } from '../../src/drivers/spapr/domain.ts';
import { SpaprIommu } from '../../src/drivers/spapr/driver.ts';
import {
  IOMMU_HW_INFO_TYPE_UIOMMU_SPAPR,
  UIOMMU_HW_INFO_SPAPR_FLAGS,
  UIOMMU_SPAPR_PLATFORM,
  UiommuHwInfoSpapr,
} from '../../src/drivers/spapr/hw-info.ts';
import { pnvTableSize, pseriesTableSize } from '../../src/drivers/spapr/table-size.ts';
import {
  directionForProt,
  protForDirection,
  TCE_PCI_READ,
  TCE_PCI_WRITE,
} from '../../src/drivers/spapr/tce.ts';
import { pnvTceGeometry } from '../../src/drivers/spapr/tce-geometry.ts';
import { type Device, DmaFaultError } from '../../src/iommu/device.ts';
import type { PagingFlags } from '../../src/iommu/driver.ts';
import { IOMMU_READ, IOMMU_WRITE } from '../../src/iommu/prot.ts';
import type { SpaprWindow } from '../../src/iommu/table-group.ts';
import { FakeMemory } from './fake-memory.ts';

const K4 = 1n << 12n;
const K64 = 1n << 16n;
const M = 1n << 20n;
const G = 1n << 30n;
const T = 1n << 40n;
const P = 1n << 50n;
const SLOT1 = 1n << 59n;
const RW = IOMMU_READ | IOMMU_WRITE;
const PLAIN: PagingFlags = { nestParent: false, dirtyTracking: false, pasid: false };

function throwsErrno(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof Errno && e.code === code);
}

function setup(phb = new SpaprIommu()): { phb: SpaprIommu; dev: Device; mem: FakeMemory } {
  const mem = new FakeMemory();
  return { phb, dev: phb.createDevice(mem, { pe: 2 }), mem };
}

const win = (
  slot: 0 | 1,
  size: bigint,
  pageShift: number,
  levels: number,
  start = slot === 0 ? 0n : SLOT1,
): SpaprWindow => ({ slot, start, size, pageShift, levels });

/** The two-window layout of the tests: 2 GiB of 4 KiB TCEs at 0, 64 GiB of 64 KiB TCEs at 1<<59. */
const W0 = win(0, 2n * G, 12, 1);
const W1 = win(1, 64n * G, 16, 2);

describe('SpaprIommu presets', () => {
  it('powernv: POWER9 PHB4 — 2 GiB default window at 0, slot 1 at 1<<59, 4K|64K|2M|1G, 5 levels', () => {
    const { caps } = new SpaprIommu({ preset: 'powernv' });
    assert.equal(caps.platform, 'powernv');
    assert.equal(caps.maxWindows, 2);
    assert.deepEqual(caps.slotBases, [0n, 0x0800_0000_0000_0000n]);
    assert.equal(caps.pgsizes, 0x4021_1000n);
    assert.equal(caps.maxLevels, 5);
    assert.equal(caps.dma32Size, 0x8000_0000n);
    assert.equal(caps.hostPageShift, 16);
    assert.equal(caps.writeImpliesRead, true);
    assert.deepEqual(caps, SPAPR_POWERNV);
  });

  it('pseries: one level, 4K|64K, 1 GiB default window, slot 1 at 1<<59', () => {
    const phb = new SpaprIommu({ preset: 'pseries' });
    assert.deepEqual(phb.caps, SPAPR_PSERIES);
    assert.equal(phb.caps.maxLevels, 1);
    assert.equal(phb.caps.pgsizes, K4 | K64);
    assert.equal(phb.caps.dma32Size, G);
    assert.deepEqual(phb.caps.slotBases, [0n, SLOT1]);
    assert.equal(phb.caps.writeImpliesRead, false);
    assert.equal(phb.name, 'spapr-tce-pseries');
  });

  it('takes overrides on top of a preset and refuses impossible ones', () => {
    const phb = new SpaprIommu({ preset: 'pseries', dma32Size: 2n * G, maxWindows: 1 });
    assert.equal(phb.caps.dma32Size, 2n * G);
    assert.equal(phb.caps.maxWindows, 1);
    assert.equal(phb.caps.maxLevels, 1);
    throwsErrno(() => new SpaprIommu({ maxWindows: 3 }), 'EINVAL');
    throwsErrno(() => new SpaprIommu({ hostPageShift: 14 }), 'EINVAL');
    throwsErrno(() => new SpaprIommu({ slotBases: [0n, (1n << 32n) + 1n] }), 'EINVAL');
  });

  it('domainAllocPaging is the default 32-bit window: slot 0, tce32_size, 4 KiB, one level', () => {
    const { phb, dev } = setup();
    const d = phb.domainAllocPaging(dev, PLAIN);
    assert.ok(d instanceof SpaprDomain);
    assert.equal(d.dirtyCapable, false);
    assert.deepEqual(
      d.apertures.map((a) => [a.start, a.last]),
      [[0n, 2n * G - 1n]],
    );
    assert.equal(d.pgsizeBitmap, K4);
    const g = d.window(0)!.table.geometry;
    assert.deepEqual([g.levels, g.bitsPerLevel, g.levelShift, g.entries], [1, 19, 22, 524288n]);
    assert.equal(d.window(1), undefined);

    const ps = new SpaprIommu({ preset: 'pseries' });
    const pd = ps.domainAllocPaging(ps.createDevice(new FakeMemory()), PLAIN);
    assert.deepEqual(
      pd.apertures.map((a) => [a.start, a.last]),
      [[0n, G - 1n]],
    );
  });

  it('domainAllocPaging refuses dirty tracking, nesting and PASID with EOPNOTSUPP', () => {
    const { phb, dev } = setup();
    throwsErrno(() => phb.domainAllocPaging(dev, { ...PLAIN, dirtyTracking: true }), 'EOPNOTSUPP');
    throwsErrno(() => phb.domainAllocPaging(dev, { ...PLAIN, nestParent: true }), 'EOPNOTSUPP');
    throwsErrno(() => phb.domainAllocPaging(dev, { ...PLAIN, pasid: true }), 'EOPNOTSUPP');
    assert.equal(phb.dirtyTrackingCapable(dev), false);
    assert.equal(phb.maxPasidLog2(dev), 0);
  });

  it('puts the devices of one PE in one group, numbered from firstGroupId', () => {
    const phb = new SpaprIommu({ firstGroupId: 100 });
    const mem = new FakeMemory();
    const a = phb.createDevice(mem, { pe: 4 });
    const b = phb.createDevice(mem, { pe: 4 });
    const c = phb.createDevice(mem);
    assert.equal(a.group, b.group);
    assert.equal(a.group.id, 104);
    assert.deepEqual(a.group.devices, [a, b]);
    assert.equal(c.group.id, 100);
    assert.notEqual(a.name, b.name);
  });

  it('reports the uiommu SPAPR hw info (extension type 0x75690001)', () => {
    const { phb, dev } = setup();
    const info = phb.hwInfo(dev);
    assert.equal(info.type, IOMMU_HW_INFO_TYPE_UIOMMU_SPAPR);
    assert.equal(info.type, 0x7569_0001);
    assert.equal(info.data.length, 64);
    assert.equal(UiommuHwInfoSpapr.size, 64);
    const v = UiommuHwInfoSpapr.decode(info.data);
    assert.equal(
      v.flags,
      UIOMMU_HW_INFO_SPAPR_FLAGS.DDW | UIOMMU_HW_INFO_SPAPR_FLAGS.WRITE_IMPLIES_READ,
    );
    assert.equal(v.max_windows, 2);
    assert.equal(v.pgsizes, 0x4021_1000n);
    assert.equal(v.max_levels, 5);
    assert.equal(v.host_page_shift, 16);
    assert.equal(v.dma32_window_start, 0n);
    assert.equal(v.dma32_window_size, 2n * G);
    assert.equal(v.window_base_0, 0n);
    assert.equal(v.window_base_1, SLOT1);
    assert.equal(v.platform, UIOMMU_SPAPR_PLATFORM.POWERNV);
    assert.deepEqual(
      ['flags', 'max_windows', 'pgsizes', 'max_levels', 'host_page_shift'].map((n) =>
        UiommuHwInfoSpapr.endOf(n as 'flags'),
      ),
      [4, 8, 16, 20, 24],
    );
    const ps = new SpaprIommu({ preset: 'pseries', maxWindows: 0 });
    const pv = UiommuHwInfoSpapr.decode(ps.hwInfo(dev).data);
    assert.equal(pv.flags, 0);
    assert.equal(pv.platform, UIOMMU_SPAPR_PLATFORM.PSERIES);
  });
});

/*
 * Table-size figures, derived by hand from PowerNV's get_table_size:
 * E = log2(window) − page_shift; D = 2^max(ceil(E/L) + 3, PAGE_SHIFT);
 * T = max(4096, 2^(E+3)); L times { bytes += roundup(T, D); T = max(T/D·8, D) };
 * result 2·bytes. PAGE_SHIFT = 16 unless noted.
 */
describe('TCE table size accounting (pnv_pci_ioda2_get_table_size)', () => {
  const cases: [string, number, bigint, number, bigint][] = [
    // E=18, T=D=2^21: 2·2 MiB
    ['4K pages, 1 GiB, 1 level', 12, G, 1, 4n * M],
    // E=19, T=D=2^22
    ['4K pages, 2 GiB, 1 level (the default window)', 12, 2n * G, 1, 8n * M],
    // E=14, T=D=2^17
    ['64K pages, 1 GiB, 1 level', 16, G, 1, 256n * 1024n],
    // E=20, T=D=2^23
    ['64K pages, 64 GiB, 1 level', 16, 64n * G, 1, 16n * M],
    // E=20, D=2^max(13,16): 2^23 + (2^23/2^16·8 → 2^16) = 8 MiB + 64 KiB, doubled
    ['64K pages, 64 GiB, 2 levels', 16, 64n * G, 2, 16_908_288n],
    // E=24, T=D=2^27
    ['64K pages, 1 TiB, 1 level', 16, T, 1, 256n * M],
    // E=24, D=2^16: 2^27 + 2^16, doubled
    ['64K pages, 1 TiB, 2 levels', 16, T, 2, 268_566_528n],
    // E=24, D=2^16: 2^27 + 2^16 + 2^16, doubled (accounted, although creation refuses it)
    ['64K pages, 1 TiB, 3 levels', 16, T, 3, 268_697_600n],
    // E=16, T=D=2^19
    ['16M pages, 1 TiB, 1 level', 24, T, 1, M],
    // E=20, T=D=2^23
    ['1G pages, 1 PiB, 1 level', 30, P, 1, 16n * M],
    // E=10: T = 2^13, D = 2^16: roundup gives one 64 KiB page, doubled
    ['64K pages, 64 MiB (below one host page of TCEs)', 16, 64n * M, 1, 128n * 1024n],
    // E=19, ceil(19/2)+3 = 13 < 16 so D = 2^16: 2^22 + 2^16, doubled
    ['4K pages, 2 GiB, 2 levels', 12, 2n * G, 2, 8_519_680n],
  ];
  for (const [what, ps, size, levels, bytes] of cases) {
    it(what, () => assert.equal(pnvTableSize(ps, size, levels), bytes));
  }

  it('with 4 KiB host pages (PAGE_SHIFT 12)', () => {
    // E=18, ceil(18/2)+3 = 12 = D's shift: 2^21 + 2^12, doubled
    assert.equal(pnvTableSize(12, G, 2, 12), 4_202_496n);
    // E=0: T = 4096 = D: 4096, doubled
    assert.equal(pnvTableSize(12, K4, 1, 12), 8192n);
    // E=30, 5 levels, D=2^12: 2^33 + 2^24 + 2^15 + 2^12 + 2^12, doubled
    assert.equal(pnvTableSize(12, 1n << 42n, 5, 12), 17_213_505_536n);
  });

  it('is 0 (→ EINVAL) for levels 0 or > 5 and for sizes that are not powers of two', () => {
    assert.equal(pnvTableSize(12, G, 0), 0n);
    assert.equal(pnvTableSize(12, G, 6), 0n);
    assert.equal(pnvTableSize(12, 3n * G, 1), 0n);
    assert.equal(pnvTableSize(12, 0n, 1), 0n);
    assert.equal(pnvTableSize(16, 32n * 1024n, 1), 0n);
  });

  it('pSeries: 8 bytes per TCE, ~0U for more than one level', () => {
    assert.equal(pseriesTableSize(12, G, 1), 2n * M);
    assert.equal(pseriesTableSize(16, 64n * G, 1), 8n * M);
    assert.equal(pseriesTableSize(16, G, 2), 0xffff_ffffn);
    const ps = new SpaprIommu({ preset: 'pseries' });
    assert.equal(ps.tableSize(12, G, 1), 2n * M);
    assert.equal(new SpaprIommu().tableSize(16, 64n * G, 2), 16_908_288n);
  });
});

describe('TCE table geometry', () => {
  it('splits the index bits evenly over the levels, at least one host page per level', () => {
    const g = pnvTceGeometry(16, 64n * G, 2, 16, 5);
    assert.deepEqual(
      [g.entriesShift, g.levelShift, g.bitsPerLevel, g.entries, g.windowSize],
      [20, 16, 13, 1n << 20n, 64n * G],
    );
  });

  it('grows a window below one host page of TCEs to 8192 pages', () => {
    const { phb, dev } = setup();
    const g = phb.windowGeometry(win(1, 64n * M, 16, 1));
    assert.equal(g.entries, 8192n);
    assert.equal(g.windowSize, 512n * M);
    const d = phb.domainAllocWindows(dev, [win(1, 64n * M, 16, 1)]);
    assert.deepEqual(
      d.apertures.map((a) => [a.start, a.last]),
      [[SLOT1, SLOT1 + 512n * M - 1n]],
    );
    assert.equal(phb.windowGeometry(win(0, M, 12, 1)).windowSize, 32n * M);
  });

  it('walks the levels top first, as the hardware does', () => {
    const { phb, dev } = setup();
    const d = phb.domainAllocWindows(dev, [W1]);
    const t = d.window(1)!.table;
    assert.deepEqual(t.indexPath(SLOT1 + (((5n << 13n) | 7n) << 16n)), [5, 7]);
    assert.deepEqual(t.indexPath(SLOT1), [0, 0]);
    const small = new SpaprIommu({ hostPageShift: 12 });
    const d3 = small.domainAllocWindows(dev, [win(0, 512n * G, 12, 3)]);
    const t3 = d3.window(0)!.table;
    assert.equal(t3.geometry.bitsPerLevel, 9);
    assert.deepEqual(t3.indexPath(((1n << 18n) | (2n << 9n) | 3n) << 12n), [1, 2, 3]);
    throwsErrno(() => t3.indexPath(512n * G), 'EINVAL');
  });
});

describe('window validation errno rules', () => {
  const { phb, dev } = setup();
  const check = (w: SpaprWindow, on = phb) => on.windowGeometry(w);

  it('accepts both slots at their bases with every supported page size', () => {
    for (const ps of [12, 16, 21, 30]) check(win(1, 64n * G, ps, 1));
    check(W0);
    check(W1);
  });

  it('ENOSPC for a slot other than 0 and 1', () => {
    throwsErrno(() => check({ ...W1, slot: 2 as 1 }), 'ENOSPC');
  });

  it('ENOSPC for slot 1 on a PE with only one window', () => {
    const one = new SpaprIommu({ maxWindows: 1 });
    throwsErrno(() => check(W1, one), 'ENOSPC');
    check(W0, one);
  });

  it('ENOSPC comes before the other checks', () => {
    throwsErrno(() => check({ ...W1, slot: 2 as 1, pageShift: 13, levels: 0 }), 'ENOSPC');
  });

  it('EINVAL for a page size not in pgsizes', () => {
    throwsErrno(() => check(win(1, 64n * G, 24, 1)), 'EINVAL'); // 16 MiB: POWER8 only
    throwsErrno(() => check(win(1, 64n * G, 13, 1)), 'EINVAL');
    throwsErrno(() => check(win(1, 64n * G, 64, 1)), 'EINVAL');
    throwsErrno(
      () => check(win(1, 64n * G, 21, 1), new SpaprIommu({ preset: 'pseries' })),
      'EINVAL',
    );
  });

  it('EINVAL for a size that is not a power of two, or 0', () => {
    throwsErrno(() => check(win(1, 3n * G, 16, 1)), 'EINVAL');
    throwsErrno(() => check(win(1, 0n, 16, 1)), 'EINVAL');
  });

  it('EINVAL for a window smaller than one TCE page', () => {
    throwsErrno(() => check(win(1, 32n * 1024n, 16, 1)), 'EINVAL');
  });

  it('EINVAL for levels 0', () => {
    throwsErrno(() => check(win(1, 64n * G, 16, 0)), 'EINVAL');
    throwsErrno(
      () => check(win(1, 64n * G, 16, 0), new SpaprIommu({ preset: 'pseries' })),
      'EINVAL',
    );
  });

  it('EINVAL for levels above max_levels (6 on PowerNV, 2 on pSeries)', () => {
    throwsErrno(() => check(win(1, 64n * G, 16, 6)), 'EINVAL');
    throwsErrno(
      () => check(win(1, 64n * G, 16, 2), new SpaprIommu({ preset: 'pseries' })),
      'EINVAL',
    );
  });

  it('EINVAL when levels·k + page_shift reaches 55 bits (too big)', () => {
    // k = 39 for 2^55 bytes of 64 KiB pages in one level: 39 + 16 = 55
    throwsErrno(() => check(win(1, 1n << 55n, 16, 1)), 'EINVAL');
    check(win(1, 1n << 54n, 16, 1));
    // 1 TiB of 64 KiB pages: 2 levels (k = 13: 42 bits) fine, 3 levels (55 bits) refused
    check(win(1, T, 16, 2));
    assert.notEqual(phb.tableSize(16, T, 3), 0n);
    throwsErrno(() => check(win(1, T, 16, 3)), 'EINVAL');
  });

  it('EINVAL for any 5-level table: k is at least PAGE_SHIFT − 3, so 5·k + page_shift ≥ 55', () => {
    throwsErrno(() => check(win(1, 1n << 42n, 12, 5)), 'EINVAL');
    const small = new SpaprIommu({ hostPageShift: 12 });
    assert.notEqual(small.tableSize(12, 1n << 42n, 5), 0n);
    throwsErrno(() => check(win(1, 1n << 42n, 12, 5), small), 'EINVAL'); // 5·9 + 12 = 57
    check(win(1, 1n << 42n, 12, 4), small); // 4·9 + 12 = 48
  });

  it('EINVAL for a start other than the slot base', () => {
    throwsErrno(() => check(win(1, 64n * G, 16, 1, 1n << 32n)), 'EINVAL');
    throwsErrno(() => check(win(0, 2n * G, 12, 1, SLOT1)), 'EINVAL');
  });

  it('EINVAL for a slot base not aligned to the page size (custom bases only)', () => {
    const odd = new SpaprIommu({ slotBases: [0n, 4n * G + K64] });
    check(win(1, G, 16, 1, 4n * G + K64), odd);
    throwsErrno(() => check(win(1, G, 21, 1, 4n * G + K64), odd), 'EINVAL');
  });

  it('EINVAL for a window running past 2^64', () => {
    const ps = new SpaprIommu({ preset: 'pseries' });
    throwsErrno(() => check(win(1, 1n << 64n, 16, 1), ps), 'EINVAL');
    check(win(1, 1n << 63n, 16, 1), ps);
  });

  it('EBUSY for a slot given twice', () => {
    throwsErrno(() => phb.domainAllocWindows(dev, [W1, { ...W1 }]), 'EBUSY');
    throwsErrno(() => phb.domainAllocWindows(dev, [W0, win(0, G, 16, 1)]), 'EBUSY');
  });

  it('EINVAL for overlapping windows (a pSeries slot-0 window reaching 1<<59)', () => {
    const ps = new SpaprIommu({ preset: 'pseries' });
    const big = win(0, 1n << 60n, 16, 1);
    ps.domainAllocWindows(dev, [big]);
    throwsErrno(() => ps.domainAllocWindows(dev, [big, win(1, G, 16, 1)]), 'EINVAL');
  });

  it('EINVAL for no window at all', () => {
    throwsErrno(() => phb.domainAllocWindows(dev, []), 'EINVAL');
  });
});

describe('a two-window domain', () => {
  function twoWindows(phb = new SpaprIommu()) {
    const s = setup(phb);
    const d = phb.domainAllocWindows(s.dev, [W1, W0]);
    s.dev.group.attach(d);
    return { ...s, d, t0: d.window(0)!.table, t1: d.window(1)!.table };
  }

  it('has one aperture per window, sorted, with its own page size', () => {
    const { d, t0, t1 } = twoWindows();
    assert.deepEqual(
      d.apertures.map((a) => [a.start, a.last]),
      [
        [0n, 2n * G - 1n],
        [SLOT1, SLOT1 + 64n * G - 1n],
      ],
    );
    assert.equal(d.pgsizeBitmap, K4 | K64);
    assert.equal(t0.pageSize, K4);
    assert.equal(t1.pageSize, K64);
    assert.equal(t1.geometry.levels, 2);
    assert.deepEqual(
      d.windows.map((w) => w.window.slot),
      [0, 1],
    );
    assert.equal(d.windowOf(SLOT1 + 5n)?.window.slot, 1);
    assert.equal(d.windowOf(4n * G), undefined);
  });

  it('maps in each window and translates through the right table', () => {
    const { d, t0, t1 } = twoWindows();
    d.map(0x1000n, 0x20_0000n, 0x2000n, RW);
    d.map(SLOT1 + K64, 0x40_0000n, 2n * K64, IOMMU_READ);
    assert.equal(d.iovaToPhys(0x1010n), 0x20_0010n);
    assert.equal(d.iovaToPhys(SLOT1 + K64 + 0x1234n), 0x40_1234n);
    assert.equal(d.iovaToPhys(SLOT1), undefined);
    assert.equal(t0.tce(0x2000n), 0x20_1000n | TCE_PCI_READ | TCE_PCI_WRITE);
    assert.equal(t1.tce(SLOT1 + 2n * K64), 0x41_0000n | TCE_PCI_READ);
    assert.equal(t1.tce(SLOT1), 0n);
    assert.equal(t1.lookup(SLOT1 + K64)?.pageSize, K64);
  });

  it('EINVAL for a map straddling a window end, outside both windows or in the gap', () => {
    const { d } = twoWindows();
    throwsErrno(() => d.map(2n * G - K4, 0n, 2n * K4, RW), 'EINVAL');
    throwsErrno(() => d.map(4n * G, 0n, K4, RW), 'EINVAL');
    throwsErrno(() => d.map(1n << 58n, 0n, K64, RW), 'EINVAL');
    throwsErrno(() => d.map(SLOT1 + 64n * G - K64, 0n, 2n * K64, RW), 'EINVAL');
    throwsErrno(() => d.map(SLOT1 - K64, 0n, 2n * K64, RW), 'EINVAL');
    assert.equal(d.iovaToPhys(2n * G - K4), undefined);
  });

  it("EINVAL for a map misaligned to its window's page size or without a direction", () => {
    const { d } = twoWindows();
    throwsErrno(() => d.map(SLOT1 + K4, 0n, K64, RW), 'EINVAL');
    throwsErrno(() => d.map(SLOT1, K4, K64, RW), 'EINVAL');
    throwsErrno(() => d.map(SLOT1, 0n, K4, RW), 'EINVAL');
    throwsErrno(() => d.map(0n, 0n, K4, 0), 'EINVAL');
    d.map(K4, K4, K4, RW); // 4 KiB is fine in window 0
  });

  it('DMA goes through both windows to live memory', () => {
    const { d, dev, mem } = twoWindows();
    d.map(0x1000n, 0x20_0000n, 0x2000n, RW);
    d.map(SLOT1 + K64, 0x40_0000n, K64, RW);
    dev.dmaWrite(0x1ffen, Uint8Array.of(1, 2, 3, 4)); // crosses a 4 KiB TCE boundary
    assert.deepEqual([...mem.read(0x20_0ffen, 4)], [1, 2, 3, 4]);
    mem.write(0x40_8000n, Uint8Array.of(9, 8, 7));
    assert.deepEqual([...dev.dmaRead(SLOT1 + K64 + 0x8000n, 3)], [9, 8, 7]);
    dev.dmaWrite(SLOT1 + K64 + 0x10n, Uint8Array.of(0xaa));
    assert.deepEqual([...mem.read(0x40_0010n, 1)], [0xaa]);
    assert.deepEqual([...dev.dmaRead(0x1ffen, 4)], [1, 2, 3, 4]);
  });

  it('faults outside both windows, in the gap, and on unmapped TCEs', () => {
    const { d, dev } = twoWindows();
    d.map(0n, 0x20_0000n, K4, RW);
    for (const iova of [4n * G, 1n << 58n, SLOT1 + 64n * G, 2n * G, SLOT1]) {
      assert.throws(
        () => dev.dmaRead(iova, 4),
        (e: unknown) => e instanceof DmaFaultError && e.fault.iova === iova,
      );
    }
    assert.equal(dev.faults.length, 5);
    assert.deepEqual(dev.faults[0], { device: dev.name, iova: 4n * G, access: 'read' });
  });

  it('faults when the device writes through a read-only (to-device) TCE, leaving memory alone', () => {
    const { d, dev, mem } = twoWindows();
    mem.write(0x40_0000n, Uint8Array.of(5));
    d.map(SLOT1, 0x40_0000n, K64, protForDirection('to-device'));
    assert.deepEqual([...dev.dmaRead(SLOT1, 1)], [5]);
    assert.throws(
      () => dev.dmaWrite(SLOT1, Uint8Array.of(6)),
      (e: unknown) => e instanceof DmaFaultError && e.fault.access === 'write',
    );
    assert.deepEqual([...mem.read(0x40_0000n, 1)], [5]);
  });

  it('a from-device (write-only) TCE is also readable on PowerNV, not on pSeries', () => {
    const pnv = twoWindows();
    pnv.d.map(0n, 0x20_0000n, K4, protForDirection('from-device'));
    assert.equal(pnv.t0.tce(0n), 0x20_0000n | TCE_PCI_READ | TCE_PCI_WRITE);
    pnv.dev.dmaWrite(0n, Uint8Array.of(1));
    assert.deepEqual([...pnv.dev.dmaRead(0n, 1)], [1]);

    const ps = new SpaprIommu({ preset: 'pseries' });
    const s = setup(ps);
    const d = ps.domainAllocWindows(s.dev, [win(0, G, 12, 1), win(1, 64n * G, 16, 1)]);
    s.dev.group.attach(d);
    d.map(0n, 0x20_0000n, K4, IOMMU_WRITE);
    assert.equal(d.window(0)!.table.tce(0n), 0x20_0000n | TCE_PCI_WRITE);
    s.dev.dmaWrite(0n, Uint8Array.of(1));
    assert.throws(() => s.dev.dmaRead(0n, 1), DmaFaultError);
  });

  it('maps directions to TCE bits as VFIO does', () => {
    assert.equal(protForDirection('to-device'), IOMMU_READ);
    assert.equal(protForDirection('from-device'), IOMMU_WRITE);
    assert.equal(protForDirection('bidirectional'), RW);
    assert.equal(directionForProt(RW), 'bidirectional');
    assert.equal(directionForProt(IOMMU_WRITE), 'from-device');
    assert.equal(directionForProt(0), undefined);
  });

  it('a 64 KiB-page window holds a 16 GiB mapping in a few objects', () => {
    const { d, t1, dev, mem } = twoWindows();
    const before = t1.objectCount;
    d.map(SLOT1, 1n << 36n, 16n * G, RW); // 262144 TCEs
    assert.ok(t1.objectCount - before <= 2, `objectCount ${t1.objectCount}`);
    const mid = SLOT1 + 8n * G + 0x1234n;
    assert.equal(d.iovaToPhys(mid), (1n << 36n) + 8n * G + 0x1234n);
    assert.equal(t1.lookup(mid)?.pageSize, K64);
    dev.dmaWrite(mid, Uint8Array.of(42));
    assert.deepEqual([...mem.read((1n << 36n) + 8n * G + 0x1234n, 1)], [42]);
    assert.equal(d.unmap(SLOT1 + 4n * G, K64), K64);
    assert.equal(d.iovaToPhys(SLOT1 + 4n * G), undefined);
    assert.ok(t1.objectCount < 10, `objectCount ${t1.objectCount}`);
    assert.equal(d.unmap(SLOT1, 64n * G), 16n * G - K64);
  });
});

describe('attach', () => {
  it('accepts its own domains for any of its devices and refuses foreign ones with EINVAL', () => {
    const { phb, dev } = setup();
    const own = phb.domainAllocWindows(dev, [W0, W1]);
    phb.attachDev(own, dev);
    dev.group.attach(own);
    assert.equal(dev.group.domain, own);

    const other = new SpaprIommu();
    const foreign = other.domainAllocPaging(other.createDevice(new FakeMemory()), PLAIN);
    throwsErrno(() => phb.attachDev(foreign, dev), 'EINVAL');
    const intel = new IntelIommu();
    const x86 = intel.domainAllocPaging(dev, PLAIN);
    throwsErrno(() => dev.group.attach(x86), 'EINVAL');
    assert.equal(dev.group.domain, own);
  });
});
