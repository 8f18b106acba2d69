package pageref

// This file holds the word protocol — Acquire, Release and Detach — and the
// argument that every detached block is released exactly once.
//
// Every change to a block's state is one compare-and-swap on its single
// 32-bit word (bit 31 detached, bits 0..30 count), so the changes to a block
// are totally ordered and each one sees the exact state it replaces:
//
//   - Acquire:  c → c+1, only if the word is not detached and c < MaxCount
//     (or the lower limit of AcquireUpTo).
//   - Release:  c → c-1 for c ≥ 1, and detached|1 → 0 (the last reference to a
//     detached block), never from a count of 0.
//   - Detach:   c → detached|c for c ≥ 1; a word of 0 is left as it is.
//
// No transition produces detached|0, and only Release clears the mark, by
// replacing detached|1 with 0. Chunks covered whole also keep a range count
// beside the words; ranges.go says why the protocol still holds with it.

import (
	"fmt"

	"github.com/daxstore/daxstore/pmem"
)

// Acquire adds one reference to every block of e. It fails, with no net
// change, if e is empty or outside the table (ErrInvalidRange), if a block of
// e is detached (ErrDetached: no new reference may be taken to a block the
// file no longer owns), or if a count would exceed MaxCount (ErrTooManyRefs).
//
// A multi-block Acquire takes its references block by block, except that a
// chunk it covers whole gets one range reference; when it fails part-way it
// drops the ones it took before returning, so other goroutines may briefly
// see them, as they would a successful Acquire and Release.
//
// Acquire of one block in an existing chunk takes no lock and does not
// allocate.
func (t *Table) Acquire(e pmem.Extent) error {
	return t.AcquireUpTo(e, MaxCount)
}

// AcquireUpTo is Acquire with a lower ceiling: it fails with ErrTooManyRefs,
// with no net change, if a count of e would exceed limit (or MaxCount, if
// limit is larger). A caller that takes long-lived references keeps them
// under a limit below MaxCount, so that short references, taken through
// Acquire, still succeed on a block that holds as many long ones as allowed.
func (t *Table) AcquireUpTo(e pmem.Extent, limit uint32) error {
	if err := t.checkRange(e); err != nil {
		return fmt.Errorf("pageref: acquire: %w", err)
	}
	limit = min(limit, MaxCount)
	for ci := chunkOf(e.Start); ci <= chunkOf(e.End()-1); ci++ {
		if pi := ci >> pageShift; ci&pageMask == 0 && coversPage(e, pi) {
			// One range reference for the whole page.
			ok, err := t.acquirePageAll(t.pageOrCreate(pi), limit)
			if err != nil {
				b, _ := t.firstDetached(pmem.Extent{Start: blockOf(ci, 0), Len: pageBlocks})
				t.undoAcquire(pmem.Extent{Start: e.Start, Len: uint64(blockOf(ci, 0) - e.Start)})
				return fmt.Errorf("pageref: acquire %v: block %d: %w", e, b, err)
			}
			if ok {
				ci += pageChunks - 1
				continue
			}
		}
		c := t.chunkOrCreate(ci)
		lo, hi := span(e, ci)
		if lo == 0 && hi == chunkBlocks {
			// One range reference for the whole chunk.
			ok, err := t.acquireAll(ci, c, limit)
			if err != nil {
				b, _ := t.firstDetached(pmem.Extent{Start: blockOf(ci, 0), Len: chunkBlocks})
				t.undoAcquire(pmem.Extent{Start: e.Start, Len: uint64(blockOf(ci, 0) - e.Start)})
				return fmt.Errorf("pageref: acquire %v: block %d: %w", e, b, err)
			}
			if ok {
				continue
			}
		}
		var fresh int64 // words taken from 0 to 1
		pall := t.pageAll(ci)
		for i := lo; i < hi; i++ {
			old, err := c.inc(i, limit, pall)
			if err != nil {
				t.stripe(ci, lo).Add(fresh)
				b := blockOf(ci, i)
				t.undoAcquire(pmem.Extent{Start: e.Start, Len: uint64(b - e.Start)})
				return fmt.Errorf("pageref: acquire %v: block %d: %w", e, b, err)
			}
			if old == 0 {
				fresh++
			}
		}
		if fresh != 0 {
			t.stripe(ci, lo).Add(fresh)
		}
	}
	return nil
}

