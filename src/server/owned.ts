/**
 * The folders of the fake /sys and /dev trees that the emulated host owns
 * (docs/engine-protocol.md, *Paths*): a path under one of them that the
 * fake tree lacks does not exist, instead of reaching the host's file of
 * the same name (a host device at an emulated BDF, a module the host has
 * loaded). Written to `UIOMMU_ROOT/owned`, one absolute path a line; the
 * preload library reads it once.
 *
 * @example
 * writeOwned(kernel, root); // root/owned: /sys/bus/pci/devices, /sys/devices/pci0000:00, ...
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Kernel } from '../host/kernel.ts';

/** Folders owned whatever the topology. */
const ALWAYS = [
  '/sys/bus/pci/devices',
  '/sys/bus/pci/drivers/vfio-pci',
  '/sys/kernel/iommu_groups',
  '/sys/kernel/debug/iommu',
  '/sys/class/iommu',
  '/sys/class/vfio',
  '/sys/class/vfio-dev',
  '/sys/class/misc/iommu',
  '/sys/class/misc/vfio',
  '/sys/module/vfio',
  '/sys/module/vfio_pci',
  '/sys/module/vfio_iommu_type1',
  '/sys/module/iommufd',
  '/dev/vfio',
];

/** The owned folders of `kernel`'s trees: the fixed ones and each PCI root's device folder. */
export function ownedFolders(kernel: Kernel): string[] {
  const roots = new Set<string>();
  for (const { spec } of kernel.host.devices.values())
    roots.add(`/sys/devices/pci${spec.bdf.slice(0, 7)}`);
  return [...ALWAYS, ...[...roots].sort()];
}

/** Write `root/owned`. */
export function writeOwned(kernel: Kernel, root: string): void {
  writeFileSync(join(root, 'owned'), `${ownedFolders(kernel).join('\n')}\n`);
}
