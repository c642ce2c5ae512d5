import type { Domain } from '../../iommu/domain.ts';
import { faultPoint } from '../../iommu/fault-inject.ts';
import type { Mm } from '../../iommu/mm.ts';
import type { PhysMemory } from '../../iommu/phys-memory.ts';
import { IOMMU_WRITE } from '../../iommu/prot.ts';
import type { PinAccount } from '../../kernel/pin-account.ts';
import type { Range } from '../../util/sorted-ranges.ts';

/** One physically contiguous pinned piece of a mapping: `[iova, iova+length)` ↦ `phys`. */
export interface PinnedRun {
  readonly iova: bigint;
  readonly phys: bigint;
  readonly length: bigint;
}

/**
 * One user mapping of a type1 container (the kernel's `struct vfio_dma`):
 * `[start, last]` is its IOVA range, `vaddr` the user address it came from.
 * It owns one long-term pin per page while `runs` is set (pinned once per
 * mapping, whatever the number of domains) and the matching locked_vm
 * charge on `account`.
 */
export interface VfioDma extends Range {
  readonly start: bigint;
  readonly last: bigint;
  readonly size: bigint;
  vaddr: bigint;
  /** IOMMU_READ | IOMMU_WRITE. */
  readonly prot: number;
  /** The address space the pages come from (dma->mm). */
  mm: Mm;
  /** Where the pinned pages are charged (none: CAP_IPC_LOCK or no account given). */
  account: PinAccount | undefined;
  /** Pinned and mapped into the container's domains (false while no domain exists). */
  iommuMapped: boolean;
  /** Pinned pieces; empty while not pinned. */
  runs: PinnedRun[];
  /** Pages charged to `account`. */
  lockedPages: bigint;
  /** Device memory (a BAR mapping, peer-to-peer): runs are bus addresses, neither pinned nor charged. */
  pfnmap?: boolean;
  /** VFIO_DMA_UNMAP_FLAG_VADDR was applied and no MAP_DMA with VADDR has followed. */
  vaddrInvalid: boolean;
  /** Dirty bitmap allocated (tracking was started while the mapping existed). */
  bitmap: boolean;
  /** Every page of the bitmap is set (vfio_iommu_populate_bitmap_full). */
  bitmapFull: boolean;
}

/**
 * Pin the mapping's pages (vfio_pin_pages_remote over the whole range):
 * resolve the VA range (EFAULT), charge the pages (ENOMEM past
 * RLIMIT_MEMLOCK), then add one pin per page. Nothing is left behind on
 * failure. A range of device memory (a BAR mapping) maps its bus addresses
 * instead, unpinned and uncharged (peer-to-peer); one that only partly is
 * device memory is EFAULT.
 */
export function pinDma(dma: VfioDma, memory: PhysMemory): void {
  faultPoint('vfio_pin_pages_remote');
  const pfn = dma.mm.pfnMaps;
  if (pfn?.overlaps(dma.vaddr, dma.size)) {
    // vaddr_get_pfns' follow_fault_pfn: reserved pfns, not pinned, not charged
    const runs = pfn.resolve(dma.vaddr, dma.size);
    dma.runs = runs.map((r) => ({
      iova: dma.start + (r.va - dma.vaddr),
      phys: r.phys,
      length: r.length,
    }));
    dma.pfnmap = true;
    dma.lockedPages = 0n;
    return;
  }
  const write = (dma.prot & IOMMU_WRITE) !== 0;
  const runs = dma.mm.resolve(dma.vaddr, dma.size, write);
  const pages = dma.size / memory.pageSize;
  dma.account?.charge(pages);
  const pinned: PinnedRun[] = [];
  for (const r of runs) {
    memory.pin(r.phys, r.length);
    pinned.push({ iova: dma.start + (r.va - dma.vaddr), phys: r.phys, length: r.length });
  }
  dma.runs = pinned;
  dma.lockedPages = dma.account ? pages : 0n;
}

/** Drop the mapping's pins and its locked_vm charge. */
export function unpinDma(dma: VfioDma, memory: PhysMemory): void {
  if (!dma.pfnmap) for (const r of dma.runs) memory.unpin(r.phys, r.length);
  dma.runs = [];
  if (dma.lockedPages !== 0n) dma.account?.uncharge(dma.lockedPages);
  dma.lockedPages = 0n;
}

/**
 * Map the pinned runs into one domain (iommu_map per run); on failure the
 * runs already mapped into it are unmapped again and the error is thrown.
 */
export function mapDmaInto(dma: VfioDma, domain: Domain): void {
  let done = 0;
  try {
    for (const r of dma.runs) {
      faultPoint('iommu_map');
      domain.map(r.iova, r.phys, r.length, dma.prot);
      done++;
    }
  } catch (e) {
    for (const r of dma.runs.slice(0, done)) domain.unmap(r.iova, r.length);
    throw e;
  }
}
