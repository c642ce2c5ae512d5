/**
 * What the engine's unmap leases (unmap-leases.ts) ask of the model: which
 * requests cannot change a leased SPAPR container (the others revoke every
 * lease first), the windows a container may lease, and a posted record's
 * argument struct.
 */
import type { IoctlAbi } from '../abi/ioctl.ts';
import { vfioIoctl, vfioIoctlNumber, vfioNrOf } from '../abi/vfio.ts';
import type { Process, ProcessMm } from '../host/process.ts';
import { anyFailNthArmed } from '../iommu/fault-inject.ts';
import { legacyContainerOf } from '../vfio/container.ts';
import { VfioSpaprTce } from '../vfio/spapr/tce-container.ts';
import { argInt, OP, type Request } from './protocol.ts';
import type { LeaseWindow, UnmapRecord } from './unmap-leases.ts';

/** Container and group ioctls that never change a container's windows or groups. */
const KEEPING_IOCTLS = new Set(
  (
    [
      'VFIO_GET_API_VERSION',
      'VFIO_CHECK_EXTENSION',
      'VFIO_GROUP_GET_STATUS',
      'VFIO_GROUP_GET_DEVICE_FD',
      'VFIO_IOMMU_SPAPR_TCE_GET_INFO',
      'VFIO_IOMMU_MAP_DMA',
      'VFIO_IOMMU_UNMAP_DMA',
    ] as const
  ).map((name) => vfioIoctl(name).nr),
);

/** Ops that touch no container (ioctls and writes are judged by their file). */
const KEEPING_OPS = new Set<number>([
  OP.FORK_BEGIN,
  OP.FORK_END,
  OP.OPEN,
  OP.READ,
  OP.PREAD,
  OP.FSTAT,
  OP.STAT,
  OP.PROC_STATUS,
  OP.SYSFS_READ,
  OP.MMAP,
  OP.MUNMAP,
  OP.MREMAP,
  OP.MMIO,
  OP.MMIO_FAULT,
  OP.SYNC,
]);

/**
 * Whether `req` of `proc` leaves every lease valid: it cannot change a
 * container's windows, groups or state, nor arm fault injection. CLOSE,
 * DUP, HELLO, EXEC_BEGIN/ABORT, a write to fail-nth and every other
 * container or group ioctl revoke.
 */
export function leavesLeases(proc: Process<ProcessMm>, req: Request): boolean {
  if (KEEPING_OPS.has(req.op)) return true;
  if (req.op !== OP.IOCTL && req.op !== OP.WRITE && req.op !== OP.PWRITE) return false;
  const file = proc.fds.get(argInt(req.args[0] ?? 0n));
  if (!file) return true;
  if (req.op !== OP.IOCTL) return file.ops.kind !== 'fail-nth';
  if (!legacyContainerOf(file.ops) && file.ops.kind !== 'vfio-group') return true;
  const nr = vfioNrOf(proc.kernel.abi, Number(BigInt.asUintN(32, req.args[1] ?? 0n)));
  return nr !== undefined && KEEPING_IOCTLS.has(nr);
}

/** The SPAPR backend of `proc`'s fd `fd`, when it is a legacy container that chose one. */
function spaprOf(proc: Process<ProcessMm>, fd: number): VfioSpaprTce | undefined {
  const file = proc.fds.get(fd);
  const backend = file ? legacyContainerOf(file.ops)?.backend : undefined;
  return backend instanceof VfioSpaprTce ? backend : undefined;
}

/**
 * Perform records `from`… of `recs` straight on their container
 * (VfioSpaprTce.unmapLeased) while they are plain 24-byte, flag-free
 * unmaps of one fd that the kernel answers 0: how many were done (0: make
 * the ordinary call for `recs[from]`).
 */
export function unmapLeasedRun(
  proc: Process<ProcessMm>,
  recs: readonly UnmapRecord[],
  from: number,
): number {
  const fd = recs[from]!.fd;
  const backend = spaprOf(proc, fd);
  if (!backend) return 0;
  let to = from;
  while (to < recs.length && recs[to]!.fd === fd && recs[to]!.argsz === 24 && !recs[to]!.flags)
    to++;
  return backend.unmapLeased(proc.mm, recs.slice(from, to));
}

/** The windows `proc`'s fd `fd` may lease: a SPAPR v2 container that allows it, no fault injection armed. */
export function leaseWindowsOf(
  proc: Process<ProcessMm>,
  fd: number,
): readonly LeaseWindow[] | undefined {
  if (anyFailNthArmed()) return undefined;
  return spaprOf(proc, fd)?.unmapLeaseWindows(proc.mm);
}

/** The request number of VFIO_IOMMU_UNMAP_DMA a posted record stands for. */
export function unmapDmaRequest(abi: IoctlAbi): number {
  return vfioIoctlNumber(abi, 'VFIO_IOMMU_UNMAP_DMA');
}

/** A record's `struct vfio_iommu_type1_dma_unmap` (24 bytes) as the program passed it. */
export function unmapRecordArg(rec: UnmapRecord): Uint8Array {
  const out = Buffer.alloc(24);
  out.writeUInt32LE(rec.argsz, 0);
  out.writeUInt32LE(rec.flags, 4);
  out.writeBigUInt64LE(rec.iova, 8);
  out.writeBigUInt64LE(rec.size, 16);
  return out;
}
