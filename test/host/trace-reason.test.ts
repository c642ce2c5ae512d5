/**
 * A failing call's trace line ends with `<reason; where>` and its JSON
 * event carries both; a succeeding call's has neither.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TraceEvent } from '../../src/host/process.ts';
import { FIXED, memAt, PAGE, RW } from '../iommufd/util.ts';
import { VA, withDomain } from './reasons-support.ts';

describe('errno reasons in traces', () => {
  it('the line ends with <reason; where>, the JSON event carries both, a success neither', () => {
    const { f, ioas } = withDomain();
    const va = memAt(f, VA, PAGE);
    const lines: string[] = [];
    const events: TraceEvent[] = [];
    f.proc.trace = (l, e) => {
      lines.push(l);
      events.push(e);
    };
    f.call('IOMMU_IOAS_MAP', {
      ioas_id: ioas,
      user_va: va,
      length: PAGE,
      iova: 0x1001n,
      flags: RW | FIXED,
    });
    f.call('IOMMU_IOAS_MAP', { ioas_id: ioas, user_va: va, length: PAGE, flags: RW });
    assert.equal(
      lines[0],
      'ioctl(3, IOMMU_IOAS_MAP, {size=40, flags=FIXED_IOVA|WRITEABLE|READABLE, ioas_id=1, user_va=0x40000000, length=0x1000, iova=0x1001}) = -1 EINVAL (Invalid argument) <iova 0x1001 not aligned to the IOAS alignment 0x1000; iopt_check_iova>',
    );
    assert.equal(events[0]?.reason, 'iova 0x1001 not aligned to the IOAS alignment 0x1000');
    assert.equal(events[0]?.where, 'iopt_check_iova');
    assert.ok(!lines[1]?.includes('<'), lines[1]);
    assert.equal(events[1]?.reason, undefined);
    assert.equal(events[1]?.where, undefined);
  });
});
