/**
 * The VFIO uAPI (include/uapi/linux/vfio.h) as data, as far as the
 * container, group and type1 IOMMU interfaces go: the API version, the
 * extension / IOMMU type numbers, every ioctl nr with the fd kind that
 * answers it, the type1 structs and the capability-chain structs of
 * VFIO_IOMMU_GET_INFO, and their flag values.
 *
 * Conventions (as in `iommufd.ts`):
 * - Layout names are PascalCase of the C struct name; field names are the C
 *   names. Capability structs embed `struct vfio_info_cap_header` as the
 *   flat fields `id`, `version`, `next`. Flexible array members are not part
 *   of a layout (its `size` is the C `sizeof`, which excludes them).
 * - Every VFIO ioctl is `_IO(';', 100 + k)`: no size or direction bits, so
 *   the number alone never says which struct the argument is. Several nrs are
 *   shared by two ioctls of different fd kinds or backends (type1 GET_INFO
 *   and SPAPR_TCE_GET_INFO are both 112); {@link vfioIoctlsByNumber} returns
 *   all of them.
 * - Flag objects use the C name without its common prefix as keys, e.g.
 *   `VFIO_DMA_MAP_FLAG.READ` is C's `VFIO_DMA_MAP_FLAG_READ`.
 *
 * @example
 * vfioIoctlNumber('generic', 'VFIO_IOMMU_MAP_DMA'); // 0x3b71
 * const map = VfioIommuType1DmaMap.decode(bytes);
 * if (map.flags & VFIO_DMA_MAP_FLAG.WRITE) use(map.iova); // bigint
 */

import { type IoctlAbi, io } from './ioctl.ts';
import { field, struct } from './layout.ts';

/** `VFIO_API_VERSION`: what VFIO_GET_API_VERSION returns. */
export const VFIO_API_VERSION = 0;

/** `VFIO_TYPE`: the ioctl type byte, ';' (shared with iommufd). */
export const VFIO_TYPE = 0x3b;

/** `VFIO_BASE`: nr of the first VFIO ioctl. */
export const VFIO_BASE = 100;

/**
 * Extension numbers: the argument of VFIO_CHECK_EXTENSION, and (for the
 * IOMMU types 1, 2, 3, 7, 8) of VFIO_SET_IOMMU. `TYPE1_NESTING_IOMMU` is
 * `__VFIO_RESERVED_TYPE1_NESTING_IOMMU` in current headers (obsolete).
 */
export const VFIO_EXTENSION = {
  TYPE1_IOMMU: 1,
  SPAPR_TCE_IOMMU: 2,
  TYPE1v2_IOMMU: 3,
  DMA_CC_IOMMU: 4,
  EEH: 5,
  TYPE1_NESTING_IOMMU: 6,
  SPAPR_TCE_v2_IOMMU: 7,
  NOIOMMU_IOMMU: 8,
  UNMAP_ALL: 9,
  UPDATE_VADDR: 10,
} as const;

// ---------------------------------------------------------------------------
// Ioctl numbers

/** Which kind of fd an ioctl is meant for. */
export type VfioFdKind = 'container' | 'group' | 'device';

/** One VFIO ioctl: its macro name, nr and the fd kind that serves it. */
export interface VfioIoctl {
  readonly name: string;
  /** `VFIO_BASE + k`. */
  readonly nr: number;
  readonly fd: VfioFdKind;
}

function ioctl<const N extends string>(
  name: N,
  k: number,
  fd: VfioFdKind,
): VfioIoctl & { name: N } {
  return { name, nr: VFIO_BASE + k, fd };
}

/**
 * Every ioctl of vfio.h in nr order; nrs 112 and 117–120 appear twice
 * (container type1 vs SPAPR, or container SPAPR vs device cdev).
 */
