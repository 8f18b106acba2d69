package busyextent

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/daxstore/daxstore/pmem"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func ext(start, n uint64) pmem.Extent { return pmem.Extent{Start: pmem.Block(start), Len: n} }

// busy builds a busy extent owned by key, mapped at file block fb.
func busy(start, n uint64, key string, fb uint64, labels ...string) Extent {
	return Extent{
		Extent:     ext(start, n),
		Key:        key,
		Ino:        uint64(len(key)),
		FileBlock:  fb,
		Reason:     ReasonPunch,
		DetachedAt: t0.Add(time.Duration(start) * time.Second),
		Pins:       uint64(len(labels)),
		Labels:     labels,
	}
}

func mustSet(t testing.TB, xs ...Extent) *Set {
	t.Helper()
	s := NewSet()
	for _, x := range xs {
		if _, err := s.Add(x); err != nil {
			t.Fatalf("Add(%v): %v", x, err)
		}
	}
	return s
}

func mustCheck(t testing.TB, s *Set) {
	t.Helper()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// normalize turns nil and empty slices into nil so that reflect.DeepEqual
// compares extents by content.
func normalize(xs []Extent) []Extent {
	if len(xs) == 0 {
		return nil
	}
	out := make([]Extent, len(xs))
	for i, x := range xs {
		if len(x.Labels) == 0 {
			x.Labels = nil
		}
		out[i] = x
	}
	return out
}

func sameExtents(t testing.TB, what string, got, want []Extent) {
	t.Helper()
	if !reflect.DeepEqual(normalize(got), normalize(want)) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}

func TestRemoveTrimsAndSplits(t *testing.T) {
	a := busy(10, 10, "a", 100, "dma")
	b := busy(20, 5, "b", 0, "reader")
	c := busy(30, 4, "c", 7)
	tests := []struct {
		name     string
		remove   pmem.Extent
		released []Extent
		left     []Extent
	}{
		{
			name:     "removing a whole extent leaves its neighbours",
			remove:   ext(20, 5),
			released: []Extent{b},
			left:     []Extent{a, c},
		},
		{
			name:     "removing the head of an extent keeps its tail with FileBlock moved",
			remove:   ext(10, 3),
			released: []Extent{a.piece(ext(10, 3))},
			left:     []Extent{busy(13, 7, "a", 103, "dma").withTime(a.DetachedAt), b, c},
		},
		{
			name:     "removing the tail of an extent keeps its head unchanged",
			remove:   ext(17, 3),
			released: []Extent{busy(17, 3, "a", 107, "dma").withTime(a.DetachedAt)},
			left:     []Extent{busy(10, 7, "a", 100, "dma").withTime(a.DetachedAt), b, c},
		},
		{
			name:     "removing the middle of an extent splits it in two",
			remove:   ext(12, 5),
			released: []Extent{busy(12, 5, "a", 102, "dma").withTime(a.DetachedAt)},
			left: []Extent{
				busy(10, 2, "a", 100, "dma").withTime(a.DetachedAt),
				busy(17, 3, "a", 107, "dma").withTime(a.DetachedAt),
				b, c,
			},
		},
		{
			name:   "removing across two adjacent extents trims both and keeps each owner",
			remove: ext(15, 7),
			released: []Extent{
				busy(15, 5, "a", 105, "dma").withTime(a.DetachedAt),
				busy(20, 2, "b", 0, "reader").withTime(b.DetachedAt),
			},
			left: []Extent{
				busy(10, 5, "a", 100, "dma").withTime(a.DetachedAt),
				busy(22, 3, "b", 2, "reader").withTime(b.DetachedAt),
				c,
			},
		},
		{
			name:     "removing two whole adjacent extents at once leaves the third",
			remove:   ext(10, 15),
			released: []Extent{a, b},
			left:     []Extent{c},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSet(t, a, b, c)
			gen := s.Generation()
			released, d, err := s.Remove(tt.remove)
			if err != nil {
				t.Fatalf("Remove(%v): %v", tt.remove, err)
			}
			mustCheck(t, s)
			sameExtents(t, "released", released, tt.released)
			sameExtents(t, "left", s.All(), tt.left)
			if s.Generation() != gen+1 {
				t.Fatalf("generation %d after Remove, want %d", s.Generation(), gen+1)
			}
			var want uint64
			for _, x := range tt.left {
				want += x.Len
			}
			if s.Blocks() != want || s.Len() != len(tt.left) {
				t.Fatalf("Blocks, Len = %d, %d; want %d, %d", s.Blocks(), s.Len(), want, len(tt.left))
			}
			model := records(t, a, b, c)
			applyDelta(t, model, d)
			sameExtents(t, "journal records after the delta", modelList(model), s.All())
		})
	}
}

