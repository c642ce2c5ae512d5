/**
 * Host topology: presets, JSON config validation (every error names the
 * field's JSON path), instantiation into drivers, groups and devices.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { IntelIommu } from '../../src/drivers/intel/driver.ts';
import { MockDevice } from '../../src/drivers/mock/device.ts';
import { MockIommu } from '../../src/drivers/mock/driver.ts';
import { SpaprIommu } from '../../src/drivers/spapr/driver.ts';
import { PhysRam } from '../../src/host/phys-ram.ts';
import {
  createIommu,
  effectiveIrq,
  type HostSpec,
  HostSpecError,
  hostSpecToJson,
  type IommuSpec,
  instantiate,
  loadHostSpec,
  mock,
  PRESETS,
  parseHostSpec,
  powernv,
  pseries,
  type SpaprIommuSpec,
  validateHostSpec,
  x86,
} from '../../src/host/topology/index.ts';
import type { Device } from '../../src/iommu/device.ts';
import type { IommuDriver } from '../../src/iommu/driver.ts';

const PLAIN = { nestParent: false, dirtyTracking: false, pasid: false };
const MSI = { start: 0xfee0_0000n, last: 0xfeef_ffffn, kind: 'msi' };
/** A config under test: the cases below poke arbitrary (also invalid) values into it. */
// biome-ignore lint/suspicious/noExplicitAny: the point is to write ill-typed JSON
type Config = any;

const EXAMPLE = fileURLToPath(new URL('../../examples/hosts/custom.json', import.meta.url));

/** JSON text → value → spec, as a config file would travel. */
function viaJson(spec: HostSpec): HostSpec {
  return parseHostSpec(JSON.parse(JSON.stringify(hostSpecToJson(spec))));
}

/** A stand-in for the SPAPR driver that records the spec it was built from. */
class StubSpapr implements IommuDriver {
  readonly name = 'spapr-stub';
  constructor(readonly spec: SpaprIommuSpec) {}
  domainAllocPaging(): never {
    throw new Error('stub');
  }
  attachDev(): void {}
  hwInfo(): undefined {
    return undefined;
  }
  dirtyTrackingCapable(): boolean {
    return false;
  }
  maxPasidLog2(): number {
    return 0;
  }
}

function withStub(spec: IommuSpec): IommuDriver {
  return spec.kind === 'spapr' ? new StubSpapr(spec) : createIommu(spec);
}

function names(devs: readonly Device[]): string[] {
  return devs.map((d) => d.name);
}

