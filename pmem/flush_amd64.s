// This file holds the x86-64 instructions that Go cannot express: CPUID for
// feature detection, the cache-line write-back/flush loops, and SFENCE.

#include "textflag.h"

// func cpuid(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL leaf+0(FP), AX
	MOVL subleaf+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func clwbLines(p, end, line uintptr)
TEXT ·clwbLines(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), AX
	MOVQ end+8(FP), BX
	MOVQ line+16(FP), CX
loop:
	CMPQ AX, BX
	JAE  done
	CLWB (AX)
	ADDQ CX, AX
	JMP  loop
done:
	RET

// func clflushoptLines(p, end, line uintptr)
TEXT ·clflushoptLines(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), AX
	MOVQ end+8(FP), BX
	MOVQ line+16(FP), CX
loop:
	CMPQ AX, BX
	JAE  done
	CLFLUSHOPT (AX)
	ADDQ CX, AX
	JMP  loop
done:
	RET

// func clflushLines(p, end, line uintptr)
TEXT ·clflushLines(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), AX
	MOVQ end+8(FP), BX
	MOVQ line+16(FP), CX
loop:
	CMPQ AX, BX
	JAE  done
	CLFLUSH (AX)
	ADDQ CX, AX
	JMP  loop
done:
	RET

// func sfence()
TEXT ·sfence(SB), NOSPLIT, $0-0
	SFENCE
	RET
