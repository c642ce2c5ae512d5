/**
 * I/O page faults (selftest-mock.md §2.9): FAULT_QUEUE_ALLOC, HWPT_ALLOC
 * with a fault_id, TRIGGER_IOPF delivery by attachment, and the fault fd's
 * read/write/poll rules.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Errno } from '../../src/abi/errno.ts';
import {
  IOMMU_HWPT_ALLOC_FLAGS,
  IommuHwptPageResponse,
  IommuHwptPgfault,
} from '../../src/abi/iommufd.ts';
import { MOCK_FLAGS_DEVICE } from '../../src/abi/iommufd-test.ts';
import { POLLIN, POLLOUT } from '../../src/kernel/file.ts';
import type { Fixture } from '../support.ts';
import {
  destroy,
  faultQueue,
  hwptAlloc,
  mockDomain,
  nestedAlloc,
  ok,
  replace,
  st,
  tc,
  viommuAlloc,
} from './mock.ts';
import { encode, ioctlAt, PAGE, roBoundary } from './util.ts';

const { FAULT_ID_VALID, NEST_PARENT, PASID } = IOMMU_HWPT_ALLOC_FLAGS;
const POLLRDNORM = 0x40;

/** A mock device on a fresh IOAS, replaced onto a paging HWPT using a new fault queue. */
function faultSetup(devFlags = 0, hwptFlags = 0) {
  const f = st();
  const ioas = f.ioas();
  const dev = mockDomain(f, ioas, devFlags);
  const fault = faultQueue(f);
  const h = hwptAlloc(f, dev.idev, ioas, FAULT_ID_VALID | hwptFlags, fault.id);
  assert.equal(h.errno, undefined);
  return { f, ioas, dev, fault, hwpt: h.id };
}

function trigger(f: Fixture, idev: number, pasid = 0, grpid = 2) {
  return tc(f, 'TRIGGER_IOPF', { dev_id: idev, pasid, grpid, perm: 3, addr: 0xdeadbeafn }).errno;
}

/** read(2) of `count` bytes from the fault fd: the records, or the errno. */
function readFaults(f: Fixture, fd: number, count: number) {
  const buf = f.mem(PAGE);
  const n = f.proc.read(fd, buf, count);
  if (n < 0) return f.proc.errno;
  return Array.from({ length: n / 40 }, (_, i) =>
    IommuHwptPgfault.decode(f.proc.mm.read(buf + BigInt(i * 40), 40)),
  );
}

/** write(2) of page responses: bytes consumed, or the errno. */
function respond(f: Fixture, fd: number, responses: { cookie: number; code: number }[]) {
  const bytes = new Uint8Array(responses.length * 8);
  responses.forEach((r, i) => {
    bytes.set(IommuHwptPageResponse.encode(r), i * 8);
  });
  const buf = f.mem(PAGE);
  f.proc.mm.write(buf, bytes);
  const n = f.proc.write(fd, buf, bytes.length);
  return n < 0 ? f.proc.errno : n;
}

test('FAULT_QUEUE_ALLOC: flags must be 0; the fd holds the FAULT object (DESTROY EBUSY until closed)', () => {
  const f = st();
  assert.equal(f.call('IOMMU_FAULT_QUEUE_ALLOC', { flags: 1 }).errno, 'EOPNOTSUPP');
  const fault = faultQueue(f);
  assert.equal(fault.id, 1, 'the failed alloc left no ID behind');
  assert.ok(fault.fd > 2);
  assert.equal(f.proc.poll(fault.fd, POLLIN | POLLOUT), POLLOUT);
  assert.equal(destroy(f, fault.id), 'EBUSY');
  f.proc.close(fault.fd);
  assert.equal(destroy(f, fault.id), undefined);
  assert.equal(destroy(f, fault.id), 'ENOENT');
});

test('FAULT_QUEUE_ALLOC: a faulting write-back leaves no FAULT object and no fd behind', () => {
  const f = st();
  const at = roBoundary(f, encode('IOMMU_FAULT_QUEUE_ALLOC', {}));
  assert.equal(ioctlAt(f, 'IOMMU_FAULT_QUEUE_ALLOC', at), 'EFAULT');
  assert.equal(f.ctx.objectCount, 0);
  const next = f.proc.dup(f.fd);
  const fault = faultQueue(f);
  assert.equal(fault.fd, next + 1, 'no fd was consumed');
  assert.equal(fault.id, 1);
});

test('FAULT_QUEUE_ALLOC: the fault fd holds the context after /dev/iommu is closed', () => {
  const f = st();
  const fault = faultQueue(f);
  f.proc.close(f.fd);
  assert.equal(f.ctx.objectCount, 1);
  assert.deepEqual(readFaults(f, fault.fd, 40), []);
  f.proc.close(fault.fd);
  assert.equal(f.ctx.objectCount, 0);
});

