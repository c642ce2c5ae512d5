import { U64_MAX } from '../../abi/layout.ts';
import type { ReservedRegion } from '../../iommu/device.ts';

/**
 * The valid-IOVA list of a legacy type1 container (the kernel's
 * `iommu->iova_list` of `struct vfio_iova`): ascending, disjoint inclusive
 * ranges. It starts empty (no group: every IOVA is allowed), becomes the
 * first domain's geometry when a group attaches, is narrowed by every
 * further domain's geometry and cut by every group's reserved regions.
 * All functions are pure: they return a new list and leave the input alone,
 * so a failed attach keeps the old list (the kernel works on a copy too).
 *
 * The list is short (a handful of entries), so it is a plain array.
 */

export interface IovaRange {
  readonly start: bigint;
  /** Inclusive. */
  readonly last: bigint;
}

/**
 * vfio_iommu_aper_resize(): clip the list to `[start, last]`; an empty list
 * becomes exactly that range. Ranges wholly outside are dropped.
 */
export function aperResize(list: readonly IovaRange[], start: bigint, last: bigint): IovaRange[] {
  if (list.length === 0) return [{ start, last }];
  const out: IovaRange[] = [];
  for (const r of list) {
    if (r.last < start || r.start > last) continue;
    out.push({ start: r.start < start ? start : r.start, last: r.last > last ? last : r.last });
  }
  return out;
}

/**
 * vfio_iommu_resv_exclude(): cut every reserved region (except
 * direct-relaxable ones, which stay usable) out of the list. Returns
 * undefined when nothing is left (the kernel's EINVAL).
 */
export function resvExclude(
  list: readonly IovaRange[],
  resv: readonly ReservedRegion[],
): IovaRange[] | undefined {
  let cur: IovaRange[] = [...list];
  for (const r of resv) {
    if (r.kind === 'direct-relaxable') continue;
    const next: IovaRange[] = [];
    for (const n of cur) {
      if (r.start > n.last || r.last < n.start) {
        next.push(n);
        continue;
      }
      if (r.start > n.start) next.push({ start: n.start, last: r.start - 1n });
      if (r.last < n.last) next.push({ start: r.last + 1n, last: n.last });
    }
    cur = next;
  }
  return cur.length === 0 ? undefined : cur;
}

/**
 * vfio_iommu_aper_expand() (after a domain went away): the first range
 * starts at the largest remaining geometry start, the last range ends at
 * the smallest remaining geometry end; with no domain left, 0 and U64_MAX.
 */
export function aperExpand(
  list: readonly IovaRange[],
  geometries: readonly IovaRange[],
): IovaRange[] {
  if (list.length === 0) return [];
  let start = 0n;
  let last = U64_MAX;
  for (const g of geometries) {
    if (g.start > start) start = g.start;
    if (g.last < last) last = g.last;
  }
  const out = list.map((r) => ({ ...r }));
  out[0] = { start, last: out[0]!.last };
  const i = out.length - 1;
  out[i] = { start: out[i]!.start, last };
  return out;
}

/**
 * vfio_iommu_resv_refresh() (after a group went away): rebuild the list as
 * `[first.start, last.last]` minus the reserved regions of the groups still
 * attached; undefined (keep the old list) when the input is empty or the
 * result would be.
 */
export function resvRefresh(
  list: readonly IovaRange[],
  resv: readonly ReservedRegion[],
): IovaRange[] | undefined {
  if (list.length === 0) return undefined;
  return resvExclude([{ start: list[0]!.start, last: list[list.length - 1]!.last }], resv);
}

/** vfio_iommu_iova_dma_valid(): `[start, last]` lies in one range, or the list is empty. */
export function iovaValid(list: readonly IovaRange[], start: bigint, last: bigint): boolean {
  if (list.length === 0) return true;
  return list.some((r) => start >= r.start && last <= r.last);
}
