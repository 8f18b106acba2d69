package dax

// Tests of the release protocol: every detached block is freed exactly once
// when its last pin drops, and whoever waits for space is woken then.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daxstore/daxstore/internal/poll"
)

func TestEachDetachedBlockIsFreedExactlyOnce(t *testing.T) {
	for _, detach := range []string{"punch", "remove", "put"} {
		t.Run("overlapping pins released in random order after a "+detach+" free every block once", func(t *testing.T) {
			seed := rand.Uint64()
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 0))
			const fileBlocks = 24
			s := newStore(t, 64*testBS, nil)
			initial := mustStats(t, s).FreeBlocks
			mustPut(t, s, "k", pattern(5, fileBlocks*testBS))
			f := mustOpen(t, s, "k")

			// Many pins of overlapping byte ranges; some blocks stay
			// unpinned and must be freed at once by the detach.
			var pins []Pin
			pinned := map[int64]bool{}
			for i := 0; i < 40; i++ {
				first := rng.Int64N(fileBlocks - 4)
				off := first*testBS + rng.Int64N(testBS)
				n := 1 + rng.Int64N(3*testBS)
				pins = append(pins, mustPin(t, f, off, n, PinOptions{Label: fmt.Sprintf("pin-%d", i)}))
				for b := off / testBS; b <= (off+n-1)/testBS; b++ {
					pinned[b] = true
				}
			}
			want := uint64(len(pinned))
			if got := mustStats(t, s).PinnedBlocks; got != want {
				t.Fatalf("%d pinned blocks, want %d", got, want)
			}
			var err error
			switch detach {
			case "punch":
				err = f.PunchHole(0, fileBlocks*testBS)
			case "remove":
				err = s.Remove("k")
			case "put":
				err = s.Put("k", nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			settle(t, s)
			st := mustStats(t, s)
			if st.BusyBlocks != want || st.Detached != want {
				t.Fatalf("detached %d blocks, %d busy; want %d", st.Detached, st.BusyBlocks, want)
			}
			if st.FreeBlocks != initial-want {
				t.Fatalf("%d free blocks after the detach, want %d (unpinned blocks free at once)", st.FreeBlocks, initial-want)
			}
			mustCheck(t, s)

			rng.Shuffle(len(pins), func(i, j int) { pins[i], pins[j] = pins[j], pins[i] })
			work := make(chan Pin)
			var wg sync.WaitGroup
			errs := make(chan error, len(pins)*2)
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for p := range work {
						if err := p.Unpin(); err != nil {
							errs <- err
						}
						if err := s.Check(); err != nil {
							errs <- err
						}
					}
				}()
			}
			for _, p := range pins {
				work <- p
			}
			close(work)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			settle(t, s)
			st = mustStats(t, s)
			if st.FreeBlocks != initial || st.Released != want || st.BusyBlocks != 0 || st.PinnedBlocks != 0 {
				t.Fatalf("after every Unpin: %d free (want %d), %d released (want %d), %d busy, %d pinned",
					st.FreeBlocks, initial, st.Released, want, st.BusyBlocks, st.PinnedBlocks)
			}
			for _, p := range pins {
				wantErr(t, p.Unpin(), ErrUnpinned)
			}
			if got := mustStats(t, s); got != st {
				t.Fatalf("second Unpins changed the stats:\n%+v\n%+v", st, got)
			}
			mustCheck(t, s)
		})
	}
}

// fullStore returns a store whose data blocks are all taken: 8 by key
// "pinned", pinned under label "slow-reader" and then removed (so busy),
// and the rest by key "fill", which is 12 blocks long with a hole at 8..11.
func fullStore(t *testing.T, allocWait time.Duration) (*Store, Pin) {
	t.Helper()
	s := newStore(t, 17*testBS, func(o *Options) { o.AllocWait = allocWait })
	mustPut(t, s, "pinned", pattern(1, 8*testBS))
	mustPut(t, s, "fill", pattern(2, 8*testBS))
	if err := mustOpen(t, s, "fill").Truncate(12 * testBS); err != nil { // a hole at blocks 8..11
		t.Fatal(err)
	}
	f := mustOpen(t, s, "pinned")
	p := mustPin(t, f, 0, 8*testBS, PinOptions{Label: "slow-reader"})
	if err := s.Remove("pinned"); err != nil {
		t.Fatal(err)
	}
	if st := mustStats(t, s); st.FreeBlocks != 0 || st.BusyBlocks != 8 {
		t.Fatalf("setup: %d free, %d busy blocks; want 0 and 8", st.FreeBlocks, st.BusyBlocks)
	}
	return s, p
}

