/**
 * DMA ownership between VFIO users (iommu.c's owner cookie, group.c,
 * device_cdev.c): a group used through a legacy container and its devices'
 * cdevs exclude each other (EBUSY, from the group-file/cdev block), and two
 * iommufd contexts cannot both bind devices of one group (EPERM, from
 * iommu_device_claim_dma_owner), whichever path binds them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VFIO_EXTENSION, VFIO_GROUP_FLAGS } from '../../src/abi/vfio.ts';
import { VfioClient } from './client.ts';

const GPU = '0000:01:00.0'; // group 1 with its audio function
const AUDIO = '0000:01:00.1';

/** A process on a host whose /dev/vfio/vfio is the legacy type1 container. */
function legacy(): VfioClient {
  return new VfioClient({ personality: { vfioContainer: 'legacy' } });
}

describe('legacy container vs device cdevs', () => {
  it('a group in a legacy container blocks BIND of its devices (EBUSY), also after the group fd closes', () => {
    const c = legacy();
    const container = c.open('/dev/vfio/vfio').ret;
    const group = c.open('/dev/vfio/1').ret;
    assert.equal(c.setContainer(group, container).ret, 0);
    assert.equal(c.ioctl(container, 'VFIO_SET_IOMMU', BigInt(VFIO_EXTENSION.TYPE1v2_IOMMU)).ret, 0);
    assert.equal(c.kernel.host.groups.get(1)!.dmaOwnerClaimed, true);
    const iommufd = c.open('/dev/iommu').ret;
    const audio = c.open(c.cdevPath(AUDIO)).ret;
    assert.equal(c.bind(audio, iommufd).errno, 'EBUSY');
    // a device fd keeps the group file (and the container use) alive
    const gpu = c.getDeviceFd(group, GPU).ret;
    assert.ok(gpu >= 0);
    assert.equal(c.proc.close(group), 0);
    assert.equal(c.bind(audio, iommufd).errno, 'EBUSY');
    // the last device fd releases the group: ownership goes with it
    assert.equal(c.proc.close(gpu), 0);
    assert.equal(c.kernel.host.groups.get(1)!.dmaOwnerClaimed, false);
    assert.equal(c.bind(audio, iommufd).ret, 0);
  });

  it('a cdev-bound device blocks the group node (EBUSY), so no container can take the group', () => {
    const c = legacy();
    const iommufd = c.open('/dev/iommu').ret;
    const audio = c.open(c.cdevPath(AUDIO)).ret;
    assert.equal(c.bind(audio, iommufd).ret, 0);
    assert.equal(c.kernel.host.groups.get(1)!.dmaOwnerClaimed, true);
    assert.equal(c.open('/dev/vfio/1').errno, 'EBUSY');
    assert.equal(c.proc.close(audio), 0);
    assert.equal(c.kernel.host.groups.get(1)!.dmaOwnerClaimed, false);
    const group = c.open('/dev/vfio/1').ret;
    assert.equal(c.setContainer(group, c.open('/dev/vfio/vfio').ret).ret, 0);
  });
});

describe('the owner cookie: one iommufd context per group', () => {
  it('cdevs: a second context binding a device of the group gets EPERM; the same context may', () => {
    const c = new VfioClient();
    const ctxA = c.open('/dev/iommu').ret;
    const ctxB = c.open('/dev/iommu').ret;
    const gpu = c.open(c.cdevPath(GPU)).ret;
    const audio = c.open(c.cdevPath(AUDIO)).ret;
    assert.equal(c.bind(gpu, ctxA).ret, 0);
    assert.equal(c.bind(audio, ctxB).errno, 'EPERM');
    // the failed BIND left nothing behind: the group is still blocked by gpu only
    assert.equal(c.bind(audio, ctxA).ret, 0);
    assert.equal(c.proc.close(gpu), 0);
    assert.equal(c.proc.close(audio), 0);
    // both unbound: the group is free for another context
    const again = c.open(c.cdevPath(AUDIO)).ret;
    assert.equal(c.bind(again, ctxB).ret, 0);
  });

  it('group path: devices left bound after UNSET_CONTAINER keep the group owned (GET_STATUS 0, EPERM for another context)', () => {
    const c = new VfioClient();
    const group = c.open('/dev/vfio/1').ret;
    const ctxA = c.open('/dev/iommu').ret;
    assert.equal(c.setContainer(group, ctxA).ret, 0);
    const gpu = c.getDeviceFd(group, GPU).ret;
    assert.ok(gpu >= 0);
    // iommufd's UNSET does not look at open devices: GPU stays bound to ctxA
    assert.equal(c.ioctl(group, 'VFIO_GROUP_UNSET_CONTAINER').ret, 0);
    assert.equal(c.status(group).flags, 0);
    const ctxB = c.open('/dev/iommu').ret;
    assert.equal(c.setContainer(group, ctxB).ret, 0);
    assert.equal(c.status(group).flags, VFIO_GROUP_FLAGS.VIABLE | VFIO_GROUP_FLAGS.CONTAINER_SET);
    assert.equal(c.getDeviceFd(group, AUDIO).errno, 'EPERM');
    // GPU is already open: another fd of it needs no new binding
    assert.ok(c.getDeviceFd(group, GPU).ret >= 0);
  });

  it('a legacy container cannot take a group whose devices an iommufd owns (EPERM)', () => {
    const c = legacy();
    const group = c.open('/dev/vfio/1').ret;
    const ctx = c.open('/dev/iommu').ret;
    assert.equal(c.setContainer(group, ctx).ret, 0);
    assert.ok(c.getDeviceFd(group, GPU).ret >= 0);
    assert.equal(c.ioctl(group, 'VFIO_GROUP_UNSET_CONTAINER').ret, 0);
    const container = c.open('/dev/vfio/vfio').ret;
    assert.equal(c.setContainer(group, container).errno, 'EPERM');
    assert.equal(c.status(group).flags, 0); // nothing changed
  });
});
