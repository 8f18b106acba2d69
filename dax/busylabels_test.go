package dax

// Regression tests for busy records of many pins: no number of pins and no
// label Pin accepts may make a break write a record the journal refuses.

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// fullBreaks are the five layout-breaking operations, each over every block of
// key, with the blocks the file still holds once it is done.
var fullBreaks = []struct {
	name       string
	run        func(s *Store, f *File, key string) error
	fileBlocks uint64
}{
	{"Truncate", func(_ *Store, f *File, _ string) error { return f.Truncate(0) }, 0},
	{"PunchHole", func(_ *Store, f *File, _ string) error { return f.PunchHole(0, 2*testBS) }, 0},
	{"ZeroRange", func(_ *Store, f *File, _ string) error { return f.ZeroRange(0, 2*testBS) }, 2},
	{"Remove", func(s *Store, _ *File, key string) error { return s.Remove(key) }, 0},
	{"Put", func(s *Store, _ *File, key string) error { return s.Put(key, pattern(9, 2*testBS)) }, 2},
}

func TestBreakOverManyPinsJournalsABusyRecord(t *testing.T) {
	maxLabel := strings.Repeat("é", MaxLabelLen/2) // MaxLabelLen bytes of UTF-8
	cases := []struct {
		name   string
		pins   int
		label  func(i int) string
		labels int    // distinct labels the busy extent keeps
		only   string // run over this operation alone when set: 100,000 pins cost seconds under -race
	}{
		{"65 unlabelled pins on one block", 65, func(int) string { return "" }, 1, ""},
		{"100,000 unlabelled pins on one block", 100_000, func(int) string { return "" }, 1, "Truncate"},
		{"one pin with a label of MaxLabelLen bytes", 1, func(int) string { return maxLabel }, 1, ""},
		{"200 pins with distinct labels of MaxLabelLen bytes", 200, func(i int) string { return fmt.Sprintf("%04d", i) + maxLabel[4:] }, 64, ""},
	}
	for _, c := range cases {
		for _, op := range fullBreaks {
			if c.only != "" && op.name != c.only {
				continue
			}
			t.Run(op.name+" over "+c.name+" succeeds and frees the blocks after unpin", func(t *testing.T) {
				s := newStore(t, 64*testBS, nil)
				free0 := mustStats(t, s).FreeBlocks
				const key = "k"
				mustPut(t, s, key, pattern(1, 2*testBS))
				f := mustOpen(t, s, key)
				defer f.Close()
				pins := make([]Pin, 0, c.pins)
				for i := range c.pins {
					pins = append(pins, mustPin(t, f, 0, testBS, PinOptions{Label: c.label(i)}))
				}
				if err := op.run(s, f, key); err != nil {
					t.Fatalf("%s: %v", op.name, err)
				}
				if s.hasFailed.Load() {
					t.Fatalf("the store failed: %v", s.failed)
				}
				mustCheck(t, s)
				busy := s.Busy()
				if len(busy) != 1 || busy[0].Pins != uint64(c.pins) || len(busy[0].Labels) != c.labels {
					t.Fatalf("busy = %+v, want one extent of %d pins and %d labels", busy, c.pins, c.labels)
				}
				// The store still takes changes: it did not fail.
				mustPut(t, s, "other", pattern(2, testBS))
				if err := s.Remove("other"); err != nil {
					t.Fatal(err)
				}
				for _, p := range pins {
					if err := p.Unpin(); err != nil {
						t.Fatal(err)
					}
				}
				settle(t, s)
				mustCheck(t, s)
				st := mustStats(t, s)
				if st.BusyBlocks != 0 || st.FreeBlocks != free0-op.fileBlocks {
					t.Fatalf("after unpin: %d busy, %d free blocks, want 0 and %d", st.BusyBlocks, st.FreeBlocks, free0-op.fileBlocks)
				}
			})
		}
	}
}

func TestPinRefusesALabelTheJournalCannotHold(t *testing.T) {
	cases := []struct{ name, label string }{
		{"a label of MaxLabelLen+1 bytes", strings.Repeat("l", MaxLabelLen+1)},
		{"a label of 4 KiB", strings.Repeat("l", 4096)},
		{"a label that is not UTF-8", "dma\xff"},
	}
	for _, c := range cases {
		t.Run("Pin with "+c.name+" fails with ErrInvalidLabel and changes nothing", func(t *testing.T) {
			s := newStore(t, 64*testBS, nil)
			mustPut(t, s, "k", pattern(1, 2*testBS))
			if err := s.Put("hole", nil); err != nil {
				t.Fatal(err)
			}
			hole := mustOpen(t, s, "hole")
			defer hole.Close()
			if err := hole.Truncate(testBS); err != nil {
				t.Fatal(err)
			}
			f := mustOpen(t, s, "k")
			defer f.Close()
			before := snapshot(t, s)
			// The written range takes Pin's fast path, the hole its slow
			// path: both must refuse before taking anything.
			for _, target := range []*File{f, hole} {
				p, err := target.Pin(0, testBS, PinOptions{Label: c.label})
				if err == nil {
					p.Unpin()
					t.Fatalf("Pin of %q accepted %s", target.Key(), c.name)
				}
				wantErr(t, err, ErrInvalidLabel)
			}
			sameState(t, s, before)
			// And nothing a break does afterwards fails the store.
			if err := f.Truncate(0); err != nil {
				t.Fatal(err)
			}
			mustCheck(t, s)
		})
	}
}

