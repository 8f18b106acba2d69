// Package busyextent keeps the busy set: region blocks that truncate, hole
// punch, zero-range, remove or overwrite have detached from their file while
// something (a pin, a DMA, a zero-copy reader) still references them. Such
// blocks belong to no file and must not be reused; they wait here, with the
// owner, reason, time and pin labels they had at detach time, until their
// last reference drops.
//
// The package has three parts:
//
//   - Set, the ordered busy extents with trimming and overlap queries, and a
//     generation counter that is bumped (and every waiter woken) whenever
//     space comes back;
//   - Record and Delta: the set keeps the runs one operation detached from
//     one owner together as one journal record (a run list, up to MaxRuns
//     runs), and each change returns the records it deletes and rewrites,
//     so the journaled busy list always equals Set.All and a break with
//     thousands of scattered pinned blocks costs a few records;
//   - Releaser, which batches the blocks whose last reference dropped so that
//     many blocks going idle together cost one journal batch.
//
// The design follows bbolt's freelist, which keeps the pages freed by a
// transaction pending until no reader can still see them; here the "reader"
// is any reference counted by pageref and the pending list is keyed by block
// range rather than by transaction.
package busyextent

// This file exists to hold the package documentation and the package's error
// sentinels in one place.

import "errors"

// ErrInvalid reports an argument that can never be valid: an empty extent, an
// extent whose end does not fit in a block number, an unknown Reason, or
// more labels than MaxLabels or than pins.
var ErrInvalid = errors.New("invalid argument")

// ErrOverlap reports a Set.Add of blocks of which at least one is already
// busy.
var ErrOverlap = errors.New("overlaps a busy extent")

// ErrNotBusy reports a Set.Remove of blocks of which at least one is not
// busy.
var ErrNotBusy = errors.New("not entirely busy")
