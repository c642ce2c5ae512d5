/**
 * The file behind a device fd returned by VFIO_GROUP_GET_DEVICE_FD
 * (anonymous inode "[vfio-device]"): the vfio-pci ioctls and region
 * pread/pwrite of the device's emulated PCI function.
 *
 * @example
 * const ops = deviceFileOps(vdev, { release: () => group.closeDevice(vdev) });
 */
import { fail } from '../abi/errno.ts';
import { VFIO_DEVICE_BIND_FLAG, vfioNrOf } from '../abi/vfio.ts';
import type { FileOps } from '../kernel/file.ts';
import { bindIommufdCopyIn } from './cdev.ts';
import type { VfioDevice } from './device.ts';
import { hotResetOps } from './hot-reset.ts';
import { vfioPciDeviceFileOps } from './pci/device-fops.ts';

export interface DeviceFileOptions {
  /** The last reference to the file went away: the group closes the device. */
  readonly release: () => void;
  /** VfioCdevPersonality.vfioBindStructCopy: how BIND_IOMMUFD reads its struct before refusing. */
  readonly bindStructCopy: boolean;
}

/** VFIO_BASE + 18: the VFIO core answers it before the driver sees anything. */
const NR_BIND_IOMMUFD = 118;

/**
 * FileOps of a device fd of `device`; `kind` 'vfio-device' (strace
 * decoding). BIND_IOMMUFD is the core's: only cdev fds may bind, so after
 * the cdev's copy-in and checks (bindIommufdCopyIn: EFAULT, EINVAL, E2BIG)
 * it is EINVAL; ATTACH/DETACH_IOMMUFD_PT reach vfio-pci (ENOTTY).
 */
export function deviceFileOps(
  device: VfioDevice,
  opts: DeviceFileOptions,
): FileOps & { device: VfioDevice } {
  const ops = vfioPciDeviceFileOps(device.pci, {
    release: opts.release,
    hotReset: hotResetOps(device),
  });
  return {
    ...ops,
    device,
    ioctl(caller, request, arg) {
      if (vfioNrOf(caller.abi, request) === NR_BIND_IOMMUFD) {
        bindIommufdCopyIn(caller.mm, arg, opts.bindStructCopy, VFIO_DEVICE_BIND_FLAG.TOKEN);
        fail('EINVAL', 'BIND_IOMMUFD on a group device fd', 'vfio_df_ioctl_bind_iommufd');
      }
      return ops.ioctl!(caller, request, arg);
    },
  };
}