test('HWPT_ALLOC fault_id: ENOENT for a missing or non-FAULT id (no ID consumed), EOPNOTSUPP with NEST_PARENT', () => {
  const f = st();
  const ioas = f.ioas();
  const dev = mockDomain(f, ioas);
  const fault = faultQueue(f);
  assert.equal(hwptAlloc(f, dev.idev, ioas, FAULT_ID_VALID, 0xffffffff).errno, 'ENOENT');
  assert.equal(hwptAlloc(f, dev.idev, ioas, FAULT_ID_VALID, ioas).errno, 'ENOENT');
  assert.equal(
    hwptAlloc(f, dev.idev, ioas, FAULT_ID_VALID | NEST_PARENT, fault.id).errno,
    'EOPNOTSUPP',
  );
  const free = hwptAlloc(f, dev.idev, ioas, 0);
  assert.equal(destroy(f, free.id), undefined);
  const h = hwptAlloc(f, dev.idev, ioas, FAULT_ID_VALID, fault.id);
  assert.equal(h.errno, undefined);
  assert.equal(h.id, free.id, 'the failed allocs freed their IDs');
  // without FAULT_ID_VALID, fault_id is ignored
  assert.equal(hwptAlloc(f, dev.idev, ioas, 0, 0xffffffff).errno, undefined);
  f.proc.close(fault.fd);
  assert.equal(destroy(f, fault.id), 'EBUSY', 'the HWPT holds the FAULT');
  assert.equal(destroy(f, h.id), undefined);
  assert.equal(destroy(f, fault.id), undefined);
});

test('TRIGGER_IOPF: ENOENT unless a DEVICE; dropped (0) without a fault-capable attachment', () => {
  const { f, ioas, dev, fault } = faultSetup();
  assert.equal(trigger(f, dev.stdev), 'ENOENT');
  assert.equal(trigger(f, ioas), 'ENOENT');
  // RID on the auto domain (no fault queue): dropped
  assert.equal(trigger(f, dev.idev), undefined);
  // a PASID without attachment falls back to the RID only for nested HWPTs
  assert.equal(trigger(f, dev.idev, 7), undefined);
  assert.equal(f.proc.poll(fault.fd, POLLIN), 0);
  assert.deepEqual(readFaults(f, fault.fd, 80), []);
});

test('TRIGGER_IOPF on the RID: one 40-byte record per fault, cookie from 1, POLLIN while pending', () => {
  const { f, dev, fault, hwpt } = faultSetup();
  assert.equal(replace(f, dev.stdev, hwpt), undefined);
  assert.equal(destroy(f, hwpt), 'EBUSY');
  assert.equal(trigger(f, dev.idev, 0, 5), undefined);
  assert.equal(f.proc.poll(fault.fd, POLLIN | POLLOUT | POLLRDNORM), POLLIN | POLLOUT | POLLRDNORM);
  const recs = readFaults(f, fault.fd, 40);
  assert.ok(Array.isArray(recs));
  assert.deepEqual(recs, [
    {
      flags: 2, // LAST_PAGE; PASID_VALID only for a non-zero pasid
      dev_id: dev.idev,
      pasid: 0,
      grpid: 5,
      perm: 3,
      __reserved: 0,
      addr: 0xdeadbeafn,
      length: 0,
      cookie: 1,
    },
  ]);
  assert.equal(f.proc.poll(fault.fd, POLLIN | POLLOUT), POLLOUT);
  assert.equal(respond(f, fault.fd, [{ cookie: 1, code: 0 }]), 8);
  assert.equal(respond(f, fault.fd, [{ cookie: 1, code: 0 }]), 'EINVAL', 'answered already');
});

test('fault fd wakeups: one per fault queued; none for a dropped fault, a read or a response', () => {
  const { f, dev, fault, hwpt } = faultSetup();
  const file = f.proc.file(fault.fd)!;
  assert.equal(trigger(f, dev.idev), undefined, 'on the auto domain: dropped');
  assert.equal(file.wakeups!(), 0);
  assert.equal(replace(f, dev.stdev, hwpt), undefined);
  trigger(f, dev.idev);
  trigger(f, dev.idev);
  assert.equal(file.wakeups!(), 2);
  readFaults(f, fault.fd, 80);
  assert.equal(respond(f, fault.fd, [{ cookie: 1, code: 0 }]), 8);
  assert.equal(file.wakeups!(), 2);
});

