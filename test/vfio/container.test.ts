/**
 * /dev/vfio/vfio: DPDK's group-mode sequence (clients.md §1.7) on the
 * iommufd-provided container, the container rules of vfio-container.md §2
 * and §8 with and without groups, and the legacy container (the default):
 * its backends per host (type1 on x86, SPAPR TCE alone on POWER), with no
 * backend registered, and with a stand-in backend to check SET_IOMMU
 * selection and the group/device lifetime rules.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fail } from '../../src/abi/errno.ts';
import { iommufdCmdNumber } from '../../src/abi/iommufd.ts';
import { VFIO_EXTENSION, VFIO_GROUP_FLAGS } from '../../src/abi/vfio.ts';
import type { Group } from '../../src/iommu/group.ts';
import { ctxOfFd } from '../../src/iommufd/fops.ts';
import type { VfioIommuBackend, VfioIommuDriver } from '../../src/vfio/container.ts';
import { COMPAT, VfioClient } from './client.ts';

const NVME = '0000:02:00.0'; // group 12
const MIB = 1n << 20n;
const { TYPE1_IOMMU, SPAPR_TCE_v2_IOMMU, NOIOMMU_IOMMU, TYPE1v2_IOMMU } = VFIO_EXTENSION;

describe('DPDK group mode (iommufd backend)', () => {
  it('probes, sets up, maps memsegs, opens the device with the vf_token fallback', () => {
    const c = new VfioClient();
    const container = c.open('/dev/vfio/vfio').ret;
    assert.ok(c.ioctl(container, 'VFIO_GET_API_VERSION').ret >= 0);
    const types = [TYPE1_IOMMU, SPAPR_TCE_v2_IOMMU, NOIOMMU_IOMMU];
    const supported = types.map((t) => c.ioctl(container, 'VFIO_CHECK_EXTENSION', BigInt(t)).ret);
    assert.deepEqual(supported, [1, 0, 0]);

    const group = c.open('/dev/vfio/12').ret;
    const st = c.status(group);
    assert.ok(st.flags & VFIO_GROUP_FLAGS.VIABLE);
    if (!(st.flags & VFIO_GROUP_FLAGS.CONTAINER_SET))
      assert.equal(c.setContainer(group, container).ret, 0);
    // first group of the primary process: the first supported type that works
    const chosen = types.find((t) => c.ioctl(container, 'VFIO_SET_IOMMU', BigInt(t)).ret === 0);
    assert.equal(chosen, TYPE1_IOMMU);

    // memsegs: two 2 MiB segments at IOVA = their VA (IOVA-as-VA)
    const segs = [c.mem(2n * MIB), c.mem(2n * MIB)];
    for (const va of segs) assert.equal(c.mapDma(container, va, va, 2n * MIB).ret, 0);
    // a repeated map is EEXIST, which DPDK ignores
    assert.equal(c.mapDma(container, segs[0]!, segs[0]!, 2n * MIB).errno, 'EEXIST');

    const token = 'bd8d9d2b-5a5f-4f5a-a211-f591514ba1f3';
    let dev = c.getDeviceFd(group, `${NVME} vf_token=${token}`);
    assert.equal(dev.errno, 'EINVAL');
    dev = c.getDeviceFd(group, NVME);
    assert.ok(dev.ret >= 0);

    const nvme = c.kernel.host.devices.get(NVME)!.device;
    nvme.dmaWrite(segs[1]! + 8n, Uint8Array.of(0xca, 0xfe));
    assert.deepEqual(c.proc.mm.read(segs[1]! + 8n, 2), Uint8Array.of(0xca, 0xfe));

    // unmap in the original chunks: size must come back equal (else DPDK says EIO)
    for (const va of segs) assert.equal(c.unmapDma(container, va, 2n * MIB).size, 2n * MIB);
    assert.equal(c.proc.close(dev.ret), 0);
    assert.equal(c.proc.close(group), 0);
    assert.equal(c.proc.close(container), 0);
  });
});

describe('/dev/vfio/vfio provided by iommufd', () => {
  it('is an iommufd opened as vfio: per-mm accounting, native ioctls work', () => {
    const c = new VfioClient({ personality: COMPAT });
    const fd = c.open('/dev/vfio/vfio').ret;
    const ctx = ctxOfFd(c.proc, fd);
    assert.equal(ctx.accountMode, 'mm');
    const r = c.proc.ioctl(
      fd,
      iommufdCmdNumber(c.kernel.abi, 'IOMMU_IOAS_ALLOC'),
      c.proc.scratch(Uint8Array.of(12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
    );
    assert.equal(r, 0);
  });

  it('without a group: SET_IOMMU ENODEV, MAP_DMA ENODEV, CHECK_EXTENSION still answers', () => {
    const c = new VfioClient({ personality: COMPAT });
    const fd = c.open('/dev/vfio/vfio').ret;
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', BigInt(TYPE1v2_IOMMU)).errno, 'ENODEV');
    assert.equal(c.mapDma(fd, c.mem(MIB), 0n, MIB).errno, 'ENODEV');
    assert.equal(c.ioctl(fd, 'VFIO_CHECK_EXTENSION', 1n).ret, 1);
    assert.equal(c.ioctl(fd, 'VFIO_CHECK_EXTENSION', 4n).errno, 'ENODEV'); // DMA_CC needs the compat IOAS
  });

  it('with a group: SET_IOMMU of a non-type1 type is EINVAL, may be repeated', () => {
    const c = new VfioClient({ personality: COMPAT });
    const fd = c.open('/dev/vfio/vfio').ret;
    const g = c.open('/dev/vfio/12').ret;
    assert.equal(c.setContainer(g, fd).ret, 0);
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', BigInt(SPAPR_TCE_v2_IOMMU)).errno, 'EINVAL');
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', BigInt(TYPE1v2_IOMMU)).ret, 0);
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', BigInt(TYPE1v2_IOMMU)).ret, 0);
    assert.equal(c.ioctl(fd, 'VFIO_IOMMU_DIRTY_PAGES', 0n).errno, 'ENOTTY');
  });

  it('mappings stay in the IOAS after the last group leaves', () => {
    const c = new VfioClient({ personality: COMPAT });
    const fd = c.open('/dev/vfio/vfio').ret;
    const g = c.open('/dev/vfio/12').ret;
    assert.equal(c.setContainer(g, fd).ret, 0);
    const va = c.mem(MIB);
    assert.equal(c.mapDma(fd, va, 0n, MIB).ret, 0);
    assert.equal(c.ioctl(g, 'VFIO_GROUP_UNSET_CONTAINER').ret, 0);
    assert.equal(c.mapDma(fd, va, 0n, MIB).errno, 'EEXIST');
  });
});

describe('legacy container (personality vfioContainer: legacy) with no backend loaded', () => {
  const legacy = () => {
    const c = new VfioClient({ personality: { vfioContainer: 'legacy' } });
    c.kernel.vfioIommuDrivers.length = 0;
    return c;
  };

  it('answers as Linux does when no backend supports the type', () => {
    const c = legacy();
    const fd = c.open('/dev/vfio/vfio').ret;
    assert.equal(c.ioctl(fd, 'VFIO_GET_API_VERSION').ret, 0);
    for (const t of [1n, 3n, 7n, 9n]) assert.equal(c.ioctl(fd, 'VFIO_CHECK_EXTENSION', t).ret, 0);
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', 3n).errno, 'EINVAL', 'no group yet');
    assert.equal(c.mapDma(fd, c.mem(MIB), 0n, MIB).errno, 'EINVAL', 'no backend');
    const g = c.open('/dev/vfio/12').ret;
    assert.equal(c.setContainer(g, fd).ret, 0);
    assert.equal(c.status(g).flags, VFIO_GROUP_FLAGS.VIABLE | VFIO_GROUP_FLAGS.CONTAINER_SET);
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', 3n).errno, 'ENODEV');
    assert.equal(c.getDeviceFd(g, NVME).errno, 'EINVAL', 'SET_IOMMU not done');
    assert.equal(c.ioctl(g, 'VFIO_GROUP_UNSET_CONTAINER').ret, 0);
  });
});

/** A stand-in backend recording what the container asks of it. */
function fakeDriver(log: string[], types: bigint[] = [1n, 3n]): VfioIommuDriver {
  return {
    name: 'fake',
    checkExtension: (ext) => (types.includes(ext) ? 1 : 0),
    open(type): VfioIommuBackend {
      log.push(`open ${type}`);
      return {
        attachGroup: (g: Group) => log.push(`attach ${g.id}`),
        detachGroup: (g: Group) => log.push(`detach ${g.id}`),
        ioctl: () => fail('ENOTTY', 'no ioctls', 'vfs_ioctl'),
        release: () => log.push('release'),
        containerClosed: () => log.push('closed'),
      };
    },
  };
}

