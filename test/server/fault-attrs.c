/*
 * The debugfs attributes of failslab and fail_page_alloc as a program sees
 * them: the folder's files with their first contents, then for each file a
 * series of writes (numbers in every base, signs, overflow, garbage, a
 * write longer than the kernel's 24-byte buffer, booleans) with what write()
 * answered and what the file reads afterwards. The transcript is compared
 * with the one a real Linux 7.2 printed (fault-attrs.expected).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const writes[] = {
	"7",
	"0x10\n",
	"010",
	"08",
	"0x",
	"-1",
	"-0",
	"+5\n",
	"+-5",
	" 5",
	"5 ",
	"5\n\n",
	"abc",
	"",
	"4294967296",
	"4294967297",
	"18446744073709551615",
	"18446744073709551616",
	"9223372036854775807",
	"9223372036854775808",
	"-9223372036854775808",
	"-9223372036854775809",
	"00000000000000000000009",
	"000000000000000000000009x",
	"33",
	"on",
	"off",
	"Yes",
	"n",
	"e",
	"o",
	"2",
};

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* The file's contents, newlines shown as \n. */
static void show(const char *path)
{
	char buf[128];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (n < 0) {
		printf("(read: %s)", strerror(errno));
	} else {
		for (ssize_t i = 0; i < n; i++)
			buf[i] == '\n' ? printf("\\n") : putchar(buf[i]);
	}
	if (fd >= 0)
		close(fd);
}

static void attr(const char *dir, const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	printf("%s = ", name);
	show(path);
	putchar('\n');
	for (size_t i = 0; i < sizeof(writes) / sizeof(*writes); i++) {
		int fd = open(path, O_WRONLY);
		ssize_t r = fd < 0 ? -1 : write(fd, writes[i], strlen(writes[i]));

		printf("  \"");
		for (const char *c = writes[i]; *c; c++)
			*c == '\n' ? printf("\\n") : putchar(*c);
		printf("\": %s", r < 0 ? strerror(errno) : "ok");
		if (r >= 0 && r != (ssize_t)strlen(writes[i]))
			printf(" (%zd)", r);
		printf(" -> ");
		show(path);
		putchar('\n');
		if (fd >= 0)
			close(fd);
	}
}

int main(void)
{
	const char *dirs[] = { "/sys/kernel/debug/failslab", "/sys/kernel/debug/fail_page_alloc" };

	for (int d = 0; d < 2; d++) {
		struct dirent **list;
		int n = scandir(dirs[d], &list, NULL, by_name);

		printf("%s: %d files\n", dirs[d], n);
		for (int i = 0; i < n; i++) {
			if (list[i]->d_name[0] != '.')
				attr(dirs[d], list[i]->d_name);
			free(list[i]);
		}
		free(n >= 0 ? list : NULL);
	}
	return 0;
}
