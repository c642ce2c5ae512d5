import { fail } from '../../abi/errno.ts';
import { IOMMU_READ, IOMMU_WRITE } from '../../iommu/prot.ts';

/**
 * The permission bits of a TCE (asm/tce.h). A leaf TCE is a 64-bit word:
 * the physical address of the IOMMU page in the high bits, these two bits
 * at the bottom, 0 = invalid. (An indirect TCE of a multi-level table has
 * both bits set as its "present" marker.)
 */
/** TCE_PCI_READ: the device may read memory (DMA to the device). */
export const TCE_PCI_READ = 0x1n;
/** TCE_PCI_WRITE: the device may write memory (DMA from the device). */
export const TCE_PCI_WRITE = 0x2n;

/**
 * The kernel's `enum dma_data_direction` as SPAPR uses it for a TCE:
 * 'to-device' (DMA_TO_DEVICE, VFIO_DMA_MAP_FLAG_READ) lets the device read,
 * 'from-device' (DMA_FROM_DEVICE, VFIO_DMA_MAP_FLAG_WRITE) lets it write,
 * 'bidirectional' (both flags) lets it do both.
 */
export type DmaDirection = 'to-device' | 'from-device' | 'bidirectional';

const RW = IOMMU_READ | IOMMU_WRITE;

/** IOMMU_READ / IOMMU_WRITE for a direction (iommu_direction_to_tce_perm()). */
export function protForDirection(dir: DmaDirection): number {
  switch (dir) {
    case 'to-device':
      return IOMMU_READ;
    case 'from-device':
      return IOMMU_WRITE;
    case 'bidirectional':
      return RW;
  }
}

/** The direction of a permission (iommu_tce_direction()); undefined for none (DMA_NONE). */
export function directionForProt(prot: number): DmaDirection | undefined {
  const p = prot & RW;
  if (p === RW) return 'bidirectional';
  if (p === IOMMU_READ) return 'to-device';
  if (p === IOMMU_WRITE) return 'from-device';
  return undefined;
}

/**
 * The permission a TCE really gets for a map request with `prot`: only the
 * read and write bits count, one of them is required (EINVAL otherwise,
 * like VFIO's MAP_DMA without READ or WRITE), and a PHB that sets the read
 * bit on every writable TCE (PowerNV's TCE build/exchange do) adds it.
 */
export function tceProt(prot: number, writeImpliesRead: boolean): number {
  let p = prot & RW;
  if (p === 0) fail('EINVAL', 'a TCE needs the read or the write direction', 'tce_iommu_ioctl');
  if (writeImpliesRead && p & IOMMU_WRITE) p |= IOMMU_READ;
  return p;
}

/** The leaf TCE word for an IOMMU page at `phys` with permission `prot`. */
export function tceWord(phys: bigint, prot: number): bigint {
  return phys | (prot & IOMMU_READ ? TCE_PCI_READ : 0n) | (prot & IOMMU_WRITE ? TCE_PCI_WRITE : 0n);
}
