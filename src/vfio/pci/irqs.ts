/**
 * vfio-pci's interrupts (vfio_pci_intrs.c) and VFIO_DEVICE_SET_IRQS's
 * validation (vfio_main.c's vfio_set_irqs_validate_and_prepare). Each
 * vector wired with DATA_EVENTFD holds a reference to the caller's eventfd
 * (`EventfdCtx`); the device model raises an interrupt with `raiseMsi` or
 * drives its INTx line with `setIntxLine`, and the eventfd is signalled as
 * the host kernel's handler would: MSI/MSI-X edge per vector, INTx level
 * with the auto-mask of a PCI 2.3 function (the first assertion masks it;
 * an unmask while the line is still asserted signals again and stays
 * masked). DATA_NONE/DATA_BOOL triggers signal from user space (loopback).
 *
 * Unmask through an eventfd (virqfd) is serviced when the model next looks
 * at the line (an assertion, a SET_IRQS, an unmask): the engine does not
 * watch client eventfds between requests.
 */
import { fail } from '../../abi/errno.ts';
import type { Caller, EventfdCtx } from '../../kernel/file.ts';
import { VFIO_IRQ_SET, VFIO_PCI_IRQ } from './abi.ts';

export type IrqType = 'none' | 'intx' | 'msi' | 'msix';

/** The decoded header of a SET_IRQS call and its payload (`count` elements). */
export interface IrqSetRequest {
  readonly flags: number;
  readonly index: number;
  readonly start: number;
  readonly count: number;
  readonly data: Uint8Array;
}

const U32_MAX = 0xffffffff;
/** offsetofend(struct vfio_irq_set, count) */
export const IRQ_SET_MINSZ = 20;

/**
 * vfio_set_irqs_validate_and_prepare: EINVAL for a short argsz, an index ≥
 * 5, count ≥ U32_MAX − start, unknown flags, start/count outside the
 * index's vector count, not exactly one data type, or a payload shorter
 * than count elements. Returns the payload size in bytes.
 */
export function validateIrqSet(
  argsz: number,
  hdr: Omit<IrqSetRequest, 'data'>,
  vectors: number,
): number {
  const { flags, index, start, count } = hdr;
  const where = 'vfio_set_irqs_validate_and_prepare';
  if (
    argsz < IRQ_SET_MINSZ ||
    index >= VFIO_PCI_IRQ.NUM ||
    count >= U32_MAX - start ||
    (flags & ~(VFIO_IRQ_SET.DATA_TYPE_MASK | VFIO_IRQ_SET.ACTION_TYPE_MASK)) !== 0
  ) {
    fail(
      'EINVAL',
      'short argsz, index past the last, start + count wraps, or unknown flags',
      where,
    );
  }
  if (start >= vectors || start + count > vectors) {
    fail('EINVAL', `start ${start} count ${count} outside the index's ${vectors} vectors`, where);
  }
  let size: number;
  switch (flags & VFIO_IRQ_SET.DATA_TYPE_MASK) {
    case VFIO_IRQ_SET.DATA_NONE:
      size = 0;
      break;
    case VFIO_IRQ_SET.DATA_BOOL:
      size = 1;
      break;
    case VFIO_IRQ_SET.DATA_EVENTFD:
      size = 4;
      break;
    default:
      fail('EINVAL', 'not exactly one DATA_ type flag', where);
  }
  if (size > 0 && argsz - IRQ_SET_MINSZ < count * size) {
    fail('EINVAL', `argsz ${argsz} too short for ${count} data elements`, where);
  }
  return count * size;
}

/** eventfd_ctx_fdget(): EBADF when `fd` is not open, EINVAL when it is not an eventfd. */
export function eventfdCtxGet(caller: Caller, fd: number): EventfdCtx {
  const file = caller.file(fd);
  if (!file) fail('EBADF', `fd ${fd} is not open`, 'eventfd_ctx_fdget');
  if (!file.eventfdCtx) fail('EINVAL', `fd ${fd} is not an eventfd`, 'eventfd_ctx_fileget');
  return file.eventfdCtx();
}

/** Resolves an fd of the caller to an eventfd reference (`eventfdCtxGet` bound to a caller). */
export type EventfdGet = (fd: number) => EventfdCtx;

/** The INTx context (vfio_pci_irq_ctx of vector 0 while INTx is enabled). */
interface IntxCtx {
  trigger: EventfdCtx | undefined;
  masked: boolean;
  /** virqfd: signalled by user space to unmask. */
  unmask: EventfdCtx | undefined;
}

