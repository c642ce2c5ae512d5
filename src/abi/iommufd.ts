/**
 * The `/dev/iommu` uAPI of Linux 6.18 (include/uapi/linux/iommufd.h) as data:
 * one `struct()` layout per argument struct of ioctls 0x80..0x94, the flag and
 * enum values as `as const` objects, and the command table with the kernel's
 * minimum accepted sizes.
 *
 * Conventions:
 * - Layout names are PascalCase of the C struct name; field names are the C
 *   names exactly. Fields that C declares as arrays or unions are split or
 *   merged as documented on the layout.
 * - Directions follow the header's docs: `in` read by the kernel, `out`
 *   written by it, `inout` both, `reserved` for `__reserved*` (must be zero).
 * - Enum/flag objects use the C name without its common prefix as keys, e.g.
 *   `IOMMU_IOAS_MAP_FLAGS.FIXED_IOVA` is C's `IOMMU_IOAS_MAP_FIXED_IOVA`.
 *
 * @example
 * const map = IommuIoasMap.decode(bytes);
 * if (map.flags & IOMMU_IOAS_MAP_FLAGS.FIXED_IOVA) use(map.iova); // bigint
 * iommufdCmdNumber('generic', 'IOMMU_IOAS_MAP'); // 0x3b85
 */

import { IOMMUFD_CMD_BASE, IOMMUFD_TYPE, type IoctlAbi, io } from './ioctl.ts';
import { field, type Layout, struct } from './layout.ts';

// ---------------------------------------------------------------------------
// Enum and flag values

/** `enum iommufd_ioas_map_flags`: MAP, MAP_FILE and COPY `flags`. */
export const IOMMU_IOAS_MAP_FLAGS = { FIXED_IOVA: 1, WRITEABLE: 2, READABLE: 4 } as const;

/** `enum iommufd_option`: IOMMU_OPTION `option_id`. */
export const IOMMU_OPTION_ID = { RLIMIT_MODE: 0, HUGE_PAGES: 1 } as const;

/** `enum iommufd_option_ops`: IOMMU_OPTION `op`. */
export const IOMMU_OPTION_OP = { SET: 0, GET: 1 } as const;

/** `enum iommufd_vfio_ioas_op`: IOMMU_VFIO_IOAS `op`. */
export const IOMMU_VFIO_IOAS_OP = { GET: 0, SET: 1, CLEAR: 2 } as const;

/**
 * `enum iommufd_hwpt_alloc_flags`: IOMMU_HWPT_ALLOC `flags`. C names:
 * IOMMU_HWPT_ALLOC_NEST_PARENT, _DIRTY_TRACKING, IOMMU_HWPT_FAULT_ID_VALID,
 * IOMMU_HWPT_ALLOC_PASID.
 */
export const IOMMU_HWPT_ALLOC_FLAGS = {
  NEST_PARENT: 1,
  DIRTY_TRACKING: 2,
  FAULT_ID_VALID: 4,
  PASID: 8,
} as const;

/** `enum iommu_hwpt_data_type`: IOMMU_HWPT_ALLOC `data_type`. */
export const IOMMU_HWPT_DATA_TYPE = { NONE: 0, VTD_S1: 1, ARM_SMMUV3: 2, AMD_GUEST: 3 } as const;

/** `enum iommu_hwpt_vtd_s1_flags`: `IommuHwptVtdS1.flags`. */
export const IOMMU_VTD_S1_FLAGS = { SRE: 1, EAFE: 2, WPE: 4 } as const;

/** `enum iommu_hw_info_type`: GET_HW_INFO `in_data_type`/`out_data_type`. NONE and DEFAULT are both 0. */
export const IOMMU_HW_INFO_TYPE = {
  NONE: 0,
  DEFAULT: 0,
  INTEL_VTD: 1,
  ARM_SMMUV3: 2,
  TEGRA241_CMDQV: 3,
  AMD: 4,
} as const;

/** `enum iommufd_hw_info_flags`: GET_HW_INFO `flags`. */
export const IOMMU_HW_INFO_FLAGS = { INPUT_TYPE: 1 } as const;

