import { fail } from '../abi/errno.ts';
import { hex } from '../abi/hex.ts';
import {
  IOMMU_IOAS_MAP_FLAGS,
  IOMMU_OPTION_ID,
  IOMMU_OPTION_OP,
  IOMMU_VFIO_IOAS_OP,
  type IommuIoasAlloc,
  type IommuIoasAllowIovas,
  type IommuIoasChangeProcess,
  type IommuIoasCopy,
  type IommuIoasIovaRanges,
  type IommuIoasMap,
  type IommuIoasMapFile,
  type IommuIoasUnmap,
  IommuIovaRange,
  type IommuOption,
  type IommuVfioIoas,
} from '../abi/iommufd.ts';
import type { Layout } from '../abi/layout.ts';
import { U64_MAX } from '../abi/layout.ts';
import { IOMMU_READ, IOMMU_WRITE } from '../iommu/prot.ts';
import type { Caller, DmaBufExporter, FileRef, PagesSource } from '../kernel/file.ts';
import {
  type AccountMode,
  NO_ACCOUNT,
  type PinAccount,
  type PinOwner,
} from '../kernel/pin-account.ts';
import { type Range, SortedRanges } from '../util/sorted-ranges.ts';
import type { IommufdCtx } from './context.ts';
import { IoPagetable } from './io-pagetable.ts';
import { IommufdObject } from './object.ts';
import { DmabufPages, IoptPages } from './pages.ts';
import type { Ucmd } from './ucmd.ts';

type V<L> = L extends Layout<infer T> ? T : never;

/** Something built on an IOAS that owns a domain there (a HWPT_PAGING). */
export interface IoasUser {
  readonly autoDomain: boolean;
  /** hwpt_paging->enforce_cache_coherency: set at allocation for a device whose IOMMU can enforce it. */
  readonly enforceCacheCoherency: boolean;
}

/** An IO address space object: an io_pagetable plus the HWPTs built on it. */
export class Ioas extends IommufdObject {
  readonly type = 'ioas';
  readonly iopt: IoPagetable;
  /** HWPT_PAGING objects on this IOAS in creation order (the auto-domain search order). */
  readonly hwpts: IoasUser[] = [];

  constructor(ctx: IommufdCtx) {
    super();
    this.iopt = new IoPagetable(ctx.host.memory.pageSize, ctx.host.personality);
  }

  destroy(): void {
    this.iopt.unmapAll();
  }
}

const MAP_FLAGS_ALL =
  IOMMU_IOAS_MAP_FLAGS.FIXED_IOVA | IOMMU_IOAS_MAP_FLAGS.WRITEABLE | IOMMU_IOAS_MAP_FLAGS.READABLE;

/** MAP/COPY flags to IOMMU_READ|IOMMU_WRITE. */
function protOf(flags: number): number {
  return (
    (flags & IOMMU_IOAS_MAP_FLAGS.READABLE ? IOMMU_READ : 0) |
    (flags & IOMMU_IOAS_MAP_FLAGS.WRITEABLE ? IOMMU_WRITE : 0)
  );
}

/** IOMMU_IOAS_ALLOC */
export function ioasAlloc(ctx: IommufdCtx, ucmd: Ucmd<V<typeof IommuIoasAlloc>>): number {
  if (ucmd.cmd.flags !== 0)
    fail('EOPNOTSUPP', `unknown flags ${hex(ucmd.cmd.flags)}`, 'iommufd_ioas_alloc_ioctl');
  const ioas = ctx.create(new Ioas(ctx), () => {});
  ucmd.cmd.out_ioas_id = ioas.id;
  try {
    ucmd.respond();
  } catch (e) {
    ctx.remove(ioas);
    throw e;
  }
  return 0;
}

