// This file chooses, once at start-up, the x86-64 instruction that writes
// cache lines back to persistent memory on a DAX mapping.

package pmem

// Implemented in flush_amd64.s. The *Lines functions touch every cache line
// from p (aligned to line) up to end, stepping by line; they do not fence.
func cpuid(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)
func clwbLines(p, end, line uintptr)
func clflushoptLines(p, end, line uintptr)
func clflushLines(p, end, line uintptr)
func sfence()

// CPUID feature bits used by detectCPUFlush.
const (
	cpuid1EDXCLFLUSH    = 1 << 19 // leaf 1, EDX
	cpuid7EBXCLFLUSHOPT = 1 << 23 // leaf 7 subleaf 0, EBX
	cpuid7EBXCLWB       = 1 << 24 // leaf 7 subleaf 0, EBX
)

// cpuFlushInsn is the best cache flush instruction of this CPU, and
// cacheLineSize the stride it flushes with. Both are set once, before main.
var cpuFlushInsn, cacheLineSize = detectCPUFlush()

// detectCPUFlush prefers CLWB (writes back and keeps the line cached), then
// CLFLUSHOPT (weakly ordered flush), then CLFLUSH (serialising flush).
func detectCPUFlush() (flushInsn, uintptr) {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 1 {
		return insnNone, 0
	}
	_, ebx1, _, edx1 := cpuid(1, 0)
	if edx1&cpuid1EDXCLFLUSH == 0 {
		return insnNone, 0
	}
	// CPUID.01H:EBX[15:8] is the CLFLUSH line size in 8-byte units. A
	// stride smaller than the real line only costs redundant flushes, so
	// an implausible value falls back to the smallest x86 line size.
	line := uintptr(ebx1>>8&0xff) * 8
	if line < 32 || line&(line-1) != 0 {
		line = 32
	}
	insn := insnCLFLUSH
	if maxLeaf >= 7 {
		_, ebx7, _, _ := cpuid(7, 0)
		switch {
		case ebx7&cpuid7EBXCLWB != 0:
			insn = insnCLWB
		case ebx7&cpuid7EBXCLFLUSHOPT != 0:
			insn = insnCLFLUSHOPT
		}
	}
	return insn, line
}

// flushLines writes back every cache line overlapping [p, p+n) with insn,
// which must be supported by this CPU. It does not fence; call storeFence
// afterwards.
func flushLines(insn flushInsn, p, n uintptr) {
	if n == 0 {
		return
	}
	start, end := p&^(cacheLineSize-1), p+n
	switch insn {
	case insnCLWB:
		clwbLines(start, end, cacheLineSize)
	case insnCLFLUSHOPT:
		clflushoptLines(start, end, cacheLineSize)
	case insnCLFLUSH:
		clflushLines(start, end, cacheLineSize)
	}
}

// storeFence orders every earlier store and cache line write-back before
// any later store (SFENCE). After it returns, lines written back by
// flushLines have reached the persistence domain.
func storeFence() { sfence() }
