/**
 * The VFIO device character device `/dev/vfio/devices/vfioX`
 * (CONFIG_VFIO_DEVICE_CDEV): one per VFIO device, X = the device's index
 * among VFIO's devices in host order, not its IOMMU group number. A
 * no-IOMMU device has an index but no cdev (Linux 6.18: "cdev does not
 * support noiommu device"; the noiommu-vfioX nodes are an unmerged series).
 * Facts: vfio-device.md §4.0 and §5 (checked against drivers/vfio/
 * device_cdev.c and iommufd_ctx_from_fd()).
 *
 * - open: always succeeds for a known index (several opens allowed); an
 *   unknown node is ENOENT.
 * - Before a successful BIND every other ioctl, read and write is EINVAL.
 * - BIND_IOMMUFD (minsz 16, struct 24; bindIommufdCopyIn): argsz < 16 →
 *   EINVAL; argsz > 24 with non-zero tail → E2BIG (not on 6.12); unknown
 *   flags or iommufd < 0 → EINVAL; the
 *   device's group file open → EBUSY (else the group is blocked until
 *   unbind); this fd already bound → EINVAL; the VF token (the UUID at
 *   `token_uuid_ptr` with FLAG_TOKEN: EFAULT) judged by vfio-pci's rules
 *   (pci/sriov.ts: EACCES, EINVAL);
 *   bad fd → EBADF, not an iommufd → EBADFD; device already open (group
 *   path or another cdev fd) → EINVAL; then bind (no attach: DMA blocked),
 *   vfio-pci enable, `out_devid` written (EFAULT undoes the bind).
 * - ATTACH_IOMMUFD_PT (minsz 12): argsz < 12 or unknown flags → EINVAL;
 *   PASID with argsz < 16 → EINVAL; iommufd errors pass through (ENOENT,
 *   EINVAL, EBUSY, and EOPNOTSUPP from an IOMMU driver without PASID
 *   support); attaching the RID or a PASID again replaces; `pt_id` is
 *   rewritten to the HWPT used; a failed write-back detaches.
 * - DETACH_IOMMUFD_PT (minsz 8): argsz < 8 or unknown flags → EINVAL;
 *   PASID with argsz < 12 → EINVAL; otherwise 0 (a no-op when detached).
 * - everything else goes to vfio-pci (device-fops.ts).
 * - close of a bound fd: vfio-pci disable, unbind, group unblocked.
 *
 * @example
 * const dev = proc.open('/dev/vfio/devices/vfio0');
 * // VFIO_DEVICE_BIND_IOMMUFD { argsz: 24, iommufd } → out_devid
 * // VFIO_DEVICE_ATTACH_IOMMUFD_PT { argsz: 12, pt_id: ioas } → pt_id = auto HWPT
 */

import { fail } from '../abi/errno.ts';
import { hex } from '../abi/hex.ts';
import {
  VFIO_BASE,
  VFIO_DEVICE_BIND_FLAG,
  VFIO_DEVICE_PT_FLAG,
  VfioDeviceAttachIommufdPt,
  VfioDeviceBindIommufd,
  VfioDeviceDetachIommufdPt,
  vfioNrOf,
} from '../abi/vfio.ts';
import type { Device } from '../iommu/device.ts';
import { iommufdCtxOf } from '../iommufd/fops.ts';
import { pasidAttach, pasidDetach, pasidReplace } from '../iommufd/pasid.ts';
import type { Caller, FileOps } from '../kernel/file.ts';
import type { VfioDevice } from './device.ts';
import type { VfioGroup } from './group.ts';
import { hotResetOps } from './hot-reset.ts';
import { vfioPciDeviceFileOps } from './pci/device-fops.ts';
import { validateVfToken } from './pci/sriov.ts';
import { VfioUser } from './user.ts';

const NR = {
  BIND_IOMMUFD: VFIO_BASE + 18,
  ATTACH_IOMMUFD_PT: VFIO_BASE + 19,
  DETACH_IOMMUFD_PT: VFIO_BASE + 20,
} as const;

