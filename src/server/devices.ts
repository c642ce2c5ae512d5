/**
 * The character device nodes a Kernel serves, with the numbers FSTAT and
 * STAT answer and the fake sysfs `dev` files show (the same table for
 * both, so QEMU's st_rdev check against `vfio-dev/vfioX/dev` holds).
 *
 * | node | major:minor | mode |
 * |---|---|---|
 * | /dev/iommu | 10:59 (misc; dynamic in Linux, 59 is this engine's pick) | 0660 |
 * | /dev/vfio/vfio | 10:196 (misc VFIO_MINOR) | 0666 |
 * | /dev/vfio/N, /dev/vfio/noiommu-N | 242:index (region "vfio"; index = the group's position among the VFIO groups in host order) | 0600 |
 * | /dev/vfio/devices/vfioX | 511:X (region "vfio-dev") | 0600 |
 *
 * Linux allocates the "vfio" and "vfio-dev" majors dynamically; 242 and
 * 511 are picks from the dynamic ranges (234-254 and 384-511).
 */
import type { Kernel } from '../host/kernel.ts';
import { vfioCdevName } from '../vfio/cdev.ts';
import type { VfioGroup } from '../vfio/group.ts';

export const MISC_MAJOR = 10;
export const IOMMU_MINOR = 59;
export const VFIO_MINOR = 196;
export const VFIO_GROUP_MAJOR = 242;
export const VFIO_DEV_MAJOR = 511;

/** S_IFCHR: the file-type bits of a character device. */
export const S_IFCHR = 0o020000;

/** One device node. */
export interface CharDevice {
  readonly path: string;
  /** st_mode: S_IFCHR | permissions. */
  readonly mode: number;
  readonly major: number;
  readonly minor: number;
}

/** Every node of `kernel`: /dev/iommu, /dev/vfio/vfio, the groups, the device cdevs. */
export function charDevices(kernel: Kernel): CharDevice[] {
  const nodes: CharDevice[] = [
    { path: '/dev/iommu', mode: S_IFCHR | 0o660, major: MISC_MAJOR, minor: IOMMU_MINOR },
    { path: '/dev/vfio/vfio', mode: S_IFCHR | 0o666, major: MISC_MAJOR, minor: VFIO_MINOR },
  ];
  [...kernel.vfioGroups.values()].forEach((group, index) => {
    nodes.push(groupNode(group, index));
  });
  for (const bdf of kernel.host.devices.keys()) {
    const node = cdevNode(kernel, bdf);
    if (node) nodes.push(node);
  }
  return nodes;
}

/** The node at `path`, if `kernel` serves one there. */
export function charDeviceAt(kernel: Kernel, path: string): CharDevice | undefined {
  return charDevices(kernel).find((n) => n.path === path);
}

/** /dev/vfio/<nodeName> (`N` or `noiommu-N`) of `group`, the `index`-th VFIO group. */
export function groupNode(group: VfioGroup, index: number): CharDevice {
  return {
    path: `/dev/vfio/${group.nodeName}`,
    mode: S_IFCHR | 0o600,
    major: VFIO_GROUP_MAJOR,
    minor: index,
  };
}

/** /dev/vfio/devices/vfioX of host device `bdf`, if it has one. */
export function cdevNode(kernel: Kernel, bdf: string): CharDevice | undefined {
  const name = vfioCdevName(kernel, bdf);
  if (!name) return undefined;
  return {
    path: `/dev/vfio/devices/${name}`,
    mode: S_IFCHR | 0o600,
    major: VFIO_DEV_MAJOR,
    minor: Number(name.slice('vfio'.length)),
  };
}
