/**
 * bin/code-cache.js: a CommonJS script runs the same from source and from
 * V8's code cache; the cache is written once, reused while the script is
 * unchanged, and never serves a changed script or a damaged file.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';

const LOADER = pathToFileURL(join(import.meta.dirname, '../../bin/code-cache.js')).href;

/** A script using what a CommonJS module gets: require (relative too), module, __dirname. */
const script = (word: string) => `
const { join } = require('node:path');
const helper = require('./helper.cjs');
module.exports.ok = true;
process.stdout.write(helper('${word}') + ' ' + (join(__dirname, 'main.cjs') === __filename) + ' ' + module.exports.ok + '\\n');
`;

describe('bin/code-cache.js', () => {
  let dir: string;
  let main: string;
  let cacheDir: string;

  /** Run main.cjs through runCached; its output. */
  const run = (cache = cacheDir) =>
    execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { runCached } from '${LOADER}'; runCached(${JSON.stringify(main)}, ${JSON.stringify(cache)});`,
      ],
      { encoding: 'utf8' },
    );
  const cacheFile = () => {
    const files = readdirSync(cacheDir);
    assert.equal(files.length, 1, `one cache file, no leftovers: ${files}`);
    return join(cacheDir, files[0]!);
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'uiommu-code-cache-'));
    main = join(dir, 'main.cjs');
    cacheDir = join(dir, 'cache');
    writeFileSync(join(dir, 'helper.cjs'), "module.exports = (w) => '<' + w + '>';\n");
    writeFileSync(main, script('alpha'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('the first run compiles from source and writes the cache; the next one uses it unchanged', () => {
    assert.equal(run(), '<alpha> true true\n');
    const file = cacheFile();
    const first = statSync(file);
    const header = readFileSync(file, 'latin1').split('\n')[0]!;
    const st = statSync(main, { bigint: true });
    assert.equal(header, `${process.version} ${process.arch} ${st.size} ${st.mtimeNs} ${st.ino}`);
    assert.equal(run(), '<alpha> true true\n');
    const second = statSync(file);
    assert.equal(second.ino, first.ino, 'an accepted cache is not written again');
    assert.equal(second.mtimeMs, first.mtimeMs);
  });

  it('a script changed to one of the same length runs as it is now, and gets a new cache', () => {
    run();
    const before = statSync(cacheFile());
    writeFileSync(main, script('gamma'));
    assert.equal(run(), '<gamma> true true\n');
    assert.notEqual(statSync(cacheFile()).ino, before.ino);
    const rewritten = statSync(cacheFile());
    assert.equal(run(), '<gamma> true true\n');
    assert.equal(statSync(cacheFile()).ino, rewritten.ino, 'the new cache is accepted');
  });

  it('a damaged cache behind a matching first line is rejected by V8 and replaced', () => {
    run();
    const file = cacheFile();
    const header = readFileSync(file, 'latin1').split('\n')[0]!;
    writeFileSync(file, Buffer.concat([Buffer.from(`${header}\n`), Buffer.alloc(4096, 0xa5)]));
    const damaged = statSync(file);
    assert.equal(run(), '<gamma> true true\n');
    assert.notEqual(statSync(file).ino, damaged.ino);
    assert.ok(
      !readFileSync(file)
        .subarray(header.length + 1)
        .equals(Buffer.alloc(4096, 0xa5)),
    );
  });

  it('an unusable cache directory costs only the speed-up', () => {
    const blocked = join(dir, 'not-a-dir');
    writeFileSync(blocked, '');
    assert.equal(run(join(blocked, 'cache')), '<gamma> true true\n');
  });
});
