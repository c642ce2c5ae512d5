/*
 * uiommu-uapi.h - the parts of the Linux VFIO and iommufd user API that the
 * uiommu example programs and test/server/pollable.c use: ioctl numbers,
 * flag values and argument struct layouts, plus the register map of
 * uiommu's emulated DMA engine.
 *
 * Written for uiommu from the ABI facts recorded in src/abi/vfio.ts,
 * src/abi/iommufd.ts and src/vfio/pci/abi.ts (not copied from kernel
 * headers; Debian 12 ships no iommufd header at all). Field names follow the
 * kernel's so that the programs read like any VFIO client. Do not include
 * this together with <linux/vfio.h> or <linux/iommufd.h>.
 *
 * Every VFIO and iommufd ioctl is _IO(';', nr): no size and no direction
 * bits. _IO comes from <linux/ioctl.h>, so the numbers follow the
 * architecture the program is built for (generic or powerpc encoding).
 */
#ifndef UIOMMU_UAPI_H
#define UIOMMU_UAPI_H

#include <linux/ioctl.h>
#include <stddef.h>
#include <stdint.h>

#define UIOMMU_IOCTL_TYPE ';'

/* ------------------------------------------------------------------------
 * VFIO: container (/dev/vfio/vfio), group (/dev/vfio/N), device fds.
 * Request nr = 100 + k.
 */
#define VFIO_API_VERSION 0

/* VFIO_CHECK_EXTENSION arguments; the IOMMU types are also SET_IOMMU's. */
#define VFIO_TYPE1_IOMMU 1
#define VFIO_SPAPR_TCE_IOMMU 2
#define VFIO_TYPE1v2_IOMMU 3
#define VFIO_SPAPR_TCE_v2_IOMMU 7
#define VFIO_UNMAP_ALL 9

#define UIOMMU_VFIO_IO(k) _IO(UIOMMU_IOCTL_TYPE, 100 + (k))

#define VFIO_GET_API_VERSION UIOMMU_VFIO_IO(0)
#define VFIO_CHECK_EXTENSION UIOMMU_VFIO_IO(1)
#define VFIO_SET_IOMMU UIOMMU_VFIO_IO(2)
#define VFIO_GROUP_GET_STATUS UIOMMU_VFIO_IO(3)
#define VFIO_GROUP_SET_CONTAINER UIOMMU_VFIO_IO(4)
#define VFIO_GROUP_UNSET_CONTAINER UIOMMU_VFIO_IO(5)
#define VFIO_GROUP_GET_DEVICE_FD UIOMMU_VFIO_IO(6)
#define VFIO_DEVICE_GET_INFO UIOMMU_VFIO_IO(7)
#define VFIO_DEVICE_GET_REGION_INFO UIOMMU_VFIO_IO(8)
#define VFIO_DEVICE_GET_IRQ_INFO UIOMMU_VFIO_IO(9)
#define VFIO_DEVICE_SET_IRQS UIOMMU_VFIO_IO(10)
#define VFIO_DEVICE_RESET UIOMMU_VFIO_IO(11)
/* nr 112..114 mean different things on a type1 and on a SPAPR container */
#define VFIO_IOMMU_GET_INFO UIOMMU_VFIO_IO(12)
#define VFIO_IOMMU_SPAPR_TCE_GET_INFO UIOMMU_VFIO_IO(12)
#define VFIO_IOMMU_MAP_DMA UIOMMU_VFIO_IO(13)
#define VFIO_IOMMU_UNMAP_DMA UIOMMU_VFIO_IO(14)
#define VFIO_DEVICE_GET_PCI_HOT_RESET_INFO UIOMMU_VFIO_IO(12)
#define VFIO_DEVICE_PCI_HOT_RESET UIOMMU_VFIO_IO(13)
/* nr 117..120: SPAPR container ioctls, and the device cdev ioctls */
#define VFIO_IOMMU_SPAPR_REGISTER_MEMORY UIOMMU_VFIO_IO(17)
#define VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY UIOMMU_VFIO_IO(18)
#define VFIO_IOMMU_SPAPR_TCE_CREATE UIOMMU_VFIO_IO(19)
#define VFIO_IOMMU_SPAPR_TCE_REMOVE UIOMMU_VFIO_IO(20)
#define VFIO_DEVICE_BIND_IOMMUFD UIOMMU_VFIO_IO(18)
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT UIOMMU_VFIO_IO(19)
#define VFIO_DEVICE_DETACH_IOMMUFD_PT UIOMMU_VFIO_IO(20)

