/**
 * Reasons of iommufd's VFIO no-IOMMU compat mode (vfio-container.md's compat
 * table), and of rules that depend on the kernel profile: HWPT_INVALIDATE
 * before vIOMMUs (6.12), dma-buf mappings (7.2: revoked, under an access, split), and the driver-data copy
 * rules of HWPT_ALLOC. Each row triggers its rule through a syscall and pins
 * errno, reason and where.
 */
import assert from 'node:assert/strict';
import { IOMMU_HWPT_ALLOC_FLAGS, IOMMU_VFIO_IOAS_OP } from '../../src/abi/iommufd.ts';
import {
  MOCK_APERTURE_START as BASE,
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  IOMMU_TEST_OP,
  iommuTestCmdLayout,
  iommuTestCmdNumber,
} from '../../src/abi/iommufd-test.ts';
import { VFIO_EXTENSION, VfioIommuType1DmaUnmap, vfioIoctlNumber } from '../../src/abi/vfio.ts';
import { LINUX_6_12, LINUX_7_2 } from '../../src/host/versions.ts';
import { hwptAlloc, mockDomain, nestedAlloc, ok, tc } from '../iommufd/mock.ts';
import { FIXED, PAGE, RW } from '../iommufd/util.ts';
import type { Fixture } from '../support.ts';
import { VfioClient } from '../vfio/client.ts';
import { NOIOMMU_HOST } from '../vfio/noiommu-host.ts';
import { onSelftest as on, onSpapr, pin, type Row, traced, V2 } from './reasons-support.ts';

const FAKE = '/dev/vfio/noiommu-30';
const NOIOMMU = BigInt(VFIO_EXTENSION.NOIOMMU_IOMMU);
const TYPE1 = BigInt(VFIO_EXTENSION.TYPE1_IOMMU);

/** `act` on a traced client of the no-IOMMU host (CONFIG_VFIO_NOIOMMU), with an iommufd. */
function noIommu(act: (c: VfioClient, iommufd: number) => unknown, capSysRawio = true) {
  return () => {
    const c = traced(
      new VfioClient({ host: NOIOMMU_HOST, personality: { vfioNoiommu: true } }, { capSysRawio }),
    );
    act(c, c.open('/dev/iommu').ret);
    return c.proc;
  };
}

/** IOMMU_TEST_CMD `op` with `v`: its return value. */
function testOp(f: Fixture, op: number, v: Record<string, number | bigint>): number {
  return f.proc.call(f.fd, iommuTestCmdNumber(f.kernel.abi), iommuTestCmdLayout(op)!, { op, ...v })
    .ret;
}

/** A 7.2 fixture's IOAS with a two-page test dma-buf mapped at BASE (after `before` on the IOAS). */
function dmabufMapped(f: Fixture, before?: (ioas: number) => void) {
  const ioas = f.ioas();
  before?.(ioas);
  const fd = testOp(f, IOMMU_TEST_OP.DMABUF_GET, { length: Number(2n * PAGE) });
  const r = f.call('IOMMU_IOAS_MAP_FILE', {
    ioas_id: ioas,
    fd,
    flags: RW | FIXED,
    length: 2n * PAGE,
    iova: BASE,
  });
  assert.equal(r.errno, undefined);
  return ioas;
}
const access = (f: Fixture, ioas: number) =>
  ok(tc(f, 'CREATE_ACCESS', { id: ioas, flags: 1 })).out_access_fd as number;

