/**
 * The POWER guest of test/examples/qemu-power.test.ts, assembled from
 * Debian's ppc64el packages and cached in ~/.cache/uiommu/power-guest
 * (nothing of it is committed): the kernel of `linux-image-6.12.*-powerpc64le`
 * (bookworm-backports) and an initramfs of our own holding `busybox-static`,
 * the kernel's nvme modules with their dependencies (nvme.ko needs
 * nvme-core.ko) and {@link INIT}. Downloads go through the machine's Debian mirror
 * (the first `URIs:` of /etc/apt/sources.list.d/*.sources, else
 * deb.debian.org) with curl; unpacking needs dpkg-deb and xz.
 *
 * Run directly (`tsx test/examples/power-guest.ts`) it prepares the cache
 * and prints the two paths.
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export const CACHE = join(homedir(), '.cache/uiommu/power-guest');

/** What the guest boots: the kernel image (vmlinux) and the gzipped cpio initramfs. */
export interface PowerGuest {
  readonly kernel: string;
  readonly initrd: string;
  /** The guest kernel's release, e.g. 6.12.95+deb12-powerpc64le. */
  readonly release: string;
}

/**
 * The guest's /init (busybox sh). It loads the nvme modules and, when an
 * NVMe function is present, waits up to 120 s for a 64-bit DMA window (the pseries kernel records one in the
 * device tree as `linux,*64-ddr-window-info` of the PHB), prints
 * `UIOMMU-GUEST: ddw` or `UIOMMU-GUEST: no-ddw`, then `UIOMMU-GUEST: ready`.
 * With `uiommu.wait` on the command line it then waits for the host's
 * power-down request (QEMU's `system_powerdown`, which the kernel turns
 * into a power-off); otherwise it powers off at once.
 */
export const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "UIOMMU-GUEST: init"
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m || echo "UIOMMU-GUEST: insmod $m failed"; done
i=0
grep -qx 0x010802 /sys/bus/pci/devices/*/class 2>/dev/null || i=120
while [ $i -lt 120 ]; do
  if ls /proc/device-tree/pci*/linux,*64-ddr-window-info >/dev/null 2>&1; then break; fi
  sleep 1; i=$((i+1))
done
if [ $i -lt 120 ]; then echo "UIOMMU-GUEST: ddw"; else echo "UIOMMU-GUEST: no-ddw"; fi
sleep 2
echo "UIOMMU-GUEST: ready"
grep -q uiommu.wait /proc/cmdline && sleep 100000
poweroff -f
`;

function run(cmd: string, args: string[], input?: Buffer): Buffer {
  const r = spawnSync(cmd, args, { input, maxBuffer: 1 << 30 });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')}: ${r.error?.message ?? r.stderr?.toString()}`);
  }
  return r.stdout;
}

function mirror(): string {
  const dir = '/etc/apt/sources.list.d';
  for (const f of existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.sources')) : []) {
    for (const m of readFileSync(join(dir, f), 'utf8').matchAll(/^URIs:\s*(\S+)/gm)) {
      if (!m[1]!.includes('security')) return m[1]!.replace(/\/$/, '');
    }
  }
  return 'http://deb.debian.org/debian';
}

/** `url` into the cache as `name` (once). */
function download(url: string, name: string): string {
  const path = join(CACHE, name);
  if (!existsSync(path)) {
    run('curl', ['-fsSL', '--retry', '3', '-o', `${path}.part`, url]);
    renameSync(`${path}.part`, path);
  }
  return path;
}

/** The newest stanza of `Packages.xz` at `url` whose Package matches `name`. */
function findPackage(url: string, cacheName: string, name: RegExp): { pkg: string; file: string } {
  const text = run('xz', ['-dc'], readFileSync(download(url, cacheName))).toString();
  let best: { pkg: string; file: string } | undefined;
  for (const stanza of text.split('\n\n')) {
    const pkg = /^Package: (.+)$/m.exec(stanza)?.[1];
    const file = /^Filename: (.+)$/m.exec(stanza)?.[1];
    if (!pkg || !file || !name.test(pkg)) continue;
    if (!best || pkg.localeCompare(best.pkg, 'en', { numeric: true }) > 0) best = { pkg, file };
  }
  if (!best) throw new Error(`no package matching ${name} in ${url}`);
  return best;
}

