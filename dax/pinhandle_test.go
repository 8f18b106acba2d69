package dax

// Tests of the pin handle: records reused behind small handles, the fast
// path's extent cache, and the cost of a pin.

import (
	"bytes"
	"sync"
	"testing"

	"github.com/daxstore/daxstore/pmem"
)

func TestStaleHandleAfterReuse(t *testing.T) {
	s := newStore(t, 1<<20, nil)
	mustPut(t, s, "k", pattern(1, 2*testBS))
	f := mustOpen(t, s, "k")
	old := mustPin(t, f, 0, testBS, PinOptions{Label: "old"})
	if err := old.Unpin(); err != nil {
		t.Fatal(err)
	}
	// The same block selects the same shard, whose free record is reused.
	cur := mustPin(t, f, 0, testBS, PinOptions{Label: "current"})
	if cur.r != old.r {
		t.Fatal("the second pin did not reuse the first pin's record: the test proves nothing")
	}
	block := cur.r.runs[0].Start

	t.Run("a stale Unpin fails with ErrUnpinned", func(t *testing.T) {
		wantErr(t, old.Unpin(), ErrUnpinned)
	})
	t.Run("a stale handle sees nothing of the new pin", func(t *testing.T) {
		if b := old.Bytes(); b != nil {
			t.Errorf("stale Bytes returned %d slices, want nil", len(b))
		}
		wantErr(t, old.Flush(), ErrUnpinned)
		if old.Label() != "old" {
			t.Errorf("stale handle's label %q, want %q", old.Label(), "old")
		}
	})
	t.Run("the new pin is intact", func(t *testing.T) {
		if got := s.refs.Count(block); got != 1 {
			t.Fatalf("block %d has %d references, want 1", block, got)
		}
		if got := pinBytes(cur); !bytes.Equal(got, pattern(1, 2*testBS)[:testBS]) {
			t.Fatal("the new pin's bytes changed")
		}
		pins := s.Pins()
		if len(pins) != 1 || pins[0].Label != "current" {
			t.Fatalf("Pins() = %+v, want the current pin alone", pins)
		}
		mustCheck(t, s)
	})
	if err := cur.Unpin(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, cur.Unpin(), ErrUnpinned)
	if got := s.refs.Count(block); got != 0 {
		t.Fatalf("block %d has %d references after the last Unpin, want 0", block, got)
	}
	mustCheck(t, s)
}

