import type { Device } from './device.ts';
import type { Domain } from './domain.ts';

/** What a paging domain is asked to support at allocation (IOMMU_HWPT_ALLOC_* flags). */
export interface PagingFlags {
  readonly nestParent: boolean;
  readonly dirtyTracking: boolean;
  readonly pasid: boolean;
}

/** GET_HW_INFO's driver part. */
export interface HwInfo {
  /** enum iommu_hw_info_type value (or a driver's own, e.g. the mock's 0xFEEDBEEF). */
  readonly type: number;
  /** The type-specific struct, already encoded. */
  readonly data: Uint8Array;
}

/**
 * A simulated IOMMU driver (the kernel's iommu_ops): builds domains for its
 * devices and decides which domains a device may attach to.
 */
export interface IommuDriver {
  readonly name: string;
  /**
   * domain_alloc_paging_flags(): a new empty domain suited to `dev`.
   * EOPNOTSUPP for flags the hardware cannot honour.
   */
  domainAllocPaging(dev: Device, flags: PagingFlags): Domain;
  /**
   * attach_dev() admission: EINVAL means "this domain is incompatible with the
   * device" (iommufd then tries another); other errnos are hard failures.
   */
  attachDev(domain: Domain, dev: Device): void;
  /** hw_info(), or undefined when the driver reports none (type NONE). */
  hwInfo(dev: Device): HwInfo | undefined;
  /** iommu_capable(dev, IOMMU_CAP_DIRTY_TRACKING). */
  dirtyTrackingCapable(dev: Device): boolean;
  /** log2 of the device's PASID count (0 without PASID support). */
  maxPasidLog2(dev: Device): number;
}
