/*
 * Poll readiness of engine files in a real process under `uiommu run --host
 * mock`: the fault queue fd (IOMMU_FAULT_QUEUE_ALLOC) and the vEVENTQ fd
 * (IOMMU_VEVENTQ_ALLOC) are not readable while empty, readable once the
 * mock device raised a page fault / a vEVENT, and not readable again after
 * the record was read (or the fault auto-responded by a detach); poll,
 * epoll and select all see the same, a thread or a forked child blocked in
 * poll wakes up, and edge-triggered epoll is woken by every new event. Each check prints
 * "ok <name>" or "FAIL <name>: ..." and the program exits non-zero on a
 * failure.
 *
 * Build: cc -I examples -o pollable test/server/pollable.c -pthread
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <unistd.h>

#include "iommufd-test.h"

/* ---- the iommufd selftest uAPI (src/abi/iommufd-test.ts) ---------------- */

#define IOMMU_HWPT_DATA_SELFTEST 0xdead
#define IOMMU_VIOMMU_TYPE_SELFTEST 0xdeadbeef
#define IOMMU_VEVENTQ_TYPE_SELFTEST 0xbeefbeef

struct iommu_hwpt_selftest {
	uint32_t iotlb;
};

struct iommu_viommu_selftest {
	uint32_t in_data;
	uint32_t out_data;
};

struct iommu_viommu_event_selftest {
	uint32_t virt_id;
};

/* ---- checks ------------------------------------------------------------ */

/* How long a queue that should be readable may take to say so (never hit). */
#define READY_TIMEOUT_MS 5000

static int iommufd;

static void check_detail(const char *name, int ok, const char *detail)
{
	printf(ok ? "ok %s\n" : "FAIL %s: %s\n", name, detail);
	failures += !ok;
}

/* An ioctl that must succeed. */
static int ioctl_ok(const char *name, int fd, unsigned long request, void *arg)
{
	int ret = ioctl(fd, request, arg);

	check_detail(name, ret == 0, strerror(errno));
	return ret == 0;
}

static int test_cmd(const char *name, struct iommu_test_cmd *cmd)
{
	cmd->size = sizeof(*cmd);
	return ioctl_ok(name, iommufd, IOMMU_TEST_CMD, cmd);
}

/*
 * poll, epoll and select on `fd` (with `epfd` watching it for EPOLLIN) must
 * all report it readable when `want` is set (waiting up to READY_TIMEOUT_MS)
 * and not readable otherwise (not waiting).
 */
static void expect_readable(const char *what, int fd, int epfd, int want)
{
	int timeout = want ? READY_TIMEOUT_MS : 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct epoll_event ev = { 0 };
	struct timeval tv = { .tv_sec = timeout / 1000 };
	char name[128], detail[128];
	fd_set rd;
	int n;

	n = poll(&p, 1, timeout);
	snprintf(name, sizeof(name), "%s: poll(POLLIN) %s", what, want ? "ready" : "not ready");
	snprintf(detail, sizeof(detail), "ret %d revents %#x (%s)", n, p.revents, strerror(errno));
	check_detail(name, want ? n == 1 && p.revents == POLLIN : n == 0, detail);

	n = epoll_wait(epfd, &ev, 1, timeout);
	snprintf(name, sizeof(name), "%s: epoll_wait %s", what, want ? "ready" : "not ready");
	snprintf(detail, sizeof(detail), "ret %d events %#x (%s)", n, ev.events, strerror(errno));
	check_detail(name, want ? n == 1 && ev.events == EPOLLIN && ev.data.fd == fd : n == 0, detail);

	FD_ZERO(&rd);
	FD_SET(fd, &rd);
	n = select(fd + 1, &rd, NULL, NULL, &tv);
	snprintf(name, sizeof(name), "%s: select %s", what, want ? "ready" : "not ready");
	snprintf(detail, sizeof(detail), "ret %d isset %d (%s)", n, FD_ISSET(fd, &rd) != 0,
		 strerror(errno));
	check_detail(name, want ? n == 1 && FD_ISSET(fd, &rd) : n == 0, detail);
}

/*
 * A queue fd is always writable (the kernel reports EPOLLOUT unconditionally):
 * poll for POLLIN|POLLOUT reports POLLOUT, with POLLIN iff `readable`.
 */
