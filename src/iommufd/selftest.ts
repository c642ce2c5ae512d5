import { Errno, fail } from '../abi/errno.ts';
import {
  IOMMU_TEST_CMD_MIN_SIZE,
  IOMMU_TEST_CMD_NR,
  IOMMU_TEST_CMD_SIZE,
  IOMMU_TEST_OP,
  IOMMU_TEST_OP_LAST,
  IOMMU_VEVENTQ_TYPE_SELFTEST,
  IommuTestCmd,
  type IommuTestCmdAccessPages,
  type IommuTestCmdAccessReplaceIoas,
  type IommuTestCmdAccessRw,
  type IommuTestCmdAddReserved,
  type IommuTestCmdCheckDevCache,
  type IommuTestCmdCheckIotlb,
  type IommuTestCmdCheckMap,
  type IommuTestCmdCheckRefs,
  type IommuTestCmdCreateAccess,
  type IommuTestCmdDestroyAccessPages,
  type IommuTestCmdDirty,
  type IommuTestCmdDmabufGet,
  type IommuTestCmdDmabufRevoke,
  type IommuTestCmdMemoryLimit,
  type IommuTestCmdMockDomainFlags,
  type IommuTestCmdMockDomainReplace,
  type IommuTestCmdPasidAttach,
  type IommuTestCmdPasidCheck,
  type IommuTestCmdPasidDetach,
  type IommuTestCmdTriggerIopf,
  type IommuTestCmdTriggerVevent,
  IommuViommuEventSelftest,
  iommuTestCmdLayout,
  MOCK_ACCESS_RW_FLAGS,
  MOCK_DEV_CACHE_ID_MAX,
  MOCK_FLAGS_ACCESS,
  MOCK_FLAGS_ACCESS_CREATE,
  MOCK_NESTED_DOMAIN_IOTLB_ID_MAX,
  type SelftestAbi,
} from '../abi/iommufd-test.ts';
import { type Layout, U64_MAX, widthOf } from '../abi/layout.ts';
import { MockDevice } from '../drivers/mock/device.ts';
import { MockDomain } from '../drivers/mock/domain.ts';
import { MockIommu } from '../drivers/mock/driver.ts';
import { MockNestedDomain } from '../drivers/mock/nested.ts';
import type { Mm, PhysRun } from '../iommu/mm.ts';
import {
  type Caller,
  DmaBufAttachments,
  type DmaBufExporter,
  type FileOps,
  type FileRef,
} from '../kernel/file.ts';
import { type AccessOps, IommufdAccess, type PinnedRun } from './access.ts';
import type { IommufdCtx } from './context.ts';
import { IommufdDevice } from './device.ts';
import { HwptPaging } from './hw-pagetable.ts';
import { HwptNested } from './hwpt-nested.ts';
import type { Ioas } from './ioas.ts';
import type { ExtraCmd } from './main.ts';
import { IommufdObject } from './object.ts';
import { attachedAt, pasidAttach, pasidDetach, pasidReplace } from './pasid.ts';
import { Ucmd } from './ucmd.ts';

type V<L> = L extends Layout<infer T> ? T : never;

/** ACCESS_PAGES and ACCESS_RW refuse lengths above this (the kernel's kvzalloc guard): ENOMEM. */
const ACCESS_MAX_LENGTH = 16n << 20n;
/** SET_TEMP_MEMORY_LIMIT floor: sizeof(unsigned long) + sizeof(u32). */
const MEMORY_LIMIT_MIN = 12;
/** The temporary memory limit a host starts with. */
const MEMORY_LIMIT_DEFAULT = 65536;
/** kvzalloc() refuses more than INT_MAX bytes: the DIRTY bitmap is ENOMEM past it. */
const KVZALLOC_MAX = 0x7fffffffn;

/**
 * What the kernel keeps in selftest module globals, here per host: the mock
 * IOMMU serving every mock device, and the temporary memory limit.
 */
export interface SelftestState {
  readonly mock: MockIommu;
  /**
   * The host registers another IOMMU driver before the mock's (VT-d, a
   * POWER PHB): without a fwspec (setting `mockFwspec` false, 6.12) mock
   * devices are probed with that driver's ops and get no IOMMU.
   */
  readonly otherIommu: boolean;
  /** iommufd_test_memory_limit: bounds internal batch buffers only (default 65536). */
  memoryLimit: number;
}

/**
 * A TEST_CMD call decoded with its op's union member. The write-back keeps
 * the bytes the op's layout does not name, as the kernel echoes its whole
 * copy of the struct.
 */
class TestUcmd<T> extends Ucmd<T> {
  constructor(
    mm: Mm,
    addr: bigint,
    userSize: number,
    layout: Layout<T>,
    /** The struct as copied in, zero-extended to 72 bytes. */
    private readonly raw: Uint8Array,
  ) {
    super(mm, addr, userSize, layout, layout.decode(raw), raw);
  }

