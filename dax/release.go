package dax

// Release: blocks detached from files go back to free space when their last
// reference drops, in batches, and whoever waits for space is woken.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/daxstore/daxstore/pmem"
)

// onLastRelease is pageref's callback: detached blocks whose last reference
// just dropped. It runs on the unpinning goroutine, so it only enqueues.
func (s *Store) onLastRelease(runs []pmem.Extent) {
	s.met.released(s.epoch)
	s.releaser.Enqueue(runs...)
}

// commitRelease moves released blocks from busy to free in one journal
// batch. It runs on the releaser's goroutine.
//
// The batch is committed without waiting for the WAL sync. Without
// Options.NoSync that is safe: the commit that detached these blocks was
// synced, so a crash that loses this batch leaves busy records, and
// recovery frees every busy extent at Open anyway (no pin survives its
// process). With NoSync it is not: the detach itself may be lost with the
// release, and the file would map the blocks again. So commitLocked holds
// the blocks back under NoSync, as it does for every other freeing commit,
// until a journal sync (see undurableFree). With group commit the same
// holds without NoSync while the detaching commit still waits for its sync:
// commitLocked then holds the blocks until that commit settles.
//
// It returns nil even when it fails the store: a failed store never commits
// again, so retrying would only wedge the releaser (and Sync); the next Open
// frees these blocks from the busy records anyway.
func (s *Store) commitRelease(runs []pmem.Extent) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if s.failed != nil {
		return nil
	}
	t := s.newTxn()
	_, d, err := s.busy.RemoveRuns(runs)
	if err != nil {
		// A release of blocks that are not busy would be a double free:
		// refuse it loudly rather than corrupt free space.
		t.b.Close()
		s.fail(fmt.Errorf("release of %v: %w", runs, err))
		return nil
	}
	applyBusyDelta(t.b, d)
	var blocks uint64
	for _, e := range runs {
		blocks += e.Len
	}
	t.freed = runs
	if _, err := s.commitLocked(t, false); err != nil {
		return nil // commitLocked failed the store
	}
	s.stats.released.Add(blocks)
	s.stats.releaseBatches.Add(1)
	return nil
}

// retrySpace runs op, and when it fails with ErrNoSpace while busy blocks
// exist or blocks freed by commits wait for their sync (Store.settling),
// waits for the busy generation to change (space came back), bounded
// by Options.AllocWait and ctx, and runs op again. op must hold no lock
// when it returns, so the wait never holds a lock a pin holder might need.
func (s *Store) retrySpace(ctx context.Context, op func() error) error {
	var wctx context.Context
	for {
		gen := s.busy.Generation()
		err := op()
		if err == nil || !errors.Is(err, ErrNoSpace) {
			return err
		}
		if sf := (*storeFailure)(nil); errors.As(err, &sf) {
			return err // the journal's filesystem is full: no pin can help
		}
		if s.releaser.Pending() > 0 {
			// Blocks whose last pin already dropped are free in all but
			// the journal: commit them and retry, even when told not to
			// wait for pins, so Unpin followed by a write finds the space.
			// That commit is the store's own bounded work, not a wait for
			// a pin, so a caller's short deadline does not cut it off: on a
			// loaded machine it would turn space that is there into
			// ErrNoSpace. It cannot hang: commitRelease never fails (a
			// journal failure fails the store and counts as done).
			if serr := s.releaser.Sync(context.WithoutCancel(ctx)); serr == nil {
				continue
			}
		}
		// Blocks freed by commits still waiting for their sync come back
		// as soon as the sync is done (settle bumps the generation): wait
		// for them as for busy blocks.
		if s.opts.AllocWait < 0 || (s.busy.Blocks() == 0 && s.releaser.Pending() == 0 && s.settling.Load() == 0 && s.backup.heldBlocks.Load() == 0 && s.busy.Generation() == gen) {
			return s.noSpace(err)
		}
		if wctx == nil {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(ctx, s.opts.AllocWait)
			defer cancel()
			s.stats.allocWaits.Add(1)
			began := s.pinAge()
			defer func() { s.met.waited(s.pinAge() - began) }()
		}
		waitStart := s.pinAge()
		_, werr := s.busy.Wait(wctx, gen)
		if werr == nil {
			s.met.woke(s.epoch, waitStart)
		}
		if werr != nil {
			if ctx.Err() != nil {
				return s.noSpace(err) // the caller gave up
			}
			// AllocWait is over. Space that came back by a route that
			// did not wake us, or just at the deadline, still counts:
			// one last try (TestRetrySpaceTriesOnceMoreAtItsDeadline).
			if err = op(); err == nil || !errors.Is(err, ErrNoSpace) {
				return err
			}
			return s.noSpace(err)
		}
	}
}

// noSpace adds to an ErrNoSpace what an operator needs: how much is busy and
// which pin has held space the longest.
func (s *Store) noSpace(err error) error {
	busy := s.busy.Blocks()
	if busy == 0 {
		return err
	}
	oldest := "(none)"
	if pins := s.Pins(); len(pins) > 0 {
		o := pins[0]
		for _, p := range pins[1:] {
			if p.Created.Before(o.Created) {
				o = p
			}
		}
		oldest = fmt.Sprintf("%q on %q, held for %s", o.Label, o.Key, time.Since(o.Created).Round(time.Millisecond))
	}
	return fmt.Errorf("%w; %d blocks are busy, held by pins (oldest pin %s)", err, busy, oldest)
}