// inc adds one reference to word i and returns the word it replaced. It
// refuses a detached word and a count at limit, which is at most MaxCount,
// so the count never carries into the detached bit. The chunk's range
// count and pall, its page's, count towards the limit.
func (c *chunk) inc(i int, limit, pall uint32) (old uint32, err error) {
	w := &c.words[i]
	for {
		old = w.Load()
		switch {
		case old&detachedBit != 0:
			return old, ErrDetached
		case old&countMask+c.r.all.Load()+pall >= limit:
			return old, ErrTooManyRefs
		}
		if w.CompareAndSwap(old, old+1) {
			return old, nil
		}
	}
}

// undoAcquire drops the references a failed Acquire took on e. They are the
// caller's own, so dropping them is a plain Release: a block detached
// meanwhile whose last reference was one of them is reported to onRelease.
func (t *Table) undoAcquire(e pmem.Extent) {
	if e.Len == 0 {
		return
	}
	// Dropping references this call took cannot meet a count of 0 unless
	// another goroutine released references it never acquired; there is
	// nothing more to undo in that case.
	runs, _, _ := t.drop(e)
	t.report(runs)
}

// Release drops one reference from every block of e. It fails, with no net
// change, if e is empty or outside the table (ErrInvalidRange) or if any
// block's count is already 0 (ErrNotReferenced): every count is checked
// before any is decremented.
//
// Detached blocks whose count reaches 0 are reported to onRelease, in one
// call with all their runs, from this goroutine and before Release returns.
// Goroutines in WaitIdle on blocks that reach 0 are woken.
//
// A caller may only release references it acquired. If another goroutine
// releases the same references concurrently, a count may reach 0 between the
// check and the decrement; Release then leaves that block alone, releases
// the rest and returns ErrNotReferenced naming it.
//
// Release of one block does not allocate unless the block was detached, and
// takes no lock unless a goroutine waits in WaitIdle on the block's bucket.
func (t *Table) Release(e pmem.Extent) error {
	if err := t.checkRange(e); err != nil {
		return fmt.Errorf("pageref: release: %w", err)
	}
	if e.Len > 1 {
		if b, ok := t.firstUnreferenced(e); ok {
			return fmt.Errorf("pageref: release %v: block %d: %w", e, b, ErrNotReferenced)
		}
	}
	// For a single block, the decrement itself is the check: it never takes
	// a count below 0.
	runs, b, ok := t.drop(e)
	t.report(runs)
	if !ok {
		return fmt.Errorf("pageref: release %v: block %d: %w", e, b, ErrNotReferenced)
	}
	return nil
}

// firstUnreferenced returns the first block of e whose count is 0.
func (t *Table) firstUnreferenced(e pmem.Extent) (pmem.Block, bool) {
	for ci := chunkOf(e.Start); ci <= chunkOf(e.End()-1); ci++ {
		lo, hi := span(e, ci)
		if t.pageAll(ci) > 0 {
			continue
		}
		c := t.chunk(ci)
		if c == nil {
			return blockOf(ci, lo), true
		}
		if c.r.all.Load() > 0 {
			continue
		}
		for i := lo; i < hi; i++ {
			if c.words[i].Load()&countMask == 0 {
				return blockOf(ci, i), true
			}
		}
	}
	return 0, false
}

// drop removes one reference from every block of e and returns the runs of
// detached blocks it released. A block already at 0 is left alone; ok is
// false and lost names the first such block. Per chunk, drop updates the
// referenced-blocks counter once and wakes the chunk's waiters once.
func (t *Table) drop(e pmem.Extent) (runs []pmem.Extent, lost pmem.Block, ok bool) {
	ok = true
	for ci := chunkOf(e.Start); ci <= chunkOf(e.End()-1); ci++ {
		pi := ci >> pageShift
		if p := t.pageOf(pi); p != nil && p.r.all.Load() > 0 {
			if ci&pageMask == 0 && coversPage(e, pi) && t.releasePageAll(pi, p) {
				ci += pageChunks - 1
				continue
			}
			// Part of a page held by a page reference: its chunks
			// hold the count from here on.
			t.pushDownPage(ci)
		}
		lo, hi := span(e, ci)
		c := t.chunk(ci)
		if c == nil {
			if ok {
				lost, ok = blockOf(ci, lo), false
			}
			continue
		}
		if lo == 0 && hi == chunkBlocks && t.releaseAll(ci, c) {
			continue
		}
		var idle int64 // words taken to 0
		for i := lo; i < hi; i++ {
			d := c.dec(i)
			if d == decNone {
				if t.gap != nil {
					t.gap(ci, i)
				}
				// The reference may be in a range count.
				d = t.decPushed(ci, c, i)
			}
			switch d {
			case decNone:
				if ok {
					lost, ok = blockOf(ci, i), false
				}
			case decIdle:
				idle++
			case decReleased:
				idle++
				c.r.detached.Add(-1)
				t.pageOf(pi).r.detached.Add(-1)
				runs = appendBlock(runs, blockOf(ci, i))
			}
		}
		if idle != 0 {
			t.stripe(ci, lo).Add(-idle)
			// The decrements above are ordered before this load of the
			// bucket's waiter count; see wake for why no wakeup is lost.
			t.wake(ci)
		}
	}
	return runs, lost, ok
}

