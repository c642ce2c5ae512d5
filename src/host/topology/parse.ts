/**
 * `parseHostSpec`: a JSON host config (already JSON.parse'd) checked and
 * turned into a {@link HostSpec}. Every error is a {@link HostSpecError}
 * whose message starts with the JSON path of the bad field:
 *
 * ```
 * devices[2].bars[0].size: must be a power of two (got 0x3000)
 * ```
 *
 * IOMMU parameters left out take the driver's (or the SPAPR variant's)
 * defaults; device fields left out stay absent (see the types for their
 * meaning). Any object may carry a `"//"` comment key.
 */
import type { ReservedKind } from '../../iommu/device.ts';
import { parseModel } from './parse-model.ts';
import type {
  BarKind,
  BarSpec,
  HostSpec,
  IntelIommuSpec,
  IommuSpec,
  IrqSpec,
  PciDeviceSpec,
  ReservedRegionSpec,
  SpaprIommuSpec,
  SriovVfSpec,
} from './types.ts';
import { effectiveIrq, msixPbaBytes, msixTableBytes } from './types.ts';
import {
  array,
  at,
  bad,
  boolean,
  hex,
  hexId,
  integer,
  isPow2,
  item,
  object,
  oneOf,
  string,
  u64,
} from './values.ts';

const SZ_4K = 1n << 12n;
const SZ_2M = 1n << 21n;
const SZ_1G = 1n << 30n;
const SZ_4G = 1n << 32n;

/** Defaults of an intel unit: those of `IntelIommu`. */
export const INTEL_DEFAULTS: Omit<IntelIommuSpec, 'id'> = {
  kind: 'intel',
  addressWidth: 48,
  pgsizes: SZ_4K | SZ_2M | SZ_1G,
  dirtyTracking: true,
  maxPasidLog2: 20,
  snoopControl: true,
};

/**
 * Defaults per SPAPR variant. powernv: POWER9 PHB4 under IODA2 (two windows,
 * slot 1 at 1<<59, 4K|64K|2M|1G TCEs, 5 levels, 2 GiB 32-bit window).
 * pseries: a PowerVM LPAR's PE (RTAS dynamic DMA windows, single-level
 * tables, 4K|64K|16M TCEs, 1 GiB default window).
 */
export const SPAPR_DEFAULTS: Record<SpaprIommuSpec['variant'], Omit<SpaprIommuSpec, 'id'>> = {
  powernv: {
    kind: 'spapr',
    variant: 'powernv',
    windowSlots: 2,
    windowBases: [0n, 1n << 59n],
    pageShifts: [12, 16, 21, 30],
    maxLevels: 5,
    dma32Start: 0n,
    dma32Size: 2n << 30n,
  },
  pseries: {
    kind: 'spapr',
    variant: 'pseries',
    windowSlots: 2,
    windowBases: [0n, 1n << 59n],
    pageShifts: [12, 16, 24],
    maxLevels: 1,
    dma32Start: 0n,
    dma32Size: 1n << 30n,
  },
};

const IOMMU_KINDS = ['intel', 'spapr', 'mock'] as const;
const BAR_KINDS: readonly BarKind[] = ['mem32', 'mem64', 'io'];
const RESERVED_KINDS: readonly ReservedKind[] = [
  'direct',
  'direct-relaxable',
  'reserved',
  'msi',
  'sw-msi',
];
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/;
const BDF_RE = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i;