describe('presets', () => {
  it('are x86, powernv, pseries, mock and refguest', () => {
    assert.deepEqual(Object.keys(PRESETS), ['x86', 'powernv', 'pseries', 'mock', 'refguest']);
    assert.equal(PRESETS.x86, x86);
    for (const [name, spec] of Object.entries(PRESETS)) assert.equal(spec.name, name);
  });

  it('each says which kernel build it stands for; pseries is a 64 KiB-page kernel', () => {
    for (const spec of Object.values(PRESETS)) assert.match(spec.kernel ?? '', /VFIO|IOMMU/);
    assert.equal(PRESETS.pseries!.pageSize, 65536);
    assert.equal(PRESETS.powernv!.pageSize, undefined, "the machine's own pages");
  });

  for (const [name, spec] of Object.entries(PRESETS)) {
    it(`${name}: is normalised, validates and survives a JSON round trip`, () => {
      assert.deepStrictEqual(validateHostSpec(spec), spec);
      assert.deepStrictEqual(viaJson(spec), spec);
      assert.ok(Object.isFrozen(spec) && Object.isFrozen(spec.devices[0]!.bars));
    });
  }

  it('x86: one intel unit, 8 devices in 7 groups, GPU and its audio share group 1', () => {
    const host = instantiate(x86, new PhysRam());
    assert.equal(host.iommus.size, 1);
    const dmar = host.iommus.get('dmar0');
    assert.ok(dmar instanceof IntelIommu);
    assert.deepEqual(dmar.features, {
      addressWidth: 48,
      pgsizeBitmap: 0x4020_1000n,
      dirtyTracking: true,
      maxPasidLog2: 20,
      snoopControl: true,
    });
    assert.equal(host.devices.size, 8);
    assert.deepEqual([...host.groups.keys()], [0, 4, 1, 12, 13, 14, 15]);
    const shared = host.groups.get(1)!;
    assert.deepEqual(names(shared.devices), ['0000:01:00.0', '0000:01:00.1']);
    assert.equal(host.devices.get('0000:01:00.1')!.device.group, shared);
    for (const [n, g] of host.groups) {
      if (n !== 1) assert.equal(g.devices.length, 1, `group ${n}`);
    }
    const nic = host.devices.get('0000:03:00.0')!;
    assert.equal(nic.spec.vendor, 0x8086);
    assert.equal(nic.spec.device, 0x1533);
    assert.equal(host.devices.get('0000:02:00.0')!.spec.device, 0xa808);
    assert.deepEqual(host.devices.get('0000:00:04.0')!.spec.model, { kind: 'ioat' });
  });

  it('x86 and powernv: one DMA engine each, on a neutral function and on ConnectX port 0', () => {
    const engines = (spec: HostSpec) =>
      spec.devices.filter((d) => d.model?.kind === 'dma-engine').map((d) => d.bdf);
    assert.deepEqual(engines(x86), ['0000:00:02.0']);
    assert.deepEqual(engines(PRESETS.powernv!), ['0000:01:00.0']);
    assert.deepEqual(engines(PRESETS.pseries!), []);
  });

  it('x86: every device reports the MSI window, on top of its own RMRRs', () => {
    const host = instantiate(x86, new PhysRam());
    for (const { device, spec } of host.devices.values()) {
      assert.equal(device.name, spec.bdf);
      assert.equal(device.driver, host.iommus.get('dmar0'));
      assert.deepEqual(device.reservedRegions, [MSI, ...(spec.reservedRegions ?? [])]);
    }
    const xhci = host.devices.get('0000:00:14.0')!.device;
    assert.deepEqual(xhci.reservedRegions[1], {
      start: 0x7a7d_9000n,
      last: 0x7a7f_8fffn,
      kind: 'direct-relaxable',
    });
  });

  it('x86: a domain of the unit attaches to the shared group', () => {
    const host = instantiate(x86, new PhysRam());
    const group = host.groups.get(1)!;
    const dev = group.devices[0]!;
    const domain = dev.driver.domainAllocPaging(dev, PLAIN);
    group.attach(domain);
    assert.equal(host.devices.get('0000:01:00.1')!.device.group.domain, domain);
  });

  it('two instantiations share nothing', () => {
    const a = instantiate(x86, new PhysRam());
    const b = instantiate(x86, new PhysRam());
    assert.notEqual(a.iommus.get('dmar0'), b.iommus.get('dmar0'));
    assert.notEqual(a.groups.get(1), b.groups.get(1));
    assert.equal(a.groups.get(1)!.devices.length, 2);
  });

  it('mock: mock devices (flags 0) behind one MockIommu, one group each', () => {
    const host = instantiate(mock, new PhysRam());
    const drv = host.iommus.get('mock0');
    assert.ok(drv instanceof MockIommu);
    assert.equal(host.groups.size, 2);
    assert.equal(host.devices.size, 2);
    for (const { device } of host.devices.values()) {
      assert.ok(device instanceof MockDevice);
      assert.equal(device.flags, 0);
      assert.deepEqual(device.reservedRegions, []);
      device.group.attach(drv.domainAllocPaging(device, PLAIN));
    }
    assert.deepEqual(names(host.groups.get(0)!.devices), ['0000:00:04.0']);
  });

  it('powernv: POWER9 PHB parameters kept as data', () => {
    assert.equal(powernv.iommus.length, 2);
    for (const u of powernv.iommus) {
      assert.deepEqual(u, {
        kind: 'spapr',
        id: u.id,
        variant: 'powernv',
        windowSlots: 2,
        windowBases: [0n, 1n << 59n],
        pageShifts: [12, 16, 21, 30],
        maxLevels: 5,
        dma32Start: 0n,
        dma32Size: 0x8000_0000n,
      });
    }
  });

  it('pseries: PowerVM PE parameters (1 level) kept as data', () => {
    for (const u of pseries.iommus) {
      assert.equal(u.kind, 'spapr');
      if (u.kind !== 'spapr') continue;
      assert.equal(u.variant, 'pseries');
      assert.equal(u.maxLevels, 1);
      assert.deepEqual(u.pageShifts, [12, 16, 24]);
      assert.deepEqual(u.windowBases, [0n, 1n << 59n]);
    }
  });

  it('powernv and pseries: the default factory builds SPAPR PHBs whose default window attaches', () => {
    for (const [spec, dma32] of [
      [powernv, 2n << 30n],
      [pseries, 1n << 30n],
    ] as const) {
      const host = instantiate(spec, new PhysRam());
      const phb = host.iommus.get(spec.iommus[0]!.id);
      assert.ok(phb instanceof SpaprIommu);
      assert.equal(
        phb.caps.maxLevels,
        spec.iommus[0]!.kind === 'spapr' ? spec.iommus[0]!.maxLevels : 0,
      );
      const dev = [...host.devices.values()][0]!.device;
      const domain = phb.domainAllocPaging(dev, {
        nestParent: false,
        dirtyTracking: false,
        pasid: false,
      });
      assert.deepEqual(
        domain.apertures.map((a) => [a.start, a.last]),
        [[0n, dma32 - 1n]],
      );
      dev.group.attach(domain);
      assert.equal(dev.group.domain, domain);
    }
  });

  it('powernv: instantiates with a spapr factory: 5 devices in 4 PEs, ConnectX-5 ports share one', () => {
    const host = instantiate(powernv, new PhysRam(), { createIommu: withStub });
    assert.equal(host.iommus.size, 2);
    assert.equal(host.groups.size, 4);
    assert.equal(host.devices.size, 5);
    assert.deepEqual(host.devices.get('0001:03:00.0')!.spec.model, { kind: 'ioat' });
    assert.deepEqual(names(host.groups.get(0)!.devices), ['0000:01:00.0', '0000:01:00.1']);
    const phb1 = host.iommus.get('phb1') as StubSpapr;
    assert.equal(phb1.spec, powernv.iommus[1]);
    for (const { device, spec } of host.devices.values()) {
      assert.equal(device.driver, host.iommus.get(spec.iommu));
      assert.deepEqual(device.reservedRegions, []);
    }
    assert.equal(host.devices.get('0000:01:00.0')!.spec.vendor, 0x15b3);
    assert.equal(host.devices.get('0001:01:00.0')!.spec.vendor, 0x1014);
  });

  it('pseries: instantiates with a spapr factory: 3 devices in 2 groups', () => {
    const host = instantiate(pseries, new PhysRam(), { createIommu: withStub });
    assert.equal(host.groups.size, 2);
    assert.equal(host.devices.size, 3);
    assert.equal((host.iommus.get('phb21') as StubSpapr).spec.maxLevels, 1);
  });

  it('effectiveIrq fills the defaults', () => {
    const nvme = x86.devices.find((d) => d.bdf === '0000:02:00.0')!;
    assert.deepEqual(effectiveIrq(nvme), {
      intx: true,
      msi: 32,
      msix: 33,
      msixBar: 0,
      msixTableOffset: 0x3000n,
      msixPbaOffset: 0x2000n,
    });
    const bare = { ...nvme, irq: undefined, bars: [] };
    assert.deepEqual(effectiveIrq(bare), {
      intx: true,
      msi: 0,
      msix: 0,
      msixBar: undefined,
      msixTableOffset: 0n,
      msixPbaOffset: 0n,
    });
    const defaults = { ...nvme, irq: { msix: 300 } };
    assert.equal(effectiveIrq(defaults).msixPbaOffset, 0x2000n);
  });
});

