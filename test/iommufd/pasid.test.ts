/**
 * PASID attachments through the selftest ops (selftest-mock.md §2.10,
 * fixture iommufd_device_pasid §3.8): one test per rule on paging HWPTs
 * allocated with IOMMU_HWPT_ALLOC_PASID, then the fixture's own sequence
 * with nested HWPTs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IOMMU_HWPT_ALLOC_FLAGS } from '../../src/abi/iommufd.ts';
import { MOCK_FLAGS_DEVICE } from '../../src/abi/iommufd-test.ts';
import type { Fixture } from '../support.ts';
import {
  destroy,
  hwptAlloc,
  mockDomain,
  nestedAlloc,
  ok,
  replace,
  st,
  tc,
  viommuAlloc,
} from './mock.ts';

const { NEST_PARENT, PASID } = IOMMU_HWPT_ALLOC_FLAGS;

/** The fixture's setup: a PASID device on an IOAS, plus a second plain device. */
function pasidSetup() {
  const f = st();
  const ioas = f.ioas();
  const dev = mockDomain(f, ioas, MOCK_FLAGS_DEVICE.PASID);
  const plain = mockDomain(f, ioas);
  const parent = hwptAlloc(f, dev.idev, ioas, NEST_PARENT).id;
  const s2 = hwptAlloc(f, dev.idev, ioas, PASID).id;
  const p0 = hwptAlloc(f, dev.idev, ioas, PASID).id;
  const p1 = hwptAlloc(f, dev.idev, ioas, PASID).id;
  return { f, ioas, dev, plain, parent, s2, p0, p1 };
}

function attach(f: Fixture, stdev: number, pasid: number, pt: number) {
  return tc(f, 'PASID_ATTACH', { id: stdev, pasid, pt_id: pt });
}

function replacePasid(f: Fixture, stdev: number, pasid: number, pt: number) {
  return tc(f, 'PASID_REPLACE', { id: stdev, pasid, pt_id: pt });
}

function detach(f: Fixture, stdev: number, pasid: number) {
  return tc(f, 'PASID_DETACH', { id: stdev, pasid }).errno;
}

function check(f: Fixture, stdev: number, pasid: number, hwpt: number) {
  return tc(f, 'PASID_CHECK_HWPT', { id: stdev, pasid, hwpt_id: hwpt }).errno;
}

test('PASID ops: ENOENT unless `id` is a SELFTEST object', () => {
  const { f, dev, s2 } = pasidSetup();
  assert.equal(attach(f, dev.idev, 100, s2).errno, 'ENOENT');
  assert.equal(replacePasid(f, dev.idev, 100, s2).errno, 'ENOENT');
  assert.equal(detach(f, dev.idev, 100), 'ENOENT');
  assert.equal(check(f, dev.idev, 100, 0), 'ENOENT');
});

test('PASID_DETACH of a PASID not attached is 0; PASID_CHECK_HWPT 0 checks nothing is attached', () => {
  const { f, dev, s2 } = pasidSetup();
  assert.equal(detach(f, dev.stdev, 100), undefined);
  assert.equal(check(f, dev.stdev, 100, 0), undefined);
  assert.equal(replace(f, dev.stdev, s2), undefined);
  ok(attach(f, dev.stdev, 100, s2));
  assert.equal(check(f, dev.stdev, 100, 0), 'EINVAL');
  assert.equal(check(f, dev.stdev, 100, s2), undefined);
  ok(tc(f, 'PASID_DETACH', { id: dev.stdev, pasid: 100 }));
  assert.equal(check(f, dev.stdev, 100, 0), undefined);
});

test('PASID_CHECK_HWPT: ENOENT for a missing id, EINVAL for a non-HWPT or another domain', () => {
  const { f, ioas, dev, s2, p0 } = pasidSetup();
  assert.equal(replace(f, dev.stdev, s2), undefined);
  ok(attach(f, dev.stdev, 100, s2));
  assert.equal(check(f, dev.stdev, 100, 999), 'ENOENT');
  assert.equal(check(f, dev.stdev, 100, ioas), 'EINVAL');
  assert.equal(check(f, dev.stdev, 100, p0), 'EINVAL');
  assert.equal(check(f, dev.stdev, 0, s2), undefined, 'pasid 0 is the RID');
});

