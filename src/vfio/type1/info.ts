import {
  VFIO_IOMMU_INFO,
  VFIO_IOMMU_TYPE1_INFO_CAP,
  VFIO_TYPE1_MINSZ,
  VfioIommuType1Info,
  VfioIommuType1InfoCapIovaRange,
  VfioIommuType1InfoCapMigration,
  VfioIommuType1InfoDmaAvail,
  VfioIovaRange,
} from '../../abi/vfio.ts';
import type { Mm } from '../../iommu/mm.ts';
import { VfioUser } from '../user.ts';
import type { IovaRange } from './iova-list.ts';

/**
 * DIRTY_BITMAP_SIZE_MAX: the bitmap bytes for INT_MAX pages, rounded up to
 * whole u64 words (2^28 bytes, 256 MiB).
 */
export const DIRTY_BITMAP_SIZE_MAX = (((1n << 31n) - 1n + 63n) / 64n) * 8n;

/** What GET_INFO reports, gathered by the container. */
export interface Type1InfoState {
  /** iommu->pgsize_bitmap. */
  readonly pgsizeBitmap: bigint;
  /** Remaining mapping slots (dma_avail). */
  readonly dmaAvail: number;
  /** The valid-IOVA list; empty → no IOVA_RANGE capability. */
  readonly iovaList: readonly IovaRange[];
  /** Pad each capability to 8 bytes (the 2023 alignment fix). */
  readonly capsAligned: boolean;
}

/**
 * The capability chain in type1 order (MIGRATION, DMA_AVAIL, IOVA_RANGE),
 * laid out as it lands at offset `base` of the user buffer: `next` is the
 * offset from the start of the info struct, 0 on the last one.
 */
export function type1Caps(s: Type1InfoState, base: number): Uint8Array {
  const pieces: Uint8Array[] = [];
  const smallest = s.pgsizeBitmap & -s.pgsizeBitmap;
  pieces.push(
    VfioIommuType1InfoCapMigration.encode({
      id: VFIO_IOMMU_TYPE1_INFO_CAP.MIGRATION,
      version: 1,
      next: 0,
      flags: 0,
      pgsize_bitmap: smallest,
      max_dirty_bitmap_size: DIRTY_BITMAP_SIZE_MAX,
    }),
  );
  pieces.push(
    VfioIommuType1InfoDmaAvail.encode({
      id: VFIO_IOMMU_TYPE1_INFO_CAP.DMA_AVAIL,
      version: 1,
      next: 0,
      avail: s.dmaAvail,
    }),
  );
  if (s.iovaList.length > 0) {
    const head = VfioIommuType1InfoCapIovaRange.size;
    const cap = new Uint8Array(head + VfioIovaRange.size * s.iovaList.length);
    cap.set(
      VfioIommuType1InfoCapIovaRange.encode({
        id: VFIO_IOMMU_TYPE1_INFO_CAP.IOVA_RANGE,
        version: 1,
        next: 0,
        nr_iovas: s.iovaList.length,
        reserved: 0,
      }),
    );
    s.iovaList.forEach((r, i) => {
      cap.set(VfioIovaRange.encode({ start: r.start, end: r.last }), head + VfioIovaRange.size * i);
    });
    pieces.push(cap);
  }
  const sizes = pieces.map((p) => (s.capsAligned ? (p.length + 7) & ~7 : p.length));
  const out = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  pieces.forEach((p, i) => {
    out.set(p, at);
    const next = i + 1 < pieces.length ? base + at + sizes[i]! : 0;
    view.setUint32(at + 4, next, true);
    at += sizes[i]!;
  });
  return out;
}

/**
 * vfio_iommu_type1_get_info(): reads the first 16 bytes (argsz < 16 →
 * EINVAL). flags = PGSIZES | CAPS. If the buffer cannot hold the fixed
 * struct and the whole chain, only `argsz` is raised to the size needed
 * (cap_offset 0, no capability written); otherwise the chain is written at
 * offset 24, cap_offset = 24 and `argsz` is left as the caller gave it.
 * Then min(argsz, 24) bytes of the fixed struct are copied back. Unlike
 * iommufd's compat code, nothing of the chain is written when it does not
 * fit whole.
 */
export function type1GetInfo(mm: Mm, arg: bigint, s: Type1InfoState): number {
  const u = VfioUser.copyIn(mm, arg, VfioIommuType1Info, {
    minsz: VFIO_TYPE1_MINSZ.VFIO_IOMMU_GET_INFO,
    fn: 'vfio_iommu_type1_get_info',
  });
  const fixed = VfioIommuType1Info.size;
  const caps = type1Caps(s, fixed);
  const { argsz, capOffset } = u.capChain(fixed, caps);
  u.respondFitting({
    argsz,
    flags: VFIO_IOMMU_INFO.PGSIZES | (caps.length > 0 ? VFIO_IOMMU_INFO.CAPS : 0),
    iova_pgsizes: s.pgsizeBitmap,
    cap_offset: capOffset,
    pad: 0,
  });
  return 0;
}
