import { fail } from '../abi/errno.ts';
import {
  IOMMU_VEVENTQ_FLAG,
  IOMMU_VEVENTQ_TYPE,
  IommufdVeventHeader,
  type IommuVeventqAlloc,
} from '../abi/iommufd.ts';
import type { Layout } from '../abi/layout.ts';
import type { Caller } from '../kernel/file.ts';
import { type FileOps, POLLIN, POLLOUT, POLLRDNORM } from '../kernel/file.ts';
import type { IommufdCtx } from './context.ts';
import { IommufdObject } from './object.ts';
import type { Ucmd } from './ucmd.ts';
import type { Viommu } from './viommu.ts';

type V<L> = L extends Layout<infer T> ? T : never;

/** Sequence numbers wrap at INT_MAX. */
const SEQUENCE_MASK = 0x7fffffff;

/** One queued record: a vEVENT, or the lost-events marker (no payload). */
export interface Vevent {
  readonly lost: boolean;
  readonly payload: Uint8Array;
  sequence: number;
}

/**
 * A vIOMMU event queue (iommufd_veventq) of one type, read through its
 * own fd. At most `depth` events wait; an event reported to a full queue
 * is dropped and the single lost-events marker goes to the tail instead.
 * Each record queued takes the next sequence number (wrapping at INT_MAX);
 * a marker still at the tail is removed before anything is queued after
 * it, so a repeated loss re-stamps it. It holds its vIOMMU.
 */
export class Veventq extends IommufdObject {
  readonly type = 'veventq';
  private readonly deliver: Vevent[] = [];
  private readonly lostMarker: Vevent = { lost: true, payload: new Uint8Array(0), sequence: 0 };
  private numEvents = 0;
  private sequence = 0;
  private wakes = 0;

  constructor(
    readonly viommu: Viommu,
    /** The vEVENTQ type (enum iommu_veventq_type or a driver's own). */
    readonly vtype: number,
    readonly depth: number,
  ) {
    super();
  }

  /** Times a record (an event or the lost-events marker) was queued: each wakes the readers. */
  get wakeups(): number {
    return this.wakes;
  }

  /** iommufd_viommu_report_event() on this queue: queue `payload`, or mark the loss when full. */
  report(payload: Uint8Array): void {
    let ev = this.lostMarker;
    if (this.numEvents < this.depth) {
      ev = { lost: false, payload: payload.slice(), sequence: 0 };
      this.numEvents++;
    }
    if (this.deliver[this.deliver.length - 1] === this.lostMarker) this.deliver.pop();
    this.deliver.push(ev);
    ev.sequence = this.sequence;
    this.sequence = (this.sequence + 1) & SEQUENCE_MASK;
    this.wakes++;
  }

  /** Records waiting to be read. */
  get pending(): number {
    return this.deliver.length;
  }

  /** The records waiting to be read, oldest first, read-only (a lost-events marker has no payload). */
  contents(): readonly Readonly<Vevent>[] {
    return this.deliver;
  }

  /**
   * read(): whole records from the head while they fit in `count` bytes,
   * each struct iommufd_vevent_header {flags, sequence} then the payload
   * (none for the marker, whose flags are LOST_EVENTS); empty when nothing
   * waits or the first record does not fit (`strict`, 7.2: EINVAL then).
   */
  read(count: number, strict = false): Uint8Array {
    const parts: Uint8Array[] = [];
    let done = 0;
    for (const ev of this.deliver) {
      const size = IommufdVeventHeader.size + ev.payload.length;
      if (size > count - done) {
        if (strict && done === 0) {
          fail('EINVAL', 'the first vEVENT does not fit the read', 'iommufd_veventq_fops_read');
        }
        break;
      }
      parts.push(
        IommufdVeventHeader.encode({
          flags: ev.lost ? IOMMU_VEVENTQ_FLAG.LOST_EVENTS : 0,
          sequence: ev.sequence,
        }),
        ev.payload,
      );
      done += size;
    }
    const out = new Uint8Array(done);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    let taken = 0;
    for (let n = 0; n < done; taken++) {
      const ev = this.deliver[taken]!;
      n += IommufdVeventHeader.size + ev.payload.length;
      if (!ev.lost) this.numEvents--;
    }
    this.deliver.splice(0, taken);
    return out;
  }

