import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Errno } from '../../src/abi/errno.ts';
import type { Layout } from '../../src/abi/layout.ts';
import { type VfioIoctlName, vfioIoctlNumber } from '../../src/abi/vfio.ts';
import { Eventfd } from '../../src/host/eventfd.ts';
import type { FileOps } from '../../src/host/file.ts';
import { Kernel } from '../../src/host/kernel.ts';
import type { Process } from '../../src/host/process.ts';
import {
  VFIO_DEVICE_FLAGS,
  VFIO_IRQ_SET,
  VFIO_REGION_INFO_CAP,
  VFIO_REGION_INFO_FLAG,
  VfioDeviceInfo,
  VfioIrqInfo,
  VfioIrqSet,
  VfioRegionInfo,
  vfioPciRegionOffset,
} from '../../src/vfio/pci/abi.ts';
import { CAP_OFFSET, PCI } from '../../src/vfio/pci/config-space.ts';
import { VfioPciDevice } from '../../src/vfio/pci/device.ts';
import { vfioPciDeviceFileOps } from '../../src/vfio/pci/device-fops.ts';
import { LEGACY, NVME } from './pci-specs.ts';

const CONFIG = vfioPciRegionOffset(7);

function errnoOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (e instanceof Errno) return e.code;
    throw e;
  }
}

interface Rig {
  proc: Process;
  dev: VfioPciDevice;
  ops: FileOps;
  /** ioctl with raw bytes at a fresh scratch address; returns errno (or undefined) and the bytes after. */
  raw(
    name: VfioIoctlName,
    bytes: Uint8Array,
    readBack?: number,
  ): { errno?: string; out: Uint8Array };
  call<V>(
    name: VfioIoctlName,
    layout: Layout<V>,
    value: Partial<V>,
  ): { errno?: string; out: V; bytes: Uint8Array };
}

function rig(spec = NVME, opts = {}): Rig {
  const kernel = new Kernel();
  const proc = kernel.spawn();
  const dev = new VfioPciDevice(spec, opts);
  const ops = vfioPciDeviceFileOps(dev);
  const raw = (name: VfioIoctlName, bytes: Uint8Array, readBack = bytes.length) => {
    const buf = new Uint8Array(Math.max(bytes.length, readBack));
    buf.set(bytes);
    const addr = proc.scratch(buf);
    const errno = errnoOf(() => ops.ioctl!(proc, vfioIoctlNumber(kernel.abi, name), addr));
    return { errno, out: proc.mm.read(addr, buf.length) };
  };
  return {
    proc,
    dev,
    ops,
    raw,
    call(name, layout, value) {
      const r = raw(name, layout.encode(value), 256);
      return { errno: r.errno, out: layout.decode(r.out), bytes: r.out };
    },
  };
}

function pread(r: Rig, offset: bigint, length: number): Uint8Array {
  return r.ops.read!(r.proc, length, offset);
}
function pwrite(r: Rig, offset: bigint, data: number[]): number {
  return r.ops.write!(r.proc, Uint8Array.from(data), offset);
}
const u16 = (b: Uint8Array, at = 0) => b[at]! | (b[at + 1]! << 8);

