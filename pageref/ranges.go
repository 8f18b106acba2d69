package pageref

// This file holds range references: a reference that covers every block of
// a chunk is counted once, in the chunk's range count, instead of once per
// block, so that pinning a long contiguous run costs one operation per
// chunk it covers in full, not one per block.
//
// A block's count is its word's count plus its chunk's range count. The
// detached mark stays in the words, and so does the argument that a
// detached block is released exactly once (see dec): a chunk with a range
// count holds no detached word, because Detach first pushes the chunk's
// range count down into its words (pushDown) and, holding the chunk's lock,
// marks them, while a range reference is refused on a chunk with a
// detached word. So the last reference to a detached block is always a
// word's, and the word protocol reports it.
//
// References are fungible: a Release of part of a chunk held by a range
// reference pushes the range count down first, then drops word counts. A
// Release that finds a word at 0 pushes down and decrements holding the
// page's and the chunk's locks (decPushed), never on a reading of the range
// counts, which a concurrent push-down may have emptied since the word was
// read. Readers of a block's count load it from the top down (page, chunk,
// word), since a push-down adds below before it clears above.
//
// Directory pages do the same one level up: a reference that covers a whole
// page (256 MiB of 4 KiB blocks) is one range count of the page, pushed down
// into its chunks' range counts (under the page's lock, then each chunk's)
// before anything needs them: a Detach in the page, or a Release of part of
// it. A page with a range count holds no detached word either.

import (
	"sync"
	"sync/atomic"

	"github.com/daxstore/daxstore/pmem"
)

// rangeMax is the largest range count that Acquire gives a chunk or a page;
// beyond it, it takes references one level down. A page's push-down may
// take a chunk's count to 2*rangeMax, and word counts stay at most MaxCount
// = countMask - 2*rangeMax, so no push-down carries into the detached mark.
const rangeMax = 1 << 16

// pageBlocks is the number of blocks a directory page covers.
const pageBlocks = chunkBlocks * pageChunks

// chunkRanges is a chunk's range state.
type chunkRanges struct {
	mu sync.Mutex // serializes changes of all with pushDown and with Detach's marking of the chunk
	// all is the number of references that every block of the chunk holds
	// beyond its word's count. It only grows under mu; it falls under mu.
	all atomic.Uint32
	// detached counts the chunk's words that carry the detached mark: it
	// grows under mu (Detach), and falls when a word's last reference
	// drops or a failed Detach unmarks it. It may briefly count a word
	// that was just released, never miss one that is marked.
	detached atomic.Int32
}

// acquireAll adds one range reference to chunk ci. ok is false, with
// nothing changed, when the chunk's range count is at rangeMax or limit
// (the caller takes word references then); err is ErrDetached when a
// block of the chunk is detached.
func (t *Table) acquireAll(ci uint64, c *chunk, limit uint32) (ok bool, err error) {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	if c.r.detached.Load() > 0 {
		return false, ErrDetached
	}
	a := c.r.all.Load()
	if a >= rangeMax || a >= limit {
		return false, nil
	}
	if a == 0 {
		t.markRanged(ci)
	}
	c.r.all.Store(a + 1)
	return true, nil
}

// releaseAll drops one range reference of chunk ci, and reports false,
// changing nothing, when the chunk has none: the caller then drops word
// references.
func (t *Table) releaseAll(ci uint64, c *chunk) bool {
	c.r.mu.Lock()
	a := c.r.all.Load()
	if a == 0 {
		c.r.mu.Unlock()
		return false
	}
	c.r.all.Store(a - 1)
	if a == 1 {
		t.unmarkRanged(ci)
	}
	c.r.mu.Unlock()
	if a == 1 {
		// Blocks with no word reference just went idle.
		t.wake(ci)
	}
	return true
}

// pushDownLocked moves chunk ci's range count into its words, so that word
// operations alone account for every reference of the chunk; c.r.mu must be
// held. The words get the count before the range count drops, so that no
// reader loading from the top down sees a referenced block idle meanwhile
// (it may see it counted twice).
func (t *Table) pushDownLocked(ci uint64, c *chunk) {
	a := c.r.all.Load()
	if a == 0 {
		return
	}
	var fresh int64
	for i := range c.words {
		// No word of a chunk with a range count is detached, and word
		// counts stay at most MaxCount: the add cannot reach the mark.
		if c.words[i].Add(a)-a == 0 {
			fresh++
		}
	}
	t.stripe(ci, 0).Add(fresh)
	c.r.all.Store(0)
	t.unmarkRanged(ci)
}

