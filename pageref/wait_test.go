package pageref

// This file tests WaitIdle: wakeup on the last Release, context handling, and
// that no wakeup is lost under stress.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/daxstore/daxstore/internal/poll"

	"github.com/daxstore/daxstore/pmem"
)

func TestWaitIdleReturnsAfterLastRelease(t *testing.T) {
	tb := New(4*chunkBlocks, nil)
	e := ext(chunkBlocks-3, chunkBlocks+6) // spans three chunks
	refs := []pmem.Extent{ext(chunkBlocks-3, 1), ext(chunkBlocks+2, 4), ext(2*chunkBlocks+2, 1)}
	for _, r := range append(refs, refs[1]) {
		if err := tb.Acquire(r); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- tb.WaitIdle(context.Background(), e) }()
	poll.Until(t, "the waiter to register", func() bool { return tb.Waiters() == 1 })

	for i, r := range append(refs, refs[1]) {
		select {
		case err := <-done:
			t.Fatalf("WaitIdle returned %v with %d releases still to come", err, len(refs)+1-i)
		case <-time.After(20 * time.Millisecond):
		}
		if err := tb.Release(r); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitIdle did not return after the last release")
	}
	if tb.Waiters() != 0 {
		t.Fatalf("Waiters = %d after WaitIdle returned", tb.Waiters())
	}
}

func TestWaitIdle(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		e       pmem.Extent
		want    error // nil: success
		wantCtx error
	}{
		{"an idle range returns at once", bg, ext(10, 20), nil, nil},
		{"an idle range returns even with a canceled context", func() (context.Context, context.CancelFunc) { return canceled, func() {} },
			ext(10, 20), nil, nil},
		{"a referenced range returns the cancellation", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, cancel)
			return ctx, cancel
		}, ext(0, 10), context.Canceled, context.Canceled},
		{"a referenced range returns the deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 20*time.Millisecond)
		}, ext(0, 10), context.DeadlineExceeded, context.DeadlineExceeded},
		{"an empty range fails", bg, ext(0, 0), ErrInvalidRange, nil},
		{"a range past the end fails", bg, ext(100, 10000), ErrInvalidRange, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := New(1000, nil)
			if err := tb.Acquire(ext(5, 1)); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := tc.ctx()
			defer cancel()
			err := tb.WaitIdle(ctx, tc.e)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tb.Waiters() != 0 {
				t.Fatalf("Waiters = %d after WaitIdle returned", tb.Waiters())
			}
			if tb.Count(5) != 1 {
				t.Fatalf("WaitIdle changed a count")
			}
		})
	}
}

func bg() (context.Context, context.CancelFunc) { return context.Background(), func() {} }

// TestWaitIdleNoLostWakeup is the stress named in Table.wake: many waiters on
// blocks that share buckets, each round releasing the references from many
// goroutines at once. A waiter that misses its wakeup sleeps forever, which
// the 10 s bound turns into a failure.
func TestWaitIdleNoLostWakeup(t *testing.T) {
	rounds := 150
	if testing.Short() {
		rounds = 20
	}
	base := uint64(time.Now().UnixNano())
	t.Logf("base seed %d", base)
	// Blocks in four chunks: two neighbours, and for each a distant chunk
	// that hashes to the same bucket, so that waiters of unrelated blocks
	// share wakeups.
	const n = 1 << 12 * chunkBlocks
	tb := New(n, nil)
	chunks := []uint64{0, 1, sameBucket(t, tb, 0), sameBucket(t, tb, 1)}
	t.Logf("chunks %v", chunks)
	for r := range rounds {
		seed := base + uint64(r)
		if err := noLostWakeupRound(tb, chunks, seed); err != nil {
			t.Fatalf("seed %d (round %d): %v", seed, r, err)
		}
	}
	mustCheck(t, tb)
}

// sameBucket returns a chunk other than ci whose waiters share ci's bucket.
func sameBucket(t *testing.T, tb *Table, ci uint64) uint64 {
	t.Helper()
	for c := ci + 2; c < tb.Blocks()>>chunkShift; c++ {
		if tb.bucketOf(c) == tb.bucketOf(ci) {
			return c
		}
	}
	t.Fatalf("no chunk shares the bucket of chunk %d", ci)
	return 0
}

func noLostWakeupRound(tb *Table, chunks []uint64, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0))
	const (
		waiters   = 24
		releasers = 6
	)
	// Each releaser holds one reference on each of a few random blocks.
	held := make([][]pmem.Block, releasers)
	for i := range held {
		for range 1 + rng.IntN(8) {
			b := pmem.Block(chunks[rng.IntN(len(chunks))]<<chunkShift + rng.Uint64N(chunkBlocks))
			if err := tb.Acquire(pmem.Extent{Start: b, Len: 1}); err != nil {
				return err
			}
			held[i] = append(held[i], b)
		}
	}
	// Each waiter waits on one held block, or on a whole chunk.
	all := []pmem.Block{}
	for _, h := range held {
		all = append(all, h...)
	}
	targets := make([]pmem.Extent, waiters)
	for i := range targets {
		if rng.IntN(4) == 0 {
			targets[i] = ext(chunks[rng.IntN(len(chunks))]<<chunkShift, chunkBlocks)
		} else {
			targets[i] = pmem.Extent{Start: all[rng.IntN(len(all))], Len: 1}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, waiters+releasers)
	var wg sync.WaitGroup
	for _, e := range targets {
		wg.Go(func() {
			if err := tb.WaitIdle(ctx, e); err != nil {
				errs <- fmt.Errorf("waiter on %v: lost wakeup? %w", e, err)
			}
		})
	}
	for _, h := range held {
		wg.Go(func() {
			runtime.Gosched()
			for _, b := range h {
				if err := tb.Release(pmem.Extent{Start: b, Len: 1}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	if tb.Waiters() != 0 {
		return fmt.Errorf("Waiters = %d after the round", tb.Waiters())
	}
	return nil
}