export class VfioPciIrqs {
  /** Which interrupt type is enabled (vdev->irq_type). */
  type: IrqType = 'none';
  /** INTx state while INTx is enabled. */
  private intx: IntxCtx | undefined;
  /** The virtual Command register's INTx Disable bit (vdev->virq_disabled). */
  private virqDisabled = false;
  /** The function's INTx line (asserted = an interrupt pending in its Status register). */
  private line = false;
  /** Vector → trigger for the enabled MSI/MSI-X type. */
  private readonly triggers = new Map<number, EventfdCtx>();
  /** Vectors with a host interrupt allocated (MSI: 0..nvec-1; MSI-X grows with dynamic allocation). */
  private readonly allocated = new Set<number>();
  /** Vectors enabled with MSI/MSI-X (nvec at enable). */
  numCtx = 0;
  private err: EventfdCtx | undefined;
  private req: EventfdCtx | undefined;

  /**
   * `pcie`: the function has the ERR index. `dynamicMsix`: MSI-X vectors
   * beyond those enabled can be wired later (vdev->has_dyn_msix).
   */
  constructor(
    private readonly pcie: boolean,
    private readonly dynamicMsix: boolean,
  ) {}

  /** log2 of the enabled MSI vectors rounded up (msi_qmax), for the MSI flags register. */
  get msiQmax(): number {
    return this.type === 'msi' ? Math.ceil(Math.log2(Math.max(this.numCtx, 1))) : 0;
  }

  /** INTx enabled and masked (by user space, the auto-mask, or INTx Disable). */
  get intxMasked(): boolean {
    return this.intx?.masked ?? false;
  }

  /** Vectors with an eventfd wired (MSI/MSI-X). */
  get wired(): number[] {
    return [...this.triggers.keys()].sort((a, b) => a - b);
  }

  /** An ERR (AER) / REQ trigger is set. */
  get errWired(): boolean {
    return this.err !== undefined;
  }
  get reqWired(): boolean {
    return this.req !== undefined;
  }

  /** The INTx line is asserted (PCI Status bit 3). */
  get intxLine(): boolean {
    return this.line;
  }

  /** Everything off and every eventfd reference dropped, as at device close. */
  disable(): void {
    this.disableType();
    this.err?.put();
    this.req?.put();
    this.err = undefined;
    this.req = undefined;
    this.virqDisabled = false;
  }

  // ---- the device side ---------------------------------------------------------------

  /** An MSI or MSI-X message for `vector` (whichever is enabled): its eventfd is signalled. */
  raiseMsi(vector: number): void {
    if (this.type === 'msi' || this.type === 'msix') this.triggers.get(vector)?.signal();
  }

  /** vfio_pci_core_request(): the kernel asks user space to release the device (REQ). */
  request(): void {
    this.req?.signal();
  }

  /** Drive the INTx line (level-triggered): an assertion while unmasked masks and signals. */
  setIntxLine(asserted: boolean): void {
    this.line = asserted;
    this.serviceUnmaskFd();
    this.intxHandler();
  }

  /** The virtual INTx Disable bit changed (vfio_basic_config_write). */
  setIntxDisable(disabled: boolean): void {
    if (disabled === this.virqDisabled) return;
    this.virqDisabled = disabled;
    if (disabled) this.intxMask();
    else this.intxUnmask();
  }

  // ---- SET_IRQS ----------------------------------------------------------------------

  /**
   * Dispatch a validated request (vfio_pci_set_irqs_ioctl): ENOTTY for an
   * unsupported index/action pair, EINVAL for a request that does not fit
   * the current state, the eventfd lookup's EBADF/EINVAL, EBUSY for a
   * second unmask eventfd.
   */
  set(req: IrqSetRequest, get: EventfdGet): void {
    this.serviceUnmaskFd();
    const action = req.flags & VFIO_IRQ_SET.ACTION_TYPE_MASK;
    switch (req.index) {
      case VFIO_PCI_IRQ.INTX:
        if (action === VFIO_IRQ_SET.ACTION_MASK) this.setIntxMask(req);
        else if (action === VFIO_IRQ_SET.ACTION_UNMASK) this.setIntxUnmask(req, get);
        else if (action === VFIO_IRQ_SET.ACTION_TRIGGER) this.setIntxTrigger(req, get);
        else break;
        return;
      case VFIO_PCI_IRQ.MSI:
      case VFIO_PCI_IRQ.MSIX:
        if (action === VFIO_IRQ_SET.ACTION_TRIGGER) {
          this.setMsiTrigger(req, get);
          return;
        }
        break;
      case VFIO_PCI_IRQ.ERR:
        if (action === VFIO_IRQ_SET.ACTION_TRIGGER && this.pcie) {
          this.err = this.single(this.err, req, get);
          return;
        }
        break;
      case VFIO_PCI_IRQ.REQ:
        if (action === VFIO_IRQ_SET.ACTION_TRIGGER) {
          this.req = this.single(this.req, req, get);
          return;
        }
        break;
    }
    fail('ENOTTY', 'no such action for this IRQ index', 'vfio_pci_set_irqs_ioctl');
  }

