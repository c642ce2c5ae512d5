/*
 * What the hostile test programs share: one "ok NAME" / "FAIL NAME: DETAIL"
 * line per check (counted in `failures`), and the engine's resident size.
 */
#ifndef HOSTILE_CHECK_H
#define HOSTILE_CHECK_H

#include <stdio.h>
#include <unistd.h>

static int failures;

static void check(const char *name, int ok, const char *detail)
{
	printf(ok ? "ok %s\n" : "FAIL %s: %s\n", name, detail);
	fflush(stdout);
	failures += !ok;
}

/* The engine's resident size in kB (it is our parent); -1 if unreadable. */
static long engine_rss_kb(void)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)getppid());
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

#endif
