/**
 * A QEMU guest under `uiommu run` for the tests that boot Linux
 * (test/examples/qemu-power.test.ts, test/examples/qemu-x86-guest.test.ts):
 * QEMU in its own process group with its monitor on stdin/stdout, the guest
 * console in a file, the calls as `--trace-json` records; and the data
 * checks of the guest's nvme I/O (debian-guest.ts's {@link INIT}).
 */
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  openSync,
  readFileSync,
  readSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import type { KernelState } from '../../src/host/state.ts';
import { type HostSpec, hostSpecToJson } from '../../src/host/topology/index.ts';
import { GUEST_WRITES, HOST_WRITES } from './debian-guest.ts';

const UIOMMU = join(resolve(import.meta.dirname, '../..'), 'bin/uiommu.js');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One --trace-json record: a call, or the kernel's state. */
export interface TraceRecord {
  call?: string;
  request?: string | null;
  ret?: number;
  errno?: string | null;
  text?: string;
  /** The kernel's state (src/host/state.ts) on SIGUSR1 and at exit. */
  state?: KernelState & { at: string };
}

/**
 * Why `qemu` with `accelArgs` cannot run a guest here, or false when it can:
 * a diskless guest must still be running after one second with nothing on
 * stderr (with KVM on some hosts `-cpu host` aborts at once, "failed to set
 * MSR", or the guest dies).
 */
export function qemuUnusable(qemu: string, accelArgs: string[]): string | false {
  const r = spawnSync(qemu, [...accelArgs, '-no-reboot', '-monitor', 'none', '-serial', 'none'], {
    encoding: 'utf8',
    timeout: 1000,
    killSignal: 'SIGKILL',
  });
  const err = (r.stderr ?? '').trim();
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT')
    return `${qemu} not installed`;
  if (r.signal === 'SIGKILL' && err === '') return false;
  const why = err.split('\n')[0] || `exited with ${r.status ?? r.signal}`;
  return `${qemu} ${accelArgs[1]} cannot run a guest for 1 s: ${why}`;
}

/** The call records whose ioctl is `request`. */
export const calls = (recs: TraceRecord[], request: string) =>
  recs.filter((r) => r.request === request);

/**
 * Failed calls other than the probes Linux refuses the same way: QEMU's
 * probes of regions and IRQs the function does not have (EINVAL), of device
 * features (ENOTTY), and its hot-reset probe of a function without a reset
 * method on the root bus (ENODEV).
 */
export function unexpectedFailures(recs: TraceRecord[]): string[] {
  const expected =
    /VFIO_DEVICE_GET_REGION_INFO, \{[^}]*index=8[,}]|VFIO_DEVICE_GET_IRQ_INFO|VFIO_DEVICE_FEATURE|VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, .* = -1 ENODEV/;
  return recs
    .filter((r) => r.call !== undefined && r.ret! < 0 && !expected.test(r.text ?? ''))
    .map((r) => r.text ?? '');
}

/** `qemu` under `uiommu run --host HOST`, its monitor on stdin/stdout, the guest console in a file. */
export class GuestQemu {
  readonly child: ChildProcessWithoutNullStreams;
  readonly json: string;
  readonly console: string;
  readonly started = Date.now();
  out = '';
  err = '';
  gone = false;
  readonly exited: Promise<number | null>;

  /** `qemuArgs` name the machine and the devices; the monitor, serial and `-no-reboot` are added. */
  constructor(dir: string, name: string, host: string, qemu: string, qemuArgs: string[]) {
    this.json = join(dir, `${name}.jsonl`);
    this.console = join(dir, `${name}.console`);
    this.child = spawn(
      process.execPath,
      [UIOMMU, 'run', '--host', host, '--trace-json', this.json, '--', qemu, ...qemuArgs]
        .concat(['-nodefaults', '-display', 'none', '-monitor', 'stdio', '-no-reboot'])
        .concat(['-serial', `file:${this.console}`]),
      { stdio: ['pipe', 'pipe', 'pipe'], detached: true },
    );
    this.child.stdout.on('data', (d: Buffer) => {
      this.out += d.toString();
    });
    this.child.stderr.on('data', (d: Buffer) => {
      this.err += d.toString();
    });
    this.exited = new Promise((r) =>
      this.child.on('exit', (code) => {
        this.gone = true;
        r(code);
      }),
    );
  }

