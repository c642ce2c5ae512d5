/**
 * Host topology: the IOMMUs and PCI devices of an emulated host, as presets
 * or JSON configs, and their instantiation into drivers, groups and devices.
 *
 * @example
 * const spec = loadHostSpec('x86'); // or a path to a JSON config
 * const host = instantiate(spec, kernel.memory);
 * host.devices.get('0000:03:00.0')!.device.group.id; // 13
 */
export {
  createIommu,
  type HostDevice,
  type HostInstance,
  type InstantiateOptions,
  type IommuFactory,
  instantiate,
} from './instantiate.ts';
export { loadHostSpec, validateHostSpec } from './load.ts';
export { INTEL_DEFAULTS, parseHostSpec, SPAPR_DEFAULTS } from './parse.ts';
export { mock, PRESETS, powernv, pseries, x86 } from './presets.ts';
export { hostSpecToJson } from './serialize.ts';
export type {
  BarKind,
  BarSpec,
  EffectiveIrq,
  HostSpec,
  IntelIommuSpec,
  IommuKind,
  IommuSpec,
  IrqSpec,
  MockIommuSpec,
  PciDeviceSpec,
  ReservedRegionSpec,
  SpaprIommuSpec,
} from './types.ts';
export { effectiveIrq, msixPbaBytes, msixTableBytes } from './types.ts';
export { HostSpecError } from './values.ts';
