/**
 * Warnings (docs/warnings.md): each is raised by the suspicious sequence
 * and names the call that caused it; the innocent neighbour of each
 * sequence raises nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Process } from '../../src/host/process.ts';
import { formatWarning, type Warning, Warnings } from '../../src/host/warnings.ts';
import type { Device } from '../../src/iommu/device.ts';
import { FIXED, map, memAt, PAGE, RW, U64_MAX } from '../iommufd/util.ts';
import { client, type Fixture, setup } from '../support.ts';
import { VfioClient } from '../vfio/client.ts';
import { SpaprClient } from '../vfio/spapr-client.ts';

const VA = 0x4000_0000n;
const MIB = 1n << 20n;

/** Warnings of `proc`'s kernel collected from its traced calls (and the DMA of `devices`). */
function watch(proc: Process, ...devices: Device[]): Warning[] & { exit(): void } {
  const out: Warning[] = [];
  const w = new Warnings(proc.kernel, (x) => out.push(x));
  for (const d of devices) w.watchDevice(d);
  proc.trace = (line, event) => w.observe(proc, line, event);
  return Object.assign(out, { exit: () => w.exit(proc) });
}

const ids = (ws: Warning[]) => ws.map((w) => w.id);

/** An iommufd fixture whose IOAS has an intel device attached (so DMA translates). */
function withDevice(f: Fixture = setup()) {
  const ioas = f.ioas();
  const idev = f.intelDevice();
  idev.attach(ioas);
  return { f, ioas, dev: idev.dev };
}

