import { Domain } from '../../iommu/domain.ts';
import type { IommuDriver, PagingFlags } from '../../iommu/driver.ts';
import { RadixPgtable } from '../../iommu/radix-pgtable.ts';

/** VT-d second-stage tables: 4 KiB level-0 pages, 9 index bits per level. */
export const VTD_PAGE_SHIFT = 12;
export const VTD_BITS_PER_LEVEL = 9;

/**
 * A VT-d paging domain: one aperture `[0, 2^addressWidth - 1]` translated by
 * a radix table of (addressWidth - 12) / 9 levels. It remembers the flags it
 * was allocated with; dirty tracking can be enabled only if they asked for it.
 */
export class IntelDomain extends Domain {
  constructor(
    driver: IommuDriver,
    readonly addressWidth: number,
    pgsizeBitmap: bigint,
    readonly allocFlags: PagingFlags,
    /** ECAP.SC of the unit (a domain serves one unit here). */
    private readonly snoopControl = true,
  ) {
    const table = new RadixPgtable({
      pageShift: VTD_PAGE_SHIFT,
      bitsPerLevel: VTD_BITS_PER_LEVEL,
      levels: (addressWidth - VTD_PAGE_SHIFT) / VTD_BITS_PER_LEVEL,
      base: 0n,
      pgsizeBitmap,
    });
    const last = (1n << BigInt(addressWidth)) - 1n;
    super(driver, [{ start: 0n, last, table }], { dirtyCapable: allocFlags.dirtyTracking });
  }

  /** intel_iommu_enforce_cache_coherency_ss(): possible only with snoop control. */
  override enforceCacheCoherency(): boolean {
    return this.snoopControl;
  }
}
