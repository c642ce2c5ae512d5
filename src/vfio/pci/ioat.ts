/**
 * An Intel QuickData / Crystal Beach DMA engine (ioat, CBDMA; Skylake-SP's
 * is 8086:2021): one channel, version 3.3, memory-to-memory copies only.
 * Everything the kernel's VFIO selftest driver (lib/drivers/ioat) and the
 * ioatdma driver's register definitions say about it, for what a copy needs;
 * the register map as implemented is in docs/devices.md.
 *
 * The driver puts 64-byte descriptors (size u32, ctl u32 with int_en,
 * null, compl_write and op, src u64, dst u64, next u64) in memory, writes
 * the first one's IOVA to CHAINADDR and rings the doorbell: DMACOUNT, a
 * 16-bit running count. The channel runs descriptors (fetched through the
 * IOMMU, following `next`) until it has completed DMACOUNT of them since
 * the chain started (counts are modulo 2^16: a count below the completed
 * one wraps, up to 65535 descriptors), then reads DONE. Copies go through
 * the IOMMU. Any error halts the channel (CHANSTS HALTED) with its CHANERR
 * bit (mirrored in the config dword CHANERR_INT) and no completion
 * interrupt; only RESET (after the errors are cleared) makes it usable again.
 *
 * Work a doorbell starts runs in slices: one slice inside the write, the
 * rest on later event-loop turns, so a 65535-descriptor chain (or a chain
 * that loops) never holds up other clients; the write sets CHANSTS ACTIVE
 * first, so a CHANSTS read after the doorbell never shows an older state.
 * SUSPEND and RESET stop a running chain between two descriptors.
 *
 * @example
 * // descriptor at IOVA d: { size: 4096, ctl: 0, src, dst, next: d }
 * ioat.write(0, 0x90, u64le(d));          // CHAINADDR
 * ioat.write(0, 0x80, u16le(0x0009));     // CHANCTRL: INT_REARM | ANY_ERR_ABORT_EN
 * ioat.write(0, 0x86, u16le(1));          // DMACOUNT: run one descriptor
 * ioat.read(0, 0x88, 8);                  // CHANSTS: address of d | DONE
 */
import { DmaFaultError } from '../../iommu/device.ts';
import type {
  DeviceIrq,
  DeviceModel,
  DeviceModelContext,
  DmaPort,
  RegisterWindow,
} from './device-model.ts';
import type { ModelArea } from './models.ts';

/** Host config of an ioat function. */
export interface IoatModelSpec {
  readonly kind: 'ioat';
  /** log2 of the largest copy one descriptor may do (XFERCAP), 12..15; default 12 (4 KiB). */
  readonly xfercap?: number;
}

/** XFERCAP values a host config may give (IOAT_XFERCAP_4KB..32KB). */
export const IOAT_XFERCAP_RANGE = [12, 15] as const;

/** Byte offsets in BAR0. The channel's registers start at IOAT_CHAN (channel 0). */
export const IOAT_REG = {
  /** u8 RO: number of channels (1). */
  CHANCNT: 0x00,
  /** u8 RO: log2 of the largest transfer. */
  XFERCAP: 0x01,
  /** u8 RW: IOAT_INTRCTRL bits. */
  INTRCTRL: 0x03,
  /** u8 RO: version, major << 4 | minor (0x33). */
  VER: 0x08,
  /** u16 RW: IOAT_CHANCTRL bits. */
  CHANCTRL: 0x80,
  /** u16 RO: compatibility (IOAT_DMA_COMP_V2). */
  DMA_COMP: 0x82,
  /** u8 WO: IOAT_CHANCMD; reads 0 (every command completes within the write). */
  CHANCMD: 0x84,
  /** u16 RW: the doorbell, a running count of descriptors to have completed. */
  DMACOUNT: 0x86,
  /** u64 RO: completed descriptor address (bits 63:6) | IOAT_CHANSTS status (2:0). */
  CHANSTS: 0x88,
  /** u64 RW: IOVA of the first descriptor of the chain (64-byte aligned). */
  CHAINADDR: 0x90,
  /** u64 RW: where a descriptor with compl_write has CHANSTS written (8-byte aligned). */
  CHANCMP: 0x98,
  /** u32 RW1C: IOAT_CHANERR bits. */
  CHANERR: 0xa8,
} as const;

