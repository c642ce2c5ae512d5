/**
 * The SPAPR TCE container backend (drivers/vfio/vfio_iommu_spapr_tce.c) on
 * the multi-window domain model: the user's TCEs are areas of one
 * {@link IoPagetable}; the windows are the apertures of the
 * {@link SpaprWindowSet}'s domains, which every attached group shares.
 * Errno rules: spapr-tce.md §3–§6 (Linux 6.18: detach clears every TCE,
 * UNREGISTER of a busy region returns 0).
 *
 * Two types, as SET_IOMMU chose:
 * - v2 (VFIO_SPAPR_TCE_v2_IOMMU = 7): memory pre-registration
 *   (REGISTER_MEMORY makes the container usable) and dynamic DMA windows
 *   (TCE_CREATE/REMOVE); ENABLE/DISABLE are ENOTTY.
 * - v1 (VFIO_SPAPR_TCE_IOMMU = 2): exactly one group; only the lazily
 *   created default 32-bit window; ENABLE charges the whole default window
 *   (tce32_size) to RLIMIT_MEMLOCK once, and MAP pins each page without
 *   further accounting; REGISTER/UNREGISTER/CREATE/REMOVE are ENOTTY and
 *   GET_INFO reports no DDW.
 *
 * Both answer VFIO_EEH_PE_OP for their groups (eeh.ts).
 */
import { fail } from '../../abi/errno.ts';
import {
  SPAPR_NR,
  VFIO_DMA_MAP_FLAG,
  VFIO_EXTENSION,
  VFIO_IOMMU_SPAPR_INFO_DDW,
  VfioIommuSpaprRegisterMemory,
  VfioIommuSpaprTceCreate,
  VfioIommuSpaprTceInfo,
  VfioIommuSpaprTceRemove,
  VfioIommuType1DmaMap,
  VfioIommuType1DmaUnmap,
  vfioIoctl,
  vfioNrOf,
} from '../../abi/vfio.ts';
import { faultPoint, withoutInjection } from '../../iommu/fault-inject.ts';
import type { Group } from '../../iommu/group.ts';
import type { Mm } from '../../iommu/mm.ts';
import type { PhysMemory } from '../../iommu/phys-memory.ts';
import { IOMMU_READ, IOMMU_WRITE } from '../../iommu/prot.ts';
import type { SpaprWindow } from '../../iommu/table-group.ts';
import { IoPagetable } from '../../iommufd/io-pagetable.ts';
import { IoptPages } from '../../iommufd/pages.ts';
import type { Caller } from '../../kernel/file.ts';
import type { PinAccount } from '../../kernel/pin-account.ts';
import type { VfioIommuBackend } from '../container.ts';
import { VfioUser } from '../user.ts';
import { containerEehPeOp } from './eeh.ts';
import type { SpaprTcePersonality } from './personality.ts';
import {
  maxPageShift,
  preregFind,
  preregPut,
  preregRegions,
  preregRegister,
  preregUnregister,
} from './prereg.ts';
import { phbOf, SpaprWindowSet } from './window-set.ts';

/**
 * VFIO_CHECK_EXTENSION as vfio_iommu_spapr_tce answers it (with or without
 * a container): 1 for SPAPR_TCE_IOMMU, SPAPR_TCE_v2_IOMMU and VFIO_EEH (EEH
 * is always enabled on the emulated POWER host), else 0.
 */
export function spaprCheckExtension(ext: bigint): number {
  return SPAPR_EXTENSIONS.has(ext) ? 1 : 0;
}

const SPAPR_EXTENSIONS = new Set(
  [VFIO_EXTENSION.SPAPR_TCE_IOMMU, VFIO_EXTENSION.SPAPR_TCE_v2_IOMMU, VFIO_EXTENSION.EEH].map(
    BigInt,
  ),
);

/** v1 pins at MAP without accounting: ENABLE charged the whole window already. */
const CHARGED_AT_ENABLE: PinAccount = { charge() {}, uncharge() {} };

