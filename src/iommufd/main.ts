import { fail } from '../abi/errno.ts';
import { hex } from '../abi/hex.ts';
import { IOMMUFD_CMD_BASE, IOMMUFD_TYPE, io } from '../abi/ioctl.ts';
import {
  type IommuDestroy,
  type IommufdCmd,
  type IommufdCmdName,
  type IommufdCmdStruct,
  iommufdCmd,
  iommufdCmdByNumber,
} from '../abi/iommufd.ts';
import { type Layout, u32At } from '../abi/layout.ts';
import type { Caller } from '../kernel/file.ts';
import type { IommufdCtx } from './context.ts';
import { faultQueueAlloc } from './fault.ts';
import { hwInfo } from './hw-info.ts';
import { hwptAlloc, hwptGetDirtyBitmap, hwptSetDirtyTracking } from './hw-pagetable.ts';
import { hwQueueAlloc } from './hw-queue.ts';
import { hwptInvalidate } from './hwpt-nested.ts';
import {
  ioasAlloc,
  ioasAllowIovas,
  ioasChangeProcess,
  ioasCopy,
  ioasIovaRanges,
  ioasMap,
  ioasMapFile,
  ioasUnmap,
  option,
  vfioIoas,
} from './ioas.ts';
import { Ucmd } from './ucmd.ts';
import { veventqAlloc } from './veventq.ts';
import { vdeviceAlloc, viommuAlloc } from './viommu.ts';

/** A command's handler, given the command's own decoded struct. */
type CmdHandler<T> = (ctx: IommufdCtx, caller: Caller, ucmd: Ucmd<T>) => number;

// biome-ignore lint/suspicious/noExplicitAny: the dispatcher and TEST_CMD hand over the struct the table decoded
type Handler = CmdHandler<any>;

/** One handler per command of the uAPI table, each taking that command's struct. */
export type HandlerTable = { readonly [N in IommufdCmdName]: CmdHandler<IommufdCmdStruct<N>> };

function destroy(ctx: IommufdCtx, _caller: Caller, ucmd: Ucmd<V<typeof IommuDestroy>>): number {
  ctx.destroy(ucmd.cmd.id);
  return 0;
}

type V<L> = L extends Layout<infer T> ? T : never;

/**
 * Handlers by command name. `satisfies HandlerTable`: a command of the
 * table without a handler, or a handler taking another command's struct,
 * does not compile.
 */
const HANDLERS = {
  IOMMU_DESTROY: destroy,
  IOMMU_IOAS_ALLOC: (ctx, _c, u) => ioasAlloc(ctx, u),
  IOMMU_IOAS_ALLOW_IOVAS: (ctx, _c, u) => ioasAllowIovas(ctx, u),
  IOMMU_IOAS_COPY: (ctx, _c, u) => ioasCopy(ctx, u),
  IOMMU_IOAS_IOVA_RANGES: (ctx, _c, u) => ioasIovaRanges(ctx, u),
  IOMMU_IOAS_MAP: ioasMap,
  IOMMU_IOAS_UNMAP: (ctx, _c, u) => ioasUnmap(ctx, u),
  IOMMU_OPTION: option,
  IOMMU_VFIO_IOAS: (ctx, _c, u) => vfioIoas(ctx, u),
  IOMMU_HWPT_ALLOC: (ctx, _c, u) => hwptAlloc(ctx, u),
  IOMMU_GET_HW_INFO: (ctx, _c, u) => hwInfo(ctx, u),
  IOMMU_HWPT_SET_DIRTY_TRACKING: (ctx, _c, u) => hwptSetDirtyTracking(ctx, u),
  IOMMU_HWPT_GET_DIRTY_BITMAP: (ctx, _c, u) => hwptGetDirtyBitmap(ctx, u),
  IOMMU_IOAS_MAP_FILE: ioasMapFile,
  IOMMU_HWPT_INVALIDATE: (ctx, _c, u) => hwptInvalidate(ctx, u),
  IOMMU_VIOMMU_ALLOC: (ctx, _c, u) => viommuAlloc(ctx, u),
  IOMMU_VDEVICE_ALLOC: (ctx, _c, u) => vdeviceAlloc(ctx, u),
  IOMMU_VEVENTQ_ALLOC: veventqAlloc,
  IOMMU_HW_QUEUE_ALLOC: (ctx, _c, u) => hwQueueAlloc(ctx, u),
  IOMMU_FAULT_QUEUE_ALLOC: faultQueueAlloc,
  IOMMU_IOAS_CHANGE_PROCESS: ioasChangeProcess,
} satisfies HandlerTable;

/** An extra command slot beyond the uAPI table (IOMMU_TEST_CMD at nr 0xa0). */
export interface ExtraCmd {
  readonly cmd: IommufdCmd;
  readonly handler: Handler;
}

/** The handler of nr < 0x80 and nrs past the table (VFIO container compatibility, iommufd_vfio_ioctl). */
export type CompatHandler = (
  ctx: IommufdCtx,
  caller: Caller,
  request: number,
  arg: bigint,
) => number;

/**
 * The /dev/iommu ioctl entry (iommufd_fops_ioctl): route nr < 0x80 and
 * nrs past the table (the personality's `iommufdLastCmd`, or TEST_CMD) to VFIO compat; read `size` (EFAULT before anything
 * else); the exact request word must match (ENOTTY); `size` below the
 * minimum is EINVAL; copy in with extensible-struct rules; run the handler.
 */
export function iommufdIoctl(
  ctx: IommufdCtx,
  caller: Caller,
  request: number,
  arg: bigint,
  extra: ExtraCmd | undefined,
  compat: CompatHandler,
): number {
  const nr = request & 0xff;
  // the ioctl table ends at the version's last command, or at TEST_CMD
  const lastNr = iommufdCmd(ctx.host.personality.iommufdLastCmd).nr;
  const end = extra ? extra.cmd.nr + 1 : lastNr + 1;
  if (nr < IOMMUFD_CMD_BASE || nr >= end) return compat(ctx, caller, request, arg);
  const size = u32At(caller.mm.read(arg, 4), 0);
  let cmd: IommufdCmd | undefined;
  let handler: Handler | undefined;
  if (extra && nr === extra.cmd.nr) {
    if (io(ctx.host.abi, IOMMUFD_TYPE, nr) === request >>> 0) {
      cmd = extra.cmd;
      handler = extra.handler;
    }
  } else {
    cmd = iommufdCmdByNumber(ctx.host.abi, request);
    handler =
      cmd && cmd.nr <= lastNr ? (HANDLERS[cmd.name as IommufdCmdName] as Handler) : undefined;
  }
  if (!cmd || !handler)
    fail('ENOTTY', `no iommufd command ${hex(request >>> 0)}`, 'iommufd_fops_ioctl');
  if (size < cmd.minSize)
    fail('EINVAL', `size ${size} below the minimum ${cmd.minSize}`, 'iommufd_fops_ioctl');
  const ucmd = Ucmd.copyIn(caller.mm, arg, size, cmd.layout);
  return handler(ctx, caller, ucmd);
}
