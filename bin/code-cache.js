// Runs a CommonJS file (the bundled CLI) with V8's code cache, so that a start
// deserializes the functions an earlier run compiled instead of parsing and
// compiling them again. One cache file per script path, under
// $UIOMMU_CACHE/code-cache (default ~/.cache/uiommu/code-cache). Its first line
// names what it was made from (Node version, architecture, the script's size,
// mtime and inode): V8 checks only the source's length, so a different
// script must never meet the cache of another. When the cache is missing,
// stale or rejected, the script runs compiled from source and the cache is
// written at exit (so it holds what the run compiled), atomically by rename;
// any failure to read or write it only costs the speed-up.
'use strict';
const { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { homedir } = require('node:os');
const { dirname, join } = require('node:path');
const { Script } = require('node:vm');

/** The cache directory: $UIOMMU_CACHE/code-cache, default ~/.cache/uiommu/code-cache; may throw (no home). */
function codeCacheDir() {
  return join(process.env.UIOMMU_CACHE || join(homedir(), '.cache/uiommu'), 'code-cache');
}

/** FNV-1a of a string, as 8 hex digits: names the cache file of a script path. */
function fnv1a(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** What a cache must have been made from to serve `file` as it is now. */
function identity(file) {
  const st = statSync(file, { bigint: true });
  return `${process.version} ${process.arch} ${st.size} ${st.mtimeNs} ${st.ino}\n`;
}

/** The cached data in `path` when its first line is `id`, else undefined. */
function readCache(path, id) {
  try {
    const buf = readFileSync(path);
    const nl = buf.indexOf(10);
    return nl + 1 === id.length && buf.toString('latin1', 0, nl + 1) === id
      ? buf.subarray(nl + 1)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Run the CommonJS script `file` (absolute path) as a module would run:
 * with its own `require`, `module`, `exports`, `__filename` and `__dirname`.
 * `cacheDir` is codeCacheDir() unless given; when it cannot be named (no
 * home directory) the script runs without a cache.
 */
function runCached(file, cacheDir) {
  const source = readFileSync(file, 'utf8');
  const id = identity(file);
  let cachePath;
  try {
    cachePath = join(cacheDir ?? codeCacheDir(), `${fnv1a(file)}.v8`);
  } catch {
    cachePath = undefined;
  }
  const cachedData = cachePath && readCache(cachePath, id);
  const script = new Script(
    `(function (exports, require, module, __filename, __dirname) {${source}\n})`,
    { filename: file, ...(cachedData ? { cachedData } : {}) },
  );
  if (cachePath && (!cachedData || script.cachedDataRejected)) {
    process.once('exit', () => {
      try {
        mkdirSync(dirname(cachePath), { recursive: true });
        const tmp = `${cachePath}.${process.pid}`;
        writeFileSync(tmp, Buffer.concat([Buffer.from(id, 'latin1'), script.createCachedData()]));
        renameSync(tmp, cachePath);
      } catch {
        // an unwritable cache: the next start compiles from source again
      }
    });
  }
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(file), module, file, dirname(file));
}

module.exports = { runCached };
