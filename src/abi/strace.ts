/**
 * strace-style rendering of system calls, for traces of in-process clients
 * and of real programs behind the preload library. Every function here is a
 * pure function of its arguments.
 *
 * Rendering rules for a decoded struct (`{name=value, ...}`, fields in offset
 * order):
 * - Only fields lying wholly inside both the bytes given and the struct's own
 *   `size` (its first u32) are shown, since the kernel reads no further.
 * - Reserved fields (`__reserved*`, and TEST_CMD's `last`) are omitted when
 *   zero and shown in hex otherwise.
 * - Flag fields are symbolic, `A|B`, in ascending bit order; unknown bits
 *   follow as one hex remainder (`A|0x100`); zero is `0`. Every field named
 *   `flags` or `*_flags` is a flag field, with an empty table when none is
 *   known (so its value prints in hex).
 * - Enum fields (option ids, ops, data types, TEST_CMD `op`) show their name
 *   without the C prefix, the selftest's types as `SELFTEST`; an unknown
 *   value shows in hex.
 * - u64 fields (addresses, lengths, IOVAs, page sizes, user pointers) are hex
 *   as C's `%#llx` (zero is `0`), except the counters `val64` and
 *   `out_nr_dirty`, which are decimal. Other scalars (ids, sizes, counts,
 *   fds) are decimal, except the selftest's cache-check values (`iotlb`,
 *   `cache`), which are hex.
 * - A pointer argument that could not be read is shown as its address,
 *   `NULL` for 0. VFIO_GROUP_SET_CONTAINER's `int *` shows as `[fd]`,
 *   VFIO_GROUP_GET_DEVICE_FD's name as a quoted string.
 * - An fd argument shows its file's kind, `5<vfio-device>`, except for
 *   /dev/iommu (`iommufd`, `iommufd-spapr`), the common case, and fds the
 *   process does not have.
 *
 * @example
 * formatIoctl({ fd: 3, abi: 'generic', cmd: 0x3b80, arg, argAddr: 0x1000n, result: 0 });
 * // 'ioctl(3, IOMMU_DESTROY, {size=8, id=2}) = 0'
 */

