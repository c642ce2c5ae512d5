/**
 * The stand-in driver of a device that no IOMMU translates (the kernel's
 * dev->iommu == NULL): VFIO can use such a device only in no-IOMMU mode,
 * through a fake group. It has no domains (every allocation and attach is
 * ENODEV) and its DMA addresses are host physical addresses.
 *
 * @example
 * const dev = new Device('0000:00:04.0', NO_IOMMU, new Group(7), memory);
 * dev.dmaWrite(physAddr, bytes); // straight into physical memory
 */
import { fail } from '../abi/errno.ts';
import type { IommuDriver } from './driver.ts';

export const NO_IOMMU: IommuDriver = {
  name: 'no-iommu',
  domainAllocPaging() {
    fail('ENODEV', 'the device has no IOMMU', 'uiommu_no_iommu');
  },
  attachDev() {
    fail('ENODEV', 'the device has no IOMMU', 'uiommu_no_iommu');
  },
  hwInfo() {
    return undefined;
  },
  dirtyTrackingCapable() {
    return false;
  },
  maxPasidLog2() {
    return 0;
  },
};
