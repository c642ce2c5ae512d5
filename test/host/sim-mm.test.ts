import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Errno } from '../../src/abi/errno.ts';
import type { MemObject } from '../../src/host/mem-object.ts';
import { PhysRam } from '../../src/host/phys-ram.ts';
import { MMAP_BASE, type Prot, SimMm } from '../../src/host/sim-mm.ts';

const PS = 0x1000n;
const HUGE = 0x20_0000n;
const RW: Prot = { read: true, write: true };
const RO: Prot = { read: true, write: false };

function errno(code: string) {
  return (e: unknown) => e instanceof Errno && e.code === code;
}

function setup() {
  const ram = new PhysRam();
  return { ram, mm: new SimMm(ram) };
}

function pattern(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => ((seed + i * 31) & 0xff) | 1);
}

test('anonymous mmap: page-rounded, aligned, top-down below MMAP_BASE, zero-filled', () => {
  const { mm } = setup();
  const a = mm.mmap({ length: 100n, prot: RW });
  const b = mm.mmap({ length: 3n * PS, prot: RW });
  assert.equal(a, MMAP_BASE - PS);
  assert.equal(b, a - 3n * PS);
  assert.equal(mm.vmaAt(a)?.last, a + PS - 1n);
  assert.equal(mm.vmaAt(a + PS), undefined);
  assert.deepEqual(mm.read(b, 3 * 4096), new Uint8Array(3 * 4096));
  assert.equal(mm.vmaAt(a)?.shared, false);
  assert.notEqual(mm.vmaAt(a)?.object, mm.vmaAt(b)?.object, 'each private mapping owns its object');
});

test('mmap argument errors and address hints', () => {
  const { mm } = setup();
  assert.throws(() => mm.mmap({ length: 0n, prot: RW }), errno('EINVAL'));
  assert.throws(
    () => mm.mmap({ addr: 0x10_0000_0800n, length: PS, prot: RW, fixed: true }),
    errno('EINVAL'),
  );
  assert.throws(() => mm.mmap({ length: PS, prot: RW, fixed: true }), errno('EINVAL'));
  assert.throws(
    () => mm.mmap({ addr: 0x1000n, length: PS, prot: RW, fixed: true }),
    errno('EPERM'),
  );
  assert.throws(
    () => mm.mmap({ addr: 0x7fff_ffff_f000n, length: PS, prot: RW, fixed: true }),
    errno('ENOMEM'),
  );
  const memfd = mm.memfd(4n * PS);
  assert.throws(
    () => mm.mmap({ length: PS, prot: RW, object: memfd, offset: 0x800n }),
    errno('EINVAL'),
  );
  assert.equal(mm.vmaCount, 0, 'failed calls map nothing');
  const hinted = mm.mmap({ addr: 0x20_0000_0001n, length: PS, prot: RW });
  assert.equal(hinted, 0x20_0000_1000n, 'a free hint is used, page-aligned up');
  const taken = mm.mmap({ addr: hinted, length: PS, prot: RW });
  assert.notEqual(taken, hinted, 'an occupied hint falls back to top-down');
});

test('read/write round trip across page and VMA boundaries', () => {
  const { mm } = setup();
  const va = mm.mmap({ addr: 0x10_0000_0000n, length: 2n * PS, prot: RW, fixed: true });
  mm.mmap({ addr: va + 2n * PS, length: 2n * PS, prot: RW, fixed: true });
  const data = pattern(3 * 4096, 7);
  mm.write(va + 0x800n, data);
  assert.deepEqual(mm.read(va + 0x800n, data.length), data);
  assert.deepEqual(mm.read(va + 0x7ffn, 2), Uint8Array.of(0, data[0]!));
});

test('EFAULT on unmapped and partially unmapped ranges; nothing is written', () => {
  const { mm } = setup();
  const va = mm.mmap({ addr: 0x10_0000_0000n, length: 2n * PS, prot: RW, fixed: true });
  assert.throws(() => mm.read(va - 1n, 2), errno('EFAULT'));
  assert.throws(() => mm.read(va + 2n * PS, 1), errno('EFAULT'));
  assert.throws(() => mm.write(va + 2n * PS - 4n, pattern(8, 1)), errno('EFAULT'));
  assert.deepEqual(mm.read(va + 2n * PS - 4n, 4), new Uint8Array(4));
  assert.throws(() => mm.resolve(va, 3n * PS, false), errno('EFAULT'));
  assert.deepEqual(mm.resolve(va, 0n, true), []);
});

