/**
 * Real QEMU (qemu-system-x86_64, TCG) under `uiommu run`: QEMU 7.2 opens the
 * x86 preset's group 0 through the legacy type1 container, realizes
 * vfio-pci 0000:00:02.0 (region and IRQ info, config space, reset), and
 * SeaBIOS sizes and places its BARs, which QEMU then serves by pread/pwrite
 * of the device fd; through qtest, the guest programs the device's DMA
 * engine, which reads and writes guest RAM through the container's
 * mappings. Skipped when qemu-system-x86_64 is not installed.
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

  it('qtest: the guest drives the DMA engine; DMA reaches guest RAM through MAP_DMA', {
    timeout: 180_000,
  }, async () => {
    const trace = join(dir, 'qtest.trace');
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
        ...['-machine', 'q35', '-accel', 'tcg', '-S', '-qtest', 'stdio', '-m', '256'],
        ...['-display', 'none', '-nodefaults', '-device', 'vfio-pci,host=0000:00:02.0'],
      ],
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
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    let answered = 0;
    /** One qtest command; resolves to its answer line ("OK ..."). */
    const qt = async (cmd: string): Promise<string> => {
      child.stdin.write(`${cmd}\n`);
      for (let i = 0; i < 1200; i++) {
        const lines = out.split('\n').filter((l) => /^(OK|FAIL|ERR)/.test(l));
        if (lines.length > answered) return lines[answered++]!;
        await sleep(50);
      }
      assert.fail(`no answer to "${cmd}"\nstderr:\n${err}`);
    };
    const val = async (cmd: string) => BigInt((await qt(cmd)).split(' ')[1]!);
    // config space of guest 00:01.0 through 0xcf8/0xcfc
    const cfg = (reg: number) => qt(`outl 0xcf8 ${0x80000800 | reg}`);
    const BAR0 = 0xfd000000n;
    const reg = (off: number) => `0x${(BAR0 + BigInt(off)).toString(16)}`;
    try {
      await cfg(0);
      assert.equal(await val('inl 0xcfc'), 0x3e928086n);
      await cfg(0x10);
      await qt(`outl 0xcfc 0x${BAR0.toString(16)}`);
      await cfg(0x14);
      await qt('outl 0xcfc 0x0');
      await cfg(0x04);
      await qt('outw 0xcfc 0x6'); // memory decode, bus master
      assert.equal(await val(`readl ${reg(0)}`), 0x55444d41n); // ID "UDMA"
      // memory → device buffer
      await qt('writeq 0x100000 0x1122334455667788');
      await qt(`writeq ${reg(0x80)} 0x100000`);
      await qt(`writeq ${reg(0x88)} 0x40000`);
      await qt(`writeq ${reg(0x90)} 0x8`);
      await qt(`writeq ${reg(0x98)} 0x1`);
      assert.equal(await val(`readl ${reg(0xa0)}`), 1n); // DONE
      assert.equal(await val(`readq ${reg(0x40000)}`), 0x1122334455667788n);
      // device buffer → memory
      await qt(`writeq ${reg(0x80)} 0x40000`);
      await qt(`writeq ${reg(0x88)} 0x200000`);
      await qt(`writeq ${reg(0x98)} 0x3`);
      assert.equal(await val(`readl ${reg(0xa0)}`), 1n);
      assert.equal(await val('readq 0x200000'), 0x1122334455667788n);
      // past the 256 MiB of RAM nothing is mapped: the IOMMU refuses
      await qt(`writeq ${reg(0x88)} 0x20000000`);
      await qt(`writeq ${reg(0x98)} 0x3`);
      assert.equal(await val(`readl ${reg(0xa0)}`), 3n); // DONE|FAULT
      assert.equal(await val(`readq ${reg(0xa8)}`), 0x20000000n);
    } finally {
      // qtest keeps QEMU running after the last command
      process.kill(-child.pid!, 'SIGTERM');
      await exited;
    }
    assert.doesNotMatch(err, /vfio/i);
    const t = readFileSync(trace, 'utf8');
    assert.match(t, /ioctl\(\d+, VFIO_IOMMU_MAP_DMA, .*iova=0, size=0x10000000\}\) = 0/);
    assert.doesNotMatch(t, /= -1 /, 'an interposed call failed');
  });
});
