/*
 * Interrupts of a real process under `uiommu run --host x86`: the DMA
 * engine function (0000:00:02.0, group 0) behind a type1 container. Its
 * eventfds must be signalled exactly when Linux's vfio-pci signals them:
 * a DATA_NONE/DATA_BOOL trigger (loopback), a DMA command's completion
 * and its fault (MSI-X, MSI, INTx), INTx auto-masked until unmasked and
 * re-signalled by an unmask while still pending. Bad eventfds get EBADF
 * and EINVAL. The conventional-PCI xHCI (0000:00:14.0, group 4) has no
 * reset method (GET_INFO flags 0x2) and a 256-byte config region.
 * Each check prints "ok <name>" or "FAIL <name>: ..."; exit 1 on a failure.
 *
 * Build: cc -I examples -o irq test/server/irq.c
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uiommu-uapi.h"

static int failures;

#define CHECK(name, cond, ...)                     \
	do {                                       \
		if (cond) {                        \
			printf("ok %s\n", name);   \
		} else {                           \
			printf("FAIL %s: ", name); \
			printf(__VA_ARGS__);       \
			printf("\n");              \
			failures++;                \
		}                                  \
		fflush(stdout);                    \
	} while (0)

static int dev;
static uint64_t bar0, config;

/* The eventfd's counter (taken), or 0 when it reads EAGAIN. */
static uint64_t take(int efd)
{
	uint64_t v = 0;
	if (read(efd, &v, 8) != 8)
		return errno == EAGAIN ? 0 : (uint64_t)-1;
	return v;
}

/* SET_IRQS with `n` s32 fds (DATA_EVENTFD) or no data; returns 0 or errno. */
static int set_irqs(uint32_t flags, uint32_t index, uint32_t start, uint32_t count, const int *fds,
		    int n)
{
	char buf[sizeof(struct vfio_irq_set) + 64];
	struct vfio_irq_set *s = (struct vfio_irq_set *)buf;
	s->argsz = sizeof(*s) + 4 * n;
	s->flags = flags;
	s->index = index;
	s->start = start;
	s->count = count;
	memcpy(s->data, fds, 4 * n);
	return ioctl(dev, VFIO_DEVICE_SET_IRQS, s) ? errno : 0;
}

static int trigger_none(uint32_t index, uint32_t start, uint32_t count)
{
	return set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index, start, count,
			NULL, 0);
}

static int wire(uint32_t index, uint32_t start, const int *fds, int n)
{
	return set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index, start, n,
			fds, n);
}

static void put64(uint64_t off, uint64_t v)
{
	if (pwrite(dev, &v, 8, (off_t)off) != 8)
		printf("FAIL pwrite at 0x%" PRIx64 ": %s\n", off, strerror(errno));
}

static uint32_t get32(uint64_t off)
{
	uint32_t v = 0;
	if (pread(dev, &v, 4, (off_t)off) != 4)
		printf("FAIL pread at 0x%" PRIx64 ": %s\n", off, strerror(errno));
	return v;
}

/* One device-buffer -> memory DMA of 64 bytes to `iova`; returns STATUS. */
static uint32_t dma_to(uint64_t iova)
{
	put64(bar0 + DMA_REG_SRC, DMA_BUF_OFFSET);
	put64(bar0 + DMA_REG_DST, iova);
	put64(bar0 + DMA_REG_COUNT, 64);
	put64(bar0 + DMA_REG_CMD, DMA_CMD_START | DMA_CMD_TO_MEMORY);
	return get32(bar0 + DMA_REG_STATUS);
}

static void irq_ack(void)
{
	uint32_t one = 1;
	if (pwrite(dev, &one, 4, (off_t)(bar0 + DMA_REG_IRQ_STATUS)) != 4)
		printf("FAIL IRQ_STATUS write: %s\n", strerror(errno));
}

static uint32_t region(int fd, uint32_t index, uint64_t *offset)
{
	struct vfio_region_info r = { .argsz = sizeof(r), .index = index };
	if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &r))
		return 0;
	if (offset)
		*offset = r.offset;
	return (uint32_t)r.size;
}