describe('parseHostSpec', () => {
  it('applies defaults: intel like IntelIommu, spapr by variant, iommu when there is one', () => {
    const spec = parseHostSpec({
      name: 'h',
      iommus: [{ id: 'u', kind: 'intel' }],
      devices: [{ bdf: '0000:00:1F.7', vendor: 1, device: 2, class: 3, group: 0 }],
    });
    assert.deepEqual(spec.iommus[0], {
      kind: 'intel',
      id: 'u',
      addressWidth: 48,
      pgsizes: 0x4020_1000n,
      dirtyTracking: true,
      maxPasidLog2: 20,
      snoopControl: true,
    });
    assert.deepEqual(spec.devices[0], {
      bdf: '0000:00:1f.7',
      vendor: 1,
      device: 2,
      class: 3,
      bars: [],
      group: 0,
      iommu: 'u',
    });
    const one = parseHostSpec({
      name: 'p',
      iommus: [{ id: 'p', kind: 'spapr', variant: 'pseries', windowSlots: 1, dma32Size: '2G' }],
      devices: [],
    });
    assert.deepEqual(one.iommus[0], {
      kind: 'spapr',
      id: 'p',
      variant: 'pseries',
      windowSlots: 1,
      windowBases: [0n],
      pageShifts: [12, 16, 24],
      maxLevels: 1,
      dma32Start: 0n,
      dma32Size: 0x8000_0000n,
    });
  });

  it('reads u64 as numbers, hex strings with underscores, decimal strings and sizes', () => {
    const spec = parseHostSpec({
      name: 'h',
      iommus: [{ id: 'u', kind: 'intel', pgsizes: ['4K', 0x200000, '0x4000_0000'] }],
      devices: [
        {
          bdf: '0000:00:00.0',
          vendor: '0x8086',
          device: 0x1234,
          class: '0x06_0000',
          group: 0,
          bars: [{ index: 0, kind: 'mem64', size: '1T' }],
          reservedRegions: [
            { start: '0xffff_ffff_ffff_f000', last: '0xffffffffffffffff', kind: 'reserved' },
            { start: 4096, last: '8191', kind: 'direct' },
          ],
        },
      ],
    });
    const u = spec.iommus[0]!;
    assert.equal(u.kind === 'intel' && u.pgsizes, 0x4020_1000n);
    const d = spec.devices[0]!;
    assert.equal(d.class, 0x060000);
    assert.equal(d.bars[0]!.size, 1n << 40n);
    assert.deepEqual(d.reservedRegions, [
      { start: 0xffff_ffff_ffff_f000n, last: (1n << 64n) - 1n, kind: 'reserved' },
      { start: 4096n, last: 8191n, kind: 'direct' },
    ]);
  });

  it('accepts "//" comments on any object', () => {
    const spec = parseHostSpec({
      '//': 'top',
      name: 'h',
      iommus: [{ '//': ['a', 'b'], id: 'm', kind: 'mock' }],
      devices: [],
    });
    assert.deepEqual(spec, { name: 'h', iommus: [{ kind: 'mock', id: 'm' }], devices: [] });
  });

  /** A valid config the cases below break one field of. */
  function base(): Config {
    return {
      name: 'base',
      iommus: [
        { id: 'dmar0', kind: 'intel' },
        { id: 'phb0', kind: 'spapr', variant: 'powernv' },
        { id: 'mock0', kind: 'mock' },
      ],
      devices: [
        {
          bdf: '0000:3b:00.0',
          vendor: '0x8086',
          device: '0x1572',
          class: '0x020000',
          bars: [
            { index: 0, kind: 'mem64', size: '8M', prefetchable: true },
            { index: 3, kind: 'mem64', size: '32K' },
          ],
          group: 20,
          iommu: 'dmar0',
          reservedRegions: [{ start: '0x7a000000', last: '0x7a0fffff', kind: 'direct' }],
          irq: { msi: 1, msix: 129, msixBar: 3, msixPbaOffset: '0x1000' },
        },
        {
          bdf: '0000:3b:00.1',
          vendor: '0x8086',
          device: '0x1572',
          class: '0x020000',
          group: 20,
          iommu: 'dmar0',
        },
        {
          bdf: '0001:01:00.0',
          vendor: '0x15b3',
          device: '0x1017',
          class: '0x020000',
          bars: [{ index: 0, kind: 'mem64', size: '32M', prefetchable: true }],
          group: 1,
          iommu: 'phb0',
        },
        {
          bdf: '0000:00:04.0',
          vendor: '0x1b36',
          device: '0x0005',
          class: '0x00ff00',
          group: 2,
          iommu: 'mock0',
        },
      ],
    };
  }

  it('accepts the base config of the error table', () => {
    assert.equal(parseHostSpec(base()).devices.length, 4);
  });

  it('a device model with its options survives parse and a JSON round trip', () => {
    const j = base();
    j.devices[2].model = { kind: 'ioat', xfercap: 13 };
    const spec = parseHostSpec(j);
    assert.deepEqual(spec.devices[2]!.model, { kind: 'ioat', xfercap: 13 });
    assert.deepEqual(viaJson(spec).devices[2]!.model, { kind: 'ioat', xfercap: 13 });
    j.devices[2].model = { kind: 'ioat' };
    assert.deepEqual(
      parseHostSpec(j).devices[2]!.model,
      { kind: 'ioat' },
      'XFERCAP default left out',
    );
  });

  it('a hot reset scope survives parse and a JSON round trip, absent when not given', () => {
    const j = base();
    j.devices[2].hotReset = 'slot';
    const spec = parseHostSpec(j);
    assert.equal(spec.devices[2]!.hotReset, 'slot');
    assert.equal(viaJson(spec).devices[2]!.hotReset, 'slot');
    assert.equal(spec.devices[1]!.hotReset, undefined);
  });

  it('keeps the kernel build and the page size, absent when not given', () => {
    const spec = parseHostSpec({ ...base(), kernel: 'a 64 KiB-page build', pageSize: 65536 });
    assert.equal(spec.kernel, 'a 64 KiB-page build');
    assert.equal(spec.pageSize, 65536);
    assert.equal('pageSize' in parseHostSpec(base()), false);
  });

  const cases: [string, (j: Config) => unknown, string][] = [
    ['root is an array', () => [], '(root): must be an object (got an array)'],
    [
      'unknown root key',
      (j) => {
        j.devies = [];
      },
      'devies: unknown key (allowed: name, kernel, pageSize, iommus, devices)',
    ],
    [
      'missing name',
      (j) => {
        delete j.name;
      },
      'name: required',
    ],
    [
      'a page size Linux is not built with',
      (j) => {
        j.pageSize = 16384;
      },
      'pageSize: must be 4096 or 65536 (got 16384)',
    ],
    [
      'an empty kernel build',
      (j) => {
        j.kernel = '';
      },
      'kernel: must be a non-empty string (got "")',
    ],
    [
      'no IOMMU',
      (j) => {
        j.iommus = [];
      },
      'iommus: must have at least 1 entry',
    ],
    [
      'IOMMU without kind',
      (j) => {
        delete j.iommus[0].kind;
      },
      'iommus[0].kind: required',
    ],
    [
      'unknown IOMMU kind',
      (j) => {
        j.iommus[0].kind = 'amd';
      },
      `iommus[0].kind: must be one of 'intel', 'spapr', 'mock' (got "amd")`,
    ],
    [
      'intel address width',
      (j) => {
        j.iommus[0].addressWidth = 40;
      },
      'iommus[0].addressWidth: must be 39, 48 or 57 (got 40)',
    ],
    [
      'intel page sizes',
      (j) => {
        j.iommus[0].pgsizes = ['4K', '64K'];
      },
      'iommus[0].pgsizes: must be 4K plus any of 2M and 1G (got 0x11000)',
    ],
    [
      'intel page size not a power of two',
      (j) => {
        j.iommus[0].pgsizes = ['4K', '3M'];
      },
      'iommus[0].pgsizes[1]: a page size must be a power of two (got 0x300000)',
    ],
    [
      'intel PASID width',
      (j) => {
        j.iommus[0].maxPasidLog2 = 21;
      },
      'iommus[0].maxPasidLog2: must be between 0 and 20 (got 21)',
    ],
    [
      'spapr key on an intel unit',
      (j) => {
        j.iommus[0].variant = 'powernv';
      },
      'iommus[0].variant: unknown key (allowed: kind, id, addressWidth, pgsizes, dirtyTracking, maxPasidLog2, snoopControl)',
    ],
    [
      'bad IOMMU id',
      (j) => {
        j.iommus[2].id = 'mock 0';
      },
      `iommus[2].id: 'mock 0' is not a name of letters, digits, '_', '.', ':' or '-'`,
    ],
    [
      'duplicate IOMMU id',
      (j) => {
        j.iommus[2].id = 'dmar0';
      },
      `iommus[2].id: duplicate IOMMU id 'dmar0' (also iommus[0])`,
    ],
    [
      'spapr without variant',
      (j) => {
        delete j.iommus[1].variant;
      },
      'iommus[1].variant: required',
    ],
    [
      'spapr variant',
      (j) => {
        j.iommus[1].variant = 'bare';
      },
      `iommus[1].variant: must be one of 'powernv', 'pseries' (got "bare")`,
    ],
    [
      'spapr levels',
      (j) => {
        j.iommus[1].maxLevels = 6;
      },
      'iommus[1].maxLevels: must be between 1 and 5 (got 6)',
    ],
    [
      'spapr window slots',
      (j) => {
        j.iommus[1].windowSlots = 3;
      },
      'iommus[1].windowSlots: must be between 1 and 2 (got 3)',
    ],
    [
      'spapr window bases count',
      (j) => {
        j.iommus[1].windowBases = ['0'];
      },
      'iommus[1].windowBases: must have windowSlots (2) entries (got 1)',
    ],
    [
      'spapr slot 0 elsewhere than the 32-bit window',
      (j) => {
        j.iommus[1].windowBases = ['0x1000', '0x0800_0000_0000_0000'];
      },
      'iommus[1].windowBases[0]: slot 0 is the 32-bit window: must equal dma32Start (0x0)',
    ],
    [
      'spapr slot 1 misaligned',
      (j) => {
        j.iommus[1].windowBases = [0, '0x0800_0000_0020_0000'];
      },
      'iommus[1].windowBases[1]: must be aligned to the largest TCE page (0x40000000)',
    ],
    [
      'spapr slot 1 inside the 32-bit window',
      (j) => {
        j.iommus[1].windowBases = [0, '1G'];
      },
      'iommus[1].windowBases[1]: must lie above the 32-bit window (ends at 0x80000000)',
    ],
    [
      'spapr page shifts not ascending',
      (j) => {
        j.iommus[1].pageShifts = [12, 21, 16];
      },
      'iommus[1].pageShifts[2]: page shifts must be ascending and unique',
    ],
    [
      'spapr page shifts without 4K',
      (j) => {
        j.iommus[1].pageShifts = [16, 21];
      },
      "iommus[1].pageShifts: must include 12 (the default window's 4 KiB pages)",
    ],
    [
      'spapr 32-bit window beyond 4 GiB',
      (j) => {
        j.iommus[1].dma32Size = '8G';
      },
      'iommus[1].dma32Size: the 32-bit window must end at or below 4 GiB',
    ],
    [
      'unknown device key',
      (j) => {
        j.devices[1].irqs = {};
      },
      'devices[1].irqs: unknown key (allowed: bdf, vendor, device, subsystemVendor, subsystemDevice, class, revision, pcie, bars, hotReset, group, iommu, reservedRegions, irq, model, sriov, sriovTotalVfs, sriovVf, physfn)',
    ],
    [
      'unknown hot reset scope',
      (j) => {
        j.devices[1].hotReset = 'flr';
      },
      `devices[1].hotReset: must be one of 'slot', 'bus', 'none' (got "flr")`,
    ],
    [
      'comment of the wrong type',
      (j) => {
        j.devices[0]['//'] = 5;
      },
      'devices[0].//: a comment must be a string or an array of strings',
    ],
    [
      'missing vendor',
      (j) => {
        delete j.devices[2].vendor;
      },
      'devices[2].vendor: required',
    ],
    [
      'BDF format',
      (j) => {
        j.devices[0].bdf = '3b:00.0';
      },
      'devices[0].bdf: must look like DDDD:BB:DD.F, e.g. 0000:03:00.0 (got "3b:00.0")',
    ],
    [
      'BDF device number',
      (j) => {
        j.devices[0].bdf = '0000:3b:20.0';
      },
      'devices[0].bdf: device number 0x20 is above 0x1f',
    ],
    [
      'duplicate BDF (case-insensitive)',
      (j) => {
        j.devices[2].bdf = '0000:3B:00.1';
      },
      'devices[2].bdf: duplicate BDF 0000:3b:00.1 (also devices[1])',
    ],
    [
      'vendor id as a bare hex string',
      (j) => {
        j.devices[0].vendor = '8086';
      },
      'devices[0].vendor: must be an integer or a 0x-prefixed hex string (got "8086")',
    ],
    [
      'vendor id 0xffff',
      (j) => {
        j.devices[0].vendor = 0xffff;
      },
      'devices[0].vendor: must not be 0x0000 or 0xffff',
    ],
    [
      'device id wider than 16 bits',
      (j) => {
        j.devices[0].device = '0x10000';
      },
      'devices[0].device: must fit in 16 bits (0..0xffff)',
    ],
    [
      'class wider than 24 bits',
      (j) => {
        j.devices[0].class = 0x1000000;
      },
      'devices[0].class: must fit in 24 bits (0..0xffffff)',
    ],
    [
      'BAR size not a power of two',
      (j) => {
        j.devices[2].bars[0].size = '0x3000';
      },
      'devices[2].bars[0].size: must be a power of two (got 0x3000)',
    ],
    [
      'memory BAR below 16 bytes',
      (j) => {
        j.devices[2].bars[0].size = 8;
      },
      'devices[2].bars[0].size: a memory BAR is at least 16 bytes (got 0x8)',
    ],
    [
      '32-bit BAR above 2 GiB',
      (j) => {
        j.devices[2].bars[0] = { index: 0, kind: 'mem32', size: '4G' };
      },
      'devices[2].bars[0].size: a 32-bit memory BAR is at most 2 GiB (got 0x100000000)',
    ],
    [
      'I/O BAR too large',
      (j) => {
        j.devices[2].bars.push({ index: 2, kind: 'io', size: 512 });
      },
      'devices[2].bars[1].size: an I/O BAR is 4 to 256 bytes (got 0x200)',
    ],
    [
      'prefetchable I/O BAR',
      (j) => {
        j.devices[2].bars.push({ index: 2, kind: 'io', size: 32, prefetchable: true });
      },
      'devices[2].bars[1].prefetchable: an I/O BAR cannot be prefetchable',
    ],
    [
      'BAR kind',
      (j) => {
        j.devices[2].bars[0].kind = 'mem16';
      },
      `devices[2].bars[0].kind: must be one of 'mem32', 'mem64', 'io' (got "mem16")`,
    ],
    [
      'BAR index',
      (j) => {
        j.devices[2].bars[0].index = 6;
      },
      'devices[2].bars[0].index: must be between 0 and 5 (got 6)',
    ],
    [
      '64-bit BAR at index 5',
      (j) => {
        j.devices[2].bars[0].index = 5;
      },
      'devices[2].bars[0].index: a 64-bit BAR also takes index + 1: its index is at most 4',
    ],
    [
      'BAR on the upper half of a 64-bit BAR',
      (j) => {
        j.devices[0].bars.push({ index: 1, kind: 'mem32', size: '4K' });
      },
      'devices[0].bars[2].index: BAR 1 is already taken by bars[0]',
    ],
    [
      'unknown IOMMU',
      (j) => {
        j.devices[1].iommu = 'dmar9';
      },
      `devices[1].iommu: unknown IOMMU 'dmar9' (known: dmar0, phb0, mock0)`,
    ],
    [
      'IOMMU left out on a host with several',
      (j) => {
        delete j.devices[1].iommu;
      },
      'devices[1].iommu: required (the host has 3 IOMMUs)',
    ],
    [
      'group member on another IOMMU',
      (j) => {
        j.devices[2].group = 20;
      },
      `devices[2].iommu: group 20 is behind IOMMU 'dmar0' (devices[0]); all members of a group share one IOMMU`,
    ],
    [
      'negative group',
      (j) => {
        j.devices[1].group = -1;
      },
      'devices[1].group: must be between 0 and 2147483647 (got -1)',
    ],
    [
      'reserved region ending before it starts',
      (j) => {
        j.devices[0].reservedRegions[0].last = '0x79ffffff';
      },
      'devices[0].reservedRegions[0].last: must be ≥ start (0x7a000000); last is inclusive',
    ],
    [
      'reserved region kind',
      (j) => {
        j.devices[0].reservedRegions[0].kind = 'rmrr';
      },
      `devices[0].reservedRegions[0].kind: must be one of 'direct', 'direct-relaxable', 'reserved', 'msi', 'sw-msi' (got "rmrr")`,
    ],
    [
      'u64 number above 2^53',
      (j) => {
        j.devices[0].reservedRegions[0].last = 2 ** 60;
      },
      'devices[0].reservedRegions[0].last: 1152921504606847000 is above 2^53: give it as a hex string',
    ],
    [
      'u64 wider than 64 bits',
      (j) => {
        j.devices[0].reservedRegions[0].last = '0x1_0000_0000_0000_0000';
      },
      'devices[0].reservedRegions[0].last: does not fit in 64 bits',
    ],
    [
      'u64 in an unknown notation',
      (j) => {
        j.devices[0].reservedRegions[0].start = '4KB';
      },
      'devices[0].reservedRegions[0].start: must be a number, a hex string like "0x1000" or a size like "4K" (got "4KB")',
    ],
    [
      'reserved regions on a mock device',
      (j) => {
        j.devices[3].reservedRegions = [];
      },
      'devices[3].reservedRegions: devices behind a mock IOMMU have no reserved regions',
    ],
    [
      'MSI count',
      (j) => {
        j.devices[0].irq.msi = 3;
      },
      'devices[0].irq.msi: must be 0 or a power of two up to 32 (got 3)',
    ],
    [
      'MSI-X count',
      (j) => {
        j.devices[0].irq.msix = 4096;
      },
      'devices[0].irq.msix: must be between 0 and 2048 (got 4096)',
    ],
    [
      'MSI-X placement without MSI-X',
      (j) => {
        j.devices[0].irq.msix = 0;
      },
      'devices[0].irq.msixBar: only allowed with msix > 0',
    ],
    [
      'MSI-X table in an unimplemented BAR',
      (j) => {
        j.devices[0].irq.msixBar = 4;
      },
      "devices[0].irq.msixBar: BAR 4 is not one of the device's memory BARs",
    ],
    [
      'MSI-X table past the end of its BAR',
      (j) => {
        j.devices[0].irq.msixTableOffset = '0x7800';
      },
      'devices[0].irq.msixTableOffset: the MSI-X table (0x810 bytes at 0x7800) does not fit in BAR 3 (0x8000 bytes)',
    ],
    [
      'MSI-X PBA inside the table',
      (j) => {
        j.devices[0].irq.msixPbaOffset = '0x800';
      },
      'devices[0].irq.msixPbaOffset: the MSI-X PBA overlaps the MSI-X table',
    ],
    [
      'MSI-X offset misaligned',
      (j) => {
        j.devices[0].irq.msixPbaOffset = '0x1004';
      },
      'devices[0].irq.msixPbaOffset: must be 8-byte aligned (got 0x1004)',
    ],
    [
      'model not an object',
      (j) => {
        j.devices[2].model = 'dma-engine';
      },
      'devices[2].model: must be an object (got "dma-engine")',
    ],
    [
      'model of an unknown kind',
      (j) => {
        j.devices[2].model = { kind: 'edu' };
      },
      "devices[2].model.kind: must be one of 'dma-engine', 'ioat', 'nvme' (got \"edu\")",
    ],
    [
      'model option the kind does not have',
      (j) => {
        j.devices[2].model = { kind: 'dma-engine', size: 1 };
      },
      'devices[2].model.size: unknown key (allowed: kind)',
    ],
    [
      'dma-engine without a BAR 0',
      (j) => {
        j.devices[1].model = { kind: 'dma-engine' };
      },
      'devices[1].model: needs BAR 0 to be a memory BAR of at least 0x41000 bytes',
    ],
    [
      'dma-engine with a BAR 0 too small for the buffer',
      (j) => {
        j.devices[2].bars[0].size = '256K';
        j.devices[2].model = { kind: 'dma-engine' };
      },
      'devices[2].model: needs BAR 0 to be a memory BAR of at least 0x41000 bytes',
    ],
    [
      'dma-engine under the MSI-X table',
      (j) => {
        j.devices[2].irq = { msix: 8, msixBar: 0, msixTableOffset: '0x800' };
        j.devices[2].model = { kind: 'dma-engine' };
      },
      "devices[2].model: the MSI-X table or PBA overlaps the dma-engine's registers (0x0-0xfff) in BAR 0",
    ],
    [
      'ioat XFERCAP out of range',
      (j) => {
        j.devices[2].model = { kind: 'ioat', xfercap: 16 };
      },
      'devices[2].model.xfercap: must be between 12 and 15 (got 16)',
    ],
    [
      'ioat without a BAR 0',
      (j) => {
        j.devices[1].model = { kind: 'ioat', xfercap: 13 };
      },
      'devices[1].model: needs BAR 0 to be a memory BAR of at least 0x1000 bytes',
    ],
    [
      'MSI-X without a memory BAR',
      (j) => {
        j.devices[1].irq = { msix: 4 };
      },
      'devices[1].irq.msix: MSI-X needs a memory BAR to hold its table',
    ],
    [
      'nvme namespace of an unsupported block size',
      (j) => {
        j.devices[2].model = { kind: 'nvme', namespaces: [{ size: '1M', lbaSize: 1024 }] };
      },
      'devices[2].model.namespaces[0].lbaSize: must be 512 or 4096 (got 1024)',
    ],
    [
      'nvme namespace not a whole number of blocks',
      (j) => {
        j.devices[2].model = { kind: 'nvme', namespaces: [{ size: '0x1200', lbaSize: 4096 }] };
      },
      'devices[2].model.namespaces[0].size: must be a non-zero multiple of lbaSize 4096 (got 0x1200)',
    ],
    [
      'nvme with an empty namespace list',
      (j) => {
        j.devices[2].model = { kind: 'nvme', namespaces: [] };
      },
      'devices[2].model.namespaces: must have at least 1 entry',
    ],
    [
      'nvme namespace with an unknown key',
      (j) => {
        j.devices[2].model = { kind: 'nvme', namespaces: [{ size: '1M', blocks: 8 }] };
      },
      'devices[2].model.namespaces[0].blocks: unknown key (allowed: size, lbaSize, file)',
    ],
    [
      'nvme registers under the MSI-X PBA',
      (j) => {
        j.devices[2].irq = {
          msix: 8,
          msixBar: 0,
          msixTableOffset: '0x3000',
          msixPbaOffset: '0x1800',
        };
        j.devices[2].model = { kind: 'nvme' };
      },
      "devices[2].model: the MSI-X table or PBA overlaps the nvme's registers and doorbells (0x0-0x1fff) in BAR 0",
    ],
  ];

  it(`has a table of ${cases.length} invalid configs`, () => {
    assert.ok(cases.length >= 20);
  });

  for (const [title, mutate, message] of cases) {
    it(`rejects: ${title}`, () => {
      const j = base();
      const replaced = mutate(j);
      const input = replaced === undefined ? j : replaced;
      assert.throws(
        () => parseHostSpec(input),
        (e: unknown) => {
          assert.ok(e instanceof HostSpecError, String(e));
          assert.equal(e.message, message);
          assert.equal(e.message, `${e.path || '(root)'}: ${e.reason}`);
          return true;
        },
      );
    });
  }

  it('validateHostSpec checks specs built in code, and instantiate runs it', () => {
    const bad: HostSpec = {
      ...x86,
      devices: x86.devices.map((d, i) => (i === 3 ? { ...d, group: 0, iommu: 'dmar1' } : d)),
    };
    assert.throws(() => validateHostSpec(bad), {
      message: "devices[3].iommu: unknown IOMMU 'dmar1' (known: dmar0)",
    });
    assert.throws(() => instantiate(bad, new PhysRam()), HostSpecError);
  });
});