// markRanged and unmarkRanged count chunk ci in, and out of, the chunks
// with a range count, per directory page and in all, so that
// ReferencedBlocks finds their blocks without scanning the table and
// without a lock that range references on different cores would share.
func (t *Table) markRanged(ci uint64) {
	t.dir[ci>>pageShift].Load().ranged.Add(1)
	t.rangedChunks.Add(1)
}

func (t *Table) unmarkRanged(ci uint64) {
	t.dir[ci>>pageShift].Load().ranged.Add(-1)
	t.rangedChunks.Add(-1)
}

// rangeOnlyBlocks returns the blocks referenced only through their chunk's
// range count: those whose word count is 0 in a chunk with a range count.
func (t *Table) rangeOnlyBlocks() int64 {
	if t.rangedChunks.Load() == 0 && t.rangedPages.Load() == 0 {
		return 0
	}
	var n int64
	for pi := range t.dir {
		p := t.dir[pi].Load()
		if p == nil || p.ranged.Load() == 0 && p.r.all.Load() == 0 {
			continue
		}
		pall := p.r.all.Load() > 0
		for j := range p.chunks {
			c := p.chunks[j].Load()
			if c == nil {
				if pall {
					n += chunkBlocks
				}
				continue
			}
			if c.r.all.Load() == 0 && !pall {
				continue
			}
			// Blocks with a word count are in the stripes already.
			for i := range c.words {
				if c.words[i].Load()&countMask == 0 {
					n++
				}
			}
		}
	}
	return n
}

// pageOf returns directory page pi, or nil.
func (t *Table) pageOf(pi uint64) *page { return t.dir[pi].Load() }

// pageAll returns the range count of the page holding chunk ci.
func (t *Table) pageAll(ci uint64) uint32 {
	if p := t.pageOf(ci >> pageShift); p != nil {
		return p.r.all.Load()
	}
	return 0
}

// acquirePageAll adds one range reference to page pi, which exists, as
// acquireAll does for a chunk.
func (t *Table) acquirePageAll(p *page, limit uint32) (ok bool, err error) {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	if p.r.detached.Load() > 0 {
		return false, ErrDetached
	}
	a := p.r.all.Load()
	if a >= rangeMax || a >= limit {
		return false, nil
	}
	if a == 0 {
		t.rangedPages.Add(1)
	}
	p.r.all.Store(a + 1)
	return true, nil
}

// releasePageAll drops one range reference of page pi, as releaseAll does
// for a chunk.
func (t *Table) releasePageAll(pi uint64, p *page) bool {
	p.r.mu.Lock()
	a := p.r.all.Load()
	if a == 0 {
		p.r.mu.Unlock()
		return false
	}
	p.r.all.Store(a - 1)
	if a == 1 {
		t.rangedPages.Add(-1)
	}
	p.r.mu.Unlock()
	if a == 1 {
		for j := range uint64(pageChunks) {
			t.wake(pi<<pageShift | j)
		}
	}
	return true
}

// pushDownPage moves page pi's range count into its chunks' range counts,
// creating the chunks. p.r.mu must be held. The chunks get the count
// before the page's drops, so no reader sees a referenced block idle.
func (t *Table) pushDownPageLocked(pi uint64, p *page) {
	a := p.r.all.Load()
	if a == 0 {
		return
	}
	for j := range uint64(pageChunks) {
		ci := pi<<pageShift | j
		c := t.chunkOrCreate(ci)
		c.r.mu.Lock()
		ca := c.r.all.Load()
		if ca == 0 {
			t.markRanged(ci)
		}
		c.r.all.Store(ca + a)
		c.r.mu.Unlock()
	}
	p.r.all.Store(0)
	t.rangedPages.Add(-1)
}

// pushDownPage is pushDownPageLocked taking the page's lock, for the page
// holding chunk ci.
func (t *Table) pushDownPage(ci uint64) {
	p := t.pageOf(ci >> pageShift)
	if p == nil || p.r.all.Load() == 0 {
		return
	}
	p.r.mu.Lock()
	t.pushDownPageLocked(ci>>pageShift, p)
	p.r.mu.Unlock()
}

// coversPage reports whether e covers every block of directory page pi.
func coversPage(e pmem.Extent, pi uint64) bool {
	start := pmem.Block(pi * pageBlocks)
	return e.Start <= start && e.End() >= start+pageBlocks
}

// pageOrCreate returns directory page pi, creating it if needed.
func (t *Table) pageOrCreate(pi uint64) *page {
	slot := &t.dir[pi]
	if p := slot.Load(); p != nil {
		return p
	}
	if slot.CompareAndSwap(nil, new(page)) {
		t.memBytes.Add(pageBytes)
	}
	return slot.Load()
}
