/*
 * Frames on the engine connection, and the connection's life: connect, HELLO,
 * adopt. The socket is used through system calls, not the interposed entry
 * points, which hide it from the program (lib_fd).
 */
#include "preload.h"

/*
 * Sends a frame: 0, -1 when the connection is gone, or -2 when the payload
 * (the program's memory) could not be read and nothing was sent (EFAULT:
 * a frame this small is copied into one buffer of the socket, whole or not
 * at all).
 */
static int send_all(const void *head, size_t headlen, const void *payload, size_t len)
{
	struct iovec iov[2] = {
		{ .iov_base = (void *)head, .iov_len = headlen },
		{ .iov_base = (void *)payload, .iov_len = len },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	while (msg.msg_iovlen) {
		ssize_t n = syscall(SYS_sendmsg, g_sock, &msg, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EFAULT && msg.msg_iov == iov && iov[0].iov_base == head)
			return -2;
		if (n <= 0)
			return -1;
		while (msg.msg_iovlen && (size_t)n >= msg.msg_iov->iov_len) {
			n -= msg.msg_iov->iov_len;
			msg.msg_iov++;
			msg.msg_iovlen--;
		}
		if (msg.msg_iovlen) {
			msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + n;
			msg.msg_iov->iov_len -= n;
		}
	}
	return 0;
}

/*
 * Blocks in recv() for the answer: no polling, so a client and an engine
 * sharing one CPU never take it from each other (the engine sleeps in
 * epoll_wait the same way).
 */
int recv_all(void *buf, size_t len)
{
	char sink[256];

	while (len) {
		size_t want = buf ? len : (len < sizeof(sink) ? len : sizeof(sink));
		ssize_t n = syscall(SYS_recvfrom, g_sock, buf ? buf : sink, want, 0, NULL, NULL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		if (buf)
			buf = (char *)buf + n;
		len -= n;
	}
	return 0;
}

void lose(void)
{
	if (g_sock >= 0)
		real.close(g_sock);
	g_sock = -1;
	chan_forget();
}

/* pid and tid are filled in when the request is sent (call()). */
struct uiommu_req new_req(uint32_t op)
{
	struct uiommu_req rq = { .op = op };

	return rq;
}

/*
 * Makes sure the connection belongs to this process. A child forked behind
 * our back (not through fork() below) must not talk on its parent's
 * connection: it drops its copy, and reconnects only if fork() left a token.
 */
int conn_ready(pid_t me)
{
	if (g_sock < 0)
		return 0;
	if (me == g_conn_pid)
		return 1;
	lose();
	if (g_fork_token && g_fork_parent == g_conn_pid)
		connect_engine(UIOMMU_HELLO_FORK_CHILD, g_fork_token);
	g_fork_token = 0;
	return g_sock >= 0;
}

/*
 * Receives an answer: its header into `rs` and up to `cap` payload bytes
 * into `out` (the rest is discarded), usually in one recvmsg. Only one
 * answer is ever in flight, so reading ahead takes nothing of another.
 */
static int recv_answer(struct uiommu_resp *rs, void *out, size_t cap)
{
	struct iovec iov[2] = {
		{ .iov_base = rs, .iov_len = sizeof(*rs) },
		{ .iov_base = out, .iov_len = cap },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = out && cap ? 2 : 1 };
	size_t got = 0, take;

	while (got < sizeof(*rs)) {
		ssize_t n = syscall(SYS_recvmsg, g_sock, &msg, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += n;
		if (got < sizeof(*rs)) {
			iov[0].iov_base = (char *)rs + got;
			iov[0].iov_len = sizeof(*rs) - got;
		}
	}
	got -= sizeof(*rs);
	take = rs->len < cap ? rs->len : cap;
	if (got > take)
		return -1; /* more than the answer announced: the stream is broken */
	return recv_all(out ? (char *)out + got : NULL, take - got) ||
	       recv_all(NULL, rs->len - take);
}

/*
 * One request/response exchange (caller holds the lock). Up to `cap` payload
 * bytes land in `out`, the rest is discarded. Returns -1 when the connection
 * is gone, -2 when `payload` could not be read (nothing was sent). errno is
 * preserved.
 */
static int call_raw(struct uiommu_req *rq, const void *payload, size_t len, struct uiommu_resp *rs,
		    void *out, size_t cap)
{
	int saved = errno, sent;

	rq->len = len;
	sent = send_all(rq, sizeof(*rq), payload, len);
	errno = saved;
	if (sent == -2)
		return -2;
	if (sent || recv_answer(rs, out, cap))
		goto lost;
	bar_zaps_seen(rs->reserved);
	errno = saved;
	return 0;
lost:
	lose();
	errno = saved;
	return -1;
}

void req_stamp(struct uiommu_req *rq, pid_t me)
{
	rq->pid = me;
	rq->tid = self_tid();
	rq->flags |= UIOMMU_REQ_MM_TRACKED | mm_changed_since_sent();
}

int call(struct uiommu_req *rq, const void *payload, size_t len, struct uiommu_resp *rs, void *out,
	 size_t cap)
{
	pid_t me = rq->pid ? rq->pid : self_pid();

	if (!conn_ready(me))
		return -1;
	req_stamp(rq, me);
	return call_raw(rq, payload, len, rs, out, cap);
}

struct uiommu_chan *open_channel(int *bell)
{
	struct uiommu_req rq = new_req(UIOMMU_OP_CHANNEL);
	struct uiommu_resp rs;
	struct iovec iov = { .iov_base = &rs, .iov_len = sizeof(rs) };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} ctl;
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
		.msg_controllen = sizeof(ctl.buf),
	};
	struct cmsghdr *cm;
	void *page = NULL;
	int saved = errno, fd = -1, fds[2] = { -1, -1 };
	ssize_t n;

	rq.pid = g_conn_pid;
	rq.tid = self_tid();
	if (send_all(&rq, sizeof(rq), NULL, 0))
		goto lost;
	do
		n = syscall(SYS_recvmsg, g_sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	cm = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
	    cm->cmsg_len == CMSG_LEN(sizeof(fds)))
		memcpy(fds, CMSG_DATA(cm), sizeof(fds));
	fd = fds[0];
	if (n <= 0 || ((size_t)n < sizeof(rs) && recv_all((char *)&rs + n, sizeof(rs) - n)) ||
	    recv_all(NULL, rs.len))
		goto lost;
	if (rs.ret == 0 && fd >= 0 && fds[1] >= 0) {
		page = mmap(NULL, UIOMMU_CHAN_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (page == MAP_FAILED)
			page = NULL;
	}
	if (fd >= 0)
		real.close(fd);
	if (page)
		*bell = lib_park(fds[1], 2);
	else if (fds[1] >= 0)
		real.close(fds[1]);
	errno = saved;
	return page;
lost:
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			real.close(fds[i]);
	lose();
	errno = saved;
	return NULL;
}

int64_t call_simple(uint32_t op, uint64_t a0, uint64_t a1, struct uiommu_resp *rs)
{
	struct uiommu_req rq = new_req(op);

	rq.a[0] = a0;
	rq.a[1] = a1;
	if (call(&rq, NULL, 0, rs, NULL, 0)) {
		rs->ret = -1;
		rs->err = EIO;
		rs->newfd = -1;
		return -1;
	}
	return rs->ret;
}

ssize_t fd_link(int fd, char *link, size_t size)
{
	char path[32] = "/proc/self/fd/", digits[12];
	int i = 0;
	size_t p = strlen(path);
	ssize_t r;

	do {
		digits[i++] = '0' + fd % 10;
		fd /= 10;
	} while (fd);
	while (i)
		path[p++] = digits[--i];
	path[p] = 0;
	r = real.readlinkat(AT_FDCWD, path, link, size - 1);
	if (r >= 0)
		link[r] = 0;
	return r;
}

/* True when `fd` is an eventfd, or when /proc cannot tell. */
static int is_placeholder(int fd)
{
	char link[64];

	if (fd_link(fd, link, sizeof(link)) < 0)
		return 1;
	return strcmp(link, "anon_inode:[eventfd]") == 0;
}

/*
 * The HELLO kind 2 answer lists the fds the engine holds for this pid: keep
 * those that survived exec (still open placeholders), CLOSE the others.
 */
static int adopt_fds(uint32_t len)
{
	size_t count = len / sizeof(int32_t), i;
	int32_t *fds;
	struct uiommu_resp rs;

	if (!len)
		return 0;
	fds = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fds == MAP_FAILED)
		return recv_all(NULL, len);
	if (recv_all(fds, len)) {
		munmap(fds, len);
		return -1;
	}
	for (i = 0; i < count; i++) {
		int fd = fds[i];

		if (fd >= 0 && fd < MAX_FDS && fd != g_sock && real.fcntl(fd, F_GETFD) >= 0 &&
		    is_placeholder(fd))
			bit_set(fd);
		else
			fds[i] = -1 - fd; /* to close */
	}
	for (i = 0; i < count && g_sock >= 0; i++)
		if (fds[i] < 0)
			call_simple(UIOMMU_OP_CLOSE, (uint64_t)(int64_t)(-1 - fds[i]), 0, &rs);
	munmap(fds, len);
	return 0;
}

/* Says HELLO on the fresh connection; returns the answer's ret, or -2 if the connection broke. */
static int64_t hello(int kind, uint64_t token)
{
	struct uiommu_req rq = new_req(UIOMMU_OP_HELLO);
	struct uiommu_resp rs;

	rq.pid = getpid();
	rq.tid = self_tid();
	rq.a[0] = kind;
	rq.a[1] = token;
	if (send_all(&rq, sizeof(rq), NULL, 0) || recv_all(&rs, sizeof(rs)))
		return -2;
	if (kind == UIOMMU_HELLO_EXEC && rs.ret >= 0) {
		if (adopt_fds(rs.len))
			return -2;
	} else if (recv_all(NULL, rs.len)) {
		return -2;
	}
	return rs.ret;
}

/*
 * Opens this process's connection (caller holds the lock or is alone) and
 * introduces the process. A kind 2 HELLO the engine refuses (it did not see
 * our EXEC_BEGIN) falls back to a new process.
 */
int connect_engine(int kind, uint64_t token)
{
	int saved = errno, s;
	int64_t ret;
	struct ucred cred;
	socklen_t credlen = sizeof(cred);

	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		goto out;
	if (connect(s, (struct sockaddr *)&g_addr, sizeof(g_addr))) {
		real.close(s);
		goto out;
	}
	g_sock = sock_park(s);
	s = g_sock;
	g_conn_pid = getpid();
	/* Let the engine read our memory even under Yama ptrace_scope 1. */
	if (!syscall(SYS_getsockopt, s, SOL_SOCKET, SO_PEERCRED, &cred, &credlen))
		prctl(PR_SET_PTRACER, (unsigned long)cred.pid, 0, 0, 0);
	ret = hello(kind, token);
	if (ret == -2 || (ret < 0 && kind != UIOMMU_HELLO_EXEC)) {
		lose();
	} else if (ret < 0) {
		lose();
		errno = saved;
		return connect_engine(UIOMMU_HELLO_NEW, 0);
	}
out:
	errno = saved;
	return g_sock >= 0 ? 0 : -1;
}