describe('legacy container with a backend', () => {
  function legacy(log: string[]) {
    const c = new VfioClient({ personality: { vfioContainer: 'legacy' } });
    c.kernel.vfioIommuDrivers.splice(0, Infinity, fakeDriver(log));
    const fd = c.open('/dev/vfio/vfio').ret;
    return { c, fd };
  }

  it('SET_IOMMU picks the backend, attaches the groups, EINVAL once set', () => {
    const log: string[] = [];
    const { c, fd } = legacy(log);
    assert.equal(c.ioctl(fd, 'VFIO_CHECK_EXTENSION', 3n).ret, 1);
    const g12 = c.open('/dev/vfio/12').ret;
    const g13 = c.open('/dev/vfio/13').ret;
    assert.equal(c.setContainer(g12, fd).ret, 0);
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', 7n).errno, 'ENODEV');
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', 3n).ret, 0);
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', 3n).errno, 'EINVAL');
    assert.equal(c.setContainer(g13, fd).ret, 0);
    assert.equal(c.ioctl(fd, 'VFIO_IOMMU_GET_INFO', 0n).errno, 'ENOTTY', 'passed to the backend');
    assert.deepEqual(log, ['open 3', 'attach 12', 'attach 13']);
    // the last group leaving releases the backend: SET_IOMMU is needed again
    assert.equal(c.ioctl(g12, 'VFIO_GROUP_UNSET_CONTAINER').ret, 0);
    assert.equal(c.ioctl(g13, 'VFIO_GROUP_UNSET_CONTAINER').ret, 0);
    assert.deepEqual(log.slice(3), ['detach 12', 'detach 13', 'release']);
    assert.equal(c.setContainer(g12, fd).ret, 0);
    assert.equal(c.getDeviceFd(g12, NVME).errno, 'EINVAL');
  });

  it('open devices: UNSET is EBUSY, the group file outlives its fd, the container its fd', () => {
    const log: string[] = [];
    const { c, fd } = legacy(log);
    const g = c.open('/dev/vfio/12').ret;
    assert.equal(c.setContainer(g, fd).ret, 0);
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', 1n).ret, 0);
    const dev = c.getDeviceFd(g, NVME).ret;
    assert.ok(dev >= 0);
    assert.equal(c.ioctl(g, 'VFIO_GROUP_UNSET_CONTAINER').errno, 'EBUSY');
    assert.equal(c.proc.close(fd), 0);
    assert.deepEqual(log, ['open 1', 'attach 12', 'closed']);
    assert.equal(c.proc.close(g), 0);
    assert.equal(c.open('/dev/vfio/12').errno, 'EBUSY', 'the device fd holds the group file');
    assert.equal(c.proc.close(dev), 0);
    assert.deepEqual(log.slice(3), ['detach 12', 'release']);
    assert.ok(c.open('/dev/vfio/12').ret >= 0);
  });
});