import { type ErrnoName, strerror } from './errno.ts';
import type { IoctlAbi } from './ioctl.ts';
import {
  IOMMU_HW_CAP,
  IOMMU_HW_INFO_FLAGS,
  IOMMU_HW_INFO_TYPE,
  IOMMU_HW_QUEUE_TYPE,
  IOMMU_HWPT_ALLOC_FLAGS,
  IOMMU_HWPT_DATA_TYPE,
  IOMMU_HWPT_DIRTY_TRACKING_FLAGS,
  IOMMU_HWPT_GET_DIRTY_BITMAP_FLAGS,
  IOMMU_HWPT_INVALIDATE_DATA_TYPE,
  IOMMU_IOAS_MAP_FLAGS,
  IOMMU_OPTION_ID,
  IOMMU_OPTION_OP,
  IOMMU_PGFAULT_PERM,
  IOMMU_VEVENTQ_TYPE,
  IOMMU_VFIO_IOAS_OP,
  IOMMU_VIOMMU_TYPE,
  IommuHwInfo,
  IommuHwptAlloc,
  IommuHwptGetDirtyBitmap,
  IommuHwptInvalidate,
  IommuHwptSetDirtyTracking,
  IommuHwQueueAlloc,
  IommuIoasCopy,
  IommuIoasMap,
  IommuIoasMapFile,
  IommuOption,
  IommuVeventqAlloc,
  IommuVfioIoas,
  IommuViommuAlloc,
  iommufdCmdByNumber,
} from './iommufd.ts';
import {
  IOMMU_HW_INFO_TYPE_SELFTEST,
  IOMMU_HW_QUEUE_TYPE_SELFTEST,
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID,
  IOMMU_TEST_CMD_LAYOUTS,
  IOMMU_TEST_OP,
  IOMMU_VEVENTQ_TYPE_SELFTEST,
  IOMMU_VIOMMU_TYPE_SELFTEST,
  IommuTestCmd,
  IommuTestCmdAccessPages,
  IommuTestCmdAccessRw,
  IommuTestCmdCheckDevCache,
  IommuTestCmdCheckIotlb,
  IommuTestCmdCreateAccess,
  IommuTestCmdMockDomainFlags,
  IommuTestCmdTriggerIopf,
  iommuTestCmdLayout,
  iommuTestCmdNumber,
  MOCK_ACCESS_RW_FLAGS,
  MOCK_FLAGS_ACCESS,
  MOCK_FLAGS_ACCESS_CREATE,
  MOCK_FLAGS_DEVICE,
} from './iommufd-test.ts';
import { type Field, type Layout, widthOf } from './layout.ts';
import {
  VFIO_DEVICE_BIND_FLAG,
  VFIO_DEVICE_PT_FLAG,
  VFIO_DMA_MAP_FLAG,
  VFIO_DMA_UNMAP_FLAG,
  VFIO_EEH_PE_OP,
  VFIO_EXTENSION,
  VFIO_GROUP_FLAGS,
  VFIO_IOMMU_DIRTY_PAGES_FLAG,
  VFIO_IOMMU_INFO,
  VFIO_IOMMU_SPAPR_INFO_DDW,
  VfioDeviceAttachIommufdPt,
  VfioDeviceBindIommufd,
  VfioDeviceDetachIommufdPt,
  VfioEehPeOp,
  type VfioFdKind,
  VfioGroupStatus,
  VfioIommuSpaprRegisterMemory,
  VfioIommuSpaprTceCreate,
  VfioIommuSpaprTceInfo,
  VfioIommuSpaprTceRemove,
  VfioIommuType1DirtyBitmap,
  VfioIommuType1DmaMap,
  VfioIommuType1DmaUnmap,
  VfioIommuType1Info,
  vfioIoctlsByNumber,
} from './vfio.ts';
import {
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_ID,
  VFIO_DEVICE_FLAGS,
  VFIO_IRQ_INFO,
  VFIO_IRQ_SET,
  VFIO_PCI_HOT_RESET_FLAG,
  VFIO_REGION_INFO_FLAG,
  VfioDeviceFeature,
  VfioDeviceInfo,
  VfioIrqInfo,
  VfioIrqSet,
  VfioPciHotReset,
  VfioPciHotResetInfo,
  VfioRegionInfo,
} from './vfio-device.ts';

// biome-ignore lint/suspicious/noExplicitAny: any struct layout
type AnyLayout = Layout<any>;
type Names = Readonly<Record<string, number>>;

/** How one field renders when the default rule does not fit. */
type Hint =
  | { readonly kind: 'flags'; readonly names: Names }
  | { readonly kind: 'enum'; readonly names: Names }
  | { readonly kind: 'hex' }
  | { readonly kind: 'feature' };

const flags = (names: Names): Hint => ({ kind: 'flags', names });
const enumOf = (names: Names): Hint => ({ kind: 'enum', names });
const HEX: Hint = { kind: 'hex' };
/** `vfio_device_feature.flags`: the feature id (low 16 bits) by name, then the GET/SET/PROBE bits. */
const FEATURE: Hint = { kind: 'feature' };

/** u64 fields that are counters or values rather than addresses. */
const DECIMAL_U64 = new Set(['val64', 'out_nr_dirty']);

const TEST_OP: Hint = enumOf(IOMMU_TEST_OP);

/** An enum of the uAPI with the selftest's out-of-band value(s) added (the mock path uses them). */
const withSelftest = (names: Names, selftest: Names): Hint => enumOf({ ...names, ...selftest });