const IOCTLS = [
  ioctl('VFIO_GET_API_VERSION', 0, 'container'),
  ioctl('VFIO_CHECK_EXTENSION', 1, 'container'),
  ioctl('VFIO_SET_IOMMU', 2, 'container'),
  ioctl('VFIO_GROUP_GET_STATUS', 3, 'group'),
  ioctl('VFIO_GROUP_SET_CONTAINER', 4, 'group'),
  ioctl('VFIO_GROUP_UNSET_CONTAINER', 5, 'group'),
  ioctl('VFIO_GROUP_GET_DEVICE_FD', 6, 'group'),
  ioctl('VFIO_DEVICE_GET_INFO', 7, 'device'),
  ioctl('VFIO_DEVICE_GET_REGION_INFO', 8, 'device'),
  ioctl('VFIO_DEVICE_GET_IRQ_INFO', 9, 'device'),
  ioctl('VFIO_DEVICE_SET_IRQS', 10, 'device'),
  ioctl('VFIO_DEVICE_RESET', 11, 'device'),
  ioctl('VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', 12, 'device'),
  ioctl('VFIO_IOMMU_GET_INFO', 12, 'container'),
  ioctl('VFIO_IOMMU_SPAPR_TCE_GET_INFO', 12, 'container'),
  ioctl('VFIO_DEVICE_PCI_HOT_RESET', 13, 'device'),
  ioctl('VFIO_IOMMU_MAP_DMA', 13, 'container'),
  ioctl('VFIO_DEVICE_QUERY_GFX_PLANE', 14, 'device'),
  ioctl('VFIO_IOMMU_UNMAP_DMA', 14, 'container'),
  ioctl('VFIO_DEVICE_GET_GFX_DMABUF', 15, 'device'),
  ioctl('VFIO_IOMMU_ENABLE', 15, 'container'),
  ioctl('VFIO_DEVICE_IOEVENTFD', 16, 'device'),
  ioctl('VFIO_IOMMU_DISABLE', 16, 'container'),
  ioctl('VFIO_DEVICE_FEATURE', 17, 'device'),
  ioctl('VFIO_IOMMU_DIRTY_PAGES', 17, 'container'),
  ioctl('VFIO_IOMMU_SPAPR_REGISTER_MEMORY', 17, 'container'),
  ioctl('VFIO_DEVICE_BIND_IOMMUFD', 18, 'device'),
  ioctl('VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY', 18, 'container'),
  ioctl('VFIO_DEVICE_ATTACH_IOMMUFD_PT', 19, 'device'),
  ioctl('VFIO_IOMMU_SPAPR_TCE_CREATE', 19, 'container'),
  ioctl('VFIO_DEVICE_DETACH_IOMMUFD_PT', 20, 'device'),
  ioctl('VFIO_IOMMU_SPAPR_TCE_REMOVE', 20, 'container'),
  ioctl('VFIO_EEH_PE_OP', 21, 'container'),
] as const;

/** Macro name of a VFIO ioctl, e.g. `'VFIO_IOMMU_MAP_DMA'`. */
export type VfioIoctlName = (typeof IOCTLS)[number]['name'];

/** Every VFIO ioctl in nr order (aliases adjacent). */
export const VFIO_IOCTLS: readonly VfioIoctl[] = IOCTLS;

const BY_NAME = new Map<string, VfioIoctl>(IOCTLS.map((c) => [c.name, c]));

/** The table entry of an ioctl by macro name. */
export function vfioIoctl(name: VfioIoctlName): VfioIoctl {
  return BY_NAME.get(name)!;
}

/** The request number of a VFIO ioctl under an ABI, e.g. generic 0x3b71, powerpc 0x20003b71. */
export function vfioIoctlNumber(abi: IoctlAbi, name: VfioIoctlName): number {
  return io(abi, VFIO_TYPE, vfioIoctl(name).nr);
}

/**
 * The nr a request names when it is exactly `_IO(';', nr)` under an ABI with
 * nr a VFIO ioctl, else undefined: the same nr with size or direction bits,
 * or of the other ABI, is no VFIO ioctl (the kernel's switch compares the
 * whole word).
 */
export function vfioNrOf(abi: IoctlAbi, request: number): number | undefined {
  const nr = request & 0xff;
  if (nr < VFIO_BASE || nr > IOCTLS[IOCTLS.length - 1]!.nr) return undefined;
  return io(abi, VFIO_TYPE, nr) === request >>> 0 ? nr : undefined;
}

/** Every ioctl a request number may mean (several where nrs are shared); empty if none. */
export function vfioIoctlsByNumber(abi: IoctlAbi, request: number): VfioIoctl[] {
  const nr = vfioNrOf(abi, request);
  return nr === undefined ? [] : IOCTLS.filter((c) => c.nr === nr);
}

// ---------------------------------------------------------------------------
// Flags and capability ids

/** `vfio_group_status.flags`: VFIO_GROUP_FLAGS_*. */
export const VFIO_GROUP_FLAGS = { VIABLE: 1, CONTAINER_SET: 2 } as const;

