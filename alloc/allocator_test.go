package alloc

// This file tests the Allocator: its placement policy, its error paths (each
// of which must change nothing), and its safety under concurrent use.

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/daxstore/daxstore/pmem"
)

// allocatorOf returns an Allocator whose free space is exactly es.
func allocatorOf(t *testing.T, es ...pmem.Extent) *Allocator {
	t.Helper()
	a := New()
	for _, e := range es {
		if err := a.Free(e); err != nil {
			t.Fatalf("setup: %v", err)
		}
	}
	mustCheckAlloc(t, a)
	return a
}

func mustCheckAlloc(t *testing.T, a *Allocator) {
	t.Helper()
	if err := a.check(); err != nil {
		t.Fatalf("invariant broken: %v; free %v", err, a.Extents())
	}
}

func TestAllocPolicy(t *testing.T) {
	// fragments are 100 one-block free extents at 1000, 1002, ..., 1198.
	fragments := func(n int) []pmem.Extent {
		var out []pmem.Extent
		for i := range n {
			out = append(out, ext(1000+2*uint64(i), 1))
		}
		return out
	}
	tests := []struct {
		name string
		free []pmem.Extent
		n    uint64
		goal pmem.Block
		want []pmem.Extent // the allocation
		left []pmem.Extent // free space afterwards
	}{
		{name: "a goal inside a large enough free extent is taken exactly",
			free: exts(ext(100, 100)), n: 10, goal: 150,
			want: exts(ext(150, 10)), left: exts(ext(100, 50), ext(160, 40))},
		{name: "a goal whose run reaches exactly n blocks is taken to the end",
			free: exts(ext(100, 100)), n: 10, goal: 190,
			want: exts(ext(190, 10)), left: exts(ext(100, 90))},
		{name: "a goal too close to its extent's end moves to the next extent that fits",
			free: exts(ext(0, 500), ext(100+500, 10), ext(700, 50)), n: 20, goal: 605,
			want: exts(ext(700, 20)), left: exts(ext(0, 500), ext(600, 10), ext(720, 30))},
		{name: "a goal in a hole takes the start of the next extent that fits",
			free: exts(ext(10, 100), ext(200, 5), ext(300, 50)), n: 20, goal: 150,
			want: exts(ext(300, 20)), left: exts(ext(10, 100), ext(200, 5), ext(320, 30))},
		{name: "a goal at an extent's start that is too short skips it",
			free: exts(ext(200, 5), ext(300, 50)), n: 20, goal: 200,
			want: exts(ext(300, 20)), left: exts(ext(200, 5), ext(320, 30))},
		{name: "a goal after all fitting extents falls back to best fit",
			free: exts(ext(10, 100), ext(200, 30), ext(300, 25), ext(400, 5)), n: 25, goal: 350,
			want: exts(ext(300, 25)), left: exts(ext(10, 100), ext(200, 30), ext(400, 5))},
		{name: "best fit prefers the lowest of equally small extents",
			free: exts(ext(10, 100), ext(200, 30), ext(300, 30)), n: 21, goal: 1000,
			want: exts(ext(200, 21)), left: exts(ext(10, 100), ext(221, 9), ext(300, 30))},
		{name: "an exact fit consumes the whole extent",
			free: exts(ext(10, 5), ext(20, 8), ext(40, 100)), n: 8, goal: 1000,
			want: exts(ext(20, 8)), left: exts(ext(10, 5), ext(40, 100))},
		{name: "a fitting extent within 64 members of the goal is preferred to best fit",
			free: append(append(exts(ext(10, 20)), fragments(10)...), ext(2000, 50)), n: 20, goal: 1000,
			want: exts(ext(2000, 20)), left: append(append(exts(ext(10, 20)), fragments(10)...), ext(2020, 30))},
		{name: "the near scan gives up after 64 members and uses best fit",
			free: append(append(exts(ext(10, 20)), fragments(100)...), ext(2000, 50)), n: 20, goal: 1000,
			want: exts(ext(10, 20)), left: append(fragments(100), ext(2000, 50))},
		{name: "fragmented space is gathered largest first in the fewest pieces",
			free: exts(ext(0, 4), ext(10, 3), ext(20, 5), ext(30, 2), ext(40, 1)), n: 10, goal: 0,
			want: exts(ext(0, 4), ext(20, 5), ext(40, 1)), left: exts(ext(10, 3), ext(30, 2))},
		{name: "the last gathered piece comes from the smallest extent that holds it",
			free: exts(ext(0, 6), ext(10, 3), ext(20, 2)), n: 8, goal: 0,
			want: exts(ext(0, 6), ext(20, 2)), left: exts(ext(10, 3))},
		{name: "allocating every free block empties the allocator",
			free: exts(ext(0, 3), ext(10, 3)), n: 6, goal: 5,
			want: exts(ext(0, 3), ext(10, 3)), left: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := allocatorOf(t, tc.free...)
			got, err := a.Alloc(tc.n, tc.goal)
			if err != nil {
				t.Fatalf("Alloc(%d, %d): %v", tc.n, tc.goal, err)
			}
			mustCheckAlloc(t, a)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Alloc(%d, %d) = %v, want %v", tc.n, tc.goal, got, tc.want)
			}
			if left := a.Extents(); !slices.Equal(left, tc.left) {
				t.Fatalf("free afterwards = %v, want %v", left, tc.left)
			}
			var sum uint64
			for _, e := range tc.left {
				sum += e.Len
			}
			if a.FreeBlocks() != sum || a.Count() != len(tc.left) {
				t.Fatalf("FreeBlocks, Count = %d, %d; want %d, %d", a.FreeBlocks(), a.Count(), sum, len(tc.left))
			}
		})
	}
}

