import {
  IOMMU_TEST_DEV_CACHE_DEFAULT,
  MOCK_DEV_CACHE_NUM,
  MOCK_FLAGS_DEVICE,
} from '../../abi/iommufd-test.ts';
import { Device } from '../../iommu/device.ts';
import type { IommuDriver } from '../../iommu/driver.ts';
import type { Group } from '../../iommu/group.ts';
import type { PhysMemory } from '../../iommu/phys-memory.ts';
import type { MockViommu } from './viommu.ts';

/**
 * A device on the selftest's mock bus (the kernel's mock_dev): alone in its
 * IOMMU group, with MOCK_FLAGS_DEVICE_* `flags` and four device-cache
 * slots that vIOMMU invalidations clear (initially 0xBADDAD). It reports no
 * reserved regions.
 */
export class MockDevice extends Device {
  /** Device-cache slots, MOCK_DEV_CACHE_NUM of them. */
  readonly cache: number[] = new Array(MOCK_DEV_CACHE_NUM).fill(IOMMU_TEST_DEV_CACHE_DEFAULT);
  /** The vIOMMU of the nested domain last attached to the RID (mdev->viommu). */
  viommu: MockViommu | undefined;
  /** The virt_id captured with `viommu` (0 without). */
  vdevId = 0n;

  constructor(
    name: string,
    driver: IommuDriver,
    group: Group,
    memory: PhysMemory,
    /** MOCK_FLAGS_DEVICE bits. */
    readonly flags: number,
  ) {
    super(name, driver, group, memory);
  }

  /** The PASID-1024 fake error's state: set by a successful set_dev_pasid at 1024. */
  pasid1024 = false;

  /** MOCK_FLAGS_DEVICE_NO_DIRTY: the device cannot use dirty-tracking domains. */
  get noDirty(): boolean {
    return (this.flags & MOCK_FLAGS_DEVICE.NO_DIRTY) !== 0;
  }

  /** MOCK_FLAGS_DEVICE_HUGE_IOVA: domains allocated for it also use huge IOPTEs. */
  get hugeIova(): boolean {
    return (this.flags & MOCK_FLAGS_DEVICE.HUGE_IOVA) !== 0;
  }

  /** MOCK_FLAGS_DEVICE_PASID: the device has MOCK_PASID_WIDTH bits of PASID. */
  get pasid(): boolean {
    return (this.flags & MOCK_FLAGS_DEVICE.PASID) !== 0;
  }

  /** mock_dev_destroy(): leave the bus; DMA is blocked from now on. */
  unregister(): void {
    this.group.detach();
    this.group.devices.splice(this.group.devices.indexOf(this), 1);
  }
}
