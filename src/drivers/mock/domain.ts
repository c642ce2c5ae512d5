import { MOCK_APERTURE_LAST, MOCK_APERTURE_START } from '../../abi/iommufd-test.ts';
import { Domain } from '../../iommu/domain.ts';
import type { IommuDriver } from '../../iommu/driver.ts';
import { RadixPgtable } from '../../iommu/radix-pgtable.ts';

/** Index bits per level of the mock table; a huge IOPTE covers 2^9 IOPTEs. */
const MOCK_BITS_PER_LEVEL = 9;
/** Levels of the mock table: enough to cover the aperture from IOVA 0. */
const MOCK_LEVELS = 3;

/**
 * A paging domain of the selftest mock IOMMU: the aperture [2^24, 2^31-1]
 * translated by IOPTEs of half a host page (MOCK_IO_PAGE_SIZE, 2 KiB with
 * 4 KiB pages) and, with `huge`, 512-IOPTE leaves (MOCK_HUGE_PAGE_SIZE,
 * 1 MiB) wherever iommu_pgsize() picks them. Dirty tracking can be enabled
 * only when the domain was allocated with it.
 */
export class MockDomain extends Domain {
  /** MOCK_IO_PAGE_SIZE: one IOPTE, half the host page. */
  readonly ioPageSize: bigint;

  constructor(
    driver: IommuDriver,
    hostPageSize: bigint,
    opts: { huge: boolean; dirtyCapable: boolean },
  ) {
    const pageShift = hostPageSize.toString(2).length - 2;
    const ioPageSize = 1n << BigInt(pageShift);
    const hugePageSize = ioPageSize << BigInt(MOCK_BITS_PER_LEVEL);
    const table = new RadixPgtable({
      pageShift,
      bitsPerLevel: MOCK_BITS_PER_LEVEL,
      levels: MOCK_LEVELS,
      base: 0n,
      pgsizeBitmap: opts.huge ? ioPageSize | hugePageSize : ioPageSize,
    });
    super(driver, [{ start: MOCK_APERTURE_START, last: MOCK_APERTURE_LAST, table }], {
      dirtyCapable: opts.dirtyCapable,
    });
    this.ioPageSize = ioPageSize;
  }
}
