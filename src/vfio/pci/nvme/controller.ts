/**
 * An NVMe 1.4 controller behind an emulated PCI function (BAR0): the
 * controller registers at 0x0–0x3f, the doorbells at 0x1000 (stride 4,
 * CAP.DSTRD 0), the enable/disable/shutdown state machine, admin and I/O
 * queues in host memory, and the commands of admin.ts and io.ts. Every
 * queue fetch, PRP list and data transfer goes through the function's IOMMU
 * (`DmaPort`). The register map is in docs/devices.md.
 *
 * Timing: a write to CC, or to a doorbell, has done all its work before it
 * returns: CSTS.RDY and CSTS.SHST already show the new state, and a
 * doorbell's commands have run and been posted (up to a budget per
 * doorbell; the rest continue in later event-loop turns, in order, and so
 * does a Write Zeroes or deallocate too long for one piece, and a Flush
 * waiting for its file's fsync). So a
 * CSTS read or a completion-queue poll ordered after a register write never
 * sees a state older than that write.
 *
 * Interrupts: after a doorbell's commands are posted, each completion queue
 * with IEN that received an entry raises its vector (MSI/MSI-X); the INTx
 * line is held while any such queue has entries the host has not consumed
 * and INTMS does not mask the queue's vector.
 *
 * @example
 * const nvme = NvmeController.create({ kind: 'nvme' }, ctx); // a DeviceModel
 * nvme.write(0, NVME_REG.AQA, u32le(0x001f001f));
 * nvme.write(0, NVME_REG.CC, u32le(0x00460001)); // EN, 64/16-byte entries
 * nvme.read(0, NVME_REG.CSTS, 4);                 // RDY
 */
import { DmaFaultError } from '../../../iommu/device.ts';
import type {
  DeviceIrq,
  DeviceModel,
  DeviceModelContext,
  DmaPort,
  RegisterWindow,
} from '../device-model.ts';
import type { ModelArea } from '../models.ts';
import { effectiveIrq } from '../spec.ts';
import {
  NVME_CC,
  NVME_CQE_BYTES,
  NVME_CSTS,
  NVME_DNR,
  NVME_REG,
  NVME_SC,
  NVME_SQE_BYTES,
} from './abi.ts';
import { adminCommand } from './admin.ts';
import { decodeCommand, type NvmeCommand, type NvmeWork } from './command.ts';
import { NvmeFeatures } from './features.ts';
import { NVME_AERL, NVME_VERSION, type NvmeIdentity } from './identify.ts';
import { ioCommand } from './io.ts';
import { NVME_MDTS, NVME_MQES } from './limits.ts';
import { NvmeNamespace, type NvmeNamespaceSpec } from './namespace.ts';
import { CompletionQueue, SubmissionQueue } from './queue.ts';
import { NvmeStatus } from './status.ts';

/** Host config of an NVMe controller: its namespaces (NSID 1, 2, …). */
export interface NvmeModelSpec {
  readonly kind: 'nvme';
  /** Default: one namespace of 1 GiB in sparse memory with 512-byte blocks. */
  readonly namespaces?: readonly NvmeNamespaceSpec[];
}

/** The namespace a controller gets when its spec lists none. */
export const NVME_DEFAULT_NAMESPACE: NvmeNamespaceSpec = { size: 1n << 30n, lbaSize: 512 };

/** Bytes of BAR0 the controller serves: the registers page and the doorbell page. */
export const NVME_REG_BLOCK = 0x2000;

/** What the controller takes of BAR0. */
export const NVME_AREAS: readonly ModelArea[] = [
  { bar: 0, start: 0n, end: BigInt(NVME_REG_BLOCK), what: 'registers and doorbells' },
];
/** MPSMAX: memory pages of 4 KiB up to 64 KiB. */
const MPSMAX = 4;
/** CAP.TO: worst-case time to ready, in 500 ms units. */
const CAP_TO = 20;
/** Commands one doorbell runs before the rest waits for the next event-loop turn. */
const BUDGET_COMMANDS = 256;
/** Data bytes one doorbell moves before the rest waits for the next event-loop turn. */
const BUDGET_BYTES = 16 << 20;

/** CAP: MQES, contiguous queues required, TO, DSTRD 0, the NVM command set, MPSMIN 0, MPSMAX. */
export const NVME_CAP =
  BigInt(NVME_MQES) | (1n << 16n) | (BigInt(CAP_TO) << 24n) | (1n << 37n) | (BigInt(MPSMAX) << 52n);