/** Config space dwords of the device (raw, outside every capability). */
export const IOAT_CFG = {
  /** u32 RW1C: uncorrectable DMA errors; nothing the model does sets one. */
  DMAUNCERRSTS: 0x148,
  /** u32 RW1C: the channel's errors, set with CHANERR. */
  CHANERR_INT: 0x180,
} as const;

export const IOAT_INTRCTRL = {
  MASTER_INT_EN: 0x01,
  MSIX_VECTOR_CONTROL: 0x08,
} as const;

export const IOAT_CHANCTRL = {
  INT_REARM: 0x0001,
  ANY_ERR_ABORT_EN: 0x0008,
  ERR_INT_EN: 0x0010,
} as const;

export const IOAT_CHANCMD = {
  SUSPEND: 0x04,
  ABORT: 0x08,
  RESET: 0x20,
} as const;

/** CHANSTS bits 2:0. */
export const IOAT_CHANSTS = {
  ACTIVE: 0,
  DONE: 1,
  SUSPENDED: 2,
  HALTED: 3,
  STATUS_MASK: 0x7n,
} as const;

export const IOAT_CHANERR = {
  SRC_ADDR_ERR: 0x0001,
  DEST_ADDR_ERR: 0x0002,
  NEXT_ADDR_ERR: 0x0004,
  NEXT_DESC_ALIGN_ERR: 0x0008,
  CHAIN_ADDR_VALUE_ERR: 0x0010,
  READ_DATA_ERR: 0x0100,
  WRITE_DATA_ERR: 0x0200,
  CONTROL_ERR: 0x0400,
  LENGTH_ERR: 0x0800,
  COMPLETION_ADDR_ERR: 0x1000,
} as const;

/** Descriptor ctl bits. */
export const IOAT_DESC_CTL = {
  INT_EN: 1 << 0,
  COMPL_WRITE: 1 << 3,
  NULL: 1 << 5,
  OP_SHIFT: 24,
} as const;

/** The one descriptor op modelled. */
export const IOAT_OP_COPY = 0x00;
export const IOAT_DESC_SIZE = 64;
export const IOAT_VERSION = 0x33;
/** BAR0 bytes of the register block (general registers, channel 0). */
export const IOAT_REG_BLOCK = 0x1000;

/** Work of one slice: descriptors, and bytes copied (a slice ends after the one crossing it). */
const SLICE_DESCRIPTORS = 256;
const SLICE_BYTES = 1 << 20;
/** Bytes of the register file (through CHANERR). */
const REG_BYTES = 0xb0;
const DMACOUNT_MOD = 0x10000;

/** BAR0's register block. */
export const IOAT_AREAS: readonly ModelArea[] = [
  { bar: 0, start: 0n, end: BigInt(IOAT_REG_BLOCK), what: 'registers' },
];

/** A channel error: the CHANERR bit it sets. */
class ChannelError extends Error {
  constructor(readonly bit: number) {
    super(`CHANERR 0x${bit.toString(16)}`);
  }
}

