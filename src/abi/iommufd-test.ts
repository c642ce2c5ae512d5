/**
 * The iommufd selftest uAPI (drivers/iommu/iommufd/iommufd_test.h, read at
 * torvalds/linux 20896914): the `IOMMU_TEST_CMD` ioctl that drives the mock
 * IOMMU driver, its op numbers and flags, and the mock driver's constants and
 * data structs.
 *
 * `struct iommu_test_cmd` is 72 bytes: a header (size@0, op@4, id@8,
 * __reserved@12), a 48-byte union at 16..63, and `last`@64 (u32, never read;
 * its end, 68, is the minimum size). The union members overlap, so there is
 * one full 72-byte layout per member, `IommuTestCmd<Member>`, holding the
 * header plus that member's fields at their absolute offsets. Field names are
 * the C member-field names, except where one collides with a header name:
 * `check_iotlb.id` → `check_iotlb_id`, `check_dev_cache.id` → `check_dev_cache_id`.
 *
 * @example
 * const op = IommuTestCmd.decode(bytes).op;
 * const layout = iommuTestCmdLayout(op); // e.g. IommuTestCmdMockDomain
 */

import { IOMMUFD_CMD_BASE, IOMMUFD_TYPE, type IoctlAbi, io } from './ioctl.ts';
import { type Field, field, type Layout, struct } from './layout.ts';

/**
 * Generations of the selftest uAPI (a test module's uAPI changes with the
 * kernel): '6.12' ops ADD_RESERVED..TRIGGER_IOPF, device flags NO_DIRTY and
 * HUGE_IOVA; '6.18' adds DEV_CHECK_CACHE..PASID_CHECK_HWPT and the PASID
 * device flag; '7.2' (the mock on the generic page table, v6.19) drops
 * HUGE_IOVA, takes `struct iommu_hwpt_selftest` with `pagetable_type` for
 * paging domains too, and adds DMABUF_GET and DMABUF_REVOKE.
 */
export type SelftestAbi = '6.12' | '6.18' | '7.2';

/** `_IOC_NR` of IOMMU_TEST_CMD: IOMMUFD_CMD_BASE + 32. */
export const IOMMU_TEST_CMD_NR = IOMMUFD_CMD_BASE + 32;

/** The IOMMU_TEST_CMD request number under an ABI: generic 0x3ba0, powerpc 0x20003ba0. */
export function iommuTestCmdNumber(abi: IoctlAbi): number {
  return io(abi, IOMMUFD_TYPE, IOMMU_TEST_CMD_NR);
}

/** sizeof(struct iommu_test_cmd). */
export const IOMMU_TEST_CMD_SIZE = 72;
/** offsetofend(struct iommu_test_cmd, last): a smaller `size` → EINVAL. */
export const IOMMU_TEST_CMD_MIN_SIZE = 68;

/** `IOMMU_TEST_OP_*`: the `op` field. Any other value → EOPNOTSUPP. */
export const IOMMU_TEST_OP = {
  ADD_RESERVED: 1,
  MOCK_DOMAIN: 2,
  MD_CHECK_MAP: 3,
  MD_CHECK_REFS: 4,
  CREATE_ACCESS: 5,
  DESTROY_ACCESS_PAGES: 6,
  ACCESS_PAGES: 7,
  ACCESS_RW: 8,
  SET_TEMP_MEMORY_LIMIT: 9,
  MOCK_DOMAIN_REPLACE: 10,
  ACCESS_REPLACE_IOAS: 11,
  MOCK_DOMAIN_FLAGS: 12,
  DIRTY: 13,
  MD_CHECK_IOTLB: 14,
  TRIGGER_IOPF: 15,
  DEV_CHECK_CACHE: 16,
  TRIGGER_VEVENT: 17,
  PASID_ATTACH: 18,
  PASID_REPLACE: 19,
  PASID_DETACH: 20,
  PASID_CHECK_HWPT: 21,
  DMABUF_GET: 22,
  DMABUF_REVOKE: 23,
} as const;

