/**
 * The /dev/iommu ioctl entry (facts sheet §2): number routing, the
 * extensible-struct copy rules, object IDs, DESTROY and close.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IOMMUFD_TYPE, io, ioc } from '../../src/abi/ioctl.ts';
import {
  IommuDestroy,
  type IommufdCmdName,
  IommuHwInfo,
  IommuHwptAlloc,
  IommuIoasAlloc,
  IommuIoasMap,
  iommufdCmd,
  iommufdCmdNumber,
} from '../../src/abi/iommufd.ts';
import { Kernel } from '../../src/host/kernel.ts';
import { client, setup } from '../support.ts';
import {
  encode,
  ioctlAt,
  map,
  memAt,
  PAGE,
  pinCounts,
  RW,
  roBoundary,
  U64_MAX,
  unmapAll,
} from './util.ts';

/** Every command the model implements (the others answer ENOTTY). */
const IMPLEMENTED: IommufdCmdName[] = [
  'IOMMU_DESTROY',
  'IOMMU_IOAS_ALLOC',
  'IOMMU_IOAS_ALLOW_IOVAS',
  'IOMMU_IOAS_COPY',
  'IOMMU_IOAS_IOVA_RANGES',
  'IOMMU_IOAS_MAP',
  'IOMMU_IOAS_UNMAP',
  'IOMMU_OPTION',
  'IOMMU_VFIO_IOAS',
  'IOMMU_HWPT_ALLOC',
  'IOMMU_GET_HW_INFO',
  'IOMMU_HWPT_SET_DIRTY_TRACKING',
  'IOMMU_HWPT_GET_DIRTY_BITMAP',
  'IOMMU_IOAS_MAP_FILE',
];

function raw(f: ReturnType<typeof setup>, request: number, arg: bigint) {
  const ret = f.proc.ioctl(f.fd, request, arg);
  return ret === 0 ? undefined : f.proc.errno;
}

test('nr below 0x80 or past the table is ENOTTY without the argument being read', () => {
  const f = setup({ personality: { selftest: false } });
  for (const nr of [0x00, 0x3f, 0x7f, 0x95, 0x9f, 0xa0, 0xff]) {
    assert.equal(raw(f, io('generic', IOMMUFD_TYPE, nr), 0n), 'ENOTTY', `nr 0x${nr.toString(16)}`);
  }
  assert.equal(raw(f, io('generic', 0x58, 0x10), 0n), 'ENOTTY', 'another type, nr < 0x80');
  assert.equal(f.ctx.objectCount, 0);
});

test('a request word other than _IO(";", nr) is ENOTTY and has no effect', () => {
  const f = setup();
  const ioas = f.ioas();
  const arg = f.mem(PAGE);
  f.proc.mm.write(arg, IommuDestroy.encode({ size: 8, id: ioas }));
  for (const request of [
    ioc('generic', 'write', IOMMUFD_TYPE, 0x80, 8),
    ioc('generic', 'readwrite', IOMMUFD_TYPE, 0x80, 8),
    ioc('generic', 'none', IOMMUFD_TYPE, 0x80, 8),
    ioc('generic', 'read', IOMMUFD_TYPE, 0x80, 0),
    io('generic', 0x3c, 0x80),
    io('powerpc', IOMMUFD_TYPE, 0x80),
  ]) {
    assert.equal(raw(f, request, arg), 'ENOTTY', `request 0x${request.toString(16)}`);
  }
  assert.equal(f.ctx.lookup(ioas)?.type, 'ioas', 'the IOAS survived');
  assert.equal(raw(f, 0x3b80, arg), undefined, 'the exact word destroys it');
  assert.equal(f.ctx.lookup(ioas), undefined);
});

test('powerpc kernel: _IO numbers carry direction NONE = 1 at bit 29', () => {
  assert.equal(iommufdCmdNumber('powerpc', 'IOMMU_DESTROY'), 0x2000_3b80);
  assert.equal(iommufdCmdNumber('powerpc', 'IOMMU_IOAS_MAP'), 0x2000_3b85);
  assert.equal(iommufdCmdNumber('generic', 'IOMMU_IOAS_MAP'), 0x3b85);
  const f = setup({ abi: 'powerpc' });
  const arg = f.mem(PAGE);
  f.proc.mm.write(arg, encode('IOMMU_IOAS_ALLOC', {}));
  assert.equal(raw(f, 0x3b81, arg), 'ENOTTY', 'the generic word');
  assert.equal(f.ctx.objectCount, 0);
  assert.equal(raw(f, 0x2000_3b81, arg), undefined);
  assert.equal(IommuIoasAlloc.decode(f.proc.mm.read(arg, 12)).out_ioas_id, 1);
  assert.equal(f.call('IOMMU_IOAS_UNMAP', { ioas_id: 1, iova: 0n, length: U64_MAX }).ret, 0);
  // and the generic kernel refuses the powerpc word
  const g = setup();
  const garg = g.mem(PAGE);
  g.proc.mm.write(garg, encode('IOMMU_IOAS_ALLOC', {}));
  assert.equal(raw(g, 0x2000_3b81, garg), 'ENOTTY');
  assert.equal(g.ctx.objectCount, 0);
});

