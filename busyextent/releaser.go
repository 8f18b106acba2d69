package busyextent

// This file exists so that blocks whose last reference dropped go back to
// free space in batches: many blocks going idle together cost one journal
// batch, and the goroutine dropping the reference never waits for the
// journal.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/daxstore/daxstore/pmem"
)

// Retry backoff after a failed commit: the first retry waits minBackoff, each
// further failure doubles the wait up to maxBackoff, and a success resets it.
// The cap keeps a journal that recovers from being retried within a second.
const (
	minBackoff = time.Millisecond
	maxBackoff = 500 * time.Millisecond
)

// Releaser batches releases. Blocks whose last reference dropped are
// enqueued from any goroutine, including from inside a reference-count
// release callback, and one goroutine, woken as soon as work arrives (no
// timer or sleep on that path), commits everything pending in one call.
//
// The commit function receives every run enqueued since its previous call,
// sorted by start and coalesced; one call is meant to be one journal batch.
// It is called from one goroutine at a time, never with a Releaser lock
// held, and may keep the slice it is given; it must not call Enqueue or Sync
// on its own Releaser, which would wait for the commit in progress. If it fails, its runs stay
// pending and are retried after a backoff (1 ms, doubling up to 500 ms) on
// the Releaser's goroutine, together with whatever was enqueued meanwhile;
// the error is kept for Err. A commit that can never succeed for some runs
// stalls every later release, so commit should fail only for errors that
// may pass (a journal write), and deal with runs it rejects in some other
// way (log and drop them).
//
// A Releaser must be closed to stop its goroutine.
type Releaser struct {
	commit func(runs []pmem.Extent) error

	// commitMu serializes commits: it is held while a batch is taken from
	// pending, committed and accounted, so batches reach commit one at a time
	// and in the order they were taken. Enqueue takes it only after Close.
	commitMu sync.Mutex

	// mu protects every field below it. It is never held while commit runs,
	// so Enqueue never waits for a commit.
	mu        sync.Mutex
	pending   []pmem.Extent // runs enqueued and not yet taken for a commit, in no order
	blocks    uint64        // blocks in pending plus in the batch being committed
	enqueued  uint64        // count of Enqueue calls that added at least one run
	committed uint64        // every such Enqueue up to this count has been committed
	err       error         // the last commit error; nil after a later success
	progress  chan struct{} // closed after the next commit attempt; nil until Sync needs it
	closed    bool          // Close has been called

	kick chan struct{} // capacity 1: work has arrived for the goroutine
	quit chan struct{} // closed by Close: the goroutine must stop
	done chan struct{} // closed when the goroutine has stopped
}

// NewReleaser returns a Releaser that commits with commit, and starts its
// goroutine. A nil commit makes every commit fail with an error wrapping
// ErrInvalid.
func NewReleaser(commit func(runs []pmem.Extent) error) *Releaser {
	r := &Releaser{
		commit: commit,
		kick:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go r.run()
	return r
}

// Enqueue adds runs to the pending releases and wakes the committing
// goroutine. It never waits for a commit, so it may be called from a release
// callback, except after Close: then there is no goroutine, and Enqueue
// commits everything pending itself, on the caller's goroutine, before it
// returns (so a callback that may fire after Close must be able to run
// commit). Empty runs, and runs past the last block number, are ignored. A
// block enqueued twice before it is committed is committed once.
func (r *Releaser) Enqueue(runs ...pmem.Extent) {
	r.mu.Lock()
	added := false
	for _, e := range runs {
		if validate(e) != nil {
			continue
		}
		r.pending = append(r.pending, e)
		r.blocks += e.Len
		added = true
	}
	if !added {
		r.mu.Unlock()
		return
	}
	r.enqueued++
	closed := r.closed
	r.mu.Unlock()

	if closed {
		r.commitMu.Lock()
		r.flush()
		r.commitMu.Unlock()
		return
	}
	select {
	case r.kick <- struct{}{}:
	default: // a wakeup is already due; it will see these runs
	}
}

// run is the committing goroutine: it sleeps until work arrives, commits all
// of it, and after a failure retries on a growing backoff until Close.
func (r *Releaser) run() {
	defer close(r.done)
	var backoff time.Duration
	for {
		if backoff == 0 {
			select {
			case <-r.kick:
			case <-r.quit:
				return
			}
		} else {
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-r.quit:
				t.Stop()
				return
			}
		}
		r.commitMu.Lock()
		tried, err := r.flush()
		r.commitMu.Unlock()
		switch {
		case err != nil:
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
		case tried:
			backoff = 0
		}
	}
}

