/**
 * An emulated vfio-pci function: what the device fd of a PCI device answers
 * (vfio_pci_core.c), independent of how the fd was obtained (group or
 * cdev). Regions are addressed by file offset `index << 40`; config space
 * is a `PciConfigSpace`, memory and I/O BARs are sparse `BarMemory`.
 *
 * @example
 * const dev = new VfioPciDevice(spec);
 * dev.regionInfo(7); // { flags: READ|WRITE, size: 4096n, offset: 0x700_0000_0000n, caps: [] }
 * dev.read(vfioPciRegionOffset(7), 2); // vendor id bytes
 */
import { fail } from '../../abi/errno.ts';
import { DmaBufAttachments, type MmapHost } from '../../kernel/file.ts';
import {
  VFIO_DEVICE_FLAGS,
  VFIO_IRQ_INFO,
  VFIO_PCI_IRQ,
  VFIO_PCI_OFFSET_MASK,
  VFIO_PCI_OFFSET_SHIFT,
  VFIO_PCI_REGION,
  VFIO_REGION_INFO_CAP,
  VFIO_REGION_INFO_FLAG,
  vfioPciRegionOffset,
} from './abi.ts';
import { BarMemory } from './bar-memory.ts';
import { CAP_OFFSET, PCI, PCI_CAP_ID, PciConfigSpace } from './config-space.ts';
import type { DeviceModel, DmaPort } from './device-model.ts';
import { type EventfdGet, type IrqSetRequest, VfioPciIrqs, validateIrqSet } from './irqs.ts';
import { createDeviceModel } from './models.ts';
import { effectiveIrq, msixPbaBytes, msixTableBytes, type PciDeviceSpec } from './spec.ts';
import { VfToken } from './sriov.ts';

export interface VfioPciDeviceOptions {
  /**
   * The function has a reset method (pci_probe_reset_function: VFIO_DEVICE_FLAGS_RESET;
   * RESET gives EINVAL otherwise). Default: a PCI Express function, which
   * has FLR; a conventional one has none (its PM capability sets
   * No_Soft_Reset and it sits on the root bus: no bus reset).
   */
  readonly resetWorks?: boolean;
  /**
   * MSI-X can grow after enabling (vdev->has_dyn_msix: Linux 6.5+ on a
   * platform whose MSI domain allocates dynamically, as x86's does): MSI-X
   * IRQ info is then 0x1 (no NORESIZE), else 0x9. The kernel sets it for
   * functions behind a VT-d unit. Default false.
   */
  readonly dynamicMsix?: boolean;
  /**
   * Memory BARs can be mapped into the caller (mmap of the device fd,
   * docs/device-mmap.md): vfio-pci reports MMAP on every memory BAR (and
   * MSIX_MAPPABLE on the MSI-X BAR). false answers as vfio-pci does for a
   * BAR it cannot map (bar_mmap_supported false): READ|WRITE, no
   * capability, and mmap is EINVAL. Default true (Linux).
   */
  readonly barMmap?: boolean;
  /**
   * The function's DMA path through its IOMMU (the iommu `Device`); needed
   * when the spec has a `model`.
   */
  readonly dma?: DmaPort;
  /** The host's allocator of bus addresses, for BARs that DMA reaches (peer-to-peer). */
  readonly busRange?: MmapHost['busRange'];
  /**
   * CONFIG_VFIO_PCI_DMABUF (v6.19, with PCI_P2PDMA): VFIO_DEVICE_FEATURE_DMA_BUF
   * exports BAR ranges as dma-bufs (needs `busRange`). Default false: ENOTTY.
   */
  readonly dmabuf?: boolean;
}

export interface DeviceInfo {
  readonly flags: number;
  readonly numRegions: number;
  readonly numIrqs: number;
}

/** One region capability, already encoded (header included, padded to 8 bytes). */
export interface RegionCap {
  readonly id: number;
  readonly version: number;
  /** Bytes after the 8-byte header. */
  readonly body: Uint8Array;
}

export interface RegionInfo {
  readonly flags: number;
  readonly size: bigint;
  readonly offset: bigint;
  readonly caps: readonly RegionCap[];
}

export interface IrqInfo {
  readonly flags: number;
  readonly count: number;
}

