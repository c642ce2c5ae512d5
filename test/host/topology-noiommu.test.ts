/**
 * Devices without IOMMU in host configs (`"iommu": null`): kept as '' in the
 * spec, alone in their group, without reserved regions, driven by NO_IOMMU.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PhysRam } from '../../src/host/phys-ram.ts';
import {
  HostSpecError,
  hostSpecToJson,
  instantiate,
  parseHostSpec,
} from '../../src/host/topology/index.ts';
import { NO_IOMMU } from '../../src/iommu/no-iommu.ts';
import { NOIOMMU_HOST, RAW_NIC } from '../vfio/noiommu-host.ts';

// biome-ignore lint/suspicious/noExplicitAny: the cases write ill-typed JSON
type Config = any;

function json(): Config {
  return JSON.parse(JSON.stringify(hostSpecToJson(NOIOMMU_HOST)));
}

describe('devices without IOMMU', () => {
  it('"iommu": null round-trips and instantiates a NO_IOMMU device that DMAs to physical memory', () => {
    const j = json();
    assert.equal(j.devices[0].iommu, null);
    const spec = parseHostSpec(j);
    assert.deepStrictEqual(spec, NOIOMMU_HOST);
    const ram = new PhysRam();
    const host = instantiate(spec, ram);
    const dev = host.devices.get(RAW_NIC)!.device;
    assert.equal(dev.driver, NO_IOMMU);
    assert.deepEqual(dev.reservedRegions, []);
    const phys = ram.alloc(0x1000n);
    dev.dmaWrite(phys, Uint8Array.of(5));
    assert.deepEqual([...ram.read(phys, 1)], [5]);
  });

  const cases: [string, (j: Config) => void, string][] = [
    [
      'a device joining the group of a device without IOMMU',
      (j) => {
        j.devices[1].group = 30;
      },
      'devices[1].group: group 30 is taken by devices[0]; a device without IOMMU (iommu null) is alone in its group',
    ],
    [
      'a device without IOMMU joining a group',
      (j) => {
        j.devices[0].group = 31;
        j.devices.reverse();
      },
      'devices[1].group: group 31 is taken by devices[0]; a device without IOMMU (iommu null) is alone in its group',
    ],
    [
      'reserved regions on a device without IOMMU',
      (j) => {
        j.devices[0].reservedRegions = [];
      },
      'devices[0].reservedRegions: a device without IOMMU has no reserved regions',
    ],
  ];
  for (const [what, edit, message] of cases) {
    it(`rejects ${what}`, () => {
      const j = json();
      edit(j);
      assert.throws(
        () => parseHostSpec(j),
        (e) => e instanceof HostSpecError && e.message === message,
      );
    });
  }
});
