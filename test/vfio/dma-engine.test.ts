/**
 * The DMA engine in BAR0 (docs/dma-engine.md), programmed the way a C
 * program does it: pwrite/pread on the device fd's BAR0 region. The DMA
 * goes through the IOMMU into the process's memory; refusals show in
 * STATUS/FAULT_IOVA and in the device's fault log.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IOMMU_IOAS_MAP_FLAGS } from '../../src/abi/iommufd.ts';
import {
  VFIO_EXTENSION,
  VfioIommuSpaprRegisterMemory,
  VfioIommuSpaprTceCreate,
  VfioIommuSpaprTceRemove,
  vfioIoctlNumber,
} from '../../src/abi/vfio.ts';
import { PCI } from '../../src/vfio/pci/config-space.ts';
import {
  DMA_BUF_OFFSET,
  DMA_CMD,
  DMA_ENGINE_ID,
  DMA_REG,
  DMA_STATUS,
} from '../../src/vfio/pci/dma-engine.ts';
import { VfioClient } from './client.ts';
import { BAR0, CONFIG, Dev, cdevRig as deviceRig, u64le } from './device-rig.ts';

const IGPU = '0000:00:02.0'; // x86: the DMA engine, alone in group 0
const NIC = '0000:03:00.0'; // x86: no DMA engine
const CX5 = '0000:01:00.0'; // powernv: the DMA engine, group 0 with port 1
const MIB = 1n << 20n;
const IOVA = 0x1000_0000n;
const { READABLE, WRITEABLE } = IOMMU_IOAS_MAP_FLAGS;

/** The engine's one command: returns STATUS. */
class EngineDev extends Dev {
  dma(src: bigint, dst: bigint, count: bigint, toMemory: boolean): number {
    this.set64(DMA_REG.SRC, src);
    this.set64(DMA_REG.DST, dst);
    this.set64(DMA_REG.COUNT, count);
    this.set64(DMA_REG.CMD, DMA_CMD.START | (toMemory ? DMA_CMD.TO_MEMORY : 0n));
    return this.reg32(DMA_REG.STATUS);
  }
}

function cdevRig(bdf = IGPU) {
  const rig = deviceRig(bdf);
  return { ...rig, dev: new EngineDev(rig.c, rig.dev.fd) };
}

describe('DMA engine registers', () => {
  it('ID, buffer geometry, liveness; absent on devices without the spec option', () => {
    const { dev } = cdevRig();
    assert.equal(dev.reg32(DMA_REG.ID), DMA_ENGINE_ID);
    assert.equal(dev.reg32(DMA_REG.BUF_OFFSET), 0x40000);
    assert.equal(dev.reg32(DMA_REG.BUF_SIZE), 0x1000);
    dev.pwrite(BAR0 + BigInt(DMA_REG.LIVENESS), Uint8Array.of(0x78, 0x56, 0x34, 0x12));
    assert.equal(dev.reg32(DMA_REG.LIVENESS), ~0x12345678 >>> 0);
    dev.pwrite(BAR0 + BigInt(DMA_REG.ID), Uint8Array.of(0, 0, 0, 0));
    assert.equal(dev.reg32(DMA_REG.ID), DMA_ENGINE_ID, 'ID is read-only');
    assert.equal(dev.reg32(DMA_REG.STATUS), 0);
    assert.equal(dev.reg32(0x800), 0, 'unimplemented registers read 0');

    const other = cdevRig(NIC).dev;
    assert.equal(other.reg32(DMA_REG.ID), 0);
    other.set64(DMA_REG.CMD, DMA_CMD.START);
    assert.equal(other.reg32(DMA_REG.STATUS), 0, 'plain memory: nothing runs');
  });

  it('the buffer is plain BAR memory; a function reset clears registers and buffer', () => {
    const { c, dev, map } = cdevRig();
    const va = c.mem(MIB);
    assert.equal(map(va, IOVA, MIB, READABLE | WRITEABLE).ret, 0);
    dev.pwrite(BAR0 + DMA_BUF_OFFSET, Uint8Array.of(1, 2, 3));
    assert.deepEqual([...dev.pread(BAR0 + DMA_BUF_OFFSET, 3)], [1, 2, 3]);
    assert.equal(dev.dma(DMA_BUF_OFFSET, IOVA, 3n, true), DMA_STATUS.DONE);
    assert.equal(dev.reg64(DMA_REG.COUNT), 3n);
    assert.equal(c.ioctl(dev.fd, 'VFIO_DEVICE_RESET').ret, 0);
    assert.equal(dev.reg32(DMA_REG.STATUS), 0);
    assert.equal(dev.reg64(DMA_REG.COUNT), 0n);
    assert.deepEqual([...dev.pread(BAR0 + DMA_BUF_OFFSET, 3)], [0, 0, 0]);
  });
});

