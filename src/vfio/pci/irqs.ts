/**
 * vfio-pci's interrupt state and VFIO_DEVICE_SET_IRQS (vfio_main.c's
 * vfio_set_irqs_validate_and_prepare plus vfio_pci_intrs.c's dispatch). No
 * interrupt is ever delivered: the model records which eventfd (an fd
 * number of the caller) is wired to each vector, the INTx mask and which
 * interrupt type is enabled, and returns the errnos Linux returns.
 *
 * Not modelled: eventfd objects (any open fd of the caller is accepted as
 * one; a closed fd gives EBADF), signalling (DATA_NONE/BOOL triggers are
 * accepted and do nothing), unmask-via-eventfd (virqfd) beyond recording it,
 * dynamic MSI-X growth.
 */
import { fail } from '../../abi/errno.ts';
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
  if (
    argsz < IRQ_SET_MINSZ ||
    index >= VFIO_PCI_IRQ.NUM ||
    count >= U32_MAX - start ||
    (flags & ~(VFIO_IRQ_SET.DATA_TYPE_MASK | VFIO_IRQ_SET.ACTION_TYPE_MASK)) !== 0
  ) {
    fail('EINVAL');
  }
  if (start >= vectors || start + count > vectors) fail('EINVAL');
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
      fail('EINVAL');
  }
  if (size > 0 && argsz - IRQ_SET_MINSZ < count * size) fail('EINVAL');
  return count * size;
}

export class VfioPciIrqs {
  /** Which interrupt type is enabled (vdev->irq_type). */
  type: IrqType = 'none';
  /** INTx masked by user space (or auto-masked). */
  intxMasked = false;
  /** INTx unmask eventfd (virqfd), if any. */
  intxUnmaskFd: number | undefined;
  /** Vector → eventfd fd for the enabled type (−1 never stored). */
  readonly triggers = new Map<number, number>();
  /** Vectors allocated when MSI/MSI-X was enabled (vdev->num_ctx). */
  numCtx = 0;
  errTrigger: number | undefined;
  reqTrigger: number | undefined;

  constructor(private readonly pcie: boolean) {}

  /** log2 of the enabled MSI vectors rounded up (msi_qmax), for the MSI flags register. */
  get msiQmax(): number {
    return this.type === 'msi' ? Math.ceil(Math.log2(Math.max(this.numCtx, 1))) : 0;
  }

  /** Everything off, as at device close. */
  disable(): void {
    this.type = 'none';
    this.intxMasked = false;
    this.intxUnmaskFd = undefined;
    this.triggers.clear();
    this.numCtx = 0;
    this.errTrigger = undefined;
    this.reqTrigger = undefined;
  }

  /**
   * Dispatch a validated request (vfio_pci_set_irqs_ioctl): ENOTTY for an
   * unsupported index/action pair, EINVAL for a request that does not fit
   * the current state. `checkFd` throws (EBADF) for an fd that is not an
   * eventfd of the caller.
   */
  set(req: IrqSetRequest, checkFd: (fd: number) => void): void {
    const action = req.flags & VFIO_IRQ_SET.ACTION_TYPE_MASK;
    switch (req.index) {
      case VFIO_PCI_IRQ.INTX:
        if (action === VFIO_IRQ_SET.ACTION_MASK) {
          this.intxMask(req);
          return;
        }
        if (action === VFIO_IRQ_SET.ACTION_UNMASK) {
          this.intxUnmask(req, checkFd);
          return;
        }
        if (action === VFIO_IRQ_SET.ACTION_TRIGGER) {
          this.intxTrigger(req, checkFd);
          return;
        }
        break;
      case VFIO_PCI_IRQ.MSI:
      case VFIO_PCI_IRQ.MSIX:
        if (action === VFIO_IRQ_SET.ACTION_TRIGGER) {
          this.msiTrigger(req, checkFd);
          return;
        }
        break;
      case VFIO_PCI_IRQ.ERR:
        if (action === VFIO_IRQ_SET.ACTION_TRIGGER && this.pcie) {
          this.errTrigger = this.single(this.errTrigger, req, checkFd);
          return;
        }
        break;
      case VFIO_PCI_IRQ.REQ:
        if (action === VFIO_IRQ_SET.ACTION_TRIGGER) {
          this.reqTrigger = this.single(this.reqTrigger, req, checkFd);
          return;
        }
        break;
    }
    fail('ENOTTY');
  }

