/**
 * Pinned-page accounting (RLIMIT_MEMLOCK): the contract between the users
 * that pin pages (iommufd's page sets, VFIO type1, SPAPR pre-registration)
 * and the host that keeps the counters.
 */

/** How pinned pages are charged (IOMMU_OPTION_RLIMIT_MODE). */
export type AccountMode = 'user' | 'mm';

/** Charges pinned pages to a locked-memory budget (RLIMIT_MEMLOCK); ENOMEM when over. */
export interface PinAccount {
  charge(npages: bigint): void;
  uncharge(npages: bigint): void;
  /** Who is charged; absent when nobody is (CAP_IPC_LOCK). */
  readonly owner?: PinOwner;
}

/** The task a page set charges: its mode, its process's counters and its user's. */
export interface PinOwner {
  readonly mode: AccountMode;
  /** The process (mm) whose pinned_vm, and in 'mm' mode locked_vm, are charged. */
  readonly mm: object;
  /** The user whose locked_vm is charged in 'user' mode. */
  readonly user: object;
}

/** Pages charged to nobody: the mapping task had CAP_IPC_LOCK, or the pages are a dma-buf's. */
export const NO_ACCOUNT: PinAccount = { charge() {}, uncharge() {} };
