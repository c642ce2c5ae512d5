/**
 * The SPAPR TCE v1 container (VFIO_SPAPR_TCE_IOMMU = 2) on the powernv
 * preset: one group, ENABLE/DISABLE with whole-window accounting, MAP and
 * UNMAP in the lazily created default window, the v2-only ioctls ENOTTY
 * (spapr-tce.md §3, §4.2, §4.6).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VFIO_EXTENSION, VfioIommuSpaprTceInfo } from '../../src/abi/vfio.ts';
import { powernv } from '../../src/host/topology/index.ts';
import { GIB, IPR, MIB, SpaprClient } from './spapr-client.ts';

const V1 = VFIO_EXTENSION.SPAPR_TCE_IOMMU;
/** tce32_size (2 GiB) in the process's 4 KiB pages (locked_vm counts bytes / page size). */
const WINDOW_PAGES = (2n * GIB) >> 12n;
/** The default window's table: 2 GiB of 4 KiB TCEs, one level, hardware + shadow (spapr-tce.md §8). */
const TABLE_PAGES = (8n * MIB) >> 12n;

function v1(opts: ConstructorParameters<typeof SpaprClient>[0] = {}, creds = {}) {
  return new SpaprClient(opts, creds).setup(1, V1);
}

describe('SPAPR TCE v1: SET_IOMMU, CHECK_EXTENSION, GET_INFO', () => {
  it('CHECK_EXTENSION answers 1 for both SPAPR types, before and after SET_IOMMU(v1)', () => {
    const c = new SpaprClient();
    c.container = c.open('/dev/vfio/vfio').ret;
    for (const t of [V1, VFIO_EXTENSION.SPAPR_TCE_v2_IOMMU]) {
      assert.equal(c.ioctl(c.container, 'VFIO_CHECK_EXTENSION', BigInt(t)).ret, 1);
    }
    c.addGroup(1);
    assert.equal(c.ioctl(c.container, 'VFIO_SET_IOMMU', BigInt(V1)).ret, 0);
    assert.equal(c.backend().v2, false);
    assert.equal(c.ioctl(c.container, 'VFIO_CHECK_EXTENSION', 7n).ret, 1);
    assert.equal(c.ioctl(c.container, 'VFIO_CHECK_EXTENSION', 3n).ret, 0, 'not type1');
  });

  it('GET_INFO reports the default window and no DDW', () => {
    const c = v1();
    const info = c.call('VFIO_IOMMU_SPAPR_TCE_GET_INFO', VfioIommuSpaprTceInfo, {
      argsz: 32,
      flags: 0xff,
      pgsizes: 0xffn,
      levels: 9,
    });
    assert.equal(info.ret, 0);
    assert.equal(info.out.flags, 0);
    assert.equal(info.out.dma32_window_start, 0);
    assert.equal(info.out.dma32_window_size, 0x8000_0000);
    assert.equal(info.out.pgsizes, 0n);
    assert.equal(info.out.max_dynamic_windows_supported, 0);
    assert.equal(info.out.levels, 0);
  });

  it('one group per v1 container: a second SET_CONTAINER is EBUSY, as is SET_IOMMU with two groups', () => {
    const c = v1();
    const g2 = c.open('/dev/vfio/2').ret;
    assert.equal(c.setContainer(g2, c.container).errno, 'EBUSY');

    const d = new SpaprClient();
    d.container = d.open('/dev/vfio/vfio').ret;
    d.addGroup(1);
    d.addGroup(2);
    assert.equal(d.ioctl(d.container, 'VFIO_SET_IOMMU', BigInt(V1)).errno, 'EBUSY');
    assert.equal(d.ioctl(d.container, 'VFIO_SET_IOMMU', 7n).ret, 0, 'v2 takes both');
  });

  it('REGISTER/UNREGISTER_MEMORY, TCE_CREATE/REMOVE are ENOTTY on v1', () => {
    const c = v1();
    const ram = c.ram(2n * MIB);
    assert.equal(c.register(ram, 2n * MIB).errno, 'ENOTTY');
    assert.equal(c.unregister(ram, 2n * MIB).errno, 'ENOTTY');
    assert.equal(c.create(16, GIB).errno, 'ENOTTY');
    assert.equal(c.remove(0n).errno, 'ENOTTY');
  });
});

