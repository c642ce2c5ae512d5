/*
 * Unit test of native/x86-decode.c over encodings made by the assembler:
 * generates every form of the decoder's instruction set (each register,
 * size, addressing form, immediate), assembles them with `as`, and checks
 * what x86_decode reports (kind, sizes, register, immediate, length) and the
 * address x86_address computes against the generator's own expectation.
 * Instructions outside the set must be refused. Prints "ok N cases" or
 * FAIL lines; argv[1] is a scratch directory.
 */
#include "../../native/preload/x86-decode.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *R64[16] = { "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
			       "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15" };
static const char *R32[16] = { "eax", "ecx", "edx",  "ebx",  "esp",  "ebp",  "esi",  "edi",
			       "r8d", "r9d", "r10d", "r11d", "r12d", "r13d", "r14d", "r15d" };
static const char *R16[16] = { "ax",  "cx",  "dx",   "bx",   "sp",   "bp",   "si",   "di",
			       "r8w", "r9w", "r10w", "r11w", "r12w", "r13w", "r14w", "r15w" };
static const char *R8[16] = { "al",  "cl",  "dl",   "bl",   "spl",  "bpl",  "sil",  "dil",
			      "r8b", "r9b", "r10b", "r11b", "r12b", "r13b", "r14b", "r15b" };
static const char *HI8[4] = { "ah", "ch", "dh", "bh" };

/* One generated instruction and what the decoder must say about it. */
struct expect {
	int refuse; /* outside the set: x86_decode must answer -1 */
	enum x86_kind kind;
	unsigned size, reg_size;
	int sign, reg, high8, has_imm;
	uint64_t imm;
	uint64_t addr; /* the effective address under `regs`, next RIP = record + len */
	int rip_rel;   /* addr is relative to the next instruction */
	int seg;
};

#define MAX_CASES 40000
static struct expect cases[MAX_CASES];
static int ncases;
static FILE *asmf;
static uint64_t regs[16];

static const char *reg_name(unsigned size, int r)
{
	return size == 8 ? R64[r] : size == 4 ? R32[r] : size == 2 ? R16[r] : R8[r];
}

static char sfx(unsigned size)
{
	return size == 8 ? 'q' : size == 4 ? 'l' : size == 2 ? 'w' : 'b';
}

static uint64_t mask(unsigned size)
{
	return size >= 8 ? ~0ULL : (1ULL << (8 * size)) - 1;
}

/* Emit one record: its length byte, the instruction, padding to 32 bytes. */
static void emit(const struct expect *e, const char *fmt, ...)
{
	va_list ap;

	if (ncases == MAX_CASES) {
		fprintf(stderr, "FAIL too many cases\n");
		exit(1);
	}
	cases[ncases++] = *e;
	fprintf(asmf, ".balign 32, 0xcc\n.byte 2f-1f\n1: ");
	va_start(ap, fmt);
	vfprintf(asmf, fmt, ap);
	va_end(ap);
	fprintf(asmf, "\n2:\n");
}

/* A memory operand: its text and its address under `regs`. */
struct mem {
	char text[64];
	uint64_t addr;
	int rip_rel, seg, needs_rex;
};

static int nmems;
static struct mem mems[400];

static void add_mem(uint64_t addr, int rip_rel, int seg, int needs_rex, const char *fmt, ...)
{
	va_list ap;
	struct mem *m = &mems[nmems++];

	va_start(ap, fmt);
	vsnprintf(m->text, sizeof(m->text), fmt, ap);
	va_end(ap);
	m->addr = addr;
	m->rip_rel = rip_rel;
	m->seg = seg;
	m->needs_rex = needs_rex;
}

