#!/usr/bin/env node
// The `uiommu` command. `npm ci` (or `npm run build`) bundles the TypeScript CLI into
// dist/cli/main.cjs, which starts from V8's code cache (bin/code-cache.js); while any
// file under src/ is newer than that bundle, the sources run through tsx's loader
// instead, so edits count at once.
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bundle = `${root}dist/cli/main.cjs`;

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
  fresh = statSync(bundle).mtimeMs >= newest(`${root}src`);
} catch {
  fresh = false;
}
if (fresh) {
  const { runCached } = await import('./code-cache.js');
  runCached(bundle);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