  override respond(): void {
    const out = this.raw.slice();
    const enc = this.layout.encode(this.cmd);
    for (const f of this.layout.fields) {
      out.set(enc.subarray(f.offset, f.offset + widthOf(f.type)), f.offset);
    }
    this.mm.write(this.addr, out.subarray(0, Math.min(this.userSize, IOMMU_TEST_CMD_SIZE)));
  }
}

// ---- objects ---------------------------------------------------------------------

/**
 * The SELFTEST object MOCK_DOMAIN returns (stdev): a mock device bound to
 * the context. DESTROY detaches its RID (an emptied auto domain goes with
 * it), unbinds the DEVICE object and unregisters the mock device.
 */
class SelftestDevice extends IommufdObject {
  readonly type = 'selftest';
  idev!: IommufdDevice;
  dev!: MockDevice;

  destroy(): void {
    this.idev.unbind();
    this.dev.unregister();
  }
}

/** A page range pinned by ACCESS_PAGES, until DESTROY_ACCESS_PAGES or an unmap over it. */
interface AccessItem {
  readonly iova: bigint;
  readonly length: bigint;
}

/**
 * The selftest access file (CREATE_ACCESS): an O_CLOEXEC anonymous file
 * owning an iommufd access and the items pinned through it. Item IDs count
 * from 0 per file and are never reused. Any unmap overlapping an item drops
 * it; close drops every item and destroys the access.
 */
class SelftestAccess implements FileOps, AccessOps {
  readonly kind = 'access';
  readonly access: IommufdAccess;
  readonly items = new Map<number, AccessItem>();
  private nextId = 0;

  constructor(
    ctx: IommufdCtx,
    readonly needsPinPages: boolean,
  ) {
    this.access = IommufdAccess.create(ctx, this);
  }

  /** Remember a pinned range; returns its item ID. */
  addItem(iova: bigint, length: bigint): number {
    const id = this.nextId++;
    this.items.set(id, { iova, length });
    return id;
  }

  /** Unpin and forget one item. */
  dropItem(id: number, item: AccessItem): void {
    this.items.delete(id);
    this.access.unpinPages(item.iova, item.length);
  }

  /** iommufd_test_access_unmap(): drop every item intersecting `[iova, iova+length-1]`. */
  unmap(iova: bigint, length: bigint): void {
    const last = BigInt.asUintN(64, iova + length - 1n);
    for (const [id, item] of this.items) {
      if (iova > item.iova + item.length - 1n || last < item.iova) continue;
      this.dropItem(id, item);
    }
  }

  release(): void {
    this.unmap(0n, U64_MAX);
    this.access.release();
  }
}

/** iommufd_access_get(): the selftest access behind fd `fd`; EBADFD for any other fd. */
function accessOf(caller: Caller, fd: number): SelftestAccess {
  const file = caller.file(fd);
  if (!(file instanceof SelftestAccess)) {
    fail('EBADFD', `fd ${fd} is not a selftest access fd`, 'iommufd_access_get');
  }
  return file;
}

/** get_md_pagetable(): ENOENT unless a HWPT_PAGING, EINVAL unless its domain is the mock's. */
function mockDomainOf(ctx: IommufdCtx, id: number): MockDomain {
  const hwpt = ctx.get<HwptPaging>(id, 'hwpt_paging');
  if (!(hwpt.domain instanceof MockDomain)) {
    fail('EINVAL', `HWPT ${id} is not a mock domain`, '__get_md_pagetable');
  }
  return hwpt.domain;
}

/**
 * MOCK_FLAGS_ACCESS_SYZ: `iova` is {u32 nth_area, u32 offset}; the result is
 * the start of the access's nth area plus offset, or 0 without one.
 */
function syzIova(access: IommufdAccess, iova: bigint): bigint {
  let nth = iova & 0xffff_ffffn;
  for (const area of access.ioas?.iopt.areas ?? []) {
    if (nth-- === 0n) return area.start + (iova >> 32n);
  }
  return 0n;
}

// ---- ops ---------------------------------------------------------------------------

/**
 * ADD_RESERVED: reserve `[start, start+length-1]` in IOAS `id`, owned by
 * nobody. EINVAL for length 0 and EOVERFLOW for a range past U64_MAX, both
 * before the IOAS lookup.
 */
function addReserved(ctx: IommufdCtx, u: Ucmd<V<typeof IommuTestCmdAddReserved>>): number {
  const { start, length } = u.cmd;
  const where = 'iommufd_test_add_reserved';
  if (length === 0n) fail('EINVAL', 'length 0', where);
  if (start + length - 1n > U64_MAX) fail('EOVERFLOW', 'start + length - 1 passes U64_MAX', where);
  const ioas = ctx.get<Ioas>(u.cmd.id, 'ioas');
  ioas.iopt.reserve(start, start + length - 1n, null);
  return 0;
}

/**
 * MOCK_DOMAIN(_FLAGS): IDs in the order stdev, idev, then (if no auto
 * domain of the IOAS fits) a new auto HWPT; everything is undone on failure.
 */
