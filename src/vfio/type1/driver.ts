import { fail } from '../../abi/errno.ts';
import type { IoctlAbi } from '../../abi/ioctl.ts';
import { VFIO_EXTENSION } from '../../abi/vfio.ts';
import type { PhysMemory } from '../../iommu/phys-memory.ts';
import type { VfioContainerPersonality, VfioIommuDriver } from '../container.ts';
import { type1CheckExtension, VfioIommuType1 } from './type1.ts';

/**
 * vfio_iommu_type1 as a legacy container's IOMMU driver: answers the
 * extensions it supports, and SET_IOMMU(TYPE1 or TYPE1v2; TYPE1_NESTING
 * opens a v2 one whose domains must enable nesting) opens one backend
 * instance per container.
 */
export function type1IommuDriver(host: {
  memory: PhysMemory;
  abi: IoctlAbi;
  personality: Pick<
    VfioContainerPersonality,
    'type1WrapErrno' | 'type1Nesting' | 'type1DmaEntryLimit'
  >;
}): VfioIommuDriver {
  return {
    name: 'vfio-iommu-type1',
    checkExtension: (ext) => type1CheckExtension(undefined, ext, host.personality.type1Nesting),
    open(type) {
      const nesting = type === BigInt(VFIO_EXTENSION.TYPE1_NESTING_IOMMU);
      const v2 = type === BigInt(VFIO_EXTENSION.TYPE1v2_IOMMU) || nesting;
      if (!v2 && type !== BigInt(VFIO_EXTENSION.TYPE1_IOMMU))
        fail('EINVAL', `type ${type} is not TYPE1 or TYPE1v2`, 'vfio_iommu_type1_open');
      return new VfioIommuType1({
        memory: host.memory,
        pageSize: host.memory.pageSize,
        v2,
        abi: host.abi,
        wrapErrno: host.personality.type1WrapErrno,
        nestingExtension: host.personality.type1Nesting,
        nesting,
        dmaEntryLimit: host.personality.type1DmaEntryLimit,
      });
    },
  };
}
