/**
 * The known-missing list of the pinned-reason gate (reasons-gate.test.ts):
 * the failure sites, per area, that no row of a reason table pins yet. It
 * may only shrink: pin a site, then remove it here (the gate fails while a
 * pinned site is still listed, and on a new site that is on no list).
 */
export const UNPINNED: Readonly<Record<string, readonly string[]>> = {};