function mockDomain(
  ctx: IommufdCtx,
  state: SelftestState,
  u: Ucmd<V<typeof IommuTestCmdMockDomainFlags>>,
  devFlags: number,
): number {
  const stdev = new SelftestDevice();
  const undo: (() => void)[] = [];
  try {
    ctx.allocId(stdev);
    undo.push(() => ctx.abort(stdev));
    const dev = state.mock.createDevice(ctx.host.memory, devFlags);
    undo.push(() => dev.unregister());
    if (state.otherIommu && !ctx.host.personality.mockFwspec)
      fail(
        'EINVAL',
        'the mock device was probed by the first IOMMU driver registered (not the mock) and has no IOMMU',
        'iommufd_device_bind',
      );
    const idev = IommufdDevice.bind(ctx, dev, { holdsContext: false });
    undo.push(() => idev.unbind());
    const hwpt = idev.attach(u.cmd.id);
    undo.push(() => idev.detach());
    u.cmd.out_stdev_id = stdev.id;
    u.cmd.out_hwpt_id = hwpt.id;
    u.cmd.out_idev_id = idev.id;
    u.respond();
    stdev.idev = idev;
    stdev.dev = dev;
  } catch (e) {
    for (const step of undo.reverse()) step();
    throw e;
  }
  ctx.finalize(stdev);
  return 0;
}

/** MOCK_DOMAIN_REPLACE: move stdev `id`'s RID to `pt_id`; writes back the HWPT used. */
function mockDomainReplace(
  ctx: IommufdCtx,
  u: Ucmd<V<typeof IommuTestCmdMockDomainReplace>>,
): number {
  const stdev = ctx.get<SelftestDevice>(u.cmd.id, 'selftest');
  u.cmd.pt_id = stdev.idev.attach(u.cmd.pt_id).id;
  u.respond();
  return 0;
}

/**
 * MD_CHECK_MAP: every IOPTE of `[iova, iova+length)` in mock HWPT `id` maps
 * the page now behind the matching byte of `uptr` (EINVAL otherwise; EFAULT
 * for an unmapped VA). Alignment to half a page is checked before the HWPT
 * lookup; 7.2 looks up first and aligns to the domain's smallest IOPTE.
 */
function checkMap(
  ctx: IommufdCtx,
  caller: Caller,
  u: Ucmd<V<typeof IommuTestCmdCheckMap>>,
  state: SelftestState,
): number {
  const { iova, length, uptr } = u.cmd;
  const ps = caller.mm.pageSize;
  // 7.2 looks the HWPT up first and checks against its smallest IOPTE
  const iommupt = state.mock.abi === '7.2';
  const first = iommupt ? mockDomainOf(ctx, u.cmd.id) : undefined;
  const io = first ? first.ioPageSize : ps / 2n;
  const where = 'iommufd_test_md_check_pa';
  if (iova % io !== 0n || length % io !== 0n || uptr % io !== 0n || uptr + length > U64_MAX) {
    fail(
      'EINVAL',
      `iova, length or uptr not aligned to 0x${io.toString(16)}, or uptr wraps`,
      where,
    );
  }
  const domain = first ?? mockDomainOf(ctx, u.cmd.id);
  for (let k = 0n; k < length; k += io) {
    const va = uptr + k;
    const page = caller.mm.resolve(va - (va % ps), ps, false)[0]!;
    if (domain.iovaToPhys(BigInt.asUintN(64, iova + k)) !== page.phys + (va % ps)) {
      fail('EINVAL', `IOPTE at 0x${(iova + k).toString(16)} does not map the user page`, where);
    }
  }
  return 0;
}

/**
 * MD_CHECK_REFS: every page of `[uptr, uptr+length)` holds exactly `refs`
 * long-term pins (EIO otherwise); compound pages are skipped.
 */
function checkRefs(
  ctx: IommufdCtx,
  caller: Caller,
  u: Ucmd<V<typeof IommuTestCmdCheckRefs>>,
): number {
  const { length, uptr, refs } = u.cmd;
  const ps = caller.mm.pageSize;
  const where = 'iommufd_test_md_check_refs';
  if (length % ps !== 0n || uptr % ps !== 0n || uptr + length > U64_MAX) {
    fail('EINVAL', 'length or uptr not page aligned, or uptr wraps', where);
  }
  const memory = ctx.host.memory;
  // the whole range in one resolve; when some page faults, page by page, so
  // that a page with other pins before it still answers EIO
  let runs: PhysRun[] | undefined;
  try {
    runs = caller.mm.resolve(uptr, length, false);
  } catch (e) {
    if (!(e instanceof Errno)) throw e;
  }
  let run = 0;
  for (let k = 0n; k < length; k += ps) {
    const va = uptr + k;
    while (runs && runs[run]!.va + runs[run]!.length <= va) run++;
    const phys = runs
      ? runs[run]!.phys + (va - runs[run]!.va)
      : caller.mm.resolve(va, ps, false)[0]!.phys;
    if (!memory.isCompound(phys) && memory.pinCount(phys) !== refs) {
      fail('EIO', `page at 0x${(uptr + k).toString(16)} has ${memory.pinCount(phys)} pins`, where);
    }
  }
  return 0;
}

/**
 * DEV_CHECK_CACHE: device-cache slot `check_dev_cache_id` of the mock
 * device behind DEVICE `id` holds `cache`; EINVAL otherwise.
 */
