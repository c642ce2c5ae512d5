import { Errno, fail } from '../abi/errno.ts';
import { hex } from '../abi/hex.ts';
import { IOMMU_IOAS_MAP_FLAGS } from '../abi/iommufd.ts';
import { U64_MAX } from '../abi/layout.ts';
import {
  VFIO_API_VERSION,
  VFIO_BASE,
  VFIO_DMA_MAP_FLAG,
  VFIO_DMA_UNMAP_FLAG,
  VFIO_EXTENSION,
  VFIO_IOMMU_INFO,
  VFIO_IOMMU_TYPE1_INFO_CAP,
  VFIO_TYPE1_MINSZ,
  VfioIommuType1DmaMap,
  VfioIommuType1DmaUnmap,
  VfioIommuType1Info,
  VfioIommuType1InfoCapIovaRange,
  VfioIommuType1InfoDmaAvail,
  VfioIovaRange,
  vfioNrOf,
} from '../abi/vfio.ts';
import type { Mm } from '../iommu/mm.ts';
import type { Caller } from '../kernel/file.ts';
import type { IommufdCtx } from './context.ts';
import type { IoPagetable, UnmapProgress } from './io-pagetable.ts';
import { checkPagesRange, Ioas, mapSource } from './ioas.ts';
import type { CompatHandler } from './main.ts';

/**
 * VFIO container compatibility on an iommufd (drivers/iommu/iommufd/
 * vfio_compat.c): the container ioctls (nr < 0x80 on /dev/iommu, or on
 * /dev/vfio/vfio when iommufd provides it) served from the context's compat
 * IOAS (IOMMU_VFIO_IOAS). Facts: vfio-container.md §8.
 *
 * - GET_API_VERSION → 0; CHECK_EXTENSION → 1 for TYPE1, TYPE1v2, UNMAP_ALL
 *   (NOIOMMU with `vfioNoiommu`), DMA_CC → 1 iff every HWPT of the compat
 *   IOAS enforces coherency (ENODEV without one), 0 otherwise.
 * - SET_IOMMU(type by value): TYPE1 or TYPE1v2 only (EINVAL), ENODEV
 *   without a compat IOAS; TYPE1 disables large pages on it (EINVAL if it
 *   already has domains and areas). May be repeated.
 * - GET_INFO: argsz < 16 EINVAL; PGSIZES|CAPS; caps DMA_AVAIL (U32_MAX)
 *   then IOVA_RANGE, each written only where it fits; `argsz` := full size;
 *   `cap_offset` 24 only if everything fit; min(argsz, 24) bytes of the
 *   fixed struct copied back.
 * - MAP_DMA: argsz < 32 or flags beyond READ|WRITE EINVAL; fixed IOVA,
 *   flags 0 allowed; then IOMMU_IOAS_MAP's rules.
 * - UNMAP_DMA: argsz < 24 or flags beyond ALL EINVAL (GET_DIRTY_BITMAP and
 *   VADDR too); ALL needs iova = size = 0; with large pages disabled
 *   (TYPE1) areas are first cut at both ends of the range, so a range inside
 *   a mapping unmaps exactly itself; the 24 bytes go back with `size` =
 *   bytes unmapped even when the unmap itself failed.
 * - Anything else (DIRTY_PAGES, ENABLE, SPAPR_*, EEH_PE_OP, ...) ENOTTY.
 *
 * uiommu extension (docs/extensions.md): the host may add container types
 * (`host.vfioCompatExtension`, the SPAPR TCE backend on POWER hosts).
 * CHECK_EXTENSION adds its answers to iommufd's own; SET_IOMMU of a type
 * it claims installs its backend as `ctx.vfioCompatBackend`, which from
 * then on serves every container ioctl but GET_API_VERSION,
 * CHECK_EXTENSION (only the backend's types count) and SET_IOMMU (EINVAL).
 */

const U32_MAX = 0xffff_ffff;

/** The compat IOAS (get_compat_ioas): ENODEV when none is set. */
function compatIoas(ctx: IommufdCtx): Ioas {
  const ioas = ctx.vfioIoas;
  if (!ioas)
    fail(
      'ENODEV',
      'the iommufd has no compat IOAS (no group set on it, no IOMMU_VFIO_IOAS SET)',
      'get_compat_ioas',
    );
  return ioas as Ioas;
}

function u32At(mm: Mm, addr: bigint, value: number): void {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value >>> 0, true);
  mm.write(addr, b);
}

// ---- CHECK_EXTENSION / SET_IOMMU -------------------------------------------------