/** An asynchronous event waiting for an Async Event Request: type, info, log page. */
interface AsyncEvent {
  readonly type: number;
  readonly info: number;
  readonly log: number;
}

export class NvmeController implements DeviceModel {
  readonly registers: readonly RegisterWindow[] = [{ bar: 0, start: 0, end: NVME_REG_BLOCK }];
  readonly namespaces: NvmeNamespace[];
  readonly features: NvmeFeatures;
  readonly sqs = new Map<number, SubmissionQueue>();
  readonly cqs = new Map<number, CompletionQueue>();
  /** CIDs of Async Event Requests held until an event occurs. */
  readonly heldAers: number[] = [];
  /** SMART counters: 512-byte units read and written, commands. */
  readonly smart = { unitsRead: 0n, unitsWritten: 0n, reads: 0n, writes: 0n };
  private readonly events: AsyncEvent[] = [];
  private cc = 0;
  private csts = 0;
  private aqa = 0;
  private asq = 0n;
  private acq = 0n;
  private intms = 0;
  private intxLevel = false;
  /** Bumped by every controller reset: work scheduled before it is dropped. */
  private generation = 0;
  private scheduled = false;
  /** Data bytes moved in the current doorbell's budget. */
  private budgetBytes = 0;

  constructor(
    spec: NvmeModelSpec,
    readonly identity: NvmeIdentity,
    /** Interrupt vectors the function has (MSI-X entries, else MSI, at least 1). */
    readonly vectors: number,
    readonly dma: DmaPort,
    private readonly irq: DeviceIrq,
  ) {
    this.namespaces = (spec.namespaces ?? [NVME_DEFAULT_NAMESPACE]).map((n) =>
      NvmeNamespace.open(n),
    );
    this.features = new NvmeFeatures(vectors);
  }

  /**
   * The controller of a PCI function: Identify reports the function's
   * vendor and subsystem vendor, a serial made of its BDF; CQ interrupt
   * vectors are its MSI-X entries (else MSI vectors, else INTx's one).
   */
  static create(spec: NvmeModelSpec, ctx: DeviceModelContext): NvmeController {
    const fn = ctx.spec;
    const irq = effectiveIrq(fn);
    const hex = (v: number) => v.toString(16).padStart(4, '0');
    const identity: NvmeIdentity = {
      vendor: fn.vendor,
      subsystemVendor: fn.subsystemVendor ?? 0,
      serial: `UIOMMU${fn.bdf.replace(/[:.]/g, '')}`,
      model: `uiommu NVMe ${hex(fn.vendor)}:${hex(fn.device)}`,
      firmware: '1.0',
    };
    return new NvmeController(spec, identity, irq.msix || irq.msi || 1, ctx.dma, ctx.irq);
  }

  /** Memory page size the host chose (CC.MPS). */
  get pageSize(): number {
    return 4096 << ((this.cc >>> NVME_CC.MPS_SHIFT) & 0xf);
  }

  /** The largest transfer a command may ask for (MDTS), in bytes. */
  get maxTransfer(): number {
    return 4096 << NVME_MDTS;
  }

  /** Ready and not failed: doorbells are served. */
  get ready(): boolean {
    return (this.csts & (NVME_CSTS.RDY | NVME_CSTS.CFS)) === NVME_CSTS.RDY;
  }

  /** Namespace `nsid` (1-based), or undefined. */
  namespace(nsid: number): NvmeNamespace | undefined {
    return nsid >= 1 ? this.namespaces[nsid - 1] : undefined;
  }

  /** Count `bytes` against the current doorbell's budget. */
  charge(bytes: number): void {
    this.budgetBytes += bytes;
  }

  // ---- registers --------------------------------------------------------------------

  /** Read `length` bytes at `pos` of BAR0 (inside NVME_REG_BLOCK); doorbells and unused offsets read 0. */
  read(_bar: number, pos: number, length: number): Uint8Array {
    const regs = new Uint8Array(0x38);
    const v = new DataView(regs.buffer);
    v.setBigUint64(NVME_REG.CAP, NVME_CAP, true);
    v.setUint32(NVME_REG.VS, NVME_VERSION, true);
    v.setUint32(NVME_REG.INTMS, this.intms, true);
    v.setUint32(NVME_REG.INTMC, this.intms, true);
    v.setUint32(NVME_REG.CC, this.cc, true);
    v.setUint32(NVME_REG.CSTS, this.csts, true);
    v.setUint32(NVME_REG.AQA, this.aqa, true);
    v.setBigUint64(NVME_REG.ASQ, this.asq, true);
    v.setBigUint64(NVME_REG.ACQ, this.acq, true);
    const out = new Uint8Array(length);
    if (pos < regs.length) out.set(regs.subarray(pos, Math.min(regs.length, pos + length)));
    return out;
  }

