/**
 * Built-in hosts. Each is a normalised {@link HostSpec} (what `parseHostSpec`
 * would return for its JSON), frozen. Ids, classes, BAR layouts and MSI-X
 * placements follow what lspci shows for these cards; addresses of RMRRs are
 * typical, not taken from one machine.
 */
import { INTEL_DEFAULTS, SPAPR_DEFAULTS } from './parse.ts';
import type { BarSpec, HostSpec, PciDeviceSpec } from './types.ts';

const K = 1n << 10n;
const M = 1n << 20n;

function mem32(index: number, size: bigint, prefetchable = false): BarSpec {
  return { index, kind: 'mem32', size, prefetchable };
}
function mem64(index: number, size: bigint, prefetchable = false): BarSpec {
  return { index, kind: 'mem64', size, prefetchable };
}
function io(index: number, size: bigint): BarSpec {
  return { index, kind: 'io', size, prefetchable: false };
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/**
 * A desktop x86 host as distributions ship it (legacy VFIO container with
 * type1; iommufd built, its compat container not) with one VT-d unit (dmar0,
 * 48-bit, 4K|2M|1G, dirty tracking, 20-bit PASIDs): 8 functions in 7 groups.
 * The GPU and its HDMI audio function (01:00.0/.1) share group 1; the xHCI
 * controller carries a relaxable RMRR; every device also gets the MSI window.
 * A neutral function (alone in group 0, INTx, MSI and MSI-X) carries the DMA
 * engine; an X710 PF (group 14) can enable up to 4 VFs at run time; an
 * ioat (CBDMA) channel sits alone in group 15.
 */
export const x86: HostSpec = deepFreeze({
  name: 'x86',
  kernel:
    'Debian amd64 (linux-image-amd64): VFIO legacy container with vfio_iommu_type1, iommufd without its compat container',
  iommus: [{ ...INTEL_DEFAULTS, id: 'dmar0' }],
  devices: [
    {
      // uiommu's DMA engine (docs/dma-engine.md) on a neutral function:
      // vendor 0x1234 (QEMU's own test devices), class 0xff (unassigned), so
      // no VMM applies a vendor quirk to it. INTx, MSI and MSI-X (table in BAR 2).
      bdf: '0000:00:02.0',
      vendor: 0x1234,
      device: 0x11e9,
      subsystemVendor: 0x1af4,
      subsystemDevice: 0x1100,
      class: 0xff0000,
      revision: 0x01,
      bars: [mem64(0, 1n * M), mem64(2, 16n * K)],
      group: 0,
      iommu: 'dmar0',
      irq: { intx: true, msi: 4, msix: 8, msixBar: 2, msixTableOffset: 0n, msixPbaOffset: 0x2000n },
      model: { kind: 'dma-engine' },
    },
    {
      // Intel Cannon Lake PCH USB 3.1 xHCI host controller.
      bdf: '0000:00:14.0',
      vendor: 0x8086,
      device: 0xa36d,
      subsystemVendor: 0x1028,
      subsystemDevice: 0x0869,
      class: 0x0c0330,
      revision: 0x10,
      pcie: false,
      bars: [mem64(0, 64n * K)],
      group: 4,
      iommu: 'dmar0',
      reservedRegions: [{ start: 0x7a7d_9000n, last: 0x7a7f_8fffn, kind: 'direct-relaxable' }],
      irq: { intx: true, msi: 8 },
    },
    {
      // NVIDIA GP104 [GeForce GTX 1080]: function 0 of a two-function card.
      bdf: '0000:01:00.0',
      vendor: 0x10de,
      device: 0x1b80,
      subsystemVendor: 0x10de,
      subsystemDevice: 0x119e,
      class: 0x030000,
      revision: 0xa1,
      bars: [mem32(0, 16n * M), mem64(1, 256n * M, true), mem64(3, 32n * M, true), io(5, 128n)],
      group: 1,
      iommu: 'dmar0',
      irq: { intx: true, msi: 1 },
    },
    {
      // NVIDIA GP104 high definition audio: same card, same group.
      bdf: '0000:01:00.1',
      vendor: 0x10de,
      device: 0x10f0,
      subsystemVendor: 0x10de,
      subsystemDevice: 0x119e,
      class: 0x040300,
      revision: 0xa1,
      bars: [mem32(0, 16n * K)],
      group: 1,
      iommu: 'dmar0',
      irq: { intx: true, msi: 1 },
    },
    {
      // Samsung 970 EVO NVMe SSD: MSI-X table at BAR0+0x3000, PBA at +0x2000; uiommu's NVMe
      // controller (docs/devices.md) with a 1 GiB namespace in sparse memory.
      bdf: '0000:02:00.0',
      vendor: 0x144d,
      device: 0xa808,
      subsystemVendor: 0x144d,
      subsystemDevice: 0xa801,
      class: 0x010802,
      revision: 0x00,
      bars: [mem64(0, 16n * K)],
      group: 12,
      iommu: 'dmar0',
      irq: {
        intx: true,
        msi: 32,
        msix: 33,
        msixBar: 0,
        msixTableOffset: 0x3000n,
        msixPbaOffset: 0x2000n,
      },
      model: { kind: 'nvme' },
    },
    {
      // Intel I210 Gigabit Ethernet: MSI-X table in BAR3.
      bdf: '0000:03:00.0',
      vendor: 0x8086,
      device: 0x1533,
      subsystemVendor: 0x8086,
      subsystemDevice: 0x0001,
      class: 0x020000,
      revision: 0x03,
      bars: [mem32(0, 128n * K), io(2, 32n), mem32(3, 16n * K)],
      group: 13,
      iommu: 'dmar0',
      irq: { intx: true, msi: 1, msix: 5, msixBar: 3, msixTableOffset: 0n, msixPbaOffset: 0x2000n },
    },
    {
      // Intel X710 10GbE SFP+: an SR-IOV PF with no VF enabled (up to 4 at run time).
      bdf: '0000:04:00.0',
      vendor: 0x8086,
      device: 0x1572,
      subsystemVendor: 0x8086,
      subsystemDevice: 0x0000,
      class: 0x020000,
      revision: 0x01,
      bars: [mem64(0, 8n * M, true), mem64(3, 32n * K, true)],
      group: 14,
      iommu: 'dmar0',
      irq: {
        intx: true,
        msi: 1,
        msix: 129,
        msixBar: 3,
        msixTableOffset: 0n,
        msixPbaOffset: 0x1000n,
      },
      sriov: 0,
      sriovTotalVfs: 4,
      sriovVf: {
        device: 0x154c,
        bars: [mem64(0, 64n * K, true), mem64(3, 16n * K, true)],
        irq: { msix: 5, msixBar: 3, msixTableOffset: 0n, msixPbaOffset: 0x2000n },
      },
    },
    ioat('0000:00:04.0', 15, 'dmar0'),
  ],
});

/**
 * A POWER9 bare-metal (PowerNV) host running Debian's ppc64el kernel (4 KiB
 * pages; ppc64 builds no type1 backend) with two PHB4s, each an IODA2 table
 * group source: 2 window slots (slot 0 = the 2 GiB 32-bit window at 0, slot
 * 1 at 1<<59), TCE pages 4K|64K|2M|1G, up to 5 levels. Five functions in
 * three PEs (groups): both ports of a ConnectX-5 share PE/group 0. Port 0
 * (0000:01:00.0) carries the DMA engine. An ioat (CBDMA) channel is PE/group 3.
 */
export const powernv: HostSpec = deepFreeze({
  name: 'powernv',
  kernel:
    'Debian ppc64el (linux-image-powerpc64le, 4 KiB pages) on bare metal: VFIO legacy container with vfio_iommu_spapr_tce only',
  iommus: [
    { ...SPAPR_DEFAULTS.powernv, id: 'phb0' },
    { ...SPAPR_DEFAULTS.powernv, id: 'phb1' },
  ],
  devices: [
    { ...connectX('0000:01:00.0', 0x1017, 0, 'phb0'), model: { kind: 'dma-engine' } },
    connectX('0000:01:00.1', 0x1017, 0, 'phb0'),
    {
      // IBM PCI-E IPR SAS adapter (ASIC).
      bdf: '0001:01:00.0',
      vendor: 0x1014,
      device: 0x034a,
      subsystemVendor: 0x1014,
      subsystemDevice: 0x04fb,
      class: 0x010400,
      revision: 0x01,
      bars: [mem64(0, 256n * K), mem64(2, 64n * K)],
      group: 1,
      iommu: 'phb1',
      irq: {
        intx: true,
        msi: 1,
        msix: 16,
        msixBar: 2,
        msixTableOffset: 0n,
        msixPbaOffset: 0x1000n,
      },
    },
    {
      // Samsung PM1733 NVMe SSD, with uiommu's NVMe controller (1 GiB sparse namespace).
      bdf: '0001:02:00.0',
      vendor: 0x144d,
      device: 0xa824,
      subsystemVendor: 0x1014,
      subsystemDevice: 0x0621,
      class: 0x010802,
      bars: [mem64(0, 32n * K)],
      group: 2,
      iommu: 'phb1',
      irq: {
        intx: true,
        msi: 32,
        msix: 64,
        msixBar: 0,
        msixTableOffset: 0x4000n,
        msixPbaOffset: 0x6000n,
      },
      model: { kind: 'nvme' },
    },
    ioat('0001:03:00.0', 3, 'phb1'),
  ],
});

/**
 * A PowerVM logical partition (pseries) running a 64 KiB-page kernel, as
 * PowerVM's supported distributions build it; programs see 64 KiB pages
 * (QEMU sizes TCE table levels from the page size, and a PowerVM PE takes
 * one level only, docs/vfio-containers.md). Each assigned slot is its own PHB
 * whose PE has the hypervisor's tables: 1 level only, TCE pages 4K|64K|16M,
 * a 1 GiB default window and a dynamic window slot at 1<<59. Three functions
 * in two groups.
 */
export const pseries: HostSpec = deepFreeze({
  name: 'pseries',
  kernel:
    'a 64 KiB-page ppc64el kernel in a PowerVM LPAR (Debian powerpc64le-64k, as RHEL and SLES build it): VFIO legacy container with vfio_iommu_spapr_tce only',
  pageSize: 65536,
  iommus: [
    { ...SPAPR_DEFAULTS.pseries, id: 'phb21' },
    { ...SPAPR_DEFAULTS.pseries, id: 'phb22' },
  ],
  devices: [
    connectX('0021:01:00.0', 0x1013, 0, 'phb21'),
    connectX('0021:01:00.1', 0x1013, 0, 'phb21'),
    {
      // Emulex LPe16000 16Gb Fibre Channel HBA.
      bdf: '0022:01:00.0',
      vendor: 0x10df,
      device: 0xe200,
      subsystemVendor: 0x10df,
      subsystemDevice: 0xe200,
      class: 0x0c0400,
      revision: 0x10,
      bars: [mem64(0, 16n * K), mem64(2, 64n * K), mem64(4, 16n * K)],
      group: 1,
      iommu: 'phb22',
      irq: {
        intx: true,
        msi: 1,
        msix: 32,
        msixBar: 4,
        msixTableOffset: 0n,
        msixPbaOffset: 0x2000n,
      },
    },
  ],
});

/**
 * An Intel Skylake-SP CBDMA channel (8086:2021) running the ioat model
 * (docs/devices.md): BAR0 of 16 KiB with the registers at 0, one MSI-X
 * vector (table at 0x2000, PBA at 0x3000), an INTx pin, no MSI.
 */
function ioat(bdf: string, group: number, iommu: string): PciDeviceSpec {
  return {
    bdf,
    vendor: 0x8086,
    device: 0x2021,
    subsystemVendor: 0x8086,
    subsystemDevice: 0x0000,
    class: 0x088000,
    revision: 0x04,
    bars: [mem64(0, 16n * K)],
    group,
    iommu,
    irq: { intx: true, msix: 1, msixBar: 0, msixTableOffset: 0x2000n, msixPbaOffset: 0x3000n },
    model: { kind: 'ioat' },
  };
}

/** A Mellanox ConnectX function (0x1013 = ConnectX-4, 0x1017 = ConnectX-5). */
function connectX(bdf: string, device: number, group: number, iommu: string): PciDeviceSpec {
  return {
    bdf,
    vendor: 0x15b3,
    device,
    subsystemVendor: 0x15b3,
    subsystemDevice: 0x0008,
    class: 0x020000,
    revision: 0x00,
    bars: [mem64(0, 32n * M, true)],
    group,
    iommu,
    irq: {
      intx: true,
      msi: 0,
      msix: 64,
      msixBar: 0,
      msixTableOffset: 0x2000n,
      msixPbaOffset: 0x3000n,
    },
  };
}

/**
 * The selftest's mock IOMMU with two QEMU PCI test devices (1b36:0005), each
 * alone in its group; instantiated as mock devices (flags 0).
 */
export const mock: HostSpec = deepFreeze({
  name: 'mock',
  kernel: 'an x86 kernel with CONFIG_IOMMUFD_TEST (the selftest mock IOMMU)',
  iommus: [{ kind: 'mock', id: 'mock0' }],
  devices: [0, 1].map(
    (n): PciDeviceSpec => ({
      bdf: `0000:00:0${n + 4}.0`,
      vendor: 0x1b36,
      device: 0x0005,
      subsystemVendor: 0x1af4,
      subsystemDevice: 0x1100,
      class: 0x00ff00,
      pcie: false,
      bars: [mem32(0, 4n * K), io(1, 256n)],
      group: n,
      iommu: 'mock0',
      irq: { intx: true },
    }),
  ),
});

/** QEMU's subsystem ids (Red Hat, QEMU) on its emulated functions. */
const QEMU_SUBSYSTEM = { subsystemVendor: 0x1af4, subsystemDevice: 0x1100 } as const;

/**
 * The reference guest of ../shared/refkernel (`qemu-system-x86_64 -M q35
 * -device intel-iommu,intremap=on,caching-mode=on -device edu,addr=03.0
 * -device e1000,addr=04.0 -device nvme,addr=05.0`, QEMU 10.0, Linux 7.2),
 * as its sysfs shows it: one VT-d unit (MGAW 48, second-level 4K|2M|1G,
 * no dirty tracking, no PASID, no snoop control) and the three functions at the guest's BDFs
 * and groups (2, 3, 4; the chipset's groups 0, 1, 5 are not VFIO's), so a
 * program runs unchanged in the guest and under `uiommu run --host refguest`.
 */
export const refguest: HostSpec = deepFreeze({
  name: 'refguest',
  kernel:
    'Linux 7.2 of ../shared/refkernel: IOMMUFD, IOMMUFD_TEST, the legacy VFIO container, VFIO cdevs, INTEL_IOMMU',
  // QEMU's VT-d has no snoop control (ecap 0xf00f4a: SC clear), so VFIO_DMA_CC_IOMMU is 0
  iommus: [
    {
      ...INTEL_DEFAULTS,
      id: 'dmar0',
      dirtyTracking: false,
      maxPasidLog2: 0,
      snoopControl: false,
    },
  ],
  devices: [
    {
      // QEMU edu: a 1 MiB MMIO BAR, MSI (one vector) and INTx.
      bdf: '0000:00:03.0',
      vendor: 0x1234,
      device: 0x11e8,
      ...QEMU_SUBSYSTEM,
      class: 0x00ff00,
      revision: 0x10,
      pcie: false,
      bars: [mem32(0, M)],
      group: 2,
      iommu: 'dmar0',
      irq: { intx: true, msi: 1 },
    },
    {
      // QEMU e1000 (82540EM): 128 KiB MMIO, 64 bytes of I/O ports, INTx only.
      bdf: '0000:00:04.0',
      vendor: 0x8086,
      device: 0x100e,
      ...QEMU_SUBSYSTEM,
      class: 0x020000,
      revision: 0x03,
      pcie: false,
      bars: [mem32(0, 128n * K), io(1, 64n)],
      group: 3,
      iommu: 'dmar0',
      irq: { intx: true },
    },
    {
      // QEMU nvme: 16 KiB 64-bit BAR0 with the MSI-X table at 0x2000 (65 vectors), PBA at 0x3000;
      // uiommu's NVMe controller behind it.
      bdf: '0000:00:05.0',
      vendor: 0x1b36,
      device: 0x0010,
      ...QEMU_SUBSYSTEM,
      class: 0x010802,
      revision: 0x02,
      bars: [mem64(0, 16n * K)],
      group: 4,
      iommu: 'dmar0',
      irq: {
        intx: true,
        msix: 65,
        msixBar: 0,
        msixTableOffset: 0x2000n,
        msixPbaOffset: 0x3000n,
      },
      model: { kind: 'nvme' },
    },
  ],
});

/** Every preset by name. */
export const PRESETS: Readonly<Record<string, HostSpec>> = Object.freeze({
  x86,
  powernv,
  pseries,
  mock,
  refguest,
});
