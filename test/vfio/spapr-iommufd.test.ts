/**
 * uiommu extension: the SPAPR TCE container on an iommufd fd
 * (src/vfio/spapr/iommufd-compat.ts, docs/extensions.md): QEMU's SPAPR v2
 * flow with dynamic DMA windows on /dev/iommu, groups attached with
 * VFIO_GROUP_SET_CONTAINER(iommufd fd).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VFIO_EXTENSION, VFIO_IOMMU_SPAPR_INFO_DDW } from '../../src/abi/vfio.ts';
import { VfioClient } from './client.ts';
import { DDW, GIB, IPR, MIB, NVME, SpaprClient } from './spapr-client.ts';

const V2 = BigInt(VFIO_EXTENSION.SPAPR_TCE_v2_IOMMU);

/** A client whose "container" is `path` served by iommufd, with group 1 set on it. */
function onIommufd(path = '/dev/iommu') {
  const c = new SpaprClient({ personality: { vfioContainer: 'iommufd' } });
  c.container = c.open(path).ret;
  const g = c.addGroup(1);
  return { c, g };
}

describe('SPAPR TCE on /dev/iommu (uiommu extension)', () => {
  it('QEMU SPAPR v2 flow: SET_IOMMU(v2), GET_INFO, REGISTER, CREATE a DDW, REMOVE the default, MAP, DMA', () => {
    const { c, g } = onIommufd();
    assert.equal(c.ioctl(c.container, 'VFIO_CHECK_EXTENSION', V2).ret, 1);
    assert.equal(c.ioctl(c.container, 'VFIO_CHECK_EXTENSION', 3n).ret, 1, 'type1 compat too');
    assert.equal(c.proc.file(c.container)!.kind, 'iommufd');
    assert.equal(c.ioctl(c.container, 'VFIO_SET_IOMMU', V2).ret, 0);
    assert.equal(c.proc.file(c.container)!.kind, 'iommufd-spapr', 'traces decode SPAPR');
    assert.equal(c.ioctl(c.container, 'VFIO_CHECK_EXTENSION', 3n).ret, 0, 'SPAPR chosen');
    assert.equal(c.ioctl(c.container, 'VFIO_CHECK_EXTENSION', 5n).ret, 1, 'EEH');
    const info = c.info();
    assert.equal(info.ret, 0);
    assert.equal(info.out.flags, VFIO_IOMMU_SPAPR_INFO_DDW);
    assert.equal(info.out.dma32_window_size, 0x8000_0000);

    const ram = c.ram(4n * MIB);
    assert.equal(c.register(ram, 4n * MIB).ret, 0);
    assert.equal(c.create(16, GIB).out.start_addr, DDW);
    assert.equal(c.remove(0n).ret, 0);
    assert.equal(c.mapDma(c.container, ram, DDW, 4n * MIB).ret, 0);
    const dev = c.getDeviceFd(g, IPR);
    assert.ok(dev.ret >= 0, 'device fd without binding to the iommufd');
    const ipr = c.dev(IPR);
    ipr.dmaWrite(DDW + 0x1234n, Uint8Array.of(0x5a));
    assert.deepEqual(c.proc.mm.read(ram + 0x1234n, 1), Uint8Array.of(0x5a));
    assert.throws(() => ipr.dmaWrite(0x1000n, Uint8Array.of(1)), 'default window removed');
    assert.equal(ipr.group.domain!.apertures.length, 1);

    // a second group joins the windows and sees the TCEs; UNMAP reaches both
    c.addGroup(2);
    c.dev(NVME).dmaWrite(DDW + 8n, Uint8Array.of(7));
    assert.deepEqual(c.proc.mm.read(ram + 8n, 1), Uint8Array.of(7));
    assert.equal(c.unmapDma(c.container, DDW, 4n * MIB).ret, 0);
    assert.throws(() => c.dev(NVME).dmaWrite(DDW + 8n, Uint8Array.of(1)));
    assert.equal(c.mapDma(c.container, ram, DDW + 0x1000n, 64n * 1024n).ret, 1, 'positive 1');
  });

  it('works on /dev/vfio/vfio when iommufd serves it, and v1 works too', () => {
    const { c } = onIommufd('/dev/vfio/vfio');
    assert.equal(c.ioctl(c.container, 'VFIO_SET_IOMMU', 2n).ret, 0);
    assert.equal(c.ioctl(c.container, 'VFIO_IOMMU_ENABLE').ret, 0);
    const mem = c.mem(MIB);
    assert.equal(c.mapDma(c.container, mem, 0x2000n, 0x1000n).ret, 0);
    c.dev(IPR).dmaWrite(0x2010n, Uint8Array.of(4));
    assert.deepEqual(c.proc.mm.read(mem + 0x10n, 1), Uint8Array.of(4));
    const g2 = c.open('/dev/vfio/2').ret;
    assert.equal(c.setContainer(g2, c.container).errno, 'EBUSY', 'v1: one group');
  });

  it('errno: ENODEV without a group, EINVAL once chosen, EBUSY with a device already bound', () => {
    const a = new SpaprClient({ personality: { vfioContainer: 'iommufd' } });
    const fd = a.open('/dev/iommu').ret;
    assert.equal(a.ioctl(fd, 'VFIO_SET_IOMMU', V2).errno, 'ENODEV');

    const { c } = onIommufd();
    assert.equal(c.ioctl(c.container, 'VFIO_SET_IOMMU', V2).ret, 0);
    assert.equal(c.ioctl(c.container, 'VFIO_SET_IOMMU', V2).errno, 'EINVAL');
    assert.equal(c.ioctl(c.container, 'VFIO_SET_IOMMU', 3n).errno, 'EINVAL');

    const { c: b, g } = onIommufd();
    assert.ok(b.getDeviceFd(g, IPR).ret >= 0, 'bound to the compat IOAS');
    assert.equal(b.ioctl(b.container, 'VFIO_SET_IOMMU', V2).errno, 'EBUSY');
    assert.equal(b.ioctl(b.container, 'VFIO_SET_IOMMU', 3n).ret, 0, 'type1 compat as before');
  });

  it('UNSET_CONTAINER is EBUSY while a device is open; the last group releases the backend', () => {
    const { c, g } = onIommufd();
    assert.equal(c.ioctl(c.container, 'VFIO_SET_IOMMU', V2).ret, 0);
    const ram = c.ram(2n * MIB);
    assert.equal(c.register(ram, 2n * MIB).ret, 0);
    assert.equal(c.mapDma(c.container, ram, 0x10_0000n, MIB).ret, 0);
    const dev = c.getDeviceFd(g, IPR).ret;
    assert.equal(c.ioctl(g, 'VFIO_GROUP_UNSET_CONTAINER').errno, 'EBUSY');
    assert.equal(c.proc.close(dev), 0);
    assert.equal(c.ioctl(g, 'VFIO_GROUP_UNSET_CONTAINER').ret, 0);
    assert.equal(c.dev(IPR).group.domain, undefined, 'windows gone');
    assert.equal(c.register(ram, 2n * MIB).errno, 'ENOTTY', 'type1 compat again');
    assert.equal(c.setContainer(g, c.container).ret, 0);
    assert.equal(c.ioctl(c.container, 'VFIO_SET_IOMMU', V2).ret, 0, 'may choose again');
  });

  it('an x86 host has no SPAPR extension: CHECK_EXTENSION(7) 0, SET_IOMMU(7) EINVAL', () => {
    const c = new VfioClient();
    const fd = c.open('/dev/iommu').ret;
    assert.equal(c.ioctl(fd, 'VFIO_CHECK_EXTENSION', V2).ret, 0);
    const g = c.open('/dev/vfio/13').ret;
    assert.equal(c.setContainer(g, fd).ret, 0);
    assert.equal(c.ioctl(fd, 'VFIO_SET_IOMMU', V2).errno, 'EINVAL');
    assert.equal(c.ioctl(fd, 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY', 0n).errno, 'ENOTTY');
  });
});
