/**
 * Warnings: calls that succeed (or fail in a way clients ignore) but
 * usually mean a bug in the client. docs/warnings.md gives each one with
 * the real incident that motivates it. They are derived from the traced
 * calls (so they cost nothing while nothing is traced), from device DMA
 * and from process exit; each names the call that caused it.
 *
 * @example
 * const w = new Warnings(kernel, (warning) => console.error(formatWarning(warning)));
 * proc.trace = (line, event) => w.observe(proc, line, event);
 * // ... the client runs ...
 * w.exit(proc); // before proc.exit(): the fds it leaked
 */
import { hex } from '../abi/hex.ts';
import { IommuIoasMap, IommuIoasUnmap } from '../abi/iommufd.ts';
import type { Layout } from '../abi/layout.ts';
import {
  VfioIommuSpaprTceCreate,
  VfioIommuSpaprTceRemove,
  VfioIommuType1DmaMap,
  VfioIommuType1DmaUnmap,
} from '../abi/vfio.ts';
import type { Device, DmaFault } from '../iommu/device.ts';
import type { FileOps, OpenFile } from './file.ts';
import type { Kernel } from './kernel.ts';
import type { Process, ProcessMm, TraceEvent } from './process.ts';

/** The kinds of warning (stable ids; docs/warnings.md has one section each). */
export type WarningId =
  | 'unmap-nothing'
  | 'dma-after-eexist'
  | 'map-before-set-iommu'
  | 'dma-after-unmap'
  | 'memlock-near-limit'
  | 'window-never-mapped'
  | 'fd-leaked';

export interface Warning {
  readonly id: WarningId;
  readonly pid: number;
  readonly message: string;
  /** The trace line of the call that caused it. */
  readonly cause: string;
}

/** A device DMA to an IOVA unmapped at most this many traced calls earlier warns. */
export const RECENT_UNMAP_CALLS = 32;
/** Pinned pages at or above this share of RLIMIT_MEMLOCK warn (once until they fall below half). */
export const MEMLOCK_WARN_SHARE = 0.9;

const U64_MAX = (1n << 64n) - 1n;

/** `--- warning ID: message; caused by: LINE ---`, strace's way of setting off what is no syscall. */
export function formatWarning(w: Warning): string {
  return `--- warning ${w.id}: ${w.message}; caused by: ${w.cause} ---`;
}

interface Range {
  start: bigint;
  last: bigint;
}

interface Recorded extends Range {
  pid: number;
  cause: string;
}

interface Window extends Range {
  cause: string;
  used: boolean;
}

/** Decode an ioctl argument if the trace read all of it. */
function decoded<V>(layout: Layout<V>, event: TraceEvent): V | undefined {
  return event.arg && event.arg.length >= layout.size ? layout.decode(event.arg) : undefined;
}

function overlaps(a: Range, start: bigint, last: bigint): boolean {
  return a.start <= last && start <= a.last;
}

function range(start: bigint, length: bigint): Range {
  const last = start + length - 1n;
  return { start, last: last > U64_MAX ? U64_MAX : last };
}

/** Watches one kernel's traced calls, device DMA and process exits; `emit` receives each warning. */
export class Warnings {
  private calls = 0;
  private readonly eexist: Recorded[] = [];
  private readonly unmapped: (Recorded & { call: number })[] = [];
  private readonly iommuSet = new WeakSet<FileOps>();
  private readonly windows = new WeakMap<OpenFile, Window[]>();
  /** `pid:fd` → the file a SPAPR window was created on, to see it closed. */
  private readonly windowFds = new Map<string, OpenFile>();
  private readonly openedBy = new WeakMap<OpenFile, string>();
  private readonly nearLimit = new WeakSet<Process<ProcessMm>>();

  constructor(
    private readonly kernel: Kernel,
    private readonly emit: (w: Warning) => void,
  ) {
    for (const { device } of kernel.host.devices.values()) this.watchDevice(device);
  }

  /** Also watch the DMA of `device`, one built outside the host's topology (the host's are watched). */
  watchDevice(device: Device): void {
    device.dmaObserver = (dev, iova, length, fault) => this.dma(dev, iova, length, fault);
  }

