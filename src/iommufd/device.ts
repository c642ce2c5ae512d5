import { Errno, fail } from '../abi/errno.ts';
import type { Device } from '../iommu/device.ts';
import type { Group } from '../iommu/group.ts';
import type { IommufdCtx } from './context.ts';
import { AttachHandle } from './fault.ts';
import { HwptPaging, hwptPagingAlloc } from './hw-pagetable.ts';
import { HwptNested } from './hwpt-nested.ts';
import type { Ioas } from './ioas.ts';
import { IommufdObject } from './object.ts';
import { type PasidAttach, pasidDetach } from './pasid.ts';

/** A HWPT a device can attach to: kernel-managed (paging) or user-managed (nested). */
export type Hwpt = HwptPaging | HwptNested;

/**
 * A device bound to an iommufd context (the kernel's iommufd_device). The
 * binder (VFIO, or the selftest) holds one reference on the object, so
 * users can never DESTROY it, and one on the context, so closing the
 * /dev/iommu fd leaves everything alive until unbind. Each attachment holds
 * its HWPT.
 */
export class IommufdDevice extends IommufdObject {
  readonly type = 'device';
  /** The HWPT the device's RID is attached to, if any. */
  hwpt: Hwpt | undefined;
  /** The vDEVICE standing for this device in a vIOMMU, if any (idev->vdev); it holds the device. */
  vdev: IommufdObject | undefined;

  constructor(
    readonly ctx: IommufdCtx,
    readonly dev: Device,
    /** The binder holds the context (every binder but the selftest's mock devices). */
    readonly holdsContext: boolean,
  ) {
    super();
  }

  /**
   * iommufd_device_bind(): claims DMA ownership of the device with the
   * context as the owner (EPERM while another owner holds its group),
   * then a new DEVICE object held by its binder.
   */
  static bind(ctx: IommufdCtx, dev: Device, opts = { holdsContext: true }): IommufdDevice {
    dev.group.claimDeviceDmaOwner(ctx);
    let idev: IommufdDevice;
    try {
      idev = ctx.create(new IommufdDevice(ctx, dev, opts.holdsContext), () => {});
    } catch (e) {
      dev.group.releaseDeviceDmaOwner();
      throw e;
    }
    idev.get();
    if (idev.holdsContext) ctx.hold();
    return idev;
  }

  /**
   * iommufd_device_unbind(): the device's vDEVICE goes first
   * (iommufd_device_pre_destroy), then detach (PASIDs too: the kernel
   * would wait for them forever), drop the binder's reference, leave the
   * table.
   */
  unbind(): void {
    if (this.vdev?.live) this.ctx.remove(this.vdev);
    for (const [pasid, pa] of this.igroup.pasids)
      if (pa.devices.has(this)) pasidDetach(this, pasid);
    this.detach();
    this.put();
    this.ctx.remove(this);
    this.dev.group.releaseDeviceDmaOwner();
    if (this.holdsContext) this.ctx.release();
  }

  destroy(): void {}

  /** Reserve the device's reserved regions in `ioas` (owner: this device). */
  private reserveRegions(ioas: Ioas): void {
    try {
      for (const r of this.dev.reservedRegions) {
        if (r.kind !== 'direct-relaxable') ioas.iopt.reserve(r.start, r.last, this);
      }
    } catch (e) {
      ioas.iopt.unreserve(this);
      throw e;
    }
  }

  /** The devices of this device's IOMMU group bound to the same context. */
  get igroup(): IommufdGroup {
    return igroupOf(this.ctx, this.dev.group);
  }

  /**
   * Attach the RID to `hwpt`, or replace the current HWPT with it; nothing
   * changes on failure. The IOMMU group is attached by its first device; a
   * later device must join the group's HWPT (EINVAL otherwise). A replace
   * moves every device of the group (iommu_group_replace_domain).
   */
  private switchTo(hwpt: Hwpt): void {
    const old = this.hwpt;
    if (old === hwpt) return;
    const ig = this.igroup;
    if (!old) {
      if (ig.hwpt && ig.hwpt !== hwpt) {
        fail('EINVAL', 'the group is attached to another HWPT', 'iommufd_hw_pagetable_attach');
      }
      this.reserveRegions(hwpt.ioas);
      try {
        if (!ig.hwpt) {
          ridPasidCompat(ig, hwpt);
          this.dev.group.attach(hwpt.domain);
          ig.handle = new AttachHandle(this, 0);
        }
      } catch (e) {
        hwpt.ioas.iopt.unreserve(this);
        throw e;
      }
      ig.hwpt = hwpt;
      ig.devices.add(this);
      hwpt.get();
      this.hwpt = hwpt;
      return;
    }
    const members = [...ig.devices];
    const newIoas = old.ioas !== hwpt.ioas;
    const reserved: IommufdDevice[] = [];
    try {
      if (newIoas) {
        for (const m of members) {
          m.reserveRegions(hwpt.ioas);
          reserved.push(m);
        }
      }
      ridPasidCompat(ig, hwpt);
      this.dev.group.attach(hwpt.domain);
    } catch (e) {
      for (const m of reserved) hwpt.ioas.iopt.unreserve(m);
      throw e;
    }
    const oldHandle = ig.handle;
    ig.handle = new AttachHandle(this, 0);
    if (oldHandle) old.fault?.autoRespond(oldHandle);
    ig.hwpt = hwpt;
    for (const m of members) {
      hwpt.get();
      m.hwpt = hwpt;
    }
    for (const m of members) m.release(old, newIoas);
  }