test('mprotect read-only: writes and write-resolves fault, reads work; VMAs split and re-merge', () => {
  const { mm } = setup();
  const va = mm.mmap({ length: 4n * PS, prot: RW });
  mm.write(va, pattern(4 * 4096, 3));
  mm.mprotect(va + PS, 2n * PS, RO);
  assert.equal(mm.vmaCount, 3);
  assert.equal(mm.vmaAt(va + PS)?.offset, PS);
  assert.throws(() => mm.write(va + PS - 1n, Uint8Array.of(9, 9)), errno('EFAULT'));
  assert.deepEqual(mm.read(va, 4 * 4096), pattern(4 * 4096, 3), 'the failed write wrote nothing');
  assert.throws(() => mm.resolve(va + 2n * PS, 1n, true), errno('EFAULT'));
  assert.equal(mm.resolve(va, 4n * PS, false).length, 1);
  mm.mprotect(va + PS, 2n * PS, { read: false, write: false });
  assert.throws(() => mm.read(va + PS, 1), errno('EFAULT'));
  mm.mprotect(va + PS, 2n * PS, RW);
  assert.equal(mm.vmaCount, 1, 'equal neighbours merge back');
  assert.equal(mm.vmaAt(va)?.object.refCount, 1);
  assert.throws(() => mm.mprotect(va + 3n * PS, 2n * PS, RO), errno('ENOMEM'));
  assert.equal(mm.vmaAt(va + 3n * PS)?.prot.write, true, 'failed mprotect changes nothing');
  assert.throws(() => mm.mprotect(va + 1n, PS, RO), errno('EINVAL'));
});

test('resolve coalesces contiguous runs and splits at physical discontinuities', () => {
  const { mm } = setup();
  const va = mm.mmap({ addr: 0x10_0000_0000n, length: 3n * PS, prot: RW, fixed: true });
  const runs = mm.resolve(va + 0x10n, 3n * PS - 0x20n, true);
  assert.equal(runs.length, 1);
  assert.equal(runs[0]!.va, va + 0x10n);
  assert.equal(runs[0]!.length, 3n * PS - 0x20n);
  mm.mmap({ addr: va + 3n * PS, length: PS, prot: RW, fixed: true });
  const two = mm.resolve(va, 4n * PS, false);
  assert.equal(two.length, 2, 'separate objects are not physically adjacent');
  assert.deepEqual(
    two.map((r) => [r.va, r.length]),
    [
      [va, 3n * PS],
      [va + 3n * PS, PS],
    ],
  );
  const memfd = mm.memfd(2n * PS);
  const w = mm.mmap({
    addr: 0x11_0000_0000n,
    length: PS,
    prot: RW,
    object: memfd,
    offset: PS,
    fixed: true,
  });
  mm.mmap({ addr: w + PS, length: PS, prot: RW, object: memfd, offset: 0n, fixed: true });
  const swapped = mm.resolve(w, 2n * PS, false);
  assert.equal(swapped.length, 2);
  assert.equal(swapped[1]!.phys + PS, swapped[0]!.phys);
});

test('munmap of a middle page leaves a hole and keeps both sides', () => {
  const { ram, mm } = setup();
  const va = mm.mmap({ length: 3n * PS, prot: RW });
  const data = pattern(3 * 4096, 5);
  mm.write(va, data);
  const obj = mm.vmaAt(va)!.object;
  mm.munmap(va + PS, PS);
  assert.equal(mm.vmaCount, 2);
  assert.equal(obj.refCount, 2);
  assert.throws(() => mm.read(va + PS, 1), errno('EFAULT'));
  assert.throws(() => mm.resolve(va, 3n * PS, false), errno('EFAULT'));
  assert.deepEqual(mm.read(va, 4096), data.subarray(0, 4096));
  assert.deepEqual(mm.read(va + 2n * PS, 4096), data.subarray(8192));
  assert.equal(mm.vmaAt(va + 2n * PS)?.offset, 2n * PS);
  mm.munmap(va, 3n * PS);
  assert.equal(mm.vmaCount, 0);
  assert.equal(obj.refCount, 0);
  assert.equal(ram.allocatedBytes, 0n, 'last mapping gone: pages freed');
  mm.munmap(va, PS);
  assert.throws(() => mm.munmap(va + 1n, PS), errno('EINVAL'));
  assert.throws(() => mm.munmap(va, 0n), errno('EINVAL'));
});