/** Check a JSON host config and build its {@link HostSpec}; throws HostSpecError. */
export function parseHostSpec(json: unknown): HostSpec {
  const root = object(
    json,
    '',
    ['name', 'kernel', 'pageSize', 'iommus', 'devices'],
    ['name', 'iommus', 'devices'],
  );
  const name = string(root.name, 'name');
  const kernel = root.kernel === undefined ? undefined : string(root.kernel, 'kernel');
  const pageSize = root.pageSize === undefined ? undefined : hostPageSize(root.pageSize);
  const iommus = array(root.iommus, 'iommus', 1).map((v, i) => parseIommu(v, item('iommus', i)));
  const iommuAt = new Map<string, number>();
  iommus.forEach((u, i) => {
    const first = iommuAt.get(u.id);
    if (first !== undefined) {
      bad(at(item('iommus', i), 'id'), `duplicate IOMMU id '${u.id}' (also iommus[${first}])`);
    }
    iommuAt.set(u.id, i);
  });

  const devices = array(root.devices, 'devices').map((v, i) =>
    parseDevice(v, item('devices', i), iommus),
  );
  const bdfAt = new Map<string, number>();
  const groupAt = new Map<number, number>();
  devices.forEach((d, i) => {
    const path = item('devices', i);
    const first = bdfAt.get(d.bdf);
    if (first !== undefined)
      bad(at(path, 'bdf'), `duplicate BDF ${d.bdf} (also devices[${first}])`);
    bdfAt.set(d.bdf, i);
    const g = groupAt.get(d.group);
    if (g !== undefined && (d.iommu === '' || devices[g]!.iommu === '')) {
      bad(
        at(path, 'group'),
        `group ${d.group} is taken by devices[${g}]; a device without IOMMU ` +
          `(iommu null) is alone in its group`,
      );
    }
    if (g !== undefined && devices[g]!.iommu !== d.iommu) {
      bad(
        at(path, 'iommu'),
        `group ${d.group} is behind IOMMU '${devices[g]!.iommu}' (devices[${g}]); ` +
          `all members of a group share one IOMMU`,
      );
    }
    if (g === undefined) groupAt.set(d.group, i);
  });
  checkSriov(devices, bdfAt);
  return {
    name,
    ...(kernel !== undefined ? { kernel } : {}),
    ...(pageSize !== undefined ? { pageSize } : {}),
    iommus,
    devices,
  };
}

/** The host page sizes a Linux kernel is built with here: 4 KiB or 64 KiB (CONFIG_PPC_64K_PAGES). */
function hostPageSize(v: unknown): number {
  const n = integer(v, 'pageSize', 4096, 65536);
  if (n !== 4096 && n !== 65536) bad('pageSize', `must be 4096 or 65536 (got ${n})`);
  return n;
}

/**
 * SR-IOV links: a `physfn` naming one of the devices names a PF (one with
 * `sriov`), and each PF is named by exactly `sriov` VFs.
 */
function checkSriov(devices: readonly PciDeviceSpec[], bdfAt: ReadonlyMap<string, number>): void {
  const vfs = new Map<number, number>();
  devices.forEach((d, i) => {
    if (d.physfn === undefined) return;
    const pf = bdfAt.get(d.physfn);
    if (pf === undefined) return; // a PF bound to a host driver
    if (devices[pf]!.sriov === undefined) {
      bad(
        at(item('devices', i), 'physfn'),
        `${d.physfn} (devices[${pf}]) is not an SR-IOV PF (it has no sriov)`,
      );
    }
    vfs.set(pf, (vfs.get(pf) ?? 0) + 1);
  });
  devices.forEach((d, i) => {
    const n = vfs.get(i) ?? 0;
    if (d.sriov !== undefined && d.sriov !== n) {
      bad(
        at(item('devices', i), 'sriov'),
        `${d.sriov} VFs enabled but ${n} devices name ${d.bdf} as their physfn`,
      );
    }
  });
}

function parseIommu(v: unknown, path: string): IommuSpec {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) object(v, path, []);
  const raw = (v as Record<string, unknown>).kind;
  if (raw === undefined) bad(at(path, 'kind'), 'required');
  const kind = oneOf(raw, at(path, 'kind'), IOMMU_KINDS);
  if (kind === 'intel') return parseIntel(v, path);
  if (kind === 'spapr') return parseSpapr(v, path);
  const rec = object(v, path, ['kind', 'id'], ['id']);
  return { kind: 'mock', id: iommuId(rec.id, at(path, 'id')) };
}