/** The last op of each selftest generation; later ops answer EOPNOTSUPP. */
export const IOMMU_TEST_OP_LAST: Readonly<Record<SelftestAbi, number>> = {
  '6.12': IOMMU_TEST_OP.TRIGGER_IOPF,
  '6.18': IOMMU_TEST_OP.PASID_CHECK_HWPT,
  '7.2': IOMMU_TEST_OP.DMABUF_REVOKE,
};

export type IommuTestOpName = keyof typeof IOMMU_TEST_OP;

// ---------------------------------------------------------------------------
// Flags and mock constants

/** `MOCK_FLAGS_ACCESS_*`: ACCESS_PAGES `flags`. */
export const MOCK_FLAGS_ACCESS = { WRITE: 1, SYZ: 0x10000 } as const;

/**
 * `MOCK_ACCESS_RW_*`: ACCESS_RW `flags`. SYZ is `MOCK_FLAGS_ACCESS_SYZ`,
 * which the kernel also accepts here.
 */
export const MOCK_ACCESS_RW_FLAGS = { WRITE: 1, SLOW_PATH: 4, SYZ: 0x10000 } as const;

/** `MOCK_FLAGS_ACCESS_CREATE_*`: CREATE_ACCESS `flags`. */
export const MOCK_FLAGS_ACCESS_CREATE = { NEEDS_PIN_PAGES: 1 } as const;

/** `MOCK_FLAGS_DEVICE_*`: MOCK_DOMAIN_FLAGS `dev_flags`. Other bits → EINVAL. */
export const MOCK_FLAGS_DEVICE = { NO_DIRTY: 1, HUGE_IOVA: 2, PASID: 4 } as const;

/** The device flags each selftest generation accepts (HUGE_IOVA until 6.18, PASID from 6.15). */
export const MOCK_FLAGS_DEVICE_VALID: Readonly<Record<SelftestAbi, number>> = {
  '6.12': MOCK_FLAGS_DEVICE.NO_DIRTY | MOCK_FLAGS_DEVICE.HUGE_IOVA,
  '6.18': MOCK_FLAGS_DEVICE.NO_DIRTY | MOCK_FLAGS_DEVICE.HUGE_IOVA | MOCK_FLAGS_DEVICE.PASID,
  '7.2': MOCK_FLAGS_DEVICE.NO_DIRTY | MOCK_FLAGS_DEVICE.PASID,
};

/**
 * `MOCK_IOMMUPT_*` (7.2): `pagetable_type` of a mock paging domain.
 * DEFAULT: 2 KiB IOPTEs in the mock aperture; HUGE: 4 KiB and 1 MiB
 * IOPTEs over the whole 38-bit table. Any other value → EOPNOTSUPP.
 */
export const MOCK_IOMMUPT = { DEFAULT: 0, HUGE: 1 } as const;
/** 7.2's mock table (AMDv1 format, 2 KiB granule, three levels): 38 bits of IOVA. */
export const MOCK_IOMMUPT_VA_BITS = 38;

/** First IOVA of the mock domain's aperture (2^24). */
export const MOCK_APERTURE_START = 1n << 24n;
/** Last (inclusive) IOVA of the mock domain's aperture (2^31 - 1). */
export const MOCK_APERTURE_LAST = (1n << 31n) - 1n;

/** Highest IOTLB slot index of a mock nested domain. */
export const MOCK_NESTED_DOMAIN_IOTLB_ID_MAX = 3;
/** Number of IOTLB slots of a mock nested domain. */
export const MOCK_NESTED_DOMAIN_IOTLB_NUM = 4;
/** Highest device-cache slot index of a mock vIOMMU device. */
export const MOCK_DEV_CACHE_ID_MAX = 3;
/** Number of device-cache slots of a mock vIOMMU device. */
export const MOCK_DEV_CACHE_NUM = 4;

/** PASID reserved by the selftest for its replace/fault test. */
export const IOMMU_TEST_PASID_RESERVED = 1024;
/** PASID width (bits) of the mock IOMMU and devices. */
export const MOCK_PASID_WIDTH = 20;

