/**
 * The device models a host config can put behind a PCI function
 * (`PciDeviceSpec.model`, discriminated by `kind`), and how each is laid
 * out and built. Adding a model: its spec type joins `DeviceModelSpec`, its
 * entry joins `MODELS` (docs/devices.md).
 *
 * @example
 * const spec: PciDeviceSpec = { ...fn, model: { kind: 'dma-engine' } };
 * modelAreas(spec.model);             // what BAR0 must hold
 * createDeviceModel(spec.model, ctx); // a DmaEngine
 */
import type { DeviceModel, DeviceModelContext } from './device-model.ts';
import { DMA_ENGINE_AREAS, DmaEngine, type DmaEngineModelSpec } from './dma-engine.ts';
import { IOAT_AREAS, Ioat, type IoatModelSpec } from './ioat.ts';
import { NVME_AREAS, NvmeController, type NvmeModelSpec } from './nvme/controller.ts';

/** Which model a function runs, with that model's options. */
export type DeviceModelSpec = DmaEngineModelSpec | IoatModelSpec | NvmeModelSpec;

export type DeviceModelKind = DeviceModelSpec['kind'];

/**
 * A part of a BAR the model needs (registers, a buffer): the BAR must be a
 * memory BAR holding it, and the MSI-X table and PBA must stay clear of it.
 */
export interface ModelArea {
  readonly bar: number;
  readonly start: bigint;
  readonly end: bigint;
  /** What it is, for error messages ('registers'). */
  readonly what: string;
}

interface ModelType<S extends DeviceModelSpec> {
  areas(spec: S): readonly ModelArea[];
  create(spec: S, ctx: DeviceModelContext): DeviceModel;
}

type ModelTable = {
  readonly [K in DeviceModelKind]: ModelType<Extract<DeviceModelSpec, { kind: K }>>;
};

const MODELS: ModelTable = {
  'dma-engine': { areas: () => DMA_ENGINE_AREAS, create: (_s, ctx) => new DmaEngine(ctx) },
  ioat: { areas: () => IOAT_AREAS, create: (s, ctx) => new Ioat(s, ctx) },
  nvme: { areas: () => NVME_AREAS, create: (s, ctx) => NvmeController.create(s, ctx) },
};

/** The model kinds a host config may name. */
export const DEVICE_MODEL_KINDS = Object.keys(MODELS) as DeviceModelKind[];

/** The BAR areas `spec`'s model needs (checked against the function by the topology parser). */
export function modelAreas(spec: DeviceModelSpec): readonly ModelArea[] {
  return (MODELS[spec.kind] as ModelType<DeviceModelSpec>).areas(spec);
}

/** Build the model `spec` names for a function. */
export function createDeviceModel(spec: DeviceModelSpec, ctx: DeviceModelContext): DeviceModel {
  return (MODELS[spec.kind] as ModelType<DeviceModelSpec>).create(spec, ctx);
}