const INTEL_KEYS = ['addressWidth', 'pgsizes', 'dirtyTracking', 'maxPasidLog2', 'snoopControl'];
const SPAPR_KEYS = [
  'windowSlots',
  'windowBases',
  'pageShifts',
  'maxLevels',
  'dma32Start',
  'dma32Size',
];

function iommuId(v: unknown, path: string): string {
  const id = string(v, path);
  if (!ID_RE.test(id)) bad(path, `'${id}' is not a name of letters, digits, '_', '.', ':' or '-'`);
  return id;
}

function parseIntel(v: unknown, path: string): IntelIommuSpec {
  const rec = object(v, path, ['kind', 'id', ...INTEL_KEYS], ['id']);
  const d = INTEL_DEFAULTS;
  const id = iommuId(rec.id, at(path, 'id'));
  let addressWidth = d.addressWidth;
  if (rec.addressWidth !== undefined) {
    const p = at(path, 'addressWidth');
    const w = integer(rec.addressWidth, p, 0, 64);
    if (w !== 39 && w !== 48 && w !== 57) bad(p, `must be 39, 48 or 57 (got ${w})`);
    addressWidth = w;
  }
  let pgsizes = d.pgsizes;
  if (rec.pgsizes !== undefined) {
    const p = at(path, 'pgsizes');
    pgsizes = pgsizeBitmap(rec.pgsizes, p);
    if (!(pgsizes & SZ_4K) || pgsizes & ~(SZ_4K | SZ_2M | SZ_1G)) {
      bad(p, `must be 4K plus any of 2M and 1G (got ${hex(pgsizes)})`);
    }
  }
  const dirtyTracking =
    rec.dirtyTracking === undefined
      ? d.dirtyTracking
      : boolean(rec.dirtyTracking, at(path, 'dirtyTracking'));
  const maxPasidLog2 =
    rec.maxPasidLog2 === undefined
      ? d.maxPasidLog2
      : integer(rec.maxPasidLog2, at(path, 'maxPasidLog2'), 0, 20);
  const snoopControl =
    rec.snoopControl === undefined
      ? d.snoopControl
      : boolean(rec.snoopControl, at(path, 'snoopControl'));
  return { kind: 'intel', id, addressWidth, pgsizes, dirtyTracking, maxPasidLog2, snoopControl };
}

/** A pgsize_bitmap: one u64, or an array of page sizes ("4K", "2M", 0x40000000...). */
function pgsizeBitmap(v: unknown, path: string): bigint {
  if (!Array.isArray(v)) return u64(v, path);
  let bitmap = 0n;
  array(v, path, 1).forEach((s, i) => {
    const p = item(path, i);
    const size = u64(s, p);
    if (!isPow2(size)) bad(p, `a page size must be a power of two (got ${hex(size)})`);
    bitmap |= size;
  });
  return bitmap;
}

