import { fail } from '../../abi/errno.ts';
import type { SpaprCaps } from '../../iommu/table-group.ts';
import { POWERNV_MAX_LEVELS } from './table-size.ts';

const SZ_4K = 1n << 12n;
const SZ_64K = 1n << 16n;
const SZ_2M = 1n << 21n;
const SZ_1G = 1n << 30n;

/**
 * POWER9 PowerNV (PHB4, IODA2 code path): tce32_start 0 and tce32_size =
 * the PHB's 32-bit MMIO base on the bus (skiboot places M32 at PCI
 * 0x80000000, so 2 GiB); two windows, slot 1 at 1<<59; 4K|64K|2M|1G pages
 * (skiboot's "ibm,supported-tce-sizes" for PHB4); up to 5 levels; 64 KiB
 * host pages; write TCEs also readable.
 */
export const SPAPR_POWERNV: SpaprCaps = Object.freeze({
  platform: 'powernv',
  maxWindows: 2,
  slotBases: Object.freeze([0n, 1n << 59n]) as readonly [bigint, bigint],
  pgsizes: SZ_4K | SZ_64K | SZ_2M | SZ_1G,
  maxLevels: POWERNV_MAX_LEVELS,
  dma32Size: 2n << 30n,
  hostPageShift: 16,
  writeImpliesRead: true,
});

/**
 * A pSeries guest PE as QEMU's sPAPR PHB presents it (the host kernel's
 * view on PowerVM/KVM, v6.11+ ops): default window 1 GiB at 0, second (DDW)
 * window at 1<<59 (QEMU's default dma64 address; PowerVM's is
 * hypervisor-chosen), 4K|64K pages (QEMU's default mask), one level
 * (max_levels = 1), 64 KiB host pages, TCE bits kept as given.
 */
export const SPAPR_PSERIES: SpaprCaps = Object.freeze({
  platform: 'pseries',
  maxWindows: 2,
  slotBases: Object.freeze([0n, 1n << 59n]) as readonly [bigint, bigint],
  pgsizes: SZ_4K | SZ_64K,
  maxLevels: 1,
  dma32Size: 1n << 30n,
  hostPageShift: 16,
  writeImpliesRead: false,
});

/** The presets by name. */
export const SPAPR_PRESETS = Object.freeze({ powernv: SPAPR_POWERNV, pseries: SPAPR_PSERIES });
export type SpaprPresetName = keyof typeof SPAPR_PRESETS;

const isPow2 = (n: bigint): boolean => n > 0n && (n & (n - 1n)) === 0n;

/** EINVAL unless the capabilities describe a PHB the model can build windows for. */
export function checkSpaprCaps(c: SpaprCaps): SpaprCaps {
  if (c.platform !== 'powernv' && c.platform !== 'pseries')
    fail('EINVAL', 'unknown platform', 'uiommu_spapr_caps');
  if (![0, 1, 2].includes(c.maxWindows))
    fail('EINVAL', 'a PE has at most 2 windows', 'uiommu_spapr_caps');
  if (c.pgsizes <= 0n || c.pgsizes >= 1n << 64n)
    fail('EINVAL', 'pgsizes must be a u64 mask', 'uiommu_spapr_caps');
  if (!Number.isInteger(c.maxLevels) || c.maxLevels < 1)
    fail('EINVAL', 'maxLevels ≥ 1', 'uiommu_spapr_caps');
  if (c.hostPageShift !== 12 && c.hostPageShift !== 16) {
    fail('EINVAL', 'host pages are 4 KiB or 64 KiB', 'uiommu_spapr_caps');
  }
  const smallest = c.pgsizes & -c.pgsizes;
  for (const base of c.slotBases) {
    if (base < 0n || base >= 1n << 64n || base % smallest !== 0n) {
      fail('EINVAL', 'slot base outside u64 or not page aligned', 'uiommu_spapr_caps');
    }
  }
  if (!isPow2(c.dma32Size) && c.dma32Size !== 0n) {
    // tce32_size need not be a power of two in the kernel, but then the
    // default window cannot be created; keep the model to what works.
    fail('EINVAL', 'dma32Size must be 0 or a power of two', 'uiommu_spapr_caps');
  }
  return Object.freeze({ ...c, slotBases: Object.freeze([...c.slotBases]) }) as SpaprCaps;
}