  /** Write `data` at `pos` of BAR0: each dword register it touches takes the written bytes, then acts. */
  write(_bar: number, pos: number, data: Uint8Array): void {
    const end = pos + data.length;
    for (let reg = pos & ~3; reg < end; reg += 4) {
      const old = reg < 0x38 ? new DataView(this.read(0, reg, 4).buffer).getUint32(0, true) : 0;
      const rw1 = reg === NVME_REG.INTMS || reg === NVME_REG.INTMC || reg >= NVME_REG.DOORBELL;
      let value = rw1 ? 0 : old;
      for (let i = 0; i < 4; i++) {
        const at = reg + i;
        if (at >= pos && at < end) {
          value = (value & ~(0xff << (8 * i))) | (data[at - pos]! << (8 * i));
        }
      }
      this.writeRegister(reg, value >>> 0);
    }
  }

  private writeRegister(reg: number, value: number): void {
    const enabled = (this.cc & NVME_CC.EN) !== 0;
    switch (reg) {
      case NVME_REG.INTMS:
        this.intms = (this.intms | value) >>> 0;
        this.updateIntx();
        return;
      case NVME_REG.INTMC:
        this.intms = (this.intms & ~value) >>> 0;
        this.updateIntx();
        return;
      case NVME_REG.CC:
        this.writeCc(value);
        return;
      case NVME_REG.AQA:
        if (!enabled) this.aqa = value & 0x0fff0fff;
        return;
      case NVME_REG.ASQ:
      case NVME_REG.ASQ + 4:
        if (!enabled) this.asq = setDword(this.asq, reg - NVME_REG.ASQ, value) & ~0xfffn;
        return;
      case NVME_REG.ACQ:
      case NVME_REG.ACQ + 4:
        if (!enabled) this.acq = setDword(this.acq, reg - NVME_REG.ACQ, value) & ~0xfffn;
        return;
      default:
        if (reg >= NVME_REG.DOORBELL && reg < NVME_REG_BLOCK)
          this.doorbell((reg - NVME_REG.DOORBELL) >> 2, value);
    }
  }

  /** CC: EN 0→1 enables (or fails with CSTS.CFS), 1→0 resets; while enabled only SHN changes. */
  private writeCc(value: number): void {
    const SHN = 3 << NVME_CC.SHN_SHIFT;
    const was = (this.cc & NVME_CC.EN) !== 0;
    const en = (value & NVME_CC.EN) !== 0;
    if (was && !en) {
      this.controllerReset();
      this.cc = value;
      return;
    }
    if (was) {
      const before = this.cc & SHN;
      this.cc = (this.cc & ~SHN) | (value & SHN);
      if (!before && value & SHN) {
        for (const ns of this.namespaces) ns.flush();
        this.csts = (this.csts & ~(3 << NVME_CSTS.SHST_SHIFT)) | NVME_CSTS.SHST_COMPLETE;
      } else if (before && !(value & SHN)) {
        this.csts &= ~(3 << NVME_CSTS.SHST_SHIFT);
      }
      return;
    }
    this.cc = value;
    this.csts = 0;
    if (en) this.enable();
  }

  /** CC.EN 0→1: check the configuration and the admin queue registers; ready, or CFS. */
  private enable(): void {
    const mps = (this.cc >>> NVME_CC.MPS_SHIFT) & 0xf;
    const css = (this.cc >>> NVME_CC.CSS_SHIFT) & 7;
    const ams = (this.cc >>> NVME_CC.AMS_SHIFT) & 7;
    const sqSize = (this.aqa & 0xfff) + 1;
    const cqSize = ((this.aqa >>> 16) & 0xfff) + 1;
    const page = BigInt(4096 << mps);
    const ok =
      mps <= MPSMAX &&
      css === 0 &&
      ams === 0 &&
      sqSize >= 2 &&
      cqSize >= 2 &&
      this.asq % page === 0n &&
      this.acq % page === 0n;
    if (!ok) {
      this.csts = NVME_CSTS.CFS;
      return;
    }
    this.cqs.set(0, new CompletionQueue(0, this.acq, cqSize, true, 0));
    this.sqs.set(0, new SubmissionQueue(0, this.asq, sqSize, 0));
    this.csts = NVME_CSTS.RDY;
  }

