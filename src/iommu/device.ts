import type { IommuDriver } from './driver.ts';
import type { Group } from './group.ts';
import { NO_IOMMU } from './no-iommu.ts';
import type { PhysMemory } from './phys-memory.ts';
import type { DmaAccess } from './prot.ts';

/** Kinds of reserved region (enum iommu_resv_type). */
export type ReservedKind = 'direct' | 'direct-relaxable' | 'reserved' | 'msi' | 'sw-msi';

/** An IOVA range the device cannot use for DMA (MSI doorbells, RMRRs, ...). */
export interface ReservedRegion {
  readonly start: bigint;
  readonly last: bigint;
  readonly kind: ReservedKind;
}

/** A DMA that the IOMMU refused: unmapped IOVA or missing permission. */
export interface DmaFault {
  readonly device: string;
  readonly iova: bigint;
  readonly access: DmaAccess;
}

/** Thrown by DMA helpers after the fault has been recorded on the device. */
export class DmaFaultError extends Error {
  constructor(readonly fault: DmaFault) {
    super(`DMA ${fault.access} fault at iova 0x${fault.iova.toString(16)} by ${fault.device}`);
    this.name = 'DmaFaultError';
  }
}

/**
 * A device behind an IOMMU. Its DMA goes through its group's domain into
 * live physical memory; a refused access is recorded in `faults` and throws
 * DmaFaultError. A device whose driver is NO_IOMMU addresses physical
 * memory directly.
 */
export class Device {
  readonly faults: DmaFault[] = [];
  /** Told of every DMA (`fault` set when refused), after the IOMMU judged it; for diagnostics. */
  dmaObserver: ((dev: Device, iova: bigint, length: number, fault?: DmaFault) => void) | undefined;

  constructor(
    readonly name: string,
    readonly driver: IommuDriver,
    readonly group: Group,
    readonly memory: PhysMemory,
    readonly reservedRegions: readonly ReservedRegion[] = [],
  ) {
    group.devices.push(this);
  }

  /** Device reads `length` bytes at `iova` (the memory → device direction). */
  dmaRead(iova: bigint, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.walk(iova, length, 'read', (phys, off, n) => {
      out.set(this.memory.read(phys, n), off);
    });
    return out;
  }

  /** Device writes `data` at `iova`; sets dirty bits while tracking is on. */
  dmaWrite(iova: bigint, data: Uint8Array): void {
    this.walk(iova, data.length, 'write', (phys, off, n) => {
      this.memory.write(phys, data.subarray(off, off + n));
    });
  }

  /** Translate page by page first (so a fault leaves memory untouched), then copy. */
  private walk(
    iova: bigint,
    length: number,
    access: DmaAccess,
    copy: (phys: bigint, off: number, n: number) => void,
  ): void {
    this.memory.beforeDma?.();
    const domain = this.group.domain;
    const page = this.memory.pageSize;
    const pieces: [bigint, number, number][] = [];
    let off = 0;
    while (off < length) {
      const at = iova + BigInt(off);
      const n = Math.min(length - off, Number(page - (at & (page - 1n))));
      // a device no IOMMU translates (NO_IOMMU) puts physical addresses on the bus
      const phys = this.driver === NO_IOMMU ? at : domain?.translate(at, BigInt(n), access);
      if (phys === undefined) {
        const fault = { device: this.name, iova: at, access };
        this.faults.push(fault);
        this.dmaObserver?.(this, iova, length, fault);
        throw new DmaFaultError(fault);
      }
      pieces.push([phys, off, n]);
      off += n;
    }
    this.dmaObserver?.(this, iova, length);
    for (const [phys, o, n] of pieces) copy(phys, o, n);
  }
}
