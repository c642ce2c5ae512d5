/**
 * The contract of an IOMMU page table (the kernel's io_pgtable): a radix tree
 * of `levels` levels, `bitsPerLevel` index bits each, whose leaves may sit at
 * any level whose page size is in `pgsizeBitmap`. Implementations store runs,
 * not pages: mapping 1 TiB of 4 KiB pages costs what mapping one page does.
 */

export interface IoPgtableConfig {
  /** log2 of the level-0 page size (12 for 4 KiB, 11 for the mock's 2 KiB IOPTE). */
  readonly pageShift: number;
  /** Index bits per level (9 for VT-d and the mock). */
  readonly bitsPerLevel: number;
  /** Number of levels; the table covers 2^(pageShift + levels*bitsPerLevel) bytes from `base`. */
  readonly levels: number;
  /** IOVA of entry 0 (0 for VT-d, a window's start for SPAPR). */
  readonly base: bigint;
  /** Leaf page sizes allowed; each is 1 << (pageShift + k*bitsPerLevel) for some level k. */
  readonly pgsizeBitmap: bigint;
}

/** One leaf translation, or a maximal run of leaves with the same page size and permission and linear phys. */
export interface IoPte {
  iova: bigint;
  length: bigint;
  phys: bigint;
  /** IOMMU_READ | IOMMU_WRITE */
  prot: number;
  /** Size of each leaf in the run. */
  pageSize: bigint;
  /** Level of each leaf (0 = smallest). */
  level: number;
}

/** A readDirtySpans visitor: `[first, last]` is whole dirty leaves of `size` bytes. */
export type DirtySpans = (first: bigint, last: bigint, size: bigint) => void;

export interface IoPgtable {
  readonly config: IoPgtableConfig;
  /**
   * Map `[iova, iova+length)` to `[phys, ...)`. iova, phys and length are
   * multiples of the smallest page size; each piece uses the largest allowed
   * page size that the alignment of iova and phys and the remaining length
   * permit (the kernel's iommu_pgsize()). EEXIST if any part is mapped;
   * EINVAL if outside the table or misaligned. On error nothing changes.
   * `maxPageSize` excludes larger leaves (iommufd with large pages disabled).
   */
  map(iova: bigint, phys: bigint, length: bigint, prot: number, maxPageSize?: bigint): void;
  /**
   * Unmap every leaf inside `[iova, iova+length)`; a leaf straddling an edge
   * is split so that only the range goes. Returns the bytes that were mapped.
   */
  unmap(iova: bigint, length: bigint): bigint;
  /** The leaf containing `iova`, as a one-page IoPte, or undefined. */
  lookup(iova: bigint): IoPte | undefined;
  /** Maximal runs intersecting `[iova, iova+length)`, ascending, clipped to it. */
  runs(iova: bigint, length: bigint): IoPte[];
  /** Mark the leaf containing `iova` dirty; false if nothing is mapped there. */
  setDirty(iova: bigint): boolean;
  /**
   * Visit the dirty leaves intersecting `[iova, iova+length)` in ascending
   * order, by spans: each `[first, last]` is whole consecutive dirty leaves
   * of `size` bytes, visited as one (no value per leaf); clear their dirty
   * bits unless `keep`.
   */
  readDirtySpans(iova: bigint, length: bigint, keep: boolean, visit: DirtySpans): void;
  /** Number of internal objects held (nodes + runs); for memory tests and benches. */
  readonly objectCount: number;
}