export class Ioat implements DeviceModel {
  readonly registers: readonly RegisterWindow[] = [{ bar: 0, start: 0, end: IOAT_REG_BLOCK }];
  readonly configRegisters: readonly [number, number][] = [
    [IOAT_CFG.DMAUNCERRSTS, IOAT_CFG.DMAUNCERRSTS + 4],
    [IOAT_CFG.CHANERR_INT, IOAT_CFG.CHANERR_INT + 4],
  ];
  private readonly regs = new Uint8Array(REG_BYTES);
  private readonly view = new DataView(this.regs.buffer);
  private readonly port: DmaPort;
  private readonly irq: DeviceIrq;
  private readonly xfercap: number;
  /** Config dword CHANERR_INT. */
  private chanerrInt = 0;
  /** Descriptors completed since the chain started (mod 2^16). */
  private completed = 0;
  /** IOVA of the next descriptor to fetch. */
  private next = 0n;
  /** CHAINADDR was written: the next start begins a new chain there. */
  private newChain = false;
  /** Bumped by RESET/SUSPEND/ABORT: a scheduled slice of an older run does nothing. */
  private run = 0;

  constructor(spec: IoatModelSpec, ctx: DeviceModelContext) {
    this.port = ctx.dma;
    this.irq = ctx.irq;
    this.xfercap = spec.xfercap ?? IOAT_XFERCAP_RANGE[0];
    this.reset();
  }

  /** Power-on: channel HALTED, no chain, no errors, interrupts off. */
  reset(): void {
    this.run++;
    this.regs.fill(0);
    this.regs[IOAT_REG.CHANCNT] = 1;
    this.regs[IOAT_REG.XFERCAP] = this.xfercap;
    this.regs[IOAT_REG.VER] = IOAT_VERSION;
    this.view.setUint16(IOAT_REG.DMA_COMP, 0x0002, true);
    this.resetChannel();
    this.chanerrInt = 0;
  }

  read(_bar: number, pos: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    if (pos < REG_BYTES) out.set(this.regs.subarray(pos, Math.min(REG_BYTES, pos + length)));
    return out;
  }

  /** Stores the written bytes, then acts on CHANCMD, then on DMACOUNT. */
  write(_bar: number, pos: number, data: Uint8Array): void {
    const end = pos + data.length;
    const hits = (reg: number, size: number) => pos < reg + size && end > reg;
    let command = 0;
    for (let i = 0; i < data.length; i++) {
      const at = pos + i;
      const b = data[i]!;
      if (at === IOAT_REG.INTRCTRL) {
        this.regs[at] = b & (IOAT_INTRCTRL.MASTER_INT_EN | IOAT_INTRCTRL.MSIX_VECTOR_CONTROL);
      } else if (at === IOAT_REG.CHANCMD) {
        command = b;
      } else if (at >= IOAT_REG.CHANERR && at < IOAT_REG.CHANERR + 4) {
        this.regs[at]! &= ~b;
      } else if (
        (at >= IOAT_REG.CHANCTRL && at < IOAT_REG.CHANCTRL + 2) ||
        (at >= IOAT_REG.DMACOUNT && at < IOAT_REG.DMACOUNT + 2) ||
        (at >= IOAT_REG.CHAINADDR && at < IOAT_REG.CHANCMP + 8)
      ) {
        this.regs[at] = b;
      }
    }
    if (hits(IOAT_REG.CHAINADDR, 8)) this.newChain = true;
    if (command) this.command(command);
    if (hits(IOAT_REG.DMACOUNT, 2)) this.doorbell();
  }

  configRead(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    const dw = new Uint8Array(4);
    new DataView(dw.buffer).setUint32(0, this.chanerrInt, true);
    for (let i = 0; i < length; i++) {
      const at = offset + i - IOAT_CFG.CHANERR_INT;
      if (at >= 0 && at < 4) out[i] = dw[at]!;
    }
    return out;
  }

