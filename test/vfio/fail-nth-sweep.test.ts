/**
 * Fail-nth sweeps over the VFIO paths: each call is made again and again
 * with fault injection set to fail its 1st, 2nd, ... injection point
 * (src/iommu/fault-inject.ts, as the kernel's fail-nth does), until a run
 * passes them all. After every injected failure the answer is the point's
 * errno (ENOMEM), the state is exactly as before the call (fds, locked and
 * pinned page counts, pins on the buffer, iommufd objects) and the same
 * call then succeeds (nothing half-done stands in its way). Each sweep
 * reports how many injection points it visited and must visit at least one.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IommuIoasAlloc, iommufdCmdNumber } from '../../src/abi/iommufd.ts';
import { VFIO_EXTENSION, VfioDeviceAttachIommufdPt, vfioIoctlNumber } from '../../src/abi/vfio.ts';
import type { KernelOptions } from '../../src/host/kernel.ts';
import { asTask, failNth, setFailNth, visits } from '../../src/iommu/fault-inject.ts';
import { ctxOfFd } from '../../src/iommufd/fops.ts';
import { type Result, VfioClient } from './client.ts';
import { SpaprClient } from './spapr-client.ts';

const TID = 4242;
const PAGE = 0x1000n;
const NVME = '0000:02:00.0'; // x86 preset: group 12
const IOVA = 0x100_0000n;

interface Env {
  c: VfioClient;
  /** Memory the call pins (its pin counts are part of the state). */
  buffer?: { va: bigint; size: bigint };
  /** An iommufd fd whose object count is part of the state. */
  iommufd?: number;
  /** The call under test. */
  call(): Result;
}

function state(e: Env): unknown {
  const { proc } = e.c;
  const pins: number[] = [];
  if (e.buffer) {
    for (const run of proc.mm.resolve(e.buffer.va, e.buffer.size, false))
      for (let off = 0n; off < run.length; off += PAGE)
        pins.push(e.c.kernel.memory.pinCount(run.phys + off));
  }
  return {
    fds: [...proc.fds.keys()].sort((a, b) => a - b),
    counters: { ...proc.counters },
    pins,
    objects: e.iommufd === undefined ? undefined : ctxOfFd(proc, e.iommufd)!.objectCount,
  };
}

/** Sweep `make()`'s call over its injection points; the number visited. */
function sweep(make: () => Env): { points: number; names: string[] } {
  visits.clear();
  for (let n = 1; n < 200; n++) {
    const e = make();
    const before = state(e);
    setFailNth(TID, n);
    const r = asTask(TID, () => e.call());
    const fired = failNth(TID) === 0;
    setFailNth(TID, 0);
    if (!fired) {
      assert.equal(r.ret >= 0, true, `with no fault the call succeeds: ${r.errno}`);
      return { points: n - 1, names: [...visits.keys()] };
    }
    assert.equal(r.errno, 'ENOMEM', `fault at point ${n}`);
    assert.deepEqual(state(e), before, `state after the fault at point ${n}`);
    const again = e.call();
    assert.equal(again.ret >= 0, true, `the call after the fault at point ${n}: ${again.errno}`);
  }
  throw new Error('more than 200 injection points');
}

/** A container of `backend` with group 12 set; SET_IOMMU'd unless `setIommu` is false. */
function container(opts: KernelOptions, setIommu = true) {
  const c = new VfioClient(opts, { capIpcLock: false, rlimitMemlock: 1n << 30n });
  const fd = c.open('/dev/vfio/vfio').ret;
  const group = c.open('/dev/vfio/12').ret;
  assert.equal(c.setContainer(group, fd).ret, 0);
  if (setIommu) {
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', BigInt(VFIO_EXTENSION.TYPE1v2_IOMMU)).ret, 0);
    // the device's open attaches the group to the compat IOAS's domain
    assert.ok(c.getDeviceFd(group, NVME).ret >= 0);
  }
  return { c, fd };
}

const LEGACY: KernelOptions = { personality: { vfioContainer: 'legacy' } };
const COMPAT: KernelOptions = { personality: { vfioContainer: 'iommufd' } };

function mapDma(opts: KernelOptions): Env {
  const { c, fd } = container(opts);
  const size = 16n * PAGE;
  const va = c.mem(size);
  const iommufd = opts === COMPAT ? fd : undefined;
  return {
    c,
    buffer: { va, size },
    ...(iommufd === undefined ? {} : { iommufd }),
    call: () => c.mapDma(fd, va, IOVA, size),
  };
}

