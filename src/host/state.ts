/**
 * The one read-only snapshot of an emulated kernel, as plain JSON: what
 * `uiommu run --dump-state` writes, what the live view draws, and what
 * `--trace-json` records as `{"state": {"at": …, …}}` on SIGUSR1 and at
 * exit. Processes and their fds; per iommufd context its IOASes (areas,
 * reserved and allowed ranges, alignment, holes), HWPTs with their
 * domains' apertures, devices and what they are attached to, and what its
 * fault queues and vEVENTQs hold; each legacy VFIO container with its
 * type1 mappings; VFIO groups and their domains (a SPAPR PE's windows);
 * pinned pages in all, per user and per process against RLIMIT_MEMLOCK;
 * DMA faults. Every u64 is a hex string, every page count a decimal one.
 * Taking a snapshot changes nothing.
 */
import { hex } from '../abi/hex.ts';
import { SpaprDomain } from '../drivers/spapr/domain.ts';
import type { Domain } from '../iommu/domain.ts';
import type { IommufdCtx } from '../iommufd/context.ts';
import type { IommufdDevice } from '../iommufd/device.ts';
import type { IommufdFault } from '../iommufd/fault.ts';
import { iommufdCtxOf } from '../iommufd/fops.ts';
import type { HwptPaging } from '../iommufd/hw-pagetable.ts';
import type { HwptNested } from '../iommufd/hwpt-nested.ts';
import type { Ioas } from '../iommufd/ioas.ts';
import type { Veventq } from '../iommufd/veventq.ts';
import { type LegacyContainer, legacyContainerOf } from '../vfio/container.ts';
import { VfioSpaprTce } from '../vfio/spapr/tce-container.ts';
import { VfioIommuType1 } from '../vfio/type1/type1.ts';
import type { Kernel } from './kernel.ts';

export interface RangeJson {
  start: string;
  last: string;
}

export interface ApertureJson extends RangeJson {
  pgsizes: string;
}

export interface IoasJson {
  id: number;
  alignment: string;
  areas: (RangeJson & { prot: string; pinnedPages: string })[];
  reserved: RangeJson[];
  allowed: RangeJson[];
  /** The usable IOVA (IOMMU_IOAS_IOVA_RANGES's answer). */
  holes: RangeJson[];
}

export interface HwptJson {
  id: number;
  type: string;
  ioas?: number;
  parent?: number;
  auto?: boolean;
  apertures: ApertureJson[];
  devices: string[];
}

/** A FAULT object's queue: groups not read yet ('pending'), then read and not answered. */
export interface FaultQueueJson {
  id: number;
  groups: {
    state: 'pending' | 'awaiting response';
    devId: number;
    cookie: number;
    faults: { pasid: number; grpid: number; perm: number; addr: string }[];
  }[];
}

/** A vEVENTQ and the records waiting to be read (payload bytes as hex). */
export interface VeventqJson {
  id: number;
  viommu: number;
  type: number;
  depth: number;
  events: { sequence: number; lostEvents: boolean; payload: string }[];
}

export interface ContextJson {
  /** `pid:fd` of every fd open on it. */
  fds: string[];
  accountMode: string;
  compatIoas: number | null;
  objects: { id: number; type: string }[];
  ioas: IoasJson[];
  hwpts: HwptJson[];
  devices: { id: number; name: string; group: number; hwpt: number | null }[];
  faultQueues: FaultQueueJson[];
  veventqs: VeventqJson[];
}

/**
 * A legacy /dev/vfio/vfio container: its backend and its mappings — for
 * type1 the user's, for SPAPR its TCE ranges (the RLIMIT_MEMLOCK charge is
 * REGISTER's or ENABLE's, so lockedPages is 0).
 */
export interface ContainerJson {
  /** `pid:fd` of every fd open on it. */
  fds: string[];
  groups: number[];
  /** 'type1', 'type1v2', 'spapr' or 'noiommu'; null before VFIO_SET_IOMMU. */
  backend: string | null;
  mappings: { iova: string; size: string; vaddr: string; prot: string; lockedPages: string }[];
}