describe('VFIO_DEVICE_GET_INFO', () => {
  it('PCI|RESET, 9 regions, 5 irqs; minsz 16; 20 bytes back with argsz ≥ 20', () => {
    const r = rig();
    const pad = 0xdeadbeef;
    const { errno, out } = r.call('VFIO_DEVICE_GET_INFO', VfioDeviceInfo, {
      argsz: 24,
      cap_offset: 7,
      pad,
    });
    assert.equal(errno, undefined);
    assert.equal(out.flags, VFIO_DEVICE_FLAGS.PCI | VFIO_DEVICE_FLAGS.RESET);
    assert.equal(out.num_regions, 9);
    assert.equal(out.num_irqs, 5);
    assert.equal(out.cap_offset, 0);
    assert.equal(out.pad, pad);
    const short = r.call('VFIO_DEVICE_GET_INFO', VfioDeviceInfo, { argsz: 16, cap_offset: 7 });
    assert.equal(short.out.cap_offset, 7);
    assert.equal(short.out.num_irqs, 5);
    assert.equal(r.call('VFIO_DEVICE_GET_INFO', VfioDeviceInfo, { argsz: 15 }).errno, 'EINVAL');
    const noReset = rig(NVME, { resetWorks: false });
    const info = noReset.call('VFIO_DEVICE_GET_INFO', VfioDeviceInfo, { argsz: 24 });
    assert.equal(info.out.flags, VFIO_DEVICE_FLAGS.PCI);
    assert.equal(noReset.raw('VFIO_DEVICE_RESET', new Uint8Array(4)).errno, 'EINVAL');
  });

  it('unknown device ioctls → ENOTTY', () => {
    const r = rig();
    // DEVICE_FEATURE: a valid header asking PCI_VF_TOKEN of a device that is no PF
    const probeSet = Uint8Array.of(8, 0, 0, 0, 0, 0, 6, 0);
    assert.equal(r.raw('VFIO_DEVICE_FEATURE', probeSet).errno, 'ENOTTY');
    assert.equal(r.raw('VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', new Uint8Array(12)).errno, 'ENOTTY');
  });
});

describe('VFIO_DEVICE_GET_REGION_INFO', () => {
  const { READ, WRITE, MMAP, CAPS } = VFIO_REGION_INFO_FLAG;
  it('answers every fixed index like vfio-pci (BARs mappable by default)', () => {
    const r = rig(NVME);
    const q = (index: number) =>
      r.call('VFIO_DEVICE_GET_REGION_INFO', VfioRegionInfo, { argsz: 32, index });
    const expect: [number, number, bigint][] = [
      [0, READ | WRITE | MMAP | CAPS, 0x4000n],
      [1, 0, 0n],
      [2, READ | WRITE | MMAP, 0x1000n],
      [3, 0, 0n],
      [4, READ | WRITE | MMAP, 1n << 33n],
      [5, 0, 0n],
      [6, 0, 0n],
      [7, READ | WRITE, 4096n],
    ];
    for (const [index, flags, size] of expect) {
      const { errno, out } = q(index);
      assert.equal(errno, undefined, `index ${index}`);
      assert.equal(out.flags, flags, `flags of ${index}`);
      assert.equal(out.size, size, `size of ${index}`);
      assert.equal(out.offset, BigInt(index) << 40n);
    }
    assert.equal(q(8).errno, 'EINVAL');
    assert.equal(q(9).errno, 'EINVAL');
    assert.equal(
      r.call('VFIO_DEVICE_GET_REGION_INFO', VfioRegionInfo, { argsz: 31, index: 7 }).errno,
      'EINVAL',
    );
    const legacy = rig(LEGACY);
    const io = legacy.call('VFIO_DEVICE_GET_REGION_INFO', VfioRegionInfo, { argsz: 32, index: 0 });
    assert.equal(io.out.flags, READ | WRITE);
    assert.equal(io.out.size, 0x100n);
    const cfg = legacy.call('VFIO_DEVICE_GET_REGION_INFO', VfioRegionInfo, { argsz: 32, index: 7 });
    assert.equal(cfg.out.size, 256n);
  });

  it('with barMmap false BARs answer like unmappable ones: no MMAP, no caps', () => {
    const r = rig(undefined, { barMmap: false });
    for (const index of [0, 2, 4]) {
      const { errno, out } = r.call('VFIO_DEVICE_GET_REGION_INFO', VfioRegionInfo, {
        argsz: 32,
        index,
      });
      assert.equal(errno, undefined);
      assert.equal(out.flags, READ | WRITE, `flags of ${index}`);
      assert.equal(out.argsz, 32, `argsz of ${index} not grown`);
      assert.equal(out.cap_offset, 0);
    }
  });

  it('the MSI-X BAR carries MSIX_MAPPABLE with the argsz-grow contract', () => {
    const r = rig(NVME);
    const first = r.call('VFIO_DEVICE_GET_REGION_INFO', VfioRegionInfo, { argsz: 32, index: 0 });
    assert.equal(first.errno, undefined);
    assert.equal(first.out.argsz, 40);
    assert.equal(first.out.cap_offset, 0);
    assert.ok(first.out.flags & CAPS);
    const second = r.call('VFIO_DEVICE_GET_REGION_INFO', VfioRegionInfo, {
      argsz: 48,
      index: 0,
    });
    assert.equal(second.out.argsz, 48); // not shrunk
    assert.equal(second.out.cap_offset, 32);
    assert.equal(u16(second.bytes, 32), VFIO_REGION_INFO_CAP.MSIX_MAPPABLE);
    assert.equal(u16(second.bytes, 34), 1);
    assert.equal(new DataView(second.bytes.buffer).getUint32(36, true), 0);
  });
});

