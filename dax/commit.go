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
	"time"

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
	files   int64         // files the operation creates (+1) or removes (-1)

	touched []*inode  // inodes whose records the commit rewrites, in first-touch order
	ops     []inodeOp // extent-map changes of External inodes, in order
	// dirty are the file blocks whose mapping changed, of inodes with
	// follow windows: the commit remaps them (remapWindows).
	dirty    []dirtyRange
	one      [1]*inode     // touched's first element, in the txn's own allocation
	dirtyOne [1]dirtyRange // dirty's first element, likewise
}

// inodeOp is one extent-map change of one inode.
type inodeOp struct {
	in *inode
	op mapOp
}

func (s *Store) newTxn() *txn {
	t := &txn{b: s.jnl.NewBatch()}
	t.touched = t.one[:0]
	return t
}

// touch records that the commit rewrites in's record.
func (t *txn) touch(in *inode) {
	if !slices.Contains(t.touched, in) {
		t.touched = append(t.touched, in)
	}
}

// setInode records that in's name, size, time or extents changed.
func (t *txn) setInode(in *inode) { t.touch(in) }

// mapOps records extent-map changes of in, in order. Only an External
// inode's record needs them (recordInodes rewrites an inline one whole, and
// writes every extent record of one that becomes External), so only its are
// kept.
func (t *txn) mapOps(in *inode, ops []mapOp) {
	if len(ops) == 0 {
		return
	}
	t.touch(in)
	if len(in.windows) > 0 {
		if t.dirty == nil {
			t.dirty = t.dirtyOne[:0]
		}
		for _, op := range ops {
			// remapWindows remaps the hull of an inode's ranges, so
			// consecutive ranges of one inode merge here.
			if k := len(t.dirty) - 1; k >= 0 && t.dirty[k].in == in {
				t.dirty[k].lo = min(t.dirty[k].lo, op.m.fileBlock)
				t.dirty[k].hi = max(t.dirty[k].hi, op.m.fileEnd())
				continue
			}
			t.dirty = append(t.dirty, dirtyRange{in: in, lo: op.m.fileBlock, hi: op.m.fileEnd()})
		}
	}
	if !in.external {
		return
	}
	for _, op := range ops {
		t.ops = append(t.ops, inodeOp{in: in, op: op})
	}
}

// changed reports whether t holds anything to journal.
func (t *txn) changed() bool {
	return t.b.Count() > 0 || len(t.touched) > 0 || len(t.claimed) > 0 || len(t.freed) > 0 || t.files != 0
}

// inlineBack is the extent count at or below which an External inode's
// extents move back into its record. It is half the inline limit, so that a
// file whose extent count wobbles around the limit does not rewrite all its
// extent records on every write.
const inlineBack = journal.MaxInlineExtents / 2

// recordInodes queues the records of every inode t touched, as they are in
// memory now: one inode record each (with its extents inline, for a file of
// few extents) and, for a file of many, its changed extent records. The
// callers hold each touched inode's extent-map lock, or own it alone.
func (t *txn) recordInodes() {
	for _, in := range t.touched {
		key := in.name()
		if in.removed {
			t.b.DeleteInode(key)
			if in.external {
				t.b.DeleteExtents(in.ino)
			}
			continue
		}
		n := in.extents.len()
		switch {
		case in.external && n <= inlineBack:
			t.b.DeleteExtents(in.ino)
			in.external = false
		case !in.external && n > journal.MaxInlineExtents:
			in.external = true
			for _, m := range in.extents.all() {
				t.b.SetExtent(extentRecord(in.ino, m))
			}
		case in.external:
			for _, o := range t.ops {
				if o.in != in {
					continue
				}
				if o.op.del {
					t.b.DeleteExtent(in.ino, o.op.m.fileBlock)
				} else {
					t.b.SetExtent(extentRecord(in.ino, o.op.m))
				}
			}
		}
		rec := journal.Inode{Ino: in.ino, Key: key, Size: in.size, ModTime: in.mtime.UnixNano(),
			Blocks: in.extents.blocks(), External: in.external, Inline: in.inline, Data: in.data}
		in.attr.record(&rec)
		if !in.external {
			rec.Extents = make([]journal.ExtentRecord, 0, n)
			in.extents.tree.Ascend(func(m mapping) bool {
				rec.Extents = append(rec.Extents, extentRecord(in.ino, m))
				return true
			})
		}
		t.b.SetInode(rec)
	}
}

