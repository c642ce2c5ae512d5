/*
 * The lazy engine (docs/engine-protocol.md, *Start-up*). Under the native
 * launcher the program starts before the engine serves, and
 * UIOMMU_READY=<engine pid>:<path> names the file the engine creates (by
 * rename) once its fake tree is written and its socket listens. A process
 * started so (not an exec the engine awaits) connects only at its first
 * need of the engine: a path the fake tree may hold (engine_serves), a
 * fail-nth file, another process's status file. A program that needs none
 * of these never waits. A fork child inheriting no engine state (FORK_BEGIN
 * answered 0, fork.c) is deferred the same way, with nothing to wait for. (The launcher runs only the default host, whose
 * pages are the machine's: the page size needs no engine.)
 *
 * The wait sleeps 1 ms between looks at the file rather than holding an
 * inotify fd, which would take an fd number from the program. It ends when
 * the file appears, or when the engine is gone (its pid) or the directory
 * is (the run ended): then there is no engine, and nothing connects.
 */
#include "preload.h"

#include <time.h>

static char g_ready[PATH_MAX];
static pid_t g_engine_pid;
/* the file was seen (or the engine is gone) */
static int g_waited;
/* this process has not connected yet and connects at its first need */
static int g_deferred;

int engine_defer(int kind)
{
	const char *v = getenv(UIOMMU_ENV_READY), *colon;
	char *end;
	long pid;

	if (!v || !(colon = strchr(v, ':')) || strlen(colon + 1) >= sizeof(g_ready))
		return 0;
	pid = strtol(v, &end, 10);
	if (end != colon || pid <= 0 || colon[1] != '/')
		return 0;
	g_engine_pid = (pid_t)pid;
	strcpy(g_ready, colon + 1);
	g_deferred = kind == UIOMMU_HELLO_NEW;
	return g_deferred;
}

/*
 * The top folders of the fake tree whatever the host (src/server/sysfs.ts;
 * test/cli/launch.test.ts checks every preset's tree against them).
 */
static const char *const g_served[] = { "/sys/bus",    "/sys/class", "/sys/devices", "/sys/kernel",
					"/sys/module", "/dev/iommu", "/dev/vfio" };

int engine_serves(const char *norm)
{
	size_t i, n;

	for (i = 0; i < sizeof(g_served) / sizeof(g_served[0]); i++) {
		n = strlen(g_served[i]);
		if (!strncmp(norm, g_served[i], n) && (norm[n] == '/' || !norm[n]))
			return 1;
	}
	return 0;
}

/* 1 when `path` exists (a system call: nothing of ours interposes). */
static int exists(const char *path)
{
	struct statx stx;

	return !sys_statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &stx);
}

/* The engine is still there to become ready: alive, and its directory too. */
static int engine_alive(void)
{
	char dir[PATH_MAX];
	char *slash;

	if (syscall(SYS_kill, g_engine_pid, 0) && errno == ESRCH)
		return 0;
	strcpy(dir, g_ready);
	slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = 0;
	return exists(dir);
}

/* Waits until the engine serves or is gone; once per process tree, outside the lock. */
static void engine_wait(void)
{
	const struct timespec ms = { 0, 1000000 };
	int saved = errno;

	if (__atomic_load_n(&g_waited, __ATOMIC_ACQUIRE))
		return;
	while (!exists(g_ready) && engine_alive())
		syscall(SYS_nanosleep, &ms, NULL);
	/* the root did not exist when init() resolved it */
	if (!g_rootreallen && g_rootlen && real.realpath(g_root, g_rootreal))
		g_rootreallen = strlen(g_rootreal);
	__atomic_store_n(&g_waited, 1, __ATOMIC_RELEASE);
	errno = saved;
}

void engine_need(void)
{
	struct guard g;

	ensure_init();
	if (!__atomic_load_n(&g_deferred, __ATOMIC_ACQUIRE))
		return;
	engine_wait();
	enter(&g);
	if (g_deferred) {
		g_deferred = 0;
		connect_engine(UIOMMU_HELLO_NEW, 0);
	}
	leave(&g);
}

void engine_defer_child(void)
{
	/* its parent has talked to the engine: it is ready, no waiting */
	__atomic_store_n(&g_waited, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&g_deferred, 1, __ATOMIC_RELEASE);
}

int engine_deferred(void)
{
	ensure_init();
	return __atomic_load_n(&g_deferred, __ATOMIC_ACQUIRE);
}
