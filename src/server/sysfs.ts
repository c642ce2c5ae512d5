/**
 * The fake `sys/` and `dev/` trees under `UIOMMU_ROOT` that the preload
 * library redirects `/sys/...` and `/dev/...` paths into, written from a
 * Kernel's host topology (facts: vfio-device.md §6, selftest-mock.md §4.4).
 *
 * For every PCI function `<BDF>` (`DDDD:BB:DD.F`):
 *
 * - `sys/devices/pciDDDD:BB/<BDF>/`: `vendor`, `device`,
 *   `subsystem_vendor`, `subsystem_device`, `class`, `revision` (hex text),
 *   `numa_node` (0), `resource` (13 lines `start end flags`; BAR addresses
 *   are synthesized, see `assignBars`), `resourceN` per BAR (a sparse file
 *   of the BAR's size), `config` (the function's own config space when the
 *   tree is written: 256 or 4096 bytes), `driver_override` (`(null)`, or
 *   `vfio-pci` for a VF a vfio-pci PF created), link `subsystem` →
 *   `../../../bus/pci`, link `iommu` → its VT-d unit; an SR-IOV PF has
 *   `sriov_numvfs` (engine-generated) and `sriov_totalvfs` and `virtfnN`
 *   links to its VFs, a VF a `physfn` link when its PF is a host device.
 * - Each VT-d unit: `sys/devices/virtual/iommu/<id>/intel-iommu/{cap,ecap}`
 *   and `sys/class/iommu/<id>`.
 * - Files the engine generates when read (src/host/sysfs-attrs.ts:
 *   `sriov_numvfs`, debugfs `domain_translation_struct` and the fault
 *   injection attributes of `failslab/`, `fail_page_alloc/`): an empty
 *   placeholder here and a marker `.engine/<path>` telling the library to
 *   ask the engine (SYSFS_READ for reads, OPEN for writes).
 * - `sys/bus/pci/devices/<BDF>` → `../../../devices/pciDDDD:BB/<BDF>`.
 * - When the device has a VFIO group (bound to vfio-pci; a device without
 *   IOMMU only in no-IOMMU mode): links `iommu_group` →
 *   `../../../kernel/iommu_groups/N`, `driver` →
 *   `../../../bus/pci/drivers/vfio-pci` and the driver's own link to the
 *   device; with a cdev (no-IOMMU devices have none) `vfio-dev/vfioX/dev`
 *   (`major:minor`) and `sys/class/vfio-dev/vfioX` → that directory.
 *
 * Per VFIO group on IOMMU group N: `sys/kernel/iommu_groups/N/devices/<BDF>`
 * links, `reserved_regions` (merged per type, `0x%016llx 0x%016llx type`)
 * and `type` (the default domain: `DMA-FQ` behind a VT-d unit, `unknown`
 * otherwise), plus `sys/class/vfio/<node name>/dev` (`N`, or `noiommu-N`).
 * A no-IOMMU fake group has empty `reserved_regions`, type `unknown` and
 * `name` = `vfio-noiommu`. IOMMU groups without a VFIO group are left out.
 * Misc devices: `sys/class/misc/{iommu,vfio}/dev`. Modules:
 * `sys/module/{vfio,vfio_pci,iommufd}` (and `vfio_iommu_type1` or
 * `vfio_iommu_spapr_tce` under the legacy container), `vfio/parameters/enable_unsafe_noiommu_mode`
 * = `Y` with the `vfioNoiommu` personality, else `N`;
 * `vfio_pci/parameters/enable_sriov` likewise with `vfioPciEnableSriov`.
 * After SR-IOV changes the topology, `rewriteFakeTree` writes it again.
 * `sys/kernel/mm/transparent_hugepage/hpage_pmd_size`: the real host's
 * value when readable, else 2097152.
 *
 * `dev/`: every node of `charDevices` as an empty regular file (the
 * library answers stat of these paths through STAT). The device numbers
 * are the ones in devices.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { errnoName } from '../abi/errno.ts';
import type { Kernel } from '../host/kernel.ts';
import { treeAddon } from '../host/native.ts';
import { sriovNumvfs, sriovTotalvfs } from '../host/sriov.ts';
import { sysfsAttrPaths, vtdUnits } from '../host/sysfs-attrs.ts';
import type { PciDeviceSpec } from '../host/topology/index.ts';
import type { ReservedKind, ReservedRegion } from '../iommu/device.ts';
import { vfioCdevName } from '../vfio/cdev.ts';
import { isLegacyContainer } from '../vfio/container.ts';
import { PciConfigSpace } from '../vfio/pci/config-space.ts';
import {
  type CharDevice,
  cdevNode,
  charDevices,
  groupNode,
  IOMMU_MINOR,
  MISC_MAJOR,
  VFIO_MINOR,
} from './devices.ts';

/** The host file holding the PMD huge page size. */
const HOST_HPAGE_PMD_SIZE = '/sys/kernel/mm/transparent_hugepage/hpage_pmd_size';