describe('config space through pread/pwrite', () => {
  it('bulk read, piecewise reads, command write, EFAULT past the end', () => {
    const r = rig();
    const all = pread(r, CONFIG, 4096);
    assert.equal(all.length, 4096);
    assert.equal(u16(all), 0x8086);
    assert.equal(u16(pread(r, CONFIG + 2n, 2)), 0x0a54);
    assert.equal(pread(r, CONFIG + 0x34n, 1)[0], CAP_OFFSET.PM);
    assert.equal(pwrite(r, CONFIG + 4n, [PCI.COMMAND_MASTER | PCI.COMMAND_MEMORY, 0]), 2);
    assert.equal(u16(pread(r, CONFIG + 4n, 2)), 6);
    assert.equal(pwrite(r, CONFIG + 0x10n, [0xff, 0xff, 0xff, 0xff]), 4);
    assert.deepEqual([...pread(r, CONFIG + 0x10n, 4)], [0x04, 0xc0, 0xff, 0xff]);
    assert.equal(
      errnoOf(() => pread(r, CONFIG + 4095n, 2)),
      'EFAULT',
    );
    assert.equal(
      errnoOf(() => pread(r, CONFIG + 4096n, 1)),
      'EFAULT',
    );
    assert.equal(pread(r, CONFIG + 4096n, 0).length, 0);
  });

  it('region dispatch: BAR memory, EIO without memory decode, ROM/VGA/beyond EINVAL', () => {
    const r = rig();
    const bar2 = vfioPciRegionOffset(2);
    // open enabled the device: Memory decode is on (pci_enable_device)
    assert.equal(pread(r, CONFIG + 4n, 2)[0]! & PCI.COMMAND_MEMORY, PCI.COMMAND_MEMORY);
    pwrite(r, CONFIG + 4n, [0, 0]);
    assert.equal(
      errnoOf(() => pread(r, bar2, 4)),
      'EIO',
    );
    pwrite(r, CONFIG + 4n, [PCI.COMMAND_MEMORY, 0]);
    assert.equal(pwrite(r, bar2 + 0x10n, [1, 2, 3, 4]), 4);
    assert.deepEqual([...pread(r, bar2 + 0xen, 6)], [0, 0, 1, 2, 3, 4]);
    assert.equal(pwrite(r, bar2 + 0xffen, [9, 9, 9, 9]), 2); // clipped to the BAR
    assert.equal(pread(r, bar2 + 0xffen, 8).length, 2);
    assert.equal(
      errnoOf(() => pread(r, bar2 + 0x1000n, 1)),
      'EINVAL',
    );
    assert.equal(
      errnoOf(() => pread(r, vfioPciRegionOffset(1), 4)),
      'EINVAL',
    );
    assert.equal(
      errnoOf(() => pread(r, vfioPciRegionOffset(6), 4)),
      'EINVAL',
    );
    assert.equal(
      errnoOf(() => pwrite(r, vfioPciRegionOffset(6), [0])),
      'EINVAL',
    );
    assert.equal(
      errnoOf(() => pread(r, vfioPciRegionOffset(8), 4)),
      'EINVAL',
    );
    assert.equal(
      errnoOf(() => pread(r, vfioPciRegionOffset(9), 4)),
      'EINVAL',
    );
    // a huge BAR costs what is written
    const bar4 = vfioPciRegionOffset(4);
    pwrite(r, bar4 + (1n << 32n), [7]);
    assert.equal(pread(r, bar4 + (1n << 32n), 1)[0], 7);
    assert.equal(r.dev.barMemory.get(4)!.populatedPages, 1);
  });

  it('the MSI-X table reads 0xff and drops writes; the PBA area is plain memory', () => {
    const r = rig();
    pwrite(r, CONFIG + 4n, [PCI.COMMAND_MEMORY, 0]);
    const bar0 = vfioPciRegionOffset(0);
    assert.equal(pwrite(r, bar0 + 0x1ffen, [1, 2, 3, 4]), 4);
    assert.deepEqual([...pread(r, bar0 + 0x1ffen, 4)], [1, 2, 0xff, 0xff]);
    pwrite(r, bar0 + 0x220en, [5, 6, 7, 8]);
    assert.deepEqual([...pread(r, bar0 + 0x220en, 4)], [0xff, 0xff, 7, 8]);
  });

  it('io BARs need no memory decode', () => {
    const r = rig(LEGACY);
    assert.equal(pwrite(r, 0n, [0x55]), 1);
    assert.equal(pread(r, 0n, 1)[0], 0x55);
  });
});