func extentRecord(ino uint64, m mapping) journal.ExtentRecord {
	return journal.ExtentRecord{Ino: ino, FileBlock: m.fileBlock, Start: m.start, Len: m.n, Unwritten: m.unwritten}
}

// applyBusyDelta queues the busy records a change of the busy set rewrites:
// one run-list record per Record, so a break journals its runs in O(runs
// / busyextent.MaxRuns) records, not one per run.
func applyBusyDelta(b *journal.Batch, d busyextent.Delta) {
	for _, k := range d.Deleted {
		b.DeleteBusy(k)
	}
	var runs []journal.BusyRecord // reused: SetBusyRuns encodes before it returns
	for _, r := range d.Written {
		runs = runs[:0]
		for _, u := range r.Runs {
			runs = append(runs, journal.BusyRecord{
				Extent: u.Extent, Ino: r.Ino, Key: r.Key, FileBlock: u.FileBlock,
				Reason: uint8(r.Reason), DetachedAt: r.DetachedAt.UnixNano(), Pins: u.Pins, Labels: u.Labels,
			})
		}
		b.SetBusyRuns(runs)
	}
}

// Group commit. A commit that must be durable is applied under the locks
// of its operation (commitMu, and whatever namespace and file locks the
// operation holds), which publishes its new state in memory, and only then,
// with every lock released, does the operation wait for the journal's sync
// (settle). Concurrent commits thus share fsyncs, and no reader ever waits
// for one: a Get, Stat, ReadAt or Pin that meets a lock held by a commit
// waits for the apply, never for the sync.
//
// A reader may therefore observe a value whose commit is not durable yet,
// as a reader of a page cache sees a write before fsync. That is safe:
//
//   - no block freed by a commit is handed out again before that commit is
//     durable: settle gives the freed blocks to the allocator only after
//     the wait (and the releaser, whose busy → free batches are not synced,
//     holds its blocks back while an earlier synced commit is still
//     pending, see commitRelease), so a crash can never show one file
//     another file's bytes;
//   - the data of new blocks is flushed before the commit that maps them is
//     applied, as before;
//   - Pebble's write-ahead log is ordered: any later commit, built on what
//     a reader saw, is durable only after the commit it saw;
//   - an operation acknowledges (returns) only after its commit is
//     durable, and holds quiesce shared until then, so Close and Check
//     never see a commit half settled.
//
// If the wait fails, memory is ahead of the journal, and the store fails
// (ErrFailed), as a failed commit always did; reopening recovers from the
// journal. TestGroupCommitReadersDoNotWaitForSync and its siblings prove
// the rules with the log's sync parked.

// durable is what a commit applied under locks still owes once they are
// released: its sync, the blocks it freed, and the commit mark it carried.
// A nil *durable owes nothing.
type durable struct {
	wait  func() error  // waits for the batch's sync
	seq   uint64        // the commit's place among synced commits (commitSeq)
	start time.Time     // when the batch was applied, for the commit latency metric
	freed []pmem.Extent // blocks to hand to the allocator once durable
	mark  uint64        // the commit mark the batch carried, or 0
	prev  *durable      // an earlier commit of the same operation, settled first
}

// chain returns what two commits of one operation owe, a before b.
func chain(a, b *durable) *durable {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	b.prev = chain(a, b.prev)
	return b
}

// commitSeq numbers the synced commits; commitMu protects it. Pebble's log
// is ordered, so once commit n is durable every commit up to n is.
type commitSeq struct {
	applied uint64 // synced commits applied
	durable uint64 // highest commit known durable
}

