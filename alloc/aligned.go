package alloc

// This file exists to hold the aligned placement policy: large runs
// whose region blocks are congruent to their file blocks modulo an
// alignment unit (2 MiB, the huge page of fsdax mappings), files that keep
// growing in one run, and small allocations that leave aligned free runs
// whole.

import (
	"math"

	"github.com/daxstore/daxstore/pmem"
)

// Hint says where an allocation should go.
type Hint struct {
	// Goal is the region block the allocation would best start at: right
	// after the blocks that back the file block before FileBlock, so that
	// the file continues its run. 0 means no goal (block 0 holds the
	// region's superblock and is never free).
	Goal pmem.Block
	// FileBlock is the file block that the first allocated block will
	// back. The aligned policy places large runs so that region block ≡
	// file block modulo the alignment unit: then a mapping of the file
	// can use pages as large as the unit.
	FileBlock uint64
}

// SetAlign sets the alignment unit of the policy, in blocks: 2 MiB worth
// of blocks for a region whose mappings can use 2 MiB pages. 0 or 1 turns
// the aligned policy off, which leaves Alloc's plain policy. The unit
// changes where allocations go, never whether they succeed.
func (a *Allocator) SetAlign(blocks uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.align = blocks
}

// planAligned chooses the free blocks for AllocFor with an alignment unit
// A = a.align > 1, without changing anything. The caller has checked that
// 0 < n <= a.free.Blocks(). A request is large when the file reaches A
// blocks with it (h.FileBlock+n >= A): it is (or becomes) a file worth
// mapping with large pages. Its run should be congruent: region block ≡
// file block (mod A).
//
//  1. If the free run at the goal holds n blocks, and the request is small
//     or the goal is congruent, the goal: the file continues its run.
//  2. Large requests:
//     a. if the goal block was taken (by another file growing there),
//     a congruent run in the middle of the largest free extent, leaving
//     room for both files to grow without meeting again soon;
//     b. the first free extent from the goal on, within 64, that holds a
//     congruent run of n blocks;
//     c. the smallest free extent, within 64 of the smallest that hold n
//     blocks, that holds a congruent run; else the smallest extent of at
//     least n+A-1 blocks, which always does;
//     d. the goal of step 1, incongruent.
//  3. Small requests: a place that splits no aligned free run of A blocks
//     (the unaligned head or tail of a free extent, or an extent with no
//     whole aligned unit): the first from the goal on within 64 extents,
//     else the smallest such within 64 of the smallest extents that hold
//     n blocks.
//  4. Otherwise Alloc's plain policy (plan): near the goal, best fit, or
//     gathered largest first. So alignment never makes an allocation fail
//     or take more pieces than plain placement would.
//
// Every step looks at O(log n) tree nodes plus at most 64 extents, as
// Alloc's plain policy does.
func (a *Allocator) planAligned(n uint64, h Hint) []pmem.Extent {
	align, goal := a.align, h.Goal
	phase := h.FileBlock % align
	large := n >= align || h.FileBlock >= align-n
	m, goalFree := a.free.Find(goal)
	fitsAtGoal := goalFree && uint64(m.End()-goal) >= n
	one := func(s pmem.Block) []pmem.Extent { return []pmem.Extent{{Start: s, Len: n}} }
	if fitsAtGoal && (!large || uint64(goal)%align == phase) {
		return one(goal)
	}
	if large {
		if goal != 0 && !goalFree {
			if s, ok := a.congruentInLargest(n, phase); ok {
				return one(s)
			}
		}
		if s, ok := a.firstAfter(goal, func(m pmem.Extent) (pmem.Block, bool) { return a.congruentIn(m, n, phase) }); ok {
			return one(s)
		}
		if s, ok := a.congruentBySize(n, phase); ok {
			return one(s)
		}
		if fitsAtGoal {
			return one(goal)
		}
		return a.plan(n, goal)
	}
	harmless := func(m pmem.Extent) (pmem.Block, bool) { return a.harmlessIn(m, n) }
	if s, ok := a.firstAfter(goal, harmless); ok {
		return one(s)
	}
	if s, ok := a.smallestWith(n, harmless); ok {
		return one(s)
	}
	return a.plan(n, goal)
}

