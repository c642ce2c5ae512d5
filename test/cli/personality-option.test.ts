import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePersonalitySetting } from '../../src/cli/personality-option.ts';
import { LINUX_6_18 } from '../../src/host/kernel.ts';

/** A valid non-default text for every setting of LINUX_6_18. */
const SAMPLES: Record<keyof typeof LINUX_6_18, string> = {
  selftest: 'false',
  unmapEmpty: 'success',
  maxAutoAlignment: 'none',
  vfioNoiommu: 'true',
  compatUnmapEmpty: 'ENOENT',
  compatCapsAligned: 'false',
  vfioContainer: 'iommufd',
  vfioPciEnableSriov: 'true',
  vfioPciDmabuf: 'true',
  vfioCdevFlags: 'false',
  vfioBindStructCopy: 'false',
  spaprAttachRules: 'pre-6.4',
  spaprDetachClearsTces: 'false',
  spaprUnregisterMapped: 'EBUSY',
  spaprBadIova: 'EINVAL',
  selftestAbi: '7.2',
  iommufdLastCmd: 'IOMMU_FAULT_QUEUE_ALLOC',
  hwCapAtsNotSupported: 'true',
  requestBounds: 'true',
  hwInfoInputType: 'false',
  hwptAllocPasid: 'false',
  hwptPagingFault: 'false',
  pagesWrapFirst: 'false',
  mockFwspec: 'false',
  type1WrapErrno: 'EOVERFLOW',
  type1Nesting: 'true',
  type1DmaEntryLimit: '8',
};

test('every personality setting can be given on the command line', () => {
  for (const [name, value] of Object.entries(SAMPLES)) {
    const out = parsePersonalitySetting(`${name}=${value}`, {});
    assert.ok(name in out, name);
    assert.notDeepEqual(
      out,
      { [name]: (LINUX_6_18 as unknown as Record<string, unknown>)[name] },
      name,
    );
  }
  assert.deepEqual(Object.keys(SAMPLES).sort(), Object.keys(LINUX_6_18).sort());
});

test('settings accumulate and are typed: booleans, byte counts, words', () => {
  let acc = parsePersonalitySetting('vfioNoiommu=true', {});
  acc = parsePersonalitySetting('maxAutoAlignment=0x1000', acc);
  acc = parsePersonalitySetting('unmapEmpty=success', acc);
  acc = parsePersonalitySetting('type1DmaEntryLimit=3', acc);
  assert.deepEqual(acc, {
    vfioNoiommu: true,
    maxAutoAlignment: 0x1000n,
    unmapEmpty: 'success',
    type1DmaEntryLimit: 3,
  });
  assert.deepEqual(parsePersonalitySetting('maxAutoAlignment=none', {}), {
    maxAutoAlignment: undefined,
  });
});

test('an unknown name, a missing =, or a value outside the setting is refused by name', () => {
  assert.throws(() => parsePersonalitySetting('nosuch=1', {}), /unknown personality setting/);
  assert.throws(() => parsePersonalitySetting('selftest', {}), /unknown personality setting/);
  assert.throws(
    () => parsePersonalitySetting('selftest=yes', {}),
    /selftest: 'yes' is not true or false/,
  );
  assert.throws(
    () => parsePersonalitySetting('vfioContainer=compat', {}),
    /legacy or iommufd or type1/,
  );
  assert.deepEqual(parsePersonalitySetting('vfioContainer=type1', {}), {
    vfioContainer: 'type1',
  });
  assert.throws(() => parsePersonalitySetting('maxAutoAlignment=2M', {}), /byte count or none/);
  assert.throws(() => parsePersonalitySetting('type1DmaEntryLimit=-1', {}), /a u32 count/);
  assert.throws(() => parsePersonalitySetting('type1DmaEntryLimit=4294967296', {}), /a u32 count/);
});