static void expect_writable(const char *what, int fd, int readable)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };
	short want = POLLOUT | (readable ? POLLIN : 0);
	char name[128], detail[96];
	int n = poll(&p, 1, 0);

	snprintf(name, sizeof(name), "%s: poll(POLLIN|POLLOUT) reports %s", what,
		 readable ? "POLLIN|POLLOUT" : "POLLOUT alone");
	snprintf(detail, sizeof(detail), "ret %d revents %#x", n, p.revents);
	check_detail(name, n == 1 && p.revents == want, detail);
}

/* An epoll instance watching `fd` for EPOLLIN (level-triggered). */
static int epoll_for(const char *what, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	char name[128];
	int epfd = epoll_create1(EPOLL_CLOEXEC);

	snprintf(name, sizeof(name), "%s: epoll_ctl ADD", what);
	check_detail(name, epfd >= 0 && epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0, strerror(errno));
	return epfd;
}

/*
 * Edge-triggered epoll on the empty queue `fd`: an event queued wakes it;
 * once reported, nothing more until another event is queued, which wakes
 * it again even though the first one was not read (the kernel wakes the
 * queue's waiters for every event). `drain` empties the queue after.
 */
static void edge_triggered(const char *what, int fd, struct iommu_test_cmd *trigger,
			   void (*drain)(int fd))
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.fd = fd };
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	char name[160], detail[96];
	const char *step[] = { "empty: no event", "one event queued: woken",
			       "nothing new: no event", "a second event queued: woken again" };
	int want[] = { 0, 1, 0, 1 };

	snprintf(name, sizeof(name), "%s: epoll_ctl ADD EPOLLET", what);
	check_detail(name, epfd >= 0 && epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0, strerror(errno));
	for (int i = 0; i < 4; i++) {
		int n;

		if (i == 1 || i == 3)
			test_cmd("TRIGGER with an edge-triggered waiter", trigger);
		ev.events = 0;
		n = epoll_wait(epfd, &ev, 1, want[i] ? READY_TIMEOUT_MS : 0);
		snprintf(name, sizeof(name), "%s, EPOLLET: %s", what, step[i]);
		snprintf(detail, sizeof(detail), "ret %d events %#x (%s)", n, ev.events,
			 strerror(errno));
		check_detail(name, want[i] ? n == 1 && ev.events == EPOLLIN : n == 0, detail);
	}
	drain(fd);
	close(epfd);
}

/* The new fd is a real, close-on-exec fd (the kernel installs it O_CLOEXEC). */
static void expect_new_fd(const char *what, int fd)
{
	char name[128];
	int flags = fcntl(fd, F_GETFD);

	snprintf(name, sizeof(name), "%s: fd %d is open with FD_CLOEXEC", what, fd);
	check_detail(name, fd > 2 && flags >= 0 && (flags & FD_CLOEXEC), strerror(errno));
}

/* A mock device attached to `ioas`. */
static int mock_domain(uint32_t ioas, uint32_t *stdev, uint32_t *idev)
{
	struct iommu_test_cmd cmd = { .op = IOMMU_TEST_OP_MOCK_DOMAIN, .id = ioas };

	if (!test_cmd("MOCK_DOMAIN", &cmd))
		return 0;
	*stdev = cmd.mock_domain.out_stdev_id;
	*idev = cmd.mock_domain.out_idev_id;
	return 1;
}

static int replace(const char *name, uint32_t stdev, uint32_t pt_id)
{
	struct iommu_test_cmd cmd = {
		.op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
		.id = stdev,
		.mock_domain_replace = { .pt_id = pt_id },
	};

	return test_cmd(name, &cmd);
}

/* A nesting-parent paging HWPT on `ioas` for device `idev`. */
static int nest_parent(uint32_t ioas, uint32_t idev, uint32_t *hwpt)
{
	struct iommu_hwpt_alloc a = {
		.size = sizeof(a),
		.flags = IOMMU_HWPT_ALLOC_NEST_PARENT,
		.dev_id = idev,
		.pt_id = ioas,
	};

	if (!ioctl_ok("HWPT_ALLOC NEST_PARENT", iommufd, IOMMU_HWPT_ALLOC, &a))
		return 0;
	*hwpt = a.out_hwpt_id;
	return 1;
}

