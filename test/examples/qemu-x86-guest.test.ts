/**
 * A Linux x86 guest does NVMe I/O: QEMU (qemu-system-x86_64, TCG, one CPU)
 * under `uiommu run --host x86` boots Debian's amd64 6.12 kernel with an
 * initramfs of Debian's busybox and nvme modules (debian-guest.ts, cached in
 * ~/.cache/uiommu/x86-guest). The guest's nvme driver probes the NVMe
 * controller, the guest writes 1 MiB of random bytes to /dev/nvme0n1 with
 * O_DIRECT, reads them back and reads 1 MiB the host seeded; afterwards the
 * namespace's file on the host holds the guest's bytes.
 *
 * The controller is QEMU's own emulated `-device nvme` for now: it proves
 * the guest side of the check until the NVMe model is assigned instead
 * (`-device vfio-pci`). The boot time is printed as a test diagnostic.
 * Skipped with the reason when QEMU cannot run a guest or the guest's
 * packages are not available.
 *
 * @slow: boots a Linux guest under QEMU (left out of npm run test:quick)
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { guestOrReason } from './debian-guest.ts';
import { assertNvmeIo, GuestQemu, qemuUnusable, seedNamespace } from './guest-qemu.ts';

const QEMU = 'qemu-system-x86_64';
const TCG = ['-machine', 'q35,accel=tcg', '-smp', '1', '-m', '256'];

const { guest, missing } = guestOrReason(
  'amd64',
  qemuUnusable(QEMU, [...TCG, '-display', 'none', '-nodefaults']),
);

describe('x86: a Debian guest under QEMU under uiommu run', {
  skip: missing,
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'uiommu-x86-guest-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("the guest's nvme driver probes the controller; what the guest writes it reads back, and the namespace file holds it", {
    timeout: 900_000,
  }, async () => {
    const ns = join(dir, 'ns.img');
    writeFileSync(ns, '');
    truncateSync(ns, 64 << 20);
    const seeded = seedNamespace(ns);
    const q = new GuestQemu(dir, 'x86', 'x86', QEMU, [
      ...TCG,
      ...['-kernel', guest!.kernel, '-initrd', guest!.initrd, '-append', 'console=ttyS0'],
      ...[
        '-drive',
        `file=${ns},if=none,id=ns,format=raw`,
        '-device',
        'nvme,serial=uiommu,drive=ns',
      ],
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
    console.log(assertNvmeIo(q.guest(), ns, seeded));
    assert.equal(q.err, '', 'QEMU printed warnings or errors');
  });
});
