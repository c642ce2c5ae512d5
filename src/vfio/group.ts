/**
 * The VFIO group character device `/dev/vfio/<group id>` (drivers/vfio/
 * group.c): one per IOMMU group of the host, one open file at a time; in
 * no-IOMMU mode `/dev/vfio/noiommu-<id>` for the fake group of a device
 * without IOMMU, where CAP_SYS_RAWIO is needed at open, SET_CONTAINER and
 * the first GET_DEVICE_FD (EPERM). Facts: vfio-device.md §2,
 * vfio-container.md §3.
 *
 * - open: EBUSY while the group's file is open (also while device fds of a
 *   legacy container keep it open after close()).
 * - GET_STATUS: argsz < 8 EINVAL; VIABLE | CONTAINER_SET once a container
 *   or an iommufd is set, else VIABLE unless someone owns the group's DMA
 *   (devices left bound to an iommufd after UNSET_CONTAINER: flags 0).
 * - SET_CONTAINER(&fd): EFAULT, EBADF, EINVAL when already set; a legacy
 *   container fd claims the group's DMA ownership (EPERM when owned; fake
 *   groups claim nothing; fake and real groups never mix, EPERM) and
 *   attaches the group to it; an iommufd fd (/dev/iommu, or
 *   /dev/vfio/vfio when iommufd provides it) gets a compat IOAS if it has
 *   none (a fake group instead puts it in no-IOMMU mode; either is EINVAL
 *   when the context is in the other state) and is held by the group; any
 *   other fd EBADFD.
 * - UNSET_CONTAINER: EINVAL when not set; legacy container with devices
 *   open EBUSY; an iommufd is just dropped (open devices stay bound).
 * - GET_DEVICE_FD(name): a NUL-terminated name read with a page bound
 *   (EFAULT, EINVAL), matched by vfio-pci's rules (device-match.ts) with
 *   its VF token rules (pci/sriov.ts: EACCES, EINVAL); ENODEV when nothing
 *   matches; EINVAL without container/iommufd, or with
 *   a legacy container before SET_IOMMU. The first open of a device binds
 *   it to the iommufd (EPERM while another context owns the group's DMA)
 *   and attaches it to the compat IOAS (so DMA flows
 *   only from then on), or, with a legacy container or an iommufd running
 *   the SPAPR container (uiommu extension, spapr/iommufd-compat.ts), holds
 *   the group file (UNSET_CONTAINER is EBUSY meanwhile).
 * - anything else ENOTTY.
 *
 * @example
 * const g = proc.open('/dev/vfio/13');
 * proc.mm.write(addr, s32(containerFd));
 * proc.ioctl(g, vfioIoctlNumber(abi, 'VFIO_GROUP_SET_CONTAINER'), addr);
 */
import { fail } from '../abi/errno.ts';
import { VFIO_BASE, VFIO_GROUP_FLAGS, VfioGroupStatus, vfioNrOf } from '../abi/vfio.ts';
import type { Device } from '../iommu/device.ts';
import type { Group } from '../iommu/group.ts';
import type { Mm } from '../iommu/mm.ts';
import type { IommufdCtx } from '../iommufd/context.ts';
import { iommufdCtxOf } from '../iommufd/fops.ts';
import { vfioCompatIoasCreate, vfioCompatSetNoIommu } from '../iommufd/vfio-compat.ts';
import type { Caller, FileOps } from '../kernel/file.ts';
import { type LegacyContainer, legacyContainerOf } from './container.ts';
import { VfioDevice } from './device.ts';
import { deviceFileOps } from './device-file.ts';
import { matchDeviceName } from './device-match.ts';
import type { PciFunctions } from './hot-reset.ts';
import type { VfioPciDeviceOptions } from './pci/device.ts';
import type { PciDeviceSpec } from './pci/spec.ts';
import { validateVfToken } from './pci/sriov.ts';
import {
  spaprCompatActive,
  spaprCompatAddGroup,
  spaprCompatRemoveGroup,
} from './spapr/iommufd-compat.ts';
import { VfioUser } from './user.ts';

const NR = {
  GET_STATUS: VFIO_BASE + 3,
  SET_CONTAINER: VFIO_BASE + 4,
  UNSET_CONTAINER: VFIO_BASE + 5,
  GET_DEVICE_FD: VFIO_BASE + 6,
} as const;