describe('DMA engine through the IOMMU (x86, cdev + IOAS)', () => {
  it('device → memory and memory → device land in the live pages', () => {
    const { c, dev, map, iommuDev } = cdevRig();
    const va = c.mem(MIB);
    assert.equal(map(va, IOVA, MIB, READABLE | WRITEABLE).ret, 0);
    const pattern = Uint8Array.from({ length: 256 }, (_, i) => (i * 7 + 1) & 0xff);
    dev.pwrite(BAR0 + DMA_BUF_OFFSET + 0x100n, pattern);
    assert.equal(dev.dma(DMA_BUF_OFFSET + 0x100n, IOVA + 0xff0n, 256n, true), DMA_STATUS.DONE);
    assert.deepEqual(c.proc.mm.read(va + 0xff0n, 256), pattern, 'crosses a page boundary');
    assert.equal(dev.reg64(DMA_REG.CMD) & DMA_CMD.START, 0n, 'START reads 0 once done');

    const back = Uint8Array.from({ length: 4096 }, (_, i) => (i ^ 0x5a) & 0xff);
    c.proc.mm.write(va + 0x8000n, back);
    assert.equal(dev.dma(IOVA + 0x8000n, DMA_BUF_OFFSET, 4096n, false), DMA_STATUS.DONE);
    assert.deepEqual(dev.pread(BAR0 + DMA_BUF_OFFSET, 4096), back);
    assert.deepEqual(iommuDev.faults, []);
  });

  it('an unmapped IOVA: FAULT + FAULT_IOVA, a recorded fault, nothing transferred', () => {
    const { c, dev, map, iommuDev } = cdevRig();
    const va = c.mem(MIB);
    assert.equal(map(va, IOVA, MIB, READABLE | WRITEABLE).ret, 0);
    dev.pwrite(BAR0 + DMA_BUF_OFFSET, new Uint8Array(0x1000).fill(0xee));
    // the last 0x800 bytes run past the mapping
    const st = dev.dma(DMA_BUF_OFFSET, IOVA + MIB - 0x800n, 0x1000n, true);
    assert.equal(st, DMA_STATUS.DONE | DMA_STATUS.FAULT);
    assert.equal(dev.reg64(DMA_REG.FAULT_IOVA), IOVA + MIB);
    assert.deepEqual(iommuDev.faults, [{ device: IGPU, iova: IOVA + MIB, access: 'write' }]);
    assert.ok(c.proc.mm.read(va + MIB - 0x800n, 0x800).every((b) => b === 0));
    // the next good command clears the error
    assert.equal(dev.dma(DMA_BUF_OFFSET, IOVA, 16n, true), DMA_STATUS.DONE);
    assert.equal(dev.reg64(DMA_REG.FAULT_IOVA), 0n);
  });

  it('the wrong direction for the mapping faults: read-only forbids device writes', () => {
    const { c, dev, map, iommuDev } = cdevRig();
    const ro = c.mem(MIB);
    const wo = c.mem(MIB);
    assert.equal(map(ro, IOVA, MIB, READABLE).ret, 0);
    assert.equal(map(wo, IOVA + MIB, MIB, WRITEABLE).ret, 0);
    assert.equal(dev.dma(DMA_BUF_OFFSET, IOVA, 8n, true), DMA_STATUS.DONE | DMA_STATUS.FAULT);
    assert.equal(dev.dma(IOVA, DMA_BUF_OFFSET, 8n, false), DMA_STATUS.DONE);
    assert.equal(
      dev.dma(IOVA + MIB, DMA_BUF_OFFSET, 8n, false),
      DMA_STATUS.DONE | DMA_STATUS.FAULT,
    );
    assert.equal(dev.reg64(DMA_REG.FAULT_IOVA), IOVA + MIB);
    assert.equal(dev.dma(DMA_BUF_OFFSET, IOVA + MIB, 8n, true), DMA_STATUS.DONE);
    assert.deepEqual(
      iommuDev.faults.map((f) => f.access),
      ['write', 'read'],
    );
  });

  it('bad commands: INVALID, nothing transferred, no fault', () => {
    const { c, dev, map, iommuDev } = cdevRig();
    const va = c.mem(MIB);
    assert.equal(map(va, IOVA, MIB, READABLE | WRITEABLE).ret, 0);
    const INVALID = DMA_STATUS.DONE | DMA_STATUS.INVALID;
    assert.equal(dev.dma(DMA_BUF_OFFSET, IOVA, 0x1001n, true), INVALID, 'count > buffer');
    assert.equal(dev.dma(DMA_BUF_OFFSET + 0xf00n, IOVA, 0x101n, true), INVALID, 'past the end');
    assert.equal(dev.dma(DMA_BUF_OFFSET - 1n, IOVA, 1n, true), INVALID, 'before the buffer');
    assert.equal(dev.dma(IOVA, 0n, 1n, false), INVALID, 'destination not in the buffer');
    assert.equal(dev.dma(DMA_BUF_OFFSET, IOVA, (1n << 64n) - 1n, true), INVALID, 'huge count');
    dev.set64(DMA_REG.CMD, DMA_CMD.START | 0x4n);
    assert.equal(dev.reg32(DMA_REG.STATUS), INVALID, 'reserved CMD bit');
    assert.equal(dev.dma(DMA_BUF_OFFSET, IOVA, 0n, true), DMA_STATUS.DONE, 'count 0');
    assert.deepEqual(iommuDev.faults, []);
  });

  it('with memory decode off the registers are unreachable (EIO), as any BAR', () => {
    const { c, dev } = cdevRig();
    const cmd = dev.pread(CONFIG + BigInt(PCI.COMMAND), 2);
    cmd[0]! &= ~PCI.COMMAND_MEMORY;
    dev.pwrite(CONFIG + BigInt(PCI.COMMAND), cmd);
    const addr = c.proc.scratch(u64le(DMA_CMD.START));
    assert.equal(c.proc.write(dev.fd, addr, 8), -1); // plain write: offset 0, BAR0
    assert.equal(c.proc.errno, 'EIO');
  });
});