/** Lines of a non-bridge device's `resource` file: 6 BARs, the ROM, 6 SR-IOV BARs. */
const RESOURCE_LINES = 13;
/** The module of each legacy container backend (the no-IOMMU one is part of vfio). */
const LEGACY_BACKEND_MODULES: Readonly<Record<string, string>> = {
  'vfio-iommu-type1': 'vfio_iommu_type1',
  'vfio-iommu-spapr-tce': 'vfio_iommu_spapr_tce',
};

/** IORESOURCE_* flag bits shown in `resource` (with the BAR's own low type bits). */
const IORESOURCE = {
  IO: 0x100,
  MEM: 0x200,
  PREFETCH: 0x2000,
  SIZEALIGN: 0x40000,
  MEM_64: 0x100000,
};

/** Write the trees for `kernel` under `root` (which must exist). */
export function writeFakeTree(kernel: Kernel, root: string): void {
  const w = new TreeWriter(root);
  const sys = `${root}/sys`;
  const pci = (bdf: string) =>
    [...kernel.vfioGroups.values()].flatMap((g) => g.devices).find((d) => d.name === bdf)?.pci;
  const sriovByVfio = (pf: string) => {
    const entry = kernel.host.devices.get(pf);
    return entry !== undefined && kernel.vfioGroups.has(entry.device.group.id);
  };
  writeIommus(w, kernel, sys);
  const units = new Set(vtdUnits(kernel).map((u) => u.id));
  const bars = assignBars([...kernel.host.devices.values()].map((d) => d.spec));
  for (const { device, spec } of kernel.host.devices.values()) {
    const bdf = spec.bdf;
    const devDir = devDirOf(bdf);
    const dir = `${sys}/${devDir}`;
    w.file(dir, 'vendor', `${hex(spec.vendor, 4)}\n`);
    w.file(dir, 'device', `${hex(spec.device, 4)}\n`);
    w.file(dir, 'subsystem_vendor', `${hex(spec.subsystemVendor ?? 0, 4)}\n`);
    w.file(dir, 'subsystem_device', `${hex(spec.subsystemDevice ?? 0, 4)}\n`);
    w.file(dir, 'class', `${hex(spec.class, 6)}\n`);
    w.file(dir, 'revision', `${hex(spec.revision ?? 0, 2)}\n`);
    w.file(dir, 'numa_node', '0\n');
    w.file(dir, 'resource', resourceText(spec, bars.get(bdf)!));
    for (const bar of spec.bars) w.sized(dir, `resource${bar.index}`, bar.size);
    const config = pci(device.name)?.config ?? new PciConfigSpace(spec);
    w.file(dir, 'config', config.hwSnapshot());
    // vfio-pci sets the driver_override of the VFs its PF creates
    w.file(
      dir,
      'driver_override',
      spec.physfn && sriovByVfio(spec.physfn) ? 'vfio-pci\n' : '(null)\n',
    );
    w.link(dir, 'subsystem', '../../../bus/pci');
    w.link(`${sys}/bus/pci/devices`, bdf, `../../../${devDir}`);
    writeSriov(w, kernel, sys, spec);
    // without a VFIO group (no IOMMU, no no-IOMMU mode) vfio-pci does not take the device
    if (!kernel.vfioGroups.has(device.group.id)) continue;
    w.link(dir, 'iommu_group', `../../../kernel/iommu_groups/${device.group.id}`);
    if (units.has(spec.iommu)) w.link(dir, 'iommu', `../../virtual/iommu/${spec.iommu}`);
    w.link(dir, 'driver', '../../../bus/pci/drivers/vfio-pci');
    w.link(`${sys}/bus/pci/drivers/vfio-pci`, bdf, `../../../../${devDir}`);
    w.link(`${sys}/kernel/iommu_groups/${device.group.id}/devices`, bdf, `../../../../${devDir}`);
    const cdev = cdevNode(kernel, bdf);
    const name = vfioCdevName(kernel, bdf);
    if (cdev && name) {
      w.file(`${dir}/vfio-dev/${name}`, 'dev', devText(cdev));
      w.link(`${sys}/class/vfio-dev`, name, `../../${devDir}/vfio-dev/${name}`);
    }
  }
  [...kernel.vfioGroups.values()].forEach((vfioGroup, index) => {
    const group = vfioGroup.iommuGroup;
    const dir = `${sys}/kernel/iommu_groups/${group.id}`;
    if (vfioGroup.noiommu) {
      // no IOMMU behind it: no reserved regions, no default domain
      w.file(dir, 'reserved_regions', '');
      w.file(dir, 'type', 'unknown\n');
    } else {
      w.file(
        dir,
        'reserved_regions',
        reservedRegionsText(group.devices.flatMap((d) => d.reservedRegions)),
      );
      const unit = group.devices[0] && kernel.host.devices.get(group.devices[0].name)?.spec.iommu;
      const kind = unit === undefined ? undefined : kernel.host.iommuSpecs.get(unit)?.kind;
      w.file(dir, 'type', kind === 'intel' ? 'DMA-FQ\n' : 'unknown\n');
    }
    const name = vfioGroup.iommuGroupName;
    if (name !== undefined) w.file(dir, 'name', `${name}\n`);
    w.file(`${sys}/class/vfio/${vfioGroup.nodeName}`, 'dev', devText(groupNode(vfioGroup, index)));
  });
  w.dir(`${sys}/bus/pci/drivers/vfio-pci`);
  w.dir(`${sys}/class/vfio-dev`);
  w.file(`${sys}/class/misc/iommu`, 'dev', `${MISC_MAJOR}:${IOMMU_MINOR}\n`);
  w.file(`${sys}/class/misc/vfio`, 'dev', `${MISC_MAJOR}:${VFIO_MINOR}\n`);
  w.file(
    `${sys}/module/vfio/parameters`,
    'enable_unsafe_noiommu_mode',
    kernel.personality.vfioNoiommu ? 'Y\n' : 'N\n',
  );
  w.dir(`${sys}/module/vfio_pci`);
  w.dir(`${sys}/module/iommufd`);
  // the legacy container's backend modules (no module is loaded for iommufd's compat)
  for (const d of isLegacyContainer(kernel.personality) ? kernel.vfioIommuDrivers : []) {
    const module = LEGACY_BACKEND_MODULES[d.name];
    if (module) w.dir(`${sys}/module/${module}`);
  }
  w.file(`${sys}/kernel/mm/transparent_hugepage`, 'hpage_pmd_size', `${hpagePmdSize()}\n`);
  w.file(
    `${sys}/module/vfio_pci/parameters`,
    'enable_sriov',
    kernel.personality.vfioPciEnableSriov ? 'Y\n' : 'N\n',
  );
  for (const node of charDevices(kernel)) {
    const path = `${root}${node.path}`;
    w.file(dirname(path), basename(path), '');
  }
  w.flush(); // what is there so far: an engine-generated file may be one of it
  // the files the engine generates: a placeholder in the tree (stat, readdir)
  // and a marker under .engine/ telling the library to ask the engine
  for (const path of sysfsAttrPaths(kernel)) {
    const at = `${root}${path}`;
    if (!existsSync(at)) w.file(dirname(at), basename(at), '');
    const marker = `${root}/${ENGINE_MARKERS}${path}`;
    w.file(dirname(marker), basename(marker), '');
  }
  w.flush();
}