const rows: Row[] = [
  [
    'a real group joins an iommufd in no-IOMMU mode',
    noIommu((c, fd) => {
      c.setContainer(c.open(FAKE).ret, fd);
      c.setContainer(c.open('/dev/vfio/31').ret, fd);
    }),
    'EINVAL',
    'the iommufd is in no-IOMMU mode',
    'iommufd_vfio_compat_ioas_create',
  ],
  [
    'a no-IOMMU group joins an iommufd with a compat IOAS',
    noIommu((c, fd) => {
      c.setContainer(c.open('/dev/vfio/31').ret, fd);
      c.setContainer(c.open(FAKE).ret, fd);
    }),
    'EINVAL',
    'the iommufd has a compat IOAS',
    'iommufd_vfio_compat_set_no_iommu',
  ],
  [
    'SET_IOMMU(NOIOMMU) without CAP_SYS_RAWIO',
    noIommu((c, fd) => {
      c.setContainer(c.open(FAKE).ret, fd);
      (c.proc.creds as { capSysRawio?: boolean }).capSysRawio = false;
      c.ioctl(fd, 'VFIO_SET_IOMMU', NOIOMMU);
    }),
    'EPERM',
    'no-IOMMU mode needs CAP_SYS_RAWIO',
    'iommufd_vfio_set_iommu',
  ],
  [
    'a second SET_IOMMU on an iommufd serving SPAPR TCE v2 (powernv)',
    onSpapr((c) => c.ioctl(c.container, 'VFIO_SET_IOMMU', BigInt(V2)), V2, {
      personality: { vfioContainer: 'iommufd' },
    }),
    'EINVAL',
    'container type already set',
    'iommufd_vfio_set_iommu',
  ],
  [
    'HWPT_INVALIDATE of an IOAS before vIOMMUs (6.12)',
    on((f) => f.call('IOMMU_HWPT_INVALIDATE', { hwpt_id: f.ioas() }), LINUX_6_12),
    'ENOENT',
    'object 1 is not a nested HWPT',
    'iommufd_get_hwpt_nested',
  ],
  [
    'MAP_FILE of a revoked dma-buf (7.2)',
    on((f) => {
      const fd = testOp(f, IOMMU_TEST_OP.DMABUF_GET, { length: Number(PAGE) });
      testOp(f, IOMMU_TEST_OP.DMABUF_REVOKE, { dmabuf_fd: fd, revoked: 1 });
      f.call('IOMMU_IOAS_MAP_FILE', { ioas_id: f.ioas(), fd, flags: RW, length: PAGE });
    }, LINUX_7_2),
    'ENODEV',
    'the dma-buf is revoked',
    'iopt_map_dmabuf',
  ],
  [
    'paging HWPT_ALLOC with selftest data shorter than its minimum (7.2)',
    on((f) => {
      const ioas = f.ioas();
      f.call('IOMMU_HWPT_ALLOC', {
        dev_id: mockDomain(f, ioas).idev,
        pt_id: ioas,
        data_type: IOMMU_HWPT_DATA_SELFTEST,
        data_len: 2,
        data_uptr: f.mem(PAGE),
      });
    }, LINUX_7_2),
    'EINVAL',
    'data type 57005 (want 57005) or len 2 outside 4..8',
    '__iommu_copy_struct_from_user',
  ],
  [
    'nested invalidation with entries shorter than the selftest struct',
    on((f) => {
      const ioas = f.ioas();
      const { idev } = mockDomain(f, ioas);
      const parent = hwptAlloc(f, idev, ioas, IOMMU_HWPT_ALLOC_FLAGS.NEST_PARENT).id;
      f.call('IOMMU_HWPT_INVALIDATE', {
        hwpt_id: nestedAlloc(f, idev, parent).id,
        data_type: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
        data_uptr: f.mem(PAGE),
        entry_len: 4,
        entry_num: 1,
      });
    }),
    'EINVAL',
    'entry_len 4 outside 8..8',
    '__iommu_copy_struct_from_user_array',
  ],
  [
    'access pin of a dma-buf mapping (7.2)',
    on((f) => {
      const id = access(f, dmabufMapped(f));
      tc(f, 'ACCESS_PAGES', { id, iova: BASE, length: PAGE });
    }, LINUX_7_2),
    'EINVAL',
    'an access cannot pin a dma-buf',
    'iopt_area_add_access',
  ],
  [
    'access read of a dma-buf mapping (7.2)',
    on((f) => {
      const id = access(f, dmabufMapped(f));
      tc(f, 'ACCESS_RW', { id, iova: BASE, length: PAGE, uptr: f.mem(PAGE) });
    }, LINUX_7_2),
    'EINVAL',
    'an access cannot read a dma-buf',
    'iopt_pages_rw_access',
  ],
  [
    'CHANGE_PROCESS while a dma-buf is mapped (7.2)',
    on((f) => {
      dmabufMapped(f);
      f.call('IOMMU_IOAS_CHANGE_PROCESS', {});
    }, LINUX_7_2),
    'EINVAL',
    'area at 0x1000000 maps a dma-buf, not a file',
    'iommufd_ioas_change_process',
  ],
  [
    'compat TYPE1 UNMAP_DMA inside a dma-buf mapping (7.2)',
    on((f) => {
      dmabufMapped(f, (ioas) => {
        f.call('IOMMU_VFIO_IOAS', { op: IOMMU_VFIO_IOAS_OP.SET, ioas_id: ioas });
        f.proc.ioctl(f.fd, vfioIoctlNumber(f.kernel.abi, 'VFIO_SET_IOMMU'), TYPE1);
      });
      const arg = f.proc.scratch(
        VfioIommuType1DmaUnmap.encode({ argsz: 24, iova: BASE, size: PAGE }),
      );
      f.proc.ioctl(f.fd, vfioIoctlNumber(f.kernel.abi, 'VFIO_IOMMU_UNMAP_DMA'), arg);
    }, LINUX_7_2),
    'EOPNOTSUPP',
    'a dma-buf mapping cannot be split',
    'iopt_area_split',
  ],
];

pin('vfio-container.md compat (no-IOMMU) and profile-dependent iommufd rules', rows);
