/**
 * The device side of BAR mappings (docs/device-mmap.md): vfio_pci_core_mmap's
 * checks, which pages are trapped registers, trapped accesses, the zap when
 * Memory decode goes off, and the shared store behind a mapped BAR.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Errno } from '../../src/abi/errno.ts';
import type { SharedStore } from '../../src/kernel/file.ts';
import { vfioPciRegionOffset } from '../../src/vfio/pci/abi.ts';
import { BarMemory } from '../../src/vfio/pci/bar-memory.ts';
import { PCI } from '../../src/vfio/pci/config-space.ts';
import { VfioPciDevice } from '../../src/vfio/pci/device.ts';
import { DMA_ENGINE_ID, DMA_REG } from '../../src/vfio/pci/dma-engine.ts';
import type { PciDeviceSpec } from '../../src/vfio/pci/spec.ts';
import { LEGACY, NVME } from './pci-specs.ts';

const PAGE = 4096n;

function errnoOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (e instanceof Errno) return e.code;
    throw e;
  }
}

const ENGINE: PciDeviceSpec = {
  ...NVME,
  bdf: '0000:02:00.0',
  bars: [{ index: 0, kind: 'mem64', size: 0x80000n, prefetchable: false }],
  irq: { intx: true },
  model: { kind: 'dma-engine' },
};

const noDma = {
  dmaRead: () => new Uint8Array(),
  dmaWrite: () => {},
};

function enableMemory(dev: VfioPciDevice, on = true): void {
  dev.write(vfioPciRegionOffset(7) + 4n, Uint8Array.of(on ? PCI.COMMAND_MEMORY : 0, 0));
}

describe('mmap of a device region (vfio_pci_core_mmap)', () => {
  const dev = new VfioPciDevice(NVME);
  it('accepts a shared mapping inside a mappable BAR', () => {
    assert.deepEqual(dev.mmapCheck(vfioPciRegionOffset(4) + PAGE, 2n * PAGE, true, PAGE), {
      index: 4,
      pos: PAGE,
    });
    // the whole BAR, rounded up to a page
    assert.equal(dev.mmapCheck(vfioPciRegionOffset(2), PAGE, true, PAGE).index, 2);
  });
  it('EINVAL: private, past the BAR, not a BAR, absent or I/O BAR, mmap turned off', () => {
    const bar0 = vfioPciRegionOffset(0);
    assert.equal(
      errnoOf(() => dev.mmapCheck(bar0, PAGE, false, PAGE)),
      'EINVAL',
    );
    assert.equal(
      errnoOf(() => dev.mmapCheck(bar0 + 0x3000n, 2n * PAGE, true, PAGE)),
      'EINVAL',
    );
    for (const index of [1, 3, 5, 6, 7, 8, 9, 200]) {
      assert.equal(
        errnoOf(() => dev.mmapCheck(vfioPciRegionOffset(index), PAGE, true, PAGE)),
        'EINVAL',
      );
    }
    const legacy = new VfioPciDevice(LEGACY);
    assert.equal(
      errnoOf(() => legacy.mmapCheck(vfioPciRegionOffset(0), PAGE, true, PAGE)),
      'EINVAL',
    );
    // a sub-page memory BAR maps its whole page
    assert.equal(legacy.mmapCheck(vfioPciRegionOffset(1), PAGE, true, PAGE).index, 1);
    const off = new VfioPciDevice(NVME, { barMmap: false });
    assert.equal(
      errnoOf(() => off.mmapCheck(vfioPciRegionOffset(4), PAGE, true, PAGE)),
      'EINVAL',
    );
  });
});

describe('trapped register pages', () => {
  it('are the MSI-X table and PBA pages, the DMA engine registers, a sub-page BAR', () => {
    const dev = new VfioPciDevice(NVME);
    assert.deepEqual(dev.registerRanges(0, PAGE), [[0x2000n, 0x4000n]]);
    assert.deepEqual(dev.registerRanges(4, PAGE), []);
    assert.deepEqual(dev.registerRanges(0, 0x10000n), [[0n, 0x10000n]]);
    const eng = new VfioPciDevice(ENGINE, { dma: noDma });
    assert.deepEqual(eng.registerRanges(0, PAGE), [[0n, PAGE]]);
    // a 256-byte BAR: its only page traps, so the bytes past the BAR read all-ones
    assert.deepEqual(new VfioPciDevice(LEGACY).registerRanges(1, PAGE), [[0n, PAGE]]);
  });

  it('reach the device model with their side effects, and EIO while decode is off', () => {
    const eng = new VfioPciDevice(ENGINE, { dma: noDma });
    eng.enable();
    enableMemory(eng, false);
    assert.equal(
      errnoOf(() => eng.mappedAccess(0, 0n, 4)),
      'EIO',
    );
    enableMemory(eng);
    const id = eng.mappedAccess(0, BigInt(DMA_REG.ID), 4);
    assert.equal(new DataView(id.buffer).getUint32(0, true), DMA_ENGINE_ID);
    eng.mappedAccess(0, BigInt(DMA_REG.LIVENESS), 4, Uint8Array.of(0x0f, 0, 0, 0));
    const live = eng.mappedAccess(0, BigInt(DMA_REG.LIVENESS), 4);
    assert.equal(new DataView(live.buffer).getUint32(0, true), 0xfffffff0);
  });

  it('past a sub-page BAR read all-ones and drop writes', () => {
    const legacy = new VfioPciDevice(LEGACY);
    legacy.enable();
    enableMemory(legacy);
    legacy.mappedAccess(1, 0xf8n, 8, new Uint8Array(8).fill(7));
    assert.deepEqual([...legacy.mappedAccess(1, 0xf8n, 8)], new Array(8).fill(7));
    legacy.mappedAccess(1, 0x100n, 4, Uint8Array.of(1, 2, 3, 4));
    assert.deepEqual([...legacy.mappedAccess(1, 0x100n, 4)], [0xff, 0xff, 0xff, 0xff]);
  });
});

describe('zap', () => {
  it('counts Memory decode going from on to off, not other command writes', () => {
    const dev = new VfioPciDevice(NVME);
    dev.enable();
    enableMemory(dev);
    enableMemory(dev);
    assert.equal(dev.zaps, 0);
    enableMemory(dev, false);
    assert.equal(dev.zaps, 1);
    enableMemory(dev, false);
    assert.equal(dev.zaps, 1);
  });
});

describe('BarMemory.share', () => {
  it('moves the bytes written so far into the store, and serves reads, writes and clears from it', () => {
    const bytes = new Uint8Array(0x3000);
    const store: SharedStore = {
      fd: 42,
      read: (o, n) => bytes.slice(Number(o), Number(o) + n),
      write: (o, d) => bytes.set(d, Number(o)),
      zero: (o, n) => bytes.fill(0, Number(o), Number(o + n)),
    };
    const m = new BarMemory(0x3000n);
    m.write(0x1ffen, Uint8Array.of(1, 2, 3));
    let made = 0;
    const provider = (_name: string, size: bigint) => {
      made++;
      assert.equal(size, 0x3000n);
      return store;
    };
    assert.equal(m.share('bar0', provider), store);
    assert.equal(m.share('bar0', provider), store);
    assert.equal(made, 1);
    assert.deepEqual([...bytes.subarray(0x1ffe, 0x2001)], [1, 2, 3]);
    assert.equal(m.populatedPages, 0);
    bytes[5] = 9;
    assert.equal(m.read(5n, 1)[0], 9);
    m.write(6n, Uint8Array.of(8));
    assert.equal(bytes[6], 8);
    m.clear();
    assert.ok(bytes.every((b) => b === 0));
  });
});