function checkDevCache(ctx: IommufdCtx, u: Ucmd<V<typeof IommuTestCmdCheckDevCache>>): number {
  const dev = ctx.get<IommufdDevice>(u.cmd.id, 'device').dev;
  const slot = u.cmd.check_dev_cache_id;
  if (
    !(dev instanceof MockDevice) ||
    slot > MOCK_DEV_CACHE_ID_MAX ||
    dev.cache[slot] !== u.cmd.cache
  ) {
    fail(
      'EINVAL',
      `cache slot ${slot} does not hold 0x${u.cmd.cache.toString(16)}`,
      'iommufd_test_dev_check_cache',
    );
  }
  return 0;
}

/**
 * MD_CHECK_IOTLB: IOTLB slot `check_iotlb_id` of mock nested HWPT `id`
 * holds `iotlb`; ENOENT unless a nested HWPT, EINVAL otherwise.
 */
function checkIotlb(ctx: IommufdCtx, u: Ucmd<V<typeof IommuTestCmdCheckIotlb>>): number {
  const domain = ctx.get<HwptNested>(u.cmd.id, 'hwpt_nested').domain;
  const where = 'iommufd_test_md_check_iotlb';
  if (!(domain instanceof MockNestedDomain)) fail('EINVAL', 'not a mock nested domain', where);
  const slot = u.cmd.check_iotlb_id;
  if (slot > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX || domain.iotlb[slot] !== u.cmd.iotlb) {
    fail('EINVAL', `IOTLB slot ${slot} does not hold 0x${u.cmd.iotlb.toString(16)}`, where);
  }
  return 0;
}

/**
 * TRIGGER_VEVENT: report a selftest vEVENT {virt_id} for DEVICE `dev_id`
 * to the vIOMMU captured at its last nested attach. ENOENT without one (or
 * with virt_id 0); EOPNOTSUPP without a selftest vEVENTQ there.
 */
function triggerVevent(ctx: IommufdCtx, u: Ucmd<V<typeof IommuTestCmdTriggerVevent>>): number {
  const dev = ctx.get<IommufdDevice>(u.cmd.dev_id, 'device').dev;
  if (!(dev instanceof MockDevice) || !dev.viommu || dev.vdevId === 0n) {
    fail('ENOENT', 'device has no vIOMMU or no virtual ID', 'iommufd_test_trigger_vevent');
  }
  const payload = IommuViommuEventSelftest.encode({ virt_id: Number(dev.vdevId & 0xffff_ffffn) });
  dev.viommu.core.reportEvent(IOMMU_VEVENTQ_TYPE_SELFTEST, payload);
  return 0;
}

/**
 * CREATE_ACCESS: an access on IOAS `id` behind a new fd (written back). The
 * struct is written back once unchanged before the fd is installed, so a
 * faulting write-back leaves no fd behind, as in the kernel. No free fd is
 * ENOMEM (the kernel turns get_unused_fd_flags' EMFILE into it); the model
 * allocates the fd last, so a bad IOAS id is ENOENT even then, where the
 * kernel, allocating first, answers ENOMEM.
 */
function createAccess(
  ctx: IommufdCtx,
  caller: Caller,
  u: Ucmd<V<typeof IommuTestCmdCreateAccess>>,
): number {
  const { flags } = u.cmd;
  if ((flags & ~MOCK_FLAGS_ACCESS_CREATE.NEEDS_PIN_PAGES) !== 0) {
    fail('EOPNOTSUPP', `unknown flags 0x${flags.toString(16)}`, 'iommufd_test_create_access');
  }
  const staccess = new SelftestAccess(
    ctx,
    (flags & MOCK_FLAGS_ACCESS_CREATE.NEEDS_PIN_PAGES) !== 0,
  );
  try {
    staccess.access.attach(u.cmd.id);
    u.respond();
  } catch (e) {
    staccess.access.release();
    throw e;
  }
  try {
    // a failed install releases the file, and with it the access
    u.cmd.out_access_fd = caller.installFile(staccess);
  } catch (e) {
    if (e instanceof Errno && e.code === 'EMFILE')
      fail('ENOMEM', 'no free fd for the access', 'iommufd_test_create_access');
    throw e;
  }
  u.respond();
  return 0;
}

/** The pinned pages must be the pages now behind `uptr` page by page; EBADE otherwise. */
function checkPages(mm: Mm, uptr: bigint, runs: PinnedRun[], npages: bigint): void {
  const ps = mm.pageSize;
  const pinned = function* () {
    for (const r of runs) for (let o = 0n; o < r.length; o += ps) yield r.phys + o;
  };
  const it = pinned();
  for (let i = 0n; i < npages; i++) {
    const phys = mm.resolve(BigInt.asUintN(64, uptr + i * ps), ps, false)[0]!.phys;
    if (it.next().value !== phys) {
      fail('EBADE', `page ${i} is not the user's page`, 'iommufd_test_check_pages');
    }
  }
}

