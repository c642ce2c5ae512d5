/**
 * Device attachments at a PASID (iommufd_device_attach/replace/detach with
 * pasid != IOMMU_NO_PASID, device.c, plus the iommu core's PASID checks).
 * Attachments live in the device's iommufd group, one per PASID, shared by
 * the group's devices like the RID attachment. Each one holds its HWPT and
 * the device (the idev stays busy until it is detached).
 */
import { fail } from '../abi/errno.ts';
import type { Hwpt, IommufdDevice } from './device.ts';
import { AttachHandle } from './fault.ts';
import { HwptPaging } from './hw-pagetable.ts';
import { HwptNested } from './hwpt-nested.ts';

/** One PASID of a group attached to an HWPT (iommufd_attach at that PASID). */
export interface PasidAttach {
  hwpt: Hwpt;
  handle: AttachHandle;
  readonly devices: Set<IommufdDevice>;
}

/**
 * The iommu core's admission of `pasid` (iommu_attach_device_pasid): the
 * driver must implement set_dev_pasid (EOPNOTSUPP), and the PASID must be
 * below every group device's max_pasids (EINVAL).
 */
function corePasidCheck(idev: IommufdDevice, pasid: number): void {
  const driver = idev.dev.driver;
  const where = 'iommu_attach_device_pasid';
  if (!driver.setDevPasid) fail('EOPNOTSUPP', 'the IOMMU driver has no PASID support', where);
  for (const dev of idev.dev.group.devices) {
    if (pasid >= 2 ** dev.driver.maxPasidLog2(dev)) {
      fail('EINVAL', `PASID ${pasid} beyond max_pasids`, where);
    }
  }
}

/**
 * iommufd_hwpt_pasid_compat() at a PASID: the HWPT must have been
 * allocated with IOMMU_HWPT_ALLOC_PASID, and so must the RID's HWPT if the
 * RID is attached (EINVAL).
 */
function pasidCompat(idev: IommufdDevice, hwpt: Hwpt): void {
  const where = 'iommufd_hwpt_pasid_compat';
  if (!hwpt.pasidCompat) fail('EINVAL', 'HWPT not allocated for PASID use', where);
  const rid = idev.igroup.hwpt;
  if (rid && !rid.pasidCompat) fail('EINVAL', 'the RID HWPT is not PASID-capable', where);
}

/**
 * The PT an attach or replace at a PASID names: an HWPT as is; an IOAS can
 * only offer automatic domains, never PASID-capable, so EINVAL once the
 * `busy` rule has had its say; ENOENT for a missing ID, EINVAL for others.
 */
function pasidTarget(idev: IommufdDevice, ptId: number, busy: () => void): Hwpt {
  const pt = idev.ctx.lookup(ptId);
  if (!pt) fail('ENOENT', `no object ${ptId}`, 'iommufd_get_object');
  if (pt instanceof HwptPaging || pt instanceof HwptNested) return pt;
  if (pt.type !== 'ioas') {
    fail('EINVAL', `object ${ptId} is not an IOAS or HWPT`, 'iommufd_device_change_pt');
  }
  busy();
  fail('EINVAL', 'automatic domains are not PASID-capable', 'iommufd_hwpt_pasid_compat');
}

/**
 * iommufd_device_attach() at `pasid`: EBUSY if this device is already
 * attached there (to any HWPT), EINVAL if the group is attached there to
 * another HWPT or for the compatibility rules, then the core and driver
 * checks. Pasid 0 is the RID (EBUSY while attached). Returns the HWPT
 * attached.
 */
export function pasidAttach(idev: IommufdDevice, pasid: number, ptId: number): Hwpt {
  if (pasid === 0) {
    if (idev.hwpt) fail('EBUSY', 'the RID is attached already', 'iommufd_hw_pagetable_attach');
    return idev.attach(ptId);
  }
  const ig = idev.igroup;
  const busy = () => {
    if (ig.pasids.get(pasid)?.devices.has(idev)) {
      fail('EBUSY', `attached at PASID ${pasid} already`, 'iommufd_hw_pagetable_attach');
    }
  };
  const hwpt = pasidTarget(idev, ptId, busy);
  busy();
  const attach = ig.pasids.get(pasid);
  if (attach && attach.hwpt !== hwpt) {
    fail('EINVAL', 'the group uses another HWPT at this PASID', 'iommufd_hw_pagetable_attach');
  }
  if (!attach) {
    pasidCompat(idev, hwpt);
    corePasidCheck(idev, pasid);
    idev.dev.driver.setDevPasid!(hwpt.domain, idev.dev, pasid);
    ig.pasids.set(pasid, { hwpt, handle: new AttachHandle(idev, pasid), devices: new Set() });
  }
  ig.pasids.get(pasid)!.devices.add(idev);
  hwpt.get();
  idev.get();
  return hwpt;
}

/**
 * iommufd_device_replace() at `pasid`: EINVAL unless this device is
 * attached there; the same HWPT is a no-op; otherwise the compatibility
 * rules and the driver decide, and on failure the old HWPT stays. Faults
 * of the old attachment are answered INVALID. Pasid 0 replaces the RID's.
 * Returns the HWPT attached.
 */
export function pasidReplace(idev: IommufdDevice, pasid: number, ptId: number): Hwpt {
  if (pasid === 0) {
    if (!idev.hwpt) fail('EINVAL', 'not attached', 'iommufd_device_do_replace');
    return idev.attach(ptId);
  }
  const ig = idev.igroup;
  const attach = ig.pasids.get(pasid);
  const hwpt = pasidTarget(idev, ptId, () => {});
  if (!attach?.devices.has(idev)) {
    fail('EINVAL', 'not attached at this PASID', 'iommufd_device_do_replace');
  }

  const old = attach.hwpt;
  if (hwpt === old) return hwpt;
  pasidCompat(idev, hwpt);
  idev.dev.driver.setDevPasid!(hwpt.domain, idev.dev, pasid);
  const oldHandle = attach.handle;
  attach.hwpt = hwpt;
  attach.handle = new AttachHandle(idev, pasid);
  for (const _ of attach.devices) {
    hwpt.get();
    old.put();
  }
  old.fault?.autoRespond(oldHandle);
  return hwpt;
}

/**
 * iommufd_device_detach() at `pasid`: a no-op unless this device is
 * attached there; the group's last device blocks the PASID (the driver is
 * told) and the attachment's faults are answered INVALID. Pasid 0 is the
 * RID.
 */
export function pasidDetach(idev: IommufdDevice, pasid: number): void {
  if (pasid === 0) {
    idev.detach();
    return;
  }
  const ig = idev.igroup;
  const attach = ig.pasids.get(pasid);
  if (!attach?.devices.delete(idev)) return;
  if (attach.devices.size === 0) {
    idev.dev.driver.setDevPasid?.(undefined, idev.dev, pasid);
    attach.hwpt.fault?.autoRespond(attach.handle);
    ig.pasids.delete(pasid);
  }
  attach.hwpt.put();
  idev.put();
}

/** The HWPT and handle attached at `pasid` of `idev`'s group (0 = the RID), if any. */
export function attachedAt(
  idev: IommufdDevice,
  pasid: number,
): { hwpt: Hwpt; handle: AttachHandle } | undefined {
  const ig = idev.igroup;
  if (pasid === 0) return ig.hwpt && ig.handle ? { hwpt: ig.hwpt, handle: ig.handle } : undefined;
  return ig.pasids.get(pasid);
}
