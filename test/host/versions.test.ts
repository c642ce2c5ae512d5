/**
 * Kernel version profiles: each profile's version-dependent answers, and
 * single settings overriding a profile.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  IOMMU_HW_CAP,
  IOMMU_HW_INFO_FLAGS,
  IOMMU_HW_INFO_TYPE,
  IOMMU_HWPT_DATA_TYPE,
  IOMMU_VFIO_IOAS_OP,
} from '../../src/abi/iommufd.ts';
import {
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_TEST_OP,
  IOMMU_VEVENTQ_TYPE_SELFTEST,
  IOMMU_VIOMMU_TYPE_SELFTEST,
  IommuHwptSelftest,
  iommuTestCmdLayout,
  iommuTestCmdNumber,
  MOCK_FLAGS_DEVICE,
  MOCK_IOMMUPT,
} from '../../src/abi/iommufd-test.ts';
import { VFIO_EXTENSION, VfioIommuType1Info, vfioIoctlNumber } from '../../src/abi/vfio.ts';
import type { KernelOptions } from '../../src/host/kernel.ts';
import { KERNEL_PROFILES, KERNEL_VERSIONS, LINUX_6_18 } from '../../src/host/versions.ts';
import { mockDomain, tc } from '../iommufd/mock.ts';
import { PAGE, RW, ranges } from '../iommufd/util.ts';
import { type Fixture, setup } from '../support.ts';
import { VfioClient } from '../vfio/client.ts';

const at = (version: KernelOptions['version'], o: KernelOptions = {}) => setup({ version, ...o });

/** A legacy type1 container under `version` holding group 12, set to TYPE1v2. */
function type1v2Container(version: KernelOptions['version']) {
  const c = new VfioClient({ version, personality: { vfioContainer: 'type1' } });
  const fd = c.open('/dev/vfio/vfio').ret;
  const group = c.open('/dev/vfio/12').ret;
  assert.equal(c.setContainer(group, fd).ret, 0);
  assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', BigInt(VFIO_EXTENSION.TYPE1v2_IOMMU)).ret, 0);
  return { c, fd };
}

/** A mock device under `version` (on the mock host) with a nesting-parent HWPT, and a page for driver data. */
function nestingParent(version: KernelOptions['version']) {
  const f = at(version, { host: 'mock' });
  const ioas = f.ioas();
  const { idev } = mockDomain(f, ioas);
  const parent = f.call('IOMMU_HWPT_ALLOC', { dev_id: idev, pt_id: ioas, flags: 1 }).out
    .out_hwpt_id as number;
  return { f, idev, parent, data: f.mem(PAGE) };
}

/** HWPT_ALLOC on an IOAS with struct iommu_hwpt_selftest data (`len` bytes). */
function selftestPaging(f: Fixture, idev: number, ioas: number, pagetable_type: number, len = 8) {
  const data = f.mem(PAGE);
  f.proc.mm.write(data, IommuHwptSelftest.encode({ iotlb: 0, pagetable_type }));
  const r = f.call('IOMMU_HWPT_ALLOC', {
    dev_id: idev,
    pt_id: ioas,
    data_type: IOMMU_HWPT_DATA_SELFTEST,
    data_len: len,
    data_uptr: data,
  });
  return { errno: r.errno, id: r.out.out_hwpt_id as number };
}

test('every profile names every setting, and 6.18 is the default', () => {
  for (const v of KERNEL_VERSIONS) {
    assert.deepEqual(Object.keys(KERNEL_PROFILES[v]).sort(), Object.keys(LINUX_6_18).sort(), v);
  }
  const k = setup().kernel;
  assert.equal(k.version, '6.18');
  assert.deepEqual(k.personality, LINUX_6_18);
});

