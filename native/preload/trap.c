/*
 * The trap behind device register pages (docs/device-mmap.md): a SIGSEGV
 * handler that, for a fault in a device mapping, decodes the faulting
 * instruction (x86-decode.c), forwards the access to the engine (MMIO),
 * completes it in the saved registers and steps past it; a zapped memory
 * page is faulted back in (MMIO_FAULT). A refusal of the device becomes
 * SIGBUS, as vfio-pci's fault handler gives. Every other fault goes to the
 * program's own SIGSEGV action: sigaction and signal are interposed so the
 * program installs and reads its action without displacing ours.
 */
#include "preload.h"

#include <asm/prctl.h>
#include <ucontext.h>

#include "x86-decode.h"

static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);
static struct sigaction g_prog; /* the program's SIGSEGV action while ours is installed */
static int g_installed;

/* gregs index of each register in x86_decode's numbering. */
static const int GREG[16] = { REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP,
			      REG_RSI, REG_RDI, REG_R8,	 REG_R9,  REG_R10, REG_R11,
			      REG_R12, REG_R13, REG_R14, REG_R15 };

static void resolve_sig(void)
{
	if (!real_sigaction)
		real_sigaction = dlsym(RTLD_NEXT, "sigaction");
}

/* Hands the fault to the program's SIGSEGV action (the default one refaults and dies). */
static void chain(int sig, siginfo_t *info, void *uc)
{
	struct sigaction prog = g_prog;
	sigset_t old;

	if (prog.sa_handler == SIG_DFL || prog.sa_handler == SIG_IGN) {
		struct sigaction dfl;

		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		real_sigaction(SIGSEGV, &dfl, NULL);
		return; /* the instruction faults again, now fatally */
	}
	if (prog.sa_flags & SA_RESETHAND)
		g_prog.sa_handler = SIG_DFL;
	pthread_sigmask(SIG_BLOCK, &prog.sa_mask, &old);
	if (prog.sa_flags & SA_SIGINFO)
		prog.sa_sigaction(sig, info, uc);
	else
		prog.sa_handler(sig);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* The device refused the access: SIGBUS at `addr`, as a vfio-pci fault gives. */
static void bus_error(void *addr)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	si.si_signo = SIGBUS;
	si.si_code = BUS_ADRERR;
	si.si_addr = addr;
	syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)syscall(SYS_gettid), SIGBUS, &si);
}

/* Flags of `a - b` (cmp) or `a & b` (test) at `size` bytes, as the CPU computes them. */
static uint64_t alu_flags(int test, unsigned size, uint64_t a, uint64_t b)
{
	uint64_t f;

#define ALU(op, suffix, type)                            \
	__asm__(op suffix " %2, %1\n\tpushfq\n\tpopq %0" \
		: "=r"(f)                                \
		: "r"((type)a), "r"((type)b)             \
		: "cc")
	switch (size * 2 + !!test) {
	case 2:
		ALU("cmp", "b", uint8_t);
		break;
	case 3:
		ALU("test", "b", uint8_t);
		break;
	case 4:
		ALU("cmp", "w", uint16_t);
		break;
	case 5:
		ALU("test", "w", uint16_t);
		break;
	case 8:
		ALU("cmp", "l", uint32_t);
		break;
	case 9:
		ALU("test", "l", uint32_t);
		break;
	case 16:
		ALU("cmp", "q", uint64_t);
		break;
	default:
		ALU("test", "q", uint64_t);
		break;
	}
#undef ALU
	return f;
}

/* Reads up to 15 instruction bytes at `rip` without faulting; returns how many. */
static size_t code_bytes(uintptr_t rip, uint8_t *buf)
{
	struct iovec local = { buf, 15 }, remote = { (void *)rip, 15 };
	ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);

	if (n > 0)
		return (size_t)n;
	/* the page after may be unmapped: read what this page holds */
	remote.iov_len = local.iov_len = 4096 - (rip & 4095) < 15 ? 4096 - (rip & 4095) : 15;
	n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
	return n > 0 ? (size_t)n : 0;
}

static void unknown_instruction(uintptr_t rip, const uint8_t *code, size_t n, void *addr)
{
	char hex[64];
	size_t i, o = 0;

	for (i = 0; i < n && o + 4 < sizeof(hex); i++)
		o += (size_t)snprintf(hex + o, sizeof(hex) - o, "%s%02x", i ? " " : "", code[i]);
	fprintf(stderr,
		"uiommu: the instruction at 0x%lx (bytes %s) touches device registers at %p "
		"through a BAR mapping, and it is not one uiommu can emulate (MOV, MOVZX, MOVSX, "
		"MOVSXD, CMP, TEST of 1-8 bytes; docs/device-mmap.md): SIGSEGV\n",
		(unsigned long)rip, hex, addr);
}

