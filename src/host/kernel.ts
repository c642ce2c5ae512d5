import { fail } from '../abi/errno.ts';
import type { IoctlAbi } from '../abi/ioctl.ts';
import { IntelIommu } from '../drivers/intel/driver.ts';
import { MockIommu } from '../drivers/mock/driver.ts';
import { SpaprIommu } from '../drivers/spapr/driver.ts';
import type { Device } from '../iommu/device.ts';
import type { Group } from '../iommu/group.ts';
import { NO_IOMMU } from '../iommu/no-iommu.ts';
import type { Personality, VfioCompatExtension } from '../iommufd/context.ts';
import { openIommufd } from '../iommufd/fops.ts';
import type { ExtraCmd } from '../iommufd/main.ts';
import { selftestCmd } from '../iommufd/selftest.ts';
import type { FileRef } from '../kernel/file.ts';
import { openVfioCdev, VFIO_CDEV_DIR, type VfioCdevPersonality } from '../vfio/cdev.ts';
import type { VfioContainerPersonality, VfioIommuDriver } from '../vfio/container.ts';
import { openVfioContainer } from '../vfio/container.ts';
import { VfioGroup } from '../vfio/group.ts';
import type { PciFunction } from '../vfio/hot-reset.ts';
import { noiommuIommuDriver } from '../vfio/noiommu.ts';
import { linkSriov, type VfioPciPersonality } from '../vfio/pci/sriov.ts';
import { spaprTceIommuDriver } from '../vfio/spapr/driver.ts';
import { spaprCompatExtension } from '../vfio/spapr/iommufd-compat.ts';
import type { SpaprTcePersonality } from '../vfio/spapr/personality.ts';
import { type1IommuDriver } from '../vfio/type1/driver.ts';
import type { UserAccount } from './accounting.ts';
import { failNthFile, failNthPath } from './fail-nth-file.ts';
import { type FileOps, O_ACCMODE, O_RDONLY, O_RDWR, OpenFile } from './file.ts';
import type { IoMaps } from './io-maps.ts';
import { MemObject } from './mem-object.ts';
import { type ForeignBacking, PhysRam } from './phys-ram.ts';
import { type Credentials, type FdTable, Process, type ProcessMm } from './process.ts';
import { SimMm } from './sim-mm.ts';
import { openSysfsAttr } from './sysfs-attrs.ts';
import { type HostInstance, type HostSpec, instantiate, loadHostSpec } from './topology/index.ts';
import { DEFAULT_KERNEL_VERSION, KERNEL_PROFILES, type KernelVersion } from './versions.ts';

export { LINUX_6_18 } from './versions.ts';

/** Every version-dependent setting of the emulated kernel: iommufd's and VFIO's. */
export type KernelPersonality = Personality &
  VfioContainerPersonality &
  SpaprTcePersonality &
  VfioPciPersonality &
  VfioCdevPersonality;

export interface KernelOptions {
  /** Ioctl number encoding of the emulated architecture (default generic). */
  abi?: IoctlAbi;
  /** The Linux version whose profile sets every version-dependent behaviour (default 6.18). */
  version?: KernelVersion;
  /** Overrides of single settings of that profile (docs/personality.md). */
  personality?: Partial<KernelPersonality>;
  /** The host's IOMMUs, groups and devices: a preset name, a JSON config path or a spec (default 'x86'). */
  host?: HostSpec | string;
  /** IOMMU_TEST_CMD handler with its mock IOMMU; a fresh one by default when the personality has `selftest`. */
  selftestCmd?: ExtraCmd;
}

/** Root-like credentials: every capability, unlimited locked memory. */
export const ROOT: Credentials = {
  uid: 0,
  capSysResource: true,
  capIpcLock: true,
  rlimitMemlock: 8n << 20n,
  capSysRawio: true,
};

/**
 * One emulated host: physical memory, the processes using it, the
 * per-user locked-memory accounts and the device nodes it serves.
 */
