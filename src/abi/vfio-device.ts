/**
 * The device-fd half of the VFIO uAPI (include/uapi/linux/vfio.h): the
 * argument structs and flags of VFIO_DEVICE_GET_INFO, GET_REGION_INFO,
 * GET_IRQ_INFO, SET_IRQS, DEVICE_FEATURE and the PCI hot-reset info header.
 * Same conventions as `vfio.ts`; the cdev structs (BIND_IOMMUFD,
 * ATTACH/DETACH_IOMMUFD_PT) live there.
 */
import { field, struct } from './layout.ts';

/** `vfio_device_info.flags`: VFIO_DEVICE_FLAGS_*. */
export const VFIO_DEVICE_FLAGS = {
  RESET: 0x1,
  PCI: 0x2,
  PLATFORM: 0x4,
  AMBA: 0x8,
  CCW: 0x10,
  AP: 0x20,
  FSL_MC: 0x40,
  CAPS: 0x80,
  CDX: 0x100,
} as const;

/** `struct vfio_device_info` (24 bytes); minsz is 16 (through num_irqs). */
export const VfioDeviceInfo = struct('vfio_device_info', 24, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'out'),
  field('num_regions', 8, 'u32', 'out'),
  field('num_irqs', 12, 'u32', 'out'),
  field('cap_offset', 16, 'u32', 'out'),
  field('pad', 20, 'u32', 'reserved'),
]);

/** `vfio_region_info.flags`: VFIO_REGION_INFO_FLAG_*. */
export const VFIO_REGION_INFO_FLAG = { READ: 1, WRITE: 2, MMAP: 4, CAPS: 8 } as const;

/** Region capability ids: VFIO_REGION_INFO_CAP_*. */
export const VFIO_REGION_INFO_CAP = {
  SPARSE_MMAP: 1,
  TYPE: 2,
  MSIX_MAPPABLE: 3,
  NVLINK2_SSATGT: 4,
  NVLINK2_LNKSPD: 5,
} as const;

/** `struct vfio_region_info` (32 bytes); minsz is the whole struct. */
export const VfioRegionInfo = struct('vfio_region_info', 32, [
  field('argsz', 0, 'u32', 'inout'),
  field('flags', 4, 'u32', 'out'),
  field('index', 8, 'u32', 'in'),
  field('cap_offset', 12, 'u32', 'out'),
  field('size', 16, 'u64', 'out'),
  field('offset', 24, 'u64', 'out'),
]);

/** `vfio_irq_info.flags`: VFIO_IRQ_INFO_*. */
export const VFIO_IRQ_INFO = { EVENTFD: 1, MASKABLE: 2, AUTOMASKED: 4, NORESIZE: 8 } as const;

/** `struct vfio_irq_info` (16 bytes); minsz is the whole struct. */
export const VfioIrqInfo = struct('vfio_irq_info', 16, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'out'),
  field('index', 8, 'u32', 'in'),
  field('count', 12, 'u32', 'out'),
]);

/** `vfio_irq_set.flags`: VFIO_IRQ_SET_*. */
export const VFIO_IRQ_SET = {
  DATA_NONE: 0x1,
  DATA_BOOL: 0x2,
  DATA_EVENTFD: 0x4,
  ACTION_MASK: 0x8,
  ACTION_UNMASK: 0x10,
  ACTION_TRIGGER: 0x20,
  DATA_TYPE_MASK: 0x7,
  ACTION_TYPE_MASK: 0x38,
} as const;

/** `struct vfio_irq_set` header (20 bytes; `data[]` follows at 20); minsz is 20. */
export const VfioIrqSet = struct('vfio_irq_set', 20, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('index', 8, 'u32', 'in'),
  field('start', 12, 'u32', 'in'),
  field('count', 16, 'u32', 'in'),
]);