describe('iommufd ioctls a version lacks answer ENOTTY', () => {
  test('6.12 has no MAP_FILE, vIOMMU, vDEVICE, CHANGE_PROCESS, vEVENTQ, HW_QUEUE', () => {
    const f = at('6.12');
    const ioas = f.ioas();
    for (const name of [
      'IOMMU_IOAS_MAP_FILE',
      'IOMMU_VIOMMU_ALLOC',
      'IOMMU_VDEVICE_ALLOC',
      'IOMMU_IOAS_CHANGE_PROCESS',
      'IOMMU_VEVENTQ_ALLOC',
      'IOMMU_HW_QUEUE_ALLOC',
    ] as const) {
      assert.equal(f.call(name, {}).errno, 'ENOTTY', name);
    }
    assert.notEqual(f.call('IOMMU_FAULT_QUEUE_ALLOC', {}).errno, 'ENOTTY');
    assert.equal(
      f.call('IOMMU_IOAS_UNMAP', { ioas_id: ioas, length: (1n << 64n) >> 1n }).errno,
      'ENOENT',
    );
  });

  test('6.18 and 7.2 have them; a single setting overrides the profile', () => {
    for (const v of ['6.18', '7.2'] as const) {
      assert.equal(at(v).call('IOMMU_IOAS_CHANGE_PROCESS', {}).errno, undefined, v);
    }
    const f = at('6.12', { personality: { iommufdLastCmd: 'IOMMU_IOAS_CHANGE_PROCESS' } });
    assert.equal(f.kernel.personality.selftestAbi, '6.12');
    assert.equal(f.call('IOMMU_IOAS_CHANGE_PROCESS', {}).errno, undefined);
    assert.equal(f.call('IOMMU_VEVENTQ_ALLOC', {}).errno, 'ENOTTY');
  });
});

describe('selftest generations', () => {
  test('HUGE_IOVA devices until 6.18; 7.2 refuses the flag (EINVAL)', () => {
    for (const v of ['6.12', '6.18'] as const) {
      const f = at(v, { host: 'mock' });
      mockDomain(f, f.ioas(), MOCK_FLAGS_DEVICE.HUGE_IOVA);
    }
    const f = at('7.2');
    const r = tc(f, 'MOCK_DOMAIN_FLAGS', { id: f.ioas(), dev_flags: MOCK_FLAGS_DEVICE.HUGE_IOVA });
    assert.equal(r.errno, 'EINVAL');
  });

  test('ops past the generation answer EOPNOTSUPP', () => {
    const f612 = at('6.12');
    assert.equal(tc(f612, 'PASID_DETACH', { id: 1, pasid: 1 }).errno, 'EOPNOTSUPP');
    assert.equal(tc(f612, 'DEV_CHECK_CACHE', { id: 1 }).errno, 'EOPNOTSUPP');
    const f618 = at('6.18');
    assert.equal(tc(f618, 'DMABUF_GET', { length: 4096 }).errno, 'EOPNOTSUPP');
    assert.equal(tc(at('7.2'), 'DMABUF_GET', { length: 4096 }).errno, undefined);
  });

  test('7.2 paging domains take struct iommu_hwpt_selftest with pagetable_type', () => {
    const f = at('7.2');
    const ioas = f.ioas();
    const { idev } = mockDomain(f, ioas);
    assert.equal(selftestPaging(f, idev, ioas, 2).errno, 'EOPNOTSUPP');
    assert.equal(selftestPaging(f, idev, ioas, MOCK_IOMMUPT.DEFAULT, 9).errno, 'EINVAL');
    assert.equal(selftestPaging(f, idev, ioas, MOCK_IOMMUPT.DEFAULT, 3).errno, 'EINVAL');
    assert.equal(selftestPaging(f, idev, ioas, MOCK_IOMMUPT.DEFAULT, 4).errno, undefined);
    // HUGE covers the whole 38-bit table: only the default domain narrows the IOAS
    const ioas2 = f.ioas();
    const huge = mockDomain(f, ioas2).idev;
    const hugeAt = f.ioas();
    assert.equal(selftestPaging(f, huge, hugeAt, MOCK_IOMMUPT.HUGE).errno, undefined);
    assert.deepEqual(ranges(f, hugeAt).ranges, [[0n, (1n << 38n) - 1n]]);
    assert.equal(ranges(f, hugeAt).align, PAGE);
  });

  test('6.18 paging domains take no data (EOPNOTSUPP), its struct is 4 bytes', () => {
    const f = at('6.18');
    const ioas = f.ioas();
    const { idev } = mockDomain(f, ioas);
    assert.equal(selftestPaging(f, idev, ioas, MOCK_IOMMUPT.DEFAULT).errno, 'EOPNOTSUPP');
  });

  test('7.2 DIRTY refuses more than 2^27 bits before looking up the HWPT (EOVERFLOW)', () => {
    const f = at('7.2');
    const args = { id: 0, iova: 0n, page_size: 1n, uptr: 0x1000n };
    assert.equal(tc(f, 'DIRTY', { ...args, length: 1n << 27n }).errno, 'ENOENT');
    assert.equal(tc(f, 'DIRTY', { ...args, length: (1n << 27n) + 1n }).errno, 'EOVERFLOW');
    assert.equal(tc(at('6.18'), 'DIRTY', { ...args, length: (1n << 27n) + 1n }).errno, 'ENOENT');
  });
});

