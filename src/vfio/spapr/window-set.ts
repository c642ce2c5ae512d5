/**
 * The container's window set as domains: every attached group is always on
 * a {@link WindowDomain} whose apertures are exactly the container's windows,
 * all of them filled from one IoPagetable (the container's mapping table).
 * Groups of one PHB share one domain; a PHB is one driver, so a container
 * spanning PHBs of the same kind holds one domain per PHB, all mapping the
 * same TCEs. Changing the window set builds new domains, fills them, moves
 * every group over, all or none (spapr-tce.md §5).
 */
import { fail } from '../../abi/errno.ts';
import type { Group } from '../../iommu/group.ts';
import type { SpaprWindow, TableGroup, WindowDomain } from '../../iommu/table-group.ts';
import type { IoPagetable } from '../../iommufd/io-pagetable.ts';

/** The PHB (table group) of a group; ENODEV when it has none (not a SPAPR PE). */
export function phbOf(group: Group): TableGroup {
  const tableGroup = group.devices[0]?.driver.tableGroup;
  if (!tableGroup) fail('ENODEV', 'group has no table group', 'tce_iommu_attach_group');
  return tableGroup;
}

/** The windows, by slot, and one domain per PHB among the groups (none while no window). */
export class SpaprWindowSet {
  windows: SpaprWindow[] = [];
  readonly domains = new Map<TableGroup, WindowDomain>();

  constructor(private readonly iopt: IoPagetable) {}

  /** The domain of `phb` for `windows`, added to the page table (filled). */
  private build(phb: TableGroup, group: Group, windows: readonly SpaprWindow[]): WindowDomain {
    const d = phb.domainAllocWindows(group.devices[0]!, windows);
    this.iopt.addDomain(d);
    return d;
  }

  /**
   * Move `groups` (every attached group) to domains with `windows` (empty:
   * no window, groups blocked). Errors from domain creation, filling or any
   * group's attach leave every group on its old domain and drop the new
   * ones. The caller has already cleared mappings outside the new windows.
   */
  replace(windows: readonly SpaprWindow[], groups: readonly Group[]): void {
    const sorted = [...windows].sort((a, b) => a.slot - b.slot);
    const fresh = new Map<TableGroup, WindowDomain>();
    const moved: Group[] = [];
    try {
      if (sorted.length > 0) {
        for (const g of groups) {
          const phb = phbOf(g);
          if (!fresh.has(phb)) fresh.set(phb, this.build(phb, g, sorted));
        }
      }
      for (const g of groups) {
        const d = fresh.get(phbOf(g));
        if (d) g.attach(d);
        else g.detach();
        moved.push(g);
      }
    } catch (e) {
      for (const g of moved) {
        const old = this.domains.get(phbOf(g));
        if (old) g.attach(old);
        else g.detach();
      }
      for (const d of fresh.values()) this.iopt.removeDomain(d);
      throw e;
    }
    for (const d of this.domains.values()) this.iopt.removeDomain(d);
    this.domains.clear();
    for (const [phb, d] of fresh) this.domains.set(phb, d);
    this.windows = sorted;
  }

  /**
   * Program every window into a joining group: its PHB's domain (built and
   * filled if it is the first group of that PHB); all or nothing.
   */
  join(group: Group): void {
    if (this.windows.length === 0) {
      group.detach();
      return;
    }
    const phb = phbOf(group);
    const existing = this.domains.get(phb);
    const d = existing ?? this.build(phb, group, this.windows);
    try {
      group.attach(d);
    } catch (e) {
      if (!existing) this.iopt.removeDomain(d);
      throw e;
    }
    if (!existing) this.domains.set(phb, d);
  }

  /** A group leaves; a PHB's domain goes with its last group. */
  leave(group: Group, remaining: readonly Group[]): void {
    group.detach();
    const phb = phbOf(group);
    const d = this.domains.get(phb);
    if (d && !remaining.some((g) => phbOf(g) === phb)) {
      this.iopt.removeDomain(d);
      this.domains.delete(phb);
    }
  }

  /** The window containing bus address `iova`, if any. */
  windowOf(iova: bigint): { window: SpaprWindow; last: bigint } | undefined {
    for (const d of this.domains.values()) {
      const w = d.windowOf(iova);
      if (w) return { window: w.window, last: w.table.last };
    }
    return undefined;
  }

  /** The real window (start, last) of `slot`, if the set has it. */
  range(slot: 0 | 1): { start: bigint; last: bigint } | undefined {
    for (const d of this.domains.values()) {
      const w = d.window(slot);
      if (w) return { start: w.table.start, last: w.table.last };
    }
    return undefined;
  }

  /** Drop every domain (the backend is released); groups are already gone. */
  clear(): void {
    for (const d of this.domains.values()) this.iopt.removeDomain(d);
    this.domains.clear();
    this.windows = [];
  }
}
