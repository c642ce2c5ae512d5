/**
 * The SPAPR TCE v2 container (src/vfio/spapr/) on the powernv preset:
 * QEMU's DDW flow, hot-added groups joining both windows, the errno rules
 * of spapr-tce.md §3–§6, and the all-or-none window swap.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fail } from '../../src/abi/errno.ts';
import {
  VFIO_IOMMU_SPAPR_INFO_DDW,
  VfioIommuSpaprRegisterMemory,
  VfioIommuSpaprTceInfo,
} from '../../src/abi/vfio.ts';
import type { Domain } from '../../src/iommu/domain.ts';
import { CX5, DDW, GIB, IPR, MIB, NVME, SpaprClient } from './spapr-client.ts';

/**
 * The DDW sequence: register RAM, create a 64 KiB-page window (slot 1, at
 * 1<<59: the lazily created default window holds slot 0), then drop the
 * default window. (Cancelling the pending default window first would give
 * the new window slot 0 at bus address 0, spapr-tce.md §6.)
 */
function qemuDdw(c: SpaprClient, ramSize = 4n * MIB) {
  const ram = c.ram(ramSize);
  assert.equal(c.register(ram, ramSize).ret, 0);
  const cr = c.create(16, GIB);
  assert.equal(cr.ret, 0);
  assert.equal(cr.out.start_addr, DDW);
  assert.equal(c.remove(0n).ret, 0);
  assert.equal(c.mapDma(c.container, ram, DDW, ramSize).ret, 0);
  return ram;
}

