import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Errno } from '../../src/abi/errno.ts';
import {
  CAP_OFFSET,
  PCI,
  PCI_CAP_ID,
  PCI_EXP,
  PciConfigSpace,
} from '../../src/vfio/pci/config-space.ts';
import { LEGACY, NVME } from './pci-specs.ts';

function errnoOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (e instanceof Errno) return e.code;
    throw e;
  }
}

/** The size a BAR (pair) reports to the probe protocol, as a driver computes it. */
function probe(cfg: PciConfigSpace, index: number): bigint {
  const off = PCI.BASE_ADDRESS_0 + 4 * index;
  const orig = cfg.read32(off);
  cfg.write32(off, 0xffffffff);
  const lo = cfg.read32(off);
  cfg.write32(off, orig);
  if (lo & PCI.BASE_ADDRESS_SPACE_IO) return BigInt((~(lo & ~0x3) + 1) >>> 0);
  if (lo & PCI.BASE_ADDRESS_MEM_TYPE_64) {
    const origHi = cfg.read32(off + 4);
    cfg.write32(off + 4, 0xffffffff);
    const hi = cfg.read32(off + 4);
    cfg.write32(off + 4, origHi);
    const mask = (BigInt(hi) << 32n) | BigInt(lo & ~0xf);
    return BigInt.asUintN(64, ~mask + 1n);
  }
  return BigInt((~(lo & ~0xf) + 1) >>> 0);
}

describe('PciConfigSpace header', () => {
  it('serves ids, class, revision, header type and subsystem ids', () => {
    const cfg = new PciConfigSpace(NVME);
    assert.equal(cfg.size, 4096);
    assert.equal(cfg.read16(PCI.VENDOR_ID), 0x8086);
    assert.equal(cfg.read16(PCI.DEVICE_ID), 0x0a54);
    assert.equal(cfg.read32(0x08) >>> 8, 0x010802); // QEMU's class_code
    assert.equal(cfg.read8(PCI.REVISION_ID), 0x02);
    assert.equal(cfg.read8(PCI.HEADER_TYPE), 0);
    assert.equal(cfg.read16(PCI.SUBSYSTEM_VENDOR_ID), 0x8086);
    assert.equal(cfg.read16(PCI.SUBSYSTEM_ID), 0x4702);
    assert.equal(cfg.read16(PCI.STATUS) & PCI.STATUS_CAP_LIST, PCI.STATUS_CAP_LIST);
    assert.equal(cfg.read8(PCI.INTERRUPT_PIN), 1);
    assert.equal(new PciConfigSpace(LEGACY).size, 256);
    assert.equal(new PciConfigSpace(LEGACY).read8(PCI.INTERRUPT_PIN), 0);
  });

  it('drops writes to read-only fields and keeps writable ones', () => {
    const cfg = new PciConfigSpace(NVME);
    cfg.write16(PCI.VENDOR_ID, 0x1234);
    cfg.write8(PCI.INTERRUPT_PIN, 3);
    cfg.write8(PCI.CAPABILITY_LIST, 0);
    cfg.write16(PCI.STATUS, 0xffff);
    cfg.write8(PCI.HEADER_TYPE, 0x80);
    assert.equal(cfg.read16(PCI.VENDOR_ID), 0x8086);
    assert.equal(cfg.read8(PCI.INTERRUPT_PIN), 1);
    assert.equal(cfg.read8(PCI.CAPABILITY_LIST), CAP_OFFSET.PM);
    assert.equal(cfg.read16(PCI.STATUS), PCI.STATUS_CAP_LIST);
    assert.equal(cfg.read8(PCI.HEADER_TYPE), 0);
    cfg.write8(PCI.INTERRUPT_LINE, 11);
    assert.equal(cfg.read8(PCI.INTERRUPT_LINE), 11);
    // DPDK: read-modify-write of Command to set Bus Master.
    cfg.write16(PCI.COMMAND, cfg.read16(PCI.COMMAND) | PCI.COMMAND_MASTER | PCI.COMMAND_MEMORY);
    assert.equal(cfg.read16(PCI.COMMAND), PCI.COMMAND_MASTER | PCI.COMMAND_MEMORY);
    assert.ok(cfg.memoryEnabled);
    cfg.write16(PCI.COMMAND, 0xffff);
    assert.equal(cfg.read16(PCI.COMMAND), 0x0547);
  });

  it('accepts any access size at any offset inside and EFAULT outside', () => {
    const cfg = new PciConfigSpace(LEGACY);
    assert.equal(cfg.read(0x01, 3).length, 3);
    assert.deepEqual([...cfg.read(0, 2)], [0xec, 0x10]);
    assert.equal(cfg.read(0, 256).length, 256);
    assert.equal(
      errnoOf(() => cfg.read(255, 2)),
      'EFAULT',
    );
    assert.equal(
      errnoOf(() => cfg.read(256, 1)),
      'EFAULT',
    );
    assert.equal(
      errnoOf(() => cfg.write(0xfe, new Uint8Array(4))),
      'EFAULT',
    );
    assert.equal(cfg.write(0xfc, new Uint8Array(4)), 4);
  });
});

