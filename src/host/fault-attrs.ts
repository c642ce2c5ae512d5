/**
 * debugfs's fault-injection folders `failslab/` and `fail_page_alloc/`
 * (lib/fault-inject.c fault_create_debugfs_attr, mm/failslab.c,
 * mm/fail_page_alloc.c), as a kernel built without
 * CONFIG_FAULT_INJECTION_STACKTRACE_FILTER has them (no stacktrace-depth,
 * require-*, reject-*). Each file keeps what the program writes, parsed as
 * the kernel's debugfs file of its type does (facts checked against Linux
 * 7.2, test/server/fault-attrs.c):
 *
 * - unsigned long (probability, interval, verbose) and u32 (the ratelimit
 *   pair, min-order): simple_attr_write — the first 23 bytes of the write
 *   through kstrtoull (EINVAL, ERANGE; a u32 keeps the low 32 bits), the
 *   whole count answered; read as "%llu\n".
 * - atomic_t (times, space): the same through kstrtoll, the low 32 bits
 *   kept as an int; read as "%lld\n".
 * - bool: kstrtobool of the first 3 bytes; a write it cannot parse changes
 *   nothing and still answers the whole count; read as "Y\n" or "N\n".
 *
 * Injection itself is per task through fail-nth (src/iommu/fault-inject.ts);
 * these values are kept, not acted on.
 */
import { kstrtobool, kstrtoll, kstrtoull } from '../kernel/kstrtox.ts';
import type { Kernel } from './kernel.ts';
import type { SysfsAttr } from './sysfs-attrs.ts';

type AttrType = 'ul' | 'u32' | 'atomic' | 'bool';

const DEBUGFS = '/sys/kernel/debug/';

/** fault_create_debugfs_attr's files and FAULT_ATTR_INITIALIZER's values. */
const COMMON: [string, AttrType, bigint][] = [
  ['probability', 'ul', 0n],
  ['interval', 'ul', 1n],
  ['times', 'atomic', 1n],
  ['space', 'atomic', 0n],
  ['verbose', 'ul', 2n],
  ['verbose_ratelimit_interval_ms', 'u32', 0n],
  ['verbose_ratelimit_burst', 'u32', 10n],
  ['task-filter', 'bool', 0n],
];

/** Each folder's files: the common ones and its own. */
const FOLDERS: Record<string, [string, AttrType, bigint][]> = {
  failslab: [...COMMON, ['ignore-gfp-wait', 'bool', 1n], ['cache-filter', 'bool', 0n]],
  fail_page_alloc: [
    ...COMMON,
    ['ignore-gfp-wait', 'bool', 1n],
    ['ignore-gfp-highmem', 'bool', 1n],
    ['min-order', 'u32', 1n],
  ],
};

/** simple_attr's set_buf: 24 bytes, so a write is parsed from its first 23. */
const SET_BUF = 23;
/** kstrtobool_from_user's buffer: 4 bytes, the first 3 parsed. */
const BOOL_BUF = 3;

/** Each kernel's values, by path. */
const values = new WeakMap<Kernel, Map<string, bigint>>();

/** The kernel's values (made on first use). */
function valuesOf(kernel: Kernel): Map<string, bigint> {
  let map = values.get(kernel);
  if (!map) {
    map = new Map();
    values.set(kernel, map);
  }
  return map;
}

/** The new value a write `text` stores in a file of `type` (undefined: unchanged), or throws its errno. */
function parse(type: AttrType, text: string): bigint | undefined {
  switch (type) {
    case 'bool':
      try {
        return kstrtobool(text.slice(0, BOOL_BUF)) ? 1n : 0n;
      } catch {
        return undefined; // debugfs_write_file_bool answers the count whatever it parsed
      }
    case 'atomic':
      return BigInt.asIntN(32, kstrtoll(text.slice(0, SET_BUF)));
    case 'u32':
      return BigInt.asUintN(32, kstrtoull(text.slice(0, SET_BUF)));
    default:
      return kstrtoull(text.slice(0, SET_BUF));
  }
}

function show(type: AttrType, v: bigint): string {
  return type === 'bool' ? (v ? 'Y\n' : 'N\n') : `${v}\n`;
}

/** The fault attribute at `path`, if debugfs has one there. */
export function faultAttr(kernel: Kernel, path: string): SysfsAttr | undefined {
  if (!path.startsWith(DEBUGFS)) return undefined;
  const [folder, name, ...rest] = path.slice(DEBUGFS.length).split('/');
  const entry = rest.length ? undefined : FOLDERS[folder!]?.find(([n]) => n === name);
  if (!entry) return undefined;
  const [, type, initial] = entry;
  return {
    show: () => new TextEncoder().encode(show(type, valuesOf(kernel).get(path) ?? initial)),
    store: (text) => {
      const v = parse(type, text);
      if (v !== undefined) valuesOf(kernel).set(path, v);
    },
  };
}

/** Every fault attribute's path. */
export function faultAttrPaths(): string[] {
  return Object.entries(FOLDERS).flatMap(([folder, files]) =>
    files.map(([name]) => `${DEBUGFS}${folder}/${name}`),
  );
}