export class VfioPciDevice {
  readonly config: PciConfigSpace;
  readonly irqs: VfioPciIrqs;
  /** Backing store per BAR index (memory and I/O BARs). */
  readonly barMemory = new Map<number, BarMemory>();
  readonly resetWorks: boolean;
  readonly dynamicMsix: boolean;
  readonly barMmap: boolean;
  /** The device behind the function (spec `model`), see device-model.ts. */
  readonly model: DeviceModel | undefined;
  /** Bumped on every function reset (RESET ioctl or FLR), for observers. */
  resets = 0;
  /**
   * Bumped each time Memory decode goes from on to off: vfio-pci then zaps
   * every mapping of the BARs (vfio_pci_zap_bars), and a later touch faults
   * with SIGBUS until decode is back on.
   */
  zaps = 0;
  /** An SR-IOV PF's VF token (vdev->vf_token). */
  readonly vfToken: VfToken | undefined;
  /** Bus addresses of BARs handed out for peer-to-peer DMA (barBusAddress). */
  private readonly busBases = new Map<number, bigint>();
  private readonly busRange: MmapHost['busRange'] | undefined;
  /** CONFIG_VFIO_PCI_DMABUF: see VfioPciDeviceOptions. */
  readonly dmabuf: boolean;
  /** Last closes so far (a dma-buf exported before one is revoked for good). */
  closes = 0;
  /**
   * The function's exported dma-bufs, told of each vfio_pci_dma_buf_move():
   * Memory decode turned off, a function or bus reset (RESET, an FLR
   * through config space, a hot reset), the last close. (Entering D3hot
   * moves them too in Linux: not modelled, as D3 does not turn decode off here.)
   */
  readonly dmabufMoves = new DmaBufAttachments();
  /** A VF's PF when vfio-pci has it (vdev->sriov_pf_core_dev); see linkSriov(). */
  sriovPf: VfioPciDevice | undefined;

  constructor(
    readonly spec: PciDeviceSpec,
    opts: VfioPciDeviceOptions = {},
  ) {
    this.dynamicMsix = opts.dynamicMsix ?? false;
    this.barMmap = opts.barMmap ?? true;
    this.busRange = opts.busRange;
    this.dmabuf = opts.dmabuf ?? false;
    this.vfToken = spec.sriov !== undefined ? new VfToken() : undefined;
    this.config = new PciConfigSpace(spec);
    this.resetWorks = opts.resetWorks ?? this.config.pcie;
    this.irqs = new VfioPciIrqs(this.config.pcie, this.dynamicMsix);
    this.config.msiState = () => ({
      msiEnabled: this.irqs.type === 'msi',
      msiQmax: this.irqs.msiQmax,
    });
    this.config.onFlr = () => {
      this.dmabufMoves.invalidate();
      this.resetInternals();
    };
    this.config.onIntxDisable = (disabled) => this.irqs.setIntxDisable(disabled);
    this.config.intxLine = () => this.irqs.intxLine;
    for (const b of spec.bars) this.barMemory.set(b.index, new BarMemory(b.size));
    if (spec.model) {
      if (!opts.dma) throw new Error(`${spec.bdf}: a device model needs the device's DMA path`);
      this.model = createDeviceModel(spec.model, {
        spec,
        bars: this.barMemory,
        dma: opts.dma,
        irq: {
          raise: (vector) => this.irqs.raiseMsi(vector),
          intx: (asserted) => this.irqs.setIntxLine(asserted),
        },
      });
      this.config.deviceRegisters = this.model;
    }
  }

  /** The device name ('DDDD:BB:DD.F'). */
  get name(): string {
    return this.spec.bdf;
  }

  // ---- open / close -------------------------------------------------------------

  /**
   * First open of the device (vfio_pci_core_enable): the function is reset
   * and vfio's virtual config is rebuilt from it, so config space is back at
   * its defaults; interrupts are off; BAR contents are lost.
   */
  enable(): void {
    this.irqs.disable();
    this.config.enable();
    for (const m of this.barMemory.values()) m.clear();
    this.model?.reset();
    // vfio_pci_core_finish_enable(): an open VF is a user of its PF's token
    if (this.sriovPf) this.sriovPf.vfToken!.users++;
  }

  /** Last close (vfio_pci_core_disable): interrupts off, function reset. */
  disable(): void {
    this.closes++;
    this.dmabufMoves.invalidate();
    if (this.sriovPf) this.sriovPf.vfToken!.users--;
    this.irqs.disable();
    this.resetInternals();
  }

