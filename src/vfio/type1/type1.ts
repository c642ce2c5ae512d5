import { Errno, fail } from '../../abi/errno.ts';
import { hex } from '../../abi/hex.ts';
import type { IoctlAbi } from '../../abi/ioctl.ts';
import { U64_MAX } from '../../abi/layout.ts';
import {
  VFIO_BASE,
  VFIO_DMA_MAP_FLAG,
  VFIO_DMA_UNMAP_FLAG,
  VFIO_EXTENSION,
  VFIO_IOMMU_DIRTY_PAGES_FLAG,
  VFIO_TYPE1_MINSZ,
  VfioBitmap,
  VfioIommuType1DirtyBitmap,
  VfioIommuType1DirtyBitmapGet,
  VfioIommuType1DmaMap,
  VfioIommuType1DmaUnmap,
  vfioNrOf,
} from '../../abi/vfio.ts';
import type { ReservedRegion } from '../../iommu/device.ts';
import type { Domain } from '../../iommu/domain.ts';
import { faultPoint } from '../../iommu/fault-inject.ts';
import type { Group } from '../../iommu/group.ts';
import type { Mm } from '../../iommu/mm.ts';
import type { PhysMemory } from '../../iommu/phys-memory.ts';
import { IOMMU_READ, IOMMU_WRITE } from '../../iommu/prot.ts';
import type { AccountMode, PinAccount } from '../../kernel/pin-account.ts';
import { SortedRanges } from '../../util/sorted-ranges.ts';
import { VfioUser } from '../user.ts';
import { accessOk, ffs, updateUserBitmap, verifyBitmapSize } from './dirty.ts';
import { mapDmaInto, pinDma, unpinDma, type VfioDma } from './dma.ts';
import { type Type1InfoState, type1GetInfo } from './info.ts';
import {
  aperExpand,
  aperResize,
  type IovaRange,
  iovaValid,
  resvExclude,
  resvRefresh,
} from './iova-list.ts';

/** What the type1 backend sees of the calling task. */
export interface Type1Caller {
  readonly mm: Mm;
  /** The locked_vm account of the task (type1 charges the mm); absent = not accounted. */
  pinAccount?(mode: AccountMode): PinAccount;
}

/** Construction options of {@link VfioIommuType1}. */
export interface VfioIommuType1Options {
  /** Host physical memory (pins are taken here). */
  readonly memory: PhysMemory;
  /** PAGE_SIZE of the host. */
  readonly pageSize: bigint;
  /** TYPE1v2 (or the obsolete NESTING type) semantics; false = TYPE1 v1. */
  readonly v2: boolean;
  /** The module parameter dma_entry_limit (default 65535 = U16_MAX). */
  readonly dmaEntryLimit?: number;
  /** Ioctl number encoding (default generic). */
  readonly abi?: IoctlAbi;
  /** GET_INFO pads capabilities to 8 bytes (the 2023 fix; default true). */
  readonly capsAligned?: boolean;
  /**
   * Errno of an IOVA/vaddr range that wraps u64 on MAP/UNMAP and
   * DIRTY_PAGES GET_BITMAP: EINVAL in the kernels read, EOVERFLOW after the
   * 2025 "addressable limit" series (v6.19; in 7.2 GET_BITMAP also checks
   * size 0 first). Default EINVAL.
   */
  readonly wrapErrno?: 'EINVAL' | 'EOVERFLOW';
  /** CHECK_EXTENSION(TYPE1_NESTING_IOMMU) answers 1 (true in the kernel read, ~v6.6). Default true. */
  readonly nestingExtension?: boolean;
  /**
   * Opened as TYPE1_NESTING_IOMMU (until v6.13): each new domain must
   * enable nesting, which none of the drivers here (VT-d, SPAPR, the mock)
   * can, so attaching a group is EINVAL (iommu_enable_nesting). Default false.
   */
  readonly nesting?: boolean;
}

/** One IOMMU domain of the container with the groups attached to it (struct vfio_domain). */
interface VfioDomain {
  readonly domain: Domain;
  readonly groups: Group[];
  readonly coherent: boolean;
}

const NR = {
  CHECK_EXTENSION: VFIO_BASE + 1,
  IOMMU_GET_INFO: VFIO_BASE + 12,
  IOMMU_MAP_DMA: VFIO_BASE + 13,
  IOMMU_UNMAP_DMA: VFIO_BASE + 14,
  IOMMU_DIRTY_PAGES: VFIO_BASE + 17,
} as const;

