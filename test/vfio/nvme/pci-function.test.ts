/**
 * The NVMe controller behind the x86 preset's NVMe function, driven as a
 * program drives it: a legacy type1 container, the device fd of group 12,
 * BAR0 registers and doorbells through pread/pwrite, queues and buffers in
 * the process's memory mapped with MAP_DMA. A PRP at an unmapped IOVA is a
 * Data Transfer Error and an IOMMU fault on the device; VFIO_DEVICE_RESET
 * resets the controller and keeps the namespace's data.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { vfioPciRegionOffset } from '../../../src/vfio/pci/abi.ts';
import { NVME_REG } from '../../../src/vfio/pci/nvme/abi.ts';
import { VfioClient } from '../client.ts';

const BDF = '0000:02:00.0';
const BAR0 = vfioPciRegionOffset(0);
const IOVA = 0x10_0000n;
const LEN = 0x10_0000n;
const ASQ = IOVA;
const ACQ = IOVA + 0x1000n;
const SQ1 = IOVA + 0x2000n;
const CQ1 = IOVA + 0x3000n;
const DATA = IOVA + 0x8000n;

const u32 = (v: number) => new Uint8Array(new Uint32Array([v >>> 0]).buffer);
const u64 = (v: bigint) => new Uint8Array(new BigUint64Array([v]).buffer);

function rig() {
  const c = new VfioClient();
  const container = c.open('/dev/vfio/vfio').ret;
  const group = c.open('/dev/vfio/12').ret;
  assert.equal(c.setContainer(group, container).ret, 0);
  assert.equal(c.ioctl(container, 'VFIO_SET_IOMMU', 1n).ret, 0);
  const fd = c.getDeviceFd(group, BDF).ret;
  assert.ok(fd >= 0);
  const va = c.mem(LEN);
  assert.equal(c.mapDma(container, va, IOVA, LEN).ret, 0);
  const file = c.proc.file(fd)!;
  const pread = (off: bigint, n: number) => file.read!(c.proc, n, off);
  const pwrite = (off: bigint, d: Uint8Array) => file.write!(c.proc, d, off);
  const reg32 = (off: number) =>
    new DataView(pread(BAR0 + BigInt(off), 4).buffer).getUint32(0, true);
  const mem = (iova: bigint, n: number) => c.proc.mm.read(va + (iova - IOVA), n);
  const poke = (iova: bigint, d: Uint8Array) => c.proc.mm.write(va + (iova - IOVA), d);
  const tails = new Map<number, number>();
  const heads = new Map<number, number>();
  /** Submit on queue `qid` (SQ at `sq`, CQ at `cq`, 16 entries); the completion's status field. */
  const submit = (qid: number, sq: bigint, cq: bigint, cmd: Uint8Array): number => {
    const tail = tails.get(qid) ?? 0;
    poke(sq + BigInt(tail * 64), cmd);
    tails.set(qid, (tail + 1) % 16);
    pwrite(BAR0 + BigInt(NVME_REG.DOORBELL + qid * 8), u32((tail + 1) % 16));
    const head = heads.get(qid) ?? 0;
    const cqe = new DataView(mem(cq + BigInt(head * 16), 16).buffer);
    heads.set(qid, (head + 1) % 16);
    pwrite(BAR0 + BigInt(NVME_REG.DOORBELL + qid * 8 + 4), u32((head + 1) % 16));
    return cqe.getUint16(14, true) >> 1;
  };
  const sqe = (op: number, nsid: number, prp1: bigint, cdw: number[], prp2 = 0n) => {
    const b = new Uint8Array(64);
    const v = new DataView(b.buffer);
    v.setUint32(0, op | (7 << 16), true);
    v.setUint32(4, nsid, true);
    v.setBigUint64(24, prp1, true);
    v.setBigUint64(32, prp2, true);
    cdw.forEach((d, i) => {
      v.setUint32(40 + 4 * i, d >>> 0, true);
    });
    return b;
  };
  const enable = () => {
    tails.clear();
    heads.clear();
    poke(ACQ, new Uint8Array(0x1000));
    poke(CQ1, new Uint8Array(0x1000));
    pwrite(BAR0 + BigInt(NVME_REG.AQA), u32(0x000f000f));
    pwrite(BAR0 + BigInt(NVME_REG.ASQ), u64(ASQ));
    pwrite(BAR0 + BigInt(NVME_REG.ACQ), u64(ACQ));
    pwrite(BAR0 + BigInt(NVME_REG.CC), u32(0x00460001));
    assert.equal(reg32(NVME_REG.CSTS), 1);
    assert.equal(submit(0, ASQ, ACQ, sqe(5, 0, CQ1, [(15 << 16) | 1, 3])), 0);
    assert.equal(submit(0, ASQ, ACQ, sqe(1, 0, SQ1, [(15 << 16) | 1, (1 << 16) | 1])), 0);
  };
  const iommuDev = c.kernel.host.devices.get(BDF)!.device;
  return { c, fd, reg32, mem, poke, submit, sqe, enable, iommuDev };
}

describe('NVMe function (x86 0000:02:00.0) through VFIO', () => {
  it('writes and reads through the IOMMU; an unmapped PRP faults; a reset keeps the data', () => {
    const r = rig();
    assert.equal(r.reg32(NVME_REG.VS), 0x00010400);
    r.enable();
    const data = new Uint8Array(8192).map((_, i) => (i * 13) & 0xff);
    r.poke(DATA, data);
    assert.equal(r.submit(1, SQ1, CQ1, r.sqe(1, 1, DATA, [64, 0, 15], DATA + 0x1000n)), 0);
    r.poke(DATA, new Uint8Array(8192));
    assert.equal(r.submit(1, SQ1, CQ1, r.sqe(2, 1, DATA, [64, 0, 15], DATA + 0x1000n)), 0);
    assert.deepEqual(r.mem(DATA, 8192), data);

    const hole = IOVA + LEN + 0x10000n;
    const faults = r.iommuDev.faults.length;
    assert.equal(r.submit(1, SQ1, CQ1, r.sqe(2, 1, hole, [64, 0, 0])), 0x04 | 0x4000);
    assert.equal(r.iommuDev.faults.length, faults + 1);
    assert.equal(r.iommuDev.faults.at(-1)!.iova, hole);

    assert.equal(r.c.ioctl(r.fd, 'VFIO_DEVICE_RESET').ret, 0);
    assert.equal(r.reg32(NVME_REG.CSTS), 0);
    assert.equal(r.reg32(NVME_REG.CC), 0);
    r.enable();
    r.poke(DATA, new Uint8Array(8192));
    assert.equal(r.submit(1, SQ1, CQ1, r.sqe(2, 1, DATA, [64, 0, 15], DATA + 0x1000n)), 0);
    assert.deepEqual(r.mem(DATA, 8192), data);
  });
});
