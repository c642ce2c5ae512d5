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