test('fault fd read: ESPIPE for a length not a multiple of 40 or an offset; whole groups that fit', () => {
  const { f, dev, fault, hwpt } = faultSetup();
  ok(tc(f, 'MOCK_DOMAIN_REPLACE', { id: dev.stdev, pt_id: hwpt }));
  trigger(f, dev.idev, 0, 1);
  trigger(f, dev.idev, 0, 2);
  assert.equal(readFaults(f, fault.fd, 39), 'ESPIPE');
  assert.equal(readFaults(f, fault.fd, 41), 'ESPIPE');
  const file = f.proc.file(fault.fd)!;
  assert.throws(
    () => file.read!(f.proc, 40, 40n),
    (e: Errno) => e.code === 'ESPIPE',
  );
  assert.deepEqual(readFaults(f, fault.fd, 0), []);
  const first = readFaults(f, fault.fd, 40) as { grpid: number; cookie: number }[];
  assert.deepEqual(
    first.map((r) => [r.grpid, r.cookie]),
    [[1, 1]],
  );
  assert.equal(respond(f, fault.fd, [{ cookie: 1, code: 1 }]), 8);
  trigger(f, dev.idev, 0, 3);
  const rest = readFaults(f, fault.fd, 120) as { grpid: number; cookie: number }[];
  assert.deepEqual(
    rest.map((r) => [r.grpid, r.cookie]),
    [
      [2, 1],
      [3, 2],
    ],
    'cookies are the lowest free from 1',
  );
  assert.deepEqual(readFaults(f, fault.fd, 40), []);
});

test('fault fd write: ESPIPE for a length not a multiple of 8 or an offset; EINVAL for a bad code or cookie; partial progress', () => {
  const { f, dev, fault, hwpt } = faultSetup();
  ok(tc(f, 'MOCK_DOMAIN_REPLACE', { id: dev.stdev, pt_id: hwpt }));
  trigger(f, dev.idev, 0, 1);
  trigger(f, dev.idev, 0, 2);
  readFaults(f, fault.fd, 80);
  const buf = f.mem(PAGE);
  assert.equal(f.proc.write(fault.fd, buf, 7), -1);
  assert.equal(f.proc.errno, 'ESPIPE');
  const file = f.proc.file(fault.fd)!;
  assert.throws(
    () => file.write!(f.proc, new Uint8Array(8), 8n),
    (e: Errno) => e.code === 'ESPIPE',
  );
  assert.equal(respond(f, fault.fd, [{ cookie: 1, code: 2 }]), 'EINVAL');
  assert.equal(respond(f, fault.fd, [{ cookie: 9, code: 0 }]), 'EINVAL');
  assert.equal(
    respond(f, fault.fd, [
      { cookie: 1, code: 0 },
      { cookie: 1, code: 0 },
    ]),
    8,
    'stops at the second, reporting the first',
  );
  assert.equal(respond(f, fault.fd, [{ cookie: 2, code: 1 }]), 8);
  assert.equal(respond(f, fault.fd, []), 0);
});

test('replace or detach away from a fault HWPT answers its pending and outstanding faults', () => {
  const { f, ioas, dev, fault, hwpt } = faultSetup();
  ok(tc(f, 'MOCK_DOMAIN_REPLACE', { id: dev.stdev, pt_id: hwpt }));
  trigger(f, dev.idev, 0, 1);
  readFaults(f, fault.fd, 40);
  trigger(f, dev.idev, 0, 2);
  assert.equal(replace(f, dev.stdev, ioas), undefined);
  assert.deepEqual(readFaults(f, fault.fd, 40), [], 'the undelivered group is gone');
  assert.equal(respond(f, fault.fd, [{ cookie: 1, code: 0 }]), 'EINVAL', 'cookie 1 was answered');
  // detach (stdev destroy) does the same
  ok(tc(f, 'MOCK_DOMAIN_REPLACE', { id: dev.stdev, pt_id: hwpt }));
  trigger(f, dev.idev, 0, 3);
  assert.equal(destroy(f, dev.stdev), undefined);
  assert.equal(f.proc.poll(fault.fd, POLLIN), 0);
  // the fault's own destruction (close, then DESTROY of HWPT and FAULT) leaves nothing
  f.proc.close(fault.fd);
  assert.equal(destroy(f, hwpt), undefined);
  assert.equal(destroy(f, fault.id), undefined);
});

