/**
 * What the errno-reason tables (test/host/reasons*.test.ts) share: tracing a
 * client, reading the reason of its last call, the fixtures the rows act on,
 * and `pin`, which turns a table into one test per rule.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Errno } from '../../src/abi/errno.ts';
import { iommufdCmdNumber } from '../../src/abi/iommufd.ts';
import { IOMMU_VIOMMU_TYPE_SELFTEST, IommuViommuSelftest } from '../../src/abi/iommufd-test.ts';
import type { Layout } from '../../src/abi/layout.ts';
import {
  VFIO_EXTENSION,
  VfioEehPeOp,
  type VfioIoctlName,
  vfioIoctlNumber,
} from '../../src/abi/vfio.ts';
import {
  VFIO_DEVICE_FEATURE,
  VFIO_IRQ_SET,
  VfioDeviceFeature,
  VfioIrqSet,
} from '../../src/abi/vfio-device.ts';
import { Eventfd } from '../../src/host/eventfd.ts';
import type { KernelOptions, KernelPersonality } from '../../src/host/kernel.ts';
import { Process, type ProcessMm, type TraceEvent } from '../../src/host/process.ts';
import {
  INTEL_DEFAULTS,
  type IntelIommuSpec,
  powernv,
  x86,
} from '../../src/host/topology/index.ts';
import { SPAPR_DEFAULTS } from '../../src/host/topology/parse.ts';
import { selftestCmd } from '../../src/iommufd/selftest.ts';
import type { MmapHost } from '../../src/kernel/file.ts';
import { deviceMmapOp } from '../../src/server/device-mmap.ts';
import { OP } from '../../src/server/protocol.ts';
import type { ReservedRegionSpec } from '../../src/vfio/pci/spec.ts';
import { mockDomain } from '../iommufd/mock.ts';
import { PAGE } from '../iommufd/util.ts';
import { type Fixture, memStore, setup } from '../support.ts';
import { VfioClient } from '../vfio/client.ts';
import { GIB, SpaprClient } from '../vfio/spapr-client.ts';

export const NVME = '0000:02:00.0'; // group 12 of the x86 preset
/** A conventional PCI function on the root bus (no ERR IRQ, no reset, no hot reset). */
export const USB = ['0000:00:14.0', 4] as const;
export const MSI = { start: 0xfee0_0000n, last: 0xfeef_ffffn, kind: 'msi' as const };
export const VA = 0x4000_0000n;

const lastEvent = new WeakMap<Process, TraceEvent>();

/** `x` with its process traced, so `why` sees what the trace shows. */
export function traced<T extends { proc: Process }>(x: T): T {
  x.proc.trace = (_line, event) => lastEvent.set(x.proc, event);
  return x;
}

/**
 * errno, reason and where of the process's last call, as its trace event
 * has them, or of an Errno an untraced operation (mmap) threw.
 */
export function why(
  p: Process | Errno,
): [string | undefined, string | undefined, string | undefined] {
  if (p instanceof Errno) return [p.code, p.reason, p.where];
  const e = lastEvent.get(p);
  return [e?.errno, e?.reason, e?.where];
}

/** The Errno `act` throws (an untraced call's answer); fails if it throws none. */
export function thrownErrno(act: () => unknown): Errno {
  try {
    act();
  } catch (e) {
    if (e instanceof Errno) return e;
    throw e;
  }
  return assert.fail('the call succeeded');
}

export const MAP_SHARED = 1;
export const MAP_PRIVATE = 2;
export const PROT_RW = 3;
export const PROT_EXEC = 4;

/** No rule that refuses a mapping may get as far as making one. */
/** Shared memory and bus addresses for a BAR mmap, as the engine's are. */
export const BAR_MMAP_HOST: MmapHost = { share: memStore, busRange: () => 0xe000_0000n };

export const NO_MAPPING: MmapHost = {
  share: () => assert.fail('a refused mmap made a shared file'),
  busRange: () => assert.fail('a refused mmap took a bus range'),
};

