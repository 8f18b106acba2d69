package pageref

// This file measures the hot paths: a pin+unpin of one block, alone and in
// parallel, and Detach of a 1 GiB range.

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/daxstore/daxstore/pmem"
)

const benchBlocks = 268435456 // 1 TiB of 4 KiB blocks

func BenchmarkAcquireRelease(b *testing.B) {
	tb := New(benchBlocks, nil)
	e := ext(123456789, 1)
	if err := tb.Acquire(e); err != nil { // create the chunk outside the loop
		b.Fatal(err)
	}
	if err := tb.Release(e); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := tb.Acquire(e); err != nil {
			b.Fatal(err)
		}
		if err := tb.Release(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAcquireReleaseRange(b *testing.B) {
	tb := New(benchBlocks, nil)
	e := ext(123456768, 16) // 64 KiB inside one chunk
	if err := tb.Acquire(e); err != nil {
		b.Fatal(err)
	}
	if err := tb.Release(e); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := tb.Acquire(e); err != nil {
			b.Fatal(err)
		}
		if err := tb.Release(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAcquireReleaseParallel(b *testing.B) {
	b.Run("distinct blocks", func(b *testing.B) {
		tb := New(benchBlocks, nil)
		var next atomic.Uint64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			// One chunk per goroutine, as pins of different files would be.
			e := ext(next.Add(1)*chunkBlocks*7+3, 1)
			for pb.Next() {
				if err := tb.Acquire(e); err != nil {
					b.Error(err)
					return
				}
				if err := tb.Release(e); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("same block", func(b *testing.B) {
		tb := New(benchBlocks, nil)
		e := ext(4242, 1)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := tb.Acquire(e); err != nil {
					b.Error(err)
					return
				}
				if err := tb.Release(e); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkDetach1GiB(b *testing.B) {
	const blocks = 262144 // 1 GiB of 4 KiB blocks
	e := ext(1<<20, blocks)
	b.Run("nothing referenced", func(b *testing.B) {
		tb := New(benchBlocks, nil)
		// Touch every chunk of the range, so the scan reads real words.
		for ci := chunkOf(e.Start); ci <= chunkOf(e.End()-1); ci++ {
			tb.chunkOrCreate(ci)
		}
		for b.Loop() {
			if busy, err := tb.Detach(e); err != nil || busy != nil {
				b.Fatal(busy, err)
			}
		}
	})
	b.Run("nothing referenced, chunks never created", func(b *testing.B) {
		tb := New(benchBlocks, nil)
		for b.Loop() {
			if busy, err := tb.Detach(e); err != nil || busy != nil {
				b.Fatal(busy, err)
			}
		}
	})
	b.Run("1% referenced", func(b *testing.B) {
		tb := New(benchBlocks, nil)
		rng := rand.New(rand.NewPCG(1, 2))
		var refs []pmem.Extent
		for _, off := range rng.Perm(blocks)[:blocks/100] {
			refs = append(refs, ext(uint64(e.Start)+uint64(off), 1))
		}
		for b.Loop() {
			b.StopTimer()
			for _, r := range refs {
				if err := tb.Acquire(r); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			busy, err := tb.Detach(e)
			b.StopTimer()
			if err != nil || len(busy) == 0 {
				b.Fatal(len(busy), err)
			}
			for _, r := range refs { // the last release frees them again
				if err := tb.Release(r); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
		}
	})
}

// BenchmarkAcquireRelease1GiB takes and drops a reference to 1 GiB of
// blocks, aligned to chunks: one range count per chunk.
func BenchmarkAcquireRelease1GiB(b *testing.B) {
	tb := New(benchBlocks, nil)
	e := ext(1<<20, 1<<18)
	b.ReportAllocs()
	for b.Loop() {
		if err := tb.Acquire(e); err != nil {
			b.Fatal(err)
		}
		if err := tb.Release(e); err != nil {
			b.Fatal(err)
		}
	}
}
