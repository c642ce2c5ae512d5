/**
 * BAR mappings in a real process under `uiommu run --host x86`
 * (test/server/bar-mmap.c, docs/device-mmap.md): the DMA engine's BAR0
 * mapped, its registers trapped and emulated, its buffer page shared
 * memory, a DMA driven through the mapping, fork, the program's own
 * SIGSEGV handler, SIGBUS with decode off, mprotect, mremap, munmap of
 * half, an unemulated instruction, and MAP_DMA of the mapping (EFAULT on
 * the iommufd compat container).
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { arch, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runCProgram } from './c-program.ts';

const dir = mkdtempSync(join(tmpdir(), 'uiommu-bar-mmap-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const skip = arch() !== 'x64' ? 'the register trap decodes x86-64' : false;

test('a real process maps BAR0 and drives the DMA engine through trapped registers', {
  skip,
}, () => {
  runCProgram(dir, 'bar-mmap', ['--host', 'x86'], 25);
});

test('on the legacy type1 container MAP_DMA of the BAR mapping is peer-to-peer', { skip }, () => {
  const legacy = ['--host', 'x86', '--personality', 'vfioContainer=type1'];
  runCProgram(dir, 'bar-mmap', legacy, 24, ['type1']);
});
