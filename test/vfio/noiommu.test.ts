/**
 * VFIO no-IOMMU mode (vfio-device.md §2, vfio-container.md §2, §3, §8):
 * with `vfioNoiommu` a device without IOMMU is offered as the fake group
 * /dev/vfio/noiommu-N, usable only with CAP_SYS_RAWIO, through the legacy
 * container's no-IOMMU backend or iommufd's no-IOMMU compat mode; it has
 * no device cdev (Linux 6.18). Host: noiommu-host.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IOMMU_VFIO_IOAS_OP, IommuVfioIoas, iommufdCmdNumber } from '../../src/abi/iommufd.ts';
import { VFIO_EXTENSION, VFIO_GROUP_FLAGS } from '../../src/abi/vfio.ts';
import type { KernelPersonality } from '../../src/host/kernel.ts';
import { ctxOfFd } from '../../src/iommufd/fops.ts';
import { vfioCdevName } from '../../src/vfio/cdev.ts';
import { VfioClient } from './client.ts';
import { NOIOMMU_HOST, NVME, RAW_NIC } from './noiommu-host.ts';

const { TYPE1_IOMMU, TYPE1v2_IOMMU, NOIOMMU_IOMMU } = VFIO_EXTENSION;
const NOIOMMU = BigInt(NOIOMMU_IOMMU);
const FAKE = '/dev/vfio/noiommu-30';

function client(personality: Partial<KernelPersonality> = {}): VfioClient {
  return new VfioClient({ host: NOIOMMU_HOST, personality: { vfioNoiommu: true, ...personality } });
}

/** capset(): the process drops CAP_SYS_RAWIO (fds it holds stay open). */
function dropRawio(c: VfioClient): void {
  (c.proc.creds as { capSysRawio?: boolean }).capSysRawio = false;
}

describe('no-IOMMU group nodes', () => {
  it('without vfioNoiommu a device without IOMMU is not VFIO’s: no node, no cdev, no index', () => {
    const c = new VfioClient({ host: NOIOMMU_HOST });
    assert.equal(c.open(FAKE).errno, 'ENOENT');
    assert.equal(c.open('/dev/vfio/30').errno, 'ENOENT');
    assert.equal(vfioCdevName(c.kernel, RAW_NIC), undefined);
    assert.equal(vfioCdevName(c.kernel, NVME), 'vfio0');
  });

  it('with it: /dev/vfio/noiommu-N (not /dev/vfio/N), no cdev but an index; group name vfio-noiommu', () => {
    const c = client();
    assert.equal(c.open('/dev/vfio/30').errno, 'ENOENT');
    assert.equal(c.open('/dev/vfio/noiommu-31').errno, 'ENOENT');
    const fd = c.open(FAKE);
    assert.ok(fd.ret >= 0, fd.errno);
    const group = c.kernel.vfioGroups.get(30)!;
    assert.equal(group.nodeName, 'noiommu-30');
    assert.equal(group.iommuGroupName, 'vfio-noiommu');
    assert.equal(c.kernel.vfioGroups.get(31)!.iommuGroupName, undefined);
    assert.equal(vfioCdevName(c.kernel, RAW_NIC), undefined);
    assert.equal(vfioCdevName(c.kernel, NVME), 'vfio1');
    assert.equal(c.open('/dev/vfio/devices/vfio0').errno, 'ENOENT');
  });

  it('open needs CAP_SYS_RAWIO (EPERM, checked before EBUSY); one opener at a time', () => {
    const c = client();
    const fd = c.open(FAKE).ret;
    assert.ok(fd >= 0);
    assert.equal(c.open(FAKE).errno, 'EBUSY');
    const plain = new VfioClient(
      { host: NOIOMMU_HOST, personality: { vfioNoiommu: true } },
      {
        capSysRawio: false,
      },
    );
    assert.equal(plain.open(FAKE).errno, 'EPERM');
    dropRawio(c);
    assert.equal(c.open(FAKE).errno, 'EPERM'); // EPERM even while it is open
  });

  it('GET_STATUS: VIABLE (a fake group is never DMA-owned), then VIABLE|CONTAINER_SET', () => {
    const c = client({ vfioContainer: 'legacy' });
    const g = c.open(FAKE).ret;
    assert.equal(c.status(g).flags, VFIO_GROUP_FLAGS.VIABLE);
    assert.equal(c.setContainer(g, c.open('/dev/vfio/vfio').ret).ret, 0);
    assert.equal(c.status(g).flags, VFIO_GROUP_FLAGS.VIABLE | VFIO_GROUP_FLAGS.CONTAINER_SET);
    assert.equal(c.kernel.host.groups.get(30)!.dmaOwnerClaimed, false);
  });
});