describe('loadHostSpec', () => {
  it('returns a preset by name', () => {
    for (const name of Object.keys(PRESETS)) assert.equal(loadHostSpec(name), PRESETS[name]);
  });

  it('refuses an unknown preset name', () => {
    assert.throws(() => loadHostSpec('sparc'), {
      message:
        "unknown host preset 'sparc' (presets: x86, powernv, pseries, mock, refguest; a config file path contains a / or a .)",
    });
    assert.throws(() => loadHostSpec('toString'), /unknown host preset 'toString'/);
  });

  it('reads a JSON file and prefixes errors with its path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'uiommu-topology-'));
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify(hostSpecToJson(x86)));
    assert.deepStrictEqual(loadHostSpec(good), x86);

    const badField = join(dir, 'bad.json');
    const j = hostSpecToJson(mock) as Config;
    j.devices[1].bars[0].size = '0x3000';
    writeFileSync(badField, JSON.stringify(j));
    assert.throws(
      () => loadHostSpec(badField),
      (e: unknown) => {
        assert.ok(e instanceof HostSpecError);
        assert.equal(e.path, 'devices[1].bars[0].size');
        assert.equal(
          e.message,
          `${badField}: devices[1].bars[0].size: must be a power of two (got 0x3000)`,
        );
        return true;
      },
    );

    const notJson = join(dir, 'broken.json');
    writeFileSync(notJson, '{ "name": ');
    assert.throws(
      () => loadHostSpec(notJson),
      (e: unknown) => {
        assert.ok(e instanceof HostSpecError);
        assert.equal(e.path, '');
        assert.ok(e.message.startsWith(`${notJson}: invalid JSON: `), e.message);
        return true;
      },
    );
    assert.throws(() => loadHostSpec(join(dir, 'missing.json')), { code: 'ENOENT' });
  });
});