  // ---- ioctls -------------------------------------------------------------------

  /** VFIO_DEVICE_GET_INFO: PCI (+RESET), 9 regions, 5 IRQ indexes. */
  info(): DeviceInfo {
    return {
      flags: VFIO_DEVICE_FLAGS.PCI | (this.resetWorks ? VFIO_DEVICE_FLAGS.RESET : 0),
      numRegions: VFIO_PCI_REGION.NUM,
      numIrqs: VFIO_PCI_IRQ.NUM,
    };
  }

  /**
   * VFIO_DEVICE_GET_REGION_INFO for one index: EINVAL for VGA (8, no VGA
   * support modelled) and for index ≥ 9. A memory BAR has MMAP (and
   * MSIX_MAPPABLE when it holds the MSI-X table) only with `barMmap`.
   */
  regionInfo(index: number): RegionInfo {
    const offset = vfioPciRegionOffset(index);
    const { READ, WRITE, MMAP } = VFIO_REGION_INFO_FLAG;
    if (index >= VFIO_PCI_REGION.BAR0 && index <= VFIO_PCI_REGION.BAR5) {
      const bar = this.spec.bars.find((b) => b.index === index);
      if (!bar) return { flags: 0, size: 0n, offset, caps: [] };
      let flags = READ | WRITE;
      const caps: RegionCap[] = [];
      if (bar.kind !== 'io' && this.barMmap) {
        flags |= MMAP;
        if (effectiveIrq(this.spec).msixBar === index) {
          caps.push({ id: VFIO_REGION_INFO_CAP.MSIX_MAPPABLE, version: 1, body: new Uint8Array() });
        }
      }
      return { flags, size: bar.size, offset, caps };
    }
    if (index === VFIO_PCI_REGION.ROM) return { flags: 0, size: 0n, offset, caps: [] };
    if (index === VFIO_PCI_REGION.CONFIG) {
      return { flags: READ | WRITE, size: BigInt(this.config.size), offset, caps: [] };
    }
    fail('EINVAL', `region index ${index}`, 'vfio_pci_ioctl_get_region_info');
  }

  /** VFIO_DEVICE_GET_IRQ_INFO: EINVAL for index ≥ 5 and for ERR on a conventional PCI device. */
  irqInfo(index: number): IrqInfo {
    const where = 'vfio_pci_ioctl_get_irq_info';
    if (index >= VFIO_PCI_IRQ.NUM) fail('EINVAL', `index ${index} past the last`, where);
    if (index === VFIO_PCI_IRQ.ERR && !this.config.pcie) {
      fail('EINVAL', 'ERR IRQ of a conventional PCI function', where);
    }
    let flags = VFIO_IRQ_INFO.EVENTFD;
    if (index === VFIO_PCI_IRQ.INTX) flags |= VFIO_IRQ_INFO.MASKABLE | VFIO_IRQ_INFO.AUTOMASKED;
    else if (index !== VFIO_PCI_IRQ.MSIX || !this.dynamicMsix) flags |= VFIO_IRQ_INFO.NORESIZE;
    return { flags, count: this.irqCount(index) };
  }

  /** vfio_pci_get_irq_count: read from the function's own config registers. */
  irqCount(index: number): number {
    const cfg = this.config;
    switch (index) {
      case VFIO_PCI_IRQ.INTX:
        return cfg.read8(PCI.INTERRUPT_PIN) ? 1 : 0;
      case VFIO_PCI_IRQ.MSI:
        return cfg.caps.has(PCI_CAP_ID.MSI)
          ? 1 << ((cfg.hwRead16(CAP_OFFSET.MSI + 2) & 0x000e) >> 1)
          : 0;
      case VFIO_PCI_IRQ.MSIX:
        return cfg.caps.has(PCI_CAP_ID.MSIX) ? (cfg.hwRead16(CAP_OFFSET.MSIX + 2) & 0x07ff) + 1 : 0;
      case VFIO_PCI_IRQ.ERR:
        return cfg.pcie ? 1 : 0;
      case VFIO_PCI_IRQ.REQ:
        return 1;
      default:
        return 0;
    }
  }

