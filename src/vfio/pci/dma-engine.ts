/**
 * A small DMA engine in BAR0 of an emulated PCI function, with the register
 * interface of QEMU's "edu" teaching device (source, destination, count and
 * command registers at 0x80..0x9f, a 4 KiB device buffer at BAR0 + 0x40000)
 * plus a status and a fault-address register. Every DMA goes through the
 * function's IOMMU (`DmaPort`, i.e. the iommu `Device`): a refused access is
 * recorded there as a fault and shows here as STATUS.FAULT with FAULT_IOVA.
 * A `DeviceModel` (device-model.ts); the register map is in docs/dma-engine.md.
 *
 * The engine runs a command synchronously when a write reaching the CMD
 * register leaves its START bit set, then clears START. Every finished
 * command (done, faulted or invalid) sets IRQ_STATUS.DONE and raises an
 * interrupt: an MSI/MSI-X message on vector 0, and the INTx line held
 * asserted until user space clears IRQ_STATUS (write 1 to clear).
 *
 * @example
 * const eng = new DmaEngine(ctx);                 // ctx: BAR memory, IOMMU, interrupts
 * eng.write(0, DMA_REG.SRC, u64le(0x4_0000n));   // device buffer
 * eng.write(0, DMA_REG.DST, u64le(iova));        // memory, through the IOMMU
 * eng.write(0, DMA_REG.COUNT, u64le(64n));
 * eng.write(0, DMA_REG.CMD, u64le(DMA_CMD.START | DMA_CMD.TO_MEMORY));
 * eng.read(0, DMA_REG.STATUS, 4); // DMA_STATUS.DONE
 */
import { DmaFaultError } from '../../iommu/device.ts';
import type { BarMemory } from './bar-memory.ts';
import type {
  DeviceIrq,
  DeviceModel,
  DeviceModelContext,
  DmaPort,
  RegisterWindow,
} from './device-model.ts';
import type { ModelArea } from './models.ts';

/** Host config of the DMA engine: no options. */
export interface DmaEngineModelSpec {
  readonly kind: 'dma-engine';
}

/** Register offsets in BAR0 (all little-endian). */
export const DMA_REG = {
  /** u32 RO: DMA_ENGINE_ID. */
  ID: 0x00,
  /** u32 RW: reads back the bitwise NOT of the last value written. */
  LIVENESS: 0x04,
  /** u32 RO: offset of the device buffer in BAR0. */
  BUF_OFFSET: 0x08,
  /** u32 RO: size of the device buffer in bytes. */
  BUF_SIZE: 0x0c,
  /** u64 RW: DMA source (an IOVA, or a buffer address for TO_MEMORY). */
  SRC: 0x80,
  /** u64 RW: DMA destination (a buffer address, or an IOVA for TO_MEMORY). */
  DST: 0x88,
  /** u64 RW: bytes to transfer. */
  COUNT: 0x90,
  /** u64 RW: DMA_CMD bits; START reads 0 once the command has run. */
  CMD: 0x98,
  /** u32 RO: DMA_STATUS bits of the last command (cleared when a new one starts). */
  STATUS: 0xa0,
  /** u64 RO: the IOVA the IOMMU refused (valid with STATUS.FAULT). */
  FAULT_IOVA: 0xa8,
  /** u32 RW1C: IRQ_STATUS bits; set when a command finishes, cleared by writing 1s. */
  IRQ_STATUS: 0xb0,
} as const;

/** IRQ_STATUS bits. */
export const DMA_IRQ = {
  /** A command finished (whatever its STATUS): the interrupt is pending. */
  DONE: 0x1,
} as const;

/** CMD bits. Any other bit set makes the command INVALID. */
export const DMA_CMD = {
  START: 0x1n,
  /** Direction: set = device buffer → memory (SRC is a buffer address, DST an IOVA); clear = memory → buffer. */
  TO_MEMORY: 0x2n,
} as const;

/** STATUS bits. */
export const DMA_STATUS = {
  /** The last command has finished (with or without an error). */
  DONE: 0x1,
  /** The IOMMU refused an access: nothing was transferred. */
  FAULT: 0x2,
  /** Bad command: unknown CMD bits, or the buffer side lies outside the buffer. */
  INVALID: 0x4,
} as const;

/** What ID reads: "UDMA" as a big-endian ASCII word. */
export const DMA_ENGINE_ID = 0x55444d41;
/** Bytes of BAR0 taken by the register block (reads past the map are 0, writes dropped). */
export const DMA_REG_BLOCK = 0x1000n;
/** Offset of the device buffer in BAR0 (edu's). */
export const DMA_BUF_OFFSET = 0x40000n;
/** Size of the device buffer (edu's). */
export const DMA_BUF_SIZE = 0x1000n;

/** What the engine takes of BAR0: the register block and the buffer. */
export const DMA_ENGINE_AREAS: readonly ModelArea[] = [
  { bar: 0, start: 0n, end: DMA_REG_BLOCK, what: 'registers' },
  { bar: 0, start: DMA_BUF_OFFSET, end: DMA_BUF_OFFSET + DMA_BUF_SIZE, what: 'buffer' },
];