function parseSpapr(v: unknown, path: string): SpaprIommuSpec {
  const rec = object(v, path, ['kind', 'id', 'variant', ...SPAPR_KEYS], ['id', 'variant']);
  const id = iommuId(rec.id, at(path, 'id'));
  const variant = oneOf(rec.variant, at(path, 'variant'), ['powernv', 'pseries'] as const);
  const d = SPAPR_DEFAULTS[variant];

  const windowSlots =
    rec.windowSlots === undefined
      ? d.windowSlots
      : integer(rec.windowSlots, at(path, 'windowSlots'), 1, 2);
  const pageShifts =
    rec.pageShifts === undefined
      ? d.pageShifts
      : parsePageShifts(rec.pageShifts, at(path, 'pageShifts'));
  const maxLevels =
    rec.maxLevels === undefined ? d.maxLevels : integer(rec.maxLevels, at(path, 'maxLevels'), 1, 5);

  const dma32Start =
    rec.dma32Start === undefined ? d.dma32Start : u64(rec.dma32Start, at(path, 'dma32Start'));
  if (dma32Start % SZ_4K !== 0n) bad(at(path, 'dma32Start'), 'must be a multiple of 4 KiB');
  if (dma32Start >= SZ_4G) bad(at(path, 'dma32Start'), 'must be below 4 GiB');
  const dma32Size =
    rec.dma32Size === undefined ? d.dma32Size : u64(rec.dma32Size, at(path, 'dma32Size'));
  if (dma32Size % SZ_4K !== 0n) bad(at(path, 'dma32Size'), 'must be a multiple of 4 KiB');
  if (dma32Start + dma32Size > SZ_4G) {
    bad(at(path, 'dma32Size'), 'the 32-bit window must end at or below 4 GiB');
  }

  let windowBases: bigint[];
  const bp = at(path, 'windowBases');
  if (rec.windowBases === undefined) {
    windowBases = [dma32Start, ...d.windowBases.slice(1)].slice(0, windowSlots);
  } else {
    windowBases = array(rec.windowBases, bp).map((b, i) => u64(b, item(bp, i)));
    if (windowBases.length !== windowSlots) {
      bad(bp, `must have windowSlots (${windowSlots}) entries (got ${windowBases.length})`);
    }
    if (windowBases[0] !== dma32Start) {
      bad(item(bp, 0), `slot 0 is the 32-bit window: must equal dma32Start (${hex(dma32Start)})`);
    }
  }
  const topPage = 1n << BigInt(pageShifts[pageShifts.length - 1]!);
  const dma32End = dma32Start + dma32Size;
  for (let i = 1; i < windowBases.length; i++) {
    const b = windowBases[i]!;
    if (b < dma32End)
      bad(item(bp, i), `must lie above the 32-bit window (ends at ${hex(dma32End)})`);
    if (b % topPage !== 0n) {
      bad(item(bp, i), `must be aligned to the largest TCE page (${hex(topPage)})`);
    }
  }
  return {
    kind: 'spapr',
    id,
    variant,
    windowSlots,
    windowBases,
    pageShifts,
    maxLevels,
    dma32Start,
    dma32Size,
  };
}

function parsePageShifts(v: unknown, path: string): number[] {
  const shifts = array(v, path, 1).map((s, i) => integer(s, item(path, i), 12, 40));
  shifts.forEach((s, i) => {
    if (i > 0 && s <= shifts[i - 1]!)
      bad(item(path, i), 'page shifts must be ascending and unique');
  });
  if (shifts[0] !== 12) bad(path, "must include 12 (the default window's 4 KiB pages)");
  return shifts;
}

const DEVICE_KEYS = [
  'bdf',
  'vendor',
  'device',
  'subsystemVendor',
  'subsystemDevice',
  'class',
  'revision',
  'pcie',
  'bars',
  'hotReset',
  'group',
  'iommu',
  'reservedRegions',
  'irq',
  'model',
  'sriov',
  'sriovTotalVfs',
  'sriovVf',
  'physfn',
];