const BASE_HINTS = new Map<AnyLayout, Readonly<Record<string, Hint>>>([
  [IommuIoasMap, { flags: flags(IOMMU_IOAS_MAP_FLAGS) }],
  [IommuIoasMapFile, { flags: flags(IOMMU_IOAS_MAP_FLAGS) }],
  [IommuIoasCopy, { flags: flags(IOMMU_IOAS_MAP_FLAGS) }],
  [IommuOption, { option_id: enumOf(IOMMU_OPTION_ID), op: enumOf(IOMMU_OPTION_OP) }],
  [IommuVfioIoas, { op: enumOf(IOMMU_VFIO_IOAS_OP) }],
  [
    IommuHwptAlloc,
    {
      flags: flags(IOMMU_HWPT_ALLOC_FLAGS),
      data_type: withSelftest(IOMMU_HWPT_DATA_TYPE, { SELFTEST: IOMMU_HWPT_DATA_SELFTEST }),
    },
  ],
  [
    IommuHwInfo,
    {
      flags: flags(IOMMU_HW_INFO_FLAGS),
      out_data_type: withSelftest(IOMMU_HW_INFO_TYPE, { SELFTEST: IOMMU_HW_INFO_TYPE_SELFTEST }),
      out_capabilities: flags(IOMMU_HW_CAP),
    },
  ],
  [IommuHwptSetDirtyTracking, { flags: flags(IOMMU_HWPT_DIRTY_TRACKING_FLAGS) }],
  [IommuHwptGetDirtyBitmap, { flags: flags(IOMMU_HWPT_GET_DIRTY_BITMAP_FLAGS) }],
  [
    IommuHwptInvalidate,
    {
      data_type: withSelftest(IOMMU_HWPT_INVALIDATE_DATA_TYPE, {
        SELFTEST: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
        SELFTEST_INVALID: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID,
      }),
    },
  ],
  [
    IommuViommuAlloc,
    { type: withSelftest(IOMMU_VIOMMU_TYPE, { SELFTEST: IOMMU_VIOMMU_TYPE_SELFTEST }) },
  ],
  [
    IommuVeventqAlloc,
    { type: withSelftest(IOMMU_VEVENTQ_TYPE, { SELFTEST: IOMMU_VEVENTQ_TYPE_SELFTEST }) },
  ],
  [
    IommuHwQueueAlloc,
    { type: withSelftest(IOMMU_HW_QUEUE_TYPE, { SELFTEST: IOMMU_HW_QUEUE_TYPE_SELFTEST }) },
  ],
  [IommuTestCmdCreateAccess, { flags: flags(MOCK_FLAGS_ACCESS_CREATE) }],
  [IommuTestCmdAccessPages, { flags: flags(MOCK_FLAGS_ACCESS) }],
  [IommuTestCmdAccessRw, { flags: flags(MOCK_ACCESS_RW_FLAGS) }],
  [IommuTestCmdMockDomainFlags, { dev_flags: flags(MOCK_FLAGS_DEVICE) }],
  [IommuTestCmdCheckIotlb, { iotlb: HEX }],
  [IommuTestCmdCheckDevCache, { cache: HEX }],
  [IommuTestCmdTriggerIopf, { perm: flags(IOMMU_PGFAULT_PERM) }],
]);

/** Per-layout field hints; every TEST_CMD layout also renders `op` by name. */
const HINTS = new Map(BASE_HINTS);
for (const layout of [IommuTestCmd, ...Object.values(IOMMU_TEST_CMD_LAYOUTS)]) {
  HINTS.set(layout, { op: TEST_OP, ...BASE_HINTS.get(layout) });
}

/** `%#x`: hex with 0x, except zero which is plain `0`. */
function hex(v: number | bigint): string {
  const b = BigInt(v);
  return b === 0n ? '0' : `0x${b.toString(16)}`;
}