// flush takes everything pending and commits it in one call. tried is false
// when nothing was pending. r.commitMu must be held.
func (r *Releaser) flush() (tried bool, err error) {
	r.mu.Lock()
	batch, seq := r.pending, r.enqueued
	r.pending = nil
	r.mu.Unlock()
	if len(batch) == 0 {
		return false, nil
	}

	var raw uint64
	for _, e := range batch {
		raw += e.Len
	}
	runs := coalesce(batch)
	var total uint64
	for _, e := range runs {
		total += e.Len
	}
	if r.commit == nil {
		err = fmt.Errorf("busyextent: releaser has no commit function: %w", ErrInvalid)
	} else if err = r.commit(runs); err != nil {
		err = fmt.Errorf("busyextent: release %d blocks in %d runs: %w", total, len(runs), err)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		// Put the runs back in front of whatever arrived meanwhile; the
		// duplicates coalesce merged no longer count twice.
		r.pending = append(slices.Clone(runs), r.pending...)
		r.blocks -= raw - total
		r.err = err
	} else {
		r.blocks -= raw
		r.committed = seq
		r.err = nil
	}
	if r.progress != nil {
		close(r.progress)
		r.progress = nil
	}
	return true, err
}

// coalesce sorts runs by start and merges runs that touch or overlap,
// reusing the array of runs.
func coalesce(runs []pmem.Extent) []pmem.Extent {
	slices.SortFunc(runs, func(a, b pmem.Extent) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	out := runs[:1]
	for _, e := range runs[1:] {
		last := &out[len(out)-1]
		if e.Start <= last.End() {
			if e.End() > last.End() {
				last.Len = uint64(e.End() - last.Start)
			}
			continue
		}
		out = append(out, e)
	}
	return out
}

// Sync waits until everything enqueued before the call has been committed
// successfully. While commits fail it keeps waiting for a retry to succeed;
// if ctx ends first it returns an error wrapping ctx.Err() that also names
// the last commit error. After Close, Sync commits what is pending itself
// and returns an error wrapping the commit's error if that fails.
func (r *Releaser) Sync(ctx context.Context) error {
	r.mu.Lock()
	target := r.enqueued
	for r.committed < target {
		if r.closed {
			r.mu.Unlock()
			r.commitMu.Lock()
			r.flush()
			r.commitMu.Unlock()
			r.mu.Lock()
			if r.committed < target {
				err := r.err
				r.mu.Unlock()
				if err == nil {
					err = fmt.Errorf("releases still pending: %w", ErrInvalid)
				}
				return fmt.Errorf("busyextent: sync after close: %w", err)
			}
			break
		}
		if r.progress == nil {
			r.progress = make(chan struct{})
		}
		progress := r.progress
		r.mu.Unlock()
		select {
		case <-progress:
		case <-ctx.Done():
			r.mu.Lock()
			done, last := r.committed >= target, r.err
			r.mu.Unlock()
			if done {
				return nil
			}
			if last != nil {
				return fmt.Errorf("busyextent: sync: %w (last commit error: %v)", ctx.Err(), last)
			}
			return fmt.Errorf("busyextent: sync: %w", ctx.Err())
		}
		r.mu.Lock()
	}
	r.mu.Unlock()
	return nil
}

// Pending returns the number of blocks enqueued and not yet committed,
// including those of a commit in progress.
func (r *Releaser) Pending() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blocks
}

// Err returns the last commit error, or nil if the last commit succeeded.
func (r *Releaser) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Close stops the goroutine after its commit in progress, if any (waiting
// for that commit to return), then
// commits what is pending once more and returns the last commit error (nil
// when everything has been committed). Runs still pending after a failed
// final commit are retried by the next Enqueue or Sync, which commit inline
// after Close. A second Close returns nil.
func (r *Releaser) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()

	close(r.quit)
	<-r.done
	r.commitMu.Lock()
	r.flush()
	r.commitMu.Unlock()
	return r.Err()
}