  private fds(req: IrqSetRequest): number[] {
    const v = new DataView(req.data.buffer, req.data.byteOffset, req.data.byteLength);
    return Array.from({ length: req.count }, (_, i) => v.getInt32(4 * i, true));
  }

  /** DATA_NONE, or DATA_BOOL with element `i` set. */
  private asserted(req: IrqSetRequest, i: number): boolean {
    return (req.flags & VFIO_IRQ_SET.DATA_NONE) !== 0 || req.data[i] !== 0;
  }

  private disableType(): void {
    if (this.type === 'intx') {
      this.intx?.trigger?.put();
      this.intx?.unmask?.put();
      this.intx = undefined;
    }
    for (const t of this.triggers.values()) t.put();
    this.triggers.clear();
    this.allocated.clear();
    this.numCtx = 0;
    this.type = 'none';
  }

  // ---- INTx ----------------------------------------------------------------------------

  /** vfio_send_intx_eventfd. */
  private sendIntx(): void {
    if (this.type === 'intx' && !this.virqDisabled) this.intx?.trigger?.signal();
  }

  /** vfio_intx_handler: the host interrupt fires while the line is asserted and INTx unmasked. */
  private intxHandler(): void {
    const ctx = this.intx;
    if (!ctx || ctx.masked || !this.line) return;
    ctx.masked = true;
    this.sendIntx();
  }

  /** __vfio_pci_intx_mask. */
  private intxMask(): void {
    if (this.intx) this.intx.masked = true;
  }

  /** __vfio_pci_intx_unmask: a still-asserted line signals again and stays masked. */
  private intxUnmask(): void {
    const ctx = this.intx;
    if (!ctx?.masked || this.virqDisabled) return;
    if (this.line) this.sendIntx();
    else ctx.masked = false;
  }

  /** A virqfd unmask eventfd that user space signalled runs the unmask. */
  private serviceUnmaskFd(): void {
    if (this.intx?.unmask?.consume()) this.intxUnmask();
  }

  private setIntxMask(req: IrqSetRequest): void {
    const where = 'vfio_pci_set_intx_mask';
    if (this.type !== 'intx' || req.start !== 0 || req.count !== 1) {
      fail('EINVAL', 'INTx not enabled, or start/count not 0/1', where);
    }
    if (req.flags & VFIO_IRQ_SET.DATA_EVENTFD)
      fail('ENOTTY', 'INTx mask through an eventfd', where);
    if (this.asserted(req, 0)) this.intxMask();
  }

  private setIntxUnmask(req: IrqSetRequest, get: EventfdGet): void {
    const ctx = this.intx;
    if (this.type !== 'intx' || !ctx || req.start !== 0 || req.count !== 1) {
      fail('EINVAL', 'INTx not enabled, or start/count not 0/1', 'vfio_pci_set_intx_unmask');
    }
    if (!(req.flags & VFIO_IRQ_SET.DATA_EVENTFD)) {
      if (this.asserted(req, 0)) this.intxUnmask();
      return;
    }
    const fd = this.fds(req)[0]!;
    if (fd < 0) {
      ctx.unmask?.put();
      ctx.unmask = undefined;
      return;
    }
    // a virqfd whose eventfd its owner closed is gone (EPOLLHUP)
    if (ctx.unmask?.closed?.()) {
      ctx.unmask.put();
      ctx.unmask = undefined;
    }
    // vfio_virqfd_enable: one at a time; an event already pending runs now
    if (ctx.unmask) fail('EBUSY', 'an unmask eventfd is already set', 'vfio_virqfd_enable');
    ctx.unmask = get(fd);
    this.serviceUnmaskFd();
  }

