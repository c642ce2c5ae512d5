/*
 * Attacks on the engine by processes speaking its protocol directly (raw
 * connections to UIOMMU_SOCK from children made with a raw clone, which the
 * preload library leaves alone), run under `uiommu run`. Each check prints
 * "ok <name>", "skip <name>: <why>" or "FAIL <name>: ..."; "figures" lines
 * give the engine's VmRSS (its parent, `uiommu run`) before and after each.
 *
 *   busy:    a second connection saying HELLO for a served pid gets EBUSY,
 *            the first goes on being served;
 *   status:  PROC_STATUS for another served pid is that process's status (read
 *            through its own handle: world-readable as in Linux), own pid too;
 *   token:   a client naming another client's fork token for its own child
 *            (FORK_END) gets nothing: the real child inherits, the thief's
 *            child is refused;
 *   recycle: (root, writable ns_last_pid) a client passes its connection to
 *            its parent and exits; the parent gets the pid reused by a
 *            process that is no client and sends requests on the old
 *            connection: EFAULT and ENOENT, the new process untouched; the
 *            same with a connection whose HELLO comes after the reuse.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "protocol.h"
#include "hostile-check.h"

#define IOMMU_IOAS_ALLOC 0x3b81
#define ENGINE_FD 60

struct ioas_alloc {
	uint32_t size, flags, out_ioas_id;
};

/* A child the preload library leaves alone: no fork wrapper, no connection of its own. */
static pid_t raw_fork(void)
{
	fflush(stdout);
	return (pid_t)syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
}

static int raw_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	strncpy(sa.sun_path, getenv(UIOMMU_ENV_SOCK), sizeof(sa.sun_path) - 1);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	return s;
}

/* One request on `s` as `pid`: the answer's ret, its errno in *err; -2 when the connection broke. */
static int64_t req(int s, uint32_t op, int pid, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
		   const char *path, int *err)
{
	struct uiommu_req rq = { .op = op, .pid = pid, .tid = pid, .a = { a0, a1, a2, a3 } };
	struct uiommu_resp rs;
	char payload[UIOMMU_MAX_PAYLOAD];

	rq.len = path ? (uint32_t)strlen(path) + 1 : 0;
	if (send(s, &rq, sizeof(rq), MSG_NOSIGNAL) != sizeof(rq) ||
	    (path && send(s, path, rq.len, MSG_NOSIGNAL) != (ssize_t)rq.len) ||
	    recv(s, &rs, sizeof(rs), MSG_WAITALL) != sizeof(rs) ||
	    (rs.len && recv(s, payload, rs.len, MSG_WAITALL) != (ssize_t)rs.len))
		return -2;
	*err = rs.err;
	return rs.ret;
}

/* A raw connection of this process, HELLO said (kind `kind`, `token`): its fd, or -1. */
static int hello(int kind, uint64_t token, int *err)
{
	int s = raw_connect();

	if (s < 0 || req(s, UIOMMU_OP_HELLO, getpid(), kind, token, 0, 0, NULL, err) != 0)
		return -1;
	return s;
}

/* Shared by the actors of one scenario; each waits for its step. */
struct stage {
	volatile int step;
	volatile int64_t token, r[8];
	volatile pid_t pid[4];
};

static void wait_step(struct stage *st, int step)
{
	while (st->step < step)
		sched_yield();
}

static void figures(const char *attack, long before)
{
	printf("figures attack=%s engine_rss_kb_before=%ld after=%ld\n", attack, before,
	       engine_rss_kb());
}

static void busy(void)
{
	int fd = open("/dev/iommu", O_RDWR), s = raw_connect(), err = 0;
	struct ioas_alloc a = { .size = sizeof(a) };
	char detail[96];
	long before = engine_rss_kb();
	int64_t ret = req(s, UIOMMU_OP_HELLO, getpid(), 0, 0, 0, 0, NULL, &err);

	snprintf(detail, sizeof(detail), "ret %lld errno %d", (long long)ret, err);
	check("busy: a second HELLO for a served pid is EBUSY", ret == -1 && err == EBUSY, detail);
	ret = ioctl(fd, IOMMU_IOAS_ALLOC, &a);
	snprintf(detail, sizeof(detail), "ret %lld %s", (long long)ret, strerror(errno));
	check("busy: the first connection is still served", ret == 0, detail);
	close(s);
	close(fd);
	figures("busy", before);
}

