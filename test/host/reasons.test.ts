/**
 * The reason and kernel function of every errno rule the fact sheets list
 * (iommufd-uapi.md §6, vfio-container.md §2–§6 and its compat table): each
 * row triggers the rule and pins errno, reason and where as the trace
 * prints them; one row checks the whole trace line and the JSON fields.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  IOMMU_OPTION_ID,
  IOMMU_OPTION_OP,
  IOMMU_VFIO_IOAS_OP,
  iommufdCmdNumber,
} from '../../src/abi/iommufd.ts';
import { VfioIommuType1Info, vfioIoctlNumber } from '../../src/abi/vfio.ts';
import type { Process, TraceEvent } from '../../src/host/process.ts';
import { FIXED, map, memAt, PAGE, RW, U64_MAX, writeRanges } from '../iommufd/util.ts';
import { client, type Fixture, setup } from '../support.ts';
import { VfioClient } from '../vfio/client.ts';

const NVME = '0000:02:00.0'; // group 12 of the x86 preset
const MSI = { start: 0xfee0_0000n, last: 0xfeef_ffffn, kind: 'msi' as const };
const VA = 0x4000_0000n;

const lastEvent = new WeakMap<Process, TraceEvent>();

/** `x` with its process traced, so `why` sees what the trace shows. */
function traced<T extends { proc: Process }>(x: T): T {
  x.proc.trace = (_line, event) => lastEvent.set(x.proc, event);
  return x;
}

/** errno, reason and where of the process's last call, as its trace event has them. */
function why(p: Process): [string | undefined, string | undefined, string | undefined] {
  const e = lastEvent.get(p);
  return [e?.errno, e?.reason, e?.where];
}

/** A fixture whose IOAS has an intel domain (4 KiB alignment, the MSI window reserved). */
function withDomain(f: Fixture = traced(setup())): { f: Fixture; ioas: number } {
  const ioas = f.ioas();
  f.intelDevice({ reserved: [MSI] }).attach(ioas);
  return { f, ioas };
}

type Row = [rule: string, act: () => Process, errno: string, reason: string, where: string];

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
];

function ioasAllocNumber(f: Fixture): number {
  return iommufdCmdNumber(f.kernel.abi, 'IOMMU_IOAS_ALLOC');
}

const MIB = 1n << 20n;

/** A type1 (legacy) or iommufd-compat container with group 12 set (and SET_IOMMU `type` done when given). */
function container(backend: 'type1' | 'iommufd', type?: number) {
  const c = traced(new VfioClient({ personality: { vfioContainer: backend } }));
  const fd = c.open('/dev/vfio/vfio').ret;
  const group = c.open('/dev/vfio/12').ret;
  assert.equal(c.setContainer(group, fd).ret, 0);
  if (type !== undefined) assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', BigInt(type)).ret, 0);
  return { c, fd, group };
}

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

describe('errno reasons: iommufd-uapi.md §6', () => {
  for (const [rule, act, errno, reason, where] of iommufdRows) {
    it(rule, () => assert.deepEqual(why(act()), [errno, reason, where]));
  }
});

describe('errno reasons: vfio-container.md (legacy type1, groups, iommufd compat)', () => {
  for (const [rule, act, errno, reason, where] of vfioRows) {
    it(rule, () => assert.deepEqual(why(act()), [errno, reason, where]));
  }
});

describe('errno reasons in traces', () => {
  it('the line ends with <reason; where>, the JSON event carries both, a success neither', () => {
    const { f, ioas } = withDomain();
    const va = memAt(f, VA, PAGE);
    const lines: string[] = [];
    const events: TraceEvent[] = [];
    f.proc.trace = (l, e) => {
      lines.push(l);
      events.push(e);
    };
    f.call('IOMMU_IOAS_MAP', {
      ioas_id: ioas,
      user_va: va,
      length: PAGE,
      iova: 0x1001n,
      flags: RW | FIXED,
    });
    f.call('IOMMU_IOAS_MAP', { ioas_id: ioas, user_va: va, length: PAGE, flags: RW });
    assert.equal(
      lines[0],
      'ioctl(3, IOMMU_IOAS_MAP, {size=40, flags=FIXED_IOVA|WRITEABLE|READABLE, ioas_id=1, user_va=0x40000000, length=0x1000, iova=0x1001}) = -1 EINVAL (Invalid argument) <iova 0x1001 not aligned to the IOAS alignment 0x1000; iopt_check_iova>',
    );
    assert.equal(events[0]?.reason, 'iova 0x1001 not aligned to the IOAS alignment 0x1000');
    assert.equal(events[0]?.where, 'iopt_check_iova');
    assert.ok(!lines[1]?.includes('<'), lines[1]);
    assert.equal(events[1]?.reason, undefined);
    assert.equal(events[1]?.where, undefined);
  });

  it('a failure without a kernel function of its own names the ioctl handler', () => {
    const f = traced(setup());
    const lines: string[] = [];
    f.proc.trace = (l) => lines.push(l);
    f.call('IOMMU_IOAS_ALLOC', { flags: 1 });
    assert.match(lines[0] ?? '', /<unknown flags 0x1; iommufd_ioas_alloc_ioctl>$/);
  });
});