  configWrite(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      const at = offset + i - IOAT_CFG.CHANERR_INT;
      if (at >= 0 && at < 4) this.chanerrInt &= ~(data[i]! << (8 * at));
    }
    this.chanerrInt >>>= 0;
  }

  // ---- channel ---------------------------------------------------------------------

  private get status(): number {
    return this.regs[IOAT_REG.CHANSTS]! & 0x7;
  }

  /** CHANSTS: the completed descriptor's address with `status`. */
  private setStatus(status: number, completedAt?: bigint): void {
    const old = this.view.getBigUint64(IOAT_REG.CHANSTS, true) & ~IOAT_CHANSTS.STATUS_MASK;
    const addr = completedAt === undefined ? old : completedAt & ~0x3fn;
    this.view.setBigUint64(IOAT_REG.CHANSTS, addr | BigInt(status), true);
  }

  /** Channel reset: HALTED, no chain, DMACOUNT and CHANCTRL 0 (CHANERR is left alone). */
  private resetChannel(): void {
    this.run++;
    this.completed = 0;
    this.next = 0n;
    this.newChain = false;
    this.regs.fill(0, IOAT_REG.CHANCTRL, IOAT_REG.CHANERR);
    this.view.setUint16(IOAT_REG.DMA_COMP, 0x0002, true);
    this.setStatus(IOAT_CHANSTS.HALTED, 0n);
  }

  /** CHANCMD: RESET wins over ABORT over SUSPEND; other bits do nothing. */
  private command(cmd: number): void {
    if (cmd & IOAT_CHANCMD.RESET) {
      this.resetChannel();
    } else if (cmd & IOAT_CHANCMD.ABORT) {
      this.run++;
      this.setStatus(IOAT_CHANSTS.HALTED);
    } else if (cmd & IOAT_CHANCMD.SUSPEND) {
      this.run++;
      if (this.status !== IOAT_CHANSTS.HALTED) this.setStatus(IOAT_CHANSTS.SUSPENDED);
    }
  }

  /**
   * DMACOUNT was written. An idle channel without errors starts (a new
   * chain at CHAINADDR if it was written since); a running one just sees
   * the new count; with CHANERR ≠ 0 nothing happens (it stays HALTED).
   */
  private doorbell(): void {
    if (this.status === IOAT_CHANSTS.ACTIVE) return;
    if (this.chanerr !== 0) return;
    if (this.newChain) {
      this.newChain = false;
      this.completed = 0;
      this.next = this.view.getBigUint64(IOAT_REG.CHAINADDR, true);
      if (this.next & 0x3fn) {
        this.fail(IOAT_CHANERR.CHAIN_ADDR_VALUE_ERR);
        return;
      }
    }
    if (this.pending === 0) {
      this.setStatus(IOAT_CHANSTS.DONE);
      return;
    }
    this.setStatus(IOAT_CHANSTS.ACTIVE);
    this.slice(++this.run);
  }

  private get chanerr(): number {
    return this.view.getUint32(IOAT_REG.CHANERR, true);
  }

  /** Descriptors left before the completed count reaches DMACOUNT. */
  private get pending(): number {
    const target = this.view.getUint16(IOAT_REG.DMACOUNT, true);
    return (target - this.completed + DMACOUNT_MOD) % DMACOUNT_MOD;
  }

  /** Run descriptors of run `run` up to the slice budget; schedule the rest. */
  private slice(run: number): void {
    if (run !== this.run) return;
    let bytes = 0;
    for (let n = 0; n < SLICE_DESCRIPTORS && bytes < SLICE_BYTES; n++) {
      if (this.pending === 0) {
        this.setStatus(IOAT_CHANSTS.DONE);
        return;
      }
      try {
        bytes += this.descriptor();
      } catch (e) {
        if (!(e instanceof ChannelError)) throw e;
        this.fail(e.bit);
        return;
      }
    }
    if (this.pending === 0) this.setStatus(IOAT_CHANSTS.DONE);
    else setImmediate(() => this.slice(run));
  }

  /** Fetch, check and run the descriptor at `next`; returns the bytes copied. */
  private descriptor(): number {
    const at = this.next;
    if (at & 0x3fn) throw new ChannelError(IOAT_CHANERR.NEXT_DESC_ALIGN_ERR);
    const raw = this.dma(() => this.port.dmaRead(at, IOAT_DESC_SIZE), IOAT_CHANERR.NEXT_ADDR_ERR);
    const d = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const size = d.getUint32(0, true);
    const ctl = d.getUint32(4, true);
    const src = d.getBigUint64(8, true);
    const dst = d.getBigUint64(16, true);
    const copies = !(ctl & IOAT_DESC_CTL.NULL);
    if (copies && ctl >>> IOAT_DESC_CTL.OP_SHIFT !== IOAT_OP_COPY) {
      throw new ChannelError(IOAT_CHANERR.CONTROL_ERR);
    }
    if (size > 1 << this.xfercap) throw new ChannelError(IOAT_CHANERR.LENGTH_ERR);
    if (copies && size > 0) {
      const data = this.dma(() => this.port.dmaRead(src, size), IOAT_CHANERR.SRC_ADDR_ERR);
      this.dma(() => this.port.dmaWrite(dst, data), IOAT_CHANERR.DEST_ADDR_ERR);
    }
    this.next = d.getBigUint64(24, true);
    this.completed = (this.completed + 1) % DMACOUNT_MOD;
    this.setStatus(this.pending === 0 ? IOAT_CHANSTS.DONE : IOAT_CHANSTS.ACTIVE, at);
    if (ctl & IOAT_DESC_CTL.COMPL_WRITE) this.writeCompletion();
    if (ctl & IOAT_DESC_CTL.INT_EN) this.interrupt();
    return copies ? size : 0;
  }

  /** CHANSTS to CHANCMP through the IOMMU. */
  private writeCompletion(): void {
    const addr = this.view.getBigUint64(IOAT_REG.CHANCMP, true);
    const value = this.regs.slice(IOAT_REG.CHANSTS, IOAT_REG.CHANSTS + 8);
    if (addr & 0x7n) throw new ChannelError(IOAT_CHANERR.COMPLETION_ADDR_ERR);
    this.dma(() => this.port.dmaWrite(addr, value), IOAT_CHANERR.COMPLETION_ADDR_ERR);
  }

  /**
   * One DMA access: a refusal by the IOMMU is `addrErr`; the memory behind
   * a translation failing (a process gone) is a read or write data error.
   */
  private dma<T>(access: () => T, addrErr: number): T {
    try {
      return access();
    } catch (e) {
      if (e instanceof DmaFaultError) throw new ChannelError(addrErr);
      const write =
        addrErr === IOAT_CHANERR.DEST_ADDR_ERR || addrErr === IOAT_CHANERR.COMPLETION_ADDR_ERR;
      throw new ChannelError(write ? IOAT_CHANERR.WRITE_DATA_ERR : IOAT_CHANERR.READ_DATA_ERR);
    }
  }

  /**
   * The channel's interrupt: MSI/MSI-X vector 0 when CHANCTRL.INT_REARM is
   * set (the device then clears it) and INTRCTRL enables interrupts.
   */
  private interrupt(): void {
    const ctrl = this.view.getUint16(IOAT_REG.CHANCTRL, true);
    if (!(ctrl & IOAT_CHANCTRL.INT_REARM)) return;
    const intr = this.regs[IOAT_REG.INTRCTRL]!;
    if (!(intr & (IOAT_INTRCTRL.MASTER_INT_EN | IOAT_INTRCTRL.MSIX_VECTOR_CONTROL))) return;
    this.view.setUint16(IOAT_REG.CHANCTRL, ctrl & ~IOAT_CHANCTRL.INT_REARM, true);
    this.irq.raise(0);
  }

  /** An error: CHANERR and CHANERR_INT get `bit`, the channel halts; ERR_INT_EN interrupts. */
  private fail(bit: number): void {
    this.run++;
    this.view.setUint32(IOAT_REG.CHANERR, this.chanerr | bit, true);
    this.chanerrInt = (this.chanerrInt | bit) >>> 0;
    this.setStatus(IOAT_CHANSTS.HALTED);
    if (this.view.getUint16(IOAT_REG.CHANCTRL, true) & IOAT_CHANCTRL.ERR_INT_EN) this.interrupt();
  }
}