  destroy(): void {
    this.deliver.length = 0;
    if (this.viommu.veventqs.get(this.vtype) === this) this.viommu.veventqs.delete(this.vtype);
    this.viommu.put();
  }
}

/**
 * The vEVENTQ's anonymous file ("[iommufd-viommu-event]", O_CLOEXEC): it
 * holds the queue and the context until closed. read() at a file offset
 * is ESPIPE; poll() is always writable, readable while records wait.
 */
class VeventqFile implements FileOps {
  readonly kind = 'veventq';

  constructor(
    private readonly ctx: IommufdCtx,
    readonly veventq: Veventq,
  ) {
    veventq.get();
    ctx.hold();
  }

  read(_caller: Caller, length: number, offset: bigint | undefined): Uint8Array {
    const where = 'iommufd_veventq_fops_read';
    if (offset !== undefined && offset !== 0n) fail('ESPIPE', 'offset not 0', where);
    if (this.ctx.host.personality.requestBounds && length < IommufdVeventHeader.size) {
      fail('EINVAL', 'a read shorter than a vEVENT header', where);
    }
    return this.veventq.read(length, this.ctx.host.personality.requestBounds);
  }

  poll(): number {
    return POLLOUT | (this.veventq.pending > 0 ? POLLIN | POLLRDNORM : 0);
  }

  wakeups(): number {
    return this.veventq.wakeups;
  }

  release(): void {
    this.veventq.put();
    this.ctx.release();
  }
}

/** VEVENTQ_MAX_DEPTH (7.2): the deepest vEVENTQ. */
const VEVENTQ_MAX_DEPTH = 1 << 19;

/**
 * IOMMU_VEVENTQ_ALLOC. Errors in order: EOPNOTSUPP (flags, `__reserved`,
 * type DEFAULT), EINVAL (depth 0; above 2^19 with `requestBounds`), ENOENT (no such vIOMMU), EEXIST (the
 * vIOMMU has a vEVENTQ of that type). Writes back the ID and the new fd.
 */
export function veventqAlloc(
  ctx: IommufdCtx,
  caller: Caller,
  ucmd: Ucmd<V<typeof IommuVeventqAlloc>>,
): number {
  const cmd = ucmd.cmd;
  const where = 'iommufd_veventq_alloc';
  if (cmd.flags !== 0 || cmd.__reserved !== 0 || cmd.type === IOMMU_VEVENTQ_TYPE.DEFAULT) {
    fail('EOPNOTSUPP', 'flags or __reserved not 0, or type DEFAULT', where);
  }
  if (cmd.veventq_depth === 0) fail('EINVAL', 'depth 0', where);
  if (ctx.host.personality.requestBounds && cmd.veventq_depth > VEVENTQ_MAX_DEPTH) {
    fail('EINVAL', 'depth above 2^19', where);
  }
  const viommu = ctx.get<Viommu>(cmd.viommu_id, 'viommu');
  if (viommu.veventqs.has(cmd.type)) fail('EEXIST', 'a vEVENTQ of that type exists', where);

  ctx.create(new Veventq(viommu, cmd.type, cmd.veventq_depth), (veventq) => {
    cmd.out_veventq_id = veventq.id;
    ucmd.respond();
    viommu.get();
    viommu.veventqs.set(veventq.vtype, veventq);
    try {
      cmd.out_veventq_fd = caller.installFile(new VeventqFile(ctx, veventq));
    } catch (e) {
      veventq.destroy();
      throw e;
    }
  });
  ucmd.respond();
  return 0;
}