// commit applies t in one batch under commitMu and returns what it owes;
// the caller must call settle on it once it has released its other locks.
func (s *Store) commit(t *txn) (*durable, error) {
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
// With sync, the batch is applied (visible) but maybe not durable when
// commitLocked returns: the caller settles the returned durable after
// releasing its locks. Without sync (the releaser) nothing is waited for.
//
// Any failure here leaves memory ahead of the journal, so it fails the
// store (ErrFailed); reopening recovers from the journal.
func (s *Store) commitLocked(t *txn, sync bool) (*durable, error) {
	if s.failed != nil {
		t.b.Close()
		return nil, s.failed
	}
	t.recordInodes()
	// Before the batch is applied, and so long before any block it frees
	// can be reused: see remapWindows. A window that cannot be made safe
	// fails the store, so that the commit frees nothing.
	if err := s.remapWindows(t); err != nil {
		t.b.Close()
		return nil, s.fail(err)
	}
	if err := s.logFree(t); err != nil {
		t.b.Close()
		return nil, err
	}
	mark := s.markDue(sync)
	if mark {
		t.b.SetMark(s.seal.mark + 1)
	}
	s.stats.commits.Add(1)
	s.stats.records.Add(uint64(t.b.Count()))
	if sync && !s.opts.NoSync {
		// The freed blocks count as settling before the batch reaches
		// the log: its sync may start, and an allocation may look for
		// space, before Apply returns here, and that allocation must see
		// the blocks on their way back rather than fail for want of them.
		s.settling.Add(extentBlocks(t.freed))
		start := s.met.now()
		wait, err := t.b.Apply()
		if err != nil {
			s.settling.Add(-extentBlocks(t.freed))
			return nil, s.fail(err)
		}
		s.seq.applied++
		d := &durable{wait: wait, seq: s.seq.applied, freed: t.freed, start: start}
		if mark {
			s.seal.mark++
			s.seal.at = time.Now()
			d.mark = s.seal.mark
		}
		if err := s.checkpointDue(); err != nil {
			return nil, err
		}
		return d, nil
	}
	start := s.met.now()
	if err := t.b.Commit(sync); err != nil {
		return nil, s.fail(err)
	}
	s.met.commitDone(start, sync && !s.opts.NoSync)
	if err := s.checkpointDue(); err != nil {
		return nil, err
	}
	if mark {
		// Under NoSync the mark is durable only after a journal sync,
		// which seals it (syncFreedLocked, Close).
		s.marked()
	}
	if len(t.freed) == 0 {
		return nil, nil
	}
	if !s.opts.NoSync && s.seq.durable < s.seq.applied {
		// An unsynced commit (the releaser's) that frees blocks while an
		// earlier synced commit is still waiting for its sync: the blocks
		// were detached by that commit or one before it, which a crash
		// may still lose. Hold them until a sync covers it (settle, or
		// syncFreedLocked when an allocation runs short).
		s.undurable.add(t.freed, s.seq.applied)
		return nil, nil
	}
	if s.opts.NoSync {
		// The commit may still be lost: hold its freed blocks back until a
		// journal sync makes it durable (see undurableFree).
		if s.undurable.add(t.freed, 0) < s.undurableLimit() {
			return nil, nil
		}
		return nil, s.syncFreedLocked()
	}
	return nil, s.freeNow(t.freed)
}

// settle completes a commit applied by commitLocked: it waits, holding no
// lock but quiesce, until the commit is durable, then seals its mark and
// hands its freed blocks (and those the releaser held back for it) to the
// allocator. A failed wait fails the store. settle(nil) is a no-op.
func (s *Store) settle(d *durable) error {
	if d == nil {
		return nil
	}
	if d.prev != nil {
		// Settle this one too even when the earlier one failed, so that
		// its freed blocks leave the settling count.
		rest := *d
		rest.prev = nil
		err := s.settle(d.prev)
		if rerr := s.settle(&rest); err == nil {
			err = rerr
		}
		return err
	}
	err := d.wait()
	if err == nil {
		s.met.commitDone(d.start, true)
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.settling.Add(-extentBlocks(d.freed))
	if err == nil && s.failed != nil {
		err = s.failed
	}
	if err != nil {
		// An allocation waiting for these blocks must learn that they
		// will not come: the store failed.
		s.busy.Bump()
		return s.fail(err)
	}
	s.seq.durable = max(s.seq.durable, d.seq)
	if d.mark > 0 {
		if err := s.sealUpTo(d.mark); err != nil {
			return s.fail(err)
		}
	}
	freed := d.freed
	if !s.opts.NoSync {
		freed = append(freed, s.undurable.takeUpTo(s.seq.durable)...)
	}
	if len(freed) == 0 {
		return nil
	}
	return s.freeNow(freed)
}

// extentBlocks returns the blocks in exts.
func extentBlocks(exts []pmem.Extent) int64 {
	var n int64
	for _, e := range exts {
		n += int64(e.Len)
	}
	return n
}

// freeNow hands blocks freed by a durable commit to the allocator and wakes
// whoever waits for space. commitMu must be held.
func (s *Store) freeNow(exts []pmem.Extent) error {
	if s.holdFreed(exts) {
		return nil // a Backup is copying: reuse waits for its end
	}
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
// Without NoSync a synced commit keeps its own freed blocks until settle.
// The releaser's busy → free batches are not synced, and need not be: their
// blocks were detached by a synced commit, and a lost release batch leaves
// only busy records, which recovery frees. But the detaching commit may
// itself still wait for its sync (group commit): then the released blocks
// wait here, tagged with the last synced commit applied before them, until
// a settle finds that commit durable (TestGroupCommitReleaseWaitsForDetach).
type undurableFree struct {
	mu     sync.Mutex // protects exts and blocks; taken after commitMu
	exts   []heldFree // freed by commits not known to be durable
	blocks uint64     // blocks in exts
}

// heldFree is a held extent and the synced commit it waits for (0 under
// NoSync, where only a journal sync frees it).
type heldFree struct {
	pmem.Extent
	after uint64
}

// add holds exts back until synced commit after is durable and returns the
// blocks now held.
func (u *undurableFree) add(exts []pmem.Extent, after uint64) uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, e := range exts {
		u.exts = append(u.exts, heldFree{e, after})
		u.blocks += e.Len
	}
	return u.blocks
}

// take empties the held blocks and returns them.
func (u *undurableFree) take() []pmem.Extent {
	return u.takeUpTo(^uint64(0))
}

// takeUpTo removes and returns the held blocks that wait for synced
// commits up to seq.
func (u *undurableFree) takeUpTo(seq uint64) []pmem.Extent {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []pmem.Extent
	kept := u.exts[:0]
	for _, h := range u.exts {
		if h.after <= seq {
			out = append(out, h.Extent)
			u.blocks -= h.Len
		} else {
			kept = append(kept, h)
		}
	}
	u.exts = kept
	if len(u.exts) == 0 {
		u.exts = nil
	}
	return out
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
	out := make([]pmem.Extent, 0, len(u.exts))
	for _, h := range u.exts {
		out = append(out, h.Extent)
	}
	return out
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
	s.seq.durable = s.seq.applied
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

// reserve is reserveFor with a goal alone, for blocks whose file position
// does not matter.
func (s *Store) reserve(n uint64, goal pmem.Block) ([]pmem.Extent, error) {
	return s.reserveFor(n, alloc.Hint{Goal: goal})
}

// reserveFor takes n blocks from free space for an operation in flight,
// placed as h hints (alloc.Allocator.AllocFor), and makes sure the region file has space for them (regionSpace).
// The blocks belong to nobody until the operation commits them
// (txn.claimed) or gives them back with unreserve.
func (s *Store) reserveFor(n uint64, h alloc.Hint) ([]pmem.Extent, error) {
	exts, err := s.free.AllocFor(n, h)
	if errors.Is(err, alloc.ErrNoSpace) && s.undurable.held() > 0 {
		// Blocks freed under NoSync wait for a sync: sync now rather
		// than fail while they could serve this allocation.
		s.commitMu.Lock()
		serr := s.syncFreedLocked()
		s.commitMu.Unlock()
		if serr != nil {
			return nil, serr
		}
		exts, err = s.free.AllocFor(n, h)
	}
	if err != nil {
		return nil, err
	}
	if exts, err = s.regionSpace(exts, n, h); err != nil {
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