  private fds(req: IrqSetRequest): number[] {
    const v = new DataView(req.data.buffer, req.data.byteOffset, req.data.byteLength);
    return Array.from({ length: req.count }, (_, i) => v.getInt32(4 * i, true));
  }

  private intxMask(req: IrqSetRequest): void {
    if (this.type !== 'intx' || req.start !== 0 || req.count !== 1) fail('EINVAL');
    if (req.flags & VFIO_IRQ_SET.DATA_EVENTFD) fail('EINVAL');
    if (req.flags & VFIO_IRQ_SET.DATA_NONE || req.data[0]) this.intxMasked = true;
  }

  private intxUnmask(req: IrqSetRequest, checkFd: (fd: number) => void): void {
    if (this.type !== 'intx' || req.start !== 0 || req.count !== 1) fail('EINVAL');
    if (req.flags & VFIO_IRQ_SET.DATA_EVENTFD) {
      const fd = this.fds(req)[0]!;
      if (fd >= 0) checkFd(fd);
      this.intxUnmaskFd = fd >= 0 ? fd : undefined;
      return;
    }
    if (req.flags & VFIO_IRQ_SET.DATA_NONE || req.data[0]) this.intxMasked = false;
  }

  private intxTrigger(req: IrqSetRequest, checkFd: (fd: number) => void): void {
    if (this.type === 'intx' && req.count === 0 && req.flags & VFIO_IRQ_SET.DATA_NONE) {
      this.disable();
      return;
    }
    if (!(this.type === 'intx' || this.type === 'none') || req.start !== 0 || req.count !== 1) {
      fail('EINVAL');
    }
    if (req.flags & VFIO_IRQ_SET.DATA_EVENTFD) {
      const fd = this.fds(req)[0]!;
      if (fd >= 0) checkFd(fd);
      if (this.type === 'none') {
        if (fd < 0) fail('EINVAL');
        this.type = 'intx';
        this.intxMasked = false;
      }
      if (fd >= 0) this.triggers.set(0, fd);
      else this.triggers.delete(0);
      return;
    }
    if (this.type !== 'intx') fail('EINVAL');
  }

  private msiTrigger(req: IrqSetRequest, checkFd: (fd: number) => void): void {
    const want: IrqType = req.index === VFIO_PCI_IRQ.MSIX ? 'msix' : 'msi';
    if (this.type === want && req.count === 0 && req.flags & VFIO_IRQ_SET.DATA_NONE) {
      this.disable();
      return;
    }
    if (!(this.type === want || this.type === 'none')) fail('EINVAL');
    if (req.flags & VFIO_IRQ_SET.DATA_EVENTFD) {
      const fds = this.fds(req);
      const enabling = this.type === 'none';
      const numCtx = enabling ? req.start + req.count : this.numCtx;
      if (req.start >= numCtx || req.start + req.count > numCtx) fail('EINVAL');
      for (const fd of fds) if (fd >= 0) checkFd(fd);
      if (enabling) {
        this.type = want;
        this.numCtx = numCtx;
      }
      fds.forEach((fd, i) => {
        if (fd >= 0) this.triggers.set(req.start + i, fd);
        else this.triggers.delete(req.start + i);
      });
      return;
    }
    if (this.type !== want) fail('EINVAL');
  }

  /** vfio_pci_set_ctx_trigger_single (ERR and REQ). */
  private single(
    cur: number | undefined,
    req: IrqSetRequest,
    checkFd: (fd: number) => void,
  ): number | undefined {
    if (req.flags & VFIO_IRQ_SET.DATA_NONE) {
      if (cur !== undefined) return req.count ? cur : undefined;
      fail('EINVAL');
    }
    if (req.count === 0) fail('EINVAL');
    if (req.flags & VFIO_IRQ_SET.DATA_BOOL) return cur;
    const fd = this.fds(req)[0]!;
    if (fd === -1) return undefined;
    if (fd >= 0) {
      checkFd(fd);
      return fd;
    }
    return cur;
  }
}