function formatFlags(v: number | bigint, names: Names): string {
  let rest = BigInt(v);
  if (rest === 0n) return '0';
  const parts: string[] = [];
  const bits = Object.entries(names)
    .map(([name, bit]) => [name, BigInt(bit)] as const)
    .filter(([, bit]) => bit !== 0n)
    .sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  for (const [name, bit] of bits) {
    if ((rest & bit) === bit) {
      parts.push(name);
      rest &= ~bit;
    }
  }
  if (rest !== 0n) parts.push(hex(rest));
  return parts.join('|');
}

function formatEnum(v: number | bigint, names: Names): string {
  for (const [name, value] of Object.entries(names)) {
    if (BigInt(value) === BigInt(v)) return name;
  }
  return hex(v);
}

function formatFeature(v: number): string {
  const id = v & VFIO_DEVICE_FEATURE.MASK;
  const { GET, SET, PROBE } = VFIO_DEVICE_FEATURE;
  const ops = formatFlags(v & ~VFIO_DEVICE_FEATURE.MASK, { GET, SET, PROBE });
  const idName = formatEnum(id, VFIO_DEVICE_FEATURE_ID);
  return ops === '0' ? idName : `${idName}|${ops}`;
}

function formatField(f: Field, v: number | bigint, hint: Hint | undefined): string {
  const h: Hint | undefined =
    hint ?? (f.name === 'flags' || f.name.endsWith('_flags') ? flags({}) : undefined);
  if (h) {
    switch (h.kind) {
      case 'flags':
        return formatFlags(v, h.names);
      case 'enum':
        return formatEnum(v, h.names);
      case 'hex':
        return hex(v);
      case 'feature':
        return formatFeature(Number(v));
    }
  }
  if (f.type === 'u64' && !DECIMAL_U64.has(f.name)) return hex(v);
  return String(v);
}

/**
 * Render struct bytes as `{name=value, ...}` under the rules in the module
 * doc. `bytes` shorter than the layout are read only as far as they go.
 */
export function formatStruct(layout: AnyLayout, bytes: Uint8Array): string {
  const hints = HINTS.get(layout) ?? {};
  const decoded = layout.decode(bytes) as Record<string, number | bigint>;
  const first = layout.fields[0];
  let limit = Math.min(bytes.length, layout.size);
  // Structs led by a u32 `size` are extensible: the kernel reads `size` bytes.
  if (first?.name === 'size' && first.offset === 0 && limit >= 4) {
    limit = Math.min(limit, Math.max(4, Number(decoded.size)));
  }
  const parts: string[] = [];
  for (const f of [...layout.fields].sort((a, b) => a.offset - b.offset)) {
    const end = f.offset + widthOf(f.type);
    if (end > limit) continue;
    const v = decoded[f.name]!;
    if (f.dir === 'reserved') {
      if (BigInt(v) === 0n) continue;
      parts.push(`${f.name}=${hex(v)}`);
      continue;
    }
    parts.push(`${f.name}=${formatField(f, v, hints[f.name])}`);
  }
  return `{${parts.join(', ')}}`;
}

/** The uAPI name of a request number under an ABI (iommufd commands and IOMMU_TEST_CMD), or undefined. */
export function ioctlName(abi: IoctlAbi, cmd: number): string | undefined {
  if (cmd >>> 0 === iommuTestCmdNumber(abi)) return 'IOMMU_TEST_CMD';
  return iommufdCmdByNumber(abi, cmd)?.name;
}

function formatAddr(addr: bigint): string {
  return addr === 0n ? 'NULL' : hex(BigInt.asUintN(64, addr));
}

function formatResult(result: number, errno: ErrnoName | undefined): string {
  if (result < 0 && errno) return `${result} ${errno} (${strerror(errno)})`;
  return String(result);
}

