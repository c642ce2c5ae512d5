import { fail } from '../../abi/errno.ts';
import {
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  IOMMU_TEST_INVALIDATE_FLAG_ALL,
  IommuHwptInvalidateSelftest,
  MOCK_NESTED_DOMAIN_IOTLB_ID_MAX,
  MOCK_NESTED_DOMAIN_IOTLB_NUM,
  type SelftestAbi,
} from '../../abi/iommufd-test.ts';
import { Domain } from '../../iommu/domain.ts';
import type { IommuDriver, IommuUserData } from '../../iommu/driver.ts';
import type { DmaAccess } from '../../iommu/prot.ts';
import {
  copyStructFromUserArray,
  type IommuUserDataArray,
  type UserInvalidatable,
} from '../../iommu/viommu.ts';
import { decodeHwptSelftest, type MockDomain } from './domain.ts';
import type { MockViommu } from './viommu.ts';

/**
 * A nested (stage-1) domain of the mock IOMMU: no page table of its own,
 * DMA translates through the stage-2 `parent`; four IOTLB slots that
 * HWPT_INVALIDATE clears and MD_CHECK_IOTLB reads. Built from a vIOMMU, it
 * remembers it (attach then needs a vDEVICE there).
 */
export class MockNestedDomain extends Domain implements UserInvalidatable {
  /** The mock IOTLB, MOCK_NESTED_DOMAIN_IOTLB_NUM slots. */
  readonly iotlb: number[];

  private constructor(
    driver: IommuDriver,
    readonly parent: MockDomain,
    readonly viommu: MockViommu | undefined,
    iotlb: number,
  ) {
    super(driver, parent.apertures, { dirtyCapable: false });
    this.iotlb = new Array(MOCK_NESTED_DOMAIN_IOTLB_NUM).fill(iotlb);
  }

  /**
   * __mock_domain_alloc_nested(): EOPNOTSUPP unless the data type is
   * IOMMU_HWPT_DATA_SELFTEST; the data is struct iommu_hwpt_selftest of the
   * driver's generation, copied as iommu_copy_struct_from_user() does
   * (EINVAL without `iotlb` or longer than the struct); every IOTLB slot
   * starts as its `iotlb`.
   */
  static create(
    driver: IommuDriver & { readonly abi: SelftestAbi },
    parent: MockDomain,
    viommu: MockViommu | undefined,
    userData: IommuUserData,
  ): MockNestedDomain {
    if (userData.type !== IOMMU_HWPT_DATA_SELFTEST) {
      fail(
        'EOPNOTSUPP',
        `data type ${userData.type} is not the selftest's`,
        'mock_domain_alloc_nested',
      );
    }
    const { iotlb } = decodeHwptSelftest(driver.abi, userData);
    return new MockNestedDomain(driver, parent, viommu, iotlb);
  }

  override translate(iova: bigint, length: bigint, access: DmaAccess): bigint | undefined {
    return this.parent.translate(iova, length, access);
  }

  override iovaToPhys(iova: bigint): bigint | undefined {
    return this.parent.iovaToPhys(iova);
  }

  /**
   * mock_domain_cache_invalidate_user(): entries of
   * IOMMU_HWPT_INVALIDATE_DATA_SELFTEST one by one (EINVAL for another
   * type); per entry EOPNOTSUPP for unknown flags and EINVAL for a slot past
   * the last, then FLAG_ALL zeroes every slot, else the one named.
   */
  cacheInvalidateUser(array: IommuUserDataArray): void {
    let done = array.start;
    try {
      const where = 'mock_domain_cache_invalidate_user';
      if (array.type !== IOMMU_HWPT_INVALIDATE_DATA_SELFTEST) {
        fail('EINVAL', `data type ${array.type} is not the selftest's`, where);
      }
      const size = IommuHwptInvalidateSelftest.size;
      for (let i = array.start; i < array.entryNum; i++) {
        const raw = copyStructFromUserArray(array, array.type, i, size, size);
        const inv = IommuHwptInvalidateSelftest.decode(raw);
        if ((inv.flags & ~IOMMU_TEST_INVALIDATE_FLAG_ALL) !== 0) {
          fail('EOPNOTSUPP', `entry ${i}: unknown flags 0x${inv.flags.toString(16)}`, where);
        }
        if (inv.iotlb_id > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX) {
          fail('EINVAL', `entry ${i}: iotlb_id ${inv.iotlb_id} past the last`, where);
        }

        if (inv.flags & IOMMU_TEST_INVALIDATE_FLAG_ALL) this.iotlb.fill(0);
        else this.iotlb[inv.iotlb_id] = 0;
        done++;
      }
    } finally {
      array.entryNum = done;
    }
  }
}
