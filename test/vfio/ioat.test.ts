/**
 * The ioat (CBDMA) model (src/vfio/pci/ioat.ts): every register rule and
 * error path, driven directly with a fake IOMMU (one mapped IOVA range,
 * everything else faults) and an interrupt recorder; then through a
 * vfio-pci function for what the function adds (config dwords, BAR layout,
 * function reset). The real driver (the kernel selftests' lib/drivers/ioat)
 * runs in test/vfio/kernel-selftests.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as turn } from 'node:timers/promises';
import { VFIO_EXTENSION } from '../../src/abi/vfio.ts';
import { x86 } from '../../src/host/topology/presets.ts';
import { DmaFaultError } from '../../src/iommu/device.ts';
import { vfioPciRegionOffset } from '../../src/vfio/pci/abi.ts';
import { BarMemory } from '../../src/vfio/pci/bar-memory.ts';
import { PCI } from '../../src/vfio/pci/config-space.ts';
import { VfioPciDevice } from '../../src/vfio/pci/device.ts';
import type { DmaPort } from '../../src/vfio/pci/device-model.ts';
import {
  IOAT_CFG,
  IOAT_CHANCMD,
  IOAT_CHANCTRL,
  IOAT_CHANERR,
  IOAT_CHANSTS,
  IOAT_DESC_CTL,
  IOAT_INTRCTRL,
  IOAT_REG,
  Ioat,
} from '../../src/vfio/pci/ioat.ts';
import { Dev } from './device-rig.ts';
import { GIB, MIB, SpaprClient } from './spapr-client.ts';

const IOVA = 0x10_0000n;
const SIZE = 0x10_0000;
const UNMAPPED = 0x4000_0000n;
const { ACTIVE, DONE, SUSPENDED, HALTED } = IOAT_CHANSTS;
const REARM = IOAT_CHANCTRL.INT_REARM | IOAT_CHANCTRL.ANY_ERR_ABORT_EN;

/** IOVAs [IOVA, IOVA + SIZE) mapped onto `mem`; everything else faults. Counts descriptor fetches. */
class FakeIommu implements DmaPort {
  readonly mem = new Uint8Array(SIZE);
  faults: bigint[] = [];
  fetches = 0;
  broken = false;

  dmaRead(iova: bigint, length: number): Uint8Array {
    if (length === 64) this.fetches++;
    return this.mem.slice(...this.range(iova, length, 'read'));
  }

  dmaWrite(iova: bigint, data: Uint8Array): void {
    this.mem.set(data, this.range(iova, data.length, 'write')[0]);
  }

  private range(iova: bigint, n: number, access: 'read' | 'write'): [number, number] {
    if (this.broken) throw new Error('memory gone');
    if (iova < IOVA || iova + BigInt(n) > IOVA + BigInt(SIZE)) {
      this.faults.push(iova);
      throw new DmaFaultError({ device: 'ioat', iova, access });
    }
    const off = Number(iova - IOVA);
    return [off, off + n];
  }
}

interface Desc {
  size: number;
  ctl?: number;
  src: bigint;
  dst: bigint;
  next: bigint;
}