  /**
   * VFIO_DEVICE_SET_IRQS: validate (EINVAL), then apply (ENOTTY for an
   * unsupported index/action, EINVAL for a state mismatch). `argsz` is the
   * caller's; `data` must hold the payload the header announces; `eventfd`
   * resolves the caller's fds (eventfdCtxGet).
   */
  setIrqs(argsz: number, req: IrqSetRequest, eventfd: EventfdGet): void {
    const vectors = req.index < VFIO_PCI_IRQ.NUM ? this.irqCount(req.index) : 0;
    validateIrqSet(argsz, req, vectors);
    this.irqs.set(req, eventfd);
  }

  /** Payload bytes a SET_IRQS header needs after validation (see `validateIrqSet`). */
  setIrqsDataSize(argsz: number, hdr: Omit<IrqSetRequest, 'data'>): number {
    const vectors = hdr.index < VFIO_PCI_IRQ.NUM ? this.irqCount(hdr.index) : 0;
    return validateIrqSet(argsz, hdr, vectors);
  }

  /**
   * VFIO_DEVICE_RESET: EINVAL without a working reset. Linux sets D0, then
   * resets the function with its config saved and restored around the
   * reset, so config space reads the same afterwards (except the PM state,
   * now D0); device-internal state (BAR contents) is lost; dma-bufs are
   * moved (their importers' mappings gone). Interrupt setup is left alone.
   */
  reset(): void {
    if (!this.resetWorks)
      fail('EINVAL', 'the function has no reset method', 'vfio_pci_ioctl_reset');
    this.config.functionReset();
    this.dmabufMoves.invalidate();
    this.resetInternals();
  }

  /**
   * What a slot or bus reset (pci_reset_bus) leaves of the function: D0,
   * config saved and restored around the reset, device state and BAR
   * contents gone, BAR mappings zapped (vfio_pci_zap_bars), dma-bufs moved
   * (their importers' mappings gone). Needs no reset method of the
   * function's own.
   */
  busReset(): void {
    this.config.functionReset();
    this.zaps++;
    this.dmabufMoves.invalidate();
    this.resetInternals();
  }

  private resetInternals(): void {
    this.resets++;
    for (const m of this.barMemory.values()) m.clear();
    this.model?.reset();
  }

  // ---- mmap ---------------------------------------------------------------------

  /**
   * vfio_pci_core_mmap's checks for a mapping of `length` bytes at file
   * offset `offset`: EINVAL for a private mapping, a region that is no BAR
   * (ROM, config, VGA, index ≥ 9), a BAR without MMAP, or a range past the
   * BAR's size rounded up to `pageSize` (the host's PAGE_SIZE). Returns the
   * BAR index and the in-BAR offset.
   */
  mmapCheck(
    offset: bigint,
    length: bigint,
    shared: boolean,
    pageSize: bigint,
  ): { index: number; pos: bigint } {
    const index = Number(offset >> VFIO_PCI_OFFSET_SHIFT);
    if (!shared) fail('EINVAL', 'a BAR mapping must be MAP_SHARED', 'vfio_pci_core_mmap');
    if (index > VFIO_PCI_REGION.BAR5)
      fail('EINVAL', `region ${index} cannot be mapped`, 'vfio_pci_core_mmap');
    if (!(this.regionInfo(index).flags & VFIO_REGION_INFO_FLAG.MMAP)) {
      fail('EINVAL', `BAR${index} is not mappable`, 'vfio_pci_core_mmap');
    }
    const pos = offset & VFIO_PCI_OFFSET_MASK;
    const size = this.spec.bars.find((b) => b.index === index)!.size;
    if (pos + length > pageAlign(size, pageSize))
      fail('EINVAL', `past the end of BAR${index}`, 'vfio_pci_core_mmap');
    return { index, pos };
  }

