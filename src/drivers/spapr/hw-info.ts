import { field, struct } from '../../abi/layout.ts';
import type { HwInfo } from '../../iommu/driver.ts';
import type { SpaprCaps } from './caps.ts';

/**
 * uiommu extension, not Linux uAPI: the GET_HW_INFO type of a POWER PE.
 * Linux numbers `enum iommu_hw_info_type` from 0 upwards (4 so far) and the
 * selftest uses 0xFEEDBEEF; 0x7569_0001 ("ui" + 1) sits far from both.
 * Until it moves to src/abi/ with the window HWPT data type, it lives here.
 */
export const IOMMU_HW_INFO_TYPE_UIOMMU_SPAPR = 0x7569_0001;

/** `flags` of {@link UiommuHwInfoSpapr}. */
export const UIOMMU_HW_INFO_SPAPR_FLAGS = {
  /** The PE can create windows (max_dynamic_windows_supported > 0, as VFIO's SPAPR_INFO_DDW). */
  DDW: 1,
  /** Writable TCEs are also readable (PowerNV's TCE build). */
  WRITE_IMPLIES_READ: 2,
} as const;

/** `platform` of {@link UiommuHwInfoSpapr}. */
export const UIOMMU_SPAPR_PLATFORM = { POWERNV: 1, PSERIES: 2 } as const;

/**
 * `struct uiommu_hw_info_spapr` (64 bytes, uiommu extension): what a user
 * needs to plan DMA windows, i.e. VFIO's SPAPR_TCE_GET_INFO content widened
 * to u64 plus the slot bases and table facts it lacks.
 * - flags 0:4 (UIOMMU_HW_INFO_SPAPR_FLAGS); max_windows 4:4;
 * - pgsizes 8:8 (bit n = 2^n-byte TCE pages); max_levels 16:4;
 * - host_page_shift 20:4 (tables and windows are at least one host page of TCEs);
 * - dma32_window_start 24:8, dma32_window_size 32:8 (the default window);
 * - window_base_0 40:8, window_base_1 48:8 (bus address of each slot);
 * - platform 56:4 (UIOMMU_SPAPR_PLATFORM, selects the table-size rules); __reserved 60:4.
 */
export const UiommuHwInfoSpapr = struct('uiommu_hw_info_spapr', 64, [
  field('flags', 0, 'u32', 'out'),
  field('max_windows', 4, 'u32', 'out'),
  field('pgsizes', 8, 'u64', 'out'),
  field('max_levels', 16, 'u32', 'out'),
  field('host_page_shift', 20, 'u32', 'out'),
  field('dma32_window_start', 24, 'u64', 'out'),
  field('dma32_window_size', 32, 'u64', 'out'),
  field('window_base_0', 40, 'u64', 'out'),
  field('window_base_1', 48, 'u64', 'out'),
  field('platform', 56, 'u32', 'out'),
  field('__reserved', 60, 'u32', 'reserved'),
]);

/** GET_HW_INFO data of a PE with capabilities `c`. */
export function spaprHwInfo(c: SpaprCaps): HwInfo {
  const flags =
    (c.maxWindows > 0 ? UIOMMU_HW_INFO_SPAPR_FLAGS.DDW : 0) |
    (c.writeImpliesRead ? UIOMMU_HW_INFO_SPAPR_FLAGS.WRITE_IMPLIES_READ : 0);
  return {
    type: IOMMU_HW_INFO_TYPE_UIOMMU_SPAPR,
    data: UiommuHwInfoSpapr.encode({
      flags,
      max_windows: c.maxWindows,
      pgsizes: c.pgsizes,
      max_levels: c.maxLevels,
      host_page_shift: c.hostPageShift,
      dma32_window_start: c.slotBases[0],
      dma32_window_size: c.dma32Size,
      window_base_0: c.slotBases[0],
      window_base_1: c.slotBases[1],
      platform:
        c.platform === 'powernv' ? UIOMMU_SPAPR_PLATFORM.POWERNV : UIOMMU_SPAPR_PLATFORM.PSERIES,
    }),
  };
}
