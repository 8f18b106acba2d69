package dax

// One journal batch per metadata operation: the txn collects the records an
// operation changes, plus the blocks it claims from and returns to free
// space, and commit turns them into a single atomic batch.

import (
	"errors"
	"fmt"
	"slices"
	"sync"
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
	t.b.SetInode(journal.Inode{Ino: in.ino, Key: in.name(), Size: in.size, ModTime: in.mtime.UnixNano()})
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
		Reason: uint8(x.Reason), DetachedAt: x.DetachedAt.UnixNano(), Pins: x.Pins, Labels: x.Labels,
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
	mark := s.markDue(sync)
	if mark {
		t.b.SetMark(s.seal.mark + 1)
	}
	if err := t.b.Commit(sync); err != nil {
		return s.fail(err)
	}
	if mark {
		// Under NoSync the mark is durable only after a journal sync,
		// which seals it (syncFreedLocked, Close).
		if err := s.marked(!s.opts.NoSync); err != nil {
			return s.fail(err)
		}
	}
	if len(t.freed) == 0 {
		return nil
	}
	if s.opts.NoSync {
		// The commit may still be lost: hold its freed blocks back until a
		// journal sync makes it durable (see undurableFree).
		if s.undurable.add(t.freed) < s.undurableLimit() {
			return nil
		}
		return s.syncFreedLocked()
	}
	return s.freeNow(t.freed)
}

// freeNow hands blocks freed by a durable commit to the allocator and wakes
// whoever waits for space. commitMu must be held.
func (s *Store) freeNow(exts []pmem.Extent) error {
	for _, e := range exts {
		if err := s.free.Free(e); err != nil {
			return s.fail(fmt.Errorf("free %v: %w", e, err))
		}
	}
	s.busy.Bump() // space came back: wake allocations waiting for it
	return nil
}

// undurableFree holds, under Options.NoSync, the blocks freed by commits
// that may not be durable yet. They are not allocatable: were one handed to
// a new owner, the new owner's bytes could reach the media while a power
// cut still loses the commit that freed it, and the old file would then
// read another key's bytes after recovery. This is the rule XFS keeps for
// its busy extents: a freed block is not reused until the commit that freed
// it is durable. One journal sync makes every held block allocatable; it
// runs when an allocation would otherwise fail and when the held blocks
// pass undurableLimit. TestNoSyncPowerCutNeverShowsReusedBlocks proves it.
//
// Without NoSync every commit that frees blocks is durable before it
// returns, except the releaser's busy → free batches, which are safe to
// free at once: their blocks were detached by a synced commit, and a lost
// release batch leaves only busy records, which recovery frees.
type undurableFree struct {
	mu     sync.Mutex    // protects exts and blocks; taken after commitMu
	exts   []pmem.Extent // freed by commits not known to be durable
	blocks uint64        // blocks in exts
}

// add holds exts back and returns the blocks now held.
func (u *undurableFree) add(exts []pmem.Extent) uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, e := range exts {
		u.exts = append(u.exts, e)
		u.blocks += e.Len
	}
	return u.blocks
}

// take empties the held blocks and returns them.
func (u *undurableFree) take() []pmem.Extent {
	u.mu.Lock()
	defer u.mu.Unlock()
	exts := u.exts
	u.exts, u.blocks = nil, 0
	return exts
}

// held returns the blocks held now.
func (u *undurableFree) held() uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.blocks
}

// snapshot returns a copy of the held extents, for Check.
func (u *undurableFree) snapshot() []pmem.Extent {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.exts)
}

// undurableLimit is how many freed blocks NoSync may hold back before a
// commit syncs the journal to release them: an eighth of the region, so
// that the space an allocation cannot see stays small while syncs stay
// rare. It reads the region size from the reference table, which outlives
// a forced Close that lets the region go.
func (s *Store) undurableLimit() uint64 { return max(1, s.refs.Blocks()/8) }

// syncFreedLocked syncs the journal, which makes every commit so far
// durable, then hands the blocks those commits freed to the allocator.
// commitMu must be held, so no commit that freed blocks can slip between
// the take and the sync unseen: every held block was freed by a commit that
// returned before the sync began.
func (s *Store) syncFreedLocked() error {
	if s.failed != nil {
		return s.failed
	}
	exts := s.undurable.take()
	if len(exts) == 0 {
		return nil
	}
	if err := s.jnl.Sync(); err != nil {
		return s.fail(err)
	}
	// Every commit so far is durable now, marks included.
	if err := s.sealLocked(); err != nil {
		return s.fail(err)
	}
	return s.freeNow(exts)
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
		f.msg = fmt.Sprintf("journal filesystem is full, so the store refuses changes until reopened (%v): %v", ErrNoSpace, err)
		return f
	}
	f.msg = fmt.Sprintf("%v: %v", ErrFailed, err)
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
// goal, and makes sure the region file has space for them (regionSpace).
// The blocks belong to nobody until the operation commits them
// (txn.claimed) or gives them back with unreserve.
func (s *Store) reserve(n uint64, goal pmem.Block) ([]pmem.Extent, error) {
	exts, err := s.free.Alloc(n, goal)
	if errors.Is(err, alloc.ErrNoSpace) && s.undurable.held() > 0 {
		// Blocks freed under NoSync wait for a sync: sync now rather
		// than fail while they could serve this allocation.
		s.commitMu.Lock()
		serr := s.syncFreedLocked()
		s.commitMu.Unlock()
		if serr != nil {
			return nil, serr
		}
		exts, err = s.free.Alloc(n, goal)
	}
	if err != nil {
		return nil, err
	}
	if exts, err = s.regionSpace(exts, n, goal); err != nil {
		return nil, err
	}
	for _, e := range exts {
		s.prefault.touch(e)
	}
	return exts, nil
}

// unreserve returns reserved blocks that were never committed. They never
// left journaled free space, so there is nothing to journal. Space came
// back, so it wakes whoever waits for space: an allocation that failed
// while these blocks were reserved would otherwise sleep until its deadline
// (TestUnreserveWakesSpaceWaiters).
func (s *Store) unreserve(exts []pmem.Extent) {
	for _, e := range exts {
		if err := s.free.Free(e); err != nil {
			s.commitMu.Lock()
			s.fail(fmt.Errorf("unreserve %v: %w", e, err))
			s.commitMu.Unlock()
		}
	}
	if len(exts) > 0 {
		s.busy.Bump()
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
