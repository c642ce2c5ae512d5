/** `%#llx` for errno reasons and traces: `0x1000`, and `0` for zero (C's `#` flag drops the prefix there). */
export function hex(x: bigint | number): string {
  return x === 0 || x === 0n ? '0' : `0x${x.toString(16)}`;
}
