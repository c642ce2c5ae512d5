/**
 * The reason and kernel function of every errno rule the fact sheets list
 * (iommufd-uapi.md §6, vfio-container.md §2–§6 and its compat table,
 * spapr-tce.md §3–§4, vfio-device.md §2–§6): each
 * row triggers the rule and pins errno, reason and where as the trace
 * prints them (mmap, which the engine serves outside the traced syscalls,
 * as the Errno it throws). test/host/trace-reason.test.ts checks the
 * whole trace line and the JSON fields.
 */
import assert from 'node:assert/strict';
import { IOMMU_OPTION_ID, IOMMU_OPTION_OP, IOMMU_VFIO_IOAS_OP } from '../../src/abi/iommufd.ts';
import {
  VFIO_EEH_PE_OP,
  VfioIommuSpaprRegisterMemory,
  VfioIommuSpaprTceInfo,
  VfioIommuType1Info,
  vfioIoctlNumber,
} from '../../src/abi/vfio.ts';
import {
  VFIO_DEVICE_FEATURE_ID,
  VfioDeviceInfo,
  VfioIrqInfo,
  VfioPciHotResetInfo,
  VfioRegionInfo,
} from '../../src/abi/vfio-device.ts';
import { SimMm } from '../../src/host/sim-mm.ts';
import { vfioPciRegionOffset } from '../../src/vfio/pci/abi.ts';
import { FIXED, map, memAt, PAGE, RW, U64_MAX, writeRanges } from '../iommufd/util.ts';
import { client, setup } from '../support.ts';
import { VfioClient } from '../vfio/client.ts';
import { DDW, GIB, SpaprClient } from '../vfio/spapr-client.ts';
import {
  ACTION_MASK,
  ACTION_TRIGGER,
  ACTION_UNMASK,
  container,
  DATA_BOOL,
  DATA_NONE,
  ddw,
  devCall,
  eeh,
  enable,
  eventfd,
  feature,
  GET,
  ioasAllocNumber,
  iommuMmap,
  K64,
  LOW_MEMLOCK,
  MAP_PRIVATE,
  MAP_SHARED,
  MIB,
  MIXED,
  MSI,
  mmapErrno,
  mmapOnDevice,
  NO_DMA32,
  NVME,
  onCdev,
  onDevice,
  onSpapr,
  PROT_EXEC,
  PROT_RW,
  pin,
  type Row,
  SET,
  scratch,
  setIrqFds,
  setIrqs,
  traced,
  UNBOUND,
  USB,
  V1,
  V2,
  VA,
  viommuRegion,
  withDomain,
  withGroup,
  withIntx,
} from './reasons-support.ts';

