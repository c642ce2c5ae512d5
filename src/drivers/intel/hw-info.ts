import { IOMMU_HW_INFO_TYPE, IommuHwInfoVtd } from '../../abi/iommufd.ts';
import type { HwInfo } from '../../iommu/driver.ts';

/** What the simulated hardware supports; the registers are derived from it. */
export interface VtdFeatures {
  /** Guest address width: 39, 48 or 57 bits (3, 4 or 5 table levels). */
  readonly addressWidth: number;
  /** Leaf sizes: 4 KiB plus any of 2 MiB and 1 GiB. */
  readonly pgsizeBitmap: bigint;
  /** Second-stage accessed/dirty bits. */
  readonly dirtyTracking: boolean;
  /** log2 of the PASID count; 0 without PASID support. */
  readonly maxPasidLog2: number;
  /** Snoop control (ECAP.SC). */
  readonly snoopControl: boolean;
}

const SZ_2M = 1n << 21n;
const SZ_1G = 1n << 30n;

const bit = (n: number, on = true): bigint => (on ? 1n << BigInt(n) : 0n);
const fieldAt = (lsb: number, value: number): bigint => BigInt(value) << BigInt(lsb);

/**
 * The Capability Register (VT-d spec §11.4.2). Fields set, by bit position:
 * ND[2:0]=6 (64K domain ids); SAGAW[12:8] one bit for the configured level
 * count (bit 1 = 3 levels/39 bits, 2 = 4/48, 3 = 5/57); MGAW[21:16] = width-1;
 * ZLR[22]; FRO[33:24]=0x40 (fault records at 0x400); SLLPS[37:34] bit 0 =
 * 2 MiB and bit 1 = 1 GiB second-stage leaves; PSI[39]; NFR[47:40]=7 (eight
 * fault records); MAMV[53:48]=18; DWD[54]; DRD[55]; FS1GP[56] with 1 GiB
 * leaves; PI[59]; FS5LP[60] with 57-bit width. Caching mode (CM[7]) is clear:
 * the simulated unit behaves like bare metal.
 */
export function vtdCapReg(f: VtdFeatures): bigint {
  const agaw = (f.addressWidth - 30) / 9;
  const sllps = (f.pgsizeBitmap & SZ_2M ? 1 : 0) | (f.pgsizeBitmap & SZ_1G ? 2 : 0);
  return (
    fieldAt(0, 6) |
    fieldAt(8, 1 << agaw) |
    fieldAt(16, f.addressWidth - 1) |
    bit(22) |
    fieldAt(24, 0x40) |
    fieldAt(34, sllps) |
    bit(39) |
    fieldAt(40, 7) |
    fieldAt(48, 18) |
    bit(54) |
    bit(55) |
    bit(56, (f.pgsizeBitmap & SZ_1G) !== 0n) |
    bit(59) |
    bit(60, f.addressWidth === 57)
  );
}

/**
 * The Extended Capability Register (VT-d spec §11.4.3). Fields set, by bit
 * position: C[0] coherent walks; QI[1]; DT[2] device TLBs; IR[3]; EIM[4];
 * PT[6] pass-through; SC[7] snoop control (when the unit has it); IRO[17:8]=0x50 (IOTLB registers at
 * 0x500); MHMV[23:20]=15; MTS[25]; NEST[26]; NWFS[33]; then with PASIDs:
 * PRS[29], PSS[39:35] = maxPasidLog2-1, PASID[40], PDS[42]; DIT[41];
 * SMTS[43] scalable mode; SSADS[45] when dirty tracking is supported; SSTS[46];
 * FSTS[47]; SMPWCS[48]; RPS[49].
 */
export function vtdEcapReg(f: VtdFeatures): bigint {
  const pasid = f.maxPasidLog2 > 0;
  return (
    bit(0) |
    bit(1) |
    bit(2) |
    bit(3) |
    bit(4) |
    bit(6) |
    bit(7, f.snoopControl) |
    fieldAt(8, 0x50) |
    fieldAt(20, 15) |
    bit(25) |
    bit(26) |
    bit(29, pasid) |
    bit(33) |
    fieldAt(35, pasid ? f.maxPasidLog2 - 1 : 0) |
    bit(40, pasid) |
    bit(41) |
    bit(42, pasid) |
    bit(43) |
    bit(45, f.dirtyTracking) |
    bit(46) |
    bit(47) |
    bit(48) |
    bit(49)
  );
}

/** GET_HW_INFO data: IOMMU_HW_INFO_TYPE_INTEL_VTD with a 24-byte struct iommu_hw_info_vtd (flags 0: no errata). */
export function vtdHwInfo(f: VtdFeatures): HwInfo {
  return {
    type: IOMMU_HW_INFO_TYPE.INTEL_VTD,
    data: IommuHwInfoVtd.encode({ flags: 0, cap_reg: vtdCapReg(f), ecap_reg: vtdEcapReg(f) }),
  };
}