describe('BAR size probing', () => {
  it('mem32, mem64 pairs and unimplemented BARs', () => {
    const cfg = new PciConfigSpace(NVME);
    assert.equal(cfg.read32(0x10), PCI.BASE_ADDRESS_MEM_TYPE_64);
    assert.equal(probe(cfg, 0), 0x4000n);
    assert.equal(cfg.read32(0x18), PCI.BASE_ADDRESS_MEM_PREFETCH);
    assert.equal(probe(cfg, 2), 0x1000n);
    assert.equal(probe(cfg, 4), 1n << 33n);
    cfg.write32(0x10, 0xffffffff);
    assert.equal(cfg.read32(0x10), (~0x3fff | 0x4) >>> 0);
    cfg.write32(0x14, 0xffffffff);
    assert.equal(cfg.read32(0x14), 0xffffffff);
    cfg.write32(0x24, 0xffffffff);
    assert.equal(cfg.read32(0x24), 0xfffffffe); // upper half of BAR4 (8 GiB)
    cfg.write32(0x20, 0xffffffff);
    assert.equal(cfg.read32(0x20), 0x0c); // below 4 GiB nothing is decodable
    // an address is kept, masked to the size
    cfg.write32(0x18, 0xfebc1234);
    assert.equal(cfg.read32(0x18), (0xfebc1000 | PCI.BASE_ADDRESS_MEM_PREFETCH) >>> 0);
  });

  it('io BARs, byte-wise writes and the absent ROM', () => {
    const cfg = new PciConfigSpace(LEGACY);
    assert.equal(cfg.read32(0x10), 1);
    assert.equal(probe(cfg, 0), 0x100n);
    assert.equal(probe(cfg, 1), 0x100n);
    for (let i = 0; i < 4; i++) cfg.write8(0x14 + i, 0xff);
    assert.equal(cfg.read32(0x14), 0xffffff00);
    for (const bar of [2, 3, 4, 5]) {
      cfg.write32(0x10 + 4 * bar, 0xffffffff);
      assert.equal(cfg.read32(0x10 + 4 * bar), 0);
    }
    cfg.write32(PCI.ROM_ADDRESS, 0xffffffff);
    assert.equal(cfg.read32(PCI.ROM_ADDRESS), 0);
  });
});

/** The capability walk DPDK does: 4-byte reads at 0x34 and at each cap. */
function walk(cfg: PciConfigSpace): [number, number][] {
  const out: [number, number][] = [];
  let pos = cfg.read32(PCI.CAPABILITY_LIST) & 0xff;
  while (pos) {
    const dw = cfg.read32(pos);
    out.push([dw & 0xff, pos]);
    pos = (dw >> 8) & 0xff;
  }
  return out;
}

