/**
 * Reasons of the kernel-library rules uiommu's files answer with: kstrtox's
 * number parsing behind fail-nth and debugfs's fault-injection attributes,
 * and an injected fault itself. Each row writes through the file and pins
 * errno, reason and where.
 */
import { asTask } from '../../src/iommu/fault-inject.ts';
import { setup } from '../support.ts';
import { pin, type Row, traced } from './reasons-support.ts';

/** write(2) of `text` to `path` (`{pid}` is the process's pid); the process to read. */
function writeTo(path: string, text: string) {
  return () => {
    const f = traced(setup());
    const fd = f.proc.open(path.replaceAll('{pid}', String(f.proc.pid)), 2);
    const data = new TextEncoder().encode(text);
    f.proc.write(fd, f.proc.scratch(data), data.length);
    return f.proc;
  };
}
const FAIL_NTH = '/proc/{pid}/task/{pid}/fail-nth';
const TIMES = '/sys/kernel/debug/failslab/times';
const PROBABILITY = '/sys/kernel/debug/failslab/probability';

const rows: Row[] = [
  ['fail-nth: no digits', writeTo(FAIL_NTH, 'N'), 'EINVAL', '"N" is no number', 'kstrtoull'],
  [
    'fail-nth: a number with more after it',
    writeTo(FAIL_NTH, '1\n\n'),
    'EINVAL',
    '"1\n\n" has more than a number',
    'kstrtoull',
  ],
  [
    'fail-nth: above UINT_MAX',
    writeTo(FAIL_NTH, '4294967296'),
    'ERANGE',
    '4294967296 does not fit in 32 bits',
    'kstrtou32',
  ],
  [
    'an unsigned long attribute: above 2^64 - 1',
    writeTo(PROBABILITY, '18446744073709551616'),
    'ERANGE',
    '18446744073709551616: above 2^64 - 1',
    'kstrtoull',
  ],
  [
    'an atomic attribute: a negative number without digits',
    writeTo(TIMES, '-x'),
    'EINVAL',
    '"x" is no number',
    'kstrtoll',
  ],
  [
    'an atomic attribute: above 2^63 - 1',
    writeTo(TIMES, '9223372036854775808'),
    'ERANGE',
    '9223372036854775808: above 2^63 - 1',
    'kstrtoll',
  ],
  [
    'an atomic attribute: below -2^63',
    writeTo(TIMES, '-9223372036854775809'),
    'ERANGE',
    '-9223372036854775809: below -2^63',
    'kstrtoll',
  ],
  [
    'the first injection point after fail-nth 1',
    () => {
      const f = traced(setup());
      const fd = f.proc.open(FAIL_NTH.replaceAll('{pid}', String(f.proc.pid)), 2);
      f.proc.write(fd, f.proc.scratch(Uint8Array.of(0x31)), 1);
      // the engine runs each request as its task, the one whose counter counts
      asTask(f.proc.pid, () => f.call('IOMMU_IOAS_ALLOC', {}));
      return f.proc;
    },
    'ENOMEM',
    'fault injected (fail-nth) at iommufd_object_alloc',
    'iommufd_object_alloc',
  ],
];

pin(
  'kernel library (kstrtox behind fail-nth and debugfs fault attributes, fail-nth injection)',
  rows,
);