/** Where the markers of engine-generated files live under the root (`.engine/sys/...`). */
export const ENGINE_MARKERS = '.engine';

/**
 * Write the trees again after the topology changed (SR-IOV VFs came or
 * went): the old `sys/`, `dev/` and markers go first.
 */
export function rewriteFakeTree(kernel: Kernel, root: string): void {
  for (const d of ['sys', 'dev', ENGINE_MARKERS]) removeTree(join(root, d));
  writeFakeTree(kernel, root);
}

/**
 * Remove `path` and everything under it, if it exists, never following a
 * link (native/tree.c: one readdir per directory; rmSync's recursive
 * removal stats every entry and tries rmdir on files).
 */
export function removeTree(path: string): void {
  const err = treeAddon().treeRemove(path);
  if (err) treeError(err, 'remove', path);
}

/** Throw the error of a failed tree operation, as node:fs would (`code`, `errno`, `path`). */
function treeError(errno: number, what: string, path: string): never {
  const code = errnoName(errno) ?? 'EIO';
  throw Object.assign(new Error(`${code}: cannot ${what} ${path}`), { code, errno, path });
}

/**
 * Each VT-d unit as `sys/devices/virtual/iommu/<id>` (a device's `iommu`
 * link points there) with `intel-iommu/{cap,ecap}` (the registers,
 * `%llx`), and `sys/class/iommu/<id>` linking to it.
 */
