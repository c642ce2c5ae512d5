/**
 * The /dev/iommu character device (iommufd_fops): each open is a new
 * iommufd context, destroyed when the last fd and every file that holds it
 * are gone. mmap maps a region an object offers (src/iommufd/mmap.ts).
 */

import { faultPoint } from '../iommu/fault-inject.ts';
import type { Caller, FileOps } from '../kernel/file.ts';
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
  const ctx = new IommufdCtx(host, opts);
  // opened as /dev/vfio/vfio it is the (compat) container, and traces name it like the legacy one
  const [plain, spapr] = opts.openedAsVfio
    ? ['vfio-container', 'vfio-container-spapr']
    : ['iommufd', 'iommufd-spapr'];
  return {
    /** The `-spapr` kind while an extension's SPAPR backend serves the container ioctls: traces decode them by it. */
    get kind() {
      return ctx.vfioCompatBackend ? spapr : plain;
    },
    ctx,
    ioctl: (caller, request, arg) => iommufdIoctl(ctx, caller, request, arg, extra, vfioCompat),
    mmap: (_caller, offset, length, shared, host, exec = false) =>
      ctx.mmaps.mmap(offset, length, { shared, exec }, host),
    release: () => ctx.release(),
  };
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