/** GET_HW_INFO `out_data_type` reported for mock devices. */
export const IOMMU_HW_INFO_TYPE_SELFTEST = 0xfeedbeef;
/** `test_reg` value in the mock's hw info. */
export const IOMMU_HW_INFO_SELFTEST_REGVAL = 0xdeadbeef;

/** HWPT_ALLOC `data_type` of a mock nested domain. */
export const IOMMU_HWPT_DATA_SELFTEST = 0xdead;
/** Default IOTLB slot value of a mock nested domain. */
export const IOMMU_TEST_IOTLB_DEFAULT = 0xbadbeef;
/** Initial device-cache slot value of a mock device. */
export const IOMMU_TEST_DEV_CACHE_DEFAULT = 0xbaddad;

/** HWPT_INVALIDATE `data_type` of the mock nested domain, and a value the mock rejects. */
export const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
export const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID = 0xdadbeef;
/** Invalidation entry flag: ignore the slot index and invalidate every slot. */
export const IOMMU_TEST_INVALIDATE_FLAG_ALL = 1;

/** VIOMMU_ALLOC `type` of the mock vIOMMU. */
export const IOMMU_VIOMMU_TYPE_SELFTEST = 0xdeadbeef;
/** HWPT_INVALIDATE `data_type` for a mock vIOMMU, and a value the mock rejects. */
export const IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
export const IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID = 0xdadbeef;
/** VEVENTQ_ALLOC `type` of the mock vIOMMU's event queue. */
export const IOMMU_VEVENTQ_TYPE_SELFTEST = 0xbeefbeef;
/** HW_QUEUE_ALLOC `type` of the mock vIOMMU, and how many queues it allows. */
export const IOMMU_HW_QUEUE_TYPE_SELFTEST = 0xdeadbeef;
export const IOMMU_TEST_HW_QUEUE_MAX = 2;

/** `struct iommu_test_hw_info` (8 bytes): the GET_HW_INFO data of a mock device. */
export const IommuTestHwInfo = struct('iommu_test_hw_info', 8, [
  field('flags', 0, 'u32', 'out'),
  field('test_reg', 4, 'u32', 'out'),
]);

/**
 * `struct iommu_hwpt_selftest`: HWPT_ALLOC data for IOMMU_HWPT_DATA_SELFTEST,
 * 4 bytes until 6.18, 8 with `pagetable_type` (MOCK_IOMMUPT_*) since 6.19.
 * The kernel copies it with iommu_copy_struct_from_user(): at least
 * `iotlb`, a longer tail must be zero.
 */
export const IommuHwptSelftest = struct('iommu_hwpt_selftest', 8, [
  field('iotlb', 0, 'u32', 'in'),
  field('pagetable_type', 4, 'u32', 'in'),
]);
/** sizeof(struct iommu_hwpt_selftest) per selftest generation. */
export const IOMMU_HWPT_SELFTEST_SIZE: Readonly<Record<SelftestAbi, number>> = {
  '6.12': 4,
  '6.18': 4,
  '7.2': 8,
};

/** `struct iommu_hwpt_invalidate_selftest` (8 bytes): one mock nested-domain invalidation entry. */
export const IommuHwptInvalidateSelftest = struct('iommu_hwpt_invalidate_selftest', 8, [
  field('flags', 0, 'u32', 'in'),
  field('iotlb_id', 4, 'u32', 'in'),
]);

/**
 * `struct iommu_viommu_selftest` (24 bytes since "iommufd/selftest: Add coverage
 * for the new mmap interface", v6.17;
 * 8 before): VIOMMU_ALLOC data. The mock echoes `in_data` to `out_data` and
 * gives the mmap offset and length of its two-page region.
 */
export const IommuViommuSelftest = struct('iommu_viommu_selftest', 24, [
  field('in_data', 0, 'u32', 'in'),
  field('out_data', 4, 'u32', 'out'),
  field('out_mmap_offset', 8, 'u64', 'out'),
  field('out_mmap_length', 16, 'u64', 'out'),
]);

/** `struct iommu_viommu_invalidate_selftest` (12 bytes): one mock vIOMMU invalidation entry. */
export const IommuViommuInvalidateSelftest = struct('iommu_viommu_invalidate_selftest', 12, [
  field('flags', 0, 'u32', 'in'),
  field('vdev_id', 4, 'u32', 'in'),
  field('cache_id', 8, 'u32', 'in'),
]);

