/**
 * `hostSpecToJson`: the inverse of `parseHostSpec`. Ids become 0x strings of
 * their natural width ("0x8086", class "0x020000"), every u64 a hex string,
 * so `parseHostSpec(hostSpecToJson(s))` deep-equals `s`.
 */
import type { DeviceModelSpec } from '../../vfio/pci/models.ts';
import type { BarSpec, HostSpec, IommuSpec, IrqSpec, PciDeviceSpec } from './types.ts';
import { hex } from './values.ts';

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** A JSON-ready object (pass it to JSON.stringify) describing `spec`. */
export function hostSpecToJson(spec: HostSpec): { [key: string]: Json } {
  return {
    name: spec.name,
    ...(spec.kernel !== undefined ? { kernel: spec.kernel } : {}),
    ...(spec.pageSize !== undefined ? { pageSize: spec.pageSize } : {}),
    iommus: spec.iommus.map(iommuToJson),
    devices: spec.devices.map(deviceToJson),
  };
}

function iommuToJson(u: IommuSpec): { [key: string]: Json } {
  switch (u.kind) {
    case 'intel':
      return {
        id: u.id,
        kind: u.kind,
        addressWidth: u.addressWidth,
        pgsizes: hex(u.pgsizes),
        dirtyTracking: u.dirtyTracking,
        maxPasidLog2: u.maxPasidLog2,
        snoopControl: u.snoopControl,
      };
    case 'spapr':
      return {
        id: u.id,
        kind: u.kind,
        variant: u.variant,
        windowSlots: u.windowSlots,
        windowBases: u.windowBases.map((b) => hex(b)),
        pageShifts: [...u.pageShifts],
        maxLevels: u.maxLevels,
        dma32Start: hex(u.dma32Start),
        dma32Size: hex(u.dma32Size),
      };
    case 'mock':
      return { id: u.id, kind: u.kind };
  }
}

function deviceToJson(d: PciDeviceSpec): { [key: string]: Json } {
  const out: { [key: string]: Json } = {
    bdf: d.bdf,
    vendor: hex(d.vendor, 4),
    device: hex(d.device, 4),
  };
  if (d.subsystemVendor !== undefined) out.subsystemVendor = hex(d.subsystemVendor, 4);
  if (d.subsystemDevice !== undefined) out.subsystemDevice = hex(d.subsystemDevice, 4);
  out.class = hex(d.class, 6);
  if (d.revision !== undefined) out.revision = hex(d.revision, 2);
  if (d.pcie !== undefined) out.pcie = d.pcie;
  out.bars = d.bars.map(barToJson);
  if (d.hotReset !== undefined) out.hotReset = d.hotReset;
  out.group = d.group;
  out.iommu = d.iommu === '' ? null : d.iommu;
  if (d.reservedRegions !== undefined) {
    out.reservedRegions = d.reservedRegions.map((r) => ({
      start: hex(r.start),
      last: hex(r.last),
      kind: r.kind,
    }));
  }
  if (d.irq !== undefined) out.irq = irqToJson(d.irq);
  if (d.model !== undefined) out.model = modelToJson(d.model);
  if (d.sriov !== undefined) out.sriov = d.sriov;
  if (d.sriovTotalVfs !== undefined) out.sriovTotalVfs = d.sriovTotalVfs;
  if (d.sriovVf !== undefined) {
    const vf: { [key: string]: Json } = {
      device: hex(d.sriovVf.device, 4),
      bars: d.sriovVf.bars.map(barToJson),
    };
    if (d.sriovVf.irq !== undefined) vf.irq = irqToJson(d.sriovVf.irq);
    if (d.sriovVf.offset !== undefined) vf.offset = d.sriovVf.offset;
    if (d.sriovVf.stride !== undefined) vf.stride = d.sriovVf.stride;
    out.sriovVf = vf;
  }
  if (d.physfn !== undefined) out.physfn = d.physfn;
  return out;
}

function barToJson(b: BarSpec): { [key: string]: Json } {
  return { index: b.index, kind: b.kind, size: hex(b.size), prefetchable: b.prefetchable };
}

function irqToJson(irq: IrqSpec): { [key: string]: Json } {
  const out: { [key: string]: Json } = {};
  if (irq.intx !== undefined) out.intx = irq.intx;
  if (irq.msi !== undefined) out.msi = irq.msi;
  if (irq.msix !== undefined) out.msix = irq.msix;
  if (irq.msixBar !== undefined) out.msixBar = irq.msixBar;
  if (irq.msixTableOffset !== undefined) out.msixTableOffset = hex(irq.msixTableOffset);
  if (irq.msixPbaOffset !== undefined) out.msixPbaOffset = hex(irq.msixPbaOffset);
  return out;
}

function modelToJson(m: DeviceModelSpec): { [key: string]: Json } {
  if (m.kind === 'ioat' && m.xfercap !== undefined) return { kind: m.kind, xfercap: m.xfercap };
  if (m.kind !== 'nvme' || m.namespaces === undefined) return { kind: m.kind };
  const namespaces = m.namespaces.map((n) => ({
    size: hex(n.size),
    lbaSize: n.lbaSize,
    ...(n.file !== undefined ? { file: n.file } : {}),
  }));
  return { kind: m.kind, namespaces };
}
