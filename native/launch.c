/*
 * The `uiommu` command's native launcher (native/build/uiommu, run by
 * bin/uiommu): `uiommu run [opts] -- PROGRAM ARGS...` starts PROGRAM at once
 * and the Node engine beside it, so a program that never touches an emulated
 * file never waits for Node to start (docs/engine-protocol.md, *Start-up*).
 *
 * The launcher makes the private 0700 directory and starts
 *   - the engine: `node bin/uiommu.js run ARGS...` with every argument as
 *     given (commander parses them), UIOMMU_ENGINE_DIR=<dir>, fd 3 a socket
 *     on which the launcher writes PROGRAM's status, stdin /dev/null, in
 *     a process group of its own (a terminal's Ctrl-C is PROGRAM's), killed if
 *     the launcher dies;
 *   - PROGRAM, with LD_PRELOAD, UIOMMU_SOCK, UIOMMU_ROOT and
 *     UIOMMU_READY=<engine pid>:<dir>/ready, the file the engine creates once
 *     its tree is written and its socket listens. The library waits for it
 *     before the first thing that needs the engine.
 * When PROGRAM exits, the launcher hands its status to the engine and waits
 * for it (its trace, state dump, model-bug messages) when output was asked
 * for or the engine is ready (a connection was possible); otherwise the
 * engine has nothing to say and is killed. The directory is always removed.
 * The exit status is the engine's when it was waited for (PROGRAM's status,
 * which it was given, unless it failed), else PROGRAM's (128+n for signal
 * n, 127 when it cannot start). An engine that ends before PROGRAM has
 * failed: PROGRAM is killed and the status is the engine's.
 *
 * The launcher decides nothing the engine decides: it runs `run` itself only
 * when every option is one whose setup it can vouch for (--trace and
 * --trace-json to a file it can open, --dump-state, --ui, --no-warn) or one
 * whose value only the engine can judge (--host, --kernel, --cap-add,
 * --personality), and the preload library is built. With one of the latter
 * the run is *gated*: PROGRAM starts only when the engine says on the status
 * socket that it serves ("ready <page size>\n": PROGRAM then gets
 * UIOMMU_PAGE_SIZE when it is not 0, and no UIOMMU_READY); an engine that
 * ends first has refused the options, with Node's message and status, and
 * PROGRAM never runs. Anything else (other subcommands, help, an option
 * without its value, a malformed command line) runs `node bin/uiommu.js` as
 * before, so its answers and errors are the same.
 *
 * The engine runs without NODE_EXTRA_CA_CERTS (it makes no TLS connection,
 * and Node reads that file at start: ~95 ms of CPU for Debian's bundle);
 * PROGRAM keeps it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "protocol.h"

extern char **environ;

/* The package's files, found from this executable (native/build/uiommu). */
static char g_preload[PATH_MAX], g_script[PATH_MAX];
/* The private directory and its ready file; the two children. */
static char g_dir[PATH_MAX], g_ready[PATH_MAX + 8];
static volatile pid_t g_engine = -1, g_program = -1;
/* A gated run waiting for the engine; the signal that stopped it meanwhile. */
static volatile sig_atomic_t g_gate, g_early;

/*
 * V8's flags for the engine, on Node's command line (a program under `run`
 * inherits none of them, as it would NODE_OPTIONS). --single-threaded-gc:
 * the engine's heap is small (~10 MB live) and its scavenges short, so GC
 * helper threads only take a CPU from the program it serves (on 2 CPUs, the
 * selftest's wall time 11% lower in 6 alternating runs of 6).
 */
static const char *const g_v8_flags[] = { "--single-threaded-gc" };
#define NFLAGS (sizeof(g_v8_flags) / sizeof(g_v8_flags[0]))

/* Runs `node FLAGS bin/uiommu.js ARGS...` in this process (argv[0] is ours). */
static int run_node(char **argv)
{
	int argc = 0, i;

	while (argv[argc])
		argc++;
	char *args[argc + 3 + NFLAGS];
	args[0] = "node";
	for (i = 0; i < (int)NFLAGS; i++)
		args[i + 1] = (char *)g_v8_flags[i];
	args[NFLAGS + 1] = g_script;
	for (i = 1; i <= argc; i++)
		args[i + 1 + NFLAGS] = argv[i];
	execvp("node", args);
	fprintf(stderr, "uiommu: node: %s\n", strerror(errno));
	return 127;
}

