/**
 * The one state snapshot (src/host/state.ts) that --dump-state, the live
 * view and --trace-json's state records share: a legacy container's type1
 * mappings, what a fault queue and a vEVENTQ hold, a SPAPR PE's windows,
 * and pinned pages — each appearing and going with the calls that make it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IOMMU_HWPT_ALLOC_FLAGS } from '../../src/abi/iommufd.ts';
import {
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_SELFTEST_SIZE,
  IOMMU_VEVENTQ_TYPE_SELFTEST,
  IommuHwptSelftest,
} from '../../src/abi/iommufd-test.ts';
import { kernelState } from '../../src/host/state.ts';
import {
  faultQueue,
  hwptAlloc,
  mockDomain,
  ok,
  replace,
  st,
  tc,
  viommuAlloc,
} from '../iommufd/mock.ts';
import { PAGE } from '../iommufd/util.ts';
import { VfioClient } from '../vfio/client.ts';
import { DDW, GIB, MIB, SpaprClient } from '../vfio/spapr-client.ts';

describe('state snapshot', () => {
  it('a type1 container lists its mappings (iova, size, vaddr, prot, locked pages) as MAP/UNMAP change them', () => {
    const c = new VfioClient({ personality: { vfioContainer: 'type1' } });
    const fd = c.open('/dev/vfio/vfio').ret;
    const group = c.open('/dev/vfio/12').ret;
    assert.equal(c.setContainer(group, fd).ret, 0);
    const at = `${c.proc.pid}:${fd}`;
    assert.deepEqual(kernelState(c.kernel).containers, [
      { fds: [at], groups: [12], backend: null, mappings: [] },
    ]);
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', 3n).ret, 0);
    const va = c.mem(2n * MIB);
    assert.equal(c.mapDma(fd, va, 0x10_0000n, MIB).ret, 0);
    assert.equal(c.mapDma(fd, va + MIB, 0x40_0000n, MIB, 1).ret, 0);
    const pages = String(MIB / c.proc.mm.pageSize);
    const mapping = (iova: string, vaddr: bigint, prot: string) => ({
      iova,
      size: '0x100000',
      vaddr: `0x${vaddr.toString(16)}`,
      prot,
      lockedPages: pages,
    });
    assert.deepEqual(kernelState(c.kernel).containers, [
      {
        fds: [at],
        groups: [12],
        backend: 'type1v2',
        mappings: [mapping('0x100000', va, 'rw'), mapping('0x400000', va + MIB, 'r-')],
      },
    ]);
    assert.equal(c.unmapDma(fd, 0x10_0000n, MIB).ret, 0);
    assert.deepEqual(
      kernelState(c.kernel).containers[0]?.mappings.map((m) => m.iova),
      ['0x400000'],
    );
  });

  it('a fault queue shows a group pending, then awaiting its response (cookie), then nothing', () => {
    const f = st();
    const ioas = f.ioas();
    const dev = mockDomain(f, ioas);
    const fault = faultQueue(f);
    const h = hwptAlloc(f, dev.idev, ioas, IOMMU_HWPT_ALLOC_FLAGS.FAULT_ID_VALID, fault.id);
    assert.equal(replace(f, dev.stdev, h.id), undefined);
    const queue = () => kernelState(f.kernel).contexts[0]?.faultQueues;
    assert.deepEqual(queue(), [{ id: fault.id, groups: [] }]);
    ok(tc(f, 'TRIGGER_IOPF', { dev_id: dev.idev, pasid: 0, grpid: 5, perm: 3, addr: 0xdeadbeafn }));
    const faults = [{ pasid: 0, grpid: 5, perm: 3, addr: '0xdeadbeaf' }];
    assert.deepEqual(queue(), [
      { id: fault.id, groups: [{ state: 'pending', devId: dev.idev, cookie: 0, faults }] },
    ]);
    assert.equal(f.proc.read(fault.fd, f.mem(PAGE), 40), 40);
    assert.deepEqual(queue(), [
      {
        id: fault.id,
        groups: [{ state: 'awaiting response', devId: dev.idev, cookie: 1, faults }],
      },
    ]);
    const response = f.mem(PAGE);
    f.proc.mm.write(
      response,
      new Uint8Array(8).fill(0).map((_, i) => (i === 0 ? 1 : 0)),
    );
    assert.equal(f.proc.write(fault.fd, response, 8), 8);
    assert.deepEqual(queue(), [{ id: fault.id, groups: [] }]);
  });

  it('a vEVENTQ shows its records (sequence, payload) until they are read', () => {
    const f = st();
    const ioas = f.ioas();
    const dev = mockDomain(f, ioas);
    const parent = hwptAlloc(f, dev.idev, ioas, IOMMU_HWPT_ALLOC_FLAGS.NEST_PARENT).id;
    const viommu = viommuAlloc(f, dev.idev, parent);
    const q = ok(
      f.call('IOMMU_VEVENTQ_ALLOC', {
        viommu_id: viommu,
        type: IOMMU_VEVENTQ_TYPE_SELFTEST,
        veventq_depth: 2,
      }),
    );
    ok(f.call('IOMMU_VDEVICE_ALLOC', { viommu_id: viommu, dev_id: dev.idev, virt_id: 0x99n }));
    const data = f.mem(PAGE);
    f.proc.mm.write(data, IommuHwptSelftest.encode({ iotlb: 0 }));
    const nested = ok(
      f.call('IOMMU_HWPT_ALLOC', {
        dev_id: dev.idev,
        pt_id: viommu,
        data_type: IOMMU_HWPT_DATA_SELFTEST,
        data_len: IOMMU_HWPT_SELFTEST_SIZE[f.kernel.personality.selftestAbi],
        data_uptr: data,
      }),
    ).out_hwpt_id as number;
    assert.equal(replace(f, dev.stdev, nested), undefined);
    for (let i = 0; i < 3; i++) ok(tc(f, 'TRIGGER_VEVENT', { dev_id: dev.idev }));
    const queues = () => kernelState(f.kernel).contexts[0]?.veventqs;
    assert.deepEqual(queues(), [
      {
        id: q.out_veventq_id,
        viommu,
        type: IOMMU_VEVENTQ_TYPE_SELFTEST,
        depth: 2,
        events: [
          { sequence: 0, lostEvents: false, payload: '99000000' },
          { sequence: 1, lostEvents: false, payload: '99000000' },
          { sequence: 2, lostEvents: true, payload: '' },
        ],
      },
    ]);
    assert.ok(f.proc.read(q.out_veventq_fd as number, f.mem(PAGE), 4096) > 0);
    assert.deepEqual(queues()?.[0]?.events, []);
  });

  it("a SPAPR PE shows its TCE windows as its domain; REGISTER_MEMORY's pins count in pinnedPages", () => {
    const c = new SpaprClient().setup(1);
    const ram = c.ram(4n * MIB);
    assert.equal(c.register(ram, 4n * MIB).ret, 0);
    assert.equal(c.create(16, GIB).ret, 0);
    const group = () => kernelState(c.kernel).groups.find((g) => g.id === 1)!;
    assert.equal(group().domain?.kind, 'windows');
    assert.deepEqual(group().domain?.windows, [
      { slot: 0, start: '0', size: '0x80000000', pageShift: 12, levels: 1 },
      { slot: 1, start: `0x${DDW.toString(16)}`, size: '0x40000000', pageShift: 16, levels: 1 },
    ]);
    assert.equal(kernelState(c.kernel).pinnedPages, String((4n * MIB) / c.proc.mm.pageSize));
    assert.equal(c.unregister(ram, 4n * MIB).ret, 0);
    assert.equal(kernelState(c.kernel).pinnedPages, '0');
  });
});