  private setIntxTrigger(req: IrqSetRequest, get: EventfdGet): void {
    if (this.type === 'intx' && req.count === 0 && req.flags & VFIO_IRQ_SET.DATA_NONE) {
      this.disableType();
      return;
    }
    const where = 'vfio_pci_set_intx_trigger';
    if (!(this.type === 'intx' || this.type === 'none') || req.start !== 0 || req.count !== 1) {
      fail('EINVAL', `${this.type} enabled, or start/count not 0/1`, where);
    }
    if (req.flags & VFIO_IRQ_SET.DATA_EVENTFD) {
      const fd = this.fds(req)[0]!;
      const trigger = fd >= 0 ? get(fd) : undefined;
      if (this.intx) {
        this.intx.trigger?.put();
        this.intx.trigger = trigger;
        return;
      }
      // vfio_intx_enable: masked follows INTx Disable; a pending line fires at once
      this.type = 'intx';
      this.intx = { trigger, masked: this.virqDisabled, unmask: undefined };
      this.intxHandler();
      return;
    }
    if (this.type !== 'intx') fail('EINVAL', 'INTx not enabled', where);
    if (this.asserted(req, 0)) this.sendIntx();
  }

  // ---- MSI / MSI-X ------------------------------------------------------------------------

  private setMsiTrigger(req: IrqSetRequest, get: EventfdGet): void {
    const want: IrqType = req.index === VFIO_PCI_IRQ.MSIX ? 'msix' : 'msi';
    if (this.type === want && req.count === 0 && req.flags & VFIO_IRQ_SET.DATA_NONE) {
      this.disableType();
      return;
    }
    const where = 'vfio_pci_set_msi_trigger';
    if (!(this.type === want || this.type === 'none'))
      fail('EINVAL', `${this.type} enabled`, where);
    if (req.flags & VFIO_IRQ_SET.DATA_EVENTFD) {
      const fds = this.fds(req);
      if (this.type === want) {
        this.setBlock(req.start, fds, get);
        return;
      }
      // vfio_msi_enable: pci_alloc_irq_vectors(1, nvec) refuses nvec 0 (ERANGE)
      const nvec = req.start + req.count;
      if (nvec < 1) fail('ERANGE', 'no vector to enable', 'pci_alloc_irq_vectors');
      this.type = want;
      this.numCtx = nvec;
      for (let v = 0; v < nvec; v++) this.allocated.add(v);
      try {
        this.setBlock(req.start, fds, get);
      } catch (e) {
        this.disableType();
        throw e;
      }
      return;
    }
    if (this.type !== want) fail('EINVAL', `${want} not enabled`, where);
    for (let i = 0; i < req.count; i++) {
      if (this.asserted(req, i)) this.triggers.get(req.start + i)?.signal();
    }
  }

  /** vfio_msi_set_block: on a failure every vector touched so far is cleared. */
  private setBlock(start: number, fds: number[], get: EventfdGet): void {
    let v = start;
    try {
      for (const fd of fds) this.setVector(v++, fd, get);
    } catch (e) {
      for (let u = start; u < v; u++) this.setVector(u, -1, get);
      throw e;
    }
  }

  /**
   * vfio_msi_set_vector_signal: drop the vector's trigger; with fd ≥ 0 wire
   * a new one on an allocated vector (MSI-X with dynamic allocation
   * allocates it; anything else unallocated is EINVAL).
   */
  private setVector(vector: number, fd: number, get: EventfdGet): void {
    this.triggers.get(vector)?.put();
    this.triggers.delete(vector);
    if (fd < 0) return;
    if (!this.allocated.has(vector)) {
      if (this.type !== 'msix' || !this.dynamicMsix) {
        fail('EINVAL', `vector ${vector} not allocated`, 'vfio_msi_alloc_irq');
      }
      this.allocated.add(vector);
    }
    this.triggers.set(vector, get(fd));
  }

  /** vfio_pci_set_ctx_trigger_single (ERR and REQ): DATA_NONE/BOOL signal (loopback). */
  private single(
    cur: EventfdCtx | undefined,
    req: IrqSetRequest,
    get: EventfdGet,
  ): EventfdCtx | undefined {
    const where = 'vfio_pci_set_ctx_trigger_single';
    if (req.flags & VFIO_IRQ_SET.DATA_NONE) {
      if (!cur) fail('EINVAL', 'no trigger eventfd to signal', where);
      if (req.count) {
        cur.signal();
        return cur;
      }
      cur.put();
      return undefined;
    }
    if (req.count === 0) fail('EINVAL', 'count 0', where);
    if (req.flags & VFIO_IRQ_SET.DATA_BOOL) {
      if (req.data[0]) cur?.signal();
      return cur;
    }
    const fd = this.fds(req)[0]!;
    if (fd === -1) {
      cur?.put();
      return undefined;
    }
    if (fd >= 0) {
      const next = get(fd);
      cur?.put();
      return next;
    }
    fail('EINVAL', `fd ${fd} is neither an fd nor -1`, where);
  }
}