/* A mock nested HWPT on `pt_id` (a parent HWPT or a vIOMMU), with a fault queue if `fault_id`. */
static int nested(uint32_t idev, uint32_t pt_id, uint32_t fault_id, uint32_t *hwpt)
{
	struct iommu_hwpt_selftest data = { .iotlb = 0 };
	struct iommu_hwpt_alloc a = {
		.size = sizeof(a),
		.flags = fault_id ? IOMMU_HWPT_FAULT_ID_VALID : 0,
		.dev_id = idev,
		.pt_id = pt_id,
		.data_type = IOMMU_HWPT_DATA_SELFTEST,
		.data_len = sizeof(data),
		.data_uptr = (uintptr_t)&data,
		.fault_id = fault_id,
	};

	if (!ioctl_ok(fault_id ? "HWPT_ALLOC nested with FAULT_ID_VALID"
			       : "HWPT_ALLOC nested on the vIOMMU",
		      iommufd, IOMMU_HWPT_ALLOC, &a))
		return 0;
	*hwpt = a.out_hwpt_id;
	return 1;
}

/* ---- (1) the fault queue ------------------------------------------------ */

/* Read one fault record from `fd` and answer it SUCCESS. */
static void drain_and_answer(const char *what, int fd)
{
	struct iommu_hwpt_pgfault rec;
	struct iommu_hwpt_page_response resp = { .code = IOMMUFD_PAGE_RESP_SUCCESS };
	char name[128], detail[96];
	ssize_t n = read(fd, &rec, sizeof(rec)), m = -1;

	if (n == sizeof(rec)) {
		resp.cookie = rec.cookie;
		m = write(fd, &resp, sizeof(resp));
	}
	snprintf(name, sizeof(name), "%s: read and answered", what);
	snprintf(detail, sizeof(detail), "read %zd, write %zd (%s)", n, m, strerror(errno));
	check_detail(name, n == sizeof(rec) && m == sizeof(resp), detail);
}

/* Read and answer the two faults edge_triggered() raised. */
static void drain_two_faults(int fd)
{
	drain_and_answer("fault fd: first of two faults", fd);
	drain_and_answer("fault fd: second of two faults", fd);
}

static void *poll_thread(void *arg)
{
	struct pollfd p = { .fd = *(int *)arg, .events = POLLIN };

	return (void *)(intptr_t)(poll(&p, 1, READY_TIMEOUT_MS) == 1 ? p.revents : -1);
}

/*
 * A thread, then a forked child, blocked in poll on the empty fault fd
 * wake up when the main thread raises a fault (the sleep only makes it
 * likely that they are already blocked; the outcome does not depend on it).
 */
static void blocked_pollers(int fd, struct iommu_test_cmd *trigger)
{
	char detail[96];
	pthread_t t;
	void *ret;
	pid_t pid;
	int status = -1;

	pthread_create(&t, NULL, poll_thread, &fd);
	usleep(20000);
	test_cmd("TRIGGER_IOPF with a thread blocked in poll", trigger);
	pthread_join(t, &ret);
	snprintf(detail, sizeof(detail), "revents %#lx", (long)(intptr_t)ret);
	check_detail("fault fd: a thread blocked in poll wakes with POLLIN", (intptr_t)ret == POLLIN,
	      detail);
	drain_and_answer("fault fd: the thread's fault", fd);

	pid = fork();
	if (pid == 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		_exit(poll(&p, 1, READY_TIMEOUT_MS) == 1 && p.revents == POLLIN ? 0 : 1);
	}
	usleep(20000);
	test_cmd("TRIGGER_IOPF with a forked child blocked in poll", trigger);
	waitpid(pid, &status, 0);
	snprintf(detail, sizeof(detail), "fork %d, wait status %#x", pid, status);
	check_detail("fault fd: a forked child blocked in poll on the inherited fd wakes with POLLIN",
	      pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, detail);
	drain_and_answer("fault fd: the child's fault", fd);
}

