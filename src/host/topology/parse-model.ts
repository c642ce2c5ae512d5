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
import { IOAT_XFERCAP_RANGE } from '../../vfio/pci/ioat.ts';
import { DEVICE_MODEL_KINDS, type DeviceModelSpec, modelAreas } from '../../vfio/pci/models.ts';
import type { NvmeNamespaceSpec } from '../../vfio/pci/nvme/namespace.ts';
import { type EffectiveIrq, msixPbaBytes, msixTableBytes, type PciDeviceSpec } from './types.ts';
import { array, at, bad, hex, integer, item, object, oneOf, string, u64 } from './values.ts';

/** Option keys of each model kind (besides `kind`). */
const MODEL_KEYS: { readonly [K in DeviceModelSpec['kind']]: readonly string[] } = {
  'dma-engine': [],
  ioat: ['xfercap'],
  nvme: ['namespaces'],
};

const NAMESPACE_KEYS = ['size', 'lbaSize', 'file'];

/** `{ "kind": ..., options }` → a DeviceModelSpec that fits `dev` (its BARs and `irq`). */
export function parseModel(
  v: unknown,
  path: string,
  dev: PciDeviceSpec,
  irq: EffectiveIrq,
): DeviceModelSpec {
  const isObject = typeof v === 'object' && v !== null && !Array.isArray(v);
  const given = isObject ? (v as Record<string, unknown>) : object(v, path, []);
  const kind = oneOf(given.kind, at(path, 'kind'), DEVICE_MODEL_KINDS);
  const rec = object(v, path, ['kind', ...MODEL_KEYS[kind]]);
  let spec: DeviceModelSpec = { kind };
  if (kind === 'ioat' && rec.xfercap !== undefined) {
    spec = { kind, xfercap: integer(rec.xfercap, at(path, 'xfercap'), ...IOAT_XFERCAP_RANGE) };
  }
  if (kind === 'nvme' && rec.namespaces !== undefined) {
    const np = at(path, 'namespaces');
    spec = {
      kind,
      namespaces: array(rec.namespaces, np, 1).map((n, i) => parseNamespace(n, item(np, i))),
    };
  }
  checkAreas(spec, dev, irq, path);
  return spec;
}

/** One NVMe namespace: `size` (bytes, a multiple of `lbaSize`), `lbaSize` 512 | 4096, optional `file`. */
function parseNamespace(v: unknown, path: string): NvmeNamespaceSpec {
  const rec = object(v, path, NAMESPACE_KEYS, ['size']);
  const lbaSize =
    rec.lbaSize === undefined ? 512 : integer(rec.lbaSize, at(path, 'lbaSize'), 512, 4096);
  if (lbaSize !== 512 && lbaSize !== 4096)
    bad(at(path, 'lbaSize'), `must be 512 or 4096 (got ${lbaSize})`);
  const size = u64(rec.size, at(path, 'size'));
  if (size === 0n || size % BigInt(lbaSize) !== 0n) {
    bad(at(path, 'size'), `must be a non-zero multiple of lbaSize ${lbaSize} (got ${hex(size)})`);
  }
  if (size > 1n << 53n) bad(at(path, 'size'), `must be at most 2^53 bytes (got ${hex(size)})`);
  const ns = { size, lbaSize: lbaSize as 512 | 4096 };
  return rec.file === undefined ? ns : { ...ns, file: string(rec.file, at(path, 'file')) };
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
