/**
 * The C test programs of test/server/ run under `uiommu run`: built with
 * examples/ on the include path, they print one "ok ..." line per check
 * and a "FAIL..." line for any answer not the kernel's.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';

/** The package's root directory. */
export const ROOT = resolve(import.meta.dirname, '../..');

/**
 * Build test/server/`name`.c into `dir` and run it as `uiommu run ...runArgs
 * -- program ...programArgs`: it must exit 0 with no FAIL line, exactly `oks` ok lines and
 * no model bug reported. Returns its standard output.
 */
export function runCProgram(
  dir: string,
  name: string,
  runArgs: readonly string[],
  oks: number,
  programArgs: readonly string[] = [],
): string {
  const bin = buildCProgram(dir, name);
  const r = spawnSync(
    process.execPath,
    [join(ROOT, 'bin/uiommu.js'), 'run', ...runArgs, '--', bin, ...programArgs],
    {
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  assert.doesNotMatch(r.stdout, /^FAIL/m, r.stdout);
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.equal(r.stdout.match(/^ok[: ]/gm)?.length, oks, r.stdout);
  assert.doesNotMatch(r.stderr, /model bug/);
  return r.stdout;
}

/** Build test/server/`name`.c into `dir` (examples/ and native/ on the include path); its path. */
export function buildCProgram(dir: string, name: string): string {
  const bin = join(dir, name);
  execFileSync('cc', [
    '-O2',
    '-Wall',
    '-I',
    join(ROOT, 'examples'),
    '-I',
    join(ROOT, 'native'),
    '-o',
    bin,
    join(import.meta.dirname, `${name}.c`),
    '-pthread',
  ]);
  return bin;
}
