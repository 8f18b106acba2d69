package alloc

// This file checks the Allocator against the simplest possible model, a
// bitmap of free blocks, over thousands of random operations from a seed.

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/daxstore/daxstore/pmem"
)

var seedFlag = flag.Uint64("alloc.seed", 0, "seed for the random tests (0: derive one from the clock)")

// testSeed returns the seed of a random test and arranges for it to be
// printed if the test fails.
func testSeed(t *testing.T) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rerun with: go test ./alloc -run '^%s$' -alloc.seed %d", t.Name(), seed)
		}
	})
	return seed
}

// bitmap is the model: free[b] says whether block b is free.
type bitmap []bool

func (m bitmap) count(e pmem.Extent, free bool) uint64 {
	var n uint64
	for b := e.Start; b < e.End() && int(b) < len(m); b++ {
		if m[b] == free {
			n++
		}
	}
	return n
}

func (m bitmap) set(e pmem.Extent, free bool) {
	for b := e.Start; b < e.End(); b++ {
		m[b] = free
	}
}

// extents returns the maximal runs of free blocks.
func (m bitmap) extents() []pmem.Extent {
	var out []pmem.Extent
	for b := 0; b < len(m); {
		if !m[b] {
			b++
			continue
		}
		start := b
		for b < len(m) && m[b] {
			b++
		}
		out = append(out, ext(uint64(start), uint64(b-start)))
	}
	return out
}

// usedRunAround returns a random sub-range of the run of used blocks that
// holds b, or an empty extent if b is free.
func (m bitmap) usedRunAround(rng *rand.Rand, b int) pmem.Extent {
	if m[b] {
		return pmem.Extent{}
	}
	lo, hi := b, b+1
	for lo > 0 && !m[lo-1] {
		lo--
	}
	for hi < len(m) && !m[hi] {
		hi++
	}
	start := lo + rng.IntN(hi-lo)
	return ext(uint64(start), 1+rng.Uint64N(uint64(hi-start)))
}

func TestAllocatorRandom(t *testing.T) {
	const blocks = 2048
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed>>7|1))
	ops := 20000
	if testing.Short() {
		ops = 3000
	}
	a := New()
	model := make(bitmap, blocks)
	var log []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, after %d ops: %s\nlast ops:\n  %s", seed, len(log),
			fmt.Sprintf(format, args...), strings.Join(tail(log, 30), "\n  "))
	}
	randomExtent := func() pmem.Extent {
		start := rng.Uint64N(blocks)
		return ext(start, rng.Uint64N(min(64, blocks-start)+1)) // sometimes empty
	}
	for i := 0; i < ops; i++ {
		before := a.Extents()
		var err, wantErr error
		switch op := rng.IntN(10); {
		case op < 4: // allocate
			n := 1 + rng.Uint64N(48)
			if rng.IntN(20) == 0 {
				n = rng.Uint64N(blocks / 2) // large, or zero
			}
			goal := pmem.Block(rng.Uint64N(blocks))
			var got []pmem.Extent
			got, err = a.Alloc(n, goal)
			log = append(log, fmt.Sprintf("Alloc(%d, %d) = %v, %v", n, goal, got, err))
			free := model.count(ext(0, blocks), true)
			switch {
			case n == 0:
				wantErr = ErrInvalid
			case n > free:
				wantErr = ErrNoSpace
			case err == nil:
				checkAllocation(fail, model, got, n, goal)
			}
		case op < 7: // free some used blocks
			e := model.usedRunAround(rng, rng.IntN(blocks))
			if e.Empty() {
				continue
			}
			err = a.Free(e)
			log = append(log, fmt.Sprintf("Free(%v) = %v", e, err))
			if err == nil {
				model.set(e, true)
			}
		case op < 8: // free a random range: a double free if any block is free
			e := randomExtent()
			err = a.Free(e)
			log = append(log, fmt.Sprintf("Free(%v) = %v", e, err))
			switch {
			case e.Empty():
				wantErr = ErrInvalid
			case model.count(e, true) > 0:
				wantErr = ErrDoubleFree
			case err == nil:
				model.set(e, true)
			}
		case op < 9: // take a random range
			e := randomExtent()
			err = a.Take(e)
			log = append(log, fmt.Sprintf("Take(%v) = %v", e, err))
			switch {
			case e.Empty():
				wantErr = ErrInvalid
			case model.count(e, true) < e.Len:
				wantErr = ErrNotFree
			case err == nil:
				model.set(e, false)
			}
		default: // queries
			e := randomExtent()
			covers, overlaps := a.Covers(e), a.Overlaps(e)
			log = append(log, fmt.Sprintf("Covers, Overlaps(%v) = %v, %v", e, covers, overlaps))
			if want := model.count(e, true) == e.Len; covers != want {
				fail("Covers(%v) = %v, model says %v", e, covers, want)
			}
			if want := model.count(e, true) > 0; overlaps != want {
				fail("Overlaps(%v) = %v, model says %v", e, overlaps, want)
			}
		}
		if wantErr != nil && !errors.Is(err, wantErr) {
			fail("error = %v, want %v", err, wantErr)
		}
		if wantErr == nil && err != nil {
			fail("unexpected error: %v", err)
		}
		if err := a.check(); err != nil {
			fail("invariant broken: %v", err)
		}
		if err != nil && !slices.Equal(a.Extents(), before) {
			fail("failed op changed free space")
		}
		compareWithModel(fail, a, model)
	}
}