test('MAP_FIXED replaces what was mapped', () => {
  const { mm } = setup();
  const va = mm.mmap({ length: 3n * PS, prot: RW });
  mm.write(va, pattern(3 * 4096, 2));
  mm.mmap({ addr: va + PS, length: PS, prot: RO, fixed: true });
  assert.equal(mm.vmaCount, 3);
  assert.deepEqual(mm.read(va + PS, 4096), new Uint8Array(4096));
  assert.throws(() => mm.write(va + PS, Uint8Array.of(1)), errno('EFAULT'));
  assert.deepEqual(mm.read(va, 4096), pattern(3 * 4096, 2).subarray(0, 4096));
});

test('shared mappings of one memfd see each other writes; adjacent ones merge', () => {
  const { mm } = setup();
  const memfd = mm.memfd(4n * PS);
  const a = mm.mmap({ length: 4n * PS, prot: RW, object: memfd });
  const b = mm.mmap({ length: 2n * PS, prot: RW, object: memfd, offset: 2n * PS });
  assert.equal(memfd.refCount, 3);
  assert.equal(mm.vmaAt(b)?.shared, true);
  mm.write(b + PS - 2n, Uint8Array.of(1, 2, 3, 4));
  assert.deepEqual(mm.read(a + 3n * PS - 2n, 4), Uint8Array.of(1, 2, 3, 4));
  mm.write(a + 2n * PS, Uint8Array.of(9));
  assert.deepEqual(mm.read(b, 1), Uint8Array.of(9));
  assert.deepEqual(
    mm.resolve(a + 2n * PS, PS, false).map((r) => r.phys),
    mm.resolve(b, PS, false).map((r) => r.phys),
  );
  const c = mm.mmap({ addr: 0x30_0000_0000n, length: PS, prot: RW, object: memfd, fixed: true });
  mm.mmap({ addr: c + PS, length: PS, prot: RW, object: memfd, offset: PS, fixed: true });
  assert.equal(mm.vmaAt(c)?.last, c + 2n * PS - 1n, 'contiguous offsets merge');
});

test('memfd resize: shrink faults past the end page and zeroes the tail; grow reads zeros', () => {
  const { ram, mm } = setup();
  const memfd = mm.memfd(3n * PS);
  const va = mm.mmap({ length: 3n * PS, prot: RW, object: memfd });
  mm.write(va, pattern(3 * 4096, 4));
  memfd.resize(0x100n);
  assert.equal(memfd.size, 0x100n);
  assert.equal(ram.allocatedBytes, PS);
  assert.deepEqual(mm.read(va, 0x100), pattern(0x100, 4));
  assert.deepEqual(mm.read(va + 0x100n, 0xf00), new Uint8Array(0xf00), 'tail past EOF zeroed');
  assert.throws(() => mm.read(va + PS, 1), errno('EFAULT'));
  assert.throws(() => mm.resolve(va, 2n * PS, false), errno('EFAULT'));
  memfd.resize(3n * PS);
  assert.deepEqual(mm.read(va + PS, 2 * 4096), new Uint8Array(2 * 4096));
  assert.equal(mm.resolve(va, 3n * PS, false).length, 2, 'growth is a new run');
  assert.throws(() => memfd.resize(-1n), errno('EINVAL'));
  memfd.unref();
  mm.munmap(va, 3n * PS);
  assert.equal(ram.allocatedBytes, 0n);
});

