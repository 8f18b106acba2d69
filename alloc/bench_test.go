package alloc

// This file measures the hot paths: Alloc and Free on a heavily fragmented
// free space, with the plain policy and with the aligned one.

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
	benchAllocFree(b, 0)
}

// BenchmarkAlignedAllocFree is BenchmarkAllocFree with the alignment unit
// a store of 4 KiB blocks sets (2 MiB), and requests that carry a file
// block; its ratio to BenchmarkAllocFree is the cost of the aligned policy.
func BenchmarkAlignedAllocFree(b *testing.B) {
	benchAllocFree(b, 512)
}

func benchAllocFree(b *testing.B, align uint64) {
	for _, n := range []uint64{1, 16} {
		b.Run(fmt.Sprintf("%d blocks near a random goal", n), func(b *testing.B) {
			a := fragmented(b)
			a.SetAlign(align)
			rng := rand.New(rand.NewPCG(3, 4))
			b.ResetTimer()
			for range b.N {
				got, err := a.AllocFor(n, Hint{Goal: pmem.Block(rng.Uint64N(100_000 * 64)), FileBlock: rng.Uint64N(256)})
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
	b.Run("512 blocks for a large file near a random goal", func(b *testing.B) {
		a := fragmented(b)
		if err := a.Free(ext(100_000*64, 1<<24)); err != nil {
			b.Fatal(err)
		}
		a.SetAlign(align)
		rng := rand.New(rand.NewPCG(5, 6))
		b.ResetTimer()
		for range b.N {
			got, err := a.AllocFor(512, Hint{Goal: pmem.Block(rng.Uint64N(100_000 * 64)), FileBlock: rng.Uint64N(1 << 18)})
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
	b.Run("16 blocks gathered from single-block fragments", func(b *testing.B) {
		a := New()
		for i := range uint64(100_000) {
			if err := a.Free(ext(i*2, 1)); err != nil {
				b.Fatal(err)
			}
		}
		a.SetAlign(align)
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