/** `struct iommu_viommu_event_selftest` (4 bytes): the payload of a mock vEVENT. */
export const IommuViommuEventSelftest = struct('iommu_viommu_event_selftest', 4, [
  field('virt_id', 0, 'u32', 'out'),
]);

// ---------------------------------------------------------------------------
// struct iommu_test_cmd

const HEADER = [
  field('size', 0, 'u32', 'in'),
  field('op', 4, 'u32', 'in'),
  field('id', 8, 'u32', 'in'),
  field('__reserved', 12, 'u32', 'reserved'),
  field('last', 64, 'u32', 'reserved'),
] as const;

function testCmd<const U extends readonly Field[]>(member: string, fields: U) {
  return struct(`iommu_test_cmd.${member}`, IOMMU_TEST_CMD_SIZE, [...HEADER, ...fields] as const);
}

/** The header alone: enough to read `size`, `op`, `id` before choosing an op layout. */
export const IommuTestCmd = testCmd('header', []);

/** ADD_RESERVED: reserve [start, start+length) in the IOAS `id`. */
export const IommuTestCmdAddReserved = testCmd('add_reserved', [
  field('start', 16, 'u64', 'in'),
  field('length', 24, 'u64', 'in'),
]);

/** MOCK_DOMAIN: create a mock device and attach it to `id`. */
export const IommuTestCmdMockDomain = testCmd('mock_domain', [
  field('out_stdev_id', 16, 'u32', 'out'),
  field('out_hwpt_id', 20, 'u32', 'out'),
  field('out_idev_id', 24, 'u32', 'out'),
]);

/** MOCK_DOMAIN_FLAGS: MOCK_DOMAIN with MOCK_FLAGS_DEVICE `dev_flags`. */
export const IommuTestCmdMockDomainFlags = testCmd('mock_domain_flags', [
  field('out_stdev_id', 16, 'u32', 'out'),
  field('out_hwpt_id', 20, 'u32', 'out'),
  field('out_idev_id', 24, 'u32', 'out'),
  field('dev_flags', 28, 'u32', 'in'),
]);

/** MOCK_DOMAIN_REPLACE: re-attach stdev `id` to `pt_id` (written back with the hwpt used). */
export const IommuTestCmdMockDomainReplace = testCmd('mock_domain_replace', [
  field('pt_id', 16, 'u32', 'inout'),
]);

/** MD_CHECK_MAP: check the mock page tables of `id` map [iova, iova+length) to `uptr`. */
export const IommuTestCmdCheckMap = testCmd('check_map', [
  field('iova', 16, 'u64', 'in'),
  field('length', 24, 'u64', 'in'),
  field('uptr', 32, 'u64', 'in'),
]);

/** MD_CHECK_REFS: check the pin count of every page in [uptr, uptr+length). */
export const IommuTestCmdCheckRefs = testCmd('check_refs', [
  field('length', 16, 'u64', 'in'),
  field('uptr', 24, 'u64', 'in'),
  field('refs', 32, 'u32', 'in'),
]);

/** CREATE_ACCESS: create an in-kernel access on IOAS `id`; returns its fd. */
export const IommuTestCmdCreateAccess = testCmd('create_access', [
  field('out_access_fd', 16, 'u32', 'out'),
  field('flags', 20, 'u32', 'in'),
]);

/** DESTROY_ACCESS_PAGES: unpin pages of access fd `id`. */
export const IommuTestCmdDestroyAccessPages = testCmd('destroy_access_pages', [
  field('access_pages_id', 16, 'u32', 'in'),
]);

/** ACCESS_PAGES: pin [iova, iova+length) through access fd `id`. */
export const IommuTestCmdAccessPages = testCmd('access_pages', [
  field('flags', 16, 'u32', 'in'),
  field('out_access_pages_id', 20, 'u32', 'out'),
  field('iova', 24, 'u64', 'in'),
  field('length', 32, 'u64', 'in'),
  field('uptr', 40, 'u64', 'in'),
]);