/**
 * ACCESS_PAGES: pin `[iova, iova+length)` through access fd `id` as a new
 * item (ID written back); unless `uptr` is 0, the pinned pages must be the
 * ones behind `uptr`.
 */
function accessPages(caller: Caller, u: Ucmd<V<typeof IommuTestCmdAccessPages>>): number {
  const { flags, length, uptr } = u.cmd;
  const where = 'iommufd_test_access_pages';
  if (length > ACCESS_MAX_LENGTH) fail('ENOMEM', 'length above 16 MiB', where);
  if ((flags & ~(MOCK_FLAGS_ACCESS.WRITE | MOCK_FLAGS_ACCESS.SYZ)) !== 0) {
    fail('EOPNOTSUPP', `unknown flags 0x${flags.toString(16)}`, where);
  }
  const staccess = accessOf(caller, u.cmd.id);
  if (!staccess.needsPinPages) fail('EOPNOTSUPP', 'access made without NEEDS_PIN_PAGES', where);
  const access = staccess.access;
  const iova = flags & MOCK_FLAGS_ACCESS.SYZ ? syzIova(access, u.cmd.iova) : u.cmd.iova;
  const runs = access.pinPages(iova, length, (flags & MOCK_FLAGS_ACCESS.WRITE) !== 0);
  try {
    const ps = caller.mm.pageSize;
    if (uptr !== 0n) {
      const npages = (iova + length + ps - 1n) / ps - iova / ps;
      checkPages(caller.mm, uptr - (iova % ps), runs, npages);
    }
    const id = staccess.addItem(iova, length);
    u.cmd.out_access_pages_id = id;
    try {
      u.respond();
    } catch (e) {
      staccess.items.delete(id);
      throw e;
    }
  } catch (e) {
    access.unpinPages(iova, length);
    throw e;
  }
  return 0;
}

/** DESTROY_ACCESS_PAGES: unpin item `access_pages_id` of access fd `id`; ENOENT if absent. */
function destroyAccessPages(
  caller: Caller,
  u: Ucmd<V<typeof IommuTestCmdDestroyAccessPages>>,
): number {
  const staccess = accessOf(caller, u.cmd.id);
  const item = staccess.items.get(u.cmd.access_pages_id);
  if (!item) {
    fail('ENOENT', `no item ${u.cmd.access_pages_id}`, 'iommufd_test_access_item_destroy');
  }
  staccess.dropItem(u.cmd.access_pages_id, item);
  return 0;
}

/** ACCESS_RW: copy between `uptr` and `[iova, iova+length)` through access fd `id`. */
function accessRw(caller: Caller, u: Ucmd<V<typeof IommuTestCmdAccessRw>>): number {
  const { flags, length, uptr } = u.cmd;
  const where = 'iommufd_test_access_rw';
  if (length > ACCESS_MAX_LENGTH) fail('ENOMEM', 'length above 16 MiB', where);
  const all =
    MOCK_ACCESS_RW_FLAGS.WRITE | MOCK_ACCESS_RW_FLAGS.SLOW_PATH | MOCK_ACCESS_RW_FLAGS.SYZ;
  if ((flags & ~all) !== 0) fail('EOPNOTSUPP', `unknown flags 0x${flags.toString(16)}`, where);
  const access = accessOf(caller, u.cmd.id).access;
  const write = (flags & MOCK_ACCESS_RW_FLAGS.WRITE) !== 0;
  const buf = write ? caller.mm.read(uptr, Number(length)) : new Uint8Array(Number(length));
  const iova = flags & MOCK_ACCESS_RW_FLAGS.SYZ ? syzIova(access, u.cmd.iova) : u.cmd.iova;
  access.rw(
    iova,
    buf,
    flags & (MOCK_ACCESS_RW_FLAGS.WRITE | MOCK_ACCESS_RW_FLAGS.SLOW_PATH),
    caller.mm,
  );
  if (!write) caller.mm.write(uptr, buf);
  return 0;
}

/** ACCESS_REPLACE_IOAS: move access fd `id` to IOAS `ioas_id`, dropping every item. */
function accessReplaceIoas(
  caller: Caller,
  u: Ucmd<V<typeof IommuTestCmdAccessReplaceIoas>>,
): number {
  accessOf(caller, u.cmd.id).access.replace(u.cmd.ioas_id);
  return 0;
}

/** SET_TEMP_MEMORY_LIMIT: EINVAL below 12 bytes. */
function setMemoryLimit(state: SelftestState, u: Ucmd<V<typeof IommuTestCmdMemoryLimit>>): number {
  if (u.cmd.limit < MEMORY_LIMIT_MIN) {
    fail('EINVAL', `limit ${u.cmd.limit} below ${MEMORY_LIMIT_MIN} bytes`, 'iommufd_test');
  }
  state.memoryLimit = u.cmd.limit;
  return 0;
}

/** 7.2's DIRTY takes at most 16 MiB of bitmap (SZ_16M * BITS_PER_BYTE bits): EOVERFLOW past it. */
const DIRTY_MAX_BITS_7_2 = (16n << 20n) * 8n;