/** VFIO argument structs the decoder renders (headers only where an array follows). */
const VFIO_LAYOUTS: Record<string, AnyLayout> = {
  VFIO_IOMMU_MAP_DMA: VfioIommuType1DmaMap,
  VFIO_IOMMU_UNMAP_DMA: VfioIommuType1DmaUnmap,
  VFIO_IOMMU_GET_INFO: VfioIommuType1Info,
  VFIO_IOMMU_DIRTY_PAGES: VfioIommuType1DirtyBitmap,
  VFIO_GROUP_GET_STATUS: VfioGroupStatus,
  VFIO_IOMMU_SPAPR_TCE_GET_INFO: VfioIommuSpaprTceInfo,
  VFIO_IOMMU_SPAPR_REGISTER_MEMORY: VfioIommuSpaprRegisterMemory,
  VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY: VfioIommuSpaprRegisterMemory,
  VFIO_IOMMU_SPAPR_TCE_CREATE: VfioIommuSpaprTceCreate,
  VFIO_IOMMU_SPAPR_TCE_REMOVE: VfioIommuSpaprTceRemove,
  VFIO_EEH_PE_OP: VfioEehPeOp,
  VFIO_DEVICE_GET_INFO: VfioDeviceInfo,
  VFIO_DEVICE_GET_REGION_INFO: VfioRegionInfo,
  VFIO_DEVICE_GET_IRQ_INFO: VfioIrqInfo,
  VFIO_DEVICE_SET_IRQS: VfioIrqSet,
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: VfioPciHotResetInfo,
  VFIO_DEVICE_PCI_HOT_RESET: VfioPciHotReset,
  VFIO_DEVICE_FEATURE: VfioDeviceFeature,
  VFIO_DEVICE_BIND_IOMMUFD: VfioDeviceBindIommufd,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT: VfioDeviceAttachIommufdPt,
  VFIO_DEVICE_DETACH_IOMMUFD_PT: VfioDeviceDetachIommufdPt,
};

/** VFIO ioctls whose argument is a value, not a pointer (rendered as an extension name). */
const VFIO_VALUE_ARGS = new Set(['VFIO_CHECK_EXTENSION', 'VFIO_SET_IOMMU']);

/** VFIO ioctls without an argument. */
const VFIO_NO_ARGS = new Set([
  'VFIO_GET_API_VERSION',
  'VFIO_GROUP_UNSET_CONTAINER',
  'VFIO_DEVICE_RESET',
  'VFIO_IOMMU_ENABLE',
  'VFIO_IOMMU_DISABLE',
]);

/** The single bits of `vfio_irq_set.flags` (its two type masks left out). */
const IRQ_SET_BITS: Names = {
  DATA_NONE: VFIO_IRQ_SET.DATA_NONE,
  DATA_BOOL: VFIO_IRQ_SET.DATA_BOOL,
  DATA_EVENTFD: VFIO_IRQ_SET.DATA_EVENTFD,
  ACTION_MASK: VFIO_IRQ_SET.ACTION_MASK,
  ACTION_UNMASK: VFIO_IRQ_SET.ACTION_UNMASK,
  ACTION_TRIGGER: VFIO_IRQ_SET.ACTION_TRIGGER,
};

HINTS.set(VfioIommuType1DmaMap, { flags: flags(VFIO_DMA_MAP_FLAG) });
HINTS.set(VfioIommuType1DmaUnmap, { flags: flags(VFIO_DMA_UNMAP_FLAG) });
HINTS.set(VfioIommuType1Info, { flags: flags(VFIO_IOMMU_INFO) });
HINTS.set(VfioIommuType1DirtyBitmap, { flags: flags(VFIO_IOMMU_DIRTY_PAGES_FLAG) });
HINTS.set(VfioGroupStatus, { flags: flags(VFIO_GROUP_FLAGS) });
HINTS.set(VfioIommuSpaprTceInfo, {
  flags: flags({ DDW: VFIO_IOMMU_SPAPR_INFO_DDW }),
  dma32_window_start: HEX,
  dma32_window_size: HEX,
});
HINTS.set(VfioEehPeOp, { op: enumOf(VFIO_EEH_PE_OP) });
HINTS.set(VfioDeviceInfo, { flags: flags(VFIO_DEVICE_FLAGS) });
HINTS.set(VfioRegionInfo, { flags: flags(VFIO_REGION_INFO_FLAG) });
HINTS.set(VfioIrqInfo, { flags: flags(VFIO_IRQ_INFO) });
HINTS.set(VfioIrqSet, { flags: flags(IRQ_SET_BITS) });
HINTS.set(VfioPciHotResetInfo, { flags: flags(VFIO_PCI_HOT_RESET_FLAG) });
HINTS.set(VfioDeviceFeature, { flags: FEATURE });
HINTS.set(VfioDeviceBindIommufd, { flags: flags(VFIO_DEVICE_BIND_FLAG) });
HINTS.set(VfioDeviceAttachIommufdPt, { flags: flags(VFIO_DEVICE_PT_FLAG) });
HINTS.set(VfioDeviceDetachIommufdPt, { flags: flags(VFIO_DEVICE_PT_FLAG) });