/** ACCESS_RW: copy between IOVA and `uptr` through access fd `id`. */
export const IommuTestCmdAccessRw = testCmd('access_rw', [
  field('iova', 16, 'u64', 'in'),
  field('length', 24, 'u64', 'in'),
  field('uptr', 32, 'u64', 'in'),
  field('flags', 40, 'u32', 'in'),
]);

/** SET_TEMP_MEMORY_LIMIT: set the mock's temporary memory limit. */
export const IommuTestCmdMemoryLimit = testCmd('memory_limit', [field('limit', 16, 'u32', 'in')]);

/** ACCESS_REPLACE_IOAS: move access fd `id` to another IOAS. */
export const IommuTestCmdAccessReplaceIoas = testCmd('access_replace_ioas', [
  field('ioas_id', 16, 'u32', 'in'),
]);

/** DIRTY: set dirty bits of hwpt `id` from the bitmap at `uptr`; returns how many were set. */
export const IommuTestCmdDirty = testCmd('dirty', [
  field('flags', 16, 'u32', 'in'),
  field('iova', 24, 'u64', 'in'),
  field('length', 32, 'u64', 'in'),
  field('page_size', 40, 'u64', 'in'),
  field('uptr', 48, 'u64', 'in'),
  field('out_nr_dirty', 56, 'u64', 'out'),
]);

/** MD_CHECK_IOTLB: check IOTLB slot `check_iotlb_id` (C: `check_iotlb.id`) of hwpt `id` holds `iotlb`. */
export const IommuTestCmdCheckIotlb = testCmd('check_iotlb', [
  field('check_iotlb_id', 16, 'u32', 'in'),
  field('iotlb', 20, 'u32', 'in'),
]);

/** TRIGGER_IOPF: raise an I/O page fault from device `dev_id`. */
export const IommuTestCmdTriggerIopf = testCmd('trigger_iopf', [
  field('dev_id', 16, 'u32', 'in'),
  field('pasid', 20, 'u32', 'in'),
  field('grpid', 24, 'u32', 'in'),
  field('perm', 28, 'u32', 'in'),
  field('addr', 32, 'u64', 'in'),
]);

/** DEV_CHECK_CACHE: check cache slot `check_dev_cache_id` (C: `check_dev_cache.id`) of device `id` holds `cache`. */
export const IommuTestCmdCheckDevCache = testCmd('check_dev_cache', [
  field('check_dev_cache_id', 16, 'u32', 'in'),
  field('cache', 20, 'u32', 'in'),
]);

/** TRIGGER_VEVENT: raise a vEVENT for device `dev_id`. */
export const IommuTestCmdTriggerVevent = testCmd('trigger_vevent', [
  field('dev_id', 16, 'u32', 'in'),
]);

/** PASID_ATTACH: attach `pasid` of stdev `id` to `pt_id` (written back). */
export const IommuTestCmdPasidAttach = testCmd('pasid_attach', [
  field('pasid', 16, 'u32', 'in'),
  field('pt_id', 20, 'u32', 'inout'),
]);

/** PASID_REPLACE: replace the domain of `pasid` of stdev `id` with `pt_id` (written back). */
export const IommuTestCmdPasidReplace = testCmd('pasid_replace', [
  field('pasid', 16, 'u32', 'in'),
  field('pt_id', 20, 'u32', 'inout'),
]);

/** PASID_DETACH: detach `pasid` of stdev `id`. */
export const IommuTestCmdPasidDetach = testCmd('pasid_detach', [field('pasid', 16, 'u32', 'in')]);

/** DMABUF_GET (7.2): a new test dma-buf of `length` bytes, opened with `open_flags`; returns its fd. */
export const IommuTestCmdDmabufGet = testCmd('dmabuf_get', [
  field('length', 16, 'u32', 'in'),
  field('open_flags', 20, 'u32', 'in'),
]);

/** DMABUF_REVOKE (7.2): revoke (or restore) the test dma-buf `dmabuf_fd`. */
export const IommuTestCmdDmabufRevoke = testCmd('dmabuf_revoke', [
  field('dmabuf_fd', 16, 's32', 'in'),
  field('revoked', 20, 'u32', 'in'),
]);

