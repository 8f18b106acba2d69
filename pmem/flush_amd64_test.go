//go:build unix

// This file tests the x86-64 cache flush instructions on ordinary memory,
// where they are legal too, so every CPU path runs on any machine.

package pmem

import (
	"bytes"
	"path/filepath"
	"testing"
	"unsafe"
)

// supportedInsns lists the flush instructions this CPU executes.
func supportedInsns() []flushInsn {
	var out []flushInsn
	if _, _, _, edx := cpuid(1, 0); edx&cpuid1EDXCLFLUSH != 0 {
		out = append(out, insnCLFLUSH)
	}
	if max, _, _, _ := cpuid(0, 0); max >= 7 {
		_, ebx, _, _ := cpuid(7, 0)
		if ebx&cpuid7EBXCLFLUSHOPT != 0 {
			out = append(out, insnCLFLUSHOPT)
		}
		if ebx&cpuid7EBXCLWB != 0 {
			out = append(out, insnCLWB)
		}
	}
	return out
}

func TestDetectedFlushInstructionIsTheBestSupported(t *testing.T) {
	insns := supportedInsns()
	if len(insns) == 0 {
		if cpuFlushInsn != insnNone {
			t.Fatalf("detected %v on a CPU without CLFLUSH", cpuFlushInsn)
		}
		return
	}
	if best := insns[len(insns)-1]; cpuFlushInsn != best {
		t.Fatalf("detected %v, want %v", cpuFlushInsn, best)
	}
	if cacheLineSize < 32 || cacheLineSize&(cacheLineSize-1) != 0 {
		t.Fatalf("cache line size %d is not a power of two >= 32", cacheLineSize)
	}
	t.Logf("flush instruction %v, cache line %d bytes", cpuFlushInsn, cacheLineSize)
}

func TestEveryFlushInstructionKeepsTheData(t *testing.T) {
	for _, insn := range supportedInsns() {
		t.Run(insn.String()+" flushes unaligned ranges without changing them", func(t *testing.T) {
			buf := make([]byte, 3*4096)
			fill(buf, 3)
			want := bytes.Clone(buf)
			p := uintptr(unsafe.Pointer(&buf[0]))
			for _, r := range [][2]uintptr{{0, 1}, {1, 63}, {63, 2}, {100, 4000}, {0, uintptr(len(buf))}, {5, 0}} {
				flushLines(insn, p+r[0], r[1])
			}
			storeFence()
			if !bytes.Equal(buf, want) {
				t.Fatal("flushing changed the bytes")
			}
		})
	}
}

// TestRegionWithCPUFlushOnAPlainMapping drives Region.Flush through the DAX
// code path; on a page-cache mapping the flushes are merely redundant.
func TestRegionWithCPUFlushOnAPlainMapping(t *testing.T) {
	if cpuFlushInsn == insnNone {
		t.Skip("no cache flush instruction")
	}
	path := filepath.Join(t.TempDir(), "region")
	r, err := Create(path, CreateOptions{Size: 16 * 4096})
	if err != nil {
		t.Fatal(err)
	}
	r.insn = cpuFlushInsn
	if got := r.FlushMethod(); got != cpuFlushInsn.String() {
		t.Fatalf("FlushMethod = %q", got)
	}
	e := Extent{Start: 2, Len: 3}
	fill(r.Bytes(e), 11)
	if err := r.Flush(e); err != nil {
		t.Fatal(err)
	}
	if err := r.FlushBytes(2*4096+7, 100); err != nil {
		t.Fatal(err)
	}
	r.Drain()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := make([]byte, 3*4096)
	fill(want, 11)
	if !bytes.Equal(r.Bytes(e), want) {
		t.Fatal("data lost")
	}
}