describe('SPAPR TCE v2: QEMU DDW flow', () => {
  it('registers RAM, replaces the default window by a 64K DDW, maps, DMAs, unmaps', () => {
    const c = new SpaprClient().setup(1);
    const info = c.call('VFIO_IOMMU_SPAPR_TCE_GET_INFO', VfioIommuSpaprTceInfo, { argsz: 32 });
    assert.equal(info.ret, 0);
    assert.equal(info.out.flags, VFIO_IOMMU_SPAPR_INFO_DDW);
    assert.equal(info.out.dma32_window_start, 0);
    assert.equal(info.out.dma32_window_size, 0x8000_0000);
    assert.equal(info.out.max_dynamic_windows_supported, 2);
    assert.equal(info.out.levels, 5);
    assert.equal(info.out.pgsizes, (1n << 12n) | (1n << 16n) | (1n << 21n) | (1n << 30n));

    const ram = qemuDdw(c);
    const ipr = c.dev(IPR);
    ipr.dmaWrite(DDW + 0x12_3458n, Uint8Array.of(0xca, 0xfe));
    assert.deepEqual(c.proc.mm.read(ram + 0x12_3458n, 2), Uint8Array.of(0xca, 0xfe));
    // the 32-bit window is gone
    assert.throws(() => ipr.dmaWrite(0x1000n, Uint8Array.of(1)));

    const u = c.unmapDma(c.container, DDW, 4n * MIB);
    assert.equal(u.ret, 0);
    assert.equal(u.size, 4n * MIB, 'size is not written back (stays as given)');
    assert.throws(() => ipr.dmaWrite(DDW + 0x12_3458n, Uint8Array.of(1)));
  });

  it('a hot-added group joins both windows and sees every TCE', () => {
    const c = new SpaprClient().setup(1);
    const ram = c.ram(4n * MIB);
    assert.equal(c.register(ram, 4n * MIB).ret, 0);
    // default window (lazily created by CREATE) + DDW
    assert.equal(c.create(16, GIB).out.start_addr, DDW);
    assert.equal(c.mapDma(c.container, ram, 0x10_0000n, MIB).ret, 0); // 4K window 0
    assert.equal(c.mapDma(c.container, ram + MIB, DDW, MIB).ret, 0);

    c.addGroup(2);
    const nvme = c.dev(NVME);
    nvme.dmaWrite(0x10_0010n, Uint8Array.of(7));
    nvme.dmaWrite(DDW + 0x20n, Uint8Array.of(9));
    assert.deepEqual(c.proc.mm.read(ram + 0x10n, 1), Uint8Array.of(7));
    assert.deepEqual(c.proc.mm.read(ram + MIB + 0x20n, 1), Uint8Array.of(9));
    const g1 = c.dev(IPR).group;
    const g2 = nvme.group;
    assert.equal(g1.domain, g2.domain, 'one PHB: one shared domain');
    assert.equal(g1.domain!.apertures.length, 2);

    // a group of another PHB gets its own domain with the same windows and TCEs
    c.addGroup(0);
    const cx5 = c.dev(CX5);
    cx5.dmaWrite(DDW + 0x30n, Uint8Array.of(5));
    assert.deepEqual(c.proc.mm.read(ram + MIB + 0x30n, 1), Uint8Array.of(5));
    assert.notEqual(cx5.group.domain, g1.domain);

    // later window changes reach every group
    assert.equal(c.remove(DDW + 0x1234n).ret, 0);
    for (const d of [c.dev(IPR), nvme, cx5]) {
      assert.equal(d.group.domain!.apertures.length, 1);
      assert.throws(() => d.dmaWrite(DDW, Uint8Array.of(1)));
      d.dmaWrite(0x10_0000n, Uint8Array.of(3));
    }
  });

  it('MAP in the 32-bit range creates the pending default window (4K pages, 2 GiB)', () => {
    const c = new SpaprClient().setup(1);
    const ram = c.ram(2n * MIB);
    assert.equal(c.register(ram, 2n * MIB).ret, 0);
    assert.equal(c.mapDma(c.container, ram + 0x1000n, 0x7fff_f000n, 0x1000n).ret, 0);
    c.dev(IPR).dmaWrite(0x7fff_f004n, Uint8Array.of(4));
    assert.deepEqual(c.proc.mm.read(ram + 0x1004n, 1), Uint8Array.of(4));
    // past 2 GiB: no window
    assert.equal(c.mapDma(c.container, ram, 0x8000_0000n, 0x1000n).errno, 'ENXIO');
  });

  it('an overlapping MAP silently replaces TCEs; UNMAP takes sub-ranges and skips holes', () => {
    const c = new SpaprClient().setup(1);
    const ram = qemuDdw(c);
    const ipr = c.dev(IPR);
    assert.equal(c.mapDma(c.container, ram + 2n * MIB, DDW + 64n * 1024n, 64n * 1024n).ret, 0);
    ipr.dmaWrite(DDW + 64n * 1024n, Uint8Array.of(0x11));
    assert.deepEqual(c.proc.mm.read(ram + 2n * MIB, 1), Uint8Array.of(0x11));
    ipr.dmaWrite(DDW, Uint8Array.of(0x22)); // the rest of the first map survives
    assert.deepEqual(c.proc.mm.read(ram, 1), Uint8Array.of(0x22));
    assert.equal(c.unmapDma(c.container, DDW + 128n * 1024n, 64n * 1024n).ret, 0);
    assert.throws(() => ipr.dmaWrite(DDW + 128n * 1024n, Uint8Array.of(1)));
    ipr.dmaWrite(DDW + 192n * 1024n, Uint8Array.of(1));
    assert.equal(c.unmapDma(c.container, DDW + 512n * MIB, 8n * MIB).ret, 0, 'holes skipped');
    assert.equal(c.unmapDma(c.container, DDW, 0n).ret, 0, 'size 0');
  });
});

