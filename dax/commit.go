package dax

// One journal batch per metadata operation: the txn collects the records an
// operation changes, plus the blocks it claims from and returns to free
// space, and commit turns them into a single atomic batch.

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/daxstore/daxstore/alloc"
	"github.com/daxstore/daxstore/busyextent"
	"github.com/daxstore/daxstore/journal"
	"github.com/daxstore/daxstore/pmem"
)

// txn is one metadata operation in the making.
type txn struct {
	b       *journal.Batch
	claimed []pmem.Extent // reserved blocks that become owned: leave journaled free space
	freed   []pmem.Extent // blocks that return to free space once the batch is durable
}

func (s *Store) newTxn() *txn { return &txn{b: s.jnl.NewBatch()} }

// setInode records an inode's current name, size and time.
func (t *txn) setInode(in *inode) {
	t.b.SetInode(journal.Inode{Ino: in.ino, Key: in.key, Size: in.size, ModTime: in.mtime.UnixNano()})
}

// mapOps records extent-map changes of inode ino, in order.
func (t *txn) mapOps(ino uint64, ops []mapOp) {
	for _, op := range ops {
		if op.del {
			t.b.DeleteExtent(ino, op.m.fileBlock)
			continue
		}
		t.b.SetExtent(journal.ExtentRecord{Ino: ino, FileBlock: op.m.fileBlock, Start: op.m.start, Len: op.m.n, Unwritten: op.m.unwritten})
	}
}

func applyFreeDelta(b *journal.Batch, d alloc.Delta) {
	for _, e := range d.Removed {
		b.DeleteFree(e.Start)
	}
	for _, e := range d.Added {
		b.SetFree(e)
	}
}

func applyBusyDelta(b *journal.Batch, d busyextent.Delta) {
	for _, x := range d.Removed {
		b.DeleteBusy(x.Start)
	}
	for _, x := range d.Added {
		b.SetBusy(busyRecord(x))
	}
}

func busyRecord(x busyextent.Extent) journal.BusyRecord {
	return journal.BusyRecord{
		Extent: x.Extent, Ino: x.Ino, Key: x.Key, FileBlock: x.FileBlock,
		Reason: uint8(x.Reason), DetachedAt: x.DetachedAt.UnixNano(), Labels: x.Labels,
	}
}

// commit commits t in one batch, waiting for durability unless the store
// runs with NoSync.
func (s *Store) commit(t *txn) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	return s.commitLocked(t, true)
}

// commitLocked is commit for a caller that holds commitMu. The free-space
// records are computed here, under commitMu, against journaledFree, so
// concurrent operations' deltas reach the journal in the order they were
// computed. Freed blocks become allocatable only after the batch is
// durable: were they handed out earlier, a new owner could write into them
// while a crash could still give them back to their old file.
//
// Any failure here leaves memory ahead of the journal, so it fails the
// store (ErrFailed); reopening recovers from the journal.
func (s *Store) commitLocked(t *txn, sync bool) error {
	if s.failed != nil {
		t.b.Close()
		return s.failed
	}
	for _, e := range t.claimed {
		d, err := s.journaledFree.Remove(e)
		if err != nil {
			t.b.Close()
			return s.fail(fmt.Errorf("claim %v: %w", e, err))
		}
		applyFreeDelta(t.b, d)
	}
	for _, e := range t.freed {
		d, err := s.journaledFree.Insert(e)
		if err != nil {
			t.b.Close()
			return s.fail(fmt.Errorf("free %v: %w", e, err))
		}
		applyFreeDelta(t.b, d)
	}
	if err := t.b.Commit(sync); err != nil {
		return s.fail(err)
	}
	for _, e := range t.freed {
		if err := s.free.Free(e); err != nil {
			return s.fail(fmt.Errorf("free %v: %w", e, err))
		}
	}
	if len(t.freed) > 0 {
		s.busy.Bump() // space came back: wake allocations waiting for it
	}
	return nil
}

// fail records the store's first journal failure; commitMu must be held.
// The failure is the error of the failing operation and of every later
// change.
func (s *Store) fail(err error) error {
	if s.failed == nil {
		s.failed = newStoreFailure(err)
		s.hasFailed.Store(true)
	}
	return s.failed
}

// storeFailure is a failed store's error. It wraps ErrNoSpace when the
// journal's filesystem ran out of space, and ErrFailed otherwise, plus the
// system error behind a journal fault (syscall.EIO, syscall.EACCES, ...) so
// that callers can tell faults apart with errors.Is. Either way the store
// refuses changes until it is closed and opened again.
type storeFailure struct {
	msg      string
	sentinel error         // ErrNoSpace or ErrFailed
	errno    syscall.Errno // 0 if the cause was not a system error
}

func newStoreFailure(err error) *storeFailure {
	f := &storeFailure{sentinel: ErrFailed}
	if errors.As(err, &f.errno) && f.errno == syscall.ENOSPC {
		f.sentinel = ErrNoSpace
		f.msg = fmt.Sprintf("daxstore: journal filesystem is full, so the store refuses changes until reopened (%v): %v", ErrNoSpace, err)
		return f
	}
	f.msg = fmt.Sprintf("daxstore: %v: %v", ErrFailed, err)
	return f
}

func (f *storeFailure) Error() string { return f.msg }

func (f *storeFailure) Unwrap() []error {
	if f.errno != 0 {
		return []error{f.sentinel, f.errno}
	}
	return []error{f.sentinel}
}

// reserve takes n blocks from free space for an operation in flight, near
// goal. The blocks belong to nobody until the operation commits them
// (txn.claimed) or gives them back with unreserve.
func (s *Store) reserve(n uint64, goal pmem.Block) ([]pmem.Extent, error) {
	exts, err := s.free.Alloc(n, goal)
	if err != nil {
		return nil, err
	}
	for _, e := range exts {
		s.prefault.touch(e)
	}
	return exts, nil
}

// unreserve returns reserved blocks that were never committed. They never
// left journaled free space, so there is nothing to journal.
func (s *Store) unreserve(exts []pmem.Extent) {
	for _, e := range exts {
		if err := s.free.Free(e); err != nil {
			s.commitMu.Lock()
			s.fail(fmt.Errorf("unreserve %v: %w", e, err))
			s.commitMu.Unlock()
		}
	}
}

// carve cuts the first n blocks off the front of *exts, which must hold at
// least n, and returns them as one contiguous extent or fewer blocks if the
// first extent is shorter.
func carve(exts *[]pmem.Extent, n uint64) pmem.Extent {
	e := (*exts)[0]
	if e.Len <= n {
		*exts = (*exts)[1:]
		return e
	}
	(*exts)[0] = pmem.Extent{Start: e.Start + pmem.Block(n), Len: e.Len - n}
	return pmem.Extent{Start: e.Start, Len: n}
}
