import { Domain } from '../../iommu/domain.ts';
import type { IommuDriver } from '../../iommu/driver.ts';
import type { SpaprWindow } from '../../iommu/table-group.ts';
import type { TceGeometry } from './tce-geometry.ts';
import { TceTable } from './tce-table.ts';

/** One window of a {@link SpaprDomain}: the request and the table that translates it. */
export interface SpaprDomainWindow {
  readonly window: SpaprWindow;
  /** Its TCE table; `table.start`/`table.last` bound the real window. */
  readonly table: TceTable;
}

/**
 * A POWER PE's paging domain: one aperture per DMA window (at most two, at
 * their slots' fixed bus addresses), each translated by its own
 * {@link TceTable} with its own page size and levels. Attaching it programs
 * every window into the PE at once (the SPAPR rule that a group joins all
 * windows or none). TCEs have no dirty bits, so it is never dirty-capable.
 *
 * The windows are validated by the driver (SpaprIommu.domainAllocWindows);
 * this class only assembles them.
 */
export class SpaprDomain extends Domain {
  /** The windows, by ascending slot. */
  readonly windows: readonly SpaprDomainWindow[];

  constructor(
    driver: IommuDriver,
    windows: readonly SpaprWindow[],
    geometries: readonly TceGeometry[],
    opts: { readonly writeImpliesRead: boolean },
  ) {
    const built = windows
      .map((window, i) => ({
        window: Object.freeze({ ...window }),
        table: new TceTable(window.start, geometries[i]!, opts),
      }))
      .sort((a, b) => a.window.slot - b.window.slot);
    super(
      driver,
      built.map((w) => ({ start: w.table.start, last: w.table.last, table: w.table })),
      { dirtyCapable: false },
    );
    this.windows = Object.freeze(built);
  }

  /** The window in `slot`, if the domain has one. */
  window(slot: 0 | 1): SpaprDomainWindow | undefined {
    return this.windows.find((w) => w.window.slot === slot);
  }

  /** The window containing bus address `iova` (VFIO's tce_iommu_find_table()). */
  windowOf(iova: bigint): SpaprDomainWindow | undefined {
    return this.windows.find((w) => w.table.start <= iova && iova <= w.table.last);
  }
}
