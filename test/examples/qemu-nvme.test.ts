/**
 * QEMU's user-space NVMe driver (`nvme://BDF/NS` of qemu-img and qemu-io,
 * block/nvme.c over util/vfio-helpers.c) drives the x86 preset's NVMe
 * function 0000:02:00.0 through uiommu on the legacy type1 container: it
 * maps BAR0 (registers and doorbells trap), enables the controller, maps
 * its queues and buffers with VFIO_IOMMU_MAP_DMA and takes completions on
 * MSI-X vector 0. The namespace is a file here, so every write is checked
 * against the file's bytes as well as by reading it back through the
 * driver: patterns at several offsets and sizes (1 MiB is a 255-entry PRP
 * list), a 4 KiB-block namespace, and a 64 MiB qemu-img convert onto the
 * namespace and back, compared byte for byte. Skipped, with the reason,
 * when qemu-img cannot run or was built without the nvme driver.
 *
 * @slow: moves 64 MiB each way through a user-space NVMe driver
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { NVME_BDF as BDF, writeNvmeHost } from './nvme-host.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const UIOMMU = join(ROOT, 'bin/uiommu.js');
const MiB = 1 << 20;
const NS_BYTES = 64 * MiB;

/** Why qemu-img's nvme:// cannot be tried here, or undefined. */
function qemuMissing(): string | undefined {
  const r = spawnSync('qemu-img', ['--help'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error) return `qemu-img: ${r.error.message}`;
  if (!/Supported (image )?formats:.*\bnvme\b/s.test(r.stdout))
    return 'qemu-img was built without nvme://';
  return undefined;
}

const dir = mkdtempSync(join(tmpdir(), 'uiommu-qemu-nvme-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const nsFile = join(dir, 'ns1.img');
const hostFile = join(dir, 'host.json');
const trace = join(dir, 'trace.txt');

/** The x86 preset with the NVMe function's namespaces: a 64 MiB file (512 B blocks), 16 MiB of memory (4 KiB blocks). */
function writeHost(): void {
  writeNvmeHost(hostFile, [
    { bytes: NS_BYTES, lbaSize: 512, file: nsFile },
    { bytes: 16 * MiB, lbaSize: 4096 },
  ]);
}

/** Run `args` under `uiommu run` on the config above. */
function run(args: string[]): { status: number | null; out: string } {
  const r = spawnSync(
    process.execPath,
    [UIOMMU, 'run', '--host', hostFile, '--trace', trace, '--', ...args],
    { encoding: 'utf8', timeout: 600_000, maxBuffer: 64 * MiB },
  );
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Deterministic bytes (xorshift32): as incompressible as random for qemu-img, but reproducible. */
function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b;
}

const skip = qemuMissing();

describe('QEMU nvme:// (qemu-img, qemu-io) on the NVMe model', { skip }, () => {
  writeHost();

  it('qemu-img info sees both namespaces at their sizes, on the legacy type1 container', () => {
    const one = run(['qemu-img', 'info', `nvme://${BDF}/1`]);
    assert.equal(one.status, 0, one.out);
    assert.match(one.out, /virtual size: 64 MiB \(67108864 bytes\)/);
    const t = readFileSync(trace, 'utf8');
    assert.match(t, /VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU\) = 0/);
    assert.match(t, /VFIO_DEVICE_SET_IRQS, \{[^}]*index=2/); // MSI-X
    const two = run(['qemu-img', 'info', `nvme://${BDF}/2`]);
    assert.equal(two.status, 0, two.out);
    assert.match(two.out, /virtual size: 16 MiB \(16777216 bytes\)/);
    const three = run(['qemu-img', 'info', `nvme://${BDF}/3`]);
    assert.notEqual(three.status, 0);
    assert.match(three.out, /namespace/i);
  });

  it('qemu-io patterns at several offsets and sizes read back, and the namespace file holds them', () => {
    // [pattern, offset, length]: one block, unaligned to a page, 256 pages (a 255-entry PRP list), across 4 MiB
    const writes: [number, number, number][] = [
      [0xa5, 0, 512],
      [0x3c, 4096 + 512, 8192],
      [0x5a, MiB, MiB],
      [0x77, 4 * MiB - 65536, 3 * 65536],
      [0xe1, NS_BYTES - 4096, 4096],
    ];
    const cmds = writes.flatMap(([p, o, n]) => ['-c', `write -P 0x${p.toString(16)} ${o} ${n}`]);
    const checks = writes.flatMap(([p, o, n]) => ['-c', `read -P 0x${p.toString(16)} ${o} ${n}`]);
    const r = run(['qemu-io', '-f', 'raw', ...cmds, ...checks, `nvme://${BDF}/1`]);
    assert.equal(r.status, 0, r.out);
    assert.doesNotMatch(r.out, /fail|error/i);
    assert.equal(r.out.match(/^read \d+\/\d+ bytes/gm)?.length, writes.length);
    const ns = readFileSync(nsFile);
    for (const [p, o, n] of writes) {
      assert.ok(
        ns.subarray(o, o + n).every((b) => b === p),
        `0x${p.toString(16)} at ${o}+${n}`,
      );
    }
    assert.ok(ns.subarray(512, 4096 + 512).every((b) => b === 0)); // untouched between them
  });

  it('a namespace of 4 KiB blocks takes writes and reads', () => {
    const r = run([
      'qemu-io',
      '-f',
      'raw',
      '-c',
      'write -P 0x42 8192 131072',
      '-c',
      'read -P 0x42 8192 131072',
      '-c',
      'read -P 0 0 8192',
      `nvme://${BDF}/2`,
    ]);
    assert.equal(r.status, 0, r.out);
    assert.doesNotMatch(r.out, /fail|error/i);
  });

  it('qemu-img convert of 64 MiB onto the namespace and back is byte-identical', () => {
    const src = join(dir, 'src.img');
    const back = join(dir, 'back.img');
    const data = noise(NS_BYTES, 0x1badcafe);
    writeFileSync(src, data);
    const on = run(['qemu-img', 'convert', '-n', '-f', 'raw', '-O', 'raw', src, `nvme://${BDF}/1`]);
    assert.equal(on.status, 0, on.out);
    assert.ok(readFileSync(nsFile).equals(data), 'the namespace file differs from the source');
    const off = run(['qemu-img', 'convert', '-f', 'raw', '-O', 'raw', `nvme://${BDF}/1`, back]);
    assert.equal(off.status, 0, off.out);
    assert.ok(readFileSync(back).equals(data), 'the copy read back differs from the source');
  });
});
