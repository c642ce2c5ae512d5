/*
 * This process's pid without a system call per request. The pid is kept in
 * a page of its own marked MADV_WIPEONFORK: the kernel hands every child that
 * gets a copy of our memory (fork, our vfork, which is fork, and any raw
 * clone(2) without CLONE_VM, such as syscall(SYS_clone, SIGCHLD, 0, ...))
 * that page zeroed, so the child asks the kernel for its own pid on its first
 * request. No wrapper has to remember to refresh it, and a child never sends
 * its parent's pid, so conn_ready() still finds that the connection is not
 * the child's. exec starts a fresh image with a fresh page.
 *
 * A raw clone with CLONE_VM and without CLONE_THREAD (a raw vfork, or
 * posix_spawn's child, which makes no library call) shares the page, and
 * with it everything else of ours: a call it makes before it execs is taken
 * for its parent's, on its parent's connection (before this cache it
 * dropped the shared connection for the parent as well). POSIX lets a vfork
 * child only exec or _exit.
 *
 * When the page cannot be had (mmap or MADV_WIPEONFORK refused, a kernel
 * before 4.14), every call asks the kernel, as before.
 */
#include "preload.h"

#include <sys/mman.h>

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

/* The kernel rounds this up to its page for mmap, madvise and munmap alike. */
#define PID_PAGE 4096

/* The page: its first word is our pid, 0 until asked (and in a child). */
static pid_t *g_pid_page;
static int g_pid_page_off; /* the kernel refused it: no cache */

/* The page, made on first use; NULL when there is none. Any thread may race here. */
static pid_t *pid_page(void)
{
	pid_t *p = __atomic_load_n(&g_pid_page, __ATOMIC_ACQUIRE), *none = NULL;

	if (p || __atomic_load_n(&g_pid_page_off, __ATOMIC_RELAXED))
		return p;
	p = (pid_t *)syscall(SYS_mmap, NULL, PID_PAGE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		__atomic_store_n(&g_pid_page_off, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	if (syscall(SYS_madvise, p, PID_PAGE, MADV_WIPEONFORK)) {
		syscall(SYS_munmap, p, PID_PAGE);
		__atomic_store_n(&g_pid_page_off, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	if (!__atomic_compare_exchange_n(&g_pid_page, &none, p, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		syscall(SYS_munmap, p, PID_PAGE);
		p = none;
	}
	return p;
}

pid_t self_pid(void)
{
	pid_t *p = pid_page(), pid;

	if (!p)
		return getpid();
	pid = __atomic_load_n(p, __ATOMIC_RELAXED);
	if (!pid) {
		pid = getpid();
		__atomic_store_n(p, pid, __ATOMIC_RELAXED);
	}
	return pid;
}

pid_t self_tid(void)
{
	static __thread pid_t t_pid, t_tid;
	pid_t pid = self_pid();

	if (t_pid != pid) {
		t_tid = (pid_t)syscall(SYS_gettid);
		t_pid = pid;
	}
	return t_tid;
}
