/**
 * Test fixtures: a kernel, a root process with /dev/iommu open, typed
 * ioctl calls by command name, and intel devices bound to the context the
 * way VFIO would bind them.
 */
import type { ErrnoName } from '../src/abi/errno.ts';
import { type IommufdCmdName, iommufdCmd, iommufdCmdNumber } from '../src/abi/iommufd.ts';
import type { Layout } from '../src/abi/layout.ts';
import { IntelIommu, type IntelIommuOptions } from '../src/drivers/intel/driver.ts';
import { Kernel, type KernelOptions } from '../src/host/kernel.ts';
import type { Process } from '../src/host/process.ts';
import { Device, type ReservedRegion } from '../src/iommu/device.ts';
import { Group } from '../src/iommu/group.ts';
import type { IommufdCtx } from '../src/iommufd/context.ts';
import { IommufdDevice } from '../src/iommufd/device.ts';
import { ctxOfFd } from '../src/iommufd/fops.ts';
import type { SharedStore } from '../src/kernel/file.ts';

type V<L> = L extends Layout<infer T> ? T : never;

export interface Fixture {
  kernel: Kernel;
  proc: Process;
  fd: number;
  ctx: IommufdCtx;
  /** ioctl by command name with a struct; `size` defaults to sizeof. */
  call<N extends IommufdCmdName>(
    name: N,
    value: Record<string, number | bigint>,
  ): { ret: number; errno: ErrnoName | undefined; out: Record<string, number | bigint> };
  /** IOAS_ALLOC; returns the id. */
  ioas(): number;
  /** Anonymous read/write memory of `length` bytes; returns its VA. */
  mem(length: bigint): bigint;
  /**
   * An intel device in a group of its own, bound to the context; returns the
   * DEVICE object. It sits behind `iommu` (devices behind one unit can share
   * a domain) or behind a new unit built from the other options.
   */
  intelDevice(opts?: IntelDeviceOptions): IommufdDevice;
}

export interface IntelDeviceOptions extends IntelIommuOptions {
  reserved?: ReservedRegion[];
  iommu?: IntelIommu;
}

export function setup(opts: KernelOptions = {}): Fixture {
  const kernel = new Kernel(opts);
  return client(kernel, kernel.spawn());
}

/** Group numbers per kernel, so fixtures of several processes never share one. */
const groupIds = new WeakMap<Kernel, number>();

/** The fixture of another process of `kernel` (it opens its own /dev/iommu). */
export function client(kernel: Kernel, proc: Process): Fixture {
  const fd = proc.open('/dev/iommu');
  const ctx = ctxOfFd(proc, fd);
  const f: Fixture = {
    kernel,
    proc,
    fd,
    ctx,
    call(name, value) {
      const cmd = iommufdCmd(name);
      const r = proc.call(
        fd,
        iommufdCmdNumber(kernel.abi, name),
        cmd.layout,
        value as Partial<V<typeof cmd.layout>>,
      );
      return { ret: r.ret, errno: r.errno, out: r.out as Record<string, number | bigint> };
    },
    ioas() {
      const r = f.call('IOMMU_IOAS_ALLOC', {});
      if (r.ret !== 0) throw new Error(`IOAS_ALLOC failed: ${r.errno}`);
      return r.out.out_ioas_id as number;
    },
    mem(length) {
      return proc.mm.mmap({ length, prot: { read: true, write: true } });
    },
    intelDevice(o = {}) {
      const { reserved, iommu, ...unit } = o;
      const driver = iommu ?? new IntelIommu(unit);
      const group = (groupIds.get(kernel) ?? 0) + 1;
      groupIds.set(kernel, group);
      const dev = new Device(
        `intel${group}`,
        driver,
        new Group(group),
        kernel.memory,
        reserved ?? [],
      );
      return IommufdDevice.bind(ctx, dev);
    },
  };
  return f;
}

/** An in-memory store standing in for the engine's memfd of a shared file (a BAR's, a ring's). */
export function memStore(_name: string, size: bigint): SharedStore {
  const bytes = new Uint8Array(Number(size));
  return {
    fd: 42,
    read: (o, n) => bytes.slice(Number(o), Number(o) + n),
    write: (o, d) => bytes.set(d, Number(o)),
    zero: (o, n) => bytes.fill(0, Number(o), Number(o + n)),
  };
}
