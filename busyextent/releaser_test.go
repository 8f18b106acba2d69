package busyextent

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daxstore/daxstore/internal/poll"
	"github.com/daxstore/daxstore/pmem"
)

var errJournal = errors.New("journal write failed")

// recorder is a commit function that records what it is given and checks
// that each call's runs are sorted and coalesced.
type recorder struct {
	t     *testing.T
	delay time.Duration // each commit takes this long

	mu       sync.Mutex
	calls    int
	failNext int                // fail this many more calls
	started  chan struct{}      // if set, receives once per call before it blocks on gate
	gate     chan struct{}      // if set, each call waits to receive from it
	blocks   map[pmem.Block]int // times each block was committed
	batches  [][]pmem.Extent    // runs of every successful call
	inflight bool               // a call is running now
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{t: t, blocks: map[pmem.Block]int{}}
}

func (c *recorder) commit(runs []pmem.Extent) error {
	c.mu.Lock()
	if c.inflight {
		c.t.Errorf("commit called while another commit is running")
	}
	c.inflight = true
	c.calls++
	started, gate := c.started, c.gate
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inflight = false
		c.mu.Unlock()
	}()
	if started != nil {
		started <- struct{}{}
	}
	if gate != nil {
		<-gate
	}
	time.Sleep(c.delay)
	for i := 1; i < len(runs); i++ {
		if runs[i].Start <= runs[i-1].End() {
			c.t.Errorf("commit got runs that are unsorted or not coalesced: %v", runs)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failNext > 0 {
		c.failNext--
		return errJournal
	}
	for _, e := range runs {
		for b := e.Start; b < e.End(); b++ {
			c.blocks[b]++
		}
	}
	c.batches = append(c.batches, runs)
	return nil
}

// committedOnce checks that exactly the blocks [0, n) were committed, once each.
func (c *recorder) committedOnce(n int) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.blocks) != n {
		c.t.Fatalf("%d distinct blocks committed, want %d", len(c.blocks), n)
	}
	for b := pmem.Block(0); b < pmem.Block(n); b++ {
		if c.blocks[b] != 1 {
			c.t.Fatalf("block %d committed %d times", b, c.blocks[b])
		}
	}
}

func (c *recorder) callCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func syncCtx(t *testing.T, r *Releaser) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	defer cancel()
	if err := r.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func TestReleaserBatches(t *testing.T) {
	const runs, writers = 1000, 4
	c := newRecorder(t)
	c.delay = 2 * time.Millisecond
	r := NewReleaser(c.commit)
	defer r.Close()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every other block, so that a writer's runs never touch and
			// each run stays a run of its own.
			for i := w; i < runs; i += writers {
				r.Enqueue(ext(uint64(2*i), 1))
			}
		}()
	}
	wg.Wait()
	syncCtx(t, r)
	if got := c.callCount(); got > runs/10 {
		t.Fatalf("%d commits for %d enqueued runs: releases were not batched", got, runs)
	}
	if r.Pending() != 0 || r.Err() != nil {
		t.Fatalf("Pending, Err = %d, %v after Sync", r.Pending(), r.Err())
	}
	c.mu.Lock()
	var n int
	for _, b := range c.batches {
		n += len(b)
	}
	c.mu.Unlock()
	if n != runs {
		t.Fatalf("commits saw %d runs, want %d", n, runs)
	}
	for i := 0; i < runs; i++ {
		if c.blocks[pmem.Block(2*i)] != 1 {
			t.Fatalf("block %d committed %d times", 2*i, c.blocks[pmem.Block(2*i)])
		}
	}
	t.Logf("%d runs in %d commits", runs, c.callCount())
}

func TestReleaserCoalesces(t *testing.T) {
	c := newRecorder(t)
	c.gate = make(chan struct{})
	c.started = make(chan struct{}, 1)
	r := NewReleaser(c.commit)
	defer r.Close()
	r.Enqueue(ext(100, 1)) // the first commit holds the goroutine at the gate
	<-c.started
	r.Enqueue(ext(5, 2), ext(0, 3), ext(3, 2), pmem.Extent{}, ext(1<<63, 1<<63))
	r.Enqueue(ext(2, 4), ext(20, 1)) // blocks 2..5 again: a double release
	if got := r.Pending(); got != 1+7+5 {
		t.Fatalf("Pending = %d, want 13 (invalid runs ignored, duplicates counted)", got)
	}
	close(c.gate)
	syncCtx(t, r)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.batches) != 2 || len(c.batches[1]) != 2 || c.batches[1][0] != ext(0, 7) || c.batches[1][1] != ext(20, 1) {
		t.Fatalf("batches = %v, want [[100,+1)] then [[0,+7) [20,+1)]", c.batches)
	}
	if r.Pending() != 0 {
		t.Fatalf("Pending = %d after Sync", r.Pending())
	}
}

func TestReleaserRetriesAfterFailure(t *testing.T) {
	c := newRecorder(t)
	c.failNext = 3
	r := NewReleaser(c.commit)
	defer r.Close()
	r.Enqueue(ext(0, 4))
	poll.Until(t, "the first commit failed", func() bool { return r.Err() != nil })
	if !errors.Is(r.Err(), errJournal) {
		t.Fatalf("Err = %v, want the journal error", r.Err())
	}
	r.Enqueue(ext(4, 4))
	syncCtx(t, r)
	if r.Err() != nil || r.Pending() != 0 {
		t.Fatalf("Err, Pending = %v, %d after a successful retry", r.Err(), r.Pending())
	}
	if got := c.callCount(); got < 4 {
		t.Fatalf("%d commit calls, want at least 3 failures and a success", got)
	}
	c.committedOnce(8)
}