/** PASID_CHECK_HWPT: check `pasid` of stdev `id` is attached to `hwpt_id`. */
export const IommuTestCmdPasidCheck = testCmd('pasid_check', [
  field('pasid', 16, 'u32', 'in'),
  field('hwpt_id', 20, 'u32', 'in'),
]);

// biome-ignore lint/suspicious/noExplicitAny: layouts of unrelated shapes
type AnyLayout = Layout<any>;

/** op number → the layout of its union member. */
export const IOMMU_TEST_CMD_LAYOUTS: Readonly<Record<number, AnyLayout>> = {
  [IOMMU_TEST_OP.ADD_RESERVED]: IommuTestCmdAddReserved,
  [IOMMU_TEST_OP.MOCK_DOMAIN]: IommuTestCmdMockDomain,
  [IOMMU_TEST_OP.MD_CHECK_MAP]: IommuTestCmdCheckMap,
  [IOMMU_TEST_OP.MD_CHECK_REFS]: IommuTestCmdCheckRefs,
  [IOMMU_TEST_OP.CREATE_ACCESS]: IommuTestCmdCreateAccess,
  [IOMMU_TEST_OP.DESTROY_ACCESS_PAGES]: IommuTestCmdDestroyAccessPages,
  [IOMMU_TEST_OP.ACCESS_PAGES]: IommuTestCmdAccessPages,
  [IOMMU_TEST_OP.ACCESS_RW]: IommuTestCmdAccessRw,
  [IOMMU_TEST_OP.SET_TEMP_MEMORY_LIMIT]: IommuTestCmdMemoryLimit,
  [IOMMU_TEST_OP.MOCK_DOMAIN_REPLACE]: IommuTestCmdMockDomainReplace,
  [IOMMU_TEST_OP.ACCESS_REPLACE_IOAS]: IommuTestCmdAccessReplaceIoas,
  [IOMMU_TEST_OP.MOCK_DOMAIN_FLAGS]: IommuTestCmdMockDomainFlags,
  [IOMMU_TEST_OP.DIRTY]: IommuTestCmdDirty,
  [IOMMU_TEST_OP.MD_CHECK_IOTLB]: IommuTestCmdCheckIotlb,
  [IOMMU_TEST_OP.TRIGGER_IOPF]: IommuTestCmdTriggerIopf,
  [IOMMU_TEST_OP.DEV_CHECK_CACHE]: IommuTestCmdCheckDevCache,
  [IOMMU_TEST_OP.TRIGGER_VEVENT]: IommuTestCmdTriggerVevent,
  [IOMMU_TEST_OP.PASID_ATTACH]: IommuTestCmdPasidAttach,
  [IOMMU_TEST_OP.PASID_REPLACE]: IommuTestCmdPasidReplace,
  [IOMMU_TEST_OP.PASID_DETACH]: IommuTestCmdPasidDetach,
  [IOMMU_TEST_OP.PASID_CHECK_HWPT]: IommuTestCmdPasidCheck,
  [IOMMU_TEST_OP.DMABUF_GET]: IommuTestCmdDmabufGet,
  [IOMMU_TEST_OP.DMABUF_REVOKE]: IommuTestCmdDmabufRevoke,
};

/** The layout for an op number, or undefined for an unknown op. */
export function iommuTestCmdLayout(op: number): AnyLayout | undefined {
  return Object.hasOwn(IOMMU_TEST_CMD_LAYOUTS, op) ? IOMMU_TEST_CMD_LAYOUTS[op] : undefined;
}

const OP_NAMES = new Map<number, IommuTestOpName>(
  Object.entries(IOMMU_TEST_OP).map(([k, v]) => [v, k as IommuTestOpName]),
);

/** The op name without its `IOMMU_TEST_OP_` prefix, e.g. 2 → 'MOCK_DOMAIN'; undefined if unknown. */
export function iommuTestOpName(op: number): IommuTestOpName | undefined {
  return OP_NAMES.get(op);
}
