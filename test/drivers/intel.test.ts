import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Errno } from '../../src/abi/errno.ts';
import { IntelDomain } from '../../src/drivers/intel/domain.ts';
import { IntelIommu } from '../../src/drivers/intel/driver.ts';
import { vtdCapReg, vtdEcapReg } from '../../src/drivers/intel/hw-info.ts';
import { intelReservedRegions } from '../../src/drivers/intel/reserved.ts';
import { Device, DmaFaultError } from '../../src/iommu/device.ts';
import type { PagingFlags } from '../../src/iommu/driver.ts';
import { Group } from '../../src/iommu/group.ts';
import { IOMMU_READ, IOMMU_WRITE } from '../../src/iommu/prot.ts';
import { dirtyLeavesOf } from '../iommu/dirty-leaves.ts';
import { FakeMemory } from './fake-memory.ts';

const K4 = 1n << 12n;
const M2 = 1n << 21n;
const G1 = 1n << 30n;
const PLAIN: PagingFlags = { nestParent: false, dirtyTracking: false, pasid: false };

function setup(iommu = new IntelIommu()): { iommu: IntelIommu; dev: Device; mem: FakeMemory } {
  const mem = new FakeMemory();
  const dev = new Device('0000:00:02.0', iommu, new Group(7), mem, intelReservedRegions());
  return { iommu, dev, mem };
}

function throwsErrno(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof Errno && e.code === code);
}

const bits = (reg: bigint, lsb: number, width: number): number =>
  Number((reg >> BigInt(lsb)) & ((1n << BigInt(width)) - 1n));

describe('IntelIommu domains', () => {
  it('allocates a 4-level 48-bit domain with 4K|2M|1G pages by default', () => {
    const { iommu, dev } = setup();
    const d = iommu.domainAllocPaging(dev, PLAIN);
    assert.ok(d instanceof IntelDomain);
    assert.equal(d.driver, iommu);
    assert.equal(d.apertures.length, 1);
    assert.equal(d.apertures[0]!.start, 0n);
    assert.equal(d.apertures[0]!.last, (1n << 48n) - 1n);
    assert.equal(d.apertures[0]!.table.config.levels, 4);
    assert.equal(d.pgsizeBitmap, K4 | M2 | G1);
    assert.equal(d.minPageSize, K4);
    assert.equal(d.dirtyCapable, false);
  });

  for (const [addressWidth, levels] of [
    [39, 3],
    [48, 4],
    [57, 5],
  ] as const) {
    it(`spans 2^${addressWidth} bytes with ${levels} levels at width ${addressWidth}`, () => {
      const { iommu, dev } = setup(new IntelIommu({ addressWidth }));
      const d = iommu.domainAllocPaging(dev, PLAIN);
      assert.equal(d.apertures[0]!.last, (1n << BigInt(addressWidth)) - 1n);
      assert.equal(d.apertures[0]!.table.config.levels, levels);
      assert.equal(d.addressWidth, addressWidth);
      d.map((1n << BigInt(addressWidth)) - G1, 0n, G1, IOMMU_READ);
      throwsErrno(() => d.map(1n << BigInt(addressWidth), 0n, K4, IOMMU_READ), 'EINVAL');
    });
  }

  it('restricts leaves to the configured page sizes', () => {
    const { iommu, dev } = setup(new IntelIommu({ pgsizeBitmap: K4 }));
    const d = iommu.domainAllocPaging(dev, PLAIN);
    assert.equal(d.pgsizeBitmap, K4);
    d.map(G1, G1, G1, IOMMU_READ);
    assert.equal(d.apertures[0]!.table.lookup(G1 + 5n)?.pageSize, K4);
    assert.ok(d.apertures[0]!.table.objectCount < 10);
  });

  it('rejects impossible options with EINVAL', () => {
    throwsErrno(() => new IntelIommu({ addressWidth: 40 as 39 }), 'EINVAL');
    throwsErrno(() => new IntelIommu({ pgsizeBitmap: M2 }), 'EINVAL');
    throwsErrno(() => new IntelIommu({ pgsizeBitmap: K4 | (1n << 39n) }), 'EINVAL');
    throwsErrno(() => new IntelIommu({ maxPasidLog2: 21 }), 'EINVAL');
  });

  it('supports dirty tracking only when the unit has it', () => {
    const dirty: PagingFlags = { ...PLAIN, dirtyTracking: true };
    const on = setup();
    assert.equal(on.iommu.dirtyTrackingCapable(on.dev), true);
    assert.equal(on.iommu.domainAllocPaging(on.dev, dirty).dirtyCapable, true);
    const off = setup(new IntelIommu({ dirtyTracking: false }));
    assert.equal(off.iommu.dirtyTrackingCapable(off.dev), false);
    throwsErrno(() => off.iommu.domainAllocPaging(off.dev, dirty), 'EOPNOTSUPP');
    assert.equal(off.iommu.domainAllocPaging(off.dev, PLAIN).dirtyCapable, false);
  });

  it('records nest-parent and PASID flags on the domain', () => {
    const { iommu, dev } = setup();
    const flags: PagingFlags = { nestParent: true, dirtyTracking: false, pasid: true };
    assert.deepEqual(iommu.domainAllocPaging(dev, flags).allocFlags, flags);
  });

  it('reports the PASID width', () => {
    const a = setup();
    assert.equal(a.iommu.maxPasidLog2(a.dev), 20);
    const b = setup(new IntelIommu({ maxPasidLog2: 0 }));
    assert.equal(b.iommu.maxPasidLog2(b.dev), 0);
  });
});

