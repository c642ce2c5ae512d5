/*
 * Unit test of native/spin.h, the learner both ends of the channel use to
 * bound their spin: fed gaps by hand (no clock), it must reach twice a gap
 * at once, whether or not the spin caught it, come back down toward twice
 * the usual gap after a slow one, halve after a gap no spin may catch, and
 * stay within its bounds. Prints "ok N checks" or FAIL lines.
 */
#include "../../native/spin.h"

#include <stdio.h>

static int checks, fails;

static void expect(const char *what, int64_t got, int64_t want)
{
	checks++;
	if (got != want) {
		fails++;
		printf("FAIL %s: %lld, want %lld\n", what, (long long)got, (long long)want);
	}
}

static void within(const char *what, int64_t got, int64_t lo, int64_t hi)
{
	checks++;
	if (got < lo || got > hi) {
		fails++;
		printf("FAIL %s: %lld, want %lld..%lld\n", what, (long long)got, (long long)lo,
		       (long long)hi);
	}
}

int main(void)
{
	struct spin_learner l;

	spin_init(&l, 4000, 200000);
	expect("starts at the minimum", l.ns, 4000);
	/* gaps longer than the budget (the spin ran out, a wake-up came later) */
	spin_learn(&l, 9000);
	expect("a gap over the budget: twice it at once", l.ns, 18000);
	spin_learn(&l, 30000);
	expect("a longer gap again: twice it", l.ns, 60000);
	spin_learn(&l, 150000);
	expect("twice a gap is capped at the maximum", l.ns, 200000);
	/* usual gaps of 10 us after a slow one: down a 64th of the way each time */
	spin_learn(&l, 10000);
	expect("decays a 64th toward twice the gap", l.ns, 200000 - (200000 - 20000) / 64);
	for (int i = 0; i < 1000; i++)
		spin_learn(&l, 10000);
	within("settles at twice the usual gap", l.ns, 20000, 20063);
	/* a gap no spin may catch (the peer was busy or gone) */
	spin_learn(&l, 200001);
	within("a gap over the maximum halves", l.ns, 10000, 10031);
	for (int i = 0; i < 10; i++)
		spin_learn(&l, 5000000);
	expect("never below the minimum", l.ns, 4000);
	spin_learn(&l, 100);
	expect("a tiny gap keeps the minimum", l.ns, 4000);
	spin_learn(&l, 0);
	expect("a zero gap keeps the minimum", l.ns, 4000);
	printf(fails ? "FAIL %d of %d checks\n" : "ok %d checks\n", fails ? fails : checks, checks);
	return fails != 0;
}
