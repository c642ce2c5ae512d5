import { Errno } from '../../src/abi/errno.ts';
import type { PhysMemory } from '../../src/iommu/phys-memory.ts';

const K4 = 4096n;

/** Sparse RAM of 4 KiB pages, created zeroed on first write; reads of absent pages are EFAULT. */
export class FakeMemory implements PhysMemory {
  readonly pageSize = K4;
  private readonly pages = new Map<bigint, Uint8Array>();

  private page(phys: bigint, create: boolean): Uint8Array {
    const key = phys / K4;
    let p = this.pages.get(key);
    if (!p && create) {
      p = new Uint8Array(Number(K4));
      this.pages.set(key, p);
    }
    if (!p) throw new Errno('EFAULT');
    return p;
  }

  read(phys: bigint, length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      const at = phys + BigInt(i);
      out[i] = this.page(at, false)[Number(at % K4)]!;
    }
    return out;
  }

  write(phys: bigint, data: Uint8Array): void {
    data.forEach((b, i) => {
      const at = phys + BigInt(i);
      this.page(at, true)[Number(at % K4)] = b;
    });
  }

  pin(): void {}
  unpin(): void {}
  pinCount(): number {
    return 0;
  }
  isCompound(): boolean {
    return false;
  }
}
