import type { ReservedRegion } from '../../iommu/device.ts';

/** First and last byte of the x86 interrupt (MSI) address window. */
export const X86_MSI_START = 0xfee0_0000n;
export const X86_MSI_LAST = 0xfeef_ffffn;

/**
 * Reserved regions a VT-d IOMMU reports for every device: the MSI window
 * 0xfee00000..0xfeefffff, where DMA writes are interrupt requests rather than
 * memory writes (the kernel's IOAPIC range, IOMMU_RESV_MSI).
 */
export function intelReservedRegions(): ReservedRegion[] {
  return [{ start: X86_MSI_START, last: X86_MSI_LAST, kind: 'msi' }];
}