/** `[n]`: an `int *` argument (GROUP_SET_CONTAINER's container fd). */
function formatIntPtr(arg: Uint8Array): string {
  return `[${new DataView(arg.buffer, arg.byteOffset, 4).getInt32(0, true)}]`;
}

/** A C string argument (GROUP_GET_DEVICE_FD's device name) quoted; `...` when no NUL was read. */
function formatCString(arg: Uint8Array): string {
  const nul = arg.indexOf(0);
  const text = new TextDecoder().decode(nul < 0 ? arg : arg.subarray(0, nul));
  return `${JSON.stringify(text)}${nul < 0 ? '...' : ''}`;
}

/** Which VFIO ioctl family an fd kind answers: /dev/iommu and containers take container ioctls. */
function vfioFamily(fdKind: string | undefined): VfioFdKind | undefined {
  if (fdKind?.startsWith('iommufd') || fdKind?.startsWith('vfio-container')) return 'container';
  if (fdKind === 'vfio-group') return 'group';
  if (fdKind === 'vfio-device') return 'device';
  return undefined;
}

/** `NAME(arg)` of a VFIO ioctl on an fd of `fdKind`, or undefined when the number is no VFIO ioctl there. */
function formatVfio(opts: IoctlTrace): [string, string] | undefined {
  const family = vfioFamily(opts.fdKind);
  const candidates = vfioIoctlsByNumber(opts.abi, opts.cmd);
  // the SPAPR container, legacy or on an iommufd (uiommu extension)
  const spapr = opts.fdKind === 'vfio-container-spapr' || opts.fdKind === 'iommufd-spapr';
  const inFamily = candidates.filter((c) => c.fd === family);
  const v =
    inFamily.find((c) => c.name.includes('SPAPR') === spapr) ??
    inFamily[0] ??
    (candidates.length === 1 ? candidates[0] : undefined);
  if (!v) return undefined;
  if (VFIO_NO_ARGS.has(v.name)) return [v.name, ''];
  if (VFIO_VALUE_ARGS.has(v.name)) {
    const ext = Object.entries(VFIO_EXTENSION).find(([, n]) => BigInt(n) === opts.argAddr)?.[0];
    return [v.name, ext ? `VFIO_${ext}` : String(opts.argAddr)];
  }
  if (v.name === 'VFIO_GROUP_GET_DEVICE_FD' && opts.arg && opts.arg.length > 0) {
    return [v.name, formatCString(opts.arg)];
  }
  const layout = VFIO_LAYOUTS[v.name];
  if (!opts.arg || opts.arg.length < 4) return [v.name, formatAddr(opts.argAddr)];
  if (v.name === 'VFIO_GROUP_SET_CONTAINER') return [v.name, formatIntPtr(opts.arg)];
  if (!layout) return [v.name, formatAddr(opts.argAddr)];
  const argsz = new DataView(opts.arg.buffer, opts.arg.byteOffset, 4).getUint32(0, true);
  return [v.name, formatStruct(layout, opts.arg.subarray(0, Math.min(argsz, opts.arg.length)))];
}