/* VFIO_GROUP_GET_STATUS */
#define VFIO_GROUP_FLAGS_VIABLE 0x1u
#define VFIO_GROUP_FLAGS_CONTAINER_SET 0x2u
struct vfio_group_status {
	uint32_t argsz;
	uint32_t flags;
};

/* The head of every capability of an info chain; `next` counts from the
 * start of the info struct, 0 ends the chain. */
struct vfio_info_cap_header {
	uint16_t id;
	uint16_t version;
	uint32_t next;
};

/* VFIO_IOMMU_GET_INFO (type1); a capability chain may follow */
#define VFIO_IOMMU_INFO_PGSIZES 0x1u
#define VFIO_IOMMU_INFO_CAPS 0x2u
#define VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE 1
#define VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION 2
#define VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL 3
struct vfio_iommu_type1_info {
	uint32_t argsz;
	uint32_t flags;
	uint64_t iova_pgsizes;
	uint32_t cap_offset;
	uint32_t pad;
};

struct vfio_iova_range {
	uint64_t start;
	uint64_t end; /* inclusive */
};

struct vfio_iommu_type1_info_cap_iova_range {
	struct vfio_info_cap_header header;
	uint32_t nr_iovas;
	uint32_t reserved;
	struct vfio_iova_range iova_ranges[];
};

struct vfio_iommu_type1_info_dma_avail {
	struct vfio_info_cap_header header;
	uint32_t avail;
};

/* VFIO_IOMMU_MAP_DMA / UNMAP_DMA (type1 and SPAPR); READ/WRITE are the
 * device's permissions */
#define VFIO_DMA_MAP_FLAG_READ 0x1u
#define VFIO_DMA_MAP_FLAG_WRITE 0x2u
struct vfio_iommu_type1_dma_map {
	uint32_t argsz;
	uint32_t flags;
	uint64_t vaddr;
	uint64_t iova;
	uint64_t size;
};

struct vfio_iommu_type1_dma_unmap {
	uint32_t argsz;
	uint32_t flags;
	uint64_t iova;
	uint64_t size; /* type1: written back with the bytes unmapped */
};

/* VFIO_DEVICE_GET_INFO */
#define VFIO_DEVICE_FLAGS_RESET 0x1u
#define VFIO_DEVICE_FLAGS_PCI 0x2u
struct vfio_device_info {
	uint32_t argsz;
	uint32_t flags;
	uint32_t num_regions;
	uint32_t num_irqs;
	uint32_t cap_offset;
	uint32_t pad;
};

/* VFIO_DEVICE_GET_REGION_INFO; vfio-pci's fixed region indexes */
#define VFIO_REGION_INFO_FLAG_READ 0x1u
#define VFIO_REGION_INFO_FLAG_WRITE 0x2u
#define VFIO_REGION_INFO_FLAG_MMAP 0x4u
#define VFIO_REGION_INFO_FLAG_CAPS 0x8u
#define VFIO_PCI_BAR0_REGION_INDEX 0
#define VFIO_PCI_CONFIG_REGION_INDEX 7
#define VFIO_PCI_NUM_REGIONS 9
struct vfio_region_info {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t cap_offset;
	uint64_t size;
	uint64_t offset;
};