/* Performs the decoded access through the engine; 0, or -1 with errno (EIO: SIGBUS). */
static int emulate(const struct x86_insn *d, ucontext_t *uc, uintptr_t ea)
{
	greg_t *gr = uc->uc_mcontext.gregs;
	struct uiommu_req rq = new_req(UIOMMU_OP_MMIO);
	struct uiommu_resp rs;
	uint64_t value = 0, src = 0;
	int write = d->kind == X86_STORE || d->kind == X86_STORE_IMM;

	if (d->reg != X86_NO_REG)
		src = (uint64_t)gr[GREG[d->reg]] >> (d->high8 ? 8 : 0);
	if (d->has_imm)
		src = d->imm;
	rq.a[0] = ea;
	rq.a[1] = d->size;
	rq.a[2] = (uint64_t)write;
	rq.a[3] = src;
	if (call(&rq, NULL, 0, &rs, &value, sizeof(value)))
		return errno = EIO, -1;
	if (rs.ret < 0)
		return errno = rs.err, -1;
	if (d->size < 8)
		value &= (1ULL << (8 * d->size)) - 1;
	switch (d->kind) {
	case X86_LOAD: {
		greg_t *r = &gr[GREG[d->reg]];

		if (d->sign && d->size < 8 && (value >> (8 * d->size - 1)) & 1)
			value |= ~0ULL << (8 * d->size);
		if (d->high8)
			*r = (greg_t)(((uint64_t)*r & ~0xff00ULL) | ((value & 0xff) << 8));
		else if (d->reg_size >= 4)
			*r = (greg_t)(d->reg_size == 4 ? (value & 0xffffffffULL) : value);
		else {
			uint64_t m = (1ULL << (8 * d->reg_size)) - 1;

			*r = (greg_t)(((uint64_t)*r & ~m) | (value & m));
		}
		break;
	}
	case X86_CMP:
	case X86_TEST:
	case X86_CMP_REV: {
		uint64_t f = d->kind == X86_CMP_REV
				     ? alu_flags(0, d->size, src, value)
				     : alu_flags(d->kind == X86_TEST, d->size, value, src);

		gr[REG_EFL] = (greg_t)(((uint64_t)gr[REG_EFL] & ~0x8d5ULL) | (f & 0x8d5ULL));
		break;
	}
	default:
		break;
	}
	return 0;
}

static void on_segv(int sig, siginfo_t *info, void *ucv)
{
	ucontext_t *uc = ucv;
	greg_t *gr = uc->uc_mcontext.gregs;
	uintptr_t addr = (uintptr_t)info->si_addr, rip = (uintptr_t)gr[REG_RIP];
	int saved = errno, handled = 0, bus = 0, refuse = 0;
	struct bar_map *m;
	struct guard g;

	enter(&g);
	m = info->si_code == SEGV_ACCERR ? bar_map_at(addr) : NULL;
	if (m && bar_map_is_register(m, addr)) {
		uint8_t code[15];
		size_t n = code_bytes(rip, code);
		struct x86_insn d;
		uint64_t regs[16], seg = 0;
		int i, write;

		if (x86_decode(code, n, &d)) {
			unknown_instruction(rip, code, n, info->si_addr);
			refuse = 1;
		} else {
			for (i = 0; i < 16; i++)
				regs[i] = (uint64_t)gr[GREG[i]];
			if (d.seg)
				syscall(SYS_arch_prctl, d.seg == 0x64 ? ARCH_GET_FS : ARCH_GET_GS,
					&seg);
			write = d.kind == X86_STORE || d.kind == X86_STORE_IMM;
			uintptr_t ea = (uintptr_t)x86_address(&d, regs, rip + d.len, seg);

			if (!(m->prot & (write ? PROT_WRITE : PROT_READ)) ||
			    bar_map_at(ea + d.size - 1) != m) {
				/* the program's own protection, or past the mapping: a real fault */
			} else if (emulate(&d, uc, ea)) {
				bus = errno == EIO;
			} else {
				gr[REG_RIP] = (greg_t)(rip + d.len);
				handled = 1;
			}
		}
	} else if (m && m->zapped) {
		struct uiommu_resp rs;

		if (call_simple(UIOMMU_OP_MMIO_FAULT, addr, 0, &rs) == 0) {
			bar_map_faulted_in(m);
			handled = 1;
		} else {
			bus = rs.err == EIO;
		}
	}
	leave(&g);
	errno = saved;
	if (handled)
		return;
	if (bus) {
		bus_error(info->si_addr);
		return;
	}
	if (refuse) {
		struct sigaction dfl;

		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		real_sigaction(SIGSEGV, &dfl, NULL);
		return;
	}
	chain(sig, info, ucv);
}

void trap_install(void)
{
	struct sigaction sa;

	resolve_sig();
	if (g_installed)
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (real_sigaction(SIGSEGV, &sa, &g_prog) == 0)
		g_installed = 1;
}

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	resolve_sig();
	if (sig != SIGSEGV || !g_installed)
		return real_sigaction(sig, act, old);
	if (old)
		*old = g_prog;
	if (act)
		g_prog = *act;
	return 0;
}

EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
	struct sigaction sa, old;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, &old))
		return SIG_ERR;
	return old.sa_handler;
}