describe('VFIO_DEVICE_GET_IRQ_INFO', () => {
  it('flags and counts per index', () => {
    const r = rig();
    const q = (index: number, argsz = 16) =>
      r.call('VFIO_DEVICE_GET_IRQ_INFO', VfioIrqInfo, { argsz, index });
    assert.deepEqual([q(0).out.flags, q(0).out.count], [0x7, 1]);
    assert.deepEqual([q(1).out.flags, q(1).out.count], [0x9, 8]);
    assert.deepEqual([q(2).out.flags, q(2).out.count], [0x9, 33]);
    assert.deepEqual([q(3).out.flags, q(3).out.count], [0x9, 1]);
    assert.deepEqual([q(4).out.flags, q(4).out.count], [0x9, 1]);
    assert.equal(q(5).errno, 'EINVAL');
    assert.equal(q(0, 15).errno, 'EINVAL');
    const legacy = rig(LEGACY);
    const lq = (index: number) =>
      legacy.call('VFIO_DEVICE_GET_IRQ_INFO', VfioIrqInfo, { argsz: 16, index });
    assert.equal(lq(0).out.count, 0);
    assert.equal(lq(1).out.count, 0);
    assert.equal(lq(2).out.count, 0);
    assert.equal(lq(3).errno, 'EINVAL');
    assert.equal(lq(4).out.count, 1);
    const dyn = rig(NVME, { dynamicMsix: true });
    const d = dyn.call('VFIO_DEVICE_GET_IRQ_INFO', VfioIrqInfo, { argsz: 16, index: 2 });
    assert.equal(d.out.flags, 0x1);
  });
});

describe('MSI-X resizing follows the platform', () => {
  it('x86 (VT-d) functions allocate MSI-X dynamically (0x1), POWER ones do not (0x9)', () => {
    const pciOf = (host: string, bdf: string) =>
      [...new Kernel({ host }).vfioGroups.values()]
        .flatMap((g) => g.devices)
        .find((d) => d.name === bdf)!.pci;
    assert.equal(pciOf('x86', '0000:02:00.0').irqInfo(2).flags, 0x1);
    assert.equal(pciOf('powernv', '0001:02:00.0').irqInfo(2).flags, 0x9);
  });
});