/* VFIO_DEVICE_GET_IRQ_INFO / SET_IRQS; vfio-pci's IRQ indexes */
#define VFIO_IRQ_INFO_EVENTFD 0x1u
#define VFIO_IRQ_INFO_MASKABLE 0x2u
#define VFIO_IRQ_INFO_AUTOMASKED 0x4u
#define VFIO_IRQ_INFO_NORESIZE 0x8u
#define VFIO_IRQ_SET_DATA_NONE 0x1u
#define VFIO_IRQ_SET_DATA_BOOL 0x2u
#define VFIO_IRQ_SET_DATA_EVENTFD 0x4u
#define VFIO_IRQ_SET_ACTION_MASK 0x8u
#define VFIO_IRQ_SET_ACTION_UNMASK 0x10u
#define VFIO_IRQ_SET_ACTION_TRIGGER 0x20u
#define VFIO_PCI_INTX_IRQ_INDEX 0
#define VFIO_PCI_MSI_IRQ_INDEX 1
#define VFIO_PCI_MSIX_IRQ_INDEX 2
struct vfio_irq_info {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t count;
};
struct vfio_irq_set {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t start;
	uint32_t count;
	uint8_t data[]; /* count bools or count s32 eventfds */
};

/* Device cdev (/dev/vfio/devices/vfioX) */
struct vfio_device_bind_iommufd {
	uint32_t argsz;
	uint32_t flags;
	int32_t iommufd;
	uint32_t out_devid;
	uint64_t token_uuid_ptr; /* since 6.17; argsz 16 stops before it */
};

struct vfio_device_attach_iommufd_pt {
	uint32_t argsz;
	uint32_t flags;
	uint32_t pt_id; /* in: IOAS or HWPT; out: the HWPT attached */
	uint32_t pasid;
};

struct vfio_device_detach_iommufd_pt {
	uint32_t argsz;
	uint32_t flags;
	uint32_t pasid;
};

/* SPAPR TCE (POWER) container */
#define VFIO_IOMMU_SPAPR_INFO_DDW 0x1u
struct vfio_iommu_spapr_tce_ddw_info {
	uint64_t pgsizes; /* bitmap of supported TCE page sizes */
	uint32_t max_dynamic_windows_supported;
	uint32_t levels;
};

struct vfio_iommu_spapr_tce_info {
	uint32_t argsz;
	uint32_t flags;
	uint32_t dma32_window_start;
	uint32_t dma32_window_size;
	struct vfio_iommu_spapr_tce_ddw_info ddw;
};

struct vfio_iommu_spapr_register_memory {
	uint32_t argsz;
	uint32_t flags;
	uint64_t vaddr;
	uint64_t size;
};

struct vfio_iommu_spapr_tce_create {
	uint32_t argsz;
	uint32_t flags;
	uint32_t page_shift;
	uint32_t __resv1;
	uint64_t window_size;
	uint32_t levels;
	uint32_t __resv2;
	uint64_t start_addr; /* out */
};

struct vfio_iommu_spapr_tce_remove {
	uint32_t argsz;
	uint32_t flags;
	uint64_t start_addr;
};

/* ------------------------------------------------------------------------
 * iommufd (/dev/iommu): request nr 0x80 + k; every struct starts with its
 * own `size`.
 */
#define UIOMMU_IOMMUFD_IO(nr) _IO(UIOMMU_IOCTL_TYPE, (nr))

#define IOMMU_DESTROY UIOMMU_IOMMUFD_IO(0x80)
#define IOMMU_IOAS_ALLOC UIOMMU_IOMMUFD_IO(0x81)
#define IOMMU_IOAS_IOVA_RANGES UIOMMU_IOMMUFD_IO(0x84)
#define IOMMU_IOAS_MAP UIOMMU_IOMMUFD_IO(0x85)
#define IOMMU_IOAS_UNMAP UIOMMU_IOMMUFD_IO(0x86)
#define IOMMU_HWPT_ALLOC UIOMMU_IOMMUFD_IO(0x89)
#define IOMMU_GET_HW_INFO UIOMMU_IOMMUFD_IO(0x8a)
#define IOMMU_FAULT_QUEUE_ALLOC UIOMMU_IOMMUFD_IO(0x8e)
#define IOMMU_VIOMMU_ALLOC UIOMMU_IOMMUFD_IO(0x90)
#define IOMMU_VDEVICE_ALLOC UIOMMU_IOMMUFD_IO(0x91)
#define IOMMU_VEVENTQ_ALLOC UIOMMU_IOMMUFD_IO(0x93)