describe('SPAPR TCE v1: ENABLE / DISABLE', () => {
  it('MAP/UNMAP are EPERM until ENABLE; ENABLE charges tce32_size once; EBUSY twice; DISABLE undoes it', () => {
    const c = new SpaprClient({}, { capIpcLock: false, rlimitMemlock: 1n << 40n });
    c.container = c.open('/dev/vfio/vfio').ret;
    const g = c.addGroup(1);
    assert.equal(c.ioctl(c.container, 'VFIO_SET_IOMMU', BigInt(V1)).ret, 0);
    const mem = c.mem(MIB);
    assert.equal(c.mapDma(c.container, mem, 0x1000n, 0x1000n).errno, 'EPERM');
    assert.equal(c.unmapDma(c.container, 0x1000n, 0x1000n).errno, 'EPERM');
    assert.equal(c.ioctl(c.container, 'VFIO_IOMMU_ENABLE').ret, 0);
    assert.equal(c.proc.counters.lockedVm, WINDOW_PAGES);
    assert.equal(c.ioctl(c.container, 'VFIO_IOMMU_ENABLE').errno, 'EBUSY');
    // the first MAP creates the default window (its table is charged too); pages are not
    assert.equal(c.mapDma(c.container, mem, 0x10_0000n, MIB).ret, 0);
    assert.equal(c.proc.counters.lockedVm, WINDOW_PAGES + TABLE_PAGES);
    assert.equal(c.ioctl(c.container, 'VFIO_IOMMU_DISABLE').ret, 0);
    assert.equal(c.proc.counters.lockedVm, TABLE_PAGES);
    assert.equal(c.ioctl(c.container, 'VFIO_IOMMU_DISABLE').ret, 0, 'DISABLE always succeeds');
    assert.equal(c.proc.counters.lockedVm, TABLE_PAGES);
    assert.equal(c.mapDma(c.container, mem, 0x10_0000n, 0x1000n).errno, 'EPERM');
    // ENABLE again, then the last group leaving releases the table and the window charge
    assert.equal(c.ioctl(c.container, 'VFIO_IOMMU_ENABLE').ret, 0);
    assert.equal(c.proc.close(g), 0);
    assert.equal(c.proc.counters.lockedVm, 0n);
  });

  it('ENABLE past RLIMIT_MEMLOCK is ENOMEM (nothing charged); CAP_IPC_LOCK charges nothing', () => {
    const c = v1({}, { capIpcLock: false, rlimitMemlock: GIB });
    assert.equal(c.ioctl(c.container, 'VFIO_IOMMU_ENABLE').errno, 'ENOMEM');
    assert.equal(c.proc.counters.lockedVm, 0n);
    assert.equal(c.mapDma(c.container, c.mem(0x1000n), 0n, 0x1000n).errno, 'EPERM');

    const r = v1({}, { capIpcLock: true, rlimitMemlock: 0n });
    assert.equal(r.ioctl(r.container, 'VFIO_IOMMU_ENABLE').ret, 0);
    assert.equal(r.proc.counters.lockedVm, 0n);
  });

  it('ENABLE on a PE without a default window (tce32_size 0) is EPERM', () => {
    const host = {
      ...powernv,
      iommus: powernv.iommus.map((i) => ({ ...i, dma32Size: 0n })),
    };
    const c = v1({ host });
    assert.equal(c.ioctl(c.container, 'VFIO_IOMMU_ENABLE').errno, 'EPERM');
  });
});

describe('SPAPR TCE v1: MAP / UNMAP', () => {
  it('maps 4 KiB TCEs of ordinary memory in the default window; DMA reaches it; UNMAP clears', () => {
    const c = v1();
    assert.equal(c.ioctl(c.container, 'VFIO_IOMMU_ENABLE').ret, 0);
    const mem = c.mem(MIB);
    assert.equal(c.mapDma(c.container, mem, 0x40_0000n, MIB).ret, 0);
    const ipr = c.dev(IPR);
    ipr.dmaWrite(0x40_1004n, Uint8Array.of(0xab));
    assert.deepEqual(c.proc.mm.read(mem + 0x1004n, 1), Uint8Array.of(0xab));
    assert.equal(c.unmapDma(c.container, 0x40_1000n, 0x1000n).ret, 0);
    assert.throws(() => ipr.dmaWrite(0x40_1004n, Uint8Array.of(1)));
    ipr.dmaWrite(0x40_2000n, Uint8Array.of(1)); // the rest stays
  });

  it('errno: ENXIO outside the window, EINVAL alignment/direction, 1 for a misaligned iova, EFAULT unmapped memory', () => {
    const c = v1();
    assert.equal(c.ioctl(c.container, 'VFIO_IOMMU_ENABLE').ret, 0);
    const mem = c.mem(MIB);
    assert.equal(c.mapDma(c.container, mem, 2n * GIB, 0x1000n).errno, 'ENXIO');
    assert.equal(c.mapDma(c.container, mem, 1n << 59n, 0x1000n).errno, 'ENXIO', 'no DDW in v1');
    assert.equal(c.mapDma(c.container, mem + 8n, 0x1000n, 0x1000n).errno, 'EINVAL');
    assert.equal(c.mapDma(c.container, mem, 0x1000n, 0x800n).errno, 'EINVAL');
    assert.equal(c.mapDma(c.container, mem, 0x1000n, 0x1000n, 0).errno, 'EINVAL');
    assert.equal(c.mapDma(c.container, mem, 0x1008n, 0x1000n).ret, 1);
    assert.equal(c.unmapDma(c.container, 0x1008n, 0x1000n).ret, 1);
    assert.equal(c.mapDma(c.container, 0x7000_0000_0000n, 0x1000n, 0x1000n).errno, 'EFAULT');
    assert.equal(c.backend().iopt.areas.size, 0);
  });
});
