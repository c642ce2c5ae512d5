/*
 * The fake tree's bulk writer and remover (src/server/sysfs.ts): the
 * some 400 directories, files and links of `uiommu run`'s tree in one call
 * each way. Through Node's fs each entry cost 10-40 us of wrapper code run
 * cold at every start; here it is the system calls alone.
 *
 * treeWrite(kinds, paths, data): entry i is kinds[i] at paths[i]:
 *   'd' a directory (one that exists is fine), data[i] unused;
 *   'f' a file holding data[i] (a string, as UTF-8, or a Uint8Array);
 *   'l' a symbolic link to the string data[i];
 *   's' a sparse file of data[i] bytes (a number).
 * Parents come before their entries. Answers undefined, or [i, errno] for
 * the first entry that failed (what was written before it stays); a bad
 * argument throws a TypeError.
 *
 * treeRemove(path): removes path and everything under it, reading each
 * directory once and unlinking by the entry's type (links are never
 * followed); a missing path is fine. Answers 0 or the errno of a failure.
 */
#define _GNU_SOURCE
#include "tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* [index, errno] of a failed entry, as treeWrite answers it. */
static napi_value failure(napi_env env, uint32_t index, int err)
{
	napi_value pair, v;

	napi_create_array_with_length(env, 2, &pair);
	napi_create_uint32(env, index, &v);
	napi_set_element(env, pair, 0, v);
	napi_create_int32(env, err, &v);
	napi_set_element(env, pair, 1, v);
	return pair;
}

/* A JS string as UTF-8 in a buffer that grows as needed; NULL on a non-string. */
static char *utf8(napi_env env, napi_value v, char **buf, size_t *cap, size_t *len)
{
	if (napi_get_value_string_utf8(env, v, NULL, 0, len) != napi_ok)
		return NULL;
	if (*len + 1 > *cap) {
		char *p = realloc(*buf, *len + 1);

		if (!p)
			return NULL;
		*buf = p;
		*cap = *len + 1;
	}
	napi_get_value_string_utf8(env, v, *buf, *cap, len);
	return *buf;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One entry; -1 with errno on failure, -2 on an argument of the wrong type. */
static int write_entry(napi_env env, char kind, const char *path, napi_value data, char **buf,
		       size_t *cap)
{
	size_t len = 0;
	const char *bytes;
	int fd, saved;

	switch (kind) {
	case 'd':
		return mkdir(path, 0777) < 0 && errno != EEXIST ? -1 : 0;
	case 'l':
		if (!utf8(env, data, buf, cap, &len))
			return -2;
		return symlink(*buf, path);
	case 's': {
		double size;

		if (napi_get_value_double(env, data, &size) != napi_ok || size < 0)
			return -2;
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
		if (fd < 0)
			return -1;
		saved = ftruncate(fd, (off_t)size) < 0 ? errno : 0;
		close(fd);
		errno = saved;
		return saved ? -1 : 0;
	}
	case 'f': {
		bool typed = false;

		napi_is_typedarray(env, data, &typed);
		if (typed) {
			napi_typedarray_type type;
			size_t n, off;
			napi_value ab;
			void *p;

			napi_get_typedarray_info(env, data, &type, &n, &p, &ab, &off);
			if (type != napi_uint8_array)
				return -2;
			bytes = p;
			len = n;
		} else if ((bytes = utf8(env, data, buf, cap, &len)) == NULL) {
			return -2;
		}
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
		if (fd < 0)
			return -1;
		saved = write_all(fd, bytes, len) < 0 ? errno : 0;
		close(fd);
		errno = saved;
		return saved ? -1 : 0;
	}
	default:
		return -2;
	}
}

static napi_value tree_write(napi_env env, napi_callback_info info)
{
	static const char usage[] = "treeWrite(kinds: string, paths: string[], data: unknown[])";
	size_t argc = 3, nkinds, cap = 0;
	napi_value argv[3];
	uint32_t n;
	char kinds[4096], path[PATH_MAX], *buf = NULL;
	napi_value ret = NULL;

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
	    napi_get_value_string_utf8(env, argv[0], kinds, sizeof(kinds), &nkinds) != napi_ok ||
	    napi_get_array_length(env, argv[1], &n) != napi_ok || n != nkinds ||
	    nkinds == sizeof(kinds) - 1) {
		napi_throw_type_error(env, NULL, usage);
		return NULL;
	}
	for (uint32_t i = 0; i < n; i++) {
		napi_value p, d;
		size_t plen;
		int r;

		if (napi_get_element(env, argv[1], i, &p) != napi_ok ||
		    napi_get_element(env, argv[2], i, &d) != napi_ok ||
		    napi_get_value_string_utf8(env, p, path, sizeof(path), &plen) != napi_ok ||
		    plen == sizeof(path) - 1) {
			napi_throw_type_error(env, NULL, usage);
			goto out;
		}
		r = write_entry(env, kinds[i], path, d, &buf, &cap);
		if (r == -2) {
			napi_throw_type_error(env, NULL, usage);
			goto out;
		}
		if (r < 0) {
			ret = failure(env, i, errno);
			goto out;
		}
	}
	napi_get_undefined(env, &ret);
out:
	free(buf);
	return ret;
}

/* Removes `name` under `dirfd` and all below it; -1 with errno on failure. */
static int remove_at(int dirfd, const char *name)
{
	struct dirent *e;
	DIR *d;
	int fd, err = 0;

	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno != ENOTDIR && errno != ELOOP)
			return -1;
		return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
	}
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	while (!err && (e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN)
			err = remove_at(fd, e->d_name) < 0 ? errno : 0;
		else if (unlinkat(fd, e->d_name, 0) < 0 && errno != ENOENT)
			err = errno;
	}
	closedir(d);
	if (err) {
		errno = err;
		return -1;
	}
	return unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -1 : 0;
}

static napi_value tree_remove(napi_env env, napi_callback_info info)
{
	size_t argc = 1, len;
	napi_value argv[1], ret;
	char path[PATH_MAX];

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
	    napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &len) != napi_ok ||
	    len == sizeof(path) - 1) {
		napi_throw_type_error(env, NULL, "treeRemove(path: string)");
		return NULL;
	}
	napi_create_int32(env, remove_at(AT_FDCWD, path) < 0 ? errno : 0, &ret);
	return ret;
}

void tree_init(napi_env env, napi_value exports)
{
	napi_value f;

	napi_create_function(env, "treeWrite", NAPI_AUTO_LENGTH, tree_write, NULL, &f);
	napi_set_named_property(env, exports, "treeWrite", f);
	napi_create_function(env, "treeRemove", NAPI_AUTO_LENGTH, tree_remove, NULL, &f);
	napi_set_named_property(env, exports, "treeRemove", f);
}