/** `vfio_device_feature.flags`: the feature id in the low 16 bits and the GET/SET/PROBE ops. */
export const VFIO_DEVICE_FEATURE = {
  MASK: 0xffff,
  GET: 1 << 16,
  SET: 1 << 17,
  PROBE: 1 << 18,
} as const;

/** VFIO_DEVICE_FEATURE_* ids. */
export const VFIO_DEVICE_FEATURE_ID = {
  PCI_VF_TOKEN: 0,
  MIGRATION: 1,
  MIG_DEVICE_STATE: 2,
  LOW_POWER_ENTRY: 3,
  LOW_POWER_ENTRY_WITH_WAKEUP: 4,
  LOW_POWER_EXIT: 5,
  DMA_LOGGING_START: 6,
  DMA_LOGGING_STOP: 7,
  DMA_LOGGING_REPORT: 8,
  MIG_DATA_SIZE: 9,
  BUS_MASTER: 10,
  /** v6.19: a dma-buf fd of ranges of a BAR (CONFIG_VFIO_PCI_DMABUF). */
  DMA_BUF: 11,
} as const;

/** `struct vfio_device_feature` (8-byte header, then the feature's `data[]`); minsz 8. */
export const VfioDeviceFeature = struct('vfio_device_feature', 8, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
]);

/**
 * `struct vfio_device_feature_dma_buf` (16 bytes, then `nr_ranges`
 * struct vfio_region_dma_range): VFIO_DEVICE_FEATURE_DMA_BUF's payload.
 */
export const VfioDeviceFeatureDmaBuf = struct('vfio_device_feature_dma_buf', 16, [
  field('region_index', 0, 'u32', 'in'),
  field('open_flags', 4, 'u32', 'in'),
  field('flags', 8, 'u32', 'in'),
  field('nr_ranges', 12, 'u32', 'in'),
]);

/** `struct vfio_region_dma_range` (16 bytes): one slice of the BAR. */
export const VfioRegionDmaRange = struct('vfio_region_dma_range', 16, [
  field('offset', 0, 'u64', 'in'),
  field('length', 8, 'u64', 'in'),
]);

/** `vfio_pci_hot_reset_info.flags`: VFIO_PCI_HOT_RESET_FLAG_*. */
export const VFIO_PCI_HOT_RESET_FLAG = { DEV_ID: 1, DEV_ID_OWNED: 2 } as const;

/**
 * `struct vfio_pci_hot_reset_info` header (12 bytes; `devices[]` follow):
 * VFIO_DEVICE_GET_PCI_HOT_RESET_INFO; `count` comes back.
 */
export const VfioPciHotResetInfo = struct('vfio_pci_hot_reset_info', 12, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'out'),
  field('count', 8, 'u32', 'out'),
]);

/** `vfio_pci_dependent_device.devid` markers (VFIO_PCI_DEVID_*, as the u32 written back). */
export const VFIO_PCI_DEVID = { OWNED: 0, NOT_OWNED: 0xffff_ffff } as const;

/**
 * `struct vfio_pci_dependent_device` (8 bytes): one entry after the
 * GET_PCI_HOT_RESET_INFO header; `id` is the group ID, or with
 * VFIO_PCI_HOT_RESET_FLAG_DEV_ID the iommufd device ID.
 */
export const VfioPciDependentDevice = struct('vfio_pci_dependent_device', 8, [
  field('id', 0, 'u32', 'out'),
  field('segment', 4, 'u16', 'out'),
  field('bus', 6, 'u8', 'out'),
  field('devfn', 7, 'u8', 'out'),
]);

/**
 * `struct vfio_pci_hot_reset` header (12 bytes; `count` s32 group or
 * iommufd fds follow): VFIO_DEVICE_PCI_HOT_RESET.
 */
export const VfioPciHotReset = struct('vfio_pci_hot_reset', 12, [
  field('argsz', 0, 'u32', 'in'),
  field('flags', 4, 'u32', 'in'),
  field('count', 8, 'u32', 'in'),
]);