  /** The guest console so far. */
  guest(): string {
    return existsSync(this.console) ? readFileSync(this.console, 'utf8') : '';
  }

  records(): TraceRecord[] {
    if (!existsSync(this.json)) return [];
    const lines = readFileSync(this.json, 'utf8').split('\n');
    lines.pop(); // a record may be half written
    return lines.map((l) => JSON.parse(l) as TraceRecord);
  }

  /** Wait (polling every 0.5 s) until `done` holds; fails after `ms` or when QEMU exits first. */
  async until(what: string, done: () => boolean, ms: number, exitOk = false): Promise<void> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (done()) return;
      if (this.gone && !exitOk) break;
      await sleep(500);
    }
    if (done()) return;
    assert.fail(`${what}: not within ${ms / 1000} s (exited: ${this.gone})\n${this.diagnose()}`);
  }

  diagnose(): string {
    return `stderr:\n${this.err}\nconsole (tail):\n${this.guest().slice(-3000)}`;
  }

  monitor(cmd: string): void {
    this.child.stdin.write(`${cmd}\n`);
  }

  kill(): void {
    if (!this.gone) process.kill(-this.child.pid!, 'SIGKILL');
  }
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function readAt(file: string, at: { offset: number; length: number }): Buffer {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(at.length);
    readSync(fd, b, 0, b.length, at.offset);
    return b;
  } finally {
    closeSync(fd);
  }
}

/**
 * A host config: `preset` with uiommu's NVMe controller behind its function
 * `bdf`, one namespace of `size` bytes in blocks of `lbaSize` in `file`;
 * written to `path`, which it returns (for `uiommu run --host`).
 */
export function nvmeHost(
  preset: HostSpec,
  bdf: string,
  namespace: { file: string; size: number; lbaSize: 512 | 4096 },
  path: string,
): string {
  const host = hostSpecToJson(preset);
  const devices = host.devices as Record<string, unknown>[];
  const dev = devices.find((d) => d.bdf === bdf);
  assert.ok(dev, `${preset.name} has no function ${bdf}`);
  dev.model = {
    kind: 'nvme',
    namespaces: [{ ...namespace, size: `0x${namespace.size.toString(16)}` }],
  };
  writeFileSync(path, JSON.stringify(host));
  return path;
}

/**
 * The namespace's backing `file`, `size` bytes (sparse), with fresh random
 * bytes where the guest's check reads ({@link HOST_WRITES}); returns their sha256.
 */
export function seedNamespace(file: string, size: number): string {
  const b = randomBytes(HOST_WRITES.length);
  const fd = openSync(file, 'w');
  try {
    ftruncateSync(fd, size);
    writeSync(fd, b, 0, b.length, HOST_WRITES.offset);
  } finally {
    closeSync(fd);
  }
  return sha256(b);
}

/**
 * The data checks of the guest's nvme I/O, from its console `guest` and the
 * namespace's backing `file` after the guest is gone: the guest saw blocks
 * of `lbaSize` bytes, read back what it wrote, the file holds those bytes,
 * and the guest read the bytes the host seeded (sha256 `seeded`). Returns
 * the check's console lines.
 */
export function assertNvmeIo(guest: string, file: string, seeded: string, lbaSize: number): string {
  const write = /UIOMMU-GUEST: nvme write (\w+) block=(\d+) sha256=([0-9a-f]{64})/.exec(guest);
  const read = /UIOMMU-GUEST: nvme read sha256=([0-9a-f]{64})/.exec(guest);
  assert.ok(write && read, `the guest's nvme check did not run:\n${guest.slice(-3000)}`);
  assert.equal(write[1], 'pass', 'the guest read back what it wrote');
  assert.equal(Number(write[2]), lbaSize, "the namespace's logical block size in the guest");
  assert.equal(
    sha256(readAt(file, GUEST_WRITES)),
    write[3],
    'the namespace file holds the pattern',
  );
  assert.equal(read[1], seeded, "the guest read the host's bytes");
  return `${write[0]}\n${read[0]}`;
}
