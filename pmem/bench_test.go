//go:build unix

// This file measures the hot paths: Bytes on every read and write, and
// Flush after every write.

package pmem

import (
	"os"
	"path/filepath"
	"testing"
)

// benchRegion creates a region in /dev/shm when it exists (memory speed, as
// in production emulation), else in the test's temporary directory.
func benchRegion(b *testing.B, size int64) *Region {
	b.Helper()
	dir := b.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "pmem-bench-"); err == nil {
			dir = d
			b.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	r, err := Create(filepath.Join(dir, "region"), CreateOptions{Size: size})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	return r
}

func BenchmarkFlush(b *testing.B) {
	methods := []flushInsn{insnNone}
	if cpuFlushInsn != insnNone {
		methods = append(methods, cpuFlushInsn)
	}
	for _, insn := range methods {
		for _, size := range []struct {
			name   string
			blocks uint64
		}{{"4KiB", 1}, {"64KiB", 16}} {
			name := "msync-" + size.name
			if insn != insnNone {
				name = insn.String() + "-" + size.name
			}
			b.Run(name, func(b *testing.B) {
				r := benchRegion(b, 64<<20)
				r.insn = insn
				e := Extent{Start: 1, Len: size.blocks}
				data := r.Bytes(e)
				b.SetBytes(int64(len(data)))
				for i := 0; b.Loop(); i++ {
					data[i%len(data)]++
					if err := r.Flush(e); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkBytes(b *testing.B) {
	r := benchRegion(b, 64<<20)
	n := r.BlockCount() - 16
	var sink int
	for i := uint64(0); b.Loop(); i++ {
		sink += len(r.Bytes(Extent{Start: Block(1 + i%n), Len: 16}))
	}
	_ = sink
}
