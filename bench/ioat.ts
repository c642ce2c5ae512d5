/**
 * The ioat model's memcpy rate (docs/devices.md): the x86 preset's ioat
 * function bound through iommufd, one self-looping 4 KiB copy descriptor as
 * the kernel selftest's driver builds it, and doorbells of 256 descriptors
 * (1 MiB, one slice: the doorbell write returns with the chain DONE). Each
 * descriptor is fetched and copied through the IOMMU (intel domain, 4 KiB
 * pages). The reference is a plain copy of the same 256 × 4 KiB between two
 * buffers, in the same run.
 */
import { IOMMU_IOAS_MAP_FLAGS } from '../src/abi/iommufd.ts';
import { IOAT_CHANSTS, IOAT_REG } from '../src/vfio/pci/ioat.ts';
import { BAR0, cdevRig } from '../test/vfio/device-rig.ts';
import { nsPerOp } from './harness.ts';

const IOAT = '0000:00:04.0';
const IOVA = 0x100_0000n;
const COPY = 4096;
const PER_DOORBELL = 256;

export interface IoatResult {
  /** Nanoseconds per 4 KiB descriptor through the model. */
  modelNs: number;
  /** Nanoseconds per plain 4 KiB copy. */
  plainNs: number;
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
  const opts = { minMs: 400, warmup: 2 };
  return {
    modelNs: nsPerOp(model, 4, opts) / PER_DOORBELL,
    plainNs: nsPerOp(plain, 4, opts) / PER_DOORBELL,
  };
}