/** The kernel function checking every SPAPR container ioctl's struct (argsz, flags). */
const TCE_IOCTL = 'tce_iommu_ioctl';

/**
 * `bytes` in the caller's pages, the unit its RLIMIT_MEMLOCK account counts
 * (the kernel charges bytes >> PAGE_SHIFT; charged sizes are host-page
 * multiples, so only the unit differs when the simulated mm's pages are
 * smaller than the emulated host's).
 */
function lockedPages(caller: Caller, bytes: bigint): bigint {
  const ps = caller.mm.pageSize;
  return (bytes + ps - 1n) / ps;
}

/** Locked-memory charge of one window's table (or of v1's ENABLE). */
interface TableCharge {
  readonly account: PinAccount;
  readonly pages: bigint;
}

/**
 * One SPAPR container backend (v1 or v2). `groups` is most recently
 * attached first (the kernel's list head, which GET_INFO and the default
 * window ask).
 */
export class VfioSpaprTce implements VfioIommuBackend {
  readonly groups: Group[] = [];
  /** The container's mapping table: areas = live TCE ranges. */
  readonly iopt: IoPagetable;
  readonly windowSet: SpaprWindowSet;
  /** MAP/UNMAP allowed: v1 after ENABLE, v2 after a REGISTER_MEMORY. */
  enabled = false;
  /** The default 32-bit window is due on the next MAP/UNMAP/CREATE. */
  defWindowPending = false;
  /** The address space the container is bound to (first REGISTER/CREATE/REMOVE). */
  mm: Mm | undefined;
  private readonly charges = new Map<number, TableCharge>();
  /** v1: what ENABLE charged (the whole default window), undone by DISABLE. */
  private enableCharge: TableCharge | undefined;

  /** `v2`: the type SET_IOMMU asked for (7), else v1 (2). */
  constructor(
    readonly memory: PhysMemory,
    readonly v2: boolean,
    readonly personality: SpaprTcePersonality,
  ) {
    // The page table never allocates IOVA and never splits areas; its page
    // size only caps domain alignment, which TCE pages (up to 1 GiB and
    // beyond) must not hit.
    this.iopt = new IoPagetable(1n << 62n, { unmapEmpty: 'success', maxAutoAlignment: undefined });
    this.windowSet = new SpaprWindowSet(this.iopt);
  }

  // ---- groups --------------------------------------------------------------------

  /**
   * tce_iommu_attach_group(), ≥v6.4 rules: ENODEV (no table group), EINVAL
   * (v2 and a PE without DDW), EBUSY (v1 already has its one group, or the
   * group is already here), EPERM (another PHB kind), then every window
   * programmed into the group at once; the first group makes the default
   * window pending when slot 0 is empty. The pre-6.4 rules
   * (`spaprAttachRules`) are in {@link attachPre64}.
   */
  attachGroup(group: Group): void {
    const phb = phbOf(group);
    if (this.personality.spaprAttachRules === 'pre-6.4') {
      this.attachPre64(group);
      return;
    }
    if (this.v2 && phb.caps.maxWindows === 0)
      fail('EINVAL', 'v2 container needs a DDW-capable PE', 'tce_iommu_attach_group');
    if (!this.v2 && this.groups.length > 0)
      fail('EBUSY', 'a v1 container takes one group', 'tce_iommu_attach_group');
    this.checkJoin(group);
    this.windowSet.join(group);
    const first = this.groups.length === 0;
    this.groups.unshift(group);
    if (first && !this.windowSet.windows.some((w) => w.slot === 0)) this.defWindowPending = true;
  }

  /** Common attach checks: EBUSY for a group already here, EPERM for another PHB kind. */
  private checkJoin(group: Group): void {
    const phb = phbOf(group);
    const where = 'tce_iommu_attach_group';
    if (this.groups.includes(group)) fail('EBUSY', 'group already attached', where);
    if (this.groups.some((g) => phbOf(g).caps.platform !== phb.caps.platform)) {
      fail('EPERM', 'incompatible table group', where);
    }
  }

