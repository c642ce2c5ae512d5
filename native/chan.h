/*
 * The engine's end of a connection's channel (docs/engine-protocol.md,
 * *Channel*): the shared answer slots a library posts requests in and
 * waits on. Part of the uiommu_host addon, used by transport.c.
 */
#ifndef UIOMMU_CHAN_H
#define UIOMMU_CHAN_H

#include "protocol.h"
#include <stddef.h>
#include <stdint.h>

struct chan_end {
	struct uiommu_chan *page;	       /* the engine's own mapping; NULL: none */
	int bell;			       /* the doorbell eventfd (while page is set) */
	uint32_t seen[UIOMMU_CHAN_SLOTS];      /* the posted word last taken, per slot */
	uint32_t answering[UIOMMU_CHAN_SLOTS]; /* the sequence number being answered */
	unsigned busy;			       /* slots taken and not answered yet */
};

/*
 * CHANNEL: creates the channel and its doorbell, maps the channel and sends
 * the answer with the memfd and the eventfd on `sock`. 0 when answered (ret
 * 0 with the fds, or -1/EBUSY when the connection has one already,
 * -1/ENOMEM when none can be made), -1 when the peer is gone. The caller
 * watches the doorbell (readable when the library rang it).
 */
int chan_offer(struct chan_end *e, int sock);
/*
 * Takes the lowest posted request of a slot not being answered: its header
 * and payload are copied to `in` (at least 64 + UIOMMU_IOCTL_ARG_MAX
 * bytes); a length over UIOMMU_IOCTL_ARG_MAX is copied as 0 with
 * `*oversize` set. Returns the slot, or -1 when none is posted.
 */
int chan_take(struct chan_end *e, uint8_t *in, int *oversize);
/* Whether a request is posted in a slot not being answered. */
int chan_posted(const struct chan_end *e);
/*
 * Answers the request taken from `slot` with the response frame out[0, len):
 * writes it there, then its sequence number to done, and wakes the library
 * if it sleeps. A frame larger than the slot is answered -1/EIO.
 */
void chan_answer(struct chan_end *e, int slot, const uint8_t *out, size_t len, int32_t cpu);
/* Empties the doorbell after it rang (the caller looks at the slots next). */
void chan_bell_drain(const struct chan_end *e);
/* Unmaps the channel and closes its doorbell (the caller stopped watching it). */
void chan_release(struct chan_end *e);

#endif