  /** One traced call of `proc`: its line and structured event (see `Process.trace`). */
  observe(proc: Process<ProcessMm>, line: string, event: TraceEvent): void {
    this.calls++;
    const file = proc.fds.get(event.fd);
    if (event.call === 'openat' && event.ret >= 0 && file) this.openedBy.set(file, line);
    if (event.call === 'close' && event.ret === 0) this.closed(proc, event.fd);
    if (event.call === 'ioctl' && event.request && file) this.ioctl(proc, line, event, file);
    if (event.ret >= 0) this.checkMemlock(proc, line);
  }

  /** `proc` is about to exit: every fd still open was leaked (the kernel closes it). */
  exit(proc: Process<ProcessMm>): void {
    for (const key of [...this.windowFds.keys()]) {
      if (key.startsWith(`${proc.pid}:`)) this.windowFds.delete(key);
    }
    for (const [fd, file] of [...proc.fds].sort((a, b) => a[0] - b[0])) {
      const opened = this.openedBy.get(file);
      if (!opened) continue;
      this.emit({
        id: 'fd-leaked',
        pid: proc.pid,
        message: `fd ${fd} (${file.ops.kind}) is still open at exit`,
        cause: opened,
      });
      this.windowsClosed(proc.pid, file);
    }
  }

  private ioctl(proc: Process<ProcessMm>, line: string, event: TraceEvent, file: OpenFile): void {
    const ok = event.ret >= 0;
    const pid = proc.pid;
    switch (event.request) {
      case 'VFIO_SET_IOMMU':
        if (ok) this.iommuSet.add(file.ops);
        return;
      case 'IOMMU_IOAS_MAP': {
        const m = decoded(IommuIoasMap, event);
        if (m) this.mapped(pid, line, event, range(m.iova, m.length));
        return;
      }
      case 'VFIO_IOMMU_MAP_DMA': {
        const m = decoded(VfioIommuType1DmaMap, event);
        if (file.ops.kind.startsWith('vfio-container') && !this.iommuSet.has(file.ops)) {
          this.emit({
            id: 'map-before-set-iommu',
            pid,
            message: 'VFIO_IOMMU_MAP_DMA on a container whose IOMMU type was never set',
            cause: line,
          });
        }
        if (!m) return;
        const r = range(m.iova, m.size);
        this.mapped(pid, line, event, r);
        if (ok)
          for (const w of this.windows.get(file) ?? []) w.used ||= overlaps(w, r.start, r.last);
        return;
      }
      case 'IOMMU_IOAS_UNMAP': {
        const u = decoded(IommuIoasUnmap, event);
        if (u && ok) this.unmappedRange(pid, line, 'IOMMU_IOAS_UNMAP', u.iova, u.length);
        return;
      }
      case 'VFIO_IOMMU_UNMAP_DMA': {
        const u = decoded(VfioIommuType1DmaUnmap, event);
        if (u && ok) this.unmappedRange(pid, line, 'VFIO_IOMMU_UNMAP_DMA', u.iova, u.size);
        return;
      }
      case 'VFIO_IOMMU_SPAPR_TCE_CREATE': {
        const c = decoded(VfioIommuSpaprTceCreate, event);
        if (!c || !ok) return;
        const list = this.windows.get(file) ?? [];
        list.push({ ...range(c.start_addr, c.window_size), cause: line, used: false });
        this.windows.set(file, list);
        this.windowFds.set(`${pid}:${event.fd}`, file);
        return;
      }
      case 'VFIO_IOMMU_SPAPR_TCE_REMOVE': {
        const r = decoded(VfioIommuSpaprTceRemove, event);
        const list = this.windows.get(file);
        if (!r || !ok || !list) return;
        const i = list.findIndex((w) => w.start === r.start_addr);
        if (i >= 0) this.windowGone(pid, list.splice(i, 1)[0]!);
        return;
      }
    }
  }

  /** A MAP call: EEXIST is remembered (DMA there later warns); a success covers recent unmaps. */
  private mapped(pid: number, line: string, event: TraceEvent, r: Range): void {
    if (event.errno === 'EEXIST') this.eexist.push({ ...r, pid, cause: line });
    if (event.ret < 0) return;
    for (let i = this.unmapped.length - 1; i >= 0; i--) {
      const u = this.unmapped[i]!;
      if (u.start >= r.start && u.last <= r.last) this.unmapped.splice(i, 1);
    }
  }

