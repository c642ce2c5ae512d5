/**
 * The controller's features (Set/Get Features, NVMe 1.4 §5.21.1): current
 * values, defaults, and the rules each Set checks. No feature is saveable;
 * every one listed is changeable. Values are the CDW11 a Set takes and the
 * DW0 a Get returns.
 */
import { NVME_FEAT, NVME_SC } from './abi.ts';
import { NVME_MAX_IO_QUEUES } from './limits.ts';
import { nvmeFail } from './status.ts';

/** Temperature threshold key: TMPSEL (bits 19:16) and THSEL (bits 21:20) of CDW11. */
const THRESHOLD_SELECT = 0x3f0000;
/** The composite temperature's over-threshold default: WCTEMP. */
const OVER_TEMP_DEFAULT = 0x157;

export class NvmeFeatures {
  private readonly values = new Map<number, number>();
  private readonly thresholds = new Map<number, number>();
  private readonly vectorConfig = new Map<number, number>();
  /** I/O submission and completion queues granted by Number of Queues. */
  ioSqs = NVME_MAX_IO_QUEUES;
  ioCqs = NVME_MAX_IO_QUEUES;

  constructor(private readonly vectors: number) {
    this.reset();
  }

  /** Back to the defaults (controller reset). */
  reset(): void {
    this.values.clear();
    this.values.set(NVME_FEAT.VOLATILE_WC, 1);
    this.thresholds.clear();
    this.vectorConfig.clear();
    this.ioSqs = NVME_MAX_IO_QUEUES;
    this.ioCqs = NVME_MAX_IO_QUEUES;
  }

  /**
   * Set Features `fid` to `cdw11`; `ioQueues` says whether any I/O queue
   * exists (Number of Queues is then a Command Sequence Error). Returns DW0.
   */
  set(fid: number, cdw11: number, ioQueues: boolean): number {
    switch (fid) {
      case NVME_FEAT.NUM_QUEUES: {
        const nsqr = cdw11 & 0xffff;
        const ncqr = cdw11 >>> 16;
        if (nsqr === 0xffff || ncqr === 0xffff) nvmeFail(NVME_SC.INVALID_FIELD);
        if (ioQueues) nvmeFail(NVME_SC.COMMAND_SEQUENCE);
        this.ioSqs = Math.min(nsqr + 1, NVME_MAX_IO_QUEUES);
        this.ioCqs = Math.min(ncqr + 1, NVME_MAX_IO_QUEUES);
        return this.queues();
      }
      case NVME_FEAT.POWER_MGMT:
        if (cdw11 & 0x1f) nvmeFail(NVME_SC.INVALID_FIELD); // one power state (NPSS 0)
        break;
      case NVME_FEAT.TEMP_THRESHOLD:
        if ((cdw11 >>> 20) & 3 || ((cdw11 >>> 16) & 0xf) > 0) nvmeFail(NVME_SC.INVALID_FIELD);
        this.thresholds.set(cdw11 & THRESHOLD_SELECT, cdw11 & 0xffff);
        return 0;
      case NVME_FEAT.IRQ_CONFIG:
        if ((cdw11 & 0xffff) >= this.vectors) nvmeFail(NVME_SC.INVALID_FIELD);
        this.vectorConfig.set(cdw11 & 0xffff, cdw11 & 0x1ffff);
        return 0;
      case NVME_FEAT.VOLATILE_WC:
        this.values.set(fid, cdw11 & 1);
        return 0;
      case NVME_FEAT.ARBITRATION:
      case NVME_FEAT.ERROR_RECOVERY:
      case NVME_FEAT.IRQ_COALESCE:
      case NVME_FEAT.WRITE_ATOMIC:
      case NVME_FEAT.ASYNC_EVENT:
      case NVME_FEAT.KEEP_ALIVE:
        break;
      default:
        nvmeFail(NVME_SC.INVALID_FIELD);
    }
    this.values.set(fid, cdw11);
    return 0;
  }

  /** Get Features `fid` with SEL `sel` (0 current, 1 default, 2 saved, 3 capabilities). */
  get(fid: number, sel: number, cdw11: number): number {
    if (sel > 3) nvmeFail(NVME_SC.INVALID_FIELD);
    if (!this.known(fid)) nvmeFail(NVME_SC.INVALID_FIELD);
    if (sel === 3) return 0x4; // changeable, not saveable, not namespace specific
    const current = sel === 0;
    switch (fid) {
      case NVME_FEAT.NUM_QUEUES:
        return current
          ? this.queues()
          : ((NVME_MAX_IO_QUEUES - 1) << 16) | (NVME_MAX_IO_QUEUES - 1);
      case NVME_FEAT.TEMP_THRESHOLD: {
        const key = cdw11 & THRESHOLD_SELECT;
        const dflt = key === 0 ? OVER_TEMP_DEFAULT : 0;
        return current ? (this.thresholds.get(key) ?? dflt) : dflt;
      }
      case NVME_FEAT.IRQ_CONFIG: {
        const iv = cdw11 & 0xffff;
        if (iv >= this.vectors) nvmeFail(NVME_SC.INVALID_FIELD);
        return current ? (this.vectorConfig.get(iv) ?? iv) : iv;
      }
      case NVME_FEAT.VOLATILE_WC:
        return current ? this.values.get(fid)! : 1;
      default:
        return current ? (this.values.get(fid) ?? 0) : 0;
    }
  }

  private queues(): number {
    return ((this.ioCqs - 1) << 16) | (this.ioSqs - 1);
  }

  private known(fid: number): boolean {
    return (Object.values(NVME_FEAT) as number[]).includes(fid);
  }
}
