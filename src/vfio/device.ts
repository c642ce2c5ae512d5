/**
 * The VFIO core's view of one device of a group (struct vfio_device as far
 * as the group path goes): its open count and, when the group uses an
 * iommufd, its binding to that context. The first open binds the device
 * (iommufd_device_bind) and attaches it to the context's compat IOAS; the
 * last close detaches and unbinds it. Facts: vfio-device.md §2.5, §3.1.
 *
 * @example
 * const { device, spec } = kernel.host.devices.get('0000:03:00.0')!;
 * const vdev = new VfioDevice(device, spec, {}, () => kernelPciFunctions);
 * vdev.bindIommufd(ctx); // DMA now goes through the compat IOAS's domain
 */

import type { Device } from '../iommu/device.ts';
import type { IommufdCtx } from '../iommufd/context.ts';
import { IommufdDevice } from '../iommufd/device.ts';
import { vfioCompatIoasGetId } from '../iommufd/vfio-compat.ts';
import type { PciFunctions } from './hot-reset.ts';
import { VfioPciDevice, type VfioPciDeviceOptions } from './pci/device.ts';
import type { PciDeviceSpec } from './pci/spec.ts';

export class VfioDevice {
  /** Open device fds (the group path allows several). */
  openCount = 0;
  /** Opened through its cdev (vfio_device_cdev_opened): hot reset then works by iommufd ownership. */
  cdevOpened = false;
  /** The DEVICE object while bound to an iommufd. */
  private idev: IommufdDevice | undefined;

  /** The emulated PCI function its device fds operate on. */
  readonly pci: VfioPciDevice;

  /**
   * `pci`: the platform's part of VfioPciDeviceOptions (dynamic MSI-X, bus
   * addresses, dma-buf export); `pciFunctions`: the host's PCI functions,
   * which a hot reset walks (hot-reset.ts).
   */
  constructor(
    readonly dev: Device,
    spec: PciDeviceSpec,
    pci: Pick<VfioPciDeviceOptions, 'dynamicMsix' | 'busRange' | 'dmabuf'>,
    readonly pciFunctions: PciFunctions,
  ) {
    this.pci = new VfioPciDevice(spec, { ...pci, dma: dev });
  }

  /** The device name GET_DEVICE_FD matches (the BDF). */
  get name(): string {
    return this.dev.name;
  }

  /** The iommufd binding, if any. */
  get iommufdDevice(): IommufdDevice | undefined {
    return this.idev;
  }

  /**
   * First open with an iommufd: bind, then (group path) attach to the
   * compat IOAS (ENODEV if it is gone); on failure nothing stays bound.
   * The cdev path binds only (`attachCompat` false): DMA stays blocked
   * until ATTACH_IOMMUFD_PT.
   */
  bindIommufd(ctx: IommufdCtx, opts = { attachCompat: true }): IommufdDevice {
    const idev = IommufdDevice.bind(ctx, this.dev);
    if (!opts.attachCompat) {
      this.idev = idev;
      return idev;
    }
    try {
      idev.attach(vfioCompatIoasGetId(ctx));
    } catch (e) {
      idev.unbind();
      throw e;
    }
    this.idev = idev;
    return idev;
  }

  /** Last close: detach and unbind (the context may go with it). */
  unbindIommufd(): void {
    const idev = this.idev;
    this.idev = undefined;
    idev?.unbind();
  }
}
