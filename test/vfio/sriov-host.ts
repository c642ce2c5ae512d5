import assert from 'node:assert/strict';
/**
 * A host with SR-IOV for the VF-token tests: an X710 PF bound to vfio-pci
 * with two VFs enabled, a VF whose PF (06:00.0) stays with a host driver,
 * and a plain NVMe. Each function in its own group behind one VT-d unit.
 */
import { INTEL_DEFAULTS } from '../../src/host/topology/parse.ts';
import type { HostSpec, PciDeviceSpec } from '../../src/host/topology/types.ts';
import type { VfioClient } from './client.ts';

export const PF = '0000:05:00.0';
export const VF0 = '0000:05:02.0';
export const VF1 = '0000:05:02.1';
export const HOST_VF = '0000:06:02.0';
export const PLAIN = '0000:07:00.0';

function vf(bdf: string, physfn: string, group: number): PciDeviceSpec {
  return {
    bdf,
    vendor: 0x8086,
    device: 0x154c,
    class: 0x020000,
    bars: [{ index: 0, kind: 'mem64', size: 0x10000n, prefetchable: true }],
    group,
    iommu: 'dmar0',
    irq: { msix: 5 },
    physfn,
  };
}

export const SRIOV_HOST: HostSpec = {
  name: 'sriov',
  iommus: [{ ...INTEL_DEFAULTS, id: 'dmar0' }],
  devices: [
    {
      bdf: PF,
      vendor: 0x8086,
      device: 0x1572,
      class: 0x020000,
      bars: [{ index: 0, kind: 'mem64', size: 0x80_0000n, prefetchable: true }],
      group: 20,
      iommu: 'dmar0',
      irq: { msi: 1, msix: 129 },
      sriov: 2,
    },
    vf(VF0, PF, 21),
    vf(VF1, PF, 22),
    vf(HOST_VF, '0000:06:00.0', 23),
    {
      bdf: PLAIN,
      vendor: 0x144d,
      device: 0xa808,
      class: 0x010802,
      bars: [{ index: 0, kind: 'mem64', size: 0x4000n, prefetchable: false }],
      group: 24,
      iommu: 'dmar0',
    },
  ],
};

/** The group of each function of SRIOV_HOST. */
export const SRIOV_GROUP: Record<string, number> = {
  [PF]: 20,
  [VF0]: 21,
  [VF1]: 22,
  [HOST_VF]: 23,
  [PLAIN]: 24,
};

/** Sets the group of each of `bdfs` to one new container of `c`; the group fd of each bdf. */
export function sriovGroups(c: VfioClient, bdfs: readonly string[]): Map<string, number> {
  const container = c.open('/dev/vfio/vfio').ret;
  const groups = new Map<string, number>();
  for (const bdf of bdfs) {
    const g = c.open(`/dev/vfio/${SRIOV_GROUP[bdf]}`).ret;
    assert.equal(c.setContainer(g, container).ret, 0);
    groups.set(bdf, g);
  }
  return groups;
}

/** VFIO_DEVICE_FEATURE(`flags`) on `dev` with `payload` after the 8-byte header (argsz: the whole, unless given). */
export function deviceFeature(
  c: VfioClient,
  dev: number,
  flags: number,
  payload: Uint8Array<ArrayBuffer> = new Uint8Array(),
  argsz?: number,
) {
  const buf = new Uint8Array(8 + payload.length);
  const v = new DataView(buf.buffer);
  v.setUint32(0, argsz ?? buf.length, true);
  v.setUint32(4, flags, true);
  buf.set(payload, 8);
  return c.ioctl(dev, 'VFIO_DEVICE_FEATURE', c.proc.scratch(buf));
}
