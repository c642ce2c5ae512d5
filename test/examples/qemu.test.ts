/**
 * Real QEMU (qemu-system-x86_64, TCG) under `uiommu run`: QEMU 7.2 opens the
 * x86 preset's group 0 through the legacy type1 container, realizes
 * vfio-pci 0000:00:02.0 (region and IRQ info, config space, reset), and
 * SeaBIOS sizes and places its BARs, which QEMU then serves by pread/pwrite
 * of the device fd. Skipped when qemu-system-x86_64 is not installed.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';

const ROOT = resolve(import.meta.dirname, '../..');
const UIOMMU = join(ROOT, 'bin/uiommu.js');
const QEMU = 'qemu-system-x86_64';
const haveQemu = spawnSync(QEMU, ['--version']).status === 0;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The `info pci` block of the assigned function (the host's 8086:3e92). */
function deviceBlock(out: string): string | undefined {
  const blocks = out.split(/(?=\n\s+Bus\s+\d+, device)/);
  return blocks.filter((b) => b.includes('PCI device 8086:3e92')).at(-1);
}

describe('QEMU under uiommu run', { skip: haveQemu ? false : `${QEMU} not installed` }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'uiommu-qemu-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('realizes vfio-pci 0000:00:02.0; SeaBIOS places its BARs; no vfio errors', {
    timeout: 180_000,
  }, async () => {
    const trace = join(dir, 'qemu.trace');
    const child = spawn(
      process.execPath,
      [
        UIOMMU,
        'run',
        '--host',
        'x86',
        '--trace',
        trace,
        '--',
        QEMU,
        ...['-machine', 'q35,accel=tcg', '-m', '256', '-display', 'none', '-nodefaults'],
        ...['-monitor', 'stdio', '-device', 'vfio-pci,host=0000:00:02.0'],
      ],
      // its own process group, so a failed test can kill QEMU with the engine
      { stdio: ['pipe', 'pipe', 'pipe'], detached: true },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    let gone = false;
    void exited.then(() => {
      gone = true;
    });
    /** Send `cmd` until what came back since satisfies `done` (the guest may still be booting). */
    const ask = async (cmd: string, done: (answer: string) => boolean): Promise<string> => {
      for (let i = 0; i < 60 && !gone; i++) {
        const from = out.length;
        child.stdin.write(`${cmd}\n`);
        for (let j = 0; j < 20 && !gone; j++) {
          await sleep(100);
          if (done(out.slice(from))) return out.slice(from);
        }
      }
      assert.fail(`no answer to "${cmd}" (exited: ${gone})\nstdout:\n${out}\nstderr:\n${err}`);
    };
    try {
      // BAR0 is a 16 MiB 64-bit BAR: unassigned (all ones) until SeaBIOS places it
      const pci = await ask('info pci', (a) =>
        /BAR0: 64 bit memory at 0x(?!f{16})[0-9a-f]+ /.test(deviceBlock(a) ?? ''),
      );
      const dev = deviceBlock(pci)!;
      assert.match(dev, /BAR2: 64 bit prefetchable memory at 0x(?!f{16})[0-9a-f]+ /);
      assert.match(dev, /BAR4: I\/O at 0x(?!f{16})[0-9a-f]+ /);
      // the BARs as QEMU's memory regions in the guest's memory and I/O spaces
      await ask('info mtree', (a) =>
        [0, 2, 4].every((n) =>
          new RegExp(`\\(prio 0, i/o\\): 0000:00:02\\.0 BAR ${n}\\r?\\n`).test(a),
        ),
      );
      child.stdin.write('quit\n');
      assert.equal(await exited, 0, err);
    } finally {
      if (!gone) process.kill(-child.pid!, 'SIGKILL');
    }
    assert.equal(err, '', 'QEMU printed warnings or errors');
    const t = readFileSync(trace, 'utf8');
    assert.match(t, /ioctl\(\d+, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU\) = 0/);
    assert.match(t, /ioctl\(\d+, VFIO_GROUP_GET_DEVICE_FD, \S+\) = \d+/);
    assert.match(t, /ioctl\(\d+, VFIO_DEVICE_RESET\) = 0/);
    assert.match(t, /ioctl\(\d+, VFIO_IOMMU_MAP_DMA, .*iova=0, size=0x10000000\}\) = 0/);
    assert.doesNotMatch(t, /= -1 /, 'an interposed call failed');
  });
});
