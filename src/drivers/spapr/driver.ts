import { fail } from '../../abi/errno.ts';
import {
  decodeSpaprWindows,
  IOMMU_HWPT_DATA_UIOMMU_SPAPR_WINDOWS,
  UIOMMU_SPAPR_MAX_WINDOWS,
  UiommuHwptSpaprWindows,
} from '../../abi/uiommu.ts';
import { Device } from '../../iommu/device.ts';
import type { Domain } from '../../iommu/domain.ts';
import type { HwInfo, IommuDriver, IommuUserData, PagingFlags } from '../../iommu/driver.ts';
import { Group } from '../../iommu/group.ts';
import type { PhysMemory } from '../../iommu/phys-memory.ts';
import type { SpaprCaps, SpaprWindow, TableGroup } from '../../iommu/table-group.ts';
import { checkSpaprCaps, SPAPR_PRESETS, type SpaprPresetName } from './caps.ts';
import { SpaprDomain } from './domain.ts';
import { spaprHwInfo } from './hw-info.ts';
import type { TceGeometry } from './tce-geometry.ts';
import {
  defaultSpaprWindow,
  spaprTableSize,
  validateSpaprWindow,
  validateSpaprWindows,
} from './window.ts';

/** Construction options of {@link SpaprIommu}: a preset, with any capability overridden. */
export interface SpaprIommuOptions extends Partial<SpaprCaps> {
  /** Starting capabilities; default 'powernv'. */
  readonly preset?: SpaprPresetName;
  /** Driver name; default 'spapr-tce-<platform>'. */
  readonly name?: string;
  /** IOMMU group id of PE 0 (group id = firstGroupId + PE number); default 0. */
  readonly firstGroupId?: number;
}

/**
 * A simulated POWER PHB: its PEs (partitionable endpoints) are IOMMU groups,
 * each translating DMA through up to two TCE windows. Domains are
 * {@link SpaprDomain}s: `domainAllocPaging` gives the default configuration
 * (the 32-bit window VFIO would create: slot 0, tce32_size bytes, 4 KiB
 * pages, one level) and `domainAllocWindows` any validated window set.
 * GET_HW_INFO reports the uiommu extension type
 * IOMMU_HW_INFO_TYPE_UIOMMU_SPAPR (see hw-info.ts), and HWPT_ALLOC takes
 * the extension data type IOMMU_HWPT_DATA_UIOMMU_SPAPR_WINDOWS
 * (`domainAllocUser`, src/abi/uiommu.ts). No dirty tracking, no
 * PASID, no nesting.
 *
 * @example
 * const phb = new SpaprIommu({ preset: 'powernv' });
 * const dev = phb.createDevice(memory, { pe: 3 });
 * const domain = phb.domainAllocWindows(dev, [
 *   { slot: 0, start: 0n, size: 2n << 30n, pageShift: 12, levels: 1 },
 *   { slot: 1, start: 1n << 59n, size: 64n << 30n, pageShift: 16, levels: 2 },
 * ]);
 * dev.group.attach(domain);
 */
export class SpaprIommu implements IommuDriver, TableGroup {
  readonly name: string;
  readonly caps: SpaprCaps;
  /** Every PE of the PHB is programmed through the PHB itself. */
  readonly tableGroup: TableGroup = this;
  private readonly firstGroupId: number;
  private readonly pes = new Map<number, Group>();
  private devices = 0;

  /** EINVAL for capabilities the model cannot honour (see checkSpaprCaps). */
  constructor(opts: SpaprIommuOptions = {}) {
    const { preset = 'powernv', name, firstGroupId = 0, ...overrides } = opts;
    const base = SPAPR_PRESETS[preset];
    if (!base) fail('EINVAL', `unknown SPAPR preset ${String(preset)}`, 'uiommu_spapr_caps');
    const defined = Object.fromEntries(
      Object.entries(overrides).filter(([, v]) => v !== undefined),
    ) as Partial<SpaprCaps>;
    this.caps = checkSpaprCaps({ ...base, ...defined });
    this.name = name ?? `spapr-tce-${this.caps.platform}`;
    this.firstGroupId = firstGroupId;
  }

  /**
   * A device in PE `pe` (default: a new PE); devices of one PE share its
   * group. Named `opts.name` or `<phb>:pe<pe>.<n>`.
   */
  createDevice(memory: PhysMemory, opts: { pe?: number; name?: string } = {}): Device {
    let pe = opts.pe;
    if (pe === undefined) {
      pe = 0;
      while (this.pes.has(pe)) pe++;
    }
    if (!Number.isInteger(pe) || pe < 0)
      fail('EINVAL', 'PE numbers are non-negative integers', 'uiommu_spapr_caps');
    let group = this.pes.get(pe);
    if (!group) {
      group = new Group(this.firstGroupId + pe);
      this.pes.set(pe, group);
    }
    const n = this.devices++;
    return new Device(opts.name ?? `${this.name}:pe${pe}.${n}`, this, group, memory);
  }

