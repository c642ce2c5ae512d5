import assert from 'node:assert/strict';
import { describe, it, test } from 'node:test';
import {
  IommuFaultAlloc,
  type IommufdCmdName,
  IommuHwInfo,
  IommuHwptAlloc,
  IommuHwptInvalidate,
  IommuHwQueueAlloc,
  IommuIoasMap,
  IommuIoasMapFile,
  IommuOption,
  IommuVeventqAlloc,
  IommuViommuAlloc,
  iommufdCmdNumber,
} from '../../src/abi/iommufd.ts';
import {
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  IOMMU_VEVENTQ_TYPE_SELFTEST,
  IOMMU_VIOMMU_TYPE_SELFTEST,
  IommuTestCmdAccessRw,
  IommuTestCmdMockDomain,
} from '../../src/abi/iommufd-test.ts';
import {
  formatFd,
  formatIoctl,
  formatStruct,
  formatSyscall,
  ioctlName,
} from '../../src/abi/strace.ts';
import {
  VfioDeviceAttachIommufdPt,
  VfioDeviceBindIommufd,
  VfioDeviceDetachIommufdPt,
  VfioEehPeOp,
  type VfioIoctlName,
  VfioIommuSpaprTceCreate,
  VfioIommuSpaprTceInfo,
  VfioIommuType1DirtyBitmap,
  VfioIommuType1DmaMap,
  vfioIoctlNumber,
} from '../../src/abi/vfio.ts';
import {
  VfioDeviceFeature,
  VfioDeviceInfo,
  VfioIrqInfo,
  VfioIrqSet,
  VfioPciHotReset,
  VfioPciHotResetInfo,
  VfioRegionInfo,
} from '../../src/abi/vfio-device.ts';

const map = IommuIoasMap.encode({
  size: 40,
  flags: 7,
  ioas_id: 1,
  user_va: 0x7f00_0000_0000n,
  length: 0x4000_0000n,
  iova: 0n,
});

test('IOAS_MAP success line', () => {
  assert.equal(
    formatIoctl({ fd: 3, abi: 'generic', cmd: 0x3b85, arg: map, argAddr: 0x7ffd0000n, result: 0 }),
    'ioctl(3, IOMMU_IOAS_MAP, {size=40, flags=FIXED_IOVA|WRITEABLE|READABLE, ioas_id=1, user_va=0x7f0000000000, length=0x40000000, iova=0}) = 0',
  );
});

test('failure line carries errno name and strerror text', () => {
  assert.equal(
    formatIoctl({
      fd: 3,
      abi: 'generic',
      cmd: 0x3b85,
      arg: map,
      argAddr: 0x7ffd0000n,
      result: -1,
      errno: 'EEXIST',
    }),
    'ioctl(3, IOMMU_IOAS_MAP, {size=40, flags=FIXED_IOVA|WRITEABLE|READABLE, ioas_id=1, user_va=0x7f0000000000, length=0x40000000, iova=0}) = -1 EEXIST (File exists)',
  );
});

test('unknown ioctl: hex number and argument address', () => {
  assert.equal(
    formatIoctl({
      fd: 4,
      abi: 'generic',
      cmd: 0x3b7f,
      arg: new Uint8Array(8),
      argAddr: 0x7ffd1000n,
      result: -1,
      errno: 'ENOTTY',
    }),
    'ioctl(4, 0x3b7f, 0x7ffd1000) = -1 ENOTTY (Inappropriate ioctl for device)',
  );
  // A known nr with size bits set is not the command.
  assert.equal(
    formatIoctl({ fd: 4, abi: 'generic', cmd: 0x00283b85, arg: map, argAddr: 0n, result: -1 }),
    'ioctl(4, 0x283b85, NULL) = -1',
  );
});

