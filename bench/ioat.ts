/**
 * The ioat model's memcpy rate (docs/devices.md): the x86 preset's ioat
 * function bound through iommufd, one self-looping 4 KiB copy descriptor as
 * the kernel selftest's driver builds it, and doorbells of 256 descriptors
 * (1 MiB, one slice: the doorbell write returns with the chain DONE). Each
 * descriptor is fetched and copied through the IOMMU (intel domain, 4 KiB
 * pages). The reference is a plain copy of the same 256 × 4 KiB between two
 * buffers, in the same run. Both are timed in CPU time of this process
 * (median of 7 batches of 16 MiB): on a shared machine wall time mostly
 * measures how often the scheduler preempts each batch.
 */
import { IOMMU_IOAS_MAP_FLAGS } from '../src/abi/iommufd.ts';
import { IOAT_CHANSTS, IOAT_REG } from '../src/vfio/pci/ioat.ts';
import { BAR0, cdevRig } from '../test/vfio/device-rig.ts';
import { median } from './harness.ts';

const IOAT = '0000:00:04.0';
const IOVA = 0x100_0000n;
const COPY = 4096;
const PER_DOORBELL = 256;

export interface IoatResult {
  /** CPU nanoseconds per 4 KiB descriptor through the model. */
  modelNs: number;
  /** CPU nanoseconds per plain 4 KiB copy. */
  plainNs: number;
}

/** Median CPU nanoseconds (user + system) of one of the `n` operations `batch(n)` performs. */
function cpuNsPerOp(batch: (n: number) => void, n: number): number {
  batch(n);
  const per: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t = process.cpuUsage();
    batch(n);
    const used = process.cpuUsage(t);
    per.push(((used.user + used.system) * 1e3) / n);
  }
  return median(per);
}

export function benchIoat(): IoatResult {
  const { c, dev, map } = cdevRig(IOAT);
  const { READABLE, WRITEABLE } = IOMMU_IOAS_MAP_FLAGS;
  const va = c.mem(0x10000n);
  if (map(va, IOVA, 0x10000n, READABLE | WRITEABLE).ret !== 0) throw new Error('IOAS_MAP');
  const desc = new Uint8Array(64);
  const d = new DataView(desc.buffer);
  d.setUint32(0, COPY, true);
  d.setBigUint64(8, IOVA + 0x1000n, true); // src
  d.setBigUint64(16, IOVA + 0x8000n, true); // dst
  d.setBigUint64(24, IOVA, true); // next: itself
  c.proc.mm.write(va, desc);
  const reg = (off: number, bytes: number, v: bigint) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    dev.pwrite(BAR0 + BigInt(off), b.subarray(0, bytes));
  };
  reg(IOAT_REG.CHANCMD, 1, 0x20n); // RESET
  reg(IOAT_REG.CHAINADDR, 8, IOVA);
  let count = 0;
  const model = (n: number) => {
    for (let i = 0; i < n; i++) {
      count = (count + PER_DOORBELL) & 0xffff;
      reg(IOAT_REG.DMACOUNT, 2, BigInt(count));
      if ((dev.reg64(IOAT_REG.CHANSTS) & IOAT_CHANSTS.STATUS_MASK) !== BigInt(IOAT_CHANSTS.DONE)) {
        throw new Error(`ioat: CHANSTS 0x${dev.reg64(IOAT_REG.CHANSTS).toString(16)}`);
      }
    }
  };
  const src = new Uint8Array(COPY).fill(0x78);
  const dst = new Uint8Array(COPY);
  const plain = (n: number) => {
    for (let i = 0; i < n * PER_DOORBELL; i++) dst.set(src);
  };
  return {
    modelNs: cpuNsPerOp(model, 16) / PER_DOORBELL,
    plainNs: cpuNsPerOp(plain, 16) / PER_DOORBELL,
  };
}