  /**
   * Attach before ≈v6.4: only PowerNV PEs have the ownership ops. A PE
   * without them (pSeries) may only be a container's first group (EBUSY)
   * and only of v1 (v2 EPERM); the container borrows the platform's live
   * default window (not charged, never pending). A PE with them may only
   * join v2 (v1 EPERM), as in the ≥v6.4 flow.
   */
  private attachPre64(group: Group): void {
    const phb = phbOf(group);
    const ownershipOps = phb.caps.platform === 'powernv';
    if (this.groups.length > 0 && !ownershipOps)
      fail('EBUSY', 'PE cannot share a container', 'tce_iommu_attach_group');
    this.checkJoin(group);
    if (ownershipOps !== this.v2)
      fail(
        'EPERM',
        `PE cannot join a ${this.v2 ? 'v2' : 'v1'} container`,
        'tce_iommu_attach_group',
      );
    if (!ownershipOps) {
      this.windowSet.replace([phb.defaultWindow()], [group]);
      this.groups.unshift(group);
      return;
    }
    this.windowSet.join(group);
    const first = this.groups.length === 0;
    this.groups.unshift(group);
    if (first && !this.windowSet.windows.some((w) => w.slot === 0)) this.defWindowPending = true;
  }

  /**
   * tce_iommu_detach_group(): ≥v6.11 (`spaprDetachClearsTces`) every TCE of
   * the container is cleared first, so the remaining groups lose the
   * mappings too; then the group leaves every window.
   */
  detachGroup(group: Group): void {
    const i = this.groups.indexOf(group);
    if (i < 0) return;
    if (this.personality.spaprDetachClearsTces) this.iopt.unmapAll();
    this.groups.splice(i, 1);
    this.windowSet.leave(group, this.groups);
  }

  /** The last group left: windows freed, pre-registrations dropped, charges undone. */
  release(): void {
    this.disable();
    this.iopt.unmapAll();
    this.windowSet.clear();
    for (const c of this.charges.values()) c.account.uncharge(c.pages);
    this.charges.clear();
    if (this.mm) {
      for (const r of [...preregRegions(this.mm)])
        if (r.owners.has(this)) preregPut(this, this.mm, r);
    }
    this.enabled = false;
    this.defWindowPending = false;
  }

  // ---- ioctl dispatch ------------------------------------------------------------

  ioctl(caller: Caller, request: number, arg: bigint): number {
    const nr = vfioNrOf(caller.abi, request);
    if (nr === vfioIoctl('VFIO_CHECK_EXTENSION').nr) return spaprCheckExtension(arg);
    if (this.mm && this.mm !== caller.mm)
      fail('EPERM', 'container bound to another mm', 'tce_iommu_ioctl');
    switch (nr) {
      case SPAPR_NR.TCE_GET_INFO:
        return this.getInfo(caller, arg);
      case SPAPR_NR.MAP_DMA:
        return this.mapDma(caller, arg);
      case SPAPR_NR.UNMAP_DMA:
        return this.unmapDma(caller, arg);
      case SPAPR_NR.EEH_PE_OP:
        return containerEehPeOp(this.groups, caller.mm, arg);
    }
    if (this.v2) {
      switch (nr) {
        case SPAPR_NR.REGISTER_MEMORY:
          return this.registerMemory(caller, arg);
        case SPAPR_NR.UNREGISTER_MEMORY:
          return this.unregisterMemory(caller, arg);
        case SPAPR_NR.TCE_CREATE:
          return this.tceCreate(caller, arg);
        case SPAPR_NR.TCE_REMOVE:
          return this.tceRemove(caller, arg);
      }
    } else {
      switch (nr) {
        case SPAPR_NR.ENABLE:
          return this.enable(caller);
        case SPAPR_NR.DISABLE:
          this.disable();
          return 0;
      }
    }
    fail('ENOTTY', 'not an ioctl of this SPAPR TCE version', 'tce_iommu_ioctl');
  }

  // ---- v1: ENABLE / DISABLE ------------------------------------------------------

