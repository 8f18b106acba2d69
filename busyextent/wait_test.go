package busyextent

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daxstore/daxstore/internal/poll"
)

// generous bounds every wait in these tests: a wait that takes longer has
// lost its wakeup.
const generous = 10 * time.Second

func TestWaitWakes(t *testing.T) {
	tests := []struct {
		name  string
		wakeS func(*Set) error
	}{
		{"a Remove wakes a waiter", func(s *Set) error { _, _, err := s.Remove(ext(10, 1)); return err }},
		{"a Bump wakes a waiter", func(s *Set) error { s.Bump(); return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSet(t, busy(10, 5, "a", 0))
			gen := s.Generation()
			got := make(chan error, 1)
			var newGen uint64
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), generous)
				defer cancel()
				var err error
				newGen, err = s.Wait(ctx, gen)
				got <- err
			}()
			poll.Until(t, "the waiter is inside Wait", func() bool { return s.Waiters() == 1 })
			select {
			case err := <-got:
				t.Fatalf("Wait returned %v before anything happened", err)
			case <-time.After(10 * time.Millisecond):
			}
			if err := tt.wakeS(s); err != nil {
				t.Fatal(err)
			}
			if err := <-got; err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if newGen != gen+1 || s.Generation() != gen+1 {
				t.Fatalf("Wait returned generation %d, set is at %d, want %d", newGen, s.Generation(), gen+1)
			}
			poll.Until(t, "no waiter is left", func() bool { return s.Waiters() == 0 })
		})
	}
	t.Run("Wait on a stale generation returns at once", func(t *testing.T) {
		s := NewSet()
		s.Bump()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if g, err := s.Wait(ctx, 0); err != nil || g != 1 {
			t.Fatalf("Wait(stale) = %d, %v; want 1, nil", g, err)
		}
	})
	t.Run("an Add does not wake a waiter", func(t *testing.T) {
		s := NewSet()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		go func() { _, _ = s.Add(busy(1, 1, "a", 0)) }()
		if _, err := s.Wait(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait = %v, want the deadline", err)
		}
	})
}

func TestWaitHonoursContext(t *testing.T) {
	s := NewSet()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() {
		_, err := s.Wait(ctx, s.Generation())
		got <- err
	}()
	poll.Until(t, "the waiter is inside Wait", func() bool { return s.Waiters() == 1 })
	cancel()
	select {
	case err := <-got:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
	case <-time.After(generous):
		t.Fatal("Wait ignored its cancelled context")
	}
	if s.Waiters() != 0 {
		t.Fatalf("Waiters = %d after the wait ended", s.Waiters())
	}
}

// TestWaitLosesNoWakeupInRounds races one wakeup against waiters that have
// read the generation but may not yet be inside Wait: every waiter must see
// that single wakeup, since no later one would rescue it.
func TestWaitLosesNoWakeupInRounds(t *testing.T) {
	const rounds, waiters = 2000, 8
	s := NewSet()
	for round := 0; round < rounds; round++ {
		gen := s.Generation()
		var ready, done sync.WaitGroup
		ready.Add(waiters)
		done.Add(waiters)
		var failed atomic.Value
		for w := 0; w < waiters; w++ {
			go func() {
				defer done.Done()
				ready.Done()
				ctx, cancel := context.WithTimeout(context.Background(), generous)
				defer cancel()
				g, err := s.Wait(ctx, gen)
				switch {
				case err != nil:
					failed.Store(err)
				case ctx.Err() != nil:
					failed.Store(fmt.Errorf("Wait returned only after its deadline"))
				case g != gen+1:
					failed.Store(fmt.Errorf("Wait returned generation %d, want %d", g, gen+1))
				}
			}()
		}
		ready.Wait()
		if round%2 == 0 {
			s.Bump()
		} else {
			if _, err := s.Add(busy(5, 1, "a", 0)); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Remove(ext(5, 1)); err != nil {
				t.Fatal(err)
			}
		}
		done.Wait()
		if err := failed.Load(); err != nil {
			t.Fatalf("round %d: a waiter missed the only wakeup: %v", round, err)
		}
	}
}

