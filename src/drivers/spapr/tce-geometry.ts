import { fail } from '../../abi/errno.ts';

/**
 * The shape of one window's TCE table, as the platform's create_table builds
 * it (arch/powerpc/platforms/powernv/pci-ioda-tce.c for PowerNV).
 *
 * A table of L levels splits a TCE index (the page number inside the
 * window) into L fields of `bitsPerLevel` bits: the top level is indexed by
 * bits [L·k−1 : (L−1)·k], the leaf level by bits [k−1 : 0]. Every level is
 * one array of 2^k 8-byte entries (2^levelShift bytes); only the top level
 * exists at creation, lower ones appear on first use.
 *
 * The model's radix table uses this shape as is: kernel level 1 (the top,
 * TVE-pointed array) is radix level L−1, the kernel's leaf level is radix
 * level 0, and the window's page size is the only leaf size (a TCE table
 * has one page size per window, so no entry above level 0 is ever a leaf).
 */
export interface TceGeometry {
  /** log2 of the TCE page size. */
  readonly pageShift: number;
  readonly levels: number;
  /** Index bits of the requested window: log2(windowSize) − pageShift. */
  readonly entriesShift: number;
  /** log2 of one level's bytes (the kernel's level_shift). */
  readonly levelShift: number;
  /** k: index bits per level = levelShift − 3 (TCEs per level = 2^k). */
  readonly bitsPerLevel: number;
  /** it_size: TCEs the window has; may exceed the request (never below one host page of TCEs). */
  readonly entries: bigint;
  /** The window's real size: entries × page size. */
  readonly windowSize: bigint;
}

const isPow2 = (n: bigint): boolean => n > 0n && (n & (n - 1n)) === 0n;
const log2 = (n: bigint): number => n.toString(2).length - 1;

/** PowerNV refuses a table whose levels cover this many address bits or more. */
export const POWERNV_TCE_ADDR_BITS_LIMIT = 55;

/**
 * PowerNV's table for a window: EINVAL (as pnv_pci_ioda2_table_alloc_pages)
 * for levels outside 1..maxLevels, a size that is not a power of two, a
 * window smaller than one page (model rule; undefined in the kernel), or
 * levels·k + pageShift ≥ 55.
 *
 * k = max(ceil(E/L), hostPageShift − 3) with E = log2(windowSize) − pageShift,
 * and the window holds 2^max(E, hostPageShift − 3) TCEs, so a small request
 * grows to one host page of TCEs (8192 pages with 64 KiB host pages).
 */
export function pnvTceGeometry(
  pageShift: number,
  windowSize: bigint,
  levels: number,
  hostPageShift: number,
  maxLevels: number,
): TceGeometry {
  if (!Number.isInteger(levels) || levels < 1 || levels > maxLevels) {
    fail('EINVAL', `TCE table levels must be 1..${maxLevels}`, 'pnv_pci_ioda2_table_alloc_pages');
  }
  if (!isPow2(windowSize))
    fail('EINVAL', 'window size is not a power of two', 'pnv_pci_ioda2_table_alloc_pages');
  const entriesShift = log2(windowSize) - pageShift;
  if (entriesShift < 0)
    fail('EINVAL', 'window smaller than one TCE page', 'pnv_pci_ioda2_table_alloc_pages');
  const levelShift = Math.max(Math.ceil(entriesShift / levels) + 3, hostPageShift);
  const bitsPerLevel = levelShift - 3;
  if (bitsPerLevel * levels + pageShift >= POWERNV_TCE_ADDR_BITS_LIMIT) {
    fail(
      'EINVAL',
      `TCE table levels would cover ${POWERNV_TCE_ADDR_BITS_LIMIT}+ address bits`,
      'pnv_pci_ioda2_table_alloc_pages',
    );
  }
  const entries = 1n << BigInt(Math.max(entriesShift, hostPageShift - 3));
  return Object.freeze({
    pageShift,
    levels,
    entriesShift,
    levelShift,
    bitsPerLevel,
    entries,
    windowSize: entries << BigInt(pageShift),
  });
}

/**
 * pSeries' table: the hypervisor's, one level of exactly the requested
 * window. EINVAL (as spapr_tce_create_table) for a size that is not a
 * power of two or more than one level; also, model rules, for levels 0
 * (the kernel lets it through) and a window smaller than one page.
 */
export function pseriesTceGeometry(
  pageShift: number,
  windowSize: bigint,
  levels: number,
): TceGeometry {
  if (levels !== 1) fail('EINVAL', 'pSeries TCE tables have one level', 'spapr_tce_create_table');
  if (!isPow2(windowSize))
    fail('EINVAL', 'window size is not a power of two', 'spapr_tce_create_table');
  const entriesShift = log2(windowSize) - pageShift;
  if (entriesShift < 0)
    fail('EINVAL', 'window smaller than one TCE page', 'spapr_tce_create_table');
  return Object.freeze({
    pageShift,
    levels: 1,
    entriesShift,
    levelShift: entriesShift + 3,
    bitsPerLevel: entriesShift,
    entries: 1n << BigInt(entriesShift),
    windowSize,
  });
}

/**
 * The per-level indices (top level first) that lead to TCE number `index`,
 * the walk pnv_tce() does.
 *
 * @example
 * tceIndexPath(g, (5n << 13n) | 7n); // [5, 7] for a 2-level table with k = 13
 */
export function tceIndexPath(g: TceGeometry, index: bigint): number[] {
  const k = BigInt(g.bitsPerLevel);
  const mask = (1n << k) - 1n;
  const out: number[] = [];
  for (let l = g.levels - 1; l >= 0; l--) out.push(Number((index >> (BigInt(l) * k)) & mask));
  return out;
}
