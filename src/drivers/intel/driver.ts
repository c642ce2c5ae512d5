import { fail } from '../../abi/errno.ts';
import type { Device } from '../../iommu/device.ts';
import type { Domain } from '../../iommu/domain.ts';
import type { HwInfo, IommuDriver, PagingFlags } from '../../iommu/driver.ts';
import { IntelDomain } from './domain.ts';
import { type VtdFeatures, vtdHwInfo } from './hw-info.ts';

export { intelReservedRegions } from './reserved.ts';

const SZ_4K = 1n << 12n;
const SZ_2M = 1n << 21n;
const SZ_1G = 1n << 30n;

/** Construction options of {@link IntelIommu}; every field is optional. */
export interface IntelIommuOptions {
  /** Guest address width in bits: 39, 48 (default) or 57, i.e. 3, 4 or 5 levels. */
  readonly addressWidth?: 39 | 48 | 57;
  /** Second-stage dirty tracking (ECAP.SSADS); default true. */
  readonly dirtyTracking?: boolean;
  /** Leaf sizes domains use: 4 KiB plus any of 2 MiB and 1 GiB (the default has all three). */
  readonly pgsizeBitmap?: bigint;
  /** log2 of the PASID count per device, 0..20; default 20. */
  readonly maxPasidLog2?: number;
  /** Snoop control (ECAP.SC): domains enforce cache coherency; default true. */
  readonly snoopControl?: boolean;
  /** Driver name; default 'intel-iommu'. */
  readonly name?: string;
}

/**
 * A simulated x86 VT-d IOMMU unit. Its paging domains are {@link IntelDomain}s
 * with one aperture of the configured address width; GET_HW_INFO reports
 * IOMMU_HW_INFO_TYPE_INTEL_VTD with cap/ecap registers derived from the
 * options (see hw-info.ts).
 *
 * @example
 * const iommu = new IntelIommu({ addressWidth: 39, pgsizeBitmap: 0x1000n });
 * const domain = iommu.domainAllocPaging(dev, { nestParent: false, dirtyTracking: false, pasid: false });
 */
export class IntelIommu implements IommuDriver {
  readonly name: string;
  readonly features: VtdFeatures;

  /** EINVAL for an unsupported width, page-size set or PASID width. */
  constructor(opts: IntelIommuOptions = {}) {
    const addressWidth = opts.addressWidth ?? 48;
    const pgsizeBitmap = opts.pgsizeBitmap ?? SZ_4K | SZ_2M | SZ_1G;
    const maxPasidLog2 = opts.maxPasidLog2 ?? 20;
    if (![39, 48, 57].includes(addressWidth))
      fail('EINVAL', 'VT-d address width is 39, 48 or 57', 'uiommu_intel_config');
    if (!(pgsizeBitmap & SZ_4K) || pgsizeBitmap & ~(SZ_4K | SZ_2M | SZ_1G)) {
      fail(
        'EINVAL',
        'VT-d page sizes are 4 KiB plus any of 2 MiB and 1 GiB',
        'uiommu_intel_config',
      );
    }
    if (!Number.isInteger(maxPasidLog2) || maxPasidLog2 < 0 || maxPasidLog2 > 20) {
      fail('EINVAL', 'VT-d PASIDs are at most 20 bits', 'uiommu_intel_config');
    }
    this.name = opts.name ?? 'intel-iommu';
    this.features = Object.freeze({
      addressWidth,
      pgsizeBitmap,
      dirtyTracking: opts.dirtyTracking ?? true,
      maxPasidLog2,
      snoopControl: opts.snoopControl ?? true,
    });
  }

  /** EOPNOTSUPP for dirty tracking on a unit without it; nestParent and pasid are recorded. */
  domainAllocPaging(_dev: Device, flags: PagingFlags): IntelDomain {
    if (flags.dirtyTracking && !this.features.dirtyTracking) {
      fail(
        'EOPNOTSUPP',
        'this VT-d unit has no second-stage dirty tracking',
        'intel_iommu_domain_alloc_second_stage',
      );
    }
    const { addressWidth, pgsizeBitmap, snoopControl } = this.features;
    return new IntelDomain(this, addressWidth, pgsizeBitmap, { ...flags }, snoopControl);
  }

  /**
   * Any own domain is accepted. Another driver's domain is EINVAL (the
   * core's ops check). Another VT-d unit's domain is EINVAL where
   * paging_domain_compatible_second_stage() refuses it, in its order: it
   * tracks dirty pages and this unit cannot, its address width exceeds
   * this unit's, it uses a page size this unit lacks. Linux attaches a
   * compatible one; the model keeps a domain on its own unit and refuses
   * that too, as a uiommu rule.
   */
  attachDev(domain: Domain, _dev: Device): void {
    if (domain.driver === this) return;
    if (!(domain instanceof IntelDomain))
      fail('EINVAL', 'domain belongs to another IOMMU driver', '__iommu_attach_group');
    const f = this.features;
    const where = 'paging_domain_compatible_second_stage';
    if (domain.allocFlags.dirtyTracking && !f.dirtyTracking)
      fail('EINVAL', 'the domain tracks dirty pages, this unit has no SSADS', where);
    if (domain.addressWidth > f.addressWidth)
      fail(
        'EINVAL',
        `the domain's ${domain.addressWidth}-bit address width exceeds the unit's ${f.addressWidth} bits`,
        where,
      );
    if (domain.pgsizeBitmap & ~f.pgsizeBitmap)
      fail('EINVAL', 'the domain uses a page size this unit lacks', where);
    fail(
      'EINVAL',
      "a VT-d domain serves only the unit that allocated it (Linux's sharing across units is not modelled)",
      'uiommu_intel_domain_unit',
    );
  }

  hwInfo(_dev: Device): HwInfo {
    return vtdHwInfo(this.features);
  }

  dirtyTrackingCapable(_dev: Device): boolean {
    return this.features.dirtyTracking;
  }

  /** IOMMU_CAP_ENFORCE_CACHE_COHERENCY is ECAP.SC. */
  enforceCacheCoherencyCapable(_dev: Device): boolean {
    return this.features.snoopControl;
  }

  maxPasidLog2(_dev: Device): number {
    return this.features.maxPasidLog2;
  }
}