/** The domain's geometry (aperture_start..aperture_end): first to last aperture. */
function geometry(d: Domain): IovaRange {
  return { start: d.apertures[0]!.start, last: d.apertures[d.apertures.length - 1]!.last };
}

/** The IOVA a group cannot use: its devices' reserved regions and the holes between apertures. */
function groupReserved(g: Group, d: Domain): ReservedRegion[] {
  const out: ReservedRegion[] = g.devices.flatMap((dev) => [...dev.reservedRegions]);
  for (let i = 1; i < d.apertures.length; i++) {
    const lo = d.apertures[i - 1]!.last + 1n;
    const hi = d.apertures[i]!.start - 1n;
    if (lo <= hi) out.push({ start: lo, last: hi, kind: 'reserved' });
  }
  return out;
}

/**
 * The domain op enforce_cache_coherency(), asked at attach; a domain
 * without the op (the selftest mock's) does not enforce.
 */
function coherent(d: Domain): boolean {
  return d.enforceCacheCoherency?.() ?? false;
}

/**
 * VFIO_CHECK_EXTENSION as vfio_iommu_type1 answers it; `iommu` undefined
 * is the question asked before SET_IOMMU (no backend instance yet).
 */
export function type1CheckExtension(
  iommu: VfioIommuType1 | undefined,
  ext: bigint,
  nestingExtension = true,
): number {
  switch (ext) {
    case BigInt(VFIO_EXTENSION.TYPE1_IOMMU):
    case BigInt(VFIO_EXTENSION.TYPE1v2_IOMMU):
    case BigInt(VFIO_EXTENSION.UNMAP_ALL):
      return 1;
    case BigInt(VFIO_EXTENSION.TYPE1_NESTING_IOMMU):
      return nestingExtension ? 1 : 0;
    case BigInt(VFIO_EXTENSION.UPDATE_VADDR):
      // no emulated (mdev) groups in this model
      return iommu ? 1 : 0;
    case BigInt(VFIO_EXTENSION.DMA_CC_IOMMU):
      if (!iommu) return 0;
      return iommu.domainsEnforceCoherency() ? 1 : 0;
    default:
      return 0;
  }
}

/**
 * Linux's legacy VFIO IOMMU backend vfio_iommu_type1
 * (drivers/vfio/vfio_iommu_type1.c) as a standalone object the container
 * plugs in after SET_IOMMU(TYPE1 / TYPE1v2). It keeps the user mappings
 * (`vfio_dma`) in an ordered set, pins each mapping's pages once, and maps
 * them into one IOMMU domain per compatible IOMMU driver.
 *
 * `ioctl` serves CHECK_EXTENSION, IOMMU_GET_INFO, IOMMU_MAP_DMA,
 * IOMMU_UNMAP_DMA and IOMMU_DIRTY_PAGES; it throws {@link Errno} like the
 * rest of the model (the syscall boundary turns it into -1/errno) and
 * ENOTTY for anything else.
 *
 * @example
 * const t1 = new VfioIommuType1({ memory: kernel.memory, pageSize: 4096n, v2: true });
 * t1.attachGroup(group);
 * t1.ioctl(proc, vfioIoctlNumber('generic', 'VFIO_IOMMU_MAP_DMA'), addrOfDmaMap);
 */
export class VfioIommuType1 {
  readonly v2: boolean;
  readonly memory: PhysMemory;
  readonly pageSize: bigint;
  private readonly abi: IoctlAbi;
  private readonly capsAligned: boolean;
  private readonly wrapErrno: 'EINVAL' | 'EOVERFLOW';
  private readonly nestingExtension: boolean;
  private readonly nesting: boolean;
  private readonly dmas = new SortedRanges<VfioDma>();
  /** Newest first, like the kernel's list_add. */
  private domains: VfioDomain[] = [];
  private iovaList: IovaRange[] = [];
  private dmaAvailCount: number;
  private vaddrInvalidCount = 0;
  private pgsizeBitmapValue: bigint;
  private dirtyTracking = false;
  private nonPinnedGroups = 0;

  constructor(opts: VfioIommuType1Options) {
    this.memory = opts.memory;
    this.pageSize = opts.pageSize;
    this.v2 = opts.v2;
    this.abi = opts.abi ?? 'generic';
    this.capsAligned = opts.capsAligned ?? true;
    this.wrapErrno = opts.wrapErrno ?? 'EINVAL';
    this.nestingExtension = opts.nestingExtension ?? true;
    this.nesting = opts.nesting ?? false;
    this.dmaAvailCount = opts.dmaEntryLimit ?? 0xffff;
    // PAGE_MASK: every power of two from PAGE_SIZE up
    this.pgsizeBitmapValue = U64_MAX & ~(this.pageSize - 1n);
  }

