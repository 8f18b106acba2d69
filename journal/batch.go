// This file holds Batch, the unit of atomicity: every metadata operation of
// the store queues its record changes in one Batch and commits it once.

package journal

import (
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"

	"github.com/daxstore/daxstore/pmem"
)

// errBatchDone is recorded when a Set or Delete reaches a batch that was
// already applied or closed.
var errBatchDone = errors.New("journal: batch already applied or closed")

// Batch collects record changes and applies them atomically: after a crash
// either all of them are in the journal or none is.
//
// Within one Batch a later operation on a key overrides an earlier one, as in
// Pebble: DeleteInode(k) then SetInode for key k leaves the new inode, and
// DeleteExtents(ino) then SetExtent for that inode keeps the new extent.
//
// The Set and Delete methods check their arguments; the first failure is kept
// and returned by Commit or Apply, which then apply nothing. A Batch is not
// safe for concurrent use. Close it (or let Commit or Apply's wait close it)
// to return its memory.
type Batch struct {
	j       *Journal
	pb      *pebble.Batch // nil once the batch is closed
	err     error         // first error from a Set or Delete call, or the closed journal
	applied bool          // Apply succeeded: pb belongs to the commit pipeline now
	pending bool          // applied with a WAL sync that nobody has waited for yet
	waitErr error         // outcome of the sync wait, kept for repeated wait calls
}

// NewBatch returns an empty batch. On a closed journal the batch's Commit and
// Apply return ErrClosed; on a failed one they return its failure (ErrFailed).
func (j *Journal) NewBatch() *Batch {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.db == nil {
		return &Batch{j: j, err: fmt.Errorf("journal: new batch: %w", ErrClosed)}
	}
	if err := j.g.err(); err != nil {
		return &Batch{j: j, err: fmt.Errorf("journal: new batch: %w", err)}
	}
	return &Batch{j: j, pb: j.db.NewBatch()}
}

// fail records err unless an earlier error was recorded.
func (b *Batch) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

// writable reports whether b may still take operations, recording why not.
func (b *Batch) writable() bool {
	if b.err != nil {
		return false
	}
	if b.pb == nil || b.applied {
		b.fail(errBatchDone)
		return false
	}
	return true
}

func (b *Batch) invalid(op, reason string) {
	b.fail(fmt.Errorf("journal: %s: %s: %w", op, reason, ErrInvalidRecord))
}

func (b *Batch) set(op string, key, value []byte) {
	if err := b.pb.Set(key, value, nil); err != nil {
		b.fail(fmt.Errorf("journal: %s: %w", op, err))
	}
}

func (b *Batch) del(op string, key []byte) {
	if err := b.pb.Delete(key, nil); err != nil {
		b.fail(fmt.Errorf("journal: %s: %w", op, err))
	}
}

// SetMeta queues the store's meta record.
func (b *Batch) SetMeta(m Meta) {
	if b.writable() {
		k, v := EncodeMeta(m)
		b.set("set meta", k, v)
	}
}

// SetInode queues a file's inode record, stored under its key: it replaces
// the record of the same key. A key longer than MaxKeyLen, a negative size,
// inline extents that are too many, overlapping, unsorted, empty, or do not
// add up to in.Blocks, or inode number 0 are refused with ErrInvalidRecord.
// An External inode's extents are its extent records (SetExtent); its
// Extents field is ignored.
func (b *Batch) SetInode(in Inode) {
	if !b.writable() {
		return
	}
	if in.External {
		in.Extents = nil
	}
	if in.Ino == 0 {
		b.invalid(fmt.Sprintf("set inode of %q", in.Key), "inode number 0")
		return
	}
	if s := checkInode(in); s != "" {
		b.invalid(fmt.Sprintf("set inode %d", in.Ino), s)
		return
	}
	k, v := EncodeInode(in)
	b.set("set inode", k, v)
}

// DeleteInode queues removing the inode record stored under key; a missing
// one is not an error. It leaves an External inode's extent records alone:
// delete them with DeleteExtents.
func (b *Batch) DeleteInode(key string) {
	if !b.writable() {
		return
	}
	if s := checkName(key); s != "" {
		b.invalid("delete inode", s)
		return
	}
	b.del("delete inode", nameKey(key))
}

// SetExtent queues a file extent record, replacing any record of the same
// inode at the same FileBlock. An empty extent, or one whose region or file
// blocks wrap around, is refused with ErrInvalidRecord.
func (b *Batch) SetExtent(r ExtentRecord) {
	if !b.writable() {
		return
	}
	if s := checkExtent(r); s != "" {
		b.invalid(fmt.Sprintf("set extent of inode %d at file block %d", r.Ino, r.FileBlock), s)
		return
	}
	k, v := EncodeExtent(r)
	b.set("set extent", k, v)
}

// DeleteExtent queues removing the extent record of ino that starts at file
// block fileBlock.
func (b *Batch) DeleteExtent(ino, fileBlock uint64) {
	if b.writable() {
		b.del("delete extent", extentKey(ino, fileBlock))
	}
}

