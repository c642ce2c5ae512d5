/**
 * NVMe 1.4 facts the controller model uses: controller register offsets
 * and fields, queue entry layouts, opcodes, status codes, identify and log
 * page identifiers. Pure data.
 */

/** Controller registers (BAR0, little-endian). */
export const NVME_REG = {
  /** u64 RO: Controller Capabilities. */
  CAP: 0x00,
  /** u32 RO: Version. */
  VS: 0x08,
  /** u32 RW1S: Interrupt Mask Set. */
  INTMS: 0x0c,
  /** u32 RW1C: Interrupt Mask Clear. */
  INTMC: 0x10,
  /** u32 RW: Controller Configuration. */
  CC: 0x14,
  /** u32 RO: Controller Status. */
  CSTS: 0x1c,
  /** u32 RW: Admin Queue Attributes. */
  AQA: 0x24,
  /** u64 RW: Admin Submission Queue base. */
  ASQ: 0x28,
  /** u64 RW: Admin Completion Queue base. */
  ACQ: 0x30,
  /** First doorbell: SQ y tail at 0x1000 + 2y × stride, CQ y head at 0x1000 + (2y + 1) × stride. */
  DOORBELL: 0x1000,
} as const;

/** CC fields. */
export const NVME_CC = {
  EN: 1 << 0,
  CSS_SHIFT: 4,
  MPS_SHIFT: 7,
  AMS_SHIFT: 11,
  SHN_SHIFT: 14,
} as const;

/** CSTS fields. */
export const NVME_CSTS = {
  RDY: 1 << 0,
  CFS: 1 << 1,
  /** Shutdown status (bits 3:2): 0 normal, 1 in progress, 2 complete. */
  SHST_SHIFT: 2,
  SHST_COMPLETE: 2 << 2,
} as const;

/** Submission queue entry: 64 bytes; completion queue entry: 16 bytes. */
export const NVME_SQE_BYTES = 64;
export const NVME_CQE_BYTES = 16;

/** Admin command opcodes. */
export const NVME_ADMIN = {
  DELETE_SQ: 0x00,
  CREATE_SQ: 0x01,
  GET_LOG_PAGE: 0x02,
  DELETE_CQ: 0x04,
  CREATE_CQ: 0x05,
  IDENTIFY: 0x06,
  ABORT: 0x08,
  SET_FEATURES: 0x09,
  GET_FEATURES: 0x0a,
  ASYNC_EVENT: 0x0c,
  KEEP_ALIVE: 0x18,
} as const;

/** NVM command set (I/O) opcodes. */
export const NVME_IO = {
  FLUSH: 0x00,
  WRITE: 0x01,
  READ: 0x02,
  WRITE_ZEROES: 0x08,
  DSM: 0x09,
} as const;

/**
 * A completion status: SCT << 8 | SC (the CQE's status field without the
 * phase bit and without DNR).
 */
export const NVME_SC = {
  SUCCESS: 0x000,
  INVALID_OPCODE: 0x001,
  INVALID_FIELD: 0x002,
  DATA_TRANSFER_ERROR: 0x004,
  INTERNAL: 0x006,
  INVALID_NS: 0x00b,
  COMMAND_SEQUENCE: 0x00c,
  PRP_OFFSET_INVALID: 0x013,
  LBA_RANGE: 0x080,
  // command specific (SCT 1)
  INVALID_CQ: 0x100,
  INVALID_QID: 0x101,
  INVALID_QSIZE: 0x102,
  AER_LIMIT: 0x105,
  INVALID_VECTOR: 0x108,
  INVALID_LOG_PAGE: 0x109,
  INVALID_QUEUE_DELETION: 0x10c,
  FEATURE_NOT_SAVEABLE: 0x10d,
} as const;

/** Do Not Retry: set on every error status the model returns (retrying gives the same answer). */
export const NVME_DNR = 0x4000;

/** Identify CNS values. */
export const NVME_CNS = {
  NAMESPACE: 0x00,
  CONTROLLER: 0x01,
  ACTIVE_NS_LIST: 0x02,
  NS_DESCRIPTORS: 0x03,
} as const;

/** Feature identifiers. */
export const NVME_FEAT = {
  ARBITRATION: 0x01,
  POWER_MGMT: 0x02,
  TEMP_THRESHOLD: 0x04,
  ERROR_RECOVERY: 0x05,
  VOLATILE_WC: 0x06,
  NUM_QUEUES: 0x07,
  IRQ_COALESCE: 0x08,
  IRQ_CONFIG: 0x09,
  WRITE_ATOMIC: 0x0a,
  ASYNC_EVENT: 0x0b,
  KEEP_ALIVE: 0x0f,
} as const;

/** Log page identifiers. */
export const NVME_LOG = { ERROR: 0x01, SMART: 0x02, FW_SLOT: 0x03 } as const;

/** The NSID that names every namespace (Flush with a volatile write cache). */
export const NVME_NSID_ALL = 0xffffffff;
