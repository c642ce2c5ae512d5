/**
 * SR-IOV at run time: writing a PF's `sriov_numvfs` (drivers/pci/iov.c's
 * sriov_numvfs_store, then vfio-pci's sriov_configure). Enabling N VFs
 * creates N functions from the PF's VF template (`sriovVf`), each in a new
 * IOMMU group, taken by vfio-pci (the PF's driver: VF driver_override), so
 * each has /dev/vfio/<group> and a cdev; writing 0 removes them.
 *
 * Errnos (Linux's):
 * - text that is no number (kstrtou16: decimal, 0x hex or 0 octal, one
 *   trailing newline) → EINVAL, one above 65535 → ERANGE;
 * - more than TotalVFs → ERANGE;
 * - the count already enabled → success, nothing changes;
 * - the PF not bound to vfio-pci, a PF without a VF template (a driver
 *   that cannot configure VFs), or `vfio_pci.enable_sriov` off → ENOENT;
 * - N while M ≠ 0 are enabled → EBUSY (disable first).
 *
 * Difference from Linux: disabling while a VF is open (a group or device
 * fd) is EBUSY here and the VFs stay; Linux blocks the writer until every
 * user has closed the VF (it asks through the VF's REQ interrupt, which is
 * signalled here too).
 *
 * @example
 * writeSriovNumvfs(kernel, '0000:04:00.0', '2\n'); // VFs 0000:04:02.0 and .1
 * sriovNumvfs(kernel, '0000:04:00.0');          // 2
 */
import { fail } from '../abi/errno.ts';
import { kstrtou } from '../kernel/kstrtox.ts';
import { vfSpec } from '../vfio/pci/spec.ts';
import type { Kernel } from './kernel.ts';
import { addDevice, removeDevice } from './topology/instantiate.ts';

/** kstrtou16(buf, 0): EINVAL unless the text is a number, ERANGE above 65535. */
export function parseU16(text: string): number {
  return kstrtou(text, 16);
}

/** The VFs of `pf` now present, in routing-ID (BDF) order. */
export function sriovVfs(kernel: Kernel, pf: string): string[] {
  return [...kernel.host.devices.values()]
    .filter((d) => d.spec.physfn === pf)
    .map((d) => d.spec.bdf)
    .sort();
}

/** sriov_numvfs of a PF: its VFs enabled. */
export function sriovNumvfs(kernel: Kernel, pf: string): number {
  return sriovVfs(kernel, pf).length;
}

/** sriov_totalvfs of a PF (undefined for a function that is no PF). */
export function sriovTotalvfs(kernel: Kernel, pf: string): number | undefined {
  const spec = kernel.host.devices.get(pf)?.spec;
  if (spec?.sriov === undefined) return undefined;
  return spec.sriovTotalVfs ?? spec.sriov;
}

/** A write of `text` to `pf`'s sriov_numvfs; the errnos are in the file's doc. */
export function writeSriovNumvfs(kernel: Kernel, pf: string, text: string): void {
  const want = parseU16(text);
  const total = sriovTotalvfs(kernel, pf) ?? 0;
  if (want > total) fail('ERANGE', `${want} VFs, TotalVFs is ${total}`, 'sriov_numvfs_store');
  const have = sriovNumvfs(kernel, pf);
  if (want === have) return;
  const entry = kernel.host.devices.get(pf)!;
  if (!kernel.vfioGroups.has(entry.device.group.id))
    fail('ENOENT', 'no driver bound to the PF', 'sriov_numvfs_store');
  if (!entry.spec.sriovVf)
    fail('ENOENT', 'the PF driver cannot configure VFs', 'sriov_numvfs_store');
  if (!kernel.personality.vfioPciEnableSriov)
    fail('ENOENT', 'vfio_pci.enable_sriov is off', 'vfio_pci_sriov_configure');
  if (want === 0) {
    disableVfs(kernel, pf);
    kernel.onTopologyChange?.();
    return;
  }
  if (have !== 0)
    fail(
      'EBUSY',
      `${have} VFs already enabled; disable before enabling ${want}`,
      'sriov_numvfs_store',
    );
  let group = Math.max(-1, ...kernel.host.groups.keys()) + 1;
  const pfDev = kernel.vfioGroups
    .get(entry.device.group.id)!
    .devices.find((d) => d.name === pf)!.pci;
  for (let n = 0; n < want; n++) {
    const spec = vfSpec(entry.spec, n, group++);
    if (kernel.host.devices.has(spec.bdf))
      fail('EBUSY', `${spec.bdf} exists already`, 'uiommu_sriov_add_vf');
    const { device } = addDevice(kernel.host, spec, kernel.memory);
    const vfioGroup = kernel.addVfioGroup(device.group);
    // vfio_pci_vf_init(): the VF finds its vfio-pci PF
    const vf = vfioGroup?.devices[0]?.pci;
    if (vf && pfDev.vfToken) vf.sriovPf = pfDev;
  }
  kernel.onTopologyChange?.();
}

/** pci_disable_sriov(): EBUSY while a VF is in use (its REQ interrupt asks the user to let go). */
function disableVfs(kernel: Kernel, pf: string): void {
  const vfs = sriovVfs(kernel, pf).map((bdf) => kernel.host.devices.get(bdf)!);
  const busy = vfs
    .map((e) => kernel.vfioGroups.get(e.device.group.id))
    .filter((g) => g?.opened || g?.devices.some((d) => d.openCount > 0));
  if (busy.length > 0) {
    for (const g of busy) for (const d of g!.devices) d.pci.irqs.request();
    fail('EBUSY', 'a VF is in use', 'vfio_pci_core_sriov_configure');
  }
  for (const e of vfs) {
    kernel.vfioGroups.delete(e.device.group.id);
    removeDevice(kernel.host, e.spec.bdf);
  }
}
