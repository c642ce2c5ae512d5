/**
 * A small NVMe host driver for the controller's unit tests: host memory
 * behind a fake IOMMU (4 KiB pages mapped explicitly; an unmapped access
 * throws DmaFaultError and is recorded), an interrupt recorder, and helpers
 * that build submission entries, ring doorbells and read completions.
 */
import { DmaFaultError } from '../../../src/iommu/device.ts';
import type { DmaPort } from '../../../src/vfio/pci/device-model.ts';
import { NVME_REG } from '../../../src/vfio/pci/nvme/abi.ts';
import { NvmeController, type NvmeModelSpec } from '../../../src/vfio/pci/nvme/controller.ts';

const PAGE = 4096n;

/** Host memory as a device sees it through an IOMMU: mapped pages only. */
export class FakeIommuMemory implements DmaPort {
  readonly pages = new Map<bigint, Uint8Array>();
  readonly faults: { iova: bigint; access: 'read' | 'write' }[] = [];

  map(iova: bigint, length: number): void {
    for (let p = iova & ~(PAGE - 1n); p < iova + BigInt(length); p += PAGE) {
      if (!this.pages.has(p)) this.pages.set(p, new Uint8Array(Number(PAGE)));
    }
  }

  unmap(iova: bigint, length: number): void {
    for (let p = iova & ~(PAGE - 1n); p < iova + BigInt(length); p += PAGE) this.pages.delete(p);
  }

  dmaRead(iova: bigint, length: number): Uint8Array {
    this.check(iova, length, 'read');
    return this.peek(iova, length);
  }

  dmaWrite(iova: bigint, data: Uint8Array): void {
    this.check(iova, data.length, 'write');
    this.poke(iova, data);
  }

  /** CPU access (no IOMMU). */
  peek(iova: bigint, length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; ) {
      const a = iova + BigInt(i);
      const off = Number(a % PAGE);
      const n = Math.min(Number(PAGE) - off, length - i);
      out.set(this.pages.get(a - BigInt(off))!.subarray(off, off + n), i);
      i += n;
    }
    return out;
  }

  poke(iova: bigint, data: Uint8Array): void {
    for (let i = 0; i < data.length; ) {
      const a = iova + BigInt(i);
      const off = Number(a % PAGE);
      const n = Math.min(Number(PAGE) - off, data.length - i);
      this.pages.get(a - BigInt(off))!.set(data.subarray(i, i + n), off);
      i += n;
    }
  }

  private check(iova: bigint, length: number, access: 'read' | 'write'): void {
    for (let p = iova & ~(PAGE - 1n); p < iova + BigInt(length); p += PAGE) {
      if (!this.pages.has(p)) {
        const at = p > iova ? p : iova;
        this.faults.push({ iova: at, access });
        throw new DmaFaultError({ device: 'test', iova: at, access });
      }
    }
  }
}

/** One completion entry as the host reads it. */
export interface Cqe {
  readonly dw0: number;
  readonly sqhd: number;
  readonly sqid: number;
  readonly cid: number;
  readonly phase: number;
  /** Status without the phase bit: SCT << 8 | SC, plus DNR (0x4000). */
  readonly status: number;
}

/** Fields of a submission entry; the rest is zero. */
export interface Sqe {
  opcode: number;
  nsid?: number;
  prp1?: bigint;
  prp2?: bigint;
  /** CDW10..CDW15. */
  cdw?: number[];
  /** CDW0 bits 15:8 (FUSE, PSDT). */
  flags?: number;
}

interface HostQueue {
  sqBase: bigint;
  cqBase: bigint;
  size: number;
  tail: number;
  head: number;
  phase: number;
  cid: number;
}

export const ADMIN_SQ = 0x10_0000n;
export const ADMIN_CQ = 0x11_0000n;

export const u32 = (v: number) => new Uint8Array(new Uint32Array([v >>> 0]).buffer);
export const u64 = (v: bigint) => new Uint8Array(new BigUint64Array([v]).buffer);

/** A controller with host memory, and a driver for it. */
export class NvmeHost {
  readonly mem = new FakeIommuMemory();
  readonly raised: number[] = [];
  intx = false;
  readonly ctrl: NvmeController;
  readonly queues = new Map<number, HostQueue>();

  constructor(spec: NvmeModelSpec, vectors = 8) {
    this.ctrl = new NvmeController(
      spec,
      {
        vendor: 0x1b36,
        subsystemVendor: 0x1af4,
        serial: 'UIOMMU0001',
        model: 'uiommu NVMe',
        firmware: '1.0',
      },
      vectors,
      this.mem,
      { raise: (v) => this.raised.push(v), intx: (a) => (this.intx = a) },
    );
  }