describe('VFIO_DEVICE_SET_IRQS', () => {
  const { DATA_NONE, DATA_BOOL, DATA_EVENTFD, ACTION_MASK, ACTION_UNMASK, ACTION_TRIGGER } =
    VFIO_IRQ_SET;
  function setIrqs(
    r: Rig,
    hdr: { argsz?: number; flags: number; index: number; start: number; count: number },
    data: number[] = [],
    elem = 4,
  ): string | undefined {
    const payload = new Uint8Array(data.length * elem);
    const v = new DataView(payload.buffer);
    for (const [i, x] of data.entries()) {
      if (elem === 4) v.setInt32(4 * i, x, true);
      else v.setUint8(i, x);
    }
    const head = VfioIrqSet.encode({ argsz: hdr.argsz ?? 20 + payload.length, ...hdr });
    const bytes = new Uint8Array(head.length + payload.length);
    bytes.set(head);
    bytes.set(payload, head.length);
    return r.raw('VFIO_DEVICE_SET_IRQS', bytes).errno;
  }
  const EV = DATA_EVENTFD | ACTION_TRIGGER;

  it('validation errnos', () => {
    const r = rig();
    const inv = (h: Parameters<typeof setIrqs>[1], d?: number[]) =>
      assert.equal(setIrqs(r, h, d), 'EINVAL', JSON.stringify(h));
    inv({ argsz: 19, flags: EV, index: 4, start: 0, count: 0 });
    inv({ flags: EV, index: 5, start: 0, count: 1 }, [0]);
    inv({ flags: EV | 0x40, index: 4, start: 0, count: 1 }, [0]);
    inv({ flags: EV, index: 4, start: 1, count: 0 });
    inv({ flags: EV, index: 2, start: 30, count: 4 }, [0, 0, 0, 0]);
    inv({ flags: EV, index: 1, start: 0xfffffff0, count: 0x10 });
    inv({ flags: DATA_NONE | DATA_BOOL | ACTION_TRIGGER, index: 4, start: 0, count: 1 });
    inv({ flags: ACTION_TRIGGER, index: 4, start: 0, count: 1 });
    inv({ argsz: 23, flags: EV, index: 4, start: 0, count: 1 });
    // an index with count 0 always fails
    const legacy = rig(LEGACY);
    assert.equal(setIrqs(legacy, { flags: EV, index: 0, start: 0, count: 1 }, [0]), 'EINVAL');
    assert.equal(setIrqs(legacy, { flags: EV, index: 3, start: 0, count: 1 }, [0]), 'EINVAL');
  });

  it('unsupported index/action pairs → ENOTTY', () => {
    const r = rig();
    assert.equal(
      setIrqs(r, { flags: DATA_NONE | ACTION_MASK, index: 1, start: 0, count: 1 }),
      'ENOTTY',
    );
    assert.equal(
      setIrqs(r, { flags: DATA_NONE | ACTION_UNMASK, index: 2, start: 0, count: 1 }),
      'ENOTTY',
    );
    assert.equal(
      setIrqs(r, { flags: DATA_NONE | ACTION_MASK, index: 4, start: 0, count: 1 }),
      'ENOTTY',
    );
    assert.equal(
      setIrqs(r, { flags: DATA_NONE | ACTION_MASK | ACTION_UNMASK, index: 0, start: 0, count: 1 }),
      'ENOTTY',
    );
  });

  it('what QEMU and DPDK do is accepted', () => {
    const r = rig();
    const ev = new Eventfd();
    const efd = r.proc.installFile(ev);
    assert.equal(setIrqs(r, { flags: EV, index: 4, start: 0, count: 1 }, [efd]), undefined);
    assert.ok(r.dev.irqs.reqWired);
    assert.equal(setIrqs(r, { flags: EV, index: 4, start: 0, count: 1 }, [-1]), undefined);
    assert.ok(!r.dev.irqs.reqWired);
    assert.equal(setIrqs(r, { flags: EV, index: 3, start: 0, count: 1 }, [99]), 'EBADF');
    // INTx: enable, mask/unmask, MSI refused while INTx is on, disable
    assert.equal(
      setIrqs(r, { flags: DATA_NONE | ACTION_MASK, index: 0, start: 0, count: 1 }),
      'EINVAL',
    );
    assert.equal(setIrqs(r, { flags: EV, index: 0, start: 0, count: 1 }, [efd]), undefined);
    assert.equal(r.dev.irqs.type, 'intx');
    assert.equal(
      setIrqs(r, { flags: DATA_NONE | ACTION_MASK, index: 0, start: 0, count: 1 }),
      undefined,
    );
    assert.ok(r.dev.irqs.intxMasked);
    assert.equal(
      setIrqs(r, { flags: DATA_BOOL | ACTION_UNMASK, index: 0, start: 0, count: 1 }, [1], 1),
      undefined,
    );
    assert.ok(!r.dev.irqs.intxMasked);
    assert.equal(setIrqs(r, { flags: EV, index: 2, start: 0, count: 1 }, [efd]), 'EINVAL');
    assert.equal(
      setIrqs(r, { flags: DATA_NONE | ACTION_TRIGGER, index: 0, start: 0, count: 0 }),
      undefined,
    );
    assert.equal(r.dev.irqs.type, 'none');
    // MSI-X: enable 4 vectors, rewire one, out-of-range update, disable
    assert.equal(
      setIrqs(r, { flags: EV, index: 2, start: 0, count: 4 }, [efd, -1, efd, efd]),
      undefined,
    );
    assert.equal(r.dev.irqs.type, 'msix');
    assert.deepEqual(r.dev.irqs.wired, [0, 2, 3]);
    assert.equal(setIrqs(r, { flags: EV, index: 2, start: 1, count: 1 }, [efd]), undefined);
    assert.deepEqual(r.dev.irqs.wired, [0, 1, 2, 3]);
    assert.equal(setIrqs(r, { flags: EV, index: 2, start: 4, count: 1 }, [efd]), 'EINVAL');
    assert.equal(
      setIrqs(r, { flags: DATA_NONE | ACTION_TRIGGER, index: 2, start: 0, count: 0 }),
      undefined,
    );
    assert.equal(r.dev.irqs.type, 'none');
    // MSI enabled: the MSI enable bit now sticks in config space
    assert.equal(setIrqs(r, { flags: EV, index: 1, start: 0, count: 2 }, [efd, efd]), undefined);
    const flags = CONFIG + BigInt(CAP_OFFSET.MSI + 2);
    pwrite(r, flags, [0x11]);
    assert.equal(pread(r, flags, 1)[0]! & 0x71, 0x11);
  });

  it('eventfd lookup: EBADF for a closed fd, EINVAL for a file that is no eventfd', () => {
    const r = rig();
    const notEventfd = r.proc.open('/dev/iommu');
    assert.equal(setIrqs(r, { flags: EV, index: 2, start: 0, count: 1 }, [77]), 'EBADF');
    assert.equal(r.dev.irqs.type, 'none', 'a failed enable leaves MSI-X off');
    assert.equal(setIrqs(r, { flags: EV, index: 2, start: 0, count: 1 }, [notEventfd]), 'EINVAL');
    assert.equal(setIrqs(r, { flags: EV, index: 0, start: 0, count: 1 }, [notEventfd]), 'EINVAL');
    assert.equal(setIrqs(r, { flags: EV, index: 4, start: 0, count: 1 }, [notEventfd]), 'EINVAL');
    // vfio_msi_set_block: a bad fd in the middle clears the vectors set before it
    const ev = new Eventfd();
    const efd = r.proc.installFile(ev);
    assert.equal(setIrqs(r, { flags: EV, index: 2, start: 0, count: 2 }, [efd, efd]), undefined);
    assert.equal(setIrqs(r, { flags: EV, index: 2, start: 0, count: 2 }, [efd, 77]), 'EBADF');
    assert.deepEqual(r.dev.irqs.wired, []);
    assert.equal(r.dev.irqs.type, 'msix', 'an update that fails keeps MSI-X enabled');
  });

  it('DATA_NONE and DATA_BOOL triggers signal the wired eventfds (loopback)', () => {
    const r = rig();
    const [a, b] = [new Eventfd(), new Eventfd()];
    const [fa, fb] = [r.proc.installFile(a), r.proc.installFile(b)];
    assert.equal(setIrqs(r, { flags: EV, index: 2, start: 0, count: 3 }, [fa, -1, fb]), undefined);
    const fire = DATA_NONE | ACTION_TRIGGER;
    assert.equal(setIrqs(r, { flags: fire, index: 2, start: 0, count: 3 }), undefined);
    assert.deepEqual([a.count, b.count], [1n, 1n]);
    const bools = DATA_BOOL | ACTION_TRIGGER;
    assert.equal(
      setIrqs(r, { flags: bools, index: 2, start: 0, count: 3 }, [0, 1, 1], 1),
      undefined,
    );
    assert.deepEqual([a.count, b.count], [1n, 2n]);
    assert.equal(setIrqs(r, { flags: fire, index: 1, start: 0, count: 1 }), 'EINVAL', 'MSI is off');
    r.dev.irqs.raiseMsi(0);
    assert.equal(a.count, 2n, 'the device raising vector 0');
    // REQ loopback, and a trigger that outlives its fd
    assert.equal(setIrqs(r, { flags: EV, index: 4, start: 0, count: 1 }, [fa]), undefined);
    r.proc.close(fa);
    assert.equal(setIrqs(r, { flags: fire, index: 4, start: 0, count: 1 }), undefined);
    assert.equal(a.count, 3n);
    assert.equal(setIrqs(r, { flags: fire, index: 4, start: 0, count: 0 }), undefined);
    assert.equal(setIrqs(r, { flags: fire, index: 4, start: 0, count: 1 }), 'EINVAL', 'unwired');
  });

  it('MSI: enabling zero vectors is ERANGE; vectors past those enabled are EINVAL', () => {
    const r = rig();
    const efd = r.proc.installFile(new Eventfd());
    assert.equal(setIrqs(r, { flags: EV, index: 1, start: 0, count: 0 }), 'ERANGE');
    assert.equal(setIrqs(r, { flags: EV, index: 1, start: 0, count: 2 }, [efd, efd]), undefined);
    assert.equal(r.dev.irqs.msiQmax, 1);
    assert.equal(setIrqs(r, { flags: EV, index: 1, start: 2, count: 1 }, [efd]), 'EINVAL');
  });

  it('dynamic MSI-X wires vectors beyond those enabled; without it they are EINVAL', () => {
    const fixed = rig();
    const f = fixed.proc.installFile(new Eventfd());
    assert.equal(setIrqs(fixed, { flags: EV, index: 2, start: 0, count: 1 }, [f]), undefined);
    assert.equal(setIrqs(fixed, { flags: EV, index: 2, start: 5, count: 1 }, [f]), 'EINVAL');
    const dyn = rig(NVME, { dynamicMsix: true });
    const ev = new Eventfd();
    const d = dyn.proc.installFile(ev);
    assert.equal(setIrqs(dyn, { flags: EV, index: 2, start: 0, count: 1 }, [d]), undefined);
    assert.equal(setIrqs(dyn, { flags: EV, index: 2, start: 5, count: 1 }, [d]), undefined);
    assert.deepEqual(dyn.dev.irqs.wired, [0, 5]);
    dyn.dev.irqs.raiseMsi(5);
    assert.equal(ev.count, 1n);
  });

  it('INTx: the line auto-masks, unmask re-signals while asserted, INTx Disable masks', () => {
    const r = rig();
    const ev = new Eventfd();
    const efd = r.proc.installFile(ev);
    const intx = r.dev.irqs;
    assert.equal(setIrqs(r, { flags: EV, index: 0, start: 0, count: 1 }, [efd]), undefined);
    intx.setIntxLine(true);
    assert.equal(ev.count, 1n);
    assert.ok(intx.intxMasked, 'auto-masked');
    assert.equal(pread(r, CONFIG + 6n, 1)[0]! & PCI.STATUS_INTERRUPT, PCI.STATUS_INTERRUPT);
    const unmask = DATA_NONE | ACTION_UNMASK;
    assert.equal(setIrqs(r, { flags: unmask, index: 0, start: 0, count: 1 }), undefined);
    assert.equal(ev.count, 2n, 'still pending: signalled again');
    assert.ok(intx.intxMasked);
    intx.setIntxLine(false);
    assert.equal(setIrqs(r, { flags: unmask, index: 0, start: 0, count: 1 }), undefined);
    assert.ok(!intx.intxMasked);
    // DATA_NONE trigger: loopback without touching the mask
    assert.equal(
      setIrqs(r, { flags: DATA_NONE | ACTION_TRIGGER, index: 0, start: 0, count: 1 }),
      undefined,
    );
    assert.equal(ev.count, 3n);
    // mask through an eventfd is not implemented by vfio-pci
    const m = DATA_EVENTFD | ACTION_MASK;
    assert.equal(setIrqs(r, { flags: m, index: 0, start: 0, count: 1 }, [efd]), 'ENOTTY');
    // INTx Disable in the Command register masks, and nothing is signalled while set
    pwrite(r, CONFIG + 5n, [PCI.COMMAND_INTX_DISABLE >> 8]);
    assert.ok(intx.intxMasked);
    intx.setIntxLine(true);
    assert.equal(
      setIrqs(r, { flags: DATA_NONE | ACTION_TRIGGER, index: 0, start: 0, count: 1 }),
      undefined,
    );
    assert.equal(ev.count, 3n);
    pwrite(r, CONFIG + 5n, [0]);
    assert.equal(ev.count, 4n, 'clearing it unmasks: the pending line fires');
  });

  it('INTx: fd -1 enables without a trigger; an unmask eventfd unmasks, a second is EBUSY', () => {
    const r = rig();
    const ev = new Eventfd();
    const un = new Eventfd();
    const [efd, ufd] = [r.proc.installFile(ev), r.proc.installFile(un)];
    assert.equal(setIrqs(r, { flags: EV, index: 0, start: 0, count: 1 }, [-1]), undefined);
    assert.equal(r.dev.irqs.type, 'intx');
    r.dev.irqs.setIntxLine(true);
    assert.ok(r.dev.irqs.intxMasked);
    r.dev.irqs.setIntxLine(false);
    assert.equal(setIrqs(r, { flags: EV, index: 0, start: 0, count: 1 }, [efd]), undefined);
    const uev = DATA_EVENTFD | ACTION_UNMASK;
    assert.equal(setIrqs(r, { flags: uev, index: 0, start: 0, count: 1 }, [ufd]), undefined);
    assert.equal(setIrqs(r, { flags: uev, index: 0, start: 0, count: 1 }, [ufd]), 'EBUSY');
    un.count = 1n; // user space writes the unmask eventfd
    r.dev.irqs.setIntxLine(true);
    assert.equal(ev.count, 1n, 'unmasked by the eventfd, then fired');
    assert.equal(un.count, 0n, 'the unmask eventfd was consumed');
    assert.equal(setIrqs(r, { flags: uev, index: 0, start: 0, count: 1 }, [-1]), undefined);
    assert.equal(setIrqs(r, { flags: uev, index: 0, start: 0, count: 1 }, [ufd]), undefined);
  });
});

