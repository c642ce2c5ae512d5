import {
  IOMMU_HW_INFO_TYPE_UIOMMU_SPAPR,
  UIOMMU_HW_INFO_SPAPR_FLAGS,
  UIOMMU_SPAPR_PLATFORM,
  UiommuHwInfoSpapr,
} from '../../abi/uiommu.ts';
import type { HwInfo } from '../../iommu/driver.ts';
import type { SpaprCaps } from '../../iommu/table-group.ts';

/** The extension's layout and values live in src/abi/uiommu.ts; re-exported for existing importers. */
export {
  IOMMU_HW_INFO_TYPE_UIOMMU_SPAPR,
  UIOMMU_HW_INFO_SPAPR_FLAGS,
  UIOMMU_SPAPR_PLATFORM,
  UiommuHwInfoSpapr,
};

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