const iommufdRows: Row[] = [
  [
    'size below the minimum',
    () => {
      const f = traced(setup());
      f.call('IOMMU_IOAS_ALLOC', { size: 8 });
      return f.proc;
    },
    'EINVAL',
    'size 8 below the minimum 12',
    'iommufd_fops_ioctl',
  ],
  [
    'MAP without READABLE or WRITEABLE',
    () => {
      const f = traced(setup());
      f.call('IOMMU_IOAS_MAP', { ioas_id: f.ioas(), user_va: VA, length: PAGE, flags: FIXED });
      return f.proc;
    },
    'EINVAL',
    'neither READABLE nor WRITEABLE',
    'iommufd_ioas_map',
  ],
  [
    'MAP of zero length',
    () => {
      const f = traced(setup());
      f.call('IOMMU_IOAS_MAP', { ioas_id: f.ioas(), user_va: VA, length: 0n, flags: RW });
      return f.proc;
    },
    'EINVAL',
    'length 0 is zero or too large',
    'iopt_alloc_pages',
  ],
  [
    'MAP length not a multiple of the IOAS alignment',
    () => {
      const { f, ioas } = withDomain();
      const va = memAt(f, VA, 2n * PAGE);
      f.call('IOMMU_IOAS_MAP', { ioas_id: ioas, user_va: va, length: 0x1800n, flags: RW });
      return f.proc;
    },
    'EINVAL',
    'length 0x1800 is zero or not aligned to the IOAS alignment 0x1000',
    'iopt_map_pages',
  ],
  [
    'FIXED iova not aligned',
    () => {
      const { f, ioas } = withDomain();
      const va = memAt(f, VA, PAGE);
      f.call('IOMMU_IOAS_MAP', {
        ioas_id: ioas,
        user_va: va,
        length: PAGE,
        iova: 0x1001n,
        flags: RW | FIXED,
      });
      return f.proc;
    },
    'EINVAL',
    'iova 0x1001 not aligned to the IOAS alignment 0x1000',
    'iopt_check_iova',
  ],
  [
    'FIXED range hits a reserved range',
    () => {
      const { f, ioas } = withDomain();
      const va = memAt(f, VA, PAGE);
      f.call('IOMMU_IOAS_MAP', {
        ioas_id: ioas,
        user_va: va,
        length: PAGE,
        iova: MSI.start,
        flags: RW | FIXED,
      });
      return f.proc;
    },
    'EINVAL',
    '[0xfee00000, 0xfee00fff] hits a reserved range',
    'iopt_check_iova',
  ],
  [
    'auto-allocation alignment below the IOAS alignment',
    () => {
      const { f, ioas } = withDomain();
      memAt(f, VA, 2n * PAGE);
      f.call('IOMMU_IOAS_MAP', { ioas_id: ioas, user_va: VA + 0x800n, length: PAGE, flags: RW });
      return f.proc;
    },
    'EINVAL',
    'user_va alignment 0x800 is below the IOAS alignment 0x1000',
    'iopt_alloc_iova',
  ],
  [
    'FIXED map overlapping an area',
    () => {
      const f = traced(setup());
      const ioas = f.ioas();
      const va = memAt(f, VA, PAGE);
      map(f, ioas, va, PAGE, { iova: 0x10000n });
      f.call('IOMMU_IOAS_MAP', {
        ioas_id: ioas,
        user_va: va,
        length: PAGE,
        iova: 0x10000n,
        flags: RW | FIXED,
      });
      return f.proc;
    },
    'EEXIST',
    '[0x10000, 0x10fff] overlaps an existing mapping',
    'iopt_check_iova',
  ],
  [
    'automatic allocation finds no hole',
    () => {
      const f = traced(setup());
      const ioas = f.ioas();
      const list = writeRanges(f, [[0x10000n, 0x10fffn]]);
      f.call('IOMMU_IOAS_ALLOW_IOVAS', { ioas_id: ioas, num_iovas: 1, allowed_iovas: list });
      const va = memAt(f, VA, 2n * PAGE);
      f.call('IOMMU_IOAS_MAP', { ioas_id: ioas, user_va: va, length: 2n * PAGE, flags: RW });
      return f.proc;
    },
    'ENOSPC',
    'no free IOVA hole fits length 0x2000',
    'iopt_alloc_iova',
  ],
  [
    'UNMAP of length 0',
    () => {
      const f = traced(setup());
      f.call('IOMMU_IOAS_UNMAP', { ioas_id: f.ioas(), iova: 0x1000n, length: 0n });
      return f.proc;
    },
    'EINVAL',
    'length is zero',
    'iopt_unmap_iova',
  ],
  [
    'UNMAP range cutting an area',
    () => {
      const f = traced(setup());
      const ioas = f.ioas();
      map(f, ioas, memAt(f, VA, 2n * PAGE), 2n * PAGE, { iova: 0x10000n });
      f.call('IOMMU_IOAS_UNMAP', { ioas_id: ioas, iova: 0x10000n, length: PAGE });
      return f.proc;
    },
    'ENOENT',
    'the range cuts the mapping [0x10000, 0x11fff]',
    'iopt_unmap_iova_range',
  ],
  [
    'UNMAP of a range holding nothing',
    () => {
      const f = traced(setup());
      f.call('IOMMU_IOAS_UNMAP', { ioas_id: f.ioas(), iova: 0x10000n, length: PAGE });
      return f.proc;
    },
    'ENOENT',
    'nothing is mapped in [0x10000, 0x10fff]',
    'iopt_unmap_iova_range',
  ],
  [
    'COPY source not fully mapped',
    () => {
      const f = traced(setup());
      const ioas = f.ioas();
      f.call('IOMMU_IOAS_COPY', {
        dst_ioas_id: ioas,
        src_ioas_id: ioas,
        length: PAGE,
        src_iova: 0x10000n,
        flags: RW,
      });
      return f.proc;
    },
    'ENOENT',
    'nothing is mapped at 0x10000',
    'iopt_get_pages',
  ],
  [
    'ALLOW_IOVAS entry with start >= last',
    () => {
      const f = traced(setup());
      const list = writeRanges(f, [[0x2000n, 0x2000n]]);
      f.call('IOMMU_IOAS_ALLOW_IOVAS', { ioas_id: f.ioas(), num_iovas: 1, allowed_iovas: list });
      return f.proc;
    },
    'EINVAL',
    'allowed range 0 [0x2000, 0x2000] is empty or overlaps another',
    'iommufd_ioas_allow_iovas',
  ],
  [
    'ALLOW_IOVAS overlapping a reserved range',
    () => {
      const { f, ioas } = withDomain();
      const list = writeRanges(f, [[0xfee0_0000n, 0xfee0_ffffn]]);
      f.call('IOMMU_IOAS_ALLOW_IOVAS', { ioas_id: ioas, num_iovas: 1, allowed_iovas: list });
      return f.proc;
    },
    'EADDRINUSE',
    'allowed [0xfee00000, 0xfee0ffff] hits a reserved range',
    'iopt_set_allow_iova',
  ],
  [
    'OPTION HUGE_PAGES with a value other than 0/1',
    () => {
      const f = traced(setup());
      f.call('IOMMU_OPTION', {
        option_id: IOMMU_OPTION_ID.HUGE_PAGES,
        op: IOMMU_OPTION_OP.SET,
        object_id: f.ioas(),
        val64: 2n,
      });
      return f.proc;
    },
    'EINVAL',
    'val64 2 is neither 0 nor 1',
    'iommufd_ioas_option_huge_pages',
  ],
  [
    'HUGE_PAGES off with domains and areas',
    () => {
      const { f, ioas } = withDomain();
      map(f, ioas, memAt(f, VA, PAGE), PAGE, { iova: 0x10000n });
      f.call('IOMMU_OPTION', {
        option_id: IOMMU_OPTION_ID.HUGE_PAGES,
        op: IOMMU_OPTION_OP.SET,
        object_id: ioas,
        val64: 0n,
      });
      return f.proc;
    },
    'EINVAL',
    'large pages cannot be disabled while the IOAS has both domains and mappings',
    'iopt_disable_large_pages',
  ],
  [
    'RLIMIT_MODE set without CAP_SYS_RESOURCE',
    () => {
      const k = setup().kernel;
      const f = traced(client(k, k.spawn({ capSysResource: false })));
      f.call('IOMMU_OPTION', {
        option_id: IOMMU_OPTION_ID.RLIMIT_MODE,
        op: IOMMU_OPTION_OP.SET,
        val64: 1n,
      });
      return f.proc;
    },
    'EPERM',
    'setting RLIMIT_MODE needs CAP_SYS_RESOURCE',
    'iommufd_option_rlimit_mode',
  ],
  [
    'RLIMIT_MODE change with objects present',
    () => {
      const f = traced(setup());
      f.ioas();
      f.call('IOMMU_OPTION', {
        option_id: IOMMU_OPTION_ID.RLIMIT_MODE,
        op: IOMMU_OPTION_OP.SET,
        val64: 1n,
      });
      return f.proc;
    },
    'EBUSY',
    'the context already has objects',
    'iommufd_option_rlimit_mode',
  ],
  [
    'user struct larger than the kernel with a non-zero tail',
    () => {
      const f = traced(setup());
      const tail = new Uint8Array(16);
      tail.set([16, 0, 0, 0]);
      tail[14] = 1;
      f.proc.ioctl(f.fd, ioasAllocNumber(f), f.proc.scratch(tail));
      return f.proc;
    },
    'E2BIG',
    `non-zero byte in the struct's tail at 0x${(0x7ffefff00000n + 12n).toString(16)}`,
    'check_zeroed_user',
  ],
  [
    'unknown flag bits',
    () => {
      const f = traced(setup());
      f.call('IOMMU_IOAS_ALLOC', { flags: 4 });
      return f.proc;
    },
    'EOPNOTSUPP',
    'unknown flags 0x4',
    'iommufd_ioas_alloc_ioctl',
  ],
  [
    'unknown object id',
    () => {
      const f = traced(setup());
      f.call('IOMMU_IOAS_MAP', { ioas_id: 99, user_va: VA, length: PAGE, flags: RW });
      return f.proc;
    },
    'ENOENT',
    'no ioas with ID 99',
    'iommufd_get_object',
  ],
  [
    'iova = U64_MAX',
    () => {
      const f = traced(setup());
      f.call('IOMMU_IOAS_MAP', { ioas_id: f.ioas(), user_va: VA, length: PAGE, iova: U64_MAX });
      return f.proc;
    },
    'EOVERFLOW',
    'iova or length is U64_MAX',
    'iommufd_ioas_map',
  ],
  [
    'user_va + length wraps',
    () => {
      const f = traced(setup());
      f.call('IOMMU_IOAS_MAP', {
        ioas_id: f.ioas(),
        user_va: U64_MAX - PAGE + 1n,
        length: 2n * PAGE,
        flags: RW,
      });
      return f.proc;
    },
    'EOVERFLOW',
    'user_va 0xfffffffffffff000 + length 0x2000 wraps',
    'iopt_alloc_pages',
  ],
  [
    'DESTROY of an object still referenced',
    () => {
      const { f, ioas } = withDomain();
      f.call('IOMMU_DESTROY', { id: ioas });
      return f.proc;
    },
    'EBUSY',
    'object 1 is in use (1 users)',
    'iommufd_object_remove',
  ],
  [
    'IOVA_RANGES capacity too small',
    () => {
      const f = traced(setup());
      f.call('IOMMU_IOAS_IOVA_RANGES', { ioas_id: f.ioas(), num_iovas: 0 });
      return f.proc;
    },
    'EMSGSIZE',
    '1 ranges do not fit num_iovas 0 (num_iovas now says 1)',
    'iommufd_ioas_iova_ranges',
  ],
  [
    'RLIMIT_MEMLOCK exceeded while pinning',
    () => {
      const k = setup().kernel;
      const f = traced(client(k, k.spawn({ capIpcLock: false, rlimitMemlock: PAGE })));
      const { ioas } = withDomain(f);
      f.call('IOMMU_IOAS_MAP', {
        ioas_id: ioas,
        user_va: memAt(f, VA, 2n * PAGE),
        length: 2n * PAGE,
        flags: RW,
      });
      return f.proc;
    },
    'ENOMEM',
    '2 pages locked would pass RLIMIT_MEMLOCK (1 pages)',
    'incr_user_locked_vm',
  ],
  [
    'VFIO_IOAS GET with no compat IOAS',
    () => {
      const f = traced(setup());
      f.call('IOMMU_VFIO_IOAS', { op: IOMMU_VFIO_IOAS_OP.GET });
      return f.proc;
    },
    'ENODEV',
    'no IOAS is set for VFIO compatibility',
    'iommufd_vfio_ioas',
  ],
  [
    'MAP_FILE with a bad fd',
    () => {
      const f = traced(setup());
      f.call('IOMMU_IOAS_MAP_FILE', { ioas_id: f.ioas(), fd: 77, length: PAGE, flags: RW });
      return f.proc;
    },
    'EBADF',
    'fd 77 is not open',
    'iommufd_ioas_map_file',
  ],
  [
    'IOVA_RANGES with __reserved set',
    () => {
      const f = traced(setup());
      f.call('IOMMU_IOAS_IOVA_RANGES', { ioas_id: f.ioas(), __reserved: 1 });
      return f.proc;
    },
    'EOPNOTSUPP',
    '__reserved is not zero',
    'iommufd_ioas_iova_ranges',
  ],
  [
    'ALLOW_IOVAS with __reserved set',
    () => {
      const f = traced(setup());
      f.call('IOMMU_IOAS_ALLOW_IOVAS', { ioas_id: f.ioas(), __reserved: 1 });
      return f.proc;
    },
    'EOPNOTSUPP',
    '__reserved is not zero',
    'iommufd_ioas_allow_iovas',
  ],
  [
    'HWPT_ALLOC pt_id missing',
    () => {
      const f = traced(setup());
      const idev = f.intelDevice();
      f.call('IOMMU_HWPT_ALLOC', { dev_id: idev.id, pt_id: 42 });
      return f.proc;
    },
    'EINVAL',
    'no object with pt_id 42',
    'iommufd_hwpt_alloc',
  ],
  [
    'HWPT_ALLOC data_type / data_len mismatch',
    () => {
      const f = traced(setup());
      const idev = f.intelDevice();
      f.call('IOMMU_HWPT_ALLOC', { dev_id: idev.id, pt_id: f.ioas(), data_len: 8 });
      return f.proc;
    },
    'EINVAL',
    'data_type 0 with data_len 8',
    'iommufd_hwpt_alloc',
  ],
  [
    'unknown ioctl number',
    () => {
      const f = traced(setup());
      const wrongDirection = (ioasAllocNumber(f) | 0x4000_0000) >>> 0;
      f.proc.ioctl(f.fd, wrongDirection, f.proc.scratch(Uint8Array.of(12)));
      return f.proc;
    },
    'ENOTTY',
    'no iommufd command 0x40003b81',
    'iommufd_fops_ioctl',
  ],
  [
    'mmap of /dev/iommu with MAP_PRIVATE',
    () => iommuMmap(0n, PAGE, MAP_PRIVATE),
    'EINVAL',
    'iommufd regions are mapped MAP_SHARED only',
    'iommufd_fops_mmap',
  ],
  [
    'mmap of /dev/iommu with PROT_EXEC',
    () => iommuMmap(0n, PAGE, MAP_SHARED, PROT_RW | PROT_EXEC),
    'EPERM',
    'iommufd regions are not executable',
    'iommufd_fops_mmap',
  ],
  [
    'mmap of /dev/iommu where no region is',
    () => iommuMmap(0n, PAGE),
    'ENXIO',
    'no region at offset 0',
    'iommufd_fops_mmap',
  ],
  [
    'mmap of half a vIOMMU region',
    () => {
      const f = setup();
      const { offset } = viommuRegion(f);
      return mmapErrno(f.proc, f.fd, offset, PAGE);
    },
    'ENXIO',
    'the region is 8192 bytes at offset 4096: map exactly that',
    'iommufd_fops_mmap',
  ],
];