describe('DMA engine behind SPAPR (powernv, legacy container)', () => {
  it('DMA through a 64 KiB-page DDW at 1<<59 reaches the registered memory', () => {
    const c = new VfioClient({ host: 'powernv', personality: { vfioContainer: 'legacy' } });
    const abi = c.kernel.abi;
    const container = c.open('/dev/vfio/vfio').ret;
    const group = c.open('/dev/vfio/0').ret;
    assert.equal(c.setContainer(group, container).ret, 0);
    const v2 = BigInt(VFIO_EXTENSION.SPAPR_TCE_v2_IOMMU);
    assert.equal(c.ioctl(container, 'VFIO_SET_IOMMU', v2).ret, 0);
    const size = 2n * MIB;
    // 64 KiB TCEs need memory backed by pages at least that large
    const ram = c.proc.mm.mmap({ length: size, prot: { read: true, write: true }, hugetlb: true });
    const reg = c.proc.call(
      container,
      vfioIoctlNumber(abi, 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY'),
      VfioIommuSpaprRegisterMemory,
      { argsz: 24, flags: 0, vaddr: ram, size },
    );
    assert.equal(reg.ret, 0, reg.errno);
    const cr = c.proc.call(
      container,
      vfioIoctlNumber(abi, 'VFIO_IOMMU_SPAPR_TCE_CREATE'),
      VfioIommuSpaprTceCreate,
      { argsz: 40, page_shift: 16, window_size: 1n << 30n, levels: 1 },
    );
    assert.equal(cr.ret, 0, cr.errno);
    const ddw = cr.out.start_addr;
    assert.equal(ddw, 1n << 59n);
    const rm = c.proc.call(
      container,
      vfioIoctlNumber(abi, 'VFIO_IOMMU_SPAPR_TCE_REMOVE'),
      VfioIommuSpaprTceRemove,
      { argsz: 16, start_addr: 0n },
    );
    assert.equal(rm.ret, 0, rm.errno);
    assert.equal(c.mapDma(container, ram, ddw, size).ret, 0);

    const fd = c.getDeviceFd(group, CX5).ret;
    assert.ok(fd >= 0);
    const dev = new EngineDev(c, fd);
    dev.enableMemory();
    assert.equal(dev.reg32(DMA_REG.ID), DMA_ENGINE_ID);
    const msg = new TextEncoder().encode('through the TCE table');
    dev.pwrite(BAR0 + DMA_BUF_OFFSET, msg);
    assert.equal(
      dev.dma(DMA_BUF_OFFSET, ddw + 0x1_0010n, BigInt(msg.length), true),
      DMA_STATUS.DONE,
    );
    assert.deepEqual(c.proc.mm.read(ram + 0x1_0010n, msg.length), msg);
    c.proc.mm.write(ram + 0x2_0000n, Uint8Array.of(9, 8, 7));
    assert.equal(dev.dma(ddw + 0x2_0000n, DMA_BUF_OFFSET + 0x10n, 3n, false), DMA_STATUS.DONE);
    assert.deepEqual([...dev.pread(BAR0 + DMA_BUF_OFFSET + 0x10n, 3)], [9, 8, 7]);
    // the default window is gone: bus address 0 faults
    assert.equal(dev.dma(DMA_BUF_OFFSET, 0x1000n, 1n, true), DMA_STATUS.DONE | DMA_STATUS.FAULT);
    assert.equal(dev.reg64(DMA_REG.FAULT_IOVA), 0x1000n);
  });
});
