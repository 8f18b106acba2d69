package dax

// Benchmarks of the hot paths: pin and unpin, ReadAt, in-place WriteAt, Put
// and Get. Run them with TMPDIR on tmpfs (`make bench` on a machine with
// /dev/shm) so the region and the journal do not measure a disk. The
// journal syncs as in production (no NoSync).

import (
	"context"
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

// BenchmarkPunchScatteredPins punches a fully written 256 MiB file with one
// block in 100 pinned (as `daxstore bench` does at 1 GiB), and with nothing
// pinned; each iteration refills and repins outside the timer.
func BenchmarkPunchScatteredPins(b *testing.B) {
	const size = 256 << 20
	for _, pinned := range []bool{false, true} {
		b.Run(fmt.Sprintf("pinned=%v", pinned), func(b *testing.B) {
			s, err := Open(b.TempDir(), &Options{Size: size + 16<<20, NoAdminSocket: true})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { closeForce(s) })
			f, err := s.Create("big")
			if err != nil {
				b.Fatal(err)
			}
			buf := pattern(3, 4<<20)
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				for off := int64(0); off < size; off += int64(len(buf)) {
					if _, err := f.WriteAt(buf, off); err != nil {
						b.Fatal(err)
					}
				}
				var pins []Pin
				for blk := int64(0); pinned && blk < size/testBS; blk += 100 {
					p, err := f.Pin(blk*testBS, testBS, PinOptions{Label: "bench"})
					if err != nil {
						b.Fatal(err)
					}
					pins = append(pins, p)
				}
				b.StartTimer()
				if err := f.PunchHole(0, size); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				for _, p := range pins {
					if err := p.Unpin(); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.releaser.Sync(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkPunchRefillUnderFollowWindow: a 2 MiB PunchHole and the
// WriteAt that fills it again, with and without a read-only follow window
// over the file, so that the cost of remapping the window shows as the
// difference. Allocations should not differ: a warm remap allocates
// nothing.
func BenchmarkPunchRefillUnderFollowWindow(b *testing.B) {
	const file, slot = 16 << 20, 2 << 20
	for _, window := range []bool{false, true} {
		b.Run(fmt.Sprintf("window=%v", window), func(b *testing.B) {
			s, f := benchStore(b, file)
			if window {
				w, err := f.Map(0, file, MapOptions{})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { w.Close() })
			}
			buf := pattern(2, slot)
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				off := int64(i%(file/slot)) * slot
				i++
				if err := f.PunchHole(off, slot); err != nil {
					b.Fatal(err)
				}
				if _, err := f.WriteAt(buf, off); err != nil {
					b.Fatal(err)
				}
			}
			st, err := s.Stats()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(st.WindowRemaps)/float64(b.N), "remaps/op")
		})
	}
}