  // ---- state for the container layer and tests ------------------------------------

  /** iommu->pgsize_bitmap (what GET_INFO reports as iova_pgsizes). */
  get pgsizeBitmap(): bigint {
    return this.pgsizeBitmapValue;
  }

  /** Mapping slots left (DMA_AVAIL). */
  get dmaAvail(): number {
    return this.dmaAvailCount;
  }

  /** The valid-IOVA list (empty before the first group). */
  get validIovas(): readonly IovaRange[] {
    return this.iovaList;
  }

  /** Number of user mappings. */
  get mappingCount(): number {
    return this.dmas.size;
  }

  /** The user mappings by IOVA, read-only. */
  get mappings(): Iterable<Readonly<VfioDma>> {
    return this.dmas;
  }

  /** The IOMMU domains in use, newest first. */
  get iommuDomains(): readonly Domain[] {
    return this.domains.map((d) => d.domain);
  }

  /** The groups attached, in domain order. */
  get groups(): readonly Group[] {
    return this.domains.flatMap((d) => d.groups);
  }

  /** vfio_domains_have_enforce_cache_coherency(): true with no domain. */
  domainsEnforceCoherency(): boolean {
    return this.domains.every((d) => d.coherent);
  }

  // ---- groups ---------------------------------------------------------------------

  /**
   * vfio_iommu_type1_attach_group(): EBUSY while some mapping's vaddr is
   * invalid; EINVAL for a group already attached; EIO for a group without
   * devices. A new domain is allocated through the first device's driver
   * and the group attached to it (driver errors returned); EINVAL when its
   * geometry is disjoint from the valid list or would drop an existing
   * mapping, when a reserved region (not direct-relaxable) overlaps a
   * mapping, or when nothing valid remains. Then, if an existing domain of
   * the same driver and coherency accepts the group, the new one is dropped;
   * otherwise every mapping is replayed into the new domain (pinning the
   * ones made while no domain existed). On failure nothing changes.
   */
  attachGroup(group: Group): void {
    faultPoint('vfio_iommu_type1_attach_group'); // kzalloc of the group and domain
    if (this.vaddrInvalidCount > 0)
      fail(
        'EBUSY',
        'mappings with an invalidated vaddr wait for a new one',
        'vfio_iommu_type1_attach_group',
      );
    if (this.findGroup(group))
      fail('EINVAL', 'the group is in the container already', 'vfio_iommu_type1_attach_group');
    const dev = group.devices[0];
    if (!dev) fail('EIO', 'the group has no device', 'vfio_iommu_type1_attach_group');
    const domain = dev.driver.domainAllocPaging(dev, {
      nestParent: false,
      dirtyTracking: false,
      pasid: false,
    });
    if (this.nesting)
      fail(
        'EINVAL',
        'a TYPE1_NESTING domain must enable nesting, and this one has no enable_nesting op',
        'vfio_iommu_type1_attach_group',
      );
    group.attach(domain);
    let keepGroupAttached = false;
    try {
      const geo = geometry(domain);
      if (this.aperConflict(geo))
        fail(
          'EINVAL',
          'the aperture conflicts with the IOVA list or a mapping',
          'vfio_iommu_aper_conflict',
        );
      const resv = groupReserved(group, domain);
      for (const r of resv) {
        if (r.kind !== 'direct-relaxable' && this.dmas.intersects(r.start, r.last)) {
          fail(
            'EINVAL',
            `reserved region [${hex(r.start)}, ${hex(r.last)}] overlaps a mapping`,
            'vfio_iommu_resv_conflict',
          );
        }
      }
      const list = resvExclude(aperResize(this.iovaList, geo.start, geo.last), resv);
      if (!list) fail('EINVAL', 'no valid IOVA left', 'vfio_iommu_resv_exclude');
      const isCoherent = coherent(domain);
      for (const d of this.domains) {
        if (d.domain.driver !== domain.driver || d.coherent !== isCoherent) continue;
        group.detach();
        try {
          group.attach(d.domain);
          d.groups.push(group);
          this.iovaList = list;
          this.nonPinnedGroups++;
          keepGroupAttached = true;
          return;
        } catch (e) {
          if (!(e instanceof Errno)) throw e;
          group.attach(domain);
        }
      }
      this.replay(domain);
      this.domains.unshift({ domain, groups: [group], coherent: isCoherent });
      this.updatePgsizeBitmap();
      this.iovaList = list;
      this.nonPinnedGroups++;
      keepGroupAttached = true;
    } finally {
      if (!keepGroupAttached) group.detach();
    }
  }

