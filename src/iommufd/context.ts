import { fail } from '../abi/errno.ts';
import type { IoctlAbi } from '../abi/ioctl.ts';
import type { IommufdCmdName } from '../abi/iommufd.ts';
import type { SelftestAbi } from '../abi/iommufd-test.ts';
import { faultPoint } from '../iommu/fault-inject.ts';
import type { PhysMemory } from '../iommu/phys-memory.ts';
import type { Caller, FileOps, FileRef } from '../kernel/file.ts';
import type { AccountMode } from '../kernel/pin-account.ts';
import type { IoptPersonality } from './io-pagetable.ts';
import { IommufdMmaps } from './mmap.ts';
import type { IommufdObject, ObjType } from './object.ts';

/** Compat behaviour that depends on kernel version or configuration. */
export interface VfioCompatPersonality {
  /** CONFIG_VFIO_NOIOMMU: CHECK_EXTENSION(NOIOMMU) is 1 and no-IOMMU mode may SET_IOMMU(NOIOMMU). Kconfig default off. */
  readonly vfioNoiommu: boolean;
  /**
   * UNMAP_DMA of a range holding no mapping: 'success' with size 0 since
   * upstream afb47765 ("iommufd: Make vfio_compat's unmap succeed if the
   * range is already empty", Linux 6.18, also 6.6.y/6.12.y/6.17.y stable), 'ENOENT' before.
   */
  readonly compatUnmapEmpty: 'ENOENT' | 'success';
  /** GET_INFO pads each capability to 8 bytes (the 2023 capability-alignment fix; in v6.13, not in v6.2). */
  readonly compatCapsAligned: boolean;
}

/** The container ioctls of an extension's backend (nr ≥ VFIO_BASE + 12). */
export interface VfioCompatBackend {
  ioctl(caller: Caller, request: number, arg: bigint): number;
}

/** Container types served beside iommufd's type1 emulation (a uiommu extension). */
export interface VfioCompatExtension {
  /** VFIO_CHECK_EXTENSION: ≥ 0, positive for what the extension offers. */
  checkExtension(ext: bigint): number;
  /** VFIO_SET_IOMMU of a type checkExtension claims: set `ctx.vfioCompatBackend`, or throw. */
  setIommu(ctx: IommufdCtx, caller: Caller, type: bigint): void;
}

/** Version-dependent behaviour of the emulated kernel (a named setting each). */
export interface Personality extends IoptPersonality, VfioCompatPersonality {
  /** Accept IOMMU_TEST_CMD and the mock driver (CONFIG_IOMMUFD_TEST). */
  readonly selftest: boolean;
  /** Which generation of the selftest uAPI IOMMU_TEST_CMD speaks (see SelftestAbi). */
  readonly selftestAbi: SelftestAbi;
  /**
   * The newest iommufd ioctl the kernel has: commands are added in nr
   * order, so every later one answers ENOTTY (6.12: IOMMU_FAULT_QUEUE_ALLOC).
   */
  readonly iommufdLastCmd: IommufdCmdName;
  /**
   * GET_HW_INFO reports IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED for a device
   * whose IOMMU cannot use PCI ATS with it (every simulated device here).
   */
  readonly hwCapAtsNotSupported: boolean;
  /**
   * Requests of a user-chosen size are bounded (7.2): HWPT_INVALIDATE's
   * entry_len above PAGE_SIZE or entry_num above 2^19 is EINVAL before the
   * HWPT lookup; VEVENTQ_ALLOC's depth above 2^19 is EINVAL; a vEVENTQ
   * read shorter than a vEVENT header, or than its first vEVENT, is EINVAL
   * (the kernel selftest's vdevice_alloc covers it).
   */
  readonly requestBounds: boolean;
  /** GET_HW_INFO takes IOMMU_HW_INFO_FLAG_INPUT_TYPE (v6.17); before, any flag is EOPNOTSUPP. */
  readonly hwInfoInputType: boolean;
  /** HWPT_ALLOC takes IOMMU_HWPT_ALLOC_PASID, paging and nested (v6.15); before, EOPNOTSUPP. */
  readonly hwptAllocPasid: boolean;
  /** HWPT_ALLOC takes FAULT_ID_VALID for a paging HWPT (after 6.12); 6.12 only for a nested one. */
  readonly hwptPagingFault: boolean;
  /**
   * IOAS_MAP and VFIO compat MAP_DMA check that user_va + length wraps
   * (EOVERFLOW) before the length limit (EINVAL), as since v6.13; 6.12
   * checks the length first.
   */
  readonly pagesWrapFirst: boolean;
  /**
   * The selftest's mock devices carry a fwspec naming the mock IOMMU
   * (iommu_mock_device_add), so they probe beside VT-d or a POWER PHB;
   * 6.12 probes them with the first registered driver's ops, so on such a
   * host MOCK_DOMAIN(_FLAGS) binds a device without an IOMMU: EINVAL.
   */
  readonly mockFwspec: boolean;
}