function rig(xfercap?: number) {
  const port = new FakeIommu();
  const raised: number[] = [];
  const ioat = new Ioat(xfercap === undefined ? { kind: 'ioat' } : { kind: 'ioat', xfercap }, {
    spec: x86.devices[0]!,
    bars: new Map([[0, new BarMemory(0x4000n)]]),
    dma: port,
    irq: { raise: (v) => raised.push(v), intx: () => assert.fail('ioat drives no INTx') },
  });
  const w = (reg: number, bytes: number, v: bigint | number) => {
    const b = new Uint8Array(bytes);
    for (let i = 0; i < bytes; i++) b[i] = Number((BigInt(v) >> BigInt(8 * i)) & 0xffn);
    ioat.write(0, reg, b);
  };
  const r = (reg: number, bytes: number) =>
    ioat.read(0, reg, bytes).reduceRight((a, b) => (a << 8n) | BigInt(b), 0n);
  const put = (iova: bigint, d: Desc) => {
    const v = new DataView(port.mem.buffer, Number(iova - IOVA), 64);
    v.setUint32(0, d.size, true);
    v.setUint32(4, d.ctl ?? 0, true);
    v.setBigUint64(8, d.src, true);
    v.setBigUint64(16, d.dst, true);
    v.setBigUint64(24, d.next, true);
  };
  const fill = (iova: bigint, n: number, byte: number) =>
    port.mem.fill(byte, Number(iova - IOVA), Number(iova - IOVA) + n);
  const at = (iova: bigint, n: number) =>
    port.mem.slice(Number(iova - IOVA), Number(iova - IOVA) + n);
  const status = () => Number(r(IOAT_REG.CHANSTS, 8) & IOAT_CHANSTS.STATUS_MASK);
  const completedAt = () => r(IOAT_REG.CHANSTS, 8) & ~0x3fn;
  const chanerr = () => Number(r(IOAT_REG.CHANERR, 4));
  /** The selftest's start: CHAINADDR, CHANCTRL, DMACOUNT. */
  const start = (chain: bigint, count: number, ctrl = REARM) => {
    w(IOAT_REG.CHAINADDR, 8, chain);
    w(IOAT_REG.CHANCTRL, 2, ctrl);
    w(IOAT_REG.DMACOUNT, 2, count);
  };
  const resetChannel = () => w(IOAT_REG.CHANCMD, 1, IOAT_CHANCMD.RESET);
  /** Let scheduled slices run until the channel leaves ACTIVE. */
  const settle = async () => {
    while (status() === ACTIVE) await turn();
  };
  return {
    ioat,
    port,
    raised,
    w,
    r,
    put,
    fill,
    at,
    status,
    completedAt,
    chanerr,
    start,
    resetChannel,
    settle,
  };
}

const DESC = IOVA;
const SRC = IOVA + 0x1000n;
const DST = IOVA + 0x3000n;

describe('ioat registers', () => {
  it('identity: CHANCNT 1, XFERCAP (12 by default, configurable), VER 0x33, DMA_COMP v2', () => {
    const { r } = rig();
    assert.equal(r(IOAT_REG.CHANCNT, 1), 1n);
    assert.equal(r(IOAT_REG.XFERCAP, 1), 12n);
    assert.equal(r(IOAT_REG.VER, 1), 0x33n);
    assert.equal(r(IOAT_REG.DMA_COMP, 2), 2n);
    assert.equal(rig(14).r(IOAT_REG.XFERCAP, 1), 14n);
  });

  it('power-on: channel HALTED, no completed descriptor, no error; unimplemented bytes read 0', () => {
    const { r, status, chanerr } = rig();
    assert.equal(status(), HALTED);
    assert.equal(r(IOAT_REG.CHANSTS, 8), BigInt(HALTED));
    assert.equal(chanerr(), 0);
    assert.equal(r(0x40, 4), 0n);
    assert.equal(r(0x800, 8), 0n);
  });

  it('read-only registers ignore writes; INTRCTRL keeps MASTER_INT_EN and MSIX_VECTOR_CONTROL only', () => {
    const { w, r, status } = rig();
    w(IOAT_REG.CHANCNT, 2, 0xffff);
    w(IOAT_REG.VER, 1, 0);
    w(IOAT_REG.CHANSTS, 8, 0n);
    assert.equal(r(IOAT_REG.CHANCNT, 2), 0x0c01n);
    assert.equal(r(IOAT_REG.VER, 1), 0x33n);
    assert.equal(status(), HALTED);
    w(IOAT_REG.INTRCTRL, 1, 0xff);
    assert.equal(r(IOAT_REG.INTRCTRL, 1), 0x09n);
  });

  it('CHANCMD reads 0: RESET is done when the write returns; the channel is HALTED', () => {
    const { w, r, status, put, start, resetChannel } = rig();
    put(DESC, { size: 8, src: SRC, dst: DST, next: DESC });
    start(DESC, 1);
    assert.equal(status(), DONE);
    resetChannel();
    assert.equal(r(IOAT_REG.CHANCMD, 1), 0n);
    assert.equal(status(), HALTED);
    assert.equal(r(IOAT_REG.CHANSTS, 8), BigInt(HALTED), 'completed address cleared');
    assert.equal(r(IOAT_REG.CHANCTRL, 2), 0n);
    assert.equal(r(IOAT_REG.DMACOUNT, 2), 0n);
    w(IOAT_REG.CHANCMD, 1, 0x01); // START (a v1 command): nothing
    assert.equal(status(), HALTED);
  });
});

