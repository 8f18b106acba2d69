// Package pageref keeps one reference count per region block, so that a block
// the file no longer owns is never freed while referenced and never freed
// twice.
//
// Short-term references (a read or write holding a block while it copies)
// and long-term pins share one count. Detach marks referenced blocks as no
// longer owned by any file; the Release that drops the last reference to a
// detached block reports it, exactly once, to the table's onRelease callback.
// WaitIdle lets a goroutine wait, with a context, until a range has no
// references.
//
// The table is sparse: counts live in chunks of 512 blocks that are created
// on the first Acquire in their range, under a two-level directory. A region
// of several TiB with nothing pinned costs 32 bytes of directory per GiB.
// Acquire and Release of a block in an existing chunk are lock-free and do
// not allocate. A reference to a range counts once for every directory page
// (256 MiB of 4 KiB blocks) and every chunk it covers whole (range counts,
// as gVisor's segment sets count by range), so pinning an aligned GiB costs
// 4 operations, not 262,144.
package pageref

// This file holds the sparse table itself: its layout, construction and the
// read-only views (Count, Referenced, MemoryBytes, Check).

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/daxstore/daxstore/pmem"
)

// Errors returned by the table, wrapped with the operation, the range and the
// offending block. Test for them with errors.Is.
var (
	// ErrInvalidRange reports an empty extent or one that does not lie inside
	// the table.
	ErrInvalidRange = errors.New("invalid block range")
	// ErrDetached reports an Acquire of a detached block (no new reference
	// may be taken to a block the file no longer owns), or a Detach of a block
	// that is already detached.
	ErrDetached = errors.New("block is detached")
	// ErrNotReferenced reports a Release of a block whose count is already 0.
	ErrNotReferenced = errors.New("block is not referenced")
	// ErrTooManyRefs reports an Acquire that would take a count above
	// MaxCount.
	ErrTooManyRefs = errors.New("too many references to block")
)

const (
	// MaxCount is the largest reference count a block can hold. An Acquire
	// beyond it fails with ErrTooManyRefs. It leaves room below the 31 bits
	// of a block's word for the range count of its chunk (see ranges.go).
	MaxCount = countMask - 2*rangeMax

	// MaxBlocks is the largest region, in blocks, a table covers: 1 PiB of
	// 4 KiB blocks, far beyond any region that can be mapped today. It bounds
	// the directory to 32 MiB.
	MaxBlocks = 1 << 38
)

const (
	// A word holds one block's state: bit 31 is the detached mark, bits
	// 0..30 the reference count. A word never holds the detached mark with a
	// count of 0 (Check verifies it).
	detachedBit = uint32(1) << 31
	countMask   = detachedBit - 1

	chunkShift  = 9
	chunkBlocks = 1 << chunkShift // blocks per chunk: 2 KiB of words
	chunkMask   = chunkBlocks - 1

	pageShift  = 7
	pageChunks = 1 << pageShift // chunk pointers per directory page: 1 KiB, 256 MiB of 4 KiB blocks
	pageMask   = pageChunks - 1

	chunkBytes = int64(unsafe.Sizeof(chunk{}))
	pageBytes  = int64(unsafe.Sizeof(page{}))
	slotBytes  = int64(unsafe.Sizeof(atomic.Pointer[page]{}))
)

// chunk holds the words of chunkBlocks consecutive blocks, and the
// references that cover all of them (see ranges.go).
type chunk struct {
	words [chunkBlocks]atomic.Uint32
	r     chunkRanges
}

// page is the second directory level: pointers to pageChunks chunks.
type page struct {
	chunks [pageChunks]atomic.Pointer[chunk]
	ranged atomic.Int32 // chunks of the page with a range count
	r      chunkRanges  // references to every block of the page (see ranges.go)
}

// refStripe is one shard of the referenced-blocks counter, alone on its
// cache line so that Acquire/Release on distinct chunks do not contend.
type refStripe struct {
	n atomic.Int64
	_ [56]byte
}

const (
	refStripeBits = 6
	refStripes    = 1 << refStripeBits
)

