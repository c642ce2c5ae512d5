/**
 * The reasons of the SPAPR TCE container's rules (vfio_iommu_spapr_tce.c,
 * the table-group ops and the mm_iommu pre-registration) that
 * reasons.test.ts does not pin: the pre-6.4 attach rules, a second window
 * slot the PE lacks, UNMAP before REGISTER, UNREGISTER of a mapped region
 * before 5.1 and the EINVAL of a misaligned iova (`spaprBadIova`). Each row
 * goes through the container fd's ioctl as a client calls it.
 */
import assert from 'node:assert/strict';
import { powernv } from '../../src/host/topology/index.ts';
import { GIB, SpaprClient } from '../vfio/spapr-client.ts';
import { ddw, K64, MIB, onSpapr, pin, type Row, traced, V1, V2 } from './reasons-support.ts';

/** powernv with every PHB's PEs given `n` window slots. */
function slots(n: number) {
  return {
    host: {
      ...powernv,
      iommus: powernv.iommus.map((i) => ({ ...i, windowSlots: n, windowBases: [0n] })),
    },
  };
}

/** A traced client of the pre-6.4 attach rules on `host`: group `id` set, then SET_IOMMU(`type`). */
function pre64(host: string, id: number, type: number, more?: (c: SpaprClient) => unknown) {
  return () => {
    const c = traced(new SpaprClient({ host, personality: { spaprAttachRules: 'pre-6.4' } }));
    c.container = c.open('/dev/vfio/vfio').ret;
    c.addGroup(id);
    const r = c.ioctl(c.container, 'VFIO_SET_IOMMU', BigInt(type));
    if (more) {
      assert.equal(r.ret, 0);
      more(c);
    }
    return c.proc;
  };
}

const spaprRows: Row[] = [
  [
    'TCE_CREATE of a second window on a PE with one slot',
    onSpapr((c) => c.create(16, GIB), V2, slots(1)),
    'ENOSPC',
    'no window slot 1 on this PE',
    'tce_iommu_find_free_table',
  ],
  [
    'pre-6.4: a PowerNV PE in a v1 container',
    pre64('powernv', 1, V1),
    'EPERM',
    'PE cannot join a v1 container',
    'tce_iommu_attach_group',
  ],
  [
    'pre-6.4: a pSeries PE in a v2 container',
    pre64('pseries', 0, V2),
    'EPERM',
    'PE cannot join a v2 container',
    'tce_iommu_attach_group',
  ],
  [
    'pre-6.4: a second group joins a pSeries PE',
    pre64('pseries', 0, V1, (c) => c.setContainer(c.open('/dev/vfio/1').ret, c.container)),
    'EBUSY',
    'PE cannot share a container',
    'tce_iommu_attach_group',
  ],
  [
    'v2 UNMAP_DMA before REGISTER_MEMORY',
    onSpapr((c) => c.unmapDma(c.container, 0n, K64)),
    'EPERM',
    'no memory registered',
    'tce_iommu_ioctl',
  ],
  [
    'UNREGISTER_MEMORY of a mapped region (before 5.1)',
    onSpapr(
      (c) => {
        const ram = ddw(c);
        assert.equal(c.mapDma(c.container, ram, 1n << 59n, K64).ret, 0);
        c.unregister(ram, 4n * MIB);
      },
      V2,
      { personality: { spaprUnregisterMapped: 'EBUSY' } },
    ),
    'EBUSY',
    'region still mapped',
    'mm_iommu_put',
  ],
  [
    'MAP_DMA of a misaligned iova (before the positive-1 quirk)',
    onSpapr(
      (c) => {
        const ram = ddw(c);
        c.mapDma(c.container, ram, (1n << 59n) + 0x1000n, K64);
      },
      V2,
      { personality: { spaprBadIova: 'EINVAL' } },
    ),
    'EINVAL',
    'iova not TCE page aligned',
    'iommu_tce_put_param_check',
  ],
];

pin('spapr-tce.md (attach before 6.4, window slots, pre-registration)', spaprRows);

/** `act` on a traced pSeries v2 container (group 1, CAP_IPC_LOCK: no table charge refuses first). */
const onPseries = (act: (c: SpaprClient) => unknown) => onSpapr(act, V2, { host: 'pseries' });

pin('spapr-tce.md (pSeries create_table rules)', [
  [
    'TCE_CREATE of a two-level table on a pSeries PE',
    onPseries((c) => c.create(16, GIB, 2)),
    'EINVAL',
    'pSeries TCE tables have one level',
    'spapr_tce_create_table',
  ],
  [
    'TCE_CREATE of a pSeries window whose size is not a power of two',
    onPseries((c) => c.create(16, GIB + K64)),
    'EINVAL',
    'window size is not a power of two',
    'spapr_tce_create_table',
  ],
  [
    'TCE_CREATE of a pSeries window smaller than its TCE page (model rule)',
    onPseries((c) => c.create(24, 2n * MIB)),
    'EINVAL',
    'window smaller than one TCE page',
    'spapr_tce_create_table',
  ],
]);