  /**
   * VFIO_IOMMU_ENABLE (v1): EBUSY when enabled, ENODEV without a group, EPERM
   * when the head PE has no default window (tce32_size 0); binds the mm and
   * charges tce32_size / PAGE_SIZE pages (ENOMEM past RLIMIT_MEMLOCK, free
   * with CAP_IPC_LOCK), the worst case of what MAP may pin.
   */
  private enable(caller: Caller): number {
    if (this.enabled) fail('EBUSY', 'already enabled', 'tce_iommu_enable');
    const g = this.groups[0];
    if (!g) fail('ENODEV', 'no group attached', 'tce_iommu_enable');
    const caps = phbOf(g).caps;
    if (caps.dma32Size === 0n) fail('EPERM', 'no default window', 'tce_iommu_enable');
    this.bindMm(caller);
    const account = caller.pinAccount('mm');
    const pages = lockedPages(caller, caps.dma32Size);
    account.charge(pages);
    this.enableCharge = { account, pages };
    this.enabled = true;
    return 0;
  }

  /** VFIO_IOMMU_DISABLE (v1), also at release: uncharge ENABLE's pages; always succeeds. */
  private disable(): void {
    if (!this.v2) this.enabled = false;
    const c = this.enableCharge;
    this.enableCharge = undefined;
    c?.account.uncharge(c.pages);
  }

  private bindMm(caller: Caller): void {
    this.mm ??= caller.mm;
  }

  /** The head group's PHB (the "first group" lookups). */
  private headPhb() {
    const g = this.groups[0];
    if (!g) fail('ENXIO', 'no group attached', 'tce_iommu_ioctl');
    return phbOf(g);
  }

  private hostPageShift(): number {
    return this.headPhb().caps.hostPageShift;
  }

  // ---- windows -------------------------------------------------------------------

  /** Create the pending default window (tce_iommu_create_default_window). */
  private createPendingDefault(caller: Caller): void {
    if (!this.defWindowPending) return;
    const w = this.headPhb().defaultWindow();
    this.createWindow(caller, w);
    this.defWindowPending = false;
  }

  /** Validate, charge the table, then move every group to the enlarged window set. */
  private createWindow(caller: Caller, w: SpaprWindow): void {
    const phb = this.headPhb();
    phb.windowGeometry(w);
    const bytes = phb.tableSize(w.pageShift, w.size, w.levels);
    const account = caller.pinAccount('mm');
    const pages = lockedPages(caller, bytes);
    account.charge(pages);
    try {
      faultPoint('tce_iommu_create_table');
      this.windowSet.replace([...this.windowSet.windows, w], this.groups);
    } catch (e) {
      account.uncharge(pages);
      throw e;
    }
    this.charges.set(w.slot, { account, pages });
  }

  /** VFIO_IOMMU_SPAPR_TCE_CREATE */
  private tceCreate(caller: Caller, arg: bigint): number {
    this.bindMm(caller);
    this.headPhb();
    const u = VfioUser.copyIn(caller.mm, arg, VfioIommuSpaprTceCreate, { flags: 0, fn: TCE_IOCTL });
    const c = u.cmd;
    this.createPendingDefault(caller);
    const used = new Set(this.windowSet.windows.map((w) => w.slot));
    const slot = ([0, 1] as const).find((s) => !used.has(s));
    if (slot === undefined) fail('ENOSPC', 'both window slots in use', 'tce_iommu_find_free_table');
    const phb = this.headPhb();
    const start = phb.caps.slotBases[slot];
    this.createWindow(caller, {
      slot,
      start,
      size: c.window_size,
      pageShift: c.page_shift,
      levels: c.levels,
    });
    u.respond({ ...c, start_addr: start });
    return 0;
  }

