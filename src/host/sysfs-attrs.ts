/**
 * The sysfs and debugfs files whose contents the kernel generates when read
 * (or acts on when written), served by the engine rather than the static
 * fake tree (src/server/sysfs.ts writes everything else):
 *
 * - `/sys/bus/pci/devices/<PF>/sriov_numvfs` (and the same file under
 *   `/sys/devices/pciDDDD:BB/<PF>/`): the VFs enabled; a write configures
 *   them (src/host/sriov.ts).
 * - `/sys/kernel/debug/iommu/intel/<BDF>/domain_translation_struct` for a
 *   function behind a VT-d unit: drivers/iommu/intel/debugfs.c's dump of
 *   the domain the function is attached to, in legacy (non-scalable) mode —
 *   a `Device DDDD:BB:DD.F @0x<pgd>` line, the column line, then one line
 *   per leaf: the IOVA page frame number and the entry of each level from
 *   the top (PML5E, PML4E, PDPE, then PDE and PTE when the walk reaches
 *   them; a 4-level table prints 0 for PML5E). Leaves are the live page
 *   table's (superpages where the mapping used them: PS, bit 7); R (bit 0)
 *   and W (bit 1) follow the mapping. Table addresses are synthesized (the
 *   model keeps no table pages): stable per table, 4 KiB aligned. Without a
 *   paging domain (DMA blocked or not attached to a user domain) only the
 *   two header lines appear. At most MAX_LEAVES leaves are listed.
 * - `/sys/kernel/debug/{failslab,fail_page_alloc}/*`: fault injection's
 *   attributes, kept and parsed as debugfs does (src/host/fault-attrs.ts).
 */
import { fail } from '../abi/errno.ts';
import { IntelIommu } from '../drivers/intel/driver.ts';
import { vtdCapReg, vtdEcapReg } from '../drivers/intel/hw-info.ts';
import { faultAttr, faultAttrPaths } from './fault-attrs.ts';
import type { Kernel } from './kernel.ts';
import { sriovNumvfs, writeSriovNumvfs } from './sriov.ts';

/** One generated file. */
export interface SysfsAttr {
  /** The contents now (show). */
  show(): Uint8Array;
  /** A write (store); absent on read-only files (EACCES at open for writing). */
  store?(text: string): void;
}

/** Leaves listed by domain_translation_struct at most. */
export const MAX_LEAVES = 1 << 16;

const DEBUGFS_INTEL = '/sys/kernel/debug/iommu/intel/';
const text = (s: string) => new TextEncoder().encode(s);

/** The generated file at `path`, if the kernel has one there. */
export function sysfsAttr(kernel: Kernel, path: string): SysfsAttr | undefined {
  const fault = faultAttr(kernel, path);
  if (fault) return fault;
  if (path.startsWith(DEBUGFS_INTEL)) {
    const m = /^([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])\/domain_translation_struct$/.exec(
      path.slice(DEBUGFS_INTEL.length),
    );
    const entry = m ? kernel.host.devices.get(m[1]!) : undefined;
    if (!entry || !(entry.device.driver instanceof IntelIommu)) return undefined;
    return { show: () => text(domainTranslationStruct(kernel, entry.spec.bdf)) };
  }
  const m =
    /^\/sys\/(?:bus\/pci\/devices|devices\/pci[0-9a-f]{4}:[0-9a-f]{2})\/([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])\/sriov_numvfs$/.exec(
      path,
    );
  const pf = m ? kernel.host.devices.get(m[1]!) : undefined;
  if (!pf || pf.spec.sriov === undefined) return undefined;
  return {
    show: () => text(`${sriovNumvfs(kernel, pf.spec.bdf)}\n`),
    store: (t) => writeSriovNumvfs(kernel, pf.spec.bdf, t),
  };
}

/** Every generated file's path (the engine marks them in the fake tree). */
export function sysfsAttrPaths(kernel: Kernel): string[] {
  const out = faultAttrPaths();
  for (const { device, spec } of kernel.host.devices.values()) {
    if (spec.sriov !== undefined) out.push(`/sys/bus/pci/devices/${spec.bdf}/sriov_numvfs`);
    if (device.driver instanceof IntelIommu) {
      out.push(`${DEBUGFS_INTEL}${spec.bdf}/domain_translation_struct`);
    }
  }
  return out;
}

/** Each VT-d unit of the host with its capability registers (sysfs `intel-iommu/{cap,ecap}`). */
export function vtdUnits(kernel: Kernel): { id: string; cap: bigint; ecap: bigint }[] {
  return [...kernel.host.iommus]
    .filter((e): e is [string, IntelIommu] => e[1] instanceof IntelIommu)
    .map(([id, d]) => ({ id, cap: vtdCapReg(d.features), ecap: vtdEcapReg(d.features) }));
}