// allocations are the operations that take blocks and so may wait for busy
// ones.
var allocations = []struct {
	name string
	do   func(s *Store) error
}{
	{"a put", func(s *Store) error { return s.Put("new", pattern(3, 4*testBS)) }},
	{"a write into a hole", func(s *Store) error {
		_, err := mustOpenE(s, "fill", func(f *File) error {
			_, err := f.WriteAt(pattern(4, 10), 20*testBS)
			return err
		})
		return err
	}},
	{"an allocate", func(s *Store) error {
		_, err := mustOpenE(s, "fill", func(f *File) error { return f.Allocate(8*testBS, 2*testBS) })
		return err
	}},
	{"a pin of a hole", func(s *Store) error {
		_, err := mustOpenE(s, "fill", func(f *File) error {
			p, err := f.Pin(10*testBS, testBS, PinOptions{})
			if err != nil {
				return err
			}
			return p.Unpin()
		})
		return err
	}},
}

// mustOpenE opens key and runs fn on it, for use off the test goroutine.
func mustOpenE(s *Store, key string, fn func(*File) error) (*File, error) {
	f, err := s.Open(key)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f, fn(f)
}

func TestAllocationsWaitingForBusyBlocksWakeAfterUnpin(t *testing.T) {
	for _, a := range allocations {
		t.Run(a.name+" blocked on a full region completes after the pin is released", func(t *testing.T) {
			s, p := fullStore(t, time.Minute)
			done := make(chan error, 1)
			go func() { done <- a.do(s) }()
			// Blocked: waiting on the busy generation, not finished. It
			// cannot finish before the Unpin (the region stays full), so
			// a result before then fails the test whenever it comes.
			var early error
			finished := false
			poll.Until(t, a.name+" to wait for space", func() bool {
				select {
				case early = <-done:
					finished = true
					return true
				default:
				}
				return mustStats(t, s).Waiters > 0
			})
			if finished {
				t.Fatalf("%s finished (%v) with the region full", a.name, early)
			}
			if err := p.Unpin(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("%s after Unpin: %v", a.name, err)
				}
			case <-time.After(poll.Bound):
				t.Fatalf("%s still blocked %s after the Unpin (lost wakeup)", a.name, poll.Bound)
			}
			st := mustStats(t, s)
			if st.AllocWaits == 0 || st.Waiters != 0 {
				t.Fatalf("stats after the wait: %d alloc waits, %d waiters", st.AllocWaits, st.Waiters)
			}
			mustCheck(t, s)
		})
	}
}

func TestAllocationsGiveUpWithANoSpaceErrorNamingTheBusyBlocks(t *testing.T) {
	for _, wait := range []time.Duration{-1, 30 * time.Millisecond} {
		for _, a := range allocations {
			t.Run(fmt.Sprintf("%s with AllocWait %v fails naming the busy blocks and the oldest pin", a.name, wait), func(t *testing.T) {
				s, p := fullStore(t, wait)
				mustPin(t, mustOpen(t, s, "fill"), 0, 1, PinOptions{Label: "younger"})
				before := snapshot(t, s)
				start := time.Now()
				err := a.do(s)
				wantErr(t, err, ErrNoSpace)
				if wait > 0 && time.Since(start) < wait {
					t.Errorf("gave up after %v, before AllocWait %v", time.Since(start), wait)
				}
				for _, want := range []string{"8 blocks are busy", `"slow-reader"`} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %s", err, want)
					}
				}
				if wait > 0 {
					before.Stats.AllocWaits++ // the one thing a wait changes
				}
				sameState(t, s, before)
				if err := p.Unpin(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestAllocWaitIsBoundedByTheCallersContext(t *testing.T) {
	s, p := fullStore(t, time.Minute)
	defer p.Unpin()
	f := mustOpen(t, s, "fill")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	// A break that needs a copy-on-write block waits for space under the
	// call's context, not only AllocWait.
	p2 := mustPin(t, f, 0, testBS, PinOptions{Label: "cow"})
	defer p2.Unpin()
	var err error
	within(t, 10*time.Second, "a punch waiting for a copy-on-write block", func() {
		err = f.PunchHoleWith(ctx, 10, 20, BreakOptions{})
	})
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("punch with an expired context: %v, want ErrNoSpace", err)
	}
	mustCheck(t, s)
}
