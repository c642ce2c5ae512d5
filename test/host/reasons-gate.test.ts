/**
 * The pinned-reason gate: every failure site of src/ (test/abi/fail-sites.ts)
 * is pinned by a row of the reason tables (test/host/reasons*.test.ts) — a
 * row with the site's `where`, its errno, and a reason its template matches
 * (a template literal's holes, and any expression that is not a literal,
 * match anything) — or is exempt (reasons-exempt.ts, each with why), or is
 * on the known-missing list (reasons-unpinned.ts), which may only shrink:
 * a listed site that is pinned, exempt or gone, and a site on no list, fail.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { failSites, SITES, siteKey, sitePins } from '../abi/fail-sites.ts';
import { EXEMPT } from './reasons-exempt.ts';
import { collectPins } from './reasons-support.ts';
import { UNPINNED } from './reasons-unpinned.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const TABLES = readdirSync(HERE)
  .filter((n) => /^reasons.*\.test\.ts$/.test(n) && n !== 'reasons-gate.test.ts')
  .map((n) => join(HERE, n));
const PINS = await collectPins(TABLES);

/** The area of a source file: its directory under the repository. */
const area = (file: string) => dirname(file);

const exempt = new Map(EXEMPT.flatMap((x) => x.sites.map((k) => [k, x.why] as const)));
const listed = new Set(Object.values(UNPINNED).flat());
const keys = new Set(SITES.map(siteKey));
const pinnedKeys = new Set(SITES.filter((s) => PINS.some((p) => sitePins(s, p))).map(siteKey));

test('the gate reads templates, conditionals and consts, and matches only what they allow', () => {
  const [s] = failSites(
    'src/x/y.ts',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the source text of a template literal
    "const where = 'f';\nfail('EINVAL', c ? `iova ${hex(i)} past ${n}` : 'no', where);",
  );
  assert.ok(s);
  const row = (reason: string, where = 'f', errno = 'EINVAL') =>
    sitePins(s, { errno, reason, where });
  assert.ok(row('iova 0x1000 past 4'));
  assert.ok(row('no'));
  assert.ok(!row('iova 0x1000 past'));
  assert.ok(!row('nope'));
  assert.ok(!row('no', 'g'));
  assert.ok(!row('no', 'f', 'EPERM'));
  assert.equal(siteKey(s), "src/x/y.ts · f · c ? `iova {hex(i)} past {n}` : 'no'");
  assert.ok(PINS.length > 100, `only ${PINS.length} rows collected from ${TABLES.length} tables`);
});

test('every failure site is pinned, exempt, or on the known-missing list', (t) => {
  const byArea = new Map<
    string,
    { sites: number; pinned: number; exempt: number; missing: number }
  >();
  for (const k of keys) {
    const a = area(k.split(' · ')[0] ?? '');
    const c = byArea.get(a) ?? { sites: 0, pinned: 0, exempt: 0, missing: 0 };
    c.sites++;
    if (pinnedKeys.has(k)) c.pinned++;
    else if (exempt.has(k)) c.exempt++;
    else c.missing++;
    byArea.set(a, c);
  }
  const total = { sites: 0, pinned: 0, exempt: 0, missing: 0 };
  for (const [a, c] of [...byArea].sort()) {
    t.diagnostic(
      `${a}: ${c.sites} sites, ${c.pinned} pinned, ${c.exempt} exempt, ${c.missing} unpinned`,
    );
    for (const f of Object.keys(total) as (keyof typeof total)[]) total[f] += c[f];
  }
  t.diagnostic(
    `all: ${total.sites} sites, ${total.pinned} pinned, ${total.exempt} exempt, ${total.missing} unpinned (${PINS.length} rows)`,
  );
  const unlisted = [...keys].filter((k) => !pinnedKeys.has(k) && !exempt.has(k) && !listed.has(k));
  assert.deepEqual(
    unlisted,
    [],
    'sites with no pinning row: pin them (or, if exempt, say why in reasons-exempt.ts)',
  );
});

test('every row pins some site (a row no template matches means the reading is wrong)', () => {
  const stray = PINS.filter((p) => !SITES.some((s) => sitePins(s, p))).map(
    (p) => `${p.sheet}: ${p.rule}`,
  );
  assert.deepEqual(stray, []);
});

test('the known-missing list only shrinks', () => {
  const stale = [...listed].filter((k) => pinnedKeys.has(k) || exempt.has(k) || !keys.has(k));
  assert.deepEqual(stale, [], 'pinned, exempt or gone: remove from reasons-unpinned.ts');
  for (const [a, ks] of Object.entries(UNPINNED)) {
    for (const k of ks) assert.equal(area(k.split(' · ')[0] ?? ''), a, `${k} listed under ${a}`);
  }
});

test('every exemption names a site that exists and is not pinned', () => {
  const stale = [...exempt.keys()].filter((k) => !keys.has(k) || pinnedKeys.has(k));
  assert.deepEqual(stale, [], 'gone or pinned: remove from reasons-exempt.ts');
});