describe('legacy container on vfio_iommu_type1 (the default backend)', () => {
  it('QEMU-like flow: TYPE1v2, map, device DMA, bisecting unmap EINVAL, exact unmap', () => {
    const c = new VfioClient({ personality: { vfioContainer: 'legacy' } });
    const fd = c.open('/dev/vfio/vfio').ret;
    assert.equal(c.ioctl(fd, 'VFIO_CHECK_EXTENSION', 3n).ret, 1);
    const g = c.open('/dev/vfio/12').ret;
    assert.equal(c.setContainer(g, fd).ret, 0);
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', 3n).ret, 0);
    const va = c.mem(2n * MIB);
    assert.equal(c.mapDma(fd, va, 0x100_0000n, 2n * MIB).ret, 0);
    assert.equal(c.mapDma(fd, va, 0x100_0000n, MIB).errno, 'EEXIST');
    const dev = c.getDeviceFd(g, NVME).ret;
    assert.ok(dev >= 0);
    const nvme = c.kernel.host.devices.get(NVME)!.device;
    nvme.dmaWrite(0x100_0000n + 0x10n, Uint8Array.of(0xab));
    assert.deepEqual(c.proc.mm.read(va + 0x10n, 1), Uint8Array.of(0xab));
    assert.equal(c.unmapDma(fd, 0x100_0000n, MIB).errno, 'EINVAL', 'v2: cannot bisect a mapping');
    const un = c.unmapDma(fd, 0x100_0000n, 2n * MIB);
    assert.equal(un.ret, 0);
    assert.equal(un.size, 2n * MIB);
    assert.throws(() => nvme.dmaRead(0x100_0000n, 1), /fault/);
    assert.equal(c.proc.close(dev), 0);
  });
});

