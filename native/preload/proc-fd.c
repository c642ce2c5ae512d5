/*
 * The library's fds (its socket, its staging memfd) hidden from the
 * program's /proc: their entries in /proc/<self>/fd and fdinfo (also through
 * self, thread-self, task/<tid> and /dev/fd) do not exist for path calls (classify() routes it to a
 * missing file: ENOENT), and listings of those folders leave them out, as
 * for an fd that is not open.
 */
#include "preload.h"

/* Where a hidden entry's path calls go: a missing entry of the same folder. */
#define MISSING_ENTRY "/proc/self/fd/-1"

long proc_number(const char **p)
{
	long n = 0;

	if (**p < '1' || **p > '9')
		return 0;
	while (**p >= '0' && **p <= '9' && n <= INT_MAX)
		n = n * 10 + (*(*p)++ - '0');
	return n <= INT_MAX ? n : 0;
}

/* The length of the prefix of `norm` naming this process's fd or fdinfo folder, or 0. */
static size_t own_fd_dir(const char *norm)
{
	const char *p = norm;

	if (starts(p, "/dev/fd") && (p[7] == '/' || !p[7]))
		return 7;
	if (!starts(p, "/proc/"))
		return 0;
	p += 6;
	if (starts(p, "thread-self/")) {
		p += 12;
	} else {
		if (starts(p, "self/"))
			p += 5;
		else if (proc_number(&p) != getpid() || *p++ != '/')
			return 0;
		if (starts(p, "task/")) {
			p += 5;
			if (!proc_number(&p) || *p++ != '/')
				return 0;
		}
	}
	if (starts(p, "fdinfo") && (p[6] == '/' || !p[6]))
		return p + 6 - norm;
	if (starts(p, "fd") && (p[2] == '/' || !p[2]))
		return p + 2 - norm;
	return 0;
}

/* `name` is the number of one of the library's fds, in decimal. */
static int lib_name(const char *name)
{
	long n = proc_number(&name);

	return n && !*name && lib_fd((int)n);
}

int hidden_proc_path(const char *norm, char *fake)
{
	size_t n = own_fd_dir(norm);
	const char *p = norm + n + 1;
	long fd;

	if (!n || norm[n] != '/' || !(fd = proc_number(&p)) || !lib_fd((int)fd) ||
	    (*p && *p != '/'))
		return 0;
	strcpy(fake, MISSING_ENTRY);
	return 1;
}

/* Folder `path` (resolved) or open folder `fd` is this process's fd or fdinfo folder. */
static int own_fd_dir_at(int fd, const char *path)
{
	char link[PATH_MAX];
	int saved = errno, r;

	if (path)
		r = real.realpath(path, link) != NULL;
	else
		r = fd_link(fd, link, sizeof(link)) >= 0;
	r = r && own_fd_dir(link) == strlen(link);
	errno = saved;
	return r;
}

/* The entry `name` read from folder fd `fd` is one of the library's fds. */
static int hidden_entry(int fd, const char *name)
{
	return lib_name(name) && own_fd_dir_at(fd, NULL);
}

EXPORT struct dirent *readdir(DIR *d)
{
	struct dirent *e;

	ensure_init();
	while ((e = real.readdir(d)) && hidden_entry(dirfd(d), e->d_name))
		;
	return e;
}

/* struct dirent64 is struct dirent on 64-bit. */
EXPORT struct dirent64 *readdir64(DIR *d)
{
	return (struct dirent64 *)readdir(d);
}

static int do_readdir_r(DIR *d, struct dirent *entry, struct dirent **result)
{
	int r;

	ensure_init();
	while (!(r = real.readdir_r(d, entry, result)) && *result &&
	       hidden_entry(dirfd(d), (*result)->d_name))
		;
	return r;
}

EXPORT int readdir_r(DIR *d, struct dirent *entry, struct dirent **result)
{
	return do_readdir_r(d, entry, result);
}

EXPORT int readdir64_r(DIR *d, struct dirent64 *entry, struct dirent64 **result)
{
	return do_readdir_r(d, (struct dirent *)entry, (struct dirent **)result);
}

/* Drops the library's fds' records from a getdents64 answer of `len` bytes; the new length. */
static ssize_t drop_hidden(int fd, char *buf, ssize_t len)
{
	ssize_t off = 0;

	while (off < len) {
		struct dirent64 *e = (struct dirent64 *)(buf + off);
		unsigned short n = e->d_reclen;

		if (hidden_entry(fd, e->d_name)) {
			memmove(buf + off, buf + off + n, len - off - n);
			len -= n;
		} else {
			off += n;
		}
	}
	return len;
}

EXPORT ssize_t getdents64(int fd, void *buf, size_t len)
{
	ssize_t r, kept;

	ensure_init();
	do {
		r = syscall(SYS_getdents64, fd, buf, len);
		kept = r > 0 ? drop_hidden(fd, buf, r) : r;
	} while (r > 0 && !kept);
	return kept;
}

/* Takes the library's fds' entries out of a scandir list of folder `path`; the new count. */
static int scandir_drop(const char *path, struct dirent **list, int n)
{
	int i = 0;

	while (i < n) {
		if (lib_name(list[i]->d_name) && own_fd_dir_at(-1, path)) {
			free(list[i]);
			memmove(list + i, list + i + 1, (n - i - 1) * sizeof(*list));
			n--;
		} else {
			i++;
		}
	}
	return n;
}

EXPORT int scandir(const char *path, struct dirent ***list, dirent_filter filter,
		   dirent_compar compar)
{
	char fake[PATH_MAX];
	int n = real.scandir(fake_or_real(path, NULL, fake), list, filter, compar);

	return n > 0 ? scandir_drop(path, *list, n) : n;
}

/* struct dirent64 is struct dirent on 64-bit. */
EXPORT int scandir64(const char *path, struct dirent64 ***list,
		     int (*filter)(const struct dirent64 *),
		     int (*compar)(const struct dirent64 **, const struct dirent64 **))
{
	return scandir(path, (struct dirent ***)list, (dirent_filter)filter, (dirent_compar)compar);
}
