/**
 * Interrupts of a real process under `uiommu run --host x86`
 * (test/server/irq.c): eventfds wired with VFIO_DEVICE_SET_IRQS are
 * signalled by DATA_NONE/DATA_BOOL triggers and by the DMA engine's
 * completions and faults over MSI-X, MSI and INTx (auto-masked, re-signalled
 * by an unmask while pending); a closed fd is EBADF, a pipe EINVAL; a
 * conventional function has no reset method and a 256-byte config region.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runCProgram } from './c-program.ts';

const dir = mkdtempSync(join(tmpdir(), 'uiommu-irq-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('SET_IRQS eventfds of a real process fire as on vfio-pci (loopback, DMA completion, INTx masking)', () => {
  runCProgram(dir, 'irq', ['--host', 'x86'], 45);
});