func TestPinBeyondMaxPinsPerBlockIsRefused(t *testing.T) {
	const limit = 1000
	s := newStore(t, 64*testBS, nil)
	s.pins.limit = limit // the real limit, 2^31 - 2^20, takes too many pins to reach
	mustPut(t, s, "k", pattern(1, 2*testBS))
	f := mustOpen(t, s, "k")
	defer f.Close()
	var pins []Pin
	for range limit {
		pins = append(pins, mustPin(t, f, 0, testBS, PinOptions{}))
	}
	before := snapshot(t, s)
	for _, r := range []struct{ off, n int64 }{{0, testBS}, {0, 2 * testBS}} {
		p, err := f.Pin(r.off, r.n, PinOptions{Label: "one too many"})
		if err == nil {
			p.Unpin()
			t.Fatalf("pin %d of block 0 accepted", limit+1)
		}
		wantErr(t, err, ErrTooManyPins)
	}
	sameState(t, s, before)
	// Reads take short references past the pin limit.
	got := make([]byte, testBS)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatalf("read of a block at the pin limit: %v", err)
	}
	if err := pins[0].Unpin(); err != nil {
		t.Fatal(err)
	}
	p := mustPin(t, f, 0, testBS, PinOptions{})
	pins[0] = p
	for _, p := range pins {
		if err := p.Unpin(); err != nil {
			t.Fatal(err)
		}
	}
	mustCheck(t, s)
}

func TestUnpinAfterCloseNamesWhatHappened(t *testing.T) {
	t.Run("a second Unpin after Close says ErrUnpinned", func(t *testing.T) {
		s := newStore(t, 64*testBS, nil)
		mustPut(t, s, "k", pattern(1, testBS))
		f := mustOpen(t, s, "k")
		p := mustPin(t, f, 0, testBS, PinOptions{Label: "mine"})
		if err := p.Unpin(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		wantErr(t, p.Unpin(), ErrUnpinned)
		if err := p.Unpin(); errors.Is(err, ErrClosed) {
			t.Fatalf("Unpin = %v, which blames the Close for the holder's own release", err)
		}
		wantErr(t, p.Flush(), ErrUnpinned)
	})
	t.Run("Unpin of a pin a forced Close invalidated says ErrClosed, then ErrUnpinned", func(t *testing.T) {
		s := newStore(t, 64*testBS, nil)
		mustPut(t, s, "k", pattern(1, testBS))
		f := mustOpen(t, s, "k")
		p := mustPin(t, f, 0, testBS, PinOptions{Label: "mine"})
		f.Close()
		if err := s.CloseWith(t0(), CloseOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		wantErr(t, p.Flush(), ErrClosed)
		wantErr(t, p.Unpin(), ErrClosed)
		wantErr(t, p.Unpin(), ErrUnpinned)
	})
}

func TestErrorsOverManyPinsStayShort(t *testing.T) {
	const n = 1000
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "k", pattern(1, 2*testBS))
	f := mustOpen(t, s, "k")
	defer f.Close()
	for i := range n {
		mustPin(t, f, 0, testBS, PinOptions{Label: fmt.Sprint("pin ", i)})
	}
	failErr := f.TruncateWith(t0(), 0, BreakOptions{Policy: PolicyFail})
	wantErr(t, failErr, ErrPinned)
	closeErr := s.Close()
	wantErr(t, closeErr, ErrPinned)
	for _, err := range []error{failErr, closeErr} {
		if len(err.Error()) > 2048 || !strings.Contains(err.Error(), fmt.Sprintf("and %d more pins", n-describedPins)) {
			t.Errorf("error of %d bytes does not count the pins it leaves out: %.300s", len(err.Error()), err)
		}
	}
}

func TestRemovingAPinADrainAlreadyTookKeepsTheRegistry(t *testing.T) {
	// An Unpin that won its race against a forced Close removes its pin
	// after the Close drained the registry: the shard must not lose the
	// pins registered since.
	var r pinRegistry
	p1 := r.add(nil, &pinFields{}, 0)
	r.add(nil, &pinFields{}, 0)
	if n := r.drain(func(*pinRecord) {}); n != 2 {
		t.Fatalf("drained %d pins, want 2", n)
	}
	p3 := r.add(nil, &pinFields{}, 0)
	r.remove(p1.r)
	if r.len() != 1 || r.shards[0].head != p3.r {
		t.Fatalf("after removing a drained pin: %d pins, head %p, want 1 and %p", r.len(), r.shards[0].head, p3.r)
	}
	r.remove(p3.r)
	if r.len() != 0 || r.shards[0].head != nil {
		t.Fatalf("registry not empty: %d pins", r.len())
	}
}
