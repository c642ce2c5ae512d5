/* The exec family: EXEC_BEGIN, the real exec with our environment kept, EXEC_ABORT. */
#include "preload.h"

/*
 * The environment for the new image: envp without any UIOMMU_EXEC, plus
 * UIOMMU_EXEC=<our pid> when `mark`, plus UIOMMU_SOCK, UIOMMU_ROOT and
 * LD_PRELOAD from our start if envp dropped them. mmap'd, so it is safe in a
 * fork child; exec_env_free() releases it.
 */
static char **exec_env(char *const envp[], int mark, char *pidvar, size_t *size)
{
	size_t n = 0, k = 0, i, j;
	char **env;

	while (envp && envp[n])
		n++;
	*size = (n + 2 + sizeof(g_keep_env) / sizeof(g_keep_env[0])) * sizeof(char *);
	env = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (env == MAP_FAILED)
		return NULL;
	for (i = 0; i < n; i++)
		if (!starts(envp[i], UIOMMU_ENV_EXEC "="))
			env[k++] = envp[i];
	for (j = 0; j < sizeof(g_keep_env) / sizeof(g_keep_env[0]); j++) {
		size_t len;

		if (!g_keep_env[j])
			continue;
		len = strchr(g_keep_env[j], '=') - g_keep_env[j] + 1;
		for (i = 0; i < n; i++)
			if (!strncmp(envp[i], g_keep_env[j], len))
				break;
		if (i == n)
			env[k++] = g_keep_env[j];
	}
	if (mark) {
		pid_t pid = getpid();
		char digits[12];
		int d = 0;
		size_t p = strlen(UIOMMU_ENV_EXEC "=");

		memcpy(pidvar, UIOMMU_ENV_EXEC "=", p);
		do {
			digits[d++] = '0' + pid % 10;
			pid /= 10;
		} while (pid);
		while (d)
			pidvar[p++] = digits[--d];
		pidvar[p] = 0;
		env[k++] = pidvar;
	}
	env[k] = NULL;
	return env;
}

enum exec_kind { EXEC_PATH, EXEC_SEARCH, EXEC_FD };

/*
 * EXEC_BEGIN, the real exec with signals as the caller had them, and
 * EXEC_ABORT if it returns. The lock is held throughout, so no other thread's
 * request falls between EXEC_BEGIN and the exec.
 */
static int do_exec(enum exec_kind kind, const char *path, int fd, char *const argv[],
		   char *const envp[])
{
	struct uiommu_resp rs;
	struct guard g;
	sigset_t all;
	char pidvar[32];
	char **env;
	size_t size;
	int begun, e;

	ensure_init();
	if (!g_active)
		goto plain;
	enter(&g);
	begun = call_simple(UIOMMU_OP_EXEC_BEGIN, 0, 0, &rs) == 0;
	env = exec_env(envp, begun, pidvar, &size);
	if (!env) {
		if (begun)
			call_simple(UIOMMU_OP_EXEC_ABORT, 0, 0, &rs);
		leave(&g);
		errno = ENOMEM;
		return -1;
	}
	pthread_sigmask(SIG_SETMASK, &g.old, NULL);
	if (kind == EXEC_PATH)
		real.execve(path, argv, env);
	else if (kind == EXEC_SEARCH)
		real.execvpe(path, argv, env);
	else
		real.fexecve(fd, argv, env);
	e = errno;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	if (begun)
		call_simple(UIOMMU_OP_EXEC_ABORT, 0, 0, &rs);
	munmap(env, size);
	leave(&g);
	errno = e;
	return -1;
plain:
	if (kind == EXEC_PATH)
		return real.execve(path, argv, envp);
	if (kind == EXEC_SEARCH)
		return real.execvpe(path, argv, envp);
	return real.fexecve(fd, argv, envp);
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	return do_exec(EXEC_PATH, path, -1, argv, envp);
}

EXPORT int execv(const char *path, char *const argv[])
{
	return do_exec(EXEC_PATH, path, -1, argv, environ);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	return do_exec(EXEC_SEARCH, file, -1, argv, envp);
}

EXPORT int execvp(const char *file, char *const argv[])
{
	return do_exec(EXEC_SEARCH, file, -1, argv, environ);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	return do_exec(EXEC_FD, NULL, fd, argv, envp);
}

/* glibc's execl* call execve inside libc, out of our reach: rebuild them on execve/execvpe. */
#define COLLECT_ARGS(arg0, argv)              \
	size_t argc = 1;                      \
	va_list ap;                           \
	va_start(ap, arg0);                   \
	while (va_arg(ap, const char *))      \
		argc++;                       \
	va_end(ap);                           \
	const char *argv[argc + 1];           \
	argv[0] = arg0;                       \
	va_start(ap, arg0);                   \
	for (size_t i_ = 1; i_ <= argc; i_++) \
		argv[i_] = va_arg(ap, const char *);

EXPORT int execl(const char *path, const char *arg, ...)
{
	COLLECT_ARGS(arg, argv);
	va_end(ap);
	return do_exec(EXEC_PATH, path, -1, (char *const *)argv, environ);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
	COLLECT_ARGS(arg, argv);
	va_end(ap);
	return do_exec(EXEC_SEARCH, file, -1, (char *const *)argv, environ);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
	char *const *envp;

	COLLECT_ARGS(arg, argv);
	envp = va_arg(ap, char *const *);
	va_end(ap);
	return do_exec(EXEC_PATH, path, -1, (char *const *)argv, envp);
}
