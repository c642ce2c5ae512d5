import { fail } from '../../abi/errno.ts';
import type { SpaprCaps, SpaprWindow } from '../../iommu/table-group.ts';
import { pnvTableSize, pseriesTableSize } from './table-size.ts';
import { pnvTceGeometry, pseriesTceGeometry, type TceGeometry } from './tce-geometry.ts';

const U64_END = 1n << 64n;

/**
 * The platform's get_table_size() for a request: the bytes VFIO charges to
 * RLIMIT_MEMLOCK at TCE_CREATE; 0n = invalid request (EINVAL).
 */
export function spaprTableSize(
  caps: SpaprCaps,
  pageShift: number,
  windowSize: bigint,
  levels: number,
): bigint {
  return caps.platform === 'powernv'
    ? pnvTableSize(pageShift, windowSize, levels, caps.hostPageShift, caps.maxLevels)
    : pseriesTableSize(pageShift, windowSize, levels);
}

/** The table the platform builds for a request, or EINVAL (its create_table rules). */
export function spaprTceGeometry(
  caps: SpaprCaps,
  pageShift: number,
  windowSize: bigint,
  levels: number,
): TceGeometry {
  return caps.platform === 'powernv'
    ? pnvTceGeometry(pageShift, windowSize, levels, caps.hostPageShift, caps.maxLevels)
    : pseriesTceGeometry(pageShift, windowSize, levels);
}

/**
 * Check one window request against the PE's capabilities, in the order
 * TCE_CREATE meets the rules, and return its table geometry:
 * 1. slot not 0 or 1, or slot 1 on a PE with fewer than 2 windows → ENOSPC
 *    (the kernel's "no free table slot");
 * 2. 2^pageShift not in pgsizes → EINVAL;
 * 3. get_table_size() = 0 (levels 0 or above max_levels, size not a power
 *    of two; window smaller than a page) → EINVAL;
 * 4. the platform's create_table refuses (PowerNV: levels·k + pageShift
 *    ≥ 55; pSeries: levels ≠ 1) → EINVAL;
 * 5. model rules: start ≠ the slot's base, a base not aligned to the page
 *    size (only reachable with custom bases), or the real window (or the
 *    index range of its table's levels) running past 2^64 → EINVAL.
 */
export function validateSpaprWindow(caps: SpaprCaps, w: SpaprWindow): TceGeometry {
  if ((w.slot !== 0 && w.slot !== 1) || (w.slot === 1 && caps.maxWindows < 2)) {
    fail('ENOSPC', `no window slot ${w.slot} on this PE`, 'tce_iommu_find_free_table');
  }
  const ps = w.pageShift;
  if (!Number.isInteger(ps) || ps < 0 || ps > 63 || !(caps.pgsizes & (1n << BigInt(ps)))) {
    fail('EINVAL', `TCE page shift ${ps} not supported`, 'tce_iommu_create_window');
  }
  if (spaprTableSize(caps, ps, w.size, w.levels) === 0n) {
    fail('EINVAL', 'window size or levels rejected by get_table_size', 'tce_iommu_create_table');
  }
  const g = spaprTceGeometry(caps, ps, w.size, w.levels);
  if (w.start !== caps.slotBases[w.slot]) {
    fail(
      'EINVAL',
      `window slot ${w.slot} starts at 0x${caps.slotBases[w.slot].toString(16)}`,
      'uiommu_spapr_window_check',
    );
  }
  if (w.start % (1n << BigInt(ps)) !== 0n)
    fail('EINVAL', 'slot base not aligned to the TCE page', 'uiommu_spapr_window_check');
  const reach = 1n << BigInt(ps + g.levels * Math.max(g.bitsPerLevel, 1));
  if (w.start + (reach > g.windowSize ? reach : g.windowSize) > U64_END) {
    fail('EINVAL', 'window or its table index range runs past 2^64', 'uiommu_spapr_window_check');
  }
  return g;
}

/**
 * Check the windows of one domain: each as {@link validateSpaprWindow},
 * then none at all → EINVAL, a slot given twice → EBUSY (slot occupied),
 * real windows overlapping → EINVAL. Returns the geometries in input order.
 */
export function validateSpaprWindows(
  caps: SpaprCaps,
  windows: readonly SpaprWindow[],
): TceGeometry[] {
  const out = windows.map((w) => validateSpaprWindow(caps, w));
  if (windows.length === 0)
    fail('EINVAL', 'a domain needs at least one window', 'uiommu_spapr_domain_alloc_user');
  const seen = new Set<number>();
  for (const w of windows) {
    if (seen.has(w.slot))
      fail('EBUSY', `window slot ${w.slot} given twice`, 'uiommu_spapr_domain_alloc_user');
    seen.add(w.slot);
  }
  windows.forEach((a, i) => {
    const aEnd = a.start + out[i]!.windowSize;
    windows.forEach((b, j) => {
      if (j < i && a.start < b.start + out[j]!.windowSize && b.start < aEnd) {
        fail('EINVAL', 'windows overlap', 'uiommu_spapr_domain_alloc_user');
      }
    });
  });
  return out;
}

/**
 * The default 32-bit window VFIO creates for a PE (tce_iommu_create_default_window):
 * slot 0 at tce32_start, tce32_size bytes of 4 KiB pages, one level.
 */
export function defaultSpaprWindow(caps: SpaprCaps): SpaprWindow {
  return { slot: 0, start: caps.slotBases[0], size: caps.dma32Size, pageShift: 12, levels: 1 };
}
