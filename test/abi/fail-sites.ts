/**
 * The failure sites of src/: every `fail(code, reason, where)` call and
 * `new Errno(code, reason, where)`, read from the TypeScript syntax tree
 * (not by regex). Shared by the reason/where checks
 * (test/abi/fail-sites.test.ts) and the pinned-reason gate
 * (test/host/reasons-gate.test.ts), with each site's key and the rows that
 * pin it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = join(REPO, 'src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

export interface Site {
  /** `src/…/file.ts:line` */
  readonly at: string;
  /** `src/…/file.ts` */
  readonly file: string;
  readonly code: ts.Expression | undefined;
  readonly reason: ts.Expression | undefined;
  readonly where: ts.Expression | undefined;
}

/** Every `fail(…)` and `new Errno(…)` in `file`'s text. */
export function failSites(file: string, text: string): Site[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const rel = relative(REPO, file);
  const out: Site[] = [];
  const visit = (node: ts.Node): void => {
    const isFail =
      ts.isCallExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'fail';
    const isErrno =
      ts.isNewExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'Errno';
    if (isFail || isErrno) {
      const args = (node as ts.CallExpression | ts.NewExpression).arguments ?? [];
      const line = sf.getLineAndCharacterOfPosition(node.getStart()).line + 1;
      out.push({ at: `${rel}:${line}`, file: rel, code: args[0], reason: args[1], where: args[2] });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** The failure sites of every source file under src/. */
export const SITES: readonly Site[] = sources(SRC).flatMap((f) =>
  failSites(f, readFileSync(f, 'utf8')),
);

/** The values `e` can take, as regular-expression sources (`.*` for what is not a literal). */
function patterns(e: ts.Expression | undefined): string[] {
  if (!e) return ['.*'];
  if (ts.isParenthesizedExpression(e)) return patterns(e.expression);
  if (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) return [literal(e.text)];
  if (ts.isTemplateExpression(e)) {
    return [
      literal(e.head.text) + e.templateSpans.map((s) => `.*${literal(s.literal.text)}`).join(''),
    ];
  }
  if (ts.isConditionalExpression(e)) return [...patterns(e.whenTrue), ...patterns(e.whenFalse)];
  if (ts.isIdentifier(e)) {
    const init = constInit(e);
    if (init) return patterns(init);
  }
  return ['.*'];
}

const literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The initializer of the `const` that `id` names in an enclosing block, if any. */
function constInit(id: ts.Identifier): ts.Expression | undefined {
  for (let n: ts.Node | undefined = id.parent; n; n = n.parent) {
    if (!ts.isBlock(n) && !ts.isSourceFile(n)) continue;
    for (const st of n.statements) {
      if (!ts.isVariableStatement(st) || !(st.declarationList.flags & ts.NodeFlags.Const)) continue;
      for (const d of st.declarationList.declarations) {
        if (ts.isIdentifier(d.name) && d.name.text === id.text && d.initializer)
          return d.initializer;
      }
    }
  }
  return undefined;
}

/** A site's name on the lists: file, where, and the reason as written (holes as `{expr}`, blanks collapsed). */
export function siteKey(s: Site): string {
  const where = s.where && ts.isIdentifier(s.where) ? (constInit(s.where) ?? s.where) : s.where;
  const text = (e: ts.Expression | undefined): string => {
    if (!e) return '';
    if (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) return e.text;
    return ts.isTemplateExpression(e) ? e.getText().slice(1, -1) : e.getText();
  };
  return `${s.file} · ${text(where)} · ${text(s.reason)}`
    .replaceAll('${', '{')
    .replace(/\s+/g, ' ');
}

/** Whether a row pinning `p` (errno, reason, where) pins site `s`. */
export function sitePins(
  s: Site,
  p: { readonly errno: string; readonly reason: string; readonly where: string },
): boolean {
  const full = (alts: string[], v: string) => alts.some((a) => new RegExp(`^${a}$`, 's').test(v));
  return (
    full(patterns(s.code), p.errno) &&
    full(patterns(s.where), p.where) &&
    full(patterns(s.reason), p.reason)
  );
}
