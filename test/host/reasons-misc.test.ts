/**
 * Reasons of host and backend rules no other table's area holds: SR-IOV of
 * a PF whose driver cannot make VFs, type1's pin of a range only partly
 * device memory (follow_pfnmap_start), a TYPE1_NESTING container's attach,
 * 6.12's probe of the selftest's mock device beside VT-d, and the engine's
 * answer to an OPEN whose path overflowed the request payload. Each row
 * triggers its rule through a syscall (the last, an engine request) and
 * pins errno, reason and where.
 */
import assert from 'node:assert/strict';
import { VFIO_EXTENSION } from '../../src/abi/vfio.ts';
import { O_WRONLY } from '../../src/host/file.ts';
import type { Process } from '../../src/host/process.ts';
import { x86 } from '../../src/host/topology/index.ts';
import { deviceMmapOp } from '../../src/server/device-mmap.ts';
import { OP } from '../../src/server/protocol.ts';
import { tc } from '../iommufd/mock.ts';
import { PAGE } from '../iommufd/util.ts';
import { answer, engineFixture } from '../server/fixture.ts';
import { setup } from '../support.ts';
import { VfioClient } from '../vfio/client.ts';
import {
  container,
  BAR_MMAP_HOST as HOST,
  MAP_SHARED,
  NVME,
  PROT_RW,
  pin,
  thrownErrno,
  traced,
} from './reasons-support.ts';

const X710 = '0000:04:00.0'; // an SR-IOV PF alone in group 14 of the x86 preset, up to 4 VFs
const BAR_VA = 0x5000_0000n;

pin('misc (SR-IOV PF driver, type1 device memory, TYPE1_NESTING)', [
  [
    'sriov_numvfs 0 of a PF with VFs at boot and no VF template (sriov_configure cannot change them)',
    () => {
      const pf = x86.devices.find((d) => d.bdf === X710)!;
      const { sriov: _n, sriovTotalVfs: _t, sriovVf: template, ...fn } = pf;
      const vf = { ...fn, ...template!, bdf: '0000:04:02.0', group: 15, physfn: X710 };
      const devices = x86.devices.flatMap((d) =>
        d.bdf === X710 ? [{ ...d, sriov: 1, sriovTotalVfs: 1, sriovVf: undefined }, vf] : [d],
      );
      const c = traced(
        new VfioClient({ personality: { vfioPciEnableSriov: true }, host: { ...x86, devices } }),
      );
      const fd = c.proc.open(`/sys/bus/pci/devices/${X710}/sriov_numvfs`, O_WRONLY);
      assert.ok(fd >= 0);
      c.proc.write(fd, c.proc.scratch(new TextEncoder().encode('0')), 1);
      return c.proc;
    },
    'ENOENT',
    'the PF driver cannot configure VFs',
    'sriov_numvfs_store',
  ],
  [
    'type1 MAP_DMA of a BAR mmap and the page past it',
    () => {
      const { c, fd, group } = container('type1', VFIO_EXTENSION.TYPE1v2_IOMMU);
      const dev = c.getDeviceFd(group, NVME).ret;
      const p: Process = c.proc;
      const args = [BigInt(dev), 0n, PAGE, BigInt(MAP_SHARED), BigInt(PROT_RW), BAR_VA];
      deviceMmapOp(p, { op: OP.MMAP, pid: p.pid, tid: p.pid, args }, HOST);
      c.mapDma(fd, BAR_VA, 0x10_0000n, 2n * PAGE);
      return p;
    },
    'EFAULT',
    'not device memory',
    'follow_pfnmap_start',
  ],
  [
    'MOCK_DOMAIN on 6.12 with VT-d present: the mock device is probed by intel-iommu, which refuses it',
    () => {
      const f = traced(setup({ host: 'x86', personality: { selftest: true, mockFwspec: false } }));
      tc(f, 'MOCK_DOMAIN_FLAGS', { id: f.ioas(), dev_flags: 0 });
      return f.proc;
    },
    'EINVAL',
    'the mock device was probed by the first IOMMU driver registered (not the mock) and has no IOMMU',
    'iommufd_device_bind',
  ],
  [
    'an engine OPEN whose path overflowed the request payload',
    () => {
      const f = engineFixture();
      const c = f.client(700);
      const req = { op: OP.OPEN, pid: 700, tid: 700, args: [3n, 2n], oversize: true };
      // the client sees the errno; the reason is the Errno the dispatch throws
      assert.equal(answer(f.engine.handle(c.conn, req)).errno, 'ENAMETOOLONG');
      const engine = f.engine as unknown as { dispatch(conn: unknown, r: typeof req): unknown };
      return thrownErrno(() => engine.dispatch(c.conn, req));
    },
    'ENAMETOOLONG',
    'path longer than PATH_MAX',
    'getname_long',
  ],
  [
    'SET_IOMMU TYPE1_NESTING: the group attach needs enable_nesting, which no driver has',
    () => {
      const { c, fd } = container('type1', undefined, 12, {
        personality: { type1Nesting: true },
      });
      c.ioctl(fd, 'VFIO_SET_IOMMU', BigInt(VFIO_EXTENSION.TYPE1_NESTING_IOMMU));
      return c.proc;
    },
    'EINVAL',
    'a TYPE1_NESTING domain must enable nesting, and this one has no enable_nesting op',
    'vfio_iommu_type1_attach_group',
  ],
]);
