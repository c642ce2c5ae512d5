import { fail } from '../../abi/errno.ts';
import { RadixPgtable } from '../../iommu/radix-pgtable.ts';
import { tceProt, tceWord } from './tce.ts';
import { type TceGeometry, tceIndexPath } from './tce-geometry.ts';

/**
 * One window's TCE table: a {@link RadixPgtable} with the kernel's
 * multi-level TCE geometry (see {@link TceGeometry}: kernel level 1 = radix
 * level L−1, the leaf level = radix level 0), based at the window's start,
 * whose only leaf size is the window's page size. Runs are stored, not
 * TCEs, so a mapping of any size costs a few objects.
 *
 * Maps must lie inside the window `[start, last]` (the radix table may
 * cover more: a level is never smaller than one host page). Each map keeps
 * the read/write bits only, needs at least one (EINVAL), and on a PHB with
 * `writeImpliesRead` stores writable TCEs as readable too. Like every
 * IoPgtable, mapping over a live TCE is EEXIST; replacing TCEs silently, as
 * VFIO's MAP_DMA does, is the SPAPR container's business.
 *
 * @example
 * const g = pnvTceGeometry(16, 64n << 30n, 2, 16, 5);
 * const t = new TceTable(1n << 59n, g, { writeImpliesRead: true });
 * t.map(1n << 59n, 0n, 16n << 30n, IOMMU_READ); // 262144 TCEs, 2 objects
 */
export class TceTable extends RadixPgtable {
  /** Bus address of TCE 0 (the window's start). */
  readonly start: bigint;
  /** Last bus address of the window. */
  readonly last: bigint;

  constructor(
    start: bigint,
    readonly geometry: TceGeometry,
    readonly opts: { readonly writeImpliesRead: boolean },
  ) {
    super({
      pageShift: geometry.pageShift,
      bitsPerLevel: Math.max(geometry.bitsPerLevel, 1),
      levels: geometry.levels,
      base: start,
      pgsizeBitmap: 1n << BigInt(geometry.pageShift),
    });
    this.start = start;
    this.last = start + geometry.windowSize - 1n;
  }

  /** The window's page size. */
  get pageSize(): bigint {
    return 1n << BigInt(this.geometry.pageShift);
  }

  /** EINVAL outside the window or without a direction; otherwise as {@link RadixPgtable.map}. */
  override map(
    iova: bigint,
    phys: bigint,
    length: bigint,
    prot: number,
    maxPageSize?: bigint,
  ): void {
    const p = tceProt(prot, this.opts.writeImpliesRead);
    if (length > 0n && (iova < this.start || iova + length - 1n > this.last)) {
      fail('EINVAL', 'range outside the TCE window', 'iommu_tce_check_ioba');
    }
    super.map(iova, phys, length, p, maxPageSize);
  }

  /** TCE number of a bus address inside the window. */
  index(iova: bigint): bigint {
    if (iova < this.start || iova > this.last)
      fail('EINVAL', 'address outside the TCE window', 'iommu_tce_check_ioba');
    return (iova - this.start) >> BigInt(this.geometry.pageShift);
  }

  /** The per-level indices (top level first) a hardware walk for `iova` uses. */
  indexPath(iova: bigint): number[] {
    return tceIndexPath(this.geometry, this.index(iova));
  }

  /** The leaf TCE word translating `iova`: page address | TCE_PCI_READ/WRITE, or 0n if invalid. */
  tce(iova: bigint): bigint {
    const pte = this.lookup(iova);
    return pte ? tceWord(pte.phys, pte.prot) : 0n;
  }
}
