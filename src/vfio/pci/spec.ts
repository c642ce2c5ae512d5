/**
 * The description of one PCI function the host hands to VFIO: its IDs,
 * BARs, interrupts and reserved regions. Pure data, written by the host's
 * topology (src/host/topology) and read by the emulated vfio-pci device.
 */
import type { ReservedKind } from '../../iommu/device.ts';
import type { DeviceModelSpec } from './models.ts';

/** A PCI BAR kind: 32- or 64-bit memory, or I/O ports. */
export type BarKind = 'mem32' | 'mem64' | 'io';

/** One implemented BAR. A mem64 BAR also occupies index + 1. */
export interface BarSpec {
  /** BAR number 0..5 (4 at most for mem64). */
  readonly index: number;
  readonly kind: BarKind;
  /** Length in bytes: a power of two, ≥ 16 for memory (≤ 2 GiB for mem32), 4..256 for I/O. */
  readonly size: bigint;
  /** Prefetchable memory (never for I/O). */
  readonly prefetchable: boolean;
}

/** A reserved IOVA range the device reports (RMRR, doorbell, ...); `last` is inclusive. */
export interface ReservedRegionSpec {
  readonly start: bigint;
  readonly last: bigint;
  readonly kind: ReservedKind;
}

/**
 * Interrupts the device implements. Absent fields mean: INTx yes (no for a
 * VF), no MSI, no MSI-X (see `effectiveIrq`).
 */
export interface IrqSpec {
  /** Interrupt pin present (config 0x3D ≠ 0). */
  readonly intx?: boolean;
  /** MSI vectors: 0 (no MSI capability) or a power of two up to 32. */
  readonly msi?: number;
  /** MSI-X table entries: 0 (no MSI-X capability) up to 2048. */
  readonly msix?: number;
  /** BAR holding the MSI-X table and PBA (default: the first memory BAR). */
  readonly msixBar?: number;
  /** Offset of the MSI-X table in that BAR, 8-byte aligned (default 0). */
  readonly msixTableOffset?: bigint;
  /** Offset of the PBA in that BAR, 8-byte aligned (default: table end rounded up to 4 KiB). */
  readonly msixPbaOffset?: bigint;
}

/** A PCI function the host can hand to VFIO. */
export interface PciDeviceSpec {
  /** 'DDDD:BB:DD.F', lower-case hex: the device name everywhere (sysfs, GET_DEVICE_FD). */
  readonly bdf: string;
  readonly vendor: number;
  readonly device: number;
  readonly subsystemVendor?: number;
  readonly subsystemDevice?: number;
  /** 24-bit class code: base class, subclass, programming interface (e.g. 0x010802 NVMe). */
  readonly class: number;
  readonly revision?: number;
  /** PCI Express function (4 KiB config space, ERR IRQ index); default true. */
  readonly pcie?: boolean;
  readonly bars: readonly BarSpec[];
  /**
   * The reset that reaches the function beyond its own (VFIO's PCI hot
   * reset): 'slot' a hot-plug slot that can reset it (pciehp), with the
   * functions of that slot; 'bus' the secondary bus reset of the bridge
   * above it, with every function of its bus; 'none' neither (a function
   * on a root bus). Default: 'none' on bus 0, 'bus' elsewhere.
   */
  readonly hotReset?: 'slot' | 'bus' | 'none';
  /** IOMMU group number (/dev/vfio/N); every member sits behind the same IOMMU. */
  readonly group: number;
  /**
   * `id` of the IommuSpec translating this device's DMA (may be left out of
   * JSON when there is one). '' (JSON null): no IOMMU translates it; VFIO
   * offers it only in no-IOMMU mode, alone in a fake group.
   */
  readonly iommu: string;
  /** The device's own reserved regions (an intel unit adds its MSI window on top). */
  readonly reservedRegions?: readonly ReservedRegionSpec[];
  readonly irq?: IrqSpec;
  /**
   * The device behind the function (models.ts, docs/devices.md): e.g.
   * `{ kind: 'dma-engine' }`. Absent: no device model (BARs are plain memory).
   */
  readonly model?: DeviceModelSpec;
  /**
   * An SR-IOV physical function: how many VFs are enabled (sriov_numvfs,
   * set through vfio-pci); exactly that many devices name it in `physfn`.
   * 0 = SR-IOV capable with no VF enabled. vfio-pci gives every PF a VF
   * token.
   */
  readonly sriov?: number;
  /**
   * An SR-IOV PF's TotalVFs (sriov_totalvfs): VFs user space may enable at
   * run time by writing `sriov_numvfs`, built from `sriovVf`. Default:
   * `sriov` (no VF beyond those listed).
   */
  readonly sriovTotalVfs?: number;
  /** What the VFs a PF enables at run time look like (needed when sriovTotalVfs > sriov). */
  readonly sriovVf?: SriovVfSpec;
  /**
   * An SR-IOV virtual function: its PF's BDF. A PF among the host's devices
   * is bound to vfio-pci (its VFs need its VF token); any other BDF stands
   * for a PF left to a host driver (no token). A VF has no INTx pin.
   */
  readonly physfn?: string;
}