func TestReleaserSync(t *testing.T) {
	t.Run("returns at once when nothing was enqueued", func(t *testing.T) {
		r := NewReleaser(newRecorder(t).commit)
		defer r.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := r.Sync(ctx); err != nil {
			t.Fatalf("Sync = %v", err)
		}
	})
	t.Run("waits for runs enqueued before it but not after", func(t *testing.T) {
		c := newRecorder(t)
		c.gate = make(chan struct{})
		c.started = make(chan struct{}, 2)
		r := NewReleaser(c.commit)
		defer r.Close()
		r.Enqueue(ext(0, 1))
		<-c.started // block 0 is held at the gate
		synced := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), generous)
			defer cancel()
			synced <- r.Sync(ctx)
		}()
		select {
		case err := <-synced:
			t.Fatalf("Sync returned %v while its run was being committed", err)
		case <-time.After(10 * time.Millisecond):
		}
		r.Enqueue(ext(1, 1)) // after the Sync began
		c.gate <- struct{}{} // block 0 commits; block 1 is taken next and held
		if err := <-synced; err != nil {
			t.Fatalf("Sync: %v", err)
		}
		<-c.started
		if r.Pending() != 1 {
			t.Fatalf("Pending = %d, want block 1 still held", r.Pending())
		}
		close(c.gate)
		syncCtx(t, r)
		c.committedOnce(2)
	})
	t.Run("gives up with its context and names the commit error", func(t *testing.T) {
		c := newRecorder(t)
		c.failNext = 1 << 30
		r := NewReleaser(c.commit)
		r.Enqueue(ext(0, 3))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		err := r.Sync(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), errJournal.Error()) {
			t.Fatalf("Sync = %v, want the deadline naming the journal error", err)
		}
		if r.Pending() != 3 {
			t.Fatalf("Pending = %d, want the 3 failed blocks", r.Pending())
		}
		if err := r.Close(); !errors.Is(err, errJournal) {
			t.Fatalf("Close = %v, want the journal error", err)
		}
		if r.Pending() != 3 {
			t.Fatalf("Pending = %d after a failed Close, want 3", r.Pending())
		}
		c.mu.Lock()
		c.failNext = 0
		c.mu.Unlock()
		syncCtx(t, r) // after Close, Sync commits inline
		c.committedOnce(3)
	})
}

func TestReleaserEnqueueNeverWaitsForCommit(t *testing.T) {
	c := newRecorder(t)
	c.gate = make(chan struct{})
	c.started = make(chan struct{}, 1)
	r := NewReleaser(c.commit)
	r.Enqueue(ext(0, 1))
	<-c.started // the commit is now stuck at the gate
	done := make(chan struct{})
	go func() {
		for i := 1; i < 100; i++ {
			r.Enqueue(ext(uint64(i), 1))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(generous):
		t.Fatal("Enqueue waited for a stuck commit")
	}
	if r.Pending() != 100 {
		t.Fatalf("Pending = %d, want 100", r.Pending())
	}
	close(c.gate)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	c.committedOnce(100)
}

func TestReleaserClose(t *testing.T) {
	t.Run("flushes what is pending", func(t *testing.T) {
		c := newRecorder(t)
		c.gate = make(chan struct{})
		c.started = make(chan struct{}, 1)
		r := NewReleaser(c.commit)
		r.Enqueue(ext(0, 1))
		<-c.started
		r.Enqueue(ext(1, 5), ext(10, 2))
		c.mu.Lock()
		c.started = nil
		c.mu.Unlock()
		close(c.gate)
		if err := r.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
		if r.Pending() != 0 {
			t.Fatalf("Pending = %d after Close", r.Pending())
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.blocks[0] != 1 || c.blocks[5] != 1 || c.blocks[11] != 1 || len(c.blocks) != 8 {
			t.Fatalf("committed %v", c.blocks)
		}
	})
	t.Run("a second Close returns nil", func(t *testing.T) {
		c := newRecorder(t)
		c.failNext = 1 << 30
		r := NewReleaser(c.commit)
		r.Enqueue(ext(0, 1))
		if err := r.Close(); !errors.Is(err, errJournal) {
			t.Fatalf("first Close = %v, want the journal error", err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
	})
	t.Run("Enqueue after Close commits inline", func(t *testing.T) {
		c := newRecorder(t)
		r := NewReleaser(c.commit)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		r.Enqueue(ext(7, 2))
		if r.Pending() != 0 || c.callCount() != 1 {
			t.Fatalf("after Enqueue: Pending %d, %d commits; want 0, 1", r.Pending(), c.callCount())
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.blocks) != 2 || c.blocks[7] != 1 || c.blocks[8] != 1 {
			t.Fatalf("committed %v, want blocks 7 and 8 once", c.blocks)
		}
	})
}

func TestReleaserWithoutCommitFunction(t *testing.T) {
	r := NewReleaser(nil)
	r.Enqueue(ext(0, 1))
	if err := r.Close(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Close = %v, want ErrInvalid", err)
	}
	if r.Pending() != 1 {
		t.Fatalf("Pending = %d, want the uncommitted block", r.Pending())
	}
}
