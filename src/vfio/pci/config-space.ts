/**
 * The PCI configuration space of an emulated vfio-pci function, as user
 * space sees it through the device fd (the kernel's vfio_pci_config.c).
 *
 * Two byte arrays model the two layers the kernel has:
 * - `hw`: the emulated function's own registers (what pci_read_config_*
 *   would return), with a per-byte mask of the bits the hardware lets
 *   software change;
 * - `vconfig`: vfio's virtual copy. Per byte, a `virt` mask says which bits
 *   are served from vconfig, and a `write` mask which bits user writes may
 *   change (virtual bits land in vconfig, the others go to `hw`, where the
 *   hardware's own mask applies). Everything else reads from `hw` and drops
 *   writes silently, like the kernel.
 *
 * Virtualised as vfio does (init_pci_cap_*_perm): vendor/device ids
 * (read-only), Command MEM/IO/INTx-disable (virtual; the other Command bits
 * reach the hardware), Status CAP_LIST, the six BARs and the ROM BAR
 * (virtual with the size-probe fixup: the value read back is masked to the
 * BAR size and carries the type bits, so writing all-ones reads back the
 * size mask), capability pointer and interrupt pin (read-only), interrupt
 * line (writable), capability header bytes (read-only), PM control (to the
 * hardware), MSI flags/address/data (virtual; the enable bit only sticks
 * while MSI is enabled through SET_IRQS, the vector-count field MME is
 * clamped), MSI mask bits (to the hardware), MSI-X (read-only: it is
 * programmed through SET_IRQS), PCIe Device Control (writable but Phantom
 * Functions) and Device Control 2 (writable but ARI). Cache line size,
 * latency timer and BIST are passed to the hardware. Unassigned bytes read
 * as the hardware has them (zero) and drop writes, except the device
 * model's own config registers (`deviceRegisters`), which it serves.
 *
 * Layout of the emulated function: header type 0, PM at 0x40, MSI at 0x50,
 * MSI-X at 0x70, PCIe (v2 endpoint) at 0x80, in list order, each only when
 * present; extended space (PCIe only) holds no extended capabilities (the
 * dword at 0x100 is 0).
 *
 * @example
 * const cfg = new PciConfigSpace(spec);
 * cfg.write32(0x10, 0xffffffff);
 * const size = ~(cfg.read32(0x10) & ~0xf) + 1; // BAR0's size (mem32)
 */
import { fail } from '../../abi/errno.ts';
import type { DeviceModel } from './device-model.ts';
import { effectiveIrq, type PciDeviceSpec } from './spec.ts';

/** Standard config space offsets and bits (pci_regs.h names). */
export const PCI = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION_ID: 0x08,
  CLASS_PROG: 0x09,
  CACHE_LINE_SIZE: 0x0c,
  LATENCY_TIMER: 0x0d,
  HEADER_TYPE: 0x0e,
  BIST: 0x0f,
  BASE_ADDRESS_0: 0x10,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  ROM_ADDRESS: 0x30,
  CAPABILITY_LIST: 0x34,
  INTERRUPT_LINE: 0x3c,
  INTERRUPT_PIN: 0x3d,
  COMMAND_IO: 0x1,
  COMMAND_MEMORY: 0x2,
  COMMAND_MASTER: 0x4,
  COMMAND_INTX_DISABLE: 0x400,
  STATUS_CAP_LIST: 0x10,
  /** Status bit 3: the function's INTx line is asserted. */
  STATUS_INTERRUPT: 0x08,
  BASE_ADDRESS_SPACE_IO: 0x1,
  BASE_ADDRESS_MEM_TYPE_64: 0x4,
  BASE_ADDRESS_MEM_PREFETCH: 0x8,
  CFG_SPACE_SIZE: 0x100,
  CFG_SPACE_EXP_SIZE: 0x1000,
} as const;

/** Capability ids (PCI_CAP_ID_*). */
export const PCI_CAP_ID = { PM: 0x01, MSI: 0x05, EXP: 0x10, MSIX: 0x11 } as const;

/** Where the emulated function places each capability (when present). */
export const CAP_OFFSET = { PM: 0x40, MSI: 0x50, MSIX: 0x70, EXP: 0x80 } as const;