static void fault_queue(uint32_t ioas)
{
	const char *q = "fault fd";
	struct iommu_fault_alloc fa = { .size = sizeof(fa) };
	struct iommu_test_cmd trigger = {
		.op = IOMMU_TEST_OP_TRIGGER_IOPF,
		.trigger_iopf = {
			.pasid = 1,
			.grpid = 2,
			.perm = IOMMU_PGFAULT_PERM_READ | IOMMU_PGFAULT_PERM_WRITE,
			.addr = 0xdeadb000,
		},
	};
	struct iommu_hwpt_pgfault rec[2];
	struct iommu_hwpt_page_response resp;
	uint32_t stdev, idev, parent, iopf_hwpt;
	char detail[160];
	ssize_t n;
	int fd, epfd;

	if (!mock_domain(ioas, &stdev, &idev) || !nest_parent(ioas, idev, &parent))
		return;
	if (!ioctl_ok("FAULT_QUEUE_ALLOC", iommufd, IOMMU_FAULT_QUEUE_ALLOC, &fa))
		return;
	fd = (int)fa.out_fault_fd;
	expect_new_fd(q, fd);
	if (!nested(idev, parent, fa.out_fault_id, &iopf_hwpt) || !replace("MOCK_DOMAIN_REPLACE onto the IOPF HWPT", stdev, iopf_hwpt))
		return;
	epfd = epoll_for(q, fd);

	expect_readable("fault fd, empty", fd, epfd, 0);
	expect_writable("fault fd, empty", fd, 0);

	trigger.trigger_iopf.dev_id = idev;
	if (!test_cmd("TRIGGER_IOPF", &trigger))
		return;
	expect_readable("fault fd, one fault queued", fd, epfd, 1);
	expect_writable("fault fd, one fault queued", fd, 1);

	memset(rec, 0xa5, sizeof(rec));
	n = read(fd, rec, sizeof(rec));
	snprintf(detail, sizeof(detail), "read returned %zd (%s)", n, strerror(errno));
	check_detail("fault fd: read returns one iommu_hwpt_pgfault (40 bytes)", n == sizeof(rec[0]), detail);
	snprintf(detail, sizeof(detail),
		 "flags %#x dev_id %u (want %u) pasid %u grpid %u perm %#x addr %#llx length %u cookie %u",
		 rec[0].flags, rec[0].dev_id, idev, rec[0].pasid, rec[0].grpid, rec[0].perm,
		 (unsigned long long)rec[0].addr, rec[0].length, rec[0].cookie);
	check_detail("fault fd: the record holds the fault raised",
	      rec[0].flags == (IOMMU_PGFAULT_FLAGS_PASID_VALID | IOMMU_PGFAULT_FLAGS_LAST_PAGE) &&
		      rec[0].dev_id == idev && rec[0].pasid == 1 && rec[0].grpid == 2 &&
		      rec[0].perm == (IOMMU_PGFAULT_PERM_READ | IOMMU_PGFAULT_PERM_WRITE) &&
		      rec[0].__reserved == 0 && rec[0].addr == 0xdeadb000 && rec[0].length == 0 &&
		      rec[0].cookie != 0,
	      detail);

	expect_readable("fault fd, drained", fd, epfd, 0);
	n = read(fd, rec, sizeof(rec[0]));
	snprintf(detail, sizeof(detail), "read returned %zd (%s)", n, strerror(errno));
	check_detail("fault fd: read of an empty queue returns 0", n == 0, detail);

	resp.cookie = rec[0].cookie;
	resp.code = IOMMUFD_PAGE_RESP_SUCCESS;
	n = write(fd, &resp, sizeof(resp));
	snprintf(detail, sizeof(detail), "write returned %zd (%s)", n, strerror(errno));
	check_detail("fault fd: write of the page response (8 bytes)", n == sizeof(resp), detail);
	n = write(fd, &resp, sizeof(resp));
	snprintf(detail, sizeof(detail), "write returned %zd (%s)", n, strerror(errno));
	check_detail("fault fd: a second response to the same cookie is EINVAL", n == -1 && errno == EINVAL,
	      detail);
	expect_readable("fault fd, answered", fd, epfd, 0);

	/* readiness comes back with the next fault */
	if (test_cmd("TRIGGER_IOPF again", &trigger))
		expect_readable("fault fd, a second fault queued", fd, epfd, 1);
	drain_and_answer("fault fd: second fault", fd);
	expect_readable("fault fd, drained again", fd, epfd, 0);

	blocked_pollers(fd, &trigger);
	edge_triggered("fault fd", fd, &trigger, drain_two_faults);

	/* detaching the device answers its pending fault: the queue is empty again */
	if (test_cmd("TRIGGER_IOPF before a detach", &trigger))
		expect_readable("fault fd, a fault pending", fd, epfd, 1);
	if (replace("MOCK_DOMAIN_REPLACE back onto the IOAS", stdev, ioas))
		expect_readable("fault fd, the pending fault auto-responded", fd, epfd, 0);
	close(epfd);
}

/* ---- (2) the vEVENTQ ----------------------------------------------------- */

/* Read the two events edge_triggered() raised. */
static void drain_two_vevents(int fd)
{
	uint8_t buf[2 * (sizeof(struct iommufd_vevent_header) +
			 sizeof(struct iommu_viommu_event_selftest))];
	ssize_t n = read(fd, buf, sizeof(buf));
	char detail[64];

	snprintf(detail, sizeof(detail), "read returned %zd (%s)", n, strerror(errno));
	check_detail("vEVENTQ fd: both events read", n == sizeof(buf), detail);
}

