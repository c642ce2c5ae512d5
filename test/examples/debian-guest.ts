/**
 * The Linux guests of the QEMU tests, assembled from Debian's packages and
 * cached in ~/.cache/uiommu (nothing of it is committed): the kernel of
 * bookworm-backports' `linux-image-6.12.*` for the architecture and an
 * initramfs of our own holding `busybox-static`, the kernel's nvme modules
 * with their dependencies (nvme.ko needs nvme-core.ko) and {@link INIT}.
 * Downloads go through the machine's Debian mirror (the first `URIs:` of
 * /etc/apt/sources.list.d/*.sources, else deb.debian.org) with curl;
 * unpacking needs dpkg-deb and xz.
 *
 * - `ppc64el`: `linux-image-6.12.*+deb12-powerpc64le` (test/examples/qemu-power.test.ts,
 *   QEMU's pseries machine), cached in ~/.cache/uiommu/power-guest;
 * - `amd64`: `linux-image-6.12.*+deb12-amd64` (test/examples/qemu-x86-guest.test.ts),
 *   cached in ~/.cache/uiommu/x86-guest.
 *
 * Run directly (`tsx test/examples/debian-guest.ts ARCH`) it prepares the
 * cache and prints the two paths.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
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

/** The Debian architectures a guest is built for. */
export type GuestArch = 'ppc64el' | 'amd64';

/** What one architecture's guest is made of. */
interface GuestRecipe {
  /** The cache directory under ~/.cache/uiommu. */
  readonly cache: string;
  /** The kernel package in bookworm-backports (the newest matching one). */
  readonly image: RegExp;
  /** The kernel image inside that package, for the package's release. */
  readonly kernelFile: (release: string) => string;
}

const RECIPES: Record<GuestArch, GuestRecipe> = {
  ppc64el: {
    cache: 'power-guest',
    image: /^linux-image-6\.12\.[0-9]+\+deb12-powerpc64le$/,
    kernelFile: (release) => `boot/vmlinux-${release}`,
  },
  amd64: {
    cache: 'x86-guest',
    image: /^linux-image-6\.12\.[0-9]+\+deb12-amd64$/,
    kernelFile: (release) => `boot/vmlinuz-${release}`,
  },
};

/** What the guest boots: the kernel image and the gzipped cpio initramfs. */
export interface Guest {
  readonly kernel: string;
  readonly initrd: string;
  /** The guest kernel's release, e.g. 6.12.95+deb12-powerpc64le. */
  readonly release: string;
}

/** Where the guest's nvme check writes its own pattern, and its length (bytes). */
export const GUEST_WRITES = { offset: 1 << 20, length: 1 << 20 } as const;
/** Where the guest's nvme check reads what the host put on the namespace beforehand. */
export const HOST_WRITES = { offset: 2 << 20, length: 1 << 20 } as const;

/**
 * The guest's /init (busybox sh). It loads the nvme modules. When an NVMe
 * function is present:
 * - on a machine with a device tree (POWER) it waits up to 120 s for a
 *   64-bit DMA window (the pseries kernel records one in the device tree as
 *   `linux,*64-ddr-window-info` of the PHB) and prints `UIOMMU-GUEST: ddw`
 *   or `UIOMMU-GUEST: no-ddw`;
 * - it waits up to 120 s for /dev/nvme0n1 (5 s once the controller is
 *   gone or dead), writes {@link GUEST_WRITES}
 *   bytes from /dev/urandom there with O_DIRECT and fsync, drops the page
 *   cache, reads them back with O_DIRECT, and prints
 *   `UIOMMU-GUEST: nvme write pass|fail block=… sha256=…` (the
 *   namespace's logical block size, the pattern's hash);
 *   then it reads {@link HOST_WRITES} and prints `UIOMMU-GUEST: nvme read
 *   sha256=…` (or `UIOMMU-GUEST: nvme no-namespace state=…`, the
 *   controller's state).
 *
 * Then `UIOMMU-GUEST: ready`. With `uiommu.wait` on the command line it
 * waits for the host's power-down request (QEMU's `system_powerdown`, which
 * the kernel turns into a power-off); otherwise it powers off at once.
 */