/** `enum iommufd_hw_capabilities`: GET_HW_INFO `out_capabilities` (a u64, so compare with `BigInt`). */
export const IOMMU_HW_CAP = {
  DIRTY_TRACKING: 1,
  PCI_PASID_EXEC: 2,
  PCI_PASID_PRIV: 4,
  /** In 7.2, not in 6.18 (docs/personality.md `hwCapAtsNotSupported`). */
  PCI_ATS_NOT_SUPPORTED: 8,
} as const;

/** `enum iommu_hw_info_vtd_flags`: `IommuHwInfoVtd.flags`. */
export const IOMMU_HW_INFO_VTD_FLAGS = { ERRATA_772415_SPR17: 1 } as const;

/** `enum iommufd_hwpt_set_dirty_tracking_flags`: SET_DIRTY_TRACKING `flags`. */
export const IOMMU_HWPT_DIRTY_TRACKING_FLAGS = { ENABLE: 1 } as const;

/** `enum iommufd_hwpt_get_dirty_bitmap_flags`: GET_DIRTY_BITMAP `flags`. */
export const IOMMU_HWPT_GET_DIRTY_BITMAP_FLAGS = { NO_CLEAR: 1 } as const;

/**
 * `enum iommu_hwpt_invalidate_data_type`: HWPT_INVALIDATE `data_type`.
 * C names: IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3.
 */
export const IOMMU_HWPT_INVALIDATE_DATA_TYPE = { VTD_S1: 0, ARM_SMMUV3: 1 } as const;

/** `enum iommu_hwpt_vtd_s1_invalidate_flags`: `IommuHwptVtdS1Invalidate.flags`. */
export const IOMMU_VTD_INV_FLAGS = { LEAF: 1 } as const;

/** `enum iommu_hwpt_pgfault_flags`: `IommuHwptPgfault.flags`. */
export const IOMMU_PGFAULT_FLAGS = { PASID_VALID: 1, LAST_PAGE: 2 } as const;

/** `enum iommu_hwpt_pgfault_perm`: `IommuHwptPgfault.perm`. */
export const IOMMU_PGFAULT_PERM = { READ: 1, WRITE: 2, EXEC: 4, PRIV: 8 } as const;

/** `enum iommufd_page_response_code`: `IommuHwptPageResponse.code`. */
export const IOMMUFD_PAGE_RESP = { SUCCESS: 0, INVALID: 1 } as const;

/** `enum iommu_viommu_type`: VIOMMU_ALLOC `type`. */
export const IOMMU_VIOMMU_TYPE = { DEFAULT: 0, ARM_SMMUV3: 1, TEGRA241_CMDQV: 2 } as const;

/** `enum iommu_veventq_flag`: `IommufdVeventHeader.flags`. */
export const IOMMU_VEVENTQ_FLAG = { LOST_EVENTS: 1 } as const;

/** `enum iommu_veventq_type`: VEVENTQ_ALLOC `type`. */
export const IOMMU_VEVENTQ_TYPE = { DEFAULT: 0, ARM_SMMUV3: 1, TEGRA241_CMDQV: 2 } as const;

/** `enum iommu_hw_queue_type`: HW_QUEUE_ALLOC `type`. */
export const IOMMU_HW_QUEUE_TYPE = { DEFAULT: 0, TEGRA241_CMDQV: 1 } as const;

// ---------------------------------------------------------------------------
// Argument structs of the ioctls, in command-number order

/** `struct iommu_destroy` (IOMMU_DESTROY, 8 bytes). */
export const IommuDestroy = struct('iommu_destroy', 8, [
  field('size', 0, 'u32', 'in'),
  field('id', 4, 'u32', 'in'),
]);