/** VT-d second-level entry bits. */
const PTE = { R: 1n, W: 2n, PS: 1n << 7n } as const;
const VTD_PAGE_SHIFT = 12n;
const STRIDE = 9n;

/** domain_translation_struct of `bdf` (see the file's doc). */
export function domainTranslationStruct(kernel: Kernel, bdf: string): string {
  const { device } = kernel.host.devices.get(bdf)!;
  const domain = device.group.domain;
  const aperture = domain?.apertures[0];
  const width = BigInt((device.driver as IntelIommu).features.addressWidth);
  const levels = (width - VTD_PAGE_SHIFT) / STRIDE;
  const [seg, bus, slot] = bdf.split(/[:.]/);
  const pgd = tableAddr(levels + 1n, 0n);
  const lines = [
    `Device ${seg}:${bus}:${slot}.${bdf.at(-1)} @0x${pgd.toString(16)}`,
    [
      'IOVA_PFN'.padEnd(17),
      'PML5E'.padEnd(18),
      'PML4E'.padEnd(18),
      'PDPE'.padEnd(18),
      'PDE'.padEnd(18),
      'PTE',
    ].join('\t'),
  ];
  const table = aperture?.table;
  if (table) {
    let leaves = 0;
    for (const run of table.runs(aperture.start, aperture.last - aperture.start + 1n)) {
      const leafLevel = BigInt(run.level) + 1n; // VT-d levels count from 1
      for (let at = 0n; at < run.length && leaves < MAX_LEAVES; at += run.pageSize, leaves++) {
        const iova = run.iova + at;
        const path = new Array<bigint>(6).fill(0n);
        for (let l = levels; l > leafLevel; l--)
          path[Number(l)] = tableAddr(l - 1n, iova) | PTE.R | PTE.W;
        const prot = (run.prot & 1 ? PTE.R : 0n) | (run.prot & 2 ? PTE.W : 0n);
        path[Number(leafLevel)] = (run.phys + at) | prot | (leafLevel > 1n ? PTE.PS : 0n);
        lines.push(leafLine(iova, path));
      }
    }
  }
  return `${lines.join('\n')}\n`;
}

/** dump_page_info(): the PFN, PML5E..PDPE always, PDE and PTE while non-zero. */
function leafLine(iova: bigint, path: bigint[]): string {
  const h = (v: bigint) => `0x${v.toString(16).padStart(16, '0')}`;
  let s = `0x${(iova >> VTD_PAGE_SHIFT).toString(16).padStart(13, '0')} |\t${h(path[5]!)}\t${h(path[4]!)}\t${h(path[3]!)}`;
  if (path[2]) {
    s += `\t${h(path[2])}`;
    if (path[1]) s += `\t${h(path[1])}`;
  }
  return s;
}

/** A synthesized, stable address for the level-`level` table covering `iova`. */
function tableAddr(level: bigint, iova: bigint): bigint {
  const index = iova >> (VTD_PAGE_SHIFT + STRIDE * level);
  return (0x10_0000_0000n + (level << 32n) + index * 0x1000n) & ((1n << 52n) - 1n);
}

/**
 * The file ops of an open generated file: reads from a per-open position,
 * writes store. A read-only file opened for writing: EACCES at open in sysfs
 * (kernfs checks the attribute's ops), EINVAL at write in debugfs (the open
 * succeeds for root; the file has no write op), as Linux 7.2 answers.
 */
export function openSysfsAttr(kernel: Kernel, path: string, write: boolean) {
  const attr = sysfsAttr(kernel, path);
  if (!attr) fail('ENOENT', `${path} is not an attribute uiommu serves`, 'path_openat');
  const debugfs = path.startsWith('/sys/kernel/debug/');
  if (write && !attr.store && !debugfs)
    fail('EACCES', 'a read-only sysfs attribute', 'kernfs_fop_open');
  let pos = 0n;
  return {
    kind: 'sysfs',
    read(_caller: unknown, length: number, offset: bigint | undefined): Uint8Array {
      const at = offset ?? pos;
      const out = attr.show().slice(Number(at), Number(at) + length);
      if (offset === undefined) pos += BigInt(out.length);
      return out;
    },
    write(_caller: unknown, data: Uint8Array): number {
      if (!attr.store) fail('EINVAL', 'a read-only debugfs file has no write', 'vfs_write');
      attr.store(new TextDecoder('latin1').decode(data)); // one character a byte, as C sees them
      return data.length;
    },
    release() {},
  };
}
