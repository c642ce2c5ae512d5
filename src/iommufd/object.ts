import { fail } from '../abi/errno.ts';

/** Kinds of iommufd object; all share one ID space per context. */
export type ObjType =
  | 'ioas'
  | 'device'
  | 'hwpt_paging'
  | 'hwpt_nested'
  | 'access'
  | 'selftest'
  | 'viommu'
  | 'vdevice'
  | 'veventq'
  | 'hw_queue'
  | 'fault';

/**
 * An object of an iommufd context. `users` counts holders besides the ID
 * table: DESTROY is EBUSY while it is non-zero. `destroy` releases what the
 * object holds; it runs exactly once.
 */
export abstract class IommufdObject {
  abstract readonly type: ObjType;
  id = 0;
  users = 0;
  /** True once published in the ID table (a failed create never is). */
  live = false;

  /** Release everything the object holds; called once, when it leaves the table. */
  abstract destroy(): void;

  /** Take a reference (refcount_inc on behalf of a holder). */
  get(): void {
    this.users++;
  }

  /** Drop a reference taken with get(). */
  put(): void {
    if (this.users <= 0) throw new Error(`${this.type} ${this.id}: put without get`);
    this.users--;
  }
}

/** An object lookup that must yield a given type: ENOENT otherwise (the kernel's default). */
export function expectType<T extends IommufdObject>(
  obj: IommufdObject | undefined,
  type: ObjType,
): T {
  if (!obj || obj.type !== type) fail('ENOENT', `no ${type} object here`, 'iommufd_get_object');
  return obj as T;
}