function writeIommus(w: TreeWriter, kernel: Kernel, sys: string): void {
  for (const { id, cap, ecap } of vtdUnits(kernel)) {
    const dir = `${sys}/devices/virtual/iommu/${id}`;
    w.file(`${dir}/intel-iommu`, 'cap', `${cap.toString(16)}\n`);
    w.file(`${dir}/intel-iommu`, 'ecap', `${ecap.toString(16)}\n`);
    w.link(`${sys}/class/iommu`, id, `../../devices/virtual/iommu/${id}`);
  }
}

/**
 * SR-IOV attributes of `spec`'s directory: a PF's `sriov_numvfs` and
 * `sriov_totalvfs` (both its enabled VF count) and `virtfnN` links to its
 * VFs, numbered in routing-ID (BDF) order; a VF's `physfn` link when its PF
 * is a host device (a PF left to a host driver is not in the tree).
 */
function writeSriov(w: TreeWriter, kernel: Kernel, sys: string, spec: PciDeviceSpec): void {
  const dir = `${sys}/${devDirOf(spec.bdf)}`;
  const linkTo = (name: string, bdf: string) =>
    w.link(dir, name, relative(dir, `${sys}/${devDirOf(bdf)}`));
  if (spec.sriov !== undefined) {
    w.file(dir, 'sriov_numvfs', `${sriovNumvfs(kernel, spec.bdf)}\n`);
    w.file(dir, 'sriov_totalvfs', `${sriovTotalvfs(kernel, spec.bdf)}\n`);
    const vfs = [...kernel.host.devices.values()]
      .filter((d) => d.spec.physfn === spec.bdf)
      .map((d) => d.spec.bdf)
      .sort();
    vfs.forEach((vf, n) => {
      linkTo(`virtfn${n}`, vf);
    });
  }
  if (spec.physfn !== undefined && kernel.host.devices.has(spec.physfn)) {
    linkTo('physfn', spec.physfn);
  }
}

/** A function's directory under `sys/`. */
function devDirOf(bdf: string): string {
  return `devices/${pciRootOf(bdf)}/${bdf}`;
}

/** `pciDDDD:BB`: the host bridge directory a function sits under. */
function pciRootOf(bdf: string): string {
  return `pci${bdf.slice(0, 7)}`;
}

/**
 * Collects the files, links and directories of a tree under a root that
 * exists, each directory once, and writes them with one addon call
 * (native/tree.c) at `flush`: through Node's fs, the ~400 entries' cold
 * wrapper code was most of the tree's cost at every start.
 */
class TreeWriter {
  /** Directories made or queued. */
  private readonly made = new Set<string>();
  private kinds = '';
  private paths: string[] = [];
  private data: (string | Uint8Array | number | undefined)[] = [];

  constructor(root: string) {
    this.made.add(root);
  }

  /** `dir` and its missing parents. */
  dir(dir: string): void {
    if (this.made.has(dir)) return;
    const parent = dirname(dir);
    if (parent !== dir) this.dir(parent);
    this.made.add(dir);
    this.queue('d', dir, undefined);
  }

  file(dir: string, name: string, data: string | Uint8Array): void {
    this.dir(dir);
    this.queue('f', `${dir}/${name}`, data);
  }

  link(dir: string, name: string, target: string): void {
    this.dir(dir);
    this.queue('l', `${dir}/${name}`, target);
  }

  /** A sparse file of `size` bytes (a BAR's resourceN: what stat shows). */
  sized(dir: string, name: string, size: bigint): void {
    this.dir(dir);
    this.queue('s', `${dir}/${name}`, Number(size));
  }

  /** Write what is queued. */
  flush(): void {
    const failed = treeAddon().treeWrite(this.kinds, this.paths, this.data);
    if (failed) treeError(failed[1], 'write', this.paths[failed[0]]!);
    this.kinds = '';
    this.paths = [];
    this.data = [];
  }

