package dax

// Benchmarks of the hot paths: pin and unpin, ReadAt, in-place WriteAt, Put
// and Get. Run them with TMPDIR on tmpfs (`make bench` on a machine with
// /dev/shm) so the region and the journal do not measure a disk. The
// journal syncs as in production (no NoSync).

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// benchStore returns a 64 MiB store holding key "k" of size bytes.
func benchStore(b *testing.B, size int) (*Store, *File) {
	b.Helper()
	s, err := Open(b.TempDir(), &Options{Size: 64 << 20, NoAdminSocket: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { closeForce(s) })
	if err := s.Put("k", pattern(1, size)); err != nil {
		b.Fatal(err)
	}
	f, err := s.Open("k")
	if err != nil {
		b.Fatal(err)
	}
	return s, f
}

func BenchmarkPinUnpinOneBlock(b *testing.B) {
	_, f := benchStore(b, testBS)
	b.ReportAllocs()
	for b.Loop() {
		p, err := f.Pin(0, testBS, PinOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Unpin(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPinUnpinOneBlockParallel(b *testing.B) {
	const blocks = 1024 // distinct blocks, one per goroutine
	_, f := benchStore(b, blocks*testBS)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		off := (next.Add(1) % blocks) * testBS
		for pb.Next() {
			p, err := f.Pin(off, testBS, PinOptions{})
			if err != nil {
				b.Error(err)
				return
			}
			if err := p.Unpin(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

var ioSizes = []int{4 << 10, 64 << 10}

func BenchmarkReadAt(b *testing.B) {
	for _, n := range ioSizes {
		b.Run(fmt.Sprintf("%dKiB", n>>10), func(b *testing.B) {
			_, f := benchStore(b, n)
			buf := make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.ReadAt(buf, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkWriteAtOverwrite(b *testing.B) {
	for _, n := range ioSizes {
		b.Run(fmt.Sprintf("%dKiB", n>>10), func(b *testing.B) {
			_, f := benchStore(b, n)
			buf := pattern(2, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.WriteAt(buf, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPut(b *testing.B) {
	for _, n := range ioSizes {
		b.Run(fmt.Sprintf("%dKiB", n>>10), func(b *testing.B) {
			s, _ := benchStore(b, n)
			val := pattern(3, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Put("k", val); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGet(b *testing.B) {
	for _, n := range ioSizes {
		b.Run(fmt.Sprintf("%dKiB", n>>10), func(b *testing.B) {
			s, _ := benchStore(b, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Get("k"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
