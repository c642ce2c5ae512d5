import { fail } from '../../abi/errno.ts';
import {
  IOMMU_HW_INFO_SELFTEST_REGVAL,
  IOMMU_HW_INFO_TYPE_SELFTEST,
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_TEST_PASID_RESERVED,
  IOMMU_VIOMMU_TYPE_SELFTEST,
  IommuTestHwInfo,
  IommuViommuSelftest,
  MOCK_FLAGS_DEVICE_VALID,
  MOCK_PASID_WIDTH,
  type SelftestAbi,
} from '../../abi/iommufd-test.ts';
import type { Device } from '../../iommu/device.ts';
import type { Domain } from '../../iommu/domain.ts';
import {
  copyStructFromUser,
  type HwInfo,
  type IommuDriver,
  type IommuUserData,
  type PagingFlags,
} from '../../iommu/driver.ts';
import { Group } from '../../iommu/group.ts';
import type { PhysMemory } from '../../iommu/phys-memory.ts';
import type { ViommuCore, ViommuDriver } from '../../iommu/viommu.ts';
import { MockDevice } from './device.ts';
import { decodeHwptSelftest, iommuptKind, MockDomain, type MockDomainKind } from './domain.ts';
import { MockNestedDomain } from './nested.ts';
import { MockViommu } from './viommu.ts';

/** offsetofend(struct iommu_viommu_selftest, out_data): the shortest data accepted. */
const VIOMMU_SELFTEST_MIN = 8;

/** The mock driver only ever sees its own devices; anything else is a model bug. */
function mockDev(dev: Device): MockDevice {
  if (!(dev instanceof MockDevice)) throw new Error(`${dev.name} is not a mock device`);
  return dev;
}

/**
 * The iommufd selftest's mock IOMMU (drivers/iommu/iommufd/selftest.c): one
 * instance serves every mock device of a host. Domains are
 * {@link MockDomain}s; a device with NO_DIRTY refuses dirty tracking;
 * GET_HW_INFO reports type 0xFEEDBEEF with {flags 0, test_reg 0xDEADBEEF}.
 * `abi` is the selftest generation it speaks (device flags, domain data).
 *
 * @example
 * const mock = new MockIommu('6.18');
 * const dev = mock.createDevice(memory, MOCK_FLAGS_DEVICE.HUGE_IOVA);
 * const domain = mock.domainAllocPaging(dev, { nestParent: false, dirtyTracking: false, pasid: false });
 */
export class MockIommu implements IommuDriver {
  readonly name = 'mock';
  /** Mock devices created so far; names and group numbers come from it. */
  private created = 0;

  constructor(readonly abi: SelftestAbi = '6.18') {}

  /** mock_dev_create(): a device in a new group of its own; EINVAL for flags the generation lacks. */
  createDevice(memory: PhysMemory, flags: number): MockDevice {
    if ((flags & ~MOCK_FLAGS_DEVICE_VALID[this.abi]) !== 0)
      fail('EINVAL', 'unknown mock device flags', 'mock_dev_create');
    const n = ++this.created;
    return new MockDevice(`iommufd_mock${n}`, this, new Group(n), memory, flags);
  }

  /**
   * mock_domain_alloc_paging_flags(): 2 KiB IOPTEs (plus 1 MiB for a
   * HUGE_IOVA device), dirty-capable iff asked; EOPNOTSUPP for dirty
   * tracking on a NO_DIRTY device.
   */
  domainAllocPaging(dev: Device, flags: PagingFlags): MockDomain {
    const mdev = mockDev(dev);
    const plain = this.abi === '7.2' ? 'iommupt' : 'default';
    return this.allocPaging(mdev, flags, mdev.hugeIova ? 'huge-iova' : plain);
  }

  /**
   * 7.2's mock_domain_alloc_paging_flags() with user data: struct
   * iommu_hwpt_selftest (IOMMU_HWPT_DATA_SELFTEST, else EOPNOTSUPP) chooses
   * the table by `pagetable_type` (MOCK_IOMMUPT_*, else EOPNOTSUPP). Earlier
   * generations take no data (EOPNOTSUPP).
   */
  domainAllocUser(dev: Device, flags: PagingFlags, userData: IommuUserData): MockDomain {
    const mdev = mockDev(dev);
    if (this.abi !== '7.2' || userData.type !== IOMMU_HWPT_DATA_SELFTEST) {
      fail(
        'EOPNOTSUPP',
        `data type ${userData.type} is not the selftest's`,
        'mock_domain_alloc_paging_flags',
      );
    }

    if (flags.dirtyTracking && mdev.noDirty)
      fail('EOPNOTSUPP', 'NO_DIRTY device', 'mock_domain_alloc_paging_flags');
    const cfg = decodeHwptSelftest(this.abi, userData);
    return this.allocPaging(mdev, flags, iommuptKind(cfg.pagetable_type));
  }

