/*
 * How long one side of a channel spins for the other before it sleeps
 * (docs/engine-protocol.md, *Channel*): the library waiting for an answer
 * (preload/chan.c) and the engine polling hot channels for the next request
 * (transport.c) use this one learner.
 *
 * It learns from the gap each wait observed, from its start to the event,
 * whether the spin caught the event or the event came after a sleep (its
 * wake-up included): a gap within `max` would have been caught by a spin
 * of twice it, so the budget rises to that at once, or, when it is already
 * longer, decays a 64th of the way toward it (slowly: a wait that outlasts
 * the spin costs a sleep and a wake-up, far more than spinning on); a gap beyond `max`, which
 * no spin may catch, halves the budget. The budget stays within [min, max].
 * So a budget that once fell below the usual gap grows back at the next
 * wait (a rule that grows only when the spin caught the event never does),
 * and one raised by a rare slow event comes back down over the next
 * hundred waits or so.
 */
#ifndef UIOMMU_SPIN_H
#define UIOMMU_SPIN_H

#include <stdint.h>

struct spin_learner {
	int64_t ns;	  /* how long the next spin may last */
	int64_t min, max; /* its bounds */
};

static inline void spin_init(struct spin_learner *l, int64_t min, int64_t max)
{
	l->ns = min;
	l->min = min;
	l->max = max;
}

/* After a wait: `gap` ns passed from its start to the event it waited for. */
static inline void spin_learn(struct spin_learner *l, int64_t gap)
{
	int64_t want = 2 * gap;

	if (gap > l->max)
		l->ns /= 2;
	else if (want >= l->ns)
		l->ns = want;
	else
		l->ns -= (l->ns - want) / 64;
	l->ns = l->ns < l->min ? l->min : l->ns > l->max ? l->max : l->ns;
}

#endif