/** IOMMU_IOAS_IOVA_RANGES: fills up to num_iovas ranges, responds, then EMSGSIZE if short. */
export function ioasIovaRanges(ctx: IommufdCtx, ucmd: Ucmd<V<typeof IommuIoasIovaRanges>>): number {
  const cmd = ucmd.cmd;
  if (cmd.__reserved !== 0)
    fail('EOPNOTSUPP', '__reserved is not zero', 'iommufd_ioas_iova_ranges');
  const ioas = ctx.get<Ioas>(cmd.ioas_id, 'ioas');
  const max = cmd.num_iovas;
  const ranges = ioas.iopt.iovaRanges();
  const n = ranges.length;
  // one copy_to_user for all that fit: a fault leaves the same bytes written as one copy per range
  const fit = Math.min(n, max);
  if (fit > 0) {
    const bytes = new Uint8Array(fit * IommuIovaRange.size);
    for (let i = 0; i < fit; i++)
      bytes.set(IommuIovaRange.encode(ranges[i]!), i * IommuIovaRange.size);
    ucmd.mm.write(cmd.allowed_iovas, bytes);
  }
  cmd.num_iovas = n;
  cmd.out_iova_alignment = ioas.iopt.iovaAlignment;
  ucmd.respond();
  if (n > max)
    fail(
      'EMSGSIZE',
      `${n} ranges do not fit num_iovas ${max} (num_iovas now says ${n})`,
      'iommufd_ioas_iova_ranges',
    );
  return 0;
}

/** IOMMU_IOAS_ALLOW_IOVAS: replace the allowed list atomically. */
export function ioasAllowIovas(ctx: IommufdCtx, ucmd: Ucmd<V<typeof IommuIoasAllowIovas>>): number {
  const cmd = ucmd.cmd;
  if (cmd.__reserved !== 0)
    fail('EOPNOTSUPP', '__reserved is not zero', 'iommufd_ioas_allow_iovas');
  const ioas = ctx.get<Ioas>(cmd.ioas_id, 'ioas');
  const ranges = new SortedRanges<Range>();
  for (let i = 0; i < cmd.num_iovas; i++) {
    const at = cmd.allowed_iovas + BigInt(i * IommuIovaRange.size);
    const r = IommuIovaRange.decode(ucmd.mm.read(at, IommuIovaRange.size));
    if (r.start >= r.last || ranges.intersects(r.start, r.last))
      fail(
        'EINVAL',
        `allowed range ${i} [${hex(r.start)}, ${hex(r.last)}] is empty or overlaps another`,
        'iommufd_ioas_allow_iovas',
      );
    ranges.insert({ start: r.start, last: r.last });
  }
  ioas.iopt.setAllowed([...ranges]);
  return 0;
}

/** Common MAP / MAP_FILE front checks (in `where`): flags, U64_MAX fields, a permission. */
function checkMapFlags(flags: number, iova: bigint, length: bigint, where: string): void {
  if ((flags & ~MAP_FLAGS_ALL) !== 0)
    fail('EOPNOTSUPP', `unknown flags ${hex(flags & ~MAP_FLAGS_ALL)}`, where);
  if (iova >= U64_MAX || length >= U64_MAX) {
    fail('EOVERFLOW', 'iova or length is U64_MAX', where);
  }
  if (protOf(flags) === 0) fail('EINVAL', 'neither READABLE nor WRITEABLE', where);
}

/**
 * Page-set limits: EOVERFLOW when the range wraps — `start + length` for
 * user memory, `start + length - 1` for a file (as the kernel checks each) —
 * and EINVAL for a zero or huge length. `wrapFirst` (setting
 * `pagesWrapFirst`) checks the wrap first, as since v6.13; 6.12's
 * iopt_alloc_pages checks the length first.
 */
export function checkPagesRange(
  start: bigint,
  length: bigint,
  pageSize: bigint,
  file: boolean,
  wrapFirst = true,
): void {
  const wraps = () => {
    if (start + length - (file ? 1n : 0n) > U64_MAX)
      fail(
        'EOVERFLOW',
        `${file ? 'file offset' : 'user_va'} ${hex(start)} + length ${hex(length)} wraps`,
        'iopt_alloc_pages',
      );
  };
  if (wrapFirst) wraps();
  if (length === 0n || length > U64_MAX - pageSize)
    fail('EINVAL', `length ${hex(length)} is zero or too large`, 'iopt_alloc_pages');
  wraps();
}