// Table is a sparse table of per-block reference counts with detached marks.
// All methods are safe for concurrent use.
//
// Once created, a chunk or directory page stays allocated until the table is
// dropped: reclaiming a chunk safely would need every Acquire to announce
// itself on a shared per-chunk word, which would cost the hot path more than
// the memory saved. The table therefore grows to the footprint of every chunk
// that was ever referenced, at most 1 byte per KiB of region (4 bytes per
// 4 KiB block).
type Table struct {
	blocks    uint64
	onRelease func(runs []pmem.Extent)

	// dir is the first directory level. Its slots, and the slots of its
	// pages, only ever change from nil to non-nil, by compare-and-swap, so
	// readers need no lock.
	dir []atomic.Pointer[page]

	memBytes atomic.Int64 // directory, pages and chunks allocated so far
	fixed    int64        // bytes of the Table struct itself

	refs [refStripes]refStripe // blocks with count > 0, summed over the stripes

	waiting atomic.Int64 // goroutines inside WaitIdle
	buckets [waitBuckets]bucket

	rangedChunks atomic.Int64 // chunks with a range count
	rangedPages  atomic.Int64 // directory pages with a range count

	// gap, nil outside tests, is called where a reader of block i of
	// chunk ci has read part of the block's count and not the rest: in
	// Count between its loads, and in Release after it found the word at
	// 0. Tests make a push-down land there.
	gap func(ci uint64, i int)
}

// New returns a table for a region of `blocks` blocks (block numbers
// 0..blocks-1), with every count 0 and no block detached. A count above
// MaxBlocks is clamped to MaxBlocks, which Blocks reports.
//
// onRelease is called outside any table lock, from the goroutine whose
// Release dropped the last reference, with the detached blocks that just
// became unreferenced, coalesced into ascending runs. Each detached block is
// reported exactly once. It may be called for a block before the Detach that
// marked it has returned. A nil onRelease means nobody is told, and the
// released blocks are forgotten.
func New(blocks uint64, onRelease func(runs []pmem.Extent)) *Table {
	blocks = min(blocks, MaxBlocks)
	chunks := (blocks + chunkMask) >> chunkShift
	pages := (chunks + pageMask) >> pageShift
	t := &Table{
		blocks:    blocks,
		onRelease: onRelease,
		dir:       make([]atomic.Pointer[page], pages),
	}
	t.fixed = int64(unsafe.Sizeof(*t))
	t.memBytes.Store(int64(pages) * slotBytes)
	return t
}

// Blocks returns the number of blocks the table covers.
func (t *Table) Blocks() uint64 { return t.blocks }

// MemoryBytes returns the bytes of table memory now: the table itself, its
// directory, and the directory pages and chunks created so far.
func (t *Table) MemoryBytes() int64 { return t.fixed + t.memBytes.Load() }

// ReferencedBlocks returns the number of blocks with a count above 0. It is
// maintained with atomics on every 0↔1 transition, not by scanning; while
// references change concurrently it is a close estimate, exact when the
// table is quiet.
func (t *Table) ReferencedBlocks() uint64 {
	var n int64
	for i := range t.refs {
		n += t.refs[i].n.Load()
	}
	return uint64(max(n+t.rangeOnlyBlocks(), 0))
}

// Count returns the current reference count of block b: 0 for a block never
// referenced or outside the table. A block referenced throughout the call
// is never reported at 0; while a range count is pushed down concurrently,
// a reference may be counted twice.
func (t *Table) Count(b pmem.Block) uint32 {
	if uint64(b) >= t.blocks {
		return 0
	}
	// A push-down moves a count from the page to its chunks, and from a
	// chunk to its words, adding it below before it clears it above, so the
	// loads go from the top down: a reference moving down meanwhile is seen
	// once or twice, never missed (TestCountRacingAPushDown).
	ci := uint64(b) >> chunkShift
	pall := t.pageAll(ci)
	c := t.chunk(ci)
	if c == nil {
		return pall
	}
	i := int(b & chunkMask)
	all := c.r.all.Load()
	if t.gap != nil {
		t.gap(ci, i)
	}
	return c.words[i].Load()&countMask + all + pall
}

// IsDetached reports whether block b is marked detached: referenced, but no
// longer owned by a file, and waiting for its last Release.
func (t *Table) IsDetached(b pmem.Block) bool {
	if uint64(b) >= t.blocks {
		return false
	}
	c := t.chunk(uint64(b) >> chunkShift)
	return c != nil && c.words[b&chunkMask].Load()&detachedBit != 0
}