struct iommu_destroy {
	uint32_t size;
	uint32_t id;
};

struct iommu_ioas_alloc {
	uint32_t size;
	uint32_t flags;
	uint32_t out_ioas_id;
};

struct iommu_iova_range {
	uint64_t start;
	uint64_t last; /* inclusive */
};

struct iommu_ioas_iova_ranges {
	uint32_t size;
	uint32_t ioas_id;
	uint32_t num_iovas; /* in: capacity of allowed_iovas; out: ranges there are */
	uint32_t __reserved;
	uint64_t allowed_iovas; /* user pointer to struct iommu_iova_range[] */
	uint64_t out_iova_alignment;
};

#define IOMMU_IOAS_MAP_FIXED_IOVA 0x1u
#define IOMMU_IOAS_MAP_WRITEABLE 0x2u
#define IOMMU_IOAS_MAP_READABLE 0x4u
struct iommu_ioas_map {
	uint32_t size;
	uint32_t flags;
	uint32_t ioas_id;
	uint32_t __reserved;
	uint64_t user_va;
	uint64_t length;
	uint64_t iova;
};

struct iommu_ioas_unmap {
	uint32_t size;
	uint32_t ioas_id;
	uint64_t iova;
	uint64_t length; /* written back with the bytes unmapped */
};

#define IOMMU_HWPT_ALLOC_NEST_PARENT 0x1u
#define IOMMU_HWPT_ALLOC_DIRTY_TRACKING 0x2u
#define IOMMU_HWPT_FAULT_ID_VALID 0x4u
#define IOMMU_HWPT_DATA_NONE 0
struct iommu_hwpt_alloc {
	uint32_t size;
	uint32_t flags;
	uint32_t dev_id;
	uint32_t pt_id;
	uint32_t out_hwpt_id;
	uint32_t __reserved;
	uint32_t data_type;
	uint32_t data_len;
	uint64_t data_uptr;
	uint32_t fault_id;
	uint32_t __reserved2;
};

#define IOMMU_HW_INFO_TYPE_NONE 0
#define IOMMU_HW_INFO_TYPE_INTEL_VTD 1
#define IOMMU_HW_CAP_DIRTY_TRACKING 0x1ull
struct iommu_hw_info {
	uint32_t size;
	uint32_t flags;
	uint32_t dev_id;
	uint32_t data_len;
	uint64_t data_uptr;
	uint32_t out_data_type; /* in_data_type with IOMMU_HW_INFO_FLAG_INPUT_TYPE */
	uint8_t out_max_pasid_log2;
	uint8_t __reserved[3];
	uint64_t out_capabilities;
};

/* IOMMU_FAULT_QUEUE_ALLOC: a fault object and a pollable fd delivering its
 * page requests (read: struct iommu_hwpt_pgfault records; write: struct
 * iommu_hwpt_page_response records) */
struct iommu_fault_alloc {
	uint32_t size;
	uint32_t flags;
	uint32_t out_fault_id;
	uint32_t out_fault_fd;
};