/* Fills g_preload and g_script from /proc/self/exe; -1 when it cannot be read. */
static int find_package(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return -1;
	exe[n] = 0;
	slash = strrchr(exe, '/');
	if (!slash)
		return -1;
	*slash = 0;
	if (snprintf(g_preload, sizeof(g_preload), "%s/libuiommu-preload.so", exe) >=
		    (int)sizeof(g_preload) ||
	    snprintf(g_script, sizeof(g_script), "%s/../../bin/uiommu.js", exe) >=
		    (int)sizeof(g_script))
		return -1;
	return 0;
}

/* A file the engine will open for writing ('w'): can we open it? ('-' is stderr.) */
static int writable(const char *path)
{
	int fd;

	if (!strcmp(path, "-"))
		return 1;
	/* no O_TRUNC (the engine truncates); a FIFO without a reader is left to the engine */
	fd = open(path, O_WRONLY | O_CREAT | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0666);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

/* Options with a value: the first three the launcher vouches for, the rest the engine judges. */
static const char *const g_valued[] = { "--trace",  "--trace-json", "--dump-state", "--host",
					"--kernel", "--cap-add",    "--personality" };
#define VOUCHED 3

/*
 * The index of PROGRAM in argv (argv[1] is "run") when every option before
 * it is one the launcher vouches for or gates on; *output is set when one
 * asks for the engine's output, *gated when the engine must judge one. 0
 * when the engine must decide (or report) it all.
 */
static int program_index(char **argv, int *output, int *gated)
{
	int i = 2;

	*output = 0;
	*gated = 0;
	while (argv[i]) {
		const char *a = argv[i], *value = NULL;
		size_t k;

		if (!strcmp(a, "--"))
			return argv[i + 1] ? i + 1 : 0;
		if (a[0] != '-')
			return i;
		if (!strcmp(a, "--no-warn")) {
			i++;
			continue;
		}
		if (!strcmp(a, "--ui")) {
			*output = 1;
			i++;
			continue;
		}
		for (k = 0; k < sizeof(g_valued) / sizeof(g_valued[0]); k++) {
			size_t n = strlen(g_valued[k]);

			if (!strcmp(a, g_valued[k])) {
				value = argv[++i];
				break;
			}
			if (!strncmp(a, g_valued[k], n) && a[n] == '=') {
				value = a + n + 1;
				break;
			}
		}
		/* an option of its own, a missing or dash-led value: commander's to judge */
		if (!value || !*value || (value[0] == '-' && (k >= VOUCHED || strcmp(value, "-"))))
			return 0;
		if (k >= VOUCHED)
			*gated = 1;
		else if (strcmp(g_valued[k], "--dump-state") && !writable(value))
			return 0;
		else
			*output = 1;
		i++;
	}
	return 0;
}

/*
 * Where the private directory goes, as `uiommu run` (src/cli/run.ts) picks
 * it: $TMPDIR when set, else /dev/shm when writable, else Node's tmpdir().
 */
static const char *runtime_parent(void)
{
	const char *t = getenv("TMPDIR");

	if (t && *t)
		return t;
	if (!access("/dev/shm", W_OK | X_OK))
		return "/dev/shm";
	if ((t = getenv("TMP")) && *t)
		return t;
	if ((t = getenv("TEMP")) && *t)
		return t;
	return "/tmp";
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

static void remove_dir(void)
{
	nftw(g_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The engine's child side: never returns. */
static void exec_engine(char **argv, int status_fd, pid_t launcher, int gated)
{
	int null = open("/dev/null", O_RDONLY);

	setpgid(0, 0);
	signal(SIGINT, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != launcher)
		_exit(1);
	if (null >= 0 && null != 0) {
		dup2(null, 0);
		close(null);
	}
	/* fd 3, kept across exec (dup2 onto itself would leave it close-on-exec) */
	if ((status_fd == 3 ? fcntl(3, F_SETFD, 0) : dup2(status_fd, 3)) < 0)
		_exit(1);
	setenv("UIOMMU_ENGINE_DIR", g_dir, 1);
	if (gated)
		setenv("UIOMMU_ENGINE_GATED", "1", 1);
	unsetenv("NODE_EXTRA_CA_CERTS");
	_exit(run_node(argv));
}

/* PROGRAM's child side: never returns. Its failure to start is reported as Node's spawn did. */
static void exec_program(char **prog, char **env)
{
	const char *name;

	signal(SIGINT, SIG_DFL);
	environ = env;
	execvp(prog[0], prog);
	name = strerrorname_np(errno);
	fprintf(stderr, "uiommu run: %s: spawn %s %s\n", prog[0], prog[0], name ? name : "EIO");
	_exit(127);
}

/*
 * PROGRAM's environment: ours with the library's variables, or NULL. Ungated
 * (page_size < 0) it waits for the engine through UIOMMU_READY; gated, the
 * engine serves already and a page size > 0 is the host's (as Node's run sets them).
 */
static char **program_env(pid_t engine, long page_size)
{
	static const char *const ours[] = { "LD_PRELOAD=", UIOMMU_ENV_SOCK "=", UIOMMU_ENV_ROOT "=",
					    UIOMMU_ENV_READY "=", UIOMMU_ENV_PAGE_SIZE "=" };
	/* an inherited page size stays unless the host has its own, as under Node */
	size_t nours = page_size > 0 ? 5 : 4;
	const char *old = getenv("LD_PRELOAD");
	size_t n = 0, k = 0, i, j;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 5, sizeof(*env));
	if (!env)
		return NULL;
	for (i = 0; i < n; i++) {
		for (j = 0; j < nours && strncmp(environ[i], ours[j], strlen(ours[j])); j++)
			;
		if (j == nours)
			env[k++] = environ[i];
	}
	if (asprintf(&env[k++], "LD_PRELOAD=%s%s%s", g_preload, old && *old ? " " : "",
		     old ? old : "") < 0 ||
	    asprintf(&env[k++], "%s=%s/engine.sock", UIOMMU_ENV_SOCK, g_dir) < 0 ||
	    asprintf(&env[k++], "%s=%s/root", UIOMMU_ENV_ROOT, g_dir) < 0)
		return NULL;
	if (page_size < 0 &&
	    asprintf(&env[k++], "%s=%d:%s", UIOMMU_ENV_READY, (int)engine, g_ready) < 0)
		return NULL;
	if (page_size > 0 && asprintf(&env[k++], "%s=%ld", UIOMMU_ENV_PAGE_SIZE, page_size) < 0)
		return NULL;
	return env;
}

/*
 * A gated run: the page size the engine reports once it serves ("ready
 * <n>\n" on the status socket), or -1 when it ended (or said something
 * else) first.
 */
static long engine_ready(int fd)
{
	char line[64];
	size_t got = 0;
	ssize_t n;
	char *end;
	long size;

	while (got < sizeof(line) - 1 && !memchr(line, '\n', got)) {
		n = read(fd, line + got, sizeof(line) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += n;
	}
	line[got] = 0;
	if (strncmp(line, "ready ", 6))
		return -1;
	size = strtol(line + 6, &end, 10);
	return *end == '\n' && size >= 0 ? size : -1;
}

/*
 * The signals `uiommu run` passes on to PROGRAM (SIGINT from a terminal
 * reaches it directly). Before a gated PROGRAM starts they (SIGINT too) end
 * the run, as they end Node's before it spawns PROGRAM.
 */
static void forward(int sig)
{
	if (g_gate) {
		g_early = sig;
		if (g_engine > 0)
			kill(g_engine, SIGKILL);
	} else if (g_program > 0) {
		kill(g_program, sig);
	}
}

/* SIGUSR1 (dump the state) is the engine's, once it has installed its handler (it is ready). */
static void forward_usr1(int sig)
{
	int saved = errno;

	if (g_engine > 0 && !access(g_ready, F_OK))
		kill(g_engine, sig);
	errno = saved;
}

/*
 * fork(), with the signals in `held` held in the parent until `*child`
 * names the child, so that forward() never misses it; the child gets the
 * mask as it was.
 */
static pid_t fork_into(volatile pid_t *child, const sigset_t *held)
{
	sigset_t old;
	pid_t pid;

	sigprocmask(SIG_BLOCK, held, &old);
	pid = fork();
	if (pid > 0)
		*child = pid;
	sigprocmask(SIG_SETMASK, &old, NULL);
	return pid;
}

static int wait_status(int st)
{
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

/* Runs PROGRAM (argv[first]...) beside the engine, once it serves if `gated`; the exit status. */
static int launch(char **argv, int first, int output, int gated)
{
	static const int forwarded[] = { SIGTERM, SIGHUP, SIGQUIT, SIGINT };
	int pair[2], st, status = -1, program_st = -1;
	long page_size = -1;
	char msg[16];
	pid_t me = getpid(), pid;
	struct sigaction sa = { .sa_flags = SA_RESTART };
	sigset_t held;
	char **env;
	size_t k;

	if (snprintf(g_dir, sizeof(g_dir), "%s/uiommu-XXXXXX", runtime_parent()) >=
		    (int)sizeof(g_dir) - 32 ||
	    !mkdtemp(g_dir)) {
		fprintf(stderr, "uiommu run: %s: %s\n", g_dir, strerror(errno));
		return 1;
	}
	snprintf(g_ready, sizeof(g_ready), "%s/ready", g_dir);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair)) {
		fprintf(stderr, "uiommu run: socketpair: %s\n", strerror(errno));
		remove_dir();
		return 1;
	}
	g_gate = gated;
	sa.sa_handler = forward;
	sigemptyset(&held);
	/* SIGINT only while gated: then it is ignored (a terminal's Ctrl-C is PROGRAM's) */
	for (k = 0; k < sizeof(forwarded) / sizeof(forwarded[0]) - !gated; k++) {
		sigaction(forwarded[k], &sa, NULL);
		sigaddset(&held, forwarded[k]);
	}
	sa.sa_handler = forward_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	if (!gated)
		signal(SIGINT, SIG_IGN);
	pid = fork_into(&g_engine, &held);
	if (pid == 0)
		exec_engine(argv, pair[0], me, gated);
	close(pair[0]);
	if (pid > 0 && gated) {
		page_size = engine_ready(pair[1]);
		g_gate = 0;
		signal(SIGINT, SIG_IGN);
		if (page_size < 0 || g_early) {
			/* it refused the options (its message is out) or a signal ended the run */
			kill(pid, SIGKILL);
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
			remove_dir();
			if (g_early)
				return 128 + g_early;
			return wait_status(st) ? wait_status(st) : 1;
		}
	}
	env = pid > 0 ? program_env(pid, page_size) : NULL;
	pid = env ? fork_into(&g_program, &held) : -1;
	if (pid == 0)
		exec_program(argv + first, env);
	if (pid < 0) {
		fprintf(stderr, "uiommu run: fork: %s\n", strerror(errno));
		program_st = 1;
		output = 0;
	}
	while (program_st < 0) {
		pid = waitpid(-1, &st, 0);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid < 0)
			break;
		if (pid == g_program) {
			program_st = wait_status(st);
		} else if (pid == g_engine) {
			/* the engine ended before PROGRAM: it failed, the run cannot go on */
			status = wait_status(st) ? wait_status(st) : 1;
			g_engine = -1;
			kill(g_program, SIGKILL);
		}
	}
	g_program = -1;
	if (g_engine > 0) {
		int n = snprintf(msg, sizeof(msg), "%d\n", program_st);

		/* waited for: it was asked for output, or a connection was possible */
		if (!(output || !access(g_ready, F_OK)) || send(pair[1], msg, n, MSG_NOSIGNAL) != n)
			kill(g_engine, SIGKILL);
		close(pair[1]);
		while ((pid = waitpid(g_engine, &st, 0)) < 0 && errno == EINTR)
			;
		if (pid == g_engine && !(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
			status = wait_status(st);
	}
	remove_dir();
	return status >= 0 ? status : program_st;
}

int main(int argc, char **argv)
{
	int first, output, gated;

	if (find_package()) {
		fprintf(stderr, "uiommu: cannot find the package from /proc/self/exe\n");
		return 127;
	}
	if (argc < 3 || strcmp(argv[1], "run") || access(g_preload, R_OK))
		return run_node(argv);
	first = program_index(argv, &output, &gated);
	if (!first)
		return run_node(argv);
	return launch(argv, first, output, gated);
}
