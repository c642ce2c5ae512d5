/**
 * `instantiate`: a {@link HostSpec} made live: one driver per IOMMU, one
 * {@link Group} per group number, one iommu {@link Device} per PCI function
 * (named by its BDF).
 */
import { IntelIommu } from '../../drivers/intel/driver.ts';
import { intelReservedRegions } from '../../drivers/intel/reserved.ts';
import { MockDevice } from '../../drivers/mock/device.ts';
import { MockIommu } from '../../drivers/mock/driver.ts';
import { SpaprIommu } from '../../drivers/spapr/driver.ts';
import { Device, type ReservedRegion } from '../../iommu/device.ts';
import type { IommuDriver } from '../../iommu/driver.ts';
import { Group } from '../../iommu/group.ts';
import { NO_IOMMU } from '../../iommu/no-iommu.ts';
import type { PhysMemory } from '../../iommu/phys-memory.ts';
import { validateHostSpec } from './load.ts';
import type { HostSpec, IommuSpec, PciDeviceSpec } from './types.ts';

/** Builds the driver of one IOMMU unit; pass your own to `instantiate` to override kinds. */
export type IommuFactory = (spec: IommuSpec) => IommuDriver;

/**
 * The default factory: each kind's driver with the spec's parameters
 * ('intel' → {@link IntelIommu}, 'spapr' → {@link SpaprIommu} on its
 * variant's preset, 'mock' → a fresh {@link MockIommu}).
 */
export function createIommu(spec: IommuSpec): IommuDriver {
  switch (spec.kind) {
    case 'intel':
      return new IntelIommu({
        addressWidth: spec.addressWidth,
        pgsizeBitmap: spec.pgsizes,
        dirtyTracking: spec.dirtyTracking,
        maxPasidLog2: spec.maxPasidLog2,
        snoopControl: spec.snoopControl,
      });
    case 'mock':
      return new MockIommu();
    case 'spapr':
      return new SpaprIommu({
        preset: spec.variant,
        name: spec.id,
        maxWindows: spec.windowSlots,
        slotBases: [spec.windowBases[0]!, spec.windowBases[1] ?? spec.windowBases[0]!],
        pgsizes: spec.pageShifts.reduce((m, sh) => m | (1n << BigInt(sh)), 0n),
        maxLevels: spec.maxLevels,
        dma32Size: spec.dma32Size,
      });
  }
}

/** One instantiated PCI function. */
export interface HostDevice {
  readonly device: Device;
  readonly spec: PciDeviceSpec;
}

/** The live objects of a host, each map in spec order. */
export interface HostInstance {
  readonly spec: HostSpec;
  /** IommuSpec id → driver. */
  readonly iommus: Map<string, IommuDriver>;
  /** IommuSpec id → its spec. */
  readonly iommuSpecs: Map<string, IommuSpec>;
  /** Group number → group (its `devices` are the members, in spec order). */
  readonly groups: Map<number, Group>;
  /** BDF → device and its spec. */
  readonly devices: Map<string, HostDevice>;
}

export interface InstantiateOptions {
  /** Driver factory; default {@link createIommu}. */
  readonly createIommu?: IommuFactory;
}

/**
 * Build the drivers, groups and devices of `spec` (checked first with
 * {@link validateHostSpec}: a HostSpecError names the bad field). A device behind an intel unit reports the
 * x86 MSI window in addition to its own reserved regions; a device behind a
 * MockIommu is a {@link MockDevice} with flags 0; a device without IOMMU
 * (`iommu` '') is driven by NO_IOMMU, alone in its group.
 *
 * @example
 * const host = instantiate(x86, new PhysRam());
 * host.groups.get(1)!.devices.map((d) => d.name); // ['0000:01:00.0', '0000:01:00.1']
 */
export function instantiate(
  spec: HostSpec,
  memory: PhysMemory,
  opts: InstantiateOptions = {},
): HostInstance {
  validateHostSpec(spec);
  const factory = opts.createIommu ?? createIommu;
  const iommus = new Map<string, IommuDriver>();
  const iommuSpecs = new Map<string, IommuSpec>();
  for (const u of spec.iommus) {
    iommus.set(u.id, factory(u));
    iommuSpecs.set(u.id, u);
  }
  const host: HostInstance = { spec, iommus, iommuSpecs, groups: new Map(), devices: new Map() };
  for (const d of spec.devices) addDevice(host, d, memory);
  return host;
}

/**
 * Add one function to a live host (instantiate, and SR-IOV VFs created at
 * run time): its group is created when new; the device reports the unit's
 * reserved regions (an intel unit's MSI window) before its own.
 */
export function addDevice(host: HostInstance, d: PciDeviceSpec, memory: PhysMemory): HostDevice {
  let group = host.groups.get(d.group);
  if (!group) {
    group = new Group(d.group);
    host.groups.set(d.group, group);
  }
  let entry: HostDevice;
  if (d.iommu === '') {
    entry = { device: new Device(d.bdf, NO_IOMMU, group, memory), spec: d };
  } else {
    const driver = host.iommus.get(d.iommu);
    const unit = host.iommuSpecs.get(d.iommu);
    if (!driver || !unit) throw new Error(`${d.bdf}: unknown IOMMU '${d.iommu}'`); // validated
    const own: ReservedRegion[] = (d.reservedRegions ?? []).map((r) => ({ ...r }));
    const reserved = unit.kind === 'intel' ? [...intelReservedRegions(), ...own] : own;
    const device =
      driver instanceof MockIommu
        ? new MockDevice(d.bdf, driver, group, memory, 0)
        : new Device(d.bdf, driver, group, memory, reserved);
    entry = { device, spec: d };
  }
  host.devices.set(d.bdf, entry);
  return entry;
}

/** Remove a function added with addDevice, and its group when it was the last member. */
export function removeDevice(host: HostInstance, bdf: string): void {
  const entry = host.devices.get(bdf);
  if (!entry) return;
  host.devices.delete(bdf);
  const group = entry.device.group;
  const members = [...host.devices.values()].filter((e) => e.device.group === group);
  if (members.length === 0) host.groups.delete(group.id);
}