/** The Errno the engine's MMAP op (the preload's mmap) throws for `fd`; fails if it maps. */
export function mmapErrno(
  proc: Process<ProcessMm>,
  fd: number,
  offset: bigint,
  length: bigint,
  flags = MAP_SHARED,
  prot = PROT_RW,
): Errno {
  const args = [BigInt(fd), offset, length, BigInt(flags), BigInt(prot), 0n];
  try {
    deviceMmapOp(proc, { op: OP.MMAP, pid: proc.pid, tid: proc.pid, args }, NO_MAPPING);
  } catch (e) {
    if (e instanceof Errno) return e;
    throw e;
  }
  return assert.fail('the mmap succeeded');
}

/** A row's act on a traced fixture with IOMMU_TEST_CMD, of `version`'s profile and selftest ABI (6.18 by default); the process to read. */
export function onSelftest(
  act: (f: Fixture) => unknown,
  version?: KernelPersonality,
): () => Process {
  return () => {
    const personality = version ?? {};
    const f = traced(setup({ selftestCmd: selftestCmd(version?.selftestAbi), personality }));
    act(f);
    return f.proc;
  };
}

/** A fixture whose IOAS has an intel domain (4 KiB alignment, the MSI window reserved). */
export function withDomain(f: Fixture = traced(setup())): { f: Fixture; ioas: number } {
  const ioas = f.ioas();
  f.intelDevice({ reserved: [MSI] }).attach(ioas);
  return { f, ioas };
}

export type Row = [
  rule: string,
  act: () => Process | Errno,
  errno: string,
  reason: string,
  where: string,
];

/** mmap of a fresh /dev/iommu that has no region. */
export const iommuMmap = (offset: bigint, length: bigint, flags = MAP_SHARED, prot = PROT_RW) => {
  const f = setup();
  return mmapErrno(f.proc, f.fd, offset, length, flags, prot);
};

/** A selftest vIOMMU on a mock device's nesting parent: its mmap region's offset. */
export function viommuRegion(f: Fixture): { offset: bigint } {
  const { idev } = mockDomain(f, f.ioas());
  const hwpt = f.call('IOMMU_HWPT_ALLOC', { dev_id: idev, pt_id: f.ioas(), flags: 1 }).out
    .out_hwpt_id as number;
  const data = f.mem(PAGE);
  f.call('IOMMU_VIOMMU_ALLOC', {
    dev_id: idev,
    hwpt_id: hwpt,
    type: IOMMU_VIOMMU_TYPE_SELFTEST,
    data_len: IommuViommuSelftest.size,
    data_uptr: data,
  });
  const out = IommuViommuSelftest.decode(f.proc.mm.read(data, IommuViommuSelftest.size));
  return { offset: out.out_mmap_offset as bigint };
}

export function ioasAllocNumber(f: Fixture): number {
  return iommufdCmdNumber(f.kernel.abi, 'IOMMU_IOAS_ALLOC');
}

export const MIB = 1n << 20n;

/**
 * A type1 (legacy) or iommufd-compat container with group `id` set (and
 * SET_IOMMU `type` done when given), on a kernel made with `opts`.
 */
export function container(
  backend: 'type1' | 'iommufd',
  type?: number,
  id = 12,
  opts: KernelOptions = {},
) {
  const c = traced(
    new VfioClient({ ...opts, personality: { ...opts.personality, vfioContainer: backend } }),
  );
  const fd = c.open('/dev/vfio/vfio').ret;
  const group = c.open(`/dev/vfio/${id}`).ret;
  assert.equal(c.setContainer(group, fd).ret, 0);
  if (type !== undefined) assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', BigInt(type)).ret, 0);
  return { c, fd, group };
}

/**
 * x86 with the I210 (group 13, 0000:03:00.0) behind a second VT-d unit
 * `dmar1` made of `unit` (over the defaults), and/or with `resv` as its
 * reserved regions.
 */