describe('the legacy container is the default, with the backends the host kernel builds', () => {
  const { EEH, TYPE1_NESTING_IOMMU, SPAPR_TCE_IOMMU } = VFIO_EXTENSION;
  const probed = [
    TYPE1_IOMMU,
    TYPE1v2_IOMMU,
    TYPE1_NESTING_IOMMU,
    SPAPR_TCE_IOMMU,
    SPAPR_TCE_v2_IOMMU,
    EEH,
  ];
  const answers = (c: VfioClient, fd: number) =>
    probed.map((t) => c.ioctl(fd, 'VFIO_CHECK_EXTENSION', BigInt(t)).ret);

  for (const host of ['x86', 'powernv', 'pseries', 'mock']) {
    it(`${host}: /dev/vfio/vfio is the legacy container unless the setting says iommufd`, () => {
      const c = new VfioClient({ host });
      assert.equal(c.kernel.personality.vfioContainer, 'legacy');
      const fd = c.open('/dev/vfio/vfio').ret;
      assert.equal(c.proc.fds.get(fd)?.ops.kind, 'vfio-container');
      const compat = new VfioClient({ host, personality: COMPAT });
      const cfd = compat.open('/dev/vfio/vfio').ret;
      assert.ok(ctxOfFd(compat.proc, cfd), 'an iommufd opened as vfio');
    });
  }

  it('x86: type1 answers TYPE1 and TYPE1v2 (TYPE1_NESTING too under 6.12); SPAPR types and EEH are 0', () => {
    const c = new VfioClient();
    assert.deepEqual(answers(c, c.open('/dev/vfio/vfio').ret), [1, 1, 0, 0, 0, 0]);
    const old = new VfioClient({ version: '6.12' });
    assert.deepEqual(answers(old, old.open('/dev/vfio/vfio').ret), [1, 1, 1, 0, 0, 0]);
  });

  for (const host of ['powernv', 'pseries']) {
    it(`${host}: no type1 backend: TYPE1* 0, SPAPR_TCE, SPAPR_TCE_v2 and EEH 1; SET_IOMMU(TYPE1*) ENODEV with a group, EINVAL without`, () => {
      const c = new VfioClient({ host });
      assert.deepEqual(
        c.kernel.vfioIommuDrivers.map((d) => d.name),
        ['vfio-iommu-spapr-tce'],
      );
      const fd = c.open('/dev/vfio/vfio').ret;
      assert.deepEqual(answers(c, fd), [0, 0, 0, 1, 1, 1]);
      assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', BigInt(TYPE1v2_IOMMU)).errno, 'EINVAL');
      const g = c.open('/dev/vfio/1').ret;
      assert.equal(c.setContainer(g, fd).ret, 0);
      assert.deepEqual(answers(c, fd), [0, 0, 0, 1, 1, 1], 'same answers with a group');
      for (const t of [TYPE1_IOMMU, TYPE1v2_IOMMU, TYPE1_NESTING_IOMMU]) {
        assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', BigInt(t)).errno, 'ENODEV');
      }
      assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', BigInt(SPAPR_TCE_v2_IOMMU)).ret, 0);
    });
  }

  it("'type1' is still accepted as the legacy container's old name", () => {
    const c = new VfioClient({ host: 'powernv', personality: { vfioContainer: 'type1' } });
    assert.deepEqual(answers(c, c.open('/dev/vfio/vfio').ret), [0, 0, 0, 1, 1, 1]);
  });
});
