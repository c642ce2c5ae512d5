#!/usr/bin/env node
// The `uiommu` command. `npm ci` (or `npm run build`) bundles the TypeScript CLI into
// dist/cli/main.cjs, which starts from V8's code cache (bin/code-cache.js); while any
// file under src/ is newer than that bundle, the sources run through tsx's loader
// instead, so edits count at once. This directory is CommonJS (bin/package.json):
// starting under Node's ES module loader cost ~10 ms more.
'use strict';
const { readdirSync, statSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const bundle = join(root, 'dist/cli/main.cjs');

/** Newest modification time of a file under `dir`, in ms. */
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = `${dir}/${e.name}`;
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

let fresh = false;
try {
  fresh = statSync(bundle).mtimeMs >= newest(join(root, 'src'));
} catch {
  fresh = false;
}
if (fresh) {
  require('./code-cache.js').runCached(bundle);
} else {
  import('tsx/esm/api').then(({ register }) => {
    register();
    return import('../src/cli/main.ts');
  });
}
