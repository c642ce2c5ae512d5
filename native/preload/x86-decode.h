/*
 * A decoder for the x86-64 instructions that access device registers
 * through a mapped BAR: the MOV family compilers emit for volatile loads
 * and stores (8A/8B/88/89, C6/C7 with an immediate, A0-A3 with a 64-bit
 * absolute address), MOVZX/MOVSX/MOVSXD, and the read-only CMP/TEST forms
 * with a memory operand. It only describes the instruction (what is read
 * or written, how wide, which register, how the address is formed); the
 * caller computes the address from the faulting context and performs the
 * access. docs/device-mmap.md lists the set.
 */
#ifndef UIOMMU_X86_DECODE_H
#define UIOMMU_X86_DECODE_H

#include <stddef.h>
#include <stdint.h>

/* What the instruction does with its memory operand. */
enum x86_kind {
	X86_LOAD,      /* reg = zero/sign-extended [mem] (MOV, MOVZX, MOVSX, MOVSXD) */
	X86_STORE,     /* [mem] = reg */
	X86_STORE_IMM, /* [mem] = imm */
	X86_CMP,       /* flags of [mem] - src (src: reg or imm); CMP r/m, src */
	X86_CMP_REV,   /* flags of reg - [mem]; CMP reg, r/m */
	X86_TEST,      /* flags of [mem] & src (src: reg or imm) */
};

/* A general-purpose register number: RAX=0 ... RDI=7, R8=8 ... R15=15. */
#define X86_NO_REG (-1)

struct x86_insn {
	unsigned len; /* bytes of the whole instruction */
	enum x86_kind kind;
	unsigned size;	   /* bytes accessed in memory: 1, 2, 4 or 8 */
	unsigned reg_size; /* bytes of the register operand (a load's destination) */
	int sign;	   /* a load sign-extends (MOVSX, MOVSXD) */
	int reg;	   /* the register operand, or X86_NO_REG */
	int high8;	   /* reg names AH, CH, DH or BH (byte form without REX) */
	int has_imm;	   /* the source is `imm` (STORE_IMM, CMP/TEST with an immediate) */
	uint64_t imm;	   /* the immediate, sign-extended to `size` bytes (higher bits 0) */
	int seg;	   /* 0, or the FS (0x64) / GS (0x65) override prefix */
	int addr32;	   /* 0x67: the address is computed in 32 bits */
	/* The memory operand: base + index * scale + disp, or rip_rel (next RIP + disp), or absolute. */
	int base;	/* register number or X86_NO_REG */
	int index;	/* register number or X86_NO_REG */
	unsigned scale; /* 1, 2, 4 or 8 */
	int64_t disp;
	int rip_rel;
	int absolute; /* A0-A3: disp is the whole 64-bit address */
};

/*
 * Decode the instruction at `code` (at most `avail` bytes readable).
 * Returns 0 and fills `out`, or -1 when the instruction is not in the set
 * (or is cut short, or has no memory operand).
 */
int x86_decode(const uint8_t *code, size_t avail, struct x86_insn *out);

/*
 * The address of the memory operand, given the 16 general registers (in
 * x86_decode's numbering), the address of the next instruction and the
 * FS/GS base the instruction names (0 without a segment override).
 */
uint64_t x86_address(const struct x86_insn *insn, const uint64_t regs[16], uint64_t next_rip,
		     uint64_t seg_base);

#endif