  /**
   * vfio_iommu_type1_detach_group(): detach the group (unknown groups are
   * ignored). When its domain loses its last group the domain goes; when
   * that was the last domain every mapping is unmapped and unpinned. The
   * valid list is widened back to the remaining domains' geometries and
   * recomputed from the remaining groups' reserved regions.
   */
  detachGroup(group: Group): void {
    const d = this.findGroup(group);
    if (!d) return;
    group.detach();
    d.groups.splice(d.groups.indexOf(group), 1);
    let list = this.iovaList;
    if (d.groups.length === 0) {
      if (this.domains.length === 1) this.unmapUnpinAll();
      this.domains.splice(this.domains.indexOf(d), 1);
      list = aperExpand(
        list,
        this.domains.map((x) => geometry(x.domain)),
      );
      this.updatePgsizeBitmap();
    }
    const resv = this.domains.flatMap((x) => x.groups.flatMap((g) => groupReserved(g, x.domain)));
    const refreshed = resvRefresh(list, resv);
    if (refreshed) this.iovaList = refreshed;
    this.nonPinnedGroups--;
    if (this.dirtyTracking) {
      for (const dma of this.dmas) dma.bitmapFull = true;
    }
  }

  /** vfio_iommu_type1_release(): unmap and unpin everything, detach every group. */
  release(): void {
    this.unmapUnpinAll();
    for (const d of this.domains) for (const g of d.groups) g.detach();
    this.domains = [];
    this.iovaList = [];
  }

  // ---- ioctl ----------------------------------------------------------------------

  /** vfio_iommu_type1_ioctl(): the container ioctls once this backend is set. */
  ioctl(caller: Type1Caller, request: number, arg: bigint): number {
    switch (vfioNrOf(this.abi, request)) {
      case NR.CHECK_EXTENSION:
        return type1CheckExtension(this, arg, this.nestingExtension);
      case NR.IOMMU_GET_INFO:
        return type1GetInfo(caller.mm, arg, this.infoState());
      case NR.IOMMU_MAP_DMA:
        return this.mapDma(caller, arg);
      case NR.IOMMU_UNMAP_DMA:
        return this.unmapDma(caller, arg);
      case NR.IOMMU_DIRTY_PAGES:
        return this.dirtyPages(caller, arg);
      default:
        fail('ENOTTY', 'no type1 ioctl', 'vfio_iommu_type1_ioctl');
    }
  }

  private infoState(): Type1InfoState {
    return {
      pgsizeBitmap: this.pgsizeBitmapValue,
      dmaAvail: this.dmaAvailCount,
      iovaList: this.iovaList,
      capsAligned: this.capsAligned,
    };
  }

  private get minPgsize(): bigint {
    return this.pgsizeBitmapValue & -this.pgsizeBitmapValue;
  }