func TestAllocatorErrorsChangeNothing(t *testing.T) {
	free := exts(ext(0, 4), ext(10, 3), ext(20, 5), ext(30, 2), ext(40, 1))
	tests := []struct {
		name    string
		op      func(a *Allocator) error
		wantErr error
		wantMsg string
	}{
		{"allocating zero blocks is refused",
			func(a *Allocator) error { _, err := a.Alloc(0, 0); return err }, ErrInvalid, "0 blocks"},
		{"allocating more than is free reports the numbers",
			func(a *Allocator) error { _, err := a.Alloc(30, 0); return err }, ErrNoSpace,
			"need 30 blocks, 15 free in 5 extents (largest 5)"},
		{"allocating one block more than is free fails",
			func(a *Allocator) error { _, err := a.Alloc(16, 12); return err }, ErrNoSpace, "need 16 blocks"},
		{"allocating the largest possible count fails",
			func(a *Allocator) error { _, err := a.Alloc(math.MaxUint64, 0); return err }, ErrNoSpace, "15 free"},
		{"freeing a free extent again is a double free",
			func(a *Allocator) error { return a.Free(ext(10, 3)) }, ErrDoubleFree, "double free"},
		{"freeing blocks inside a free extent is a double free",
			func(a *Allocator) error { return a.Free(ext(21, 2)) }, ErrDoubleFree, "overlaps free extent [20,+5)"},
		{"freeing a range ending in free space is a double free",
			func(a *Allocator) error { return a.Free(ext(5, 6)) }, ErrDoubleFree, "double free"},
		{"freeing a range that swallows a free extent is a double free",
			func(a *Allocator) error { return a.Free(ext(13, 20)) }, ErrDoubleFree, "double free"},
		{"freeing an empty extent is refused",
			func(a *Allocator) error { return a.Free(ext(5, 0)) }, ErrInvalid, "empty"},
		{"freeing a range past the last block number is refused",
			func(a *Allocator) error { return a.Free(ext(math.MaxUint64-1, 2)) }, ErrInvalid, "last block"},
		{"taking blocks that are not free fails",
			func(a *Allocator) error { return a.Take(ext(5, 2)) }, ErrNotFree, "none of them"},
		{"taking a range only partly free fails",
			func(a *Allocator) error { return a.Take(ext(2, 4)) }, ErrNotFree, "[0,+4)"},
		{"taking a range across a used gap fails",
			func(a *Allocator) error { return a.Take(ext(20, 11)) }, ErrNotFree, "blocks not free"},
		{"taking an empty extent is refused",
			func(a *Allocator) error { return a.Take(ext(20, 0)) }, ErrInvalid, "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := allocatorOf(t, free...)
			err := tc.op(a)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("error %q does not say %q", err, tc.wantMsg)
			}
			mustCheckAlloc(t, a)
			if got := a.Extents(); !slices.Equal(got, free) || a.FreeBlocks() != 15 || a.Largest() != 5 {
				t.Fatalf("failed call changed free space to %v", got)
			}
		})
	}
}

