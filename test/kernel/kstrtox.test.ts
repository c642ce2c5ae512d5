/**
 * lib/kstrtox.c's parsers as src/kernel/kstrtox.ts applies them to written
 * text. The cases are those Linux 7.2 answered in test/server/fault-attrs.c
 * (fault-attrs.expected), plus the NUL that ends a C string.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Errno } from '../../src/abi/errno.ts';
import { kstrtobool, kstrtoll, kstrtou, kstrtoull } from '../../src/kernel/kstrtox.ts';

const errno = (code: string) => (e: unknown) => e instanceof Errno && e.code === code;

describe('kstrtox', () => {
  it('kstrtoull: base 0, a leading +, one trailing newline, the text ending at a NUL', () => {
    assert.equal(kstrtoull('7'), 7n);
    assert.equal(kstrtoull('0x10\n'), 16n);
    assert.equal(kstrtoull('010'), 8n);
    assert.equal(kstrtoull('+5\n'), 5n);
    assert.equal(kstrtoull('18446744073709551615'), (1n << 64n) - 1n);
    assert.equal(kstrtoull('5\0garbage'), 5n);
    for (const bad of ['08', '0x', '-1', '-0', '+-5', ' 5', '5 ', '5\n\n', 'abc', '']) {
      assert.throws(() => kstrtoull(bad), errno('EINVAL'), JSON.stringify(bad));
    }
    assert.throws(() => kstrtoull('18446744073709551616'), errno('ERANGE'));
    assert.throws(() => kstrtoull('18446744073709551616x'), errno('ERANGE'), 'overflow first');
  });

  it('kstrtoll: a leading -, ERANGE outside 64-bit signed', () => {
    assert.equal(kstrtoll('-1'), -1n);
    assert.equal(kstrtoll('-0'), 0n);
    assert.equal(kstrtoll('9223372036854775807'), (1n << 63n) - 1n);
    assert.equal(kstrtoll('-9223372036854775808'), -(1n << 63n));
    assert.throws(() => kstrtoll('9223372036854775808'), errno('ERANGE'));
    assert.throws(() => kstrtoll('-9223372036854775809'), errno('ERANGE'));
    assert.throws(() => kstrtoll('18446744073709551615'), errno('ERANGE'));
    assert.throws(() => kstrtoll('--1'), errno('EINVAL'));
  });

  it('kstrtouint / kstrtou16: ERANGE above the type', () => {
    assert.equal(kstrtou('4294967295', 32), 0xffff_ffff);
    assert.throws(() => kstrtou('4294967296', 32), errno('ERANGE'));
    assert.equal(kstrtou('0xffff', 16), 0xffff);
    assert.throws(() => kstrtou('65536', 16), errno('ERANGE'));
  });

  it('kstrtobool: the first character, on/off by the second', () => {
    for (const yes of ['1', 'y', 'Y', 't', 'T', 'e', 'E', 'on', 'ON', 'Yes', '18'])
      assert.equal(kstrtobool(yes), true, yes);
    for (const no of ['0', 'n', 'N', 'f', 'F', 'd', 'D', 'of', 'Off', '0x10'])
      assert.equal(kstrtobool(no), false, no);
    for (const bad of ['', 'o', '2', '-1', ' 1', 'abc'])
      assert.throws(() => kstrtobool(bad), errno('EINVAL'), JSON.stringify(bad));
  });
});
