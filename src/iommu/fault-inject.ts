/**
 * Fault injection as Linux offers it to a task (fail_nth, see the kernel's
 * Documentation/fault-injection): a task's counter is set by writing N to
 * /proc/<pid>/task/<tid>/fail-nth; every injection point the task then
 * passes counts it down, and the point that brings it to 0 fails with that
 * point's errno (ENOMEM for an allocation, as kmalloc, alloc_pages and
 * GUP's page allocations do). Reading the file gives the counter: "0\n"
 * once the fault fired. Points are named after what the kernel does there
 * (`iommufd_object_alloc`, `iopt_alloc_area`, `pin_user_pages`, ...).
 *
 * The engine says which task makes a call (`asTask`); outside one (an
 * in-process caller) nothing is injected. `visits` counts, per point, how
 * often a task with a live counter passed it (the fail-nth sweeps report it).
 *
 * @example
 * setFailNth(tid, 2);
 * asTask(tid, () => ioctl(...)); // the call's second injection point fails: ENOMEM
 * failNth(tid); // 0
 */
import { type ErrnoName, fail } from '../abi/errno.ts';

/** Tid → fail-nth counter (absent: 0, injection off). */
const counters = new Map<number, number>();
let current: number | undefined;

/** Points passed while a counter was set, by name. */
export const visits = new Map<string, number>();

/** Run `fn` as task `tid` (the engine, around each request). */
export function asTask<T>(tid: number, fn: () => T): T {
  const outer = enterTask(tid);
  try {
    return fn();
  } finally {
    leaveTask(outer);
  }
}

/**
 * `asTask` without a closure (the engine's per-request path): calls made
 * until `leaveTask(outer)` are task `tid`'s; `outer` is what this returns.
 */
export function enterTask(tid: number): number | undefined {
  const outer = current;
  current = tid;
  return outer;
}

/** End what `enterTask` began: `outer` is the task it returned. */
export function leaveTask(outer: number | undefined): void {
  current = outer;
}

/**
 * Run `fn` with no injection point: for model steps the kernel's path does
 * not have (a SPAPR unmap re-mapping the surviving pieces of a cut area,
 * where the kernel only clears TCEs).
 */
export function withoutInjection<T>(fn: () => T): T {
  const outer = current;
  current = undefined;
  try {
    return fn();
  } finally {
    current = outer;
  }
}

/** Write N to a task's fail-nth (0 turns injection off). */
export function setFailNth(tid: number, n: number): void {
  if (n === 0) counters.delete(tid);
  else counters.set(tid, n);
}

/** A task's fail-nth counter: 0 when off or once the fault fired. */
export function failNth(tid: number): number {
  return counters.get(tid) ?? 0;
}

/**
 * An injection point: when the current task's counter comes down to 0
 * here, fail with `code` (the kernel's errno at this point).
 */
export function faultPoint(name: string, code: ErrnoName = 'ENOMEM'): void {
  if (current === undefined) return;
  const n = counters.get(current);
  if (!n) return;
  visits.set(name, (visits.get(name) ?? 0) + 1);
  counters.set(current, n - 1);
  if (n === 1) fail(code, `fault injected (fail-nth) at ${name}`, name);
}

/** Whether any task's fail-nth is armed (the engine's unmap leases stay off then). */
export function anyFailNthArmed(): boolean {
  return counters.size > 0;
}