  /**
   * The page-aligned ranges `[start, end)` of BAR `index` whose accesses
   * have side effects, so every access must reach the model (trapped): the
   * device model's register windows, the MSI-X table and PBA, and the last page
   * of a BAR that ends inside a page (its tail reads all-ones). The rest of a
   * mapped BAR is plain memory. Ranges are rounded out to `pageSize`.
   */
  registerRanges(index: number, pageSize: bigint): [bigint, bigint][] {
    const out: [bigint, bigint][] = [];
    for (const w of this.windows(index)) {
      out.push([pageDown(BigInt(w.start), pageSize), pageAlign(BigInt(w.end), pageSize)]);
    }
    // the page holding the end of a BAR smaller than it: its tail reads all-ones
    const size = this.spec.bars.find((b) => b.index === index)?.size ?? 0n;
    if (size % pageSize !== 0n) out.push([pageDown(size, pageSize), pageAlign(size, pageSize)]);
    const irq = effectiveIrq(this.spec);
    if (irq.msixBar === index) {
      const table = irq.msixTableOffset;
      const pba = irq.msixPbaOffset;
      out.push([pageDown(table, pageSize), pageAlign(table + msixTableBytes(irq.msix), pageSize)]);
      out.push([pageDown(pba, pageSize), pageAlign(pba + msixPbaBytes(irq.msix), pageSize)]);
    }
    return mergeRanges(out);
  }

  /**
   * One trapped access of `size` bytes at `pos` of BAR `index` through a
   * mapping: EIO (the process gets SIGBUS) while Memory decode is off;
   * bytes of the mapped page past a sub-page BAR read all-ones and take no
   * writes, as an unclaimed bus address does.
   */
  mappedAccess(index: number, pos: bigint, size: number, data?: Uint8Array): Uint8Array {
    if (!this.config.memoryEnabled)
      fail('EIO', 'memory decode disabled', 'vfio_pci_mmap_huge_fault');
    const barSize = this.spec.bars.find((b) => b.index === index)?.size ?? 0n;
    if (pos + BigInt(size) > barSize) {
      if (data) return new Uint8Array();
      return new Uint8Array(size).fill(0xff);
    }
    if (data) {
      this.barRw(index, pos, size, data);
      return new Uint8Array();
    }
    return this.barRw(index, pos, size, undefined) as Uint8Array;
  }

  /**
   * The bus address of BAR `index` for peer-to-peer DMA, allocated on first
   * use with `busRange` (the device's own by default): a device's DMA there reaches this BAR as a CPU
   * access would (registers included); while Memory decode is off reads
   * are all-ones and writes are dropped (a master abort).
   */
  barBusAddress(index: number, busRange = this.busRange): bigint {
    let base = this.busBases.get(index);
    if (base !== undefined) return base;
    if (!busRange) throw new Error(`${this.name}: no bus address allocator for BAR${index}`);
    const size = this.spec.bars.find((b) => b.index === index)!.size;
    const at = (phys: bigint) => phys - base!;
    base = busRange(size, {
      read: (phys, length) =>
        this.config.memoryEnabled
          ? (this.barRw(index, at(phys), length, undefined) as Uint8Array)
          : new Uint8Array(length).fill(0xff),
      write: (phys, data) => {
        if (this.config.memoryEnabled) this.barRw(index, at(phys), data.length, data);
      },
    });
    this.busBases.set(index, base);
    return base;
  }

  // ---- read / write -------------------------------------------------------------

  /** pread on the device fd at file offset `offset` (region index = offset >> 40). */
  read(offset: bigint, length: number): Uint8Array {
    return this.rw(offset, length, undefined) as Uint8Array;
  }

  /** pwrite on the device fd; returns the bytes consumed (BAR accesses are clipped). */
  write(offset: bigint, data: Uint8Array): number {
    return this.rw(offset, data.length, data) as number;
  }

  /** `offset` is a file position, never negative (pread64/pwrite64 refuse that first). */
  private rw(offset: bigint, length: number, data: Uint8Array | undefined): Uint8Array | number {
    const index = offset >> VFIO_PCI_OFFSET_SHIFT;
    if (index >= BigInt(VFIO_PCI_REGION.NUM))
      fail('EINVAL', `region index ${index}`, 'vfio_pci_rw');
    if (length === 0) return data ? 0 : new Uint8Array();
    const pos = offset & VFIO_PCI_OFFSET_MASK;
    const idx = Number(index);
    if (idx === VFIO_PCI_REGION.CONFIG) {
      if (pos + BigInt(length) > BigInt(this.config.size)) {
        fail('EFAULT', `config access past ${this.config.size} bytes`, 'vfio_pci_config_rw_single');
      }
      if (!data) return this.config.read(Number(pos), length);
      const decoding = this.config.memoryEnabled;
      const n = this.config.write(Number(pos), data);
      if (decoding && !this.config.memoryEnabled) {
        this.zaps++;
        this.dmabufMoves.invalidate();
      }
      return n;
    }
    if (idx <= VFIO_PCI_REGION.BAR5) return this.barRw(idx, pos, length, data);
    if (idx === VFIO_PCI_REGION.ROM) {
      if (data) fail('EINVAL', 'ROM is read-only', 'vfio_pci_rw');
      fail('EINVAL', 'the function has no ROM', 'vfio_pci_bar_rw');
    }
    fail('EINVAL', 'no VGA region (VGA access is not modelled)', 'vfio_pci_vga_rw');
  }

