package dax

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/daxstore/daxstore/busyextent"
)

// journalBusy returns how many busy records the journal holds and how many
// runs they hold.
func journalBusy(t *testing.T, s *Store) (records, runs int) {
	t.Helper()
	st, err := s.jnl.Load()
	if err != nil {
		t.Fatal(err)
	}
	return st.BusyRecords, len(st.Busy)
}

// TestBreakOfScatteredPinsJournalsOneBusyRecord checks that every breaking
// operation journals the scattered pinned blocks it detaches as one
// run-list record, not one record per block, that releases shrink that
// record and the last one deletes it, and that each run still shows its
// owner and labels.
func TestBreakOfScatteredPinsJournalsOneBusyRecord(t *testing.T) {
	const blocks, every = 256, 4 // 64 pinned blocks, none touching: one record's worth
	if blocks/every > busyextent.MaxRuns {
		t.Fatalf("%d runs do not fit one record of at most %d", blocks/every, busyextent.MaxRuns)
	}
	ops := []struct {
		name   string
		reason string
		op     func(f *File) error
	}{
		{"punch", "punch", func(f *File) error { return f.PunchHole(0, blocks*testBS) }},
		{"truncate", "truncate", func(f *File) error { return f.Truncate(0) }},
		{"zero-range", "zero", func(f *File) error { return f.ZeroRange(0, blocks*testBS) }},
		{"remove", "remove", func(f *File) error { return f.s.Remove("big") }},
		{"overwrite", "overwrite", func(f *File) error { return f.s.Put("big", []byte("new")) }},
	}
	for _, c := range ops {
		t.Run(c.name+" of a file with 64 scattered pinned blocks writes one busy record", func(t *testing.T) {
			s := newStore(t, 2*blocks*testBS, nil)
			mustPut(t, s, "big", pattern(7, blocks*testBS))
			f := mustOpen(t, s, "big")
			var pins []Pin
			for b := int64(0); b < blocks; b += every {
				pins = append(pins, mustPin(t, f, b*testBS, testBS, PinOptions{Label: fmt.Sprint("pin ", b%3)}))
			}
			before := time.Now()
			if err := c.op(f); err != nil {
				t.Fatal(err)
			}
			after := time.Now()
			mustCheck(t, s)
			if recs, runs := journalBusy(t, s); recs != 1 || runs != len(pins) {
				t.Fatalf("the journal holds %d busy records of %d runs, want 1 record of %d", recs, runs, len(pins))
			}
			busy := s.Busy()
			if len(busy) != len(pins) {
				t.Fatalf("Busy lists %d extents, want %d", len(busy), len(pins))
			}
			for i, b := range busy {
				want := fmt.Sprint("pin ", (int64(i)*every)%3)
				if b.Key != "big" || b.Reason != c.reason || b.Blocks != 1 || b.Pins != 1 ||
					len(b.Labels) != 1 || b.Labels[0] != want || b.FileOffset != int64(i)*every*testBS {
					t.Fatalf("busy extent %d is %+v, want one block of %q at %d by %q for %s",
						i, b, "big", int64(i)*every*testBS, want, c.reason)
				}
				if b.DetachedAt.Before(before) || b.DetachedAt.After(after) {
					t.Fatalf("busy extent %d detached at %v, not during the %s (%v to %v)", i, b.DetachedAt, c.name, before, after)
				}
			}
			// Releases shrink the record; the last one deletes it.
			for _, p := range pins[:len(pins)/2] {
				if err := p.Unpin(); err != nil {
					t.Fatal(err)
				}
			}
			settle(t, s)
			mustCheck(t, s)
			if recs, runs := journalBusy(t, s); recs != 1 || runs != len(pins)-len(pins)/2 {
				t.Fatalf("after half the releases the journal holds %d busy records of %d runs, want 1 of %d",
					recs, runs, len(pins)-len(pins)/2)
			}
			for _, p := range pins[len(pins)/2:] {
				if err := p.Unpin(); err != nil {
					t.Fatal(err)
				}
			}
			settle(t, s)
			mustCheck(t, s)
			if recs, runs := journalBusy(t, s); recs != 0 || runs != 0 {
				t.Fatalf("after every release the journal holds %d busy records of %d runs", recs, runs)
			}
		})
	}
}

// TestOpenFreesEveryRunOfABusyRunList checks that recovery frees every run
// of a run-list record left by a process that died with pins out.
func TestOpenFreesEveryRunOfABusyRunList(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{Size: 128 * testBS, NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "big", pattern(3, 64*testBS))
	f := mustOpen(t, s, "big")
	for b := int64(0); b < 64; b += 2 {
		mustPin(t, f, b*testBS, testBS, PinOptions{Label: "dma"})
	}
	if err := f.PunchHole(0, 64*testBS); err != nil {
		t.Fatal(err)
	}
	free := mustStats(t, s).FreeBlocks
	// The pins die with the process: a forced close leaves the record.
	if err := s.CloseWith(context.Background(), CloseOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, &Options{NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	defer closeForce(s)
	mustCheck(t, s)
	if recs, runs := journalBusy(t, s); recs != 0 || runs != 0 {
		t.Fatalf("after Open the journal holds %d busy records of %d runs", recs, runs)
	}
	if got := mustStats(t, s).FreeBlocks; got != free+32 {
		t.Fatalf("%d free blocks after Open, want %d + the 32 busy ones", got, free)
	}
}
