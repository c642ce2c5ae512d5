/**
 * The file behind a device fd returned by VFIO_GROUP_GET_DEVICE_FD
 * (anonymous inode "[vfio-device]"): the vfio-pci ioctls and region
 * pread/pwrite of the device's emulated PCI function.
 *
 * @example
 * const ops = deviceFileOps(vdev, { release: () => group.closeDevice(vdev) });
 */
import type { FileOps } from '../iommufd/file.ts';
import type { VfioDevice } from './device.ts';
import { vfioPciDeviceFileOps } from './pci/device-fops.ts';

export interface DeviceFileOptions {
  /** The last reference to the file went away: the group closes the device. */
  readonly release: () => void;
}

/** FileOps of a device fd of `device`; `kind` 'vfio-device' (strace decoding). */
export function deviceFileOps(
  device: VfioDevice,
  opts: DeviceFileOptions,
): FileOps & { device: VfioDevice } {
  return { ...vfioPciDeviceFileOps(device.pci, { release: opts.release }), device };
}