export class Kernel {
  readonly memory = new PhysRam();
  readonly personality: KernelPersonality;
  /** The profile the personality starts from. */
  readonly version: KernelVersion;
  readonly abi: IoctlAbi;
  /** The live topology: IOMMU drivers, groups and devices. */
  readonly host: HostInstance;
  /**
   * The VFIO groups by group id: /dev/vfio/<id> for every IOMMU group, and
   * with `personality.vfioNoiommu` /dev/vfio/noiommu-<id> for the fake group
   * of each device without IOMMU (without it such devices are not VFIO's).
   */
  readonly vfioGroups = new Map<number, VfioGroup>();
  /**
   * The legacy container's registered IOMMU backends (vfio_iommu_drivers_list),
   * asked in order by CHECK_EXTENSION and SET_IOMMU when the personality's
   * `vfioContainer` is 'legacy': vfio_iommu_type1 on other hosts, on hosts
   * with a POWER PHB vfio_iommu_spapr_tce alone (VFIO_IOMMU_TYPE1 is only
   * built for x86, s390 and arm); the no-IOMMU backend when enabled. A test
   * may empty the list (the module not loaded) or add its own.
   */
  readonly vfioIommuDrivers: VfioIommuDriver[] = [];
  /**
   * uiommu extension: the SPAPR TCE container types on iommufd's VFIO
   * compat (docs/extensions.md), present when the host has a POWER PHB.
   */
  readonly vfioCompatExtension: VfioCompatExtension | undefined;
  /** Called after the topology changed at run time (SR-IOV VFs came or went): the fake /sys follows. */
  onTopologyChange: (() => void) | undefined;
  /** Non-errno exceptions that reached the syscall boundary: each one is a model bug. */
  readonly bugs: unknown[] = [];
  private readonly users = new Map<number, UserAccount>();
  private readonly processes = new Map<number, Process<ProcessMm>>();
  private nextPid = 1000;
  private readonly selftestCmd: ExtraCmd | undefined;

  constructor(opts: KernelOptions = {}) {
    this.abi = opts.abi ?? 'generic';
    this.version = opts.version ?? DEFAULT_KERNEL_VERSION;
    this.personality = { ...KERNEL_PROFILES[this.version], ...opts.personality };
    const spec = typeof opts.host === 'object' ? opts.host : loadHostSpec(opts.host ?? 'x86');
    this.host = instantiate(spec, this.memory);
    const otherIommu = [...this.host.iommus.values()].some((d) => !(d instanceof MockIommu));
    this.selftestCmd = this.personality.selftest
      ? (opts.selftestCmd ?? selftestCmd(this.personality.selftestAbi, otherIommu))
      : undefined;
    // a POWER kernel builds vfio_iommu_spapr_tce and no type1 backend (CHECK_EXTENSION
    // of TYPE1* is 0 there, SET_IOMMU(TYPE1*) EINVAL); elsewhere SPAPR's types are 0
    const power = [...this.host.iommus.values()].some((d) => d instanceof SpaprIommu);
    if (!power) this.vfioIommuDrivers.push(type1IommuDriver(this));
    if (this.personality.vfioNoiommu) this.vfioIommuDrivers.push(noiommuIommuDriver);
    if (power) this.vfioIommuDrivers.push(spaprTceIommuDriver(this));
    this.vfioCompatExtension = power ? spaprCompatExtension(this) : undefined;
    for (const group of this.host.groups.values()) this.addVfioGroup(group);
    linkSriov([...this.vfioGroups.values()].flatMap((g) => g.devices.map((d) => d.pci)));
  }

  /**
   * vfio-pci takes the devices of an IOMMU group (at boot, and for VFs
   * created at run time): a VFIO group for it, unless its devices have no
   * IOMMU and no-IOMMU mode is off. Returns the new group, if any.
   */
  addVfioGroup(group: Group): VfioGroup | undefined {
    const noiommu = group.devices.some((d) => d.driver === NO_IOMMU);
    if (noiommu && !this.personality.vfioNoiommu) return undefined;
    // x86's MSI domain allocates MSI-X vectors on demand (has_dyn_msix)
    const dynamicMsix = group.devices.some((d) => d.driver instanceof IntelIommu);
    const specOf = (dev: Device) => this.host.devices.get(dev.name)!.spec;
    const vfioGroup = new VfioGroup(group, specOf, {
      noiommu,
      dynamicMsix,
      busRange: (size: bigint, backing: ForeignBacking) => this.memory.alloc(size, { backing }),
      dmabuf: this.personality.vfioPciDmabuf,
      pciFunctions: () => this.pciFunctions(),
      bindStructCopy: this.personality.vfioBindStructCopy,
    });
    this.vfioGroups.set(group.id, vfioGroup);
    return vfioGroup;
  }

  /**
   * The host's PCI functions as a hot reset walks them: each one's IOMMU
   * group (none for a function without IOMMU unless no-IOMMU mode gives it
   * a fake group) and its VFIO device.
   */
  private pciFunctions(): PciFunction[] {
    return [...this.host.devices.values()].map(({ device, spec }) => {
      const vfioGroup = this.vfioGroups.get(device.group.id);
      const noGroup = device.driver === NO_IOMMU && !vfioGroup;
      return {
        spec,
        groupId: noGroup ? undefined : device.group.id,
        vdev: vfioGroup?.devices.find((d) => d.dev === device),
      };
    });
  }

