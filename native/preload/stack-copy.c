/*
 * Copies to and from the calling thread's own stack without a system call.
 * Almost every ioctl argument (a struct, its out-array) lives in the
 * caller's frames, above the library's: memory that is mapped, readable and
 * writable, or the caller could not return into it. There read_user() and
 * write_own() copy with memcpy; anywhere else they stage (stage.c).
 *
 * The rule: [p, p+len) is copied directly when the library's frame and all
 * of it lie in this thread's stack, [lo, hi), at or above that frame, and no
 * interposed call has changed a mapping over that stack since it was looked
 * up. The bounds are looked up once per thread, at its first copy, from
 * /proc/self/maps with raw system calls (no allocation: a signal handler may
 * be the first): the mapping that holds the frame, read-write, which must be
 * the main thread's [stack] (hi its end), or hold the thread's descriptor
 * (glibc puts it at the top of a thread's stack; hi is the end of its page).
 * A thread first seen on another stack (sigaltstack, a coroutine), or
 * whose lookup raced a stack_touched(), looks again when its frame has left
 * that mapping, LOOKUPS times at most. Later, a frame outside [lo, hi) (a
 * signal handler on an alternate stack, a coroutine) and a pointer below
 * the frame or past hi (wild, or another stack) take the staging path,
 * which faults safely.
 *
 * Each looked-up stack is known process-wide (g_known). The program's
 * munmap, mprotect, mremap and MAP_FIXED mmap (mmap.c) call stack_touched()
 * before and after the real call: a stack they overlap is copied through
 * the stage from then on, for the life of the process (a fork child
 * inherits the mark with the memory), as do pkey_mprotect and
 * madvise(MADV_GUARD_INSTALL). Not seen: raw system calls on a stack, a
 * program freeing a thread's stack while the thread still runs, and more
 * than KNOWN threads' stacks at once (the others stage).
 */
#include "preload.h"

#define KNOWN 32
#define LOOKUPS 4
#define MIN_PAGE 4096u

/* A thread's stack as looked up; hi 0 when the entry is free. */
struct known_stack {
	uintptr_t lo, hi;
	int off; /* an interposed call changed a mapping over it */
};

static struct known_stack g_known[KNOWN];
static unsigned long g_touches; /* stack_touched() calls, for a lookup racing one */

enum { UNKNOWN, READY, NONE };

static __thread struct {
	uintptr_t lo, hi;
	int state, i, lookups;
} t_stack;

/* Parses hex at *s (advancing it). */
static uintptr_t hex(const char **s)
{
	uintptr_t v = 0;

	for (;; (*s)++) {
		char c = **s;
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;

		if (d < 0)
			return v;
		v = v << 4 | (uintptr_t)d;
	}
}

/*
 * The read-write mapping of /proc/self/maps that holds `at`: 1 with [*lo,
 * *hi) and *stack (it is the main thread's [stack]), 0 when none.
 */