/** MSI Message Control bits. */
export const PCI_MSI_FLAGS = {
  ENABLE: 0x1,
  QMASK: 0xe,
  QSIZE: 0x70,
  BIT64: 0x80,
  MASKBIT: 0x100,
} as const;

/** PCIe capability register offsets (relative to the capability) and bits. */
export const PCI_EXP = {
  FLAGS: 0x02,
  DEVCAP: 0x04,
  DEVCTL: 0x08,
  DEVSTA: 0x0a,
  LNKCAP: 0x0c,
  LNKCTL: 0x10,
  LNKSTA: 0x12,
  DEVCAP2: 0x24,
  DEVCTL2: 0x28,
  DEVCAP_FLR: 0x10000000,
  DEVCTL_PHANTOM: 0x0200,
  DEVCTL_BCR_FLR: 0x8000,
  DEVCTL2_ARI: 0x0020,
  /** PCI_CAP_EXP_ENDPOINT_SIZEOF_V2 */
  SIZEOF_V2: 0x3c,
} as const;

/** Which BAR slots exist and how they decode. */
interface BarSlot {
  readonly kind: 'mem32' | 'mem64' | 'mem64-hi' | 'io';
  readonly size: bigint;
  readonly prefetchable: boolean;
}

/** Interrupt state the config space needs from the IRQ layer (MSI flags virtualisation). */
export interface MsiState {
  /** MSI is enabled through SET_IRQS. */
  readonly msiEnabled: boolean;
  /** log2 of the vectors enabled through SET_IRQS, rounded up (the kernel's msi_qmax). */
  readonly msiQmax: number;
}

const NO_MSI: MsiState = { msiEnabled: false, msiQmax: 0 };

export class PciConfigSpace {
  /** 256, or 4096 for PCI Express. */
  readonly size: number;
  readonly pcie: boolean;
  /** Capability offsets present, by id. */
  readonly caps: ReadonlyMap<number, number>;
  /** Called when a Function Level Reset is initiated through PCIe Device Control. */
  onFlr: (() => void) | undefined;
  /** Consulted on MSI flags writes. */
  msiState: () => MsiState = () => NO_MSI;
  /** Told when the virtual Command register's INTx Disable bit changes. */
  onIntxDisable: ((disabled: boolean) => void) | undefined;
  /** The function's INTx line, shown as Status bit 3 (Interrupt Status). */
  intxLine: () => boolean = () => false;
  /**
   * The device model's own config registers (its `configRegisters`, in
   * bytes vfio leaves unassigned): raw reads and writes go to the model.
   */
  deviceRegisters: Pick<DeviceModel, 'configRegisters' | 'configRead' | 'configWrite'> | undefined;

  private readonly hw: Uint8Array;
  private readonly vconfig: Uint8Array;
  private readonly hwWrite: Uint8Array;
  private readonly virt: Uint8Array;
  private readonly writable: Uint8Array;
  private readonly powerOn: Uint8Array;
  private readonly bars: (BarSlot | undefined)[];

  constructor(readonly spec: PciDeviceSpec) {
    this.pcie = spec.pcie ?? true;
    this.size = this.pcie ? PCI.CFG_SPACE_EXP_SIZE : PCI.CFG_SPACE_SIZE;
    this.hw = new Uint8Array(this.size);
    this.vconfig = new Uint8Array(this.size);
    this.hwWrite = new Uint8Array(this.size);
    this.virt = new Uint8Array(this.size);
    this.writable = new Uint8Array(this.size);
    this.bars = barSlots(spec);
    const caps = new Map<number, number>();
    this.caps = caps;
    this.buildHardware(caps);
    this.powerOn = this.hw.slice();
    this.buildPerms();
    this.enable();
  }

  // ---- construction -------------------------------------------------------------