static void status(void)
{
	struct stage *st = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
				0);
	int fd = open("/dev/iommu", O_RDWR), err = 0, s;
	pid_t me = getpid(), r;
	char detail[96];
	long before = engine_rss_kb();

	r = raw_fork();
	if (r == 0) {
		s = hello(0, 0, &err);
		st->r[0] = s < 0 ? -3
				 : req(s, UIOMMU_OP_PROC_STATUS, getpid(), me, 0, 0, 0, NULL, &err);
		st->r[1] = err;
		st->r[2] = s < 0 ? -3
				 : req(s, UIOMMU_OP_PROC_STATUS, getpid(), getpid(), 0, 0, 0, NULL,
				       &err);
		_exit(0);
	}
	waitpid(r, NULL, 0);
	snprintf(detail, sizeof(detail), "ret %lld errno %lld", (long long)st->r[0],
		 (long long)st->r[1]);
	check("status: PROC_STATUS of another served pid is its status", st->r[0] > 0, detail);
	snprintf(detail, sizeof(detail), "ret %lld", (long long)st->r[2]);
	check("status: PROC_STATUS of the caller's own pid is answered", st->r[2] > 0, detail);
	close(fd);
	figures("status", before);
}

static void token(void)
{
	struct stage *st = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
				0);
	pid_t parent, thief;
	char detail[160];
	long before = engine_rss_kb();
	int err = 0;

	parent = raw_fork();
	if (parent == 0) {
		int s = hello(0, 0, &err);
		pid_t kid;

		req(s, UIOMMU_OP_OPEN, getpid(), ENGINE_FD, O_RDWR, 0, 0, "/dev/iommu", &err);
		st->token = req(s, UIOMMU_OP_FORK_BEGIN, getpid(), 0, 0, 0, 0, NULL, &err);
		kid = raw_fork();
		if (kid == 0) {
			wait_step(st, 5);
			s = raw_connect();
			st->r[3] = req(s, UIOMMU_OP_HELLO, getpid(), UIOMMU_HELLO_FORK_CHILD,
				       st->token, 0, 0, NULL, &err);
			st->r[4] = req(s, UIOMMU_OP_FSTAT, getpid(), ENGINE_FD, 0, 0, 0, NULL,
				       &err);
			st->step = 6;
			_exit(0);
		}
		st->pid[0] = kid;
		st->step = 1;
		wait_step(st, 2);
		req(s, UIOMMU_OP_FORK_END, getpid(), st->token, kid, 0, 0, NULL, &err);
		st->step = 3;
		waitpid(kid, NULL, 0);
		_exit(0);
	}
	thief = raw_fork();
	if (thief == 0) {
		int s;
		pid_t kid;

		wait_step(st, 1);
		s = hello(0, 0, &err);
		kid = raw_fork();
		if (kid == 0) {
			wait_step(st, 4);
			s = raw_connect();
			st->r[2] = req(s, UIOMMU_OP_HELLO, getpid(), UIOMMU_HELLO_FORK_CHILD,
				       st->token, 0, 0, NULL, &err);
			st->r[5] = err;
			st->step = 5;
			_exit(0);
		}
		st->r[0] = req(s, UIOMMU_OP_FORK_END, getpid(), st->token, kid, 0, 0, NULL, &err);
		st->step = 2;
		wait_step(st, 3);
		/* after the parent's FORK_END, before its child's HELLO: the old engine's window */
		st->r[1] = req(s, UIOMMU_OP_FORK_END, getpid(), st->token, kid, 0, 0, NULL, &err);
		st->step = 4;
		waitpid(kid, NULL, 0);
		wait_step(st, 6);
		_exit(0);
	}
	waitpid(parent, NULL, 0);
	waitpid(thief, NULL, 0);
	snprintf(detail, sizeof(detail), "thief's child HELLO ret %lld errno %lld",
		 (long long)st->r[2], (long long)st->r[5]);
	check("token: the thief's child does not get the token",
	      st->r[2] == -1 && st->r[5] == ENOENT, detail);
	snprintf(detail, sizeof(detail), "real child HELLO %lld, FSTAT of the inherited fd %lld",
		 (long long)st->r[3], (long long)st->r[4]);
	check("token: the real child inherits the fd table", st->r[3] == 0 && st->r[4] == 1,
	      detail);
	figures("token", before);
}

/* Pass fd over a Unix socket. */
static void send_fd(int via, int fd)
{
	char byte = 0, ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { &byte, 1 };
	struct msghdr m = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	sendmsg(via, &m, 0);
}

static int recv_fd(int via)
{
	char byte, ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &byte, 1 };
	struct msghdr m = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)
	};
	int fd = -1;

	if (recvmsg(via, &m, 0) == 1 && CMSG_FIRSTHDR(&m))
		memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof(int));
	return fd;
}

static struct ioas_alloc victim_arg = { .size = sizeof(struct ioas_alloc) };