/** Bytes of the register file (up to IRQ_STATUS's end). */
const REG_BYTES = 0xb4;
/** Byte ranges [start, end) a write cannot change. */
const READ_ONLY: readonly [number, number][] = [
  [DMA_REG.ID, DMA_REG.LIVENESS],
  [DMA_REG.BUF_OFFSET, DMA_REG.BUF_SIZE + 4],
  [DMA_REG.STATUS, DMA_REG.IRQ_STATUS],
];

export class DmaEngine implements DeviceModel {
  readonly registers: readonly RegisterWindow[] = [
    { bar: 0, start: 0, end: Number(DMA_REG_BLOCK) },
  ];
  private readonly regs = new Uint8Array(REG_BYTES);
  private readonly view = new DataView(this.regs.buffer);
  /** BAR0's memory: the device buffer lives in it at DMA_BUF_OFFSET. */
  private readonly bar0: BarMemory;
  private readonly port: DmaPort;
  private readonly irq: DeviceIrq;

  constructor(ctx: DeviceModelContext) {
    this.bar0 = ctx.bars.get(0)!;
    this.port = ctx.dma;
    this.irq = ctx.irq;
    this.reset();
  }

  /** Registers back to their power-on values, INTx deasserted (the buffer is the BAR's business). */
  reset(): void {
    if (this.irqStatus) this.irq.intx(false);
    this.regs.fill(0);
    this.view.setUint32(DMA_REG.ID, DMA_ENGINE_ID, true);
    this.view.setUint32(DMA_REG.LIVENESS, 0xffffffff, true);
    this.view.setUint32(DMA_REG.BUF_OFFSET, Number(DMA_BUF_OFFSET), true);
    this.view.setUint32(DMA_REG.BUF_SIZE, Number(DMA_BUF_SIZE), true);
  }

  /** Read `length` bytes at register offset `pos` of BAR0 (inside the register block). */
  read(_bar: number, pos: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    if (pos < REG_BYTES) out.set(this.regs.subarray(pos, Math.min(REG_BYTES, pos + length)));
    return out;
  }

  /** Write `data` at register offset `pos` of BAR0; runs the command when START ends up set. */
  write(_bar: number, pos: number, data: Uint8Array): void {
    const irqBefore = this.irqStatus;
    for (let i = 0; i < data.length; i++) {
      const at = pos + i;
      if (at >= REG_BYTES || READ_ONLY.some(([s, e]) => at >= s && at < e)) continue;
      if (at >= DMA_REG.IRQ_STATUS) this.regs[at]! &= ~data[i]!;
      else this.regs[at] = at < DMA_REG.LIVENESS + 4 ? ~data[i]! & 0xff : data[i]!;
    }
    if (irqBefore && !this.irqStatus) this.irq.intx(false);
    const end = pos + data.length;
    if (pos < DMA_REG.CMD + 8 && end > DMA_REG.CMD) {
      if (this.view.getBigUint64(DMA_REG.CMD, true) & DMA_CMD.START) this.run();
    }
  }

  /** One command: validate, transfer through the IOMMU, set STATUS. */
  private run(): void {
    const cmd = this.view.getBigUint64(DMA_REG.CMD, true);
    this.view.setBigUint64(DMA_REG.CMD, cmd & ~DMA_CMD.START, true);
    this.view.setBigUint64(DMA_REG.FAULT_IOVA, 0n, true);
    const src = this.view.getBigUint64(DMA_REG.SRC, true);
    const dst = this.view.getBigUint64(DMA_REG.DST, true);
    const count = this.view.getBigUint64(DMA_REG.COUNT, true);
    const toMemory = (cmd & DMA_CMD.TO_MEMORY) !== 0n;
    const buf = toMemory ? src : dst;
    const inBuffer =
      buf >= DMA_BUF_OFFSET &&
      count <= DMA_BUF_SIZE &&
      buf - DMA_BUF_OFFSET <= DMA_BUF_SIZE - count;
    if (cmd & ~(DMA_CMD.START | DMA_CMD.TO_MEMORY) || !inBuffer) {
      this.setStatus(DMA_STATUS.DONE | DMA_STATUS.INVALID);
      return;
    }
    try {
      if (count > 0n) {
        if (toMemory) this.port.dmaWrite(dst, this.bar0.read(src, Number(count)));
        else this.bar0.write(dst, this.port.dmaRead(src, Number(count)));
      }
      this.setStatus(DMA_STATUS.DONE);
    } catch (e) {
      if (!(e instanceof DmaFaultError)) throw e;
      this.view.setBigUint64(DMA_REG.FAULT_IOVA, e.fault.iova, true);
      this.setStatus(DMA_STATUS.DONE | DMA_STATUS.FAULT);
    }
  }

  /** The command's result, then its interrupt. */
  private setStatus(status: number): void {
    this.view.setUint32(DMA_REG.STATUS, status, true);
    this.view.setUint32(DMA_REG.IRQ_STATUS, this.irqStatus | DMA_IRQ.DONE, true);
    this.irq.intx(true);
    this.irq.raise(0);
  }

  private get irqStatus(): number {
    return this.view.getUint32(DMA_REG.IRQ_STATUS, true);
  }
}
