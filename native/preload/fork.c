/* fork and vfork: the child gets a connection of its own. */
#include "preload.h"

/*
 * FORK_BEGIN, the real fork, FORK_END, all under the lock so the engine's
 * snapshot matches the bitmap the child inherits. The child drops the
 * inherited connection (no shutdown: the parent still uses it) and says
 * HELLO kind 1 with the token on a connection of its own. A parent holding
 * nothing a child inherits gets token 0 (and sends no FORK_END): its child
 * connects at its first need of the engine, as a new process, if ever —
 * the selftest harness's runner forks each test's process without a call.
 */
EXPORT pid_t fork(void)
{
	struct uiommu_resp rs;
	struct guard g;
	uint64_t token = 0;
	int64_t begun;
	pid_t pid;
	int e;

	ensure_init();
	if (!g_active)
		return real.fork();
	enter(&g);
	begun = call_simple(UIOMMU_OP_FORK_BEGIN, 0, 0, &rs);
	if (begun > 0)
		token = rs.ret;
	g_fork_token = token;
	g_fork_parent = getpid();
	pid = real.fork();
	if (pid == 0) {
		lock_reinit();
		lose();
		if (token)
			connect_engine(UIOMMU_HELLO_FORK_CHILD, token);
		else if (begun == 0)
			engine_defer_child();
		g_fork_token = 0;
		pthread_setcancelstate(g.cancel, NULL);
		pthread_sigmask(SIG_SETMASK, &g.old, NULL);
		return 0;
	}
	e = errno;
	g_fork_token = 0;
	if (token)
		call_simple(UIOMMU_OP_FORK_END, token, (uint64_t)(int64_t)(pid < 0 ? -1 : pid),
			    &rs);
	leave(&g);
	errno = e;
	return pid;
}

/* vfork is fork here: the child gets its own connection (POSIX lets vfork be fork). */
EXPORT pid_t vfork(void)
{
	return fork();
}