func TestConcurrentDoubleUnpinSucceedsOnce(t *testing.T) {
	// Copies of one handle unpinned from many goroutines while other pins
	// reuse the record: exactly one Unpin wins, and no other pin loses a
	// reference.
	s := newStore(t, 1<<20, nil)
	mustPut(t, s, "k", pattern(1, testBS))
	f := mustOpen(t, s, "k")
	for round := 0; round < 200; round++ {
		p := mustPin(t, f, 0, testBS, PinOptions{})
		var wins, others sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		var held []Pin
		for range 4 {
			wins.Add(1)
			go func() {
				defer wins.Done()
				if p.Unpin() == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}()
			others.Add(1)
			go func() {
				defer others.Done()
				q, err := f.Pin(0, testBS, PinOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				held = append(held, q)
				mu.Unlock()
			}()
		}
		wins.Wait()
		others.Wait()
		if ok != 1 {
			t.Fatalf("round %d: %d Unpins of one pin succeeded, want 1", round, ok)
		}
		if got, want := s.refs.Count(s.pinsBlock(t, held)), uint32(len(held)); got != want {
			t.Fatalf("round %d: %d references with %d other pins held", round, got, want)
		}
		for _, q := range held {
			if err := q.Unpin(); err != nil {
				t.Fatal(err)
			}
		}
	}
	mustCheck(t, s)
}

// pinsBlock returns the one region block that pins hold.
func (s *Store) pinsBlock(t *testing.T, pins []Pin) (b pmem.Block) {
	t.Helper()
	for i, p := range pins {
		if i == 0 {
			b = p.r.runs[0].Start
		} else if p.r.runs[0].Start != b {
			t.Fatalf("pins hold different blocks %d and %d", b, p.r.runs[0].Start)
		}
	}
	return b
}

func TestOnBreakOncePerPinOfAReusedRecord(t *testing.T) {
	// A break calls OnBreak after its locks are gone, when the pin's
	// record may already serve a newer pin: the record's ids grow, so a
	// late call for the old pin neither repeats nor blocks the new one's.
	var r pinRegistry
	first := r.add(nil, &pinFields{}, 0)
	if !first.r.markBroken(first.id) || first.r.markBroken(first.id) {
		t.Fatal("OnBreak of the first pin is not due exactly once")
	}
	r.remove(first.r)
	second := r.add(nil, &pinFields{}, 0)
	if second.r != first.r || second.id <= first.id {
		t.Fatalf("second pin: record reused %v, id %d after %d: want reuse and a larger id", second.r == first.r, second.id, first.id)
	}
	if first.r.markBroken(first.id) {
		t.Error("a late break of the first pin would call its OnBreak again")
	}
	if !second.r.markBroken(second.id) || second.r.markBroken(second.id) {
		t.Error("OnBreak of the second pin is not due exactly once")
	}
}

func TestPinCacheForgetsBrokenLayouts(t *testing.T) {
	// Pin's fast path remembers the file's extent; every layout-breaking
	// operation must make it forget, or a pin would take blocks the file
	// no longer owns.
	cases := []struct {
		name  string
		brk   func(t *testing.T, s *Store, f *File)
		check func(t *testing.T, f *File)
	}{
		{"overwrite", func(t *testing.T, s *Store, f *File) { mustPut(t, s, "k", pattern(2, 2*testBS)) },
			func(t *testing.T, f *File) {
				p := mustPin(t, f, 0, testBS, PinOptions{})
				defer p.Unpin()
				if !bytes.Equal(pinBytes(p), pattern(2, 2*testBS)[:testBS]) {
					t.Fatal("pin after overwrite shows the old value")
				}
			}},
		{"punch", func(t *testing.T, s *Store, f *File) {
			if err := f.PunchHole(0, testBS); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, f *File) {
			p := mustPin(t, f, 0, testBS, PinOptions{})
			defer p.Unpin()
			if !allZero(pinBytes(p)) {
				t.Fatal("pin after punch shows the punched bytes")
			}
		}},
		{"truncate", func(t *testing.T, s *Store, f *File) {
			if err := f.Truncate(testBS / 2); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, f *File) {
			_, err := f.Pin(0, testBS, PinOptions{})
			wantErr(t, err, ErrInvalidRange)
		}},
		{"remove", func(t *testing.T, s *Store, f *File) {
			if err := s.Remove("k"); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, f *File) {
			_, err := f.Pin(0, testBS, PinOptions{})
			wantErr(t, err, ErrNotFound)
		}},
	}
	for _, c := range cases {
		t.Run("a pin after "+c.name+" sees the new layout", func(t *testing.T) {
			s := newStore(t, 1<<20, nil)
			mustPut(t, s, "k", pattern(1, 2*testBS))
			f := mustOpen(t, s, "k")
			p := mustPin(t, f, 0, testBS, PinOptions{}) // fills the cache
			if err := p.Unpin(); err != nil {
				t.Fatal(err)
			}
			if _, _, ok := f.in.pinCache.load(); !ok {
				t.Fatal("the pin did not fill the cache: the test proves nothing")
			}
			c.brk(t, s, f)
			c.check(t, f)
			mustCheck(t, s)
		})
	}
}

func TestPinUnpinAllocatesNothing(t *testing.T) {
	if lockcheckBuild {
		t.Skip("the lock-order hooks of the lockcheck build allocate")
	}
	s := newStore(t, 1<<20, nil)
	mustPut(t, s, "k", pattern(1, 4*testBS))
	f := mustOpen(t, s, "k")
	opts := PinOptions{Label: "dma"}
	allocs := testing.AllocsPerRun(1000, func() {
		p, err := f.Pin(testBS, testBS, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Unpin(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Pin+Unpin of one block allocates %.1f times, want 0", allocs)
	}
}
