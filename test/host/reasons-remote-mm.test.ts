/**
 * @slow: reasons of the RemoteMm failure sites (src/host/remote-mm.ts), on
 * the memory of a real C child (mem-child.ts): the copies, zero checks,
 * clears and pins the engine makes in a client's address space.
 */
import { after, before } from 'node:test';
import type { Errno } from '../../src/abi/errno.ts';
import { PhysRam } from '../../src/host/phys-ram.ts';
import { RemoteMm } from '../../src/host/remote-mm.ts';
import { RestartCall } from '../../src/iommu/mm.ts';
import type { IommuUserDataArray } from '../../src/iommu/viommu.ts';
import { userDataArray } from '../../src/iommufd/ucmd.ts';
import { type MemChild, PAGE, startMemChild } from './mem-child.ts';
import { collectingPins, pin, thrownErrno } from './reasons-support.ts';

let child: MemChild;
/** An mm whose process has exited: the engine saw the exit and called `exit`. */
let gone: RemoteMm;
/**
 * 2000 u64 entries from the child's `hole` (its second page unmapped): a
 * long array, gathered on a worker thread before the call restarts.
 */
let array: IommuUserDataArray;
if (!collectingPins()) {
  before(async () => {
    child = await startMemChild();
    const dying = await startMemChild();
    gone = new RemoteMm(dying.handle, new PhysRam());
    await dying.close();
    gone.exit();
    array = userDataArray(new RemoteMm(child.handle, new PhysRam()), 0, child.at.hole, 8, 2000);
    try {
      array.gathered!(0, 8);
    } catch (e) {
      if (!(e instanceof RestartCall)) throw e;
      await e.ready;
    }
  });
  after(() => child.close());
}

/** The Errno `act` throws on `mm` (a fresh RemoteMm of the child by default); fails if it throws none. */
function thrown(
  act: (mm: RemoteMm) => unknown,
  mm = () => new RemoteMm(child.handle, new PhysRam()),
) {
  return (): Errno => {
    const m = mm();
    try {
      return thrownErrno(() => act(m));
    } finally {
      m.exit();
    }
  };
}

/** A RemoteMm as on a kernel before 6.11 (no PROCMAP_QUERY): a copy checks the maps text first. */
function noQuery(): RemoteMm {
  const mm = new RemoteMm(child.handle, new PhysRam());
  (mm as unknown as { query: boolean }).query = false;
  return mm;
}
const onGone = () => gone;
const END = 1n << 64n;
const EXITED = 'mm has exited';

pin('remote-mm: copies, zero checks, clears and pins in a real process', [
  [
    'copy_from_user of an unmapped page, maps text (no PROCMAP_QUERY): EFAULT',
    thrown((mm) => mm.read(PAGE, 8), noQuery),
    'EFAULT',
    'no read access at 0x1000',
    'copy_from_user',
  ],
  [
    'copy_from_user of a range past 2^64, maps text: EFAULT',
    thrown((mm) => mm.read(END - 8n, 16), noQuery),
    'EFAULT',
    'range wraps',
    'copy_from_user',
  ],
  [
    'check_zeroed_user of a tail holding a string: E2BIG',
    thrown((mm) => mm.checkZeroed(child.at.m1 + 2n * PAGE, 16n)),
    'E2BIG',
    "non-zero byte in the struct's tail",
    'check_zeroed_user',
  ],
  [
    'check_zeroed_user of a PROT_NONE tail: EFAULT',
    thrown((mm) => mm.checkZeroed(child.at.none, 8n)),
    'EFAULT',
    "unreadable byte in the struct's tail",
    'check_zeroed_user',
  ],
  [
    'clear_user of a read-only page: EFAULT',
    thrown((mm) => mm.clearUser(child.at.ro, 8n)),
    'EFAULT',
    'clear_user: unwritable byte',
    'clear_user',
  ],
  [
    'pin_user_pages_fast of a range past 2^64: EFAULT',
    thrown((mm) => mm.resolve(END - PAGE, 2n * PAGE, false)),
    'EFAULT',
    'range wraps',
    'pin_user_pages_fast',
  ],
  [
    'copy_to_user of a read-only page: nothing written, EFAULT',
    thrown((mm) => mm.write(child.at.ro, new Uint8Array(8))),
    'EFAULT',
    'copy_to_user: 0 of 8 bytes',
    'copy_to_user',
  ],
  [
    'copy_struct_from_user of a long user array whose entry 512 is on an unmapped page: EFAULT',
    () =>
      thrownErrno(() => {
        array.gathered!(0, 8); // the restarted call: the window gathered off-thread
        array.gathered!(512, 8);
      }),
    'EFAULT',
    'entry 512 of the user array',
    'copy_struct_from_user',
  ],
  [
    'copy_from_user after the process exited: EFAULT',
    thrown((mm) => mm.read(PAGE, 8), onGone),
    'EFAULT',
    EXITED,
    'copy_from_user',
  ],
  [
    'copy_to_user after the process exited: EFAULT',
    thrown((mm) => mm.write(PAGE, new Uint8Array(8)), onGone),
    'EFAULT',
    EXITED,
    'copy_to_user',
  ],
  [
    'copy_struct_from_user of a user array after the process exited: EFAULT',
    thrown((mm) => mm.gatherEntries(PAGE, 8, 8, 0, 1), onGone),
    'EFAULT',
    EXITED,
    'copy_struct_from_user',
  ],
  [
    'clear_user after the process exited: EFAULT',
    thrown((mm) => mm.clearUser(PAGE, 8n), onGone),
    'EFAULT',
    EXITED,
    'clear_user',
  ],
  [
    'check_zeroed_user after the process exited: EFAULT',
    thrown((mm) => mm.checkZeroed(PAGE, 8n), onGone),
    'EFAULT',
    EXITED,
    'check_zeroed_user',
  ],
  [
    'pin_user_pages_fast after the process exited: EFAULT',
    thrown((mm) => mm.resolve(PAGE, PAGE, false), onGone),
    'EFAULT',
    EXITED,
    'pin_user_pages_fast',
  ],
]);