/** An open group file; `group` lets kernel-side users (KVM, tests) find the group. */
export type VfioGroupFile = FileOps & { readonly group: VfioGroup };

/**
 * strndup_user(): a NUL-terminated string of fewer than `max` bytes,
 * read page by page (EFAULT at an unreadable byte before the NUL; EINVAL
 * when no NUL is found within `max` bytes).
 */
function strndupUser(mm: Mm, addr: bigint, max: number): string {
  const bytes: number[] = [];
  let at = addr;
  while (bytes.length < max) {
    const toPage = Number(mm.pageSize - (at % mm.pageSize));
    const chunk = mm.read(at, Math.min(toPage, max - bytes.length));
    const nul = chunk.indexOf(0);
    if (nul >= 0) {
      bytes.push(...chunk.subarray(0, nul));
      return String.fromCharCode(...bytes);
    }
    bytes.push(...chunk);
    at += BigInt(chunk.length);
  }
  fail('EINVAL', 'device name not NUL-terminated within a page', 'strndup_user');
}

/** The VFIO side of one IOMMU group (struct vfio_group). */
export class VfioGroup {
  readonly devices: readonly VfioDevice[];
  /** The legacy container this group is attached to. */
  container: LegacyContainer | undefined;
  /** The iommufd this group was SET_CONTAINER'd with (a held reference). */
  iommufd: IommufdCtx | undefined;
  /** container_users: 1 for the group itself plus one per device opened under the legacy container. */
  private containerUsers = 0;
  /** References to the open group file: its fds' one plus one per device held under a legacy container. */
  private fileRefs = 0;
  /** cdev_device_open_cnt: devices of the group bound (or binding) through their cdev; open() is EBUSY meanwhile. */
  private cdevUsers = 0;
  /** Devices whose open holds the group file (legacy container or SPAPR backend). */
  private readonly holding = new Set<VfioDevice>();
  /** A no-IOMMU fake group (VFIO_NO_IOMMU): its device has no IOMMU; CAP_SYS_RAWIO needed throughout. */
  readonly noiommu: boolean;
  /** VfioCdevPersonality.vfioBindStructCopy, for BIND_IOMMUFD on its device fds. */
  private readonly bindStructCopy: boolean;

  /**
   * `specOf` gives each member's PCI description (from the host topology),
   * `opts.pciFunctions` the host's PCI functions (for hot reset),
   * `opts.bindStructCopy` the personality's vfioBindStructCopy.
   */
  constructor(
    readonly iommuGroup: Group,
    specOf: (dev: Device) => PciDeviceSpec,
    opts: { noiommu?: boolean; pciFunctions: PciFunctions; bindStructCopy: boolean } & Pick<
      VfioPciDeviceOptions,
      'dynamicMsix' | 'busRange' | 'dmabuf'
    >,
  ) {
    const pci = {
      dynamicMsix: opts.dynamicMsix ?? false,
      busRange: opts.busRange,
      dmabuf: opts.dmabuf,
    };
    this.devices = iommuGroup.devices.map(
      (d) => new VfioDevice(d, specOf(d), pci, opts.pciFunctions),
    );
    this.noiommu = opts.noiommu ?? false;
    this.bindStructCopy = opts.bindStructCopy;
  }

  get id(): number {
    return this.iommuGroup.id;
  }

  /** The node's name under /dev/vfio/ (and /sys/class/vfio/): `N`, or `noiommu-N` for a fake group. */
  get nodeName(): string {
    return this.noiommu ? `noiommu-${this.id}` : `${this.id}`;
  }

  /** The IOMMU group's `name` attribute in sysfs: vfio names its fake groups; others have none. */
  get iommuGroupName(): string | undefined {
    return this.noiommu ? 'vfio-noiommu' : undefined;
  }

  /** The group file exists (open() would be EBUSY). */
  get opened(): boolean {
    return this.fileRefs > 0;
  }

  /** vfio_group_has_iommu(). */
  get hasIommu(): boolean {
    return this.container !== undefined || this.iommufd !== undefined;
  }