// decPushed drops one reference from word i of chunk ci after the word was
// seen at 0: the block's references, if any, are then in the range counts of
// the chunk or of its page. It pushes both down and decrements the word
// holding the page's lock, then the chunk's, so that no push-down or range
// reference is in flight meanwhile and the word is the block's whole count:
// it returns decNone only if the block really has no reference.
//
// Reading the range counts instead, to see whether a push-down is needed, is
// not enough: a push-down by another goroutine (a Release of another part of
// the chunk, or Detach) can move the count into the words after the word was
// read at 0 and before the range counts are read, and the reference is then
// seen nowhere; the same holds between the chunk's and the page's count.
// TestReleaseRacingAPushDown lands a push-down in that gap.
func (t *Table) decPushed(ci uint64, c *chunk, i int) int {
	pi := ci >> pageShift
	p := t.pageOf(pi) // not nil: it holds chunk c
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	t.pushDownPageLocked(pi, p)
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	t.pushDownLocked(ci, c)
	return c.dec(i)
}

// Outcomes of chunk.dec.
const (
	decNone     = iota // the count was already 0; nothing changed
	decHeld            // the count dropped and is still above 0
	decIdle            // the count dropped to 0 on a block that is not detached
	decReleased        // the last reference to a detached block dropped: release it
)

// dec drops one reference from word i.
//
// Release exactly once. This compare-and-swap, together with the one in
// mark, is where a detached block is released exactly once; the race between
// Detach and the last Release on one block resolves on the block's single
// word:
//
//   - If mark reads a count of 0, it leaves the word 0 and its caller frees the
//     block directly. The mark is never set, so no dec can see detached|1 and
//     report the block.
//   - If mark sets the detached bit on a count c ≥ 1, its caller does not
//     free the block. From then on Acquire refuses the word, so the count only
//     falls, one successful CAS at a time, and exactly one CAS replaces
//     detached|1 with 0: the dec that does it returns decReleased and its
//     Release reports the block. Any other dec that read detached|1 fails its
//     CAS, rereads 0 and returns decNone.
//   - mark and dec cannot both act on the same count: whichever CAS comes
//     second read the word the first one wrote.
//
// TestReleaseExactlyOnce proves it under concurrent Release, Acquire and
// Detach over many seeded rounds; TestModel checks it against a sequential
// model.
func (c *chunk) dec(i int) int {
	w := &c.words[i]
	for {
		old := w.Load()
		if old&countMask == 0 {
			return decNone
		}
		next := old - 1
		if next == detachedBit {
			next = 0
		}
		if w.CompareAndSwap(old, next) {
			switch {
			case next != 0:
				return decHeld
			case old&detachedBit != 0:
				return decReleased
			default:
				return decIdle
			}
		}
	}
}

// report hands released runs to onRelease, outside any lock.
func (t *Table) report(runs []pmem.Extent) {
	if len(runs) != 0 && t.onRelease != nil {
		t.onRelease(runs)
	}
}