// Referenced returns the runs of blocks in e whose count is above 0,
// ascending and coalesced. It is a snapshot: each block is read once, at some
// instant during the call. It returns nil for an empty or out-of-range e.
func (t *Table) Referenced(e pmem.Extent) []pmem.Extent { return t.runsWith(e, countMask) }

// runsWith returns the runs of blocks in e whose word has any bit of mask
// set, ascending and coalesced, each block read once. It returns nil for an
// empty or out-of-range e.
func (t *Table) runsWith(e pmem.Extent, mask uint32) []pmem.Extent {
	if t.checkRange(e) != nil {
		return nil
	}
	var runs []pmem.Extent
	last := chunkOf(e.End() - 1)
	for ci := t.present(chunkOf(e.Start), last); ci <= last; ci = t.present(ci+1, last) {
		c := t.chunk(ci)
		lo, hi := span(e, ci)
		all := mask&countMask != 0 && t.pageAll(ci) > 0
		if c == nil {
			if all {
				for i := lo; i < hi; i++ {
					runs = appendBlock(runs, blockOf(ci, i))
				}
			}
			continue
		}
		all = all || mask&countMask != 0 && c.r.all.Load() > 0
		for i := lo; i < hi; i++ {
			if all || c.words[i].Load()&mask != 0 {
				runs = appendBlock(runs, blockOf(ci, i))
			}
		}
	}
	return runs
}

// Check verifies the table's invariants and returns an error describing the
// first violation: no word carries the detached mark with a count of 0,
// ReferencedBlocks equals the number of blocks with a count above 0, and
// MemoryBytes matches the pages and chunks present. It reads every chunk, and
// its result is meaningful only while no Acquire, Release or Detach runs.
func (t *Table) Check() error {
	var referenced uint64
	var rangedAll, rangedPagesSeen int64
	mem := int64(len(t.dir)) * slotBytes
	for pi := range t.dir {
		p := t.dir[pi].Load()
		if p == nil {
			continue
		}
		mem += pageBytes
		var ranged, pageDetached int32
		pall := p.r.all.Load()
		if pall > 0 {
			rangedPagesSeen++
		}
		for j := range p.chunks {
			c := p.chunks[j].Load()
			if c == nil {
				if pall > 0 {
					referenced += chunkBlocks
				}
				continue
			}
			mem += chunkBytes
			ci := uint64(pi)<<pageShift | uint64(j)
			all := c.r.all.Load()
			var detached int32
			for i := range c.words {
				w := c.words[i].Load()
				if w == detachedBit {
					return fmt.Errorf("pageref: check: block %d is detached with no reference", blockOf(ci, i))
				}
				if w&detachedBit != 0 {
					detached++
				}
				if w&countMask != 0 || all > 0 || pall > 0 {
					referenced++
				}
			}
			if detached != c.r.detached.Load() {
				return fmt.Errorf("pageref: check: chunk %d has %d detached blocks, its counter says %d", ci, detached, c.r.detached.Load())
			}
			if all > 0 && detached > 0 {
				return fmt.Errorf("pageref: check: chunk %d has a range count of %d and %d detached blocks", ci, all, detached)
			}
			if all > 0 {
				ranged++
				rangedAll++
			}
			pageDetached += detached
		}
		if got := p.r.detached.Load(); got != pageDetached {
			return fmt.Errorf("pageref: check: directory page %d has %d detached blocks, its counter says %d", pi, pageDetached, got)
		}
		if pall > 0 && pageDetached > 0 {
			return fmt.Errorf("pageref: check: directory page %d has a range count of %d and %d detached blocks", pi, pall, pageDetached)
		}
		if got := p.ranged.Load(); got != ranged {
			return fmt.Errorf("pageref: check: directory page %d counts %d chunks with a range count, holds %d", pi, got, ranged)
		}
	}
	if got := t.rangedPages.Load(); got != rangedPagesSeen {
		return fmt.Errorf("pageref: check: %d pages counted with a range count, table holds %d", got, rangedPagesSeen)
	}
	if got := t.rangedChunks.Load(); got != rangedAll {
		return fmt.Errorf("pageref: check: %d chunks counted with a range count, table holds %d", got, rangedAll)
	}
	if got := t.ReferencedBlocks(); got != referenced {
		return fmt.Errorf("pageref: check: referenced-blocks counter says %d, table holds %d", got, referenced)
	}
	if got := t.memBytes.Load(); got != mem {
		return fmt.Errorf("pageref: check: memory counter says %d bytes, table holds %d", got, mem)
	}
	return nil
}