/**
 * Create the page set for `[start, start+length)` of `source` and map it
 * at the command's IOVA (or an allocated one); returns the IOVA used.
 */
export function mapSource(
  ctx: IommufdCtx,
  caller: Caller,
  ioas: Ioas,
  source: PagesSource,
  start: bigint,
  cmd: { flags: number; length: bigint; iova: bigint },
  account?: PinAccount,
  dmabuf?: DmaBufExporter,
): bigint {
  // most maps that fail, fail this (24,564 of the selftest's 33,680): before anything is built
  ioas.iopt.checkMapLength(cmd.length);
  // iopt_alloc_pages asks capable(CAP_IPC_LOCK) as it allocates, but nothing
  // shows the answer before a page is pinned: it is asked then, or as the map
  // succeeds, so a map failing its checks reads no credentials. One call sees
  // one snapshot of them (LiveCredentials), so the answer is the same.
  const deferred = account ? undefined : new DeferredAccount(ctx, caller);
  const args = [
    source,
    start,
    cmd.length,
    (cmd.flags & IOMMU_IOAS_MAP_FLAGS.WRITEABLE) !== 0,
    account ?? deferred!,
    ctx.host.memory,
  ] as const;
  const pages = dmabuf ? new DmabufPages(...args, dmabuf) : new IoptPages(...args);
  const fixed = (cmd.flags & IOMMU_IOAS_MAP_FLAGS.FIXED_IOVA) !== 0;
  const slices = [{ pages, offset: 0n, length: cmd.length }];
  const iova = ioas.iopt.mapPages(
    slices,
    cmd.length,
    fixed ? cmd.iova : undefined,
    protOf(cmd.flags),
  );
  pages.account = account ?? deferred!.chosen();
  return iova;
}

/**
 * The caller's pin account, chosen at its first use (a pin, or the map's
 * success): a class, not a literal with a getter, which V8 would keep in
 * dictionary mode on every IOAS_MAP.
 */
class DeferredAccount implements PinAccount {
  private account: PinAccount | undefined;

  constructor(
    private readonly ctx: IommufdCtx,
    private readonly caller: Caller,
  ) {}

  chosen(): PinAccount {
    this.account ??= this.caller.pinAccount(this.ctx.accountMode);
    return this.account;
  }

  charge(npages: bigint): void {
    this.chosen().charge(npages);
  }

  uncharge(npages: bigint): void {
    this.chosen().uncharge(npages);
  }

  get owner(): PinOwner | undefined {
    return this.chosen().owner;
  }
}

/** IOMMU_IOAS_MAP */
export function ioasMap(
  ctx: IommufdCtx,
  caller: Caller,
  ucmd: Ucmd<V<typeof IommuIoasMap>>,
): number {
  const cmd = ucmd.cmd;
  if (cmd.__reserved !== 0) fail('EOPNOTSUPP', '__reserved is not zero', 'iommufd_ioas_map');
  checkMapFlags(cmd.flags, cmd.iova, cmd.length, 'iommufd_ioas_map');
  const ioas = ctx.get<Ioas>(cmd.ioas_id, 'ioas');
  const { pageSize } = ctx.host.memory;
  checkPagesRange(cmd.user_va, cmd.length, pageSize, false, ctx.host.personality.pagesWrapFirst);
  cmd.iova = mapSource(ctx, caller, ioas, caller.mm, cmd.user_va, cmd);
  ucmd.respond();
  return 0;
}

/**
 * The pages of a file that is not a dma-buf, as memfd_pin_folios() pins
 * them: nothing is checked when the range is mapped; each pin fails with
 * EINVAL when the file is neither shmem (memfd) nor hugetlbfs, or when the
 * pinned range runs past the file's size at that moment.
 */
