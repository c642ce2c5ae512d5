/**
 * The file operations of a vfio-pci device fd: the device ioctls with
 * Linux's argsz rules, and pread/pwrite at region offsets (`index << 40`).
 * How the fd came to be (group GET_DEVICE_FD or a bound cdev) is the
 * caller's business; the caller also decides what release means (the last
 * close of the device disables it).
 *
 * @example
 * const ops = vfioPciDeviceFileOps(new VfioPciDevice(spec), { release: () => {} });
 * ops.ioctl!(proc, vfioIoctlNumber(proc.abi, 'VFIO_DEVICE_GET_INFO'), addr);
 */
import { fail } from '../../abi/errno.ts';
import { VfioInfoCapHeader, vfioNrOf } from '../../abi/vfio.ts';
import type { Caller, DeviceMapping, FileOps, MmapHost } from '../../kernel/file.ts';
import { vfioDeviceFeature } from '../device-feature.ts';
import { VfioUser } from '../user.ts';
import {
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_ID,
  VFIO_REGION_INFO_FLAG,
  VfioDeviceInfo,
  VfioIrqInfo,
  VfioIrqSet,
  VfioRegionInfo,
} from './abi.ts';
import type { VfioPciDevice } from './device.ts';
import { dmaBufFeature } from './dmabuf.ts';
import { eventfdCtxGet } from './irqs.ts';
import { vfTokenFeature } from './sriov.ts';

/** VFIO_BASE + n of the device ioctls served here. */
const NR = {
  GET_INFO: 107,
  GET_REGION_INFO: 108,
  GET_IRQ_INFO: 109,
  SET_IRQS: 110,
  RESET: 111,
  GET_PCI_HOT_RESET_INFO: 112,
  PCI_HOT_RESET: 113,
  FEATURE: 117,
};

export interface VfioPciFileOptions {
  /** Called when the last reference to the open file goes away. */
  readonly release?: () => void;
  /**
   * GET_PCI_HOT_RESET_INFO and PCI_HOT_RESET (the VFIO device behind the
   * fd, see hot-reset.ts); absent (a bare function, no VFIO core): ENOTTY.
   */
  readonly hotReset?: {
    readonly info: (caller: Caller, arg: bigint) => number;
    readonly reset: (caller: Caller, arg: bigint) => number;
  };
}

/**
 * The FileOps of a device fd for `dev`. ioctls: GET_INFO (minsz 16; 20
 * bytes copied back when argsz ≥ 20), GET_REGION_INFO (minsz 32, capability
 * chain at +32 or the argsz-grow answer), GET_IRQ_INFO (minsz 16),
 * SET_IRQS (header 20 + payload), RESET, GET_PCI_HOT_RESET_INFO and
 * PCI_HOT_RESET (`opts.hotReset`), DEVICE_FEATURE (the core's
 * checks, then PCI_VF_TOKEN on a PF, DMA_BUF with CONFIG_VFIO_PCI_DMABUF;
 * the low-power features are not modelled: ENOTTY); every other number → ENOTTY.
 * read/write: pread/pwrite at `offset` (a plain read/write uses offset 0:
 * the file position is not modelled).
 */
