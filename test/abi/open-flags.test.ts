import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openFlagsText } from '../../src/abi/open-flags.ts';
import { Kernel } from '../../src/host/kernel.ts';

test('every open flag is named, in ascending bit order; unknown bits stay octal', () => {
  assert.equal(openFlagsText(0o2000102, 'generic'), 'O_RDWR|O_CREAT|O_CLOEXEC');
  assert.equal(openFlagsText(0o304, 'generic'), 'O_RDONLY|O_CREAT|O_EXCL|04');
  assert.equal(openFlagsText(0o4010001, 'generic'), 'O_WRONLY|O_SYNC');
  assert.equal(openFlagsText(0o10001, 'generic'), 'O_WRONLY|O_DSYNC');
  assert.equal(openFlagsText(0o20200002, 'generic'), 'O_RDWR|O_TMPFILE');
  assert.equal(openFlagsText(0o200000, 'generic'), 'O_RDONLY|O_DIRECTORY');
  assert.equal(openFlagsText(0o40000, 'powerpc'), 'O_RDONLY|O_DIRECTORY');
  assert.equal(openFlagsText(0o40000, 'generic'), 'O_RDONLY|O_DIRECT');
  assert.equal(
    openFlagsText(0o4000 | 0o1000 | 0o2000 | 0o400, 'generic'),
    'O_RDONLY|O_NOCTTY|O_TRUNC|O_APPEND|O_NONBLOCK',
  );
  assert.equal(openFlagsText(0o100000000, 'generic'), 'O_RDONLY|0100000000');
});

test('openat traces show the flags by name', () => {
  const p = new Kernel().spawn();
  const lines: string[] = [];
  p.trace = (l) => lines.push(l);
  p.open('/dev/iommu', 0o2004102);
  assert.deepEqual(lines, [
    'openat(AT_FDCWD, "/dev/iommu", O_RDWR|O_CREAT|O_NONBLOCK|O_CLOEXEC) = 3',
  ]);
});