test('PASID_ATTACH: ENOENT/EINVAL for the PT, EINVAL for an IOAS or a non-PASID HWPT, nothing changed', () => {
  const { f, ioas, dev, parent, s2 } = pasidSetup();
  assert.equal(replace(f, dev.stdev, s2), undefined);
  assert.equal(attach(f, dev.stdev, 100, 999).errno, 'ENOENT');
  assert.equal(attach(f, dev.stdev, 100, dev.idev).errno, 'EINVAL');
  const before = f.ctx.objectCount;
  assert.equal(attach(f, dev.stdev, 100, ioas).errno, 'EINVAL');
  assert.equal(f.ctx.objectCount, before, 'no automatic domain left behind');
  assert.equal(check(f, dev.stdev, 100, 0), undefined);
  assert.equal(attach(f, dev.stdev, 100, parent).errno, 'EINVAL');
  assert.equal(check(f, dev.stdev, 100, 0), undefined);
  const out = ok(attach(f, dev.stdev, 100, s2));
  assert.equal(out.pt_id, s2, 'pt_id written back');
});

test('PASID_ATTACH: EINVAL while the RID HWPT is not PASID-capable; RID replace refuses such an HWPT while PASIDs are attached', () => {
  const { f, dev, parent, s2, p0 } = pasidSetup();
  assert.equal(replace(f, dev.stdev, parent), undefined);
  assert.equal(attach(f, dev.stdev, 100, s2).errno, 'EINVAL');
  assert.equal(replace(f, dev.stdev, s2), undefined);
  ok(attach(f, dev.stdev, 100, p0));
  assert.equal(replace(f, dev.stdev, parent), 'EINVAL');
  assert.equal(check(f, dev.stdev, 0, s2), undefined, 'the RID stayed on s2');
  assert.equal(detach(f, dev.stdev, 100), undefined);
  assert.equal(replace(f, dev.stdev, parent), undefined);
});

test('PASID_ATTACH: EINVAL past the device max_pasids (a device without PASID support)', () => {
  const { f, ioas, plain, parent, s2, p0 } = pasidSetup();
  // a PASID-capable HWPT can be the plain device's RID
  assert.equal(replace(f, plain.stdev, p0), undefined);
  assert.equal(replace(f, plain.stdev, ioas), undefined);
  assert.equal(attach(f, plain.stdev, 100, parent).errno, 'EINVAL');
  assert.equal(attach(f, plain.stdev, 100, s2).errno, 'EINVAL', 'RID on the auto domain');
  assert.equal(replace(f, plain.stdev, s2), undefined);
  assert.equal(attach(f, plain.stdev, 100, s2).errno, 'EINVAL', 'max_pasids is 1');
  assert.equal(check(f, plain.stdev, 100, 0), undefined);
});

test('HWPT_ALLOC with IOMMU_HWPT_ALLOC_PASID works for any mock device; PASID attach still needs max_pasids', () => {
  const { f, ioas, plain } = pasidSetup();
  const h = hwptAlloc(f, plain.idev, ioas, PASID);
  assert.equal(h.errno, undefined);
  assert.equal(replace(f, plain.stdev, h.id), undefined);
  assert.equal(attach(f, plain.stdev, 1, h.id).errno, 'EINVAL');
});

test('PASID_ATTACH: EBUSY when already attached at that PASID, to the same HWPT or another', () => {
  const { f, ioas, dev, s2, p0 } = pasidSetup();
  assert.equal(replace(f, dev.stdev, s2), undefined);
  ok(attach(f, dev.stdev, 100, s2));
  assert.equal(attach(f, dev.stdev, 100, p0).errno, 'EBUSY');
  assert.equal(attach(f, dev.stdev, 100, s2).errno, 'EBUSY');
  assert.equal(attach(f, dev.stdev, 100, ioas).errno, 'EBUSY', 'EBUSY before the IOAS rule');
  assert.equal(check(f, dev.stdev, 100, s2), undefined);
  assert.equal(destroy(f, s2), 'EBUSY', 'the attachment holds the HWPT');
  assert.equal(detach(f, dev.stdev, 100), undefined);
  ok(attach(f, dev.stdev, 100, p0));
  assert.equal(check(f, dev.stdev, 100, p0), undefined);
});

