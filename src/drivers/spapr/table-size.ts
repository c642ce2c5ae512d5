/**
 * The bytes a TCE table costs, as the platforms' `get_table_size` ops report
 * them to VFIO's TCE_CREATE (which charges them, in host pages, to
 * RLIMIT_MEMLOCK before creating the table; 0 means "invalid request" and
 * becomes EINVAL). Written from the kernel's arithmetic in
 * arch/powerpc/platforms/powernv/pci-ioda.c (PowerNV IODA2) and
 * arch/powerpc/platforms/pseries/iommu.c (pSeries, v6.11+).
 */

/** POWERNV_IOMMU_MAX_LEVELS: the deepest TCE table PowerNV builds. */
export const POWERNV_MAX_LEVELS = 5;

const isPow2 = (n: bigint): boolean => n > 0n && (n & (n - 1n)) === 0n;
const log2 = (n: bigint): number => n.toString(2).length - 1;
const roundUp = (n: bigint, to: bigint): bigint => ((n + to - 1n) / to) * to;

/**
 * PowerNV IODA2's table size for a window of `windowSize` bytes of
 * 2^pageShift pages in a `levels`-level table, on a kernel with
 * 2^hostPageShift-byte pages. 0n when levels is 0 or above `maxLevels`, or
 * the size is not a power of two; also (a model choice, the kernel's
 * unsigned arithmetic is undefined there) when the window is smaller than
 * one page.
 *
 * The computation, with E = log2(windowSize) - pageShift index bits:
 * every level is one allocation of D = 2^max(ceil(E/levels) + 3, hostPageShift)
 * bytes; the level-0 need is T = max(4096, 8·2^E) bytes (one 8-byte TCE per
 * page); each level adds T rounded up to D, and the next level up needs
 * 8 bytes per D-byte block below it, at least D. The sum is doubled: VFIO
 * keeps a user-address table of the same shape beside the hardware one.
 *
 * @example
 * pnvTableSize(16, 64n << 30n, 2); // 16908288: (8 MiB + 64 KiB) × 2
 */
export function pnvTableSize(
  pageShift: number,
  windowSize: bigint,
  levels: number,
  hostPageShift = 16,
  maxLevels = POWERNV_MAX_LEVELS,
): bigint {
  if (!Number.isInteger(levels) || levels < 1 || levels > maxLevels) return 0n;
  if (!isPow2(windowSize)) return 0n;
  const entriesShift = log2(windowSize) - pageShift;
  if (entriesShift < 0) return 0n;
  let need = 1n << BigInt(entriesShift + 3);
  if (need < 0x1000n) need = 0x1000n;
  const levelShift = Math.max(Math.ceil(entriesShift / levels) + 3, hostPageShift);
  const direct = 1n << BigInt(levelShift);
  let bytes = 0n;
  for (let l = 0; l < levels; l++) {
    bytes += roundUp(need, direct);
    need = (need / direct) * 8n;
    if (need < direct) need = direct;
  }
  return bytes * 2n;
}

/**
 * pSeries' table size (the hypervisor owns the table; the guest kernel only
 * accounts it): 8 bytes per TCE, windowSize >> (pageShift - 3), with no
 * power-of-two check here (creation checks it). More than one level returns
 * the kernel's `~0U` (0xFFFFFFFF), which is non-zero: VFIO then tries to
 * charge 0xFFFFFFFF bytes (ENOMEM under a normal RLIMIT_MEMLOCK) before
 * creation refuses the levels with EINVAL.
 */
export function pseriesTableSize(pageShift: number, windowSize: bigint, levels: number): bigint {
  if (levels > 1) return 0xffff_ffffn;
  return windowSize >> BigInt(pageShift - 3);
}
