/**
 * How a command handler ends a command early: it throws `NvmeStatus` with
 * the completion status (SCT << 8 | SC, see NVME_SC); the controller posts
 * it with Do Not Retry. A DMA the IOMMU refuses throws `DmaFaultError`
 * instead, which the controller completes as Data Transfer Error.
 */
export class NvmeStatus extends Error {
  constructor(readonly status: number) {
    super(`NVMe status 0x${status.toString(16)}`);
    this.name = 'NvmeStatus';
  }
}

/** Throw `NvmeStatus(status)` (reads like the device's `return NVME_INVALID_FIELD;`). */
export function nvmeFail(status: number): never {
  throw new NvmeStatus(status);
}