static void make_mems(void)
{
	static const int64_t disps[] = { 0, 0x7f, -0x80, 0x12345678, -0x1000 };
	int b, i, s, d;

	for (b = 0; b < 16; b++) {
		for (d = 0; d < 5; d++) {
			add_mem(regs[b] + (uint64_t)disps[d], 0, 0, b >= 8, "%s%lld(%%%s)",
				disps[d] < 0 ? "-" : "", (long long)llabs(disps[d]), R64[b]);
		}
	}
	for (i = 0; i < 16; i++) {
		if (i == 4)
			continue; /* rsp cannot be an index */
		for (s = 1; s <= 8; s *= 2) {
			b = (i * 5 + s) % 16;
			add_mem(regs[b] + regs[i] * s + 8, 0, 0, b >= 8 || i >= 8,
				"8(%%%s,%%%s,%d)", R64[b], R64[i], s);
		}
		add_mem(regs[i] * 8 + 0x40, 0, 0, i >= 8, "0x40(,%%%s,8)", R64[i]);
	}
	add_mem(0x12345678, 0, 0, 0, "0x12345678");
	add_mem(0x1234, 1, 0, 0, "0x1234(%%rip)");
	add_mem((uint64_t)-0x20, 1, 0, 0, "-0x20(%%rip)");
	add_mem((regs[3] + 0x10) & 0xffffffff, 0, 0, 0, "0x10(%%ebx)");
	add_mem((regs[9] + regs[0] * 2 - 4) & 0xffffffff, 0, 0, 1, "-4(%%r9d,%%eax,2)");
	add_mem(regs[0] + 0x10, 0, 0x64, 0, "%%fs:0x10(%%rax)");
	add_mem(regs[5] + 8, 0, 0x65, 0, "%%gs:8(%%rbp)");
}

