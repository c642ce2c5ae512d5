import type { Layout } from '../abi/layout.ts';
import {
  VFIO_EXTENSION,
  type VfioIoctlName,
  VfioIommuSpaprRegisterMemory,
  VfioIommuSpaprTceCreate,
  VfioIommuSpaprTceInfo,
  VfioIommuSpaprTceRemove,
  VfioIommuType1DmaMap,
  vfioIoctlNumber,
} from '../abi/vfio.ts';
import { Kernel } from '../host/kernel.ts';

const MIB = 1n << 20n;
const GIB = 1n << 30n;
const DDW = 1n << 59n;
const SAS = '0001:01:00.0'; // PE (group) 1 on phb1
const NVME = '0001:02:00.0'; // PE (group) 2 on phb1

/**
 * QEMU's dynamic-DMA-window sequence on an emulated POWER9 host, traced:
 * a SPAPR TCE v2 container, pre-registered guest RAM, a 64 KiB-page window
 * created at 1<<59, the default 32-bit window replaced by QEMU's own, RAM
 * mapped in both, device DMA, then a second group hot-added that joins both
 * windows with every TCE already in place. Returns the exit status.
 */
export function runPowerDemo(print: (line: string) => void): number {
  const kernel = new Kernel({ host: 'powernv', personality: { vfioContainer: 'legacy' } });
  const vmm = kernel.spawn();
  vmm.trace = print;
  let failures = 0;
  const expect = (what: string, ok: boolean) => {
    if (!ok) {
      failures++;
      print(`# UNEXPECTED: ${what}`);
    }
  };
  const call = <V>(fd: number, name: VfioIoctlName, layout: Layout<V>, value: Partial<V>) =>
    vmm.call(fd, vfioIoctlNumber(kernel.abi, name), layout, value);
  const setContainer = (group: number, container: number) => {
    const fdArg = new Uint8Array(4);
    new DataView(fdArg.buffer).setInt32(0, container, true);
    return vmm.ioctl(
      group,
      vfioIoctlNumber(kernel.abi, 'VFIO_GROUP_SET_CONTAINER'),
      vmm.scratch(fdArg),
    );
  };

  print('# POWER: a SPAPR TCE v2 container on an emulated POWER9 PHB (powernv preset)');
  const container = vmm.open('/dev/vfio/vfio');
  const v2 = BigInt(VFIO_EXTENSION.SPAPR_TCE_v2_IOMMU);
  expect(
    'SPAPR v2 supported',
    vmm.ioctl(container, vfioIoctlNumber(kernel.abi, 'VFIO_CHECK_EXTENSION'), v2) === 1,
  );
  const group1 = vmm.open('/dev/vfio/1');
  expect('group 1 joins the container', setContainer(group1, container) === 0);
  expect(
    'SET_IOMMU(SPAPR v2)',
    vmm.ioctl(container, vfioIoctlNumber(kernel.abi, 'VFIO_SET_IOMMU'), v2) === 0,
  );
  call(container, 'VFIO_IOMMU_SPAPR_TCE_GET_INFO', VfioIommuSpaprTceInfo, { argsz: 32 });

  const ram = vmm.mm.mmap({ length: 4n * MIB, prot: { read: true, write: true }, hugetlb: true });
  print(`# guest RAM: 4 MiB of huge pages at 0x${ram.toString(16)}`);
  call(container, 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY', VfioIommuSpaprRegisterMemory, {
    argsz: 24,
    vaddr: ram,
    size: 4n * MIB,
  });
  const created = call(container, 'VFIO_IOMMU_SPAPR_TCE_CREATE', VfioIommuSpaprTceCreate, {
    argsz: 40,
    page_shift: 16,
    window_size: GIB,
    levels: 1,
  });
  expect('the new window sits at 1<<59', created.out.start_addr === DDW);
  call(container, 'VFIO_IOMMU_SPAPR_TCE_REMOVE', VfioIommuSpaprTceRemove, {
    argsz: 16,
    start_addr: 0n,
  });
  const dma32 = call(container, 'VFIO_IOMMU_SPAPR_TCE_CREATE', VfioIommuSpaprTceCreate, {
    argsz: 40,
    page_shift: 12,
    window_size: GIB,
    levels: 1,
  });
  expect('QEMU’s own 32-bit window takes slot 0 at 0', dma32.out.start_addr === 0n);
  const map = call(container, 'VFIO_IOMMU_MAP_DMA', VfioIommuType1DmaMap, {
    argsz: 32,
    flags: 3,
    vaddr: ram,
    iova: DDW,
    size: 4n * MIB,
  });
  expect('RAM mapped in the 64 KiB window', map.ret === 0);
  const low = call(container, 'VFIO_IOMMU_MAP_DMA', VfioIommuType1DmaMap, {
    argsz: 32,
    flags: 1,
    vaddr: ram,
    iova: 0x10_0000n,
    size: MIB,
  });
  expect('the first MiB also mapped, read-only, in the 32-bit window', low.ret === 0);

  const sas = kernel.host.devices.get(SAS)!.device;
  sas.dmaWrite(DDW + 0x1_2340n, new TextEncoder().encode('TCE'));
  const seen = new TextDecoder().decode(vmm.mm.read(ram + 0x1_2340n, 3));
  print(`# ${SAS} DMA write at 0x${(DDW + 0x1_2340n).toString(16)} → guest reads "${seen}"`);
  expect('DMA through the 64 KiB window', seen === 'TCE');

  const group2 = vmm.open('/dev/vfio/2');
  expect('group 2 hot-added', setContainer(group2, container) === 0);
  const nvme = kernel.host.devices.get(NVME)!.device;
  print(
    `# group 2 joined: ${nvme.group.domain === sas.group.domain ? 'same domain' : 'another domain'}, ` +
      `windows ${nvme.group.domain?.apertures.map((a) => `[0x${a.start.toString(16)}, 0x${a.last.toString(16)}]`).join(' ')}`,
  );
  for (const iova of [DDW + 0x1_2340n, 0x11_2340n]) {
    const back = new TextDecoder().decode(nvme.dmaRead(iova, 3));
    expect('the hot-added device sees every TCE of both windows', back === 'TCE');
    print(`# ${NVME} DMA read at 0x${iova.toString(16)} → "${back}"`);
  }

  vmm.close(group2);
  vmm.close(group1);
  vmm.close(container);
  print(
    failures === 0
      ? '# POWER demo finished: every answer was the expected one'
      : `# ${failures} unexpected answers`,
  );
  return failures === 0 ? 0 : 1;
}