  /**
   * open(2) of /dev/vfio/<nodeName>: a fake group needs CAP_SYS_RAWIO
   * (EPERM); one open file at a time, none while a device is cdev-bound
   * (EBUSY).
   */
  open(caller: { readonly capSysRawio?: boolean }): VfioGroupFile {
    if (this.noiommu && caller.capSysRawio !== true)
      fail('EPERM', 'a no-IOMMU group needs CAP_SYS_RAWIO', 'vfio_group_fops_open');
    if (this.fileRefs > 0 || this.cdevUsers > 0)
      fail(
        'EBUSY',
        'the group is open already or a device of it is bound through its cdev',
        'vfio_group_fops_open',
      );
    this.fileRefs = 1;
    return {
      kind: 'vfio-group',
      group: this,
      ioctl: (caller, request, arg) => this.ioctl(caller, request, arg),
      release: () => this.putFile(),
    };
  }

  /** vfio_device_block_group(): a cdev BIND starts; EBUSY while the group file is open. */
  blockForCdev(): void {
    if (this.opened) fail('EBUSY', 'the group file is open', 'vfio_device_block_group');
    this.cdevUsers++;
  }

  /** vfio_device_unblock_group(): the cdev binding ended (or failed). */
  unblockForCdev(): void {
    this.cdevUsers--;
  }

  private ioctl(caller: Caller, request: number, arg: bigint): number {
    switch (vfioNrOf(caller.abi, request)) {
      case NR.GET_STATUS:
        return this.getStatus(caller, arg);
      case NR.SET_CONTAINER:
        return this.setContainer(caller, arg);
      case NR.UNSET_CONTAINER:
        return this.unsetContainer();
      case NR.GET_DEVICE_FD:
        return this.getDeviceFd(caller, arg);
      default:
        fail('ENOTTY', 'no group ioctl', 'vfio_group_fops_unl_ioctl');
    }
  }

  /** VFIO_GROUP_GET_STATUS: 8 bytes in, the same 8 bytes back with `flags`. */
  private getStatus(caller: Caller, arg: bigint): number {
    const u = VfioUser.copyIn(caller.mm, arg, VfioGroupStatus, {
      fn: 'vfio_group_ioctl_get_status',
    });
    let flags = 0;
    if (this.hasIommu) flags = VFIO_GROUP_FLAGS.VIABLE | VFIO_GROUP_FLAGS.CONTAINER_SET;
    else if (!this.iommuGroup.dmaOwnerClaimed) flags = VFIO_GROUP_FLAGS.VIABLE;
    u.respond({ argsz: u.argsz, flags });
    return 0;
  }

  /** VFIO_GROUP_SET_CONTAINER: `arg` points to an s32 fd. */
  private setContainer(caller: Caller, arg: bigint): number {
    const raw = caller.mm.read(arg, 4);
    const fd = new DataView(raw.buffer, raw.byteOffset, 4).getInt32(0, true);
    const file = caller.file(fd);
    if (!file) fail('EBADF', `fd ${fd} is not open`, 'vfio_group_ioctl_set_container');
    if (this.hasIommu)
      fail('EINVAL', 'the group already has a container', 'vfio_group_ioctl_set_container');
    const container = legacyContainerOf(file);
    if (container) {
      // vfio_container_attach_group(): a real group becomes the DMA owner first
      if (this.noiommu && caller.capSysRawio !== true)
        fail('EPERM', 'a no-IOMMU group needs CAP_SYS_RAWIO', 'vfio_container_attach_group');
      if (!this.noiommu) this.iommuGroup.claimDmaOwner(this);
      try {
        container.attachGroup(this.iommuGroup, this.noiommu);
      } catch (e) {
        if (!this.noiommu) this.iommuGroup.releaseDmaOwner();
        throw e;
      }
      this.container = container;
      this.containerUsers = 1;
      return 0;
    }
    const ctx = iommufdCtxOf(file);
    if (ctx) {
      if (this.noiommu) {
        // iommufd's no-IOMMU compat mode (EINVAL once it has a compat IOAS)
        vfioCompatSetNoIommu(ctx);
      } else {
        vfioCompatIoasCreate(ctx);
        spaprCompatAddGroup(ctx, this.iommuGroup, () =>
          this.devices.some((d) => d.iommufdDevice !== undefined),
        );
      }
      ctx.hold();
      this.iommufd = ctx;
      return 0;
    }
    fail(
      'EBADFD',
      `fd ${fd} is neither a container nor an iommufd`,
      'vfio_group_ioctl_set_container',
    );
  }