describe('7.2 test dma-buf', () => {
  /** DMABUF_GET: the new fd (the ioctl's return value), or the errno. */
  function dmabuf(f: Fixture, length: number): number | string {
    const n = IOMMU_TEST_OP.DMABUF_GET;
    const r = f.proc.call(f.fd, iommuTestCmdNumber(f.kernel.abi), iommuTestCmdLayout(n)!, {
      op: n,
      length,
    });
    return r.errno ?? r.ret;
  }
  function mapFile(f: Fixture, ioas: number, fd: number, start: bigint, length: bigint) {
    return f.call('IOMMU_IOAS_MAP_FILE', { ioas_id: ioas, fd, start, length, flags: RW }).errno;
  }

  test('DMABUF_GET: 0 or more than 512 pages is EINVAL; the length rounds up to pages', () => {
    const f = at('7.2');
    assert.equal(dmabuf(f, 0), 'EINVAL');
    assert.equal(dmabuf(f, 512 * 4096 + 1), 'EINVAL');
    const fd = dmabuf(f, 1) as number;
    assert.ok(fd > f.fd);
    const ioas = f.ioas();
    assert.equal(mapFile(f, ioas, fd, 0n, PAGE), undefined);
    assert.equal(mapFile(f, ioas, fd, 0n, PAGE + 1n), 'EINVAL');
  });

  test('MAP_FILE takes a range of the buffer; revoked it is ENODEV until restored', () => {
    const f = at('7.2');
    const ioas = f.ioas();
    const size = 4n * PAGE;
    const fd = dmabuf(f, Number(size)) as number;
    assert.equal(mapFile(f, ioas, fd, 0n, 0n), 'EINVAL');
    assert.equal(mapFile(f, ioas, fd, size, size), 'EINVAL');
    assert.equal(mapFile(f, ioas, fd, 0n, size + 1n), 'EINVAL');
    assert.equal(mapFile(f, ioas, fd, 0n, size), undefined);
    assert.equal(tc(f, 'DMABUF_REVOKE', { dmabuf_fd: fd, revoked: 1 }).errno, undefined);
    assert.equal(mapFile(f, ioas, fd, 0n, size), 'ENODEV');
    assert.equal(tc(f, 'DMABUF_REVOKE', { dmabuf_fd: fd, revoked: 0 }).errno, undefined);
    assert.equal(mapFile(f, ioas, fd, 0n, size), undefined);
  });

  test('DMABUF_REVOKE: EBADF for a closed fd, EINVAL for a file that is not a dma-buf', () => {
    const f = at('7.2');
    assert.equal(tc(f, 'DMABUF_REVOKE', { dmabuf_fd: 99, revoked: 1 }).errno, 'EBADF');
    assert.equal(tc(f, 'DMABUF_REVOKE', { dmabuf_fd: f.fd, revoked: 1 }).errno, 'EINVAL');
  });
});

test('7.2 reports IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED; 6.18 does not', () => {
  for (const [v, ats] of [
    ['6.18', 0],
    ['7.2', IOMMU_HW_CAP.PCI_ATS_NOT_SUPPORTED],
  ] as const) {
    const f = at(v);
    const { idev } = mockDomain(f, f.ioas());
    const r = f.call('IOMMU_GET_HW_INFO', { dev_id: idev });
    assert.equal(r.errno, undefined);
    assert.equal(r.out.out_capabilities, BigInt(IOMMU_HW_CAP.DIRTY_TRACKING | ats), v);
  }
});

test('legacy type1: a MAP_DMA range that wraps u64 is EINVAL in 6.18, EOVERFLOW in 7.2', () => {
  for (const [version, errno] of [
    ['6.18', 'EINVAL'],
    ['7.2', 'EOVERFLOW'],
  ] as const) {
    const { c, fd } = type1v2Container(version);
    const iova = (1n << 64n) - PAGE;
    assert.equal(c.mapDma(fd, c.mem(2n * PAGE), iova, 2n * PAGE, 3).errno, errno, version);
  }
});

