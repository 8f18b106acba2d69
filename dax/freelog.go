package dax

// Free space in the journal: a checkpoint plus a log. Every commit that
// claims or frees blocks (or creates or removes a file) writes one log
// record listing what it claimed and freed; a checkpoint rewrites the whole
// free space and drops the log before it. Open replays the log onto the
// checkpoint, so opening costs the free extents plus the log, never one
// unit per file, and a commit writes one free-space record however many
// extents it touches. A checkpoint costs one record per free extent, so it
// runs once the log holds as many records as free space has extents (and at
// least checkpointMin): the records per commit stay below two on average,
// and the log Open replays stays as short as free space itself.

import (
	"fmt"
	"sync/atomic"

	"github.com/daxstore/daxstore/alloc"
	"github.com/daxstore/daxstore/journal"
	"github.com/daxstore/daxstore/pmem"
)

// checkpointMin is the fewest log records between two checkpoints.
const checkpointMin = 4096

// freeLog is the store's position in the free-space log. commitMu guards it.
type freeLog struct {
	seq   uint64 // the last log record's sequence number
	since int    // log records since the last checkpoint
	// files counts the files in the store, as the journal has them. It
	// changes under commitMu; Stats reads it without.
	files atomic.Int64
}

// logFree applies t's claimed and freed blocks to journaledFree and queues
// them in t as one log record. commitMu must be held. A claim of blocks that
// are not journaled free, or a free of blocks that are, would corrupt free
// space: it fails the store instead.
func (s *Store) logFree(t *txn) error {
	if len(t.claimed) == 0 && len(t.freed) == 0 && t.files == 0 {
		return nil
	}
	for _, e := range t.claimed {
		if err := s.journaledFree.Take(e); err != nil {
			return s.fail(fmt.Errorf("claim %v: %w", e, err))
		}
	}
	for _, e := range t.freed {
		if err := s.journaledFree.Add(e); err != nil {
			return s.fail(fmt.Errorf("free %v: %w", e, err))
		}
	}
	s.flog.seq++
	s.flog.since++
	s.flog.files.Add(t.files)
	t.b.LogFree(journal.FreeLog{Seq: s.flog.seq, Claimed: t.claimed, Freed: t.freed, Files: t.files})
	return nil
}

// checkpointDue checkpoints free space once the log is as long as the
// checkpoint would be. commitMu must be held.
func (s *Store) checkpointDue() error {
	if s.flog.since < max(checkpointMin, s.journaledFree.Count()) {
		return nil
	}
	return s.checkpointLocked()
}

// checkpointLocked writes free space and the file count as they are now and
// drops the log records they supersede, in one batch. It does not wait for
// the sync: the batch replaces records with an equivalent state, so losing
// it loses nothing, and the journal's log is ordered, so a later synced
// commit makes it durable. commitMu must be held.
func (s *Store) checkpointLocked() error {
	if s.failed != nil || s.flog.since == 0 {
		return s.failed
	}
	b := s.jnl.NewBatch()
	b.CheckpointFree(s.journaledFree.Extents(), s.flog.seq, uint64(max(0, s.flog.files.Load())))
	s.stats.records.Add(uint64(b.Count()))
	if err := b.Commit(false); err != nil {
		return s.fail(fmt.Errorf("checkpoint free space: %w", err))
	}
	s.stats.checkpoints.Add(1)
	s.flog.since = 0
	return nil
}

// replayFree rebuilds free space as the journal records it: the checkpoint
// with every log record applied in order. Every extent must lie inside the
// region's data blocks; corrupt describes a defect.
func replayFree(st *journal.State, blocks uint64, corrupt func(string, ...any) error) (*alloc.ExtentSet, error) {
	free := alloc.NewExtentSet()
	inRegion := func(e pmem.Extent) bool { return inDataBlocks(e, blocks) }
	for _, e := range st.Free {
		if !inRegion(e) {
			return nil, corrupt("free extent %v outside the region", e)
		}
		if _, err := free.Insert(e); err != nil {
			return nil, corrupt("free extent %v: %v", e, err)
		}
	}
	for _, l := range st.FreeLog {
		for _, e := range l.Claimed {
			if !inRegion(e) {
				return nil, corrupt("free log %d claims %v, outside the region", l.Seq, e)
			}
			if _, err := free.Remove(e); err != nil {
				return nil, corrupt("free log %d claims %v, which is not free: %v", l.Seq, e, err)
			}
		}
		for _, e := range l.Freed {
			if !inRegion(e) {
				return nil, corrupt("free log %d frees %v, outside the region", l.Seq, e)
			}
			if _, err := free.Insert(e); err != nil {
				return nil, corrupt("free log %d frees %v, which is already free: %v", l.Seq, e, err)
			}
		}
	}
	return free, nil
}

// inDataBlocks reports whether e is a non-empty run of a region's data
// blocks: past the superblock, inside the region's blocks, not wrapping.
func inDataBlocks(e pmem.Extent, blocks uint64) bool {
	return e.Len > 0 && e.Start >= 1 && uint64(e.End()) <= blocks && e.End() > e.Start
}

// replayFiles returns the number of files the journal records, when it
// knows it.
func replayFiles(st *journal.State) (int64, bool) {
	if !st.HasFiles {
		return 0, false
	}
	n := int64(st.Files)
	for _, l := range st.FreeLog {
		n += l.Files
	}
	return n, true
}
