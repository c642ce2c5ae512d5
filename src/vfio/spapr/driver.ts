import { fail } from '../../abi/errno.ts';
import { VFIO_EXTENSION } from '../../abi/vfio.ts';
import type { PhysMemory } from '../../iommu/phys-memory.ts';
import type { VfioIommuDriver } from '../container.ts';
import { VfioSpaprTce } from './tce-container.ts';

/**
 * vfio_iommu_spapr_tce as a legacy container's IOMMU driver, v2 only:
 * CHECK_EXTENSION(SPAPR_TCE_v2_IOMMU) is 1, and SET_IOMMU(7) opens one
 * {@link VfioSpaprTce} per container. The v1 type (2) and VFIO_EEH are not
 * modelled (CHECK_EXTENSION answers 0).
 */
export function spaprTceIommuDriver(host: { memory: PhysMemory }): VfioIommuDriver {
  const v2 = BigInt(VFIO_EXTENSION.SPAPR_TCE_v2_IOMMU);
  return {
    name: 'vfio-iommu-spapr-tce',
    checkExtension: (ext) => (ext === v2 ? 1 : 0),
    open(type) {
      if (type !== v2) fail('EINVAL');
      return new VfioSpaprTce(host.memory);
    },
  };
}