#define IOMMU_PGFAULT_FLAGS_PASID_VALID 0x1u
#define IOMMU_PGFAULT_FLAGS_LAST_PAGE 0x2u
#define IOMMU_PGFAULT_PERM_READ 0x1u
#define IOMMU_PGFAULT_PERM_WRITE 0x2u
#define IOMMU_PGFAULT_PERM_EXEC 0x4u
#define IOMMU_PGFAULT_PERM_PRIV 0x8u
struct iommu_hwpt_pgfault {
	uint32_t flags;
	uint32_t dev_id;
	uint32_t pasid;
	uint32_t grpid;
	uint32_t perm;
	uint32_t __reserved;
	uint64_t addr;
	uint32_t length;
	uint32_t cookie;
};

#define IOMMUFD_PAGE_RESP_SUCCESS 0
#define IOMMUFD_PAGE_RESP_INVALID 1
struct iommu_hwpt_page_response {
	uint32_t cookie;
	uint32_t code;
};

/* IOMMU_VIOMMU_ALLOC: a vIOMMU of a driver `type` on a nesting parent HWPT */
struct iommu_viommu_alloc {
	uint32_t size;
	uint32_t flags;
	uint32_t type;
	uint32_t dev_id;
	uint32_t hwpt_id;
	uint32_t out_viommu_id;
	uint32_t data_len;
	uint32_t __reserved;
	uint64_t data_uptr;
};

/* IOMMU_VDEVICE_ALLOC: the device's ID as the guest sees it (`virt_id`) */
struct iommu_vdevice_alloc {
	uint32_t size;
	uint32_t viommu_id;
	uint32_t dev_id;
	uint32_t out_vdevice_id;
	uint64_t virt_id;
};

/* IOMMU_VEVENTQ_ALLOC: a pollable fd delivering a vIOMMU's events, each a
 * struct iommufd_vevent_header followed by the type's event record */
#define IOMMU_VEVENTQ_FLAG_LOST_EVENTS 0x1u
struct iommu_veventq_alloc {
	uint32_t size;
	uint32_t flags;
	uint32_t viommu_id;
	uint32_t type;
	uint32_t veventq_depth;
	uint32_t out_veventq_id;
	uint32_t out_veventq_fd;
	uint32_t __reserved;
};

struct iommufd_vevent_header {
	uint32_t flags;
	uint32_t sequence;
};

/* ------------------------------------------------------------------------
 * PCI config space (the vfio-pci config region)
 */
#define UIOMMU_PCI_COMMAND 0x04
#define UIOMMU_PCI_COMMAND_MEMORY 0x2

/* ------------------------------------------------------------------------
 * uiommu's DMA engine in BAR0 (docs/dma-engine.md). Little-endian.
 */
#define DMA_ENGINE_ID 0x55444d41u /* "UDMA" */
#define DMA_REG_ID 0x00		  /* u32 RO */
#define DMA_REG_LIVENESS 0x04	  /* u32 RW: reads ~written */
#define DMA_REG_BUF_OFFSET 0x08	  /* u32 RO: 0x40000 */
#define DMA_REG_BUF_SIZE 0x0c	  /* u32 RO: 0x1000 */
#define DMA_REG_SRC 0x80	  /* u64 */
#define DMA_REG_DST 0x88	  /* u64 */
#define DMA_REG_COUNT 0x90	  /* u64 */
#define DMA_REG_CMD 0x98	  /* u64 */
#define DMA_REG_STATUS 0xa0	  /* u32 RO */
#define DMA_REG_FAULT_IOVA 0xa8	  /* u64 RO */
#define DMA_REG_IRQ_STATUS 0xb0	  /* u32 RW1C: bit 0 a command finished */
#define DMA_CMD_START 0x1ull
#define DMA_CMD_TO_MEMORY 0x2ull /* device buffer -> memory; clear: memory -> buffer */
#define DMA_STATUS_DONE 0x1u
#define DMA_STATUS_FAULT 0x2u
#define DMA_STATUS_INVALID 0x4u
#define DMA_BUF_OFFSET 0x40000ull
#define DMA_BUF_SIZE 0x1000ull

/* ------------------------------------------------------------------------
 * The layouts above, pinned (the same sizes and offsets src/abi pins).
 */
