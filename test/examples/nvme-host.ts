/**
 * A host config for QEMU's nvme:// runs: the x86 preset with the NVMe
 * function 0000:02:00.0 given the namespaces asked for (a file for data
 * checks, memory otherwise), written as JSON for `uiommu run --host FILE`.
 */
import { writeFileSync } from 'node:fs';
import { x86 } from '../../src/host/topology/presets.ts';
import { hostSpecToJson } from '../../src/host/topology/serialize.ts';

/** The NVMe function of the x86 preset. */
export const NVME_BDF = '0000:02:00.0';

/** One namespace: bytes, block size, and a backing file (else memory). */
export interface NsConfig {
  readonly bytes: number;
  readonly lbaSize: 512 | 4096;
  readonly file?: string;
}

/** Write the x86 preset with NVME_BDF's `namespaces` to `path`. */
export function writeNvmeHost(path: string, namespaces: readonly NsConfig[]): void {
  const j = hostSpecToJson(x86) as { devices: { bdf: string; model?: unknown }[] };
  j.devices.find((d) => d.bdf === NVME_BDF)!.model = {
    kind: 'nvme',
    namespaces: namespaces.map((n) => ({
      size: `0x${n.bytes.toString(16)}`,
      lbaSize: n.lbaSize,
      ...(n.file !== undefined ? { file: n.file } : {}),
    })),
  };
  writeFileSync(path, JSON.stringify(j));
}