const vfioRows: Row[] = [
  [
    'legacy SET_IOMMU without a group',
    () => {
      const c = traced(new VfioClient({ personality: { vfioContainer: 'type1' } }));
      c.ioctl(c.open('/dev/vfio/vfio').ret, 'VFIO_SET_IOMMU', 3n);
      return c.proc;
    },
    'EINVAL',
    'no group is in the container',
    'vfio_ioctl_set_iommu',
  ],
  [
    'legacy SET_IOMMU once set',
    () => {
      const { c, fd } = container('type1', 3);
      c.ioctl(fd, 'VFIO_SET_IOMMU', 3n);
      return c.proc;
    },
    'EINVAL',
    'the IOMMU type is set already',
    'vfio_ioctl_set_iommu',
  ],
  [
    'legacy SET_IOMMU of a type no driver takes',
    () => {
      const { c, fd } = container('type1');
      c.ioctl(fd, 'VFIO_SET_IOMMU', 7n);
      return c.proc;
    },
    'ENODEV',
    'no IOMMU driver takes type 7 for these groups',
    'vfio_ioctl_set_iommu',
  ],
  [
    'legacy MAP_DMA before SET_IOMMU',
    () => {
      const { c, fd } = container('type1');
      c.mapDma(fd, c.mem(MIB), 0n, MIB);
      return c.proc;
    },
    'EINVAL',
    'no IOMMU set on the container (VFIO_SET_IOMMU first)',
    'vfio_fops_unl_ioctl',
  ],
  [
    'type1 MAP_DMA argsz < 32',
    () => {
      const { c, fd } = container('type1', 3);
      const arg = c.proc.scratch(new Uint8Array([16, 0, 0, 0, 3, 0, 0, 0]));
      c.proc.ioctl(fd, vfioIoctlNumber(c.kernel.abi, 'VFIO_IOMMU_MAP_DMA'), arg);
      return c.proc;
    },
    'EINVAL',
    'argsz 16 below 32',
    'vfio_iommu_type1_map_dma',
  ],
  [
    'type1 MAP_DMA with neither READ nor WRITE',
    () => {
      const { c, fd } = container('type1', 3);
      c.mapDma(fd, c.mem(MIB), 0n, MIB, 0);
      return c.proc;
    },
    'EINVAL',
    'neither READ nor WRITE',
    'vfio_dma_do_map',
  ],
  [
    'type1 MAP_DMA not page aligned',
    () => {
      const { c, fd } = container('type1', 3);
      c.mapDma(fd, c.mem(MIB), 0x800n, PAGE);
      return c.proc;
    },
    'EINVAL',
    'size, iova or vaddr zero or not aligned to the smallest page 0x1000',
    'vfio_dma_do_map',
  ],
  [
    'type1 MAP_DMA overlapping a mapping',
    () => {
      const { c, fd } = container('type1', 3);
      const va = c.mem(MIB);
      assert.equal(c.mapDma(fd, va, 0x100000n, MIB).ret, 0);
      c.mapDma(fd, va, 0x180000n, MIB);
      return c.proc;
    },
    'EEXIST',
    '[0x180000, 0x27ffff] overlaps the mapping at 0x100000',
    'vfio_dma_do_map',
  ],
  [
    'type1 MAP_DMA outside the valid IOVA ranges',
    () => {
      const { c, fd } = container('type1', 3);
      c.mapDma(fd, c.mem(MIB), 0xfee0_0000n, MIB);
      return c.proc;
    },
    'EINVAL',
    '[0xfee00000, 0xfeefffff] is outside the valid IOVA ranges',
    'vfio_iommu_iova_dma_valid',
  ],
  [
    'type1 v2 UNMAP_DMA bisecting a mapping',
    () => {
      const { c, fd } = container('type1', 3);
      assert.equal(c.mapDma(fd, c.mem(MIB), 0x100000n, MIB).ret, 0);
      c.unmapDma(fd, 0x180000n, PAGE);
      return c.proc;
    },
    'EINVAL',
    'iova 0x180000 bisects the mapping at 0x100000',
    'vfio_dma_do_unmap',
  ],
  [
    'type1 DIRTY_PAGES on a v1 container',
    () => {
      const { c, fd } = container('type1', 1);
      c.proc.ioctl(
        fd,
        vfioIoctlNumber(c.kernel.abi, 'VFIO_IOMMU_DIRTY_PAGES'),
        c.proc.scratch(new Uint8Array([8, 0, 0, 0, 1, 0, 0, 0])),
      );
      return c.proc;
    },
    'EACCES',
    'dirty tracking needs a TYPE1v2 container',
    'vfio_iommu_type1_dirty_pages',
  ],
  [
    'type1 DIRTY_PAGES with START and STOP',
    () => {
      const { c, fd } = container('type1', 3);
      c.proc.ioctl(
        fd,
        vfioIoctlNumber(c.kernel.abi, 'VFIO_IOMMU_DIRTY_PAGES'),
        c.proc.scratch(new Uint8Array([8, 0, 0, 0, 3, 0, 0, 0])),
      );
      return c.proc;
    },
    'EINVAL',
    'not exactly one of START, STOP, GET_BITMAP',
    'vfio_iommu_type1_dirty_pages',
  ],
  [
    'type1 UNMAP_DMA GET_DIRTY_BITMAP with ALL',
    () => {
      const { c, fd } = container('type1', 3);
      c.unmapDma(fd, 0n, 0n, 3);
      return c.proc;
    },
    'EINVAL',
    'GET_DIRTY_BITMAP with ALL or VADDR',
    'vfio_iommu_type1_unmap_dma',
  ],
  [
    'type1 MAP_DMA VADDR where nothing is mapped',
    () => {
      const { c, fd } = container('type1', 3);
      c.mapDma(fd, c.mem(MIB), 0n, PAGE, 4);
      return c.proc;
    },
    'ENOENT',
    'no mapping at 0 to give a vaddr',
    'vfio_dma_do_map',
  ],
  [
    'type1 attach of a group while a vaddr is invalidated',
    () => {
      const { c, fd } = container('type1', 3);
      assert.equal(c.mapDma(fd, c.mem(MIB), 0n, PAGE).ret, 0);
      assert.equal(c.unmapDma(fd, 0n, PAGE, 4).ret, 0);
      c.setContainer(c.open(`/dev/vfio/${USB[1]}`).ret, fd);
      return c.proc;
    },
    'EBUSY',
    'mappings with an invalidated vaddr wait for a new one',
    'vfio_iommu_type1_attach_group',
  ],
  [
    'type1 GET_INFO argsz < 16',
    () => {
      const { c, fd } = container('type1', 3);
      c.proc.ioctl(
        fd,
        vfioIoctlNumber(c.kernel.abi, 'VFIO_IOMMU_GET_INFO'),
        c.proc.scratch(VfioIommuType1Info.encode({ argsz: 8 })),
      );
      return c.proc;
    },
    'EINVAL',
    'argsz 8 below 16',
    'vfio_iommu_type1_get_info',
  ],
  [
    'group GET_STATUS argsz < 8',
    () => {
      const c = traced(new VfioClient());
      c.status(c.open('/dev/vfio/12').ret, 4);
      return c.proc;
    },
    'EINVAL',
    'argsz 4 below 8',
    'vfio_group_ioctl_get_status',
  ],
  [
    'group SET_CONTAINER with a closed fd',
    () => {
      const c = traced(new VfioClient());
      c.setContainer(c.open('/dev/vfio/12').ret, 77);
      return c.proc;
    },
    'EBADF',
    'fd 77 is not open',
    'vfio_group_ioctl_set_container',
  ],
  [
    'group SET_CONTAINER twice',
    () => {
      const { c, fd, group } = container('iommufd');
      c.setContainer(group, fd);
      return c.proc;
    },
    'EINVAL',
    'the group already has a container',
    'vfio_group_ioctl_set_container',
  ],
  [
    'group SET_CONTAINER with an fd that is no container',
    () => {
      const c = traced(new VfioClient());
      c.setContainer(c.open('/dev/vfio/12').ret, 0);
      return c.proc;
    },
    'EBADFD',
    'fd 0 is neither a container nor an iommufd',
    'vfio_group_ioctl_set_container',
  ],
  [
    'group UNSET_CONTAINER when not set',
    () => {
      const c = traced(new VfioClient());
      c.ioctl(c.open('/dev/vfio/12').ret, 'VFIO_GROUP_UNSET_CONTAINER');
      return c.proc;
    },
    'EINVAL',
    'the group has no container',
    'vfio_group_ioctl_unset_container',
  ],
  [
    'group UNSET_CONTAINER with a device open (legacy)',
    () => {
      const { c, group } = container('type1', 3);
      assert.ok(c.getDeviceFd(group, NVME).ret >= 0);
      c.ioctl(group, 'VFIO_GROUP_UNSET_CONTAINER');
      return c.proc;
    },
    'EBUSY',
    'a device of the group is open',
    'vfio_group_ioctl_unset_container',
  ],
  [
    'GET_DEVICE_FD of a name not in the group',
    () => {
      const { c, group } = container('iommufd');
      c.getDeviceFd(group, '0000:99:00.0');
      return c.proc;
    },
    'ENODEV',
    'no device "0000:99:00.0" in group 12',
    'vfio_device_get_from_name',
  ],
  [
    'GET_DEVICE_FD with no container',
    () => {
      const c = traced(new VfioClient());
      c.getDeviceFd(c.open('/dev/vfio/12').ret, NVME);
      return c.proc;
    },
    'EINVAL',
    'the group has no container',
    'vfio_group_ioctl_get_device_fd',
  ],
  [
    'GET_DEVICE_FD before SET_IOMMU (legacy)',
    () => {
      const { c, group } = container('type1');
      c.getDeviceFd(group, NVME);
      return c.proc;
    },
    'EINVAL',
    'the container has no IOMMU set (VFIO_SET_IOMMU)',
    'vfio_group_use_container',
  ],
  [
    'compat SET_IOMMU without a compat IOAS',
    () => {
      const c = traced(new VfioClient({ personality: { vfioContainer: 'iommufd' } }));
      c.ioctl(c.open('/dev/vfio/vfio').ret, 'VFIO_SET_IOMMU', 3n);
      return c.proc;
    },
    'ENODEV',
    'the iommufd has no compat IOAS (no group set on it, no IOMMU_VFIO_IOAS SET)',
    'get_compat_ioas',
  ],
  [
    'compat SET_IOMMU of a type other than 1 or 3',
    () => {
      const { c, fd } = container('iommufd');
      c.ioctl(fd, 'VFIO_SET_IOMMU', 7n);
      return c.proc;
    },
    'EINVAL',
    'container type 7 is not TYPE1 or TYPE1v2',
    'iommufd_vfio_set_iommu',
  ],
  [
    'compat MAP_DMA with a flag other than READ/WRITE',
    () => {
      const { c, fd } = container('iommufd', 3);
      c.mapDma(fd, c.mem(MIB), 0n, MIB, 7);
      return c.proc;
    },
    'EINVAL',
    'flags 0x7 beyond READ|WRITE',
    'iommufd_vfio_map_dma',
  ],
  [
    'compat UNMAP_DMA partially covering a mapping',
    () => {
      const { c, fd } = container('iommufd', 3);
      assert.equal(c.mapDma(fd, c.mem(MIB), 0x100000n, MIB).ret, 0);
      c.unmapDma(fd, 0x100000n, PAGE);
      return c.proc;
    },
    'ENOENT',
    'the range cuts the mapping [0x100000, 0x1fffff]',
    'iopt_unmap_iova_range',
  ],
  [
    'compat UNMAP_DMA ALL with an iova',
    () => {
      const { c, fd } = container('iommufd', 3);
      c.unmapDma(fd, PAGE, 0n, 2);
      return c.proc;
    },
    'EINVAL',
    'UNMAP_ALL takes iova 0 and size 0',
    'iommufd_vfio_unmap_dma',
  ],
  [
    'unknown ioctl on a group',
    () => {
      const c = traced(new VfioClient());
      c.proc.ioctl(c.open('/dev/vfio/12').ret, 0x3b7f, 0n);
      return c.proc;
    },
    'ENOTTY',
    'no group ioctl',
    'vfio_group_fops_unl_ioctl',
  ],
];

