/**
 * The kernel's string-to-number parsers (lib/kstrtox.c) as sysfs, debugfs
 * and procfs files apply them to what a program writes. Base 0: `0x` +
 * hex digit is hex, a leading `0` octal, else decimal; `+` may lead
 * (kstrtoull), `-` too for the signed ones; one trailing newline; the text
 * ends at a NUL byte. EINVAL for no digit or anything else after them,
 * ERANGE when the number does not fit (an overflow is found before
 * trailing garbage).
 */
import { fail } from '../abi/errno.ts';

const U64_MAX = (1n << 64n) - 1n;

/** _kstrtoull(s, 0) without a sign. */
function unsigned(s: string, fn: string): bigint {
  let base = 10n;
  let at = 0;
  if (s[0] === '0') {
    if ((s[1] === 'x' || s[1] === 'X') && /^[0-9a-fA-F]$/.test(s[2] ?? '')) {
      base = 16n;
      at = 2;
    } else {
      base = 8n;
    }
  }
  let value = 0n;
  let digits = 0;
  for (; at < s.length; at++, digits++) {
    const d = Number.parseInt(s[at]!, 16);
    if (Number.isNaN(d) || BigInt(d) >= base) break;
    value = value * base + BigInt(d);
  }
  if (value > U64_MAX) fail('ERANGE', `${s.trim()}: above 2^64 - 1`, fn);
  if (digits === 0) fail('EINVAL', `"${s}" is no number`, fn);
  if (s[at] === '\n') at++;
  if (at < s.length) fail('EINVAL', `"${s}" has more than a number`, fn);
  return value;
}

/** The string as C sees it: up to its first NUL. */
function cString(s: string): string {
  const nul = s.indexOf('\0');
  return nul < 0 ? s : s.slice(0, nul);
}

/** kstrtoull(s, 0). */
export function kstrtoull(s: string): bigint {
  const t = cString(s);
  return unsigned(t[0] === '+' ? t.slice(1) : t, 'kstrtoull');
}

/** kstrtoll(s, 0): ERANGE outside [-2^63, 2^63 - 1]. */
export function kstrtoll(s: string): bigint {
  const t = cString(s);
  if (t[0] === '-') {
    const v = unsigned(t.slice(1), 'kstrtoll');
    if (v > 1n << 63n) fail('ERANGE', `${t.trim()}: below -2^63`, 'kstrtoll');
    return -v;
  }
  const v = kstrtoull(t);
  if (v >= 1n << 63n) fail('ERANGE', `${t.trim()}: above 2^63 - 1`, 'kstrtoll');
  return v;
}

/** kstrtouint / kstrtou16 (`bits` 32 or 16): ERANGE above the type's maximum. */
export function kstrtou(s: string, bits: 16 | 32): number {
  const v = kstrtoull(s);
  if (v >> BigInt(bits)) fail('ERANGE', `${v} does not fit in ${bits} bits`, `kstrtou${bits}`);
  return Number(v);
}

/**
 * kstrtobool(): by the first character, y/Y/t/T/e/E/1 true, n/N/f/F/d/D/0
 * false, on/ON true, of/OF false; EINVAL for anything else.
 */
export function kstrtobool(s: string): boolean {
  const c = s[0] ?? '';
  if ('yYtTeE1'.includes(c) && c) return true;
  if ('nNfFdD0'.includes(c) && c) return false;
  if (c === 'o' || c === 'O') {
    if (s[1] === 'n' || s[1] === 'N') return true;
    if (s[1] === 'f' || s[1] === 'F') return false;
  }
  fail('EINVAL', `"${s}" is no boolean`, 'kstrtobool');
}