  /**
   * VFIO_IOMMU_MAP_DMA (vfio_iommu_type1_map_dma + vfio_dma_do_map), in the
   * kernel's order: argsz < 32 or unknown flag EINVAL; no READ/WRITE without
   * VADDR, or READ/WRITE with VADDR EINVAL; size 0 or size/iova/vaddr not
   * multiples of the smallest page size EINVAL; wrap EINVAL. With
   * `wrapErrno` EOVERFLOW (7.2) size 0 (EINVAL) and the wrap (EOVERFLOW)
   * come first, before the flag checks;
   * VADDR: no overlapping mapping ENOENT, not invalidated or not the exact
   * range EINVAL, else the new vaddr is taken; otherwise overlap EEXIST, no
   * slot left ENOSPC, outside the valid list EINVAL, then pin (EFAULT,
   * ENOMEM) and map into every domain. Without any domain nothing is pinned.
   */
  private mapDma(caller: Type1Caller, arg: bigint): number {
    const mask = VFIO_DMA_MAP_FLAG.READ | VFIO_DMA_MAP_FLAG.WRITE | VFIO_DMA_MAP_FLAG.VADDR;
    const map = VfioUser.copyIn(caller.mm, arg, VfioIommuType1DmaMap, {
      minsz: VFIO_TYPE1_MINSZ.VFIO_IOMMU_MAP_DMA,
      flags: mask,
      fn: 'vfio_iommu_type1_map_dma',
    }).cmd;
    const { iova, vaddr, size } = map;
    const wraps = iova + size - 1n > U64_MAX || vaddr + size - 1n > U64_MAX;
    if (this.wrapErrno === 'EOVERFLOW') {
      // the addressable-limit series checks size 0 and the wrap first
      if (size === 0n) fail('EINVAL', 'size 0', 'vfio_dma_do_map');
      if (wraps) fail('EOVERFLOW', 'iova or vaddr + size wraps', 'vfio_dma_do_map');
    }
    const setVaddr = (map.flags & VFIO_DMA_MAP_FLAG.VADDR) !== 0;
    let prot = 0;
    if (map.flags & VFIO_DMA_MAP_FLAG.WRITE) prot |= IOMMU_WRITE;
    if (map.flags & VFIO_DMA_MAP_FLAG.READ) prot |= IOMMU_READ;
    if ((prot !== 0) === setVaddr)
      fail(
        'EINVAL',
        setVaddr ? 'VADDR with READ or WRITE' : 'neither READ nor WRITE',
        'vfio_dma_do_map',
      );
    const pgsize = this.minPgsize;
    if (size === 0n || ((size | iova | vaddr) & (pgsize - 1n)) !== 0n)
      fail(
        'EINVAL',
        `size, iova or vaddr zero or not aligned to the smallest page ${hex(pgsize)}`,
        'vfio_dma_do_map',
      );
    if (wraps) fail('EINVAL', 'iova or vaddr + size wraps', 'vfio_dma_do_map');
    const last = iova + size - 1n;
    const hit = this.dmas.firstIntersecting(iova, last);
    if (setVaddr) {
      if (!hit) fail('ENOENT', `no mapping at ${hex(iova)} to give a vaddr`, 'vfio_dma_do_map');
      if (!hit.vaddrInvalid || hit.start !== iova || hit.size !== size)
        fail(
          'EINVAL',
          'VADDR needs one whole mapping whose vaddr was invalidated',
          'vfio_dma_do_map',
        );
      // vfio_change_dma_owner: the pages move to the caller's mm and account
      const account = caller.pinAccount?.('mm');
      if (hit.mm !== caller.mm && hit.lockedPages !== 0n) {
        account?.charge(hit.lockedPages);
        hit.account?.uncharge(hit.lockedPages);
      }
      if (hit.mm !== caller.mm) {
        hit.account = account;
        if (!account) hit.lockedPages = 0n;
      }
      hit.mm = caller.mm;
      hit.vaddr = vaddr;
      hit.vaddrInvalid = false;
      this.vaddrInvalidCount--;
      return 0;
    }
    if (hit)
      fail(
        'EEXIST',
        `[${hex(iova)}, ${hex(last)}] overlaps the mapping at ${hex(hit.start)}`,
        'vfio_dma_do_map',
      );
    if (this.dmaAvailCount === 0) fail('ENOSPC', 'dma_entry_limit reached', 'vfio_dma_do_map');
    if (!iovaValid(this.iovaList, iova, last))
      fail(
        'EINVAL',
        `[${hex(iova)}, ${hex(last)}] is outside the valid IOVA ranges`,
        'vfio_iommu_iova_dma_valid',
      );
    faultPoint('vfio_dma_do_map'); // kzalloc of the vfio_dma
    const dma: VfioDma = {
      start: iova,
      last,
      size,
      vaddr,
      prot,
      mm: caller.mm,
      account: caller.pinAccount?.('mm'),
      iommuMapped: false,
      runs: [],
      lockedPages: 0n,
      vaddrInvalid: false,
      bitmap: this.dirtyTracking,
      bitmapFull: false,
    };
    if (this.domains.length > 0) {
      pinDma(dma, this.memory);
      const done: Domain[] = [];
      try {
        for (const d of this.domains) {
          mapDmaInto(dma, d.domain);
          done.push(d.domain);
        }
      } catch (e) {
        for (const d of done) d.unmap(dma.start, dma.size);
        unpinDma(dma, this.memory);
        throw e;
      }
      dma.iommuMapped = true;
    }
    if (dma.bitmap && size / pgsize > 0x7fff_ffffn) {
      // vfio_dma_bitmap_alloc refuses more than INT_MAX pages
      for (const d of this.domains) d.domain.unmap(dma.start, dma.size);
      unpinDma(dma, this.memory);
      fail('EINVAL', 'more than INT_MAX pages to track dirty', 'vfio_dma_bitmap_alloc');
    }
    this.dmas.insert(dma);
    this.dmaAvailCount--;
    return 0;
  }

