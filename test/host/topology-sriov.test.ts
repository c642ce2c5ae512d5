/**
 * SR-IOV in host configs: a PF's `sriov` (VFs enabled) and a VF's `physfn`,
 * checked against each other with the JSON path of the bad field.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PhysRam } from '../../src/host/phys-ram.ts';
import {
  effectiveIrq,
  HostSpecError,
  hostSpecToJson,
  instantiate,
  parseHostSpec,
} from '../../src/host/topology/index.ts';
import { HOST_VF, PF, SRIOV_HOST, VF0 } from '../vfio/sriov-host.ts';

// biome-ignore lint/suspicious/noExplicitAny: the cases write ill-typed JSON
type Config = any;

function json(): Config {
  return JSON.parse(JSON.stringify(hostSpecToJson(SRIOV_HOST)));
}

describe('SR-IOV host config', () => {
  it('round-trips through JSON and instantiates; a VF has no INTx by default', () => {
    const spec = parseHostSpec(json());
    assert.deepStrictEqual(spec, SRIOV_HOST);
    const vf = spec.devices.find((d) => d.bdf === VF0)!;
    assert.equal(vf.physfn, PF);
    assert.equal(effectiveIrq(vf).intx, false);
    assert.equal(spec.devices.find((d) => d.bdf === PF)!.sriov, 2);
    assert.equal(instantiate(spec, new PhysRam()).devices.size, 5);
  });

  const cases: [string, (j: Config) => void, string][] = [
    [
      'sriov out of range',
      (j) => {
        j.devices[0].sriov = 65536;
      },
      'devices[0].sriov:',
    ],
    [
      'sriov not an integer',
      (j) => {
        j.devices[0].sriov = 'two';
      },
      'devices[0].sriov:',
    ],
    [
      'physfn not a BDF',
      (j) => {
        j.devices[1].physfn = '05:00.0';
      },
      'devices[1].physfn: must look like DDDD:BB:DD.F',
    ],
    [
      'physfn naming the VF itself',
      (j) => {
        j.devices[1].physfn = VF0;
      },
      'devices[1].physfn: a VF cannot be its own PF',
    ],
    [
      'a VF that is also a PF',
      (j) => {
        j.devices[1].sriov = 1;
      },
      'devices[1].sriov: a VF (it has physfn) cannot be a PF',
    ],
    [
      'physfn naming a device without sriov',
      (j) => {
        j.devices[3].physfn = '0000:07:00.0';
      },
      'devices[3].physfn: 0000:07:00.0 (devices[4]) is not an SR-IOV PF (it has no sriov)',
    ],
    [
      'fewer VFs than enabled',
      (j) => {
        j.devices[0].sriov = 3;
      },
      `devices[0].sriov: 3 VFs enabled but 2 devices name ${PF} as their physfn`,
    ],
    [
      'a VF with an INTx pin',
      (j) => {
        j.devices[3].irq = { intx: true };
      },
      'devices[3].irq.intx: a VF has no INTx pin',
    ],
  ];
  for (const [what, edit, message] of cases) {
    it(`rejects ${what}`, () => {
      const j = json();
      edit(j);
      assert.throws(
        () => parseHostSpec(j),
        (e) => e instanceof HostSpecError && e.message.startsWith(message),
      );
    });
  }

  it('a physfn outside the host is a PF left to a host driver', () => {
    const spec = parseHostSpec(json());
    assert.equal(spec.devices.find((d) => d.bdf === HOST_VF)!.physfn, '0000:06:00.0');
  });
});