describe('ioat copies', () => {
  it('one descriptor: copied through the IOMMU, DONE with its address in CHANSTS', () => {
    const { start, put, fill, at, status, completedAt, chanerr, raised } = rig();
    fill(SRC, 4096, 0x78);
    fill(DST, 4096, 0x79);
    put(DESC, { size: 4096, src: SRC, dst: DST, next: DESC });
    start(DESC, 1);
    assert.equal(status(), DONE);
    assert.equal(completedAt(), DESC);
    assert.deepEqual(at(DST, 4096), new Uint8Array(4096).fill(0x78));
    assert.equal(chanerr(), 0);
    assert.deepEqual(raised, [], 'no int_en: no interrupt');
  });

  it('DMACOUNT is a running count: a chain that loops runs exactly that many descriptors', () => {
    const { start, put, port, fill, at, status, completedAt, w } = rig();
    const d = [DESC, DESC + 0x40n, DESC + 0x80n];
    for (let i = 0; i < 3; i++) {
      fill(SRC + BigInt(i * 16), 16, 0xa0 + i);
      put(d[i]!, {
        size: 16,
        src: SRC + BigInt(i * 16),
        dst: DST + BigInt(i * 16),
        next: d[(i + 1) % 3]!,
      });
    }
    start(d[0]!, 2);
    assert.equal(status(), DONE);
    assert.equal(port.fetches, 2);
    assert.equal(completedAt(), d[1]);
    assert.deepEqual(at(DST + 32n, 16), new Uint8Array(16), 'the third has not run');
    // ringing again without a new CHAINADDR continues the chain, round the loop
    w(IOAT_REG.DMACOUNT, 2, 5);
    assert.equal(status(), DONE);
    assert.equal(port.fetches, 5);
    assert.equal(completedAt(), d[1], 'descriptors 3, 4, 5 = d2, d0, d1');
    assert.deepEqual(at(DST + 32n, 16), new Uint8Array(16).fill(0xa2));
    // the same count again: nothing to do, still DONE
    w(IOAT_REG.DMACOUNT, 2, 5);
    assert.equal(port.fetches, 5);
    assert.equal(status(), DONE);
  });

  it('a new CHAINADDR restarts the count: the selftest start after SUSPEND runs again', () => {
    const { start, put, port, status, w } = rig();
    put(DESC, { size: 8, src: SRC, dst: DST, next: DESC });
    start(DESC, 1);
    w(IOAT_REG.CHANCMD, 1, IOAT_CHANCMD.SUSPEND);
    assert.equal(status(), SUSPENDED);
    start(DESC, 1);
    assert.equal(status(), DONE);
    assert.equal(port.fetches, 2);
  });

  it('a null descriptor copies nothing and completes', () => {
    const { start, put, fill, at, status, completedAt } = rig();
    fill(SRC, 8, 1);
    put(DESC, { size: 1, ctl: IOAT_DESC_CTL.NULL | (0x87 << 24), src: SRC, dst: DST, next: DESC });
    start(DESC, 1);
    assert.equal(status(), DONE);
    assert.equal(completedAt(), DESC);
    assert.deepEqual(at(DST, 8), new Uint8Array(8));
  });

  it('compl_write: CHANSTS is written to CHANCMP through the IOMMU', () => {
    const { start, put, w, at, status } = rig();
    const cmp = IOVA + 0x8000n;
    w(IOAT_REG.CHANCMP, 8, cmp);
    put(DESC, { size: 8, ctl: IOAT_DESC_CTL.COMPL_WRITE, src: SRC, dst: DST, next: DESC });
    start(DESC, 1);
    assert.equal(status(), DONE);
    const v = new DataView(at(cmp, 8).buffer).getBigUint64(0, true);
    assert.equal(v, DESC | BigInt(DONE));
  });

  it('DMACOUNT wrap: a count below the completed one runs 65535 descriptors, in slices', async () => {
    const { start, put, port, status, w, settle, chanerr } = rig();
    put(DESC, { size: 8, src: SRC, dst: DST, next: DESC });
    start(DESC, 2);
    assert.equal(port.fetches, 2);
    w(IOAT_REG.DMACOUNT, 2, 1); // 1 - 2 mod 2^16
    assert.equal(status(), ACTIVE, 'CHANSTS after the doorbell: not the older DONE');
    assert.ok(port.fetches < 2 + 65535, 'the write returned before the whole chain ran');
    await settle();
    assert.equal(status(), DONE);
    assert.equal(port.fetches, 2 + 65535);
    assert.equal(chanerr(), 0);
  });

  it('SUSPEND stops a running chain between descriptors; DMACOUNT resumes it', async () => {
    const { start, put, port, status, w, settle } = rig();
    put(DESC, { size: 8, src: SRC, dst: DST, next: DESC });
    start(DESC, 0xffff);
    assert.equal(status(), ACTIVE);
    w(IOAT_REG.CHANCMD, 1, IOAT_CHANCMD.SUSPEND);
    assert.equal(status(), SUSPENDED);
    const ran = port.fetches;
    await turn();
    await turn();
    assert.equal(port.fetches, ran, 'no slice runs after SUSPEND');
    w(IOAT_REG.DMACOUNT, 2, 0xffff);
    await settle();
    assert.equal(status(), DONE);
    assert.equal(port.fetches, 0xffff);
  });

  it('RESET and a function reset drop a running chain', async () => {
    for (const how of ['RESET', 'reset()'] as const) {
      const { ioat, start, put, port, status, resetChannel } = rig();
      put(DESC, { size: 8, src: SRC, dst: DST, next: DESC });
      start(DESC, 0xffff);
      if (how === 'RESET') resetChannel();
      else ioat.reset();
      const ran = port.fetches;
      await turn();
      await turn();
      assert.equal(port.fetches, ran, how);
      assert.equal(status(), HALTED, how);
    }
  });

  it('DMACOUNT written while the chain runs moves its end', async () => {
    const { start, put, port, status, w, settle } = rig();
    put(DESC, { size: 8, src: SRC, dst: DST, next: DESC });
    start(DESC, 300);
    assert.equal(status(), ACTIVE, 'one slice is 256 descriptors');
    w(IOAT_REG.DMACOUNT, 2, 260);
    await settle();
    assert.equal(status(), DONE);
    assert.equal(port.fetches, 260);
  });

  it('SUSPEND leaves a HALTED channel HALTED', () => {
    const { status, w } = rig();
    w(IOAT_REG.CHANCMD, 1, IOAT_CHANCMD.SUSPEND);
    assert.equal(status(), HALTED);
  });

  it('ABORT halts the channel', () => {
    const { start, put, status, w } = rig();
    put(DESC, { size: 8, src: SRC, dst: DST, next: DESC });
    start(DESC, 1);
    w(IOAT_REG.CHANCMD, 1, IOAT_CHANCMD.ABORT);
    assert.equal(status(), HALTED);
  });
});