static int mapping_at(uintptr_t at, uintptr_t *lo, uintptr_t *hi, int *stack)
{
	char buf[4096 + 256];
	size_t have = 0;
	int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
	int found = 0;

	if (fd < 0)
		return 0;
	for (;;) {
		ssize_t n = syscall(SYS_read, fd, buf + have, sizeof(buf) - 1 - have);
		char *line = buf, *nl;

		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = 0;
		while ((nl = strchr(line, '\n'))) {
			const char *s = line;
			uintptr_t start = hex(&s), end;

			*nl = 0;
			s++;
			end = hex(&s);
			if (start <= at && at < end) {
				*lo = start;
				*hi = end;
				*stack = !!strstr(s, "[stack]");
				found = s[1] == 'r' && s[2] == 'w';
				goto out;
			}
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
		/* no line is this long (a path is at most 4095 bytes) */
		if (have >= sizeof(buf) - 1)
			break;
	}
out:
	syscall(SYS_close, fd);
	return found;
}

/* Marks known stacks overlapping [start, end) off. */
static void mark(uintptr_t start, uintptr_t end)
{
	for (int i = 0; i < KNOWN; i++) {
		struct known_stack *k = &g_known[i];
		uintptr_t hi = __atomic_load_n(&k->hi, __ATOMIC_SEQ_CST);

		if (hi && start < hi && __atomic_load_n(&k->lo, __ATOMIC_SEQ_CST) < end)
			__atomic_store_n(&k->off, 1, __ATOMIC_SEQ_CST);
	}
}

/*
 * Enters this thread's stack [lo, hi) in g_known: in a free entry or over
 * a dead thread's stack it overlaps. Its index, or -1 when the table is full.
 */
static int known_add(uintptr_t lo, uintptr_t hi)
{
	for (int i = 0; i < KNOWN; i++) {
		struct known_stack *k = &g_known[i];
		uintptr_t was = __atomic_load_n(&k->hi, __ATOMIC_SEQ_CST);

		if (was && !(lo < was && __atomic_load_n(&k->lo, __ATOMIC_SEQ_CST) < hi))
			continue;
		if (!__atomic_compare_exchange_n(&k->hi, &was, hi, 0, __ATOMIC_SEQ_CST,
						 __ATOMIC_SEQ_CST))
			continue;
		/* off until look_up() knows no touch raced it */
		__atomic_store_n(&k->off, 1, __ATOMIC_SEQ_CST);
		__atomic_store_n(&k->lo, lo, __ATOMIC_SEQ_CST);
		return i;
	}
	return -1;
}

/* Looks this thread's stack up (at its first copy), `frame` being the library's. */
static void look_up(uintptr_t frame)
{
	unsigned long touches = __atomic_load_n(&g_touches, __ATOMIC_SEQ_CST);
	uintptr_t lo, hi, self = (uintptr_t)pthread_self();
	int stack, i;

	t_stack.state = NONE;
	t_stack.lookups++;
	t_stack.lo = t_stack.hi = frame; /* when not found: look again off this frame */
	if (!mapping_at(frame, &lo, &hi, &stack))
		return;
	t_stack.lo = lo; /* when not the stack: look again off this mapping */
	t_stack.hi = hi;
	if (syscall(SYS_gettid) != syscall(SYS_getpid) || !stack) {
		/* a thread's stack: its descriptor at the top, hi the end of that page */
		if (self <= frame || self >= hi)
			return;
		hi = (self | (MIN_PAGE - 1)) + 1;
	}
	i = known_add(lo, hi);
	if (i < 0)
		return;
	/* a touch that began after `touches` was read may have missed both the map and the entry */
	if (__atomic_load_n(&g_touches, __ATOMIC_SEQ_CST) != touches) {
		t_stack.lo = t_stack.hi = 0; /* the entry stays off; look again */
		return;
	}
	__atomic_store_n(&g_known[i].off, 0, __ATOMIC_SEQ_CST);
	t_stack.lo = lo;
	t_stack.hi = hi;
	t_stack.i = i;
	t_stack.state = READY;
}

int stack_holds(uintptr_t p, size_t len)
{
	uintptr_t frame = (uintptr_t)__builtin_frame_address(0);

	if (t_stack.state == UNKNOWN || (t_stack.state == NONE && t_stack.lookups < LOOKUPS &&
					 (frame < t_stack.lo || frame >= t_stack.hi)))
		look_up(frame);
	return t_stack.state == READY && frame >= t_stack.lo && frame < t_stack.hi && p >= frame &&
	       p < t_stack.hi && len <= t_stack.hi - p &&
	       !__atomic_load_n(&g_known[t_stack.i].off, __ATOMIC_ACQUIRE);
}

void stack_touched(uintptr_t addr, size_t len)
{
	__atomic_fetch_add(&g_touches, 1, __ATOMIC_SEQ_CST);
	mark(addr, addr + len < addr ? UINTPTR_MAX : addr + len);
}
