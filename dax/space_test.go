package dax

import (
	"context"
	"testing"
	"time"
)

// cancelled is a context that has already ended: Wait on it returns nil
// only if the generation has already moved.
func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// TestUnreserveWakesSpaceWaiters: blocks handed back by an operation that
// reserved them and then gave up are space that came back, so they move the
// busy generation, which is what wakes allocations waiting for space.
func TestUnreserveWakesSpaceWaiters(t *testing.T) {
	s := newStore(t, 64*testBS, nil)

	t.Run("unreserve moves the generation", func(t *testing.T) {
		gen := s.busy.Generation()
		exts, err := s.reserve(3, 0)
		if err != nil {
			t.Fatal(err)
		}
		s.unreserve(exts)
		if _, err := s.busy.Wait(cancelled(), gen); err != nil {
			t.Fatalf("a waiter from before the unreserve is not woken: %v", err)
		}
	})

	t.Run("a Fail-policy Put that finds pins moves the generation", func(t *testing.T) {
		mustPut(t, s, "k", pattern(1, 4*testBS))
		p := mustPin(t, mustOpen(t, s, "k"), 0, testBS, PinOptions{Label: "holder"})
		defer p.Unpin()
		gen := s.busy.Generation()
		err := s.PutWith(t0(), "k", pattern(2, 40*testBS), BreakOptions{Policy: PolicyFail})
		wantErr(t, err, ErrPinned)
		if _, err := s.busy.Wait(cancelled(), gen); err != nil {
			t.Fatalf("the Put reserved 40 blocks and gave them back, but waiters are not woken: %v", err)
		}
	})

}

// TestRetrySpaceTriesOnceMoreAtItsDeadline: when AllocWait ends, the
// allocation runs once more before it reports ErrNoSpace, so space that came
// back without waking it (or at the very deadline) is still found.
func TestRetrySpaceTriesOnceMoreAtItsDeadline(t *testing.T) {
	s := newStore(t, 64*testBS, func(o *Options) { o.AllocWait = time.Nanosecond })
	// A busy block, so that running out of space waits instead of failing
	// at once.
	mustPut(t, s, "k", pattern(1, testBS))
	p := mustPin(t, mustOpen(t, s, "k"), 0, testBS, PinOptions{Label: "holder"})
	defer p.Unpin()
	if err := s.Remove("k"); err != nil {
		t.Fatal(err)
	}
	calls := 0
	err := s.retrySpace(context.Background(), func() error {
		calls++
		if calls == 1 {
			return ErrNoSpace
		}
		return nil // the space is there now
	})
	if err != nil {
		t.Fatalf("after %d tries: %v; want the try at the deadline to succeed", calls, err)
	}

	// A caller that gives up gets its error without another try.
	calls = 0
	err = s.retrySpace(cancelled(), func() error { calls++; return ErrNoSpace })
	wantErr(t, err, ErrNoSpace)
	if calls != 1 {
		t.Fatalf("with the caller's context ended the op ran %d times, want 1", calls)
	}
}