  reg32(off: number): number {
    return new DataView(this.ctrl.read(0, off, 4).buffer).getUint32(0, true);
  }

  /** Admin queues of `size` entries, then CC.EN with 64/16-byte entries; returns CSTS. */
  enable(size = 32): number {
    this.mem.map(ADMIN_SQ, size * 64);
    this.mem.map(ADMIN_CQ, size * 16);
    this.mem.poke(ADMIN_CQ, new Uint8Array(size * 16));
    this.ctrl.write(0, NVME_REG.AQA, u32(((size - 1) << 16) | (size - 1)));
    this.ctrl.write(0, NVME_REG.ASQ, u64(ADMIN_SQ));
    this.ctrl.write(0, NVME_REG.ACQ, u64(ADMIN_CQ));
    this.ctrl.write(0, NVME_REG.CC, u32(0x00460001));
    this.queues.set(0, {
      sqBase: ADMIN_SQ,
      cqBase: ADMIN_CQ,
      size,
      tail: 0,
      head: 0,
      phase: 1,
      cid: 0,
    });
    return this.reg32(NVME_REG.CSTS);
  }

  /** Create I/O CQ and SQ `qid` of `size` entries (CQ interrupts on `vector`). */
  createIoQueue(qid: number, size = 64, vector = qid): void {
    const sqBase = 0x20_0000n + BigInt(qid) * 0x10_0000n;
    const cqBase = sqBase + 0x8_0000n;
    this.mem.map(sqBase, size * 64);
    this.mem.map(cqBase, size * 16);
    this.mem.poke(cqBase, new Uint8Array(size * 16));
    const cq = this.admin({
      opcode: 0x05,
      prp1: cqBase,
      cdw: [((size - 1) << 16) | qid, (vector << 16) | 3],
    });
    const sq = this.admin({
      opcode: 0x01,
      prp1: sqBase,
      cdw: [((size - 1) << 16) | qid, (qid << 16) | 1],
    });
    if (cq.status || sq.status) throw new Error(`create queue ${qid}: ${cq.status} ${sq.status}`);
    this.queues.set(qid, { sqBase, cqBase, size, tail: 0, head: 0, phase: 1, cid: 0 });
  }

  admin(cmd: Sqe): Cqe {
    return this.submit(0, cmd);
  }

  /** Queue `cmds` on `qid`, ring the doorbell once, and collect what completed. */
  submitAll(qid: number, cmds: Sqe[]): Cqe[] {
    for (const c of cmds) this.queueCmd(qid, c);
    this.ring(qid);
    return this.reap(qid);
  }

  submit(qid: number, cmd: Sqe): Cqe {
    const out = this.submitAll(qid, [cmd]);
    if (out.length !== 1) throw new Error(`expected one completion, got ${out.length}`);
    return out[0]!;
  }

  queueCmd(qid: number, c: Sqe): number {
    const q = this.queues.get(qid)!;
    const sqe = new Uint8Array(64);
    const v = new DataView(sqe.buffer);
    const cid = ++q.cid & 0xffff;
    v.setUint32(0, (c.opcode | ((c.flags ?? 0) << 8) | (cid << 16)) >>> 0, true);
    v.setUint32(4, c.nsid ?? 0, true);
    v.setBigUint64(24, c.prp1 ?? 0n, true);
    v.setBigUint64(32, c.prp2 ?? 0n, true);
    for (const [i, d] of (c.cdw ?? []).entries()) v.setUint32(40 + 4 * i, d >>> 0, true);
    this.mem.poke(q.sqBase + BigInt(q.tail * 64), sqe);
    q.tail = (q.tail + 1) % q.size;
    return cid;
  }

  ring(qid: number, value?: number): void {
    this.ctrl.write(0, NVME_REG.DOORBELL + qid * 8, u32(value ?? this.queues.get(qid)!.tail));
  }

  /** Completions with the current phase, then the CQ head doorbell. */
  reap(qid: number): Cqe[] {
    const q = this.queues.get(qid)!;
    const out: Cqe[] = [];
    for (;;) {
      const e = this.mem.peek(q.cqBase + BigInt(q.head * 16), 16);
      const v = new DataView(e.buffer);
      const sf = v.getUint16(14, true);
      if ((sf & 1) !== q.phase) break;
      out.push({
        dw0: v.getUint32(0, true),
        sqhd: v.getUint16(8, true),
        sqid: v.getUint16(10, true),
        cid: v.getUint16(12, true),
        phase: sf & 1,
        status: sf >> 1,
      });
      q.head = (q.head + 1) % q.size;
      if (q.head === 0) q.phase ^= 1;
    }
    if (out.length) this.ctrl.write(0, NVME_REG.DOORBELL + qid * 8 + 4, u32(q.head));
    return out;
  }
}