/**
 * DIRTY: for each set bit i of the bitmap at `uptr`, mark dirty the IOPTE
 * holding iova + i*page_size. Up to 6.18 the kernel keys IOPTEs by
 * (iova + i*page_size) / page_size (right for page_size = IOPTE size),
 * refuses a bitmap kvzalloc() cannot hold (ENOMEM) and counts the IOPTEs
 * that existed; 7.2 (generic page table) refuses more than 2^27 bits
 * (EOVERFLOW, before the HWPT lookup) and counts every set bit.
 */
function dirty(
  ctx: IommufdCtx,
  caller: Caller,
  u: Ucmd<V<typeof IommuTestCmdDirty>>,
  state: SelftestState,
): number {
  const { iova, length, page_size, uptr } = u.cmd;
  const where = 'iommufd_test_dirty';
  if (
    page_size === 0n ||
    length === 0n ||
    iova % page_size !== 0n ||
    length % page_size !== 0n ||
    uptr === 0n
  ) {
    fail('EINVAL', 'page_size or length 0, iova or length not page_size aligned, or uptr 0', where);
  }
  const iommupt = state.mock.abi === '7.2';
  const nbits = length / page_size;
  if (iommupt && nbits > DIRTY_MAX_BITS_7_2) fail('EOVERFLOW', 'more than 2^27 bits', where);
  const domain = mockDomainOf(ctx, u.cmd.id);
  if (!domain.dirtyTracking) fail('EINVAL', 'dirty tracking is off', where);
  const nbytes = (nbits + 7n) / 8n;
  if (nbytes > KVZALLOC_MAX) fail('ENOMEM', 'bitmap larger than kvzalloc() allows', where);
  const bitmap = caller.mm.read(uptr, Number(nbytes));
  // bit i is the IOPTE at first + i*step: 7.2 iova + i*page_size; before, the one
  // numbered (iova + i*page_size) / page_size, which is iova/page_size + i (iova is aligned)
  const first = iommupt ? iova : (iova / page_size) * domain.ioPageSize;
  const step = iommupt ? page_size : domain.ioPageSize;
  const bitStep = Array.from({ length: 32 }, (_, b) => BigInt(b) * step);
  const words = new DataView(bitmap.buffer, bitmap.byteOffset, bitmap.byteLength);
  const n = Number(nbits);
  let count = 0;
  // a 32-bit word at a time, zero words skipped; the set bits of a word lowest first
  for (let pos = 0; pos < bitmap.length; pos += 4) {
    let bits = pos + 4 <= bitmap.length ? words.getUint32(pos, true) : tailWord(bitmap, pos);
    if (bits === 0) continue;
    const at = first + BigInt(pos * 8) * step;
    while (bits !== 0) {
      const b = 31 - Math.clz32(bits & -bits);
      bits &= bits - 1;
      if (pos * 8 + b >= n) break;
      if (domain.markDirty(at + bitStep[b]!) || iommupt) count++;
    }
  }
  u.cmd.out_nr_dirty = BigInt(count);
  u.respond();
  return 0;
}

/** The 1 to 3 bytes of `bytes` from `pos` as a little-endian word. */
function tailWord(bytes: Uint8Array, pos: number): number {
  let w = 0;
  for (let k = bytes.length - 1; k >= pos; k--) w = (w << 8) | bytes[k]!;
  return w;
}

/**
 * TRIGGER_IOPF: DEVICE `dev_id` (ENOENT otherwise) raises one page request
 * (LAST_PAGE; PASID_VALID iff `pasid` != 0). It goes to the fault queue of
 * the HWPT attached at that PASID; a PASID without one falls back to the
 * RID's HWPT only if that is nested (the mock keeps a user PASID table).
 * Without a fault-capable HWPT the fault is dropped; the answer is 0 anyway.
 */
function triggerIopf(ctx: IommufdCtx, u: Ucmd<V<typeof IommuTestCmdTriggerIopf>>): number {
  const idev = ctx.get<IommufdDevice>(u.cmd.dev_id, 'device');
  const { pasid, grpid, perm, addr } = u.cmd;
  let at = attachedAt(idev, pasid);
  if (!at && pasid !== 0) {
    const rid = attachedAt(idev, 0);
    if (rid?.hwpt instanceof HwptNested) at = rid;
  }
  at?.hwpt.fault?.report(at.handle, [{ pasid, grpid, perm, addr }]);
  return 0;
}

/** PASID_ATTACH: attach stdev `id` at `pasid` to `pt_id` (written back with the HWPT used). */
function pasidAttachOp(ctx: IommufdCtx, u: Ucmd<V<typeof IommuTestCmdPasidAttach>>): number {
  const idev = ctx.get<SelftestDevice>(u.cmd.id, 'selftest').idev;
  u.cmd.pt_id = pasidAttach(idev, u.cmd.pasid, u.cmd.pt_id).id;
  try {
    u.respond();
  } catch (e) {
    pasidDetach(idev, u.cmd.pasid);
    throw e;
  }
  return 0;
}

