/**
 * `/dev/vfio/vfio`: the VFIO container. Which code serves it is the
 * kernel personality's `vfioContainer` setting, as Linux's Kconfig decides:
 *
 * - `'legacy'` (default: CONFIG_VFIO_CONTAINER, as distributions build it;
 *   `'type1'` is accepted as its old name): the legacy drivers/vfio/container.c,
 *   a {@link LegacyContainer} dispatching to the registered IOMMU backends
 *   (`kernel.vfioIommuDrivers`: vfio_iommu_type1 on x86, vfio_iommu_spapr_tce
 *   alone on POWER hosts). With no backend for a type it answers as Linux
 *   does: CHECK_EXTENSION 0, SET_IOMMU ENODEV (EINVAL with no group); before
 *   SET_IOMMU every other ioctl is EINVAL and group GET_DEVICE_FD EINVAL.
 * - `'iommufd'` (CONFIG_IOMMUFD_VFIO_CONTAINER): the node is an iommufd
 *   opened "as vfio" (per-mm page accounting). Container ioctls are
 *   iommufd's VFIO compat on the context's compat IOAS (vfio-compat.ts);
 *   native iommufd ioctls work on the same fd. SET_IOMMU with no group set
 *   is ENODEV (no compat IOAS yet), unknown types EINVAL.
 *
 * Facts: vfio-container.md §2 and §8, vfio-device.md §3.
 *
 * @example
 * const fd = proc.open('/dev/vfio/vfio');
 * proc.ioctl(fd, vfioIoctlNumber(abi, 'VFIO_CHECK_EXTENSION'), 3n); // 1 on x86, 0 on POWER
 */
import { fail } from '../abi/errno.ts';
import { VFIO_API_VERSION, vfioIoctl, vfioNrOf } from '../abi/vfio.ts';
import type { Group } from '../iommu/group.ts';
import type { IommufdHost, Personality } from '../iommufd/context.ts';
import { openIommufd } from '../iommufd/fops.ts';
import type { ExtraCmd } from '../iommufd/main.ts';
import type { Caller, FileOps } from '../kernel/file.ts';

/** Which implementation serves /dev/vfio/vfio ('type1' is the old name of 'legacy'). */
export type VfioContainerBackend = 'legacy' | 'iommufd' | 'type1';

/** The container's kernel-configuration setting. */
export interface VfioContainerPersonality {
  /** 'legacy' = CONFIG_VFIO_CONTAINER with its backends (default; alias 'type1'); 'iommufd' = CONFIG_IOMMUFD_VFIO_CONTAINER. */
  readonly vfioContainer: VfioContainerBackend;
  /**
   * The legacy type1 container's errno for a MAP/UNMAP range whose end
   * wraps u64: 'EINVAL' before, 'EOVERFLOW' since the "addressable limit"
   * series (v6.19).
   */
  readonly type1WrapErrno: 'EINVAL' | 'EOVERFLOW';
  /**
   * The legacy type1 container answers CHECK_EXTENSION(TYPE1_NESTING_IOMMU)
   * with 1 and SET_IOMMU(6) opens a v2 container: true until commit
   * 35890f85573c (v6.13) made 6 a reserved number (then ENODEV).
   */
  readonly type1Nesting: boolean;
  /**
   * vfio_iommu_type1's module parameter `dma_entry_limit` (default
   * U16_MAX): the mappings one type1 container may hold; MAP_DMA beyond it
   * is ENOSPC.
   */
  readonly type1DmaEntryLimit: number;
}

/** True when `/dev/vfio/vfio` is the legacy container (either name of the setting). */
export function isLegacyContainer(p: VfioContainerPersonality): boolean {
  return p.vfioContainer !== 'iommufd';
}

/**
 * One IOMMU backend of the legacy container (the kernel's
 * vfio_iommu_driver_ops); the type1 backend registers one of these in
 * `kernel.vfioIommuDrivers`.
 */