/** `vfio_iommu_type1_info.flags`: VFIO_IOMMU_INFO_*. */
export const VFIO_IOMMU_INFO = { PGSIZES: 1, CAPS: 2 } as const;

/** Capability ids of the type1 GET_INFO chain: VFIO_IOMMU_TYPE1_INFO_CAP_* and _DMA_AVAIL. */
export const VFIO_IOMMU_TYPE1_INFO_CAP = { IOVA_RANGE: 1, MIGRATION: 2, DMA_AVAIL: 3 } as const;

/** `vfio_iommu_type1_dma_map.flags`: VFIO_DMA_MAP_FLAG_* (READ/WRITE from the device's side). */
export const VFIO_DMA_MAP_FLAG = { READ: 1, WRITE: 2, VADDR: 4 } as const;

/** `vfio_iommu_type1_dma_unmap.flags`: VFIO_DMA_UNMAP_FLAG_*. */
export const VFIO_DMA_UNMAP_FLAG = { GET_DIRTY_BITMAP: 1, ALL: 2, VADDR: 4 } as const;

/** `vfio_iommu_type1_dirty_bitmap.flags`: VFIO_IOMMU_DIRTY_PAGES_FLAG_*. */
export const VFIO_IOMMU_DIRTY_PAGES_FLAG = { START: 1, STOP: 2, GET_BITMAP: 4 } as const;

// ---------------------------------------------------------------------------
// Struct layouts

/** `struct vfio_group_status` (8 bytes): VFIO_GROUP_GET_STATUS. */
export const VfioGroupStatus = struct('vfio_group_status', 8, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'out'),
]);

/**
 * `struct vfio_info_cap_header` (8 bytes): the head of every capability;
 * `next` is the offset of the next one from the start of the info struct,
 * 0 for the last.
 */
export const VfioInfoCapHeader = struct('vfio_info_cap_header', 8, [
  field('id', 0, 'u16', 'out'),
  field('version', 2, 'u16', 'out'),
  field('next', 4, 'u32', 'out'),
]);

/** `struct vfio_iommu_type1_info` (24 bytes): VFIO_IOMMU_GET_INFO; the capability chain follows. */
export const VfioIommuType1Info = struct('vfio_iommu_type1_info', 24, [
  field('argsz', 0, 'u32', 'inout'),
  field('flags', 4, 'u32', 'out'),
  field('iova_pgsizes', 8, 'u64', 'out'),
  field('cap_offset', 16, 'u32', 'out'),
  field('pad', 20, 'u32', 'reserved'),
]);

/** `struct vfio_iova_range` (16 bytes): one valid IOVA range, `end` inclusive. */
export const VfioIovaRange = struct('vfio_iova_range', 16, [
  field('start', 0, 'u64', 'out'),
  field('end', 8, 'u64', 'out'),
]);

/**
 * `struct vfio_iommu_type1_info_cap_iova_range` (16 bytes, then `nr_iovas`
 * {@link VfioIovaRange} entries from offset 16): capability IOVA_RANGE v1.
 */
export const VfioIommuType1InfoCapIovaRange = struct('vfio_iommu_type1_info_cap_iova_range', 16, [
  field('id', 0, 'u16', 'out'),
  field('version', 2, 'u16', 'out'),
  field('next', 4, 'u32', 'out'),
  field('nr_iovas', 8, 'u32', 'out'),
  field('reserved', 12, 'u32', 'reserved'),
]);

/** `struct vfio_iommu_type1_info_cap_migration` (32 bytes): capability MIGRATION v1 (legacy type1 only). */
export const VfioIommuType1InfoCapMigration = struct('vfio_iommu_type1_info_cap_migration', 32, [
  field('id', 0, 'u16', 'out'),
  field('version', 2, 'u16', 'out'),
  field('next', 4, 'u32', 'out'),
  field('flags', 8, 'u32', 'out'),
  field('pgsize_bitmap', 16, 'u64', 'out'),
  field('max_dirty_bitmap_size', 24, 'u64', 'out'),
]);

/** `struct vfio_iommu_type1_info_dma_avail` (12 bytes, no tail padding): capability DMA_AVAIL v1. */
export const VfioIommuType1InfoDmaAvail = struct('vfio_iommu_type1_info_dma_avail', 12, [
  field('id', 0, 'u16', 'out'),
  field('version', 2, 'u16', 'out'),
  field('next', 4, 'u32', 'out'),
  field('avail', 8, 'u32', 'out'),
]);

