/**
 * The reasons of the IOMMU drivers' attach rules (src/drivers/): a VT-d
 * device attached through its cdev to a paging HWPT that another VT-d unit
 * allocated, where paging_domain_compatible_second_stage() refuses it or
 * the model keeps the domain on its own unit, and a VT-d device or a POWER
 * PE attached to a HWPT of another driver (the selftest mock).
 */
import assert from 'node:assert/strict';
import type { IommufdCmdName } from '../../src/abi/iommufd.ts';
import { IOMMU_HWPT_ALLOC_FLAGS, iommufdCmd, iommufdCmdNumber } from '../../src/abi/iommufd.ts';
import {
  IOMMU_TEST_OP,
  IommuTestCmdMockDomain,
  iommuTestCmdNumber,
} from '../../src/abi/iommufd-test.ts';
import { VfioDeviceAttachIommufdPt, vfioIoctlNumber } from '../../src/abi/vfio.ts';
import type { KernelOptions } from '../../src/host/kernel.ts';
import type { Process } from '../../src/host/process.ts';
import { VfioClient } from '../vfio/client.ts';
import { IPR, NVME as PNV_NVME } from '../vfio/spapr-client.ts';
import { I210, i210, NVME, pin, type Row, traced } from './reasons-support.ts';

const SZ_2M = 1n << 21n;

/** iommufd ioctl `name` with `value` on `fd`: the decoded struct, after asserting success. */
function ok(c: VfioClient, fd: number, name: IommufdCmdName, value: Record<string, unknown>) {
  const cmd = iommufdCmd(name);
  const r = c.proc.call(fd, iommufdCmdNumber(c.kernel.abi, name), cmd.layout, value as never);
  assert.equal(r.ret, 0, `${name}: ${r.errno}`);
  return r.out as Record<string, number>;
}

/**
 * On a host of `opts`: `first` (NVMe on dmar0 by default) and `second` (the
 * I210) bound to one iommufd through their cdevs,
 * `hwpt(c, iommufd, firstId, ioas)` gives a HWPT id, and `second` is
 * attached to it.
 */
function attachI210(
  opts: KernelOptions,
  hwpt: (c: VfioClient, iommufd: number, nvme: number, ioas: number) => number,
  [first, second] = [NVME, I210],
): () => Process {
  return () => {
    const c = traced(new VfioClient(opts));
    const iommufd = c.open('/dev/iommu').ret;
    const bind = (bdf: string) => {
      const fd = c.open(c.cdevPath(bdf)).ret;
      const r = c.bind(fd, iommufd);
      assert.equal(r.ret, 0);
      return { fd, devid: r.devid };
    };
    const nvme = bind(first);
    const dev = bind(second);
    const ioas = ok(c, iommufd, 'IOMMU_IOAS_ALLOC', {}).out_ioas_id!;
    const pt = hwpt(c, iommufd, nvme.devid, ioas);
    c.proc.call(
      dev.fd,
      vfioIoctlNumber(c.kernel.abi, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT'),
      VfioDeviceAttachIommufdPt,
      { argsz: 16, flags: 0, pt_id: pt, pasid: 0 },
    );
    return c.proc;
  };
}

/** A paging HWPT of the NVMe's unit (dmar0) on the IOAS, with HWPT_ALLOC `flags`. */
const paging =
  (flags = 0) =>
  (c: VfioClient, iommufd: number, nvme: number, ioas: number) =>
    ok(c, iommufd, 'IOMMU_HWPT_ALLOC', { dev_id: nvme, pt_id: ioas, flags }).out_hwpt_id!;

/** A HWPT of the selftest mock (IOMMU_TEST_CMD MOCK_DOMAIN) on the IOAS. */
function mockHwpt(c: VfioClient, iommufd: number, _dev: number, ioas: number): number {
  const cmd = iommuTestCmdNumber(c.kernel.abi);
  const r = c.proc.call(iommufd, cmd, IommuTestCmdMockDomain, {
    size: IommuTestCmdMockDomain.size,
    op: IOMMU_TEST_OP.MOCK_DOMAIN,
    id: ioas,
  });
  assert.equal(r.ret, 0);
  return r.out.out_hwpt_id;
}

const driverRows: Row[] = [
  [
    'a VT-d domain that tracks dirty pages, on a unit without SSADS',
    attachI210(
      i210({ unit: { dirtyTracking: false } }),
      paging(IOMMU_HWPT_ALLOC_FLAGS.DIRTY_TRACKING),
    ),
    'EINVAL',
    'the domain tracks dirty pages, this unit has no SSADS',
    'paging_domain_compatible_second_stage',
  ],
  [
    'a 48-bit VT-d domain on a 39-bit unit',
    attachI210(i210({ unit: { addressWidth: 39 } }), paging()),
    'EINVAL',
    "the domain's 48-bit address width exceeds the unit's 39 bits",
    'paging_domain_compatible_second_stage',
  ],
  [
    'a VT-d domain with 1 GiB pages on a unit without them',
    attachI210(i210({ unit: { pgsizes: 0x1000n | SZ_2M } }), paging()),
    'EINVAL',
    'the domain uses a page size this unit lacks',
    'paging_domain_compatible_second_stage',
  ],
  [
    'a compatible VT-d domain of another unit (not shared in the model)',
    attachI210(i210({ unit: {} }), paging()),
    'EINVAL',
    "a VT-d domain serves only the unit that allocated it (Linux's sharing across units is not modelled)",
    'uiommu_intel_domain_unit',
  ],
  [
    'a VT-d device on a selftest mock domain',
    attachI210({}, mockHwpt),
    'EINVAL',
    'domain belongs to another IOMMU driver',
    '__iommu_attach_group',
  ],
  [
    'a POWER PE on a selftest mock domain',
    attachI210({ host: 'powernv' }, mockHwpt, [PNV_NVME, IPR]),
    'EINVAL',
    'domain belongs to another IOMMU',
    '__iommu_attach_group',
  ],
];

pin('iommu drivers (attach compatibility)', driverRows);