  /** A new process with an empty simulated address space and fds 0-2 open (a terminal). */
  spawn(creds: Partial<Credentials> = {}): Process<SimMm> {
    while (this.processes.has(this.nextPid)) this.nextPid++;
    const tty = () => new OpenFile({ kind: 'tty', release() {} });
    const fds = new Map([0, 1, 2].map((fd) => [fd, tty()]));
    return this.adopt(this.nextPid++, new SimMm(this.memory), { ...ROOT, ...creds }, fds);
  }

  /**
   * Register a process `pid` served with the memory backend `mm` (a real
   * process behind the preload library, or a fork child), with the fd table
   * `fds` (empty by default; its references are taken over). `creds` is
   * kept as given, so an object with getters gives live credentials.
   * `ioMaps` are the device mappings it inherits (a fork child's).
   * Throws if `pid` is already registered.
   */
  adopt<M extends ProcessMm>(
    pid: number,
    mm: M,
    creds: Credentials,
    fds: FdTable = new Map(),
    ioMaps?: IoMaps,
  ): Process<M> {
    if (this.processes.has(pid)) throw new Error(`pid ${pid} is already a process of this kernel`);
    const proc = new Process(this, pid, mm, creds, fds, ioMaps);
    this.processes.set(pid, proc);
    return proc;
  }

  /** Every live process, by ascending pid. */
  livingProcesses(): Process<ProcessMm>[] {
    return [...this.processes.values()].sort((a, b) => a.pid - b.pid);
  }

  /** The live process `pid`, if any. */
  process(pid: number): Process<ProcessMm> | undefined {
    return this.processes.get(pid);
  }

  /** The locked-memory account of a user. */
  userAccount(uid: number): UserAccount {
    let acct = this.users.get(uid);
    if (!acct) {
      acct = { lockedVm: 0n };
      this.users.set(uid, acct);
    }
    return acct;
  }

  /**
   * Resolve a device path to a new open file; ENOENT for anything not
   * served. /dev/iommu, /dev/vfio/vfio (the container, see
   * `personality.vfioContainer`), /dev/vfio/<group id> (noiommu-<id> for a
   * fake group), the device cdevs /dev/vfio/devices/vfioX, the sysfs
   * and debugfs files the kernel generates (sysfs-attrs.ts; EACCES when
   * `flags` ask to write a read-only sysfs one), and the caller's own
   * /proc/<pid>/task/<tid>/fail-nth (fault injection).
   */
  openPath(proc: Process<ProcessMm>, path: string, flags = O_RDWR): FileOps {
    if (path.startsWith('/sys/'))
      return openSysfsAttr(this, path, (flags & O_ACCMODE) !== O_RDONLY);
    if (path === '/dev/iommu') return openIommufd(this, this.selftestCmd);
    const task = failNthPath(path);
    if (task) {
      if (task.pid !== proc.pid) {
        fail('ENOENT', 'another process’s fail-nth is not served', 'path_openat');
      }

      return failNthFile(task.tid);
    }
    if (path === '/dev/vfio/vfio') return openVfioContainer(this, this.selftestCmd);
    if (path.startsWith(VFIO_CDEV_DIR)) return openVfioCdev(this, path);
    const group = /^\/dev\/vfio\/((?:noiommu-)?(0|[1-9][0-9]{0,9}))$/.exec(path);
    if (group) {
      const vfioGroup = this.vfioGroups.get(Number(group[2]));
      if (vfioGroup?.nodeName === group[1]) return vfioGroup.open(proc);
    }
    fail('ENOENT', `${path} is not a node uiommu serves`, 'path_openat');
  }

  /** A memfd of `size` bytes; MAP_FILE sees its current size and pages. */
  memfd(size: bigint): FileOps & { object: MemObject; ref: FileRef } {
    const obj = new MemObject(this.memory, size);
    const source = {
      file: true,
      resolve: (start: bigint, length: bigint) =>
        obj.physRuns(start, length).map((r) => ({ va: r.offset, length: r.length, phys: r.phys })),
    };
    return {
      kind: 'memfd',
      object: obj,
      ref: {
        pages: {
          source,
          get size() {
            return obj.size;
          },
        },
      },
      release: () => obj.unref(),
    };
  }

  /** Every user's locked-memory account created so far, by uid. */
  userAccounts(): ReadonlyMap<number, UserAccount> {
    return this.users;
  }

  /** Forget an exited process. */
  reap(proc: Process<ProcessMm>): void {
    if (this.processes.get(proc.pid) === proc) this.processes.delete(proc.pid);
  }
}
