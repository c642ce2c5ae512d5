/**
 * The controller's fixed capacities, shared by the register file (CAP),
 * Identify Controller and the command handlers.
 */

/** Maximum Queue Entries Supported, 0-based (CAP.MQES): 1024 entries. */
export const NVME_MQES = 1023;
/** I/O submission and completion queues the controller can allocate. */
export const NVME_MAX_IO_QUEUES = 64;
/** MDTS: 2^8 memory pages of 4 KiB (1 MiB) per command. */
export const NVME_MDTS = 8;
