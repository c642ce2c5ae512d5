/**
 * The file behind a device fd returned by VFIO_GROUP_GET_DEVICE_FD
 * (anonymous inode "[vfio-device]"). This is the one hook where the device
 * fd's operations come from: for now every ioctl is ENOTTY and read/write
 * are EINVAL. The vfio-pci emulation (src/vfio/pci/) plugs in here by
 * returning its own FileOps (`vfioPciDeviceFileOps`) with the same
 * `release`.
 *
 * @example
 * const ops = deviceFileOps(vdev, { release: () => group.closeDevice(vdev) });
 */
import { fail } from '../abi/errno.ts';
import type { FileOps } from '../host/file.ts';
import type { VfioDevice } from './device.ts';

export interface DeviceFileOptions {
  /** The last reference to the file went away: the group closes the device. */
  readonly release: () => void;
}

/** FileOps of a device fd of `device`; `kind` 'vfio-device' (strace decoding). */
export function deviceFileOps(
  device: VfioDevice,
  opts: DeviceFileOptions,
): FileOps & { device: VfioDevice } {
  return {
    kind: 'vfio-device',
    device,
    ioctl: () => fail('ENOTTY'),
    release: opts.release,
  };
}