describe('ioat errors: HALTED with CHANERR, no completion interrupt', () => {
  const cases: [string, number, (p: ReturnType<typeof rig>) => void][] = [
    [
      'source IOVA unmapped',
      IOAT_CHANERR.SRC_ADDR_ERR,
      (p) =>
        p.put(DESC, { size: 4096, ctl: IOAT_DESC_CTL.INT_EN, src: UNMAPPED, dst: DST, next: DESC }),
    ],
    [
      'destination IOVA unmapped',
      IOAT_CHANERR.DEST_ADDR_ERR,
      (p) =>
        p.put(DESC, { size: 4096, ctl: IOAT_DESC_CTL.INT_EN, src: SRC, dst: UNMAPPED, next: DESC }),
    ],
    [
      'destination runs off the mapping',
      IOAT_CHANERR.DEST_ADDR_ERR,
      (p) => p.put(DESC, { size: 4096, src: SRC, dst: IOVA + BigInt(SIZE) - 8n, next: DESC }),
    ],
    [
      'size above 2^XFERCAP',
      IOAT_CHANERR.LENGTH_ERR,
      (p) => p.put(DESC, { size: 4097, src: SRC, dst: DST, next: DESC }),
    ],
    [
      'an op other than copy',
      IOAT_CHANERR.CONTROL_ERR,
      (p) => p.put(DESC, { size: 8, ctl: 0x87 << 24, src: SRC, dst: DST, next: DESC }),
    ],
    [
      'next descriptor not 64-byte aligned',
      IOAT_CHANERR.NEXT_DESC_ALIGN_ERR,
      (p) => {
        p.put(DESC, { size: 8, src: SRC, dst: DST, next: DESC + 0x48n });
      },
    ],
    [
      'next descriptor unmapped',
      IOAT_CHANERR.NEXT_ADDR_ERR,
      (p) => p.put(DESC, { size: 8, src: SRC, dst: DST, next: UNMAPPED }),
    ],
    [
      'completion address unmapped',
      IOAT_CHANERR.COMPLETION_ADDR_ERR,
      (p) => {
        p.w(IOAT_REG.CHANCMP, 8, UNMAPPED);
        p.put(DESC, { size: 8, ctl: IOAT_DESC_CTL.COMPL_WRITE, src: SRC, dst: DST, next: DESC });
      },
    ],
    [
      'completion address not 8-byte aligned',
      IOAT_CHANERR.COMPLETION_ADDR_ERR,
      (p) => {
        p.w(IOAT_REG.CHANCMP, 8, IOVA + 0x8004n);
        p.put(DESC, { size: 8, ctl: IOAT_DESC_CTL.COMPL_WRITE, src: SRC, dst: DST, next: DESC });
      },
    ],
  ];
  for (const [what, bit, setup] of cases) {
    it(what, () => {
      const p = rig();
      p.w(IOAT_REG.INTRCTRL, 1, IOAT_INTRCTRL.MSIX_VECTOR_CONTROL);
      p.fill(DST, 4096, 0x55);
      setup(p);
      p.start(DESC, 2);
      assert.equal(p.status(), HALTED);
      assert.equal(p.chanerr(), bit);
      assert.deepEqual(p.raised, []);
      if (bit === IOAT_CHANERR.SRC_ADDR_ERR) assert.deepEqual(p.port.faults, [UNMAPPED]);
      if (bit === IOAT_CHANERR.DEST_ADDR_ERR || bit === IOAT_CHANERR.SRC_ADDR_ERR) {
        assert.deepEqual(p.at(DST, 8), new Uint8Array(8).fill(0x55), 'nothing written');
      }
    });
  }

  it('CHAINADDR not 64-byte aligned: CHAIN_ADDR_VALUE_ERR before any fetch', () => {
    const p = rig();
    p.start(DESC + 8n, 1);
    assert.equal(p.status(), HALTED);
    assert.equal(p.chanerr(), IOAT_CHANERR.CHAIN_ADDR_VALUE_ERR);
    assert.equal(p.port.fetches, 0);
  });

  it('the chain stops at the bad descriptor: the ones before it completed', () => {
    const p = rig();
    p.fill(SRC, 8, 7);
    p.put(DESC, { size: 8, src: SRC, dst: DST, next: DESC + 0x40n });
    p.put(DESC + 0x40n, { size: 8, src: UNMAPPED, dst: DST + 8n, next: DESC });
    p.start(DESC, 2);
    assert.equal(p.status(), HALTED);
    assert.equal(p.completedAt(), DESC);
    assert.deepEqual(p.at(DST, 8), new Uint8Array(8).fill(7));
  });

  it('memory behind a mapping failing (a process gone) is a read data error, not an exception', () => {
    const p = rig();
    p.put(DESC, { size: 8, src: SRC, dst: DST, next: DESC });
    p.port.broken = true;
    p.start(DESC, 1);
    assert.equal(p.status(), HALTED);
    assert.equal(p.chanerr(), IOAT_CHANERR.READ_DATA_ERR);
  });

  it('a halted channel ignores the doorbell until CHANERR is cleared (write 1 to clear) and RESET', () => {
    const p = rig();
    p.put(DESC, { size: 8, src: UNMAPPED, dst: DST, next: DESC });
    p.start(DESC, 1);
    assert.equal(p.chanerr(), IOAT_CHANERR.SRC_ADDR_ERR);
    p.put(DESC, { size: 8, src: SRC, dst: DST, next: DESC });
    p.start(DESC, 1);
    assert.equal(p.status(), HALTED, 'CHANERR set: nothing runs');
    assert.equal(p.port.fetches, 1);
    p.w(IOAT_REG.CHANERR, 4, 0x2); // not its bit: stays
    assert.equal(p.chanerr(), IOAT_CHANERR.SRC_ADDR_ERR);
    p.w(IOAT_REG.CHANERR, 4, p.chanerr());
    assert.equal(p.chanerr(), 0);
    p.resetChannel();
    p.start(DESC, 1);
    assert.equal(p.status(), DONE);
  });

  it('ERR_INT_EN with INT_REARM: an error interrupts on vector 0', () => {
    const p = rig();
    p.w(IOAT_REG.INTRCTRL, 1, IOAT_INTRCTRL.MSIX_VECTOR_CONTROL);
    p.put(DESC, { size: 8, src: UNMAPPED, dst: DST, next: DESC });
    p.start(DESC, 1, REARM | IOAT_CHANCTRL.ERR_INT_EN);
    assert.equal(p.status(), HALTED);
    assert.deepEqual(p.raised, [0]);
  });
});

