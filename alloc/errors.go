// Package alloc indexes the free space of the region and hands it out,
// contiguous first, near a goal block, and, with an alignment unit, in runs
// congruent to the file blocks they back (so large pages can map them).
//
// It keeps no notion of ownership: the caller decides which blocks are free
// (not in a file, not busy) and only ever gives alloc such blocks. alloc's
// job is to keep that set exact - coalesced, double frees refused - and to
// choose well when asked for space.
package alloc

// This file exists so that every error alloc can return is declared in one
// place and can be tested with errors.Is.

import "errors"

// ErrNoSpace reports that the free space cannot satisfy an allocation. The
// wrapping error says how many blocks were needed and what was free.
var ErrNoSpace = errors.New("no space left in region")

// ErrInvalid reports a request that can never succeed: an empty extent, an
// extent that runs past the last block number, or an allocation of zero
// blocks.
var ErrInvalid = errors.New("invalid argument")

// ErrOverlap reports an ExtentSet.Insert of blocks that are already members.
var ErrOverlap = errors.New("overlaps a member")

// ErrNotCovered reports an ExtentSet.Remove of blocks that are not all
// members.
var ErrNotCovered = errors.New("not entirely in the set")

// ErrDoubleFree reports an Allocator.Free of blocks that are already free.
var ErrDoubleFree = errors.New("double free")

// ErrNotFree reports an Allocator.Take of blocks that are not all free.
var ErrNotFree = errors.New("blocks not free")
