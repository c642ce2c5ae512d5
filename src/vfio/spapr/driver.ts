import { fail } from '../../abi/errno.ts';
import { VFIO_EXTENSION } from '../../abi/vfio.ts';
import type { PhysMemory } from '../../iommu/phys-memory.ts';
import type { VfioIommuDriver } from '../container.ts';
import type { SpaprTcePersonality } from './personality.ts';
import { spaprCheckExtension, VfioSpaprTce } from './tce-container.ts';

/**
 * vfio_iommu_spapr_tce as a legacy container's IOMMU driver:
 * CHECK_EXTENSION answers 1 for SPAPR_TCE_IOMMU (v1, 2),
 * SPAPR_TCE_v2_IOMMU (7) and VFIO_EEH (5: EEH is always enabled on the
 * emulated POWER host), and SET_IOMMU with either opens one
 * {@link VfioSpaprTce} of that type per container (other types EINVAL).
 */
export function spaprTceIommuDriver(host: {
  readonly memory: PhysMemory;
  readonly personality: SpaprTcePersonality;
}): VfioIommuDriver {
  const v1 = BigInt(VFIO_EXTENSION.SPAPR_TCE_IOMMU);
  const v2 = BigInt(VFIO_EXTENSION.SPAPR_TCE_v2_IOMMU);
  return {
    name: 'vfio-iommu-spapr-tce',
    checkExtension: spaprCheckExtension,
    open(type) {
      if (type !== v1 && type !== v2) {
        fail('EINVAL', `type ${type} is not SPAPR TCE v1 or v2`, 'tce_iommu_open');
      }

      return new VfioSpaprTce(host.memory, type === v2, host.personality);
    },
  };
}
