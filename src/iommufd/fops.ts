/**
 * The /dev/iommu character device (iommufd_fops): each open is a new
 * iommufd context, destroyed when the last fd and every file that holds it
 * are gone. mmap maps a region an object offers (src/iommufd/mmap.ts).
 */

import { faultPoint } from '../iommu/fault-inject.ts';
import type { Caller, DeviceMapping, FileOps, MmapHost } from '../kernel/file.ts';
import type { IommufdHost } from './context.ts';
import { IommufdCtx } from './context.ts';
import { type ExtraCmd, iommufdIoctl } from './main.ts';
import { vfioCompat } from './vfio-compat.ts';

/** An open /dev/iommu file; `ctx` lets kernel-side users (VFIO, KVM) find the context. */
export type IommufdFile = FileOps & { readonly ctx: IommufdCtx };

/**
 * iommufd_fops_open(): `openedAsVfio` is the /dev/vfio/vfio personality
 * (per-mm accounting). Container ioctls (nr < 0x80) are served by VFIO
 * compat on every open.
 */
export function openIommufd(
  host: IommufdHost,
  extra: ExtraCmd | undefined,
  opts: { openedAsVfio: boolean } = { openedAsVfio: false },
): IommufdFile {
  faultPoint('iommufd_fops_open');
  return new IommufdFileOps(new IommufdCtx(host, opts), extra, opts.openedAsVfio);
}

/**
 * The file operations of one open: a class, not an object literal with a
 * getter (V8 keeps such a literal in dictionary mode, and every ioctl's
 * `ops.ioctl` would then be a slow lookup).
 */
class IommufdFileOps implements IommufdFile {
  constructor(
    readonly ctx: IommufdCtx,
    private readonly extra: ExtraCmd | undefined,
    /** Opened as /dev/vfio/vfio: the (compat) container, and traces name it like the legacy one. */
    private readonly openedAsVfio: boolean,
  ) {}

  /** The `-spapr` kind while an extension's SPAPR backend serves the container ioctls: traces decode them by it. */
  get kind(): string {
    const spapr = this.ctx.vfioCompatBackend !== undefined;
    if (this.openedAsVfio) return spapr ? 'vfio-container-spapr' : 'vfio-container';
    return spapr ? 'iommufd-spapr' : 'iommufd';
  }

  ioctl(caller: Caller, request: number, arg: bigint): number {
    return iommufdIoctl(this.ctx, caller, request, arg, this.extra, vfioCompat);
  }

  mmap(
    _caller: Caller,
    offset: bigint,
    length: bigint,
    shared: boolean,
    host: MmapHost,
    exec = false,
  ): DeviceMapping {
    return this.ctx.mmaps.mmap(offset, length, { shared, exec }, host);
  }

  release(): void {
    this.ctx.release();
  }
}

/** The iommufd context of an open file, if it is /dev/iommu (or /dev/vfio/vfio served by iommufd). */
export function iommufdCtxOf(ops: FileOps): IommufdCtx | undefined {
  const ctx = (ops as Partial<IommufdFile>).ctx;
  return ctx instanceof IommufdCtx ? ctx : undefined;
}

/** The iommufd context behind `fd` (for kernel-side users such as VFIO binding a device). */
export function ctxOfFd(caller: Caller, fd: number): IommufdCtx {
  const file = caller.file(fd);
  const ctx = file && iommufdCtxOf(file);
  if (!ctx) throw new Error(`fd ${fd} is not /dev/iommu`);
  return ctx;
}