export const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "UIOMMU-GUEST: init"
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m || echo "UIOMMU-GUEST: insmod $m failed"; done
if grep -qx 0x010802 /sys/bus/pci/devices/*/class 2>/dev/null; then
  if [ -d /proc/device-tree ]; then
    i=0
    while [ $i -lt 120 ] && ! ls /proc/device-tree/pci*/linux,*64-ddr-window-info >/dev/null 2>&1; do
      sleep 1; i=$((i+1))
    done
    if [ $i -lt 120 ]; then echo "UIOMMU-GUEST: ddw"; else echo "UIOMMU-GUEST: no-ddw"; fi
  fi
  i=0
  while [ $i -lt 120 ] && [ ! -b /dev/nvme0n1 ]; do
    s=$(cat /sys/class/nvme/nvme0/state 2>/dev/null)
    case "$s" in ""|dead|deleting*) [ $i -ge 5 ] && break;; esac
    sleep 1; i=$((i+1))
  done
  if [ -b /dev/nvme0n1 ]; then
    head -c ${GUEST_WRITES.length} /dev/urandom > /tmp/pattern
    dd if=/tmp/pattern of=/dev/nvme0n1 bs=${GUEST_WRITES.length} seek=${GUEST_WRITES.offset / GUEST_WRITES.length} oflag=direct conv=fsync
    echo 3 > /proc/sys/vm/drop_caches
    dd if=/dev/nvme0n1 of=/tmp/back bs=${GUEST_WRITES.length} skip=${GUEST_WRITES.offset / GUEST_WRITES.length} count=1 iflag=direct
    if cmp /tmp/pattern /tmp/back; then v=pass; else v=fail; fi
    b=$(cat /sys/block/nvme0n1/queue/logical_block_size)
    echo "UIOMMU-GUEST: nvme write $v block=$b sha256=$(sha256sum < /tmp/pattern | cut -d' ' -f1)"
    dd if=/dev/nvme0n1 of=/tmp/host bs=${HOST_WRITES.length} skip=${HOST_WRITES.offset / HOST_WRITES.length} count=1 iflag=direct
    echo "UIOMMU-GUEST: nvme read sha256=$(sha256sum < /tmp/host | cut -d' ' -f1)"
  else
    echo "UIOMMU-GUEST: nvme no-namespace state=$s"
  fi
fi
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

/** `url` into `cache` as `name` (once). */
function download(cache: string, url: string, name: string): string {
  const path = join(cache, name);
  if (!existsSync(path)) {
    // an unreachable or stalled archive fails (the test skips with the reason) instead of hanging
    const patience = ['--connect-timeout', '30', '--speed-limit', '1024', '--speed-time', '60'];
    run('curl', ['-fsSL', '--retry', '3', ...patience, '-o', `${path}.part`, url]);
    renameSync(`${path}.part`, path);
  }
  return path;
}