describe('SPAPR TCE v2: errno rules', () => {
  it('GET_INFO: argsz < 16 EINVAL; 16 writes 16 bytes only', () => {
    const c = new SpaprClient().setup(1);
    const bad = c.call('VFIO_IOMMU_SPAPR_TCE_GET_INFO', VfioIommuSpaprTceInfo, { argsz: 15 });
    assert.equal(bad.errno, 'EINVAL');
    const short = c.call('VFIO_IOMMU_SPAPR_TCE_GET_INFO', VfioIommuSpaprTceInfo, {
      argsz: 16,
      levels: 77,
    });
    assert.equal(short.ret, 0);
    assert.equal(short.out.dma32_window_size, 0x8000_0000);
    assert.equal(short.out.levels, 77);
  });

  it('ENABLE/DISABLE are ENOTTY on v2; MAP/UNMAP before REGISTER are EPERM', () => {
    const c = new SpaprClient().setup(1);
    assert.equal(c.ioctl(c.container, 'VFIO_IOMMU_ENABLE').errno, 'ENOTTY');
    assert.equal(c.ioctl(c.container, 'VFIO_IOMMU_DISABLE').errno, 'ENOTTY');
    const ram = c.ram(2n * MIB);
    assert.equal(c.mapDma(c.container, ram, 0n, 0x1000n).errno, 'EPERM');
    assert.equal(c.unmapDma(c.container, 0n, 0x1000n).errno, 'EPERM');
  });

  it('REGISTER: alignment, flags, argsz EINVAL; same range EBUSY; overlap EINVAL; UNREGISTER ENOENT', () => {
    const c = new SpaprClient().setup(1);
    const ram = c.ram(4n * MIB);
    assert.equal(c.register(ram + 0x1000n, MIB).errno, 'EINVAL', 'vaddr not 64K aligned');
    assert.equal(c.register(ram, MIB + 0x1000n).errno, 'EINVAL', 'size not 64K aligned');
    assert.equal(c.register(ram, MIB, 1).errno, 'EINVAL', 'flags');
    const short = c.call('VFIO_IOMMU_SPAPR_REGISTER_MEMORY', VfioIommuSpaprRegisterMemory, {
      argsz: 16,
      vaddr: ram,
      size: MIB,
    });
    assert.equal(short.errno, 'EINVAL');
    assert.equal(c.register(ram, 2n * MIB).ret, 0);
    assert.equal(c.register(ram, 2n * MIB).errno, 'EBUSY');
    assert.equal(c.register(ram + MIB, 2n * MIB).errno, 'EINVAL', 'overlap');
    assert.equal(c.unregister(ram, MIB).errno, 'ENOENT');
    assert.equal(c.unregister(ram + 0x1000n, MIB).errno, 'EINVAL');
    assert.equal(c.unregister(ram, 2n * MIB).ret, 0);
    assert.equal(c.unregister(ram, 2n * MIB).errno, 'ENOENT');
    assert.equal(
      c.mapDma(c.container, ram, 0n, 0x1000n).errno,
      'EINVAL',
      'not registered any more',
    );
  });

  it('MAP: ENXIO outside windows, EINVAL alignment/flags/unregistered/too-big page, 1 for a misaligned iova', () => {
    const c = new SpaprClient().setup(1);
    const ram = qemuDdw(c);
    const other = c.ram(2n * MIB);
    assert.equal(
      c.mapDma(c.container, ram, 0n, 64n * 1024n).errno,
      'ENXIO',
      'default window removed',
    );
    assert.equal(c.mapDma(c.container, ram, DDW - 1n, 64n * 1024n).errno, 'ENXIO');
    assert.equal(c.mapDma(c.container, ram, DDW, 0x1000n).errno, 'EINVAL', 'size');
    assert.equal(c.mapDma(c.container, ram + 0x1000n, DDW, 64n * 1024n).errno, 'EINVAL', 'vaddr');
    assert.equal(c.mapDma(c.container, ram, DDW, 64n * 1024n, 0).errno, 'EINVAL', 'no direction');
    assert.equal(c.mapDma(c.container, ram, DDW, 64n * 1024n, 4).errno, 'EINVAL', 'VADDR flag');
    assert.equal(c.mapDma(c.container, ram, DDW + 0x1000n, 64n * 1024n).ret, 1, 'positive 1');
    assert.equal(c.mapDma(c.container, other, DDW, 64n * 1024n).errno, 'EINVAL', 'unregistered');
    assert.equal(
      c.mapDma(c.container, ram, DDW + GIB - 64n * 1024n, 128n * 1024n).errno,
      'EINVAL',
      'past the window end (model choice)',
    );
    assert.equal(c.unmapDma(c.container, DDW + 0x1000n, 64n * 1024n).ret, 1);
    assert.equal(c.unmapDma(c.container, DDW, 64n * 1024n, 1).errno, 'EINVAL', 'unmap flags');
    assert.equal(c.unmapDma(c.container, 0n, 64n * 1024n).errno, 'ENXIO');
    // 1 GiB TCE pages need 1 GiB backing pages: hugetlb 2 MiB pages are too small
    assert.equal(c.remove(DDW).ret, 0);
    assert.equal(c.create(30, 16n * GIB).ret, 0);
    assert.equal(c.mapDma(c.container, ram, 0n, GIB).errno, 'EINVAL');
  });

  it('MAP directions become TCE bits (READ only: device writes fault)', () => {
    const c = new SpaprClient().setup(1);
    const ram = qemuDdw(c);
    assert.equal(c.mapDma(c.container, ram, DDW, 64n * 1024n, 1).ret, 0);
    const ipr = c.dev(IPR);
    assert.throws(() => ipr.dmaWrite(DDW, Uint8Array.of(1)));
    c.proc.mm.write(ram, Uint8Array.of(0x5a));
    assert.deepEqual(ipr.dmaRead(DDW, 1), Uint8Array.of(0x5a));
  });

  it('CREATE: ENOSPC with both slots used, EINVAL page size/size/levels/argsz/flags; REMOVE EINVAL off-window', () => {
    const c = new SpaprClient().setup(1);
    assert.equal(c.create(13, GIB).errno, 'EINVAL', 'page size not in pgsizes');
    assert.equal(c.create(16, GIB + MIB).errno, 'EINVAL', 'not a power of two');
    assert.equal(c.create(16, GIB, 0).errno, 'EINVAL', 'levels 0');
    assert.equal(c.create(16, GIB, 6).errno, 'EINVAL', 'levels > 5');
    assert.equal(c.create(16, 1n << 40n, 3).errno, 'EINVAL', '(16-3)*3+16 >= 55');
    assert.equal(c.create(16, GIB, 1, 32).errno, 'EINVAL', 'argsz');
    assert.equal(c.create(16, GIB).out.start_addr, DDW, 'slot 1 (default window made first)');
    assert.equal(c.create(16, GIB).errno, 'ENOSPC');
    assert.equal(c.remove(1n << 40n).errno, 'EINVAL');
    assert.equal(c.remove(0n, 1).errno, 'EINVAL', 'flags');
    // removing slot 0 frees its base: the next CREATE lands at 0
    assert.equal(c.remove(0x1000n).ret, 0);
    assert.equal(c.create(16, 4n * GIB).out.start_addr, 0n);
  });

  it('REMOVE(0) while the default window is pending cancels it; CREATE then takes slot 0 at 0', () => {
    const c = new SpaprClient().setup(1);
    assert.equal(c.remove(0n).ret, 0);
    assert.equal(c.remove(0n).errno, 'EINVAL', 'nothing left at 0');
    assert.equal(c.create(16, 8n * GIB).out.start_addr, 0n);
    assert.equal(c.create(21, 16n * GIB).out.start_addr, DDW);
  });
});

