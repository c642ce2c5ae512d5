/**
 * The SPAPR personality settings (src/vfio/spapr/personality.ts), each
 * with both values: attach rules (pre-6.4 vs 6.4), TCE clearing on detach
 * (6.11), UNREGISTER of mapped memory (5.1), the misaligned-iova answer.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VFIO_EXTENSION } from '../../src/abi/vfio.ts';
import type { KernelPersonality } from '../../src/host/kernel.ts';
import { DDW, GIB, IPR, MIB, NVME, SpaprClient } from './spapr-client.ts';

const V1 = BigInt(VFIO_EXTENSION.SPAPR_TCE_IOMMU);
const V2 = BigInt(VFIO_EXTENSION.SPAPR_TCE_v2_IOMMU);
const PSERIES_CX = '0021:01:00.0'; // pseries group 0

function client(personality: Partial<KernelPersonality>, host = 'powernv') {
  const c = new SpaprClient({ personality, host });
  c.container = c.open('/dev/vfio/vfio').ret;
  return c;
}

/** v2 on group 1 with 4 MiB registered and mapped at the DDW. */
function mappedV2(personality: Partial<KernelPersonality>) {
  const c = client(personality);
  c.addGroup(1);
  assert.equal(c.ioctl(c.container, 'VFIO_SET_IOMMU', V2).ret, 0);
  const ram = c.ram(4n * MIB);
  assert.equal(c.register(ram, 4n * MIB).ret, 0);
  assert.equal(c.create(16, GIB).out.start_addr, DDW);
  assert.equal(c.mapDma(c.container, ram, DDW, 4n * MIB).ret, 0);
  return { c, ram };
}

describe('spaprAttachRules', () => {
  it("'v6.4': v1 and v2 both work on PowerNV and on pSeries PEs", () => {
    for (const host of ['powernv', 'pseries']) {
      const group = host === 'powernv' ? 1 : 0;
      for (const type of [V1, V2]) {
        const c = client({ spaprAttachRules: 'v6.4' }, host);
        c.addGroup(group);
        assert.equal(c.ioctl(c.container, 'VFIO_SET_IOMMU', type).ret, 0, `${host} type ${type}`);
      }
    }
  });

  it("'pre-6.4': a PowerNV PE joins only v2 (v1 EPERM), a pSeries PE only v1 (v2 EPERM)", () => {
    const nv = client({ spaprAttachRules: 'pre-6.4' });
    nv.addGroup(1);
    assert.equal(nv.ioctl(nv.container, 'VFIO_SET_IOMMU', V1).errno, 'EPERM');
    assert.equal(nv.ioctl(nv.container, 'VFIO_SET_IOMMU', V2).ret, 0);
    nv.addGroup(2); // v2 shares

    const ps = client({ spaprAttachRules: 'pre-6.4' }, 'pseries');
    ps.addGroup(0);
    assert.equal(ps.ioctl(ps.container, 'VFIO_SET_IOMMU', V2).errno, 'EPERM');
    assert.equal(ps.ioctl(ps.container, 'VFIO_SET_IOMMU', V1).ret, 0);
    const g1 = ps.open('/dev/vfio/1').ret;
    assert.equal(ps.setContainer(g1, ps.container).errno, 'EBUSY');
  });

  it("'pre-6.4' pSeries v1 borrows the live default window: no pending window, no table charge", () => {
    const c = new SpaprClient(
      { host: 'pseries', personality: { spaprAttachRules: 'pre-6.4' } },
      { capIpcLock: false, rlimitMemlock: 1n << 40n },
    );
    c.container = c.open('/dev/vfio/vfio').ret;
    c.addGroup(0);
    assert.equal(c.ioctl(c.container, 'VFIO_SET_IOMMU', V1).ret, 0);
    const b = c.backend();
    assert.equal(b.defWindowPending, false);
    assert.equal(b.windowSet.windows.length, 1);
    assert.equal(c.ioctl(c.container, 'VFIO_IOMMU_ENABLE').ret, 0);
    const mem = c.mem(MIB);
    assert.equal(c.mapDma(c.container, mem, 0x1000n, 0x1000n).ret, 0);
    assert.equal(c.proc.counters.lockedVm, GIB >> 12n, 'only ENABLE charged (1 GiB window)');
    c.dev(PSERIES_CX).dmaWrite(0x1008n, Uint8Array.of(3));
    assert.deepEqual(c.proc.mm.read(mem + 8n, 1), Uint8Array.of(3));
  });
});