  /** Drop `old` after leaving it: its reservations (if another IOAS) and, for auto domains, the HWPT. */
  private release(old: Hwpt, unreserve: boolean): void {
    if (unreserve) old.ioas.iopt.unreserve(this);
    old.put();
    if (old.autoDomain && old.users === 0 && old.live) this.ctx.remove(old);
  }

  /** Leave the group's HWPT; the last device of the group blocks its DMA. */
  private leave(): Hwpt | undefined {
    const old = this.hwpt;
    if (!old) return undefined;
    const ig = this.igroup;
    ig.devices.delete(this);
    if (ig.devices.size === 0) {
      this.dev.group.detach();
      if (ig.handle) old.fault?.autoRespond(ig.handle);
      ig.hwpt = undefined;
      ig.handle = undefined;
    }
    this.hwpt = undefined;
    return old;
  }

  /** Undo an attach to `hwpt` made during its own allocation (auto domain abort). */
  detachFrom(hwpt: HwptPaging): void {
    if (this.hwpt !== hwpt) return;
    this.leave();
    hwpt.ioas.iopt.unreserve(this);
    hwpt.put();
  }

  /**
   * iommufd_device_attach()/replace(): `ptId` names an IOAS (reuse a
   * compatible automatic HWPT, else create one), a paging or a nested HWPT. Returns
   * the HWPT now attached. ENOENT for an unknown id, EINVAL for other types.
   */
  attach(ptId: number): Hwpt {
    const pt = this.ctx.lookup(ptId);
    if (!pt) fail('ENOENT', `no object ${ptId}`, 'iommufd_get_object');
    if (pt instanceof HwptPaging || pt instanceof HwptNested) {
      this.switchTo(pt);
      return pt;
    }
    if (pt.type !== 'ioas') {
      fail('EINVAL', `object ${ptId} is not an IOAS or HWPT`, 'iommufd_device_change_pt');
    }

    const ioas = pt as Ioas;
    for (const cand of ioas.hwpts) {
      if (!(cand instanceof HwptPaging) || !cand.autoDomain || !cand.live) continue;
      try {
        this.switchTo(cand);
        return cand;
      } catch (e) {
        if (!(e instanceof Errno) || e.code !== 'EINVAL') throw e;
      }
    }
    const replacing = this.hwpt !== undefined;
    const hwpt = hwptPagingAlloc(
      this.ctx,
      ioas,
      this,
      0,
      true,
      replacing ? undefined : (h) => this.switchTo(h),
    );
    if (replacing) {
      try {
        this.switchTo(hwpt);
      } catch (e) {
        this.ctx.remove(hwpt);
        throw e;
      }
    }
    this.ctx.finalize(hwpt);
    return hwpt;
  }

  /** iommufd_device_detach(): the last device of its group blocks DMA; an emptied auto domain is destroyed. */
  detach(): void {
    const old = this.leave();
    if (old) this.release(old, true);
  }
}

/** The devices of one IOMMU group bound to a context and the HWPT they share (iommufd_group). */
export interface IommufdGroup {
  hwpt: Hwpt | undefined;
  readonly devices: Set<IommufdDevice>;
  /** The RID attachment's handle (faults raised through it are tagged with it). */
  handle: AttachHandle | undefined;
  /** Attachments at PASIDs other than 0, by PASID (the kernel's pasid_attach). */
  readonly pasids: Map<number, PasidAttach>;
}

/**
 * iommufd_hwpt_pasid_compat() for the RID: an HWPT allocated without
 * IOMMU_HWPT_ALLOC_PASID cannot be the RID's while any PASID is attached
 * (EINVAL).
 */
function ridPasidCompat(ig: IommufdGroup, hwpt: Hwpt): void {
  if (!hwpt.pasidCompat && ig.pasids.size > 0)
    fail('EINVAL', 'PASIDs attached, HWPT not PASID-capable', 'iommufd_hwpt_pasid_compat');
}

const IGROUPS = new WeakMap<IommufdCtx, Map<Group, IommufdGroup>>();

function igroupOf(ctx: IommufdCtx, group: Group): IommufdGroup {
  let byGroup = IGROUPS.get(ctx);
  if (!byGroup) {
    byGroup = new Map();
    IGROUPS.set(ctx, byGroup);
  }
  let ig = byGroup.get(group);
  if (!ig) {
    ig = { hwpt: undefined, devices: new Set(), handle: undefined, pasids: new Map() };
    byGroup.set(group, ig);
  }
  return ig;
}