static void gen(void)
{
	static const uint64_t imms[] = {
		0, 1, 0x7f, 0x80, 0xffffffffffffff80ULL, 0x1234, 0x7fffffff, 0xffffffff80000000ULL
	};
	unsigned size, rs;
	int m, r, k;

	for (m = 0; m < nmems; m++) {
		const struct mem *mm = &mems[m];
		struct expect e = { .addr = mm->addr, .rip_rel = mm->rip_rel, .seg = mm->seg };

		for (size = 1; size <= 8; size *= 2) {
			for (r = 0; r < 16; r++) {
				/* keep the table reasonable: every register with a few operands */
				if (m % 7 != r % 7 && m > 4)
					continue;
				e.size = e.reg_size = size;
				e.reg = r;
				e.sign = e.high8 = e.has_imm = 0;
				e.imm = 0;
				e.kind = X86_LOAD;
				emit(&e, "mov%c %s, %%%s", sfx(size), mm->text, reg_name(size, r));
				e.kind = X86_STORE;
				emit(&e, "mov%c %%%s, %s", sfx(size), reg_name(size, r), mm->text);
				e.kind = X86_CMP;
				emit(&e, "cmp%c %%%s, %s", sfx(size), reg_name(size, r), mm->text);
				e.kind = X86_CMP_REV;
				emit(&e, "cmp%c %s, %%%s", sfx(size), mm->text, reg_name(size, r));
				e.kind = X86_TEST;
				emit(&e, "test%c %%%s, %s", sfx(size), reg_name(size, r), mm->text);
				/* zero/sign extension into wider registers */
				for (rs = 2; rs <= 8; rs *= 2) {
					if (size >= rs || size > 2)
						continue;
					e.reg_size = rs;
					e.kind = X86_LOAD;
					e.sign = 0;
					emit(&e, "movz%c%c %s, %%%s", sfx(size), sfx(rs), mm->text,
					     reg_name(rs, r));
					e.sign = 1;
					emit(&e, "movs%c%c %s, %%%s", sfx(size), sfx(rs), mm->text,
					     reg_name(rs, r));
				}
				if (size == 4) {
					e.reg_size = 8;
					e.sign = 1;
					e.kind = X86_LOAD;
					emit(&e, "movslq %s, %%%s", mm->text, R64[r]);
				}
				e.reg_size = size;
				e.sign = 0;
			}
			if (size == 1 && !mm->needs_rex) {
				for (r = 0; r < 4; r++) {
					e.size = e.reg_size = 1;
					e.reg = r;
					e.high8 = 1;
					e.has_imm = 0;
					e.kind = X86_LOAD;
					emit(&e, "movb %s, %%%s", mm->text, HI8[r]);
					e.kind = X86_STORE;
					emit(&e, "movb %%%s, %s", HI8[r], mm->text);
					e.reg_size = 4;
					e.high8 = 0;
					e.kind = X86_LOAD;
					emit(&e, "movzbl %s, %%%s", mm->text, R32[r]);
				}
				e.high8 = 0;
			}
			for (k = 0; k < 8; k++) {
				uint64_t v = imms[k];

				/* an immediate the instruction can carry (imm8 for bytes, imm16, imm32 sign-extended) */
				if ((size == 1 && v > 0xff && v < 0xffffffffffffff80ULL) ||
				    (size == 2 && v > 0xffff && v < 0xffffffffffff8000ULL) ||
				    (size == 8 && v > 0x7fffffff && v < 0xffffffff80000000ULL))
					continue;
				if (size == 4 && v > 0xffffffffULL && v < 0xffffffff80000000ULL)
					continue;
				e.size = e.reg_size = size;
				e.reg = X86_NO_REG;
				e.high8 = e.sign = 0;
				e.has_imm = 1;
				e.imm = v & mask(size);
				e.kind = X86_STORE_IMM;
				emit(&e, "mov%c $%lld, %s", sfx(size), (long long)(int64_t)v,
				     mm->text);
				e.kind = X86_CMP;
				emit(&e, "cmp%c $%lld, %s", sfx(size), (long long)(int64_t)v,
				     mm->text);
				e.kind = X86_TEST;
				emit(&e, "test%c $%lld, %s", sfx(size), (long long)(int64_t)v,
				     mm->text);
			}
		}
	}
	/* 64-bit absolute addresses (A0-A3) */
	{
		struct expect e = { .kind = X86_LOAD,
				    .size = 4,
				    .reg_size = 4,
				    .reg = 0,
				    .addr = 0x1122334455667788ULL };

		emit(&e, "movabs 0x1122334455667788, %%eax");
		e.kind = X86_STORE;
		emit(&e, "movabs %%eax, 0x1122334455667788");
		e.size = e.reg_size = 8;
		emit(&e, "movabs %%rax, 0x1122334455667788");
		e.size = e.reg_size = 1;
		e.kind = X86_LOAD;
		emit(&e, "movabs 0x1122334455667788, %%al");
		e.size = e.reg_size = 2;
		emit(&e, "movabs 0x1122334455667788, %%ax");
	}
	/* outside the set: must be refused */
	{
		static const char *no[] = {
			"addl %eax, (%rbx)",
			"orl $1, (%rbx)",
			"lock incl (%rax)",
			"xchg %eax, (%rbx)",
			"rep movsb",
			"movdqa (%rax), %xmm0",
			"movl %eax, %ebx",
			"incl (%rax)",
			"vmovdqu (%rax), %ymm0",
			"movdir64b (%rax), %rbx",
			"lock cmpxchg %ecx, (%rdx)",
			"notl (%rax)",
			"pushq (%rax)",
			"movnti %eax, (%rbx)",
			"cmpl %eax, %ebx",
		};
		struct expect e = { .refuse = 1 };
		size_t i;

		for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
			emit(&e, "%s", no[i]);
	}
}

