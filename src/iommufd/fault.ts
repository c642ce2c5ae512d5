/**
 * I/O page faults delivered to user space (the kernel's eventq.c, FAULT
 * half): the FAULT object, its anonymous fd, and the attach handles that
 * tag each fault with the attachment it arose from.
 */
import { fail } from '../abi/errno.ts';
import {
  IOMMU_PGFAULT_FLAGS,
  IOMMUFD_PAGE_RESP,
  type IommuFaultAlloc,
  IommuHwptPageResponse,
  IommuHwptPgfault,
} from '../abi/iommufd.ts';
import type { Layout } from '../abi/layout.ts';
import type { Caller } from '../kernel/file.ts';
import { type FileOps, POLLIN, POLLOUT, POLLRDNORM } from '../kernel/file.ts';
import type { IommufdCtx } from './context.ts';
import { IommufdObject } from './object.ts';
import type { Ucmd } from './ucmd.ts';

type V<L> = L extends Layout<infer T> ? T : never;

/**
 * One attachment of a device (its RID, pasid 0, or one PASID) to an HWPT:
 * the kernel's iommufd_attach_handle. A new one is made by every attach and
 * replace; faults raised through it are answered INVALID when it goes.
 */
export class AttachHandle {
  constructor(
    /** The DEVICE object reported in fault records (`dev_id`). */
    readonly idev: { readonly id: number },
    readonly pasid: number,
  ) {}
}

/** A page request as the device raised it (struct iommu_fault_page_request). */
export interface PageRequest {
  readonly pasid: number;
  readonly grpid: number;
  readonly perm: number;
  readonly addr: bigint;
}

/** A group of page requests answered together (iopf_group); the cookie is set on delivery. */
interface FaultGroup {
  readonly handle: AttachHandle;
  readonly faults: readonly PageRequest[];
  cookie: number;
}

/** A fault group as `IommufdFault.contents` shows it (the cookie is 0 until it is read). */
export interface FaultGroupView {
  readonly state: 'pending' | 'awaiting response';
  readonly devId: number;
  readonly cookie: number;
  readonly faults: readonly PageRequest[];
}

const RECORD = IommuHwptPgfault.size;
const RESPONSE = IommuHwptPageResponse.size;

/**
 * A FAULT object: a queue of fault groups not yet read, and the groups read
 * but not yet answered, by cookie (the lowest free from 1). Its fd holds it
 * (DESTROY is EBUSY until the fd is closed) and holds the context; every
 * HWPT allocated with its fault_id holds it too.
 */
export class IommufdFault extends IommufdObject {
  readonly type = 'fault';
  private readonly deliver: FaultGroup[] = [];
  private readonly response = new Map<number, FaultGroup>();
  private wakes = 0;

  constructor(readonly ctx: IommufdCtx) {
    super();
  }

  /** Groups waiting to be read. */
  get pending(): number {
    return this.deliver.length;
  }

  /** Groups read and not yet answered. */
  get outstanding(): number {
    return this.response.size;
  }

  /** What the queue holds, read-only: the groups waiting to be read, then those awaiting a response (by cookie). */
  contents(): FaultGroupView[] {
    const view = (state: FaultGroupView['state'], g: FaultGroup): FaultGroupView => ({
      state,
      devId: g.handle.idev.id,
      cookie: g.cookie,
      faults: g.faults,
    });
    return [
      ...this.deliver.map((g) => view('pending', g)),
      ...[...this.response.values()].map((g) => view('awaiting response', g)),
    ];
  }

  /** Times a group was queued: each wakes the fd's poll waiters. */
  get wakeups(): number {
    return this.wakes;
  }

  /** iommufd_fault_iopf_handler(): queue one group raised through `handle`, waking the readers. */
  report(handle: AttachHandle, faults: readonly PageRequest[]): void {
    this.deliver.push({ handle, faults, cookie: 0 });
    this.wakes++;
  }

  /**
   * iommufd_auto_response_faults(): the attachment `handle` is gone, so its
   * undelivered and unanswered groups are answered INVALID and dropped.
   */
  autoRespond(handle: AttachHandle): void {
    for (let i = this.deliver.length - 1; i >= 0; i--) {
      if (this.deliver[i]!.handle === handle) this.deliver.splice(i, 1);
    }
    for (const [cookie, group] of this.response) {
      if (group.handle === handle) this.response.delete(cookie);
    }
  }

  /** Every group still held is answered INVALID. */
  destroy(): void {
    this.deliver.length = 0;
    this.response.clear();
  }

