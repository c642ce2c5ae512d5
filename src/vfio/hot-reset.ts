/**
 * PCI hot reset of a vfio-pci device (vfio_pci_core.c):
 * VFIO_DEVICE_GET_PCI_HOT_RESET_INFO and VFIO_DEVICE_PCI_HOT_RESET. A
 * function whose slot can be reset (a hot-plug slot, `hotReset: 'slot'`)
 * is reset with every function in that slot; otherwise a function below a
 * bridge (`'bus'`) with every function on its bus; a function on a root
 * bus (`'none'`) has neither (ENODEV). vfio-pci groups the devices one
 * reset reaches in a device set (dev_set): the slot's or the bus's, but a
 * function on a root bus and an SR-IOV VF are each alone in theirs. The
 * reset needs every function it reaches inside the caller's device set
 * and owned by the caller: its group among the group fds passed (group
 * path), or bound to the caller's iommufd (cdev path, zero-length array).
 *
 * The reset leaves each function as pci_reset_bus() does: power state D0,
 * its config restored around the reset (so it reads the same), device
 * state and BAR contents gone, BAR mappings zapped (a touch faults them
 * back), interrupt setup kept.
 *
 * @example
 * // a device fd of 0000:01:00.0 on the x86 preset (bus 01: 01:00.0 and 01:00.1, group 1)
 * // GET_PCI_HOT_RESET_INFO { argsz: 12 } → ENOSPC, count = 2
 * // GET_PCI_HOT_RESET_INFO { argsz: 28 } → 0, devices [{ group 1, 0000:01:00.0 }, { group 1, 0000:01:00.1 }]
 * // PCI_HOT_RESET { argsz: 16, count: 1, group_fds: [groupFd] } → 0
 */
import { fail } from '../abi/errno.ts';
import {
  VFIO_PCI_DEVID,
  VFIO_PCI_HOT_RESET_FLAG,
  VfioPciDependentDevice,
  VfioPciHotReset,
  VfioPciHotResetInfo,
} from '../abi/vfio-device.ts';
import type { Group } from '../iommu/group.ts';
import type { IommufdCtx } from '../iommufd/context.ts';
import type { IommufdDevice } from '../iommufd/device.ts';
import type { Caller } from '../kernel/file.ts';
import type { VfioDevice } from './device.ts';
import type { VfioGroupFile } from './group.ts';
import type { PciDeviceSpec } from './pci/spec.ts';
import { VfioUser } from './user.ts';

/** The reset that reaches a function beyond its own (see PciDeviceSpec.hotReset). */
export type PciHotResetScope = 'slot' | 'bus' | 'none';

/** One PCI function of the host as the reset walk (pci_walk_bus) sees it. */
export interface PciFunction {
  readonly spec: PciDeviceSpec;
  /** iommu_group_get(): its IOMMU group's id; undefined when it has none. */
  readonly groupId: number | undefined;
  /** The VFIO device when vfio-pci has the function. */
  readonly vdev: VfioDevice | undefined;
}

/** Every PCI function of the host, in host order. */
export type PciFunctions = () => readonly PciFunction[];

/** The scope of `spec`: its own setting, else 'none' on bus 0 (a root bus) and 'bus' elsewhere. */
export function pciHotResetScope(spec: PciDeviceSpec): PciHotResetScope {
  return spec.hotReset ?? (bdfOf(spec.bdf).bus === 0 ? 'none' : 'bus');
}

/** 'DDDD:BB:DD.F' → segment, bus, devfn. */
function bdfOf(bdf: string): { segment: number; bus: number; devfn: number } {
  const [seg, bus, dev, fn] = bdf.split(/[:.]/).map((s) => Number.parseInt(s, 16));
  return { segment: seg!, bus: bus!, devfn: (dev! << 3) | fn! };
}

/**
 * pci_probe_reset_slot() then pci_probe_reset_bus() for `spec`: true for
 * a slot reset, false for a bus reset; ENODEV (in `fn`) for neither.
 */
function probeReset(spec: PciDeviceSpec, fn: string): boolean {
  const scope = pciHotResetScope(spec);
  if (scope === 'none') fail('ENODEV', 'no slot or bus reset on the root bus', fn);
  return scope === 'slot';
}

/**
 * vfio_pci_for_each_slot_or_bus(): the functions a reset of `spec`'s slot
 * (`slot`) or bus reaches, in devfn order.
 */