describe('IntelIommu attach', () => {
  it('accepts its own domains and refuses another unit’s with EINVAL', () => {
    const { iommu, dev } = setup();
    const own = iommu.domainAllocPaging(dev, PLAIN);
    dev.group.attach(own);
    assert.equal(dev.group.domain, own);
    const foreign = new IntelIommu().domainAllocPaging(dev, PLAIN);
    throwsErrno(() => iommu.attachDev(foreign, dev), 'EINVAL');
    throwsErrno(() => dev.group.attach(foreign), 'EINVAL');
    assert.equal(dev.group.domain, own);
  });

  it('reserves the MSI window', () => {
    assert.deepEqual(intelReservedRegions(), [
      { start: 0xfee0_0000n, last: 0xfeef_ffffn, kind: 'msi' },
    ]);
  });
});

describe('IntelIommu hw info', () => {
  it('is a 24-byte iommu_hw_info_vtd of type INTEL_VTD', () => {
    const { iommu, dev } = setup();
    const info = iommu.hwInfo(dev);
    assert.equal(info.type, 1);
    assert.equal(info.data.length, 24);
    const view = new DataView(info.data.buffer, info.data.byteOffset, 24);
    assert.equal(view.getUint32(0, true), 0, 'flags');
    assert.equal(view.getUint32(4, true), 0, '__reserved');
    assert.equal(view.getBigUint64(8, true), vtdCapReg(iommu.features));
    assert.equal(view.getBigUint64(16, true), vtdEcapReg(iommu.features));
  });

  it('encodes width, levels, large pages, PASIDs and dirty support in cap/ecap', () => {
    const full = new IntelIommu({ addressWidth: 57 }).features;
    const cap = vtdCapReg(full);
    assert.equal(bits(cap, 16, 6) + 1, 57, 'MGAW');
    assert.equal(bits(cap, 8, 5), 0b01000, 'SAGAW: 5 levels');
    assert.equal(bits(cap, 34, 4), 0b11, 'SLLPS: 2M and 1G');
    assert.equal(bits(cap, 60, 1), 1, 'FS5LP');
    const ecap = vtdEcapReg(full);
    assert.equal(bits(ecap, 45, 1), 1, 'SSADS');
    assert.equal(bits(ecap, 40, 1), 1, 'PASID');
    assert.equal(bits(ecap, 35, 5) + 1, 20, 'PSS');
    assert.equal(bits(ecap, 43, 1), 1, 'SMTS');

    const small = new IntelIommu({
      addressWidth: 39,
      pgsizeBitmap: K4,
      dirtyTracking: false,
      maxPasidLog2: 0,
    }).features;
    assert.equal(bits(vtdCapReg(small), 16, 6) + 1, 39);
    assert.equal(bits(vtdCapReg(small), 8, 5), 0b00010, 'SAGAW: 3 levels');
    assert.equal(bits(vtdCapReg(small), 34, 4), 0, 'SLLPS: 4K only');
    assert.equal(bits(vtdEcapReg(small), 45, 1), 0, 'no SSADS');
    assert.equal(bits(vtdEcapReg(small), 40, 1), 0, 'no PASID');
  });
});

describe('IntelIommu DMA', () => {
  it('round-trips device writes and reads through the domain', () => {
    const { iommu, dev, mem } = setup();
    const d = iommu.domainAllocPaging(dev, { ...PLAIN, dirtyTracking: true });
    dev.group.attach(d);
    const iova = 0x10_0000n;
    const phys = 0x8000_0000n;
    d.map(iova, phys, 2n * K4, IOMMU_READ | IOMMU_WRITE);
    const data = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    dev.dmaWrite(iova + K4 - 8n, data);
    assert.deepEqual(mem.read(phys + K4 - 8n, 16), data);
    assert.deepEqual(dev.dmaRead(iova + K4 - 8n, 16), data);
    mem.write(phys + 100n, Uint8Array.of(0xaa, 0xbb));
    assert.deepEqual(dev.dmaRead(iova + 100n, 2), Uint8Array.of(0xaa, 0xbb));
    assert.equal(d.iovaToPhys(iova + K4 + 3n), phys + K4 + 3n);
    assert.deepEqual(dev.faults, []);
  });

  it('faults on unmapped IOVA and on missing permission, leaving memory alone', () => {
    const { iommu, dev, mem } = setup();
    const d = iommu.domainAllocPaging(dev, PLAIN);
    dev.group.attach(d);
    d.map(0n, M2, K4, IOMMU_READ);
    mem.write(M2, Uint8Array.of(1, 2, 3));
    assert.throws(() => dev.dmaWrite(0n, Uint8Array.of(9)), DmaFaultError);
    assert.throws(() => dev.dmaRead(K4 - 1n, 2), DmaFaultError);
    assert.deepEqual(mem.read(M2, 3), Uint8Array.of(1, 2, 3));
    assert.deepEqual(
      dev.faults.map((f) => [f.iova, f.access]),
      [
        [0n, 'write'],
        [K4, 'read'],
      ],
    );
    d.unmap(0n, K4);
    assert.throws(() => dev.dmaRead(0n, 1), DmaFaultError);
  });

  it('marks the written leaf dirty while tracking is on', () => {
    const { iommu, dev } = setup();
    const d = iommu.domainAllocPaging(dev, { ...PLAIN, dirtyTracking: true });
    dev.group.attach(d);
    d.map(0n, 0n, 2n * M2, IOMMU_READ | IOMMU_WRITE);
    dev.dmaWrite(5n, Uint8Array.of(1));
    d.dirtyTracking = true;
    dev.dmaWrite(M2 + 5n, Uint8Array.of(1));
    dev.dmaRead(0n, 1);
    const seen = dirtyLeavesOf((visit) => d.readDirtySpans(0n, 2n * M2, false, visit));
    assert.deepEqual(seen, [[M2, M2]]);
  });
});