/** The newest stanza of the `Packages.xz` file at `path` whose Package matches `name`. */
function findPackage(path: string, name: RegExp): { pkg: string; file: string } {
  const text = run('xz', ['-dc'], readFileSync(path)).toString();
  let best: { pkg: string; file: string } | undefined;
  for (const stanza of text.split('\n\n')) {
    const pkg = /^Package: (.+)$/m.exec(stanza)?.[1];
    const file = /^Filename: (.+)$/m.exec(stanza)?.[1];
    if (!pkg || !file || !name.test(pkg)) continue;
    if (!best || pkg.localeCompare(best.pkg, 'en', { numeric: true }) > 0) best = { pkg, file };
  }
  if (!best) throw new Error(`no package matching ${name} in ${path}`);
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

/** What stays cached between runs: the kernel and the initramfs without its /init. */
interface Unpacked {
  readonly kernel: string;
  /** cpio entries (busybox, modules, their load order), no trailer. */
  readonly base: string;
  readonly release: string;
}

/** Download the packages (once) and unpack the kernel and the initramfs's base into `cache`. */
function unpack(cache: string, arch: GuestArch, recipe: GuestRecipe): Unpacked {
  const done = join(cache, 'guest.json');
  if (existsSync(done)) {
    const u = JSON.parse(readFileSync(done, 'utf8')) as Partial<Unpacked>;
    if (u.kernel && u.base && u.release && existsSync(u.kernel) && existsSync(u.base)) {
      return u as Unpacked;
    }
  }
  const base = mirror();
  const index = (suite: string) =>
    download(
      cache,
      `${base}/dists/${suite}/main/binary-${arch}/Packages.xz`,
      `${suite}-${arch}-Packages.xz`,
    );
  const image = findPackage(index('bookworm-backports'), recipe.image);
  const busybox = findPackage(index('bookworm'), /^busybox-static$/);
  const root = join(cache, 'root');
  rmSync(root, { recursive: true, force: true });
  for (const p of [image, busybox]) {
    const deb = download(cache, `${base}/${p.file}`, p.file.split('/').at(-1)!);
    run('dpkg-deb', ['-x', deb, root]);
  }
  const release = readdirSync(join(root, 'lib/modules'))[0]!;
  const modules = withDeps(join(root, 'lib/modules', release), ['nvme']);

  const entries: Buffer[] = [];
  const dir = (name: string) => entries.push(cpioEntry(name, 0o40755, Buffer.alloc(0)));
  for (const d of ['bin', 'dev', 'lib', 'lib/modules', 'proc', 'sys', 'sbin', 'tmp']) dir(d);
  entries.push(cpioEntry('dev/console', 0o20600, Buffer.alloc(0), [5, 1]));
  entries.push(cpioEntry('bin/busybox', 0o100755, readFileSync(join(root, 'bin/busybox'))));
  for (const [name, ko] of modules) entries.push(cpioEntry(`lib/modules/${name}`, 0o100644, ko));
  const order = `${modules.map(([name]) => name).join('\n')}\n`;
  entries.push(cpioEntry('lib/modules/order', 0o100644, Buffer.from(order)));

  const u: Unpacked = {
    kernel: join(cache, recipe.kernelFile(release).split('/').at(-1)!),
    base: join(cache, `base-${release}.cpio`),
    release,
  };
  renameSync(join(root, recipe.kernelFile(release)), u.kernel);
  writeFileSync(u.base, Buffer.concat(entries));
  rmSync(root, { recursive: true, force: true });
  writeFileSync(done, JSON.stringify(u));
  return u;
}

/**
 * Download (once) and assemble the guest of `arch`; throws with the reason
 * when a step fails. The initramfs is named after its /init's hash, so a
 * changed {@link INIT} is never served from an old cache.
 */
export function prepareGuest(arch: GuestArch): Guest {
  const recipe = RECIPES[arch];
  const cache = join(homedir(), '.cache/uiommu', recipe.cache);
  mkdirSync(cache, { recursive: true });
  const u = unpack(cache, arch, recipe);
  const hash = createHash('sha256').update(INIT).digest('hex').slice(0, 12);
  const initrd = join(cache, `initrd-${u.release}-${hash}.cpio.gz`);
  if (!existsSync(initrd)) {
    const tail = [
      cpioEntry('init', 0o100755, Buffer.from(INIT)),
      cpioEntry('TRAILER!!!', 0, Buffer.alloc(0)),
    ];
    writeFileSync(`${initrd}.part`, gzipSync(Buffer.concat([readFileSync(u.base), ...tail])));
    renameSync(`${initrd}.part`, initrd);
  }
  return { kernel: u.kernel, initrd, release: u.release };
}

/**
 * The guest of `arch` for a test that needs it, or why there is none (the
 * reason a test skips with); nothing is tried when `skip` already says why.
 */
export function guestOrReason(
  arch: GuestArch,
  skip: string | false,
): { guest?: Guest; missing: string | false } {
  if (skip) return { missing: skip };
  try {
    return { guest: prepareGuest(arch), missing: false };
  } catch (e) {
    return { missing: `the Debian ${arch} guest could not be prepared: ${(e as Error).message}` };
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arch = process.argv[2] as GuestArch;
  if (!(arch in RECIPES))
    throw new Error(`usage: debian-guest.ts ${Object.keys(RECIPES).join('|')}`);
  const g = prepareGuest(arch);
  console.log(`${g.kernel}\n${g.initrd}`);
}
