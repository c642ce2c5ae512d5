/**
 * vfio-pci's SR-IOV VF token (vfio-device.md §2.5, §4.7, §5.3): the token
 * rules of GET_DEVICE_FD (` vf_token=<uuid>`) and BIND_IOMMUFD
 * (FLAG_TOKEN), and VFIO_DEVICE_FEATURE(PCI_VF_TOKEN) on the PF, on the
 * host of sriov-host.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { vfioIoctlNumber } from '../../src/abi/vfio.ts';
import { VFIO_DEVICE_FEATURE, VFIO_DEVICE_FEATURE_ID } from '../../src/vfio/pci/abi.ts';
import { parseUuid } from '../../src/vfio/pci/sriov.ts';
import { COMPAT, type Result, VfioClient } from './client.ts';
import {
  deviceFeature,
  HOST_VF,
  PF,
  PLAIN,
  SRIOV_HOST,
  sriovGroups,
  VF0,
  VF1,
} from './sriov-host.ts';

const TOKEN = 'bd8d9d2b-5a5f-4f5a-a211-f591514ba1f3';
const OTHER = '00000000-0000-0000-0000-000000000001';
/** A client on the SR-IOV host with every group of `bdfs` set to one iommufd-backed container. */
function setup(...bdfs: string[]) {
  const c = new VfioClient({ host: SRIOV_HOST, personality: COMPAT });
  const groups = sriovGroups(c, bdfs);
  const open = (bdf: string, token?: string): Result =>
    c.getDeviceFd(groups.get(bdf)!, token === undefined ? bdf : `${bdf} vf_token=${token}`);
  return { c, open };
}

const { GET, SET, PROBE } = VFIO_DEVICE_FEATURE;
const VF_TOKEN = VFIO_DEVICE_FEATURE_ID.PCI_VF_TOKEN;

describe('GET_DEVICE_FD vf_token rules', () => {
  it('VF of a vfio-pci PF: no token or a wrong one is EACCES, the PF token opens it', () => {
    const { open } = setup(PF, VF0);
    assert.equal(open(VF0).errno, 'EACCES');
    // the PF's token starts random: nobody knows it yet
    assert.equal(open(VF0, TOKEN).errno, 'EACCES');
    // opening the PF with a token while no VF is in use sets the token
    assert.ok(open(PF, TOKEN).ret >= 0);
    assert.equal(open(VF0, OTHER).errno, 'EACCES');
    assert.ok(open(VF0, TOKEN).ret >= 0);
  });

  it('PF with a VF in use: no token or a wrong one is EACCES; the token, or no VF open, is fine', () => {
    const { c, open } = setup(PF, VF0);
    assert.ok(open(PF, TOKEN).ret >= 0);
    const vf = open(VF0, TOKEN).ret;
    assert.ok(vf >= 0);
    assert.equal(open(PF).errno, 'EACCES');
    assert.equal(open(PF, OTHER).errno, 'EACCES');
    assert.ok(open(PF, TOKEN).ret >= 0);
    // the VF's last close ends its use: the PF opens without a token again
    assert.equal(c.proc.close(vf), 0);
    assert.ok(open(PF).ret >= 0);
  });

  it('a token where none is used is EINVAL: VF of a host-driver PF, device neither PF nor VF', () => {
    const { open } = setup(HOST_VF, PLAIN);
    assert.equal(open(HOST_VF, TOKEN).errno, 'EINVAL');
    assert.ok(open(HOST_VF).ret >= 0);
    assert.equal(open(PLAIN, TOKEN).errno, 'EINVAL');
    assert.ok(open(PLAIN).ret >= 0);
  });

  it('the token is judged before the container check, and a malformed one is EINVAL', () => {
    const c = new VfioClient({ host: SRIOV_HOST, personality: COMPAT });
    const g = c.open('/dev/vfio/21').ret;
    assert.equal(c.getDeviceFd(g, VF0).errno, 'EACCES'); // no container yet
    assert.equal(c.getDeviceFd(g, `${VF0} vf_token=${TOKEN.slice(1)}`).errno, 'EINVAL');
    assert.equal(c.getDeviceFd(g, `${VF0} vf_token=${TOKEN.replace('b', 'g')}`).errno, 'EINVAL');
  });
});