/** One TCE window of a SPAPR domain. */
export interface WindowJson {
  slot: number;
  start: string;
  size: string;
  pageShift: number;
  levels: number;
}

export interface KernelState {
  processes: {
    pid: number;
    uid: number;
    fds: { fd: number; kind: string; path: string | null }[];
    lockedPages: string;
    pinnedPages: string;
    limitPages: string | null;
  }[];
  /** Physical pages holding at least one long-term pin. */
  pinnedPages: string;
  /** Every user ever charged, with what is charged now. */
  users: { uid: number; lockedPages: string }[];
  contexts: ContextJson[];
  containers: ContainerJson[];
  groups: {
    id: number;
    devices: string[];
    /** null: blocked (no domain). 'windows': a SPAPR PE's TCE windows, also its apertures. */
    domain: {
      kind: 'paging' | 'windows';
      apertures: ApertureJson[];
      windows?: WindowJson[];
    } | null;
    dmaOwner: boolean;
  }[];
  faults: { device: string; iova: string; access: string }[];
}

function rangeJson(r: { start: bigint; last: bigint }): RangeJson {
  return { start: hex(r.start), last: hex(r.last) };
}

const protJson = (prot: number) => `${prot & 1 ? 'r' : '-'}${prot & 2 ? 'w' : '-'}`;

function aperturesOf(d: Domain): ApertureJson[] {
  return d.apertures.map((a) => ({ ...rangeJson(a), pgsizes: hex(a.table.config.pgsizeBitmap) }));
}

function ioasJson(ioas: Ioas): IoasJson {
  const iopt = ioas.iopt;
  return {
    id: ioas.id,
    alignment: hex(iopt.iovaAlignment),
    areas: [...iopt.areas].map((a) => ({
      ...rangeJson(a),
      prot: protJson(a.prot),
      pinnedPages: String(a.pages.npinned),
    })),
    reserved: iopt.reserved.map(rangeJson),
    allowed: iopt.allowed.map(rangeJson),
    holes: iopt.iovaRanges().map(rangeJson),
  };
}

function contextJson(ctx: IommufdCtx, fds: string[]): ContextJson {
  const objects = ctx.list();
  const devices = objects.filter((o) => o.type === 'device') as IommufdDevice[];
  const attached = (id: number) => devices.filter((d) => d.hwpt?.id === id).map((d) => d.dev.name);
  const hwpts: HwptJson[] = [];
  for (const o of objects) {
    if (o.type === 'hwpt_paging') {
      const h = o as HwptPaging;
      hwpts.push({
        id: h.id,
        type: o.type,
        ioas: h.ioas.id,
        auto: h.autoDomain,
        apertures: aperturesOf(h.domain),
        devices: attached(h.id),
      });
    } else if (o.type === 'hwpt_nested') {
      const h = o as HwptNested;
      hwpts.push({
        id: h.id,
        type: o.type,
        parent: h.parent.id,
        apertures: [],
        devices: attached(h.id),
      });
    }
  }
  const ofType = <T>(type: string) => objects.filter((o) => o.type === type) as T[];
  return {
    fds,
    accountMode: ctx.accountMode,
    compatIoas: ctx.vfioIoas?.id ?? null,
    objects: objects.map((o) => ({ id: o.id, type: o.type })),
    ioas: objects.filter((o) => o.type === 'ioas').map((o) => ioasJson(o as Ioas)),
    hwpts,
    devices: devices.map((d) => ({
      id: d.id,
      name: d.dev.name,
      group: d.dev.group.id,
      hwpt: d.hwpt?.id ?? null,
    })),
    faultQueues: ofType<IommufdFault>('fault').map((q) => ({
      id: q.id,
      groups: q.contents().map((g) => ({
        ...g,
        faults: g.faults.map((f) => ({ ...f, addr: hex(f.addr) })),
      })),
    })),
    veventqs: ofType<Veventq>('veventq').map((q) => ({
      id: q.id,
      viommu: q.viommu.id,
      type: q.vtype,
      depth: q.depth,
      events: q.contents().map((e) => ({
        sequence: e.sequence,
        lostEvents: e.lost,
        payload: Buffer.from(e.payload).toString('hex'),
      })),
    })),
  };
}

