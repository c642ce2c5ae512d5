#!/usr/bin/env node
// The `uiommu` command. `npm ci` (or `npm run build`) bundles the TypeScript CLI into
// dist/cli/main.mjs (fast start); while any file under src/ is newer than that
// bundle, the sources run through tsx's loader instead, so edits count at once.
import { readdirSync, statSync } from 'node:fs';

const bundle = new URL('../dist/cli/main.mjs', import.meta.url);

/** Newest modification time under `dir`, in ms. */
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = new URL(e.name + (e.isDirectory() ? '/' : ''), dir);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

let fresh = false;
try {
  fresh = statSync(bundle).mtimeMs >= newest(new URL('../src/', import.meta.url));
} catch {
  fresh = false;
}
if (fresh) {
  await import(bundle.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