  /**
   * VFIO_IOMMU_UNMAP_DMA (vfio_iommu_type1_unmap_dma + vfio_dma_do_unmap).
   * Checks: argsz < 24 or unknown flags EINVAL; GET_DIRTY_BITMAP with ALL or
   * VADDR EINVAL; with GET_DIRTY_BITMAP argsz < 48, inaccessible or wrongly
   * sized bitmap EINVAL; iova unaligned EINVAL; ALL needs iova = size = 0;
   * otherwise size 0 / unaligned EINVAL, wrap EINVAL (or EOVERFLOW);
   * GET_DIRTY_BITMAP without tracking or with another page size EINVAL.
   * v2 (not ALL): a mapping straddling iova or iova+size EINVAL. Walk: from
   * the first mapping ending after iova; v1 stops at a mapping that starts
   * before iova (success, 0 bytes); every mapping starting in the range is
   * removed whole (v1 may thus unmap past the end). VADDR marks instead of
   * removing and rolls back with EINVAL at an already invalid one. On
   * success the 24 bytes come back with size = bytes unmapped; on error
   * nothing is written.
   */
  private unmapDma(caller: Type1Caller, arg: bigint): number {
    const F = VFIO_DMA_UNMAP_FLAG;
    const mask = F.GET_DIRTY_BITMAP | F.VADDR | F.ALL;
    const u = VfioUser.copyIn(caller.mm, arg, VfioIommuType1DmaUnmap, {
      minsz: VFIO_TYPE1_MINSZ.VFIO_IOMMU_UNMAP_DMA,
      flags: mask,
      fn: 'vfio_iommu_type1_unmap_dma',
    });
    const unmap = u.cmd;
    const getBitmap = (unmap.flags & F.GET_DIRTY_BITMAP) !== 0;
    if (getBitmap && (unmap.flags & (F.ALL | F.VADDR)) !== 0)
      fail('EINVAL', 'GET_DIRTY_BITMAP with ALL or VADDR', 'vfio_iommu_type1_unmap_dma');
    let bitmap = { pgsize: 0n, size: 0n, data: 0n };
    if (getBitmap) {
      bitmap = u.payload(VfioBitmap, 'the bitmap');
      if (!accessOk(bitmap.data, bitmap.size))
        fail('EINVAL', 'the bitmap is not user memory', 'vfio_iommu_type1_unmap_dma');
      verifyBitmapSize(unmap.size >> ffs(bitmap.pgsize), bitmap.size);
    }
    const unmapAll = (unmap.flags & F.ALL) !== 0;
    const invalidate = (unmap.flags & F.VADDR) !== 0;
    const pgsize = this.minPgsize;
    const iova = unmap.iova;
    let size = unmap.size;
    if ((iova & (pgsize - 1n)) !== 0n)
      fail(
        'EINVAL',
        `iova ${hex(iova)} not aligned to the smallest page ${hex(pgsize)}`,
        'vfio_dma_do_unmap',
      );
    if (unmapAll) {
      if (iova !== 0n || size !== 0n)
        fail('EINVAL', 'UNMAP_ALL takes iova 0 and size 0', 'vfio_dma_do_unmap');
      size = U64_MAX;
    } else {
      if (size === 0n || (size & (pgsize - 1n)) !== 0n)
        fail(
          'EINVAL',
          `size ${hex(size)} zero or not aligned to the smallest page ${hex(pgsize)}`,
          'vfio_dma_do_unmap',
        );
      if (iova + size - 1n > U64_MAX)
        fail(this.wrapErrno, `iova ${hex(iova)} + size ${hex(size)} wraps`, 'vfio_dma_do_unmap');
    }
    if (getBitmap && (!this.dirtyTracking || bitmap.pgsize !== pgsize))
      fail(
        'EINVAL',
        'dirty tracking is off or the bitmap page size is not the smallest page',
        'vfio_dma_do_unmap',
      );
    // iova + size as the kernel computes it (u64; 0 when the range ends at U64_MAX)
    const end = BigInt.asUintN(64, iova + size);
    const last = iova + size - 1n > U64_MAX ? U64_MAX : iova + size - 1n;
    if (this.v2 && !unmapAll) {
      const first = this.dmas.find(iova);
      if (first && first.start !== iova)
        fail(
          'EINVAL',
          `iova ${hex(iova)} bisects the mapping at ${hex(first.start)}`,
          'vfio_dma_do_unmap',
        );
      const tail = this.dmas.find(last);
      if (tail && BigInt.asUintN(64, tail.last + 1n) !== end)
        fail(
          'EINVAL',
          `the range's end bisects the mapping at ${hex(tail.start)}`,
          'vfio_dma_do_unmap',
        );
    }
    const hits: VfioDma[] = [];
    for (const dma of this.dmas.from(iova)) {
      if (dma.start > last) break;
      if (!this.v2 && iova > dma.start) break;
      hits.push(dma);
    }
    let unmapped = 0n;
    if (invalidate) {
      const marked: VfioDma[] = [];
      for (const dma of hits) {
        if (dma.vaddrInvalid) {
          for (const m of marked) m.vaddrInvalid = false;
          this.vaddrInvalidCount -= marked.length;
          fail(
            'EINVAL',
            `the vaddr of the mapping at ${hex(dma.start)} is invalid already`,
            'vfio_dma_do_unmap',
          );
        }
        dma.vaddrInvalid = true;
        this.vaddrInvalidCount++;
        marked.push(dma);
        unmapped += dma.size;
      }
    } else {
      for (const dma of hits) {
        if (getBitmap)
          updateUserBitmap(caller.mm, bitmap.data, dma, iova, pgsize, this.isDirty(dma));
        unmapped += dma.size;
        this.removeDma(dma);
      }
    }
    u.respond({ ...unmap, size: unmapped });
    return 0;
  }

