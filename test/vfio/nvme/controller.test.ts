/**
 * The NVMe controller model against a test driver (host.ts): registers and
 * the enable/disable/shutdown state machine, admin and I/O commands, PRP
 * rules, the documented status of every bad command, IOMMU faults,
 * interrupts, and resets that keep completed data.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NVME_REG } from '../../../src/vfio/pci/nvme/abi.ts';
import { NVME_CAP, type NvmeModelSpec } from '../../../src/vfio/pci/nvme/controller.ts';
import { NvmeHost, u32, u64 } from './host.ts';

const DNR = 0x4000;
const MEM_NS: NvmeModelSpec = { kind: 'nvme', namespaces: [{ size: 1n << 24n, lbaSize: 512 }] };
const BUF = 0x100_0000n;

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed + (i >> 9)) & 0xff;
  return b;
}

/** A host with I/O queue 1 and `pages` mapped buffer pages at BUF. */
function ioHost(spec = MEM_NS, pages = 300): NvmeHost {
  const h = new NvmeHost(spec);
  assert.equal(h.enable(), 1);
  h.createIoQueue(1);
  h.mem.map(BUF, pages * 4096);
  return h;
}

const rw = (op: 1 | 2, slba: number, nlb: number, prp1: bigint, prp2 = 0n) => ({
  opcode: op,
  nsid: 1,
  prp1,
  prp2,
  cdw: [slba, 0, nlb - 1],
});

describe('NVMe registers and state machine', () => {
  it('CAP, VS, and CC.EN → CSTS.RDY with the admin queues checked', () => {
    const h = new NvmeHost(MEM_NS);
    const cap = new DataView(h.ctrl.read(0, NVME_REG.CAP, 8).buffer).getBigUint64(0, true);
    assert.equal(cap, NVME_CAP);
    assert.equal(cap & 0xffffn, 1023n); // MQES
    assert.equal((cap >> 37n) & 1n, 1n); // NVM command set
    assert.equal((cap >> 32n) & 0xfn, 0n); // DSTRD
    assert.equal(h.reg32(NVME_REG.VS), 0x00010400);
    assert.equal(h.reg32(NVME_REG.CSTS), 0);
    assert.equal(h.enable(), 1);
    // admin queue registers are frozen while enabled
    h.ctrl.write(0, NVME_REG.AQA, u32(0));
    assert.equal(h.reg32(NVME_REG.AQA), 0x001f001f);
    h.ctrl.write(0, NVME_REG.CC, u32(0));
    assert.equal(h.reg32(NVME_REG.CSTS), 0);
    assert.equal(h.reg32(NVME_REG.CC), 0);
  });

  it('a bad configuration at enable leaves RDY clear and sets CFS until EN is cleared', () => {
    const h = new NvmeHost(MEM_NS);
    h.ctrl.write(0, NVME_REG.AQA, u32(0x001f001f));
    h.ctrl.write(0, NVME_REG.ASQ, u64(0x1000n));
    h.ctrl.write(0, NVME_REG.ACQ, u64(0x2000n));
    h.ctrl.write(0, NVME_REG.CC, u32((5 << 7) | 1)); // MPS 5: 128 KiB pages, past MPSMAX
    assert.equal(h.reg32(NVME_REG.CSTS), 2);
    h.ctrl.write(0, NVME_REG.CC, u32(0));
    assert.equal(h.reg32(NVME_REG.CSTS), 0);
    h.ctrl.write(0, NVME_REG.CC, u32((1 << 7) | 1)); // 8 KiB pages: ASQ 0x1000 is not aligned
    assert.equal(h.reg32(NVME_REG.CSTS), 2);
    h.ctrl.write(0, NVME_REG.CC, u32(0));
    h.ctrl.write(0, NVME_REG.AQA, u32(0)); // one-entry queues
    h.ctrl.write(0, NVME_REG.CC, u32(1));
    assert.equal(h.reg32(NVME_REG.CSTS), 2);
  });

  it('64-bit registers take two 32-bit halves (lo_hi_writeq)', () => {
    const h = new NvmeHost(MEM_NS);
    h.ctrl.write(0, NVME_REG.ASQ, u32(0x1234_5000));
    h.ctrl.write(0, NVME_REG.ASQ + 4, u32(0x9));
    const asq = new DataView(h.ctrl.read(0, NVME_REG.ASQ, 8).buffer).getBigUint64(0, true);
    assert.equal(asq, 0x9_1234_5000n);
  });

  it('shutdown sets SHST complete, clearing SHN returns it to normal', () => {
    const h = new NvmeHost(MEM_NS);
    h.enable();
    h.ctrl.write(0, NVME_REG.CC, u32(0x00460001 | (1 << 14)));
    assert.equal(h.reg32(NVME_REG.CSTS), 1 | (2 << 2));
    h.ctrl.write(0, NVME_REG.CC, u32(0x00460001));
    assert.equal(h.reg32(NVME_REG.CSTS), 1);
  });
});