func (x Extent) withTime(at time.Time) Extent {
	x.DetachedAt = at
	return x
}

// records returns a journal model holding the records of xs, one each.
func records(t testing.TB, xs ...Extent) map[pmem.Block]Record {
	m := map[pmem.Block]Record{}
	for _, x := range xs {
		applyDelta(t, m, Delta{Written: []Record{{Ticket: x.Ticket, Key: x.Key, Ino: x.Ino, Reason: x.Reason,
			DetachedAt: x.DetachedAt, Runs: []Run{{Extent: x.Extent, FileBlock: x.FileBlock, Pins: x.Pins, Labels: x.Labels}}}}})
	}
	return m
}

// applyDelta applies d to a journal model the way the journal does: delete
// every Deleted record, then write every Written one over whatever its key
// holds. Deleting a missing record, or writing a record that is not a valid
// run list, is a bug in the delta.
func applyDelta(t testing.TB, m map[pmem.Block]Record, d Delta) {
	t.Helper()
	for _, k := range d.Deleted {
		if _, ok := m[k]; !ok {
			t.Fatalf("delta deletes record %d that does not exist", k)
		}
		delete(m, k)
	}
	for _, r := range d.Written {
		if len(r.Runs) == 0 || len(r.Runs) > MaxRuns {
			t.Fatalf("delta writes a record of %d runs", len(r.Runs))
		}
		distinct := map[string]bool{}
		for i, u := range r.Runs {
			if i > 0 && u.Start < r.Runs[i-1].End() {
				t.Fatalf("delta writes a record with run %v after %v", u.Extent, r.Runs[i-1].Extent)
			}
			for _, l := range u.Labels {
				distinct[l] = true
			}
		}
		if len(distinct) > MaxLabels {
			t.Fatalf("delta writes a record of %d distinct labels", len(distinct))
		}
		r.Runs = slices.Clone(r.Runs) // the journal keeps its own copy
		m[r.Runs[0].Start] = r
	}
}

// modelList returns the runs of every record of m as extents, in start
// order; records that overlap are a bug.
func modelList(m map[pmem.Block]Record) []Extent {
	s := NewSet()
	for _, r := range m {
		for i := range r.Runs {
			if _, err := s.Add(r.extent(i)); err != nil {
				panic(fmt.Sprintf("journal model holds overlapping records: %v", err))
			}
		}
	}
	return s.All()
}

func TestRemoveRunsNetsTheDelta(t *testing.T) {
	a := busy(10, 20, "a", 0, "p1", "p2")
	b := busy(40, 5, "b", 3)
	s := mustSet(t, a, b)
	model := records(t, a, b)
	runs := []pmem.Extent{ext(25, 2), ext(12, 2), ext(40, 5), ext(18, 3), ext(14, 1)}
	released, d, err := s.RemoveRuns(runs)
	if err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
	applyDelta(t, model, d)
	sameExtents(t, "journal records after the delta", modelList(model), s.All())
	sameExtents(t, "left", s.All(), []Extent{
		a.piece(ext(10, 2)), a.piece(ext(15, 3)), a.piece(ext(21, 4)), a.piece(ext(27, 3)),
	})
	sameExtents(t, "released", released, []Extent{
		a.piece(ext(12, 2)), a.piece(ext(14, 1)), a.piece(ext(18, 3)), a.piece(ext(25, 2)), b,
	})
	// a's record loses runs and keeps its key; b's is gone.
	if !slices.Equal(d.Deleted, []pmem.Block{40}) || len(d.Written) != 1 || len(d.Written[0].Runs) != 4 {
		t.Fatalf("delta deletes %v and writes %d records, want [40] and a's with 4 runs: %+v", d.Deleted, len(d.Written), d)
	}
	if len(model) != s.Records() || s.Records() != 1 {
		t.Fatalf("the journal holds %d records, the set %d; want 1", len(model), s.Records())
	}
}