// congruentIn returns the first block s of free extent m with s ≡ phase
// (mod a.align) and [s, s+n) inside m.
func (a *Allocator) congruentIn(m pmem.Extent, n, phase uint64) (pmem.Block, bool) {
	skip := (phase + a.align - uint64(m.Start)%a.align) % a.align
	if skip >= m.Len || m.Len-skip < n {
		return 0, false
	}
	return m.Start + pmem.Block(skip), true
}

// congruentInLargest returns a congruent start for n blocks near the
// middle of the largest free extent.
func (a *Allocator) congruentInLargest(n, phase uint64) (pmem.Block, bool) {
	m, ok := a.sizes().Max()
	if !ok || m.Len < n {
		return 0, false
	}
	// The middle of the room, rounded down to the phase, so the blocks
	// before it and after the new run are about equal.
	off := (m.Len - n) / 2
	mid := uint64(m.Start) + off
	back := (mid%a.align + a.align - phase) % a.align
	if back > off {
		return a.congruentIn(m, n, phase)
	}
	return pmem.Block(mid - back), true
}

// congruentBySize returns a congruent start for n blocks in the smallest
// free extent that has one among the 64 smallest that hold n blocks, else
// in the smallest extent of at least n+align-1 blocks, where one always
// fits.
func (a *Allocator) congruentBySize(n, phase uint64) (pmem.Block, bool) {
	if s, ok := a.smallestWith(n, func(m pmem.Extent) (pmem.Block, bool) { return a.congruentIn(m, n, phase) }); ok {
		return s, true
	}
	if n > math.MaxUint64-(a.align-1) {
		return 0, false
	}
	fit, ok := a.bestFit(n + a.align - 1)
	if !ok {
		return 0, false
	}
	return a.congruentIn(fit, n, phase)
}

// harmlessIn returns where n blocks of free extent m can go without
// splitting an aligned run of a.align blocks inside m: its start when the
// unaligned head holds them (or m holds no whole aligned unit), else the
// end of its unaligned tail.
func (a *Allocator) harmlessIn(m pmem.Extent, n uint64) (pmem.Block, bool) {
	if m.Len < n {
		return 0, false
	}
	head := (a.align - uint64(m.Start)%a.align) % a.align
	if head >= m.Len || (m.Len-head)/a.align == 0 || head >= n {
		return m.Start, true
	}
	if tail := (m.Len - head) % a.align; tail >= n {
		return m.End() - pmem.Block(n), true
	}
	return 0, false
}

// firstAfter returns the place fit finds in the first of the free extents
// from goal on (the one holding goal counts from goal), looking at no more
// than nearScanLimit of them.
func (a *Allocator) firstAfter(goal pmem.Block, fit func(pmem.Extent) (pmem.Block, bool)) (s pmem.Block, ok bool) {
	scanned := 0
	if m, found := a.free.Find(goal); found && m.Start < goal {
		if s, ok = fit(pmem.Extent{Start: goal, Len: uint64(m.End() - goal)}); ok {
			return s, ok
		}
		scanned++
	}
	a.free.members().AscendGreaterOrEqual(pmem.Extent{Start: goal}, func(m pmem.Extent) bool {
		s, ok = fit(m)
		scanned++
		return !ok && scanned < nearScanLimit
	})
	return s, ok
}

// smallestWith returns the place fit finds in the smallest free extent of
// at least n blocks where it finds one, looking at no more than
// nearScanLimit of them.
func (a *Allocator) smallestWith(n uint64, fit func(pmem.Extent) (pmem.Block, bool)) (s pmem.Block, ok bool) {
	scanned := 0
	a.sizes().AscendGreaterOrEqual(pmem.Extent{Len: n}, func(m pmem.Extent) bool {
		s, ok = fit(m)
		scanned++
		return !ok && scanned < nearScanLimit
	})
	return s, ok
}
