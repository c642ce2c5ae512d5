/**
 * `parseModel`: a device's `model` field (which device model runs behind
 * the function, src/vfio/pci/models.ts) checked against the function: each
 * BAR area the model needs must lie in a memory BAR of the function, clear
 * of the MSI-X table and PBA.
 *
 * ```
 * devices[1].model: needs BAR 0 to be a memory BAR of at least 0x41000 bytes
 * ```
 */
import { DEVICE_MODEL_KINDS, type DeviceModelSpec, modelAreas } from '../../vfio/pci/models.ts';
import { type EffectiveIrq, msixPbaBytes, msixTableBytes, type PciDeviceSpec } from './types.ts';
import { at, bad, hex, object, oneOf } from './values.ts';

/** Option keys of each model kind (besides `kind`). */
const MODEL_KEYS: { readonly [K in DeviceModelSpec['kind']]: readonly string[] } = {
  'dma-engine': [],
};

/** `{ "kind": ..., options }` → a DeviceModelSpec that fits `dev` (its BARs and `irq`). */
export function parseModel(
  v: unknown,
  path: string,
  dev: PciDeviceSpec,
  irq: EffectiveIrq,
): DeviceModelSpec {
  const any = object(v, path, ['kind', ...Object.values(MODEL_KEYS).flat()], ['kind']);
  const kind = oneOf(any.kind, at(path, 'kind'), DEVICE_MODEL_KINDS);
  object(v, path, ['kind', ...MODEL_KEYS[kind]]);
  const spec: DeviceModelSpec = { kind };
  checkAreas(spec, dev, irq, path);
  return spec;
}

function checkAreas(
  spec: DeviceModelSpec,
  dev: PciDeviceSpec,
  irq: EffectiveIrq,
  path: string,
): void {
  const areas = modelAreas(spec);
  for (const index of new Set(areas.map((a) => a.bar))) {
    const mine = areas.filter((a) => a.bar === index);
    const need = mine.reduce((m, a) => (a.end > m ? a.end : m), 0n);
    const bar = dev.bars.find((b) => b.index === index);
    if (!bar || bar.kind === 'io' || bar.size < need) {
      bad(path, `needs BAR ${index} to be a memory BAR of at least ${hex(need)} bytes`);
    }
    if (irq.msixBar !== index) continue;
    const table: [bigint, bigint] = [irq.msixTableOffset, msixTableBytes(irq.msix)];
    const pba: [bigint, bigint] = [irq.msixPbaOffset, msixPbaBytes(irq.msix)];
    for (const [start, len] of [table, pba]) {
      const hit = mine.find((a) => start < a.end && a.start < start + len);
      if (hit) {
        bad(
          path,
          `the MSI-X table or PBA overlaps the ${spec.kind}'s ${hit.what} ` +
            `(${hex(hit.start)}-${hex(hit.end - 1n)}) in BAR ${index}`,
        );
      }
    }
  }
}
