package alloc

// This file exists to hold the free-space index of the region and the
// contiguous-first policy that hands it out.

import (
	"cmp"
	"fmt"
	"slices"
	"sync"

	"github.com/daxstore/daxstore/pmem"
	"github.com/google/btree"
)

// nearScanLimit bounds how many free extents Alloc looks at after the goal
// before it falls back to best fit, so that a long run of small fragments
// after the goal keeps Alloc O(log n).
const nearScanLimit = 64

// Allocator is the free space of the region, indexed by start block and by
// size. It holds only what the caller gave it with Free (or never took);
// it does not know which blocks are owned by files or busy, and trusts the
// caller to free only blocks that are neither.
//
// Every method either succeeds completely or returns an error and changes
// nothing. The zero Allocator has no free space and is ready to use. An
// Allocator is safe for concurrent use.
type Allocator struct {
	// mu protects free and bySize, the two indexes of the one free set:
	// every method reads or changes both under it, so no caller ever sees
	// them disagree.
	mu     sync.Mutex
	free   ExtentSet                  // free extents by start, with the free-block total
	bySize *btree.BTreeG[pmem.Extent] // the same extents ordered by (Len, Start); nil until first use
	align  uint64                     // the alignment unit of large allocations, in blocks; 0 or 1: none (SetAlign)
}

// New returns an Allocator with no free space. Give it the region's free
// blocks with Free.
func New() *Allocator {
	return &Allocator{bySize: newBySize()}
}

func newBySize() *btree.BTreeG[pmem.Extent] {
	return btree.NewG(btreeDegree, func(a, b pmem.Extent) bool {
		if a.Len != b.Len {
			return a.Len < b.Len
		}
		return a.Start < b.Start
	})
}

// sizes returns the by-size tree, creating it for a zero Allocator.
func (a *Allocator) sizes() *btree.BTreeG[pmem.Extent] {
	if a.bySize == nil {
		a.bySize = newBySize()
	}
	return a.bySize
}

// applySizes replays a Delta of the by-start set onto the by-size index,
// which keeps the two in step: both hold exactly the members of a.free.
func (a *Allocator) applySizes(d Delta) {
	t := a.sizes()
	for _, r := range d.Removed {
		t.Delete(r)
	}
	for _, e := range d.Added {
		t.ReplaceOrInsert(e)
	}
}

// Free gives the blocks of e back, merging them with the free extents they
// touch. It returns an error wrapping ErrInvalid if e is empty or wraps past
// the last block number, and one wrapping ErrDoubleFree if any block of e is
// already free; either way nothing changes.
func (a *Allocator) Free(e pmem.Extent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := validExtent(e); err != nil {
		return fmt.Errorf("alloc: free %v: %w", e, err)
	}
	if m, ok := a.free.firstOverlap(e); ok {
		return fmt.Errorf("alloc: free %v: %w: overlaps free extent %v", e, ErrDoubleFree, m)
	}
	var d Delta
	a.free.insert(e, &d)
	a.applySizes(d)
	return nil
}

// Take removes the blocks of e from free space, for callers that already
// know which blocks they own (recovery, tests). It returns an error wrapping
// ErrInvalid if e is empty or wraps past the last block number, and one
// wrapping ErrNotFree if any block of e is not free; either way nothing
// changes.
func (a *Allocator) Take(e pmem.Extent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := validExtent(e); err != nil {
		return fmt.Errorf("alloc: take %v: %w", e, err)
	}
	m, ok := a.free.Find(e.Start)
	if !ok || !m.Covers(e) {
		if m, ok := a.free.firstOverlap(e); ok {
			return fmt.Errorf("alloc: take %v: %w (free extent %v covers only part)", e, ErrNotFree, m)
		}
		return fmt.Errorf("alloc: take %v: %w (none of them is free)", e, ErrNotFree)
	}
	var d Delta
	a.free.remove(e, m, &d)
	a.applySizes(d)
	return nil
}

// Alloc takes n free blocks, all or nothing, and returns them as extents
// sorted by start block. Without an alignment unit (SetAlign) it prefers
// one contiguous extent near goal:
//
//  1. if a free extent contains goal and has at least n blocks from goal to
//     its end, it returns [goal, goal+n);
//  2. else the first free extent that starts at or after goal and has at
//     least n blocks, looking at no more than 64 extents, gives its first n
//     blocks;
//  3. else the smallest free extent with at least n blocks gives its first n
//     blocks (best fit);
//  4. else it gathers the largest free extents until n blocks are covered,
//     which gives the fewest pieces possible; the last, partial piece comes
//     from the smallest extent that can hold the remainder, so as not to
//     split a large extent needlessly.
//
// n == 0 returns an error wrapping ErrInvalid. If fewer than n blocks are
// free in total, Alloc returns an error wrapping ErrNoSpace that says how
// many blocks were needed and what is free. On error nothing changes.
//
// With an alignment unit set, Alloc is AllocFor(n, Hint{Goal: goal}): a
// request of at least the unit gets an aligned run where one is free.
func (a *Allocator) Alloc(n uint64, goal pmem.Block) ([]pmem.Extent, error) {
	return a.AllocFor(n, Hint{Goal: goal})
}

