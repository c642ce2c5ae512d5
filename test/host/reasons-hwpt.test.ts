/**
 * Reasons of the HWPT rules (iommufd-uapi.md §3.10–§3.12, §4, §6): paging and
 * nested HWPT_ALLOC, HWPT_INVALIDATE, dirty tracking, GET_HW_INFO, and device
 * attach/replace at the RID and at PASIDs (driven through IOMMU_TEST_CMD's
 * mock devices, as the kernel selftest does). Each row triggers its rule
 * through the ioctl and pins errno, reason and where.
 */
import {
  IOMMU_HW_INFO_FLAGS,
  IOMMU_HWPT_ALLOC_FLAGS,
  type IommufdCmdName,
  iommufdCmd,
  iommufdCmdNumber,
} from '../../src/abi/iommufd.ts';
import { MOCK_FLAGS_DEVICE } from '../../src/abi/iommufd-test.ts';
import { encodeSpaprWindows, IOMMU_HWPT_DATA_UIOMMU_SPAPR_WINDOWS } from '../../src/abi/uiommu.ts';
import {
  VFIO_DEVICE_PT_FLAG,
  VfioDeviceAttachIommufdPt,
  vfioIoctlNumber,
} from '../../src/abi/vfio.ts';
import { SpaprIommu } from '../../src/drivers/spapr/driver.ts';
import { IommufdDevice } from '../../src/iommufd/device.ts';
import { hwptAlloc, mockDomain, nestedAlloc, tc } from '../iommufd/mock.ts';
import { PAGE } from '../iommufd/util.ts';
import { type Fixture, setup } from '../support.ts';
import { onSelftest as on, onCdev, pin, type Row, traced } from './reasons-support.ts';

const { NEST_PARENT, DIRTY_TRACKING, FAULT_ID_VALID, PASID } = IOMMU_HWPT_ALLOC_FLAGS;

/** A mock PASID-capable device on a fresh IOAS, and PASID HWPTs `p1`, `p2` on that IOAS. */
function pasidDev(f: Fixture) {
  const ioas = f.ioas();
  const dev = mockDomain(f, ioas, MOCK_FLAGS_DEVICE.PASID);
  const p1 = hwptAlloc(f, dev.idev, ioas, PASID).id;
  const p2 = hwptAlloc(f, dev.idev, ioas, PASID).id;
  return { ioas, ...dev, p1, p2 };
}
const attachAt = (f: Fixture, stdev: number, pasid: number, pt: number) =>
  tc(f, 'PASID_ATTACH', { id: stdev, pasid, pt_id: pt });
const replaceAt = (f: Fixture, stdev: number, pasid: number, pt: number) =>
  tc(f, 'PASID_REPLACE', { id: stdev, pasid, pt_id: pt });

const dirtyBitmap = (f: Fixture, v: Record<string, number | bigint>) =>
  f.call('IOMMU_HWPT_GET_DIRTY_BITMAP', { page_size: PAGE, data: f.mem(PAGE), ...v });

