/**
 * vfio-pci's SR-IOV VF token (vfio_pci_core.c): a UUID shared by a PF bound
 * to vfio-pci and the users of its VFs, so neither side can be swapped for
 * a rogue driver unknown to the other. Every PF gets a random token when
 * vfio-pci takes it; `users` counts its VFs currently open.
 *
 * Rules (vfio_pci_validate_vf_token), for the token given with
 * GET_DEVICE_FD (` vf_token=<uuid>`) or BIND_IOMMUFD (FLAG_TOKEN):
 * - VF whose PF is vfio-pci's: token missing or not the PF's → EACCES.
 * - VF whose PF has a host driver: a token → EINVAL.
 * - PF with VFs open: token missing or wrong → EACCES; PF without open
 *   VFs: a token sets it.
 * - any other device: a token → EINVAL.
 *
 * VFIO_DEVICE_FEATURE(PCI_VF_TOKEN) sets a PF's token: SET only (no GET,
 * which would leak the previous user's token), a 16-byte UUID; ENOTTY on
 * anything but a PF.
 *
 * @example
 * linkSriov(devices); // each VF finds its vfio-pci PF
 * validateVfToken(vf, parseUuid('bd8d9d2b-5a5f-4f5a-a211-f591514ba1f3')); // EACCES unless the PF's
 */
import { fail } from '../../abi/errno.ts';
import type { Caller } from '../../kernel/file.ts';
import { checkFeature } from '../device-feature.ts';
import { VFIO_DEVICE_FEATURE } from './abi.ts';
import type { VfioPciDevice } from './device.ts';

/** Module parameters of vfio_pci that are host settings of the emulated kernel. */
export interface VfioPciPersonality {
  /**
   * vfio_pci.enable_sriov (default N): vfio-pci configures VFs when user
   * space writes a PF's `sriov_numvfs`; off, such writes are ENOENT.
   */
  readonly vfioPciEnableSriov: boolean;
  /**
   * CONFIG_VFIO_PCI_DMABUF (v6.19; needs PCI_P2PDMA): VFIO_DEVICE_FEATURE_DMA_BUF
   * exports BAR ranges as dma-bufs; off, the feature is ENOTTY.
   */
  readonly vfioPciDmabuf: boolean;
}

/** UUID_STRING_LEN: 8-4-4-4-12 hex digits. */
export const UUID_STRING_LEN = 36;
const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** uuid_parse(): the 16 bytes of a UUID string in text order; EINVAL when malformed. */
export function parseUuid(text: string): Uint8Array<ArrayBuffer> {
  if (!UUID_RE.test(text)) fail('EINVAL', `bad UUID '${text}'`, 'uuid_parse');
  return Uint8Array.from(text.replaceAll('-', '').match(/../g)!, (h) => Number.parseInt(h, 16));
}

/** struct vfio_pci_vf_token of a PF. */
export class VfToken {
  private value: Uint8Array | undefined;
  /**
   * Random at probe (uuid_gen); set by a PF open with a token or by FEATURE(PCI_VF_TOKEN).
   * The random one is drawn when first read, from Web Crypto's global: loading
   * node:crypto for every PF at start cost `uiommu run` ~5 ms.
   */
  get uuid(): Uint8Array {
    this.value ??= crypto.getRandomValues(new Uint8Array(16));
    return this.value;
  }
  set uuid(uuid: Uint8Array) {
    this.value = uuid;
  }
  /** VFs of the PF currently open (first open to last close). */
  users = 0;

  matches(uuid: Uint8Array): boolean {
    return uuid.length === 16 && uuid.every((b, i) => b === this.uuid[i]);
  }
}

/** vfio_pci_vf_init() for every VF: its PF among `devices`, if vfio-pci has it (sriov_pf_core_dev). */
export function linkSriov(devices: Iterable<VfioPciDevice>): void {
  const byBdf = new Map<string, VfioPciDevice>();
  for (const d of devices) byBdf.set(d.spec.bdf, d);
  for (const d of byBdf.values()) {
    if (d.spec.physfn === undefined) continue;
    const pf = byBdf.get(d.spec.physfn);
    if (pf?.vfToken) d.sriovPf = pf;
  }
}

/** vfio_pci_validate_vf_token(): `uuid` is the token the user gave, if any. */
export function validateVfToken(dev: VfioPciDevice, uuid: Uint8Array | undefined): void {
  if (dev.spec.physfn !== undefined) {
    const pf = dev.sriovPf;
    if (!pf) {
      if (uuid)
        fail(
          'EINVAL',
          'VF token given, the PF is not bound to vfio-pci',
          'vfio_pci_core_match_token_uuid',
        );
      return;
    }
    if (!uuid)
      fail('EACCES', 'VF token required to access the device', 'vfio_pci_core_match_token_uuid');
    if (!pf.vfToken!.matches(uuid))
      fail('EACCES', 'incorrect VF token for the device', 'vfio_pci_core_match_token_uuid');
    return;
  }
  const token = dev.vfToken;
  if (token) {
    if (token.users > 0) {
      if (!uuid)
        fail('EACCES', 'VF token required to access the device', 'vfio_pci_core_match_token_uuid');
      if (!token.matches(uuid))
        fail('EACCES', 'incorrect VF token for the device', 'vfio_pci_core_match_token_uuid');
    } else if (uuid) {
      token.uuid = Uint8Array.from(uuid);
    }
    return;
  }
  if (uuid)
    fail(
      'EINVAL',
      'VF token given for a device that is neither PF nor VF',
      'vfio_pci_core_match_token_uuid',
    );
}

/** vfio_pci_core_feature_token(): VFIO_DEVICE_FEATURE(PCI_VF_TOKEN) with the payload at `data`. */
export function vfTokenFeature(
  dev: VfioPciDevice,
  caller: Caller,
  flags: number,
  data: bigint,
  size: number,
): number {
  const token = dev.vfToken;
  if (!token) fail('ENOTTY', 'not an SR-IOV PF', 'vfio_pci_core_feature_token');
  if (!checkFeature(flags, size, VFIO_DEVICE_FEATURE.SET, 16)) return 0;
  token.uuid = Uint8Array.from(caller.mm.read(data, 16));
  return 0;
}