// DeleteExtents queues removing every extent record of ino, and only those,
// as one range deletion. Extents set for ino later in the same batch survive.
func (b *Batch) DeleteExtents(ino uint64) {
	if !b.writable() {
		return
	}
	start := extentPrefix(ino)
	if err := b.pb.DeleteRange(start, prefixEnd(start), nil); err != nil {
		b.fail(fmt.Errorf("journal: delete extents of inode %d: %w", ino, err))
	}
}

// SetFree queues a free-space extent record keyed by e.Start. An empty or
// wrapping extent is refused with ErrInvalidRecord.
func (b *Batch) SetFree(e pmem.Extent) {
	if !b.writable() {
		return
	}
	if s := checkRun(uint64(e.Start), e.Len); s != "" {
		b.invalid("set free "+e.String(), s)
		return
	}
	k, v := EncodeFree(e)
	b.set("set free", k, v)
}

// DeleteFree queues removing the free-space record that starts at start.
func (b *Batch) DeleteFree(start pmem.Block) {
	if b.writable() {
		b.del("delete free", freeKey(start))
	}
}

// LogFree queues one commit's change to free space as log record l.Seq:
// the blocks it claimed from free space, then the blocks it freed. Load
// returns the log records after the free-space checkpoint in Seq order; the
// caller replays them onto the checkpoint. An empty or wrapping extent is
// refused with ErrInvalidRecord.
func (b *Batch) LogFree(l FreeLog) {
	if !b.writable() {
		return
	}
	if s := checkFreeLog(l); s != "" {
		b.invalid(fmt.Sprintf("log free %d", l.Seq), s)
		return
	}
	k, v := EncodeFreeLog(l)
	b.set("log free", k, v)
}

// CheckpointFree queues replacing the free-space checkpoint with free (the
// whole free space, sorted by Start, as of log record upto) and the file
// count with files, and dropping the log records up to and including upto,
// which it supersedes. Its cost
// is one record per free extent, so a caller checkpoints once per as many
// log records as there are free extents, which keeps both the records per
// commit and the log Open replays bounded.
func (b *Batch) CheckpointFree(free []pmem.Extent, upto, files uint64) {
	if !b.writable() {
		return
	}
	for _, e := range free {
		if s := checkRun(uint64(e.Start), e.Len); s != "" {
			b.invalid("checkpoint free "+e.String(), s)
			return
		}
	}
	lo := []byte{prefixFree}
	if err := b.pb.DeleteRange(lo, prefixEnd(lo), nil); err != nil {
		b.fail(fmt.Errorf("journal: checkpoint free: %w", err))
		return
	}
	end := []byte{prefixFreeLog + 1}
	if upto != math.MaxUint64 {
		end = freeLogKey(upto + 1)
	}
	if err := b.pb.DeleteRange([]byte{prefixFreeLog}, end, nil); err != nil {
		b.fail(fmt.Errorf("journal: checkpoint free: %w", err))
		return
	}
	for _, e := range free {
		k, v := EncodeFree(e)
		b.set("checkpoint free", k, v)
	}
	k, v := EncodeFiles(files)
	b.set("checkpoint files", k, v)
}

// SetBusy queues a busy extent record keyed by r.Extent.Start. An empty or
// wrapping extent, a key longer than MaxKeyLen, more than MaxLabels labels,
// more labels than r.Pins or a label longer than MaxLabelLen is refused with
// ErrInvalidRecord. Any pin count is accepted.
func (b *Batch) SetBusy(r BusyRecord) {
	if !b.writable() {
		return
	}
	if s := checkBusy(r); s != "" {
		b.invalid("set busy "+r.Extent.String(), s)
		return
	}
	k, v := EncodeBusy(r)
	b.set("set busy", k, v)
}

// SetBusyRuns queues one run-list busy record holding runs, keyed by the
// start of the first; it replaces any busy record with that key. runs must
// number 1 to MaxBusyRuns, be in start order without overlap, share the
// owner (Ino, Key), Reason and DetachedAt of the first, carry at most
// MaxLabels distinct labels among them, and each be what SetBusy accepts;
// otherwise nothing is queued and the batch fails with ErrInvalidRecord.
func (b *Batch) SetBusyRuns(runs []BusyRecord) {
	if !b.writable() {
		return
	}
	if s := checkBusyRuns(runs); s != "" {
		what := "set busy runs"
		if len(runs) > 0 {
			what += " from " + runs[0].Extent.String()
		}
		b.invalid(what, s)
		return
	}
	k, v := EncodeBusyRuns(runs)
	b.set("set busy runs", k, v)
}

// DeleteBusy queues removing the busy record that starts at start.
func (b *Batch) DeleteBusy(start pmem.Block) {
	if b.writable() {
		b.del("delete busy", busyKey(start))
	}
}