test('PASID_REPLACE: EINVAL when not attached or onto an IOAS; moves between HWPTs; same HWPT is a no-op', () => {
  const { f, ioas, dev, parent, s2, p0, p1 } = pasidSetup();
  assert.equal(replace(f, dev.stdev, s2), undefined);
  assert.equal(replacePasid(f, dev.stdev, 200, s2).errno, 'EINVAL');
  ok(attach(f, dev.stdev, 200, s2));
  assert.equal(replacePasid(f, dev.stdev, 200, ioas).errno, 'EINVAL');
  assert.equal(replacePasid(f, dev.stdev, 200, 999).errno, 'ENOENT');
  assert.equal(replacePasid(f, dev.stdev, 200, parent).errno, 'EINVAL', 'not PASID-capable');
  assert.equal(check(f, dev.stdev, 200, s2), undefined);
  assert.equal(ok(replacePasid(f, dev.stdev, 200, p0)).pt_id, p0);
  assert.equal(check(f, dev.stdev, 200, p0), undefined);
  assert.equal(destroy(f, s2), 'EBUSY', 'still the RID HWPT');
  ok(replacePasid(f, dev.stdev, 200, p1));
  assert.equal(destroy(f, p0), undefined, 'the replace dropped its reference');
  ok(replacePasid(f, dev.stdev, 200, p1));
  assert.equal(check(f, dev.stdev, 200, p1), undefined);
  assert.equal(detach(f, dev.stdev, 200), undefined);
  assert.equal(destroy(f, p1), undefined);
});

test('the mock fails every other set_dev_pasid at PASID 1024 with ENOMEM; the old HWPT stays', () => {
  const { f, dev, s2, p0 } = pasidSetup();
  assert.equal(replace(f, dev.stdev, s2), undefined);
  ok(attach(f, dev.stdev, 1024, s2));
  assert.equal(replacePasid(f, dev.stdev, 1024, p0).errno, 'ENOMEM');
  assert.equal(check(f, dev.stdev, 1024, s2), undefined);
  ok(replacePasid(f, dev.stdev, 1024, p0), 'the failure reset the flag');
  assert.equal(detach(f, dev.stdev, 1024), undefined);
  ok(attach(f, dev.stdev, 1024, s2), 'detach reset the flag');
  assert.equal(replacePasid(f, dev.stdev, 1024, p0).errno, 'ENOMEM');
  assert.equal(detach(f, dev.stdev, 1024), undefined);
});

test('PASID ops at pasid 0 act on the RID: ATTACH is EBUSY while attached, REPLACE moves it', () => {
  const { f, ioas, dev, s2 } = pasidSetup();
  assert.equal(attach(f, dev.stdev, 0, s2).errno, 'EBUSY');
  assert.equal(ok(replacePasid(f, dev.stdev, 0, s2)).pt_id, s2);
  assert.equal(check(f, dev.stdev, 0, s2), undefined);
  assert.equal(detach(f, dev.stdev, 0), undefined);
  assert.equal(check(f, dev.stdev, 0, 0), undefined);
  assert.equal(replacePasid(f, dev.stdev, 0, s2).errno, 'EINVAL', 'nothing to replace');
  const out = ok(attach(f, dev.stdev, 0, ioas));
  assert.notEqual(out.pt_id, ioas, 'an automatic domain');
});

test('destroying a stdev with PASIDs still attached releases them', () => {
  const { f, dev, s2 } = pasidSetup();
  assert.equal(replace(f, dev.stdev, s2), undefined);
  ok(attach(f, dev.stdev, 100, s2));
  assert.equal(destroy(f, dev.stdev), undefined);
  assert.equal(destroy(f, s2), undefined);
  f.proc.close(f.fd);
  assert.equal(f.ctx.objectCount, 0);
});

