import { IommufdCtx } from '../iommufd/context.ts';
import { type ExtraCmd, iommufdIoctl } from '../iommufd/main.ts';
import { vfioCompat } from '../iommufd/vfio-compat.ts';
import type { FileOps } from './file.ts';
import type { Kernel } from './kernel.ts';
import type { Process } from './process.ts';

/**
 * The /dev/iommu character device: each open is a new iommufd context,
 * destroyed when the last fd and every file that holds it are gone.
 * `openedAsVfio` is the /dev/vfio/vfio personality (per-mm accounting).
 * Container ioctls (nr < 0x80) are served by VFIO compat on every open.
 */
export function openIommufd(
  kernel: Kernel,
  extra: ExtraCmd | undefined,
  opts: { openedAsVfio: boolean } = { openedAsVfio: false },
): FileOps & { ctx: IommufdCtx } {
  const ctx = new IommufdCtx(kernel, opts);
  return {
    kind: 'iommufd',
    ctx,
    ioctl: (caller, request, arg) => iommufdIoctl(ctx, caller, request, arg, extra, vfioCompat),
    release: () => ctx.release(),
  };
}

/** The iommufd context behind `fd` (for kernel-side users such as VFIO binding a device). */
export function ctxOfFd(proc: Process, fd: number): IommufdCtx {
  const ops = proc.fds.get(fd)?.ops as { ctx?: IommufdCtx } | undefined;
  if (!ops?.ctx) throw new Error(`fd ${fd} is not /dev/iommu`);
  return ops.ctx;
}