// checkAllocation verifies one successful allocation against the model (which
// still shows the blocks as free) and then marks the blocks used in it.
func checkAllocation(fail func(string, ...any), model bitmap, got []pmem.Extent, n uint64, goal pmem.Block) {
	var sum uint64
	for i, e := range got {
		if e.Empty() || (i > 0 && got[i-1].End() > e.Start) {
			fail("allocation %v is not sorted, disjoint extents", got)
		}
		if model.count(e, true) != e.Len {
			fail("allocation %v hands out used blocks in %v", got, e)
		}
		sum += e.Len
	}
	if sum != n {
		fail("allocation %v holds %d blocks, asked for %d", got, sum, n)
	}
	// Policy 1: a long enough free run from the goal must be used.
	if uint64(goal)+n <= uint64(len(model)) && model.count(ext(uint64(goal), n), true) == n {
		if len(got) != 1 || got[0] != ext(uint64(goal), n) {
			fail("blocks [%d,+%d) were free but Alloc returned %v", goal, n, got)
		}
	}
	// Fewest pieces: as many as the largest free runs needed to reach n
	// (one whenever a single run can hold n).
	var lens []uint64
	for _, e := range model.extents() {
		lens = append(lens, e.Len)
	}
	slices.Sort(lens)
	slices.Reverse(lens)
	pieces, covered := 0, uint64(0)
	for _, l := range lens {
		if covered >= n {
			break
		}
		covered += l
		pieces++
	}
	if len(got) != pieces {
		fail("Alloc(%d) returned %d pieces, the largest free runs %v need only %d", n, len(got), lens[:pieces], pieces)
	}
	for _, e := range got {
		model.set(e, false)
	}
}

func compareWithModel(fail func(string, ...any), a *Allocator, model bitmap) {
	want := model.extents()
	if got := a.Extents(); !slices.Equal(got, want) {
		fail("free extents %v, model %v", got, want)
	}
	var sum, largest uint64
	for _, e := range want {
		sum += e.Len
		largest = max(largest, e.Len)
	}
	if a.FreeBlocks() != sum || a.Largest() != largest || a.Count() != len(want) {
		fail("FreeBlocks, Largest, Count = %d, %d, %d; model %d, %d, %d",
			a.FreeBlocks(), a.Largest(), a.Count(), sum, largest, len(want))
	}
}