/** `struct iommu_ioas_alloc` (IOMMU_IOAS_ALLOC, 12 bytes). */
export const IommuIoasAlloc = struct('iommu_ioas_alloc', 12, [
  field('size', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('out_ioas_id', 8, 'u32', 'out'),
]);

/**
 * `struct iommu_iova_range` (16 bytes): one element of the `allowed_iovas`
 * arrays; `last` is inclusive. `inout` because IOVA_RANGES writes the array
 * and ALLOW_IOVAS reads it.
 */
export const IommuIovaRange = struct('iommu_iova_range', 16, [
  field('start', 0, 'u64', 'inout'),
  field('last', 8, 'u64', 'inout'),
]);

/** `struct iommu_ioas_allow_iovas` (IOMMU_IOAS_ALLOW_IOVAS, 24 bytes). */
export const IommuIoasAllowIovas = struct('iommu_ioas_allow_iovas', 24, [
  field('size', 0, 'u32', 'in'),
  field('ioas_id', 4, 'u32', 'in'),
  field('num_iovas', 8, 'u32', 'in'),
  field('__reserved', 12, 'u32', 'reserved'),
  field('allowed_iovas', 16, 'u64', 'in'),
]);

/** `struct iommu_ioas_copy` (IOMMU_IOAS_COPY, 40 bytes). `dst_iova` is an input only with FIXED_IOVA. */
export const IommuIoasCopy = struct('iommu_ioas_copy', 40, [
  field('size', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('dst_ioas_id', 8, 'u32', 'in'),
  field('src_ioas_id', 12, 'u32', 'in'),
  field('length', 16, 'u64', 'in'),
  field('dst_iova', 24, 'u64', 'inout'),
  field('src_iova', 32, 'u64', 'in'),
]);

/** `struct iommu_ioas_iova_ranges` (IOMMU_IOAS_IOVA_RANGES, 32 bytes). `num_iovas`: capacity in, total out. */
export const IommuIoasIovaRanges = struct('iommu_ioas_iova_ranges', 32, [
  field('size', 0, 'u32', 'in'),
  field('ioas_id', 4, 'u32', 'in'),
  field('num_iovas', 8, 'u32', 'inout'),
  field('__reserved', 12, 'u32', 'reserved'),
  field('allowed_iovas', 16, 'u64', 'in'),
  field('out_iova_alignment', 24, 'u64', 'out'),
]);

/** `struct iommu_ioas_map` (IOMMU_IOAS_MAP, 40 bytes). `iova` is an input only with FIXED_IOVA. */
export const IommuIoasMap = struct('iommu_ioas_map', 40, [
  field('size', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('ioas_id', 8, 'u32', 'in'),
  field('__reserved', 12, 'u32', 'reserved'),
  field('user_va', 16, 'u64', 'in'),
  field('length', 24, 'u64', 'in'),
  field('iova', 32, 'u64', 'inout'),
]);

/** `struct iommu_ioas_unmap` (IOMMU_IOAS_UNMAP, 24 bytes). `length` returns the bytes unmapped. */
export const IommuIoasUnmap = struct('iommu_ioas_unmap', 24, [
  field('size', 0, 'u32', 'in'),
  field('ioas_id', 4, 'u32', 'in'),
  field('iova', 8, 'u64', 'in'),
  field('length', 16, 'u64', 'inout'),
]);

/** `struct iommu_option` (IOMMU_OPTION, 24 bytes). `op` and `__reserved` are u16. */
export const IommuOption = struct('iommu_option', 24, [
  field('size', 0, 'u32', 'in'),
  field('option_id', 4, 'u32', 'in'),
  field('op', 8, 'u16', 'in'),
  field('__reserved', 10, 'u16', 'reserved'),
  field('object_id', 12, 'u32', 'in'),
  field('val64', 16, 'u64', 'inout'),
]);

/** `struct iommu_vfio_ioas` (IOMMU_VFIO_IOAS, 12 bytes). `ioas_id` is in for SET, out for GET. */
export const IommuVfioIoas = struct('iommu_vfio_ioas', 12, [
  field('size', 0, 'u32', 'in'),
  field('ioas_id', 4, 'u32', 'inout'),
  field('op', 8, 'u16', 'in'),
  field('__reserved', 10, 'u16', 'reserved'),
]);

/** `struct iommu_hwpt_alloc` (IOMMU_HWPT_ALLOC, 48 bytes; the 6.6 form ended at 24, 6.7 at 40). */
export const IommuHwptAlloc = struct('iommu_hwpt_alloc', 48, [
  field('size', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('dev_id', 8, 'u32', 'in'),
  field('pt_id', 12, 'u32', 'in'),
  field('out_hwpt_id', 16, 'u32', 'out'),
  field('__reserved', 20, 'u32', 'reserved'),
  field('data_type', 24, 'u32', 'in'),
  field('data_len', 28, 'u32', 'in'),
  field('data_uptr', 32, 'u64', 'in'),
  field('fault_id', 40, 'u32', 'in'),
  field('__reserved2', 44, 'u32', 'reserved'),
]);

/**
 * `struct iommu_hw_info` (IOMMU_GET_HW_INFO, 40 bytes).
 * - C's union `{ in_data_type; out_data_type }` at 24 is the single field
 *   `out_data_type` (`inout`): it is the requested type on input when
 *   `flags` has INPUT_TYPE, and the reported type on output.
 * - C's `__u8 __reserved[3]` at 29 is split into `__reserved_0`, `__reserved_1`,
 *   `__reserved_2` (u8 at 29, 30, 31); the kernel's minimum size is the end
 *   of that array, i.e. `endOf('__reserved_2')` = 32.
 */
export const IommuHwInfo = struct('iommu_hw_info', 40, [
  field('size', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('dev_id', 8, 'u32', 'in'),
  field('data_len', 12, 'u32', 'inout'),
  field('data_uptr', 16, 'u64', 'in'),
  field('out_data_type', 24, 'u32', 'inout'),
  field('out_max_pasid_log2', 28, 'u8', 'out'),
  field('__reserved_0', 29, 'u8', 'reserved'),
  field('__reserved_1', 30, 'u8', 'reserved'),
  field('__reserved_2', 31, 'u8', 'reserved'),
  field('out_capabilities', 32, 'u64', 'out'),
]);

/** `struct iommu_hwpt_set_dirty_tracking` (IOMMU_HWPT_SET_DIRTY_TRACKING, 16 bytes). */
export const IommuHwptSetDirtyTracking = struct('iommu_hwpt_set_dirty_tracking', 16, [
  field('size', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('hwpt_id', 8, 'u32', 'in'),
  field('__reserved', 12, 'u32', 'reserved'),
]);

/** `struct iommu_hwpt_get_dirty_bitmap` (IOMMU_HWPT_GET_DIRTY_BITMAP, 48 bytes). `data` points at the u64 bitmap. */
export const IommuHwptGetDirtyBitmap = struct('iommu_hwpt_get_dirty_bitmap', 48, [
  field('size', 0, 'u32', 'in'),
  field('hwpt_id', 4, 'u32', 'in'),
  field('flags', 8, 'u32', 'in'),
  field('__reserved', 12, 'u32', 'reserved'),
  field('iova', 16, 'u64', 'in'),
  field('length', 24, 'u64', 'in'),
  field('page_size', 32, 'u64', 'in'),
  field('data', 40, 'u64', 'in'),
]);

/** `struct iommu_hwpt_invalidate` (IOMMU_HWPT_INVALIDATE, 32 bytes). `entry_num` returns the entries handled. */
export const IommuHwptInvalidate = struct('iommu_hwpt_invalidate', 32, [
  field('size', 0, 'u32', 'in'),
  field('hwpt_id', 4, 'u32', 'in'),
  field('data_uptr', 8, 'u64', 'in'),
  field('data_type', 16, 'u32', 'in'),
  field('entry_len', 20, 'u32', 'in'),
  field('entry_num', 24, 'u32', 'inout'),
  field('__reserved', 28, 'u32', 'reserved'),
]);

/** `struct iommu_fault_alloc` (IOMMU_FAULT_QUEUE_ALLOC, 16 bytes). */
export const IommuFaultAlloc = struct('iommu_fault_alloc', 16, [
  field('size', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('out_fault_id', 8, 'u32', 'out'),
  field('out_fault_fd', 12, 'u32', 'out'),
]);

/** `struct iommu_ioas_map_file` (IOMMU_IOAS_MAP_FILE, 40 bytes): MAP with a memfd `fd` (s32) and file offset `start`. */
export const IommuIoasMapFile = struct('iommu_ioas_map_file', 40, [
  field('size', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('ioas_id', 8, 'u32', 'in'),
  field('fd', 12, 's32', 'in'),
  field('start', 16, 'u64', 'in'),
  field('length', 24, 'u64', 'in'),
  field('iova', 32, 'u64', 'inout'),
]);

/** `struct iommu_viommu_alloc` (IOMMU_VIOMMU_ALLOC, 40 bytes). */
export const IommuViommuAlloc = struct('iommu_viommu_alloc', 40, [
  field('size', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('type', 8, 'u32', 'in'),
  field('dev_id', 12, 'u32', 'in'),
  field('hwpt_id', 16, 'u32', 'in'),
  field('out_viommu_id', 20, 'u32', 'out'),
  field('data_len', 24, 'u32', 'in'),
  field('__reserved', 28, 'u32', 'reserved'),
  field('data_uptr', 32, 'u64', 'in'),
]);

/** `struct iommu_vdevice_alloc` (IOMMU_VDEVICE_ALLOC, 24 bytes). */
export const IommuVdeviceAlloc = struct('iommu_vdevice_alloc', 24, [
  field('size', 0, 'u32', 'in'),
  field('viommu_id', 4, 'u32', 'in'),
  field('dev_id', 8, 'u32', 'in'),
  field('out_vdevice_id', 12, 'u32', 'out'),
  field('virt_id', 16, 'u64', 'in'),
]);

/** `struct iommu_ioas_change_process` (IOMMU_IOAS_CHANGE_PROCESS, 8 bytes). */
export const IommuIoasChangeProcess = struct('iommu_ioas_change_process', 8, [
  field('size', 0, 'u32', 'in'),
  field('__reserved', 4, 'u32', 'reserved'),
]);

/** `struct iommu_veventq_alloc` (IOMMU_VEVENTQ_ALLOC, 32 bytes). */
export const IommuVeventqAlloc = struct('iommu_veventq_alloc', 32, [
  field('size', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('viommu_id', 8, 'u32', 'in'),
  field('type', 12, 'u32', 'in'),
  field('veventq_depth', 16, 'u32', 'in'),
  field('out_veventq_id', 20, 'u32', 'out'),
  field('out_veventq_fd', 24, 'u32', 'out'),
  field('__reserved', 28, 'u32', 'reserved'),
]);

/** `struct iommu_hw_queue_alloc` (IOMMU_HW_QUEUE_ALLOC, 40 bytes). */
export const IommuHwQueueAlloc = struct('iommu_hw_queue_alloc', 40, [
  field('size', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('viommu_id', 8, 'u32', 'in'),
  field('type', 12, 'u32', 'in'),
  field('index', 16, 'u32', 'in'),
  field('out_hw_queue_id', 20, 'u32', 'out'),
  field('nesting_parent_iova', 24, 'u64', 'in'),
  field('length', 32, 'u64', 'in'),
]);

// ---------------------------------------------------------------------------
// Data structs that travel through pointers or fds rather than as ioctl args

/** `struct iommu_hwpt_pgfault` (40 bytes): one fault record read() from a fault queue fd. */
export const IommuHwptPgfault = struct('iommu_hwpt_pgfault', 40, [
  field('flags', 0, 'u32', 'out'),
  field('dev_id', 4, 'u32', 'out'),
  field('pasid', 8, 'u32', 'out'),
  field('grpid', 12, 'u32', 'out'),
  field('perm', 16, 'u32', 'out'),
  field('__reserved', 20, 'u32', 'reserved'),
  field('addr', 24, 'u64', 'out'),
  field('length', 32, 'u32', 'out'),
  field('cookie', 36, 'u32', 'out'),
]);

/** `struct iommu_hwpt_page_response` (8 bytes): one response write() to a fault queue fd. */
export const IommuHwptPageResponse = struct('iommu_hwpt_page_response', 8, [
  field('cookie', 0, 'u32', 'in'),
  field('code', 4, 'u32', 'in'),
]);

/** `struct iommufd_vevent_header` (8 bytes): precedes each event read() from a vEVENTQ fd. */
export const IommufdVeventHeader = struct('iommufd_vevent_header', 8, [
  field('flags', 0, 'u32', 'out'),
  field('sequence', 4, 'u32', 'out'),
]);

/** `struct iommu_hw_info_vtd` (24 bytes): GET_HW_INFO data for IOMMU_HW_INFO_TYPE.INTEL_VTD. */
export const IommuHwInfoVtd = struct('iommu_hw_info_vtd', 24, [
  field('flags', 0, 'u32', 'out'),
  field('__reserved', 4, 'u32', 'reserved'),
  field('cap_reg', 8, 'u64', 'out'),
  field('ecap_reg', 16, 'u64', 'out'),
]);

/** `struct iommu_hwpt_vtd_s1` (24 bytes): HWPT_ALLOC data for IOMMU_HWPT_DATA_TYPE.VTD_S1. */
export const IommuHwptVtdS1 = struct('iommu_hwpt_vtd_s1', 24, [
  field('flags', 0, 'u64', 'in'),
  field('pgtbl_addr', 8, 'u64', 'in'),
  field('addr_width', 16, 'u32', 'in'),
  field('__reserved', 20, 'u32', 'reserved'),
]);

/** `struct iommu_hwpt_vtd_s1_invalidate` (24 bytes): one HWPT_INVALIDATE entry for IOMMU_HWPT_INVALIDATE_DATA_TYPE.VTD_S1. */
export const IommuHwptVtdS1Invalidate = struct('iommu_hwpt_vtd_s1_invalidate', 24, [
  field('addr', 0, 'u64', 'in'),
  field('npages', 8, 'u64', 'in'),
  field('flags', 16, 'u32', 'in'),
  field('__reserved', 20, 'u32', 'reserved'),
]);

// ---------------------------------------------------------------------------
// Command table

/** One iommufd ioctl: its macro name, nr, argument layout and the kernel's minimum `size`. */
export interface IommufdCmd {
  /** The uAPI macro name, e.g. `IOMMU_IOAS_MAP`. */
  name: string;
  /** `_IOC_NR` of the command (0x80..0x94). */
  nr: number;
  // biome-ignore lint/suspicious/noExplicitAny: the table holds layouts of unrelated shapes
  layout: Layout<any>;
  /** offsetofend() of the field the kernel's ioctl table names as last; smaller `size` → EINVAL. */
  minSize: number;
}

/** A table entry that keeps its command's name and struct type. */
export interface IommufdCmdOf<N extends string, V> extends IommufdCmd {
  name: N;
  layout: Layout<V>;
}

function cmd<const N extends string, V>(
  name: N,
  nr: number,
  layout: Layout<V>,
  last: keyof V & string,
): IommufdCmdOf<N, V> {
  return { name, nr, layout, minSize: layout.endOf(last) };
}

/**
 * The iommufd commands, index i holding nr 0x80 + i. The last-field names
 * follow the ioctl table of drivers/iommu/iommufd/main.c.
 */
const CMDS = [
  cmd('IOMMU_DESTROY', 0x80, IommuDestroy, 'id'),
  cmd('IOMMU_IOAS_ALLOC', 0x81, IommuIoasAlloc, 'out_ioas_id'),
  cmd('IOMMU_IOAS_ALLOW_IOVAS', 0x82, IommuIoasAllowIovas, 'allowed_iovas'),
  cmd('IOMMU_IOAS_COPY', 0x83, IommuIoasCopy, 'src_iova'),
  cmd('IOMMU_IOAS_IOVA_RANGES', 0x84, IommuIoasIovaRanges, 'out_iova_alignment'),
  cmd('IOMMU_IOAS_MAP', 0x85, IommuIoasMap, 'iova'),
  cmd('IOMMU_IOAS_UNMAP', 0x86, IommuIoasUnmap, 'length'),
  cmd('IOMMU_OPTION', 0x87, IommuOption, 'val64'),
  cmd('IOMMU_VFIO_IOAS', 0x88, IommuVfioIoas, '__reserved'),
  cmd('IOMMU_HWPT_ALLOC', 0x89, IommuHwptAlloc, '__reserved'),
  cmd('IOMMU_GET_HW_INFO', 0x8a, IommuHwInfo, '__reserved_2'),
  cmd('IOMMU_HWPT_SET_DIRTY_TRACKING', 0x8b, IommuHwptSetDirtyTracking, '__reserved'),
  cmd('IOMMU_HWPT_GET_DIRTY_BITMAP', 0x8c, IommuHwptGetDirtyBitmap, 'data'),
  cmd('IOMMU_HWPT_INVALIDATE', 0x8d, IommuHwptInvalidate, '__reserved'),
  cmd('IOMMU_FAULT_QUEUE_ALLOC', 0x8e, IommuFaultAlloc, 'out_fault_fd'),
  cmd('IOMMU_IOAS_MAP_FILE', 0x8f, IommuIoasMapFile, 'iova'),
  cmd('IOMMU_VIOMMU_ALLOC', 0x90, IommuViommuAlloc, 'out_viommu_id'),
  cmd('IOMMU_VDEVICE_ALLOC', 0x91, IommuVdeviceAlloc, 'virt_id'),
  cmd('IOMMU_IOAS_CHANGE_PROCESS', 0x92, IommuIoasChangeProcess, '__reserved'),
  cmd('IOMMU_VEVENTQ_ALLOC', 0x93, IommuVeventqAlloc, 'out_veventq_fd'),
  cmd('IOMMU_HW_QUEUE_ALLOC', 0x94, IommuHwQueueAlloc, 'length'),
] as const;

/** Macro name of an iommufd ioctl, e.g. `'IOMMU_IOAS_MAP'`. */
export type IommufdCmdName = (typeof CMDS)[number]['name'];

/** The decoded struct of command `N`, e.g. IommufdCmdStruct<'IOMMU_IOAS_MAP'> has `iova`. */
export type IommufdCmdStruct<N extends IommufdCmdName> =
  Extract<(typeof CMDS)[number], { name: N }> extends IommufdCmdOf<N, infer V> ? V : never;

/** The iommufd commands 0x80..0x94 in nr order (`IOMMUFD_CMDS[i].nr === 0x80 + i`). */
export const IOMMUFD_CMDS: readonly IommufdCmd[] = CMDS;

/** One past the last iommufd command nr (0x95); the selftest's TEST_CMD sits at 0xa0. */
export const IOMMUFD_CMD_END = IOMMUFD_CMD_BASE + CMDS.length;

const BY_NAME = new Map<string, IommufdCmd>(CMDS.map((c) => [c.name, c]));

/** The table entry of a command by macro name. */
export function iommufdCmd(name: IommufdCmdName): IommufdCmd {
  return BY_NAME.get(name)!;
}

/** The full request number of an iommufd ioctl under an ABI, e.g. generic 0x3b80, powerpc 0x20003b80. */
export function iommufdCmdNumber(abi: IoctlAbi, name: IommufdCmdName): number {
  return io(abi, IOMMUFD_TYPE, iommufdCmd(name).nr);
}

/**
 * The command a request number names under an ABI, or undefined. Only the
 * exact `_IO(';', nr)` word matches, as in the kernel's dispatcher: the same
 * nr with direction or size bits set is not an iommufd command.
 */
export function iommufdCmdByNumber(abi: IoctlAbi, request: number): IommufdCmd | undefined {
  const nr = request & 0xff;
  if (nr < IOMMUFD_CMD_BASE || nr >= IOMMUFD_CMD_END) return undefined;
  const c = CMDS[nr - IOMMUFD_CMD_BASE]!;
  return io(abi, IOMMUFD_TYPE, c.nr) === request >>> 0 ? c : undefined;
}