test('7.2 bounds HWPT_INVALIDATE before the lookup: entry_len ≤ PAGE_SIZE, entry_num ≤ 2^19', () => {
  const inv = (f: Fixture, entry_len: number, entry_num: number) =>
    f.call('IOMMU_HWPT_INVALIDATE', { hwpt_id: 77, data_uptr: 0x1000n, entry_len, entry_num })
      .errno;
  const f72 = at('7.2');
  assert.equal(inv(f72, 4096, 1 << 19), 'ENOENT');
  assert.equal(inv(f72, 4097, 1), 'EINVAL');
  assert.equal(inv(f72, 8, (1 << 19) + 1), 'EINVAL');
  const f618 = at('6.18');
  assert.equal(inv(f618, 4097, 1), 'ENOENT');
  assert.equal(inv(f618, 8, (1 << 19) + 1), 'ENOENT');
});

test('7.2 bounds VEVENTQ depth at 2^19 and reads at a header; 6.18 and 7.2 take the 24-byte iommu_viommu_selftest', () => {
  for (const [v, bounded] of [
    ['6.18', false],
    ['7.2', true],
  ] as const) {
    const { f, idev, parent, data } = nestingParent(v);
    f.proc.mm.write(data, new Uint8Array([0xef, 0xbe, 0, 0]));
    const viommu = (len: number) =>
      f.call('IOMMU_VIOMMU_ALLOC', {
        dev_id: idev,
        hwpt_id: parent,
        type: IOMMU_VIOMMU_TYPE_SELFTEST,
        data_len: len,
        data_uptr: data,
      });
    assert.equal(viommu(24).errno, undefined, v);
    assert.equal(viommu(25).errno, 'EINVAL', v);
    const r = viommu(8);
    assert.equal(r.errno, undefined, v);
    assert.equal(new DataView(f.proc.mm.read(data + 4n, 4).buffer).getUint32(0, true), 0xbeef);
    const q = (depth: number) =>
      f.call('IOMMU_VEVENTQ_ALLOC', {
        viommu_id: r.out.out_viommu_id as number,
        type: IOMMU_VEVENTQ_TYPE_SELFTEST,
        veventq_depth: depth,
      }).errno;
    assert.equal(q((1 << 19) + 1), bounded ? 'EINVAL' : undefined, v);
    const fd = f.call('IOMMU_VEVENTQ_ALLOC', {
      viommu_id: r.out.out_viommu_id as number,
      type: IOMMU_VEVENTQ_TYPE_SELFTEST + 1,
      veventq_depth: 2,
    }).out.out_veventq_fd as number;
    assert.equal(
      f.proc.read(fd, f.mem(PAGE), 0) < 0 ? f.proc.errno : undefined,
      bounded ? 'EINVAL' : undefined,
    );
  }
});

test('6.12 HWPT_INVALIDATE finds only nested HWPTs (ENOENT); later kernels answer EINVAL', () => {
  for (const [v, errno] of [
    ['6.12', 'ENOENT'],
    ['6.18', 'EINVAL'],
  ] as const) {
    const f = at(v);
    const ioas = f.ioas();
    assert.equal(
      f.call('IOMMU_HWPT_INVALIDATE', {
        hwpt_id: ioas,
        data_uptr: 0x1000n,
        entry_len: 8,
        entry_num: 1,
      }).errno,
      errno,
      v,
    );
  }
});

test('ADD_RESERVED: length 0 EINVAL, a range past U64_MAX EOVERFLOW, both before the lookup', () => {
  const f = at('7.2');
  const add = (id: number, start: bigint, length: bigint) =>
    tc(f, 'ADD_RESERVED', { id, start, length }).errno;
  assert.equal(add(999, 0x1000n, 0n), 'EINVAL');
  assert.equal(add(999, -0x1000n & ((1n << 64n) - 1n), 0x2000n), 'EOVERFLOW');
  assert.equal(add(999, 0x1000n, 0x1000n), 'ENOENT');
  assert.equal(add(f.ioas(), -0x1000n & ((1n << 64n) - 1n), 0x1000n), undefined);
});

test('MD_CHECK_MAP: 6.18 checks alignment first, 7.2 looks the HWPT up first', () => {
  const args = { id: 999, iova: 1n, length: 0x1000n, uptr: 0x1000n };
  assert.equal(tc(at('6.18'), 'MD_CHECK_MAP', args).errno, 'EINVAL');
  assert.equal(tc(at('7.2'), 'MD_CHECK_MAP', args).errno, 'ENOENT');
});