// checkRange returns an error wrapping ErrInvalidRange unless e is non-empty
// and lies inside the table. It is written so that no addition can overflow.
func (t *Table) checkRange(e pmem.Extent) error {
	switch {
	case e.Len == 0:
		return fmt.Errorf("empty range: %w", ErrInvalidRange)
	case uint64(e.Start) >= t.blocks || e.Len > t.blocks-uint64(e.Start):
		return fmt.Errorf("range [%d,+%d) outside table of %d blocks: %w", e.Start, e.Len, t.blocks, ErrInvalidRange)
	}
	return nil
}

// chunk returns chunk ci, or nil if it was never created (all its counts are
// then 0). ci must lie inside the table.
func (t *Table) chunk(ci uint64) *chunk {
	p := t.dir[ci>>pageShift].Load()
	if p == nil {
		return nil
	}
	return p.chunks[ci&pageMask].Load()
}

// present returns the first chunk index in [ci, last] whose directory page
// exists, or last+1. Range scans use it to step over absent pages, so that a
// scan of an untouched TiB costs a few thousand loads.
func (t *Table) present(ci, last uint64) uint64 {
	for ci <= last && t.dir[ci>>pageShift].Load() == nil {
		ci = (ci>>pageShift + 1) << pageShift
	}
	return ci
}

// chunkOrCreate returns chunk ci, creating it and its directory page if
// needed. Concurrent creators race with compare-and-swap; the losers drop
// their copy and use the winner's, so every caller sees the same chunk.
func (t *Table) chunkOrCreate(ci uint64) *chunk {
	slot := &t.dir[ci>>pageShift]
	p := slot.Load()
	if p == nil {
		if slot.CompareAndSwap(nil, new(page)) {
			t.memBytes.Add(pageBytes)
		}
		p = slot.Load()
	}
	cslot := &p.chunks[ci&pageMask]
	c := cslot.Load()
	if c == nil {
		if cslot.CompareAndSwap(nil, new(chunk)) {
			t.memBytes.Add(chunkBytes)
		}
		c = cslot.Load()
	}
	return c
}

// stripe returns the referenced-blocks counter shard of chunk ci.
// stripe returns the counter that a change of the blocks of chunk ci from
// word lo on is added to. Only the sum of the stripes means anything, so any
// stripe would do; hashing the first block rather than the chunk keeps
// references to distinct blocks of one chunk, taken on different cores,
// off each other's cache line.
func (t *Table) stripe(ci uint64, lo int) *atomic.Int64 {
	return &t.refs[(uint64(blockOf(ci, lo))*0x9E3779B97F4A7C15)>>(64-refStripeBits)].n
}

// chunkOf returns the index of the chunk holding block b.
func chunkOf(b pmem.Block) uint64 { return uint64(b) >> chunkShift }

// blockOf returns the block at word i of chunk ci.
func blockOf(ci uint64, i int) pmem.Block { return pmem.Block(ci<<chunkShift | uint64(i)) }

// span returns the word indexes [lo, hi) of chunk ci that lie inside e.
func span(e pmem.Extent, ci uint64) (lo, hi int) {
	lo, hi = 0, chunkBlocks
	if chunkOf(e.Start) == ci {
		lo = int(e.Start & chunkMask)
	}
	if last := e.End() - 1; chunkOf(last) == ci {
		hi = int(last&chunkMask) + 1
	}
	return lo, hi
}

// appendBlock adds block b to the ascending runs, extending the last run when
// b follows it.
func appendBlock(runs []pmem.Extent, b pmem.Block) []pmem.Extent {
	if n := len(runs); n > 0 && runs[n-1].End() == b {
		runs[n-1].Len++
		return runs
	}
	return append(runs, pmem.Extent{Start: b, Len: 1})
}
