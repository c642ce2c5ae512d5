/**
 * `loadHostSpec`: a preset by name, or a JSON config file by path.
 */
import { readFileSync } from 'node:fs';
import { parseHostSpec } from './parse.ts';
import { PRESETS } from './presets.ts';
import { hostSpecToJson } from './serialize.ts';
import type { HostSpec } from './types.ts';
import { HostSpecError } from './values.ts';

/**
 * Check a HostSpec built in code (not read from JSON) by every rule of
 * `parseHostSpec`; returns the normalised spec, throws HostSpecError.
 */
export function validateHostSpec(spec: HostSpec): HostSpec {
  return parseHostSpec(hostSpecToJson(spec));
}

/**
 * `nameOrPath` is a preset name (`x86`, `powernv`, `pseries`, `mock`) or the
 * path of a JSON host config. File errors keep their Node error (ENOENT...);
 * JSON syntax and validation errors are HostSpecErrors whose message is
 * prefixed with the file name: `custom.json: devices[2].bars[0].size: ...`.
 *
 * @example
 * loadHostSpec('x86').devices.length; // 6
 * loadHostSpec('./examples/hosts/custom.json').name; // 'custom'
 */
export function loadHostSpec(nameOrPath: string): HostSpec {
  const preset = Object.hasOwn(PRESETS, nameOrPath) ? PRESETS[nameOrPath] : undefined;
  if (preset) return preset;
  if (!/[/\\.]/.test(nameOrPath)) {
    throw new Error(
      `unknown host preset '${nameOrPath}' (presets: ${Object.keys(PRESETS).join(', ')}; ` +
        'a config file path contains a / or a .)',
    );
  }
  const text = readFileSync(nameOrPath, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw inFile(nameOrPath, new HostSpecError('', `invalid JSON: ${(e as Error).message}`));
  }
  try {
    return parseHostSpec(json);
  } catch (e) {
    throw e instanceof HostSpecError ? inFile(nameOrPath, e) : e;
  }
}

/** The same error with the file name in front: `file: path: reason` (or `file: reason` at the root). */
function inFile(file: string, e: HostSpecError): HostSpecError {
  const err = new HostSpecError(e.path, e.reason);
  err.message = e.path ? `${file}: ${e.path}: ${e.reason}` : `${file}: ${e.reason}`;
  return err;
}
