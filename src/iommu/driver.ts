import { fail } from '../abi/errno.ts';
import type { Device } from './device.ts';
import type { Domain } from './domain.ts';
import type { TableGroup } from './table-group.ts';
import type { ViommuDriver } from './viommu.ts';

/** What a paging domain is asked to support at allocation (IOMMU_HWPT_ALLOC_* flags). */
export interface PagingFlags {
  readonly nestParent: boolean;
  readonly dirtyTracking: boolean;
  readonly pasid: boolean;
}

/**
 * struct iommu_user_data: the driver-specific data of IOMMU_HWPT_ALLOC as
 * the driver sees it. The driver copies it in itself (so a driver that
 * refuses the type answers before the user memory is touched).
 */
export interface IommuUserData {
  /** enum iommu_hwpt_data_type value (or a uiommu extension's). */
  readonly type: number;
  /** data_len: the bytes the user supplied. */
  readonly len: number;
  /** Copy the `len` bytes in from user memory; EFAULT if unreadable. */
  copy(): Uint8Array;
  /** Copy `data` out to the user's buffer (iommu_copy_struct_to_user); EFAULT if unwritable. */
  write?(data: Uint8Array): void;
}

/**
 * iommu_copy_struct_from_user(): the user's data as a `ksize`-byte struct
 * of `type`. EINVAL for another type, fewer than `minLen` bytes or more
 * than `ksize`; a shorter copy is zero-extended; EFAULT if unreadable.
 */
export function copyStructFromUser(
  data: IommuUserData,
  type: number,
  ksize: number,
  minLen: number,
): Uint8Array {
  if (data.type !== type || data.len < minLen || data.len > ksize) {
    fail(
      'EINVAL',
      `data type ${data.type} (want ${type}) or len ${data.len} outside ${minLen}..${ksize}`,
      '__iommu_copy_struct_from_user',
    );
  }

  const out = new Uint8Array(ksize);
  out.set(data.copy());
  return out;
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
   * domain_alloc_paging_flags() with user_data: a paging domain described by
   * driver-specific data (IOMMU_HWPT_ALLOC with a data_type on an IOAS).
   * Absent: the driver takes no data (EOPNOTSUPP). A driver answers
   * EOPNOTSUPP for a data type it does not know.
   */
  domainAllocUser?(dev: Device, flags: PagingFlags, userData: IommuUserData): Domain;
  /**
   * domain_alloc_nested(): a stage-1 domain described by `userData` on the
   * nesting parent `parent`; `pasid` is IOMMU_HWPT_ALLOC_PASID. Absent: no
   * nesting (EOPNOTSUPP). EINVAL for a parent of another driver.
   */
  domainAllocNested?(dev: Device, parent: Domain, pasid: boolean, userData: IommuUserData): Domain;
  /** Virtual IOMMU support (VIOMMU_ALLOC); absent: EOPNOTSUPP. */
  readonly viommu?: ViommuDriver;
  /**
   * attach_dev() admission: EINVAL means "this domain is incompatible with the
   * device" (iommufd then tries another); other errnos are hard failures.
   */
  attachDev(domain: Domain, dev: Device): void;
  /** hw_info(), or undefined when the driver reports none (type NONE). */
  hwInfo(dev: Device): HwInfo | undefined;
  /** iommu_capable(dev, IOMMU_CAP_DIRTY_TRACKING). */
  dirtyTrackingCapable(dev: Device): boolean;
  /**
   * iommu_capable(dev, IOMMU_CAP_ENFORCE_CACHE_COHERENCY): the device's
   * paging domains can be made to block no-snoop DMA (their
   * enforceCacheCoherency() then succeeds). Absent: not capable.
   */
  enforceCacheCoherencyCapable?(dev: Device): boolean;
  /** log2 of the device's PASID count (0 without PASID support). */
  maxPasidLog2(dev: Device): number;
  /**
   * set_dev_pasid(): make `domain` (undefined: the blocking domain) the
   * translation of `dev` at `pasid`; an error leaves the old one in place.
   * Absent: the driver cannot attach PASIDs (EOPNOTSUPP).
   */
  setDevPasid?(domain: Domain | undefined, dev: Device, pasid: number): void;
  /** The SPAPR table group of the driver's groups (iommu_group_get_iommudata()); absent off POWER. */
  readonly tableGroup?: TableGroup;
}