describe('examples/hosts/custom.json', () => {
  it('parses, and survives a JSON round trip', () => {
    const spec = loadHostSpec(EXAMPLE);
    assert.equal(spec.name, 'custom');
    assert.deepStrictEqual(viaJson(spec), spec);
    assert.deepStrictEqual(parseHostSpec(JSON.parse(readFileSync(EXAMPLE, 'utf8'))), spec);
  });

  it('describes two intel units, 4 devices in 3 groups', () => {
    const spec = loadHostSpec(EXAMPLE);
    assert.deepEqual(
      spec.iommus.map((u) => u.id),
      ['dmar0', 'dmar1'],
    );
    const dmar0 = spec.iommus[0]!;
    assert.equal(dmar0.kind === 'intel' && dmar0.pgsizes, 0x4020_1000n);
    const sata = spec.devices.find((d) => d.bdf === '0000:00:17.0')!;
    assert.equal(sata.vendor, 0x8086);
    assert.equal(sata.class, 0x010601);
    assert.equal(sata.bars.length, 6);

    const host = instantiate(spec, new PhysRam());
    assert.equal(host.devices.size, 4);
    assert.deepEqual([...host.groups.keys()], [20, 3, 14]);
    assert.deepEqual(names(host.groups.get(20)!.devices), ['0000:3b:00.0', '0000:3b:00.1']);
    const old = host.iommus.get('dmar1') as IntelIommu;
    assert.deepEqual(old.features, {
      addressWidth: 39,
      pgsizeBitmap: 0x1000n,
      dirtyTracking: false,
      maxPasidLog2: 0,
      snoopControl: false,
    });
    assert.deepEqual(host.devices.get('0000:00:17.0')!.device.reservedRegions, [
      MSI,
      { start: 0x7a00_0000n, last: 0x7a0f_ffffn, kind: 'direct' },
    ]);
  });
});

describe('nvme model config', () => {
  it('namespaces parse (size, lbaSize defaulting to 512, file) and survive a JSON round trip', () => {
    const j = hostSpecToJson(x86) as Config;
    const nvme = j.devices.find((d: { bdf: string }) => d.bdf === '0000:02:00.0');
    nvme.model = {
      kind: 'nvme',
      namespaces: [
        { size: '64M', file: '/tmp/ns1.img' },
        { size: '0x1000000', lbaSize: 4096 },
      ],
    };
    const spec = parseHostSpec(j);
    const model = spec.devices.find((d) => d.bdf === '0000:02:00.0')!.model;
    assert.deepEqual(model, {
      kind: 'nvme',
      namespaces: [
        { size: 64n << 20n, lbaSize: 512, file: '/tmp/ns1.img' },
        { size: 16n << 20n, lbaSize: 4096 },
      ],
    });
    assert.deepStrictEqual(viaJson(spec), spec);
  });
});