describe('BIND_IOMMUFD with FLAG_TOKEN', () => {
  function cdevs() {
    const c = new VfioClient({ host: SRIOV_HOST, personality: COMPAT });
    const iommufd = c.open('/dev/iommu').ret;
    // the UUID in memory of its own (scratch is where the BIND struct goes)
    const token = (text: string) => {
      const va = c.mem(4096n);
      c.proc.mm.write(va, parseUuid(text));
      return va;
    };
    const bind = (bdf: string, uuid?: string) =>
      c.bind(c.open(c.cdevPath(bdf)).ret, iommufd, {
        flags: uuid === undefined ? 0 : 1,
        token: uuid === undefined ? 0n : token(uuid),
      });
    return { c, iommufd, bind, token };
  }

  it('VF of a vfio-pci PF: without the flag or with a wrong UUID EACCES, the PF token binds', () => {
    const { c, iommufd, bind, token } = cdevs();
    assert.equal(bind(VF0).errno, 'EACCES');
    assert.equal(bind(VF0, TOKEN).errno, 'EACCES');
    assert.equal(bind(PF, TOKEN).ret, 0); // no VF open: sets the token
    assert.equal(bind(VF0, OTHER).errno, 'EACCES');
    const vf = c.open(c.cdevPath(VF0)).ret;
    assert.equal(c.bind(vf, iommufd, { flags: 1, token: 0n }).errno, 'EFAULT');
    assert.equal(c.bind(vf, iommufd, { flags: 1, token: token(TOKEN) }).ret, 0);
  });

  it('PF with a VF bound: EACCES without the token (judged before the open-device check)', () => {
    const { bind } = cdevs();
    assert.equal(bind(PF, TOKEN).ret, 0);
    assert.equal(bind(VF1, TOKEN).ret, 0);
    // a second cdev fd of the PF: the token rule answers first...
    assert.equal(bind(PF).errno, 'EACCES');
    assert.equal(bind(PF, OTHER).errno, 'EACCES');
    // ...and with the right token, the PF being open already
    assert.equal(bind(PF, TOKEN).errno, 'EINVAL');
  });

  it('a token where none is used is EINVAL', () => {
    const { bind } = cdevs();
    assert.equal(bind(HOST_VF, TOKEN).errno, 'EINVAL');
    assert.equal(bind(PLAIN, TOKEN).errno, 'EINVAL');
    assert.equal(bind(HOST_VF).ret, 0);
    assert.equal(bind(PLAIN).ret, 0);
  });
});

describe('VFIO_DEVICE_FEATURE(PCI_VF_TOKEN)', () => {
  it('SET on the PF device fd sets the token the VFs need', () => {
    const { c, open } = setup(PF, VF0);
    const pf = open(PF).ret;
    assert.equal(deviceFeature(c, pf, SET | VF_TOKEN, parseUuid(TOKEN)).ret, 0);
    assert.equal(open(VF0, OTHER).errno, 'EACCES');
    assert.ok(open(VF0, TOKEN).ret >= 0);
    // setting it again while a VF is open is allowed too
    assert.equal(deviceFeature(c, pf, SET | VF_TOKEN, parseUuid(OTHER)).ret, 0);
    assert.equal(open(PF, TOKEN).errno, 'EACCES');
    assert.ok(open(PF, OTHER).ret >= 0);
  });

  it('probe and op rules: PROBE(|SET) 0; GET, PROBE|GET, no op, short payload EINVAL', () => {
    const { c, open } = setup(PF);
    const pf = open(PF).ret;
    assert.equal(deviceFeature(c, pf, PROBE | SET | VF_TOKEN).ret, 0);
    assert.equal(deviceFeature(c, pf, PROBE | VF_TOKEN).ret, 0);
    assert.equal(deviceFeature(c, pf, GET | VF_TOKEN, new Uint8Array(16)).errno, 'EINVAL');
    assert.equal(deviceFeature(c, pf, PROBE | GET | VF_TOKEN).errno, 'EINVAL');
    assert.equal(deviceFeature(c, pf, VF_TOKEN, new Uint8Array(16)).errno, 'EINVAL');
    assert.equal(deviceFeature(c, pf, SET | VF_TOKEN, new Uint8Array(15)).errno, 'EINVAL');
  });

  it('core header rules: argsz < 8, unknown flags, GET|SET without PROBE are EINVAL', () => {
    const { c, open } = setup(PF);
    const pf = open(PF).ret;
    assert.equal(deviceFeature(c, pf, SET | VF_TOKEN, parseUuid(TOKEN), 7).errno, 'EINVAL');
    assert.equal(
      deviceFeature(c, pf, (1 << 19) | SET | VF_TOKEN, parseUuid(TOKEN)).errno,
      'EINVAL',
    );
    assert.equal(deviceFeature(c, pf, GET | SET | VF_TOKEN, parseUuid(TOKEN)).errno, 'EINVAL');
    assert.equal(deviceFeature(c, pf, PROBE | GET | SET | VF_TOKEN).errno, 'EINVAL'); // GET unsupported
    assert.equal(c.proc.ioctl(pf, vfioIoctlNumber(c.kernel.abi, 'VFIO_DEVICE_FEATURE'), 8n), -1);
    assert.equal(c.proc.errno, 'EFAULT');
  });

  it('ENOTTY: PCI_VF_TOKEN on a VF or plain device, features no emulated device has', () => {
    const { c, open } = setup(PF, HOST_VF, PLAIN);
    for (const bdf of [HOST_VF, PLAIN]) {
      const dev = open(bdf).ret;
      assert.equal(deviceFeature(c, dev, PROBE | SET | VF_TOKEN).errno, 'ENOTTY');
    }
    const pf = open(PF).ret;
    const { MIGRATION, LOW_POWER_ENTRY, DMA_LOGGING_START } = VFIO_DEVICE_FEATURE_ID;
    for (const id of [MIGRATION, LOW_POWER_ENTRY, DMA_LOGGING_START, 0xffff]) {
      assert.equal(deviceFeature(c, pf, PROBE | GET | id).errno, 'ENOTTY');
    }
  });
});
