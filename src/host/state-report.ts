/**
 * A snapshot of the emulated kernel's DMA state for traces and tests: the
 * pinned physical pages, each user's locked memory, and what each IOMMU
 * group translates through (blocked, a paging domain, or a POWER PE's TCE
 * windows). Values are JSON-ready (u64 as 0x strings).
 *
 * @example
 * JSON.stringify(kernelStateReport(kernel));
 * // {"pinnedPages":"0x0","lockedVm":{"0":"0x0"},"groups":[{"id":2,"domain":"windows","windows":[...]}]}
 */
import { SpaprDomain } from '../drivers/spapr/domain.ts';
import type { Kernel } from './kernel.ts';

/** One TCE window of a group's domain. */
export interface WindowReport {
  readonly start: string;
  readonly size: string;
  readonly pageShift: number;
  readonly levels: number;
}

export interface GroupReport {
  readonly id: number;
  readonly domain: 'blocked' | 'paging' | 'windows';
  /** For 'windows': the PE's windows by slot. */
  readonly windows?: readonly WindowReport[];
}

export interface KernelStateReport {
  /** Physical pages holding at least one long-term pin. */
  readonly pinnedPages: string;
  /** Bytes charged to each user's locked memory, by uid. */
  readonly lockedVm: Readonly<Record<string, string>>;
  readonly groups: readonly GroupReport[];
}

const hex = (v: bigint) => `0x${v.toString(16)}`;

/** The state of `kernel` now. */
export function kernelStateReport(kernel: Kernel): KernelStateReport {
  const groups = [...kernel.host.groups.values()].map((g): GroupReport => {
    const d = g.domain;
    if (!d) return { id: g.id, domain: 'blocked' };
    if (!(d instanceof SpaprDomain)) return { id: g.id, domain: 'paging' };
    const windows = d.windows.map(({ window: w }) => ({
      start: hex(w.start),
      size: hex(w.size),
      pageShift: w.pageShift,
      levels: w.levels,
    }));
    return { id: g.id, domain: 'windows', windows };
  });
  const lockedVm = Object.fromEntries(
    [...kernel.userAccounts()].map(([uid, a]) => [String(uid), hex(a.lockedVm)]),
  );
  return { pinnedPages: hex(kernel.memory.pinnedPages()), lockedVm, groups };
}
