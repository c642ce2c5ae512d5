/**
 * uiommu extensions to the iommufd uAPI: NOT Linux uAPI.
 *
 * Linux's iommufd has one aperture per domain and no POWER dynamic DMA
 * windows; uiommu exposes them through the values and structs below. Every
 * number sits in uiommu's range 0x7569_xxxx ("ui"), far from Linux's enums
 * (which count up from 0) and from the selftest's 0xFEEDBEEF, so no future
 * kernel value can collide. Documented in docs/extensions.md.
 */
import { field, struct } from './layout.ts';

// ---------------------------------------------------------------------------
// Extension: IOMMU_GET_HW_INFO type of a POWER PE
// ---------------------------------------------------------------------------

/**
 * uiommu extension: the GET_HW_INFO type of a POWER PE. Linux numbers
 * `enum iommu_hw_info_type` from 0 upwards (4 so far) and the selftest uses
 * 0xFEEDBEEF; 0x7569_0001 ("ui" + 1) sits far from both.
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

// ---------------------------------------------------------------------------
// Extension: IOMMU_HWPT_ALLOC data type describing DMA windows
// ---------------------------------------------------------------------------

/**
 * uiommu extension: the IOMMU_HWPT_ALLOC `data_type` of a multi-window
 * (SPAPR) paging domain. Linux numbers `enum iommu_hwpt_data_type` from 0
 * upwards (NONE, VTD_S1, ARM_SMMUV3, ...) and the selftest uses 0xDEADBEEF.
 */
export const IOMMU_HWPT_DATA_UIOMMU_SPAPR_WINDOWS = 0x7569_0001;

/** Entries of `windows[]` in {@link UiommuHwptSpaprWindows}: the PE's window slots. */
export const UIOMMU_SPAPR_MAX_WINDOWS = 2;

/** Bytes of one `windows[]` entry. */
const WINDOW_SIZE = 32;

function windowFields<const I extends 0 | 1>(i: I) {
  const at = 8 + i * WINDOW_SIZE;
  return [
    field(`windows_${i}_slot`, at, 'u32', 'in'),
    field(`windows_${i}_page_shift`, at + 4, 'u32', 'in'),
    field(`windows_${i}_levels`, at + 8, 'u32', 'in'),
    field(`windows_${i}___reserved`, at + 12, 'u32', 'reserved'),
    field(`windows_${i}_start`, at + 16, 'u64', 'in'),
    field(`windows_${i}_size`, at + 24, 'u64', 'in'),
  ] as const;
}

/**
 * `struct uiommu_hwpt_spapr_windows` (72 bytes, 8-byte aligned, uiommu
 * extension): the windows of a new paging domain, each what
 * VFIO_IOMMU_SPAPR_TCE_CREATE asks for plus the slot it lands in.
 *
 * ```c
 * struct uiommu_hwpt_spapr_window {   // 32 bytes
 *         __u32 slot;                 //  0  0 or 1
 *         __u32 page_shift;           //  4  log2 of the TCE page size
 *         __u32 levels;               //  8  TCE table levels
 *         __u32 __reserved;           // 12  must be 0
 *         __aligned_u64 start;        // 16  bus address = the slot's base
 *         __aligned_u64 size;         // 24  window size in bytes
 * };
 * struct uiommu_hwpt_spapr_windows {  // 72 bytes
 *         __u32 num_windows;          //  0  1..2
 *         __u32 __reserved;           //  4  must be 0
 *         struct uiommu_hwpt_spapr_window windows[2];  // 8, 40
 * };
 * ```
 * C's array is flattened to `windows_<i>_<field>`. Entries at index
 * ≥ num_windows are ignored.
 */
export const UiommuHwptSpaprWindows = struct('uiommu_hwpt_spapr_windows', 72, [
  field('num_windows', 0, 'u32', 'in'),
  field('__reserved', 4, 'u32', 'reserved'),
  ...windowFields(0),
  ...windowFields(1),
]);

/** One `windows[]` entry, decoded. */
export interface UiommuHwptSpaprWindow {
  slot: number;
  page_shift: number;
  levels: number;
  __reserved: number;
  start: bigint;
  size: bigint;
}

/** The decoded struct with `windows[]` as an array (all entries, whatever num_windows). */
export interface UiommuHwptSpaprWindowsValue {
  num_windows: number;
  __reserved: number;
  windows: UiommuHwptSpaprWindow[];
}

/** Decode `struct uiommu_hwpt_spapr_windows` into its C shape. */
export function decodeSpaprWindows(bytes: Uint8Array): UiommuHwptSpaprWindowsValue {
  const v = UiommuHwptSpaprWindows.decode(bytes) as unknown as Record<string, number | bigint>;
  const windows: UiommuHwptSpaprWindow[] = [];
  for (let i = 0; i < UIOMMU_SPAPR_MAX_WINDOWS; i++) {
    const p = `windows_${i}_`;
    windows.push({
      slot: v[`${p}slot`] as number,
      page_shift: v[`${p}page_shift`] as number,
      levels: v[`${p}levels`] as number,
      __reserved: v[`${p}__reserved`] as number,
      start: v[`${p}start`] as bigint,
      size: v[`${p}size`] as bigint,
    });
  }
  return { num_windows: v.num_windows as number, __reserved: v.__reserved as number, windows };
}

/** Encode `struct uiommu_hwpt_spapr_windows` from its C shape (absent entries are zero). */
export function encodeSpaprWindows(v: {
  num_windows: number;
  __reserved?: number;
  windows: readonly Partial<UiommuHwptSpaprWindow>[];
}): Uint8Array {
  const rec: Record<string, number | bigint> = {
    num_windows: v.num_windows,
    __reserved: v.__reserved ?? 0,
  };
  v.windows.slice(0, UIOMMU_SPAPR_MAX_WINDOWS).forEach((w, i) => {
    for (const [k, x] of Object.entries(w)) if (x !== undefined) rec[`windows_${i}_${k}`] = x;
  });
  return UiommuHwptSpaprWindows.encode(rec);
}
