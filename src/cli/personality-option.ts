/**
 * `--personality NAME=VALUE` of `uiommu run`: one setting of
 * docs/personality.md over the Linux 6.18 defaults. Booleans take
 * true/false, counts a decimal u32, `maxAutoAlignment` a byte count or `none`, the others one of
 * their documented words; anything else is an error naming the setting.
 *
 * @example
 * parsePersonalitySetting('vfioContainer=iommufd', {}); // { vfioContainer: 'iommufd' }
 */
import { InvalidArgumentError } from 'commander';
import { IOMMUFD_CMDS } from '../abi/iommufd.ts';
import { type KernelPersonality, LINUX_6_18 } from '../host/kernel.ts';

/** The words each string-valued setting accepts. */
const CHOICES: Partial<Record<keyof KernelPersonality, readonly string[]>> = {
  unmapEmpty: ['ENOENT', 'success'],
  compatUnmapEmpty: ['success', 'ENOENT'],
  vfioContainer: ['legacy', 'iommufd', 'type1'],
  spaprAttachRules: ['v6.4', 'pre-6.4'],
  spaprUnregisterMapped: ['success', 'EBUSY'],
  spaprBadIova: ['positive', 'EINVAL'],
  selftestAbi: ['6.12', '6.18', '7.2'],
  type1WrapErrno: ['EINVAL', 'EOVERFLOW'],
  iommufdLastCmd: IOMMUFD_CMDS.map((c) => c.name),
};

type Settings = Partial<Record<keyof KernelPersonality, unknown>>;

/** Adds `text` (NAME=VALUE) to `acc`; throws commander's InvalidArgumentError naming the problem. */
export function parsePersonalitySetting(text: string, acc: Settings): Settings {
  const eq = text.indexOf('=');
  const name = text.slice(0, eq) as keyof KernelPersonality;
  const value = text.slice(eq + 1);
  if (eq < 0 || !(name in LINUX_6_18)) {
    throw new InvalidArgumentError(
      `unknown personality setting '${text}' (known: ${Object.keys(LINUX_6_18).join(', ')})`,
    );
  }
  const bad = (want: string) =>
    new InvalidArgumentError(`--personality ${name}: '${value}' is not ${want}`);
  const choices = CHOICES[name];
  let parsed: unknown;
  if (choices) {
    if (!choices.includes(value)) throw bad(choices.join(' or '));
    parsed = value;
  } else if (typeof LINUX_6_18[name] === 'boolean') {
    if (value !== 'true' && value !== 'false') throw bad('true or false');
    parsed = value === 'true';
  } else if (typeof LINUX_6_18[name] === 'number') {
    if (!/^[0-9]{1,10}$/.test(value) || Number(value) > 0xffff_ffff) throw bad('a u32 count');
    parsed = Number(value);
  } else if (name === 'maxAutoAlignment') {
    if (value === 'none') parsed = undefined;
    else if (/^(0x[0-9a-f]+|[0-9]+)$/i.test(value)) parsed = BigInt(value);
    else throw bad('a byte count or none');
  } else {
    throw bad('settable');
  }
  return { ...acc, [name]: parsed };
}
