/**
 * Kernel-version settings of the SPAPR TCE container (one named setting
 * each; defaults are Linux 6.18). Facts: spapr-tce.md §3, §4.4, §4.6, §5;
 * open-design-points.md §C.
 */
export interface SpaprTcePersonality {
  /**
   * Group attach rules. `'v6.4'` (the "borrowing" table-group ops, ≈v6.4):
   * every PE can join either type; v2 needs a DDW-capable PE (EINVAL), v1
   * takes one group (EBUSY). `'pre-6.4'`: a PE with ownership ops (PowerNV
   * IODA2, the `powernv` platform) joins only v2 (v1 EPERM); a PE without
   * (pSeries, the `pseries` platform) joins only v1 (v2 EPERM), using the
   * platform's live default window at once, and only as the first group
   * (EBUSY otherwise).
   */
  readonly spaprAttachRules: 'v6.4' | 'pre-6.4';
  /**
   * A group leaving a container: `true` (≥v6.11, "Always clear TCEs before
   * unsetting the window") clears every TCE of the container's shared
   * tables first, so the remaining groups lose their mappings too; `false`
   * (before) leaves the remaining groups' mappings alone.
   */
  readonly spaprDetachClearsTces: boolean;
  /**
   * UNREGISTER_MEMORY of a region TCEs still map, when this container holds
   * the last reference: `'success'` (≥v5.1: the ioctl returns 0, the
   * container forgets the region, its pages stay pinned while mapped);
   * `'EBUSY'` (before: refused, the region stays registered).
   */
  readonly spaprUnregisterMapped: 'success' | 'EBUSY';
  /**
   * MAP/UNMAP whose iova is not aligned to the window's TCE page (the
   * first-page parameter check): `'positive'` (since the check became a
   * `||` of two helpers, between v4.9 and v5.10, ≈v4.12 UNVERIFIED) returns
   * the positive value 1; `'EINVAL'` (before) fails with EINVAL. Only the
   * first page is checked in both; a range running past the window end is
   * EINVAL in the model either way (the kernel walks off the table).
   */
  readonly spaprBadIova: 'positive' | 'EINVAL';
}

/** Linux 6.18's SPAPR behaviour. */
export const SPAPR_TCE_6_18: SpaprTcePersonality = {
  spaprAttachRules: 'v6.4',
  spaprDetachClearsTces: true,
  spaprUnregisterMapped: 'success',
  spaprBadIova: 'positive',
};
