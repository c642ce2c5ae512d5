/**
 * The engine's side of device mappings (docs/device-mmap.md): the MMAP,
 * MUNMAP, MREMAP, MMIO and MMIO_FAULT operations of the engine protocol.
 * The preload library maps the shared file the engine names and protects
 * the register pages; it reports the mapping's address, its unmaps and
 * moves, and forwards every trapped register access here, where the
 * device model answers it.
 */
import { fail } from '../abi/errno.ts';
import type { Process, ProcessMm } from '../host/process.ts';
import type { MmapHost } from '../kernel/file.ts';
import { argInt, OP, type Request } from './protocol.ts';

/** MAP_SHARED and MAP_SHARED_VALIDATE share bit 0; MAP_PRIVATE is 2. */
const MAP_SHARED = 0x1;
/** PROT_EXEC (VM_EXEC). */
const PROT_EXEC = 0x4;

/** The answer of a device-mapping op: `ret` and an optional payload. */
export interface MmapAnswer {
  ret: bigint;
  payload?: Uint8Array;
}

/**
 * Serve one device-mapping op for `proc`; errors are Errno (the caller
 * turns them into -1/err).
 *
 * - MMAP a0 = fd, a1 = file offset, a2 = length, a3 = mmap flags, a4 =
 *   prot, a5 = the mapping's address or 0. mmap(2)'s own checks come first
 *   (EINVAL: a length of 0 or an offset inside a page) and the file sees the
 *   length rounded up to whole pages. With 0 the file's checks run (ENODEV: no mmap)
 *   and the answer is ret = the engine's fd of the shared file, payload
 *   `{ u64 file_offset; u32 zaps; u32 nr; { u64 start, end }[nr] }` (the
 *   register ranges, relative to the mapping's start). With an address the
 *   mapping is recorded there (ret 0).
 * - MUNMAP a0 = address, a1 = length: the range is no longer mapped.
 * - MREMAP a0 = old address, a1 = old length, a2 = new address, a3 = new length.
 * - MMIO a0 = address, a1 = size (1, 2, 4, 8), a2 = 1 for a write,
 *   a3 = the value written: payload = the u64 read (0 for a write).
 *   EFAULT: no device mapping there; EIO: the device refuses (SIGBUS).
 * - MMIO_FAULT a0 = address: a memory page of a zapped mapping was
 *   touched: ret 0 (it may come back) or EIO (SIGBUS).
 */
export function deviceMmapOp(proc: Process<ProcessMm>, req: Request, host: MmapHost): MmapAnswer {
  const [a0 = 0n, a1 = 0n, a2 = 0n, a3 = 0n, a4 = 0n, a5 = 0n] = req.args;
  switch (req.op) {
    case OP.MMAP: {
      const page = proc.mm.pageSize;
      const offset = BigInt.asIntN(64, a1);
      if (offset % page !== 0n) fail('EINVAL', 'offset inside a page', 'sys_mmap');
      const file = proc.fds.get(argInt(a0));
      if (!file) fail('EBADF', `fd ${argInt(a0)} is not open`, 'ksys_mmap_pgoff');
      if (a2 === 0n) fail('EINVAL', 'length 0', 'do_mmap');
      const length = ((a2 + page - 1n) / page) * page;
      if (!file.ops.mmap) fail('ENODEV', 'the file has no mmap', 'do_mmap');
      const shared = (Number(a3) & MAP_SHARED) !== 0;
      const exec = (Number(a4) & PROT_EXEC) !== 0;
      const mapping = file.ops.mmap(proc, offset, length, shared, host, exec);
      if (a5 !== 0n) {
        proc.ioMaps.add(a5, length, file, mapping);
        return { ret: 0n };
      }
      const payload = new Uint8Array(16 + 16 * mapping.registers.length);
      const v = new DataView(payload.buffer);
      v.setBigUint64(0, mapping.fileOffset, true);
      v.setUint32(8, mapping.zaps(), true);
      v.setUint32(12, mapping.registers.length, true);
      mapping.registers.forEach(([s, e], i) => {
        v.setBigUint64(16 + 16 * i, s, true);
        v.setBigUint64(24 + 16 * i, e, true);
      });
      return { ret: BigInt(mapping.file.fd), payload };
    }
    case OP.MUNMAP:
      proc.ioMaps.remove(a0, a1);
      return { ret: 0n };
    case OP.MREMAP:
      proc.ioMaps.move(a0, a1, a2, a3);
      return { ret: 0n };
    case OP.MMIO: {
      const size = Number(a1);
      if (size !== 1 && size !== 2 && size !== 4 && size !== 8)
        fail('EINVAL', `access of ${size}`, 'uiommu_mmio');
      const m = proc.ioMaps.find(a0);
      if (!m || a0 + BigInt(size) > m.end) fail('EFAULT', 'no device mapping there', 'uiommu_mmio');
      const at = a0 - m.start + m.delta;
      const out = new Uint8Array(8);
      if (a2 !== 0n) {
        const data = new Uint8Array(8);
        new DataView(data.buffer).setBigUint64(0, a3, true);
        m.mapping.access(at, size, data.subarray(0, size));
      } else {
        out.set(m.mapping.access(at, size));
      }
      return { ret: 0n, payload: out };
    }
    case OP.MMIO_FAULT: {
      const m = proc.ioMaps.find(a0);
      if (!m) fail('EFAULT', 'no device mapping there', 'uiommu_mmio');
      m.mapping.fault();
      return { ret: 0n };
    }
    default:
      fail('ENOSYS', `op ${req.op}`, 'uiommu_engine_dispatch');
  }
}