// TestWaitLosesNoWakeupUnderStorm runs many waiters in a loop against many
// concurrent bumps; each Wait must end well within the generous bound.
func TestWaitLosesNoWakeupUnderStorm(t *testing.T) {
	const waiters, bumpers, bumps = 16, 4, 5000
	s := NewSet()
	final := uint64(bumpers * bumps)
	var wg sync.WaitGroup
	errs := make(chan error, waiters)
	for w := 0; w < waiters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				gen := s.Generation()
				if gen == final {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), generous)
				g, err := s.Wait(ctx, gen)
				late := ctx.Err() != nil
				cancel()
				if err != nil || late || g == gen {
					errs <- fmt.Errorf("Wait(%d) = %d, %v (deadline passed: %v)", gen, g, err, late)
					return
				}
			}
		}()
	}
	for b := 0; b < bumpers; b++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < bumps; i++ {
				s.Bump()
				runtime.Gosched() // let waiters in between bumps
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a waiter failed: %v", err)
	}
	if s.Generation() != final || s.Waiters() != 0 {
		t.Fatalf("generation %d, waiters %d; want %d, 0", s.Generation(), s.Waiters(), final)
	}
}

func TestWaitReleasedAnyOwner(t *testing.T) {
	t.Run("returns at once for blocks that are not busy", func(t *testing.T) {
		s := mustSet(t, busy(10, 5, "a", 0))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for _, e := range []struct{ start, n uint64 }{{0, 10}, {15, 5}, {12, 0}} {
			if err := s.WaitReleased(ctx, 0, ext(e.start, e.n)); err != nil {
				t.Fatalf("WaitReleased(%v) = %v", ext(e.start, e.n), err)
			}
		}
	})
	t.Run("rejects an extent past the last block number", func(t *testing.T) {
		if err := NewSet().WaitReleased(context.Background(), 0, ext(1<<63, 1<<63)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("WaitReleased = %v, want ErrInvalid", err)
		}
	})
	t.Run("waits until the last busy block of the range is removed", func(t *testing.T) {
		s := mustSet(t, busy(10, 5, "a", 0), busy(20, 5, "b", 0))
		got := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), generous)
			defer cancel()
			got <- s.WaitReleased(ctx, 0, ext(12, 10))
		}()
		poll.Until(t, "the waiter is inside WaitReleased", func() bool { return s.Waiters() == 1 })
		for _, r := range []struct{ start, n uint64 }{{10, 2}, {12, 3}, {24, 1}, {20, 1}} {
			if _, _, err := s.Remove(ext(r.start, r.n)); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-got:
				t.Fatalf("WaitReleased returned %v while %v is busy", err, s.Overlapping(ext(12, 10)))
			case <-time.After(5 * time.Millisecond):
			}
		}
		if _, _, err := s.Remove(ext(21, 1)); err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatalf("WaitReleased: %v", err)
		}
		if s.Blocks() != 2 {
			t.Fatalf("Blocks = %d, want the 2 outside the range", s.Blocks())
		}
	})
	t.Run("honours its context", func(t *testing.T) {
		s := mustSet(t, busy(10, 5, "a", 0))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if err := s.WaitReleased(ctx, 0, ext(10, 1)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitReleased = %v, want the deadline", err)
		}
		if s.Waiters() != 0 {
			t.Fatalf("Waiters = %d after the wait ended", s.Waiters())
		}
	})
}

// TestWaitReleasedIgnoresLaterOwners replays the ABA interleaving: the
// blocks a waiter waits for are released, then detached again by another
// operation (another ticket) before the waiter looks. The waiter must
// return: its own blocks came back.
func TestWaitReleasedIgnoresLaterOwners(t *testing.T) {
	s := NewSet()
	first, second := s.NewTicket(), s.NewTicket()
	if first == 0 || first == second {
		t.Fatalf("tickets %d and %d: want distinct and non-zero", first, second)
	}
	x := busy(10, 4, "a", 0)
	x.Ticket = first
	if _, err := s.Add(x); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	defer cancel()
	go func() { got <- s.WaitReleased(ctx, first, ext(10, 4)) }()
	poll.Until(t, "the waiter is inside WaitReleased", func() bool { return s.Waiters() == 1 })
	// Whether the waiter has looked once or not yet, it must find the
	// blocks busy under another ticket and return.
	// Release the first owner's blocks and detach them again for the
	// second, in one step as far as the waiter can tell: it wakes to find
	// the same blocks busy.
	s.mu.Lock()
	s.tree.Delete(at(10))
	y := busy(10, 4, "b", 0)
	rec := &Record{Ticket: second, Key: y.Key, Ino: y.Ino, Reason: y.Reason, DetachedAt: y.DetachedAt,
		Runs: []Run{{Extent: y.Extent, FileBlock: y.FileBlock}}}
	s.tree.ReplaceOrInsert(item{Extent: y.Extent, rec: rec})
	s.bumpLocked()
	s.mu.Unlock()
	if err := <-got; err != nil {
		t.Fatalf("the first owner's blocks were released, but the waiter reports %v", err)
	}
	if !s.Overlaps(ext(10, 4)) {
		t.Fatal("the second owner's blocks should still be busy")
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
