/**
 * vfio-pci's part of the device-fd uAPI: its fixed region and IRQ indexes
 * and its kernel-internal region offset encoding (`index << 40`). The
 * device-fd structs and flags it answers with are re-exported from
 * `src/abi/vfio-device.ts`.
 */
export * from '../../abi/vfio-device.ts';

/** vfio-pci's fixed region indexes (VFIO_PCI_*_REGION_INDEX). */
export const VFIO_PCI_REGION = {
  BAR0: 0,
  BAR5: 5,
  ROM: 6,
  CONFIG: 7,
  VGA: 8,
  /** VFIO_PCI_NUM_REGIONS: device-specific regions start here. */
  NUM: 9,
} as const;

/** vfio-pci's IRQ indexes (VFIO_PCI_*_IRQ_INDEX). */
export const VFIO_PCI_IRQ = { INTX: 0, MSI: 1, MSIX: 2, ERR: 3, REQ: 4, NUM: 5 } as const;

/** vfio-pci's region offset shift (VFIO_PCI_OFFSET_SHIFT, kernel-internal but relied on by DPDK). */
export const VFIO_PCI_OFFSET_SHIFT = 40n;
/** In-region offset mask: 2^40 - 1. */
export const VFIO_PCI_OFFSET_MASK = (1n << VFIO_PCI_OFFSET_SHIFT) - 1n;

/** The file offset of a region: `index << 40`. */
export function vfioPciRegionOffset(index: number): bigint {
  return BigInt(index) << VFIO_PCI_OFFSET_SHIFT;
}
