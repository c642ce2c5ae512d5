/**
 * vfio-pci's device-name match for VFIO_GROUP_GET_DEVICE_FD: the string
 * starts with the BDF; anything after it must start with a space and may
 * carry one `vf_token=<UUID>` option (spaces between options are skipped).
 * Facts: vfio-device.md §2.5.
 *
 * @example
 * matchDeviceName('0000:03:00.0', '0000:03:00.0'); // true
 * matchDeviceName('0000:03:00.0', '0000:03:00.00'); // false (no space after the name)
 * matchDeviceName('0000:03:00.0', '0000:03:00.0 vf_token=x'); // throws EINVAL
 */
import { fail } from '../abi/errno.ts';

const VF_TOKEN = 'vf_token=';
/** UUID_STRING_LEN: 8-4-4-4-12 hex digits. */
const UUID_LEN = 36;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/**
 * Whether `buf` names the device `name`. Errors (the search stops there):
 * a malformed, short or duplicate token, an unknown option, or a token for
 * a device that is neither an SR-IOV PF nor a VF (none of ours is) → EINVAL.
 */
export function matchDeviceName(name: string, buf: string): boolean {
  if (!buf.startsWith(name)) return false;
  let rest = buf.slice(name.length);
  if (rest.length === 0) return true;
  if (rest[0] !== ' ') return false;
  let token = false;
  while (rest.length > 0) {
    if (rest[0] === ' ') {
      rest = rest.slice(1);
      continue;
    }
    if (token || !rest.startsWith(VF_TOKEN)) fail('EINVAL', 'unknown or duplicate option');
    rest = rest.slice(VF_TOKEN.length);
    if (rest.length < UUID_LEN || !UUID.test(rest.slice(0, UUID_LEN)))
      fail('EINVAL', 'bad vf_token');
    token = true;
    rest = rest.slice(UUID_LEN);
  }
  // vfio_pci_validate_vf_token(): our devices are neither PFs with VFs nor VFs
  if (token) fail('EINVAL', 'VF token provided for a device that is not a PF or VF');
  return true;
}
