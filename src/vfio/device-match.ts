/**
 * vfio-pci's device-name match for VFIO_GROUP_GET_DEVICE_FD: the string
 * starts with the BDF; anything after it must start with a space and may
 * carry one `vf_token=<UUID>` option (spaces between options are skipped).
 * The token itself is judged by validateVfToken() (pci/sriov.ts).
 * Facts: vfio-device.md §2.5.
 *
 * @example
 * matchDeviceName('0000:03:00.0', '0000:03:00.0'); // { token: undefined }
 * matchDeviceName('0000:03:00.0', '0000:03:00.00'); // undefined (no space after the name)
 * matchDeviceName('0000:03:00.0', '0000:03:00.0 vf_token=x'); // throws EINVAL
 */
import { fail } from '../abi/errno.ts';
import { parseUuid, UUID_STRING_LEN } from './pci/sriov.ts';

const VF_TOKEN = 'vf_token=';

/** A name that matched, with the VF token it carried. */
export interface DeviceNameMatch {
  readonly token: Uint8Array | undefined;
}

/**
 * Whether `buf` names the device `name` (undefined: no match). Errors (the
 * search stops there): a malformed, short or duplicate token or an
 * unknown option → EINVAL.
 */
export function matchDeviceName(name: string, buf: string): DeviceNameMatch | undefined {
  if (!buf.startsWith(name)) return undefined;
  let rest = buf.slice(name.length);
  if (rest.length > 0 && rest[0] !== ' ') return undefined;
  let token: Uint8Array | undefined;
  while (rest.length > 0) {
    if (rest[0] === ' ') {
      rest = rest.slice(1);
      continue;
    }
    if (token || !rest.startsWith(VF_TOKEN))
      fail('EINVAL', 'unknown or duplicate option', 'vfio_pci_core_match');
    rest = rest.slice(VF_TOKEN.length);
    if (rest.length < UUID_STRING_LEN) fail('EINVAL', 'short vf_token', 'vfio_pci_core_match');
    token = parseUuid(rest.slice(0, UUID_STRING_LEN));
    rest = rest.slice(UUID_STRING_LEN);
  }
  return { token };
}