test('holes before IOMMU_TEST_CMD (0x95..0x9f) read size first, then ENOTTY', () => {
  const kernel = new Kernel({
    selftestCmd: {
      cmd: { name: 'IOMMU_TEST_CMD', nr: 0xa0, layout: IommuDestroy, minSize: 8 },
      handler: () => 0,
    },
  });
  const f = client(kernel, kernel.spawn());
  const arg = f.mem(PAGE);
  f.proc.mm.write(arg, IommuDestroy.encode({ size: 8 }));
  for (const nr of [0x95, 0x9a, 0x9f]) {
    const request = io('generic', IOMMUFD_TYPE, nr);
    assert.equal(raw(f, request, 0n), 'EFAULT', `nr 0x${nr.toString(16)} reads size`);
    assert.equal(raw(f, request, arg), 'ENOTTY', `nr 0x${nr.toString(16)} is a hole`);
  }
  assert.equal(raw(f, io('generic', IOMMUFD_TYPE, 0xa0), arg), undefined, 'the extra command');
  assert.equal(raw(f, io('generic', IOMMUFD_TYPE, 0xa1), 0n), 'ENOTTY', 'past it: no read');
});

test('a NULL or wild argument is EFAULT, before a mismatched request word is ENOTTY', () => {
  const f = setup();
  assert.equal(raw(f, 0x3b80, 0n), 'EFAULT');
  assert.equal(raw(f, 0x3b81, 0xdead_0000n), 'EFAULT');
  assert.equal(raw(f, ioc('generic', 'readwrite', IOMMUFD_TYPE, 0x80, 8), 0n), 'EFAULT');
  assert.equal(raw(f, io('powerpc', IOMMUFD_TYPE, 0x85), 0n), 'EFAULT');
  // size readable, the rest of the struct is not
  const end = memAt(f, 0x10_0000n, PAGE) + PAGE;
  f.proc.mm.write(end - 4n, Uint8Array.of(40, 0, 0, 0));
  assert.equal(ioctlAt(f, 'IOMMU_IOAS_MAP', end - 4n), 'EFAULT');
  assert.equal(ioctlAt(f, 'IOMMU_IOAS_ALLOC', end - 4n), 'EFAULT');
  assert.equal(f.ctx.objectCount, 0);
});

test('size below the command minimum is EINVAL for every command', () => {
  const f = setup();
  const arg = f.mem(PAGE);
  for (const name of IMPLEMENTED) {
    const min = iommufdCmd(name).minSize;
    for (const size of [0, 4, min - 1]) {
      f.proc.mm.write(arg, encode(name, { size }));
      assert.equal(ioctlAt(f, name, arg), 'EINVAL', `${name} size ${size}`);
    }
  }
  assert.equal(f.ctx.objectCount, 0, 'nothing was created');
  // the minimum itself reaches the handler
  assert.equal(iommufdCmd('IOMMU_HWPT_ALLOC').minSize, 24);
  assert.equal(iommufdCmd('IOMMU_GET_HW_INFO').minSize, 32);
  assert.equal(f.call('IOMMU_HWPT_ALLOC', { size: 24, dev_id: 7 }).errno, 'ENOENT');
  assert.equal(f.call('IOMMU_GET_HW_INFO', { size: 32, dev_id: 7 }).errno, 'ENOENT');
  assert.equal(f.call('IOMMU_IOAS_ALLOC', { size: 12 }).errno, undefined);
});

