/**
 * The description of one emulated host: its IOMMU units and the PCI devices
 * behind them. Pure data: `parseHostSpec` produces it from JSON, the presets
 * are written as literals of it, `instantiate` turns it into drivers, groups
 * and devices. Every u64 (address, size, page-size bitmap) is a bigint.
 */
import type { PciDeviceSpec } from '../../vfio/pci/spec.ts';

export {
  type BarKind,
  type BarSpec,
  type EffectiveIrq,
  effectiveIrq,
  type IrqSpec,
  msixPbaBytes,
  msixTableBytes,
  type PciDeviceSpec,
  type ReservedRegionSpec,
  type SriovVfSpec,
  vfSpec,
} from '../../vfio/pci/spec.ts';

/** A whole host. */
export interface HostSpec {
  /** Free-form host name (a preset's name, or the config's). */
  readonly name: string;
  /** The kernel build the host stands for (which VFIO/IOMMU options it was built with), free-form. */
  readonly kernel?: string;
  /**
   * The host kernel's page size (4096 or 65536) as programs see it
   * (getpagesize(), sysconf(_SC_PAGESIZE), AT_PAGESZ); absent: the machine's own.
   */
  readonly pageSize?: number;
  readonly iommus: readonly IommuSpec[];
  readonly devices: readonly PciDeviceSpec[];
}

/** One IOMMU unit, discriminated by `kind`. */
export type IommuSpec = IntelIommuSpec | SpaprIommuSpec | MockIommuSpec;

export type IommuKind = IommuSpec['kind'];

/** A VT-d remapping unit (DRHD), built as an `IntelIommu`. */
export interface IntelIommuSpec {
  readonly kind: 'intel';
  /** Unique among the host's IOMMUs, e.g. 'dmar0'; devices name it. */
  readonly id: string;
  /** Guest address width: 39, 48 or 57 bits (3, 4 or 5 levels). */
  readonly addressWidth: 39 | 48 | 57;
  /** pgsize_bitmap: 4 KiB plus any of 2 MiB and 1 GiB. */
  readonly pgsizes: bigint;
  /** Second-stage dirty tracking (ECAP.SSADS). */
  readonly dirtyTracking: boolean;
  /** log2 of the PASID count per device, 0..20. */
  readonly maxPasidLog2: number;
  /** Snoop control (ECAP.SC): domains can enforce cache coherency (VFIO_DMA_CC_IOMMU). */
  readonly snoopControl: boolean;
}

/**
 * A POWER PHB whose PEs translate through TCE tables (the kernel's
 * iommu_table_group parameters). Kept as data: the driver that consumes it
 * lives in src/drivers/spapr/.
 */
export interface SpaprIommuSpec {
  readonly kind: 'spapr';
  readonly id: string;
  /** 'powernv': bare-metal IODA2 PHB (POWER9 PHB4); 'pseries': PowerVM LPAR (RTAS DDW). */
  readonly variant: 'powernv' | 'pseries';
  /** Window slots per PE (max_dynamic_windows_supported): 1 or 2. */
  readonly windowSlots: number;
  /** Bus address of each slot's window; [0] is dma32Start, [1] e.g. 1<<59. */
  readonly windowBases: readonly bigint[];
  /** Supported TCE page shifts, ascending (the pgsizes bitmask as shifts); always has 12. */
  readonly pageShifts: readonly number[];
  /** Most TCE table levels a window may use, 1..5. */
  readonly maxLevels: number;
  /** The default 32-bit window (tce32_start / tce32_size): below 4 GiB, 4 KiB pages. */
  readonly dma32Start: bigint;
  readonly dma32Size: bigint;
}

/** The iommufd selftest's mock IOMMU (`MockIommu`); its devices are mock devices. */
export interface MockIommuSpec {
  readonly kind: 'mock';
  readonly id: string;
}