/**
 * The VFs of a PF (its SR-IOV capability's VF Device ID, First VF Offset,
 * VF Stride and VF BARs): VF n has routing ID PF + offset + n × stride, the
 * PF's vendor, class and IOMMU, and a new IOMMU group of its own.
 */
export interface SriovVfSpec {
  readonly device: number;
  readonly bars: readonly BarSpec[];
  readonly irq?: IrqSpec;
  /** First VF Offset (default 0x10: VF 0 at device + 2 of the PF's bus). */
  readonly offset?: number;
  /** VF Stride (default 1). */
  readonly stride?: number;
}

/** The spec of VF `n` of `pf` (routing ID PF + offset + n × stride, in `group`). */
export function vfSpec(pf: PciDeviceSpec, n: number, group: number): PciDeviceSpec {
  const vf = pf.sriovVf;
  if (!vf) throw new Error(`${pf.bdf}: no VF template`);
  const [dom, bus, devfn] = splitBdf(pf.bdf);
  const rid = (bus << 8) + devfn + (vf.offset ?? 0x10) + n * (vf.stride ?? 1);
  const hex = (v: number, w: number) => v.toString(16).padStart(w, '0');
  return {
    bdf: `${hex(dom, 4)}:${hex((rid >> 8) & 0xff, 2)}:${hex((rid >> 3) & 0x1f, 2)}.${rid & 7}`,
    vendor: pf.vendor,
    device: vf.device,
    ...(pf.subsystemVendor !== undefined ? { subsystemVendor: pf.subsystemVendor } : {}),
    ...(pf.subsystemDevice !== undefined ? { subsystemDevice: pf.subsystemDevice } : {}),
    class: pf.class,
    ...(pf.revision !== undefined ? { revision: pf.revision } : {}),
    bars: vf.bars,
    group,
    iommu: pf.iommu,
    ...(vf.irq ? { irq: vf.irq } : {}),
    physfn: pf.bdf,
  };
}

/** 'DDDD:BB:DD.F' → [domain, bus, devfn]. */
function splitBdf(bdf: string): [number, number, number] {
  const m = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(bdf);
  if (!m) throw new Error(`bad BDF '${bdf}'`);
  return [
    Number.parseInt(m[1]!, 16),
    Number.parseInt(m[2]!, 16),
    (Number.parseInt(m[3]!, 16) << 3) | Number(m[4]),
  ];
}

/** Interrupt facts with every default applied. */
export interface EffectiveIrq {
  readonly intx: boolean;
  readonly msi: number;
  readonly msix: number;
  /** undefined when msix is 0. */
  readonly msixBar: number | undefined;
  readonly msixTableOffset: bigint;
  readonly msixPbaOffset: bigint;
}

const SZ_4K = 0x1000n;

/** Bytes of an MSI-X table with `n` entries (16 each). */
export function msixTableBytes(n: number): bigint {
  return BigInt(n) * 16n;
}

/** Bytes of an MSI-X PBA for `n` entries (one bit each, in qwords). */
export function msixPbaBytes(n: number): bigint {
  return BigInt(Math.ceil(n / 64)) * 8n;
}

/** A device's interrupts with the defaults of `IrqSpec` filled in. */
export function effectiveIrq(dev: PciDeviceSpec): EffectiveIrq {
  const irq = dev.irq ?? {};
  const msix = irq.msix ?? 0;
  const msixBar =
    msix > 0 ? (irq.msixBar ?? dev.bars.find((b) => b.kind !== 'io')?.index) : undefined;
  const msixTableOffset = irq.msixTableOffset ?? 0n;
  const tableEnd = msixTableOffset + msixTableBytes(msix);
  const msixPbaOffset = irq.msixPbaOffset ?? (tableEnd + SZ_4K - 1n) & ~(SZ_4K - 1n);
  return {
    intx: irq.intx ?? dev.physfn === undefined,
    msi: irq.msi ?? 0,
    msix,
    msixBar,
    msixTableOffset,
    msixPbaOffset,
  };
}