describe('legacy container: the no-IOMMU backend', () => {
  function attached() {
    const c = client({ vfioContainer: 'legacy' });
    const container = c.open('/dev/vfio/vfio').ret;
    const group = c.open(FAKE).ret;
    return { c, container, group };
  }

  it('CHECK_EXTENSION: NOIOMMU 1 with no group; with a fake group only the no-IOMMU backend answers', () => {
    const { c, container, group } = attached();
    const ext = (e: number) => c.ioctl(container, 'VFIO_CHECK_EXTENSION', BigInt(e)).ret;
    assert.deepEqual([ext(TYPE1v2_IOMMU), ext(NOIOMMU_IOMMU)], [1, 1]);
    assert.equal(c.setContainer(group, container).ret, 0);
    assert.deepEqual([ext(TYPE1_IOMMU), ext(TYPE1v2_IOMMU), ext(NOIOMMU_IOMMU)], [0, 0, 1]);
    // without CONFIG_VFIO_NOIOMMU nobody answers NOIOMMU
    const off = new VfioClient({ personality: { vfioContainer: 'legacy' } });
    assert.equal(off.ioctl(off.open('/dev/vfio/vfio').ret, 'VFIO_CHECK_EXTENSION', NOIOMMU).ret, 0);
  });

  it('SET_IOMMU: only NOIOMMU for fake groups (ENODEV otherwise), never for real ones; EPERM without CAP_SYS_RAWIO', () => {
    const { c, container, group } = attached();
    assert.equal(c.setContainer(group, container).ret, 0);
    assert.equal(c.ioctl(container, 'VFIO_SET_IOMMU', BigInt(TYPE1v2_IOMMU)).errno, 'ENODEV');
    dropRawio(c);
    assert.equal(c.ioctl(container, 'VFIO_SET_IOMMU', NOIOMMU).errno, 'EPERM');
    (c.proc.creds as { capSysRawio?: boolean }).capSysRawio = true;
    assert.equal(c.ioctl(container, 'VFIO_SET_IOMMU', NOIOMMU).ret, 0);
    // a container of real groups cannot pick the no-IOMMU backend
    const real = c.open('/dev/vfio/vfio').ret;
    assert.equal(c.setContainer(c.open('/dev/vfio/31').ret, real).ret, 0);
    assert.equal(c.ioctl(real, 'VFIO_SET_IOMMU', NOIOMMU).errno, 'ENODEV');
  });

  it('after SET_IOMMU(NOIOMMU): no DMA ioctls (ENOTTY); the device fd opens and DMAs to physical addresses', () => {
    const { c, container, group } = attached();
    assert.equal(c.setContainer(group, container).ret, 0);
    assert.equal(c.getDeviceFd(group, RAW_NIC).errno, 'EINVAL'); // no backend yet
    assert.equal(c.ioctl(container, 'VFIO_SET_IOMMU', NOIOMMU).ret, 0);
    assert.equal(c.mapDma(container, c.mem(4096n), 0n, 4096n).errno, 'ENOTTY');
    assert.equal(c.getInfo(container).errno, 'ENOTTY');
    assert.equal(c.ioctl(container, 'VFIO_CHECK_EXTENSION', NOIOMMU).ret, 1);
    const dev = c.getDeviceFd(group, RAW_NIC);
    assert.ok(dev.ret >= 0, dev.errno);
    // IOVA = PA: DPDK finds the page's physical address (pagemap) and hands it to the device
    const va = c.mem(4096n);
    const [run] = c.proc.mm.resolve(va, 4096n, true);
    const nic = c.kernel.host.devices.get(RAW_NIC)!.device;
    nic.dmaWrite(run!.phys + 8n, Uint8Array.of(7, 7));
    assert.deepEqual([...c.proc.mm.read(va + 8n, 2)], [7, 7]);
  });

  it('SET_CONTAINER and the first GET_DEVICE_FD need CAP_SYS_RAWIO (EPERM)', () => {
    const { c, container, group } = attached();
    dropRawio(c);
    assert.equal(c.setContainer(group, container).errno, 'EPERM');
    (c.proc.creds as { capSysRawio?: boolean }).capSysRawio = true;
    assert.equal(c.setContainer(group, container).ret, 0);
    assert.equal(c.ioctl(container, 'VFIO_SET_IOMMU', NOIOMMU).ret, 0);
    dropRawio(c);
    assert.equal(c.getDeviceFd(group, RAW_NIC).errno, 'EPERM');
  });

  it('fake and real groups never share a container (EPERM, either way round)', () => {
    const { c, container, group } = attached();
    const real = c.open('/dev/vfio/31').ret;
    assert.equal(c.setContainer(group, container).ret, 0);
    assert.equal(c.setContainer(real, container).errno, 'EPERM');
    assert.equal(c.kernel.host.groups.get(31)!.dmaOwnerClaimed, false); // the claim was undone
    const other = c.open('/dev/vfio/vfio').ret;
    assert.equal(c.setContainer(real, other).ret, 0);
    assert.equal(c.ioctl(group, 'VFIO_GROUP_UNSET_CONTAINER').ret, 0);
    assert.equal(c.setContainer(group, other).errno, 'EPERM');
  });
});