function containerJson(c: LegacyContainer, fds: string[]): ContainerJson {
  const b = c.backend;
  const type1 = b instanceof VfioIommuType1 ? b : undefined;
  const tces = b instanceof VfioSpaprTce ? [...b.iopt.areas] : [];
  return {
    fds,
    groups: c.groups.map((g) => g.id),
    backend: !b ? null : type1 ? (type1.v2 ? 'type1v2' : 'type1') : c.noiommu ? 'noiommu' : 'spapr',
    mappings: [
      ...[...(type1?.mappings ?? [])].map((d) => ({
        iova: hex(d.start),
        size: hex(d.size),
        vaddr: hex(d.vaddr),
        prot: protJson(d.prot),
        lockedPages: String(d.lockedPages),
      })),
      ...tces.map((a) => ({
        iova: hex(a.start),
        size: hex(a.last - a.start + 1n),
        vaddr: hex(a.pages.uptr + a.pagesOffset),
        prot: protJson(a.prot),
        lockedPages: '0',
      })),
    ],
  };
}

function domainJson(d: Domain): KernelState['groups'][number]['domain'] {
  const apertures = aperturesOf(d);
  if (!(d instanceof SpaprDomain)) return { kind: 'paging', apertures };
  const windows = d.windows.map(({ window: w }) => ({
    slot: w.slot,
    start: hex(w.start),
    size: hex(w.size),
    pageShift: w.pageShift,
    levels: w.levels,
  }));
  return { kind: 'windows', apertures, windows };
}

/** Append `pid:fd` to the list of `key` in `map`. */
function addFd<K>(map: Map<K, string[]>, key: K, at: string): void {
  map.set(key, [...(map.get(key) ?? []), at]);
}

/** The snapshot of `kernel` now. */
export function kernelState(kernel: Kernel): KernelState {
  const procs = kernel.livingProcesses();
  const contexts = new Map<IommufdCtx, string[]>();
  const containers = new Map<LegacyContainer, string[]>();
  const processes = procs.map((p) => {
    const fds = [...p.fds].sort((a, b) => a[0] - b[0]);
    for (const [fd, f] of fds) {
      const ctx = iommufdCtxOf(f.ops);
      if (ctx) addFd(contexts, ctx, `${p.pid}:${fd}`);
      const container = legacyContainerOf(f.ops);
      if (container) addFd(containers, container, `${p.pid}:${fd}`);
    }
    return {
      pid: p.pid,
      uid: p.creds.uid,
      fds: fds.map(([fd, f]) => ({ fd, kind: f.ops.kind, path: f.path ?? null })),
      lockedPages: String(p.counters.lockedVm),
      pinnedPages: String(p.counters.pinnedVm),
      limitPages: p.creds.capIpcLock ? null : String(p.creds.rlimitMemlock / p.mm.pageSize),
    };
  });
  return {
    processes,
    pinnedPages: String(kernel.memory.pinnedPages()),
    users: [...kernel.userAccounts()]
      .sort((a, b) => a[0] - b[0])
      .map(([uid, a]) => ({ uid, lockedPages: String(a.lockedVm) })),
    contexts: [...contexts].map(([ctx, fds]) => contextJson(ctx, fds)),
    containers: [...containers].map(([c, fds]) => containerJson(c, fds)),
    groups: [...kernel.host.groups].map(([id, g]) => ({
      id,
      devices: g.devices.map((d) => d.name),
      domain: g.domain ? domainJson(g.domain) : null,
      dmaOwner: g.dmaOwnerClaimed,
    })),
    faults: [...kernel.host.devices.values()].flatMap(({ device }) =>
      device.faults.map((f) => ({ device: f.device, iova: hex(f.iova), access: f.access })),
    ),
  };
}