test('hugetlb: 2 MiB alignment and rounding, compound pages, cuts on huge boundaries only', () => {
  const { ram, mm } = setup();
  const va = mm.mmap({ length: 3n * PS, prot: RW, hugetlb: true });
  assert.equal(va % HUGE, 0n);
  assert.equal(mm.vmaAt(va)?.last, va + HUGE - 1n);
  const [run] = mm.resolve(va, HUGE, true);
  assert.equal(run!.phys % HUGE, 0n);
  assert.equal(ram.isCompound(run!.phys), true);
  const small = mm.mmap({ length: PS, prot: RW });
  assert.equal(ram.isCompound(mm.resolve(small, PS, false)[0]!.phys), false);
  assert.throws(() => mm.munmap(va, PS), errno('EINVAL'));
  assert.throws(() => mm.mprotect(va, PS, RO), errno('EINVAL'));
  assert.throws(
    () => mm.mmap({ addr: va + PS, length: HUGE, prot: RW, hugetlb: true, fixed: true }),
    errno('EINVAL'),
  );
  assert.throws(() => mm.memfd(PS, { hugetlb: true }), errno('EINVAL'));
  assert.throws(
    () => mm.mmap({ length: PS, prot: RW, object: mm.memfd(PS), hugetlb: true }),
    errno('EINVAL'),
  );
  const hfd = mm.memfd(2n * HUGE, { hugetlb: true });
  const h = mm.mmap({ length: PS, prot: RW, object: hfd, offset: HUGE });
  assert.equal(h % HUGE, 0n);
  assert.equal(mm.vmaAt(h)?.last, h + HUGE - 1n);
  assert.throws(() => mm.mmap({ length: PS, prot: RW, object: hfd, offset: PS }), errno('EINVAL'));
  mm.munmap(va, HUGE);
  assert.equal(mm.vmaAt(va), undefined);
});

test('exit drops mappings; memfds and pinned pages outlive it', () => {
  const { ram, mm } = setup();
  const anon = mm.mmap({ length: 2n * PS, prot: RW });
  const memfd = mm.memfd(PS);
  const shared = mm.mmap({ length: PS, prot: RW, object: memfd });
  mm.write(anon, Uint8Array.of(7));
  const [run] = mm.resolve(anon, PS, true);
  ram.pin(run!.phys, PS);
  mm.exit();
  assert.equal(mm.alive, false);
  assert.equal(mm.vmaCount, 0);
  assert.throws(() => mm.read(shared, 1), errno('EFAULT'));
  assert.throws(() => mm.mmap({ length: PS, prot: RW }), errno('ESRCH'));
  assert.equal(memfd.refCount, 1);
  assert.equal(ram.allocatedBytes, 2n * PS, 'the memfd page and the pinned anonymous page');
  assert.deepEqual(ram.read(run!.phys, 1), Uint8Array.of(7));
  ram.unpin(run!.phys, PS);
  memfd.unref();
  assert.equal(ram.allocatedBytes, 0n);
});

type Op =
  | {
      op: 'mmap';
      anchor: number;
      page: number;
      pages: number;
      prot: Prot;
      memfd: number;
      objPage: number;
      fixed: boolean;
    }
  | { op: 'munmap'; anchor: number; page: number; pages: number }
  | { op: 'mprotect'; anchor: number; page: number; pages: number; prot: Prot }
  | { op: 'write'; anchor: number; byte: number; length: number; seed: number }
  | { op: 'read'; anchor: number; byte: number; length: number }
  | { op: 'resolve'; anchor: number; byte: number; length: number; write: boolean }
  | { op: 'resize'; memfd: number; size: number };

