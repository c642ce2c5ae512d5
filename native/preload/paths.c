/* Paths: normalisation and where a /sys, /dev or hidden /proc path goes. */
#include "preload.h"

int normalize(const char *in, char *out)
{
	size_t o = 0;

	out[0] = 0;
	while (*in) {
		const char *seg;
		size_t n;

		while (*in == '/')
			in++;
		seg = in;
		while (*in && *in != '/')
			in++;
		n = in - seg;
		if (n == 0 || (n == 1 && seg[0] == '.'))
			continue;
		if (n == 2 && seg[0] == '.' && seg[1] == '.') {
			while (o && out[o - 1] != '/')
				o--;
			if (o)
				o--;
			out[o] = 0;
			continue;
		}
		if (o + 1 + n >= PATH_MAX)
			return -1;
		out[o++] = '/';
		memcpy(out + o, seg, n);
		o += n;
		out[o] = 0;
	}
	if (!o) {
		out[0] = '/';
		out[1] = 0;
	}
	return 0;
}

int starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/*
 * The folders the emulated host owns (UIOMMU_ROOT/owned, one absolute path
 * a line, written by the engine): a path under one of them that the fake
 * tree lacks does not exist, rather than falling through to the host's.
 */
static char g_owned[8192];
static int g_owned_loaded;

static void load_owned(void)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	g_owned_loaded = 1;
	if (!g_rootlen || g_rootlen + sizeof("/owned") > sizeof(path))
		return;
	memcpy(path, g_root, g_rootlen);
	strcpy(path + g_rootlen, "/owned");
	fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = syscall(SYS_read, fd, g_owned, sizeof(g_owned) - 1);
	syscall(SYS_close, fd);
	g_owned[n > 0 ? n : 0] = 0;
}

/* `norm` is an owned folder or lies under one. */
static int owned(const char *norm)
{
	const char *line = g_owned;

	if (!g_owned_loaded)
		load_owned();
	while (*line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);

		if (len && !strncmp(norm, line, len) && (norm[len] == '/' || !norm[len]))
			return 1;
		if (!end)
			break;
		line = end + 1;
	}
	return 0;
}

enum route classify(const char *path, char *norm, char *fake)
{
	int saved = errno;
	enum route r = ROUTE_REAL;
	struct statx stx;
	int exists = 0;

	ensure_init();
	if (!g_active || !path || path[0] != '/' || normalize(path, norm))
		return ROUTE_REAL;
	if (hidden_proc_path(norm, fake)) {
		errno = saved;
		return ROUTE_FAKE; /* the socket's /proc entry: missing */
	}
	if (!starts(norm, "/sys/") && !starts(norm, "/dev/"))
		return ROUTE_REAL;
	if (engine_serves(norm))
		engine_need();
	if (g_rootlen && g_rootlen + strlen(path) < PATH_MAX) {
		memcpy(fake, g_root, g_rootlen);
		strcpy(fake + g_rootlen, path);
		exists = !sys_statx(AT_FDCWD, fake, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &stx);
		if (exists)
			r = ROUTE_FAKE;
		else if (owned(norm))
			r = ROUTE_FAKE; /* missing in an owned folder: ENOENT, never the host's file */
	}
	if (!strcmp(norm, "/dev/iommu") || (starts(norm, "/dev/vfio/") && norm[10])) {
		if (!exists || !S_ISDIR(stx.stx_mode))
			r = ROUTE_ENGINE;
	}
	errno = saved;
	return r;
}

int engine_attr(const char *norm)
{
	char marker[PATH_MAX];
	struct statx stx;
	int saved = errno, r;

	if (!g_rootlen ||
	    snprintf(marker, sizeof(marker), "%s/.engine%s", g_root, norm) >= (int)sizeof(marker))
		return 0;
	r = !sys_statx(AT_FDCWD, marker, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &stx);
	errno = saved;
	return r;
}

void strip_root(char *p)
{
	const char *roots[2] = { g_root, g_rootreal };
	size_t lens[2] = { g_rootlen, g_rootreallen };
	int i;

	for (i = 0; i < 2; i++) {
		if (lens[i] > 1 && !strncmp(p, roots[i], lens[i]) && p[lens[i]] == '/') {
			memmove(p, p + lens[i], strlen(p + lens[i]) + 1);
			return;
		}
	}
}

const char *fake_or_real(const char *path, int *dirfd, char *fake)
{
	char norm[PATH_MAX];

	if (classify(path, norm, fake) != ROUTE_FAKE)
		return path;
	if (dirfd)
		*dirfd = AT_FDCWD;
	return fake;
}