describe('SPAPR TCE v2: window swap atomicity', () => {
  it('a group refusing the new domain leaves every group on the old one', () => {
    const c = new SpaprClient().setup(1);
    const ram = c.ram(4n * MIB);
    assert.equal(c.register(ram, 4n * MIB).ret, 0);
    assert.equal(c.mapDma(c.container, ram, 0x20_0000n, MIB).ret, 0); // default window
    c.addGroup(2);
    const [ipr, nvme] = [c.dev(IPR), c.dev(NVME)];
    const old = ipr.group.domain!;
    const attach = nvme.group.attach.bind(nvme.group);
    nvme.group.attach = (d: Domain) => {
      if (d !== old) fail('ENOMEM', 'injected', 'uiommu_test');
      attach(d);
    };
    assert.equal(c.create(16, GIB).errno, 'ENOMEM');
    assert.equal(ipr.group.domain, old);
    assert.equal(nvme.group.domain, old);
    for (const d of [ipr, nvme]) {
      d.dmaWrite(0x20_0008n, Uint8Array.of(8));
      assert.throws(() => d.dmaWrite(DDW, Uint8Array.of(1)));
    }
    assert.deepEqual(c.proc.mm.read(ram + 8n, 1), Uint8Array.of(8));
    // the slot is still free: with the fault gone CREATE succeeds
    nvme.group.attach = attach;
    assert.equal(c.create(16, GIB).out.start_addr, DDW);
    assert.equal(nvme.group.domain, ipr.group.domain);
    assert.notEqual(ipr.group.domain, old);
  });

  it('detaching a group clears every TCE (≥v6.11); the last group releases everything', () => {
    const c = new SpaprClient().setup(1);
    const g2 = c.addGroup(2);
    qemuDdw(c);
    assert.equal(c.proc.close(g2), 0);
    const ipr = c.dev(IPR);
    assert.throws(() => ipr.dmaWrite(DDW, Uint8Array.of(1)));
    assert.equal(ipr.group.domain!.apertures.length, 1, 'windows stay');
    const b = c.backend();
    assert.equal(b.iopt.areas.size, 0);
    assert.equal(c.proc.close(c.container), 0);
    assert.ok(b.enabled, 'the group keeps the container alive');
    // the last group leaves: windows and registrations go
    const c1 = c.proc.close(c.open('/dev/vfio/1').ret);
    void c1;
  });
});