function parseDevice(v: unknown, path: string, iommus: readonly IommuSpec[]): PciDeviceSpec {
  const rec = object(v, path, DEVICE_KEYS, ['bdf', 'vendor', 'device', 'class', 'group']);
  const bdf = parseBdf(rec.bdf, at(path, 'bdf'));
  const vendor = hexId(rec.vendor, at(path, 'vendor'), 16);
  if (vendor === 0 || vendor === 0xffff) bad(at(path, 'vendor'), 'must not be 0x0000 or 0xffff');
  const device = hexId(rec.device, at(path, 'device'), 16);
  if (device === 0xffff) bad(at(path, 'device'), 'must not be 0xffff');
  const out: {
    -readonly [K in keyof PciDeviceSpec]: PciDeviceSpec[K];
  } = { bdf, vendor, device, class: 0, bars: [], group: 0, iommu: '' };
  if (rec.subsystemVendor !== undefined) {
    out.subsystemVendor = hexId(rec.subsystemVendor, at(path, 'subsystemVendor'), 16);
  }
  if (rec.subsystemDevice !== undefined) {
    out.subsystemDevice = hexId(rec.subsystemDevice, at(path, 'subsystemDevice'), 16);
  }
  out.class = hexId(rec.class, at(path, 'class'), 24);
  if (rec.revision !== undefined) out.revision = hexId(rec.revision, at(path, 'revision'), 8);
  if (rec.pcie !== undefined) out.pcie = boolean(rec.pcie, at(path, 'pcie'));
  out.bars = rec.bars === undefined ? [] : parseBars(rec.bars, at(path, 'bars'));
  if (rec.hotReset !== undefined) {
    out.hotReset = oneOf(rec.hotReset, at(path, 'hotReset'), ['slot', 'bus', 'none'] as const);
  }
  out.group = integer(rec.group, at(path, 'group'), 0, 0x7fff_ffff);

  const ip = at(path, 'iommu');
  if (rec.iommu === undefined) {
    if (iommus.length !== 1) bad(ip, `required (the host has ${iommus.length} IOMMUs)`);
    out.iommu = iommus[0]!.id;
  } else {
    // null: no IOMMU translates the device
    out.iommu = rec.iommu === null ? '' : string(rec.iommu, ip);
  }
  const unit = iommus.find((u) => u.id === out.iommu);
  if (!unit && out.iommu !== '') {
    bad(ip, `unknown IOMMU '${out.iommu}' (known: ${iommus.map((u) => u.id).join(', ')})`);
  }

  if (rec.reservedRegions !== undefined) {
    const rp = at(path, 'reservedRegions');
    if (!unit) bad(rp, 'a device without IOMMU has no reserved regions');
    if (unit.kind === 'mock') bad(rp, 'devices behind a mock IOMMU have no reserved regions');
    out.reservedRegions = array(rec.reservedRegions, rp).map((r, i) =>
      parseReserved(r, item(rp, i)),
    );
  }
  if (rec.sriov !== undefined) out.sriov = integer(rec.sriov, at(path, 'sriov'), 0, 0xffff);
  if (rec.sriovTotalVfs !== undefined) {
    const tp = at(path, 'sriovTotalVfs');
    if (out.sriov === undefined) bad(tp, 'only an SR-IOV PF (with sriov) has TotalVFs');
    out.sriovTotalVfs = integer(rec.sriovTotalVfs, tp, out.sriov, 0xffff);
    if (out.sriovTotalVfs > out.sriov && rec.sriovVf === undefined) {
      bad(at(path, 'sriovVf'), 'required when sriovTotalVfs exceeds sriov');
    }
  }
  if (rec.sriovVf !== undefined) out.sriovVf = parseVf(rec.sriovVf, at(path, 'sriovVf'));
  if (rec.physfn !== undefined) {
    const pp = at(path, 'physfn');
    out.physfn = parseBdf(rec.physfn, pp);
    if (out.physfn === bdf) bad(pp, 'a VF cannot be its own PF');
    if (out.sriov !== undefined) bad(at(path, 'sriov'), 'a VF (it has physfn) cannot be a PF');
  }
  if (rec.irq !== undefined) out.irq = parseIrq(rec.irq, at(path, 'irq'), out.bars);
  if (out.physfn !== undefined && out.irq?.intx === true) {
    bad(at(at(path, 'irq'), 'intx'), 'a VF has no INTx pin');
  }
  const irq = effectiveIrq(out);
  if (irq.msix > 0) checkMsix(out, irq, path);
  if (rec.model !== undefined) out.model = parseModel(rec.model, at(path, 'model'), out, irq);
  return out;
}

