//go:build !amd64

// This file is the persistence fallback for architectures without a Go
// assembly cache flush: every flush goes through msync, even on DAX.

package pmem

// cpuFlushInsn is insnNone: Region.Flush uses msync(MS_SYNC), which on a DAX
// mapping makes the kernel write back the CPU caches for us.
var cpuFlushInsn = insnNone

// flushLines is never called when cpuFlushInsn is insnNone.
func flushLines(insn flushInsn, p, n uintptr) {}

// storeFence is not needed: msync is synchronous.
func storeFence() {}
