/**
 * EEH (Enhanced Error Handling) of an emulated POWER PE, as VFIO_EEH_PE_OP
 * drives it (the kernel's vfio_spapr_iommu_eeh_ioctl over arch/powerpc's
 * eeh_pe_* helpers). Facts: spapr-tce.md §4.9.
 *
 * The emulated PE keeps the state GET_STATE reports and nothing else: it
 * never freezes on its own, and a frozen PE does not stop the device's
 * MMIO or DMA. Per op (model choices where the platform decides):
 * - DISABLE, ENABLE, CONFIGURE → 0 (EEH is always on; nothing to configure);
 * - UNFREEZE_IO / UNFREEZE_DMA → 0, MMIO / DMA thawed;
 * - RESET_HOT / RESET_FUNDAMENTAL → 0, the PE frozen and held in reset;
 * - RESET_DEACTIVATE → 0, reset released and the PE thawed (as a guest's
 *   reset + configure sequence expects to find it);
 * - INJECT_ERR (argsz ≥ 40) → 0 and the PE frozen; `err.func` above 19
 *   (EEH_ERR_FUNC_MAX) → EINVAL; `err.type` other than 0 (32-bit) or 1
 *   (64-bit) → ERANGE (PowerNV's check; newer kernels dropped the generic
 *   EINVAL check — exact release UNVERIFIED);
 * - GET_STATE → the state as a positive return value: 1 RESET while in
 *   reset, else 0 NORMAL, 2 STOPPED (MMIO and DMA frozen), 4 STOPPED_DMA,
 *   5 UNAVAIL (DMA thawed but MMIO frozen);
 * - argsz < 12, flags ≠ 0, an unknown op → EINVAL.
 */
import { fail } from '../../abi/errno.ts';
import { VFIO_EEH_PE_OP, VFIO_EEH_PE_STATE, VfioEehPeOp } from '../../abi/vfio.ts';
import type { Group } from '../../iommu/group.ts';
import type { Mm } from '../../iommu/mm.ts';
import { VfioUser } from '../user.ts';

/** EEH_ERR_FUNC_MAX: the last error function INJECT_ERR accepts. */
const EEH_ERR_FUNC_MAX = 19;

/** The EEH state of one PE (eeh_pe's frozen / reset bits). */
interface EehPe {
  mmio: boolean;
  dma: boolean;
  reset: boolean;
}

const pes = new WeakMap<Group, EehPe>();

/** The PE of a group, created normal (not frozen, not in reset). */
function peOf(group: Group): EehPe {
  let pe = pes.get(group);
  if (!pe) {
    pe = { mmio: true, dma: true, reset: false };
    pes.set(group, pe);
  }
  return pe;
}

/** eeh_pe_get_state() mapped to VFIO_EEH_PE_STATE_*. */
function peState(pe: EehPe): number {
  if (pe.reset) return VFIO_EEH_PE_STATE.RESET;
  if (pe.mmio && pe.dma) return VFIO_EEH_PE_STATE.NORMAL;
  if (!pe.mmio && !pe.dma) return VFIO_EEH_PE_STATE.STOPPED;
  return pe.mmio ? VFIO_EEH_PE_STATE.STOPPED_DMA : VFIO_EEH_PE_STATE.UNAVAIL;
}

function freeze(pe: EehPe): void {
  pe.mmio = false;
  pe.dma = false;
}

/** One group's VFIO_EEH_PE_OP (`arg` points to a struct vfio_eeh_pe_op); see the module comment. */
export function eehPeOp(group: Group, mm: Mm, arg: bigint): number {
  const pe = peOf(group);
  const u = VfioUser.copyIn(mm, arg, VfioEehPeOp, {
    minsz: VfioEehPeOp.endOf('op'),
    flags: 0,
    fn: 'vfio_spapr_ioctl_eeh_pe_op',
  });
  const head = u.cmd;
  switch (head.op) {
    case VFIO_EEH_PE_OP.DISABLE:
    case VFIO_EEH_PE_OP.ENABLE:
    case VFIO_EEH_PE_OP.CONFIGURE:
      return 0;
    case VFIO_EEH_PE_OP.UNFREEZE_IO:
      pe.mmio = true;
      return 0;
    case VFIO_EEH_PE_OP.UNFREEZE_DMA:
      pe.dma = true;
      return 0;
    case VFIO_EEH_PE_OP.GET_STATE:
      return peState(pe);
    case VFIO_EEH_PE_OP.RESET_DEACTIVATE:
      pe.reset = false;
      pe.mmio = true;
      pe.dma = true;
      return 0;
    case VFIO_EEH_PE_OP.RESET_HOT:
    case VFIO_EEH_PE_OP.RESET_FUNDAMENTAL:
      freeze(pe);
      pe.reset = true;
      return 0;
    case VFIO_EEH_PE_OP.INJECT_ERR: {
      const op = u.readTo(VfioEehPeOp.size, 'the error to inject');
      if (op.err_func > EEH_ERR_FUNC_MAX)
        fail('EINVAL', 'error function out of range', 'eeh_pe_inject_err');
      if (op.err_type !== 0 && op.err_type !== 1)
        fail('ERANGE', 'error type not 32/64-bit', 'pnv_eeh_err_inject');
      freeze(pe);
      return 0;
    }
    default:
      fail('EINVAL', 'unknown EEH op', 'vfio_spapr_ioctl_eeh_pe_op');
  }
}

/**
 * VFIO_EEH_PE_OP on a container: each group, most recently attached first;
 * the first non-zero answer (errno or a positive state) ends the walk; no
 * group → 0.
 */
export function containerEehPeOp(groups: readonly Group[], mm: Mm, arg: bigint): number {
  for (const g of groups) {
    const r = eehPeOp(g, mm, arg);
    if (r !== 0) return r;
  }
  return 0;
}