  private queue(kind: string, path: string, data: string | Uint8Array | number | undefined) {
    this.kinds += kind;
    this.paths.push(path);
    this.data.push(data);
  }
}

function hex(n: number, digits: number): string {
  return `0x${n.toString(16).padStart(digits, '0')}`;
}

function hex64(n: bigint): string {
  return `0x${n.toString(16).padStart(16, '0')}`;
}

function devText(node: CharDevice): string {
  return `${node.major}:${node.minor}\n`;
}

/** A BAR's place in the synthesized host address map. */
interface BarPlacement {
  start: bigint;
  flags: bigint;
}

/**
 * Host addresses for every BAR, in host order, each aligned to its size:
 * 32-bit memory from 0x8000_0000, 64-bit memory from 0x40_0000_0000, I/O
 * from 0x1000. Pure bookkeeping for `resource`: nothing else uses them.
 */
export function assignBars(
  devices: readonly PciDeviceSpec[],
): Map<string, Map<number, BarPlacement>> {
  const cursor = { mem32: 0x8000_0000n, mem64: 0x40_0000_0000n, io: 0x1000n };
  const out = new Map<string, Map<number, BarPlacement>>();
  for (const dev of devices) {
    const bars = new Map<number, BarPlacement>();
    for (const bar of dev.bars) {
      const size = bar.size;
      const start = (cursor[bar.kind] + size - 1n) & ~(size - 1n);
      cursor[bar.kind] = start + size;
      let flags: number;
      if (bar.kind === 'io') flags = IORESOURCE.IO | IORESOURCE.SIZEALIGN | 0x1;
      else {
        flags = IORESOURCE.MEM | IORESOURCE.SIZEALIGN;
        if (bar.kind === 'mem64') flags |= IORESOURCE.MEM_64 | 0x4;
        if (bar.prefetchable) flags |= IORESOURCE.PREFETCH | 0x8;
      }
      bars.set(bar.index, { start, flags: BigInt(flags) });
    }
    out.set(dev.bdf, bars);
  }
  return out;
}

/** The `resource` file: one `start end flags` line per resource slot, zeros when unused. */
function resourceText(spec: PciDeviceSpec, placed: Map<number, BarPlacement>): string {
  const lines: string[] = [];
  for (let i = 0; i < RESOURCE_LINES; i++) {
    const bar = spec.bars.find((b) => b.index === i);
    const at = placed.get(i);
    lines.push(
      bar && at
        ? `${hex64(at.start)} ${hex64(at.start + bar.size - 1n)} ${hex64(at.flags)}`
        : `${hex64(0n)} ${hex64(0n)} ${hex64(0n)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** What `reserved_regions` prints for a kind (hardware and software MSI both print `msi`). */
const KIND_TEXT: Record<ReservedKind, string> = {
  direct: 'direct',
  'direct-relaxable': 'direct-relaxable',
  reserved: 'reserved',
  msi: 'msi',
  'sw-msi': 'msi',
};

/**
 * A group's `reserved_regions`: its devices' regions, those of one kind
 * merged where they overlap or touch, sorted by start; `last` inclusive.
 */
export function reservedRegionsText(regions: readonly ReservedRegion[]): string {
  type Run = { start: bigint; last: bigint; kind: ReservedKind };
  const merged: Run[] = [];
  /** The latest run of each kind: the only one a region sorted by start can extend. */
  const open = new Map<ReservedKind, Run>();
  for (const r of [...regions].sort((a, b) => cmp(a.start, b.start))) {
    const prev = open.get(r.kind);
    if (prev && prev.last + 1n >= r.start) {
      if (r.last > prev.last) prev.last = r.last;
    } else {
      const run = { start: r.start, last: r.last, kind: r.kind };
      merged.push(run);
      open.set(r.kind, run);
    }
  }
  return merged.map((m) => `${hex64(m.start)} ${hex64(m.last)} ${KIND_TEXT[m.kind]}\n`).join('');
}

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The host's PMD huge page size, or 2 MiB when unreadable. */
function hpagePmdSize(): bigint {
  try {
    const text = readFileSync(HOST_HPAGE_PMD_SIZE, 'utf8').trim();
    if (/^[1-9][0-9]*$/.test(text)) return BigInt(text);
  } catch {
    // no THP on this host
  }
  return 2n << 20n;
}