const VF_KEYS = ['device', 'bars', 'irq', 'offset', 'stride'];

/** A PF's VF template (`sriovVf`): device ID, BARs, interrupts (no INTx), offset and stride. */
function parseVf(v: unknown, path: string): SriovVfSpec {
  const rec = object(v, path, VF_KEYS, ['device']);
  const device = hexId(rec.device, at(path, 'device'), 16);
  if (device === 0xffff) bad(at(path, 'device'), 'must not be 0xffff');
  const bars = rec.bars === undefined ? [] : parseBars(rec.bars, at(path, 'bars'));
  const out: { -readonly [K in keyof SriovVfSpec]: SriovVfSpec[K] } = { device, bars };
  if (rec.irq !== undefined) {
    out.irq = parseIrq(rec.irq, at(path, 'irq'), bars);
    if (out.irq.intx === true) bad(at(at(path, 'irq'), 'intx'), 'a VF has no INTx pin');
  }
  if (rec.offset !== undefined) out.offset = integer(rec.offset, at(path, 'offset'), 1, 0xffff);
  if (rec.stride !== undefined) out.stride = integer(rec.stride, at(path, 'stride'), 1, 0xffff);
  return out;
}

function parseBdf(v: unknown, path: string): string {
  const s = string(v, path);
  const m = BDF_RE.exec(s);
  if (!m) bad(path, `must look like DDDD:BB:DD.F, e.g. 0000:03:00.0 (got "${s}")`);
  const dev = Number.parseInt(m[3]!, 16);
  if (dev > 0x1f) bad(path, `device number ${hex(dev)} is above 0x1f`);
  return s.toLowerCase();
}

function parseBars(v: unknown, path: string): BarSpec[] {
  const raw = array(v, path);
  if (raw.length > 6) bad(path, `a function has at most 6 BARs (got ${raw.length})`);
  /** BAR number → position in `bars` of the BAR using it. */
  const owner = new Map<number, number>();
  return raw.map((b, i) => {
    const p = item(path, i);
    const rec = object(b, p, ['index', 'kind', 'size', 'prefetchable'], ['index', 'kind', 'size']);
    const index = integer(rec.index, at(p, 'index'), 0, 5);
    const kind = oneOf(rec.kind, at(p, 'kind'), BAR_KINDS);
    const size = u64(rec.size, at(p, 'size'));
    const sp = at(p, 'size');
    if (!isPow2(size)) bad(sp, `must be a power of two (got ${hex(size)})`);
    if (kind === 'io') {
      if (size < 4n || size > 256n) bad(sp, `an I/O BAR is 4 to 256 bytes (got ${hex(size)})`);
    } else {
      if (size < 16n) bad(sp, `a memory BAR is at least 16 bytes (got ${hex(size)})`);
      if (kind === 'mem32' && size > 1n << 31n) {
        bad(sp, `a 32-bit memory BAR is at most 2 GiB (got ${hex(size)})`);
      }
      if (size > 1n << 63n) bad(sp, `must be at most 2^63 (got ${hex(size)})`);
    }
    const prefetchable =
      rec.prefetchable === undefined ? false : boolean(rec.prefetchable, at(p, 'prefetchable'));
    if (prefetchable && kind === 'io')
      bad(at(p, 'prefetchable'), 'an I/O BAR cannot be prefetchable');
    const used = kind === 'mem64' ? [index, index + 1] : [index];
    if (kind === 'mem64' && index === 5) {
      bad(at(p, 'index'), 'a 64-bit BAR also takes index + 1: its index is at most 4');
    }
    for (const n of used) {
      const o = owner.get(n);
      if (o !== undefined) bad(at(p, 'index'), `BAR ${n} is already taken by bars[${o}]`);
    }
    for (const n of used) owner.set(n, i);
    return { index, kind, size, prefetchable };
  });
}