/** The directory of the device nodes. */
export const VFIO_CDEV_DIR = '/dev/vfio/devices/';

/** What the cdev needs from the kernel: the host devices in order and their VFIO groups. */
export interface VfioCdevHost {
  readonly host: { readonly devices: ReadonlyMap<string, { readonly device: Device }> };
  readonly vfioGroups: ReadonlyMap<number, VfioGroup>;
  readonly personality: VfioCdevPersonality;
}

/** Version-dependent behaviour of the device cdev. */
export interface VfioCdevPersonality {
  /**
   * BIND_IOMMUFD takes VFIO_DEVICE_BIND_FLAG_TOKEN (v6.17) and
   * ATTACH/DETACH_IOMMUFD_PT take VFIO_DEVICE_ATTACH_PASID (v6.15); off
   * (6.12), any flag of the three is EINVAL.
   */
  readonly vfioCdevFlags: boolean;
  /**
   * BIND_IOMMUFD reads `argsz` alone, then the struct with
   * copy_struct_from_user (24 bytes: shorter is zero-filled, a longer argsz
   * must hold zeros past them, E2BIG). Off (6.12): one copy_from_user of
   * the 16-byte struct; a longer argsz is not looked at.
   */
  readonly vfioBindStructCopy: boolean;
}

/**
 * vfio_df_ioctl_bind_iommufd()'s copy-in and first checks, for the cdev
 * and for group device fds alike: the struct as read, or EFAULT, EINVAL
 * (argsz below 16, then flags outside `validFlags` or iommufd < 0), E2BIG.
 */
export function bindIommufdCopyIn(
  mm: Caller['mm'],
  arg: bigint,
  structCopy: boolean,
  validFlags: number,
) {
  const fn = 'vfio_df_ioctl_bind_iommufd';
  const minsz = VfioDeviceBindIommufd.endOf('out_devid');
  if (structCopy) {
    // get_user() of argsz alone, before anything else is read
    const argsz = new DataView(mm.read(arg, 4).buffer).getUint32(0, true);
    if (argsz < minsz) fail('EINVAL', `argsz ${argsz} below ${minsz}`, fn);
  }
  const u = VfioUser.copyIn(mm, arg, VfioDeviceBindIommufd, { minsz, fn });
  const bind = structCopy ? u.readStruct() : u.cmd;
  if (bind.flags & ~validFlags || bind.iommufd < 0)
    fail(
      'EINVAL',
      `unknown flags ${hex(bind.flags & ~validFlags)} or iommufd ${bind.iommufd} < 0`,
      fn,
    );
  return u;
}

/**
 * The VFIO devices in host order with their groups: a device's position is
 * its vfio device index X. Devices VFIO does not take (no IOMMU, no
 * no-IOMMU mode) have none.
 */
function vfioDevices(host: VfioCdevHost): { device: VfioDevice; group: VfioGroup }[] {
  const out: { device: VfioDevice; group: VfioGroup }[] = [];
  for (const { device: dev } of host.host.devices.values()) {
    const group = host.vfioGroups.get(dev.group.id);
    const device = group?.devices.find((d) => d.dev === dev);
    if (group && device) out.push({ device, group });
  }
  return out;
}

/** The device behind `vfio<index>` and its group; none for a no-IOMMU device (6.18 gives it no cdev). */
function lookup(
  host: VfioCdevHost,
  index: number,
): { device: VfioDevice; group: VfioGroup } | undefined {
  const found = vfioDevices(host)[index];
  return found && !found.group.noiommu ? found : undefined;
}

/** The cdev name (`vfioX`) of the host device `bdf`, if it has a cdev (no-IOMMU devices have none). */
export function vfioCdevName(host: VfioCdevHost, bdf: string): string | undefined {
  const all = vfioDevices(host);
  const index = all.findIndex((f) => f.device.name === bdf);
  return index < 0 || all[index]!.group.noiommu ? undefined : `vfio${index}`;
}

/** An open cdev file; `device` lets kernel-side users (KVM, tests) find the device. */
export type VfioCdevFile = FileOps & { readonly device: VfioDevice };

