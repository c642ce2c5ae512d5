import { fail } from '../../abi/errno.ts';
import {
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_SELFTEST_SIZE,
  IommuHwptSelftest,
  MOCK_APERTURE_LAST,
  MOCK_APERTURE_START,
  MOCK_IOMMUPT,
  MOCK_IOMMUPT_VA_BITS,
  type SelftestAbi,
} from '../../abi/iommufd-test.ts';
import { Domain } from '../../iommu/domain.ts';
import { copyStructFromUser, type IommuDriver, type IommuUserData } from '../../iommu/driver.ts';
import { RadixPgtable } from '../../iommu/radix-pgtable.ts';

/** Index bits per level of the mock table; a huge IOPTE covers 2^9 IOPTEs. */
const MOCK_BITS_PER_LEVEL = 9;
/** Levels of the mock table: enough to cover the aperture from IOVA 0. */
const MOCK_LEVELS = 3;
/** 7.2's MOCK_IOMMUPT_DEFAULT page sizes: 2^11 .. 2^36 (measured on Linux 7.2). */
const IOMMUPT_PGSIZES = (1n << 37n) - (1n << 11n);
/** 7.2's MOCK_IOMMUPT_HUGE table: 4 KiB leaves, 1 MiB leaves 2^8 of them up. */
const HUGE_PAGE_SHIFT = 12;
const HUGE_BITS_PER_LEVEL = 8;
const HUGE_LEVELS = 4;

/** How a mock paging domain is laid out. */
export type MockDomainKind =
  /** 2 KiB IOPTEs (half a 4 KiB host page) in the mock aperture [2^24, 2^31-1]. */
  | 'default'
  /**
   * 7.2 MOCK_IOMMUPT_DEFAULT: the same, advertising every size from 2 KiB to
   * 2^36 (AMDv1 contiguous entries; what VFIO compat GET_INFO shows).
   */
  | 'iommupt'
  /** ≤6.18 HUGE_IOVA device: 2 KiB and 1 MiB IOPTEs in the mock aperture. */
  | 'huge-iova'
  /** 7.2 MOCK_IOMMUPT_HUGE: 4 KiB and 1 MiB IOPTEs over the whole 38-bit table. */
  | 'iommupt-huge';

/**
 * struct iommu_hwpt_selftest of the generation `abi`, copied as
 * iommu_copy_struct_from_user() does: EINVAL for another type, no `iotlb`
 * or more than the generation's struct. `pagetable_type` reads 0 before 7.2.
 */
export function decodeHwptSelftest(
  abi: SelftestAbi,
  data: IommuUserData,
): { iotlb: number; pagetable_type: number } {
  const ksize = IOMMU_HWPT_SELFTEST_SIZE[abi];
  const raw = copyStructFromUser(data, IOMMU_HWPT_DATA_SELFTEST, ksize, 4);
  const full = new Uint8Array(IommuHwptSelftest.size);
  full.set(raw);
  return IommuHwptSelftest.decode(full);
}

/** The 7.2 paging domain kind for a MOCK_IOMMUPT_* value; EOPNOTSUPP for others. */
export function iommuptKind(pagetableType: number): MockDomainKind {
  if (pagetableType === MOCK_IOMMUPT.DEFAULT) return 'iommupt';
  if (pagetableType === MOCK_IOMMUPT.HUGE) return 'iommupt-huge';
  fail('EOPNOTSUPP', 'unknown MOCK_IOMMUPT type', 'mock_domain_alloc_paging_flags');
}

/**
 * A paging domain of the selftest mock IOMMU (see MockDomainKind). Dirty
 * tracking can be enabled only when the domain was allocated with it.
 */
export class MockDomain extends Domain {
  /** The smallest IOPTE: 2 KiB, or 4 KiB in an iommupt-huge domain. */
  readonly ioPageSize: bigint;

  constructor(
    driver: IommuDriver,
    hostPageSize: bigint,
    opts: { kind: MockDomainKind; dirtyCapable: boolean },
  ) {
    let table: RadixPgtable;
    let start = MOCK_APERTURE_START;
    let last = MOCK_APERTURE_LAST;
    if (opts.kind === 'iommupt-huge') {
      table = new RadixPgtable({
        pageShift: HUGE_PAGE_SHIFT,
        bitsPerLevel: HUGE_BITS_PER_LEVEL,
        levels: HUGE_LEVELS,
        base: 0n,
        pgsizeBitmap: (1n << 12n) | (1n << 20n),
      });
      start = 0n;
      last = (1n << BigInt(MOCK_IOMMUPT_VA_BITS)) - 1n;
    } else {
      const pageShift = hostPageSize.toString(2).length - 2;
      const io = 1n << BigInt(pageShift);
      const huge = io << BigInt(MOCK_BITS_PER_LEVEL);
      table = new RadixPgtable({
        pageShift,
        bitsPerLevel: MOCK_BITS_PER_LEVEL,
        levels: MOCK_LEVELS,
        base: 0n,
        pgsizeBitmap: opts.kind === 'huge-iova' ? io | huge : io,
      });
    }
    const advertised = opts.kind === 'iommupt' ? IOMMUPT_PGSIZES : undefined;
    super(driver, [{ start, last, table }], {
      dirtyCapable: opts.dirtyCapable,
      ...(advertised ? { pgsizeBitmap: advertised } : {}),
    });
    this.ioPageSize = 1n << BigInt(table.config.pageShift);
  }
}