  private allocPaging(mdev: MockDevice, flags: PagingFlags, kind: MockDomainKind): MockDomain {
    if (flags.dirtyTracking && mdev.noDirty)
      fail('EOPNOTSUPP', 'NO_DIRTY device', 'mock_domain_alloc_paging_flags');
    return new MockDomain(this, mdev.memory.pageSize, { kind, dirtyCapable: flags.dirtyTracking });
  }

  /**
   * mock_domain_alloc_nested(): EINVAL unless `parent` is a mock paging
   * domain; the data rules are {@link MockNestedDomain.create}'s.
   */
  domainAllocNested(
    _dev: Device,
    parent: Domain,
    _pasid: boolean,
    userData: IommuUserData,
  ): MockNestedDomain {
    if (!(parent instanceof MockDomain))
      fail('EINVAL', 'parent is not a mock paging domain', 'mock_domain_alloc_nested');
    return MockNestedDomain.create(this, parent, undefined, userData);
  }

  /**
   * mock_get_viommu_size() / mock_viommu_init(): type
   * IOMMU_VIOMMU_TYPE_SELFTEST. Optional data: struct iommu_viommu_selftest,
   * 8 to 24 bytes (EINVAL otherwise); the vIOMMU then has two zeroed pages
   * whose first u32 is `in_data`, mappable through /dev/iommu, and the
   * user's copy gets `out_data` = `in_data` and the region's mmap offset
   * and length (as many bytes as were given).
   */
  readonly viommu: ViommuDriver = {
    viommuSupported: (_dev, type) => type === IOMMU_VIOMMU_TYPE_SELFTEST,
    viommuInit: (core: ViommuCore, parent, type, userData) => {
      if (!(parent instanceof MockDomain))
        fail('EINVAL', 'parent is not a mock paging domain', 'mock_viommu_init');
      let mmapOffset: bigint | undefined;
      if (userData) {
        const raw = copyStructFromUser(
          userData,
          type,
          IommuViommuSelftest.size,
          VIOMMU_SELFTEST_MIN,
        );
        const data = IommuViommuSelftest.decode(raw);
        const page = new Uint8Array(Number(core.pageSize * 2n));
        new DataView(page.buffer).setUint32(0, data.in_data, true);
        mmapOffset = core.allocMmap(page);
        const out = IommuViommuSelftest.encode({
          ...data,
          out_data: data.in_data,
          out_mmap_offset: mmapOffset,
          out_mmap_length: BigInt(page.length),
        });
        try {
          userData.write?.(out.subarray(0, userData.len));
        } catch (e) {
          core.destroyMmap(mmapOffset);
          throw e;
        }
      }
      return new MockViommu(this, core, parent, mmapOffset);
    },
  };

  /**
   * mock_domain_nop_attach(): EINVAL for another driver's domain, or a
   * dirty-capable domain on a NO_DIRTY device. A nested domain of a vIOMMU
   * needs the device's vDEVICE there (ENOENT); the device remembers that
   * vIOMMU and virt_id, updated only when the vIOMMU changes.
   */
  attachDev(domain: Domain, dev: Device): void {
    if (domain.driver !== this) fail('EINVAL', 'not a mock domain', 'mock_domain_nop_attach');
    const mdev = mockDev(dev);
    if (domain.dirtyCapable && mdev.noDirty)
      fail('EINVAL', 'NO_DIRTY device', 'mock_domain_nop_attach');
    const viommu = domain instanceof MockNestedDomain ? domain.viommu : undefined;
    const vdevId = viommu ? viommu.core.vdevIdOf(dev) : 0n;
    if (viommu !== mdev.viommu) {
      mdev.viommu = viommu;
      mdev.vdevId = vdevId;
    }
  }

  hwInfo(_dev: Device): HwInfo {
    return {
      type: IOMMU_HW_INFO_TYPE_SELFTEST,
      data: IommuTestHwInfo.encode({ flags: 0, test_reg: IOMMU_HW_INFO_SELFTEST_REGVAL }),
    };
  }

  dirtyTrackingCapable(dev: Device): boolean {
    return !mockDev(dev).noDirty;
  }

  maxPasidLog2(dev: Device): number {
    return mockDev(dev).pasid ? MOCK_PASID_WIDTH : 0;
  }

  /**
   * mock_domain_set_dev_pasid_nop(): accepts everything except the fake
   * error at PASID 1024, which alternates: a success sets the device's
   * flag, the next non-blocking call clears it and fails with ENOMEM; the
   * blocking domain (a detach) clears it.
   */
  setDevPasid(domain: Domain | undefined, dev: Device, pasid: number): void {
    const mdev = mockDev(dev);
    if (domain && domain.driver !== this)
      fail('EINVAL', 'not a mock domain', 'mock_domain_set_dev_pasid_nop');
    if (pasid !== IOMMU_TEST_PASID_RESERVED) return;
    if (!domain) {
      mdev.pasid1024 = false;
      return;
    }
    if (mdev.pasid1024) {
      mdev.pasid1024 = false;
      fail(
        'ENOMEM',
        'the mock fails every other set_dev_pasid at PASID 1024',
        'mock_domain_set_dev_pasid_nop',
      );
    }
    mdev.pasid1024 = true;
  }
}
