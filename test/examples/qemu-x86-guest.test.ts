/**
 * A Linux x86 guest does NVMe I/O through vfio-pci: QEMU (qemu-system-x86_64,
 * TCG, one CPU) under `uiommu run` on the x86 preset, whose NVMe function
 * 0000:02:00.0 runs uiommu's NVMe controller on a namespace file, boots
 * Debian's amd64 6.12 kernel with an initramfs of Debian's busybox and nvme
 * modules (debian-guest.ts, cached in ~/.cache/uiommu/x86-guest), with the
 * function assigned (`-device vfio-pci`, BAR0 mapped: its register pages
 * trap). The guest's nvme driver probes the controller; the guest writes
 * 1 MiB of random bytes to /dev/nvme0n1 (4 KiB blocks) with O_DIRECT, reads them back and
 * reads 1 MiB the host seeded; afterwards the namespace file holds the
 * guest's bytes, QEMU's calls all succeeded but Linux's own refusals, and
 * nothing is left pinned. The boot time is printed as a test diagnostic.
 * Skipped with the reason when QEMU cannot run a guest or the guest's
 * packages are not available.
 *
 * @slow: boots a Linux guest under QEMU (left out of npm run test:quick)
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { x86 } from '../../src/host/topology/index.ts';
import { guestOrReason } from './debian-guest.ts';
import {
  assertNvmeIo,
  calls,
  GuestQemu,
  nvmeHost,
  qemuUnusable,
  seedNamespace,
  unexpectedFailures,
} from './guest-qemu.ts';

const QEMU = 'qemu-system-x86_64';
const TCG = ['-machine', 'q35,accel=tcg', '-smp', '1', '-m', '256'];
/** The x86 preset's NVMe function (group 12). */
const NVME = '0000:02:00.0';
const NS_BYTES = 64 << 20;
/** 4 KiB blocks (the POWER guest has 512-byte ones): both LBA formats meet the Linux driver. */
const LBA = 4096;

const { guest, missing } = guestOrReason(
  'amd64',
  qemuUnusable(QEMU, [...TCG, '-display', 'none', '-nodefaults']),
);

describe('x86: a Debian guest under QEMU under uiommu run', {
  skip: missing,
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'uiommu-x86-guest-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("the guest's nvme driver probes the assigned NVMe function; the guest reads back what it wrote and reads the host's bytes; the namespace file holds the guest's; only Linux's own refusals fail; nothing stays pinned", {
    timeout: 900_000,
  }, async () => {
    const ns = join(dir, 'ns.img');
    const seeded = seedNamespace(ns, NS_BYTES);
    const host = nvmeHost(
      x86,
      NVME,
      { file: ns, size: NS_BYTES, lbaSize: LBA },
      join(dir, 'x86.json'),
    );
    const q = new GuestQemu(dir, 'x86', host, QEMU, [
      ...TCG,
      ...['-kernel', guest!.kernel, '-initrd', guest!.initrd, '-append', 'console=ttyS0'],
      ...['-device', `vfio-pci,host=${NVME}`],
    ]);
    try {
      await q.until('guest ready', () => /UIOMMU-GUEST: ready/.test(q.guest()), 600_000);
      const readyMs = Date.now() - q.started;
      await q.until('guest power-off', () => q.gone, 120_000, true);
      console.log(`boot to the end of the guest's init: ${(readyMs / 1000).toFixed(1)} s`);
    } finally {
      q.kill();
    }
    assert.equal(await q.exited, 0, q.diagnose());
    assert.match(q.guest(), /nvme nvme0: pci function/);
    console.log(assertNvmeIo(q.guest(), ns, seeded, LBA));
    assert.equal(q.err, '', 'QEMU printed warnings or errors');
    const recs = q.records();
    assert.match(calls(recs, 'VFIO_SET_IOMMU')[0]?.text ?? '', /VFIO_TYPE1v2_IOMMU\) = 0/);
    const maps = calls(recs, 'VFIO_IOMMU_MAP_DMA');
    assert.ok(
      maps.length > 0 && maps.every((r) => r.ret === 0),
      maps.map((r) => r.text).join('\n'),
    );
    assert.deepEqual(unexpectedFailures(recs), []);
    const exit = recs.at(-1)?.state;
    assert.equal(exit?.at, 'exit');
    assert.equal(exit.pinnedPages, '0', 'nothing left pinned');
    assert.ok(
      exit.users.every((u: { lockedPages: string }) => u.lockedPages === '0'),
      'no locked pages left',
    );
  });
});