/** iommufd_vfio_cc_iommu(): 1 unless some HWPT of the compat IOAS does not enforce coherency. */
function dmaCcIommu(ctx: IommufdCtx): number {
  const ioas = compatIoas(ctx);
  return ioas.hwpts.every((h) => h.enforceCacheCoherency) ? 1 : 0;
}

/** VFIO_CHECK_EXTENSION: a non-negative answer; only DMA_CC can fail (ENODEV). */
function checkExtension(ctx: IommufdCtx, ext: bigint): number {
  switch (ext) {
    case BigInt(VFIO_EXTENSION.TYPE1_IOMMU):
    case BigInt(VFIO_EXTENSION.TYPE1v2_IOMMU):
    case BigInt(VFIO_EXTENSION.UNMAP_ALL):
      return 1;
    case BigInt(VFIO_EXTENSION.NOIOMMU_IOMMU):
      return ctx.host.personality.vfioNoiommu ? 1 : 0;
    case BigInt(VFIO_EXTENSION.DMA_CC_IOMMU):
      return dmaCcIommu(ctx);
    default:
      // TYPE1_NESTING (obsolete) and UPDATE_VADDR (not emulated) included
      return 0;
  }
}

/** VFIO_SET_IOMMU: the type is the ioctl argument itself. */
function setIommu(ctx: IommufdCtx, caller: Caller, type: bigint): number {
  const noIommu = ctx.noIommuMode;
  if (
    ctx.host.personality.vfioNoiommu &&
    type === BigInt(VFIO_EXTENSION.NOIOMMU_IOMMU) &&
    noIommu
  ) {
    if (caller.capSysRawio !== true)
      fail('EPERM', 'no-IOMMU mode needs CAP_SYS_RAWIO', 'iommufd_vfio_set_iommu');
    return 0;
  }
  const type1 = type === BigInt(VFIO_EXTENSION.TYPE1_IOMMU);
  if ((!type1 && type !== BigInt(VFIO_EXTENSION.TYPE1v2_IOMMU)) || noIommu)
    fail('EINVAL', `container type ${type} is not TYPE1 or TYPE1v2`, 'iommufd_vfio_set_iommu');
  const ioas = compatIoas(ctx);
  // TYPE1 may unmap inside a mapping: only possible without large IOPTEs
  if (type1) ioas.iopt.setLargePages(false);
  return 0;
}

// ---- GET_INFO --------------------------------------------------------------------

/**
 * iommufd_get_pagesizes(): the AND of the domains' page sizes (every size
 * without a domain), sub-page sizes folded into PAGE_SIZE, then the larger
 * of that bitmap and iova_alignment compared as numbers.
 */
function pageSizes(iopt: IoPagetable): bigint {
  let bitmap = U64_MAX;
  for (const d of iopt.domains) bitmap &= d.pgsizeBitmap;
  const subPage = iopt.pageSize - 1n;
  if ((bitmap & subPage) !== 0n) bitmap = (bitmap & ~subPage) | iopt.pageSize;
  return bitmap > iopt.iovaAlignment ? bitmap : iopt.iovaAlignment;
}

/** A capability filler: write what fits in `avail` bytes at `at`; return the capability's size. */
type FillCap = (iopt: IoPagetable, mm: Mm, at: bigint, avail: number) => number;

/** DMA_AVAIL v1: iommufd has no mapping-count limit and reports U32_MAX. */
const fillDmaAvail: FillCap = (_iopt, mm, at, avail) => {
  const size = VfioIommuType1InfoDmaAvail.size;
  if (avail >= size) {
    mm.write(
      at,
      VfioIommuType1InfoDmaAvail.encode({
        id: VFIO_IOMMU_TYPE1_INFO_CAP.DMA_AVAIL,
        version: 1,
        next: 0,
        avail: U32_MAX,
      }),
    );
  }
  return size;
};

/** IOVA_RANGE v1: the holes of the reserved set; each range, then the header, written if it fits. */
const fillIovaRange: FillCap = (iopt, mm, at, avail) => {
  const head = VfioIommuType1InfoCapIovaRange.size;
  const entry = VfioIovaRange.size;
  let n = 0;
  for (const r of iopt.iovaRanges()) {
    if (avail >= head + entry * (n + 1)) {
      mm.write(
        at + BigInt(head + entry * n),
        VfioIovaRange.encode({ start: r.start, end: r.last }),
      );
    }
    n++;
  }
  if (avail >= head + entry * n) {
    mm.write(
      at,
      VfioIommuType1InfoCapIovaRange.encode({
        id: VFIO_IOMMU_TYPE1_INFO_CAP.IOVA_RANGE,
        version: 1,
        next: 0,
        nr_iovas: n,
        reserved: 0,
      }),
    );
  }
  return head + entry * n;
};

