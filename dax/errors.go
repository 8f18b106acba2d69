package dax

import (
	"errors"
	"io/fs"

	"github.com/daxstore/daxstore/alloc"
	"github.com/daxstore/daxstore/pmem"
)

// Sentinel errors. Every error the package returns wraps at most one of these
// with detail, so callers test with errors.Is.
var (
	// ErrNotFound: the key does not exist (or was removed while a File was open).
	ErrNotFound = errors.New("key not found")
	// ErrExist: the key already exists.
	ErrExist = errors.New("key already exists")
	// ErrInvalidKey: the key is empty, longer than MaxKeyLen, not UTF-8, or holds a NUL byte.
	ErrInvalidKey = errors.New("invalid key")
	// ErrInvalidRange: a negative, overflowing or out-of-file offset or
	// length, or an option value outside its defined range.
	ErrInvalidRange = errors.New("invalid range")
	// ErrTooLarge: a value is larger than Get returns (MaxGetSize); read it
	// through a File instead.
	ErrTooLarge = errors.New("value too large")
	// ErrNoSpace: the region has no free block left for the operation.
	ErrNoSpace = alloc.ErrNoSpace
	// ErrPinned: blocks are still referenced by pins.
	ErrPinned = errors.New("blocks are pinned")
	// ErrLocked: another process holds the store directory.
	ErrLocked = errors.New("store is locked by another process")
	// ErrClosed: the Store, File or Pin was already closed.
	ErrClosed = errors.New("use after close")
	// ErrCorrupt: bad magic, bad checksum, a short region, a fault on the
	// region mapping (a region file shrunk under the store) or an
	// undecodable record.
	ErrCorrupt = pmem.ErrCorrupt
	// ErrMismatch: the region and the journal belong to different stores.
	ErrMismatch = errors.New("region and journal do not match")
	// ErrUnpinned: Unpin or Flush of a pin its holder already unpinned.
	ErrUnpinned = errors.New("pin already released")
	// ErrInvalidLabel: a pin label longer than MaxLabelLen or not UTF-8.
	ErrInvalidLabel = errors.New("invalid pin label")
	// ErrTooManyPins: a pin would take a block past MaxPinsPerBlock.
	ErrTooManyPins = errors.New("too many pins on one block")
	// ErrFailed: an earlier journal commit failed, or a copy faulted on the
	// region mapping, so the in-memory state can no longer be trusted to
	// match the journal and the region. The store refuses further
	// changes; close and reopen it to recover from the journal.
	ErrFailed = errors.New("store failed after a journal error; reopen it")
	// ErrReadOnly: a change was asked of a store opened with
	// Options.ReadOnly.
	ErrReadOnly = errors.New("store is open read-only")
	// ErrNoStore: the directory holds no store, and Options.ReadOnly or
	// Options.MustExist forbid creating one. It also matches
	// fs.ErrNotExist.
	ErrNoStore error = noStoreError{}
)

// noStoreError is ErrNoStore: a sentinel that is also an fs.ErrNotExist.
type noStoreError struct{}

func (noStoreError) Error() string { return "no store" }

func (noStoreError) Is(target error) bool { return target == fs.ErrNotExist }
