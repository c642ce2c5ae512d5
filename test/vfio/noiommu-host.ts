/**
 * A host for the no-IOMMU tests: one VT-d unit with an NVMe behind it
 * (group 31), and before it a NIC no IOMMU translates (iommu null), which
 * VFIO can only offer in no-IOMMU mode as the fake group 30.
 */
import { INTEL_DEFAULTS } from '../../src/host/topology/parse.ts';
import type { HostSpec } from '../../src/host/topology/types.ts';

export const RAW_NIC = '0000:00:04.0';
export const NVME = '0000:02:00.0';

export const NOIOMMU_HOST: HostSpec = {
  name: 'noiommu',
  iommus: [{ ...INTEL_DEFAULTS, id: 'dmar0' }],
  devices: [
    {
      bdf: RAW_NIC,
      vendor: 0x8086,
      device: 0x10d3,
      class: 0x020000,
      bars: [{ index: 0, kind: 'mem32', size: 0x20000n, prefetchable: false }],
      group: 30,
      iommu: '',
      irq: { msi: 1, msix: 5 },
    },
    {
      bdf: NVME,
      vendor: 0x144d,
      device: 0xa808,
      class: 0x010802,
      bars: [{ index: 0, kind: 'mem64', size: 0x4000n, prefetchable: false }],
      group: 31,
      iommu: 'dmar0',
    },
  ],
};