/** PASID_REPLACE: move stdev `id`'s attachment at `pasid` to `pt_id` (written back). */
function pasidReplaceOp(ctx: IommufdCtx, u: Ucmd<V<typeof IommuTestCmdPasidAttach>>): number {
  const idev = ctx.get<SelftestDevice>(u.cmd.id, 'selftest').idev;
  u.cmd.pt_id = pasidReplace(idev, u.cmd.pasid, u.cmd.pt_id).id;
  u.respond();
  return 0;
}

/** PASID_DETACH: detach stdev `id` at `pasid`; 0 even when nothing is attached. */
function pasidDetachOp(ctx: IommufdCtx, u: Ucmd<V<typeof IommuTestCmdPasidDetach>>): number {
  pasidDetach(ctx.get<SelftestDevice>(u.cmd.id, 'selftest').idev, u.cmd.pasid);
  return 0;
}

/**
 * PASID_CHECK_HWPT: `hwpt_id` 0 asks that nothing is attached at `pasid`;
 * otherwise it must name an HWPT (ENOENT if absent, EINVAL if another type)
 * whose domain is the one attached there. EINVAL when the check fails.
 */
function pasidCheck(ctx: IommufdCtx, u: Ucmd<V<typeof IommuTestCmdPasidCheck>>): number {
  const idev = ctx.get<SelftestDevice>(u.cmd.id, 'selftest').idev;
  const domain = attachedAt(idev, u.cmd.pasid)?.hwpt.domain;
  const where = 'iommufd_test_pasid_check_hwpt';
  if (u.cmd.hwpt_id === 0) {
    if (domain) fail('EINVAL', 'PASID attached', where);
    return 0;
  }
  const obj = ctx.lookup(u.cmd.hwpt_id);
  if (!obj) fail('ENOENT', `no object ${u.cmd.hwpt_id}`, 'iommufd_get_object');
  if (!(obj instanceof HwptPaging || obj instanceof HwptNested)) {
    fail('EINVAL', `object ${u.cmd.hwpt_id} is not an HWPT`, 'iommufd_get_hwpt');
  }
  if (domain !== obj.domain) fail('EINVAL', 'another domain is attached', where);
  return 0;
}

/** The selftest's dma-buf (7.2): kernel memory exported as a dma-buf fd. */
class TestDmaBuf implements FileOps, DmaBufExporter {
  readonly kind = 'dmabuf';
  revoked = false;
  readonly ref: FileRef;
  readonly attachments = new DmaBufAttachments();

  constructor(private readonly memory: FileOps & { readonly ref: FileRef }) {
    const pages = memory.ref.pages!;
    this.ref = { pages: { source: pages.source, size: pages.size, dmabuf: this } };
  }

  attach(invalidate: () => void): () => void {
    return this.attachments.attach(invalidate);
  }

  release(): void {
    this.memory.release();
  }
}

/** Largest test dma-buf: 512 pages. */
const DMABUF_MAX_PAGES = 512n;

/**
 * DMABUF_GET: a zeroed test dma-buf of `length` rounded up to pages
 * (EINVAL for 0 or above 512 pages), returned as a new fd. `open_flags`
 * (O_CLOEXEC, O_RDWR) are not modelled.
 */
function dmabufGet(
  ctx: IommufdCtx,
  caller: Caller,
  u: Ucmd<V<typeof IommuTestCmdDmabufGet>>,
): number {
  const pageSize = ctx.host.memory.pageSize;
  const len = ((BigInt(u.cmd.length) + pageSize - 1n) / pageSize) * pageSize;
  if (len === 0n || len > pageSize * DMABUF_MAX_PAGES) {
    fail('EINVAL', 'length 0 or above 512 pages', 'iommufd_test_dmabuf_get');
  }
  return caller.installFile(new TestDmaBuf(ctx.host.memfd(len)));
}

/**
 * DMABUF_REVOKE: set whether the test dma-buf `dmabuf_fd` is revoked
 * (EBADF if not open, EINVAL for another file, EOPNOTSUPP for another
 * exporter's dma-buf). Either way its importers are told
 * (dma_buf_invalidate_mappings): iommufd unmaps the areas mapping it for
 * good. A revoked buffer cannot be mapped (MAP_FILE ENODEV).
 */
function dmabufRevoke(caller: Caller, u: Ucmd<V<typeof IommuTestCmdDmabufRevoke>>): number {
  const file = caller.file(u.cmd.dmabuf_fd);
  if (!file) fail('EBADF', `fd ${u.cmd.dmabuf_fd} is not open`, 'dma_buf_get');
  const dmabuf = file.ref?.pages?.dmabuf;
  if (!dmabuf) fail('EINVAL', 'not a dma-buf', 'dma_buf_get');
  if (!(dmabuf instanceof TestDmaBuf)) {
    fail('EOPNOTSUPP', "another exporter's dma-buf", 'iommufd_test_dmabuf_revoke');
  }
  dmabuf.revoked = u.cmd.revoked !== 0;
  dmabuf.attachments.invalidate();
  return 0;
}

// ---- dispatch ----------------------------------------------------------------------

// biome-ignore lint/suspicious/noExplicitAny: each op decodes its own union member
type OpHandler = (ctx: IommufdCtx, caller: Caller, u: Ucmd<any>, state: SelftestState) => number;