  /**
   * read(): ESPIPE for an offset or a length not a multiple of 40; then
   * whole groups from the head while they fit, each given a cookie.
   * Returns the records (empty when none is queued or the first does not fit).
   */
  read(length: number, offset: bigint | undefined): Uint8Array {
    if ((offset !== undefined && offset !== 0n) || length % RECORD !== 0) {
      fail(
        'ESPIPE',
        `offset not 0, or ${length} not a multiple of ${RECORD}`,
        'iommufd_fault_fops_read',
      );
    }
    const out: Uint8Array[] = [];
    let done = 0;
    while (this.deliver.length > 0) {
      const group = this.deliver[0]!;
      if (done >= length || group.faults.length * RECORD > length - done) break;
      this.deliver.shift();
      group.cookie = this.freeCookie();
      this.response.set(group.cookie, group);
      for (const f of group.faults) {
        out.push(
          IommuHwptPgfault.encode({
            flags:
              IOMMU_PGFAULT_FLAGS.LAST_PAGE | (f.pasid !== 0 ? IOMMU_PGFAULT_FLAGS.PASID_VALID : 0),
            dev_id: group.handle.idev.id,
            pasid: f.pasid,
            grpid: f.grpid,
            perm: f.perm,
            addr: f.addr,
            length: 0,
            cookie: group.cookie,
          }),
        );
        done += RECORD;
      }
    }
    const bytes = new Uint8Array(done);
    for (const [i, r] of out.entries()) bytes.set(r, i * RECORD);
    return bytes;
  }

  /**
   * write(): ESPIPE for an offset or a length not a multiple of 8; then
   * each response in order: a code other than SUCCESS/INVALID, or a cookie
   * not outstanding, stops with EINVAL. Returns the bytes consumed, or the
   * error if the first response failed.
   */
  write(data: Uint8Array, offset: bigint | undefined): number {
    const where = 'iommufd_fault_fops_write';
    if ((offset !== undefined && offset !== 0n) || data.length % RESPONSE !== 0) {
      fail('ESPIPE', `offset not 0, or ${data.length} not a multiple of ${RESPONSE}`, where);
    }
    let done = 0;
    while (done < data.length) {
      const r = IommuHwptPageResponse.decode(data.subarray(done, done + RESPONSE));
      if (
        (r.code !== IOMMUFD_PAGE_RESP.SUCCESS && r.code !== IOMMUFD_PAGE_RESP.INVALID) ||
        !this.response.has(r.cookie)
      ) {
        if (done === 0) fail('EINVAL', 'unknown response code or cookie', where);
        break;
      }
      this.response.delete(r.cookie);
      done += RESPONSE;
    }
    return done;
  }

  /** POLLOUT always; POLLIN|POLLRDNORM while a group waits to be read. */
  poll(): number {
    return POLLOUT | (this.deliver.length > 0 ? POLLIN | POLLRDNORM : 0);
  }

  private freeCookie(): number {
    let c = 1;
    while (this.response.has(c)) c++;
    return c;
  }
}

/**
 * iommufd_get_fault() for HWPT_ALLOC's `fault_id`: the FAULT object, now
 * held by the HWPT being allocated (which puts it when destroyed);
 * ENOENT unless `id` names a FAULT.
 */
export function holdFault(ctx: IommufdCtx, id: number): IommufdFault {
  const fault = ctx.get<IommufdFault>(id, 'fault');
  fault.get();
  return fault;
}

/** The fault fd ("[iommufd-pgfault]", O_CLOEXEC): holds the FAULT object and the context. */
class FaultFile implements FileOps {
  readonly kind = 'fault';

  constructor(readonly fault: IommufdFault) {
    fault.get();
    fault.ctx.hold();
  }

  read(_caller: Caller, length: number, offset: bigint | undefined): Uint8Array {
    return this.fault.read(length, offset);
  }

  write(_caller: Caller, data: Uint8Array, offset: bigint | undefined): number {
    return this.fault.write(data, offset);
  }

  poll(): number {
    return this.fault.poll();
  }

  wakeups(): number {
    return this.fault.wakeups;
  }

  release(): void {
    this.fault.put();
    this.fault.ctx.release();
  }
}

/**
 * IOMMU_FAULT_QUEUE_ALLOC: flags must be 0 (EOPNOTSUPP); a FAULT object
 * and its fd, both written back. The struct is written back once before
 * the fd is installed, so a faulting write-back leaves nothing behind.
 */
export function faultQueueAlloc(
  ctx: IommufdCtx,
  caller: Caller,
  ucmd: Ucmd<V<typeof IommuFaultAlloc>>,
): number {
  const cmd = ucmd.cmd;
  if (cmd.flags !== 0) fail('EOPNOTSUPP', 'flags not 0', 'iommufd_fault_alloc');

  const fault = new IommufdFault(ctx);
  ctx.allocId(fault);
  try {
    cmd.out_fault_id = fault.id;
    ucmd.respond();
    cmd.out_fault_fd = caller.installFile(new FaultFile(fault));
  } catch (e) {
    ctx.abort(fault);
    throw e;
  }
  ucmd.respond();
  ctx.finalize(fault);
  return 0;
}