function parseReserved(v: unknown, path: string): ReservedRegionSpec {
  const rec = object(v, path, ['start', 'last', 'kind'], ['start', 'last', 'kind']);
  const start = u64(rec.start, at(path, 'start'));
  const last = u64(rec.last, at(path, 'last'));
  if (last < start) bad(at(path, 'last'), `must be ≥ start (${hex(start)}); last is inclusive`);
  const kind = oneOf(rec.kind, at(path, 'kind'), RESERVED_KINDS);
  return { start, last, kind };
}

const MSI_COUNTS = [0, 1, 2, 4, 8, 16, 32];

function parseIrq(v: unknown, path: string, bars: readonly BarSpec[]): IrqSpec {
  const keys = ['intx', 'msi', 'msix', 'msixBar', 'msixTableOffset', 'msixPbaOffset'];
  const rec = object(v, path, keys);
  const out: { -readonly [K in keyof IrqSpec]: IrqSpec[K] } = {};
  if (rec.intx !== undefined) out.intx = boolean(rec.intx, at(path, 'intx'));
  if (rec.msi !== undefined) {
    out.msi = integer(rec.msi, at(path, 'msi'), 0, 32);
    if (!MSI_COUNTS.includes(out.msi)) {
      bad(at(path, 'msi'), `must be 0 or a power of two up to 32 (got ${out.msi})`);
    }
  }
  if (rec.msix !== undefined) out.msix = integer(rec.msix, at(path, 'msix'), 0, 2048);
  for (const k of ['msixBar', 'msixTableOffset', 'msixPbaOffset'] as const) {
    if (rec[k] !== undefined && !out.msix) bad(at(path, k), 'only allowed with msix > 0');
  }
  if (rec.msixBar !== undefined) {
    const p = at(path, 'msixBar');
    const n = integer(rec.msixBar, p, 0, 5);
    if (!bars.some((b) => b.index === n && b.kind !== 'io')) {
      bad(p, `BAR ${n} is not one of the device's memory BARs`);
    }
    out.msixBar = n;
  }
  for (const k of ['msixTableOffset', 'msixPbaOffset'] as const) {
    if (rec[k] === undefined) continue;
    const off = u64(rec[k], at(path, k));
    if (off % 8n !== 0n) bad(at(path, k), `must be 8-byte aligned (got ${hex(off)})`);
    out[k] = off;
  }
  return out;
}

/** The MSI-X table and PBA fit in their BAR and do not overlap. */
function checkMsix(dev: PciDeviceSpec, irq: ReturnType<typeof effectiveIrq>, path: string): void {
  const ip = at(path, 'irq');
  const bar = dev.bars.find((b) => b.index === irq.msixBar);
  if (!bar) bad(at(ip, 'msix'), 'MSI-X needs a memory BAR to hold its table');
  const table = msixTableBytes(irq.msix);
  const pba = msixPbaBytes(irq.msix);
  const where = `BAR ${bar.index} (${hex(bar.size)} bytes)`;
  if (irq.msixTableOffset + table > bar.size) {
    const p = dev.irq?.msixTableOffset !== undefined ? 'msixTableOffset' : 'msix';
    bad(
      at(ip, p),
      `the MSI-X table (${hex(table)} bytes at ${hex(irq.msixTableOffset)}) does not fit in ${where}`,
    );
  }
  const p = dev.irq?.msixPbaOffset !== undefined ? 'msixPbaOffset' : 'msix';
  if (irq.msixPbaOffset + pba > bar.size) {
    bad(
      at(ip, p),
      `the MSI-X PBA (${hex(pba)} bytes at ${hex(irq.msixPbaOffset)}) does not fit in ${where}`,
    );
  }
  const overlap =
    irq.msixPbaOffset < irq.msixTableOffset + table &&
    irq.msixTableOffset < irq.msixPbaOffset + pba;
  if (overlap) bad(at(ip, p), 'the MSI-X PBA overlaps the MSI-X table');
}
