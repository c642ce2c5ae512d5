/**
 * What a driver's virtual IOMMU sees of iommufd and what iommufd asks of
 * it (the kernel's iommufd_viommu_ops and the driver-facing helpers of
 * iommufd/driver.c), plus the user-array copy helpers drivers use for
 * invalidation requests (iommu_copy_struct_from_user_array and
 * iommu_copy_struct_from_full_user_array).
 */
import { fail } from '../abi/errno.ts';
import type { Device } from './device.ts';
import type { Domain } from './domain.ts';
import type { IommuUserData } from './driver.ts';

/** struct iommu_user_data_array: an invalidation request array in user memory. */
export interface IommuUserDataArray {
  readonly type: number;
  readonly uptr: bigint;
  readonly entryLen: number;
  /** In: entries supplied. The driver sets it to the entries it handled. */
  entryNum: number;
  /** copy_from_user() of `len` bytes at `addr`; EFAULT if unreadable. */
  read(addr: bigint, len: number): Uint8Array;
  /** check_zeroed_user() of `[addr, addr+len)`: E2BIG, EFAULT; bounded memory whatever `len`. */
  checkZeroed(addr: bigint, len: bigint): void;
  /**
   * Entries an earlier attempt of this call already handled (a long array
   * is copied in windows off the engine's thread and the call restarted
   * between them): a driver handling entries one by one begins there.
   */
  readonly start: number;
  /**
   * Entry `index` copied as a `ksize`-byte struct when the array is long
   * enough to be copied off the engine's thread (its errno when that copy
   * failed there; may throw RestartCall, see Mm.gatherEntries), else
   * undefined: the caller copies it itself. `whole`: the caller copies the
   * whole array before handling any entry, so it is gathered at once.
   */
  gathered?(index: number, ksize: number, whole?: boolean): Uint8Array | undefined;
}

/**
 * copy_struct_from_user(): `usize` user bytes into a `ksize`-byte struct;
 * user bytes past `ksize` must be zero (E2BIG), missing ones read as zero.
 */
function copyStruct(
  array: IommuUserDataArray,
  ksize: number,
  addr: bigint,
  usize: number,
): Uint8Array {
  if (usize > ksize) array.checkZeroed(addr + BigInt(ksize), BigInt(usize - ksize));
  const out = new Uint8Array(ksize);
  out.set(array.read(addr, Math.min(ksize, usize)));
  return out;
}

/**
 * iommu_copy_struct_from_user_array(): entry `index` as a `size`-byte
 * struct of `type`. EINVAL for another type, an empty array, or an entry
 * length below `minLen` or above `size`.
 */
export function copyStructFromUserArray(
  array: IommuUserDataArray,
  type: number,
  index: number,
  size: number,
  minLen: number,
): Uint8Array {
  const where = '__iommu_copy_struct_from_user_array';
  if (array.entryNum === 0 || index >= array.entryNum) {
    fail('EINVAL', `entry ${index} of ${array.entryNum}`, where);
  }
  if (array.type !== type) fail('EINVAL', `data type ${array.type}, not ${type}`, where);
  if (array.entryLen < minLen || array.entryLen > size) {
    fail('EINVAL', `entry_len ${array.entryLen} outside ${minLen}..${size}`, where);
  }
  const entry = array.gathered?.(index, size);
  if (entry) return entry;
  const addr = BigInt.asUintN(64, array.uptr + BigInt(array.entryLen) * BigInt(index));
  return copyStruct(array, size, addr, array.entryLen);
}

/**
 * iommu_copy_struct_from_full_user_array(): every entry as a `size`-byte
 * struct of `type`. EINVAL for an empty array or another type; entries of
 * another length are struct-copied (E2BIG for non-zero excess bytes).
 */