describe('warnings', () => {
  it('unmap-nothing: an UNMAP that returned 0 and removed nothing (compat UNMAP_DMA, IOAS unmap-all)', () => {
    const c = new VfioClient();
    const ws = watch(c.proc);
    const fd = c.open('/dev/vfio/vfio').ret;
    assert.equal(c.setContainer(c.open('/dev/vfio/12').ret, fd).ret, 0);
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', 3n).ret, 0);
    const r = c.unmapDma(fd, 0x100000n, MIB);
    assert.deepEqual([r.ret, r.size], [0, 0n]);
    assert.deepEqual(ids(ws), ['unmap-nothing']);
    assert.match(ws[0]!.cause, /^ioctl\(\d+<vfio-container>, VFIO_IOMMU_UNMAP_DMA, .* = 0$/);
    assert.equal(ws[0]!.message, 'VFIO_IOMMU_UNMAP_DMA at 0x100000 returned 0 and removed nothing');
    // an unmap that removed something is fine
    assert.equal(c.mapDma(fd, c.mem(MIB), 0x100000n, MIB).ret, 0);
    assert.equal(c.unmapDma(fd, 0x100000n, MIB).size, MIB);
    assert.equal(ws.length, 1);

    const f = setup();
    const fws = watch(f.proc);
    const u = f.call('IOMMU_IOAS_UNMAP', { ioas_id: f.ioas(), iova: 0n, length: U64_MAX });
    assert.deepEqual([u.ret, u.out.length], [0, 0n]);
    assert.deepEqual(ids(fws), ['unmap-nothing']);
  });

  it('dma-after-eexist: DMA into a range whose MAP failed EEXIST names the failed MAP', () => {
    const { f, ioas, dev } = withDevice();
    const ws = watch(f.proc, dev);
    const va = memAt(f, VA, 2n * PAGE);
    map(f, ioas, va, PAGE, { iova: 0x10000n });
    const again = f.call('IOMMU_IOAS_MAP', {
      ioas_id: ioas,
      user_va: va + PAGE,
      length: PAGE,
      iova: 0x10000n,
      flags: RW | FIXED,
    });
    assert.equal(again.errno, 'EEXIST');
    assert.throws(() => dev.dmaWrite(0x50000n, Uint8Array.of(1)), /fault/, 'elsewhere: no warning');
    assert.deepEqual(ids(ws), []);
    dev.dmaWrite(0x10010n, Uint8Array.of(1));
    assert.deepEqual(ids(ws), ['dma-after-eexist']);
    assert.match(ws[0]!.cause, /IOMMU_IOAS_MAP, .*iova=0x10000\}\) = -1 EEXIST \(File exists\) </);
    assert.match(
      ws[0]!.message,
      /DMA at 0x10010 \(1 bytes, went through\) into a range whose MAP failed EEXIST/,
    );
  });

  it('map-before-set-iommu: MAP_DMA on a container before VFIO_SET_IOMMU, on both containers', () => {
    for (const vfioContainer of ['iommufd', 'type1'] as const) {
      const c = new VfioClient({ personality: { vfioContainer } });
      const ws = watch(c.proc);
      const fd = c.open('/dev/vfio/vfio').ret;
      assert.equal(c.setContainer(c.open('/dev/vfio/12').ret, fd).ret, 0);
      const early = c.mapDma(fd, c.mem(MIB), 0x100000n, MIB);
      // the compat container takes it into its IOAS; the legacy one refuses it
      assert.equal(early.errno, vfioContainer === 'type1' ? 'EINVAL' : undefined, vfioContainer);
      assert.deepEqual(
        ids(ws),
        ['map-before-set-iommu'],
        `${vfioContainer}: ${ws.map(formatWarning)}`,
      );
      assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', 3n).ret, 0);
      c.mapDma(fd, c.mem(MIB), 0x300000n, MIB);
      assert.equal(ws.length, 1, `${vfioContainer}: after SET_IOMMU no warning`);
    }
  });

  it('dma-after-unmap: device DMA to an IOVA unmapped a few calls ago; a remap in between is fine', () => {
    const { f, ioas, dev } = withDevice();
    const ws = watch(f.proc, dev);
    const va = memAt(f, VA, PAGE);
    map(f, ioas, va, PAGE, { iova: 0x10000n });
    f.call('IOMMU_IOAS_UNMAP', { ioas_id: ioas, iova: 0x10000n, length: PAGE });
    map(f, ioas, va, PAGE, { iova: 0x10000n });
    dev.dmaRead(0x10000n, 4);
    assert.deepEqual(ids(ws), [], 'remapped: the DMA is legitimate');
    f.call('IOMMU_IOAS_UNMAP', { ioas_id: ioas, iova: 0x10000n, length: PAGE });
    assert.throws(() => dev.dmaRead(0x10000n, 4));
    assert.deepEqual(ids(ws), ['dma-after-unmap']);
    assert.match(ws[0]!.message, /DMA at 0x10000 \(4 bytes, faulted at 0x10000\) 0 calls after/);
    assert.match(ws[0]!.cause, /IOMMU_IOAS_UNMAP, .* = 0$/);
  });

  it('memlock-near-limit: pinned pages reach 90% of RLIMIT_MEMLOCK, once', () => {
    const k = setup().kernel;
    const f = client(k, k.spawn({ capIpcLock: false, rlimitMemlock: 10n * PAGE }));
    const { ioas } = withDevice(f);
    const ws = watch(f.proc);
    const va = memAt(f, VA, 10n * PAGE);
    map(f, ioas, va, 8n * PAGE, { iova: 0x100000n });
    assert.deepEqual(ids(ws), [], '8 of 10 pages');
    map(f, ioas, va + 8n * PAGE, PAGE, { iova: 0x200000n });
    assert.deepEqual(ids(ws), ['memlock-near-limit']);
    assert.match(ws[0]!.message, /^9 pages pinned or locked of RLIMIT_MEMLOCK's 10 \(90%\)/);
    map(f, ioas, va + 9n * PAGE, PAGE, { iova: 0x300000n });
    assert.equal(ws.length, 1, 'not again while it stays high');
  });

  it('window-never-mapped: a SPAPR window created, then removed or closed with nothing mapped', () => {
    const c = new SpaprClient();
    const ws = watch(c.proc);
    c.setup();
    const unused = c.create(16, 1n << 30n);
    assert.equal(unused.ret, 0);
    const start = unused.out.start_addr;
    assert.equal(c.remove(start).ret, 0);
    assert.deepEqual(ids(ws), ['window-never-mapped']);
    assert.match(ws[0]!.cause, /VFIO_IOMMU_SPAPR_TCE_CREATE/);
    // a window that was mapped into is fine when it goes
    const used = c.create(16, 1n << 30n);
    const va = c.ram(MIB);
    assert.equal(c.register(va, MIB).ret, 0);
    assert.equal(c.mapDma(c.container, va, used.out.start_addr, 0x10000n).ret, 0);
    // closing the container with a never-used window warns too
    assert.equal(c.create(16, 1n << 30n).errno, 'ENOSPC', 'two windows at most');
    c.proc.close(c.container);
    assert.deepEqual(ids(ws), ['window-never-mapped']);
  });

  it('fd-leaked: fds still open at exit, each with the call that opened it', () => {
    const f = setup();
    const ws = watch(f.proc);
    const kept = f.proc.open('/dev/vfio/12');
    const closed = f.proc.open('/dev/iommu');
    f.proc.close(closed);
    ws.exit();
    assert.deepEqual(ids(ws), ['fd-leaked']);
    assert.equal(ws[0]!.message, `fd ${kept} (vfio-group) is still open at exit`);
    assert.equal(ws[0]!.cause, `openat(AT_FDCWD, "/dev/vfio/12", O_RDWR) = ${kept}`);
    assert.equal(
      formatWarning(ws[0]!),
      `--- warning fd-leaked: fd ${kept} (vfio-group) is still open at exit; caused by: openat(AT_FDCWD, "/dev/vfio/12", O_RDWR) = ${kept} ---`,
    );
  });
});