/** The chain in the order iommufd emits it (no MIGRATION capability). */
const CAPS: readonly FillCap[] = [fillDmaAvail, fillIovaRange];

/** VFIO_IOMMU_GET_INFO, byte-exact: nothing is written past `argsz`. */
function iommuGetInfo(ctx: IommufdCtx, caller: Caller, arg: bigint): number {
  const minsz = VFIO_TYPE1_MINSZ.VFIO_IOMMU_GET_INFO;
  const argsz = VfioIommuType1Info.decode(caller.mm.read(arg, minsz)).argsz;
  if (argsz < minsz) fail('EINVAL', `argsz ${argsz} below ${minsz}`, 'iommufd_vfio_iommu_get_info');
  const fixed = VfioIommuType1Info.size;
  const copyBack = Math.min(argsz, fixed);
  const ioas = compatIoas(ctx);
  const iopt = ioas.iopt;
  const iovaPgsizes = pageSizes(iopt);
  let total = fixed;
  let lastCap: bigint | undefined;
  for (const fill of CAPS) {
    let size = fill(iopt, caller.mm, arg + BigInt(total), argsz > total ? argsz - total : 0);
    if (ctx.host.personality.compatCapsAligned) size = (size + 7) & ~7;
    // link the previous capability once this one's offset is inside the buffer
    if (lastCap !== undefined && argsz >= total) u32At(caller.mm, lastCap + 4n, total);
    lastCap = arg + BigInt(total);
    total += size;
  }
  const info = VfioIommuType1Info.encode({
    argsz: total,
    flags: VFIO_IOMMU_INFO.PGSIZES | VFIO_IOMMU_INFO.CAPS,
    iova_pgsizes: iovaPgsizes,
    cap_offset: argsz >= total ? fixed : 0,
    pad: 0,
  });
  caller.mm.write(arg, info.subarray(0, copyBack));
  return 0;
}

// ---- MAP_DMA / UNMAP_DMA ---------------------------------------------------------

/** VFIO_IOMMU_MAP_DMA: a fixed-IOVA map of the caller's memory into the compat IOAS. */
function iommuMapDma(ctx: IommufdCtx, caller: Caller, arg: bigint): number {
  const minsz = VFIO_TYPE1_MINSZ.VFIO_IOMMU_MAP_DMA;
  const map = VfioIommuType1DmaMap.decode(caller.mm.read(arg, minsz));
  const supported = VFIO_DMA_MAP_FLAG.READ | VFIO_DMA_MAP_FLAG.WRITE;
  const where = 'iommufd_vfio_map_dma';
  if (map.argsz < minsz) fail('EINVAL', `argsz ${map.argsz} below ${minsz}`, where);
  if (map.flags & ~supported) fail('EINVAL', `flags ${hex(map.flags)} beyond READ|WRITE`, where);
  const flags =
    IOMMU_IOAS_MAP_FLAGS.FIXED_IOVA |
    (map.flags & VFIO_DMA_MAP_FLAG.READ ? IOMMU_IOAS_MAP_FLAGS.READABLE : 0) |
    (map.flags & VFIO_DMA_MAP_FLAG.WRITE ? IOMMU_IOAS_MAP_FLAGS.WRITEABLE : 0);
  const ioas = compatIoas(ctx);
  const { pageSize } = ctx.host.memory;
  checkPagesRange(map.vaddr, map.size, pageSize, false, ctx.host.personality.pagesWrapFirst);
  mapSource(ctx, caller, ioas, caller.mm, map.vaddr, { flags, length: map.size, iova: map.iova });
  return 0;
}

/** VFIO_IOMMU_UNMAP_DMA: see the module comment for the write-back rule. */
function iommuUnmapDma(ctx: IommufdCtx, caller: Caller, arg: bigint): number {
  const minsz = VFIO_TYPE1_MINSZ.VFIO_IOMMU_UNMAP_DMA;
  const unmap = VfioIommuType1DmaUnmap.decode(caller.mm.read(arg, minsz));
  // GET_DIRTY_BITMAP is obsolete for iommufd (its own dirty tracking replaces it)
  const where = 'iommufd_vfio_unmap_dma';
  if (unmap.argsz < minsz) fail('EINVAL', `argsz ${unmap.argsz} below ${minsz}`, where);
  if (unmap.flags & ~VFIO_DMA_UNMAP_FLAG.ALL)
    fail('EINVAL', `flags ${hex(unmap.flags)} beyond UNMAP_ALL`, where);
  const ioas = compatIoas(ctx);
  const iopt = ioas.iopt;
  const progress: UnmapProgress = { unmapped: 0n };
  let error: unknown;
  if (unmap.flags & VFIO_DMA_UNMAP_FLAG.ALL) {
    if (unmap.iova !== 0n || unmap.size !== 0n)
      fail('EINVAL', 'UNMAP_ALL takes iova 0 and size 0', 'iommufd_vfio_unmap_dma');
    try {
      iopt.unmapAll(progress);
    } catch (e) {
      error = e;
    }
  } else {
    if (iopt.disableLargePages) {
      // cut after the range's last byte and before its first (none needed at 0); u64 arithmetic
      const cuts = [BigInt.asUintN(64, unmap.iova + unmap.size - 1n)];
      if (unmap.iova !== 0n) cuts.push(unmap.iova - 1n);
      iopt.cutIova(cuts);
    }
    try {
      iopt.unmap(unmap.iova, unmap.size, {
        emptyOk: ctx.host.personality.compatUnmapEmpty === 'success',
        progress,
      });
    } catch (e) {
      error = e;
    }
  }
  if (error !== undefined && !(error instanceof Errno)) throw error;
  caller.mm.write(arg, VfioIommuType1DmaUnmap.encode({ ...unmap, size: progress.unmapped }));
  if (error !== undefined) throw error;
  return 0;
}