export function copyStructFromFullUserArray(
  array: IommuUserDataArray,
  type: number,
  size: number,
): Uint8Array[] {
  const where = 'iommu_copy_struct_from_full_user_array';
  if (array.entryNum === 0) fail('EINVAL', 'no entries', where);
  if (array.type !== type) fail('EINVAL', `data type ${array.type}, not ${type}`, where);

  const out: Uint8Array[] = [];
  const first = array.gathered?.(0, size, true);
  if (!first && array.entryLen === size) {
    const all = array.read(array.uptr, size * array.entryNum);
    for (let i = 0; i < array.entryNum; i++) out.push(all.slice(i * size, (i + 1) * size));
    return out;
  }
  for (let i = 0; i < array.entryNum; i++) {
    const addr = BigInt.asUintN(64, array.uptr + BigInt(array.entryLen) * BigInt(i));
    const entry = i === 0 ? first : array.gathered?.(i, size, true);
    out.push(entry ?? copyStruct(array, size, addr, array.entryLen));
  }
  return out;
}

/** A domain whose cache the user invalidates (nested domains: cache_invalidate_user). */
export interface UserInvalidatable {
  /** Handle `array` in order; sets `array.entryNum` to the entries handled, also on error. */
  cacheInvalidateUser(array: IommuUserDataArray): void;
}

/** The domain has cache_invalidate_user. */
export function isUserInvalidatable(domain: Domain): domain is Domain & UserInvalidatable {
  return typeof (domain as Partial<UserInvalidatable>).cacheInvalidateUser === 'function';
}

/** iommufd's side of a vIOMMU, as its driver sees it. */
export interface ViommuCore {
  /** iommufd_viommu_find_dev(): the device of the vDEVICE with `virtId`, if any. */
  findDev(virtId: bigint): Device | undefined;
  /** iommufd_viommu_get_vdev_id(): the virt_id of `dev`'s vDEVICE here; ENOENT without one. */
  vdevIdOf(dev: Device): bigint;
  /** iommufd_viommu_report_event(): EOPNOTSUPP when no vEVENTQ of `type` exists. */
  reportEvent(type: number, payload: Uint8Array): void;
  /** The kernel's PAGE_SIZE. */
  readonly pageSize: bigint;
  /**
   * iommufd_viommu_alloc_mmap(): user space may map `bytes` (whole pages)
   * through its /dev/iommu fd at the returned offset, and only there with
   * exactly that length. The bytes pass to iommufd: the driver does not
   * touch them again.
   */
  allocMmap(bytes: Uint8Array): bigint;
  /** iommufd_viommu_destroy_mmap(): the region at `offset` can no longer be mapped. */
  destroyMmap(offset: bigint): void;
}

/** iommufd's side of a HW queue, as its driver sees it. */
export interface HwQueueCore {
  /** The queue's IOVA in the nesting parent (nesting_parent_iova). */
  readonly baseAddr: bigint;
  /** iommufd_hw_queue_depend(): `on` cannot be destroyed before this queue. */
  depend(on: HwQueueCore): void;
  /** iommufd_hw_queue_undepend(). */
  undepend(on: HwQueueCore): void;
}

/** A driver's virtual IOMMU instance (iommufd_viommu_ops). */
export interface IommuViommu {
  /** alloc_domain_nested(): `pasid` is IOMMU_HWPT_ALLOC_PASID. */
  allocDomainNested(pasid: boolean, userData: IommuUserData): Domain;
  /** cache_invalidate(): sets `array.entryNum` to the entries handled, also on error. */
  cacheInvalidate(array: IommuUserDataArray): void;
  /** get_hw_queue_size() != 0: the queue type is supported. */
  hwQueueSupported(type: number): boolean;
  /** hw_queue_init_phys(): returns the driver's destroy step for the queue. */
  hwQueueInit(queue: HwQueueCore, index: number, basePhys: bigint): () => void;
  /** The vIOMMU object is going away. */
  destroy(): void;
}

/** What a driver offers for vIOMMUs (iommu_ops get_viommu_size / viommu_init). */
export interface ViommuDriver {
  /** get_viommu_size() != 0. */
  viommuSupported(dev: Device, type: number): boolean;
  /** viommu_init(): `userData` only when data_len != 0. */
  viommuInit(
    core: ViommuCore,
    parent: Domain,
    type: number,
    userData: IommuUserData | undefined,
  ): IommuViommu;
}