int main(int argc, char **argv)
{
	char path_s[512], path_o[512], path_b[512], cmd[4096];
	unsigned char *bin;
	long nbin;
	FILE *f;
	int i, fails = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s SCRATCH_DIR\n", argv[0]);
		return 2;
	}
	for (i = 0; i < 16; i++)
		regs[i] = 0x100000000ULL * (unsigned)(i + 1) + 0x111ULL * (unsigned)i +
			  0x80000000ULL;
	snprintf(path_s, sizeof(path_s), "%s/cases.s", argv[1]);
	snprintf(path_o, sizeof(path_o), "%s/cases.o", argv[1]);
	snprintf(path_b, sizeof(path_b), "%s/cases.bin", argv[1]);
	asmf = fopen(path_s, "w");
	if (!asmf)
		return perror("cases.s"), 1;
	fprintf(asmf, ".text\n");
	make_mems();
	gen();
	fprintf(asmf, ".balign 32, 0xcc\n");
	fclose(asmf);
	snprintf(cmd, sizeof(cmd), "as --64 -o %s %s && objcopy -O binary -j .text %s %s", path_o,
		 path_s, path_o, path_b);
	if (system(cmd) != 0) {
		printf("FAIL assembling the cases\n");
		return 1;
	}
	f = fopen(path_b, "rb");
	if (!f)
		return perror("cases.bin"), 1;
	fseek(f, 0, SEEK_END);
	nbin = ftell(f);
	fseek(f, 0, SEEK_SET);
	bin = malloc((size_t)nbin);
	if (!bin || fread(bin, 1, (size_t)nbin, f) != (size_t)nbin)
		return perror("read"), 1;
	fclose(f);
	if (nbin != 32L * ncases) {
		printf("FAIL %ld bytes for %d records\n", nbin, ncases);
		return 1;
	}
	for (i = 0; i < ncases; i++) {
		const struct expect *e = &cases[i];
		const unsigned char *rec = bin + 32 * i;
		unsigned len = rec[0];
		struct x86_insn d;
		int r = x86_decode(rec + 1, len, &d);
		char what[64];
		int n = 0, k;

		for (k = 0; k < (int)len && n < 60; k++)
			n += snprintf(what + n, sizeof(what) - n, "%02x", rec[1 + k]);
		if (e->refuse) {
			if (r == 0) {
				printf("FAIL case %d (%s): decoded, should be refused\n", i, what);
				fails++;
			}
			continue;
		}
		uint64_t want_addr = e->addr + (e->rip_rel ? 32ULL * i + 1 + len : 0);
		uint64_t got_addr = r ? 0 : x86_address(&d, regs, 32ULL * i + 1 + len, 0);

		if (r || d.len != len || d.kind != e->kind || d.size != e->size ||
		    d.reg_size != e->reg_size || d.sign != e->sign || d.reg != e->reg ||
		    d.high8 != e->high8 || d.has_imm != e->has_imm || d.imm != e->imm ||
		    got_addr != want_addr || d.seg != e->seg) {
			printf("FAIL case %d (%s): r=%d len %u/%u kind %d/%d size %u/%u reg_size %u/%u "
			       "sign %d/%d reg %d/%d high8 %d/%d imm %d:%llx/%d:%llx addr %llx/%llx seg %x/%x\n",
			       i, what, r, d.len, len, d.kind, e->kind, d.size, e->size, d.reg_size,
			       e->reg_size, d.sign, e->sign, d.reg, e->reg, d.high8, e->high8,
			       d.has_imm, (unsigned long long)d.imm, e->has_imm,
			       (unsigned long long)e->imm, (unsigned long long)got_addr,
			       (unsigned long long)want_addr, d.seg, e->seg);
			if (++fails > 20)
				return 1;
		}
		/* every prefix of the instruction is cut short */
		for (k = 0; !r && k < (int)len; k++) {
			struct x86_insn t;

			if (x86_decode(rec + 1, (size_t)k, &t) == 0) {
				printf("FAIL case %d (%s): decoded from %d of %u bytes\n", i, what,
				       k, len);
				fails++;
				break;
			}
		}
	}
	if (fails)
		return 1;
	printf("ok %d cases\n", ncases);
	return 0;
}