test('fixture iommufd_device_pasid, pasid_attach, both variants', async (t) => {
  const { FAULT_ID_VALID } = IOMMU_HWPT_ALLOC_FLAGS;
  for (const variant of ['no_pasid', 'has_pasid'] as const) {
    await t.test(variant, () => {
      const f = st();
      const ioas = f.ioas();
      const dev = mockDomain(f, ioas, MOCK_FLAGS_DEVICE.PASID);
      const second = variant === 'no_pasid' ? mockDomain(f, ioas) : undefined;
      // 1. allocations
      assert.equal(detach(f, dev.stdev, 100), undefined);
      const parent = hwptAlloc(f, dev.idev, ioas, NEST_PARENT).id;
      const nested = [
        nestedAlloc(f, dev.idev, parent, PASID).id,
        nestedAlloc(f, dev.idev, parent, PASID).id,
      ];
      const fault = ok(f.call('IOMMU_FAULT_QUEUE_ALLOC', {}));
      const faultId = fault.out_fault_id as number;
      const iopf = nestedAlloc(f, dev.idev, parent, FAULT_ID_VALID | PASID, faultId);
      assert.equal(iopf.errno, undefined);
      const viommu = viommuAlloc(f, dev.idev, parent);
      assert.equal(nestedAlloc(f, dev.idev, viommu, PASID).errno, undefined);
      const s2 = hwptAlloc(f, dev.idev, ioas, PASID).id;
      // 2. RID vs PASID compatibility
      assert.equal(replace(f, dev.stdev, parent), undefined);
      assert.equal(attach(f, dev.stdev, 100, s2).errno, 'EINVAL');
      assert.equal(replace(f, dev.stdev, s2), undefined);
      ok(attach(f, dev.stdev, 100, nested[0]!));
      assert.equal(replace(f, dev.stdev, parent), 'EINVAL');
      assert.equal(detach(f, dev.stdev, 100), undefined);
      assert.equal(check(f, dev.stdev, 100, 0), undefined);
      // 3. the second device (no_pasid)
      if (second) {
        assert.equal(replace(f, second.stdev, nested[0]!), undefined);
        assert.equal(replace(f, second.stdev, ioas), undefined);
        assert.equal(attach(f, second.stdev, 100, parent).errno, 'EINVAL');
        assert.equal(attach(f, second.stdev, 100, s2).errno, 'EINVAL');
      }
      // 4. attach rules at 100
      assert.equal(attach(f, dev.stdev, 100, parent).errno, 'EINVAL');
      assert.equal(check(f, dev.stdev, 100, 0), undefined);
      assert.equal(attach(f, dev.stdev, 100, ioas).errno, 'EINVAL');
      assert.equal(check(f, dev.stdev, 100, 0), undefined);
      ok(attach(f, dev.stdev, 100, s2));
      assert.equal(check(f, dev.stdev, 100, s2), undefined);
      assert.equal(attach(f, dev.stdev, 100, nested[0]!).errno, 'EBUSY');
      assert.equal(detach(f, dev.stdev, 100), undefined);
      ok(attach(f, dev.stdev, 100, nested[0]!));
      assert.equal(check(f, dev.stdev, 100, nested[0]!), undefined);
      assert.equal(attach(f, dev.stdev, 100, nested[0]!).errno, 'EBUSY');
      assert.equal(detach(f, dev.stdev, 100), undefined);
      // 5. replace at 200
      assert.equal(replacePasid(f, dev.stdev, 200, s2).errno, 'EINVAL');
      ok(attach(f, dev.stdev, 200, s2));
      assert.equal(replacePasid(f, dev.stdev, 200, ioas).errno, 'EINVAL');
      assert.equal(check(f, dev.stdev, 200, s2), undefined);
      ok(replacePasid(f, dev.stdev, 200, nested[0]!));
      assert.equal(check(f, dev.stdev, 200, nested[0]!), undefined);
      ok(replacePasid(f, dev.stdev, 200, nested[1]!));
      assert.equal(check(f, dev.stdev, 200, nested[1]!), undefined);
      assert.equal(detach(f, dev.stdev, 200), undefined);
      // 6. the PASID-1024 fake error
      ok(attach(f, dev.stdev, 1024, s2));
      assert.equal(replacePasid(f, dev.stdev, 1024, nested[0]!).errno, 'ENOMEM');
      assert.equal(check(f, dev.stdev, 1024, s2), undefined);
      assert.equal(detach(f, dev.stdev, 1024), undefined);
      // 7. PASID fault delivery
      ok(attach(f, dev.stdev, 2048, iopf.id));
      assert.equal(check(f, dev.stdev, 2048, iopf.id), undefined);
      ok(
        tc(f, 'TRIGGER_IOPF', {
          dev_id: dev.idev,
          pasid: 2048,
          grpid: 2,
          perm: 3,
          addr: 0xdeadbeafn,
        }),
      );
      const buf = f.mem(4096n);
      assert.equal(f.proc.read(fault.out_fault_fd as number, buf, 40), 40);
      const cookie = new DataView(f.proc.mm.read(buf + 36n, 4).buffer).getUint32(0, true);
      f.proc.mm.write(buf, Uint8Array.of(cookie, 0, 0, 0, 0, 0, 0, 0));
      assert.equal(f.proc.write(fault.out_fault_fd as number, buf, 8), 8);
      ok(replacePasid(f, dev.stdev, 2048, s2));
      assert.equal(check(f, dev.stdev, 2048, s2), undefined);
      assert.equal(detach(f, dev.stdev, 2048), undefined);
      // 8. cleanup, then the teardown's close
      assert.equal(destroy(f, iopf.id), undefined);
      f.proc.close(fault.out_fault_fd as number);
      assert.equal(destroy(f, fault.out_fault_id as number), undefined);
      assert.equal(replace(f, dev.stdev, ioas), undefined);
      f.proc.close(f.fd);
      assert.equal(f.ctx.objectCount, 0);
    });
  }
});