func TestAddRejectsAndChangesNothing(t *testing.T) {
	existing := []Extent{busy(10, 10, "a", 0), busy(30, 5, "b", 0)}
	bad := busy(0, 1, "x", 0)
	bad.Reason = 0
	tests := []struct {
		name string
		x    Extent
		want error
	}{
		{"an empty extent is invalid", busy(50, 0, "x", 0), ErrInvalid},
		{"an extent past the last block number is invalid", busy(1<<63, 1<<63, "x", 0), ErrInvalid},
		{"an extent ending exactly at 2^64 is invalid", busy(1<<63+1<<62, 1<<62, "x", 0), ErrInvalid},
		{"an extent without a reason is invalid", bad, ErrInvalid},
		{"an extent with an unknown reason is invalid", func() Extent { x := busy(0, 1, "x", 0); x.Reason = 9; return x }(), ErrInvalid},
		{"an extent equal to a busy one overlaps", busy(10, 10, "x", 0), ErrOverlap},
		{"an extent overlapping the head of a busy one overlaps", busy(5, 6, "x", 0), ErrOverlap},
		{"an extent overlapping the tail of a busy one overlaps", busy(19, 5, "x", 0), ErrOverlap},
		{"an extent inside a busy one overlaps", busy(12, 1, "x", 0), ErrOverlap},
		{"an extent spanning two busy ones overlaps", busy(0, 100, "x", 0), ErrOverlap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSet(t, existing...)
			gen := s.Generation()
			d, err := s.Add(tt.x)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Add(%v) = %v, want %v", tt.x, err, tt.want)
			}
			if !d.Empty() {
				t.Fatalf("failed Add returned a delta: %+v", d)
			}
			sameExtents(t, "set after failed Add", s.All(), existing)
			if s.Blocks() != 15 || s.Generation() != gen {
				t.Fatalf("failed Add changed Blocks to %d or generation to %d", s.Blocks(), s.Generation())
			}
			mustCheck(t, s)
		})
	}
	t.Run("adjacent extents of different owners are kept apart", func(t *testing.T) {
		s := mustSet(t, existing...)
		if _, err := s.Add(busy(20, 10, "c", 0)); err != nil {
			t.Fatal(err)
		}
		if s.Len() != 3 || s.Blocks() != 25 {
			t.Fatalf("Len, Blocks = %d, %d; want 3, 25", s.Len(), s.Blocks())
		}
	})
}

func TestRemoveRejectsAndChangesNothing(t *testing.T) {
	existing := []Extent{busy(10, 10, "a", 0), busy(20, 5, "b", 0), busy(30, 5, "c", 0)}
	tests := []struct {
		name string
		runs []pmem.Extent
		want error
	}{
		{"an empty run is invalid", []pmem.Extent{ext(10, 0)}, ErrInvalid},
		{"a run past the last block number is invalid", []pmem.Extent{ext(1<<63, 1<<63)}, ErrInvalid},
		{"overlapping runs are invalid", []pmem.Extent{ext(10, 3), ext(12, 3)}, ErrInvalid},
		{"a run over free blocks is not busy", []pmem.Extent{ext(0, 5)}, ErrNotBusy},
		{"a run starting before a busy extent is not busy", []pmem.Extent{ext(9, 5)}, ErrNotBusy},
		{"a run ending after a busy extent is not busy", []pmem.Extent{ext(30, 6)}, ErrNotBusy},
		{"a run across a gap between busy extents is not busy", []pmem.Extent{ext(22, 10)}, ErrNotBusy},
		{"one bad run among good ones fails them all", []pmem.Extent{ext(10, 2), ext(26, 1), ext(30, 1)}, ErrNotBusy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSet(t, existing...)
			gen := s.Generation()
			released, d, err := s.RemoveRuns(tt.runs)
			if !errors.Is(err, tt.want) {
				t.Fatalf("RemoveRuns(%v) = %v, want %v", tt.runs, err, tt.want)
			}
			if released != nil || !d.Empty() {
				t.Fatalf("failed RemoveRuns returned %v and %+v", released, d)
			}
			sameExtents(t, "set after failed Remove", s.All(), existing)
			if s.Blocks() != 20 || s.Generation() != gen {
				t.Fatalf("failed Remove changed Blocks to %d or generation to %d", s.Blocks(), s.Generation())
			}
			mustCheck(t, s)
		})
	}
	t.Run("removing no runs changes nothing and wakes nobody", func(t *testing.T) {
		s := mustSet(t, existing...)
		released, d, err := s.RemoveRuns(nil)
		if err != nil || released != nil || !d.Empty() || s.Generation() != 0 {
			t.Fatalf("RemoveRuns(nil) = %v, %+v, %v at generation %d", released, d, err, s.Generation())
		}
	})
}

