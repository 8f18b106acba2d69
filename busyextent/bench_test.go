package busyextent

import (
	"testing"
	"time"

	"github.com/daxstore/daxstore/pmem"
)

// BenchmarkAddRemove measures one detach and one release of a small extent in
// a set that already holds many busy extents.
func BenchmarkAddRemove(b *testing.B) {
	for _, size := range []int{16, 10000} {
		b.Run(map[int]string{16: "16 busy", 10000: "10000 busy"}[size], func(b *testing.B) {
			s := NewSet()
			for i := 0; i < size; i++ {
				if _, err := s.Add(busy(uint64(100*i), 50, "k", 0, "pin")); err != nil {
					b.Fatal(err)
				}
			}
			x := busy(uint64(100*size/2)+60, 8, "new", 0, "pin")
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := s.Add(x); err != nil {
					b.Fatal(err)
				}
				if _, _, err := s.Remove(x.Extent); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRemoveSplit measures a release from the middle of a busy extent,
// which splits it, and the Add that puts the hole back.
func BenchmarkRemoveSplit(b *testing.B) {
	s := NewSet()
	for i := 0; i < 1000; i++ {
		if _, err := s.Add(busy(uint64(1000*i), 999, "k", 0)); err != nil {
			b.Fatal(err)
		}
	}
	mid := ext(500*1000+300, 10)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		released, _, err := s.Remove(mid)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Add(released[0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnqueueCommitLatency measures the time from Enqueue to the start
// of the commit that carries it, when the releaser is idle: this is the
// delay a released block waits before it heads back to free space.
func BenchmarkEnqueueCommitLatency(b *testing.B) {
	started := make(chan time.Time, 1)
	r := NewReleaser(func([]pmem.Extent) error {
		started <- time.Now()
		return nil
	})
	defer r.Close()
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := time.Now()
		r.Enqueue(ext(uint64(i), 1))
		total += (<-started).Sub(t)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns-to-commit/op")
}

// BenchmarkAddRunsOfABreak measures adding the 2,622 scattered one-block
// runs that a punch of 1 GiB with 1% pinned detaches, and releasing them.
func BenchmarkAddRunsOfABreak(b *testing.B) {
	xs := scattered(2622)
	runs := make([]pmem.Extent, len(xs))
	for i, x := range xs {
		runs[i] = x.Extent
	}
	s := NewSet()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.AddRuns(xs); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if _, _, err := s.RemoveRuns(runs); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