describe('ioat completion interrupt', () => {
  it('int_en with INT_REARM raises vector 0 once and clears INT_REARM', () => {
    const p = rig();
    p.w(IOAT_REG.INTRCTRL, 1, IOAT_INTRCTRL.MSIX_VECTOR_CONTROL);
    p.put(DESC, { size: 8, ctl: IOAT_DESC_CTL.INT_EN, src: SRC, dst: DST, next: DESC });
    p.start(DESC, 2);
    assert.deepEqual(p.raised, [0], 'the second descriptor finds INT_REARM clear');
    assert.equal(p.r(IOAT_REG.CHANCTRL, 2), BigInt(IOAT_CHANCTRL.ANY_ERR_ABORT_EN));
    p.start(DESC, 1);
    assert.deepEqual(p.raised, [0, 0], 're-armed by the CHANCTRL write');
  });

  it('no interrupt without int_en, without INT_REARM, or with INTRCTRL off', () => {
    const p = rig();
    p.put(DESC, { size: 8, ctl: IOAT_DESC_CTL.INT_EN, src: SRC, dst: DST, next: DESC });
    p.start(DESC, 1); // INTRCTRL 0
    assert.deepEqual(p.raised, []);
    p.w(IOAT_REG.INTRCTRL, 1, IOAT_INTRCTRL.MASTER_INT_EN);
    p.start(DESC, 1, IOAT_CHANCTRL.ANY_ERR_ABORT_EN);
    assert.deepEqual(p.raised, []);
    p.put(DESC, { size: 8, src: SRC, dst: DST, next: DESC });
    p.start(DESC, 1);
    assert.deepEqual(p.raised, []);
    p.put(DESC, { size: 8, ctl: IOAT_DESC_CTL.INT_EN, src: SRC, dst: DST, next: DESC });
    p.start(DESC, 1);
    assert.deepEqual(p.raised, [0], 'MASTER_INT_EN alone enables it too');
  });
});

