/**
 * Host physical memory as devices see it: DMA reads and writes by physical
 * address, and the long-term pin count (FOLL_PIN) of each page that
 * IOMMU_TEST_CMD's MD_CHECK_REFS reads.
 */
export interface PhysMemory {
  readonly pageSize: bigint;
  /** Read live memory; EFAULT if some byte has no backing page. */
  read(phys: bigint, length: number): Uint8Array;
  /** Write live memory; EFAULT if some byte has no backing page. */
  write(phys: bigint, data: Uint8Array): void;
  /**
   * Read (or with `write`, write) `buf.length` bytes at `phys` (a Number,
   * exact) straight between `buf` and their backing, when this memory can:
   * true when done; false when only read/write can (a prefix may have been
   * copied, so the caller does it all again through them).
   */
  copy?(phys: number, buf: Uint8Array, write: boolean): boolean;
  /** Add one long-term pin to every page of `[phys, phys+length)`. */
  pin(phys: bigint, length: bigint): void;
  /** Drop one long-term pin from every page of `[phys, phys+length)`. */
  unpin(phys: bigint, length: bigint): void;
  /** Long-term pins held on the page containing `phys`. */
  pinCount(phys: bigint): number;
  /** True for pages of a compound (huge) folio, which MD_CHECK_REFS skips. */
  isCompound(phys: bigint): boolean;
  /**
   * Called before every device DMA: completes what must be done before a
   * device may look at memory (the unmaps the engine's clients posted, see
   * Engine.settle). Unset: nothing is pending.
   */
  beforeDma?: (() => void) | undefined;
}
