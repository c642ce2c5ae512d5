/**
 * Seeded ioctl fuzzing of /dev/iommu: 100,000 random ioctls (mostly iommufd
 * request numbers, some malformed or random) with structs of random size
 * (below the minimum, exact, larger with zero or non-zero tails, huge) and
 * field values biased toward interesting ones (0, 1, live object ids,
 * U64_MAX, addresses inside real mappings, read-only and unmapped memory,
 * wild pointers, NULL), placed in writable, read-only, unmapped memory or
 * across a mapping's end. Devices attach and detach in between.
 *
 * Every call must return ≥ 0, or -1 with an errno; nothing else may cross
 * the boundary (`kernel.bugs` stays empty). checkInvariants() runs every
 * CHECK_EVERY calls and at the end; after close and unbind nothing stays
 * pinned.
 *
 * UIOMMU_FUZZ_SEED overrides the seed, UIOMMU_FUZZ_CALLS the number of
 * calls; a failure names the seed and the call that broke.
 *
 * @slow: fuzzing, 100,000 ioctls (left out of npm run test:quick)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Errno } from '../../src/abi/errno.ts';
import { IOMMUFD_CMDS, type IommufdCmd, IommuIovaRange } from '../../src/abi/iommufd.ts';
import {
  IOMMU_TEST_CMD_MIN_SIZE,
  IOMMU_TEST_OP,
  IommuTestCmd,
  iommuTestCmdLayout,
} from '../../src/abi/iommufd-test.ts';
import type { Field } from '../../src/abi/layout.ts';
import { IntelIommu, intelReservedRegions } from '../../src/drivers/intel/driver.ts';
import type { Area } from '../../src/iommufd/io-pagetable.ts';
import { Ioas } from '../../src/iommufd/ioas.ts';
import { setup } from '../support.ts';
import { checkInvariants } from './invariants.ts';
import { encode, ioctlAt, memAt, PAGE, U64_MAX } from './util.ts';

const SEED = Number(process.env.UIOMMU_FUZZ_SEED ?? 0x1f0b_5eed) >>> 0;
const CALLS = Number(process.env.UIOMMU_FUZZ_CALLS ?? 100_000);
const CHECK_EVERY = 1000;
/** Above this many objects, IOASes nobody uses are destroyed to keep the table small. */
const MAX_OBJECTS = 48;

/** IOMMU_TEST_CMD ops, and those whose `id` is an access fd. */
const TEST_OPS = Object.values(IOMMU_TEST_OP);
const ACCESS_OPS = new Set<number>([
  IOMMU_TEST_OP.ACCESS_PAGES,
  IOMMU_TEST_OP.ACCESS_RW,
  IOMMU_TEST_OP.DESTROY_ACCESS_PAGES,
  IOMMU_TEST_OP.ACCESS_REPLACE_IOAS,
]);

/** Data the maps point at: read/write, read-only, never mapped. */
const DATA_VA = 0x4000_0000n;
const DATA_LEN = 0x10_0000n;
const RO_VA = 0x5000_0000n;
const RO_LEN = 0x1_0000n;
const HOLE_VA = 0x6000_0000n;
/** Where argument structs live: read/write, an unmapped page after it, a read-only page. */
const ARG_VA = 0x7000_0000n;
const ARG_LEN = 0x1_0000n;
const ARG_RO = 0x7100_0000n;

/** xorshift128+ reduced to 32-bit outputs; seeded by splitmix32. */
class Rng {
  private s = new Uint32Array(4);
  constructor(seed: number) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0 || 1;
    }
  }
  /** A uniform u32 (xoshiro128**). */
  u32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return r;
  }
  /** 0 ≤ n < max */
  int(max: number): number {
    return Math.floor((this.u32() / 0x1_0000_0000) * max);
  }
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!;
  }
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

const hex = (x: bigint | number) => `0x${x.toString(16)}`;