  /**
   * VFIO_IOMMU_DIRTY_PAGES: TYPE1 (v1) EACCES; argsz < 8, unknown flags or
   * not exactly one flag EINVAL; START / STOP idempotent; GET_BITMAP: payload
   * < 40 bytes, wrap, inaccessible or wrongly sized bitmap, pgsize other than
   * the smallest page size, unaligned iova / size, size 0, tracking off, or a
   * range bisecting a mapping EINVAL; with `wrapErrno` EOVERFLOW size 0
   * (EINVAL) and the wrap (EOVERFLOW) come first, as in 7.2.
   */
  private dirtyPages(caller: Type1Caller, arg: bigint): number {
    if (!this.v2)
      fail('EACCES', 'dirty tracking needs a TYPE1v2 container', 'vfio_iommu_type1_dirty_pages');
    const D = VFIO_IOMMU_DIRTY_PAGES_FLAG;
    const mask = D.START | D.STOP | D.GET_BITMAP;
    const u = VfioUser.copyIn(caller.mm, arg, VfioIommuType1DirtyBitmap, {
      flags: mask,
      fn: 'vfio_iommu_type1_dirty_pages',
    });
    const dirty = u.cmd;
    // exactly one flag (the kernel's __ffs == __fls, which also refuses 0 in practice)
    if (dirty.flags === 0 || (dirty.flags & (dirty.flags - 1)) !== 0)
      fail('EINVAL', 'not exactly one of START, STOP, GET_BITMAP', 'vfio_iommu_type1_dirty_pages');
    if (dirty.flags & D.START) {
      if (!this.dirtyTracking) {
        const pgsize = this.minPgsize;
        for (const dma of this.dmas) {
          if (dma.size / pgsize > 0x7fff_ffffn)
            fail(
              'EINVAL',
              `the mapping at ${hex(dma.start)} has more than INT_MAX pages`,
              'vfio_dma_bitmap_alloc',
            );
        }
        for (const dma of this.dmas) {
          dma.bitmap = true;
          dma.bitmapFull = false;
        }
        this.dirtyTracking = true;
      }
      return 0;
    }
    if (dirty.flags & D.STOP) {
      if (this.dirtyTracking) {
        this.dirtyTracking = false;
        for (const dma of this.dmas) {
          dma.bitmap = false;
          dma.bitmapFull = false;
        }
      }
      return 0;
    }
    const range = u.payload(VfioIommuType1DirtyBitmapGet, 'the range');
    if (this.wrapErrno === 'EOVERFLOW') {
      // the addressable-limit series: size 0, then a range past 2^64 - 1
      if (range.size === 0n) fail('EINVAL', 'size 0', 'vfio_iommu_type1_dirty_pages');
      if (range.iova + range.size - 1n > U64_MAX)
        fail('EOVERFLOW', 'iova + size - 1 wraps', 'vfio_iommu_type1_dirty_pages');
    } else if (range.iova + range.size > U64_MAX)
      fail('EINVAL', 'iova + size wraps', 'vfio_iommu_type1_dirty_pages');
    if (!accessOk(range.bitmap_data, range.bitmap_size))
      fail('EINVAL', 'the bitmap is not user memory', 'vfio_iommu_type1_dirty_pages');
    verifyBitmapSize(range.size >> ffs(range.bitmap_pgsize), range.bitmap_size);
    const pgsize = this.minPgsize;
    if (range.bitmap_pgsize !== pgsize)
      fail(
        'EINVAL',
        `bitmap page size ${hex(range.bitmap_pgsize)} is not the smallest page ${hex(pgsize)}`,
        'vfio_iommu_type1_dirty_pages',
      );
    if ((range.iova & (pgsize - 1n)) !== 0n)
      fail('EINVAL', 'iova not aligned to the smallest page', 'vfio_iommu_type1_dirty_pages');
    if (range.size === 0n || (range.size & (pgsize - 1n)) !== 0n)
      fail(
        'EINVAL',
        'size zero or not aligned to the smallest page',
        'vfio_iommu_type1_dirty_pages',
      );
    if (!this.dirtyTracking)
      fail('EINVAL', 'dirty tracking is not started', 'vfio_iommu_type1_dirty_pages');
    const last = range.iova + range.size - 1n;
    const first = this.dmas.find(range.iova);
    if (first && first.start !== range.iova)
      fail('EINVAL', 'iova bisects a mapping', 'vfio_iommu_type1_dirty_pages');
    const tail = this.dmas.find(last);
    if (tail && tail.last !== last)
      fail('EINVAL', 'the range end bisects a mapping', 'vfio_iommu_type1_dirty_pages');
    for (const dma of this.dmas.overlapping(range.iova, last)) {
      if (dma.start < range.iova) continue;
      updateUserBitmap(caller.mm, range.bitmap_data, dma, range.iova, pgsize, this.isDirty(dma));
      dma.bitmapFull = false;
    }
    return 0;
  }

