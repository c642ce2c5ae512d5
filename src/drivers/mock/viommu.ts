import { fail } from '../../abi/errno.ts';
import {
  IOMMU_HW_QUEUE_TYPE_SELFTEST,
  IOMMU_TEST_HW_QUEUE_MAX,
  IOMMU_TEST_INVALIDATE_FLAG_ALL,
  IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
  IommuViommuInvalidateSelftest,
  MOCK_DEV_CACHE_ID_MAX,
} from '../../abi/iommufd-test.ts';
import type { Domain } from '../../iommu/domain.ts';
import type { IommuUserData } from '../../iommu/driver.ts';
import {
  copyStructFromFullUserArray,
  type HwQueueCore,
  type IommuUserDataArray,
  type IommuViommu,
  type ViommuCore,
} from '../../iommu/viommu.ts';
import { MockDevice } from './device.ts';
import type { MockDomain } from './domain.ts';
import type { MockIommu } from './driver.ts';
import { MockNestedDomain } from './nested.ts';

/**
 * The mock's virtual IOMMU (mock_viommu): nested domains built through it
 * carry it; its cache invalidation clears the device caches of the
 * devices named by virt_id; it has IOMMU_TEST_HW_QUEUE_MAX HW-queue slots
 * that must be filled in order, each queue depending on the one before.
 * Allocated with data, it offers a two-page region to mmap.
 */
/** KMALLOC_MAX_SIZE on x86-64 (MAX_PAGE_ORDER 10, 4 KiB pages): the largest kmalloc. */
const KMALLOC_MAX_SIZE = 4 << 20;

export class MockViommu implements IommuViommu {
  private readonly hwQueues: (HwQueueCore | undefined)[] = new Array(IOMMU_TEST_HW_QUEUE_MAX);

  constructor(
    private readonly driver: MockIommu,
    readonly core: ViommuCore,
    /** The stage-2 nesting parent (s2_parent). */
    readonly s2Parent: MockDomain,
    /** The offset of its mmap region, when allocated with data. */
    private readonly mmapOffset?: bigint,
  ) {}

  /** mock_viommu_alloc_domain_nested(): EOPNOTSUPP for flags other than PASID (none reach here). */
  allocDomainNested(_pasid: boolean, userData: IommuUserData): Domain {
    return MockNestedDomain.create(this.driver, this.s2Parent, this, userData);
  }

  /**
   * mock_viommu_cache_invalidate(): an empty array of the right type is a
   * no-op; ENOMEM (entry_num unchanged) when the array's kernel copy would
   * exceed KMALLOC_MAX_SIZE; otherwise the whole array is copied first (nothing handled on a
   * copy error), then per entry EOPNOTSUPP for unknown flags, EINVAL for a
   * cache slot past the last or an unknown virt_id; FLAG_ALL zeroes every
   * slot of that device, else the one named.
   */
  cacheInvalidate(array: IommuUserDataArray): void {
    if (array.entryNum === 0 && array.type === IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST) return;
    // the kernel's buffer for the whole array: kzalloc fails above KMALLOC_MAX_SIZE
    if (array.entryNum * IommuViommuInvalidateSelftest.size > KMALLOC_MAX_SIZE) {
      fail('ENOMEM', 'entry_num entries exceed KMALLOC_MAX_SIZE', 'mock_viommu_cache_invalidate');
    }
    let done = 0;
    const where = 'mock_viommu_cache_invalidate';
    try {
      const entries = copyStructFromFullUserArray(
        array,
        IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
        IommuViommuInvalidateSelftest.size,
      );
      for (const raw of entries) {
        const inv = IommuViommuInvalidateSelftest.decode(raw);
        if ((inv.flags & ~IOMMU_TEST_INVALIDATE_FLAG_ALL) !== 0) {
          fail('EOPNOTSUPP', `unknown flags 0x${inv.flags.toString(16)}`, where);
        }
        if (inv.cache_id > MOCK_DEV_CACHE_ID_MAX) {
          fail('EINVAL', `cache_id ${inv.cache_id} past the last`, where);
        }
        const dev = this.core.findDev(BigInt(inv.vdev_id));
        if (!(dev instanceof MockDevice)) fail('EINVAL', `no vDEVICE ${inv.vdev_id}`, where);

        if (inv.flags & IOMMU_TEST_INVALIDATE_FLAG_ALL) dev.cache.fill(0);
        else dev.cache[inv.cache_id] = 0;
        done++;
      }
    } finally {
      array.entryNum = done;
    }
  }

  hwQueueSupported(type: number): boolean {
    return type === IOMMU_HW_QUEUE_TYPE_SELFTEST;
  }

  /**
   * mock_hw_queue_init_phys(): EINVAL for an index past the slots, EEXIST
   * for a used slot, EIO when the slot before is empty, EFAULT when
   * `basePhys` is not what the parent translates the queue's IOVA to. The
   * queue then depends on the one before it.
   */
  hwQueueInit(queue: HwQueueCore, index: number, basePhys: bigint): () => void {
    const where = 'mock_hw_queue_init_phys';
    if (index >= IOMMU_TEST_HW_QUEUE_MAX) fail('EINVAL', `index ${index} past the last`, where);
    if (this.hwQueues[index]) fail('EEXIST', `queue ${index} exists`, where);
    const prev = index > 0 ? this.hwQueues[index - 1] : undefined;
    if (index > 0 && !prev) fail('EIO', `queue ${index - 1} does not exist`, where);
    if (basePhys !== this.s2Parent.iovaToPhys(queue.baseAddr)) {
      fail('EFAULT', 'base address does not translate through the parent', where);
    }

    if (prev) queue.depend(prev);
    this.hwQueues[index] = queue;
    return () => {
      this.hwQueues[index] = undefined;
      if (prev) queue.undepend(prev);
    };
  }

  destroy(): void {
    if (this.mmapOffset !== undefined) this.core.destroyMmap(this.mmapOffset);
  }
}