/** `struct vfio_iommu_type1_dma_map` (32 bytes): VFIO_IOMMU_MAP_DMA. */
export const VfioIommuType1DmaMap = struct('vfio_iommu_type1_dma_map', 32, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('vaddr', 8, 'u64', 'in'),
  field('iova', 16, 'u64', 'in'),
  field('size', 24, 'u64', 'in'),
]);

/**
 * `struct vfio_iommu_type1_dma_unmap` (24 bytes, then `data[]`, a
 * {@link VfioBitmap} with GET_DIRTY_BITMAP): VFIO_IOMMU_UNMAP_DMA; `size`
 * comes back as the bytes unmapped.
 */
export const VfioIommuType1DmaUnmap = struct('vfio_iommu_type1_dma_unmap', 24, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('iova', 8, 'u64', 'in'),
  field('size', 16, 'u64', 'inout'),
]);

/** `struct vfio_bitmap` (24 bytes): a user dirty bitmap, one bit per `pgsize`. */
export const VfioBitmap = struct('vfio_bitmap', 24, [
  field('pgsize', 0, 'u64', 'in'),
  field('size', 8, 'u64', 'in'),
  field('data', 16, 'u64', 'in'),
]);

/** `struct vfio_iommu_type1_dirty_bitmap` (8 bytes, then `data[]`): VFIO_IOMMU_DIRTY_PAGES. */
export const VfioIommuType1DirtyBitmap = struct('vfio_iommu_type1_dirty_bitmap', 8, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
]);

/** `struct vfio_iommu_type1_dirty_bitmap_get` (40 bytes): the GET_BITMAP payload; `bitmap` flattened. */
export const VfioIommuType1DirtyBitmapGet = struct('vfio_iommu_type1_dirty_bitmap_get', 40, [
  field('iova', 0, 'u64', 'in'),
  field('size', 8, 'u64', 'in'),
  field('bitmap_pgsize', 16, 'u64', 'in'),
  field('bitmap_size', 24, 'u64', 'in'),
  field('bitmap_data', 32, 'u64', 'in'),
]);

/**
 * The smallest `argsz` each type1 ioctl accepts (EINVAL below it): the
 * offsetofend() of the field the kernel names. The kernel reads this many
 * bytes before it looks at `argsz`, so a shorter readable buffer is EFAULT.
 */
export const VFIO_TYPE1_MINSZ = {
  VFIO_IOMMU_GET_INFO: VfioIommuType1Info.endOf('iova_pgsizes'),
  VFIO_IOMMU_MAP_DMA: VfioIommuType1DmaMap.endOf('size'),
  VFIO_IOMMU_UNMAP_DMA: VfioIommuType1DmaUnmap.endOf('size'),
} as const;

// ---------------------------------------------------------------------------
// Device cdev (/dev/vfio/devices/vfioX): vfio-device.md §5

/** `VFIO_DEVICE_BIND_FLAG_*`: TOKEN (since v6.17) means `token_uuid_ptr` points to a 16-byte UUID. */
export const VFIO_DEVICE_BIND_FLAG = { TOKEN: 1 } as const;

/** `VFIO_DEVICE_ATTACH_PASID` / `VFIO_DEVICE_DETACH_PASID`: `pasid` is valid. */
export const VFIO_DEVICE_PT_FLAG = { PASID: 1 } as const;

/**
 * `struct vfio_device_bind_iommufd` (24 bytes; 16 before v6.17):
 * VFIO_DEVICE_BIND_IOMMUFD. minsz = endOf('out_devid') = 16.
 */
export const VfioDeviceBindIommufd = struct('vfio_device_bind_iommufd', 24, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('iommufd', 8, 's32', 'in'),
  field('out_devid', 12, 'u32', 'out'),
  field('token_uuid_ptr', 16, 'u64', 'in'),
]);

/** `struct vfio_device_attach_iommufd_pt` (16 bytes): minsz = endOf('pt_id') = 12; `pasid` with the PASID flag. */
export const VfioDeviceAttachIommufdPt = struct('vfio_device_attach_iommufd_pt', 16, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('pt_id', 8, 'u32', 'inout'),
  field('pasid', 12, 'u32', 'in'),
]);