describe('VFIO_DEVICE_RESET', () => {
  it('keeps config (saved/restored), returns to D0, loses BAR contents', () => {
    const r = rig();
    pwrite(r, CONFIG + 4n, [PCI.COMMAND_MEMORY | PCI.COMMAND_MASTER, 0]);
    pwrite(r, CONFIG + 0x18n, [0, 0, 0xbc, 0xfe]);
    pwrite(r, vfioPciRegionOffset(2), [1, 2, 3]);
    pwrite(r, CONFIG + BigInt(CAP_OFFSET.PM + 4), [3, 0]);
    const before = pread(r, CONFIG, 4096);
    assert.equal(r.raw('VFIO_DEVICE_RESET', new Uint8Array(4)).errno, undefined);
    const after = pread(r, CONFIG, 4096);
    assert.equal(after[CAP_OFFSET.PM + 4]! & 3, 0);
    after[CAP_OFFSET.PM + 4] = before[CAP_OFFSET.PM + 4]!;
    assert.deepEqual(after, before);
    assert.deepEqual([...pread(r, vfioPciRegionOffset(2), 3)], [0, 0, 0]);
    assert.equal(r.dev.resets, 1);
  });

  it('enable() (first open) restores the config defaults and turns interrupts off', () => {
    const r = rig();
    const defaults = pread(r, CONFIG, 4096);
    pwrite(r, CONFIG + 4n, [6, 0]);
    pwrite(r, CONFIG + 0x10n, [0xff, 0xff, 0xff, 0xff]);
    r.dev.irqs.type = 'msix';
    r.dev.enable();
    assert.deepEqual(pread(r, CONFIG, 4096), defaults);
    assert.equal(r.dev.irqs.type, 'none');
  });
});