  /**
   * vfio_pci_bar_rw: EINVAL past the BAR (or for an absent BAR), the count
   * clipped to the BAR, EIO for memory BARs while Memory decode is off in the
   * virtual Command register. The MSI-X table reads as 0xff and drops writes;
   * the device model's register windows are served by the model, after the
   * rest of a write has landed.
   */
  private barRw(
    index: number,
    pos: bigint,
    length: number,
    data: Uint8Array | undefined,
  ): Uint8Array | number {
    const bar = this.spec.bars.find((b) => b.index === index);
    if (!bar || pos >= bar.size) fail('EINVAL', `BAR${index} offset ${pos}`, 'vfio_pci_bar_rw');
    const n = Number(bar.size - pos < BigInt(length) ? bar.size - pos : BigInt(length));
    if (bar.kind !== 'io' && !this.config.memoryEnabled)
      fail('EIO', 'memory decode disabled', 'vfio_pci_bar_rw');
    const mem = this.barMemory.get(index)!;
    const irq = effectiveIrq(this.spec);
    let xStart = 0n;
    let xEnd = 0n;
    if (irq.msixBar === index) {
      xStart = irq.msixTableOffset;
      xEnd = xStart + BigInt(irq.msix) * 16n;
    }
    const end = pos + BigInt(n);
    const windows = this.windows(index)
      .map((w) => [BigInt(w.start), BigInt(w.end)] as const)
      .filter(([s, e]) => pos < e && end > s);
    if (data) {
      let plain = outside(pos, end, xStart, xEnd);
      for (const [ws, we] of windows) plain = plain.flatMap(([s, e]) => outside(s, e, ws, we));
      for (const [s, e] of plain) mem.write(s, data.subarray(Number(s - pos), Number(e - pos)));
      for (const [ws, we] of windows) {
        const s = pos > ws ? pos : ws;
        const e = end < we ? end : we;
        this.model!.write(index, Number(s), data.subarray(Number(s - pos), Number(e - pos)));
      }
      return n;
    }
    const out = mem.read(pos, n);
    for (const [ws, we] of windows) {
      const s = pos > ws ? pos : ws;
      const e = end < we ? end : we;
      out.set(this.model!.read(index, Number(s), Number(e - s)), Number(s - pos));
    }
    if (xEnd > xStart && pos < xEnd && end > xStart) {
      const s = Number((pos > xStart ? pos : xStart) - pos);
      const e = Number((end < xEnd ? end : xEnd) - pos);
      out.fill(0xff, s, e);
    }
    return out;
  }

  /** The model's register windows in BAR `index`. */
  private windows(index: number): readonly { start: number; end: number }[] {
    return this.model?.registers.filter((w) => w.bar === index) ?? [];
  }
}

function pageAlign(x: bigint, page: bigint): bigint {
  return (x + page - 1n) & ~(page - 1n);
}

function pageDown(x: bigint, page: bigint): bigint {
  return x & ~(page - 1n);
}

/** Sorted, overlapping or touching ranges joined. */
function mergeRanges(ranges: [bigint, bigint][]): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  for (const [s, e] of [...ranges].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    const last = out[out.length - 1];
    if (last && s <= last[1]) last[1] = e > last[1] ? e : last[1];
    else out.push([s, e]);
  }
  return out;
}

/** The parts of [pos, end) outside [xs, xe). */
function outside(pos: bigint, end: bigint, xs: bigint, xe: bigint): [bigint, bigint][] {
  if (xe <= xs || end <= xs || pos >= xe) return [[pos, end]];
  const parts: [bigint, bigint][] = [];
  if (pos < xs) parts.push([pos, xs]);
  if (end > xe) parts.push([xe, end]);
  return parts;
}