// AllocFor is Alloc for blocks that will back file blocks from
// h.FileBlock on. Without an alignment unit (SetAlign) it places them as
// Alloc does near h.Goal. With a unit of A blocks:
//   - the file continues its run at h.Goal when the free run there holds n
//     blocks, unless the file is large (h.FileBlock+n >= A), the goal is
//     not congruent to the file block modulo A, and a congruent run is
//     free elsewhere;
//   - a large file otherwise gets one run congruent to its file blocks
//     modulo A whenever a free extent holds n+A-1 blocks (which has such a
//     run wherever it starts), or an extent with such a run is among the
//     64 extents from the goal on or the 64 smallest that hold n blocks;
//   - a small request takes free space that splits no aligned unit of A
//     free blocks when such space is among those same extents.
//
// Either way it fails only as Alloc does, never for want of alignment, and
// returns one extent whenever a free extent holds n blocks, else the
// fewest pieces the free space allows (TestAlignedAllocatorRandom).
func (a *Allocator) AllocFor(n uint64, h Hint) ([]pmem.Extent, error) {
	goal := h.Goal
	if n == 0 {
		return nil, fmt.Errorf("alloc: allocate 0 blocks: %w", ErrInvalid)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if total := a.free.Blocks(); n > total {
		return nil, fmt.Errorf("alloc: need %d blocks, %d free in %d extents (largest %d): %w",
			n, total, a.free.Count(), a.largest(), ErrNoSpace)
	}
	var pieces []pmem.Extent
	if a.align > 1 {
		pieces = a.planAligned(n, h)
	} else {
		pieces = a.plan(n, goal)
	}
	for i, p := range pieces {
		d, err := a.free.Remove(p)
		if err != nil {
			// plan only returns free blocks, so this is a bug in plan; put
			// back what was taken so that the failure changes nothing.
			for _, q := range pieces[:i] {
				back, _ := a.free.Insert(q)
				a.applySizes(back)
			}
			return nil, fmt.Errorf("alloc: allocate %d blocks near %d: planned piece %v: %w", n, goal, p, err)
		}
		a.applySizes(d)
	}
	slices.SortFunc(pieces, func(x, y pmem.Extent) int { return cmp.Compare(x.Start, y.Start) })
	return pieces, nil
}

// plan chooses the free blocks for Alloc without changing anything. The
// caller has checked that 0 < n <= a.free.Blocks().
func (a *Allocator) plan(n uint64, goal pmem.Block) []pmem.Extent {
	// 1. Right at the goal.
	if m, ok := a.free.Find(goal); ok && uint64(m.End()-goal) >= n {
		return []pmem.Extent{{Start: goal, Len: n}}
	}
	// 2. The first extent after the goal that is big enough, within reach.
	var near pmem.Extent
	scanned := 0
	a.free.members().AscendGreaterOrEqual(pmem.Extent{Start: goal}, func(m pmem.Extent) bool {
		if m.Len >= n {
			near = m
			return false
		}
		scanned++
		return scanned < nearScanLimit
	})
	if !near.Empty() {
		return []pmem.Extent{{Start: near.Start, Len: n}}
	}
	// 3. Best fit.
	if fit, ok := a.bestFit(n); ok {
		return []pmem.Extent{{Start: fit.Start, Len: n}}
	}
	// 4. Largest first. Every extent taken whole is larger (by size order)
	// than the one where the sum reaches n, which itself holds the
	// remainder, so the best fit for the remainder is never one of them.
	var pieces []pmem.Extent
	var sum uint64
	a.sizes().Descend(func(m pmem.Extent) bool {
		if sum+m.Len >= n {
			return false
		}
		pieces = append(pieces, m)
		sum += m.Len
		return true
	})
	fit, _ := a.bestFit(n - sum)
	return append(pieces, pmem.Extent{Start: fit.Start, Len: n - sum})
}

// bestFit returns the smallest free extent with at least n blocks, the
// lowest one among equals.
func (a *Allocator) bestFit(n uint64) (fit pmem.Extent, ok bool) {
	a.sizes().AscendGreaterOrEqual(pmem.Extent{Len: n}, func(m pmem.Extent) bool {
		fit, ok = m, true
		return false
	})
	return fit, ok
}

// largest returns the length of the largest free extent; a.mu must be held.
func (a *Allocator) largest() uint64 {
	m, _ := a.sizes().Max()
	return m.Len
}

// FreeBlocks returns the number of free blocks.
func (a *Allocator) FreeBlocks() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.free.Blocks()
}

// Largest returns the length of the largest free extent, 0 when nothing is
// free.
func (a *Allocator) Largest() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.largest()
}

// Count returns the number of free extents.
func (a *Allocator) Count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.free.Count()
}

// Extents returns the free extents sorted by start, as of one instant.
func (a *Allocator) Extents() []pmem.Extent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.free.Extents()
}

// Covers reports whether every block of e is free (true for an empty e).
func (a *Allocator) Covers(e pmem.Extent) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.free.Covers(e)
}

// Overlaps reports whether some block of e is free.
func (a *Allocator) Overlaps(e pmem.Extent) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.free.Overlaps(e)
}