static void veventq(uint32_t ioas)
{
	const char *q = "vEVENTQ fd";
	struct iommu_viommu_selftest vdata = { .in_data = 0xbadbeef };
	struct iommu_viommu_alloc va = {
		.size = sizeof(va),
		.type = IOMMU_VIOMMU_TYPE_SELFTEST,
		.data_len = sizeof(vdata),
		.data_uptr = (uintptr_t)&vdata,
	};
	struct iommu_veventq_alloc qa = {
		.size = sizeof(qa),
		.type = IOMMU_VEVENTQ_TYPE_SELFTEST,
		.veventq_depth = 2,
	};
	struct iommu_vdevice_alloc vd = { .size = sizeof(vd), .virt_id = 0x99 };
	struct iommu_test_cmd trigger = { .op = IOMMU_TEST_OP_TRIGGER_VEVENT };
	struct {
		struct iommufd_vevent_header hdr;
		struct iommu_viommu_event_selftest ev;
	} rec[2];
	uint32_t stdev, idev, parent, hwpt;
	char detail[160];
	ssize_t n;
	int fd, epfd;

	if (!mock_domain(ioas, &stdev, &idev) || !nest_parent(ioas, idev, &parent))
		return;
	va.dev_id = idev;
	va.hwpt_id = parent;
	if (!ioctl_ok("VIOMMU_ALLOC (selftest type)", iommufd, IOMMU_VIOMMU_ALLOC, &va))
		return;
	qa.viommu_id = va.out_viommu_id;
	if (!ioctl_ok("VEVENTQ_ALLOC", iommufd, IOMMU_VEVENTQ_ALLOC, &qa))
		return;
	fd = (int)qa.out_veventq_fd;
	expect_new_fd(q, fd);
	vd.viommu_id = va.out_viommu_id;
	vd.dev_id = idev;
	if (!ioctl_ok("VDEVICE_ALLOC", iommufd, IOMMU_VDEVICE_ALLOC, &vd))
		return;
	if (!nested(idev, va.out_viommu_id, 0, &hwpt) || !replace("MOCK_DOMAIN_REPLACE onto the nested HWPT", stdev, hwpt))
		return;
	epfd = epoll_for(q, fd);

	expect_readable("vEVENTQ fd, empty", fd, epfd, 0);
	expect_writable("vEVENTQ fd, empty", fd, 0);

	trigger.trigger_vevent.dev_id = idev;
	if (!test_cmd("TRIGGER_VEVENT", &trigger))
		return;
	expect_readable("vEVENTQ fd, one event queued", fd, epfd, 1);

	memset(rec, 0xa5, sizeof(rec));
	n = read(fd, rec, sizeof(rec));
	snprintf(detail, sizeof(detail), "read returned %zd (%s)", n, strerror(errno));
	check_detail("vEVENTQ fd: read returns one header and event (12 bytes)", n == sizeof(rec[0]),
	      detail);
	snprintf(detail, sizeof(detail), "flags %#x sequence %u virt_id %#x", rec[0].hdr.flags,
		 rec[0].hdr.sequence, rec[0].ev.virt_id);
	check_detail("vEVENTQ fd: first event, sequence 0, virt_id 0x99",
	      rec[0].hdr.flags == 0 && rec[0].hdr.sequence == 0 && rec[0].ev.virt_id == 0x99,
	      detail);

	expect_readable("vEVENTQ fd, drained", fd, epfd, 0);

	if (test_cmd("TRIGGER_VEVENT again", &trigger))
		expect_readable("vEVENTQ fd, a second event queued", fd, epfd, 1);
	n = read(fd, rec, sizeof(rec));
	snprintf(detail, sizeof(detail), "read returned %zd, sequence %u", n, rec[0].hdr.sequence);
	check_detail("vEVENTQ fd: second event, sequence 1", n == sizeof(rec[0]) && rec[0].hdr.sequence == 1,
	      detail);
	expect_readable("vEVENTQ fd, drained again", fd, epfd, 0);
	close(epfd);

	edge_triggered("vEVENTQ fd", fd, &trigger, drain_two_vevents);
}

int main(void)
{
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };

	setvbuf(stdout, NULL, _IOLBF, 0);
	iommufd = open("/dev/iommu", O_RDWR);
	check_detail("open /dev/iommu", iommufd >= 0, strerror(errno));
	if (iommufd >= 0 && ioctl_ok("IOAS_ALLOC", iommufd, IOMMU_IOAS_ALLOC, &alloc)) {
		fault_queue(alloc.out_ioas_id);
		veventq(alloc.out_ioas_id);
	}
	return failures != 0;
}