export function i210(change: {
  unit?: Partial<IntelIommuSpec>;
  resv?: ReservedRegionSpec;
}): KernelOptions {
  const iommus = change.unit
    ? [...x86.iommus, { ...INTEL_DEFAULTS, ...change.unit, id: 'dmar1' }]
    : x86.iommus;
  const devices = x86.devices.map((d) =>
    d.group !== 13
      ? d
      : {
          ...d,
          iommu: change.unit ? 'dmar1' : d.iommu,
          reservedRegions: change.resv ? [change.resv] : d.reservedRegions,
        },
  );
  return { host: { ...x86, iommus, devices } };
}
export const I210 = '0000:03:00.0';

// ---- spapr-tce.md §3–§4 --------------------------------------------------------------

export const V1 = VFIO_EXTENSION.SPAPR_TCE_IOMMU;
export const V2 = VFIO_EXTENSION.SPAPR_TCE_v2_IOMMU;
export const K64 = 64n * 1024n;

/** A row's act on a traced powernv SPAPR container with group 1 (v2 unless `type`); `act` may return another process to read. */
export function onSpapr(
  act: (c: SpaprClient) => unknown,
  type: number = V2,
  opts: ConstructorParameters<typeof SpaprClient>[0] = {},
  creds: ConstructorParameters<typeof SpaprClient>[1] = {},
): () => Process {
  return () => {
    const c = traced(new SpaprClient(opts, creds)).setup(1, type);
    const other = act(c);
    return other instanceof Process ? other : c.proc;
  };
}

/** QEMU's DDW set-up: 4 MiB of hugetlb RAM registered, a 64 KiB-page window at DDW, the default window gone. */
export function ddw(c: SpaprClient): bigint {
  const ram = c.ram(4n * MIB);
  assert.equal(c.register(ram, 4n * MIB).ret, 0);
  assert.equal(c.create(16, GIB).ret, 0);
  assert.equal(c.remove(0n).ret, 0);
  return ram;
}

export const eeh = (
  c: SpaprClient,
  op: number,
  more: Partial<ReturnType<typeof VfioEehPeOp.decode>> = {},
) => c.call('VFIO_EEH_PE_OP', VfioEehPeOp, { argsz: 40, op, ...more });
export const enable = (c: SpaprClient) => c.ioctl(c.container, 'VFIO_IOMMU_ENABLE');
export const LOW_MEMLOCK = { capIpcLock: false, rlimitMemlock: MIB };
/** powernv with phb0 turned into a pSeries PHB (another create_table). */
export const MIXED = {
  host: {
    ...powernv,
    iommus: [
      { ...SPAPR_DEFAULTS.pseries, id: 'phb0' },
      { ...SPAPR_DEFAULTS.powernv, id: 'phb1' },
    ],
  },
};
export const NO_DMA32 = {
  host: { ...powernv, iommus: powernv.iommus.map((i) => ({ ...i, dma32Size: 0n })) },
};

// ---- vfio-device.md §2–§6 ------------------------------------------------------------

export interface Dev {
  readonly c: VfioClient;
  readonly dev: number;
}

/** `act` on a traced iommufd-compat container with `group` set and TYPE1v2 (the client, the group fd). */
export function withGroup(
  act: (c: VfioClient, group: number) => unknown,
  group = 12,
): () => Process {
  return () => {
    const { c, group: g } = container('iommufd', 3, group);
    act(c, g);
    return c.proc;
  };
}

/** `act` on the device fd of `bdf` in group `group` of such a container. */
export function onDevice(act: (d: Dev) => unknown, bdf = NVME, group = 12): () => Process {
  return withGroup((c, g) => {
    const dev = c.getDeviceFd(g, bdf).ret;
    assert.ok(dev >= 0);
    act({ c, dev });
  }, group);
}

export function devCall<V>(d: Dev, name: VfioIoctlName, layout: Layout<V>, value: Partial<V>) {
  return d.c.proc.call(d.dev, vfioIoctlNumber(d.c.kernel.abi, name), layout, value);
}

export const { DATA_NONE, DATA_BOOL, ACTION_MASK, ACTION_UNMASK, ACTION_TRIGGER } = VFIO_IRQ_SET;

export function setIrqs(d: Dev, flags: number, index: number, start = 0, count = 1, argsz = 20) {
  return devCall(d, 'VFIO_DEVICE_SET_IRQS', VfioIrqSet, { argsz, flags, index, start, count });
}

