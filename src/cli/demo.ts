import {
  type IommufdCmdName,
  IommuIovaRange,
  iommufdCmd,
  iommufdCmdNumber,
} from '../abi/iommufd.ts';
import { IntelIommu, intelReservedRegions } from '../drivers/intel/driver.ts';
import { Kernel } from '../host/kernel.ts';
import { Device, DmaFaultError } from '../iommu/device.ts';
import { Group } from '../iommu/group.ts';
import { IommufdDevice } from '../iommufd/device.ts';
import { ctxOfFd } from '../iommufd/fops.ts';

const GIB = 1n << 30n;

/**
 * A VMM's first minutes against /dev/iommu, traced syscall by syscall:
 * allocate an IOAS, attach an x86 device, map 1 GiB of guest RAM, let the
 * device DMA into it, get refused an overlapping map and a DMA outside the
 * mapping, unmap. Lines starting with `#` are what the kernel or the device
 * did between syscalls. Returns the exit status (0 when every step gave
 * the expected answer).
 */
export function runDemo(print: (line: string) => void): number {
  const kernel = new Kernel();
  const vmm = kernel.spawn();
  vmm.trace = print;
  let failures = 0;
  const expect = (what: string, ok: boolean) => {
    if (!ok) {
      failures++;
      print(`# UNEXPECTED: ${what}`);
    }
  };
  const call = (name: IommufdCmdName, fields: Record<string, number | bigint>) => {
    const cmd = iommufdCmd(name);
    return vmm.call(fd, iommufdCmdNumber(kernel.abi, name), cmd.layout, fields) as {
      ret: number;
      errno: string | undefined;
      out: Record<string, number | bigint>;
    };
  };

  print('# uiommu demo: an in-process VMM on an emulated x86 host (Linux 6.18 iommufd)');
  const fd = vmm.open('/dev/iommu');
  const ioas = call('IOMMU_IOAS_ALLOC', {}).out.out_ioas_id as number;

  const driver = new IntelIommu({ addressWidth: 48 });
  const dev = new Device(
    '0000:00:03.0',
    driver,
    new Group(3),
    kernel.memory,
    intelReservedRegions(),
  );
  const idev = IommufdDevice.bind(ctxOfFd(vmm, fd), dev);
  print(`# vfio: bound ${dev.name} (VT-d, 48-bit) to the iommufd as dev_id ${idev.id}`);
  const hwpt = idev.attach(ioas);
  print(`# vfio: attached dev_id ${idev.id} to IOAS ${ioas}: automatic HWPT ${hwpt.id}`);

  const info = vmm.mm.mmap({ length: 4096n, prot: { read: true, write: true } });
  call('IOMMU_GET_HW_INFO', { dev_id: idev.id, data_len: 24, data_uptr: info });
  const ranges = vmm.mm.mmap({ length: 4096n, prot: { read: true, write: true } });
  const r = call('IOMMU_IOAS_IOVA_RANGES', { ioas_id: ioas, num_iovas: 4, allowed_iovas: ranges });
  for (let i = 0; i < (r.out.num_iovas as number); i++) {
    const range = IommuIovaRange.decode(vmm.mm.read(ranges + BigInt(i * 16), 16));
    print(`#   usable IOVA [0x${range.start.toString(16)}, 0x${range.last.toString(16)}]`);
  }

  const ram = vmm.mm.mmap({ length: GIB, prot: { read: true, write: true } });
  print(`# guest RAM: 1 GiB of anonymous memory at 0x${ram.toString(16)}`);
  const map = call('IOMMU_IOAS_MAP', {
    flags: 7,
    ioas_id: ioas,
    user_va: ram,
    length: GIB,
    iova: 0n,
  });
  expect('guest RAM map', map.ret === 0);

  dev.dmaWrite(0x1000n, new TextEncoder().encode('hello from the device'));
  const seen = new TextDecoder().decode(vmm.mm.read(ram + 0x1000n, 21));
  print(
    `# device DMA write at IOVA 0x1000 → guest reads "${seen}" at 0x${(ram + 0x1000n).toString(16)}`,
  );
  expect('DMA lands in guest RAM', seen === 'hello from the device');

  const dup = call('IOMMU_IOAS_MAP', {
    flags: 7,
    ioas_id: ioas,
    user_va: ram,
    length: 2n << 20n,
    iova: GIB - 0x1000n,
  });
  expect('overlapping map refused with EEXIST', dup.errno === 'EEXIST');
  const msi = call('IOMMU_IOAS_MAP', {
    flags: 7,
    ioas_id: ioas,
    user_va: ram,
    length: 0x1000n,
    iova: 0xfee00000n,
  });
  expect('map into the MSI window refused with EINVAL', msi.errno === 'EINVAL');

  try {
    dev.dmaRead(GIB + 0x2000n, 8);
    expect('DMA beyond guest RAM faults', false);
  } catch (e) {
    if (!(e instanceof DmaFaultError)) throw e;
    print(
      `# device DMA read at IOVA 0x${e.fault.iova.toString(16)} → IOMMU fault recorded (${dev.faults.length} so far)`,
    );
  }

  const un = call('IOMMU_IOAS_UNMAP', { ioas_id: ioas, iova: 0n, length: GIB });
  expect('unmap returns the bytes unmapped', un.out.length === GIB);
  idev.detach();
  print(`# vfio: detached dev_id ${idev.id}; HWPT ${hwpt.id} was automatic and is gone`);
  idev.unbind();
  vmm.close(fd);
  print(`# pinned pages left on the host: ${kernel.memory.pinnedPages()}`);
  expect('no pins left', kernel.memory.pinnedPages() === 0n);
  print(
    failures === 0
      ? '# demo finished: every answer was the expected one'
      : `# ${failures} unexpected answers`,
  );
  return failures === 0 ? 0 : 1;
}
