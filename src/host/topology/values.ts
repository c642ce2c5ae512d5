/**
 * Readers for the JSON host config: each checks one value and throws a
 * {@link HostSpecError} naming the JSON path of the bad field.
 */
import { U64_MAX } from '../../abi/layout.ts';

/** A rejected host config: `path` is the JSON path of the bad field, e.g. `devices[2].bars[0].size`. */
export class HostSpecError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path || '(root)'}: ${reason}`);
    this.name = 'HostSpecError';
  }
}

/** Throw a {@link HostSpecError} at `path`. */
export function bad(path: string, reason: string): never {
  throw new HostSpecError(path, reason);
}

/** `path` + `.key` (or just `key` at the root). */
export function at(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** `path[i]`. */
export function item(path: string, i: number): string {
  return `${path}[${i}]`;
}

/** Key every object may carry for a comment; its value (string or string[]) is ignored. */
export const COMMENT_KEY = '//';

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `"${v}"`;
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/**
 * A JSON object with exactly the `keys` allowed (plus a `//` comment) and the
 * `required` ones present; returns it as a record.
 */
export function object(
  v: unknown,
  path: string,
  keys: readonly string[],
  required: readonly string[] = [],
): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    bad(path, `must be an object (got ${describe(v)})`);
  }
  const rec = v as Record<string, unknown>;
  for (const k of Object.keys(rec)) {
    if (k === COMMENT_KEY) {
      const c = rec[k];
      const ok =
        typeof c === 'string' || (Array.isArray(c) && c.every((s) => typeof s === 'string'));
      if (!ok) bad(at(path, k), 'a comment must be a string or an array of strings');
      continue;
    }
    if (!keys.includes(k)) bad(at(path, k), `unknown key (allowed: ${keys.join(', ')})`);
  }
  for (const k of required) {
    if (rec[k] === undefined) bad(at(path, k), 'required');
  }
  return rec;
}

/** A JSON array; `min` entries at least. */
export function array(v: unknown, path: string, min = 0): unknown[] {
  if (!Array.isArray(v)) bad(path, `must be an array (got ${describe(v)})`);
  if (v.length < min) bad(path, `must have at least ${min} ${min === 1 ? 'entry' : 'entries'}`);
  return v;
}

export function string(v: unknown, path: string): string {
  if (typeof v !== 'string' || v === '')
    bad(path, `must be a non-empty string (got ${describe(v)})`);
  return v;
}

export function boolean(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') bad(path, `must be true or false (got ${describe(v)})`);
  return v;
}

/** One of the listed strings. */
export function oneOf<T extends string>(v: unknown, path: string, choices: readonly T[]): T {
  if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) {
    bad(path, `must be one of ${choices.map((c) => `'${c}'`).join(', ')} (got ${describe(v)})`);
  }
  return v as T;
}

/** A JSON number that is an integer in [min, max]. */
export function integer(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    bad(path, `must be an integer (got ${describe(v)})`);
  }
  if (v < min || v > max) bad(path, `must be between ${min} and ${max} (got ${v})`);
  return v;
}

/**
 * A `bits`-wide id (vendor, device, class, revision): a JSON number or a
 * 0x-prefixed hex string. A bare "8086" is refused: it would read as decimal.
 */
export function hexId(v: unknown, path: string, bits: number): number {
  let n: number;
  if (typeof v === 'number' && Number.isInteger(v)) {
    n = v;
  } else if (typeof v === 'string' && /^0x[0-9a-f]+(_[0-9a-f]+)*$/i.test(v)) {
    n = Number.parseInt(v.slice(2).replaceAll('_', ''), 16);
  } else {
    bad(path, `must be an integer or a 0x-prefixed hex string (got ${describe(v)})`);
  }
  const max = 2 ** bits - 1;
  if (n < 0 || n > max) bad(path, `must fit in ${bits} bits (0..0x${max.toString(16)})`);
  return n;
}

const SUFFIX: Record<string, bigint> = {
  K: 10n,
  M: 20n,
  G: 30n,
  T: 40n,
  P: 50n,
  E: 60n,
};

/**
 * A u64 (address, size, bitmap): a JSON number up to 2^53, or a string:
 * hex "0xfee0_0000", decimal "4096", or a binary size "4K", "2M", "1G" (K M
 * G T P E). Underscores may separate digits.
 */
export function u64(v: unknown, path: string): bigint {
  let n: bigint;
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0) bad(path, `must be a non-negative integer (got ${v})`);
    if (!Number.isSafeInteger(v)) bad(path, `${v} is above 2^53: give it as a hex string`);
    n = BigInt(v);
  } else if (typeof v === 'string') {
    const hex = /^0x([0-9a-f]+(?:_[0-9a-f]+)*)$/i.exec(v);
    const dec = /^([0-9]+(?:_[0-9]+)*)([KMGTPE]?)$/.exec(v);
    if (hex) n = BigInt(`0x${hex[1]!.replaceAll('_', '')}`);
    else if (dec) n = BigInt(dec[1]!.replaceAll('_', '')) << (SUFFIX[dec[2]!] ?? 0n);
    else
      bad(
        path,
        `must be a number, a hex string like "0x1000" or a size like "4K" (got ${describe(v)})`,
      );
  } else {
    bad(
      path,
      `must be a number, a hex string like "0x1000" or a size like "4K" (got ${describe(v)})`,
    );
  }
  if (n > U64_MAX) bad(path, 'does not fit in 64 bits');
  return n;
}

export function isPow2(n: bigint): boolean {
  return n > 0n && (n & (n - 1n)) === 0n;
}

/** "0x…" of a bigint or number. */
export function hex(n: bigint | number, digits = 0): string {
  return `0x${n.toString(16).padStart(digits, '0')}`;
}