  /** VFIO_IOMMU_SPAPR_TCE_REMOVE: any address inside a window names it; its TCEs go first. */
  private tceRemove(caller: Caller, arg: bigint): number {
    this.bindMm(caller);
    this.headPhb();
    const r = VfioUser.copyIn(caller.mm, arg, VfioIommuSpaprTceRemove, {
      flags: 0,
      fn: TCE_IOCTL,
    }).cmd;
    if (this.defWindowPending && r.start_addr === 0n) {
      this.defWindowPending = false;
      return 0;
    }
    const hit = this.windowSet.windowOf(r.start_addr);
    if (!hit) fail('EINVAL', 'no window at that address', 'tce_iommu_remove_window');
    const { window } = hit;
    this.clearRange(window.start, hit.last);
    this.windowSet.replace(
      this.windowSet.windows.filter((w) => w.slot !== window.slot),
      this.groups,
    );
    const charge = this.charges.get(window.slot);
    if (charge) charge.account.uncharge(charge.pages);
    this.charges.delete(window.slot);
    return 0;
  }

  /** VFIO_IOMMU_SPAPR_TCE_GET_INFO: the head group's PE; 16 or 32 bytes written. */
  private getInfo(caller: Caller, arg: bigint): number {
    const phb = this.headPhb();
    const minsz = VfioIommuSpaprTceInfo.endOf('dma32_window_size');
    const u = VfioUser.copyIn(caller.mm, arg, VfioIommuSpaprTceInfo, { minsz, fn: TCE_IOCTL });
    const caps = phb.caps;
    const ddw = this.v2 && caps.maxWindows > 0;
    const info = {
      argsz: u.argsz,
      flags: ddw ? VFIO_IOMMU_SPAPR_INFO_DDW : 0,
      dma32_window_start: Number(caps.slotBases[0] & 0xffff_ffffn),
      dma32_window_size: Number(caps.dma32Size & 0xffff_ffffn),
      pgsizes: ddw ? caps.pgsizes : 0n,
      max_dynamic_windows_supported: ddw ? caps.maxWindows : 0,
      levels: ddw ? caps.maxLevels : 0,
    };
    u.respond(info, [minsz, VfioIommuSpaprTceInfo.size]);
    return 0;
  }

  // ---- memory --------------------------------------------------------------------

  /** VFIO_IOMMU_SPAPR_REGISTER_MEMORY */
  private registerMemory(caller: Caller, arg: bigint): number {
    this.bindMm(caller);
    const r = VfioUser.copyIn(caller.mm, arg, VfioIommuSpaprRegisterMemory, {
      flags: 0,
      fn: TCE_IOCTL,
    }).cmd;
    preregRegister(
      this,
      caller.mm,
      this.memory,
      caller.pinAccount('mm'),
      r.vaddr,
      r.size,
      this.hostPageShift(),
    );
    this.enabled = true;
    return 0;
  }

  /** VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY */
  private unregisterMemory(caller: Caller, arg: bigint): number {
    if (!this.mm) fail('EPERM', 'container not bound to an mm', 'tce_iommu_ioctl');
    const r = VfioUser.copyIn(caller.mm, arg, VfioIommuSpaprRegisterMemory, {
      flags: 0,
      fn: TCE_IOCTL,
    }).cmd;
    const mask = (1n << BigInt(this.hostPageShift())) - 1n;
    if ((r.vaddr & mask) !== 0n || (r.size & mask) !== 0n) {
      fail('EINVAL', 'vaddr or size not page aligned', 'tce_iommu_unregister_pages');
    }

    preregUnregister(this, caller.mm, r.vaddr, r.size, this.personality.spaprUnregisterMapped);
    return 0;
  }

  // ---- MAP / UNMAP ---------------------------------------------------------------

  /**
   * The windows an unmap lease may publish to `mm`'s library
   * (docs/engine-protocol.md, *Unmap leases*): only while an UNMAP_DMA that
   * is aligned and inside a window can do nothing but clear its range — v2,
   * memory registered, no default window pending, bound to `mm`, a group
   * attached — else undefined. v1 stays on the ordinary path.
   */
  unmapLeaseWindows(mm: Mm): { pageShift: number; start: bigint; last: bigint }[] | undefined {
    if (!this.v2 || !this.enabled || this.defWindowPending || this.mm !== mm) return undefined;
    if (this.groups.length === 0) return undefined;
    const out = [];
    for (const w of this.windowSet.windows) {
      const r = this.windowSet.range(w.slot);
      if (r) out.push({ pageShift: w.pageShift, ...r });
    }
    return out.length > 0 ? out : undefined;
  }