test('legacy type1 TYPE1_NESTING: 6.12 offers it but no domain here enables nesting (EINVAL); since 6.13 CHECK_EXTENSION 0, SET_IOMMU ENODEV', () => {
  // 6.12's attach calls iommu_enable_nesting, which VT-d lacks: found by
  // `npm run differential -- --kernel 6.12` on a real 6.12.95 (edu seed 16)
  for (const [version, answer, errno] of [
    ['6.12', 1, 'EINVAL'],
    ['6.18', 0, 'ENODEV'],
    ['7.2', 0, 'ENODEV'],
  ] as const) {
    const c = new VfioClient({ version, personality: { vfioContainer: 'type1' } });
    const fd = c.open('/dev/vfio/vfio').ret;
    const nesting = BigInt(VFIO_EXTENSION.TYPE1_NESTING_IOMMU);
    assert.equal(c.ioctl(fd, 'VFIO_CHECK_EXTENSION', nesting).ret, answer, version);
    const group = c.open('/dev/vfio/12').ret;
    assert.equal(c.setContainer(group, fd).ret, 0);
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', nesting).errno, errno, version);
    // the container stays unset: a TYPE1v2 backend still takes the group
    const v2 = BigInt(VFIO_EXTENSION.TYPE1v2_IOMMU);
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', v2).ret, 0, version);
  }
});

test('7.2 mock paging domains advertise 2 KiB to 2^36 pages (VFIO compat GET_INFO iova_pgsizes)', () => {
  for (const [v, pgsizes] of [
    ['6.18', 0x1000n],
    ['7.2', 0x1f_ffff_f000n],
  ] as const) {
    const f = at(v);
    const ioas = f.ioas();
    mockDomain(f, ioas);
    assert.equal(
      f.call('IOMMU_VFIO_IOAS', { ioas_id: ioas, op: IOMMU_VFIO_IOAS_OP.SET }).errno,
      undefined,
    );
    const r = f.proc.call(
      f.fd,
      vfioIoctlNumber(f.kernel.abi, 'VFIO_IOMMU_GET_INFO'),
      VfioIommuType1Info,
      {
        argsz: VfioIommuType1Info.size,
      },
    );
    assert.equal(r.errno, undefined, v);
    assert.equal(r.out.iova_pgsizes, pgsizes, v);
  }
});

test('7.2 legacy MAP_DMA checks the wrap before alignment: an unaligned wrapping iova is EOVERFLOW', () => {
  for (const [version, errno] of [
    ['6.18', 'EINVAL'],
    ['7.2', 'EOVERFLOW'],
  ] as const) {
    const { c, fd } = type1v2Container(version);
    assert.equal(
      c.mapDma(fd, c.mem(5n * PAGE), (1n << 64n) - 1n, 5n * PAGE, 3).errno,
      errno,
      version,
    );
    assert.equal(c.mapDma(fd, c.mem(PAGE), PAGE, 0n, 0).errno, 'EINVAL', version);
  }
});

test("AMD's types (7.2 uAPI) on a VT-d device: EOPNOTSUPP, as for any other IOMMU's", () => {
  const f = at('7.2');
  const ioas = f.ioas();
  const idev = f.intelDevice().id;
  const info = f.call('IOMMU_GET_HW_INFO', {
    dev_id: idev,
    flags: IOMMU_HW_INFO_FLAGS.INPUT_TYPE,
    out_data_type: IOMMU_HW_INFO_TYPE.AMD,
  });
  assert.equal(info.errno, 'EOPNOTSUPP');
  const vtd = f.call('IOMMU_GET_HW_INFO', {
    dev_id: idev,
    flags: IOMMU_HW_INFO_FLAGS.INPUT_TYPE,
    out_data_type: IOMMU_HW_INFO_TYPE.INTEL_VTD,
  });
  assert.equal(vtd.errno, undefined, 'its own type is fine');
  const data = f.mem(PAGE);
  for (const pt of [
    ioas,
    f.call('IOMMU_HWPT_ALLOC', { dev_id: idev, pt_id: ioas, flags: 1 }).out.out_hwpt_id as number,
  ]) {
    const r = f.call('IOMMU_HWPT_ALLOC', {
      dev_id: idev,
      pt_id: pt,
      data_type: IOMMU_HWPT_DATA_TYPE.AMD_GUEST,
      data_len: 8,
      data_uptr: data,
    });
    assert.equal(r.errno, 'EOPNOTSUPP', `on ${pt === ioas ? 'the IOAS' : 'a nesting parent'}`);
  }
});