// SetMark queues the commit mark: a number the caller raises with some of
// its batches, and which Load returns as State.Mark. Once a batch carrying
// mark m is durable, every journal that holds the batches committed so far
// holds a mark of at least m; a caller that has noted m elsewhere can thus
// tell, on the next Open, that the journal lost batches it had made durable
// (see Durability and damage in the package documentation).
func (b *Batch) SetMark(mark uint64) {
	if b.writable() {
		k, v := EncodeMark(mark)
		b.set("set mark", k, v)
	}
}

// Count returns the number of operations queued; a range deletion counts as
// one. It is 0 once the batch is closed.
func (b *Batch) Count() int {
	if b.pb == nil {
		return 0
	}
	return int(b.pb.Count())
}

// ready returns why b cannot be applied, if it cannot.
func (b *Batch) ready(op string) error {
	if b.err != nil {
		return b.err
	}
	if b.pb == nil || b.applied {
		return fmt.Errorf("journal: %s: %w", op, errBatchDone)
	}
	return nil
}

// Commit atomically applies the batch. With sync it returns only once the
// batch is in the write-ahead log on stable storage, unless the journal was
// opened with Options.NoSync; without sync it returns once the batch is
// visible, and a power cut may lose it. If a Set or Delete call failed,
// Commit returns that error and applies nothing. The batch is closed
// afterwards whatever the outcome.
//
// A commit that meets an I/O fault returns an error wrapping ErrFailed, and
// so does every later one: the batch may or may not be in the journal after
// a reopen, and every batch committed before it is.
func (b *Batch) Commit(sync bool) error {
	defer b.Close()
	if err := b.ready("commit"); err != nil {
		return err
	}
	j := b.j
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.db == nil {
		return fmt.Errorf("journal: commit: %w", ErrClosed)
	}
	if err := j.g.err(); err != nil {
		return fmt.Errorf("journal: commit: %w", err)
	}
	wo := pebble.NoSync
	if sync && !j.noSync {
		wo = pebble.Sync
	}
	b.applied = true
	j.dirty.Store(true)
	err := commitGuard(func() error { return j.db.Apply(b.pb, wo) })
	if err == nil {
		// The guard hides a failed log write from Pebble and records it
		// before the log writer reports the sync done: check it.
		err = j.g.err()
	}
	if err != nil {
		return fmt.Errorf("journal: commit: %w", err)
	}
	return nil
}

// Apply is the group-commit form of Commit(true). It writes the batch into
// the write-ahead log and makes it visible, in the order of Apply calls, and
// returns without waiting for the fsync; wait blocks until the batch is
// durable and then closes the batch. A caller can thus hold its ordering lock
// only around Apply and wait outside it, letting concurrent commits share one
// fsync. With Options.NoSync, wait returns nil at once.
//
// On error nothing was applied, the batch is closed, and wait returns the
// same error. wait may be called more than once; it returns the same result.
// Closing the batch instead of calling wait also waits for the sync.
func (b *Batch) Apply() (wait func() error, err error) {
	if err := b.ready("apply"); err != nil {
		b.Close()
		return func() error { return err }, err
	}
	if err := b.apply(); err != nil {
		b.Close()
		return func() error { return err }, err
	}
	return b.wait, nil
}

func (b *Batch) apply() error {
	j := b.j
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.db == nil {
		return fmt.Errorf("journal: apply: %w", ErrClosed)
	}
	if err := j.g.err(); err != nil {
		return fmt.Errorf("journal: apply: %w", err)
	}
	b.applied = true
	j.dirty.Store(true)
	if j.noSync {
		err := commitGuard(func() error { return j.db.Apply(b.pb, pebble.NoSync) })
		if err == nil {
			err = j.g.err()
		}
		if err != nil {
			return fmt.Errorf("journal: apply: %w", err)
		}
		return nil
	}
	if err := commitGuard(func() error { return j.db.ApplyNoSyncWait(b.pb, pebble.Sync) }); err != nil {
		return fmt.Errorf("journal: apply: %w", err)
	}
	// Pebble owns the batch until its sync completes: Close waits for it.
	b.pending = true
	if err := j.g.err(); err != nil {
		return fmt.Errorf("journal: apply: %w", err)
	}
	return nil
}

// wait completes an Apply: it waits for the pending sync, if any, and closes
// the batch.
func (b *Batch) wait() error {
	b.Close()
	return b.waitErr
}

// Close discards the batch. After a successful Apply it first waits for the
// batch's sync, since Pebble may still be writing it. Close is safe to call
// more than once and after Commit or wait.
func (b *Batch) Close() {
	if b.pb == nil {
		return
	}
	if b.pending {
		b.pending = false
		err := b.pb.SyncWait()
		if err == nil {
			// A failed log write or sync is hidden from Pebble and
			// recorded before the sync is reported done.
			err = b.j.g.err()
		}
		if err != nil {
			b.waitErr = fmt.Errorf("journal: wait for sync: %w", err)
		}
	}
	_ = b.pb.Close()
	b.pb = nil
}