_Static_assert(sizeof(struct vfio_group_status) == 8, "vfio_group_status");
_Static_assert(sizeof(struct vfio_irq_info) == 16, "vfio_irq_info");
_Static_assert(sizeof(struct vfio_irq_set) == 20, "vfio_irq_set");
_Static_assert(sizeof(struct vfio_iommu_type1_info) == 24, "vfio_iommu_type1_info");
_Static_assert(sizeof(struct vfio_iommu_type1_info_cap_iova_range) == 16, "cap_iova_range");
_Static_assert(sizeof(struct vfio_iommu_type1_info_dma_avail) == 12, "dma_avail");
_Static_assert(sizeof(struct vfio_iommu_type1_dma_map) == 32, "vfio_iommu_type1_dma_map");
_Static_assert(sizeof(struct vfio_iommu_type1_dma_unmap) == 24, "vfio_iommu_type1_dma_unmap");
_Static_assert(sizeof(struct vfio_device_info) == 24, "vfio_device_info");
_Static_assert(sizeof(struct vfio_region_info) == 32, "vfio_region_info");
_Static_assert(sizeof(struct vfio_device_bind_iommufd) == 24, "vfio_device_bind_iommufd");
_Static_assert(sizeof(struct vfio_device_attach_iommufd_pt) == 16, "attach_iommufd_pt");
_Static_assert(sizeof(struct vfio_device_detach_iommufd_pt) == 12, "detach_iommufd_pt");
_Static_assert(sizeof(struct vfio_iommu_spapr_tce_info) == 32, "vfio_iommu_spapr_tce_info");
_Static_assert(sizeof(struct vfio_iommu_spapr_register_memory) == 24, "spapr_register_memory");
_Static_assert(sizeof(struct vfio_iommu_spapr_tce_create) == 40, "vfio_iommu_spapr_tce_create");
_Static_assert(offsetof(struct vfio_iommu_spapr_tce_create, start_addr) == 32, "start_addr");
_Static_assert(sizeof(struct vfio_iommu_spapr_tce_remove) == 16, "vfio_iommu_spapr_tce_remove");
_Static_assert(sizeof(struct iommu_destroy) == 8, "iommu_destroy");
_Static_assert(sizeof(struct iommu_ioas_alloc) == 12, "iommu_ioas_alloc");
_Static_assert(sizeof(struct iommu_ioas_iova_ranges) == 32, "iommu_ioas_iova_ranges");
_Static_assert(sizeof(struct iommu_ioas_map) == 40, "iommu_ioas_map");
_Static_assert(sizeof(struct iommu_ioas_unmap) == 24, "iommu_ioas_unmap");
_Static_assert(sizeof(struct iommu_hwpt_alloc) == 48, "iommu_hwpt_alloc");
_Static_assert(sizeof(struct iommu_hw_info) == 40, "iommu_hw_info");
_Static_assert(offsetof(struct iommu_hw_info, out_capabilities) == 32, "out_capabilities");
_Static_assert(sizeof(struct iommu_fault_alloc) == 16, "iommu_fault_alloc");
_Static_assert(sizeof(struct iommu_hwpt_pgfault) == 40, "iommu_hwpt_pgfault");
_Static_assert(offsetof(struct iommu_hwpt_pgfault, addr) == 24, "pgfault addr");
_Static_assert(sizeof(struct iommu_hwpt_page_response) == 8, "iommu_hwpt_page_response");
_Static_assert(sizeof(struct iommu_viommu_alloc) == 40, "iommu_viommu_alloc");
_Static_assert(sizeof(struct iommu_vdevice_alloc) == 24, "iommu_vdevice_alloc");
_Static_assert(sizeof(struct iommu_veventq_alloc) == 32, "iommu_veventq_alloc");
_Static_assert(sizeof(struct iommufd_vevent_header) == 8, "iommufd_vevent_header");

#endif /* UIOMMU_UAPI_H */