test('bytes past sizeof must be zero: E2BIG otherwise, before any handler check', () => {
  const f = setup();
  const arg = f.mem(2n * PAGE);
  for (const [size, at] of [
    [13, 12],
    [16, 15],
    [4096, 4095],
  ] as const) {
    f.proc.mm.write(arg, new Uint8Array(Number(2n * PAGE)));
    f.proc.mm.write(arg, encode('IOMMU_IOAS_ALLOC', { size, flags: 1 }));
    f.proc.mm.write(arg + BigInt(at), Uint8Array.of(0x80));
    assert.equal(ioctlAt(f, 'IOMMU_IOAS_ALLOC', arg), 'E2BIG', `size ${size}`);
  }
  assert.equal(f.ctx.objectCount, 0);
  // a tail that runs into unmapped memory faults while it is checked
  const end = memAt(f, 0x10_0000n, PAGE) + PAGE;
  f.proc.mm.write(end - 12n, encode('IOMMU_IOAS_ALLOC', { size: 64 }));
  assert.equal(ioctlAt(f, 'IOMMU_IOAS_ALLOC', end - 12n), 'EFAULT');
  assert.equal(f.ctx.objectCount, 0);
});

test('a zero tail gives exactly the result of sizeof', () => {
  const run = (extra: number) => {
    const f = setup();
    const ioas = f.ioas();
    const va = memAt(f, 0x4000_0000n, 0x4000n);
    const arg = f.mem(PAGE);
    const results: unknown[] = [];
    for (const [ioasId, flags] of [
      [ioas, RW],
      [ioas, 0],
      [99, RW],
      [ioas, RW | 0x100],
    ] as const) {
      f.proc.mm.write(arg, new Uint8Array(Number(PAGE)));
      f.proc.mm.write(
        arg,
        encode('IOMMU_IOAS_MAP', {
          size: 40 + extra,
          flags,
          ioas_id: ioasId,
          user_va: va,
          length: 0x4000n,
        }),
      );
      const errno = ioctlAt(f, 'IOMMU_IOAS_MAP', arg);
      const out = IommuIoasMap.decode(f.proc.mm.read(arg, 40));
      results.push({ errno, iova: out.iova, flags: out.flags, length: out.length });
      assert.deepEqual(f.proc.mm.read(arg + 40n, extra), new Uint8Array(extra), 'tail untouched');
    }
    return results;
  };
  const base = run(0);
  assert.deepEqual(run(8), base);
  assert.deepEqual(run(200), base);
  assert.deepEqual(
    (base as { errno: unknown }[]).map((r) => r.errno),
    [undefined, 'EINVAL', 'ENOENT', 'EOPNOTSUPP'],
  );
});

test('copy-back writes min(size, sizeof): the tail of a larger struct is not written', () => {
  const f = setup();
  // IOAS_ALLOC: 12 bytes of struct then 8 zero bytes on a read-only page
  const at = roBoundary(f);
  f.proc.mm.write(at - 12n, encode('IOMMU_IOAS_ALLOC', { size: 20 }));
  assert.equal(ioctlAt(f, 'IOMMU_IOAS_ALLOC', at - 12n), undefined);
  assert.equal(IommuIoasAlloc.decode(f.proc.mm.read(at - 12n, 12)).out_ioas_id, 1);
  // MAP: 40 bytes then 24 on the read-only page
  const va = memAt(f, 0x4000_0000n, PAGE);
  const at2 = roBoundary(f);
  f.proc.mm.write(
    at2 - 40n,
    encode('IOMMU_IOAS_MAP', { size: 64, flags: RW, ioas_id: 1, user_va: va, length: PAGE }),
  );
  assert.equal(ioctlAt(f, 'IOMMU_IOAS_MAP', at2 - 40n), undefined);
  assert.equal(IommuIoasMap.decode(f.proc.mm.read(at2 - 40n, 40)).iova, 0x1000n);
});

test('a shorter struct reads as zero-extended and only its own bytes are written back', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice();
  // HWPT_ALLOC of the 6.6 form (24 bytes) followed by garbage that must be ignored
  const arg = f.mem(PAGE);
  const garbage = IommuHwptAlloc.encode({ data_type: 1, data_len: 24, data_uptr: 1n, fault_id: 9 });
  f.proc.mm.write(arg, garbage);
  f.proc.mm.write(
    arg,
    encode('IOMMU_HWPT_ALLOC', { size: 24, dev_id: idev.id, pt_id: ioas }).subarray(0, 24),
  );
  assert.equal(ioctlAt(f, 'IOMMU_HWPT_ALLOC', arg), undefined);
  const out = f.proc.mm.read(arg, 48);
  const hwptId = IommuHwptAlloc.decode(out).out_hwpt_id;
  assert.equal(f.ctx.lookup(hwptId)?.type, 'hwpt_paging');
  assert.deepEqual(out.subarray(24), garbage.subarray(24), 'bytes 24..47 untouched');
  // GET_HW_INFO with size 32: out_capabilities (32..39) is not written
  const arg2 = f.mem(PAGE);
  f.proc.mm.write(arg2, new Uint8Array(40).fill(0xee));
  f.proc.mm.write(arg2, encode('IOMMU_GET_HW_INFO', { size: 32, dev_id: idev.id }).subarray(0, 32));
  assert.equal(ioctlAt(f, 'IOMMU_GET_HW_INFO', arg2), undefined);
  const info = IommuHwInfo.decode(f.proc.mm.read(arg2, 40));
  assert.equal(info.out_data_type, 1, 'INTEL_VTD');
  assert.equal(info.data_len, 24);
  assert.equal(info.out_capabilities, 0xeeee_eeee_eeee_eeeen, 'untouched');
});