export interface VfioIommuDriver {
  readonly name: string;
  /** The no-IOMMU backend: the only one a container of no-IOMMU groups may use, and only such a container. */
  readonly noiommu?: boolean;
  /** VFIO_CHECK_EXTENSION: ≥ 0, positive when supported. */
  checkExtension(ext: bigint): number;
  /** A backend instance of IOMMU type `type` for `caller` (errno on refusal). */
  open(type: bigint, caller: Caller): VfioIommuBackend;
}

/** An opened backend: the container's `iommu_data`. */
export interface VfioIommuBackend {
  /** Attach an IOMMU group (its error fails SET_IOMMU / SET_CONTAINER). */
  attachGroup(group: Group): void;
  detachGroup(group: Group): void;
  /** Every container ioctl other than GET_API_VERSION and SET_IOMMU (CHECK_EXTENSION included: ≥ 0). */
  ioctl(caller: Caller, request: number, arg: bigint): number;
  /** The last group left: every mapping goes. */
  release(): void;
  /** The container fd was closed while groups keep the container alive. */
  containerClosed?(): void;
}

/** What the container node needs from the emulated host kernel (the `Kernel` provides it). */
export interface VfioHost extends IommufdHost {
  readonly personality: Personality & VfioContainerPersonality;
  /** The registered legacy IOMMU backends (vfio_iommu_drivers_list), asked in order. */
  readonly vfioIommuDrivers: readonly VfioIommuDriver[];
}

/** The legacy container's state (struct vfio_container). */
export class LegacyContainer {
  /** The attached IOMMU groups, in attach order. */
  readonly groups: Group[] = [];
  driver: VfioIommuDriver | undefined;
  backend: VfioIommuBackend | undefined;
  /** The groups are no-IOMMU groups (container->noiommu). */
  noiommu = false;

  constructor(private readonly drivers: readonly VfioIommuDriver[]) {}

  /** vfio_iommu_driver_allowed(): no-IOMMU groups take the no-IOMMU driver, other groups the rest. */
  private allowed(d: VfioIommuDriver): boolean {
    return (d.noiommu === true) === this.noiommu;
  }

  /** The drivers CHECK_EXTENSION asks: the chosen one once set, else those allowed for the groups (all without groups). */
  private candidates(): readonly VfioIommuDriver[] {
    if (this.driver) return [this.driver];
    return this.groups.length > 0 ? this.drivers.filter((d) => this.allowed(d)) : this.drivers;
  }

  /**
   * VFIO_CHECK_EXTENSION: once SET_IOMMU chose a backend, the backend
   * answers (the kernel hands the driver its iommu_data, so answers may
   * depend on the instance, e.g. type1's UPDATE_VADDR); before, the first
   * positive answer of the registered drivers, else 0. Never an error.
   */
  checkExtension(caller: Caller, request: number, ext: bigint): number {
    if (this.backend) return Math.max(0, this.backend.ioctl(caller, request, ext));
    for (const d of this.candidates()) {
      const r = d.checkExtension(ext);
      if (r > 0) return r;
    }
    return 0;
  }

  /**
   * VFIO_SET_IOMMU: EINVAL without a group or once set; each driver allowed
   * for the groups that claims `type` is opened and given every group; the
   * first that accepts wins, else the last error, ENODEV if none claims the
   * type.
   */
  setIommu(type: bigint, caller: Caller): number {
    if (this.groups.length === 0 || this.driver)
      fail(
        'EINVAL',
        this.driver ? 'the IOMMU type is set already' : 'no group is in the container',
        'vfio_ioctl_set_iommu',
      );
    let error: unknown;
    for (const d of this.drivers) {
      if (!this.allowed(d) || d.checkExtension(type) <= 0) continue;
      let backend: VfioIommuBackend;
      try {
        backend = d.open(type, caller);
      } catch (e) {
        error = e;
        continue;
      }
      const done: Group[] = [];
      try {
        for (const g of this.groups) {
          backend.attachGroup(g);
          done.push(g);
        }
      } catch (e) {
        for (const g of done) backend.detachGroup(g);
        backend.release();
        error = e;
        continue;
      }
      this.driver = d;
      this.backend = backend;
      return 0;
    }
    if (error !== undefined) throw error;
    fail('ENODEV', `no IOMMU driver takes type ${type} for these groups`, 'vfio_ioctl_set_iommu');
  }