  /** Steps 3–5 of MAP/UNMAP: the window of `iova`, and alignment of `size`/`vaddr` to its page. */
  private windowFor(caller: Caller, iova: bigint, ...aligned: bigint[]) {
    this.createPendingDefault(caller);
    const hit = this.windowSet.windowOf(iova);
    if (!hit) fail('ENXIO', 'iova in no window', 'tce_iommu_find_table');
    const ps = 1n << BigInt(hit.window.pageShift);
    if (aligned.some((x) => (x & (ps - 1n)) !== 0n))
      fail('EINVAL', 'not TCE page aligned', 'tce_iommu_ioctl');
    return { ...hit, ps };
  }

  /**
   * VFIO_IOMMU_MAP_DMA: v2 maps the pages of one pre-registered region at
   * `iova`, v1 pins the caller's pages (EFAULT when unmapped, EPERM when a
   * host page is smaller than the TCE page); either replaces whatever TCEs
   * were there. A misaligned iova returns the positive 1 (the kernel's
   * parameter-check quirk); a range running past the window end is EINVAL
   * (a model choice; the kernel checks only the first page).
   */
  private mapDma(caller: Caller, arg: bigint): number {
    if (!this.enabled)
      fail('EPERM', this.v2 ? 'no memory registered' : 'not enabled', 'tce_iommu_ioctl');
    const rw = VFIO_DMA_MAP_FLAG.READ | VFIO_DMA_MAP_FLAG.WRITE;
    const m = VfioUser.copyIn(caller.mm, arg, VfioIommuType1DmaMap, {
      flags: rw,
      fn: TCE_IOCTL,
    }).cmd;
    const { ps, last } = this.windowFor(caller, m.iova, m.size, m.vaddr);
    if ((m.flags & rw) === 0) fail('EINVAL', 'neither READ nor WRITE', 'tce_iommu_ioctl');
    if ((m.iova & (ps - 1n)) !== 0n) return this.badIova();
    if (m.size === 0n) return 0;
    if (m.iova + m.size - 1n > last)
      fail('EINVAL', 'past the window end', 'uiommu_spapr_window_end');
    let prot = 0;
    if (m.flags & VFIO_DMA_MAP_FLAG.READ) prot |= IOMMU_READ;
    if (m.flags & VFIO_DMA_MAP_FLAG.WRITE) prot |= IOMMU_WRITE;
    if (!this.v2) return this.mapV1(caller, m.vaddr, m.iova, m.size, ps, prot);
    const region = preregFind(caller.mm, m.vaddr, m.size);
    if (!region) fail('EINVAL', 'memory not pre-registered', 'tce_iommu_prereg_ua_to_hpa');
    if (ps > 1n << BigInt(region.maxPageShift))
      fail('EINVAL', 'region pages too small', 'mm_iommu_ua_to_hpa');
    this.clearRange(m.iova, m.iova + m.size - 1n);
    this.iopt.mapPages(
      [{ pages: region.pages, offset: m.vaddr - region.vaddr, length: m.size }],
      m.size,
      m.iova,
      prot,
    );
    return 0;
  }

  /**
   * tce_iommu_build() (v1): pin the pages (writable when the device may
   * write) and check each is at least a TCE page, then write the TCEs.
   */
  private mapV1(
    caller: Caller,
    vaddr: bigint,
    iova: bigint,
    size: bigint,
    ps: bigint,
    prot: number,
  ): number {
    const host = BigInt(this.hostPageShift());
    if (ps > 1n << BigInt(maxPageShift(caller.mm, this.memory, vaddr, size, Number(host)))) {
      fail('EPERM', 'host page smaller than the TCE page', 'tce_iommu_build');
    }
    const writable = (prot & IOMMU_WRITE) !== 0;
    const pages = new IoptPages(caller.mm, vaddr, size, writable, CHARGED_AT_ENABLE, this.memory);
    this.clearRange(iova, iova + size - 1n);
    this.iopt.mapPages([{ pages, offset: 0n, length: size }], size, iova, prot);
    return 0;
  }