func TestAllocatorFreeAndTake(t *testing.T) {
	t.Run("freeing between two free extents coalesces them", func(t *testing.T) {
		a := allocatorOf(t, ext(0, 4), ext(10, 3))
		if err := a.Free(ext(4, 6)); err != nil {
			t.Fatal(err)
		}
		mustCheckAlloc(t, a)
		if got := a.Extents(); !slices.Equal(got, exts(ext(0, 13))) || a.Largest() != 13 {
			t.Fatalf("free = %v, largest %d", got, a.Largest())
		}
	})
	t.Run("taking the middle of a free extent splits it", func(t *testing.T) {
		a := allocatorOf(t, ext(0, 100))
		if err := a.Take(ext(40, 20)); err != nil {
			t.Fatal(err)
		}
		mustCheckAlloc(t, a)
		if got := a.Extents(); !slices.Equal(got, exts(ext(0, 40), ext(60, 40))) {
			t.Fatalf("free = %v", got)
		}
		if !a.Covers(ext(0, 40)) || a.Covers(ext(30, 20)) || !a.Overlaps(ext(30, 20)) || a.Overlaps(ext(40, 20)) {
			t.Fatalf("Covers/Overlaps disagree with free space %v", a.Extents())
		}
	})
	t.Run("the zero Allocator is empty and usable", func(t *testing.T) {
		var a Allocator
		if a.FreeBlocks() != 0 || a.Largest() != 0 || a.Count() != 0 {
			t.Fatal("zero Allocator is not empty")
		}
		if _, err := a.Alloc(1, 0); !errors.Is(err, ErrNoSpace) {
			t.Fatalf("Alloc on empty = %v, want ErrNoSpace", err)
		}
		if err := a.Free(ext(7, 3)); err != nil {
			t.Fatal(err)
		}
		got, err := a.Alloc(3, 0)
		if err != nil || !slices.Equal(got, exts(ext(7, 3))) {
			t.Fatalf("Alloc = %v, %v", got, err)
		}
		mustCheckAlloc(t, &a)
	})
}

// TestAllocatorConcurrent has goroutines allocate and free at once. Each
// block carries an owner flag that an allocation must find clear, so two
// goroutines ever holding the same block fails the test; at the end all is
// freed and must coalesce back into the one extent it started as. It runs
// with the plain policy and with an alignment unit.
func TestAllocatorConcurrent(t *testing.T) {
	for _, align := range []uint64{0, 16} {
		t.Run(fmt.Sprintf("alignment unit %d", align), func(t *testing.T) { testAllocatorConcurrent(t, align) })
	}
}

func testAllocatorConcurrent(t *testing.T, align uint64) {
	const blocks = 1 << 14
	whole := ext(1, blocks-1)
	a := allocatorOf(t, whole)
	a.SetAlign(align)
	owned := make([]atomic.Bool, blocks)
	workers, rounds := 8, 2000
	if testing.Short() {
		rounds = 300
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			var held []pmem.Extent
			release := func(e pmem.Extent) error {
				for b := e.Start; b < e.End(); b++ {
					owned[b].Store(false)
				}
				return a.Free(e)
			}
			for range rounds {
				if len(held) > 0 && rng.IntN(2) == 0 {
					i := rng.IntN(len(held))
					if err := release(held[i]); err != nil {
						errs <- err
						return
					}
					held = slices.Delete(held, i, i+1)
					continue
				}
				got, err := a.AllocFor(1+rng.Uint64N(32), Hint{Goal: pmem.Block(rng.Uint64N(blocks)), FileBlock: rng.Uint64N(64)})
				if errors.Is(err, ErrNoSpace) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				for _, e := range got {
					for b := e.Start; b < e.End(); b++ {
						if !owned[b].CompareAndSwap(false, true) {
							errs <- errors.New("block " + e.String() + " handed out twice")
							return
						}
					}
				}
				held = append(held, got...)
			}
			for _, e := range held {
				if err := release(e); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	mustCheckAlloc(t, a)
	if got := a.Extents(); !slices.Equal(got, exts(whole)) {
		t.Fatalf("after freeing everything, free = %v (%d extents), want %v", got[:min(len(got), 10)], len(got), whole)
	}
}
