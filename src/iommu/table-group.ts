/**
 * The SPAPR table group (the kernel's struct iommu_table_group and its
 * ops): what a POWER PE's IOMMU offers VFIO's SPAPR TCE container, which
 * programs DMA windows through it without knowing the driver. A driver
 * that has table groups exposes one as `IommuDriver.tableGroup`
 * (iommu_group_get_iommudata() in the kernel).
 */
import type { Device } from './device.ts';
import type { Domain } from './domain.ts';

/**
 * Which platform code builds the TCE tables: 'powernv' (bare metal, IODA2
 * PHB3/PHB4, multi-level tables in host memory) or 'pseries' (an LPAR or
 * KVM guest, one-level tables owned by the hypervisor through DDW calls).
 * It selects the table-size accounting and the table-creation rules.
 */
export type SpaprPlatform = 'powernv' | 'pseries';

/**
 * What a PHB offers each of its PEs: the fields of the kernel's
 * `struct iommu_table_group` that VFIO reads, plus the facts that decide
 * where windows go and how big their tables are.
 */
export interface SpaprCaps {
  readonly platform: SpaprPlatform;
  /** max_dynamic_windows_supported: 2 (both slots), 1 (slot 0 only) or 0 (no DDW). */
  readonly maxWindows: number;
  /**
   * Bus address of each window slot: slot 0 = tce32_start, slot 1 = the
   * second window's base (PowerNV: TVE#1, selected by PCI address bit 59).
   */
  readonly slotBases: readonly [bigint, bigint];
  /** pgsizes: bit n set = 2^n-byte TCE pages allowed. */
  readonly pgsizes: bigint;
  /** max_levels: the deepest TCE table a window may ask for. */
  readonly maxLevels: number;
  /** tce32_size: the default 32-bit window's size (from slotBases[0]). */
  readonly dma32Size: bigint;
  /** PAGE_SHIFT of the host kernel (16 on usual ppc64 kernels, 12 with 4 KiB pages). */
  readonly hostPageShift: number;
  /** The PHB sets the read bit on every writable TCE (PowerNV does; pSeries keeps the bits). */
  readonly writeImpliesRead: boolean;
}

/**
 * A DMA window request: what VFIO_IOMMU_SPAPR_TCE_CREATE asks for (page
 * shift, window size, levels) plus the slot it lands in and the bus address
 * that slot has. The start is not the user's choice: it must equal the
 * slot's base (slot 0 = tce32_start, slot 1 = the platform's second base).
 */
export interface SpaprWindow {
  readonly slot: 0 | 1;
  readonly start: bigint;
  /** Requested size; the real window may be larger (see {@link TceGeometry.windowSize}). */
  readonly size: bigint;
  readonly pageShift: number;
  readonly levels: number;
}

/** One window of a {@link WindowDomain}: the request and the real window its table covers. */
export interface TableGroupWindow {
  readonly window: SpaprWindow;
  /** `start`/`last` bound the real window (it may be larger than requested). */
  readonly table: { readonly start: bigint; readonly last: bigint };
}

/** A paging domain whose apertures are DMA windows, one TCE table each. */
export interface WindowDomain extends Domain {
  /** The window in `slot`, if the domain has one. */
  window(slot: 0 | 1): TableGroupWindow | undefined;
  /** The window containing bus address `iova` (VFIO's tce_iommu_find_table()). */
  windowOf(iova: bigint): TableGroupWindow | undefined;
}

/** The operations VFIO's SPAPR TCE container uses on a PE's table group. */
export interface TableGroup {
  readonly caps: SpaprCaps;
  /** get_table_size(): the bytes a window's table is charged at TCE_CREATE, 0n when refused outright. */
  tableSize(pageShift: number, windowSize: bigint, levels: number): bigint;
  /** Validates one window request (the TCE_CREATE errno rules); the result is the driver's own. */
  windowGeometry(window: SpaprWindow): unknown;
  /** The default 32-bit window. */
  defaultWindow(): SpaprWindow;
  /** One domain whose apertures are `windows` (validated; nothing built on error). */
  domainAllocWindows(dev: Device, windows: readonly SpaprWindow[]): WindowDomain;
}
