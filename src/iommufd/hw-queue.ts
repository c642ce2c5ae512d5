import { fail } from '../abi/errno.ts';
import { IOMMU_HW_QUEUE_TYPE, type IommuHwQueueAlloc } from '../abi/iommufd.ts';
import type { Layout } from '../abi/layout.ts';
import { U64_MAX } from '../abi/layout.ts';
import type { HwQueueCore } from '../iommu/viommu.ts';
import { IommufdAccess, type PinnedRun } from './access.ts';
import type { IommufdCtx } from './context.ts';
import { IommufdObject } from './object.ts';
import type { Ucmd } from './ucmd.ts';
import type { Viommu } from './viommu.ts';

type V<L> = L extends Layout<infer T> ? T : never;

/** sizeof(struct page *): one entry of the pinned-page array. */
const PAGE_POINTER_SIZE = 8n;
/** kvmalloc() refuses more than INT_MAX bytes. */
const KVMALLOC_MAX = 0x7fffffffn;

/**
 * A HW queue of a vIOMMU (iommufd_hw_queue): guest queue memory at
 * `baseAddr` in the nesting parent, pinned page-aligned through an
 * internal access so the IOAS cannot unmap it (EBUSY) while the queue
 * lives. It holds its vIOMMU; a queue the driver made depend on another
 * holds that one.
 */
export class HwQueue extends IommufdObject implements HwQueueCore {
  readonly type = 'hw_queue';
  private viommu: Viommu | undefined;
  private access: IommufdAccess | undefined;
  /** The pinned, page-aligned range: [start, start+length). */
  private pinned: { start: bigint; length: bigint } | undefined;
  private driverDestroy: (() => void) | undefined;

  constructor(
    readonly baseAddr: bigint,
    readonly length: bigint,
  ) {
    super();
  }

  depend(on: HwQueueCore): void {
    (on as HwQueue).get();
  }

  undepend(on: HwQueueCore): void {
    (on as HwQueue).put();
  }

  /**
   * iommufd_hw_queue_alloc_phys(): pin the pages under the queue through a
   * new internal access on the parent's IOAS; they must be physically
   * consecutive (EFAULT). ERANGE when the page-rounded length overflows,
   * ENOMEM when the page array would pass kvcalloc()'s limit. Returns the
   * physical address of `baseAddr`.
   */
  pin(ctx: IommufdCtx, viommu: Viommu): bigint {
    const ps = ctx.host.memory.pageSize;
    const start = this.baseAddr - (this.baseAddr % ps);
    const rounded = this.baseAddr - start + this.length + ps - 1n;
    const where = 'iommufd_hw_queue_alloc_phys';
    if (rounded > U64_MAX) fail('ERANGE', 'the page-rounded length passes U64_MAX', where);
    const npages = rounded / ps;
    if (npages * PAGE_POINTER_SIZE > KVMALLOC_MAX) {
      fail('ENOMEM', `page array of ${npages} pages above the kvcalloc() limit`, where);
    }
    const length = npages * ps;
    const access = IommufdAccess.create(
      ctx,
      { needsPinPages: true, unmap: () => {} },
      { internal: true },
    );
    let runs: PinnedRun[];
    try {
      access.attach(viommu.hwpt.ioas.id);
      runs = access.pinPages(start, length, false);
    } catch (e) {
      access.release();
      throw e;
    }
    this.access = access;
    this.pinned = { start, length };
    for (let i = 1; i < runs.length; i++) {
      if (runs[i]!.phys !== runs[i - 1]!.phys + runs[i - 1]!.length) {
        fail('EFAULT', 'HW queue pages are not physically contiguous', where);
      }
    }
    return runs[0]!.phys + (this.baseAddr - start);
  }

  /** Hand the queue to the vIOMMU's driver (hw_queue_init_phys). */
  init(viommu: Viommu, index: number, basePhys: bigint): void {
    this.viommu = viommu;
    viommu.get();
    this.driverDestroy = viommu.ops.hwQueueInit(this, index, basePhys);
  }

  destroy(): void {
    this.driverDestroy?.();
    if (this.access) {
      if (this.pinned) this.access.unpinPages(this.pinned.start, this.pinned.length);
      this.access.release();
    }
    this.viommu?.put();
  }
}

/**
 * IOMMU_HW_QUEUE_ALLOC. Errors in order: EOPNOTSUPP (flags, type
 * DEFAULT), EINVAL (length 0), EOVERFLOW (range wraps), ENOENT (no such
 * vIOMMU), EOPNOTSUPP (type unknown to the driver); then, with the queue's
 * ID and its access's ID taken, the pin (ENOENT for a hole, EFAULT for
 * scattered pages) and the driver's index rules. Everything is undone on
 * failure.
 */
export function hwQueueAlloc(ctx: IommufdCtx, ucmd: Ucmd<V<typeof IommuHwQueueAlloc>>): number {
  const cmd = ucmd.cmd;
  const where = 'iommufd_hw_queue_alloc_ioctl';
  if (cmd.flags !== 0 || cmd.type === IOMMU_HW_QUEUE_TYPE.DEFAULT) {
    fail('EOPNOTSUPP', 'flags not 0, or type DEFAULT', where);
  }
  if (cmd.length === 0n) fail('EINVAL', 'length 0', where);
  if (cmd.nesting_parent_iova + cmd.length - 1n > U64_MAX) {
    fail('EOVERFLOW', 'nesting_parent_iova + length - 1 passes U64_MAX', where);
  }
  const viommu = ctx.get<Viommu>(cmd.viommu_id, 'viommu');
  if (!viommu.ops.hwQueueSupported(cmd.type)) {
    fail('EOPNOTSUPP', `the vIOMMU has no HW queue of type ${cmd.type}`, where);
  }

  const queue = new HwQueue(cmd.nesting_parent_iova, cmd.length);
  ctx.allocId(queue);
  try {
    const basePhys = queue.pin(ctx, viommu);
    queue.init(viommu, cmd.index, basePhys);
    cmd.out_hw_queue_id = queue.id;
    ucmd.respond();
  } catch (e) {
    ctx.abort(queue);
    queue.destroy();
    throw e;
  }
  ctx.finalize(queue);
  return 0;
}
