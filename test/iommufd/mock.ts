/**
 * Helpers for tests driving the selftest mock through IOMMU_TEST_CMD:
 * a fixture with its own TEST_CMD, op calls by name, mock devices, HWPTs
 * and fault queues.
 */
import assert from 'node:assert/strict';
import type { ErrnoName } from '../../src/abi/errno.ts';
import {
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_SELFTEST_SIZE,
  IOMMU_TEST_IOTLB_DEFAULT,
  IOMMU_TEST_OP,
  IOMMU_VIOMMU_TYPE_SELFTEST,
  IommuHwptSelftest,
  type IommuTestOpName,
  iommuTestCmdLayout,
  iommuTestCmdNumber,
} from '../../src/abi/iommufd-test.ts';
import { selftestCmd } from '../../src/iommufd/selftest.ts';
import { type Fixture, setup } from '../support.ts';

export type Vals = Record<string, number | bigint>;

/** A fixture whose kernel has its own IOMMU_TEST_CMD. */
export function st(): Fixture {
  return setup({ selftestCmd: selftestCmd() });
}

/** IOMMU_TEST_CMD `op` with its union member's fields. */
export function tc(f: Fixture, op: IommuTestOpName, value: Vals) {
  const n = IOMMU_TEST_OP[op];
  const r = f.proc.call(f.fd, iommuTestCmdNumber(f.kernel.abi), iommuTestCmdLayout(n)!, {
    ...value,
    op: n,
  });
  return { errno: r.errno, out: r.out as Vals };
}

/** The call succeeded; its struct as written back. */
export function ok(r: { errno: ErrnoName | undefined; out: Vals }, what?: string): Vals {
  assert.equal(r.errno, undefined, what);
  return r.out;
}

/** MOCK_DOMAIN_FLAGS on `pt`; returns the three IDs. */
export function mockDomain(f: Fixture, pt: number, devFlags = 0) {
  const out = ok(tc(f, 'MOCK_DOMAIN_FLAGS', { id: pt, dev_flags: devFlags }));
  return {
    stdev: out.out_stdev_id as number,
    hwpt: out.out_hwpt_id as number,
    idev: out.out_idev_id as number,
  };
}

/** HWPT_ALLOC on `pt` for DEVICE `dev`; the errno, and the id on success. */
export function hwptAlloc(f: Fixture, dev: number, pt: number, flags: number, faultId = 0) {
  const r = f.call('IOMMU_HWPT_ALLOC', { dev_id: dev, pt_id: pt, flags, fault_id: faultId });
  return { errno: r.errno, id: r.out.out_hwpt_id as number };
}

/** FAULT_QUEUE_ALLOC; returns the FAULT id and its fd. */
export function faultQueue(f: Fixture): { id: number; fd: number } {
  const out = ok(f.call('IOMMU_FAULT_QUEUE_ALLOC', {}));
  return { id: out.out_fault_id as number, fd: out.out_fault_fd as number };
}

/** IOMMU_DESTROY of `id`: its errno. */
export function destroy(f: Fixture, id: number): ErrnoName | undefined {
  return f.call('IOMMU_DESTROY', { id }).errno;
}

/** MOCK_DOMAIN_REPLACE of stdev `stdev` onto `pt`: its errno. */
export function replace(f: Fixture, stdev: number, pt: number): ErrnoName | undefined {
  return tc(f, 'MOCK_DOMAIN_REPLACE', { id: stdev, pt_id: pt }).errno;
}

/** HWPT_ALLOC of a mock nested HWPT (selftest data {iotlb}) on a nesting parent or a vIOMMU. */
export function nestedAlloc(f: Fixture, dev: number, pt: number, flags = 0, faultId = 0) {
  const data = f.mem(0x1000n);
  f.proc.mm.write(data, IommuHwptSelftest.encode({ iotlb: IOMMU_TEST_IOTLB_DEFAULT }));
  const r = f.call('IOMMU_HWPT_ALLOC', {
    dev_id: dev,
    pt_id: pt,
    flags,
    fault_id: faultId,
    data_type: IOMMU_HWPT_DATA_SELFTEST,
    data_len: IOMMU_HWPT_SELFTEST_SIZE[f.kernel.personality.selftestAbi],
    data_uptr: data,
  });
  return { errno: r.errno, id: r.out.out_hwpt_id as number };
}

/** VIOMMU_ALLOC of the mock vIOMMU on nesting parent `hwpt`; returns its id. */
export function viommuAlloc(f: Fixture, dev: number, hwpt: number): number {
  const r = f.call('IOMMU_VIOMMU_ALLOC', {
    dev_id: dev,
    hwpt_id: hwpt,
    type: IOMMU_VIOMMU_TYPE_SELFTEST,
  });
  assert.equal(r.errno, undefined);
  return r.out.out_viommu_id as number;
}
