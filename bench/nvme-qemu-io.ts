/**
 * QEMU's user-space NVMe driver on the NVMe model: qemu-io sequential reads
 * of 4 KiB and 128 KiB from `nvme://0000:02:00.0/1` under `uiommu run`, and
 * the same reads by the same qemu-io from a plain file (page cache) in the
 * same run. Time is what qemu-io itself reports per read (`read -C`), so
 * process start-up and device set-up are left out.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { NVME_BDF, writeNvmeHost } from '../test/examples/nvme-host.ts';

const ROOT = resolve(import.meta.dirname, '..');
const UIOMMU = join(ROOT, 'bin/uiommu.js');
const NS_BYTES = 64 << 20;

/** One access size: reads per second and bytes per second, through the model and from a file. */
export interface QemuIoReads {
  readonly size: number;
  readonly count: number;
  readonly nvmeIops: number;
  readonly nvmeBytesPerSec: number;
  readonly fileIops: number;
  readonly fileBytesPerSec: number;
}

/** The qemu-io commands: `count` sequential reads of `size` bytes from offset 0, machine-readable. */
function reads(size: number, count: number): string[] {
  return Array.from({ length: count }, (_, i) => ['-c', `read -C ${i * size} ${size}`]).flat();
}

/** Σ bytes and Σ seconds over qemu-io's `read -C` lines (bytes,ops,time,bytes/s,ops/s). */
function totals(out: string): { bytes: number; seconds: number; ops: number } {
  let bytes = 0;
  let seconds = 0;
  let ops = 0;
  for (const m of out.matchAll(/^(\d+),(\d+),[\d:.]+,[\d.]+,([\d.]+)$/gm)) {
    bytes += Number(m[1]);
    ops += Number(m[2]);
    seconds += Number(m[2]) / Number(m[3]);
  }
  return { bytes, seconds, ops };
}

/** undefined when qemu-io cannot run here. */
export function benchNvmeQemuIo(): QemuIoReads[] | undefined {
  const probe = spawnSync('qemu-io', ['--version'], { encoding: 'utf8' });
  if (probe.status !== 0) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'uiommu-bench-nvme-'));
  try {
    const host = join(dir, 'host.json');
    const file = join(dir, 'plain.img');
    writeFileSync(file, Buffer.alloc(NS_BYTES, 0x5a));
    writeNvmeHost(host, [{ bytes: NS_BYTES, lbaSize: 512 }]);
    const out: QemuIoReads[] = [];
    for (const [size, count] of [
      [4096, 2000],
      [128 << 10, 400],
    ] as const) {
      const cmds = ['qemu-io', '-f', 'raw', ...reads(size, count)];
      const nvme = totals(
        execFileSync(
          process.execPath,
          [UIOMMU, 'run', '--host', host, '--', ...cmds, `nvme://${NVME_BDF}/1`],
          { encoding: 'utf8', maxBuffer: 1 << 26 },
        ),
      );
      const plain = totals(
        execFileSync(cmds[0]!, [...cmds.slice(1), file], { encoding: 'utf8', maxBuffer: 1 << 26 }),
      );
      if (nvme.ops !== count || plain.ops !== count) return undefined;
      out.push({
        size,
        count,
        nvmeIops: count / nvme.seconds,
        nvmeBytesPerSec: nvme.bytes / nvme.seconds,
        fileIops: count / plain.seconds,
        fileBytesPerSec: plain.bytes / plain.seconds,
      });
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