function memfdPinSource(fd: number, pages: FileRef['pages']): PagesSource {
  return {
    file: true,
    resolve(start, length, write) {
      if (!pages) fail('EINVAL', `fd ${fd} is neither a memfd nor hugetlbfs`, 'memfd_pin_folios');
      if (length !== 0n && start + length > pages.size)
        fail(
          'EINVAL',
          `pinning ${hex(start)} + ${hex(length)} runs past the file's size ${hex(pages.size)}`,
          'memfd_pin_folios',
        );
      return pages.source.resolve(start, length, write);
    },
  };
}

/**
 * IOMMU_IOAS_MAP_FILE: like MAP with a file range instead of user VA. A
 * dma-buf is checked here (revoked, its size); any other file only when
 * its pages are pinned (memfdPinSource): with no domain and no access,
 * mapping a file that cannot be pinned succeeds.
 */
export function ioasMapFile(
  ctx: IommufdCtx,
  caller: Caller,
  ucmd: Ucmd<V<typeof IommuIoasMapFile>>,
): number {
  const cmd = ucmd.cmd;
  checkMapFlags(cmd.flags, cmd.iova, cmd.length, 'iommufd_ioas_map_file');
  const ioas = ctx.get<Ioas>(cmd.ioas_id, 'ioas');
  const file = caller.file(cmd.fd);
  if (!file) fail('EBADF', `fd ${cmd.fd} is not open`, 'iommufd_ioas_map_file');
  const pages = file.ref?.pages;
  checkPagesRange(cmd.start, cmd.length, ctx.host.memory.pageSize, true);
  const dmabuf = pages?.dmabuf;
  if (dmabuf) {
    if (cmd.start + cmd.length > pages.size)
      fail(
        'EINVAL',
        `start + length past the dma-buf's size ${hex(pages.size)}`,
        'iopt_alloc_dmabuf_pages',
      );
    if (dmabuf.revoked) fail('ENODEV', 'the dma-buf is revoked', 'iopt_map_dmabuf');
    dmabuf.iommufdMap?.();
  }
  // a dma-buf's pages are not charged (IOPT_PAGES_ACCOUNT_NONE)
  const account = dmabuf ? NO_ACCOUNT : undefined;
  const source = dmabuf ? pages.source : memfdPinSource(cmd.fd, pages);
  cmd.iova = mapSource(ctx, caller, ioas, source, cmd.start, cmd, account, dmabuf);
  ucmd.respond();
  return 0;
}

/**
 * need_charge_update(): a page set charged in 'mm' mode moves when the
 * process differs, in 'user' mode when the user or the process differs
 * (pinned_vm is per process); an uncharged one never does.
 */
function chargedElsewhere(account: PinAccount, now: PinAccount): boolean {
  const a = account.owner;
  const b = now.owner;
  if (!a || !b) return false;
  return a.mm !== b.mm || (a.mode === 'user' && a.user !== b.user);
}

/**
 * IOMMU_IOAS_CHANGE_PROCESS: charge the pinned pages of every IOAS of the
 * context to the calling process (and its user), each page set in its own
 * accounting mode. EOPNOTSUPP for a non-zero `__reserved`; EINVAL while any
 * area maps process memory (its pages belong to the old mm) or a dma-buf
 * rather than a file; ENOMEM if the caller's RLIMIT_MEMLOCK cannot take them, with
 * nothing changed. The old owners are uncharged after the new one is.
 */