// Detach marks the referenced blocks of e as detached and returns them as
// ascending, coalesced runs. For each block, atomically: a count of 0 is left
// as it is (the caller frees the block directly; it is not in busy), and a
// count above 0 gets the detached mark, so that the Release that drops its
// last reference reports it to onRelease (which may happen before Detach
// returns). Counts are not changed.
//
// Detach fails, changing nothing, if e is empty or outside the table
// (ErrInvalidRange) or if a block of e is already detached (ErrDetached).
//
// Only the owner of a block may detach it, so Detach calls on overlapping
// ranges must not run concurrently (dax holds the file's invalidate lock).
// Acquire and Release may race with Detach freely: a block is either idle
// at the instant Detach reads it, or detached before its last Release.
func (t *Table) Detach(e pmem.Extent) (busy []pmem.Extent, err error) {
	if err := t.checkRange(e); err != nil {
		return nil, fmt.Errorf("pageref: detach: %w", err)
	}
	if b, ok := t.firstDetached(e); ok {
		return nil, fmt.Errorf("pageref: detach %v: block %d: %w", e, b, ErrDetached)
	}
	last := chunkOf(e.End() - 1)
	// Each page's lock, then each chunk's, is held from its push-down to
	// the last mark in it, so that no range reference is taken in between:
	// a page or chunk with a range count has no detached block (see
	// ranges.go).
	var held *page
	for ci := t.present(chunkOf(e.Start), last); ci <= last; ci = t.present(ci+1, last) {
		pi := ci >> pageShift
		if p := t.pageOf(pi); p != held {
			if held != nil {
				held.r.mu.Unlock()
			}
			held = p
			p.r.mu.Lock()
			t.pushDownPageLocked(pi, p)
		}
		c := t.chunk(ci)
		if c == nil {
			continue // never referenced: idle
		}
		lo, hi := span(e, ci)
		c.r.mu.Lock()
		t.pushDownLocked(ci, c)
		for i := lo; i < hi; i++ {
			marked, err := c.mark(i)
			if err != nil {
				c.r.mu.Unlock()
				held.r.mu.Unlock()
				// Only a concurrent Detach of an overlapping range, which
				// the caller must not issue, gets here.
				lost := t.unmark(busy)
				return nil, fmt.Errorf("pageref: detach %v: block %d: concurrent detach (%d blocks already released): %w",
					e, blockOf(ci, i), lost, ErrDetached)
			}
			if marked {
				c.r.detached.Add(1)
				held.r.detached.Add(1)
				busy = appendBlock(busy, blockOf(ci, i))
			}
		}
		c.r.mu.Unlock()
	}
	if held != nil {
		held.r.mu.Unlock()
	}
	return busy, nil
}

// mark sets the detached bit on word i if its count is above 0 and reports
// whether it did. See dec for why a block is then released exactly once.
func (c *chunk) mark(i int) (marked bool, err error) {
	w := &c.words[i]
	for {
		old := w.Load()
		switch {
		case old == 0:
			return false, nil
		case old&detachedBit != 0:
			return false, ErrDetached
		}
		if w.CompareAndSwap(old, old|detachedBit) {
			return true, nil
		}
	}
}

// unmark clears the detached bit that a failed Detach set on runs. It
// returns how many of those blocks had already been released (and reported)
// and could not be restored.
func (t *Table) unmark(runs []pmem.Extent) (lost int) {
	for _, r := range runs {
		for b := r.Start; b < r.End(); b++ {
			c := t.chunk(chunkOf(b))
			w := &c.words[b&chunkMask]
			for {
				old := w.Load()
				if old&detachedBit == 0 {
					lost++
					break
				}
				if w.CompareAndSwap(old, old&^detachedBit) {
					c.r.detached.Add(-1)
					t.pageOf(chunkOf(b) >> pageShift).r.detached.Add(-1)
					break
				}
			}
		}
	}
	return lost
}

// firstDetached returns the first detached block of e.
func (t *Table) firstDetached(e pmem.Extent) (pmem.Block, bool) {
	return t.firstWith(e, detachedBit)
}

// firstWith returns the first block of e whose word has any of mask's bits
// set, skipping chunks that were never created.
func (t *Table) firstWith(e pmem.Extent, mask uint32) (pmem.Block, bool) {
	last := chunkOf(e.End() - 1)
	for ci := t.present(chunkOf(e.Start), last); ci <= last; ci = t.present(ci+1, last) {
		c := t.chunk(ci)
		lo, hi := span(e, ci)
		if mask&countMask != 0 && t.pageAll(ci) > 0 {
			return blockOf(ci, lo), true
		}
		if c == nil {
			continue
		}
		if mask&countMask != 0 && c.r.all.Load() > 0 {
			return blockOf(ci, lo), true
		}
		for i := lo; i < hi; i++ {
			if c.words[i].Load()&mask != 0 {
				return blockOf(ci, i), true
			}
		}
	}
	return 0, false
}
