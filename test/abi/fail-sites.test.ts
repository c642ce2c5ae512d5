/**
 * Every failure the model raises says why and by which kernel rule: each
 * `fail(code, reason, where)` call and `new Errno(…)` in src/ passes a
 * reason and a `where`, read from the syntax tree (not by regex). A
 * literal `where` must be a C function name, and, when a full Linux tree
 * is at hand, one that Linux defines; names starting `uiommu_` mark rules
 * of uiommu's own extensions and are exempt from that lookup.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { failSites, SITES } from './fail-sites.ts';

/** A full Linux tree (the reference kernel's, see /work/shared/refkernel). */
const LINUX = join(homedir(), '.cache/uiommu/refkernel/src');

/** An empty or blank literal is no reason. */
function blank(e: ts.Expression): boolean {
  return (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) && e.text.trim() === '';
}

test('the scan finds the failure sites (and the checker sees a missing reason)', () => {
  assert.ok(SITES.length > 400, `only ${SITES.length} sites found`);
  const [bare, full] = failSites('x.ts', "fail('EINVAL');\nfail('EINVAL', 'r', 'f');");
  assert.equal(bare?.reason, undefined);
  assert.ok(full?.reason && full.where);
});

test('every fail() site gives a reason', () => {
  const missing = SITES.filter((s) => !s.reason || blank(s.reason)).map((s) => s.at);
  assert.deepEqual(missing, [], `${missing.length} of ${SITES.length} sites without a reason`);
});

test('every fail() site names the kernel function whose rule it follows', () => {
  const missing = SITES.filter((s) => !s.where || blank(s.where)).map((s) => s.at);
  assert.deepEqual(missing, [], `${missing.length} of ${SITES.length} sites without a where`);
});

/** The literal `where` names and the sites using each. */
function literalWheres(): Map<string, string[]> {
  const names = new Map<string, string[]>();
  for (const s of SITES) {
    if (!s.where || !ts.isStringLiteral(s.where)) continue;
    names.set(s.where.text, [...(names.get(s.where.text) ?? []), s.at]);
  }
  return names;
}

test('a literal where is a C function name', () => {
  const bad = [...literalWheres()].filter(([n]) => !/^[a-z_][a-z0-9_]*$/.test(n));
  assert.deepEqual(bad, []);
});

test('a literal where is a function Linux defines', (t) => {
  if (!existsSync(join(LINUX, 'Makefile'))) {
    t.skip(`no full Linux tree at ${LINUX}`);
    return;
  }
  const wanted = [...literalWheres().keys()].filter((n) => !n.startsWith('uiommu_'));
  // one pass: every wanted name written as a definition or a call, `name(`
  const dirs = [
    'drivers/iommu',
    'drivers/vfio',
    'drivers/pci',
    'fs',
    'mm',
    'lib',
    'arch/powerpc',
    'include/linux',
  ];
  const found = new Set(
    execFileSync(
      'grep',
      ['-rhoE', `\\b(${wanted.join('|')})\\(`, '--include=*.c', '--include=*.h', ...dirs],
      { cwd: LINUX, maxBuffer: 1 << 28 },
    )
      .toString()
      .split('\n')
      .map((m) => m.slice(0, -1)),
  );
  const unknown = wanted.filter((n) => !found.has(n));
  assert.deepEqual(unknown, [], `not found in ${LINUX}: ${unknown.join(', ')}`);
});