  /**
   * Controller reset (CC.EN 1→0): queues, held Async Event Requests and
   * pending events are dropped, features return to their defaults, CSTS
   * clears. AQA, ASQ and ACQ keep their values; namespaces keep their data.
   */
  private controllerReset(): void {
    this.generation++;
    this.scheduled = false;
    this.sqs.clear();
    this.cqs.clear();
    this.heldAers.length = 0;
    this.events.length = 0;
    this.features.reset();
    this.csts = 0;
    this.updateIntx();
  }

  /** Function reset (FLR, VFIO_DEVICE_RESET, first open): every register to its power-on value. */
  reset(): void {
    this.controllerReset();
    this.cc = 0;
    this.aqa = 0;
    this.asq = 0n;
    this.acq = 0n;
    this.intms = 0;
  }

  /** Release the namespaces' backing (a file stays on disk). */
  close(): void {
    this.controllerReset();
    for (const ns of this.namespaces) ns.close();
  }

  // ---- doorbells and queues ----------------------------------------------------------

  /**
   * Doorbell `index`: even = SQ index/2 tail, odd = CQ (index-1)/2 head. A
   * write for a queue that does not exist, or a value past the queue's end,
   * is ignored and reported as an Error asynchronous event (info 0 "invalid
   * doorbell register", 1 "invalid doorbell write value").
   */
  private doorbell(index: number, value: number): void {
    if (!this.ready) return;
    const qid = index >> 1;
    const q = index & 1 ? this.cqs.get(qid) : this.sqs.get(qid);
    if (!q || value >= q.size) {
      this.asyncEvent({ type: 0, info: q ? 1 : 0, log: 1 });
      return;
    }
    if (q instanceof SubmissionQueue) q.tail = value;
    else {
      q.head = value;
      this.updateIntx();
    }
    this.budgetBytes = 0;
    this.process(BUDGET_COMMANDS);
  }

  /**
   * Run queued commands, admin first, until no SQ can progress or the budget
   * runs out. Each pass gives every SQ one command, or one piece of the
   * command it is running.
   */
  private process(budget: number): void {
    const touched = new Set<CompletionQueue>();
    this.deliverEvents(touched);
    let progress = true;
    while (progress && this.ready) {
      progress = false;
      for (const sq of this.sqs.values()) {
        const cq = this.cqs.get(sq.cqid);
        if ((sq.empty && !sq.running) || sq.running?.waiting || !cq || cq.full) continue;
        if (budget === 0 || this.budgetBytes >= BUDGET_BYTES) {
          this.schedule();
          progress = false;
          break;
        }
        budget--;
        progress = true;
        if (sq.running) this.step(sq, cq, sq.running.cid, sq.running.work, touched);
        else this.runOne(sq, cq, touched);
        if (!this.ready) break;
      }
    }
    this.deliverEvents(touched);
    for (const cq of touched) if (cq.ien) this.irq.raise(cq.vector);
    this.updateIntx();
  }

  /** Continue in a later event-loop turn unless a reset comes first. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const gen = this.generation;
    setImmediate(() => {
      if (gen !== this.generation || !this.scheduled) return;
      this.scheduled = false;
      this.budgetBytes = 0;
      if (this.ready) this.process(BUDGET_COMMANDS);
    });
  }

  /** Fetch, run and complete the command at `sq`'s head. */
  private runOne(sq: SubmissionQueue, cq: CompletionQueue, touched: Set<CompletionQueue>): void {
    let sqe: Uint8Array;
    try {
      sqe = this.dma.dmaRead(sq.headAddress, NVME_SQE_BYTES);
    } catch {
      this.fatal();
      return;
    }
    sq.advance();
    const cmd = decodeCommand(sqe);
    const result = this.execute(sq, cmd);
    if (result === undefined) return; // held (Async Event Request)
    if (Array.isArray(result))
      this.post(cq, sq.id, sq.head, cmd.cid, result[0], result[1], touched);
    else this.step(sq, cq, cmd.cid, result, touched);
  }

  /**
   * Run one command: [status, DW0], the pieces still to run, or undefined
   * when the command stays outstanding.
   */
  private execute(sq: SubmissionQueue, cmd: NvmeCommand): [number, number] | NvmeWork | undefined {
    try {
      if (cmd.fuse !== 0 || cmd.psdt !== 0) return [NVME_SC.INVALID_FIELD | NVME_DNR, 0];
      const dw0 = sq.id === 0 ? adminCommand(this, cmd) : ioCommand(this, cmd);
      return typeof dw0 === 'number' ? [NVME_SC.SUCCESS, dw0] : dw0;
    } catch (e) {
      return [failureStatus(e), 0];
    }
  }