  private buildHardware(caps: Map<number, number>): void {
    const { spec } = this;
    const irq = effectiveIrq(spec);
    const h = new DataView(this.hw.buffer);
    h.setUint16(PCI.VENDOR_ID, spec.vendor, true);
    h.setUint16(PCI.DEVICE_ID, spec.device, true);
    h.setUint8(PCI.REVISION_ID, spec.revision ?? 0);
    h.setUint8(PCI.CLASS_PROG, spec.class & 0xff);
    h.setUint16(PCI.CLASS_PROG + 1, (spec.class >> 8) & 0xffff, true);
    h.setUint16(PCI.SUBSYSTEM_VENDOR_ID, spec.subsystemVendor ?? 0, true);
    h.setUint16(PCI.SUBSYSTEM_ID, spec.subsystemDevice ?? 0, true);
    h.setUint8(PCI.INTERRUPT_PIN, irq.intx ? 1 : 0);
    for (let i = 0; i < 6; i++) {
      const bar = this.bars[i];
      if (bar) h.setUint32(PCI.BASE_ADDRESS_0 + 4 * i, barTypeBits(bar), true);
    }
    this.hwMask(PCI.COMMAND, 2, 0x0547);
    this.hwMask(PCI.CACHE_LINE_SIZE, 1, 0xff);
    if (!this.pcie) this.hwMask(PCI.LATENCY_TIMER, 1, 0xff);

    const list: [number, number][] = [[PCI_CAP_ID.PM, CAP_OFFSET.PM]];
    if (irq.msi > 0) list.push([PCI_CAP_ID.MSI, CAP_OFFSET.MSI]);
    if (irq.msix > 0) list.push([PCI_CAP_ID.MSIX, CAP_OFFSET.MSIX]);
    if (this.pcie) list.push([PCI_CAP_ID.EXP, CAP_OFFSET.EXP]);
    h.setUint16(PCI.STATUS, PCI.STATUS_CAP_LIST, true);
    h.setUint8(PCI.CAPABILITY_LIST, list[0]![1]);
    list.forEach(([id, pos], i) => {
      caps.set(id, pos);
      h.setUint8(pos, id);
      h.setUint8(pos + 1, list[i + 1]?.[1] ?? 0);
    });

    // Power management 1.2: D0/D3hot only, No_Soft_Reset set.
    h.setUint16(CAP_OFFSET.PM + 2, 0x0003, true);
    h.setUint16(CAP_OFFSET.PM + 4, 0x0008, true);
    this.hwMask(CAP_OFFSET.PM + 4, 2, 0x0103);

    if (irq.msi > 0) {
      const pos = CAP_OFFSET.MSI;
      const mmc = Math.log2(irq.msi);
      h.setUint16(pos + 2, (mmc << 1) | PCI_MSI_FLAGS.BIT64 | PCI_MSI_FLAGS.MASKBIT, true);
      this.hwMask(pos + 0x10, 4, irq.msi >= 32 ? 0xffffffff : (1 << irq.msi) - 1);
    }
    if (irq.msix > 0) {
      const pos = CAP_OFFSET.MSIX;
      const bir = irq.msixBar ?? 0;
      h.setUint16(pos + 2, irq.msix - 1, true);
      h.setUint32(pos + 4, Number(irq.msixTableOffset & 0xfffffff8n) | bir, true);
      h.setUint32(pos + 8, Number(irq.msixPbaOffset & 0xfffffff8n) | bir, true);
    }
    if (this.pcie) {
      const pos = CAP_OFFSET.EXP;
      h.setUint16(pos + PCI_EXP.FLAGS, 0x0002, true); // v2, endpoint
      h.setUint32(pos + PCI_EXP.DEVCAP, PCI_EXP.DEVCAP_FLR | 0x1, true); // FLR, MPS 256
      h.setUint16(pos + PCI_EXP.DEVCTL, 0x2810, true); // RO, NS, MRRS 512
      h.setUint32(pos + PCI_EXP.LNKCAP, 0x00000043, true); // 8 GT/s x4
      h.setUint16(pos + PCI_EXP.LNKSTA, 0x0043, true);
      this.hwMask(pos + PCI_EXP.DEVCTL, 2, 0x7fff);
      this.hwMask(pos + PCI_EXP.LNKCTL, 2, 0x0003);
      this.hwMask(pos + PCI_EXP.DEVCTL2, 2, 0x07ff);
    }
  }

