/*
 * x86-64 decoder for register accesses through a mapped BAR (x86-decode.h).
 * Legacy prefixes, then an optional REX, then the opcode and its ModRM, SIB,
 * displacement and immediate, as the Intel SDM vol. 2 lays them out.
 */
#include "x86-decode.h"

#include <string.h>

/* A little-endian signed integer of `n` bytes (1, 2, 4 or 8) at `p`. */
static int64_t sx(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	unsigned i;

	for (i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	if (n < 8 && (v >> (8 * n - 1)) & 1)
		v |= ~0ULL << (8 * n);
	return (int64_t)v;
}

/* `v` truncated to `n` bytes. */
static uint64_t trunc_to(uint64_t v, unsigned n)
{
	return n >= 8 ? v : v & ((1ULL << (8 * n)) - 1);
}

/*
 * ModRM (+ SIB + displacement) at `p` into `out`; returns the bytes used or
 * -1 (register operand, or cut short). `rex` supplies R, X and B.
 */
static int modrm(const uint8_t *p, size_t avail, unsigned rex, struct x86_insn *out, int *regfield)
{
	unsigned mod, reg, rm, used = 1;

	if (avail < 1)
		return -1;
	mod = p[0] >> 6;
	reg = (p[0] >> 3) & 7;
	rm = p[0] & 7;
	*regfield = reg | ((rex & 4) ? 8 : 0);
	if (mod == 3)
		return -1;
	out->base = X86_NO_REG;
	out->index = X86_NO_REG;
	out->scale = 1;
	out->disp = 0;
	out->rip_rel = 0;
	if (rm == 4) {
		unsigned ss, idx, base;

		if (avail < 2)
			return -1;
		ss = p[1] >> 6;
		idx = ((p[1] >> 3) & 7) | ((rex & 2) ? 8 : 0);
		base = p[1] & 7;
		used = 2;
		out->scale = 1u << ss;
		if (idx != 4)
			out->index = (int)idx;
		if (base == 5 && mod == 0) {
			if (avail < used + 4)
				return -1;
			out->disp = sx(p + used, 4);
			return (int)(used + 4);
		}
		out->base = (int)(base | ((rex & 1) ? 8 : 0));
	} else if (rm == 5 && mod == 0) {
		if (avail < 5)
			return -1;
		out->rip_rel = 1;
		out->disp = sx(p + 1, 4);
		return 5;
	} else {
		out->base = (int)(rm | ((rex & 1) ? 8 : 0));
	}
	if (mod == 1) {
		if (avail < used + 1)
			return -1;
		out->disp = sx(p + used, 1);
		used += 1;
	} else if (mod == 2) {
		if (avail < used + 4)
			return -1;
		out->disp = sx(p + used, 4);
		used += 4;
	}
	return (int)used;
}

int x86_decode(const uint8_t *code, size_t avail, struct x86_insn *out)
{
	size_t at = 0;
	unsigned rex = 0, opsize = 4, imm_size = 0;
	int has_rex = 0;
	int opsize16 = 0, regfield = 0, n, byte_op = 0, group = -1;
	uint8_t op;

	memset(out, 0, sizeof(*out));
	out->reg = X86_NO_REG;
	/* legacy prefixes, in any order (at most 14 bytes in all) */
	for (; at < avail && at < 14; at++) {
		uint8_t b = code[at];

		if (b == 0x66)
			opsize16 = 1;
		else if (b == 0x67)
			out->addr32 = 1;
		else if (b == 0x64 || b == 0x65)
			out->seg = b;
		else if (b == 0x2e || b == 0x36 || b == 0x3e || b == 0x26)
			; /* null segment overrides in 64-bit mode */
		else if (b == 0xf0 || b == 0xf2 || b == 0xf3)
			return -1; /* LOCK, REP: not a plain access */
		else
			break;
	}
	if (at < avail && (code[at] & 0xf0) == 0x40) {
		rex = code[at++] & 0xf;
		has_rex = 1;
	}
	if (at >= avail)
		return -1;
	if (rex & 8)
		opsize = 8;
	else if (opsize16)
		opsize = 2;
	op = code[at++];
	out->reg_size = opsize;
	out->size = opsize;
	switch (op) {
	case 0x88:
	case 0x8a:
	case 0x38:
	case 0x3a:
	case 0x84:
		byte_op = 1;
		/* fall through */
	case 0x89:
	case 0x8b:
	case 0x39:
	case 0x3b:
	case 0x85:
		out->kind = (op & 0xfe) == 0x88	  ? X86_STORE
			    : (op & 0xfe) == 0x8a ? X86_LOAD
			    : (op & 0xfe) == 0x38 ? X86_CMP
			    : (op & 0xfe) == 0x3a ? X86_CMP_REV
						  : X86_TEST;
		break;
	case 0xc6:
	case 0x80:
	case 0xf6:
		byte_op = 1;
		/* fall through */
	case 0xc7:
	case 0x81:
	case 0x83:
	case 0xf7:
		group = op;
		break;
	case 0x63: /* MOVSXD r, r/m32 (a plain 32-bit load without REX.W) */
		out->kind = X86_LOAD;
		out->size = opsize == 8 ? 4 : opsize;
		out->sign = opsize == 8;
		break;
	case 0xa0:
	case 0xa1:
	case 0xa2:
	case 0xa3: {
		unsigned asz = out->addr32 ? 4 : 8;

		if (op == 0xa0 || op == 0xa2)
			out->size = out->reg_size = 1;
		out->kind = op < 0xa2 ? X86_LOAD : X86_STORE;
		out->reg = 0;
		if (avail < at + asz)
			return -1;
		out->absolute = 1;
		out->base = out->index = X86_NO_REG;
		out->scale = 1;
		out->disp = asz == 8 ? sx(code + at, 8)
				     : (int64_t)trunc_to((uint64_t)sx(code + at, 4), 4);
		out->len = (unsigned)(at + asz);
		return 0;
	}
	case 0x0f:
		if (at >= avail)
			return -1;
		op = code[at++];
		if (op != 0xb6 && op != 0xb7 && op != 0xbe && op != 0xbf)
			return -1;
		out->kind = X86_LOAD;
		out->size = (op & 1) ? 2 : 1;
		out->sign = op >= 0xbe;
		break;
	default:
		return -1;
	}
	if (byte_op)
		out->size = out->reg_size = 1;
	n = modrm(code + at, avail - at, rex, out, &regfield);
	if (n < 0)
		return -1;
	at += (size_t)n;
	if (group >= 0) {
		unsigned sub = (unsigned)regfield & 7;

		if ((group == 0xc6 || group == 0xc7) && sub == 0)
			out->kind = X86_STORE_IMM;
		else if ((group == 0x80 || group == 0x81 || group == 0x83) && sub == 7)
			out->kind = X86_CMP;
		else if ((group == 0xf6 || group == 0xf7) && sub == 0)
			out->kind = X86_TEST;
		else
			return -1;
		imm_size = group == 0x83 || byte_op ? 1 : out->size == 2 ? 2 : 4;
		if (avail < at + imm_size)
			return -1;
		out->has_imm = 1;
		out->imm = trunc_to((uint64_t)sx(code + at, imm_size), out->size);
		at += imm_size;
	} else {
		out->reg = regfield;
		/* without REX, byte registers 4..7 are AH, CH, DH, BH */
		if (out->reg_size == 1 && !has_rex && regfield >= 4 && regfield < 8) {
			out->high8 = 1;
			out->reg = regfield - 4;
		}
	}
	out->len = (unsigned)at;
	return 0;
}

uint64_t x86_address(const struct x86_insn *insn, const uint64_t regs[16], uint64_t next_rip,
		     uint64_t seg_base)
{
	uint64_t a = (uint64_t)insn->disp;

	if (insn->rip_rel)
		a += next_rip;
	if (insn->base != X86_NO_REG)
		a += regs[insn->base];
	if (insn->index != X86_NO_REG)
		a += regs[insn->index] * insn->scale;
	if (insn->addr32)
		a = trunc_to(a, 4);
	return a + seg_base;
}