describe('spaprDetachClearsTces', () => {
  for (const clears of [true, false]) {
    it(`${clears}: the remaining group ${clears ? 'loses' : 'keeps'} the mappings`, () => {
      const c = client({ spaprDetachClearsTces: clears });
      c.addGroup(1);
      const g2 = c.addGroup(2);
      assert.equal(c.ioctl(c.container, 'VFIO_SET_IOMMU', V2).ret, 0);
      const ram = c.ram(4n * MIB);
      assert.equal(c.register(ram, 4n * MIB).ret, 0);
      assert.equal(c.mapDma(c.container, ram, 0x10_0000n, MIB).ret, 0);
      c.dev(NVME).dmaWrite(0x10_0000n, Uint8Array.of(1));
      assert.equal(c.proc.close(g2), 0);
      const ipr = c.dev(IPR);
      if (clears) assert.throws(() => ipr.dmaWrite(0x10_0000n, Uint8Array.of(2)));
      else {
        ipr.dmaWrite(0x10_0000n, Uint8Array.of(2));
        assert.deepEqual(c.proc.mm.read(ram, 1), Uint8Array.of(2));
      }
      assert.equal(c.backend().iopt.areas.size, clears ? 0 : 1);
    });
  }
});

describe('spaprUnregisterMapped', () => {
  it("'success': UNREGISTER of mapped memory returns 0; the TCEs keep working until unmapped", () => {
    const { c, ram } = mappedV2({ spaprUnregisterMapped: 'success' });
    assert.equal(c.unregister(ram, 4n * MIB).ret, 0);
    c.dev(IPR).dmaWrite(DDW + 4n, Uint8Array.of(9));
    assert.deepEqual(c.proc.mm.read(ram + 4n, 1), Uint8Array.of(9));
    assert.equal(c.unregister(ram, 4n * MIB).errno, 'ENOENT', 'forgotten');
  });

  it("'EBUSY': UNREGISTER of mapped memory is EBUSY and keeps the region; after UNMAP it succeeds", () => {
    const { c, ram } = mappedV2({ spaprUnregisterMapped: 'EBUSY' });
    assert.equal(c.unregister(ram, 4n * MIB).errno, 'EBUSY');
    assert.equal(
      c.mapDma(c.container, ram, DDW + 4n * MIB, 64n * 1024n).ret,
      0,
      'still registered',
    );
    assert.equal(c.unmapDma(c.container, DDW, 8n * MIB).ret, 0);
    assert.equal(c.unregister(ram, 4n * MIB).ret, 0);
  });
});

describe('spaprBadIova', () => {
  for (const mode of ['positive', 'EINVAL'] as const) {
    it(`'${mode}': MAP and UNMAP of a misaligned iova`, () => {
      const { c, ram } = mappedV2({ spaprBadIova: mode });
      const map = c.mapDma(c.container, ram, DDW + 0x1000n, 64n * 1024n);
      const unmap = c.unmapDma(c.container, DDW + 0x1000n, 64n * 1024n);
      for (const r of [map, unmap]) {
        if (mode === 'positive') assert.equal(r.ret, 1);
        else assert.equal(r.errno, 'EINVAL');
      }
      c.dev(IPR).dmaWrite(DDW, Uint8Array.of(1)); // nothing unmapped
    });
  }
});