/** `struct vfio_device_detach_iommufd_pt` (12 bytes): minsz = endOf('flags') = 8; `pasid` with the PASID flag. */
export const VfioDeviceDetachIommufdPt = struct('vfio_device_detach_iommufd_pt', 12, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('pasid', 8, 'u32', 'in'),
]);

// ---------------------------------------------------------------------------
// SPAPR TCE container (POWER)

/** SPAPR TCE container ioctl numbers (nr); MAP/UNMAP are type1's. Facts: spapr-tce.md §2. */
export const SPAPR_NR = {
  TCE_GET_INFO: VFIO_BASE + 12,
  MAP_DMA: VFIO_BASE + 13,
  UNMAP_DMA: VFIO_BASE + 14,
  ENABLE: VFIO_BASE + 15,
  DISABLE: VFIO_BASE + 16,
  REGISTER_MEMORY: VFIO_BASE + 17,
  UNREGISTER_MEMORY: VFIO_BASE + 18,
  TCE_CREATE: VFIO_BASE + 19,
  TCE_REMOVE: VFIO_BASE + 20,
  EEH_PE_OP: VFIO_BASE + 21,
} as const;

/** VFIO_IOMMU_SPAPR_INFO_DDW: the ddw fields are valid. */
export const VFIO_IOMMU_SPAPR_INFO_DDW = 1;

/** `struct vfio_iommu_spapr_tce_info` (32 bytes, 16 without `ddw`). */
export const VfioIommuSpaprTceInfo = struct('vfio_iommu_spapr_tce_info', 32, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'out'),
  field('dma32_window_start', 8, 'u32', 'out'),
  field('dma32_window_size', 12, 'u32', 'out'),
  field('pgsizes', 16, 'u64', 'out'),
  field('max_dynamic_windows_supported', 24, 'u32', 'out'),
  field('levels', 28, 'u32', 'out'),
]);

/** `struct vfio_iommu_spapr_register_memory` (24 bytes). */
export const VfioIommuSpaprRegisterMemory = struct('vfio_iommu_spapr_register_memory', 24, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('vaddr', 8, 'u64', 'in'),
  field('size', 16, 'u64', 'in'),
]);

/** `struct vfio_iommu_spapr_tce_create` (40 bytes); `start_addr` comes back. */
export const VfioIommuSpaprTceCreate = struct('vfio_iommu_spapr_tce_create', 40, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('page_shift', 8, 'u32', 'in'),
  field('__resv1', 12, 'u32', 'reserved'),
  field('window_size', 16, 'u64', 'in'),
  field('levels', 24, 'u32', 'in'),
  field('__resv2', 28, 'u32', 'reserved'),
  field('start_addr', 32, 'u64', 'out'),
]);

/** `struct vfio_iommu_spapr_tce_remove` (16 bytes). */
export const VfioIommuSpaprTceRemove = struct('vfio_iommu_spapr_tce_remove', 16, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('start_addr', 8, 'u64', 'in'),
]);

/** `vfio_eeh_pe_op.op`: VFIO_EEH_PE_* (spapr-tce.md §4.9). */
export const VFIO_EEH_PE_OP = {
  DISABLE: 0,
  ENABLE: 1,
  UNFREEZE_IO: 2,
  UNFREEZE_DMA: 3,
  GET_STATE: 4,
  RESET_DEACTIVATE: 5,
  RESET_HOT: 6,
  RESET_FUNDAMENTAL: 7,
  CONFIGURE: 8,
  INJECT_ERR: 9,
} as const;

/** What VFIO_EEH_PE_GET_STATE returns (the ioctl's positive value): VFIO_EEH_PE_STATE_*. */
export const VFIO_EEH_PE_STATE = {
  NORMAL: 0,
  RESET: 1,
  STOPPED: 2,
  STOPPED_DMA: 4,
  UNAVAIL: 5,
} as const;

/**
 * `struct vfio_eeh_pe_op` (40 bytes): VFIO_EEH_PE_OP; minsz = endOf('op') = 12,
 * INJECT_ERR needs the whole `err` (`struct vfio_eeh_pe_err`, flattened).
 */
export const VfioEehPeOp = struct('vfio_eeh_pe_op', 40, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('op', 8, 'u32', 'in'),
  field('__pad', 12, 'u32', 'reserved'),
  field('err_type', 16, 'u32', 'in'),
  field('err_func', 20, 'u32', 'in'),
  field('err_addr', 24, 'u64', 'in'),
  field('err_mask', 32, 'u64', 'in'),
]);