test('property: mmap/munmap/mprotect/write/read/resolve/resize agree with a byte-map reference', () => {
  const P = 4096;
  const WINDOW = 0x10_0000_0000n;
  const MEMFDS = 2;
  const prot = fc.oneof(
    { arbitrary: fc.constant(RW), weight: 3 },
    { arbitrary: fc.record({ read: fc.boolean(), write: fc.boolean() }), weight: 1 },
  );
  // Mostly the fixed window (anchor 0); sometimes a top-down mapping.
  const anchor = fc.oneof(
    { arbitrary: fc.constant(0), weight: 3 },
    { arbitrary: fc.nat(7), weight: 1 },
  );
  const page = fc.integer({ min: -2, max: 8 });
  const pages = fc.integer({ min: 1, max: 4 });
  const byte = fc.integer({ min: -P / 4, max: 10 * P });
  const length = fc.oneof(
    { arbitrary: fc.integer({ min: 1, max: 64 }), weight: 3 },
    { arbitrary: fc.integer({ min: 1, max: P }), weight: 2 },
    { arbitrary: fc.integer({ min: 1, max: 3 * P }), weight: 1 },
  );
  const op: fc.Arbitrary<Op> = fc.oneof(
    {
      arbitrary: fc.record({
        op: fc.constant('mmap' as const),
        anchor,
        page,
        pages,
        prot,
        memfd: fc.integer({ min: -1, max: MEMFDS - 1 }),
        objPage: fc.nat(5),
        fixed: fc.oneof(
          { arbitrary: fc.constant(true), weight: 3 },
          { arbitrary: fc.constant(false), weight: 1 },
        ),
      }),
      weight: 3,
    },
    fc.record({ op: fc.constant('munmap' as const), anchor, page, pages }),
    fc.record({ op: fc.constant('mprotect' as const), anchor, page, pages, prot }),
    {
      arbitrary: fc.record({
        op: fc.constant('write' as const),
        anchor,
        byte,
        length,
        seed: fc.nat(255),
      }),
      weight: 3,
    },
    { arbitrary: fc.record({ op: fc.constant('read' as const), anchor, byte, length }), weight: 3 },
    {
      arbitrary: fc.record({
        op: fc.constant('resolve' as const),
        anchor,
        byte,
        length,
        write: fc.boolean(),
      }),
      weight: 2,
    },
    fc.record({
      op: fc.constant('resize' as const),
      memfd: fc.nat(MEMFDS - 1),
      size: fc.integer({ min: 0, max: 8 * P }),
    }),
  );

  fc.assert(
    fc.property(fc.array(op, { minLength: 10, maxLength: 50, size: 'max' }), (ops) => {
      const ram = new PhysRam();
      const mm = new SimMm(ram);
      // Reference: page VA → (object, page in object, prot); object bytes, page-rounded.
      const vm = new Map<bigint, { obj: number; page: number; prot: Prot }>();
      const bytes: Uint8Array[] = [];
      const sizes: number[] = [];
      const objects: MemObject[] = [];
      for (let i = 0; i < MEMFDS; i++) {
        objects.push(mm.memfd(BigInt(6 * P)));
        bytes.push(new Uint8Array(6 * P));
        sizes.push(6 * P);
      }
      /** Learned physical page of each `obj:page`: stable while the object lives, never shared. */
      const physOf = new Map<string, bigint>();
      const anchors = [WINDOW];
      // Start from ten mapped pages, so that accesses mostly succeed until holes are punched.
      mm.mmap({ addr: WINDOW, length: BigInt(10 * P), prot: RW, fixed: true });
      bytes.push(new Uint8Array(10 * P));
      sizes.push(10 * P);
      objects.push(mm.vmaAt(WINDOW)!.object);
      for (let i = 0; i < 10; i++)
        vm.set(WINDOW + BigInt(i * P), { obj: MEMFDS, page: i, prot: RW });
      const base = (a: number) => anchors[a % anchors.length]!;
      const vaOf = (o: { anchor: number; page: number }) => base(o.anchor) + BigInt(o.page * P);
      const outcome = (f: () => void): string | undefined => {
        try {
          f();
          return undefined;
        } catch (e) {
          if (e instanceof Errno) return e.code;
          throw e;
        }
      };
      /** Reference check of `[va, va+length)`: every byte mapped, permitted and inside its object. */
      const accessible = (va: bigint, length: number, write: boolean) => {
        for (let p = va & ~(PS - 1n); p < va + BigInt(length); p += PS) {
          const ref = vm.get(p);
          if (!ref || !(write ? ref.prot.write : ref.prot.read)) return false;
          if ((ref.page + 1) * P > bytes[ref.obj]!.length) return false;
        }
        return true;
      };
      const at = (va: bigint) => {
        const ref = vm.get(va & ~(PS - 1n))!;
        return { arr: bytes[ref.obj]!, i: ref.page * P + Number(va & (PS - 1n)) };
      };

      for (const o of ops) {
        switch (o.op) {
          case 'mmap': {
            const anon = o.memfd < 0;
            const length = BigInt(o.pages * P);
            const opts = {
              length,
              prot: o.prot,
              ...(anon ? {} : { object: objects[o.memfd]!, offset: BigInt(o.objPage * P) }),
            };
            const va = o.fixed ? mm.mmap({ ...opts, addr: vaOf(o), fixed: true }) : mm.mmap(opts);
            if (o.fixed) assert.equal(va, vaOf(o));
            else {
              assert.equal(va % PS, 0n);
              assert.ok(va + length <= MMAP_BASE);
              for (let i = 0; i < o.pages; i++)
                assert.ok(!vm.has(va + BigInt(i * P)), 'placed on a free range');
              anchors.push(va);
            }
            let obj = o.memfd;
            if (anon) {
              obj = bytes.length;
              bytes.push(new Uint8Array(o.pages * P));
              sizes.push(o.pages * P);
              objects.push(mm.vmaAt(va)!.object);
            }
            for (let i = 0; i < o.pages; i++) {
              vm.set(va + BigInt(i * P), { obj, page: anon ? i : o.objPage + i, prot: o.prot });
            }
            break;
          }
          case 'munmap': {
            mm.munmap(vaOf(o), BigInt(o.pages * P));
            for (let i = 0; i < o.pages; i++) vm.delete(vaOf(o) + BigInt(i * P));
            break;
          }
          case 'mprotect': {
            const va = vaOf(o);
            const mapped = Array.from({ length: o.pages }, (_, i) => vm.get(va + BigInt(i * P)));
            const got = outcome(() => mm.mprotect(va, BigInt(o.pages * P), o.prot));
            assert.equal(got, mapped.every(Boolean) ? undefined : 'ENOMEM');
            if (!got) for (const ref of mapped) ref!.prot = o.prot;
            break;
          }
          case 'write': {
            const va = base(o.anchor) + BigInt(o.byte);
            const data = pattern(o.length, o.seed);
            const ok = accessible(va, o.length, true);
            assert.equal(
              outcome(() => mm.write(va, data)),
              ok ? undefined : 'EFAULT',
            );
            if (ok) {
              for (let i = 0; i < o.length; i++) {
                const { arr, i: j } = at(va + BigInt(i));
                arr[j] = data[i]!;
              }
            }
            break;
          }
          case 'read': {
            const va = base(o.anchor) + BigInt(o.byte);
            if (!accessible(va, o.length, false)) {
              assert.equal(
                outcome(() => mm.read(va, o.length)),
                'EFAULT',
              );
              break;
            }
            const want = new Uint8Array(o.length);
            for (let i = 0; i < o.length; i++) {
              const { arr, i: j } = at(va + BigInt(i));
              want[i] = arr[j]!;
            }
            assert.deepEqual(mm.read(va, o.length), want);
            break;
          }
          case 'resolve': {
            const va = base(o.anchor) + BigInt(o.byte);
            const len = BigInt(o.length);
            if (!accessible(va, o.length, o.write)) {
              assert.equal(
                outcome(() => mm.resolve(va, len, o.write)),
                'EFAULT',
              );
              break;
            }
            const runs = mm.resolve(va, len, o.write);
            let next = va;
            for (const [i, r] of runs.entries()) {
              assert.equal(r.va, next, 'runs are ascending and gapless');
              next += r.length;
              for (let pva = r.va & ~(PS - 1n); pva < r.va + r.length; pva += PS) {
                const phys = r.phys + (pva - r.va);
                const ref = vm.get(pva)!;
                const key = `${ref.obj}:${ref.page}`;
                assert.equal(physOf.get(key) ?? phys, phys, 'same object page, same phys');
                physOf.set(key, phys);
              }
              const prev = runs[i - 1];
              if (prev)
                assert.notEqual(prev.phys + prev.length, r.phys, 'contiguous runs coalesce');
            }
            assert.equal(next, va + len);
            assert.equal(
              new Set(physOf.values()).size,
              physOf.size,
              'distinct pages, distinct phys',
            );
            break;
          }
          case 'resize': {
            objects[o.memfd]!.resize(BigInt(o.size));
            for (const key of [...physOf.keys()])
              if (key.startsWith(`${o.memfd}:`)) physOf.delete(key);
            const next = new Uint8Array(Math.ceil(o.size / P) * P);
            next.set(bytes[o.memfd]!.subarray(0, Math.min(o.size, sizes[o.memfd]!)));
            bytes[o.memfd] = next;
            sizes[o.memfd] = o.size;
            break;
          }
        }
        // The VMA layout around every anchor matches the reference.
        for (const a of anchors) {
          for (let p = -4; p < 20; p++) {
            const va = a + BigInt(p * P);
            const ref = vm.get(va);
            const vma = mm.vmaAt(va);
            assert.equal(vma !== undefined, ref !== undefined, `mapped at ${va.toString(16)}`);
            if (!vma || !ref) continue;
            assert.deepEqual({ ...vma.prot }, { read: ref.prot.read, write: ref.prot.write });
            assert.equal(vma.object, objects[ref.obj]);
            assert.equal(vma.offset + (va - vma.start), BigInt(ref.page * P));
          }
        }
      }
      mm.exit();
      for (let i = 0; i < MEMFDS; i++) objects[i]!.unref();
      assert.equal(ram.allocatedBytes, 0n, 'no leaked pages');
    }),
    { numRuns: 300 },
  );
});