function resetWalk(all: readonly PciFunction[], spec: PciDeviceSpec, slot: boolean): PciFunction[] {
  const me = bdfOf(spec.bdf);
  return all
    .filter((f) => {
      const b = bdfOf(f.spec.bdf);
      if (b.segment !== me.segment || b.bus !== me.bus) return false;
      return !slot || (b.devfn >> 3 === me.devfn >> 3 && pciHotResetScope(f.spec) === 'slot');
    })
    .sort((a, b) => bdfOf(a.spec.bdf).devfn - bdfOf(b.spec.bdf).devfn);
}

/**
 * The device set of `vdev` (vfio_pci_core_register_device's
 * vfio_assign_device_set): alone on a root bus or as a VF; else the VFIO
 * devices of its slot (slot reset) or bus, in host order.
 */
function devSet(all: readonly PciFunction[], vdev: VfioDevice): VfioDevice[] {
  const key = (spec: PciDeviceSpec): string | undefined => {
    const scope = pciHotResetScope(spec);
    if (scope === 'none' || spec.physfn !== undefined) return undefined;
    const b = bdfOf(spec.bdf);
    return `${scope} ${b.segment}:${b.bus}${scope === 'slot' ? `:${b.devfn >> 3}` : ''}`;
  };
  const mine = key(vdev.pci.spec);
  if (mine === undefined) return [vdev];
  return all.flatMap((f) => (f.vdev && key(f.spec) === mine ? [f.vdev] : []));
}

/**
 * vfio_iommufd_get_dev_id(): the device's ID when it is bound to `ctx`,
 * 'owned' when a device of its IOMMU group is (iommufd_ctx_has_group),
 * else undefined (not owned).
 */
function devIdIn(vdev: VfioDevice, ctx: IommufdCtx): number | 'owned' | undefined {
  const idev = vdev.iommufdDevice;
  if (idev?.ctx === ctx) return idev.id;
  const group = vdev.dev.group;
  const has = ctx
    .list()
    .some((o) => o.type === 'device' && (o as IommufdDevice).dev.group === group);
  return has ? 'owned' : undefined;
}

/**
 * VFIO_DEVICE_GET_PCI_HOT_RESET_INFO on a device fd of `vdev`. In order:
 * EFAULT, argsz < 12 EINVAL, no slot or bus reset ENODEV; an array too
 * small for every function the reset reaches ENOSPC with `count` (and
 * flags 0) written back; then one entry per function: its group ID, EPERM
 * for a function in no IOMMU group; or on a cdev-opened device
 * (FLAG_DEV_ID) its iommufd device ID, VFIO_PCI_DEVID_OWNED when a device
 * of its group is bound to the same iommufd, VFIO_PCI_DEVID_NOT_OWNED
 * otherwise or outside the device set (then FLAG_DEV_ID_OWNED is clear).
 */
export function getPciHotResetInfo(vdev: VfioDevice, caller: Caller, arg: bigint): number {
  const fn = 'vfio_pci_ioctl_get_pci_hot_reset_info';
  const u = VfioUser.copyIn(caller.mm, arg, VfioPciHotResetInfo, { fn });
  const all = vdev.pciFunctions();
  const walk = resetWalk(all, vdev.pci.spec, probeReset(vdev.pci.spec, fn));
  const room = Math.floor((u.argsz - VfioPciHotResetInfo.size) / VfioPciDependentDevice.size);
  if (walk.length > room) {
    u.respond({ argsz: u.argsz, flags: 0, count: walk.length });
    fail('ENOSPC', `${walk.length} functions, room for ${room}`, fn);
  }
  const ctx = vdev.cdevOpened ? vdev.iommufdDevice?.ctx : undefined;
  const { DEV_ID, DEV_ID_OWNED } = VFIO_PCI_HOT_RESET_FLAG;
  let flags = ctx ? DEV_ID | DEV_ID_OWNED : 0;
  const set = devSet(all, vdev);
  const out = new Uint8Array(walk.length * VfioPciDependentDevice.size);
  walk.forEach((f, i) => {
    let id: number;
    if (ctx) {
      const devid = f.vdev && set.includes(f.vdev) ? devIdIn(f.vdev, ctx) : undefined;
      id = devid === undefined ? VFIO_PCI_DEVID.NOT_OWNED : devid === 'owned' ? 0 : devid;
      if (id === VFIO_PCI_DEVID.NOT_OWNED) flags &= ~DEV_ID_OWNED;
    } else {
      if (f.groupId === undefined)
        fail('EPERM', `${f.spec.bdf} is in no IOMMU group`, 'vfio_pci_fill_devs');
      id = f.groupId;
    }
    const { segment, bus, devfn } = bdfOf(f.spec.bdf);
    const entry = VfioPciDependentDevice.encode({ id, segment, bus, devfn });
    out.set(entry, i * VfioPciDependentDevice.size);
  });
  caller.mm.write(arg + BigInt(VfioPciHotResetInfo.size), out);
  u.respond({ argsz: u.argsz, flags, count: walk.length });
  return 0;
}

