/**
 * open(2) flag names (asm-generic/fcntl.h, which x86 and riscv use; powerpc
 * moves four of them) and their strace-style rendering.
 *
 * @example
 * openFlagsText(0o2000102, 'generic'); // 'O_RDWR|O_CREAT|O_CLOEXEC'
 */
import type { IoctlAbi } from './ioctl.ts';

/** Single-bit flags (O_SYNC and O_TMPFILE, which include another flag's bit, are added by `table`). */
const GENERIC: readonly [string, number][] = [
  ['O_CREAT', 0o100],
  ['O_EXCL', 0o200],
  ['O_NOCTTY', 0o400],
  ['O_TRUNC', 0o1000],
  ['O_APPEND', 0o2000],
  ['O_NONBLOCK', 0o4000],
  ['O_DSYNC', 0o10000],
  ['O_ASYNC', 0o20000],
  ['O_DIRECT', 0o40000],
  ['O_LARGEFILE', 0o100000],
  ['O_DIRECTORY', 0o200000],
  ['O_NOFOLLOW', 0o400000],
  ['O_NOATIME', 0o1000000],
  ['O_CLOEXEC', 0o2000000],
  ['O_PATH', 0o10000000],
];

/** powerpc's arch/powerpc/include/uapi/asm/fcntl.h values where they differ. */
const POWERPC: Readonly<Record<string, number>> = {
  O_DIRECTORY: 0o40000,
  O_NOFOLLOW: 0o100000,
  O_LARGEFILE: 0o200000,
  O_DIRECT: 0o400000,
};

const SYNC_BIT = 0o4000000; // __O_SYNC: O_SYNC is __O_SYNC | O_DSYNC
const TMPFILE_BIT = 0o20000000; // __O_TMPFILE: O_TMPFILE is __O_TMPFILE | O_DIRECTORY

function table(abi: IoctlAbi): [string, number][] {
  const bits = GENERIC.map(([n, v]): [string, number] => [
    n,
    abi === 'powerpc' ? (POWERPC[n] ?? v) : v,
  ]);
  const dsync = 0o10000;
  const directory = bits.find(([n]) => n === 'O_DIRECTORY')![1];
  return [
    ['O_SYNC', SYNC_BIT | dsync],
    ['O_TMPFILE', TMPFILE_BIT | directory],
    ...bits.sort((a, b) => a[1] - b[1]),
  ];
}

const TABLES: Record<IoctlAbi, [string, number][]> = {
  generic: table('generic'),
  powerpc: table('powerpc'),
};

/**
 * `O_RDWR|O_CREAT|O_CLOEXEC`: the access mode, then every known flag in
 * ascending bit order; unknown bits follow in octal. arm64 moves the same
 * four flags as powerpc to other bits, but shares the generic ioctl
 * encoding: its O_DIRECT..O_NOFOLLOW are named as the generic table says.
 */
export function openFlagsText(flags: number, abi: IoctlAbi): string {
  const found: [string, number][] = [];
  let rest = flags & ~3;
  for (const [name, bits] of TABLES[abi]) {
    if ((rest & bits) === bits) {
      found.push([name, bits]);
      rest &= ~bits;
    }
  }
  const names = found.sort((a, b) => a[1] - b[1]).map(([name]) => name);
  const parts = [['O_RDONLY', 'O_WRONLY', 'O_RDWR', '03'][flags & 3]!, ...names];
  if (rest !== 0) parts.push(`0${(rest >>> 0).toString(8)}`);
  return parts.join('|');
}
