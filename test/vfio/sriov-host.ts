/**
 * A host with SR-IOV for the VF-token tests: an X710 PF bound to vfio-pci
 * with two VFs enabled, a VF whose PF (06:00.0) stays with a host driver,
 * and a plain NVMe. Each function in its own group behind one VT-d unit.
 */
import { INTEL_DEFAULTS } from '../../src/host/topology/parse.ts';
import type { HostSpec, PciDeviceSpec } from '../../src/host/topology/types.ts';

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