test('a copy-back fault is EFAULT: IOAS_ALLOC frees its ID, MAP keeps its mapping', () => {
  const f = setup();
  // out_ioas_id (offset 8) lies on the read-only page
  const at = roBoundary(f);
  f.proc.mm.write(at - 8n, encode('IOMMU_IOAS_ALLOC', {}).subarray(0, 8));
  assert.equal(ioctlAt(f, 'IOMMU_IOAS_ALLOC', at - 8n), 'EFAULT');
  assert.equal(f.ctx.objectCount, 0);
  assert.equal(f.ioas(), 1, 'the ID was released');
  // MAP's iova (offset 32) lies on the read-only page: the map is done anyway
  const va = memAt(f, 0x4000_0000n, PAGE);
  const at2 = roBoundary(f);
  f.proc.mm.write(
    at2 - 32n,
    encode('IOMMU_IOAS_MAP', { flags: RW, ioas_id: 1, user_va: va, length: PAGE }).subarray(0, 32),
  );
  assert.equal(ioctlAt(f, 'IOMMU_IOAS_MAP', at2 - 32n), 'EFAULT');
  assert.equal(unmapAll(f, 1), PAGE, 'the area exists');
});

test('object IDs start at 1, are shared by every type, and the lowest free one is reused', () => {
  const f = setup();
  assert.equal(f.ioas(), 1);
  const idev = f.intelDevice();
  assert.equal(idev.id, 2);
  assert.equal(f.ioas(), 3);
  const hwpt = f.call('IOMMU_HWPT_ALLOC', { dev_id: 2, pt_id: 3 });
  assert.equal(hwpt.out.out_hwpt_id, 4);
  assert.equal(f.call('IOMMU_DESTROY', { id: 1 }).ret, 0);
  assert.equal(f.ioas(), 1, 'lowest free');
  assert.equal(f.call('IOMMU_DESTROY', { id: 4 }).ret, 0);
  assert.equal(f.call('IOMMU_DESTROY', { id: 1 }).ret, 0);
  assert.equal(f.ioas(), 1);
  assert.equal(f.ioas(), 4);
  assert.equal(f.ioas(), 5);
  assert.deepEqual(
    f.ctx.list().map((o) => [o.id, o.type]),
    [
      [1, 'ioas'],
      [2, 'device'],
      [3, 'ioas'],
      [4, 'ioas'],
      [5, 'ioas'],
    ],
  );
});

test('a failed create frees the ID it reserved', () => {
  const f = setup();
  const ioas = f.ioas();
  const idev = f.intelDevice({ addressWidth: 39 });
  map(f, ioas, memAt(f, 0x4000_0000n, PAGE), PAGE, { iova: 1n << 40n });
  // the manual HWPT (would be 3) cannot take the area above 2^39
  assert.equal(f.call('IOMMU_HWPT_ALLOC', { dev_id: idev.id, pt_id: ioas }).errno, 'EADDRINUSE');
  assert.equal(f.ctx.lookup(3), undefined);
  assert.equal(f.call('IOMMU_DESTROY', { id: 3 }).errno, 'ENOENT');
  // the automatic HWPT of a failing attach also releases its ID
  assert.throws(() => idev.attach(ioas), { code: 'EADDRINUSE' });
  assert.equal(idev.hwpt, undefined);
  assert.equal(f.ioas(), 3);
  assert.equal(f.ctx.objectCount, 3);
});