export function ioasChangeProcess(
  ctx: IommufdCtx,
  caller: Caller,
  ucmd: Ucmd<V<typeof IommuIoasChangeProcess>>,
): number {
  if (ucmd.cmd.__reserved !== 0)
    fail('EOPNOTSUPP', '__reserved is not zero', 'iommufd_ioas_change_process');
  if (!caller.accountIn)
    fail('EOPNOTSUPP', 'the caller has no process to charge', 'iommufd_ioas_change_process');
  const sets = new Set<IoptPages>();
  for (const obj of ctx.list()) {
    if (!(obj instanceof Ioas)) continue;
    for (const area of obj.iopt.areas) {
      if (!area.pages.source.file)
        fail(
          'EINVAL',
          `area at ${hex(area.start)} maps process memory, not a file`,
          'iommufd_ioas_change_process',
        );
      if (area.pages.dmabuf)
        fail(
          'EINVAL',
          `area at ${hex(area.start)} maps a dma-buf, not a file`,
          'iommufd_ioas_change_process',
        );
      sets.add(area.pages);
    }
  }
  const moving = [...sets].filter((p) => {
    const owner = p.account.owner;
    return owner && chargedElsewhere(p.account, caller.accountIn!(owner.mode));
  });
  const totals = new Map<AccountMode, bigint>();
  for (const p of moving) {
    const mode = p.account.owner!.mode;
    totals.set(mode, (totals.get(mode) ?? 0n) + p.npinned);
  }
  const charged: [PinAccount, bigint][] = [];
  try {
    for (const [mode, n] of totals) {
      if (n === 0n) continue;
      const account = caller.accountIn(mode);
      account.charge(n);
      charged.push([account, n]);
    }
  } catch (e) {
    for (const [account, n] of charged) account.uncharge(n);
    throw e;
  }
  for (const p of moving) {
    p.account.uncharge(p.npinned);
    p.account = caller.accountIn(p.account.owner!.mode);
  }
  return 0;
}

/** IOMMU_IOAS_COPY: share the page sets behind a source range at a new IOVA. */
export function ioasCopy(ctx: IommufdCtx, ucmd: Ucmd<V<typeof IommuIoasCopy>>): number {
  const cmd = ucmd.cmd;
  if ((cmd.flags & ~MAP_FLAGS_ALL) !== 0)
    fail('EOPNOTSUPP', `unknown flags ${hex(cmd.flags & ~MAP_FLAGS_ALL)}`, 'iommufd_ioas_copy');
  if (cmd.length >= U64_MAX || cmd.src_iova >= U64_MAX || cmd.dst_iova >= U64_MAX)
    fail('EOVERFLOW', 'length, src_iova or dst_iova is U64_MAX', 'iommufd_ioas_copy');
  if (protOf(cmd.flags) === 0)
    fail('EINVAL', 'neither READABLE nor WRITEABLE', 'iommufd_ioas_copy');
  const src = ctx.get<Ioas>(cmd.src_ioas_id, 'ioas');
  const slices = src.iopt.getPages(cmd.src_iova, cmd.length);
  const dst = ctx.get<Ioas>(cmd.dst_ioas_id, 'ioas');
  const fixed = (cmd.flags & IOMMU_IOAS_MAP_FLAGS.FIXED_IOVA) !== 0;
  cmd.dst_iova = dst.iopt.mapPages(
    slices,
    cmd.length,
    fixed ? cmd.dst_iova : undefined,
    protOf(cmd.flags),
  );
  ucmd.respond();
  return 0;
}

/** IOMMU_IOAS_UNMAP: iova 0 + length U64_MAX unmaps everything. */
export function ioasUnmap(ctx: IommufdCtx, ucmd: Ucmd<V<typeof IommuIoasUnmap>>): number {
  const cmd = ucmd.cmd;
  const ioas = ctx.get<Ioas>(cmd.ioas_id, 'ioas');
  let unmapped: bigint;
  if (cmd.iova === 0n && cmd.length === U64_MAX) {
    unmapped = ioas.iopt.unmapAll();
  } else {
    if (cmd.iova >= U64_MAX || cmd.length >= U64_MAX)
      fail('EOVERFLOW', 'iova or length is U64_MAX', 'iommufd_ioas_unmap');
    unmapped = ioas.iopt.unmap(cmd.iova, cmd.length);
  }
  cmd.length = unmapped;
  ucmd.respond();
  return 0;
}