  /** vfio's perm_bits for the header and each capability present. */
  private buildPerms(): void {
    const p = (off: number, len: number, virt: number, write: number) => {
      for (let i = 0; i < len; i++) {
        this.virt[off + i] = (virt >>> (8 * i)) & 0xff;
        this.writable[off + i] = (write >>> (8 * i)) & 0xff;
      }
    };
    const ALL = 0xffffffff;
    p(PCI.VENDOR_ID, 4, ALL, 0);
    p(PCI.COMMAND, 2, PCI.COMMAND_MEMORY | PCI.COMMAND_IO | PCI.COMMAND_INTX_DISABLE, ALL);
    p(PCI.STATUS, 2, PCI.STATUS_CAP_LIST, 0);
    p(PCI.CACHE_LINE_SIZE, 2, 0, ALL);
    p(PCI.BIST, 1, 0, ALL);
    for (let i = 0; i < 6; i++) p(PCI.BASE_ADDRESS_0 + 4 * i, 4, ALL, ALL);
    p(PCI.ROM_ADDRESS, 4, ALL, ALL);
    p(PCI.CAPABILITY_LIST, 1, ALL, 0);
    p(PCI.INTERRUPT_LINE, 1, ALL, ALL);
    p(PCI.INTERRUPT_PIN, 1, ALL, 0);
    // Unassigned bytes: raw access to the hardware (which has nothing there).
    for (let i = 0x40; i < this.size; i++) this.writable[i] = 0xff;
    const capLen: Record<number, number> = {
      [PCI_CAP_ID.PM]: 8,
      [PCI_CAP_ID.MSI]: 24,
      [PCI_CAP_ID.MSIX]: 12,
      [PCI_CAP_ID.EXP]: PCI_EXP.SIZEOF_V2,
    };
    for (const [id, pos] of this.caps) {
      p(pos, capLen[id]!, 0, 0);
      p(pos, 2, ALL, 0); // the chain is virtualised
    }
    const pm = this.caps.get(PCI_CAP_ID.PM);
    if (pm !== undefined) p(pm + 4, 4, 0, ALL);
    const msi = this.caps.get(PCI_CAP_ID.MSI);
    if (msi !== undefined) {
      p(msi + 2, 1, ALL, ALL);
      p(msi + 4, 4, ALL, ALL);
      p(msi + 8, 4, ALL, ALL);
      p(msi + 0xc, 2, ALL, ALL);
      p(msi + 0x10, 4, 0, ALL);
      p(msi + 0x14, 4, 0, ALL);
    }
    const exp = this.caps.get(PCI_CAP_ID.EXP);
    if (exp !== undefined) {
      p(exp + PCI_EXP.DEVCTL, 2, 0, ~PCI_EXP.DEVCTL_PHANTOM & 0xffff);
      p(exp + PCI_EXP.DEVCTL2, 2, 0, ~PCI_EXP.DEVCTL2_ARI & 0xffff);
    }
    if (this.pcie) p(PCI.CFG_SPACE_SIZE, 4, ALL, 0);
  }

  private hwMask(off: number, len: number, mask: number): void {
    for (let i = 0; i < len; i++) this.hwWrite[off + i] = (mask >>> (8 * i)) & 0xff;
  }

  // ---- lifecycle ----------------------------------------------------------------

  /**
   * Power-on reset of the function followed by vfio's config init (what the
   * first open of the device does: vfio_pci_core_enable enables the device,
   * so pci_enable_resources turns on Memory decode for its memory BARs and
   * I/O decode for its I/O BARs, resets the function with that config saved
   * and restored, and vfio_config_init copies the hardware into vconfig).
   * Linux 7.2 reads the Command register of QEMU's nvme function through
   * vfio right after open with Memory set.
   */
  enable(): void {
    this.hw.set(this.powerOn);
    let decode = 0;
    for (const bar of this.spec.bars)
      decode |= bar.kind === 'io' ? PCI.COMMAND_IO : PCI.COMMAND_MEMORY;
    this.hw[PCI.COMMAND]! |= decode;
    this.vconfig.set(this.hw);
    this.barFixup();
  }

  /**
   * VFIO_DEVICE_RESET / FLR as vfio-pci does it: the power state goes to D0
   * first, and pci_try_reset_function saves and restores the function's
   * config around the reset, so what user space sees of config space is
   * unchanged (apart from D0). Device-internal state is the caller's.
   */
  functionReset(): void {
    const pm = this.caps.get(PCI_CAP_ID.PM);
    if (pm !== undefined) this.hw[pm + 4]! &= ~0x3;
  }