describe('capabilities', () => {
  it('lists PM, MSI, MSI-X and PCIe in order; extended space is empty', () => {
    const cfg = new PciConfigSpace(NVME);
    assert.deepEqual(walk(cfg), [
      [PCI_CAP_ID.PM, 0x40],
      [PCI_CAP_ID.MSI, 0x50],
      [PCI_CAP_ID.MSIX, 0x70],
      [PCI_CAP_ID.EXP, 0x80],
    ]);
    assert.equal(cfg.read32(0x100), 0);
    assert.deepEqual(walk(new PciConfigSpace(LEGACY)), [[PCI_CAP_ID.PM, 0x40]]);
  });

  it('MSI-X table and PBA location as QEMU/DPDK parse them', () => {
    const cfg = new PciConfigSpace(NVME);
    const pos = CAP_OFFSET.MSIX;
    assert.equal((cfg.read16(pos + 2) & 0x7ff) + 1, 33);
    const table = cfg.read32(pos + 4);
    const pba = cfg.read32(pos + 8);
    assert.equal(table & 7, 0);
    assert.equal(table & ~7, 0x2000);
    assert.equal(pba & 7, 0);
    assert.equal(pba & ~7, 0x3000); // table end 0x2210 rounded up to 4 KiB
    cfg.write16(pos + 2, 0xc000); // enable + function mask: MSI-X is ioctl-only
    assert.equal(cfg.read16(pos + 2), 32);
  });

  it('MSI: 64-bit maskable with log2 vectors; enable and MME are virtualised', () => {
    const cfg = new PciConfigSpace(NVME);
    const pos = CAP_OFFSET.MSI;
    const flags = cfg.read16(pos + 2);
    assert.equal(1 << ((flags & 0xe) >> 1), 8);
    assert.ok(flags & 0x80);
    assert.ok(flags & 0x100);
    cfg.write16(pos + 2, 0x0071); // enable, MME 7, MMC 0
    assert.equal(cfg.read16(pos + 2), flags); // not enabled via SET_IRQS: nothing sticks
    cfg.msiState = () => ({ msiEnabled: true, msiQmax: 2 });
    cfg.write8(pos + 2, 0x71);
    assert.equal(cfg.read16(pos + 2), flags | 0x21);
    cfg.write32(pos + 4, 0xfee00000);
    cfg.write32(pos + 8, 0x1);
    cfg.write16(pos + 0xc, 0x4041);
    assert.equal(cfg.read32(pos + 4), 0xfee00000);
    assert.equal(cfg.read32(pos + 8), 1);
    assert.equal(cfg.read16(pos + 0xc), 0x4041);
    cfg.write32(pos + 0x10, 0xffffffff); // mask bits: 8 vectors
    assert.equal(cfg.read32(pos + 0x10), 0xff);
    cfg.write16(pos, 0xffff); // header: read-only
    assert.equal(cfg.read16(pos), 0x7005);
  });

  it('PM control and PCIe device control', () => {
    const cfg = new PciConfigSpace(NVME);
    const pm = CAP_OFFSET.PM + 4;
    cfg.write16(pm, 3);
    assert.equal(cfg.powerState, 3);
    cfg.write16(pm, 1); // D1 not supported: ignored
    assert.equal(cfg.powerState, 3);
    const exp = CAP_OFFSET.EXP;
    assert.ok(cfg.read32(exp + PCI_EXP.DEVCAP) & PCI_EXP.DEVCAP_FLR);
    cfg.write16(exp + PCI_EXP.DEVCTL, 0x7fff);
    assert.equal(cfg.read16(exp + PCI_EXP.DEVCTL), 0x7fff & ~PCI_EXP.DEVCTL_PHANTOM);
    let flrs = 0;
    cfg.onFlr = () => flrs++;
    cfg.write16(exp + PCI_EXP.DEVCTL, PCI_EXP.DEVCTL_BCR_FLR | 0x2810);
    assert.equal(flrs, 1);
    assert.equal(cfg.read16(exp + PCI_EXP.DEVCTL), 0x2810);
    assert.equal(cfg.powerState, 0);
    cfg.write16(exp + PCI_EXP.DEVCTL2, 0xffff);
    assert.equal(cfg.read16(exp + PCI_EXP.DEVCTL2), 0x07ff & ~PCI_EXP.DEVCTL2_ARI);
    cfg.write16(exp + PCI_EXP.FLAGS, 0);
    assert.equal(cfg.read16(exp + PCI_EXP.FLAGS), 2);
  });

  it('enable() restores power-on defaults', () => {
    const cfg = new PciConfigSpace(NVME);
    const before = cfg.read(0, cfg.size);
    cfg.write16(PCI.COMMAND, 6);
    cfg.write32(0x10, 0xffffffff);
    cfg.write8(PCI.INTERRUPT_LINE, 5);
    cfg.write16(CAP_OFFSET.PM + 4, 3);
    assert.notDeepEqual(cfg.read(0, cfg.size), before);
    cfg.enable();
    assert.deepEqual(cfg.read(0, cfg.size), before);
  });
});
