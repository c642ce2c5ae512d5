/**
 * VFIO_EEH_PE_OP on a SPAPR container and CHECK_EXTENSION(VFIO_EEH): the
 * emulated PE's answers (src/vfio/spapr/eeh.ts, spapr-tce.md §4.9).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  VFIO_EEH_PE_OP,
  VFIO_EEH_PE_STATE,
  VFIO_EXTENSION,
  VfioEehPeOp,
} from '../../src/abi/vfio.ts';
import { SpaprClient } from './spapr-client.ts';

type Op = Partial<ReturnType<typeof VfioEehPeOp.decode>>;

function eeh(c: SpaprClient, op: number, more: Op = {}) {
  return c.call('VFIO_EEH_PE_OP', VfioEehPeOp, { argsz: 40, op, ...more });
}

const state = (c: SpaprClient) => eeh(c, VFIO_EEH_PE_OP.GET_STATE).ret;

describe('VFIO_EEH_PE_OP', () => {
  it('struct vfio_eeh_pe_op: 40 bytes, err at 16, minsz 12', () => {
    assert.equal(VfioEehPeOp.size, 40);
    assert.equal(VfioEehPeOp.endOf('op'), 12);
    assert.equal(VfioEehPeOp.endOf('err_type'), 20);
    assert.equal(VfioEehPeOp.endOf('err_mask'), 40);
  });

  it('CHECK_EXTENSION(VFIO_EEH) is 1 on the SPAPR backend, before and after SET_IOMMU', () => {
    const c = new SpaprClient();
    c.container = c.open('/dev/vfio/vfio').ret;
    assert.equal(c.ioctl(c.container, 'VFIO_CHECK_EXTENSION', BigInt(VFIO_EXTENSION.EEH)).ret, 1);
    c.addGroup(1);
    assert.equal(c.ioctl(c.container, 'VFIO_SET_IOMMU', 7n).ret, 0);
    assert.equal(c.ioctl(c.container, 'VFIO_CHECK_EXTENSION', BigInt(VFIO_EXTENSION.EEH)).ret, 1);
  });

  it('QEMU recovery: inject → STOPPED; hot reset → RESET; deactivate + configure → NORMAL', () => {
    const c = new SpaprClient().setup(1);
    assert.equal(eeh(c, VFIO_EEH_PE_OP.ENABLE).ret, 0);
    assert.equal(state(c), VFIO_EEH_PE_STATE.NORMAL);
    assert.equal(eeh(c, VFIO_EEH_PE_OP.INJECT_ERR, { err_type: 1, err_func: 17 }).ret, 0);
    assert.equal(state(c), VFIO_EEH_PE_STATE.STOPPED);
    assert.equal(eeh(c, VFIO_EEH_PE_OP.UNFREEZE_IO).ret, 0);
    assert.equal(state(c), VFIO_EEH_PE_STATE.STOPPED_DMA);
    assert.equal(eeh(c, VFIO_EEH_PE_OP.UNFREEZE_DMA).ret, 0);
    assert.equal(state(c), VFIO_EEH_PE_STATE.NORMAL);
    assert.equal(eeh(c, VFIO_EEH_PE_OP.INJECT_ERR, { err_type: 0, err_func: 0 }).ret, 0);
    assert.equal(eeh(c, VFIO_EEH_PE_OP.UNFREEZE_DMA).ret, 0);
    assert.equal(state(c), VFIO_EEH_PE_STATE.UNAVAIL, 'DMA thawed, MMIO frozen');
    for (const reset of [VFIO_EEH_PE_OP.RESET_HOT, VFIO_EEH_PE_OP.RESET_FUNDAMENTAL]) {
      assert.equal(eeh(c, reset).ret, 0);
      assert.equal(state(c), VFIO_EEH_PE_STATE.RESET);
      assert.equal(eeh(c, VFIO_EEH_PE_OP.RESET_DEACTIVATE).ret, 0);
      assert.equal(eeh(c, VFIO_EEH_PE_OP.CONFIGURE).ret, 0);
      assert.equal(state(c), VFIO_EEH_PE_STATE.NORMAL);
    }
    assert.equal(eeh(c, VFIO_EEH_PE_OP.DISABLE).ret, 0);
  });

  it('errno: argsz < 12, flags, unknown op EINVAL; INJECT_ERR argsz < 40 / func > 19 EINVAL, type ERANGE', () => {
    const c = new SpaprClient().setup(1);
    assert.equal(eeh(c, VFIO_EEH_PE_OP.GET_STATE, { argsz: 11 }).errno, 'EINVAL');
    assert.equal(eeh(c, VFIO_EEH_PE_OP.GET_STATE, { argsz: 12 }).ret, 0);
    assert.equal(eeh(c, VFIO_EEH_PE_OP.GET_STATE, { flags: 1 }).errno, 'EINVAL');
    assert.equal(eeh(c, 10).errno, 'EINVAL');
    assert.equal(eeh(c, VFIO_EEH_PE_OP.INJECT_ERR, { argsz: 39 }).errno, 'EINVAL');
    assert.equal(eeh(c, VFIO_EEH_PE_OP.INJECT_ERR, { err_func: 20 }).errno, 'EINVAL');
    assert.equal(eeh(c, VFIO_EEH_PE_OP.INJECT_ERR, { err_type: 2 }).errno, 'ERANGE');
    assert.equal(state(c), VFIO_EEH_PE_STATE.NORMAL, 'refused injections freeze nothing');
  });

  it('a container walks its groups newest first and returns the first non-zero answer (v1 too)', () => {
    const c = new SpaprClient();
    c.container = c.open('/dev/vfio/vfio').ret;
    const g1 = c.addGroup(1);
    assert.equal(c.ioctl(c.container, 'VFIO_SET_IOMMU', 7n).ret, 0);
    assert.equal(eeh(c, VFIO_EEH_PE_OP.INJECT_ERR).ret, 0); // PE 1: STOPPED
    assert.equal(c.proc.close(g1), 0);
    let g2 = c.addGroup(2);
    assert.equal(c.ioctl(c.container, 'VFIO_SET_IOMMU', 7n).ret, 0);
    assert.equal(eeh(c, VFIO_EEH_PE_OP.INJECT_ERR).ret, 0);
    assert.equal(eeh(c, VFIO_EEH_PE_OP.UNFREEZE_IO).ret, 0); // PE 2: STOPPED_DMA
    c.addGroup(1);
    assert.equal(state(c), VFIO_EEH_PE_STATE.STOPPED, 'group 1 is newest');
    assert.equal(c.proc.close(g2), 0);
    g2 = c.addGroup(2);
    assert.equal(state(c), VFIO_EEH_PE_STATE.STOPPED_DMA, 'group 2 is newest');
    // an errno is an answer too
    assert.equal(eeh(c, VFIO_EEH_PE_OP.INJECT_ERR, { err_type: 7 }).errno, 'ERANGE');

    const d = new SpaprClient().setup(1, VFIO_EXTENSION.SPAPR_TCE_IOMMU);
    assert.equal(eeh(d, VFIO_EEH_PE_OP.RESET_HOT).ret, 0);
    assert.equal(state(d), VFIO_EEH_PE_STATE.RESET);
  });
});
