/**
 * A read-only snapshot of an emulated kernel as plain JSON, for
 * `uiommu run --dump-state` and the live view: processes and their fds;
 * per iommufd context its IOASes (areas, reserved and allowed ranges,
 * alignment, holes), HWPTs with their domains' apertures, devices and what
 * they are attached to; VFIO groups and their domains (a SPAPR container's
 * windows are its domain's apertures); pinned pages per user and per
 * process against RLIMIT_MEMLOCK; DMA faults. Every u64 is a hex string.
 * Taking a snapshot changes nothing.
 */
import { hex } from '../abi/hex.ts';
import type { Domain } from '../iommu/domain.ts';
import type { IommufdCtx } from '../iommufd/context.ts';
import type { IommufdDevice } from '../iommufd/device.ts';
import { iommufdCtxOf } from '../iommufd/fops.ts';
import type { HwptPaging } from '../iommufd/hw-pagetable.ts';
import type { HwptNested } from '../iommufd/hwpt-nested.ts';
import type { Ioas } from '../iommufd/ioas.ts';
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

export interface ContextJson {
  /** `pid:fd` of every fd open on it. */
  fds: string[];
  accountMode: string;
  compatIoas: number | null;
  objects: { id: number; type: string }[];
  ioas: IoasJson[];
  hwpts: HwptJson[];
  devices: { id: number; name: string; group: number; hwpt: number | null }[];
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
  users: { uid: number; lockedPages: string }[];
  contexts: ContextJson[];
  groups: {
    id: number;
    devices: string[];
    domain: { apertures: ApertureJson[] } | null;
    dmaOwner: boolean;
  }[];
  faults: { device: string; iova: string; access: string }[];
}

function rangeJson(r: { start: bigint; last: bigint }): RangeJson {
  return { start: hex(r.start), last: hex(r.last) };
}

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
      prot: `${a.prot & 1 ? 'r' : '-'}${a.prot & 2 ? 'w' : '-'}`,
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
  };
}

/** The snapshot of `kernel` now. */
export function kernelState(kernel: Kernel): KernelState {
  const procs = kernel.livingProcesses();
  const contexts = new Map<IommufdCtx, string[]>();
  const processes = procs.map((p) => {
    const fds = [...p.fds].sort((a, b) => a[0] - b[0]);
    for (const [fd, f] of fds) {
      const ctx = iommufdCtxOf(f.ops);
      if (ctx) contexts.set(ctx, [...(contexts.get(ctx) ?? []), `${p.pid}:${fd}`]);
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
  const uids = [...new Set(procs.map((p) => p.creds.uid))].sort((a, b) => a - b);
  return {
    processes,
    users: uids.map((uid) => ({
      uid,
      lockedPages: String(kernel.userAccount(uid).lockedVm),
    })),
    contexts: [...contexts].map(([ctx, fds]) => contextJson(ctx, fds)),
    groups: [...kernel.host.groups].map(([id, g]) => ({
      id,
      devices: g.devices.map((d) => d.name),
      domain: g.domain ? { apertures: aperturesOf(g.domain) } : null,
      dmaOwner: g.dmaOwnerClaimed,
    })),
    faults: [...kernel.host.devices.values()].flatMap(({ device }) =>
      device.faults.map((f) => ({ device: f.device, iova: hex(f.iova), access: f.access })),
    ),
  };
}
