/** PCI functions shared by the vfio-pci tests: a PCIe NVMe with MSI/MSI-X, and a legacy NIC. */
import type { PciDeviceSpec } from '../../src/vfio/pci/spec.ts';

export const NVME: PciDeviceSpec = {
  bdf: '0000:01:00.0',
  vendor: 0x8086,
  device: 0x0a54,
  subsystemVendor: 0x8086,
  subsystemDevice: 0x4702,
  class: 0x010802,
  revision: 0x02,
  bars: [
    { index: 0, kind: 'mem64', size: 0x4000n, prefetchable: false },
    { index: 2, kind: 'mem32', size: 0x1000n, prefetchable: true },
    { index: 4, kind: 'mem64', size: 1n << 33n, prefetchable: true },
  ],
  group: 1,
  iommu: 'dmar0',
  irq: { intx: true, msi: 8, msix: 33, msixBar: 0, msixTableOffset: 0x2000n },
};

export const LEGACY: PciDeviceSpec = {
  bdf: '0000:00:05.0',
  vendor: 0x10ec,
  device: 0x8139,
  class: 0x020000,
  pcie: false,
  bars: [
    { index: 0, kind: 'io', size: 0x100n, prefetchable: false },
    { index: 1, kind: 'mem32', size: 0x100n, prefetchable: false },
  ],
  group: 2,
  iommu: 'dmar0',
  irq: { intx: false },
};