const OPS: ReadonlyMap<number, OpHandler> = new Map<number, OpHandler>([
  [IOMMU_TEST_OP.ADD_RESERVED, (ctx, _c, u) => addReserved(ctx, u)],
  [IOMMU_TEST_OP.MOCK_DOMAIN, (ctx, _c, u, s) => mockDomain(ctx, s, u, 0)],
  [IOMMU_TEST_OP.MOCK_DOMAIN_FLAGS, (ctx, _c, u, s) => mockDomain(ctx, s, u, u.cmd.dev_flags)],
  [IOMMU_TEST_OP.MOCK_DOMAIN_REPLACE, (ctx, _c, u) => mockDomainReplace(ctx, u)],
  [IOMMU_TEST_OP.MD_CHECK_MAP, checkMap],
  [IOMMU_TEST_OP.MD_CHECK_REFS, checkRefs],
  [IOMMU_TEST_OP.DEV_CHECK_CACHE, (ctx, _c, u) => checkDevCache(ctx, u)],
  [IOMMU_TEST_OP.CREATE_ACCESS, createAccess],
  [IOMMU_TEST_OP.ACCESS_PAGES, (_x, c, u) => accessPages(c, u)],
  [IOMMU_TEST_OP.DESTROY_ACCESS_PAGES, (_x, c, u) => destroyAccessPages(c, u)],
  [IOMMU_TEST_OP.ACCESS_RW, (_x, c, u) => accessRw(c, u)],
  [IOMMU_TEST_OP.ACCESS_REPLACE_IOAS, (_x, c, u) => accessReplaceIoas(c, u)],
  [IOMMU_TEST_OP.SET_TEMP_MEMORY_LIMIT, (_x, _c, u, s) => setMemoryLimit(s, u)],
  [IOMMU_TEST_OP.DIRTY, dirty],
  [IOMMU_TEST_OP.MD_CHECK_IOTLB, (ctx, _c, u) => checkIotlb(ctx, u)],
  [IOMMU_TEST_OP.TRIGGER_VEVENT, (ctx, _c, u) => triggerVevent(ctx, u)],
  [IOMMU_TEST_OP.TRIGGER_IOPF, (ctx, _c, u) => triggerIopf(ctx, u)],
  [IOMMU_TEST_OP.PASID_ATTACH, (ctx, _c, u) => pasidAttachOp(ctx, u)],
  [IOMMU_TEST_OP.PASID_REPLACE, (ctx, _c, u) => pasidReplaceOp(ctx, u)],
  [IOMMU_TEST_OP.PASID_DETACH, (ctx, _c, u) => pasidDetachOp(ctx, u)],
  [IOMMU_TEST_OP.PASID_CHECK_HWPT, (ctx, _c, u) => pasidCheck(ctx, u)],
  [IOMMU_TEST_OP.DMABUF_GET, dmabufGet],
  [IOMMU_TEST_OP.DMABUF_REVOKE, (_x, c, u) => dmabufRevoke(c, u)],
]);

/**
 * IOMMU_TEST_CMD (CONFIG_IOMMUFD_TEST) for one host: give each `Kernel` its
 * own, since it carries that host's mock IOMMU and selftest globals.
 * `abi` is the selftest generation (the kernel's `selftestAbi`); ops it
 * lacks and unknown ops answer EOPNOTSUPP. `otherIommu`: the host has an
 * IOMMU driver besides the mock (see SelftestState).
 *
 * @example
 * const kernel = new Kernel({ selftestCmd: selftestCmd() });
 */
export function selftestCmd(
  abi: SelftestAbi = '6.18',
  otherIommu = false,
): ExtraCmd & { readonly state: SelftestState } {
  const state: SelftestState = {
    mock: new MockIommu(abi),
    otherIommu,
    memoryLimit: MEMORY_LIMIT_DEFAULT,
  };
  const lastOp = IOMMU_TEST_OP_LAST[abi];
  return {
    state,
    cmd: {
      name: 'IOMMU_TEST_CMD',
      nr: IOMMU_TEST_CMD_NR,
      layout: IommuTestCmd,
      minSize: IOMMU_TEST_CMD_MIN_SIZE,
    },
    handler(ctx, caller, ucmd: Ucmd<V<typeof IommuTestCmd>>) {
      const op = ucmd.cmd.op <= lastOp ? OPS.get(ucmd.cmd.op) : undefined;
      const layout = iommuTestCmdLayout(ucmd.cmd.op);
      if (!op || !layout) fail('EOPNOTSUPP', `unknown op ${ucmd.cmd.op}`, 'iommufd_test');

      // the header layout is the whole struct: its copy is the op's
      let raw = ucmd.bytes;
      if (raw.length < IOMMU_TEST_CMD_SIZE) {
        raw = new Uint8Array(IOMMU_TEST_CMD_SIZE);
        raw.set(ucmd.bytes);
      }
      return op(ctx, caller, new TestUcmd(caller.mm, ucmd.addr, ucmd.userSize, layout, raw), state);
    },
  };
}