describe('ioat behind a vfio-pci function (x86 preset 0000:00:04.0)', () => {
  const spec = x86.devices.find((d) => d.model?.kind === 'ioat')!;
  const CONFIG = vfioPciRegionOffset(7);
  const BAR0 = vfioPciRegionOffset(0);
  const cfg32 = (dev: VfioPciDevice, off: number) =>
    new DataView(dev.read(CONFIG + BigInt(off), 4).buffer).getUint32(0, true);
  const u32 = (v: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    return b;
  };
  const open = () => {
    const port = new FakeIommu();
    const dev = new VfioPciDevice(spec, { dma: port });
    dev.enable();
    dev.write(CONFIG + BigInt(PCI.COMMAND), Uint8Array.of(PCI.COMMAND_MEMORY, 0));
    return { dev, port };
  };

  it('8086:2021, the register page trapped, MSI-X table and PBA pages after it', () => {
    const { dev } = open();
    assert.equal(cfg32(dev, 0), 0x2021_8086);
    assert.deepEqual(dev.registerRanges(0, 0x1000n), [
      [0n, 0x1000n],
      [0x2000n, 0x4000n],
    ]);
    assert.deepEqual([...dev.read(BAR0 + BigInt(IOAT_REG.VER), 1)], [0x33]);
    assert.equal(dev.irqCount(2), 1, 'one MSI-X vector');
  });

  it('config CHANERR_INT mirrors channel errors and clears by writing 1s; DMAUNCERRSTS reads 0', () => {
    const { dev } = open();
    assert.equal(cfg32(dev, IOAT_CFG.CHANERR_INT), 0);
    dev.write(BAR0 + BigInt(IOAT_REG.CHAINADDR), new Uint8Array(8).fill(0xff)); // misaligned
    dev.write(BAR0 + BigInt(IOAT_REG.DMACOUNT), Uint8Array.of(1, 0));
    assert.equal(cfg32(dev, IOAT_CFG.CHANERR_INT), IOAT_CHANERR.CHAIN_ADDR_VALUE_ERR);
    dev.write(CONFIG + BigInt(IOAT_CFG.CHANERR_INT), u32(0));
    assert.equal(cfg32(dev, IOAT_CFG.CHANERR_INT), IOAT_CHANERR.CHAIN_ADDR_VALUE_ERR, '0s keep it');
    dev.write(CONFIG + BigInt(IOAT_CFG.CHANERR_INT), u32(0xffffffff));
    assert.equal(cfg32(dev, IOAT_CFG.CHANERR_INT), 0);
    dev.write(CONFIG + BigInt(IOAT_CFG.DMAUNCERRSTS), u32(0xffffffff));
    assert.equal(cfg32(dev, IOAT_CFG.DMAUNCERRSTS), 0);
  });

  it('VFIO_DEVICE_RESET puts the channel back to power-on (HALTED, no error)', () => {
    const { dev } = open();
    dev.write(BAR0 + BigInt(IOAT_REG.CHAINADDR), new Uint8Array(8).fill(0xff));
    dev.write(BAR0 + BigInt(IOAT_REG.DMACOUNT), Uint8Array.of(1, 0));
    dev.reset();
    assert.deepEqual([...dev.read(BAR0 + BigInt(IOAT_REG.CHANERR), 4)], [0, 0, 0, 0]);
    assert.equal(cfg32(dev, IOAT_CFG.CHANERR_INT), 0);
    assert.deepEqual([...dev.read(BAR0 + BigInt(IOAT_REG.CHANSTS), 1)], [HALTED]);
  });
});

