/**
 * The seam between an emulated vfio-pci function (`VfioPciDevice`) and the
 * device behind it. The function owns what every PCI device has: config
 * space with its capabilities (built from the `PciDeviceSpec`: IDs, class,
 * BARs, INTx/MSI/MSI-X), BAR memory, MSI-X table, reset and interrupt
 * delivery. A device model owns what makes the device a device: its
 * register windows in the BARs, any device-specific config registers, what
 * happens on reset, and the DMA it does. How to write one: docs/devices.md.
 *
 * Rules a model keeps:
 * - Every access inside one of its `registers` windows reaches `read` /
 *   `write` (the pages are trapped when the BAR is mapped); everything else
 *   in the BARs is plain memory (`DeviceModelContext.bars`) that a mapping
 *   reads and writes without the model seeing it.
 * - DMA goes through `ctx.dma` only (the function's IOMMU): a refused
 *   access throws `DmaFaultError` (already recorded as an IOMMU fault); the
 *   model turns it into its own documented error status.
 * - Bad input from the driver (registers, descriptors, commands) never
 *   throws out of `read`/`write`: it becomes the device's error status. Work
 *   started by one access is bounded, or runs in slices off the event loop,
 *   so other clients are never held up.
 * - `reset` returns the registers to power-on values and drops work in
 *   flight; BAR memory is cleared by the function itself.
 */
import type { BarMemory } from './bar-memory.ts';
import type { PciDeviceSpec } from './spec.ts';

/** The device's DMA path: reads and writes at an IOVA through its IOMMU (throw DmaFaultError). */
export interface DmaPort {
  dmaRead(iova: bigint, length: number): Uint8Array;
  dmaWrite(iova: bigint, data: Uint8Array): void;
}

/** How a model interrupts. */
export interface DeviceIrq {
  /**
   * An edge on `vector` of whichever of MSI/MSI-X is enabled: its eventfd
   * is signalled (nothing when neither is enabled or the vector has no eventfd).
   */
  raise(vector: number): void;
  /** The level of the INTx line (delivered unless INTx is disabled or masked). */
  intx(asserted: boolean): void;
}

/** What the function hands its model. */
export interface DeviceModelContext {
  readonly spec: PciDeviceSpec;
  /** Backing store of each memory/I/O BAR, by index: the plain-memory parts. */
  readonly bars: ReadonlyMap<number, BarMemory>;
  readonly dma: DmaPort;
  readonly irq: DeviceIrq;
}

/** Bytes `[start, end)` of BAR `bar` that are registers: every access reaches the model. */
export interface RegisterWindow {
  readonly bar: number;
  readonly start: number;
  readonly end: number;
}

export interface DeviceModel {
  /** The register windows (disjoint, inside their BARs, clear of the MSI-X table and PBA). */
  readonly registers: readonly RegisterWindow[];
  /**
   * Read `length` bytes at `pos` of BAR `bar`, all inside one window. A read
   * may have side effects (read-to-clear), so it is never issued speculatively.
   */
  read(bar: number, pos: number, length: number): Uint8Array;
  /** Write `data` at `pos` of BAR `bar`, all inside one window. */
  write(bar: number, pos: number, data: Uint8Array): void;
  /**
   * Byte ranges `[start, end)` of config space the device implements itself
   * (outside every capability vfio-pci virtualises: vfio passes such bytes
   * to the hardware, so user space reads and writes them raw).
   */
  readonly configRegisters?: readonly [number, number][];
  /** Read `length` bytes of config space at `offset`, inside `configRegisters`. */
  configRead?(offset: number, length: number): Uint8Array;
  /** Write config space at `offset`, inside `configRegisters`. */
  configWrite?(offset: number, data: Uint8Array): void;
  /** Power-on state: registers to their defaults, work in flight dropped, INTx deasserted. */
  reset(): void;
}