const rows: Row[] = [
  [
    'HWPT_ALLOC with __reserved set',
    on((f) => f.call('IOMMU_HWPT_ALLOC', { __reserved: 1 })),
    'EOPNOTSUPP',
    '__reserved is not zero',
    'iommufd_hwpt_alloc',
  ],
  [
    'HWPT_ALLOC on a DEVICE object',
    on((f) => {
      const { idev } = mockDomain(f, f.ioas());
      f.call('IOMMU_HWPT_ALLOC', { dev_id: idev, pt_id: idev });
    }),
    'EINVAL',
    'pt_id 3 is a device, not an IOAS, a paging HWPT or a vIOMMU',
    'iommufd_hwpt_alloc',
  ],
  [
    'HWPT_ALLOC with an unknown flag',
    on((f) => {
      const ioas = f.ioas();
      f.call('IOMMU_HWPT_ALLOC', { dev_id: mockDomain(f, ioas).idev, pt_id: ioas, flags: 0x80 });
    }),
    'EOPNOTSUPP',
    'unknown flags 0x80',
    'iommufd_hwpt_paging_alloc',
  ],
  [
    'DIRTY_TRACKING for a device whose IOMMU cannot track',
    on((f) => {
      const ioas = f.ioas();
      const { idev } = mockDomain(f, ioas, MOCK_FLAGS_DEVICE.NO_DIRTY);
      f.call('IOMMU_HWPT_ALLOC', { dev_id: idev, pt_id: ioas, flags: DIRTY_TRACKING });
    }),
    'EOPNOTSUPP',
    'the IOMMU of iommufd_mock1 cannot track dirty pages',
    'iommufd_hwpt_paging_alloc',
  ],
  [
    'FAULT_ID_VALID with NEST_PARENT',
    on((f) => {
      const ioas = f.ioas();
      const { idev } = mockDomain(f, ioas);
      f.call('IOMMU_HWPT_ALLOC', {
        dev_id: idev,
        pt_id: ioas,
        flags: FAULT_ID_VALID | NEST_PARENT,
      });
    }),
    'EOPNOTSUPP',
    'FAULT_ID_VALID with NEST_PARENT',
    'iommufd_hwpt_paging_alloc',
  ],
  [
    'paging HWPT_ALLOC with data for a driver that takes none',
    on((f) => {
      const ioas = f.ioas();
      const idev = f.intelDevice();
      f.call('IOMMU_HWPT_ALLOC', {
        dev_id: idev.id,
        pt_id: ioas,
        data_type: 1,
        data_len: 8,
        data_uptr: f.mem(PAGE),
      });
    }),
    'EOPNOTSUPP',
    'the driver takes no data_type for a paging domain',
    'iommufd_hwpt_paging_alloc',
  ],
  [
    'a SPAPR-windows HWPT whose TCE pages exceed PAGE_SIZE (powernv, 2 MiB TCEs, 64 KiB pages)',
    () => {
      const f = traced(setup({ host: 'powernv' }));
      const pe = [...f.kernel.host.devices.values()].find(
        (d) => d.device.driver instanceof SpaprIommu && d.device.group.devices.length === 1,
      );
      const idev = IommufdDevice.bind(f.ctx, pe!.device);
      const window = { slot: 1, start: 1n << 59n, size: 1n << 32n, page_shift: 21, levels: 1 };
      const data = encodeSpaprWindows({ num_windows: 1, windows: [window] });
      const buf = f.mem(PAGE);
      f.proc.mm.write(buf, data);
      f.call('IOMMU_HWPT_ALLOC', {
        dev_id: idev.id,
        pt_id: f.ioas(),
        data_type: IOMMU_HWPT_DATA_UIOMMU_SPAPR_WINDOWS,
        data_len: data.length,
        data_uptr: buf,
      });
      return f.proc;
    },
    'EINVAL',
    "the domain's smallest page 0x200000 exceeds PAGE_SIZE",
    'iopt_table_add_domain',
  ],
  [
    'nested HWPT_ALLOC with an unknown flag',
    on((f) => {
      const ioas = f.ioas();
      const { idev } = mockDomain(f, ioas);
      const parent = hwptAlloc(f, idev, ioas, NEST_PARENT).id;
      nestedAlloc(f, idev, parent, DIRTY_TRACKING);
    }),
    'EOPNOTSUPP',
    'flags 0x2',
    'iommufd_hwpt_nested_alloc',
  ],
  [
    'nested HWPT_ALLOC without driver data',
    on((f) => {
      const ioas = f.ioas();
      const { idev } = mockDomain(f, ioas);
      const parent = hwptAlloc(f, idev, ioas, NEST_PARENT).id;
      f.call('IOMMU_HWPT_ALLOC', { dev_id: idev, pt_id: parent });
    }),
    'EOPNOTSUPP',
    'no driver data for a nested HWPT',
    'iommufd_hwpt_nested_alloc',
  ],
  [
    'nested HWPT_ALLOC on a parent without NEST_PARENT',
    on((f) => {
      const ioas = f.ioas();
      const { idev } = mockDomain(f, ioas);
      nestedAlloc(f, idev, hwptAlloc(f, idev, ioas, 0).id);
    }),
    'EINVAL',
    'parent is automatic, not a nesting parent, or of another IOMMU',
    'iommufd_hwpt_nested_alloc',
  ],
  [
    'nested HWPT_ALLOC for a driver that cannot nest',
    on((f) => {
      const ioas = f.ioas();
      const idev = f.intelDevice();
      const parent = hwptAlloc(f, idev.id, ioas, NEST_PARENT).id;
      nestedAlloc(f, idev.id, parent);
    }),
    'EOPNOTSUPP',
    'the IOMMU driver cannot nest',
    'iommufd_hwpt_nested_alloc',
  ],
  [
    'HWPT_INVALIDATE with __reserved set',
    on((f) => f.call('IOMMU_HWPT_INVALIDATE', { __reserved: 1 })),
    'EOPNOTSUPP',
    '__reserved is not 0',
    'iommufd_hwpt_invalidate',
  ],
  [
    'HWPT_INVALIDATE with entries but no data_uptr',
    on((f) => f.call('IOMMU_HWPT_INVALIDATE', { entry_num: 1, entry_len: 8 })),
    'EINVAL',
    'entries without data_uptr or entry_len',
    'iommufd_hwpt_invalidate',
  ],
  [
    'HWPT_INVALIDATE with entry_len above PAGE_SIZE',
    () => {
      const f = traced(setup({ personality: { requestBounds: true } }));
      f.call('IOMMU_HWPT_INVALIDATE', { entry_num: 1, entry_len: 0x2000, data_uptr: f.mem(PAGE) });
      return f.proc;
    },
    'EINVAL',
    'entry_len above PAGE_SIZE or entry_num above 2^19',
    'iommufd_hwpt_invalidate',
  ],
  [
    'HWPT_INVALIDATE of an id that is free',
    on((f) => f.call('IOMMU_HWPT_INVALIDATE', { hwpt_id: 9 })),
    'ENOENT',
    'no object 9',
    'iommufd_get_object',
  ],
  [
    'HWPT_INVALIDATE of an IOAS',
    on((f) => f.call('IOMMU_HWPT_INVALIDATE', { hwpt_id: f.ioas() })),
    'EINVAL',
    'object 1 is neither a nested HWPT nor a vIOMMU',
    'iommufd_hwpt_invalidate',
  ],
  [
    'SET_DIRTY_TRACKING with an unknown flag',
    on((f) => f.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { flags: 2 })),
    'EOPNOTSUPP',
    'unknown flags 0x2',
    'iommufd_hwpt_set_dirty_tracking',
  ],
  [
    'SET_DIRTY_TRACKING on a HWPT allocated without DIRTY_TRACKING',
    on((f) => f.call('IOMMU_HWPT_SET_DIRTY_TRACKING', { hwpt_id: mockDomain(f, f.ioas()).hwpt })),
    'EOPNOTSUPP',
    'the domain has no dirty tracking',
    'iopt_set_dirty_tracking',
  ],
  [
    'GET_DIRTY_BITMAP with an unknown flag',
    on((f) => dirtyBitmap(f, { flags: 2 })),
    'EOPNOTSUPP',
    'unknown flags or __reserved not zero',
    'iommufd_hwpt_get_dirty_bitmap',
  ],
  [
    'GET_DIRTY_BITMAP whose range wraps',
    on((f) =>
      dirtyBitmap(f, { hwpt_id: mockDomain(f, f.ioas()).hwpt, iova: PAGE, length: 1n << 64n }),
    ),
    'EOVERFLOW',
    'iova + length - 1 wraps',
    'iommufd_check_iova_range',
  ],
  [
    'GET_DIRTY_BITMAP off the IOAS alignment',
    on((f) =>
      dirtyBitmap(f, { hwpt_id: mockDomain(f, f.ioas()).hwpt, iova: 0x100n, length: PAGE }),
    ),
    'EINVAL',
    'iova or iova + length not aligned to the IOAS alignment 0x800',
    'iommufd_check_iova_range',
  ],
  [
    'GET_DIRTY_BITMAP with page_size 0',
    on((f) =>
      dirtyBitmap(f, { hwpt_id: mockDomain(f, f.ioas()).hwpt, length: PAGE, page_size: 0n }),
    ),
    'EINVAL',
    'page_size is zero',
    'iommufd_check_iova_range',
  ],
  [
    'GET_DIRTY_BITMAP off page_size',
    on((f) =>
      dirtyBitmap(f, { hwpt_id: mockDomain(f, f.ioas()).hwpt, length: PAGE, page_size: 0x2000n }),
    ),
    'EINVAL',
    'iova or iova + length has a bit of page_size - 1 (0x1fff) set',
    'iommufd_check_iova_range',
  ],
  [
    'GET_DIRTY_BITMAP of a HWPT without dirty tracking',
    on((f) => dirtyBitmap(f, { hwpt_id: mockDomain(f, f.ioas()).hwpt, length: PAGE })),
    'EOPNOTSUPP',
    'the domain has no dirty tracking',
    'iommu_read_and_clear_dirty',
  ],
  [
    'GET_HW_INFO with an unknown flag',
    on((f) => f.call('IOMMU_GET_HW_INFO', { flags: 2 })),
    'EOPNOTSUPP',
    'unknown flags 0x2',
    'iommufd_get_hw_info',
  ],
  [
    'GET_HW_INFO with __reserved set',
    on((f) => f.call('IOMMU_GET_HW_INFO', { __reserved_1: 1 })),
    'EOPNOTSUPP',
    '__reserved is not 0',
    'iommufd_get_hw_info',
  ],
  [
    'GET_HW_INFO asking a type the driver lacks',
    on((f) =>
      f.call('IOMMU_GET_HW_INFO', {
        dev_id: f.intelDevice().id,
        flags: IOMMU_HW_INFO_FLAGS.INPUT_TYPE,
        out_data_type: 2,
      }),
    ),
    'EOPNOTSUPP',
    'the IOMMU driver has no info of type 2',
    'iommufd_get_hw_info',
  ],
  [
    'replace onto a DEVICE object',
    on((f) => {
      const { stdev, idev } = mockDomain(f, f.ioas());
      tc(f, 'MOCK_DOMAIN_REPLACE', { id: stdev, pt_id: idev });
    }),
    'EINVAL',
    'object 3 is not an IOAS or HWPT',
    'iommufd_device_change_pt',
  ],
  [
    'replace onto an id that is free',
    on((f) => tc(f, 'MOCK_DOMAIN_REPLACE', { id: mockDomain(f, f.ioas()).stdev, pt_id: 50 })),
    'ENOENT',
    'no object 50',
    'iommufd_get_object',
  ],
  [
    'replace of the RID onto a HWPT that is not PASID-capable while PASIDs are attached',
    on((f) => {
      const d = pasidDev(f);
      tc(f, 'MOCK_DOMAIN_REPLACE', { id: d.stdev, pt_id: d.p1 });
      attachAt(f, d.stdev, 100, d.p2);
      tc(f, 'MOCK_DOMAIN_REPLACE', { id: d.stdev, pt_id: hwptAlloc(f, d.idev, d.ioas, 0).id });
    }),
    'EINVAL',
    'PASIDs attached, HWPT not PASID-capable',
    'iommufd_hwpt_pasid_compat',
  ],
  [
    'PASID attach of a device without PASIDs',
    on((f) => {
      const ioas = f.ioas();
      const { stdev, idev } = mockDomain(f, ioas);
      const hwpt = hwptAlloc(f, idev, ioas, PASID).id;
      tc(f, 'MOCK_DOMAIN_REPLACE', { id: stdev, pt_id: hwpt });
      attachAt(f, stdev, 100, hwpt);
    }),
    'EINVAL',
    'PASID 100 beyond max_pasids',
    'iommu_attach_device_pasid',
  ],
  [
    'PASID attach to a HWPT allocated without PASID',
    on((f) => {
      const d = pasidDev(f);
      attachAt(f, d.stdev, 100, hwptAlloc(f, d.idev, d.ioas, 0).id);
    }),
    'EINVAL',
    'HWPT not allocated for PASID use',
    'iommufd_hwpt_pasid_compat',
  ],
  [
    'PASID attach while the RID HWPT is not PASID-capable',
    on((f) => {
      const d = pasidDev(f);
      attachAt(f, d.stdev, 100, d.p1);
    }),
    'EINVAL',
    'the RID HWPT is not PASID-capable',
    'iommufd_hwpt_pasid_compat',
  ],
  [
    'PASID attach to an IOAS',
    on((f) => {
      const d = pasidDev(f);
      attachAt(f, d.stdev, 100, d.ioas);
    }),
    'EINVAL',
    'automatic domains are not PASID-capable',
    'iommufd_hwpt_pasid_compat',
  ],
  [
    'PASID attach to an id that is free',
    on((f) => attachAt(f, pasidDev(f).stdev, 100, 60)),
    'ENOENT',
    'no object 60',
    'iommufd_get_object',
  ],
  [
    'PASID attach to a DEVICE object',
    on((f) => {
      const d = pasidDev(f);
      attachAt(f, d.stdev, 100, d.idev);
    }),
    'EINVAL',
    'object 3 is not an IOAS or HWPT',
    'iommufd_device_change_pt',
  ],
  [
    'PASID attach of a device whose IOMMU driver has no PASID support (VFIO cdev)',
    onCdev((c, dev, iommufd) => {
      const devid = c.bind(dev, iommufd).devid;
      const call = (name: IommufdCmdName, v: Record<string, number | bigint>) =>
        c.proc.call(iommufd, iommufdCmdNumber(c.kernel.abi, name), iommufdCmd(name).layout, v).out;
      const ioas = call('IOMMU_IOAS_ALLOC', {}).out_ioas_id as number;
      const hwpt = call('IOMMU_HWPT_ALLOC', {
        dev_id: devid,
        pt_id: ioas,
        flags: PASID,
      }).out_hwpt_id;
      c.proc.call(
        dev,
        vfioIoctlNumber(c.kernel.abi, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT'),
        VfioDeviceAttachIommufdPt,
        { argsz: 16, flags: VFIO_DEVICE_PT_FLAG.PASID, pt_id: hwpt as number, pasid: 1 },
      );
    }),
    'EOPNOTSUPP',
    'the IOMMU driver has no PASID support',
    'iommu_attach_device_pasid',
  ],
  [
    'PASID 0 attach while the RID is attached',
    on((f) => {
      const d = pasidDev(f);
      attachAt(f, d.stdev, 0, d.p1);
    }),
    'EBUSY',
    'the RID is attached already',
    'iommufd_hw_pagetable_attach',
  ],
  [
    'PASID attach where the device is attached already',
    on((f) => {
      const d = pasidDev(f);
      tc(f, 'MOCK_DOMAIN_REPLACE', { id: d.stdev, pt_id: d.p1 });
      attachAt(f, d.stdev, 100, d.p2);
      attachAt(f, d.stdev, 100, d.p2);
    }),
    'EBUSY',
    'attached at PASID 100 already',
    'iommufd_hw_pagetable_attach',
  ],
  [
    'PASID replace where the device is not attached',
    on((f) => {
      const d = pasidDev(f);
      replaceAt(f, d.stdev, 100, d.p1);
    }),
    'EINVAL',
    'not attached at this PASID',
    'iommufd_device_do_replace',
  ],
];

pin('iommufd-uapi.md §3.10–§4 (HWPT, dirty tracking, HW info, attach and PASIDs)', rows);
