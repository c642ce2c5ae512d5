/**
 * The legacy container's no-IOMMU backend (vfio_noiommu_ops in
 * drivers/vfio/container.c), registered when the kernel has
 * CONFIG_VFIO_NOIOMMU with enable_unsafe_noiommu_mode on (the personality's
 * `vfioNoiommu`). A container holding no-IOMMU groups may use only this
 * backend, other containers never.
 *
 * - CHECK_EXTENSION: 1 for NOIOMMU (8), else 0.
 * - SET_IOMMU: a type other than NOIOMMU → EINVAL; a caller without
 *   CAP_SYS_RAWIO → EPERM. Groups attach and detach with nothing to do.
 * - every other container ioctl (MAP_DMA, GET_INFO...) → ENOTTY: there is
 *   no translation to set up; devices use physical addresses.
 *
 * @example
 * kernel.vfioIommuDrivers.push(noiommuIommuDriver);
 */
import { fail } from '../abi/errno.ts';
import { VFIO_EXTENSION, vfioIoctl, vfioNrOf } from '../abi/vfio.ts';
import type { VfioIommuBackend, VfioIommuDriver } from './container.ts';

const NOIOMMU = BigInt(VFIO_EXTENSION.NOIOMMU_IOMMU);

function checkExtension(ext: bigint): number {
  return ext === NOIOMMU ? 1 : 0;
}

const BACKEND: VfioIommuBackend = {
  attachGroup() {},
  detachGroup() {},
  ioctl(caller, request, arg) {
    if (vfioNrOf(caller.abi, request) === vfioIoctl('VFIO_CHECK_EXTENSION').nr)
      return checkExtension(arg);
    fail('ENOTTY', 'only CHECK_EXTENSION on a no-IOMMU container', 'vfio_noiommu_ioctl');
  },
  release() {},
};

export const noiommuIommuDriver: VfioIommuDriver = {
  name: 'vfio-noiommu',
  noiommu: true,
  checkExtension,
  open(type, caller) {
    if (type !== NOIOMMU)
      fail('EINVAL', `type ${type} is not VFIO_NOIOMMU_IOMMU`, 'vfio_noiommu_open');
    if (caller.capSysRawio !== true) fail('EPERM', 'no CAP_SYS_RAWIO', 'vfio_noiommu_open');

    return BACKEND;
  },
};