test('powerpc encoding decodes to the same name; the generic number does not', () => {
  const line = formatIoctl({
    fd: 3,
    abi: 'powerpc',
    cmd: 0x20003b85,
    arg: map,
    argAddr: 0x1000n,
    result: 0,
  });
  assert.match(
    line,
    /^ioctl\(3, IOMMU_IOAS_MAP, \{size=40, flags=FIXED_IOVA\|WRITEABLE\|READABLE,/,
  );
  assert.equal(ioctlName('powerpc', 0x20003b80), 'IOMMU_DESTROY');
  assert.equal(ioctlName('powerpc', 0x3b80), undefined);
  assert.equal(ioctlName('generic', 0x20003b80), undefined);
  assert.equal(ioctlName('powerpc', 0x20003ba0), 'IOMMU_TEST_CMD');
});

test('flags with unknown bits render a hex remainder; zero flags render 0', () => {
  const bytes = IommuIoasMap.encode({ size: 40, flags: 0x101 | 4, ioas_id: 2, length: 0x1000n });
  assert.equal(
    formatStruct(IommuIoasMap, bytes),
    '{size=40, flags=FIXED_IOVA|READABLE|0x100, ioas_id=2, user_va=0, length=0x1000, iova=0}',
  );
  const none = IommuHwptAlloc.encode({ size: 48, flags: 0x30, dev_id: 2, pt_id: 1 });
  assert.match(formatStruct(IommuHwptAlloc, none), /flags=0x30,/);
  const zero = IommuHwptAlloc.encode({ size: 48, dev_id: 2, pt_id: 1, out_hwpt_id: 3 });
  assert.equal(
    formatStruct(IommuHwptAlloc, zero),
    '{size=48, flags=0, dev_id=2, pt_id=1, out_hwpt_id=3, data_type=NONE, data_len=0, data_uptr=0, fault_id=0}',
  );
});

test('reserved fields are omitted when zero and shown in hex otherwise', () => {
  const bytes = IommuIoasMap.encode({ size: 40, flags: 2, ioas_id: 1, __reserved: 0x10 });
  assert.match(formatStruct(IommuIoasMap, bytes), /ioas_id=1, __reserved=0x10, user_va=0/);
});

test('only fields inside the struct size are shown', () => {
  const bytes = IommuHwptAlloc.encode({ size: 24, flags: 1, dev_id: 2, pt_id: 1, fault_id: 9 });
  assert.equal(
    formatStruct(IommuHwptAlloc, bytes),
    '{size=24, flags=NEST_PARENT, dev_id=2, pt_id=1, out_hwpt_id=0}',
  );
  assert.equal(
    formatStruct(IommuHwptAlloc, bytes.subarray(0, 12)),
    '{size=24, flags=NEST_PARENT, dev_id=2}',
  );
});

test('enums, u64 flags, signed fd and decimal counters', () => {
  const opt = IommuOption.encode({ size: 24, option_id: 1, op: 1, object_id: 1, val64: 1n });
  assert.equal(
    formatStruct(IommuOption, opt),
    '{size=24, option_id=HUGE_PAGES, op=GET, object_id=1, val64=1}',
  );
  const info = IommuHwInfo.encode({
    size: 40,
    dev_id: 3,
    data_len: 8,
    data_uptr: 0x5000n,
    out_data_type: 0xfeedbeef,
    out_max_pasid_log2: 20,
    out_capabilities: 0x11n,
  });
  assert.equal(
    formatStruct(IommuHwInfo, info),
    '{size=40, flags=0, dev_id=3, data_len=8, data_uptr=0x5000, out_data_type=SELFTEST, out_max_pasid_log2=20, out_capabilities=DIRTY_TRACKING|0x10}',
  );
  const file = IommuIoasMapFile.encode({ size: 40, flags: 6, ioas_id: 1, fd: -1, length: 0x2000n });
  assert.match(formatStruct(IommuIoasMapFile, file), /ioas_id=1, fd=-1, start=0, length=0x2000/);
});

test('IOMMU_TEST_CMD renders with its op name and op layout', () => {
  const arg = IommuTestCmdMockDomain.encode({
    size: 72,
    op: 2,
    id: 1,
    out_stdev_id: 2,
    out_hwpt_id: 3,
    out_idev_id: 4,
  });
  assert.equal(
    formatIoctl({ fd: 3, abi: 'generic', cmd: 0x3ba0, arg, argAddr: 0x1000n, result: 0 }),
    'ioctl(3, IOMMU_TEST_CMD, {size=72, op=MOCK_DOMAIN, id=1, out_stdev_id=2, out_hwpt_id=3, out_idev_id=4}) = 0',
  );
  const rw = IommuTestCmdAccessRw.encode({
    size: 72,
    op: 8,
    id: 5,
    iova: 0x100_0000n,
    length: 16n,
    uptr: 0x7000n,
    flags: 5,
  });
  assert.equal(
    formatIoctl({ fd: 3, abi: 'powerpc', cmd: 0x20003ba0, arg: rw, argAddr: 1n, result: 0 }),
    'ioctl(3, IOMMU_TEST_CMD, {size=72, op=ACCESS_RW, id=5, iova=0x1000000, length=0x10, uptr=0x7000, flags=WRITE|SLOW_PATH}) = 0',
  );
  const unknownOp = IommuTestCmdMockDomain.encode({ size: 72, op: 99, id: 1, last: 7 });
  assert.equal(
    formatIoctl({
      fd: 3,
      abi: 'generic',
      cmd: 0x3ba0,
      arg: unknownOp,
      argAddr: 1n,
      result: -1,
      errno: 'EOPNOTSUPP',
    }),
    'ioctl(3, IOMMU_TEST_CMD, {size=72, op=0x63, id=1, last=0x7}) = -1 EOPNOTSUPP (Operation not supported)',
  );
});

test('unreadable argument shows its address', () => {
  assert.equal(
    formatIoctl({
      fd: 3,
      abi: 'generic',
      cmd: 0x3b80,
      arg: undefined,
      argAddr: 0n,
      result: -1,
      errno: 'EFAULT',
    }),
    'ioctl(3, IOMMU_DESTROY, NULL) = -1 EFAULT (Bad address)',
  );
  assert.equal(
    formatIoctl({
      fd: 3,
      abi: 'generic',
      cmd: 0x3b80,
      arg: undefined,
      argAddr: 0xdead0000n,
      result: -1,
      errno: 'EFAULT',
    }),
    'ioctl(3, IOMMU_DESTROY, 0xdead0000) = -1 EFAULT (Bad address)',
  );
});

test('formatIoctl does not modify its input', () => {
  const copy = map.slice();
  formatIoctl({ fd: 3, abi: 'generic', cmd: 0x3b85, arg: map, argAddr: 1n, result: 0 });
  assert.deepEqual(map, copy);
});

test('formatSyscall', () => {
  assert.equal(
    formatSyscall('openat', ['AT_FDCWD', '"/dev/iommu"', 'O_RDWR'], 3),
    'openat(AT_FDCWD, "/dev/iommu", O_RDWR) = 3',
  );
  assert.equal(
    formatSyscall('close', ['9'], -1, 'EBADF'),
    'close(9) = -1 EBADF (Bad file descriptor)',
  );
  assert.equal(formatSyscall('getpid', [], 42), 'getpid() = 42');
});

describe('VFIO ioctls, decoded by the kind of fd', () => {
  const base = { fd: 5, abi: 'generic' as const, argAddr: 0x7000n, result: 0 };

  it('renders type1 MAP_DMA on an iommufd fd with its flags', () => {
    const arg = VfioIommuType1DmaMap.encode({
      argsz: 32,
      flags: 3,
      vaddr: 0x7f00_0000_0000n,
      iova: 0x10_0000n,
      size: 0x20_0000n,
    });
    assert.equal(
      formatIoctl({ ...base, cmd: 0x3b71, arg, fdKind: 'iommufd' }),
      'ioctl(5, VFIO_IOMMU_MAP_DMA, {argsz=32, flags=READ|WRITE, vaddr=0x7f0000000000, iova=0x100000, size=0x200000}) = 0',
    );
  });

  it('shows value arguments as extension names and argument-less ioctls without an argument', () => {
    assert.equal(
      formatIoctl({
        ...base,
        cmd: 0x3b65,
        arg: undefined,
        argAddr: 3n,
        result: 1,
        fdKind: 'vfio-container',
      }),
      'ioctl(5<vfio-container>, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) = 1',
    );
    assert.equal(
      formatIoctl({ ...base, cmd: 0x3b64, arg: undefined, argAddr: 0n, fdKind: 'vfio-container' }),
      'ioctl(5<vfio-container>, VFIO_GET_API_VERSION) = 0',
    );
  });

  it('picks among ioctls sharing a number by fd kind (nr 112)', () => {
    assert.match(
      formatIoctl({ ...base, cmd: 0x3b70, arg: undefined, fdKind: 'iommufd' }),
      /VFIO_IOMMU_GET_INFO/,
    );
    assert.match(
      formatIoctl({ ...base, cmd: 0x3b70, arg: undefined, fdKind: 'vfio-device' }),
      /VFIO_DEVICE_GET_PCI_HOT_RESET_INFO/,
    );
    // an iommufd running the SPAPR container (uiommu extension) decodes 112/117 as SPAPR
    assert.match(
      formatIoctl({ ...base, cmd: 0x3b70, arg: undefined, fdKind: 'iommufd-spapr' }),
      /VFIO_IOMMU_SPAPR_TCE_GET_INFO/,
    );
    assert.match(
      formatIoctl({ ...base, cmd: 0x3b75, arg: undefined, fdKind: 'iommufd-spapr' }),
      /VFIO_IOMMU_SPAPR_REGISTER_MEMORY/,
    );
    assert.equal(
      formatIoctl({ ...base, cmd: 0x3b70, arg: undefined, fdKind: 'memfd' }),
      'ioctl(5<memfd>, 0x3b70, 0x7000) = 0',
    );
  });
});

describe('SPAPR containers', () => {
  it('decode nr 112 as SPAPR_TCE_GET_INFO and TCE_CREATE with its fields', () => {
    const base = {
      fd: 4,
      abi: 'generic' as const,
      argAddr: 0x7000n,
      result: 0,
      fdKind: 'vfio-container-spapr',
    };
    assert.match(
      formatIoctl({ ...base, cmd: 0x3b70, arg: undefined }),
      /VFIO_IOMMU_SPAPR_TCE_GET_INFO/,
    );
    const arg = VfioIommuSpaprTceCreate.encode({
      argsz: 40,
      page_shift: 16,
      window_size: 1n << 30n,
      levels: 1,
      start_addr: 1n << 59n,
    });
    assert.equal(
      formatIoctl({ ...base, cmd: 0x3b77, arg }),
      'ioctl(4<vfio-container-spapr>, VFIO_IOMMU_SPAPR_TCE_CREATE, {argsz=40, flags=0, page_shift=16, window_size=0x40000000, levels=1, start_addr=0x800000000000000}) = 0',
    );
  });
});

describe('VFIO device, group and EEH arguments', () => {
  const at = { abi: 'generic' as const, argAddr: 0x7000n, result: 0 };
  const dev = { ...at, fd: 6, fdKind: 'vfio-device' };
  const num = (name: VfioIoctlName) => vfioIoctlNumber('generic', name);

  it('BIND_IOMMUFD shows out_devid, and token_uuid_ptr only when argsz covers it', () => {
    const v = { argsz: 24, iommufd: 3, out_devid: 2, token_uuid_ptr: 0x5000n };
    const arg = VfioDeviceBindIommufd.encode(v);
    assert.equal(
      formatIoctl({ ...dev, cmd: num('VFIO_DEVICE_BIND_IOMMUFD'), arg }),
      'ioctl(6<vfio-device>, VFIO_DEVICE_BIND_IOMMUFD, {argsz=24, flags=0, iommufd=3, out_devid=2, token_uuid_ptr=0x5000}) = 0',
    );
    const old = VfioDeviceBindIommufd.encode({ ...v, argsz: 16, flags: 1 });
    assert.equal(
      formatIoctl({ ...dev, cmd: num('VFIO_DEVICE_BIND_IOMMUFD'), arg: old }),
      'ioctl(6<vfio-device>, VFIO_DEVICE_BIND_IOMMUFD, {argsz=16, flags=TOKEN, iommufd=3, out_devid=2}) = 0',
    );
  });

  it('ATTACH/DETACH_IOMMUFD_PT show the PASID flag and pasid', () => {
    const attach = VfioDeviceAttachIommufdPt.encode({ argsz: 16, flags: 1, pt_id: 4, pasid: 7 });
    assert.equal(
      formatIoctl({ ...dev, cmd: num('VFIO_DEVICE_ATTACH_IOMMUFD_PT'), arg: attach }),
      'ioctl(6<vfio-device>, VFIO_DEVICE_ATTACH_IOMMUFD_PT, {argsz=16, flags=PASID, pt_id=4, pasid=7}) = 0',
    );
    const detach = VfioDeviceDetachIommufdPt.encode({ argsz: 8 });
    assert.equal(
      formatIoctl({ ...dev, cmd: num('VFIO_DEVICE_DETACH_IOMMUFD_PT'), arg: detach }),
      'ioctl(6<vfio-device>, VFIO_DEVICE_DETACH_IOMMUFD_PT, {argsz=8, flags=0}) = 0',
    );
  });

  it('GET_INFO, GET_REGION_INFO and GET_IRQ_INFO show their out-fields with flag names', () => {
    const info = VfioDeviceInfo.encode({ argsz: 24, flags: 3, num_regions: 9, num_irqs: 5 });
    assert.equal(
      formatIoctl({ ...dev, cmd: num('VFIO_DEVICE_GET_INFO'), arg: info }),
      'ioctl(6<vfio-device>, VFIO_DEVICE_GET_INFO, {argsz=24, flags=RESET|PCI, num_regions=9, num_irqs=5, cap_offset=0}) = 0',
    );
    const region = VfioRegionInfo.encode({
      argsz: 32,
      flags: 7,
      index: 7,
      size: 0x1000n,
      offset: 7n << 40n,
    });
    assert.equal(
      formatIoctl({ ...dev, cmd: num('VFIO_DEVICE_GET_REGION_INFO'), arg: region }),
      'ioctl(6<vfio-device>, VFIO_DEVICE_GET_REGION_INFO, {argsz=32, flags=READ|WRITE|MMAP, index=7, cap_offset=0, size=0x1000, offset=0x70000000000}) = 0',
    );
    const irq = VfioIrqInfo.encode({ argsz: 16, flags: 0x9, index: 2, count: 8 });
    assert.equal(
      formatIoctl({ ...dev, cmd: num('VFIO_DEVICE_GET_IRQ_INFO'), arg: irq }),
      'ioctl(6<vfio-device>, VFIO_DEVICE_GET_IRQ_INFO, {argsz=16, flags=EVENTFD|NORESIZE, index=2, count=8}) = 0',
    );
  });

  it('SET_IRQS, GET_PCI_HOT_RESET_INFO and PCI_HOT_RESET show their headers only', () => {
    const set = new Uint8Array(28);
    set.set(VfioIrqSet.encode({ argsz: 28, flags: 0x24, index: 2, start: 0, count: 2 }));
    set.fill(0xff, 20);
    assert.equal(
      formatIoctl({ ...dev, cmd: num('VFIO_DEVICE_SET_IRQS'), arg: set }),
      'ioctl(6<vfio-device>, VFIO_DEVICE_SET_IRQS, {argsz=28, flags=DATA_EVENTFD|ACTION_TRIGGER, index=2, start=0, count=2}) = 0',
    );
    const hot = VfioPciHotResetInfo.encode({ argsz: 12, flags: 1, count: 3 });
    assert.equal(
      formatIoctl({
        ...dev,
        cmd: num('VFIO_DEVICE_GET_PCI_HOT_RESET_INFO'),
        arg: hot,
        result: -1,
        errno: 'ENOSPC',
      }),
      'ioctl(6<vfio-device>, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, {argsz=12, flags=DEV_ID, count=3}) = -1 ENOSPC (No space left on device)',
    );
    const reset = new Uint8Array(16);
    reset.set(VfioPciHotReset.encode({ argsz: 16, count: 1 }));
    assert.equal(
      formatIoctl({ ...dev, cmd: num('VFIO_DEVICE_PCI_HOT_RESET'), arg: reset }),
      'ioctl(6<vfio-device>, VFIO_DEVICE_PCI_HOT_RESET, {argsz=16, flags=0, count=1}) = 0',
    );
  });

  it('DEVICE_FEATURE names the feature, then the GET/SET/PROBE bits', () => {
    const probe = VfioDeviceFeature.encode({ argsz: 8, flags: (1 << 18) | (1 << 16) | 2 });
    assert.equal(
      formatIoctl({ ...dev, cmd: num('VFIO_DEVICE_FEATURE'), arg: probe }),
      'ioctl(6<vfio-device>, VFIO_DEVICE_FEATURE, {argsz=8, flags=MIG_DEVICE_STATE|GET|PROBE}) = 0',
    );
    const unknown = VfioDeviceFeature.encode({ argsz: 8, flags: (1 << 17) | 0x99 | (1 << 20) });
    assert.equal(
      formatIoctl({ ...dev, cmd: num('VFIO_DEVICE_FEATURE'), arg: unknown }),
      'ioctl(6<vfio-device>, VFIO_DEVICE_FEATURE, {argsz=8, flags=0x99|SET|0x100000}) = 0',
    );
  });

  it('GROUP_SET_CONTAINER shows the container fd, GET_DEVICE_FD the quoted name', () => {
    const grp = { ...at, fd: 4, fdKind: 'vfio-group' };
    const fdArg = new Uint8Array(new Int32Array([3]).buffer);
    assert.equal(
      formatIoctl({ ...grp, cmd: num('VFIO_GROUP_SET_CONTAINER'), arg: fdArg }),
      'ioctl(4<vfio-group>, VFIO_GROUP_SET_CONTAINER, [3]) = 0',
    );
    const name = new TextEncoder().encode('0000:00:02.0\0garbage');
    assert.equal(
      formatIoctl({ ...grp, cmd: num('VFIO_GROUP_GET_DEVICE_FD'), arg: name, result: 5 }),
      'ioctl(4<vfio-group>, VFIO_GROUP_GET_DEVICE_FD, "0000:00:02.0") = 5',
    );
    // cut at a page end before its NUL
    const cut = new TextEncoder().encode('0000:00');
    assert.equal(
      formatIoctl({ ...grp, cmd: num('VFIO_GROUP_GET_DEVICE_FD'), arg: cut, result: -1 }),
      'ioctl(4<vfio-group>, VFIO_GROUP_GET_DEVICE_FD, "0000:00"...) = -1',
    );
  });

  it('EEH_PE_OP names the op; IOMMU_ENABLE takes no argument; DIRTY_PAGES names its flags', () => {
    const spapr = { ...at, fd: 3, fdKind: 'vfio-container-spapr' };
    const eeh = VfioEehPeOp.encode({ argsz: 12, op: 4 });
    assert.equal(
      formatIoctl({ ...spapr, cmd: num('VFIO_EEH_PE_OP'), arg: eeh.subarray(0, 12) }),
      'ioctl(3<vfio-container-spapr>, VFIO_EEH_PE_OP, {argsz=12, flags=0, op=GET_STATE}) = 0',
    );
    assert.equal(
      formatIoctl({ ...spapr, cmd: num('VFIO_IOMMU_ENABLE'), arg: undefined }),
      'ioctl(3<vfio-container-spapr>, VFIO_IOMMU_ENABLE) = 0',
    );
    const dirty = VfioIommuType1DirtyBitmap.encode({ argsz: 8, flags: 1 });
    assert.equal(
      formatIoctl({
        ...at,
        fd: 3,
        fdKind: 'vfio-container',
        cmd: num('VFIO_IOMMU_DIRTY_PAGES'),
        arg: dirty,
      }),
      'ioctl(3<vfio-container>, VFIO_IOMMU_DIRTY_PAGES, {argsz=8, flags=START}) = 0',
    );
  });

  it('SPAPR_TCE_GET_INFO names DDW and shows the 32-bit window in hex', () => {
    const info = VfioIommuSpaprTceInfo.encode({
      argsz: 32,
      flags: 1,
      dma32_window_size: 0x8000_0000,
      pgsizes: 0x1000n,
      max_dynamic_windows_supported: 2,
      levels: 5,
    });
    assert.equal(
      formatIoctl({ ...at, fd: 3, fdKind: 'iommufd-spapr', cmd: 0x3b70, arg: info }),
      'ioctl(3, VFIO_IOMMU_SPAPR_TCE_GET_INFO, {argsz=32, flags=DDW, dma32_window_start=0, dma32_window_size=0x80000000, pgsizes=0x1000, max_dynamic_windows_supported=2, levels=5}) = 0',
    );
  });
});

describe('fd kinds', () => {
  it('formatFd names every kind but /dev/iommu', () => {
    assert.equal(formatFd(5, 'fault'), '5<fault>');
    assert.equal(formatFd(7, 'veventq'), '7<veventq>');
    assert.equal(formatFd(8, 'access'), '8<access>');
    assert.equal(formatFd(3, 'iommufd'), '3');
    assert.equal(formatFd(3, 'iommufd-spapr'), '3');
    assert.equal(formatFd(9, undefined), '9');
  });
});

describe('iommufd vIOMMU and queue allocations', () => {
  const at = { fd: 3, abi: 'generic' as const, argAddr: 0x7000n, result: 0 };
  const num = (name: IommufdCmdName) => iommufdCmdNumber('generic', name);

  it('HWPT_INVALIDATE names the selftest data type; entry_num is what was handled', () => {
    const arg = IommuHwptInvalidate.encode({
      size: 32,
      hwpt_id: 5,
      data_uptr: 0x4000n,
      data_type: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
      entry_len: 4,
      entry_num: 1,
    });
    assert.equal(
      formatIoctl({ ...at, cmd: num('IOMMU_HWPT_INVALIDATE'), arg }),
      'ioctl(3, IOMMU_HWPT_INVALIDATE, {size=32, hwpt_id=5, data_uptr=0x4000, data_type=SELFTEST, entry_len=4, entry_num=1}) = 0',
    );
  });

  it('VIOMMU_ALLOC and VEVENTQ_ALLOC show the types and out ids, HW_QUEUE_ALLOC too', () => {
    const viommu = IommuViommuAlloc.encode({
      size: 40,
      type: IOMMU_VIOMMU_TYPE_SELFTEST,
      dev_id: 3,
      hwpt_id: 5,
      out_viommu_id: 6,
    });
    assert.equal(
      formatIoctl({ ...at, cmd: num('IOMMU_VIOMMU_ALLOC'), arg: viommu }),
      'ioctl(3, IOMMU_VIOMMU_ALLOC, {size=40, flags=0, type=SELFTEST, dev_id=3, hwpt_id=5, out_viommu_id=6, data_len=0, data_uptr=0}) = 0',
    );
    const q = IommuVeventqAlloc.encode({
      size: 32,
      viommu_id: 6,
      type: IOMMU_VEVENTQ_TYPE_SELFTEST,
      veventq_depth: 2,
      out_veventq_id: 7,
      out_veventq_fd: 5,
    });
    assert.equal(
      formatIoctl({ ...at, cmd: num('IOMMU_VEVENTQ_ALLOC'), arg: q, result: 5 }),
      'ioctl(3, IOMMU_VEVENTQ_ALLOC, {size=32, flags=0, viommu_id=6, type=SELFTEST, veventq_depth=2, out_veventq_id=7, out_veventq_fd=5}) = 5',
    );
    const hwq = IommuHwQueueAlloc.encode({
      size: 40,
      viommu_id: 6,
      type: 0x77,
      length: 0x1000n,
    });
    assert.match(
      formatIoctl({ ...at, cmd: num('IOMMU_HW_QUEUE_ALLOC'), arg: hwq }),
      /\{size=40, flags=0, viommu_id=6, type=0x77, index=0, out_hw_queue_id=0, nesting_parent_iova=0, length=0x1000\}/,
    );
  });

  it('FAULT_QUEUE_ALLOC shows the new fault object and fd', () => {
    const arg = IommuFaultAlloc.encode({ size: 16, out_fault_id: 4, out_fault_fd: 6 });
    assert.equal(
      formatIoctl({ ...at, cmd: num('IOMMU_FAULT_QUEUE_ALLOC'), arg }),
      'ioctl(3, IOMMU_FAULT_QUEUE_ALLOC, {size=16, flags=0, out_fault_id=4, out_fault_fd=6}) = 0',
    );
  });
});
