import { fail } from '../abi/errno.ts';
import type { Device } from './device.ts';
import type { Domain } from './domain.ts';

/**
 * An IOMMU group: the devices the IOMMU cannot isolate from one another.
 * They share one domain; attaching changes it for all of them or none.
 *
 * DMA ownership (iommu.c's owner cookie): a user-space DMA owner claims the
 * group before its devices leave the kernel's control. A VFIO group with a
 * legacy container claims the whole group; iommufd claims it per device,
 * with its context as the cookie, so devices of one group can be bound to
 * one context only. Every refusal is EPERM.
 */
export class Group {
  readonly devices: Device[] = [];
  /** The domain every device of the group translates through; undefined = blocked. */
  domain: Domain | undefined;

  /** The cookie of the current DMA owner (group->owner). */
  private owner: object | undefined;
  /** Claims held by that owner (group->owner_cnt). */
  private ownerCnt = 0;

  constructor(readonly id: number) {}

  /** iommu_group_dma_owner_claimed(). */
  get dmaOwnerClaimed(): boolean {
    return this.ownerCnt > 0;
  }

  /** iommu_group_claim_dma_owner(): the whole group for `owner`; EPERM when anyone holds it. */
  claimDmaOwner(owner: object): void {
    if (this.ownerCnt > 0)
      fail('EPERM', `group ${this.id} already has a DMA owner`, 'iommu_group_claim_dma_owner');
    this.owner = owner;
    this.ownerCnt = 1;
  }

  /** iommu_group_release_dma_owner(): drops the group claim. */
  releaseDmaOwner(): void {
    this.owner = undefined;
    this.ownerCnt = 0;
  }

  /** iommu_device_claim_dma_owner(): one more claim by `owner`; EPERM when another owner holds the group. */
  claimDeviceDmaOwner(owner: object): void {
    if (this.ownerCnt > 0 && this.owner !== owner) {
      fail(
        'EPERM',
        `group ${this.id} is owned by another DMA owner`,
        'iommu_device_claim_dma_owner',
      );
    }
    this.owner = owner;
    this.ownerCnt++;
  }

  /** iommu_device_release_dma_owner(): the last claim frees the group. */
  releaseDeviceDmaOwner(): void {
    if (--this.ownerCnt === 0) this.owner = undefined;
  }

  /**
   * Attach every device to `domain` (iommu_attach_group / replace): each
   * driver must accept it; on any refusal nothing changes and the error is
   * thrown.
   */
  attach(domain: Domain): void {
    for (const dev of this.devices) dev.driver.attachDev(domain, dev);
    this.domain = domain;
  }

  /** Return to blocking DMA. */
  detach(): void {
    this.domain = undefined;
  }
}
