/**
 * The selftest mock IOMMU driver (facts sheet selftest-mock.md §2.1–§2.4):
 * devices, domain geometry, attach rules and hw info.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  IOMMU_HW_INFO_TYPE_SELFTEST,
  IommuTestHwInfo,
  MOCK_FLAGS_DEVICE,
} from '../../src/abi/iommufd-test.ts';
import { IntelIommu } from '../../src/drivers/intel/driver.ts';
import { MockDomain } from '../../src/drivers/mock/domain.ts';
import { MockIommu } from '../../src/drivers/mock/driver.ts';
import { PhysRam } from '../../src/host/phys-ram.ts';
import type { PagingFlags } from '../../src/iommu/driver.ts';
import { IOMMU_READ, IOMMU_WRITE } from '../../src/iommu/prot.ts';

const { NO_DIRTY, HUGE_IOVA, PASID } = MOCK_FLAGS_DEVICE;
const PLAIN: PagingFlags = { nestParent: false, dirtyTracking: false, pasid: false };
const DIRTY: PagingFlags = { ...PLAIN, dirtyTracking: true };
const SZ_1M = 1n << 20n;

test('mock devices: one group each, four cache slots of 0xBADDAD, unknown flags EINVAL', () => {
  const ram = new PhysRam();
  const mock = new MockIommu();
  const a = mock.createDevice(ram, 0);
  const b = mock.createDevice(ram, NO_DIRTY | HUGE_IOVA | PASID);
  assert.notEqual(a.group, b.group);
  assert.deepEqual(a.group.devices, [a]);
  assert.deepEqual(a.cache, [0xbaddad, 0xbaddad, 0xbaddad, 0xbaddad]);
  assert.deepEqual([b.noDirty, b.hugeIova, b.pasid], [true, true, true]);
  assert.deepEqual(a.reservedRegions, []);
  assert.throws(() => mock.createDevice(ram, 8), { code: 'EINVAL' });
  a.group.attach(mock.domainAllocPaging(a, PLAIN));
  a.unregister();
  assert.equal(a.group.domain, undefined, 'blocked once unregistered');
  assert.deepEqual(a.group.devices, []);
});

test('mock domains: aperture [2^24, 2^31-1], 2 KiB IOPTEs, +1 MiB for HUGE_IOVA', () => {
  const ram = new PhysRam();
  const mock = new MockIommu();
  const plain = mock.domainAllocPaging(mock.createDevice(ram, 0), PLAIN);
  assert.ok(plain instanceof MockDomain);
  assert.deepEqual(
    plain.apertures.map((a) => [a.start, a.last]),
    [[1n << 24n, (1n << 31n) - 1n]],
  );
  assert.equal(plain.pgsizeBitmap, 2048n);
  assert.equal(plain.ioPageSize, 2048n);
  assert.equal(plain.dirtyCapable, false);
  const huge = mock.domainAllocPaging(mock.createDevice(ram, HUGE_IOVA), DIRTY);
  assert.equal(huge.pgsizeBitmap, 2048n | SZ_1M);
  assert.equal(huge.dirtyCapable, true);
  assert.equal(huge.dirtyTracking, false, 'tracking starts off');
  // a 2 MiB-aligned physical run becomes 1 MiB leaves; a 2 KiB-offset one does not
  const phys = ram.alloc(2n * SZ_1M, { align: SZ_1M });
  huge.map(1n << 24n, phys, 2n * SZ_1M, IOMMU_READ | IOMMU_WRITE);
  assert.equal(huge.apertures[0]!.table.lookup((1n << 24n) + 0x800n)!.pageSize, SZ_1M);
  plain.map(1n << 24n, phys, 2n * SZ_1M, IOMMU_READ);
  assert.equal(plain.apertures[0]!.table.lookup(1n << 24n)!.pageSize, 2048n);
  assert.equal(plain.iovaToPhys((1n << 24n) + 0x1234n), phys + 0x1234n);
  assert.throws(() => plain.map(0n, phys, 2048n, IOMMU_READ), { code: 'EINVAL' });
});

test('domainAllocPaging: dirty tracking on a NO_DIRTY device is EOPNOTSUPP', () => {
  const mock = new MockIommu();
  const dev = mock.createDevice(new PhysRam(), NO_DIRTY);
  assert.throws(() => mock.domainAllocPaging(dev, DIRTY), { code: 'EOPNOTSUPP' });
  assert.ok(mock.domainAllocPaging(dev, PLAIN));
});

test('attachDev: EINVAL for a foreign domain and for a dirty-capable domain on NO_DIRTY', () => {
  const ram = new PhysRam();
  const mock = new MockIommu();
  const dev = mock.createDevice(ram, 0);
  const noDirty = mock.createDevice(ram, NO_DIRTY);
  const dirty = mock.domainAllocPaging(dev, DIRTY);
  const intel = new IntelIommu();
  assert.throws(() => mock.attachDev(intel.domainAllocPaging(dev, PLAIN), dev), {
    code: 'EINVAL',
  });
  assert.throws(() => mock.attachDev(dirty, noDirty), { code: 'EINVAL' });
  mock.attachDev(dirty, dev);
  mock.attachDev(mock.domainAllocPaging(dev, PLAIN), noDirty);
  assert.throws(() => noDirty.group.attach(dirty), { code: 'EINVAL' });
  assert.equal(noDirty.group.domain, undefined);
  // a second mock instance's domains are foreign too
  assert.throws(() => new MockIommu().attachDev(dirty, dev), { code: 'EINVAL' });
});

test('hw info, dirty capability and PASID width follow the device flags', () => {
  const ram = new PhysRam();
  const mock = new MockIommu();
  const dev = mock.createDevice(ram, 0);
  const info = mock.hwInfo(dev);
  assert.equal(info.type, IOMMU_HW_INFO_TYPE_SELFTEST);
  assert.deepEqual(IommuTestHwInfo.decode(info.data), { flags: 0, test_reg: 0xdeadbeef });
  assert.equal(info.data.length, 8);
  assert.equal(mock.dirtyTrackingCapable(dev), true);
  assert.equal(mock.dirtyTrackingCapable(mock.createDevice(ram, NO_DIRTY)), false);
  assert.equal(mock.maxPasidLog2(dev), 0);
  assert.equal(mock.maxPasidLog2(mock.createDevice(ram, PASID)), 20);
});

test('IOPTEs are half a host page with 64 KiB pages', () => {
  const ram = new PhysRam({ pageSize: 0x1_0000n });
  const mock = new MockIommu();
  const domain = mock.domainAllocPaging(mock.createDevice(ram, HUGE_IOVA), PLAIN);
  assert.equal(domain.ioPageSize, 0x8000n);
  assert.equal(domain.pgsizeBitmap, 0x8000n | (0x8000n << 9n));
});