/** What iommufd needs from the emulated host kernel. */
export interface IommufdHost {
  readonly memory: PhysMemory;
  readonly personality: Personality;
  readonly abi: IoctlAbi;
  /** A new anonymous memory file of `size` bytes (shmem), e.g. behind the selftest's dma-buf. */
  memfd(size: bigint): FileOps & { readonly ref: FileRef };
  /** Container types VFIO compat serves beside type1 (uiommu extension: SPAPR TCE); none by default. */
  readonly vfioCompatExtension?: VfioCompatExtension;
}

/** Largest object ID (the xarray's 31-bit limit). */
const ID_MAX = 0x7fffffff;

/**
 * One open of /dev/iommu (the kernel's iommufd_ctx): the object table with
 * one ID space for every object type, the RLIMIT mode and the VFIO-compat
 * IOAS. Objects get the lowest free ID from 1; a failed create frees its ID.
 */
export class IommufdCtx {
  private readonly objects = new Map<number, IommufdObject>();
  accountMode: AccountMode;
  /** The IOAS that VFIO container compatibility uses (IOMMU_VFIO_IOAS). */
  vfioIoas: IommufdObject | undefined;
  /** A no-IOMMU VFIO group was attached through compat (iommufd_vfio_compat_set_no_iommu). */
  noIommuMode = false;
  /** The container backend an extension's SET_IOMMU installed (uiommu extension); it then serves every container ioctl. */
  vfioCompatBackend: VfioCompatBackend | undefined;
  /** Open file references: the /dev/iommu fd(s) plus anonymous files holding the context. */
  private refs = 1;
  /** Regions its objects offer to mmap through the fd (mt_mmap). */
  readonly mmaps: IommufdMmaps;

  constructor(
    readonly host: IommufdHost,
    opts: { openedAsVfio: boolean } = { openedAsVfio: false },
  ) {
    this.accountMode = opts.openedAsVfio ? 'mm' : 'user';
    this.mmaps = new IommufdMmaps(host.memory.pageSize);
  }

  get objectCount(): number {
    return this.objects.size;
  }

  /** Reserve the lowest free ID for `obj` (not yet visible to lookups). */
  allocId(obj: IommufdObject): void {
    faultPoint('iommufd_object_alloc');
    for (let id = 1; id <= ID_MAX; id++) {
      if (!this.objects.has(id)) {
        obj.id = id;
        this.objects.set(id, obj);
        return;
      }
    }
    fail('EBUSY', 'every object ID is in use', 'iommufd_object_alloc');
  }

  /** Publish an object whose create succeeded. */
  finalize(obj: IommufdObject): void {
    obj.live = true;
  }

  /** Undo allocId() for a create that failed: the ID is free again. */
  abort(obj: IommufdObject): void {
    if (this.objects.get(obj.id) === obj) this.objects.delete(obj.id);
    obj.id = 0;
  }

  /** Allocate an ID, run `build`, publish on success and free the ID on failure. */
  create<T extends IommufdObject>(obj: T, build: (obj: T) => void): T {
    this.allocId(obj);
    try {
      build(obj);
    } catch (e) {
      this.abort(obj);
      throw e;
    }
    this.finalize(obj);
    return obj;
  }

  /** A live object by ID, of any type. */
  lookup(id: number): IommufdObject | undefined {
    const obj = this.objects.get(id);
    return obj?.live ? obj : undefined;
  }

  /** A live object of one type; ENOENT otherwise. */
  get<T extends IommufdObject>(id: number, type: ObjType): T {
    const obj = this.lookup(id);
    if (!obj || obj.type !== type) fail('ENOENT', `no ${type} with ID ${id}`, 'iommufd_get_object');
    return obj as T;
  }

  /** Live objects, in ID order. */
  list(): IommufdObject[] {
    return [...this.objects.values()].filter((o) => o.live).sort((a, b) => a.id - b.id);
  }

  /** Remove an unreferenced object from the table and release it. */
  remove(obj: IommufdObject): void {
    this.objects.delete(obj.id);
    obj.live = false;
    if (this.vfioIoas === obj) this.vfioIoas = undefined;
    obj.destroy();
  }

  /** IOMMU_DESTROY: ENOENT if absent, EBUSY while anything holds it. */
  destroy(id: number): void {
    const obj = this.lookup(id);
    if (!obj) fail('ENOENT', `no object with ID ${id}`, 'iommufd_object_remove');
    if (obj.users > 0)
      fail('EBUSY', `object ${id} is in use (${obj.users} users)`, 'iommufd_object_remove');
    this.remove(obj);
  }

  /** A file (fd or anonymous file) starts holding the context. */
  hold(): void {
    this.refs++;
  }

  /**
   * A holder went away; the last one destroys every object, dependents
   * first: each pass removes the objects nobody holds, until none is left.
   */
  release(): void {
    if (--this.refs > 0) return;
    while (this.objects.size > 0) {
      const free = [...this.objects.values()].filter((o) => o.users === 0);
      if (free.length === 0) throw new Error('iommufd objects hold each other at close');
      for (const obj of free) if (this.objects.has(obj.id)) this.remove(obj);
    }
  }
}
