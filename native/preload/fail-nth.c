/*
 * /proc/<pid>/task/<tid>/fail-nth (and /proc/self/task/<tid>/fail-nth,
 * /proc/thread-self/fail-nth) of the calling process: fault injection
 * happens in the engine, so the file is the engine's.
 */
#include "preload.h"

int fail_nth_path(const char *path, char *canon)
{
	char norm[PATH_MAX];
	const char *p;
	long pid, tid;

	ensure_init();
	if (!g_active || !path || path[0] != '/' || normalize(path, norm) ||
	    !starts(norm, "/proc/"))
		return 0;
	p = norm + 6;
	if (!strcmp(p, "thread-self/fail-nth")) {
		pid = getpid();
		tid = gettid();
	} else {
		if (starts(p, "self/")) {
			pid = getpid();
			p += 5;
		} else if (!(pid = proc_number(&p)) || *p++ != '/') {
			return 0;
		}
		if (!starts(p, "task/"))
			return 0;
		p += 5;
		if (!(tid = proc_number(&p)) || strcmp(p, "/fail-nth"))
			return 0;
	}
	if (pid != getpid())
		return 0;
	snprintf(canon, PATH_MAX, "/proc/%ld/task/%ld/fail-nth", pid, tid);
	engine_need();
	return 1;
}
