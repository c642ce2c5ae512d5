/**
 * Routing of /sys and /dev in a real process under `uiommu run --host x86`
 * (test/server/sys-routing.c): folders the emulated host owns answer
 * ENOENT for what they lack (this machine's own /sys has most of those
 * names), the xattr family answers as sysfs and devtmpfs, and `ls -l` of
 * /sys/bus/pci/devices (lstat + lgetxattr per entry) prints every link.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ROOT, runCProgram } from './c-program.ts';

const dir = mkdtempSync(join(tmpdir(), 'uiommu-sys-routing-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('owned folders answer ENOENT for what they lack; xattrs answer as sysfs and devtmpfs', () => {
  // on iommufd's compat container, where vfio_iommu_type1 is not loaded
  runCProgram(dir, 'sys-routing', ['--host', 'x86', '--personality', 'vfioContainer=iommufd'], 20);
});

test('ls -l /sys/bus/pci/devices lists the emulated functions', () => {
  const r = spawnSync(
    process.execPath,
    [join(ROOT, 'bin/uiommu.js'), 'run', '--host', 'x86', '--', 'ls', '-l', '/sys/bus/pci/devices'],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(
    r.stdout,
    /^l\S+ .* 0000:00:02\.0 -> \.\.\/\.\.\/\.\.\/devices\/pci0000:00\/0000:00:02\.0$/m,
  );
  assert.doesNotMatch(r.stdout, /0000:00:01\.0/);
});