  /**
   * get_table_size(): the bytes a window's table is charged at TCE_CREATE,
   * 0n for a request the platform refuses outright.
   */
  tableSize(pageShift: number, windowSize: bigint, levels: number): bigint {
    return spaprTableSize(this.caps, pageShift, windowSize, levels);
  }

  /** Validate one window request (errno rules in window.ts) and return its table geometry. */
  windowGeometry(window: SpaprWindow): TceGeometry {
    return validateSpaprWindow(this.caps, window);
  }

  /** The default 32-bit window of this PHB's PEs. */
  defaultWindow(): SpaprWindow {
    return defaultSpaprWindow(this.caps);
  }

  /**
   * One domain whose apertures are `windows`, each with its own TCE table.
   * Errors as validateSpaprWindows (ENOSPC, EINVAL, EBUSY); nothing is built
   * on error.
   */
  domainAllocWindows(_dev: Device, windows: readonly SpaprWindow[]): SpaprDomain {
    const geometries = validateSpaprWindows(this.caps, windows);
    return new SpaprDomain(this, windows, geometries, {
      writeImpliesRead: this.caps.writeImpliesRead,
    });
  }

  /** The default configuration (the 32-bit window); EOPNOTSUPP for any flag (no dirty bits, nesting or PASID). */
  domainAllocPaging(dev: Device, flags: PagingFlags): SpaprDomain {
    checkNoFlags(flags);
    return this.domainAllocWindows(dev, [this.defaultWindow()]);
  }

  /**
   * HWPT_ALLOC with the uiommu extension IOMMU_HWPT_DATA_UIOMMU_SPAPR_WINDOWS
   * (`struct uiommu_hwpt_spapr_windows`), checked in this order:
   * any flag or another data type → EOPNOTSUPP; data_len ≠ 72 → EINVAL;
   * unreadable data → EFAULT; a reserved field ≠ 0 (of the struct or of a
   * used entry) → EOPNOTSUPP; num_windows not 1..2 → EINVAL; then each
   * window as TCE_CREATE (domainAllocWindows: ENOSPC, EINVAL, EBUSY).
   */
  domainAllocUser(dev: Device, flags: PagingFlags, userData: IommuUserData): SpaprDomain {
    checkNoFlags(flags);
    if (userData.type !== IOMMU_HWPT_DATA_UIOMMU_SPAPR_WINDOWS) {
      fail('EOPNOTSUPP', 'unknown HWPT data type', 'uiommu_spapr_domain_alloc_user');
    }
    if (userData.len !== UiommuHwptSpaprWindows.size)
      fail('EINVAL', 'data_len ≠ sizeof', 'uiommu_spapr_domain_alloc_user');
    const v = decodeSpaprWindows(userData.copy());
    const n = v.num_windows;
    const used = v.windows.slice(0, Math.min(n, UIOMMU_SPAPR_MAX_WINDOWS));
    if (v.__reserved !== 0 || used.some((w) => w.__reserved !== 0)) {
      fail('EOPNOTSUPP', 'a __reserved field is not 0', 'uiommu_spapr_domain_alloc_user');
    }

    if (n < 1 || n > UIOMMU_SPAPR_MAX_WINDOWS)
      fail('EINVAL', 'num_windows not 1..2', 'uiommu_spapr_domain_alloc_user');
    return this.domainAllocWindows(
      dev,
      used.map((w) => ({
        // any other slot number is refused by the validation (ENOSPC)
        slot: w.slot as 0 | 1,
        start: w.start,
        size: w.size,
        pageShift: w.page_shift,
        levels: w.levels,
      })),
    );
  }

  /** EINVAL for a domain of another IOMMU (or not a TCE domain). */
  attachDev(domain: Domain, _dev: Device): void {
    if (domain.driver !== this || !(domain instanceof SpaprDomain)) {
      fail('EINVAL', 'domain belongs to another IOMMU', '__iommu_attach_group');
    }
  }

  hwInfo(_dev: Device): HwInfo {
    return spaprHwInfo(this.caps);
  }

  dirtyTrackingCapable(_dev: Device): boolean {
    return false;
  }

  maxPasidLog2(_dev: Device): number {
    return 0;
  }
}

/** EOPNOTSUPP for any paging flag: no dirty bits, nesting or PASID on POWER PEs. */
function checkNoFlags(flags: PagingFlags): void {
  if (flags.dirtyTracking)
    fail('EOPNOTSUPP', 'TCEs have no dirty bits', 'uiommu_spapr_domain_alloc_user');
  if (flags.nestParent)
    fail('EOPNOTSUPP', 'no nested translation on POWER PEs', 'uiommu_spapr_domain_alloc_user');
  if (flags.pasid) fail('EOPNOTSUPP', 'no PASID on POWER PEs', 'uiommu_spapr_domain_alloc_user');
}