const spaprRows: Row[] = [
  [
    'a container bound to another mm',
    onSpapr((c) => {
      const ram = c.ram(2n * MIB);
      c.register(ram, 2n * MIB);
      const child = traced({ proc: c.proc.fork(4242, new SimMm(c.kernel.memory)) }).proc;
      child.call(
        c.container,
        vfioIoctlNumber(c.kernel.abi, 'VFIO_IOMMU_SPAPR_TCE_GET_INFO'),
        VfioIommuSpaprTceInfo,
        { argsz: 32 },
      );
      return child;
    }),
    'EPERM',
    'container bound to another mm',
    'tce_iommu_ioctl',
  ],
  [
    'SET_IOMMU of a type other than 2 or 7',
    () => {
      const c = traced(new SpaprClient());
      c.container = c.open('/dev/vfio/vfio').ret;
      c.addGroup(1);
      c.ioctl(c.container, 'VFIO_SET_IOMMU', 5n);
      return c.proc;
    },
    'EINVAL',
    'type 5 is not SPAPR TCE v1 or v2',
    'tce_iommu_open',
  ],
  [
    'v1: a second group',
    onSpapr((c) => c.setContainer(c.open('/dev/vfio/2').ret, c.container), V1),
    'EBUSY',
    'a v1 container takes one group',
    'tce_iommu_attach_group',
  ],
  [
    'a group of another PHB flavour',
    onSpapr((c) => c.setContainer(c.open('/dev/vfio/0').ret, c.container), V2, MIXED),
    'EPERM',
    'incompatible table group',
    'tce_iommu_attach_group',
  ],
  [
    'GET_INFO argsz < 16',
    onSpapr((c) => c.info(15)),
    'EINVAL',
    'argsz 15 below 16',
    'tce_iommu_ioctl',
  ],
  [
    'v1 ENABLE twice',
    onSpapr((c) => {
      enable(c);
      enable(c);
    }, V1),
    'EBUSY',
    'already enabled',
    'tce_iommu_enable',
  ],
  [
    'v1 ENABLE without a default window',
    onSpapr(enable, V1, NO_DMA32),
    'EPERM',
    'no default window',
    'tce_iommu_enable',
  ],
  [
    'v1 ENABLE past RLIMIT_MEMLOCK',
    onSpapr(enable, V1, {}, LOW_MEMLOCK),
    'ENOMEM',
    '524288 pages locked would pass RLIMIT_MEMLOCK (256 pages)',
    'update_mm_locked_vm',
  ],
  [
    'ENABLE on v2',
    onSpapr(enable),
    'ENOTTY',
    'not an ioctl of this SPAPR TCE version',
    'tce_iommu_ioctl',
  ],
  [
    'REGISTER_MEMORY on v1',
    onSpapr((c) => c.register(c.ram(2n * MIB), 2n * MIB), V1),
    'ENOTTY',
    'not an ioctl of this SPAPR TCE version',
    'tce_iommu_ioctl',
  ],
  [
    'REGISTER_MEMORY argsz < 24',
    onSpapr((c) =>
      c.call('VFIO_IOMMU_SPAPR_REGISTER_MEMORY', VfioIommuSpaprRegisterMemory, {
        argsz: 16,
        vaddr: c.ram(MIB),
        size: MIB,
      }),
    ),
    'EINVAL',
    'argsz 16 below 24',
    'tce_iommu_ioctl',
  ],
  [
    'REGISTER_MEMORY flags',
    onSpapr((c) => c.register(c.ram(MIB), MIB, 1)),
    'EINVAL',
    'unknown flags 0x1',
    'tce_iommu_ioctl',
  ],
  [
    'REGISTER_MEMORY of an unaligned vaddr',
    onSpapr((c) => c.register(c.ram(2n * MIB) + 0x1000n, MIB)),
    'EINVAL',
    'vaddr or size not page aligned, or the range wraps',
    'tce_iommu_register_pages',
  ],
  [
    'REGISTER_MEMORY of the same range twice',
    onSpapr((c) => {
      const r = c.ram(2n * MIB);
      c.register(r, 2n * MIB);
      c.register(r, 2n * MIB);
    }),
    'EBUSY',
    'region already registered by this container',
    'tce_iommu_register_pages',
  ],
  [
    'REGISTER_MEMORY overlapping a region',
    onSpapr((c) => {
      const r = c.ram(4n * MIB);
      c.register(r, 2n * MIB);
      c.register(r + MIB, 2n * MIB);
    }),
    'EINVAL',
    'overlaps a registered region',
    'mm_iommu_do_alloc',
  ],
  [
    'REGISTER_MEMORY past RLIMIT_MEMLOCK',
    onSpapr((c) => c.register(c.ram(2n * MIB), 2n * MIB), V2, {}, LOW_MEMLOCK),
    'ENOMEM',
    '512 pages locked would pass RLIMIT_MEMLOCK (256 pages)',
    'update_mm_locked_vm',
  ],
  [
    'REGISTER_MEMORY of size 0',
    onSpapr((c) => c.register(c.ram(MIB), 0n)),
    'ENOMEM',
    'size 0: no page array to allocate',
    'mm_iommu_do_alloc',
  ],
  [
    'UNREGISTER_MEMORY before any REGISTER',
    onSpapr((c) => c.unregister(K64, K64)),
    'EPERM',
    'container not bound to an mm',
    'tce_iommu_ioctl',
  ],
  [
    'UNREGISTER_MEMORY unaligned',
    onSpapr((c) => {
      const r = c.ram(2n * MIB);
      c.register(r, 2n * MIB);
      c.unregister(r + 0x1000n, MIB);
    }),
    'EINVAL',
    'vaddr or size not page aligned',
    'tce_iommu_unregister_pages',
  ],
  [
    'UNREGISTER_MEMORY of no region',
    onSpapr((c) => {
      const r = c.ram(2n * MIB);
      c.register(r, 2n * MIB);
      c.unregister(r, MIB);
    }),
    'ENOENT',
    'no region registered by this container at vaddr/size',
    'tce_iommu_unregister_pages',
  ],
  [
    'TCE_CREATE on v1',
    onSpapr((c) => c.create(16, GIB), V1),
    'ENOTTY',
    'not an ioctl of this SPAPR TCE version',
    'tce_iommu_ioctl',
  ],
  [
    'TCE_CREATE argsz < 40',
    onSpapr((c) => c.create(16, GIB, 1, 32)),
    'EINVAL',
    'argsz 32 below 40',
    'tce_iommu_ioctl',
  ],
  [
    'TCE_CREATE with both slots used',
    onSpapr((c) => {
      c.create(16, GIB);
      c.create(16, GIB);
    }),
    'ENOSPC',
    'both window slots in use',
    'tce_iommu_find_free_table',
  ],
  [
    'TCE_CREATE of a page size not in pgsizes',
    onSpapr((c) => c.create(13, GIB)),
    'EINVAL',
    'TCE page shift 13 not supported',
    'tce_iommu_create_window',
  ],
  [
    'TCE_CREATE of a size not a power of two',
    onSpapr((c) => c.create(16, GIB + MIB)),
    'EINVAL',
    'window size or levels rejected by get_table_size',
    'tce_iommu_create_table',
  ],
  [
    'TCE_CREATE with levels 0',
    onSpapr((c) => c.create(16, GIB, 0)),
    'EINVAL',
    'window size or levels rejected by get_table_size',
    'tce_iommu_create_table',
  ],
  [
    'TCE_CREATE needing 55 address bits',
    onSpapr((c) => c.create(16, 1n << 40n, 3)),
    'EINVAL',
    'TCE table levels would cover 55+ address bits',
    'pnv_pci_ioda2_table_alloc_pages',
  ],
  [
    'TCE_CREATE past RLIMIT_MEMLOCK',
    onSpapr((c) => c.create(16, 64n * GIB), V2, {}, { capIpcLock: false, rlimitMemlock: 4n * MIB }),
    'ENOMEM',
    '2048 pages locked would pass RLIMIT_MEMLOCK (1024 pages)',
    'update_mm_locked_vm',
  ],
  [
    'v2 MAP_DMA before REGISTER_MEMORY',
    onSpapr((c) => c.mapDma(c.container, c.ram(2n * MIB), 0n, 0x1000n)),
    'EPERM',
    'no memory registered',
    'tce_iommu_ioctl',
  ],
  [
    'v1 MAP_DMA before ENABLE',
    onSpapr((c) => c.mapDma(c.container, c.mem(MIB), 0n, 0x1000n), V1),
    'EPERM',
    'not enabled',
    'tce_iommu_ioctl',
  ],
  [
    'MAP_DMA with a flag other than READ/WRITE',
    onSpapr((c) => c.mapDma(c.container, ddw(c), DDW, K64, 4)),
    'EINVAL',
    'unknown flags 0x4',
    'tce_iommu_ioctl',
  ],
  [
    'MAP_DMA outside every window',
    onSpapr((c) => c.mapDma(c.container, ddw(c), 0n, K64)),
    'ENXIO',
    'iova in no window',
    'tce_iommu_find_table',
  ],
  [
    'MAP_DMA size not a multiple of the TCE page',
    onSpapr((c) => c.mapDma(c.container, ddw(c), DDW, 0x1000n)),
    'EINVAL',
    'not TCE page aligned',
    'tce_iommu_ioctl',
  ],
  [
    'MAP_DMA without READ or WRITE',
    onSpapr((c) => c.mapDma(c.container, ddw(c), DDW, K64, 0)),
    'EINVAL',
    'neither READ nor WRITE',
    'tce_iommu_ioctl',
  ],
  [
    'MAP_DMA past the window end (model choice)',
    onSpapr((c) => c.mapDma(c.container, ddw(c), DDW + GIB - K64, 2n * K64)),
    'EINVAL',
    'past the window end',
    'uiommu_spapr_window_end',
  ],
  [
    'v2 MAP_DMA of memory not registered',
    onSpapr((c) => {
      ddw(c);
      c.mapDma(c.container, c.ram(2n * MIB), DDW, K64);
    }),
    'EINVAL',
    'memory not pre-registered',
    'tce_iommu_prereg_ua_to_hpa',
  ],
  [
    'v2 MAP_DMA of a region with smaller pages',
    onSpapr((c) => {
      const m = c.mem(2n * MIB);
      const a = (m + K64 - 1n) & ~(K64 - 1n);
      c.register(a, MIB);
      c.create(16, GIB);
      c.remove(0n);
      c.mapDma(c.container, a, DDW, K64);
    }),
    'EINVAL',
    'region pages too small',
    'mm_iommu_ua_to_hpa',
  ],
  [
    'v1 MAP_DMA of unmapped memory',
    onSpapr((c) => {
      enable(c);
      c.mapDma(c.container, 0x7000_0000_0000n, 0x10_0000n, 0x1000n);
    }, V1),
    'EFAULT',
    'unmapped address 0x700000000000',
    'pin_user_pages_fast',
  ],
  [
    'UNMAP_DMA flags',
    onSpapr((c) => {
      ddw(c);
      c.unmapDma(c.container, DDW, K64, 1);
    }),
    'EINVAL',
    'unknown flags 0x1',
    'tce_iommu_ioctl',
  ],
  [
    'UNMAP_DMA outside every window',
    onSpapr((c) => {
      ddw(c);
      c.unmapDma(c.container, 0n, K64);
    }),
    'ENXIO',
    'iova in no window',
    'tce_iommu_find_table',
  ],
  [
    'TCE_REMOVE of no window',
    onSpapr((c) => c.remove(1n << 40n)),
    'EINVAL',
    'no window at that address',
    'tce_iommu_remove_window',
  ],
  [
    'TCE_REMOVE flags',
    onSpapr((c) => c.remove(0n, 1)),
    'EINVAL',
    'unknown flags 0x1',
    'tce_iommu_ioctl',
  ],
  [
    'EEH_PE_OP argsz < 12',
    onSpapr((c) => eeh(c, VFIO_EEH_PE_OP.GET_STATE, { argsz: 11 })),
    'EINVAL',
    'argsz 11 below 12',
    'vfio_spapr_ioctl_eeh_pe_op',
  ],
  [
    'EEH_PE_OP flags',
    onSpapr((c) => eeh(c, VFIO_EEH_PE_OP.GET_STATE, { flags: 1 })),
    'EINVAL',
    'unknown flags 0x1',
    'vfio_spapr_ioctl_eeh_pe_op',
  ],
  [
    'EEH_PE_OP of an unknown op',
    onSpapr((c) => eeh(c, 10)),
    'EINVAL',
    'unknown EEH op',
    'vfio_spapr_ioctl_eeh_pe_op',
  ],
  [
    'EEH INJECT_ERR argsz < 40',
    onSpapr((c) => eeh(c, VFIO_EEH_PE_OP.INJECT_ERR, { argsz: 39 })),
    'EINVAL',
    'argsz 39 has no room for the error to inject',
    'vfio_spapr_ioctl_eeh_pe_op',
  ],
  [
    'EEH INJECT_ERR function out of range',
    onSpapr((c) => eeh(c, VFIO_EEH_PE_OP.INJECT_ERR, { err_func: 20 })),
    'EINVAL',
    'error function out of range',
    'eeh_pe_inject_err',
  ],
  [
    'EEH INJECT_ERR type not 32/64-bit',
    onSpapr((c) => eeh(c, VFIO_EEH_PE_OP.INJECT_ERR, { err_type: 2 })),
    'ERANGE',
    'error type not 32/64-bit',
    'pnv_eeh_err_inject',
  ],
  [
    'an unknown container ioctl',
    onSpapr((c) => c.proc.ioctl(c.container, 0x3b7f, 0n)),
    'ENOTTY',
    'not an ioctl of this SPAPR TCE version',
    'tce_iommu_ioctl',
  ],
  [
    'iommufd-compat SET_IOMMU with no group set',
    () => {
      const c = traced(new SpaprClient({ personality: { vfioContainer: 'iommufd' } }));
      c.ioctl(c.open('/dev/vfio/vfio').ret, 'VFIO_SET_IOMMU', BigInt(V2));
      return c.proc;
    },
    'ENODEV',
    'no group set on this iommufd',
    'iommufd_vfio_set_iommu',
  ],
  [
    'iommufd-compat SET_IOMMU with a device fd open',
    () => {
      const c = traced(new SpaprClient({ personality: { vfioContainer: 'iommufd' } }));
      const fd = c.open('/dev/vfio/vfio').ret;
      const g = c.open('/dev/vfio/1').ret;
      assert.equal(c.setContainer(g, fd).ret, 0);
      assert.ok(c.getDeviceFd(g, '0001:01:00.0').ret >= 0);
      c.ioctl(fd, 'VFIO_SET_IOMMU', BigInt(V2));
      return c.proc;
    },
    'EBUSY',
    'a device is bound to the iommufd',
    'iommufd_vfio_set_iommu',
  ],
];