export interface IoctlTrace {
  fd: number;
  abi: IoctlAbi;
  /** The request number as passed to ioctl(). */
  cmd: number;
  /**
   * Bytes at the argument after the call (the struct with its out-fields, or
   * the start of a string); undefined when unreadable.
   */
  arg: Uint8Array | undefined;
  /** The argument's address in the caller's memory. */
  argAddr: bigint;
  /** The syscall's return value (-1 on failure). */
  result: number;
  errno?: ErrnoName;
  /**
   * The kind of file the fd names (`FileOps.kind`: `iommufd`, `vfio-container`,
   * `vfio-group`, `vfio-device`, `fault`, ...): picks among VFIO ioctls sharing
   * a number, and is shown beside the fd.
   */
  fdKind?: string;
}

/**
 * One strace line for an ioctl, e.g.
 * `ioctl(3, IOMMU_IOAS_MAP, {size=40, flags=FIXED_IOVA|WRITEABLE|READABLE, ioas_id=1, user_va=0x7f0000000000, length=0x40000000, iova=0}) = 0`
 * or `... = -1 EEXIST (File exists)`. Unknown request numbers print in hex
 * with the argument as an address.
 */
export function formatIoctl(opts: IoctlTrace): string {
  const { fd, abi, cmd, arg, argAddr, result, errno } = opts;
  const known = iommufdCmdByNumber(abi, cmd);
  const isTest = cmd >>> 0 === iommuTestCmdNumber(abi);
  let name: string;
  let argText: string;
  if (known || isTest) {
    name = isTest ? 'IOMMU_TEST_CMD' : known!.name;
    if (arg === undefined || arg.length < 4) {
      argText = formatAddr(argAddr);
    } else if (isTest) {
      const op = IommuTestCmd.decode(arg).op;
      argText = formatStruct(iommuTestCmdLayout(op) ?? IommuTestCmd, arg);
    } else {
      argText = formatStruct(known!.layout, arg);
    }
  } else {
    const vfio = formatVfio(opts);
    name = vfio?.[0] ?? hex(cmd >>> 0);
    argText = vfio?.[1] ?? formatAddr(argAddr);
  }
  const fdText = formatFd(fd, opts.fdKind);
  const args = argText === '' ? `${fdText}, ${name}` : `${fdText}, ${name}, ${argText}`;
  return `ioctl(${args}) = ${formatResult(result, errno)}`;
}

/** An fd argument: `5<vfio-device>`, or just `3` for /dev/iommu and unknown fds. */
export function formatFd(fd: number, kind: string | undefined): string {
  return kind === undefined || kind.startsWith('iommufd') ? String(fd) : `${fd}<${kind}>`;
}

/** One strace line for any other syscall from pre-rendered arguments, e.g. `close(3) = 0`. */
export function formatSyscall(
  name: string,
  args: string[],
  result: number,
  errno?: ErrnoName,
): string {
  return `${name}(${args.join(', ')}) = ${formatResult(result, errno)}`;
}

/**
 * The tail a failed call's line gets: ` <reason; where>` (either alone when
 * the other is unknown), '' when neither is; `>` in the reason is kept (the
 * tail is the last thing on the line).
 */
export function formatReason(reason: string | undefined, where: string | undefined): string {
  if (reason && where) return ` <${reason}; ${where}>`;
  if (reason || where) return ` <${reason ?? where}>`;
  return '';
}

/** The name `formatIoctl` prints for the request (hex when unknown), for structured traces. */
export function ioctlRequestName(opts: IoctlTrace): string {
  if (opts.cmd >>> 0 === iommuTestCmdNumber(opts.abi)) return 'IOMMU_TEST_CMD';
  return (
    iommufdCmdByNumber(opts.abi, opts.cmd)?.name ?? formatVfio(opts)?.[0] ?? hex(opts.cmd >>> 0)
  );
}