function setIommu(opts: KernelOptions): Env {
  const { c, fd } = container(opts, false);
  return {
    c,
    call: () => c.ioctl(fd, 'VFIO_SET_IOMMU', BigInt(VFIO_EXTENSION.TYPE1v2_IOMMU)),
  };
}

/**
 * A group joins a container: with iommufd's compat the first (the compat
 * IOAS is made); with the legacy container a second one once the IOMMU is
 * set (vfio_iommu_type1_attach_group; a first group allocates nothing there).
 */
function setContainer(opts: KernelOptions): Env {
  if (opts === LEGACY) {
    const { c, fd } = container(opts);
    const group = c.open('/dev/vfio/13').ret;
    return { c, call: () => c.setContainer(group, fd) };
  }
  const c = new VfioClient(opts);
  const fd = c.open('/dev/vfio/vfio').ret;
  const group = c.open('/dev/vfio/12').ret;
  return { c, iommufd: fd, call: () => c.setContainer(group, fd) };
}

/** /dev/iommu with an IOAS, and NVME's cdev open (bound when `bound`). */
function cdev(bound: boolean): Env & { dev: number; ioas: number; iommufd: number } {
  const c = new VfioClient();
  const iommufd = c.open('/dev/iommu').ret;
  const r = c.proc.call(
    iommufd,
    iommufdCmdNumber(c.kernel.abi, 'IOMMU_IOAS_ALLOC'),
    IommuIoasAlloc,
    {
      size: 12,
    },
  );
  const dev = c.open(c.cdevPath(NVME)).ret;
  if (bound) assert.equal(c.bind(dev, iommufd).ret, 0);
  return { c, dev, ioas: r.out.out_ioas_id, iommufd, call: () => c.bind(dev, iommufd) };
}

function attach(): Env {
  const e = cdev(true);
  return {
    ...e,
    call: () =>
      e.c.proc.call(
        e.dev,
        vfioIoctlNumber(e.c.kernel.abi, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT'),
        VfioDeviceAttachIommufdPt,
        { argsz: 12, flags: 0, pt_id: e.ioas },
      ),
  };
}

/** A SPAPR v2 container with group 1, 4 MiB of RAM (registered when `register`). */
function spapr(
  call: (c: SpaprClient, ram: bigint) => Result,
  register: boolean,
  dropDefault = false,
): Env {
  const c = new SpaprClient({}, { capIpcLock: false, rlimitMemlock: 1n << 30n }).setup();
  const ram = c.ram(4n << 20n);
  if (register) assert.equal(c.register(ram, 4n << 20n).ret, 0);
  if (dropDefault) assert.equal(c.remove(0n).ret, 0);
  return { c, buffer: { va: ram, size: 4n << 20n }, call: () => call(c, ram) };
}

/** Paths where Linux allocates nothing (iommufd's compat SET_IOMMU only sets flags). */
const NO_POINTS = new Set(['compat SET_IOMMU']);

const SWEEPS: [string, () => Env][] = [
  ['legacy container MAP_DMA', () => mapDma(LEGACY)],
  ['compat container MAP_DMA', () => mapDma(COMPAT)],
  ['legacy SET_IOMMU', () => setIommu(LEGACY)],
  ['compat SET_IOMMU', () => setIommu(COMPAT)],
  ['legacy group SET_CONTAINER', () => setContainer(LEGACY)],
  ['compat group SET_CONTAINER', () => setContainer(COMPAT)],
  ['cdev BIND_IOMMUFD', () => cdev(false)],
  ['cdev ATTACH_IOMMUFD_PT', attach],
  // the pending default window dropped first: TCE_CREATE would make it before the new one, and keep it
  ['SPAPR TCE_CREATE', () => spapr((c) => c.create(16, 1n << 30n, 1), true, true)],
  ['SPAPR REGISTER_MEMORY', () => spapr((c, ram) => c.register(ram, 4n << 20n), false)],
];

describe('fail-nth sweeps over the VFIO paths', () => {
  for (const [name, make] of SWEEPS) {
    it(`${name}: every injected failure leaves the state as it was`, (t) => {
      const { points, names } = sweep(make);
      t.diagnostic(`${name}: ${points} injection points (${names.join(', ')})`);
      if (NO_POINTS.has(name)) assert.equal(points, 0);
      else assert.ok(points >= 1, 'the path has injection points');
    });
  }
});