test('6.12: GET_HW_INFO takes no flags, HWPT_ALLOC neither PASID nor a paging FAULT_ID_VALID', () => {
  for (const [v, older] of [
    ['6.12', true],
    ['6.18', false],
  ] as const) {
    const f = at(v);
    const ioas = f.ioas();
    const idev = f.intelDevice().id;
    const info = f.call('IOMMU_GET_HW_INFO', {
      dev_id: idev,
      flags: IOMMU_HW_INFO_FLAGS.INPUT_TYPE,
      out_data_type: IOMMU_HW_INFO_TYPE.INTEL_VTD,
    });
    assert.equal(info.errno, older ? 'EOPNOTSUPP' : undefined, v);
    const pasid = f.call('IOMMU_HWPT_ALLOC', { dev_id: idev, pt_id: ioas, flags: 1 << 3 });
    assert.equal(pasid.errno, older ? 'EOPNOTSUPP' : undefined, `${v} paging PASID`);
    const fault = f.call('IOMMU_FAULT_QUEUE_ALLOC', {}).out.out_fault_id as number;
    const faulting = f.call('IOMMU_HWPT_ALLOC', {
      dev_id: idev,
      pt_id: ioas,
      flags: 1 << 2,
      fault_id: fault,
    });
    assert.equal(faulting.errno, older ? 'EOPNOTSUPP' : undefined, `${v} paging FAULT_ID_VALID`);
  }
});

test('6.12: a nested HWPT takes FAULT_ID_VALID but not PASID', () => {
  for (const [v, errno] of [
    ['6.12', 'EOPNOTSUPP'],
    ['6.18', undefined],
  ] as const) {
    const { f, idev, parent, data } = nestingParent(v);
    const nested = (flags: number) =>
      f.call('IOMMU_HWPT_ALLOC', {
        dev_id: idev,
        pt_id: parent,
        flags,
        data_type: IOMMU_HWPT_DATA_SELFTEST,
        data_len: 4, // struct iommu_hwpt_selftest before 7.2
        data_uptr: data,
      }).errno;
    assert.equal(nested(1 << 3), errno, v);
    assert.equal(nested(0), undefined, v);
  }
});

test('6.12 IOAS_MAP checks the length before the user_va wrap (EINVAL); since 6.13 the wrap (EOVERFLOW)', () => {
  // found by `npm run differential -- --kernel 6.12` (seed 12, call 140) on a real 6.12.95
  for (const [v, errno] of [
    ['6.12', 'EINVAL'],
    ['6.18', 'EOVERFLOW'],
    ['7.2', 'EOVERFLOW'],
  ] as const) {
    const f = at(v);
    const map = (length: bigint) =>
      f.call('IOMMU_IOAS_MAP', { ioas_id: f.ioas(), user_va: 0x2_0039_2000n, length, flags: 2 });
    assert.equal(map(-PAGE & ((1n << 64n) - 1n)).errno, errno, v);
    // a length within the limit that wraps is EOVERFLOW in every version
    assert.equal(map(-0x2_0039_2000n & ((1n << 64n) - 1n)).errno, 'EOVERFLOW', v);
  }
});

test('6.12 probes mock devices with the first IOMMU driver: beside VT-d MOCK_DOMAIN is EINVAL', () => {
  // found by `npm run differential -- --kernel 6.12` on a real 6.12.95 with intel-iommu (edu seed 1)
  for (const [v, host, errno] of [
    ['6.12', 'x86', 'EINVAL'],
    ['6.12', 'mock', undefined],
    ['6.18', 'x86', undefined],
    ['7.2', 'x86', undefined],
  ] as const) {
    const f = at(v, { host });
    const ioas = f.ioas();
    assert.equal(tc(f, 'MOCK_DOMAIN', { id: ioas }).errno, errno, `${v} ${host}`);
    // flags are checked first (mock_dev_create), the bind second
    assert.equal(tc(f, 'MOCK_DOMAIN_FLAGS', { id: ioas, dev_flags: 1 << 30 }).errno, 'EINVAL');
    // with the setting on, 6.12 probes them as later kernels do
    const g = at(v, { host, personality: { mockFwspec: true } });
    assert.equal(tc(g, 'MOCK_DOMAIN', { id: g.ioas() }).errno, undefined, `${v} ${host} fwspec`);
  }
});