  private unmappedRange(
    pid: number,
    line: string,
    what: string,
    iova: bigint,
    removed: bigint,
  ): void {
    if (removed === 0n) {
      this.emit({
        id: 'unmap-nothing',
        pid,
        message: `${what} at ${hex(iova)} returned 0 and removed nothing`,
        cause: line,
      });
      return;
    }
    const all = iova === 0n && (removed === U64_MAX || what === 'VFIO_IOMMU_UNMAP_DMA');
    const r = all ? { start: 0n, last: U64_MAX } : range(iova, removed);
    this.unmapped.push({ ...r, pid, cause: line, call: this.calls });
    const oldest = this.calls - RECENT_UNMAP_CALLS;
    while (this.unmapped.length > 0 && this.unmapped[0]!.call < oldest) this.unmapped.shift();
  }

  private dma(dev: Device, iova: bigint, length: number, fault: DmaFault | undefined): void {
    const last = iova + BigInt(Math.max(length, 1)) - 1n;
    const outcome = fault ? `faulted at ${hex(fault.iova)}` : 'went through';
    const i = this.eexist.findIndex((e) => overlaps(e, iova, last));
    if (i >= 0) {
      const e = this.eexist.splice(i, 1)[0]!;
      this.emit({
        id: 'dma-after-eexist',
        pid: e.pid,
        message: `${dev.name} DMA at ${hex(iova)} (${length} bytes, ${outcome}) into a range whose MAP failed EEXIST: it reaches the older mapping there`,
        cause: e.cause,
      });
    }
    const oldest = this.calls - RECENT_UNMAP_CALLS;
    const u = this.unmapped.find((x) => x.call >= oldest && overlaps(x, iova, last));
    if (u) {
      this.unmapped.splice(this.unmapped.indexOf(u), 1);
      this.emit({
        id: 'dma-after-unmap',
        pid: u.pid,
        message: `${dev.name} DMA at ${hex(iova)} (${length} bytes, ${outcome}) ${this.calls - u.call} calls after that IOVA was unmapped`,
        cause: u.cause,
      });
    }
  }

  private checkMemlock(proc: Process<ProcessMm>, line: string): void {
    if (proc.creds.capIpcLock) return;
    const limit = proc.creds.rlimitMemlock / proc.mm.pageSize;
    if (limit === 0n) return;
    const user = this.kernel.userAccount(proc.creds.uid).lockedVm;
    const { lockedVm, pinnedVm } = proc.counters;
    const used = [user, lockedVm, pinnedVm].reduce((a, b) => (a > b ? a : b));
    const share = Number(used) / Number(limit);
    if (share < 0.5) this.nearLimit.delete(proc);
    if (share < MEMLOCK_WARN_SHARE || this.nearLimit.has(proc)) return;
    this.nearLimit.add(proc);
    this.emit({
      id: 'memlock-near-limit',
      pid: proc.pid,
      message: `${used} pages pinned or locked of RLIMIT_MEMLOCK's ${limit} (${Math.round(share * 100)}%): the next MAP may fail ENOMEM`,
      cause: line,
    });
  }

  /** `fd` of `proc` closed: a SPAPR container no other fd refers to takes its windows along. */
  private closed(proc: Process<ProcessMm>, fd: number): void {
    const key = `${proc.pid}:${fd}`;
    const file = this.windowFds.get(key);
    if (!file) return;
    this.windowFds.delete(key);
    if (![...proc.fds.values()].includes(file)) this.windowsClosed(proc.pid, file);
  }

  private windowsClosed(pid: number, file: OpenFile): void {
    for (const w of this.windows.get(file) ?? []) this.windowGone(pid, w);
    this.windows.delete(file);
  }

  private windowGone(pid: number, w: Window): void {
    if (w.used) return;
    this.emit({
      id: 'window-never-mapped',
      pid,
      message: `DMA window [${hex(w.start)}, ${hex(w.last)}] was created but nothing was ever mapped in it`,
      cause: w.cause,
    });
  }
}