  /**
   * GROUP_SET_CONTAINER: no-IOMMU and other groups never share a container
   * (EPERM); a set backend must accept the group.
   */
  attachGroup(group: Group, noiommu = false): void {
    if (this.groups.length > 0 && this.noiommu !== noiommu) {
      fail(
        'EPERM',
        'no-IOMMU and IOMMU groups cannot share a container',
        'vfio_container_attach_group',
      );
    }
    this.backend?.attachGroup(group);
    this.groups.push(group);
    this.noiommu = noiommu;
  }

  /** The group leaves; the last one releases the backend (all mappings). */
  detachGroup(group: Group): void {
    this.backend?.detachGroup(group);
    this.groups.splice(this.groups.indexOf(group), 1);
    if (this.groups.length === 0 && this.backend) {
      this.backend.release();
      this.backend = undefined;
      this.driver = undefined;
    }
  }

  /** vfio_fops_unl_ioctl(): the three container ioctls, else the backend, else EINVAL. */
  ioctl(caller: Caller, request: number, arg: bigint): number {
    switch (vfioNrOf(caller.abi, request)) {
      case vfioIoctl('VFIO_GET_API_VERSION').nr:
        return VFIO_API_VERSION;
      case vfioIoctl('VFIO_CHECK_EXTENSION').nr:
        return this.checkExtension(caller, request, arg);
      case vfioIoctl('VFIO_SET_IOMMU').nr:
        return this.setIommu(arg, caller);
      default:
        if (!this.backend)
          fail(
            'EINVAL',
            'no IOMMU set on the container (VFIO_SET_IOMMU first)',
            'vfio_fops_unl_ioctl',
          );
        return this.backend.ioctl(caller, request, arg);
    }
  }
}

/** An open legacy container file; groups find the container through `container`. */
export type LegacyContainerFile = FileOps & { readonly container: LegacyContainer };

/** The legacy container of an open file, if it is one. */
export function legacyContainerOf(ops: FileOps): LegacyContainer | undefined {
  const c = (ops as Partial<LegacyContainerFile>).container;
  return c instanceof LegacyContainer ? c : undefined;
}

/**
 * open("/dev/vfio/vfio"): an iommufd opened as vfio, or a legacy container
 * (see the module comment), per `host.personality.vfioContainer`.
 */
export function openVfioContainer(host: VfioHost, extra: ExtraCmd | undefined): FileOps {
  switch (host.personality.vfioContainer) {
    case 'iommufd':
      return openIommufd(host, extra, { openedAsVfio: true });
    case 'legacy':
    case 'type1':
      return openLegacyContainer(host.vfioIommuDrivers);
  }
}

/**
 * The legacy container file. Closing it while groups are attached keeps the
 * container (and its mappings) alive: each group holds it; the backend is
 * told the fd is gone.
 */
function openLegacyContainer(drivers: readonly VfioIommuDriver[]): LegacyContainerFile {
  return new LegacyContainerOps(new LegacyContainer(drivers));
}

/**
 * The file operations of one open: a class, not an object literal with a
 * getter (V8 keeps such a literal in dictionary mode: a slow `ops.ioctl`
 * lookup on every ioctl).
 */
class LegacyContainerOps implements LegacyContainerFile {
  constructor(readonly container: LegacyContainer) {}

  /** 'vfio-container-spapr' once SET_IOMMU chose the SPAPR backend: traces decode its ioctls by it. */
  get kind(): string {
    return this.container.driver?.name === 'vfio-iommu-spapr-tce'
      ? 'vfio-container-spapr'
      : 'vfio-container';
  }

  ioctl(caller: Caller, request: number, arg: bigint): number {
    return this.container.ioctl(caller, request, arg);
  }

  release(): void {
    this.container.backend?.containerClosed?.();
  }
}