test('DESTROY: ENOENT for absent IDs, EBUSY while something holds the object', () => {
  const f = setup();
  assert.equal(f.call('IOMMU_DESTROY', { id: 0 }).errno, 'ENOENT');
  assert.equal(f.call('IOMMU_DESTROY', { id: 1 }).errno, 'ENOENT');
  assert.equal(f.call('IOMMU_DESTROY', { id: 0x7fff_ffff }).errno, 'ENOENT');
  assert.equal(f.call('IOMMU_DESTROY', { id: 0xffff_ffff }).errno, 'ENOENT');
  const ioas = f.ioas();
  const idev = f.intelDevice();
  const auto = idev.attach(ioas);
  assert.equal(f.call('IOMMU_DESTROY', { id: ioas }).errno, 'EBUSY', 'IOAS held by its HWPT');
  assert.equal(f.call('IOMMU_DESTROY', { id: auto.id }).errno, 'EBUSY', 'HWPT with a device');
  assert.equal(f.call('IOMMU_DESTROY', { id: idev.id }).errno, 'EBUSY', 'DEVICE held by VFIO');
  const manual = f.call('IOMMU_HWPT_ALLOC', { dev_id: idev.id, pt_id: ioas }).out
    .out_hwpt_id as number;
  idev.attach(manual);
  assert.equal(f.ctx.lookup(auto.id), undefined, 'the auto HWPT died with its last device');
  assert.equal(f.call('IOMMU_DESTROY', { id: manual }).errno, 'EBUSY');
  idev.detach();
  assert.equal(f.call('IOMMU_DESTROY', { id: ioas }).errno, 'EBUSY', 'manual HWPT holds it');
  assert.equal(f.call('IOMMU_DESTROY', { id: manual }).ret, 0);
  assert.equal(f.call('IOMMU_DESTROY', { id: manual }).errno, 'ENOENT', 'twice');
  assert.equal(f.call('IOMMU_DESTROY', { id: ioas }).ret, 0);
  assert.equal(f.call('IOMMU_DESTROY', { id: idev.id }).errno, 'EBUSY');
  assert.deepEqual(
    f.ctx.list().map((o) => o.type),
    ['device'],
  );
});

test('closing the fd destroys every object and unpins every page', () => {
  const f = setup();
  const ioas = f.ioas();
  const ioas2 = f.ioas();
  const va = memAt(f, 0x4000_0000n, 4n * PAGE);
  const iova = map(f, ioas, va, 4n * PAGE);
  const idev = f.intelDevice();
  assert.equal(f.call('IOMMU_HWPT_ALLOC', { dev_id: idev.id, pt_id: ioas }).ret, 0);
  assert.equal(f.call('IOMMU_HWPT_ALLOC', { dev_id: idev.id, pt_id: ioas2 }).ret, 0);
  assert.equal(
    f.call('IOMMU_IOAS_COPY', {
      flags: RW,
      dst_ioas_id: ioas2,
      src_ioas_id: ioas,
      length: 4n * PAGE,
      src_iova: iova,
    }).ret,
    0,
  );
  assert.deepEqual(pinCounts(f, va, 4), [1, 1, 1, 1]);
  assert.equal(f.kernel.memory.pinnedPages(), 4n);
  idev.unbind();
  assert.equal(f.ctx.objectCount, 4, 'two IOASes, two manual HWPTs');
  assert.equal(f.proc.close(f.fd), 0);
  assert.equal(f.ctx.objectCount, 0);
  assert.deepEqual(pinCounts(f, va, 4), [0, 0, 0, 0]);
  assert.equal(f.kernel.memory.pinnedPages(), 0n);
  assert.equal(f.proc.ioctl(f.fd, 0x3b80, 0n), -1);
  assert.equal(f.proc.errno, 'EBADF');
});

test('a bound device keeps the context alive after close until it unbinds', () => {
  const f = setup();
  const ioas = f.ioas();
  const va = memAt(f, 0x4000_0000n, 2n * PAGE);
  const iova = map(f, ioas, va, 2n * PAGE);
  const idev = f.intelDevice();
  idev.attach(ioas);
  f.proc.mm.write(va, Uint8Array.of(1, 2, 3));
  assert.equal(f.proc.close(f.fd), 0);
  assert.deepEqual(idev.dev.dmaRead(iova, 3), Uint8Array.of(1, 2, 3), 'DMA still works');
  assert.equal(f.kernel.memory.pinnedPages(), 2n);
  idev.unbind();
  assert.equal(f.ctx.objectCount, 0);
  assert.equal(f.kernel.memory.pinnedPages(), 0n);
  assert.deepEqual(pinCounts(f, va, 2), [0, 0]);
  assert.equal(f.kernel.bugs.length, 0);
});