/** open(2) of `/dev/vfio/devices/<name>`: ENOENT unless `<name>` is `vfioX` of a host device. */
export function openVfioCdev(host: VfioCdevHost, path: string): VfioCdevFile {
  const m = /^vfio(0|[1-9][0-9]{0,9})$/.exec(path.slice(VFIO_CDEV_DIR.length));
  const found = path.startsWith(VFIO_CDEV_DIR) && m ? lookup(host, Number(m[1])) : undefined;
  if (!found) fail('ENOENT', `${path} is not a device uiommu serves`, 'path_openat');
  return new CdevFile(found.device, found.group, host.personality).ops();
}

/** One open of the cdev (struct vfio_device_file with no group). */
class CdevFile {
  /** access_granted: BIND succeeded. */
  private bound = false;
  /** PASIDs attached through this binding (the vfio_device's pasids ida). */
  private readonly pasids = new Set<number>();
  private readonly pci: FileOps;

  /** VfioCdevPersonality.vfioCdevFlags. */
  private readonly flagsKnown: boolean;
  /** VfioCdevPersonality.vfioBindStructCopy. */
  private readonly structCopy: boolean;

  constructor(
    readonly device: VfioDevice,
    readonly group: VfioGroup,
    personality: VfioCdevPersonality,
  ) {
    this.flagsKnown = personality.vfioCdevFlags;
    this.structCopy = personality.vfioBindStructCopy;
    this.pci = vfioPciDeviceFileOps(device.pci, { hotReset: hotResetOps(device) });
  }

  ops(): VfioCdevFile {
    return {
      kind: 'vfio-device',
      device: this.device,
      ioctl: (caller, request, arg) => this.ioctl(caller, request, arg),
      read: (caller, length, offset) => {
        if (!this.bound)
          fail(
            'EINVAL',
            'the cdev is not bound (VFIO_DEVICE_BIND_IOMMUFD first)',
            'vfio_device_fops_read',
          );
        return this.pci.read!(caller, length, offset);
      },
      write: (caller, data, offset) => {
        if (!this.bound)
          fail(
            'EINVAL',
            'the cdev is not bound (VFIO_DEVICE_BIND_IOMMUFD first)',
            'vfio_device_fops_write',
          );
        return this.pci.write!(caller, data, offset);
      },
      mmap: (caller, offset, length, shared, host) => {
        if (!this.bound) fail('EINVAL', 'the cdev is not bound', 'vfio_device_fops_mmap');

        return this.pci.mmap!(caller, offset, length, shared, host);
      },
      release: () => this.release(),
    };
  }

  private ioctl(caller: Caller, request: number, arg: bigint): number {
    const nr = vfioNrOf(caller.abi, request);
    if (nr === NR.BIND_IOMMUFD) return this.bind(caller, arg);
    if (!this.bound)
      fail(
        'EINVAL',
        'the cdev is not bound (VFIO_DEVICE_BIND_IOMMUFD first)',
        'vfio_device_fops_unl_ioctl',
      );
    if (nr === NR.ATTACH_IOMMUFD_PT) return this.attach(caller, arg);
    if (nr === NR.DETACH_IOMMUFD_PT) return this.detach(caller, arg);
    return this.pci.ioctl!(caller, request, arg);
  }

