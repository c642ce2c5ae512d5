/**
 * Devices of one IOMMU group bound to one context (the kernel's
 * iommufd_group): the group attaches with its first device and blocks with
 * its last; members share one HWPT; a replace moves them all.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IntelIommu } from '../../src/drivers/intel/driver.ts';
import { Device, DmaFaultError } from '../../src/iommu/device.ts';
import { Group } from '../../src/iommu/group.ts';
import { IommufdDevice } from '../../src/iommufd/device.ts';
import { setup } from '../support.ts';

const PAGE = 4096n;

function twoDeviceGroup() {
  const f = setup();
  const unit = new IntelIommu({ addressWidth: 48 });
  const group = new Group(1);
  const gpu = IommufdDevice.bind(f.ctx, new Device('0000:01:00.0', unit, group, f.kernel.memory));
  const audio = IommufdDevice.bind(f.ctx, new Device('0000:01:00.1', unit, group, f.kernel.memory));
  const ioas = f.ioas();
  const va = f.mem(PAGE);
  f.proc.mm.write(va, Uint8Array.of(0x42));
  assert.equal(
    f.call('IOMMU_IOAS_MAP', { flags: 7, ioas_id: ioas, user_va: va, length: PAGE, iova: 0n }).ret,
    0,
  );
  return { f, gpu, audio, ioas, group };
}

test('both devices share the auto domain; detaching one keeps the other translating', () => {
  const { gpu, audio, ioas, group } = twoDeviceGroup();
  const h1 = gpu.attach(ioas);
  const h2 = audio.attach(ioas);
  assert.equal(h1, h2);
  assert.equal(h1.users, 2);
  gpu.detach();
  assert.equal(group.domain, h1.domain, 'the group stays attached while a member is');
  assert.deepEqual(audio.dev.dmaRead(0n, 1), Uint8Array.of(0x42));
  assert.ok(h1.live);
  audio.detach();
  assert.equal(group.domain, undefined, 'the last member blocks the group');
  assert.equal(h1.live, false, 'the emptied auto domain is destroyed');
  assert.throws(() => audio.dev.dmaRead(0n, 1), DmaFaultError);
});

test('a second member cannot attach to another HWPT than the group’s: EINVAL, nothing changes', () => {
  const { f, gpu, audio, ioas } = twoDeviceGroup();
  const auto = gpu.attach(ioas);
  const other = f.call('IOMMU_HWPT_ALLOC', { dev_id: gpu.id, pt_id: ioas }).out
    .out_hwpt_id as number;
  assert.throws(() => audio.attach(other), { code: 'EINVAL' });
  assert.equal(audio.hwpt, undefined);
  assert.equal(auto.users, 1);
});

test('a replace moves every member of the group to the new HWPT', () => {
  const { f, gpu, audio, ioas } = twoDeviceGroup();
  const auto = gpu.attach(ioas);
  audio.attach(ioas);
  const manual = f.call('IOMMU_HWPT_ALLOC', { dev_id: gpu.id, pt_id: ioas }).out
    .out_hwpt_id as number;
  const h = gpu.attach(manual);
  assert.equal(audio.hwpt, h, 'the sibling moved too');
  assert.equal(h.users, 2);
  assert.equal(auto.live, false, 'the old auto domain lost both users');
  assert.equal(f.call('IOMMU_DESTROY', { id: manual }).errno, 'EBUSY');
  gpu.detach();
  audio.detach();
  assert.equal(f.call('IOMMU_DESTROY', { id: manual }).ret, 0);
});