func TestQueries(t *testing.T) {
	s := mustSet(t, busy(10, 10, "a", 0), busy(20, 5, "b", 0), busy(30, 5, "c", 0))
	tests := []struct {
		name        string
		e           pmem.Extent
		overlapping []string
		covers      bool
	}{
		{"a free range overlaps nothing", ext(0, 10), nil, false},
		{"a range touching an extent's end overlaps nothing", ext(25, 5), nil, false},
		{"a range inside one extent is covered", ext(12, 3), []string{"a"}, true},
		{"a range across adjacent extents is covered", ext(15, 10), []string{"a", "b"}, true},
		{"a range across a gap overlaps but is not covered", ext(24, 7), []string{"b", "c"}, false},
		{"a range reaching into the last extent overlaps it", ext(34, 100), []string{"c"}, false},
		{"a range around everything overlaps all", ext(0, 1000), []string{"a", "b", "c"}, false},
		{"an empty range overlaps nothing and is not covered", ext(12, 0), nil, false},
		{"an invalid range overlaps nothing", ext(1<<63, 1<<63), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var keys []string
			for _, x := range s.Overlapping(tt.e) {
				keys = append(keys, x.Key)
			}
			if !reflect.DeepEqual(keys, tt.overlapping) {
				t.Fatalf("Overlapping(%v) keys = %v, want %v", tt.e, keys, tt.overlapping)
			}
			if got := s.Overlaps(tt.e); got != (len(tt.overlapping) > 0) {
				t.Fatalf("Overlaps(%v) = %v", tt.e, got)
			}
			if got := s.Covers(tt.e); got != tt.covers {
				t.Fatalf("Covers(%v) = %v, want %v", tt.e, got, tt.covers)
			}
		})
	}
}

func TestOldest(t *testing.T) {
	t.Run("an empty set has no oldest extent", func(t *testing.T) {
		if _, ok := NewSet().Oldest(); ok {
			t.Fatal("Oldest reported an extent")
		}
	})
	t.Run("the earliest detach time wins regardless of position", func(t *testing.T) {
		old := busy(50, 1, "old", 0, "pin-x")
		old.DetachedAt = t0.Add(-time.Hour)
		s := mustSet(t, busy(10, 1, "a", 0), old, busy(90, 1, "c", 0))
		got, ok := s.Oldest()
		if !ok || got.Key != "old" || got.Labels[0] != "pin-x" {
			t.Fatalf("Oldest = %v, %v", got, ok)
		}
	})
}

func TestExtentsAreDeepCopies(t *testing.T) {
	labels := []string{"dma"}
	s := mustSet(t, busy(10, 10, "a", 0, labels...))
	labels[0] = "changed by caller"
	all := s.All()
	all[0].Labels[0] = "changed through All"
	for _, x := range s.Overlapping(ext(10, 1)) {
		x.Labels[0] = "changed through Overlapping"
	}
	released, d, err := s.Remove(ext(12, 1))
	if err != nil {
		t.Fatal(err)
	}
	released[0].Labels[0] = "changed through released"
	if d.Empty() {
		t.Fatal("a removal wrote no record")
	}
	for _, x := range s.All() {
		if x.Labels[0] != "dma" {
			t.Fatalf("the set's labels were changed to %q", x.Labels[0])
		}
	}
}
