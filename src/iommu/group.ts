import type { Device } from './device.ts';
import type { Domain } from './domain.ts';

/**
 * An IOMMU group: the devices the IOMMU cannot isolate from one another.
 * They share one domain; attaching changes it for all of them or none.
 */
export class Group {
  readonly devices: Device[] = [];
  /** The domain every device of the group translates through; undefined = blocked. */
  domain: Domain | undefined;

  constructor(readonly id: number) {}

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