/*
 * A client (saying HELLO first when `early`) hands its connection over and
 * exits; its pid goes to a process that is no client. Returns that
 * process's pid (its memory holds victim_arg) and the connection, or 0 when
 * the pid went elsewhere.
 */
static pid_t recycle(struct stage *st, int early, int *conn)
{
	int sv[2], err = 0, last = open("/proc/sys/kernel/ns_last_pid", O_WRONLY);
	char num[16];
	pid_t client, victim;

	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	client = raw_fork();
	if (client == 0) {
		int s = early ? hello(0, 0, &err) : raw_connect();

		if (early)
			req(s, UIOMMU_OP_OPEN, getpid(), ENGINE_FD, O_RDWR, 0, 0, "/dev/iommu",
			    &err);
		send_fd(sv[1], s);
		_exit(0);
	}
	*conn = recv_fd(sv[0]);
	waitpid(client, NULL, 0);
	close(sv[0]);
	close(sv[1]);
	snprintf(num, sizeof(num), "%d", client - 1);
	if (write(last, num, strlen(num)) < 0)
		return 0;
	close(last);
	victim = raw_fork();
	if (victim == 0) {
		wait_step(st, 1);
		st->r[7] = victim_arg.out_ioas_id;
		st->step = 2;
		_exit(0);
	}
	if (victim != client) {
		st->step = 1;
		waitpid(victim, NULL, 0);
		return 0;
	}
	return victim;
}

static void recycled(void)
{
	struct stage *st = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
				0);
	int conn, err = 0, tries;
	pid_t victim = 0;
	int64_t r1, r2, r3;
	char detail[160];
	long before = engine_rss_kb();

	if (access("/proc/sys/kernel/ns_last_pid", W_OK) != 0) {
		printf("skip recycle: /proc/sys/kernel/ns_last_pid is not writable (needs root)\n");
		printf("skip recycle: late HELLO\n");
		return;
	}
	for (tries = 0; tries < 20 && !victim; tries++) {
		st->step = 0;
		victim = recycle(st, 1, &conn);
	}
	if (!victim) {
		printf("skip recycle: another process took the pid 20 times\n");
	} else {
		r1 = req(conn, UIOMMU_OP_IOCTL, victim, ENGINE_FD, IOMMU_IOAS_ALLOC,
			 (uint64_t)(uintptr_t)&victim_arg, (uint64_t)-1, NULL, &err);
		snprintf(detail, sizeof(detail), "IOCTL ret %lld errno %d", (long long)r1, err);
		check("recycle: the old connection reaches no memory (EFAULT)",
		      r1 == -1 && err == EFAULT, detail);
		r2 = req(conn, UIOMMU_OP_PROC_STATUS, victim, victim, 0, 0, 0, NULL, &err);
		st->step = 1;
		waitpid(victim, NULL, 0);
		snprintf(detail, sizeof(detail),
			 "PROC_STATUS %lld errno %d, victim's out_ioas_id %lld", (long long)r2, err,
			 (long long)st->r[7]);
		check("recycle: the new process's status and memory are untouched",
		      r2 == -1 && err == ENOENT && st->r[7] == 0, detail);
		close(conn);
	}
	victim = 0;
	for (tries = 0; tries < 20 && !victim; tries++) {
		st->step = 0;
		victim = recycle(st, 0, &conn);
	}
	if (!victim) {
		printf("skip recycle: late HELLO: another process took the pid 20 times\n");
	} else {
		r1 = req(conn, UIOMMU_OP_HELLO, victim, 0, 0, 0, 0, NULL, &err);
		r2 = r1 == 0 ? req(conn, UIOMMU_OP_OPEN, victim, ENGINE_FD, O_RDWR, 0, 0,
				   "/dev/iommu", &err)
			     : -2;
		r3 = r1 == 0 ? req(conn, UIOMMU_OP_IOCTL, victim, ENGINE_FD, IOMMU_IOAS_ALLOC,
				   (uint64_t)(uintptr_t)&victim_arg, (uint64_t)-1, NULL, &err)
			     : -2;
		st->step = 1;
		waitpid(victim, NULL, 0);
		snprintf(detail, sizeof(detail),
			 "HELLO %lld, OPEN %lld, IOCTL %lld errno %d, victim's out_ioas_id %lld",
			 (long long)r1, (long long)r2, (long long)r3, err, (long long)st->r[7]);
		/* dropped at accept (the peer was gone), or bound to the dead peer: EFAULT */
		check("recycle: late HELLO on a dead peer's connection reaches no memory",
		      (r1 == -2 || (r3 == -1 && err == EFAULT)) && st->r[7] == 0, detail);
		close(conn);
	}
	figures("recycle", before);
}

int main(void)
{
	status();
	busy();
	token();
	recycled();
	return failures ? 1 : 0;
}