describe('NVMe admin commands', () => {
  it('Identify controller, namespace, active list and descriptors', () => {
    const h = new NvmeHost({
      kind: 'nvme',
      namespaces: [
        { size: 1n << 20n, lbaSize: 512 },
        { size: 1n << 22n, lbaSize: 4096 },
      ],
    });
    h.enable();
    h.mem.map(BUF, 8192);
    const id = (cns: number, nsid = 0) => {
      const c = h.admin({ opcode: 6, nsid, prp1: BUF, cdw: [cns] });
      return { c, b: h.mem.peek(BUF, 4096) };
    };
    let { c, b } = id(1);
    assert.equal(c.status, 0);
    const v = () => new DataView(b.buffer);
    assert.equal(v().getUint16(0, true), 0x1b36);
    assert.equal(new TextDecoder().decode(b.subarray(24, 35)), 'uiommu NVMe');
    assert.equal(b[77], 8); // MDTS
    assert.equal(v().getUint32(516, true), 2); // NN
    assert.equal(b[512], 0x66);
    assert.equal(b[513], 0x44);
    ({ c, b } = id(0, 2));
    assert.equal(v().getBigUint64(0, true), 1024n); // NSZE in 4 KiB blocks
    assert.equal(b[130], 12);
    assert.equal(b[33], 0x09); // DLFEAT: deallocated memory reads zero
    ({ c, b } = id(0, 1));
    assert.equal(v().getBigUint64(0, true), 2048n);
    assert.equal(b[130], 9);
    ({ c, b } = id(2, 1));
    assert.deepEqual([v().getUint32(0, true), v().getUint32(4, true)], [2, 0]);
    ({ c, b } = id(3, 2));
    assert.deepEqual([b[0], b[1]], [2, 16]);
    assert.equal(id(0, 3).c.status, 0x0b | DNR);
    assert.equal(id(0, 0).c.status, 0x0b | DNR);
    assert.equal(id(0x10).c.status, 0x02 | DNR);
  });

  it('Identify whose buffer spans two pages follows PRP2', () => {
    const h = new NvmeHost(MEM_NS);
    h.enable();
    h.mem.map(BUF, 4096);
    h.mem.map(BUF + 0x10000n, 4096);
    const c = h.admin({ opcode: 6, prp1: BUF + 0x800n, prp2: BUF + 0x10000n, cdw: [1] });
    assert.equal(c.status, 0);
    assert.equal(h.mem.peek(BUF + 0x800n, 1)[0], 0x36); // VID, byte 0
    assert.equal(h.mem.peek(BUF + 0x800n + 512n, 1)[0], 0x66); // SQES, byte 512
    assert.deepEqual([...h.mem.peek(BUF + 0x10000n, 2)], [0xc4, 0x09]); // PSD0.MP, byte 2048
  });

  it('queue creation and deletion errors', () => {
    const h = new NvmeHost(MEM_NS, 4);
    h.enable();
    h.mem.map(0x40_0000n, 0x10000);
    const cq = (qid: number, size: number, flags: number, vector = 0, prp = 0x40_0000n) =>
      h.admin({ opcode: 5, prp1: prp, cdw: [((size - 1) << 16) | qid, (vector << 16) | flags] })
        .status;
    const sq = (qid: number, cqid: number, size = 16, flags = 1) =>
      h.admin({
        opcode: 1,
        prp1: 0x40_8000n,
        cdw: [((size - 1) << 16) | qid, (cqid << 16) | flags],
      }).status;
    assert.equal(cq(0, 16, 3), 0x101 | DNR);
    assert.equal(cq(65, 16, 3), 0x101 | DNR);
    assert.equal(cq(1, 1, 3), 0x102 | DNR);
    assert.equal(cq(1, 1025, 3), 0x102 | DNR);
    assert.equal(cq(1, 16, 3, 0, 0x40_0100n), 0x13 | DNR);
    assert.equal(cq(1, 16, 2), 0x02 | DNR); // not physically contiguous
    assert.equal(cq(1, 16, 3, 4), 0x108 | DNR); // vector 4 of 4
    assert.equal(cq(1, 16, 3, 3), 0);
    assert.equal(cq(1, 16, 3), 0x101 | DNR); // exists
    assert.equal(sq(1, 2), 0x100 | DNR);
    assert.equal(sq(1, 0), 0x100 | DNR);
    assert.equal(sq(1, 1, 16, 0), 0x02 | DNR);
    assert.equal(sq(1, 1), 0);
    assert.equal(h.admin({ opcode: 4, cdw: [1] }).status, 0x10c | DNR);
    assert.equal(h.admin({ opcode: 0, cdw: [2] }).status, 0x101 | DNR);
    assert.equal(h.admin({ opcode: 0, cdw: [0] }).status, 0x101 | DNR);
    assert.equal(h.admin({ opcode: 0, cdw: [1] }).status, 0);
    assert.equal(h.admin({ opcode: 4, cdw: [1] }).status, 0);
    assert.equal(h.admin({ opcode: 4, cdw: [0] }).status, 0x101 | DNR);
  });

  it('features: number of queues, write cache, saveable and unknown', () => {
    const h = new NvmeHost(MEM_NS);
    h.enable();
    const set = (fid: number, v: number) => h.admin({ opcode: 9, cdw: [fid, v] });
    const get = (fid: number, sel = 0, v = 0) =>
      h.admin({ opcode: 10, cdw: [fid | (sel << 8), v] });
    const q = set(7, (3 << 16) | 99);
    assert.deepEqual([q.status, q.dw0], [0, (3 << 16) | 63]);
    assert.equal(get(7).dw0, (3 << 16) | 63);
    assert.equal(set(7, 0xffff).status, 0x02 | DNR);
    assert.equal(get(6).dw0, 1);
    assert.equal(set(6, 0).status, 0);
    assert.equal(get(6).dw0, 0);
    assert.equal(get(6, 1).dw0, 1); // default
    assert.equal(get(6, 3).dw0, 4); // changeable
    assert.equal(h.admin({ opcode: 9, cdw: [6 | (1 << 31), 1] }).status, 0x10d | DNR);
    assert.equal(set(0x7f, 0).status, 0x02 | DNR);
    assert.equal(get(0x7f).status, 0x02 | DNR);
    assert.equal(set(8, 0x0a05).status, 0); // interrupt coalescing: stored
    assert.equal(get(8).dw0, 0x0a05);
    assert.equal(set(0x0b, 0x100).status, 0);
    // queues granted: qid 5 is past the 4 I/O CQs now allocated
    h.mem.map(0x40_0000n, 4096);
    const cq5 = h.admin({ opcode: 5, prp1: 0x40_0000n, cdw: [(15 << 16) | 5, 3] });
    assert.equal(cq5.status, 0x101 | DNR);
    const cq4 = h.admin({ opcode: 5, prp1: 0x40_0000n, cdw: [(15 << 16) | 4, 3] });
    assert.equal(cq4.status, 0);
    assert.equal(set(7, 0).status, 0x0c | DNR); // after I/O queues exist
  });

  it('log pages: SMART counts I/O, firmware slot, unknown page', () => {
    const h = ioHost();
    h.submit(1, rw(1, 0, 8, BUF));
    h.submit(1, rw(2, 0, 8, BUF));
    h.submit(1, rw(2, 0, 8, BUF));
    const log = (lid: number, dwords: number, offset = 0) =>
      h.admin({
        opcode: 2,
        nsid: 0xffffffff,
        prp1: BUF,
        cdw: [lid | ((dwords - 1) << 16), 0, offset, 0],
      });
    assert.equal(log(2, 128).status, 0);
    const smart = new DataView(h.mem.peek(BUF, 512).buffer);
    assert.equal(smart.getBigUint64(64, true), 2n); // host read commands
    assert.equal(smart.getBigUint64(80, true), 1n);
    assert.equal(smart.getBigUint64(32, true), 1n); // 16 units, rounded up to one thousand
    assert.equal(log(3, 128).status, 0);
    assert.equal(new TextDecoder().decode(h.mem.peek(BUF + 8n, 3)), '1.0');
    assert.equal(log(1, 16).status, 0);
    assert.equal(log(0x42, 16).status, 0x109 | DNR);
    assert.equal(log(2, 16, 2).status, 0x02 | DNR); // offset not dword aligned
    assert.equal(log(2, 16, 512).status, 0x02 | DNR); // past the page
  });

  it('Abort finds nothing to abort; Keep Alive succeeds; unknown opcode', () => {
    const h = new NvmeHost(MEM_NS);
    h.enable();
    const a = h.admin({ opcode: 8, cdw: [1 << 16] });
    assert.deepEqual([a.status, a.dw0 & 1], [0, 1]);
    assert.equal(h.admin({ opcode: 0x18 }).status, 0);
    assert.equal(h.admin({ opcode: 0x80 }).status, 0x01 | DNR); // Format NVM: not supported
    assert.equal(h.admin({ opcode: 0x02 | 0x40 }).status, 0x01 | DNR);
    assert.equal(h.admin({ opcode: 6, cdw: [1], flags: 1 }).status, 0x02 | DNR); // fused
    assert.equal(h.admin({ opcode: 6, cdw: [1], flags: 0x40 }).status, 0x02 | DNR); // SGL
  });

  it('Async Event Requests are held (four at most) and complete on an invalid doorbell', () => {
    const h = ioHost();
    for (let i = 0; i < 4; i++) h.queueCmd(0, { opcode: 0x0c });
    h.ring(0);
    assert.deepEqual(h.reap(0), []);
    assert.equal(h.admin({ opcode: 0x0c }).status, 0x105 | DNR);
    // a doorbell for queue 9 (none), and a tail past I/O queue 1's 64 entries
    h.ctrl.write(0, NVME_REG.DOORBELL + 9 * 8, u32(1));
    h.ring(1, 64);
    const ev = h.reap(0);
    assert.deepEqual(
      ev.map((e) => [e.status, e.dw0]),
      [
        [0, 0x00 | (0 << 8) | (1 << 16)],
        [0, 0x00 | (1 << 8) | (1 << 16)],
      ],
    );
    // the I/O queue still works
    assert.equal(h.submit(1, rw(2, 0, 1, BUF)).status, 0);
  });
});

