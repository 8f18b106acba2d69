// Package pmem owns the persistent-memory region: its mapping, superblock,
// persistence primitives (Flush/Drain) and the block addressing types that
// every other package shares.
package pmem

import (
	"errors"
	"fmt"
)

// ErrCorrupt reports a region or journal whose bytes cannot be trusted: a bad
// magic number, a bad checksum, an unknown version or a short file. Callers
// test for it with errors.Is; the wrapping error says what was wrong.
var ErrCorrupt = errors.New("corrupt")

// Block is the number of a block in the region. Block 0 holds the superblock;
// data blocks are 1..BlockCount-1.
type Block uint64

// Extent is a run of Len contiguous region blocks starting at Start.
// The zero Extent is empty.
type Extent struct {
	// Start is the first block.
	Start Block
	// Len is the number of blocks.
	Len uint64
}

// End returns the first block after the extent.
func (e Extent) End() Block { return e.Start + Block(e.Len) }

// Empty reports whether the extent covers no block.
func (e Extent) Empty() bool { return e.Len == 0 }

// Contains reports whether block b lies inside the extent.
func (e Extent) Contains(b Block) bool { return b >= e.Start && b < e.End() }

// Covers reports whether o lies entirely inside e.
func (e Extent) Covers(o Extent) bool { return o.Start >= e.Start && o.End() <= e.End() }

// Overlaps reports whether the two extents share at least one block.
func (e Extent) Overlaps(o Extent) bool {
	return e.Len > 0 && o.Len > 0 && e.Start < o.End() && o.Start < e.End()
}

// Intersect returns the blocks common to both extents; ok is false when there
// are none.
func (e Extent) Intersect(o Extent) (x Extent, ok bool) {
	start, end := max(e.Start, o.Start), min(e.End(), o.End())
	if start >= end {
		return Extent{}, false
	}
	return Extent{Start: start, Len: uint64(end - start)}, true
}

// String formats the extent for messages.
func (e Extent) String() string {
	if e.Len == 0 {
		return "[]"
	}
	return fmt.Sprintf("[%d,+%d)", e.Start, e.Len)
}