describe('iommufd: no-IOMMU compat mode', () => {
  it('SET_CONTAINER puts the iommufd in no-IOMMU mode: SET_IOMMU(NOIOMMU) only, no compat IOAS', () => {
    const c = client({ vfioContainer: 'iommufd' });
    const fd = c.open('/dev/vfio/vfio').ret; // an iommufd
    const group = c.open(FAKE).ret;
    assert.equal(c.setContainer(group, fd).ret, 0);
    assert.equal(ctxOfFd(c.proc, fd).noIommuMode, true);
    assert.equal(ctxOfFd(c.proc, fd).vfioIoas, undefined);
    assert.equal(c.ioctl(fd, 'VFIO_CHECK_EXTENSION', NOIOMMU).ret, 1);
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', BigInt(TYPE1v2_IOMMU)).errno, 'EINVAL');
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', NOIOMMU).ret, 0);
    assert.equal(c.mapDma(fd, c.mem(4096n), 0n, 4096n).errno, 'ENODEV');
    // a real group cannot join that iommufd (no compat IOAS in no-IOMMU mode)
    assert.equal(c.setContainer(c.open('/dev/vfio/31').ret, fd).errno, 'EINVAL');
  });

  it('a fake group cannot join an iommufd that has a compat IOAS (EINVAL)', () => {
    const c = client();
    const fd = c.open('/dev/iommu').ret;
    assert.equal(c.setContainer(c.open('/dev/vfio/31').ret, fd).ret, 0);
    assert.equal(c.setContainer(c.open(FAKE).ret, fd).errno, 'EINVAL');
  });

  it('GET_DEVICE_FD: the device is opened unbound; EPERM without CAP_SYS_RAWIO or with a compat IOAS', () => {
    const c = client();
    const fd = c.open('/dev/iommu').ret;
    const group = c.open(FAKE).ret;
    assert.equal(c.setContainer(group, fd).ret, 0);
    dropRawio(c);
    assert.equal(c.getDeviceFd(group, RAW_NIC).errno, 'EPERM');
    (c.proc.creds as { capSysRawio?: boolean }).capSysRawio = true;
    // IOMMU_VFIO_IOAS(SET) gives the context a compat IOAS behind VFIO's back
    const alloc = c.proc.scratch(Uint8Array.of(12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
    assert.equal(c.proc.ioctl(fd, iommufdCmdNumber(c.kernel.abi, 'IOMMU_IOAS_ALLOC'), alloc), 0);
    const ioasId = new DataView(c.proc.mm.read(alloc + 8n, 4).buffer).getUint32(0, true);
    const vfioIoas = (op: number) =>
      c.proc.call(fd, iommufdCmdNumber(c.kernel.abi, 'IOMMU_VFIO_IOAS'), IommuVfioIoas, {
        size: 12,
        ioas_id: ioasId,
        op,
      });
    assert.equal(vfioIoas(IOMMU_VFIO_IOAS_OP.SET).ret, 0);
    assert.equal(c.getDeviceFd(group, RAW_NIC).errno, 'EPERM');
    assert.equal(vfioIoas(IOMMU_VFIO_IOAS_OP.CLEAR).ret, 0);
    const ctx = ctxOfFd(c.proc, fd);
    const objects = ctx.objectCount;
    const dev = c.getDeviceFd(group, RAW_NIC);
    assert.ok(dev.ret >= 0, dev.errno);
    assert.equal(ctx.objectCount, objects); // no DEVICE object: never bound
    assert.equal(c.kernel.host.groups.get(30)!.dmaOwnerClaimed, false);
    // later opens need no capability check
    dropRawio(c);
    assert.ok(c.getDeviceFd(group, RAW_NIC).ret >= 0);
    assert.equal(c.proc.close(dev.ret), 0);
  });
});