  /** VFIO_GROUP_UNSET_CONTAINER. */
  private unsetContainer(): number {
    if (!this.hasIommu)
      fail('EINVAL', 'the group has no container', 'vfio_group_ioctl_unset_container');
    if (this.container) {
      if (this.containerUsers !== 1)
        fail('EBUSY', 'a device of the group is open', 'vfio_group_ioctl_unset_container');
      this.detachContainer();
    } else if (this.containerUsers > 0) {
      fail(
        'EBUSY',
        'devices open under the SPAPR container of the iommufd',
        'vfio_group_ioctl_unset_container',
      );
    }
    this.dropIommufd();
    return 0;
  }

  /** VFIO_GROUP_GET_DEVICE_FD: returns the new fd. */
  private getDeviceFd(caller: Caller, arg: bigint): number {
    const name = strndupUser(caller.mm, arg, Number(caller.mm.pageSize));
    // vfio_device_get_from_name(): the driver's match judges the VF token too
    const device = this.devices.find((d) => {
      const m = matchDeviceName(d.name, name);
      if (m) validateVfToken(d.pci, m.token);
      return m !== undefined;
    });
    if (!device)
      fail(
        'ENODEV',
        `no device ${JSON.stringify(name)} in group ${this.iommuGroup.id}`,
        'vfio_device_get_from_name',
      );
    this.openDevice(caller, device);
    // the hook for real device ops: see device-file.ts
    return caller.installFile(
      deviceFileOps(device, {
        release: () => this.closeDevice(device),
        bindStructCopy: this.bindStructCopy,
      }),
    );
  }

  /**
   * vfio_df_group_open(): the first open binds (iommufd) or uses the
   * container's backend. A no-IOMMU device needs CAP_SYS_RAWIO (EPERM) and
   * is never bound: with an iommufd, which must then have no compat IOAS
   * (EPERM), nothing is held at all.
   */
  private openDevice(caller: Caller, device: VfioDevice): void {
    if (!this.hasIommu)
      fail('EINVAL', 'the group has no container', 'vfio_group_ioctl_get_device_fd');
    if (device.openCount === 0) {
      const rawio = caller.capSysRawio === true;
      if (this.iommufd && this.noiommu) {
        if (!rawio || this.iommufd.vfioIoas)
          fail('EPERM', 'no-IOMMU device on an iommufd', 'vfio_df_group_open');
      } else if (this.iommufd && !spaprCompatActive(this.iommufd)) {
        device.bindIommufd(this.iommufd);
      } else if (this.iommufd) {
        // uiommu extension: the group belongs to the fd's SPAPR backend
        this.holdFile(device);
      } else {
        // vfio_group_use_container(): SET_IOMMU not done yet
        if (!this.container?.backend)
          fail(
            'EINVAL',
            'the container has no IOMMU set (VFIO_SET_IOMMU)',
            'vfio_group_use_container',
          );
        if (this.noiommu && !rawio)
          fail('EPERM', 'a no-IOMMU device needs CAP_SYS_RAWIO', 'vfio_df_group_open');
        this.holdFile(device);
      }
      device.pci.enable();
    }
    device.openCount++;
  }

  /** A first device open under a container: one more container user and group-file reference. */
  private holdFile(device: VfioDevice): void {
    this.containerUsers++;
    this.fileRefs++;
    this.holding.add(device);
  }

  /** vfio_df_group_close(): the last close unbinds, or releases the container use. */
  private closeDevice(device: VfioDevice): void {
    if (--device.openCount > 0) return;
    device.pci.disable();
    if (device.iommufdDevice) device.unbindIommufd();
    if (this.holding.delete(device)) {
      this.containerUsers--;
      this.putFile();
    }
  }

  /** vfio_group_detach_container(): the last group of a container releases its backend. */
  private detachContainer(): void {
    this.container?.detachGroup(this.iommuGroup);
    this.iommuGroup.releaseDmaOwner();
    this.container = undefined;
    this.containerUsers = 0;
  }

  private dropIommufd(): void {
    const ctx = this.iommufd;
    this.iommufd = undefined;
    if (ctx) spaprCompatRemoveGroup(ctx, this.iommuGroup);
    ctx?.release();
  }

  /** One group-file reference goes; the last one is the file's release. */
  private putFile(): void {
    if (--this.fileRefs > 0) return;
    if (this.container) this.detachContainer();
    this.dropIommufd();
  }
}