test('TRIGGER_IOPF at a PASID: delivered to the PASID attachment with PASID_VALID', () => {
  const f = st();
  const ioas = f.ioas();
  const dev = mockDomain(f, ioas, MOCK_FLAGS_DEVICE.PASID);
  const s2 = hwptAlloc(f, dev.idev, ioas, PASID).id;
  ok(tc(f, 'MOCK_DOMAIN_REPLACE', { id: dev.stdev, pt_id: s2 }));
  const fault = faultQueue(f);
  const iopf = hwptAlloc(f, dev.idev, ioas, FAULT_ID_VALID | PASID, fault.id);
  assert.equal(iopf.errno, undefined);
  ok(tc(f, 'PASID_ATTACH', { id: dev.stdev, pasid: 2048, pt_id: iopf.id }));
  assert.equal(trigger(f, dev.idev, 2048), undefined);
  assert.equal(trigger(f, dev.idev, 0), undefined, 'the RID HWPT has no fault queue');
  const recs = readFaults(f, fault.fd, 80) as { flags: number; pasid: number; cookie: number }[];
  assert.deepEqual(
    recs.map((r) => [r.flags, r.pasid, r.cookie]),
    [[3, 2048, 1]],
  );
  ok(tc(f, 'PASID_REPLACE', { id: dev.stdev, pasid: 2048, pt_id: s2 }));
  assert.equal(respond(f, fault.fd, [{ cookie: 1, code: 0 }]), 'EINVAL', 'answered by the replace');
  ok(tc(f, 'PASID_DETACH', { id: dev.stdev, pasid: 2048 }));
  assert.equal(destroy(f, iopf.id), undefined);
  f.proc.close(fault.fd);
  assert.equal(destroy(f, fault.id), undefined);
});

test('fixture iommufd_ioas, alloc_hwpt_nested: IOPF through a nested HWPT at the RID (pasid 1 falls back to it)', () => {
  const f = st();
  const ioas = f.ioas();
  const dev = mockDomain(f, ioas);
  const parent = hwptAlloc(f, dev.idev, ioas, NEST_PARENT).id;
  const fault = faultQueue(f);
  assert.ok(fault.id !== 0 && fault.fd !== 0);
  assert.equal(nestedAlloc(f, dev.idev, parent, FAULT_ID_VALID, 0xffffffff).errno, 'ENOENT');
  const iopf = nestedAlloc(f, dev.idev, parent, FAULT_ID_VALID, fault.id);
  assert.equal(iopf.errno, undefined);
  assert.equal(replace(f, dev.stdev, iopf.id), undefined);
  assert.equal(destroy(f, iopf.id), 'EBUSY');
  assert.equal(trigger(f, dev.idev, 1), undefined);
  const recs = readFaults(f, fault.fd, 40) as { flags: number; pasid: number; cookie: number }[];
  assert.deepEqual(
    recs.map((r) => [r.flags, r.pasid, r.cookie]),
    [[3, 1, 1]],
  );
  assert.equal(respond(f, fault.fd, [{ cookie: 1, code: 0 }]), 8);
  assert.equal(replace(f, dev.stdev, parent), undefined);
  assert.equal(destroy(f, iopf.id), undefined);
  assert.equal(replace(f, dev.stdev, ioas), undefined);
  assert.equal(destroy(f, parent), undefined);
  f.proc.close(fault.fd);
  assert.equal(destroy(f, fault.id), undefined);
});

test('fixture iommufd_viommu, viommu_alloc_nested_iopf: a vIOMMU nested HWPT with a fault queue', () => {
  const f = st();
  const ioas = f.ioas();
  const dev = mockDomain(f, ioas);
  const parent = hwptAlloc(f, dev.idev, ioas, NEST_PARENT).id;
  const viommu = viommuAlloc(f, dev.idev, parent);
  const fault = faultQueue(f);
  assert.equal(nestedAlloc(f, dev.idev, viommu, FAULT_ID_VALID, 0xffffffff).errno, 'ENOENT');
  assert.equal(
    nestedAlloc(f, dev.idev, viommu, FAULT_ID_VALID | (1 << 31), fault.id).errno,
    'EOPNOTSUPP',
  );
  const iopf = nestedAlloc(f, dev.idev, viommu, FAULT_ID_VALID, fault.id);
  assert.equal(iopf.errno, undefined);
  assert.equal(replace(f, dev.stdev, iopf.id), 'ENOENT', 'no vDEVICE yet');
  const vdev = f.call('IOMMU_VDEVICE_ALLOC', {
    viommu_id: viommu,
    dev_id: dev.idev,
    virt_id: 0x99n,
  });
  assert.equal(vdev.errno, undefined);
  assert.equal(replace(f, dev.stdev, iopf.id), undefined);
  assert.equal(destroy(f, iopf.id), 'EBUSY');
  assert.equal(trigger(f, dev.idev, 1), undefined);
  const recs = readFaults(f, fault.fd, 40) as { dev_id: number; cookie: number }[];
  assert.equal(recs.length, 1);
  assert.equal(recs[0]!.dev_id, dev.idev);
  assert.equal(respond(f, fault.fd, [{ cookie: recs[0]!.cookie, code: 0 }]), 8);
  assert.equal(replace(f, dev.stdev, ioas), undefined);
  assert.equal(destroy(f, iopf.id), undefined);
  f.proc.close(fault.fd);
  assert.equal(destroy(f, fault.id), undefined);
});