const deviceRows: Row[] = [
  [
    'GET_DEVICE_FD with an unknown option',
    withGroup((c, g) => c.getDeviceFd(g, `${NVME} colour=blue`)),
    'EINVAL',
    'unknown or duplicate option',
    'vfio_pci_core_match',
  ],
  [
    'GET_DEVICE_FD with a VF token for a function without SR-IOV',
    withGroup((c, g) => c.getDeviceFd(g, `${NVME} vf_token=2ab74924-c335-45f4-9b16-8569e5b08258`)),
    'EINVAL',
    'VF token given for a device that is neither PF nor VF',
    'vfio_pci_core_match_token_uuid',
  ],
  [
    'a cdev ioctl before BIND_IOMMUFD',
    () => {
      const c = traced(new VfioClient());
      const dev = c.open(c.cdevPath(NVME)).ret;
      devCall({ c, dev }, 'VFIO_DEVICE_GET_INFO', VfioDeviceInfo, { argsz: 24 });
      return c.proc;
    },
    'EINVAL',
    'the cdev is not bound (VFIO_DEVICE_BIND_IOMMUFD first)',
    'vfio_device_fops_unl_ioctl',
  ],
  [
    'GET_INFO argsz < 16',
    onDevice((d) => devCall(d, 'VFIO_DEVICE_GET_INFO', VfioDeviceInfo, { argsz: 8 })),
    'EINVAL',
    'argsz 8 below 16',
    'vfio_pci_ioctl_get_info',
  ],
  [
    'GET_REGION_INFO argsz < 32',
    onDevice((d) => devCall(d, 'VFIO_DEVICE_GET_REGION_INFO', VfioRegionInfo, { argsz: 16 })),
    'EINVAL',
    'argsz 16 below 32',
    'vfio_pci_ioctl_get_region_info',
  ],
  [
    'GET_REGION_INFO of no region',
    onDevice((d) =>
      devCall(d, 'VFIO_DEVICE_GET_REGION_INFO', VfioRegionInfo, { argsz: 32, index: 12 }),
    ),
    'EINVAL',
    'region index 12',
    'vfio_pci_ioctl_get_region_info',
  ],
  [
    'GET_IRQ_INFO argsz < 16',
    onDevice((d) => devCall(d, 'VFIO_DEVICE_GET_IRQ_INFO', VfioIrqInfo, { argsz: 8 })),
    'EINVAL',
    'argsz 8 below 16',
    'vfio_pci_ioctl_get_irq_info',
  ],
  [
    'GET_IRQ_INFO index ≥ 5',
    onDevice((d) => devCall(d, 'VFIO_DEVICE_GET_IRQ_INFO', VfioIrqInfo, { argsz: 16, index: 5 })),
    'EINVAL',
    'index 5 past the last',
    'vfio_pci_ioctl_get_irq_info',
  ],
  [
    'GET_IRQ_INFO of ERR on conventional PCI',
    onDevice(
      (d) => devCall(d, 'VFIO_DEVICE_GET_IRQ_INFO', VfioIrqInfo, { argsz: 16, index: 3 }),
      ...USB,
    ),
    'EINVAL',
    'ERR IRQ of a conventional PCI function',
    'vfio_pci_ioctl_get_irq_info',
  ],
  [
    'SET_IRQS argsz < 20',
    onDevice((d) => setIrqs(d, DATA_NONE | ACTION_TRIGGER, 0, 0, 1, 16)),
    'EINVAL',
    'argsz 16 below 20',
    'vfio_pci_ioctl_set_irqs',
  ],
  [
    'SET_IRQS past the index’s vectors',
    onDevice((d) => setIrqs(d, DATA_NONE | ACTION_TRIGGER, 0, 1)),
    'EINVAL',
    "start 1 count 1 outside the index's 1 vectors",
    'vfio_set_irqs_validate_and_prepare',
  ],
  [
    'SET_IRQS with two data types',
    onDevice((d) => setIrqs(d, DATA_NONE | DATA_BOOL | ACTION_TRIGGER, 0)),
    'EINVAL',
    'not exactly one DATA_ type flag',
    'vfio_set_irqs_validate_and_prepare',
  ],
  [
    'SET_IRQS with a payload shorter than count',
    onDevice((d) => setIrqs(d, DATA_BOOL | ACTION_TRIGGER, 2, 0, 4, 21)),
    'EINVAL',
    'argsz 21 too short for 4 data elements',
    'vfio_set_irqs_validate_and_prepare',
  ],
  [
    'SET_IRQS MASK on MSI',
    onDevice((d) => setIrqs(d, DATA_NONE | ACTION_MASK, 1)),
    'ENOTTY',
    'no such action for this IRQ index',
    'vfio_pci_set_irqs_ioctl',
  ],
  [
    'SET_IRQS INTx MASK with INTx off',
    onDevice((d) => setIrqs(d, DATA_NONE | ACTION_MASK, 0)),
    'EINVAL',
    'INTx not enabled, or start/count not 0/1',
    'vfio_pci_set_intx_mask',
  ],
  [
    'SET_IRQS INTx UNMASK with INTx off',
    onDevice((d) => setIrqs(d, DATA_NONE | ACTION_UNMASK, 0)),
    'EINVAL',
    'INTx not enabled, or start/count not 0/1',
    'vfio_pci_set_intx_unmask',
  ],
  [
    'SET_IRQS MSI TRIGGER (DATA_NONE) with MSI off',
    onDevice((d) => setIrqs(d, DATA_NONE | ACTION_TRIGGER, 1)),
    'EINVAL',
    'msi not enabled',
    'vfio_pci_set_msi_trigger',
  ],
  [
    'RESET without a reset method',
    onDevice((d) => d.c.ioctl(d.dev, 'VFIO_DEVICE_RESET'), ...USB),
    'EINVAL',
    'the function has no reset method',
    'vfio_pci_ioctl_reset',
  ],
  [
    'GET_PCI_HOT_RESET_INFO with no slot or bus reset',
    onDevice(
      (d) => devCall(d, 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', VfioPciHotResetInfo, { argsz: 12 }),
      ...USB,
    ),
    'ENODEV',
    'no slot or bus reset on the root bus',
    'vfio_pci_ioctl_get_pci_hot_reset_info',
  ],
  [
    'DEVICE_FEATURE argsz < 8',
    onDevice((d) => feature(d, 0, 4)),
    'EINVAL',
    'argsz 4 below 8',
    'vfio_ioctl_device_feature',
  ],
  [
    'DEVICE_FEATURE unknown flags',
    onDevice((d) => feature(d, 1 << 20)),
    'EINVAL',
    'unknown feature flags',
    'vfio_ioctl_device_feature',
  ],
  [
    'DEVICE_FEATURE GET and SET without PROBE',
    onDevice((d) => feature(d, GET | SET | 5)),
    'EINVAL',
    'GET and SET together',
    'vfio_ioctl_device_feature',
  ],
  [
    'DEVICE_FEATURE migration',
    onDevice((d) => feature(d, GET | VFIO_DEVICE_FEATURE_ID.MIGRATION)),
    'ENOTTY',
    'no migration or DMA logging',
    'vfio_ioctl_device_feature',
  ],
  [
    'DEVICE_FEATURE the device does not provide',
    onDevice((d) => feature(d, GET | 3)),
    'ENOTTY',
    'feature not provided by vfio-pci here',
    'vfio_pci_core_ioctl_feature',
  ],
  [
    'pread past the config space',
    onDevice((d) => d.c.proc.pread(d.dev, scratch(d), 8, vfioPciRegionOffset(7) + 0x2000n)),
    'EFAULT',
    'config access past 4096 bytes',
    'vfio_pci_config_rw_single',
  ],
  [
    'pread of no region',
    onDevice((d) => d.c.proc.pread(d.dev, scratch(d), 4, vfioPciRegionOffset(12))),
    'EINVAL',
    'region index 12',
    'vfio_pci_rw',
  ],
  [
    'pwrite to the ROM',
    onDevice((d) => d.c.proc.pwrite(d.dev, scratch(d), 4, vfioPciRegionOffset(6))),
    'EINVAL',
    'ROM is read-only',
    'vfio_pci_rw',
  ],
  [
    'an unknown device ioctl',
    onDevice((d) => d.c.proc.ioctl(d.dev, 0x3b7f, 0n)),
    'ENOTTY',
    'not a vfio-pci device ioctl',
    'vfio_pci_core_ioctl',
  ],
  [
    'pread of a cdev before BIND_IOMMUFD',
    onCdev((c, dev) => c.proc.pread(dev, c.proc.scratch(new Uint8Array(4)), 4, 0n)),
    'EINVAL',
    UNBOUND,
    'vfio_device_fops_read',
  ],
  [
    'pwrite of a cdev before BIND_IOMMUFD',
    onCdev((c, dev) => c.proc.pwrite(dev, c.proc.scratch(new Uint8Array(4)), 4, 0n)),
    'EINVAL',
    UNBOUND,
    'vfio_device_fops_write',
  ],
  [
    'BIND_IOMMUFD with argsz < 16 (read alone first, 6.18)',
    onCdev((c, dev, iommufd) => c.bind(dev, iommufd, { argsz: 15 })),
    'EINVAL',
    'argsz 15 below 16',
    'vfio_df_ioctl_bind_iommufd',
  ],
  [
    'BIND_IOMMUFD with iommufd < 0',
    onCdev((c, dev) => c.bind(dev, -1)),
    'EINVAL',
    'unknown flags 0 or iommufd -1 < 0',
    'vfio_df_ioctl_bind_iommufd',
  ],
  [
    'BIND_IOMMUFD twice on one fd',
    onCdev((c, dev, iommufd) => {
      assert.equal(c.bind(dev, iommufd).ret, 0);
      c.bind(dev, iommufd);
    }),
    'EINVAL',
    'this cdev fd is bound already',
    'vfio_df_ioctl_bind_iommufd',
  ],
  [
    'BIND_IOMMUFD with an fd that is not open',
    onCdev((c, dev) => c.bind(dev, 77)),
    'EBADF',
    'iommufd 77 is not open',
    'vfio_df_ioctl_bind_iommufd',
  ],
  [
    'BIND_IOMMUFD with an fd that is no iommufd',
    onCdev((c, dev) => c.bind(dev, dev)),
    'EBADFD',
    'fd 3 is not an iommufd',
    'iommufd_ctx_from_fd',
  ],
  [
    'BIND_IOMMUFD while another cdev fd has the device',
    onCdev((c, dev, iommufd) => {
      const other = c.open(c.cdevPath(NVME)).ret;
      assert.equal(c.bind(other, iommufd).ret, 0);
      c.bind(dev, iommufd);
    }),
    'EINVAL',
    'the device is open already (through its group or another cdev fd)',
    'vfio_df_ioctl_bind_iommufd',
  ],
  [
    'BIND_IOMMUFD while the group file is open',
    onCdev((c, dev, iommufd) => {
      c.open('/dev/vfio/12');
      c.bind(dev, iommufd);
    }),
    'EBUSY',
    'the group file is open',
    'vfio_device_block_group',
  ],
  [
    'open of a group whose device is cdev-bound',
    onCdev((c, dev, iommufd) => {
      assert.equal(c.bind(dev, iommufd).ret, 0);
      c.open('/dev/vfio/12');
    }),
    'EBUSY',
    'the group is open already or a device of it is bound through its cdev',
    'vfio_group_fops_open',
  ],
  [
    'a second open of a group',
    withGroup((c) => c.open('/dev/vfio/12')),
    'EBUSY',
    'the group is open already or a device of it is bound through its cdev',
    'vfio_group_fops_open',
  ],
  [
    'GET_DEVICE_FD with a name not NUL-terminated within a page',
    withGroup((c, g) => {
      const page = c.mem(PAGE);
      c.proc.mm.write(page, new Uint8Array(Number(PAGE)).fill(0x41));
      c.ioctl(g, 'VFIO_GROUP_GET_DEVICE_FD', page);
    }),
    'EINVAL',
    'device name not NUL-terminated within a page',
    'strndup_user',
  ],
  [
    'pread at a negative offset',
    onDevice((d) => d.c.proc.pread(d.dev, scratch(d), 4, -8n)),
    'EINVAL',
    'negative offset',
    'ksys_pread64',
  ],
  [
    'SET_IRQS INTx MASK through an eventfd (INTx on)',
    withIntx((d) => setIrqFds(d, ACTION_MASK, 0, [eventfd(d)])),
    'ENOTTY',
    'INTx mask through an eventfd',
    'vfio_pci_set_intx_mask',
  ],
  [
    'SET_IRQS INTx UNMASK eventfd while one is set',
    withIntx((d) => {
      setIrqFds(d, ACTION_UNMASK, 0, [eventfd(d)]);
      setIrqFds(d, ACTION_UNMASK, 0, [eventfd(d)]);
    }),
    'EBUSY',
    'an unmask eventfd is already set',
    'vfio_virqfd_enable',
  ],
  [
    'SET_IRQS INTx TRIGGER (DATA_NONE) with INTx off',
    onDevice((d) => setIrqs(d, DATA_NONE | ACTION_TRIGGER, 0)),
    'EINVAL',
    'INTx not enabled',
    'vfio_pci_set_intx_trigger',
  ],
  [
    'SET_IRQS INTx TRIGGER eventfd while MSI-X is on',
    onDevice((d) => {
      setIrqFds(d, ACTION_TRIGGER, 2, [eventfd(d)]);
      setIrqFds(d, ACTION_TRIGGER, 0, [eventfd(d)]);
    }),
    'EINVAL',
    'msix enabled, or start/count not 0/1',
    'vfio_pci_set_intx_trigger',
  ],
  [
    'SET_IRQS MSI-X TRIGGER eventfd while INTx is on',
    withIntx((d) => setIrqFds(d, ACTION_TRIGGER, 2, [eventfd(d)])),
    'EINVAL',
    'intx enabled',
    'vfio_pci_set_msi_trigger',
  ],
  [
    'SET_IRQS MSI enable of no vector',
    onDevice((d) => setIrqFds(d, ACTION_TRIGGER, 1, [])),
    'ERANGE',
    'no vector to enable',
    'pci_alloc_irq_vectors',
  ],
  [
    'SET_IRQS MSI vector past those enabled',
    onDevice((d) => {
      setIrqFds(d, ACTION_TRIGGER, 1, [eventfd(d)]);
      setIrqFds(d, ACTION_TRIGGER, 1, [eventfd(d)], 1);
    }),
    'EINVAL',
    'vector 1 not allocated',
    'vfio_msi_alloc_irq',
  ],
  [
    'SET_IRQS eventfd that is not open',
    onDevice((d) => setIrqFds(d, ACTION_TRIGGER, 4, [77])),
    'EBADF',
    'fd 77 is not open',
    'eventfd_ctx_fdget',
  ],
  [
    'SET_IRQS eventfd that is no eventfd',
    onDevice((d) => setIrqFds(d, ACTION_TRIGGER, 4, [d.dev])),
    'EINVAL',
    'fd 5 is not an eventfd',
    'eventfd_ctx_fileget',
  ],
  [
    'SET_IRQS REQ signal with no trigger',
    onDevice((d) => setIrqs(d, DATA_NONE | ACTION_TRIGGER, 4)),
    'EINVAL',
    'no trigger eventfd to signal',
    'vfio_pci_set_ctx_trigger_single',
  ],
  [
    'SET_IRQS REQ BOOL of count 0',
    onDevice((d) => setIrqs(d, DATA_BOOL | ACTION_TRIGGER, 4, 0, 0)),
    'EINVAL',
    'count 0',
    'vfio_pci_set_ctx_trigger_single',
  ],
  [
    'SET_IRQS REQ eventfd -2',
    onDevice((d) => setIrqFds(d, ACTION_TRIGGER, 4, [-2])),
    'EINVAL',
    'fd -2 is neither an fd nor -1',
    'vfio_pci_set_ctx_trigger_single',
  ],
  [
    'mmap of a BAR with MAP_PRIVATE',
    mmapOnDevice(0n, PAGE, MAP_PRIVATE),
    'EINVAL',
    'a BAR mapping must be MAP_SHARED',
    'vfio_pci_core_mmap',
  ],
  [
    'mmap of the config region',
    mmapOnDevice(vfioPciRegionOffset(7), PAGE),
    'EINVAL',
    'region 7 cannot be mapped',
    'vfio_pci_core_mmap',
  ],
  [
    'mmap of a BAR without MMAP',
    mmapOnDevice(vfioPciRegionOffset(1), PAGE),
    'EINVAL',
    'BAR1 is not mappable',
    'vfio_pci_core_mmap',
  ],
  [
    'mmap past the end of a BAR',
    mmapOnDevice(0n, 1n << 30n),
    'EINVAL',
    'past the end of BAR0',
    'vfio_pci_core_mmap',
  ],
  [
    'mmap at an offset inside a page',
    mmapOnDevice(8n, PAGE),
    'EINVAL',
    'offset inside a page',
    'sys_mmap',
  ],
  ['mmap of length 0', mmapOnDevice(0n, 0n), 'EINVAL', 'length 0', 'do_mmap'],
  [
    'mmap of a cdev before BIND_IOMMUFD',
    () => {
      const c = new VfioClient();
      return mmapErrno(c.proc, c.open(c.cdevPath(NVME)).ret, 0n, PAGE);
    },
    'EINVAL',
    'the cdev is not bound',
    'vfio_device_fops_mmap',
  ],
  [
    'mmap of a legacy container',
    () => {
      const { c, fd } = container('type1', 3);
      return mmapErrno(c.proc, fd, 0n, PAGE);
    },
    'ENODEV',
    'the file has no mmap',
    'do_mmap',
  ],
  [
    'mmap of an fd that is not open',
    mmapOnDevice(0n, PAGE, MAP_SHARED, 99),
    'EBADF',
    'fd 99 is not open',
    'ksys_mmap_pgoff',
  ],
];

pin('iommufd-uapi.md §6', iommufdRows);
pin('vfio-container.md (legacy type1, groups, iommufd compat)', vfioRows);
pin('spapr-tce.md (SPAPR TCE v1 and v2 containers)', spaprRows);
pin('vfio-device.md (group device fds, cdevs, vfio-pci ioctls, read/write)', deviceRows);