describe('NVMe I/O commands', () => {
  it('write and read back through a PRP list, at several offsets and sizes', () => {
    const h = ioHost();
    const cases: [slba: number, pages: number, prp1Offset: number][] = [
      [0, 1, 0],
      [8, 2, 0],
      [100, 3, 0x200],
      [1000, 64, 0],
      [5000, 256, 0],
      [9999, 17, 0x100],
    ];
    const list = BUF + 280n * 4096n;
    for (const [slba, pages, off] of cases) {
      const bytes = (pages * 4096 - off) & ~511; // whole blocks: the last page may be partly used
      const data = pattern(bytes, slba);
      // the data pages in reverse order, so the list is not one contiguous run
      const pageAt = (i: number) => BUF + BigInt((pages - 1 - i) * 4096);
      const chunk = (i: number) =>
        i === 0 ? [0, 4096 - off] : [i * 4096 - off, Math.min(bytes, (i + 1) * 4096 - off)];
      const addr = (i: number) => pageAt(i) + (i === 0 ? BigInt(off) : 0n);
      const entries = new DataView(new ArrayBuffer(8 * pages));
      for (let i = 1; i < pages; i++) entries.setBigUint64((i - 1) * 8, pageAt(i), true);
      h.mem.poke(list, new Uint8Array(entries.buffer));
      const prp2 = pages === 1 ? 0n : pages === 2 ? pageAt(1) : list;
      for (let i = 0; i < pages; i++) h.mem.poke(addr(i), data.subarray(...chunk(i)));
      assert.equal(h.submit(1, rw(1, slba, bytes / 512, addr(0), prp2)).status, 0);
      assert.deepEqual(h.ctrl.namespaces[0]!.read(slba * 512, bytes), data, `write ${slba}`);
      for (let i = 0; i < pages; i++) h.mem.poke(pageAt(i), new Uint8Array(4096));
      assert.equal(h.submit(1, rw(2, slba, bytes / 512, addr(0), prp2)).status, 0);
      const back = new Uint8Array(bytes);
      for (let i = 0; i < pages; i++) {
        const [s0, e0] = chunk(i) as [number, number];
        back.set(h.mem.peek(addr(i), e0 - s0), s0);
      }
      assert.deepEqual(back, data, `read ${slba}`);
    }
  });

  it('a PRP list that chains to a second list page', () => {
    const h = ioHost();
    const list1 = BUF + 290n * 4096n + 4096n - 16n; // two slots: one entry, then the chain pointer
    const list2 = BUF + 291n * 4096n;
    const data = pattern(4 * 4096, 3);
    h.mem.poke(BUF, data);
    const e1 = new DataView(new ArrayBuffer(16));
    e1.setBigUint64(0, BUF + 4096n, true);
    e1.setBigUint64(8, list2, true);
    h.mem.poke(list1, new Uint8Array(e1.buffer));
    const e2 = new DataView(new ArrayBuffer(16));
    e2.setBigUint64(0, BUF + 8192n, true);
    e2.setBigUint64(8, BUF + 12288n, true);
    h.mem.poke(list2, new Uint8Array(e2.buffer));
    assert.equal(h.submit(1, rw(1, 64, 32, BUF, list1)).status, 0);
    assert.deepEqual(h.ctrl.namespaces[0]!.read(64 * 512, data.length), data);
  });

  it('PRP offset rules give PRP Offset Invalid and move nothing', () => {
    const h = ioHost();
    const list = BUF + 200n * 4096n;
    h.mem.poke(list, u64(BUF + 0x1010n)); // an entry with an offset
    assert.equal(h.submit(1, rw(1, 0, 1, BUF + 2n)).status, 0x13 | DNR); // PRP1 not dword aligned
    assert.equal(h.submit(1, rw(1, 0, 16, BUF, BUF + 0x1008n)).status, 0x13 | DNR); // PRP2 page with offset
    assert.equal(h.submit(1, rw(1, 0, 24, BUF, list + 4n)).status, 0x13 | DNR); // list not qword aligned
    assert.equal(h.submit(1, rw(1, 0, 24, BUF, list)).status, 0x13 | DNR); // list entry with offset
    const self = BUF + 201n * 4096n + 4088n; // a list whose only slot is the chain pointer
    h.mem.poke(self, u64(self));
    assert.equal(h.submit(1, rw(1, 0, 24, BUF, self)).status, 0x13 | DNR);
    assert.deepEqual(h.ctrl.namespaces[0]!.read(0, 512), new Uint8Array(512));
  });

  it('a PRP at an unmapped IOVA: Data Transfer Error, the IOMMU fault recorded, nothing written', () => {
    const h = ioHost();
    h.mem.poke(BUF, pattern(4096, 1));
    const hole = 0x7000_0000n;
    const w = h.submit(1, rw(1, 0, 16, BUF, hole));
    assert.equal(w.status, 0x04 | DNR);
    assert.deepEqual(h.mem.faults.at(-1), { iova: hole, access: 'read' });
    assert.deepEqual(h.ctrl.namespaces[0]!.read(0, 4096), new Uint8Array(4096));
    assert.equal(h.submit(1, rw(2, 0, 8, hole)).status, 0x04 | DNR);
    assert.deepEqual(h.mem.faults.at(-1), { iova: hole, access: 'write' });
    assert.equal(h.submit(1, rw(1, 0, 24, BUF, hole)).status, 0x04 | DNR); // the PRP list itself
    assert.equal(h.reg32(NVME_REG.CSTS), 1); // the controller carries on
  });

  it('bad I/O commands get their status', () => {
    const h = ioHost();
    assert.equal(h.submit(1, { opcode: 0x7e, nsid: 1 }).status, 0x01 | DNR);
    assert.equal(h.submit(1, { ...rw(2, 0, 1, BUF), nsid: 2 }).status, 0x0b | DNR);
    assert.equal(h.submit(1, { ...rw(2, 0, 1, BUF), nsid: 0 }).status, 0x0b | DNR);
    assert.equal(h.submit(1, rw(2, 32767, 2, BUF)).status, 0x80 | DNR); // last block + 1
    assert.equal(h.submit(1, rw(2, 32767, 1, BUF)).status, 0);
    assert.equal(h.submit(1, { opcode: 2, nsid: 1, prp1: BUF, cdw: [0, 1, 0] }).status, 0x80 | DNR); // SLBA ≥ 2^32
    assert.equal(h.submit(1, rw(2, 0, 2049, BUF, BUF + 4096n)).status, 0x02 | DNR); // past MDTS (1 MiB)
    assert.equal(h.submit(1, { opcode: 6, nsid: 1 }).status, 0x01 | DNR); // an admin opcode on an I/O queue
  });

  it('Write Zeroes and Dataset Management deallocate read back zero; Flush', () => {
    const h = ioHost();
    const ns = h.ctrl.namespaces[0]!;
    ns.write(0, pattern(1 << 20, 9));
    assert.equal(h.submit(1, { opcode: 8, nsid: 1, cdw: [10, 0, 4] }).status, 0);
    assert.deepEqual(ns.read(10 * 512, 5 * 512), new Uint8Array(5 * 512));
    assert.notDeepEqual(ns.read(15 * 512, 512), new Uint8Array(512));
    const ranges = new DataView(new ArrayBuffer(32));
    ranges.setUint32(4, 100, true);
    ranges.setBigUint64(8, 200n, true);
    ranges.setUint32(20, 1, true);
    ranges.setBigUint64(24, 1000n, true);
    h.mem.poke(BUF, new Uint8Array(ranges.buffer));
    assert.equal(h.submit(1, { opcode: 9, nsid: 1, prp1: BUF, cdw: [1, 4] }).status, 0);
    assert.deepEqual(ns.read(200 * 512, 100 * 512), new Uint8Array(100 * 512));
    assert.deepEqual(ns.read(1000 * 512, 512), new Uint8Array(512));
    assert.notDeepEqual(ns.read(300 * 512, 512), new Uint8Array(512));
    ranges.setBigUint64(24, 32768n, true); // past the end: nothing is deallocated
    h.mem.poke(BUF, new Uint8Array(ranges.buffer));
    ns.write(200 * 512, pattern(512, 1));
    assert.equal(h.submit(1, { opcode: 9, nsid: 1, prp1: BUF, cdw: [1, 4] }).status, 0x80 | DNR);
    assert.deepEqual(ns.read(200 * 512, 512), pattern(512, 1));
    assert.equal(h.submit(1, { opcode: 0, nsid: 1 }).status, 0);
    assert.equal(h.submit(1, { opcode: 0, nsid: 0xffffffff }).status, 0);
  });

  it('deallocating all of a 1 TiB memory namespace 256 times costs what its written chunks cost', () => {
    const h = ioHost({ kind: 'nvme', namespaces: [{ size: 1n << 40n, lbaSize: 512 }] });
    const ns = h.ctrl.namespaces[0]!;
    ns.write(5 << 30, pattern(4096, 2));
    const ranges = new DataView(new ArrayBuffer(256 * 16));
    for (let i = 0; i < 256; i++) {
      ranges.setUint32(i * 16 + 4, 2 ** 31, true); // 1 TiB of 512-byte blocks
      ranges.setBigUint64(i * 16 + 8, 0n, true);
    }
    h.mem.poke(BUF, new Uint8Array(ranges.buffer));
    assert.equal(h.submit(1, { opcode: 9, nsid: 1, prp1: BUF, cdw: [255, 4] }).status, 0);
    assert.deepEqual(ns.read(5 << 30, 4096), new Uint8Array(4096));
  });

  it('a file-backed 4 KiB-block namespace holds what was written, across a reset', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nvme-'));
    try {
      const file = join(dir, 'ns.img');
      const h = ioHost({ kind: 'nvme', namespaces: [{ size: 1n << 22n, lbaSize: 4096, file }] });
      const data = pattern(8192, 5);
      h.mem.poke(BUF, data);
      assert.equal(h.submit(1, rw(1, 3, 2, BUF, BUF + 4096n)).status, 0);
      assert.deepEqual(readFileSync(file).subarray(3 * 4096, 5 * 4096), Buffer.from(data));
      assert.equal(readFileSync(file).length, 1 << 22);
      // a file's deallocated blocks are not reported to read zero, and keep their data
      h.mem.map(BUF + 0x10_0000n, 4096);
      assert.equal(h.admin({ opcode: 6, nsid: 1, prp1: BUF + 0x10_0000n, cdw: [0] }).status, 0);
      assert.equal(h.mem.peek(BUF + 0x10_0000n + 33n, 1)[0], 0x08);
      const range = new DataView(new ArrayBuffer(16));
      range.setUint32(4, 2, true);
      range.setBigUint64(8, 3n, true);
      h.mem.poke(BUF + 0x10_0000n, new Uint8Array(range.buffer));
      assert.equal(
        h.submit(1, { opcode: 9, nsid: 1, prp1: BUF + 0x10_0000n, cdw: [0, 4] }).status,
        0,
      );
      assert.deepEqual(readFileSync(file).subarray(3 * 4096, 5 * 4096), Buffer.from(data));
      h.ctrl.reset();
      assert.equal(h.enable(), 1);
      h.createIoQueue(1);
      h.mem.poke(BUF, new Uint8Array(8192));
      assert.equal(h.submit(1, rw(2, 3, 2, BUF, BUF + 4096n)).status, 0);
      assert.deepEqual(h.mem.peek(BUF, 8192), data);
      h.ctrl.close();
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

describe('NVMe queues, interrupts and resets', () => {
  it('MSI-X per completion queue vector; INTx follows unconsumed entries and INTMS', () => {
    const h = new NvmeHost(MEM_NS);
    h.enable();
    h.createIoQueue(1, 16, 3);
    h.createIoQueue(2, 16, 5);
    h.mem.map(BUF, 4096);
    h.raised.length = 0;
    h.submit(2, rw(2, 0, 1, BUF));
    h.submit(1, rw(2, 0, 1, BUF));
    assert.deepEqual(h.raised, [5, 3]);
    h.queueCmd(1, rw(2, 0, 1, BUF));
    h.ring(1);
    assert.equal(h.intx, true);
    h.ctrl.write(0, NVME_REG.INTMS, u32(1 << 3));
    assert.equal(h.intx, false);
    h.ctrl.write(0, NVME_REG.INTMC, u32(1 << 3));
    assert.equal(h.intx, true);
    h.reap(1);
    assert.equal(h.intx, false);
  });

  it('a full completion queue holds commands until its head doorbell', () => {
    const h = new NvmeHost(MEM_NS);
    h.enable();
    h.createIoQueue(1, 4);
    h.mem.map(BUF, 4096);
    for (let i = 0; i < 3; i++) h.queueCmd(1, rw(2, 0, 1, BUF));
    h.ring(1);
    for (let i = 0; i < 3; i++) h.queueCmd(1, rw(2, 0, 1, BUF));
    h.ring(1); // the CQ (4 entries, 3 usable) is full: these wait
    const first = h.reap(1); // the head doorbell lets them run
    assert.deepEqual(
      first.map((c) => c.cid),
      [1, 2, 3],
    );
    assert.deepEqual(
      h.reap(1).map((c) => c.cid),
      [4, 5, 6],
    );
  });

  it('one doorbell runs a bounded batch; the rest completes in later turns', async () => {
    const h = new NvmeHost(MEM_NS);
    h.enable();
    h.createIoQueue(1, 1024);
    h.mem.map(BUF, 4096);
    for (let i = 0; i < 600; i++) h.queueCmd(1, rw(2, 0, 1, BUF));
    h.ring(1);
    const first = h.reap(1).length;
    assert.ok(first > 0 && first < 600, `${first} ran at once`);
    let all = first;
    for (let i = 0; i < 20 && all < 600; i++) {
      await new Promise((r) => setImmediate(r));
      all += h.reap(1).length;
    }
    assert.equal(all, 600);
  });

  it('a controller reset mid-queue drops queued commands but keeps completed writes', async () => {
    const h = new NvmeHost(MEM_NS);
    h.enable();
    h.createIoQueue(1, 1024);
    h.mem.map(BUF, 4096);
    h.mem.poke(BUF, pattern(512, 7));
    for (let i = 0; i < 600; i++) h.queueCmd(1, rw(1, i, 1, BUF));
    h.ring(1);
    const done = h.reap(1).length;
    h.ctrl.write(0, NVME_REG.CC, u32(0));
    await new Promise((r) => setImmediate(r));
    const ns = h.ctrl.namespaces[0]!;
    for (const lba of [0, done - 1]) assert.deepEqual(ns.read(lba * 512, 512), pattern(512, 7));
    assert.deepEqual(ns.read(599 * 512, 512), new Uint8Array(512));
    assert.equal(h.reg32(NVME_REG.CSTS), 0);
    assert.equal(h.enable(), 1);
    assert.equal(h.admin({ opcode: 0x18 }).status, 0);
  });

  /** A 64 MiB file namespace of 512-byte blocks with a mark at each offset of `marks`. */
  function zeroesHost(dir: string, marks: number[]): NvmeHost {
    const file = join(dir, 'ns.img');
    const h = ioHost({ kind: 'nvme', namespaces: [{ size: 1n << 26n, lbaSize: 512, file }] });
    for (const at of marks) h.ctrl.namespaces[0]!.write(at, pattern(512, 3));
    return h;
  }
  const MiB = 1 << 20;
  /** Write Zeroes of 65536 blocks (32 MiB, the most one command takes) from 1 MiB. */
  const WZ = { opcode: 8, nsid: 1, cdw: [2048, 0, 0xffff] };
  const turn = () => new Promise((r) => setImmediate(r));

  it('a 32 MiB Write Zeroes on a file runs in bounded pieces, in order, not holding other queues', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nvme-'));
    try {
      const last = 33 * MiB - 512;
      const h = zeroesHost(dir, [MiB - 512, MiB, 21 * MiB, last, 33 * MiB]);
      h.createIoQueue(2);
      const ns = h.ctrl.namespaces[0]!;
      h.mem.poke(BUF, pattern(512, 8));
      h.queueCmd(1, WZ);
      h.queueCmd(1, rw(1, last / 512, 1, BUF)); // lands in the zeroed range: must run after
      h.ring(1);
      assert.deepEqual(h.reap(1), []); // the doorbell returned after a bounded share
      assert.deepEqual(ns.read(MiB, 512), new Uint8Array(512));
      assert.deepEqual(ns.read(last, 512), pattern(512, 3));
      // another queue's command completes at its own doorbell meanwhile
      assert.equal(h.submit(2, rw(2, 0, 1, BUF + 4096n)).status, 0);
      const done = [];
      for (let i = 0; i < 50 && done.length < 2; i++) {
        await turn();
        done.push(...h.reap(1));
      }
      assert.deepEqual(
        done.map((c) => [c.cid, c.status, c.sqhd]),
        [
          [1, 0, 1],
          [2, 0, 2],
        ],
      );
      const file = readFileSync(join(dir, 'ns.img'));
      assert.ok(file.subarray(MiB, last).every((b) => b === 0));
      assert.deepEqual(file.subarray(last, last + 512), Buffer.from(pattern(512, 8)));
      assert.deepEqual(file.subarray(MiB - 512, MiB), Buffer.from(pattern(512, 3)));
      assert.deepEqual(file.subarray(33 * MiB, 33 * MiB + 512), Buffer.from(pattern(512, 3)));
      h.ctrl.close();
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('deallocating ranges of held memory runs one range per piece, charged what it clears', async () => {
    const h = ioHost({ kind: 'nvme', namespaces: [{ size: 1n << 26n, lbaSize: 512 }] });
    const ns = h.ctrl.namespaces[0]!;
    ns.write(0, new Uint8Array(32 * MiB).fill(5));
    const ranges = new DataView(new ArrayBuffer(32));
    for (let i = 0; i < 2; i++) {
      ranges.setUint32(i * 16 + 4, 16 * 2048, true); // 16 MiB: the whole budget of a turn
      ranges.setBigUint64(i * 16 + 8, BigInt(i * 16 * 2048), true);
    }
    h.mem.poke(BUF, new Uint8Array(ranges.buffer));
    h.queueCmd(1, { opcode: 9, nsid: 1, prp1: BUF, cdw: [1, 4] });
    h.ring(1);
    assert.deepEqual(h.reap(1), []);
    assert.deepEqual(ns.read(16 * MiB - 512, 512), new Uint8Array(512));
    assert.deepEqual(ns.read(16 * MiB, 512), new Uint8Array(512).fill(5));
    await turn();
    assert.deepEqual(
      h.reap(1).map((c) => c.status),
      [0],
    );
    assert.deepEqual(ns.read(32 * MiB - 512, 512), new Uint8Array(512));
  });

  it('Flush of a file namespace completes after its fsync, off the doorbell, in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nvme-'));
    try {
      const h = zeroesHost(dir, []);
      h.mem.poke(BUF, pattern(512, 4));
      h.queueCmd(1, { opcode: 0, nsid: 0xffffffff });
      h.queueCmd(1, rw(1, 7, 1, BUF));
      h.ring(1);
      assert.deepEqual(h.reap(1), []); // the fsync runs off the engine thread
      const done = [];
      for (let i = 0; i < 1000 && done.length < 2; i++) {
        await new Promise((r) => setTimeout(r, 5));
        done.push(...h.reap(1));
      }
      assert.deepEqual(
        done.map((c) => [c.cid, c.status]),
        [
          [1, 0],
          [2, 0],
        ],
      );
      assert.deepEqual(h.ctrl.namespaces[0]!.read(7 * 512, 512), pattern(512, 4));
      // a reset while the fsync runs: the Flush is never completed
      h.queueCmd(1, { opcode: 0, nsid: 1 });
      h.ring(1);
      h.ctrl.write(0, NVME_REG.CC, u32(0));
      await h.ctrl.namespaces[0]!.flushing(); // a later fsync of the same file
      for (let i = 0; i < 5; i++) await turn();
      assert.equal(h.reg32(NVME_REG.CSTS), 0);
      assert.deepEqual(h.mem.peek(0x38_0000n + 2n * 16n, 16), new Uint8Array(16));
      h.ctrl.close();
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('a reset between the pieces of a Write Zeroes keeps what was zeroed and completes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nvme-'));
    try {
      const h = zeroesHost(dir, [MiB, 33 * MiB - 512]);
      const ns = h.ctrl.namespaces[0]!;
      h.queueCmd(1, WZ);
      h.ring(1);
      h.ctrl.write(0, NVME_REG.CC, u32(0));
      for (let i = 0; i < 5; i++) await turn();
      assert.deepEqual(h.mem.peek(0x38_0000n, 16), new Uint8Array(16)); // I/O CQ 1: nothing posted
      assert.deepEqual(ns.read(MiB, 512), new Uint8Array(512));
      assert.deepEqual(ns.read(33 * MiB - 512, 512), pattern(512, 3));
      assert.equal(h.enable(), 1);
      h.createIoQueue(1);
      const small = { opcode: 8, nsid: 1, cdw: [33 * 2048 - 1, 0, 0] }; // the last block
      assert.equal(h.submit(1, small).status, 0);
      assert.deepEqual(ns.read(33 * MiB - 512, 512), new Uint8Array(512));
      h.ctrl.close();
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('a submission queue the IOMMU cannot read stops the controller with CFS', () => {
    const h = new NvmeHost(MEM_NS);
    h.enable();
    h.createIoQueue(1, 16);
    h.mem.unmap(0x20_0000n + 0x10_0000n, 4096);
    h.ring(1, 1);
    assert.equal(h.reg32(NVME_REG.CSTS), 3);
    h.ctrl.write(0, NVME_REG.CC, u32(0));
    assert.equal(h.reg32(NVME_REG.CSTS), 0);
  });
});