int main(void)
{
	const uint64_t IOVA = 0x100000;
	int container = open("/dev/vfio/vfio", O_RDWR);
	int group = open("/dev/vfio/0", O_RDWR);
	CHECK("open", container >= 0 && group >= 0, "container %d group %d", container, group);
	CHECK("set container", !ioctl(group, VFIO_GROUP_SET_CONTAINER, &container), "%s",
	      strerror(errno));
	CHECK("set iommu", !ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), "%s",
	      strerror(errno));
	dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, "0000:00:02.0");
	CHECK("device fd", dev >= 0, "%s", strerror(errno));

	struct vfio_device_info info = { .argsz = sizeof(info) };
	ioctl(dev, VFIO_DEVICE_GET_INFO, &info);
	CHECK("PCIe function has FLR: flags 0x3", info.flags == 0x3, "flags 0x%x", info.flags);
	CHECK("PCIe config region 0x1000",
	      region(dev, VFIO_PCI_CONFIG_REGION_INDEX, &config) == 0x1000, "size 0x%x",
	      region(dev, VFIO_PCI_CONFIG_REGION_INDEX, NULL));
	region(dev, VFIO_PCI_BAR0_REGION_INDEX, &bar0);
	struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = VFIO_PCI_MSIX_IRQ_INDEX };
	ioctl(dev, VFIO_DEVICE_GET_IRQ_INFO, &ii);
	CHECK("MSI-X: 8 vectors", ii.count == 8, "count %u", ii.count);
	CHECK("MSI-X: dynamic on x86, flags 0x1 (no NORESIZE)", ii.flags == 0x1, "flags 0x%x",
	      ii.flags);

	/* memory decode and bus mastering on; 1 MiB of memory mapped at IOVA */
	uint16_t cmd = 0x6;
	pwrite(dev, &cmd, 2, (off_t)(config + UIOMMU_PCI_COMMAND));
	void *mem = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vfio_iommu_type1_dma_map map = { .argsz = sizeof(map),
						.flags = VFIO_DMA_MAP_FLAG_READ |
							 VFIO_DMA_MAP_FLAG_WRITE,
						.vaddr = (uintptr_t)mem,
						.iova = IOVA,
						.size = 1 << 20 };
	CHECK("map dma", !ioctl(container, VFIO_IOMMU_MAP_DMA, &map), "%s", strerror(errno));

	/* ---- bad eventfds -------------------------------------------------------------- */
	int pipefd[2];
	if (pipe(pipefd))
		return 1;
	int closed = eventfd(0, 0);
	close(closed);
	CHECK("closed fd: EBADF", wire(VFIO_PCI_MSIX_IRQ_INDEX, 0, &closed, 1) == EBADF, "errno %d",
	      wire(VFIO_PCI_MSIX_IRQ_INDEX, 0, &closed, 1));
	CHECK("pipe: EINVAL", wire(VFIO_PCI_MSIX_IRQ_INDEX, 0, &pipefd[0], 1) == EINVAL, "errno %d",
	      wire(VFIO_PCI_MSIX_IRQ_INDEX, 0, &pipefd[0], 1));

	/* ---- MSI-X ----------------------------------------------------------------------- */
	int e0 = eventfd(0, EFD_NONBLOCK), e1 = eventfd(0, EFD_NONBLOCK);
	int pair[2] = { e0, e1 };
	CHECK("MSI-X enable 2 vectors", wire(VFIO_PCI_MSIX_IRQ_INDEX, 0, pair, 2) == 0, "failed");
	CHECK("MSI-X quiet before any trigger", take(e0) == 0 && take(e1) == 0, "not quiet");
	CHECK("DATA_NONE trigger vector 1", trigger_none(VFIO_PCI_MSIX_IRQ_INDEX, 1, 1) == 0,
	      "failed");
	CHECK("vector 1 reads 1, vector 0 nothing", take(e1) == 1 && take(e0) == 0,
	      "wrong eventfd");
	char bools[sizeof(struct vfio_irq_set) + 2];
	struct vfio_irq_set *bs = (struct vfio_irq_set *)bools;
	*bs = (struct vfio_irq_set){ .argsz = sizeof(bools),
				     .flags = VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER,
				     .index = VFIO_PCI_MSIX_IRQ_INDEX,
				     .start = 0,
				     .count = 2 };
	bs->data[0] = 1;
	bs->data[1] = 0;
	CHECK("DATA_BOOL trigger", !ioctl(dev, VFIO_DEVICE_SET_IRQS, bs), "%s", strerror(errno));
	CHECK("DATA_BOOL signals only the true vector", take(e0) == 1 && take(e1) == 0, "wrong");
	CHECK("DMA completes", dma_to(IOVA) == DMA_STATUS_DONE, "status");
	CHECK("MSI-X vector 0 signalled by the completion", take(e0) == 1, "not signalled");
	CHECK("DMA faults", dma_to(0x40000000) == (DMA_STATUS_DONE | DMA_STATUS_FAULT), "status");
	CHECK("MSI-X vector 0 signalled by the fault", take(e0) == 1, "not signalled");
	CHECK("dynamic MSI-X: vector 6 wired after enable",
	      wire(VFIO_PCI_MSIX_IRQ_INDEX, 6, &e1, 1) == 0, "failed");
	trigger_none(VFIO_PCI_MSIX_IRQ_INDEX, 6, 1);
	CHECK("vector 6 fires", take(e1) == 1, "not signalled");
	CHECK("MSI-X disable", trigger_none(VFIO_PCI_MSIX_IRQ_INDEX, 0, 0) == 0, "failed");
	irq_ack();
	dma_to(IOVA);
	CHECK("no signal once MSI-X is off", take(e0) == 0, "signalled");
	irq_ack();

	/* ---- MSI ------------------------------------------------------------------------- */
	CHECK("MSI enable", wire(VFIO_PCI_MSI_IRQ_INDEX, 0, &e1, 1) == 0, "failed");
	dma_to(IOVA);
	CHECK("MSI vector 0 signalled by the completion", take(e1) == 1, "not signalled");
	CHECK("MSI-X refused while MSI is on", wire(VFIO_PCI_MSIX_IRQ_INDEX, 0, &e0, 1) == EINVAL,
	      "not EINVAL");
	trigger_none(VFIO_PCI_MSI_IRQ_INDEX, 0, 0);
	irq_ack();

	/* ---- INTx ------------------------------------------------------------------------ */
	CHECK("INTx enable", wire(VFIO_PCI_INTX_IRQ_INDEX, 0, &e0, 1) == 0, "failed");
	dma_to(IOVA);
	CHECK("INTx signalled by the completion", take(e0) == 1, "not signalled");
	dma_to(IOVA);
	CHECK("INTx auto-masked: the next completion is not signalled", take(e0) == 0, "signalled");
	uint16_t status = 0;
	pread(dev, &status, 2, (off_t)(config + 6));
	CHECK("Status shows the pending interrupt", status & 0x8, "status 0x%x", status);
	CHECK("unmask while pending",
	      set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX,
		       0, 1, NULL, 0) == 0,
	      "failed");
	CHECK("unmask while pending signals again", take(e0) == 1, "not signalled");
	irq_ack();
	set_irqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, VFIO_PCI_INTX_IRQ_INDEX, 0, 1,
		 NULL, 0);
	CHECK("unmask after the ack is quiet", take(e0) == 0, "signalled");
	dma_to(IOVA);
	CHECK("the next completion is signalled", take(e0) == 1, "not signalled");
	{
		/* virqfd: one unmask eventfd at a time, gone once its owner closes it (QEMU's KVM path) */
		int u1 = eventfd(0, EFD_NONBLOCK), u2 = eventfd(0, EFD_NONBLOCK);
		uint32_t f = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK;
		CHECK("unmask eventfd set", set_irqs(f, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &u1, 1) == 0,
		      "failed");
		CHECK("a second unmask eventfd: EBUSY",
		      set_irqs(f, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &u2, 1) == EBUSY, "not EBUSY");
		close(u1);
		CHECK("after the first is closed, a new unmask eventfd is taken",
		      set_irqs(f, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &u2, 1) == 0, "failed");
		int off = -1;
		set_irqs(f, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &off, 1);
		close(u2);
	}
	CHECK("INTx mask by eventfd: ENOTTY",
	      set_irqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_MASK,
		       VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &e1, 1) == ENOTTY,
	      "not ENOTTY");
	CHECK("INTx disable", trigger_none(VFIO_PCI_INTX_IRQ_INDEX, 0, 0) == 0, "failed");

	/* ---- a conventional PCI function ------------------------------------------------- */
	int g4 = open("/dev/vfio/4", O_RDWR);
	CHECK("xHCI group", g4 >= 0 && !ioctl(g4, VFIO_GROUP_SET_CONTAINER, &container), "%s",
	      strerror(errno));
	int xhci = ioctl(g4, VFIO_GROUP_GET_DEVICE_FD, "0000:00:14.0");
	struct vfio_device_info xi = { .argsz = sizeof(xi) };
	ioctl(xhci, VFIO_DEVICE_GET_INFO, &xi);
	CHECK("no reset method: flags 0x2", xi.flags == 0x2, "flags 0x%x", xi.flags);
	CHECK("conventional PCI config region 0x100",
	      region(xhci, VFIO_PCI_CONFIG_REGION_INDEX, NULL) == 0x100, "size 0x%x",
	      region(xhci, VFIO_PCI_CONFIG_REGION_INDEX, NULL));
	CHECK("RESET without a method: EINVAL",
	      ioctl(xhci, VFIO_DEVICE_RESET) < 0 && errno == EINVAL, "%s", strerror(errno));
	return failures ? 1 : 0;
}