export function vfioPciDeviceFileOps(dev: VfioPciDevice, opts: VfioPciFileOptions = {}): FileOps {
  return {
    kind: 'vfio-device',
    ioctl(caller: Caller, request: number, arg: bigint): number {
      const nr = vfioNrOf(caller.abi, request);
      const mm = caller.mm;
      switch (nr) {
        case NR.GET_INFO: {
          const minsz = VfioDeviceInfo.endOf('num_irqs');
          const u = VfioUser.copyIn(mm, arg, VfioDeviceInfo, {
            minsz,
            fn: 'vfio_pci_ioctl_get_info',
          });
          const info = dev.info();
          u.respond(
            {
              argsz: u.argsz,
              flags: info.flags,
              num_regions: info.numRegions,
              num_irqs: info.numIrqs,
              cap_offset: 0,
            },
            [minsz, VfioDeviceInfo.endOf('cap_offset')],
          );
          return 0;
        }
        case NR.GET_REGION_INFO: {
          const u = VfioUser.copyIn(mm, arg, VfioRegionInfo, {
            fn: 'vfio_pci_ioctl_get_region_info',
          });
          const r = dev.regionInfo(u.cmd.index);
          let out = { argsz: u.argsz, capOffset: 0 };
          let flags = r.flags;
          if (r.caps.length > 0) {
            flags |= VFIO_REGION_INFO_FLAG.CAPS;
            out = u.capChain(VfioRegionInfo.size, encodeCaps(r.caps, VfioRegionInfo.size));
          }
          u.respond({
            argsz: out.argsz,
            flags,
            index: u.cmd.index,
            cap_offset: out.capOffset,
            size: r.size,
            offset: r.offset,
          });
          return 0;
        }
        case NR.GET_IRQ_INFO: {
          const u = VfioUser.copyIn(mm, arg, VfioIrqInfo, { fn: 'vfio_pci_ioctl_get_irq_info' });
          const info = dev.irqInfo(u.cmd.index);
          u.respond({ argsz: u.argsz, flags: info.flags, index: u.cmd.index, count: info.count });
          return 0;
        }
        case NR.SET_IRQS: {
          const hdr = VfioUser.copyIn(mm, arg, VfioIrqSet, { fn: 'vfio_pci_ioctl_set_irqs' }).cmd;
          const size = dev.setIrqsDataSize(hdr.argsz, hdr);
          const data = size > 0 ? mm.read(arg + BigInt(VfioIrqSet.size), size) : new Uint8Array();
          dev.setIrqs(hdr.argsz, { ...hdr, data }, (fd) => eventfdCtxGet(caller, fd));
          return 0;
        }
        case NR.RESET:
          dev.reset();
          return 0;
        case NR.GET_PCI_HOT_RESET_INFO:
        case NR.PCI_HOT_RESET:
          if (!opts.hotReset)
            fail(
              'ENOTTY',
              'a function without the VFIO core has no hot reset',
              'uiommu_pci_hot_reset',
            );
          return nr === NR.PCI_HOT_RESET
            ? opts.hotReset.reset(caller, arg)
            : opts.hotReset.info(caller, arg);
        case NR.FEATURE:
          // the VFIO core's checks, then vfio_pci_core_ioctl_feature()
          return vfioDeviceFeature(caller, arg, (c, flags, data, size) => {
            switch (flags & VFIO_DEVICE_FEATURE.MASK) {
              case VFIO_DEVICE_FEATURE_ID.PCI_VF_TOKEN:
                return vfTokenFeature(dev, c, flags, data, size);
              case VFIO_DEVICE_FEATURE_ID.DMA_BUF:
                if (!dev.dmabuf)
                  fail('ENOTTY', 'no CONFIG_VFIO_PCI_DMABUF', 'vfio_pci_core_ioctl_feature');
                return dmaBufFeature(dev, c, flags, data, size);
              default:
                return fail(
                  'ENOTTY',
                  'feature not provided by vfio-pci here',
                  'vfio_pci_core_ioctl_feature',
                );
            }
          });
        default:
          fail('ENOTTY', 'not a vfio-pci device ioctl', 'vfio_pci_core_ioctl');
      }
    },
    read(_caller: Caller, length: number, offset: bigint | undefined): Uint8Array {
      return dev.read(offset ?? 0n, length);
    },
    write(_caller: Caller, data: Uint8Array, offset: bigint | undefined): number {
      return dev.write(offset ?? 0n, data);
    },
    mmap(caller, offset, length, shared, host) {
      return vfioPciMmap(dev, caller.mm.pageSize, offset, length, shared, host);
    },
    release() {
      opts.release?.();
    },
  };
}

/**
 * mmap of a BAR (vfio_pci_core_mmap): the device's checks, then the BAR's
 * bytes move into a shared file (once) and the mapping is described: its
 * register pages clipped to the mapped window, accesses and faults served
 * by the device.
 */
export function vfioPciMmap(
  dev: VfioPciDevice,
  pageSize: bigint,
  offset: bigint,
  length: bigint,
  shared: boolean,
  host: MmapHost,
): DeviceMapping {
  const { index, pos } = dev.mmapCheck(offset, length, shared, pageSize);
  const file = dev.barMemory.get(index)!.share(`uiommu-${dev.name}-bar${index}`, host.share);
  const end = pos + length;
  const registers: [bigint, bigint][] = [];
  for (const [s, e] of dev.registerRanges(index, pageSize)) {
    if (e <= pos || s >= end) continue;
    registers.push([(s > pos ? s : pos) - pos, (e < end ? e : end) - pos]);
  }
  return {
    file,
    fileOffset: pos,
    registers,
    access: (at, size, data) => dev.mappedAccess(index, pos + at, size, data),
    fault: () => {
      if (!dev.config.memoryEnabled)
        fail('EIO', 'memory decode disabled', 'vfio_pci_mmap_huge_fault');
    },
    zaps: () => dev.zaps,
    phys: (at) => dev.barBusAddress(index, host.busRange) + pos + at,
  };
}

/**
 * Lay out a capability chain as it appears in the user's buffer when it
 * starts at `base`: each capability padded to 8 bytes, `next` counted from
 * the start of the info struct, 0 for the last.
 */
export function encodeCaps(
  caps: readonly { id: number; version: number; body: Uint8Array }[],
  base: number,
): Uint8Array {
  const sizes = caps.map((c) => (VfioInfoCapHeader.size + c.body.length + 7) & ~7);
  const out = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
  let at = 0;
  caps.forEach((c, i) => {
    const next = i + 1 < caps.length ? base + at + sizes[i]! : 0;
    out.set(VfioInfoCapHeader.encode({ id: c.id, version: c.version, next }), at);
    out.set(c.body, at + VfioInfoCapHeader.size);
    at += sizes[i]!;
  });
  return out;
}