export const feature = (d: Dev, flags: number, argsz = 8) =>
  devCall(d, 'VFIO_DEVICE_FEATURE', VfioDeviceFeature, { argsz, flags });
export const { GET, SET } = VFIO_DEVICE_FEATURE;
export const scratch = (d: Dev) => d.c.proc.scratch(new Uint8Array(8));

/** SET_IRQS DATA_EVENTFD | `action` on `index` from `start`, with `fds` as its payload. */
export function setIrqFds(d: Dev, action: number, index: number, fds: number[], start = 0) {
  const head = VfioIrqSet.encode({
    argsz: 20 + 4 * fds.length,
    flags: VFIO_IRQ_SET.DATA_EVENTFD | action,
    index,
    start,
    count: fds.length,
  });
  const bytes = new Uint8Array(20 + 4 * fds.length);
  bytes.set(head);
  const v = new DataView(bytes.buffer);
  for (const [i, fd] of fds.entries()) v.setInt32(20 + 4 * i, fd, true);
  const cmd = vfioIoctlNumber(d.c.kernel.abi, 'VFIO_DEVICE_SET_IRQS');
  return d.c.proc.ioctl(d.dev, cmd, d.c.proc.scratch(bytes));
}
export const eventfd = (d: Dev) => d.c.proc.installFile(new Eventfd());
/** INTx enabled with a trigger eventfd, as QEMU does for a function whose pin is set. */
export const intxOn = (d: Dev) => assert.equal(setIrqFds(d, ACTION_TRIGGER, 0, [eventfd(d)]), 0);
/** `act` on the NVMe function with INTx on. */
export const withIntx = (act: (d: Dev) => unknown) =>
  onDevice((d) => {
    intxOn(d);
    act(d);
  });

/** `act` on a traced client with NVMe's cdev (unbound) and /dev/iommu open. */
export function onCdev(
  act: (c: VfioClient, dev: number, iommufd: number) => unknown,
): () => Process {
  return () => {
    const c = traced(new VfioClient());
    const dev = c.open(c.cdevPath(NVME)).ret;
    act(c, dev, c.open('/dev/iommu').ret);
    return c.proc;
  };
}
export const UNBOUND = 'the cdev is not bound (VFIO_DEVICE_BIND_IOMMUFD first)';

/** mmap of the NVMe function's device fd: the Errno it throws. */
export function mmapOnDevice(
  offset: bigint,
  length: bigint,
  flags = MAP_SHARED,
  fd?: number,
): () => Errno {
  return () => {
    let e: Errno | undefined;
    onDevice((d) => {
      e = mmapErrno(d.c.proc, fd ?? d.dev, offset, length, flags);
    })();
    return e!;
  };
}

/** A row as the pinned-reason gate (test/host/reasons-gate.test.ts) sees it: what it pins. */
export interface Pinned {
  readonly sheet: string;
  readonly rule: string;
  readonly errno: string;
  readonly reason: string;
  readonly where: string;
}

const pinned: Pinned[] = [];
let collecting = false;

/**
 * One test per row: the rule's errno, reason and where as its trace event
 * gives them. Every row is also registered for the gate; a reasons table
 * file defines its tests only through `pin`, so that the gate can load it
 * without running them.
 */
export function pin(sheet: string, rows: Row[]): void {
  for (const [rule, , errno, reason, where] of rows)
    pinned.push({ sheet, rule, errno, reason, where });
  if (collecting) return;
  describe(`errno reasons: ${sheet}`, () => {
    for (const [rule, act, errno, reason, where] of rows) {
      it(rule, () => assert.deepEqual(why(act()), [errno, reason, where]));
    }
  });
}

/** Whether the gate is loading the tables (a table's hooks must then start nothing). */
export const collectingPins = (): boolean => collecting;

/** The rows the table files `files` pin, loaded without defining their tests. */
export async function collectPins(files: readonly string[]): Promise<readonly Pinned[]> {
  collecting = true;
  for (const f of files) await import(f);
  return pinned;
}
