/**
 * The layering table of docs/design.md §2, held against the code: every
 * import between two folders of src/ must be one the table allows (with
 * its one-file exceptions), every folder must be in the table, and the
 * folder-level graph has no cycle. The graph is printed as a diagnostic.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(REPO, 'src');

/** A folder's allowed imports; `only` narrows one of them to a file and a target prefix. */
interface Rule {
  readonly allowed: Set<string>;
  readonly only: Map<string, { file: string; target: string }>;
}

/** The rows `| \`src/X/\` | … | may import |` of docs/design.md. */
function layeringTable(): Map<string, Rule> {
  const doc = readFileSync(join(REPO, 'docs/design.md'), 'utf8');
  const table = new Map<string, Rule>();
  for (const line of doc.split('\n')) {
    const row = /^\| `src\/([a-z]+)\/` \|.*\| ([^|]+) \|$/.exec(line);
    if (!row) continue;
    const rule: Rule = { allowed: new Set(), only: new Map() };
    for (const part of row[2]!.split(/,(?![^(]*\))/)) {
      const m = /^\s*([a-z]+)(?: \(`([^`]+)` → `([^`]+)` only\))?\s*$/.exec(part);
      assert.ok(m, `docs/design.md: cannot read "${part}" in the row of src/${row[1]}/`);
      if (m[1] === 'nothing') continue;
      rule.allowed.add(m[1]!);
      if (m[2]) rule.only.set(m[1]!, { file: m[2], target: m[3]! });
    }
    table.set(row[1]!, rule);
  }
  return table;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

interface Import {
  readonly from: string;
  readonly to: string;
}

/** Every relative import, `import type` and re-export of src/, as paths below src/. */
function imports(): Import[] {
  return sources(SRC).flatMap((file) =>
    ts
      .preProcessFile(readFileSync(file, 'utf8'), true, false)
      .importedFiles.filter((f) => f.fileName.startsWith('.'))
      .map((f) => ({
        from: relative(SRC, file),
        to: relative(SRC, resolve(dirname(file), f.fileName)),
      })),
  );
}

const folder = (path: string): string => path.split('/')[0]!;

test('every folder of src/ is in the layering table of docs/design.md', () => {
  const table = layeringTable();
  const folders = readdirSync(SRC, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
  assert.deepEqual(folders.filter((f) => !table.has(f)).sort(), []);
  for (const [name, rule] of table) {
    for (const dep of rule.allowed) assert.ok(table.has(dep), `src/${name}/ may import "${dep}"?`);
  }
});

test('imports between folders follow the layering table of docs/design.md', (t) => {
  const table = layeringTable();
  const edges = new Map<string, number>();
  const wrong: string[] = [];
  for (const { from, to } of imports()) {
    const a = folder(from);
    const b = folder(to);
    if (a === b) continue;
    edges.set(`${a} → ${b}`, (edges.get(`${a} → ${b}`) ?? 0) + 1);
    const rule = table.get(a);
    const only = rule?.only.get(b);
    if (!rule?.allowed.has(b)) wrong.push(`${from} imports ${to}`);
    else if (only && (from !== `${a}/${only.file}` || !to.startsWith(only.target))) {
      wrong.push(`${from} imports ${to} (only ${a}/${only.file} → ${only.target})`);
    }
  }
  t.diagnostic(
    [...edges]
      .sort()
      .map(([e, n]) => `${e} (${n})`)
      .join(', '),
  );
  assert.deepEqual(wrong, []);
});

test('the folder-level import graph has no cycle', () => {
  const next = new Map<string, Set<string>>();
  for (const { from, to } of imports()) {
    const a = folder(from);
    const b = folder(to);
    if (a !== b) next.set(a, (next.get(a) ?? new Set()).add(b));
  }
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (node: string): void => {
    const at = path.indexOf(node);
    assert.equal(at, -1, `import cycle: ${[...path.slice(at), node].join(' → ')}`);
    if (done.has(node)) return;
    path.push(node);
    for (const n of next.get(node) ?? []) visit(n);
    path.pop();
    done.add(node);
  };
  for (const node of next.keys()) visit(node);
});