  /**
   * UNMAP_DMAs posted under an unmap lease, in order, without decoding
   * structs: performs the leading ones that the kernel answers 0 by
   * clearing their range (v2, usable, bound to `mm`, a non-empty range
   * aligned to its window's page and inside that window) and returns how
   * many; the caller makes the ordinary call for the next one. Adjacent
   * ranges are cleared together: nothing observes the TCEs between them.
   */
  unmapLeased(mm: Mm, ranges: readonly { iova: bigint; size: bigint }[]): number {
    if (!this.v2 || !this.enabled || this.defWindowPending || this.mm !== mm) return 0;
    let n = 0;
    let run = { start: 0n, end: 0n };
    let hit: { window: SpaprWindow; last: bigint } | undefined;
    for (const { iova, size } of ranges) {
      if (!hit || iova < hit.window.start || iova > hit.last) hit = this.windowSet.windowOf(iova);
      if (!hit || size === 0n) break;
      const mask = (1n << BigInt(hit.window.pageShift)) - 1n;
      if (((iova | size) & mask) !== 0n || iova + size - 1n > hit.last) break;
      if (iova !== run.end) {
        if (run.end > run.start) this.clearRange(run.start, run.end - 1n);
        run = { start: iova, end: iova };
      }
      run.end = iova + size;
      n++;
    }
    if (run.end > run.start) this.clearRange(run.start, run.end - 1n);
    return n;
  }

  /** VFIO_IOMMU_UNMAP_DMA: clears TCEs; holes are skipped; `size` is not written back. */
  private unmapDma(caller: Caller, arg: bigint): number {
    if (!this.enabled) fail('EPERM', 'no memory registered', 'tce_iommu_ioctl');
    const u = VfioUser.copyIn(caller.mm, arg, VfioIommuType1DmaUnmap, {
      flags: 0,
      fn: TCE_IOCTL,
    }).cmd;
    const { ps, last } = this.windowFor(caller, u.iova, u.size);
    if ((u.iova & (ps - 1n)) !== 0n) return this.badIova();
    if (u.size === 0n) return 0;
    if (u.iova + u.size - 1n > last)
      fail('EINVAL', 'past the window end', 'uiommu_spapr_window_end');
    this.clearRange(u.iova, u.iova + u.size - 1n);
    return 0;
  }

  /** The first-page parameter check's answer for a misaligned iova (`spaprBadIova`). */
  private badIova(): number {
    if (this.personality.spaprBadIova === 'EINVAL')
      fail('EINVAL', 'iova not TCE page aligned', 'iommu_tce_put_param_check');
    return 1;
  }

  /**
   * Clear every TCE in `[start, last]`: areas inside go; an area cut by the
   * range is replaced by its surviving pieces (same pages; they stay
   * pinned by the registration, so re-mapping them cannot fail for lack
   * of pages). No fault injection point: tce_iommu_clear() only clears
   * TCEs, it allocates nothing.
   */
  private clearRange(start: bigint, last: bigint): void {
    for (;;) {
      const a = this.iopt.areas.firstIntersecting(start, last);
      if (!a) return;
      const { pages, pagesOffset, prot } = a;
      const [aStart, aLast] = [a.start, a.last];
      this.iopt.unmap(aStart, aLast - aStart + 1n, { emptyOk: true });
      const keep = (s: bigint, l: bigint) => {
        if (s > l) return;
        const len = l - s + 1n;
        withoutInjection(() =>
          this.iopt.mapPages(
            [{ pages, offset: pagesOffset + (s - aStart), length: len }],
            len,
            s,
            prot,
          ),
        );
      };
      keep(aStart, start - 1n);
      keep(last + 1n, aLast);
    }
  }
}