/** IOMMU_OPTION: RLIMIT_MODE (global) and HUGE_PAGES (per IOAS); writes back only val64. */
export function option(ctx: IommufdCtx, caller: Caller, ucmd: Ucmd<V<typeof IommuOption>>): number {
  const cmd = ucmd.cmd;
  if (cmd.__reserved !== 0) fail('EOPNOTSUPP', '__reserved is not zero', 'iommufd_option');
  if (cmd.option_id === IOMMU_OPTION_ID.RLIMIT_MODE) {
    if (cmd.object_id !== 0)
      fail('EOPNOTSUPP', 'RLIMIT_MODE takes object_id 0', 'iommufd_option_rlimit_mode');
    if (cmd.op === IOMMU_OPTION_OP.GET) {
      cmd.val64 = ctx.accountMode === 'mm' ? 1n : 0n;
    } else if (cmd.op === IOMMU_OPTION_OP.SET) {
      if (!caller.capSysResource)
        fail('EPERM', 'setting RLIMIT_MODE needs CAP_SYS_RESOURCE', 'iommufd_option_rlimit_mode');
      if (ctx.objectCount > 0)
        fail('EBUSY', 'the context already has objects', 'iommufd_option_rlimit_mode');
      if (cmd.val64 === 0n) ctx.accountMode = 'user';
      else if (cmd.val64 === 1n) ctx.accountMode = 'mm';
      else fail('EINVAL', `val64 ${cmd.val64} is neither 0 nor 1`, 'iommufd_option_rlimit_mode');
    } else fail('EOPNOTSUPP', `unknown op ${cmd.op}`, 'iommufd_option_rlimit_mode');
  } else if (cmd.option_id === IOMMU_OPTION_ID.HUGE_PAGES) {
    const ioas = ctx.get<Ioas>(cmd.object_id, 'ioas');
    if (cmd.op === IOMMU_OPTION_OP.GET) {
      cmd.val64 = ioas.iopt.disableLargePages ? 0n : 1n;
    } else if (cmd.op === IOMMU_OPTION_OP.SET) {
      if (cmd.val64 === 0n) ioas.iopt.setLargePages(false);
      else if (cmd.val64 === 1n) ioas.iopt.setLargePages(true);
      else
        fail('EINVAL', `val64 ${cmd.val64} is neither 0 nor 1`, 'iommufd_ioas_option_huge_pages');
    } else fail('EOPNOTSUPP', `unknown op ${cmd.op}`, 'iommufd_ioas_option_huge_pages');
  } else fail('EOPNOTSUPP', `unknown option_id ${cmd.option_id}`, 'iommufd_option');
  const val = new Uint8Array(8);
  new DataView(val.buffer).setBigUint64(0, cmd.val64, true);
  ucmd.mm.write(ucmd.addr + 16n, val);
  return 0;
}

/** IOMMU_VFIO_IOAS: get, set or clear the IOAS used by VFIO container compatibility. */
export function vfioIoas(ctx: IommufdCtx, ucmd: Ucmd<V<typeof IommuVfioIoas>>): number {
  const cmd = ucmd.cmd;
  if (cmd.__reserved !== 0) fail('EOPNOTSUPP', '__reserved is not zero', 'iommufd_vfio_ioas');
  switch (cmd.op) {
    case IOMMU_VFIO_IOAS_OP.GET: {
      const ioas = ctx.vfioIoas;
      if (!ioas) fail('ENODEV', 'no IOAS is set for VFIO compatibility', 'iommufd_vfio_ioas');
      cmd.ioas_id = ioas.id;
      ucmd.respond();
      return 0;
    }
    case IOMMU_VFIO_IOAS_OP.SET:
      ctx.vfioIoas = ctx.get<Ioas>(cmd.ioas_id, 'ioas');
      return 0;
    case IOMMU_VFIO_IOAS_OP.CLEAR:
      ctx.vfioIoas = undefined;
      return 0;
    default:
      fail('EOPNOTSUPP', `unknown op ${cmd.op}`, 'iommufd_vfio_ioas');
  }
}