/**
 * VFIO_DEVICE_PCI_HOT_RESET on a device fd of `vdev`. In order: EFAULT;
 * argsz < 12 or flags EINVAL; a group fd array on a cdev-opened device, or
 * none on a group-opened one, EINVAL; no slot or bus reset ENODEV; more
 * group fds than functions the reset reaches EINVAL, EFAULT, then per fd
 * EBADF or (not a group) EINVAL; a function the reset reaches outside the
 * device set EINVAL; a device of the set not owned (its group not among
 * the fds, or not bound to the caller's iommufd nor its group) EINVAL.
 * Then every device of the set is reset (`busReset`). The kernel's EBUSY
 * (another thread holds a device's memory lock) cannot arise here: calls
 * are served one at a time.
 */
export function pciHotReset(vdev: VfioDevice, caller: Caller, arg: bigint): number {
  const fn = 'vfio_pci_ioctl_pci_hot_reset';
  const u = VfioUser.copyIn(caller.mm, arg, VfioPciHotReset, { flags: 0, fn });
  const { count } = u.cmd;
  if ((count !== 0) === vdev.cdevOpened)
    fail(
      'EINVAL',
      vdev.cdevOpened
        ? 'a cdev-opened device takes a zero-length array'
        : 'a group-opened device takes its group fds',
      fn,
    );
  const all = vdev.pciFunctions();
  const slot = probeReset(vdev.pci.spec, fn);
  let owns: (d: VfioDevice) => boolean;
  if (count !== 0) {
    const groups = groupsOf(caller, arg, count, resetWalk(all, vdev.pci.spec, slot).length);
    owns = (d) => groups.includes(d.dev.group);
  } else {
    const ctx = vdev.iommufdDevice!.ctx;
    owns = (d) => devIdIn(d, ctx) !== undefined;
  }
  const where = 'vfio_pci_dev_set_hot_reset';
  const set = devSet(all, vdev);
  // vfio_pci_dev_set_resettable(): every function reached is in the set
  const first = set[0]!.pci.spec;
  const reached = resetWalk(all, first, pciHotResetScope(first) === 'slot');
  const outside = reached.find((f) => !f.vdev || !set.includes(f.vdev));
  if (outside) fail('EINVAL', `${outside.spec.bdf} is outside the device set`, where);
  const stranger = set.find((d) => !owns(d));
  if (stranger) fail('EINVAL', `${stranger.name} is not owned by the caller`, where);
  for (const d of set) d.pci.busReset();
  return 0;
}

/** The `hotReset` option of vfioPciDeviceFileOps for a device fd of `vdev`. */
export function hotResetOps(vdev: VfioDevice): {
  info: (caller: Caller, arg: bigint) => number;
  reset: (caller: Caller, arg: bigint) => number;
} {
  return {
    info: (caller, arg) => getPciHotResetInfo(vdev, caller, arg),
    reset: (caller, arg) => pciHotReset(vdev, caller, arg),
  };
}

/**
 * vfio_pci_ioctl_pci_hot_reset_groups(): the IOMMU groups of the `count`
 * group fds after the header (EINVAL above `max`, EFAULT, EBADF, EINVAL
 * for an fd that is no VFIO group).
 */
function groupsOf(caller: Caller, arg: bigint, count: number, max: number): Group[] {
  const fn = 'vfio_pci_ioctl_pci_hot_reset_groups';
  if (count > max) fail('EINVAL', `${count} group fds for a reset of ${max} functions`, fn);
  const raw = caller.mm.read(arg + BigInt(VfioPciHotReset.size), count * 4);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  return Array.from({ length: count }, (_, i) => {
    const fd = view.getInt32(i * 4, true);
    const file = caller.file(fd);
    if (!file) fail('EBADF', `fd ${fd} is not open`, fn);
    const group = file.kind === 'vfio-group' ? (file as VfioGroupFile).group : undefined;
    if (!group) fail('EINVAL', `fd ${fd} is not a VFIO group`, fn);
    return group.iommuGroup;
  });
}
