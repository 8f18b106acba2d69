package alloc

// This file measures the hot paths: Alloc and Free on a heavily fragmented
// free space.

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/daxstore/daxstore/pmem"
)

// fragmented returns an Allocator with 100k free extents of 1 to 32 blocks,
// one every 64 blocks.
func fragmented(b *testing.B) *Allocator {
	b.Helper()
	a := New()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range uint64(100_000) {
		if err := a.Free(ext(i*64, 1+rng.Uint64N(32))); err != nil {
			b.Fatal(err)
		}
	}
	return a
}

func BenchmarkAllocFree(b *testing.B) {
	for _, n := range []uint64{1, 16} {
		b.Run(fmt.Sprintf("%d blocks near a random goal", n), func(b *testing.B) {
			a := fragmented(b)
			rng := rand.New(rand.NewPCG(3, 4))
			b.ResetTimer()
			for range b.N {
				got, err := a.Alloc(n, pmem.Block(rng.Uint64N(100_000*64)))
				if err != nil {
					b.Fatal(err)
				}
				for _, e := range got {
					if err := a.Free(e); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
	b.Run("16 blocks gathered from single-block fragments", func(b *testing.B) {
		a := New()
		for i := range uint64(100_000) {
			if err := a.Free(ext(i*2, 1)); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		for range b.N {
			got, err := a.Alloc(16, 0)
			if err != nil {
				b.Fatal(err)
			}
			for _, e := range got {
				if err := a.Free(e); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