test(`fuzz: ${CALLS} random ioctls on /dev/iommu (seed ${hex(SEED)})`, () => {
  const t0 = performance.now();
  const rng = new Rng(SEED);
  const f = setup();
  const { proc, kernel, ctx } = f;
  const mm = proc.mm;
  memAt(f, DATA_VA, DATA_LEN);
  memAt(f, RO_VA, RO_LEN);
  mm.write(RO_VA, rng.bytes(256));
  mm.mprotect(RO_VA, RO_LEN, { read: true, write: false });
  memAt(f, ARG_VA, ARG_LEN);
  memAt(f, ARG_RO, PAGE);
  const memfd = proc.memfd(0x10_0000n);
  assert.ok(memfd >= 0);
  for (let i = 0; i < 2; i++) f.ioas();
  const unit = new IntelIommu();
  const idevs = [
    f.intelDevice({ iommu: unit }),
    f.intelDevice({ iommu: unit, reserved: intelReservedRegions() }),
    f.intelDevice({ addressWidth: 39, pgsizeBitmap: PAGE }),
  ];
  const where = (i: number) => `seed ${hex(SEED)} (UIOMMU_FUZZ_SEED), call ${i}`;

  const areas = () =>
    ctx
      .list()
      .filter((o): o is Ioas => o instanceof Ioas)
      .flatMap((o) => [...o.iopt.areas]);

  /** A user pointer: mostly inside real mappings, sometimes anywhere. */
  const pointer = (): bigint => {
    switch (rng.int(12)) {
      case 0:
        return 0n;
      case 1:
        return HOLE_VA + BigInt(rng.int(16)) * PAGE;
      case 2:
        return RO_VA + BigInt(rng.int(16)) * PAGE;
      case 3:
        return rng.pick([U64_MAX, U64_MAX - 0xfffn, 1n << 63n, 0xffff_8000_0000_0000n, rng.u64()]);
      case 4:
        return DATA_VA + BigInt(rng.int(Number(DATA_LEN)));
      case 5:
        return ARG_VA + BigInt(rng.int(Number(ARG_LEN / 16n))) * 16n;
      default:
        return DATA_VA + BigInt(rng.int(Number(DATA_LEN / PAGE))) * PAGE;
    }
  };
  /** The IOAS the last id field named, and the area the last IOVA came from. */
  let ioasOfCall: Ioas | undefined;
  let areaOfCall: Area | undefined;
  const length = (): bigint => {
    switch (rng.int(10)) {
      case 0:
        return rng.pick([0n, 1n, 0x800n, U64_MAX, U64_MAX - 1n, 1n << 63n]);
      case 1:
        return rng.u64();
      case 2:
      case 3:
      case 4: {
        const a = areaOfCall ?? rng.pick(areas());
        return a ? a.last - (areaOfCall?.start ?? a.start) + 1n : PAGE;
      }
      default:
        return BigInt(1 + rng.int(32)) * PAGE;
    }
  };
  const iova = (): bigint => {
    areaOfCall = undefined;
    switch (rng.int(8)) {
      case 0:
        return rng.pick([0n, U64_MAX, U64_MAX - 0xfffn, 1n << 39n, 1n << 48n, 0xfee0_0000n]);
      case 1:
        return rng.u64();
      case 2:
      case 3:
      case 4: {
        const a = rng.pick(ioasOfCall ? [...ioasOfCall.iopt.areas] : areas());
        if (!a) return 0n;
        if (rng.chance(0.8)) areaOfCall = a;
        return a.start + (rng.chance(0.8) ? 0n : BigInt(rng.int(4)) * PAGE);
      }
      default:
        return BigInt(rng.int(512)) * PAGE;
    }
  };
  /** An object id: mostly a live one of the type the field names. */
  const id = (name = ''): number => {
    const r = rng.int(10);
    if (r < 6) {
      const type = /ioas|object/.test(name)
        ? ['ioas']
        : /hwpt/.test(name)
          ? ['hwpt_paging']
          : /dev/.test(name)
            ? ['device']
            : /pt_id/.test(name)
              ? ['ioas', 'hwpt_paging']
              : undefined;
      let live = ctx.list().filter((o) => !type || type.includes(o.type));
      if (rng.chance(0.5)) {
        const busy = live.filter((o) => o instanceof Ioas && o.iopt.areas.size > 0);
        if (busy.length > 0) live = busy;
      }
      const obj = rng.pick(live);
      if (obj instanceof Ioas) ioasOfCall = obj;
      return obj?.id ?? 1;
    }
    if (r < 7) return 0;
    if (r < 9) return 1 + rng.int(64);
    return rng.u32();
  };

  /** A value for one field, by what its name says it holds. */
  const value = (fl: Field): number | bigint => {
    const n = fl.name;
    if (fl.dir === 'reserved') return rng.chance(0.97) ? 0 : 1 + rng.int(255);
    if (fl.type === 'u8') return rng.chance(0.5) ? 0 : rng.int(256);
    if (fl.type === 'u16') return rng.chance(0.9) ? rng.int(3) : rng.int(0x10000);
    if (fl.type === 'u64') {
      if (/uptr|user_va|allowed_iovas|^data$/.test(n)) return pointer();
      if (/iova/.test(n)) return iova();
      if (/length/.test(n)) return length();
      if (n === 'start') return rng.chance(0.7) ? BigInt(rng.int(256)) * PAGE : rng.u64();
      if (n === 'page_size') return rng.pick([0n, 1n, PAGE, PAGE, 0x20_0000n, rng.u64()]);
      if (n === 'val64') return rng.pick([0n, 1n, 2n, rng.u64()]);
      return rng.pick([0n, 1n, U64_MAX, rng.u64(), pointer()]);
    }
    if (n === 'option_id') return rng.pick([0, 1, 1, 1, 2]);
    if (/(^|_)id$/.test(n)) return id(n);
    if (n === 'fd') return rng.chance(0.7) ? memfd : rng.pick([-1, 0, 3, 99, rng.u32() | 0]);
    if (n === 'flags') return rng.chance(0.2) ? 0 : rng.chance(0.9) ? rng.int(8) : rng.u32();
    if (n === 'data_type') return rng.chance(0.8) ? 0 : rng.int(4);
    if (n === 'data_len') return rng.chance(0.5) ? 0 : rng.chance(0.8) ? rng.int(64) : rng.u32();
    if (n === 'num_iovas') return rng.chance(0.9) ? rng.int(5) : rng.u32();
    if (/len|num/.test(n)) return rng.chance(0.8) ? rng.int(64) : rng.u32();
    return rng.pick([0, 1, 2, 0xffff_ffff, rng.u32()]);
  };

  /** Write a few iommu_iova_range entries where an array pointer may point. */
  const sprinkleRanges = (at: bigint) => {
    if (at < DATA_VA || at + 64n > DATA_VA + DATA_LEN) return;
    for (let k = 0; k < 4; k++) {
      const start = rng.chance(0.5) ? BigInt(rng.int(1024)) * PAGE : rng.u64();
      const last = start + BigInt(rng.int(64)) * PAGE + PAGE - 1n;
      mm.write(
        at + BigInt(16 * k),
        IommuIovaRange.encode({ start, last: BigInt.asUintN(64, last) }),
      );
    }
  };

  /** The commands /dev/iommu implements (the others answer ENOTTY). */
  const implemented = [...Array(0xd).keys()].map((k) => 0x3b80 + k).concat(0x3b8f);
  const request = (): number => {
    const r = rng.int(40);
    if (r < 28) return rng.pick(implemented);
    if (r < 32) return 0x3b80 + rng.int(0x15);
    if (r < 34) return 0x3ba0;
    if (r < 36)
      return (0x3b80 + rng.int(0x15) + rng.pick([0x4000_0000, 0xc000_0000, 0x28 << 16])) >>> 0;
    if (r < 38) return 0x3b00 + rng.int(0x100);
    return rng.u32();
  };

  let ok = 0;
  const errnos = new Map<string, number>();
  for (let i = 0; i < CALLS; i++) {
    // devices come and go
    if (rng.int(200) === 0) {
      const idev = rng.pick(idevs);
      try {
        if (idev.hwpt && rng.chance(0.5)) idev.detach();
        else idev.attach(id());
      } catch (e) {
        if (!(e instanceof Errno)) throw new Error(`${where(i)}: attach threw ${e}`, { cause: e });
      }
    }
    // keep the object table small
    if (ctx.objectCount > MAX_OBJECTS) {
      for (const o of ctx.list()) if (o instanceof Ioas && o.users === 0) ctx.destroy(o.id);
    }

    const req = request();
    const nr = req & 0xff;
    let cmd: IommufdCmd;
    let testOp: number | undefined;
    if (nr === 0xa0) {
      // IOMMU_TEST_CMD: a known op with its union member's layout, sometimes any op
      testOp = rng.chance(0.95) ? rng.pick(TEST_OPS) : rng.u32();
      const tl = iommuTestCmdLayout(testOp) ?? IommuTestCmd;
      cmd = { name: 'IOMMU_TEST_CMD', nr, layout: tl, minSize: IOMMU_TEST_CMD_MIN_SIZE };
    } else {
      cmd = IOMMUFD_CMDS[nr - 0x80] ?? IOMMUFD_CMDS[rng.int(IOMMUFD_CMDS.length)]!;
    }
    const layout = cmd.layout;
    const fields: Record<string, number | bigint> = {};
    ioasOfCall = undefined;
    areaOfCall = undefined;
    for (const fl of layout.fields) if (fl.name !== 'size') fields[fl.name] = value(fl);
    if (testOp !== undefined) {
      fields.op = testOp;
      // access ops name the access by its fd
      const fds = [...proc.fds.keys()].filter((fd) => fd > 2 && fd !== f.fd);
      if (ACCESS_OPS.has(testOp) && fds.length > 0 && rng.chance(0.8)) fields.id = rng.pick(fds);
    }
    let size: number;
    let tail = 0;
    let tailNonZero = false;
    switch (rng.int(20)) {
      case 0:
      case 1:
        size = rng.int(cmd.minSize);
        break;
      case 2:
      case 3:
        size = cmd.minSize;
        break;
      case 4:
      case 5:
      case 6:
        tail = rng.chance(0.8) ? 1 + rng.int(32) : 1 + rng.int(Number(PAGE));
        size = layout.size + tail;
        break;
      case 7:
        tail = 1 + rng.int(64);
        tailNonZero = true;
        size = layout.size + tail;
        break;
      case 8:
        size = rng.pick([0xffff_ffff, 0x8000_0000, 0x10_0000, rng.u32()]);
        break;
      default:
        size = layout.size;
    }
    const bytes = new Uint8Array(Math.max(layout.size, size < 0x1_0000 ? size : layout.size));
    bytes.set(layout.encode({ ...fields, size }));
    if (tailNonZero) bytes[layout.size + rng.int(tail)] = 1 + rng.int(255);
    new DataView(bytes.buffer).setUint32(0, size >>> 0, true);

    // where the struct goes
    let arg: bigint;
    const spot = rng.int(100);
    const room = Number(ARG_LEN) - bytes.length;
    if (spot < 80)
      arg = ARG_VA + BigInt(rng.int(room / 8) * 8 + (rng.chance(0.05) ? rng.int(8) : 0));
    else if (spot < 86) arg = ARG_VA + ARG_LEN - BigInt(1 + rng.int(Math.min(bytes.length, 64)));
    else if (spot < 92) arg = ARG_RO + BigInt(rng.int(Number(PAGE) - 64));
    else if (spot < 95) arg = 0n;
    else if (spot < 97) arg = HOLE_VA;
    else arg = rng.pick([U64_MAX - 3n, 1n << 63n, rng.u64()]);
    if (arg >= ARG_VA && arg < ARG_VA + ARG_LEN) {
      const fit = Number(ARG_VA + ARG_LEN - arg);
      mm.write(arg, bytes.subarray(0, Math.min(fit, bytes.length)));
    } else if (arg >= ARG_RO && arg < ARG_RO + PAGE) {
      mm.mprotect(ARG_RO, PAGE, { read: true, write: true });
      mm.write(arg, bytes.subarray(0, Math.min(Number(ARG_RO + PAGE - arg), bytes.length)));
      mm.mprotect(ARG_RO, PAGE, { read: true, write: false });
    }
    const arrayPtr = fields.allowed_iovas;
    if (typeof arrayPtr === 'bigint' && cmd.name === 'IOMMU_IOAS_ALLOW_IOVAS') {
      sprinkleRanges(arrayPtr);
    }

    let ret: number;
    try {
      ret = proc.ioctl(f.fd, req, arg);
    } catch (e) {
      const dump = Buffer.from(bytes.subarray(0, 64)).toString('hex');
      throw new Error(
        `${where(i)}: ioctl(${hex(req)}, ${hex(arg)}) threw ${e}\n  struct: ${dump}`,
        { cause: e },
      );
    }
    if (ret === -1) {
      assert.ok(proc.errno, `${where(i)}: -1 without errno`);
      errnos.set(proc.errno, (errnos.get(proc.errno) ?? 0) + 1);
    } else {
      assert.ok(ret >= 0 && proc.errno === undefined, `${where(i)}: returned ${ret}`);
      ok++;
    }
    if ((i + 1) % CHECK_EVERY === 0) {
      try {
        checkInvariants(ctx, kernel);
      } catch (e) {
        throw new Error(`${where(i)}: invariant broken: ${(e as Error).message}`, { cause: e });
      }
    }
  }
  checkInvariants(ctx, kernel);
  assert.deepEqual(kernel.bugs, [], `${where(CALLS)}: kernel.bugs`);
  const areaCount = areas().length;
  // close /dev/iommu and every file the calls created (access fds, ...), then unbind
  for (const fd of [...proc.fds.keys()].filter((fd) => fd > 2).sort((a, b) => a - b)) {
    assert.equal(proc.close(fd), 0);
  }
  for (const idev of idevs) idev.unbind();
  assert.equal(ctx.objectCount, 0, `${where(CALLS)}: objects left after close and unbind`);
  assert.equal(kernel.memory.pinnedPages(), 0n, `${where(CALLS)}: pages left pinned`);
  const ms = performance.now() - t0;
  const top = [...errnos].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`);
  console.log(
    `fuzz seed ${hex(SEED)}: ${CALLS} calls in ${ms.toFixed(0)} ms, ${ok} succeeded, ` +
      `${areaCount} areas at the end; errnos: ${top.join(', ')}`,
  );
});

// ---- regressions the fuzzer found ---------------------------------------------------

test('fuzz regression: a huge size scans the tail in address order (E2BIG before a fault)', () => {
  const f = setup();
  const arg = memAt(f, 0x10_0000n, PAGE);
  // non-zero tail byte, then unmapped memory up to 4 GiB: E2BIG, as check_zeroed_user
  f.proc.mm.write(arg, encode('IOMMU_IOAS_ALLOC', { size: 0xffff_ffff }));
  f.proc.mm.write(arg + 100n, Uint8Array.of(1));
  assert.equal(ioctlAt(f, 'IOMMU_IOAS_ALLOC', arg), 'E2BIG');
  // zero up to the end of the mapping: the fault comes first
  f.proc.mm.write(arg + 100n, Uint8Array.of(0));
  assert.equal(ioctlAt(f, 'IOMMU_IOAS_ALLOC', arg), 'EFAULT');
  // the tail is checked before the struct is read: E2BIG beats a short struct
  f.proc.mm.write(arg, encode('IOMMU_IOAS_ALLOC', { size: 0x10_0000 }));
  f.proc.mm.write(arg + PAGE - 1n, Uint8Array.of(1));
  assert.equal(ioctlAt(f, 'IOMMU_IOAS_ALLOC', arg), 'E2BIG');
  assert.equal(f.ctx.objectCount, 0);
  assert.deepEqual(f.kernel.bugs, []);
});

test('fuzz regression: GET_HW_INFO with data_len past the mapping zeroes what is mapped, EFAULT', () => {
  const f = setup();
  const idev = f.intelDevice();
  const buf = memAt(f, 0x20_0000n, 2n * PAGE);
  f.proc.mm.write(buf, new Uint8Array(Number(2n * PAGE)).fill(0xa5));
  const r = f.call('IOMMU_GET_HW_INFO', { dev_id: idev.id, data_len: 0xffff_ffff, data_uptr: buf });
  assert.equal(r.errno, 'EFAULT');
  const got = f.proc.mm.read(buf, Number(2n * PAGE));
  assert.ok(
    got.subarray(24).every((b) => b === 0),
    'clear_user zeroed the mapped part',
  );
  assert.deepEqual(f.kernel.bugs, []);
});