describe('ioat behind SPAPR (powernv 0001:03:00.0, PE 3, legacy container)', () => {
  it('descriptors and copies go through a 64 KiB-page DDW; past the mapping is SRC_ADDR_ERR', () => {
    const c = new SpaprClient();
    c.container = c.open('/dev/vfio/vfio').ret;
    const group = c.addGroup(3);
    const v2 = BigInt(VFIO_EXTENSION.SPAPR_TCE_v2_IOMMU);
    assert.equal(c.ioctl(c.container, 'VFIO_SET_IOMMU', v2).ret, 0);
    const size = 2n * MIB;
    const ram = c.ram(size);
    assert.equal(c.register(ram, size).ret, 0);
    const cr = c.create(16, GIB);
    assert.equal(cr.ret, 0, cr.errno);
    const ddw = cr.out.start_addr;
    assert.equal(ddw, 1n << 59n);
    assert.equal(c.mapDma(c.container, ram, ddw, size).ret, 0);
    const dev = new Dev(c, c.getDeviceFd(group, '0001:03:00.0').ret);
    const reg = (off: number, v: bigint, bytes: number) => {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, v, true);
      dev.pwrite(vfioPciRegionOffset(0) + BigInt(off), b.subarray(0, bytes));
    };
    const desc = (src: bigint) => {
      const d = new DataView(new ArrayBuffer(64));
      d.setUint32(0, 16, true);
      d.setBigUint64(8, src, true);
      d.setBigUint64(16, ddw + 0x2_0000n, true);
      d.setBigUint64(24, ddw, true);
      c.proc.mm.write(ram, new Uint8Array(d.buffer));
    };
    const msg = new TextEncoder().encode('through the DDW!');
    c.proc.mm.write(ram + 0x1_0000n, msg);
    desc(ddw + 0x1_0000n);
    reg(IOAT_REG.CHAINADDR, ddw, 8);
    reg(IOAT_REG.DMACOUNT, 1n, 2);
    assert.equal(dev.reg64(IOAT_REG.CHANSTS), ddw | BigInt(DONE));
    assert.deepEqual(c.proc.mm.read(ram + 0x2_0000n, msg.length), msg);
    desc(ddw + size);
    reg(IOAT_REG.CHAINADDR, ddw, 8);
    reg(IOAT_REG.DMACOUNT, 1n, 2);
    assert.equal(dev.reg64(IOAT_REG.CHANSTS) & IOAT_CHANSTS.STATUS_MASK, BigInt(HALTED));
    assert.equal(dev.reg32(IOAT_REG.CHANERR), IOAT_CHANERR.SRC_ADDR_ERR);
    assert.deepEqual(
      c.dev('0001:03:00.0').faults.map((f) => f.iova),
      [ddw + size],
      'the IOMMU recorded the refusal',
    );
  });
});