  /**
   * Run the next piece of `work` (command `cid` of `sq`): posted when it is
   * the last, else kept as `sq.running` for a later pass. A controller
   * reset drops the queue and with it the rest, which is never completed.
   */
  private step(
    sq: SubmissionQueue,
    cq: CompletionQueue,
    cid: number,
    work: NvmeWork,
    touched: Set<CompletionQueue>,
  ): void {
    let status: number = NVME_SC.SUCCESS;
    let dw0 = 0;
    try {
      const r = work.next();
      if (!r.done) {
        sq.running = { cid, work, waiting: r.value !== undefined };
        if (r.value) this.resumeAfter(sq, r.value);
        return;
      }
      dw0 = r.value;
    } catch (e) {
      status = failureStatus(e);
    }
    sq.running = undefined;
    this.post(cq, sq.id, sq.head, cid, status, dw0, touched);
  }

  /** When `settled` does, let `sq`'s running command go on, unless a reset or deletion came first. */
  private resumeAfter(sq: SubmissionQueue, settled: Promise<void>): void {
    const gen = this.generation;
    void settled.then(() => {
      if (gen !== this.generation || this.sqs.get(sq.id) !== sq || !sq.running) return;
      sq.running.waiting = false;
      this.schedule();
    });
  }

  /** Write one completion entry at `cq`'s tail (a refused write is fatal: CSTS.CFS). */
  private post(
    cq: CompletionQueue,
    sqid: number,
    sqhd: number,
    cid: number,
    status: number,
    dw0: number,
    touched: Set<CompletionQueue>,
  ): void {
    const cqe = new Uint8Array(NVME_CQE_BYTES);
    const v = new DataView(cqe.buffer);
    v.setUint32(0, dw0 >>> 0, true);
    v.setUint16(8, sqhd, true);
    v.setUint16(10, sqid, true);
    v.setUint16(12, cid, true);
    v.setUint16(14, ((status << 1) | cq.phase) & 0xffff, true);
    try {
      this.dma.dmaWrite(cq.tailAddress, cqe);
    } catch {
      this.fatal();
      return;
    }
    cq.advance();
    touched.add(cq);
  }

  /**
   * A queue entry the controller could not fetch or post (the IOMMU refused
   * it): the controller stops with CSTS.CFS until reset.
   */
  private fatal(): void {
    this.csts |= NVME_CSTS.CFS;
  }

  // ---- asynchronous events -----------------------------------------------------------

  /** An Async Event Request arrives: held, or AER_LIMIT past AERL + 1 outstanding. */
  holdAer(cid: number): void {
    if (this.heldAers.length > NVME_AERL) throw new NvmeStatus(NVME_SC.AER_LIMIT);
    this.heldAers.push(cid);
  }

  private asyncEvent(ev: AsyncEvent): void {
    if (this.events.some((e) => e.type === ev.type && e.info === ev.info)) return;
    this.events.push(ev);
    this.process(BUDGET_COMMANDS);
  }

  /** Complete held AERs with pending events, while the admin CQ has room. */
  private deliverEvents(touched: Set<CompletionQueue>): void {
    const acq = this.cqs.get(0);
    const asq = this.sqs.get(0);
    while (acq && asq && this.ready && !acq.full && this.heldAers.length && this.events.length) {
      const ev = this.events.shift()!;
      const dw0 = ev.type | (ev.info << 8) | (ev.log << 16);
      this.post(acq, 0, asq.head, this.heldAers.shift()!, NVME_SC.SUCCESS, dw0, touched);
    }
  }

  // ---- interrupts ----------------------------------------------------------------------

  /** INTx follows: some IEN completion queue has unconsumed entries and its vector is unmasked. */
  private updateIntx(): void {
    let level = false;
    for (const cq of this.cqs.values()) {
      if (cq.ien && cq.pending && !(this.intms & (1 << (cq.vector & 31)))) level = true;
    }
    if (level === this.intxLevel) return;
    this.intxLevel = level;
    this.irq.intx(level);
  }
}

/** The status a command that threw `e` completes with (Do Not Retry set). */
function failureStatus(e: unknown): number {
  if (e instanceof NvmeStatus) return e.status | NVME_DNR;
  if (e instanceof DmaFaultError) return NVME_SC.DATA_TRANSFER_ERROR | NVME_DNR;
  return NVME_SC.INTERNAL | NVME_DNR;
}

function setDword(reg: bigint, half: number, value: number): bigint {
  const shift = BigInt(half * 8);
  return (reg & ~(0xffffffffn << shift)) | (BigInt(value) << shift);
}
