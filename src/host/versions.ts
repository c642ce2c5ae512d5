/**
 * Kernel versions as profiles: every version-dependent setting of the
 * emulated kernel (docs/personality.md) at the value one Linux release has.
 * `new Kernel({ version: '7.2' })` or `uiommu run --kernel 7.2` picks one;
 * individual `personality` settings still override it.
 *
 * @example
 * const kernel = new Kernel({ version: '6.12', personality: { unmapEmpty: 'success' } });
 */

import { SPAPR_TCE_6_18 } from '../vfio/spapr/personality.ts';
import type { KernelPersonality } from './kernel.ts';

/** The kernel versions uiommu has a profile for. */
export const KERNEL_VERSIONS = ['6.12', '6.18', '7.2'] as const;
export type KernelVersion = (typeof KERNEL_VERSIONS)[number];

/** The version a Kernel answers as unless told otherwise. */
export const DEFAULT_KERNEL_VERSION: KernelVersion = '6.18';

/** Linux 6.18 as shipped with CONFIG_IOMMUFD_TEST and transparent huge pages. */
export const LINUX_6_18: KernelPersonality = {
  selftest: true,
  selftestAbi: '6.18',
  iommufdLastCmd: 'IOMMU_HW_QUEUE_ALLOC',
  hwCapAtsNotSupported: false,
  requestBounds: false,
  hwInfoInputType: true,
  hwptAllocPasid: true,
  hwptPagingFault: true,
  pagesWrapFirst: true,
  mockFwspec: true,
  unmapEmpty: 'ENOENT',
  maxAutoAlignment: 2n << 20n,
  vfioNoiommu: false,
  compatUnmapEmpty: 'success',
  compatCapsAligned: true,
  vfioContainer: 'legacy',
  type1WrapErrno: 'EINVAL',
  vfioPciEnableSriov: false,
  vfioPciDmabuf: false,
  vfioCdevFlags: true,
  vfioBindStructCopy: true,
  type1Nesting: false,
  type1DmaEntryLimit: 0xffff,
  ...SPAPR_TCE_6_18,
};

/**
 * Linux 6.12 as Debian ships it (6.12.95, bookworm-backports and trixie):
 * no IOMMU_IOAS_MAP_FILE, vIOMMU, vDEVICE, CHANGE_PROCESS, vEVENTQ or
 * HW_QUEUE ioctls; the selftest of that time. Its stable updates carry
 * the VFIO-compat fixes (empty unmap succeeds, capabilities padded).
 */
export const LINUX_6_12: KernelPersonality = {
  ...LINUX_6_18,
  selftestAbi: '6.12',
  iommufdLastCmd: 'IOMMU_FAULT_QUEUE_ALLOC',
  type1Nesting: true,
  hwInfoInputType: false,
  hwptAllocPasid: false,
  hwptPagingFault: false,
  pagesWrapFirst: false,
  mockFwspec: false,
  vfioCdevFlags: false,
  vfioBindStructCopy: false,
};

/**
 * Linux 7.2: the selftest's generic page table mock (hwpt_selftest with
 * `pagetable_type`, DMABUF ops), IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED, the
 * legacy type1 container's EOVERFLOW for a wrapping range, and vfio-pci's
 * BAR dma-bufs (Debian's config has PCI_P2PDMA).
 */
export const LINUX_7_2: KernelPersonality = {
  ...LINUX_6_18,
  selftestAbi: '7.2',
  hwCapAtsNotSupported: true,
  requestBounds: true,
  type1WrapErrno: 'EOVERFLOW',
  vfioPciDmabuf: true,
};

/** The profile of each version. */
export const KERNEL_PROFILES: Readonly<Record<KernelVersion, KernelPersonality>> = {
  '6.12': LINUX_6_12,
  '6.18': LINUX_6_18,
  '7.2': LINUX_7_2,
};

/** True if `v` names a profile. */
export function isKernelVersion(v: string): v is KernelVersion {
  return (KERNEL_VERSIONS as readonly string[]).includes(v);
}
