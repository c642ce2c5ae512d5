/**
 * A VFIO user-space client over the emulated kernel, shaped like the
 * helpers of QEMU / DPDK / rust-vmm: ioctls by macro name on container,
 * group and device fds, returning `{ ret, errno }` like libc.
 */
import type { ErrnoName } from '../../src/abi/errno.ts';
import {
  VfioDeviceBindIommufd,
  VfioGroupStatus,
  type VfioIoctlName,
  VfioIommuType1DmaMap,
  VfioIommuType1DmaUnmap,
  VfioIommuType1Info,
  vfioIoctlNumber,
} from '../../src/abi/vfio.ts';
import { Kernel, type KernelOptions } from '../../src/host/kernel.ts';
import type { Credentials, Process } from '../../src/host/process.ts';
import { vfioCdevName } from '../../src/vfio/cdev.ts';

/** /dev/vfio/vfio served by iommufd's compat container (the default is the legacy container). */
export const COMPAT = { vfioContainer: 'iommufd' } as const;

export interface Result {
  ret: number;
  errno: ErrnoName | undefined;
}

export class VfioClient {
  readonly kernel: Kernel;
  readonly proc: Process;

  constructor(opts: KernelOptions = {}, creds: Partial<Credentials> = {}) {
    this.kernel = new Kernel(opts);
    this.proc = this.kernel.spawn(creds);
  }

  private result(ret: number): Result {
    return { ret, errno: ret < 0 ? this.proc.errno : undefined };
  }

  /** ioctl with a by-value or pointer argument. */
  ioctl(fd: number, name: VfioIoctlName, arg = 0n): Result {
    return this.result(this.proc.ioctl(fd, vfioIoctlNumber(this.kernel.abi, name), arg));
  }

  /** open(2): the fd, or -1 with errno. */
  open(path: string): Result {
    return this.result(this.proc.open(path));
  }

  /** VFIO_GROUP_GET_STATUS with `argsz` (default 8); flags in `flags`. */
  status(group: number, argsz = 8): Result & { flags: number } {
    const r = this.proc.call(
      group,
      vfioIoctlNumber(this.kernel.abi, 'VFIO_GROUP_GET_STATUS'),
      VfioGroupStatus,
      { argsz, flags: 0xdead },
    );
    return { ret: r.ret, errno: r.errno, flags: r.out.flags };
  }

  /** VFIO_GROUP_SET_CONTAINER(&fd). */
  setContainer(group: number, fd: number): Result {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, fd, true);
    return this.ioctl(group, 'VFIO_GROUP_SET_CONTAINER', this.proc.scratch(b));
  }

  /** VFIO_GROUP_GET_DEVICE_FD("name\0"). */
  getDeviceFd(group: number, name: string): Result {
    const b = new Uint8Array(name.length + 1);
    for (let i = 0; i < name.length; i++) b[i] = name.charCodeAt(i);
    return this.ioctl(group, 'VFIO_GROUP_GET_DEVICE_FD', this.proc.scratch(b));
  }

  /** The device cdev node of `bdf` (/dev/vfio/devices/vfioX). */
  cdevPath(bdf: string): string {
    const name = vfioCdevName(this.kernel, bdf);
    if (!name) throw new Error(`${bdf} has no cdev`);
    return `/dev/vfio/devices/${name}`;
  }

  /** VFIO_DEVICE_BIND_IOMMUFD (argsz 24); `out_devid` in `devid`. */
  bind(
    dev: number,
    iommufd: number,
    opts: { flags?: number; token?: bigint; argsz?: number } = {},
  ): Result & { devid: number } {
    const r = this.proc.call(
      dev,
      vfioIoctlNumber(this.kernel.abi, 'VFIO_DEVICE_BIND_IOMMUFD'),
      VfioDeviceBindIommufd,
      {
        argsz: opts.argsz ?? 24,
        flags: opts.flags ?? 0,
        iommufd,
        out_devid: 0,
        token_uuid_ptr: opts.token ?? 0n,
      },
    );
    return { ret: r.ret, errno: r.errno, devid: r.out.out_devid };
  }

  /** Anonymous read/write memory; returns its VA. */
  mem(length: bigint): bigint {
    return this.proc.mm.mmap({ length, prot: { read: true, write: true } });
  }

  /** VFIO_IOMMU_MAP_DMA READ|WRITE. */
  mapDma(container: number, vaddr: bigint, iova: bigint, size: bigint, flags = 3): Result {
    const r = this.proc.call(
      container,
      vfioIoctlNumber(this.kernel.abi, 'VFIO_IOMMU_MAP_DMA'),
      VfioIommuType1DmaMap,
      { argsz: 32, flags, vaddr, iova, size },
    );
    return { ret: r.ret, errno: r.errno };
  }

  /** VFIO_IOMMU_UNMAP_DMA; `size` is the written-back unmapped size. */
  unmapDma(container: number, iova: bigint, size: bigint, flags = 0): Result & { size: bigint } {
    const r = this.proc.call(
      container,
      vfioIoctlNumber(this.kernel.abi, 'VFIO_IOMMU_UNMAP_DMA'),
      VfioIommuType1DmaUnmap,
      { argsz: 24, flags, iova, size },
    );
    return { ret: r.ret, errno: r.errno, size: r.out.size };
  }

  /**
   * VFIO_IOMMU_GET_INFO as QEMU does it: first with sizeof, then again
   * with the argsz the kernel asked for. Returns the whole buffer.
   */
  getInfo(container: number): Result & { first: number; bytes: Uint8Array } {
    const first = this.proc.call(
      container,
      vfioIoctlNumber(this.kernel.abi, 'VFIO_IOMMU_GET_INFO'),
      VfioIommuType1Info,
      { argsz: 24 },
    );
    if (first.ret < 0)
      return { ret: first.ret, errno: first.errno, first: 0, bytes: new Uint8Array() };
    const argsz = first.out.argsz;
    const buf = new Uint8Array(argsz);
    new DataView(buf.buffer).setUint32(0, argsz, true);
    const addr = this.proc.scratch(buf);
    const r = this.ioctl(container, 'VFIO_IOMMU_GET_INFO', addr);
    return { ...r, first: argsz, bytes: this.proc.mm.read(addr, argsz) };
  }
}

/** The capabilities of a GET_INFO buffer: id → offset, following `cap_offset` and `next`. */
export function capChain(info: Uint8Array): Map<number, number> {
  const v = new DataView(info.buffer, info.byteOffset, info.byteLength);
  const caps = new Map<number, number>();
  let off = v.getUint32(16, true);
  while (off !== 0) {
    caps.set(v.getUint16(off, true), off);
    off = v.getUint32(off + 4, true);
  }
  return caps;
}

/** The IOVA_RANGE capability's ranges at `off`. */
export function iovaRanges(info: Uint8Array, off: number): { start: bigint; end: bigint }[] {
  const v = new DataView(info.buffer, info.byteOffset, info.byteLength);
  const n = v.getUint32(off + 8, true);
  const out: { start: bigint; end: bigint }[] = [];
  for (let i = 0; i < n; i++) {
    const at = off + 16 + 16 * i;
    out.push({ start: v.getBigUint64(at, true), end: v.getBigUint64(at + 8, true) });
  }
  return out;
}