  // ---- internals ------------------------------------------------------------------

  /** The bits update_user_bitmap reports: all set when an IOMMU group can DMA into it. */
  private isDirty(dma: VfioDma): boolean {
    return (this.nonPinnedGroups > 0 && dma.iommuMapped) || dma.bitmapFull;
  }

  private findGroup(group: Group): VfioDomain | undefined {
    return this.domains.find((d) => d.groups.includes(group));
  }

  /** vfio_iommu_aper_conflict(): disjoint from the list, or a mapping falls outside `geo`. */
  private aperConflict(geo: IovaRange): boolean {
    if (this.iovaList.length === 0) return false;
    const first = this.iovaList[0]!;
    const lastR = this.iovaList[this.iovaList.length - 1]!;
    if (geo.start > lastR.last || geo.last < first.start) return true;
    if (geo.start > first.start && this.dmas.intersects(first.start, geo.start - 1n)) return true;
    if (geo.last < lastR.last && this.dmas.intersects(geo.last + 1n, lastR.last)) return true;
    return false;
  }

  /** vfio_update_pgsize_bitmap(): AND of the domains' sizes, sub-page sizes folded into PAGE_SIZE. */
  private updatePgsizeBitmap(): void {
    let bitmap = U64_MAX;
    for (const d of this.domains) bitmap &= d.domain.pgsizeBitmap;
    const sub = this.pageSize - 1n;
    if ((bitmap & sub) !== 0n) bitmap = (bitmap & ~sub) | this.pageSize;
    this.pgsizeBitmapValue = bitmap;
  }

  /**
   * vfio_iommu_replay(): map every mapping into a new domain, pinning the
   * ones made while no domain existed (from their own mm). On failure the
   * new domain is emptied and only the pins taken here are dropped.
   */
  private replay(domain: Domain): void {
    const newlyPinned: VfioDma[] = [];
    const mapped: VfioDma[] = [];
    try {
      for (const dma of this.dmas) {
        if (!dma.iommuMapped) {
          pinDma(dma, this.memory);
          newlyPinned.push(dma);
        }
        mapDmaInto(dma, domain);
        mapped.push(dma);
      }
    } catch (e) {
      for (const dma of mapped) domain.unmap(dma.start, dma.size);
      for (const dma of newlyPinned) unpinDma(dma, this.memory);
      throw e;
    }
    for (const dma of this.dmas) dma.iommuMapped = true;
  }

  /** vfio_remove_dma(): unmap from every domain, unpin, free the slot. */
  private removeDma(dma: VfioDma): void {
    if (dma.iommuMapped) for (const d of this.domains) d.domain.unmap(dma.start, dma.size);
    unpinDma(dma, this.memory);
    this.dmas.delete(dma);
    if (dma.vaddrInvalid) this.vaddrInvalidCount--;
    this.dmaAvailCount++;
  }

  /** vfio_iommu_unmap_unpin_all(). */
  private unmapUnpinAll(): void {
    for (const dma of [...this.dmas]) this.removeDma(dma);
  }
}
