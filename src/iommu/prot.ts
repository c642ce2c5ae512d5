/** IOMMU mapping permissions, as the kernel's IOMMU_READ / IOMMU_WRITE. */
export const IOMMU_READ = 1;
export const IOMMU_WRITE = 2;

/** A DMA access direction. */
export type DmaAccess = 'read' | 'write';

/** Permission bit an access needs. */
export function protFor(access: DmaAccess): number {
  return access === 'read' ? IOMMU_READ : IOMMU_WRITE;
}