  /** VFIO_DEVICE_BIND_IOMMUFD. */
  private bind(caller: Caller, arg: bigint): number {
    const valid = this.flagsKnown ? VFIO_DEVICE_BIND_FLAG.TOKEN : 0;
    const u = bindIommufdCopyIn(caller.mm, arg, this.structCopy, valid);
    const bind = u.cmd;
    this.group.blockForCdev();
    try {
      if (this.bound) fail('EINVAL', 'this cdev fd is bound already', 'vfio_df_ioctl_bind_iommufd');
      // vfio_df_check_token(): vfio-pci's VF token rules (pci/sriov.ts)
      const token =
        bind.flags & VFIO_DEVICE_BIND_FLAG.TOKEN
          ? caller.mm.read(bind.token_uuid_ptr, 16)
          : undefined;
      validateVfToken(this.device.pci, token);
      const file = caller.file(bind.iommufd);
      if (!file) fail('EBADF', `iommufd ${bind.iommufd} is not open`, 'vfio_df_ioctl_bind_iommufd');
      const ctx = iommufdCtxOf(file);
      if (!ctx) fail('EBADFD', `fd ${bind.iommufd} is not an iommufd`, 'iommufd_ctx_from_fd');
      const device = this.device;
      if (device.openCount !== 0)
        fail(
          'EINVAL',
          'the device is open already (through its group or another cdev fd)',
          'vfio_df_ioctl_bind_iommufd',
        );
      const idev = device.bindIommufd(ctx, { attachCompat: false });
      device.pci.enable();
      device.openCount++;
      device.cdevOpened = true;
      try {
        u.respondField({ out_devid: idev.id }, 'out_devid');
      } catch (e) {
        this.close();
        throw e;
      }
    } catch (e) {
      this.group.unblockForCdev();
      throw e;
    }
    this.bound = true;
    return 0;
  }

  /** VFIO_DEVICE_ATTACH_IOMMUFD_PT. */
  private attach(caller: Caller, arg: bigint): number {
    const u = VfioUser.copyIn(caller.mm, arg, VfioDeviceAttachIommufdPt, {
      minsz: VfioDeviceAttachIommufdPt.endOf('pt_id'),
      flags: this.flagsKnown ? VFIO_DEVICE_PT_FLAG.PASID : 0,
      fn: 'vfio_df_ioctl_attach_pt',
    });
    const { flags, pt_id } = u.cmd;
    const idev = this.device.iommufdDevice!;
    let hwpt: { id: number };
    let undo: () => void;
    if (flags & VFIO_DEVICE_PT_FLAG.PASID) {
      const { pasid } = u.readTo(VfioDeviceAttachIommufdPt.size, 'the PASID');
      // vfio_iommufd_physical_pasid_attach_ioas(): replace if this PASID is ours
      if (this.pasids.has(pasid)) {
        hwpt = pasidReplace(idev, pasid, pt_id);
      } else {
        hwpt = pasidAttach(idev, pasid, pt_id);
        this.pasids.add(pasid);
      }
      undo = () => {
        pasidDetach(idev, pasid);
        this.pasids.delete(pasid);
      };
    } else {
      hwpt = idev.attach(pt_id);
      undo = () => idev.detach();
    }
    try {
      u.respondField({ pt_id: hwpt.id }, 'pt_id');
    } catch (e) {
      // copy-out failure: the kernel detaches (even after a replace)
      undo();
      throw e;
    }
    return 0;
  }

  /** VFIO_DEVICE_DETACH_IOMMUFD_PT. */
  private detach(caller: Caller, arg: bigint): number {
    const u = VfioUser.copyIn(caller.mm, arg, VfioDeviceDetachIommufdPt, {
      minsz: VfioDeviceDetachIommufdPt.endOf('flags'),
      flags: this.flagsKnown ? VFIO_DEVICE_PT_FLAG.PASID : 0,
      fn: 'vfio_df_ioctl_detach_pt',
    });
    if (u.cmd.flags & VFIO_DEVICE_PT_FLAG.PASID) {
      const { pasid } = u.readTo(VfioDeviceDetachIommufdPt.size, 'the PASID');
      // a PASID this binding did not attach is a no-op
      if (this.pasids.delete(pasid)) pasidDetach(this.device.iommufdDevice!, pasid);
      return 0;
    }
    this.device.iommufdDevice!.detach();
    return 0;
  }

  /** The device's cdev open ends: vfio-pci disable, unbind (detaches too). */
  private close(): void {
    const device = this.device;
    device.openCount--;
    device.cdevOpened = false;
    device.pci.disable();
    device.unbindIommufd();
  }

  private release(): void {
    if (!this.bound) return;
    this.bound = false;
    for (const pasid of this.pasids) pasidDetach(this.device.iommufdDevice!, pasid);
    this.pasids.clear();
    this.close();
    this.group.unblockForCdev();
  }
}
