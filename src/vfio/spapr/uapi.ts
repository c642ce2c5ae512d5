/**
 * The SPAPR TCE container's uAPI structs (linux/vfio.h) and ioctl slots,
 * beside the type1 MAP/UNMAP structs it shares (src/abi/vfio.ts). Facts:
 * spapr-tce.md §2.
 */
import { field, struct } from '../../abi/layout.ts';
import { VFIO_BASE } from '../../abi/vfio.ts';

/** Container ioctl numbers (nr) the SPAPR backend serves. */
export const SPAPR_NR = {
  TCE_GET_INFO: VFIO_BASE + 12,
  MAP_DMA: VFIO_BASE + 13,
  UNMAP_DMA: VFIO_BASE + 14,
  ENABLE: VFIO_BASE + 15,
  DISABLE: VFIO_BASE + 16,
  REGISTER_MEMORY: VFIO_BASE + 17,
  UNREGISTER_MEMORY: VFIO_BASE + 18,
  TCE_CREATE: VFIO_BASE + 19,
  TCE_REMOVE: VFIO_BASE + 20,
  EEH_PE_OP: VFIO_BASE + 21,
} as const;

/** VFIO_IOMMU_SPAPR_INFO_DDW: the ddw fields are valid. */
export const VFIO_IOMMU_SPAPR_INFO_DDW = 1;

/** `struct vfio_iommu_spapr_tce_info` (32 bytes, 16 without `ddw`). */
export const VfioIommuSpaprTceInfo = struct('vfio_iommu_spapr_tce_info', 32, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'out'),
  field('dma32_window_start', 8, 'u32', 'out'),
  field('dma32_window_size', 12, 'u32', 'out'),
  field('pgsizes', 16, 'u64', 'out'),
  field('max_dynamic_windows_supported', 24, 'u32', 'out'),
  field('levels', 28, 'u32', 'out'),
]);

/** `struct vfio_iommu_spapr_register_memory` (24 bytes). */
export const VfioIommuSpaprRegisterMemory = struct('vfio_iommu_spapr_register_memory', 24, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('vaddr', 8, 'u64', 'in'),
  field('size', 16, 'u64', 'in'),
]);

/** `struct vfio_iommu_spapr_tce_create` (40 bytes); `start_addr` comes back. */
export const VfioIommuSpaprTceCreate = struct('vfio_iommu_spapr_tce_create', 40, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('page_shift', 8, 'u32', 'in'),
  field('__resv1', 12, 'u32', 'in'),
  field('window_size', 16, 'u64', 'in'),
  field('levels', 24, 'u32', 'in'),
  field('__resv2', 28, 'u32', 'in'),
  field('start_addr', 32, 'u64', 'out'),
]);

/** `struct vfio_iommu_spapr_tce_remove` (16 bytes). */
export const VfioIommuSpaprTceRemove = struct('vfio_iommu_spapr_tce_remove', 16, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('start_addr', 8, 'u64', 'in'),
]);