  /** Current PM power state (0 = D0, 3 = D3hot). */
  get powerState(): number {
    const pm = this.caps.get(PCI_CAP_ID.PM);
    return pm === undefined ? 0 : this.hw[pm + 4]! & 0x3;
  }

  // ---- access -------------------------------------------------------------------

  /** Read `length` bytes at `offset`: EFAULT unless the whole range lies inside. */
  read(offset: number, length: number): Uint8Array {
    this.check(offset, length);
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      const b = offset + i;
      const v = this.virt[b]!;
      out[i] = (this.vconfig[b]! & v) | (this.hw[b]! & ~v);
      if (b === PCI.STATUS && this.intxLine()) out[i]! |= PCI.STATUS_INTERRUPT;
    }
    for (const [s, e] of this.modelRanges(offset, offset + length)) {
      out.set(this.deviceRegisters!.configRead!(s, e - s), s - offset);
    }
    return out;
  }

  /**
   * Write `data` at `offset` (EFAULT unless inside). Bits user space may not
   * change are dropped silently; returns the byte count like the kernel.
   */
  write(offset: number, data: Uint8Array): number {
    this.check(offset, data.length);
    const end = offset + data.length;
    const pm = this.caps.get(PCI_CAP_ID.PM);
    const oldPower = this.powerState;
    for (let i = 0; i < data.length; i++) {
      const b = offset + i;
      const w = this.writable[b]!;
      const v = this.virt[b]!;
      const toVirt = w & v;
      const toHw = w & ~v & this.hwWrite[b]!;
      this.vconfig[b] = (this.vconfig[b]! & ~toVirt) | (data[i]! & toVirt);
      this.hw[b] = (this.hw[b]! & ~toHw) | (data[i]! & toHw);
    }
    for (const [s, e] of this.modelRanges(offset, end)) {
      this.deviceRegisters!.configWrite!(s, data.subarray(s - offset, e - offset));
    }
    const touches = (pos: number, len: number) => offset < pos + len && end > pos;
    if (touches(PCI.COMMAND + 1, 1)) {
      this.onIntxDisable?.(
        (this.vconfig[PCI.COMMAND + 1]! & (PCI.COMMAND_INTX_DISABLE >> 8)) !== 0,
      );
    }
    if (touches(PCI.BASE_ADDRESS_0, 24) || touches(PCI.ROM_ADDRESS, 4)) this.barFixup();
    if (pm !== undefined && touches(pm + 4, 1)) {
      // Only D0 and D3hot are implemented: other states are ignored.
      const s = this.powerState;
      if (s === 1 || s === 2) this.hw[pm + 4] = (this.hw[pm + 4]! & ~0x3) | oldPower;
    }
    const msi = this.caps.get(PCI_CAP_ID.MSI);
    if (msi !== undefined && touches(msi + 2, 1)) this.msiFlagsFixup(msi);
    const exp = this.caps.get(PCI_CAP_ID.EXP);
    if (exp !== undefined && touches(exp + PCI_EXP.DEVCTL + 1, 1)) {
      const ctl = this.hw[exp + PCI_EXP.DEVCTL + 1]!;
      const initiated = (data[exp + PCI_EXP.DEVCTL + 1 - offset]! & 0x80) !== 0;
      this.hw[exp + PCI_EXP.DEVCTL + 1] = ctl & 0x7f; // BCR/FLR always reads 0
      if (initiated) {
        this.functionReset();
        this.onFlr?.();
      }
    }
    return data.length;
  }

  /** The parts of [start, end) that are the device model's config registers. */
  private modelRanges(start: number, end: number): [number, number][] {
    const out: [number, number][] = [];
    for (const [s, e] of this.deviceRegisters?.configRegisters ?? []) {
      if (start < e && end > s) out.push([Math.max(start, s), Math.min(end, e)]);
    }
    return out;
  }

  read8(offset: number): number {
    return this.read(offset, 1)[0]!;
  }
  read16(offset: number): number {
    const b = this.read(offset, 2);
    return b[0]! | (b[1]! << 8);
  }
  read32(offset: number): number {
    return new DataView(this.read(offset, 4).buffer).getUint32(0, true);
  }
  write8(offset: number, value: number): void {
    this.write(offset, Uint8Array.of(value & 0xff));
  }
  write16(offset: number, value: number): void {
    this.write(offset, Uint8Array.of(value & 0xff, (value >>> 8) & 0xff));
  }
  write32(offset: number, value: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value >>> 0, true);
    this.write(offset, b);
  }

  /** The function's own config space (what the host's sysfs `config` shows), a copy. */
  hwSnapshot(): Uint8Array {
    return this.hw.slice();
  }

  /** The hardware's view of a 16-bit register (what vfio reads with pci_read_config_word). */
  hwRead16(offset: number): number {
    return this.hw[offset]! | (this.hw[offset + 1]! << 8);
  }

  /** Memory decode enabled in the virtual Command register (__vfio_pci_memory_enabled). */
  get memoryEnabled(): boolean {
    return (this.vconfig[PCI.COMMAND]! & PCI.COMMAND_MEMORY) !== 0;
  }

  private check(offset: number, length: number): void {
    if (!Number.isInteger(offset) || offset < 0 || length < 0 || offset + length > this.size) {
      fail(
        'EFAULT',
        `config access ${offset}+${length} beyond ${this.size}`,
        'vfio_pci_config_rw_single',
      );
    }
  }

  /** vfio_bar_fixup: mask each virtual BAR to its size and restore its type bits. */
  private barFixup(): void {
    const v = new DataView(this.vconfig.buffer);
    for (let i = 0; i < 6; i++) {
      const off = PCI.BASE_ADDRESS_0 + 4 * i;
      const bar = this.bars[i];
      const raw = v.getUint32(off, true);
      if (!bar) {
        v.setUint32(off, 0, true);
        continue;
      }
      if (bar.kind === 'mem64-hi') {
        const sizeOfPair = this.bars[i - 1]!.size;
        const mask = Number((~(sizeOfPair - 1n) >> 32n) & 0xffffffffn);
        v.setUint32(off, (raw & mask) >>> 0, true);
        continue;
      }
      const mask = Number(~(bar.size - 1n) & 0xffffffffn);
      v.setUint32(off, ((raw & mask) | barTypeBits(bar)) >>> 0, true);
    }
    v.setUint32(PCI.ROM_ADDRESS, 0, true); // no ROM: mask 0
  }

  /** vfio_msi_config_write: ENABLE only with MSI on via SET_IRQS; MME ≤ msi_qmax; MMC read-only. */
  private msiFlagsFixup(pos: number): void {
    const { msiEnabled, msiQmax } = this.msiState();
    let flags = this.vconfig[pos + 2]!;
    if (!msiEnabled) flags &= ~PCI_MSI_FLAGS.ENABLE;
    if ((flags & PCI_MSI_FLAGS.QSIZE) >> 4 > msiQmax) {
      flags = (flags & ~PCI_MSI_FLAGS.QSIZE) | (msiQmax << 4);
    }
    flags = (flags & ~(PCI_MSI_FLAGS.QMASK | PCI_MSI_FLAGS.BIT64)) | (this.hw[pos + 2]! & 0x8e);
    this.vconfig[pos + 2] = flags;
  }

  /** The BAR slot at index 0..5 (undefined when unimplemented). */
  barSlot(index: number): BarSlot | undefined {
    return this.bars[index];
  }
}

function barTypeBits(bar: BarSlot): number {
  if (bar.kind === 'io') return PCI.BASE_ADDRESS_SPACE_IO;
  if (bar.kind === 'mem64-hi') return 0;
  return (
    (bar.kind === 'mem64' ? PCI.BASE_ADDRESS_MEM_TYPE_64 : 0) |
    (bar.prefetchable ? PCI.BASE_ADDRESS_MEM_PREFETCH : 0)
  );
}

function barSlots(spec: PciDeviceSpec): (BarSlot | undefined)[] {
  const slots: (BarSlot | undefined)[] = new Array(6).fill(undefined);
  for (const b of spec.bars) {
    slots[b.index] = { kind: b.kind, size: b.size, prefetchable: b.prefetchable };
    if (b.kind === 'mem64')
      slots[b.index + 1] = { kind: 'mem64-hi', size: 0n, prefetchable: false };
  }
  return slots;
}