/** One cpio "newc" entry (header, name, data, each padded to 4 bytes). */
function cpioEntry(
  name: string,
  mode: number,
  data: Buffer,
  rdev: [number, number] = [0, 0],
): Buffer {
  const field = (n: number) => n.toString(16).padStart(8, '0');
  const nameBytes = Buffer.from(`${name}\0`);
  const header = Buffer.from(
    `070701${[0, mode, 0, 0, 1, 0, data.length, 0, 0, rdev[0], rdev[1], nameBytes.length, 0]
      .map(field)
      .join('')}`,
  );
  const pad = (b: Buffer, before: number) => Buffer.alloc((4 - ((before + b.length) % 4)) % 4);
  const head = Buffer.concat([header, nameBytes]);
  return Buffer.concat([head, pad(nameBytes, header.length), data, pad(data, 0)]);
}

/**
 * The modules `names` need, dependencies first, as [file name, bytes]: each
 * module's `depends=` modinfo field (what depmod writes to modules.dep,
 * which the package leaves to depmod at install time).
 */
function withDeps(modDir: string, names: string[]): [string, Buffer][] {
  const files = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else files.set(e.name.replace(/\.ko(\.xz)?$/, '').replaceAll('_', '-'), join(d, e.name));
    }
  };
  walk(join(modDir, 'kernel'));
  const order: [string, Buffer][] = [];
  const visit = (name: string) => {
    const key = name.replaceAll('_', '-');
    if (order.some(([n]) => n === `${key}.ko`)) return;
    const path = files.get(key);
    if (!path) throw new Error(`module ${name} not in the package`);
    const raw = readFileSync(path);
    const ko = path.endsWith('.xz') ? run('xz', ['-dc'], raw) : raw;
    const depends = /\0depends=([^\0]*)\0/.exec(ko.toString('latin1'))?.[1] ?? '';
    for (const d of depends.split(',').filter(Boolean)) visit(d);
    order.push([`${key}.ko`, ko]);
  };
  for (const n of names) visit(n);
  return order;
}

/** Download (once) and assemble the guest; throws with the reason when a step fails. */
export function preparePowerGuest(): PowerGuest {
  mkdirSync(CACHE, { recursive: true });
  const done = join(CACHE, 'guest.json');
  if (existsSync(done)) {
    const g = JSON.parse(readFileSync(done, 'utf8')) as PowerGuest;
    if (existsSync(g.kernel) && existsSync(g.initrd)) return g;
  }
  const base = mirror();
  const image = findPackage(
    `${base}/dists/bookworm-backports/main/binary-ppc64el/Packages.xz`,
    'bookworm-backports-ppc64el-Packages.xz',
    /^linux-image-6\.12\.[0-9]+\+deb12-powerpc64le$/,
  );
  const busybox = findPackage(
    `${base}/dists/bookworm/main/binary-ppc64el/Packages.xz`,
    'bookworm-ppc64el-Packages.xz',
    /^busybox-static$/,
  );
  const root = join(CACHE, 'root');
  rmSync(root, { recursive: true, force: true });
  for (const p of [image, busybox]) {
    const deb = download(`${base}/${p.file}`, p.file.split('/').at(-1)!);
    run('dpkg-deb', ['-x', deb, root]);
  }
  const release = readdirSync(join(root, 'lib/modules'))[0]!;
  const modDir = join(root, 'lib/modules', release);
  const modules = withDeps(modDir, ['nvme']);

  const entries: Buffer[] = [];
  const dir = (name: string) => entries.push(cpioEntry(name, 0o40755, Buffer.alloc(0)));
  for (const d of ['bin', 'dev', 'lib', 'lib/modules', 'proc', 'sys', 'sbin']) dir(d);
  entries.push(cpioEntry('dev/console', 0o20600, Buffer.alloc(0), [5, 1]));
  entries.push(cpioEntry('bin/busybox', 0o100755, readFileSync(join(root, 'bin/busybox'))));
  entries.push(cpioEntry('init', 0o100755, Buffer.from(INIT)));
  for (const [name, ko] of modules) entries.push(cpioEntry(`lib/modules/${name}`, 0o100644, ko));
  const order = `${modules.map(([name]) => name).join('\n')}\n`;
  entries.push(cpioEntry('lib/modules/order', 0o100644, Buffer.from(order)));
  entries.push(cpioEntry('TRAILER!!!', 0, Buffer.alloc(0)));

  const guest: PowerGuest = {
    kernel: join(CACHE, `vmlinux-${release}`),
    initrd: join(CACHE, `initrd-${release}.cpio.gz`),
    release,
  };
  renameSync(join(root, 'boot', `vmlinux-${release}`), guest.kernel);
  writeFileSync(guest.initrd, gzipSync(Buffer.concat(entries)));
  rmSync(root, { recursive: true, force: true });
  writeFileSync(done, JSON.stringify(guest));
  return guest;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const g = preparePowerGuest();
  console.log(`${g.kernel}\n${g.initrd}`);
}