// ---- entry -----------------------------------------------------------------------

const NR = {
  GET_API_VERSION: VFIO_BASE + 0,
  CHECK_EXTENSION: VFIO_BASE + 1,
  SET_IOMMU: VFIO_BASE + 2,
  IOMMU_GET_INFO: VFIO_BASE + 12,
  IOMMU_MAP_DMA: VFIO_BASE + 13,
  IOMMU_UNMAP_DMA: VFIO_BASE + 14,
} as const;

/**
 * iommufd_vfio_ioctl(): the VFIO container ioctls of an iommufd context.
 * The request must be the exact `_IO(';', nr)` word of the host ABI;
 * everything else is ENOTTY.
 *
 * @example
 * // wired as the iommufd dispatcher's handler for nr < 0x80
 * iommufdIoctl(ctx, caller, request, arg, extra, vfioCompat);
 */
export const vfioCompat: CompatHandler = (ctx, caller, request, arg) => {
  const ext = ctx.host.vfioCompatExtension;
  const backend = ctx.vfioCompatBackend;
  const nr = vfioNrOf(ctx.host.abi, request);
  switch (nr) {
    case NR.GET_API_VERSION:
      return VFIO_API_VERSION;
    case NR.CHECK_EXTENSION:
      if (ext && backend) return ext.checkExtension(arg);
      return checkExtension(ctx, arg) || (ext?.checkExtension(arg) ?? 0);
    case NR.SET_IOMMU:
      if (backend) fail('EINVAL', 'container type already set', 'iommufd_vfio_set_iommu');
      if (ext && ext.checkExtension(arg) > 0) {
        ext.setIommu(ctx, caller, arg);
        return 0;
      }
      return setIommu(ctx, caller, arg);
  }
  if (backend && nr !== undefined) return backend.ioctl(caller, request, arg);
  switch (nr) {
    case NR.IOMMU_GET_INFO:
      return iommuGetInfo(ctx, caller, arg);
    case NR.IOMMU_MAP_DMA:
      return iommuMapDma(ctx, caller, arg);
    case NR.IOMMU_UNMAP_DMA:
      return iommuUnmapDma(ctx, caller, arg);
    default:
      fail('ENOTTY', 'no VFIO container ioctl on an iommufd', 'iommufd_vfio_ioctl');
  }
};

// ---- for the VFIO group layer ----------------------------------------------------

/** iommufd_vfio_compat_ioas_get_id(): the compat IOAS's ID; ENODEV when none. */
export function vfioCompatIoasGetId(ctx: IommufdCtx): number {
  return compatIoas(ctx).id;
}

/**
 * iommufd_vfio_compat_ioas_create(): make sure a compat IOAS exists (a new
 * user-visible IOAS at the lowest free ID unless one is set); EINVAL in
 * no-IOMMU mode.
 */
export function vfioCompatIoasCreate(ctx: IommufdCtx): void {
  if (ctx.noIommuMode)
    fail('EINVAL', 'the iommufd is in no-IOMMU mode', 'iommufd_vfio_compat_ioas_create');
  if (ctx.vfioIoas) return;
  ctx.vfioIoas = ctx.create(new Ioas(ctx), () => {});
}

/** iommufd_vfio_compat_set_no_iommu(): enter no-IOMMU mode; EINVAL once a compat IOAS exists. */
export function vfioCompatSetNoIommu(ctx: IommufdCtx): void {
  if (ctx.vfioIoas)
    fail('EINVAL', 'the iommufd has a compat IOAS', 'iommufd_vfio_compat_set_no_iommu');
  ctx.noIommuMode = true;
}
