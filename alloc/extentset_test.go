package alloc

// This file tests ExtentSet: coalescing and splitting, the Deltas that map
// changes onto journal records, and that every error leaves the set as it was.

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/daxstore/daxstore/pmem"
)

func ext(start, n uint64) pmem.Extent { return pmem.Extent{Start: pmem.Block(start), Len: n} }

func exts(es ...pmem.Extent) []pmem.Extent { return es }

// setOf builds a set from disjoint, non-touching extents.
func setOf(t *testing.T, es ...pmem.Extent) *ExtentSet {
	t.Helper()
	s := NewExtentSet()
	for _, e := range es {
		if _, err := s.Insert(e); err != nil {
			t.Fatalf("setup: %v", err)
		}
	}
	if s.Count() != len(es) {
		t.Fatalf("setup: extents %v touch, set has %d members", es, s.Count())
	}
	return s
}

// recordModel is the journal as a Delta sees it: records keyed by extent start.
type recordModel map[pmem.Block]uint64

func modelOf(es []pmem.Extent) recordModel {
	m := recordModel{}
	for _, e := range es {
		m[e.Start] = e.Len
	}
	return m
}

// apply deletes every Removed record, which must exist with that length, then
// writes every Added record.
func (m recordModel) apply(t *testing.T, d Delta) {
	t.Helper()
	for _, r := range d.Removed {
		if got, ok := m[r.Start]; !ok || got != r.Len {
			t.Fatalf("delta removes %v, but the record at %d is (%d, present %v)", r, r.Start, got, ok)
		}
		delete(m, r.Start)
	}
	for _, a := range d.Added {
		m[a.Start] = a.Len
	}
}

func (m recordModel) extents() []pmem.Extent {
	var out []pmem.Extent
	for s, n := range m {
		out = append(out, pmem.Extent{Start: s, Len: n})
	}
	slices.SortFunc(out, func(a, b pmem.Extent) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	return out
}

func mustCheck(t *testing.T, s *ExtentSet) {
	t.Helper()
	if err := s.check(); err != nil {
		t.Fatalf("invariant broken: %v; members %v", err, s.Extents())
	}
}

func TestExtentSetChanges(t *testing.T) {
	const last = math.MaxUint64
	tests := []struct {
		name    string
		initial []pmem.Extent
		insert  bool // Insert if true, Remove otherwise
		e       pmem.Extent
		want    []pmem.Extent
		delta   Delta
		wantErr error
	}{
		{name: "inserting into an empty set adds one member", insert: true,
			e: ext(10, 5), want: exts(ext(10, 5)), delta: Delta{Added: exts(ext(10, 5))}},
		{name: "inserting block 0 works", insert: true,
			e: ext(0, 1), want: exts(ext(0, 1)), delta: Delta{Added: exts(ext(0, 1))}},
		{name: "inserting up to the last block number works", insert: true,
			e: ext(last-5, 5), want: exts(ext(last-5, 5)), delta: Delta{Added: exts(ext(last-5, 5))}},
		{name: "inserting past a gap keeps two members", insert: true, initial: exts(ext(10, 5)),
			e: ext(16, 4), want: exts(ext(10, 5), ext(16, 4)), delta: Delta{Added: exts(ext(16, 4))}},
		{name: "inserting right after a member rewrites that member longer", insert: true, initial: exts(ext(10, 5)),
			e: ext(15, 5), want: exts(ext(10, 10)),
			delta: Delta{Removed: exts(ext(10, 5)), Added: exts(ext(10, 10))}},
		{name: "inserting right before a member replaces it with one starting earlier", insert: true, initial: exts(ext(10, 5)),
			e: ext(5, 5), want: exts(ext(5, 10)),
			delta: Delta{Removed: exts(ext(10, 5)), Added: exts(ext(5, 10))}},
		{name: "inserting into the exact gap between two members merges all three", insert: true,
			initial: exts(ext(0, 5), ext(10, 5), ext(30, 1)),
			e:       ext(5, 5), want: exts(ext(0, 15), ext(30, 1)),
			delta: Delta{Removed: exts(ext(0, 5), ext(10, 5)), Added: exts(ext(0, 15))}},
		{name: "inserting an empty extent fails", insert: true, initial: exts(ext(10, 5)),
			e: ext(20, 0), wantErr: ErrInvalid},
		{name: "inserting an extent that wraps past the last block fails", insert: true, initial: exts(ext(10, 5)),
			e: ext(last-5, 6), wantErr: ErrInvalid},
		{name: "inserting a member again fails", insert: true, initial: exts(ext(10, 5)),
			e: ext(10, 5), wantErr: ErrOverlap},
		{name: "inserting over a member's first block fails", insert: true, initial: exts(ext(10, 5)),
			e: ext(5, 6), wantErr: ErrOverlap},
		{name: "inserting over a member's last block fails", insert: true, initial: exts(ext(10, 5)),
			e: ext(14, 6), wantErr: ErrOverlap},
		{name: "inserting inside a member fails", insert: true, initial: exts(ext(10, 5)),
			e: ext(11, 2), wantErr: ErrOverlap},
		{name: "inserting around a whole member fails", insert: true, initial: exts(ext(10, 5), ext(30, 5)),
			e: ext(20, 20), wantErr: ErrOverlap},

		{name: "removing a whole member deletes its record", initial: exts(ext(10, 5), ext(20, 5)),
			e: ext(10, 5), want: exts(ext(20, 5)), delta: Delta{Removed: exts(ext(10, 5))}},
		{name: "removing the head of a member leaves its tail", initial: exts(ext(10, 10)),
			e: ext(10, 3), want: exts(ext(13, 7)),
			delta: Delta{Removed: exts(ext(10, 10)), Added: exts(ext(13, 7))}},
		{name: "removing the tail of a member rewrites it shorter", initial: exts(ext(10, 10)),
			e: ext(17, 3), want: exts(ext(10, 7)),
			delta: Delta{Removed: exts(ext(10, 10)), Added: exts(ext(10, 7))}},
		{name: "removing the middle of a member splits it in two", initial: exts(ext(10, 10)),
			e: ext(12, 3), want: exts(ext(10, 2), ext(15, 5)),
			delta: Delta{Removed: exts(ext(10, 10)), Added: exts(ext(10, 2), ext(15, 5))}},
		{name: "removing the last block number works", initial: exts(ext(last-5, 5)),
			e: ext(last-1, 1), want: exts(ext(last-5, 4)),
			delta: Delta{Removed: exts(ext(last-5, 5)), Added: exts(ext(last-5, 4))}},
		{name: "removing an empty extent fails", initial: exts(ext(10, 10)),
			e: ext(12, 0), wantErr: ErrInvalid},
		{name: "removing an extent that wraps past the last block fails", initial: exts(ext(last-5, 5)),
			e: ext(last-5, 6), wantErr: ErrInvalid},
		{name: "removing blocks that are not members fails", initial: exts(ext(10, 10)),
			e: ext(30, 2), wantErr: ErrNotCovered},
		{name: "removing blocks that run past a member's end fails", initial: exts(ext(10, 10)),
			e: ext(15, 10), wantErr: ErrNotCovered},
		{name: "removing blocks that start before a member fails", initial: exts(ext(10, 10)),
			e: ext(5, 10), wantErr: ErrNotCovered},
		{name: "removing a range spanning the gap between two members fails", initial: exts(ext(10, 5), ext(16, 5)),
			e: ext(12, 6), wantErr: ErrNotCovered},
		{name: "removing from an empty set fails",
			e: ext(0, 1), wantErr: ErrNotCovered},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := setOf(t, tc.initial...)
			before, beforeBlocks := s.Extents(), s.Blocks()
			var d Delta
			var err error
			if tc.insert {
				d, err = s.Insert(tc.e)
			} else {
				d, err = s.Remove(tc.e)
			}
			mustCheck(t, s)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error = %v, want %v", err, tc.wantErr)
				}
				if got := s.Extents(); !slices.Equal(got, before) || s.Blocks() != beforeBlocks {
					t.Fatalf("failed call changed the set: %v (%d blocks), was %v (%d blocks)", got, s.Blocks(), before, beforeBlocks)
				}
				if len(d.Removed) != 0 || len(d.Added) != 0 {
					t.Fatalf("failed call returned delta %+v", d)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got := s.Extents(); !slices.Equal(got, tc.want) {
				t.Fatalf("members = %v, want %v", got, tc.want)
			}
			if !slices.Equal(d.Removed, tc.delta.Removed) || !slices.Equal(d.Added, tc.delta.Added) {
				t.Fatalf("delta = %+v, want %+v", d, tc.delta)
			}
			m := modelOf(before)
			m.apply(t, d)
			if got := m.extents(); !slices.Equal(got, s.Extents()) {
				t.Fatalf("records after delta = %v, set = %v", got, s.Extents())
			}
		})
	}
}

func TestExtentSetQueries(t *testing.T) {
	s := setOf(t, ext(10, 5), ext(20, 5))
	tests := []struct {
		name     string
		e        pmem.Extent
		covers   bool
		overlaps bool
	}{
		{"an empty extent is covered and overlaps nothing", ext(12, 0), true, false},
		{"a whole member is covered", ext(10, 5), true, true},
		{"a range inside a member is covered", ext(11, 3), true, true},
		{"a range running past a member's end only overlaps", ext(13, 4), false, true},
		{"a range starting before a member only overlaps", ext(8, 4), false, true},
		{"a range spanning the gap only overlaps", ext(14, 7), false, true},
		{"the gap between members neither", ext(15, 5), false, false},
		{"a range around a member only overlaps", ext(17, 20), false, true},
		{"a range after all members neither", ext(25, 100), false, false},
		{"a range before all members neither", ext(0, 10), false, false},
		{"a range wrapping past the last block overlaps what it reaches", ext(12, math.MaxUint64), false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.Covers(tc.e); got != tc.covers {
				t.Errorf("Covers(%v) = %v, want %v", tc.e, got, tc.covers)
			}
			if got := s.Overlaps(tc.e); got != tc.overlaps {
				t.Errorf("Overlaps(%v) = %v, want %v", tc.e, got, tc.overlaps)
			}
		})
	}
	t.Run("find returns the member holding a block and nothing in a gap", func(t *testing.T) {
		for b, want := range map[pmem.Block]pmem.Extent{9: {}, 10: ext(10, 5), 14: ext(10, 5), 15: {}, 24: ext(20, 5), 25: {}} {
			got, ok := s.Find(b)
			if ok != !want.Empty() || got != want {
				t.Errorf("Find(%d) = %v, %v; want %v", b, got, ok, want)
			}
		}
	})
	t.Run("counts and ascend report the members in order", func(t *testing.T) {
		if s.Blocks() != 10 || s.Count() != 2 {
			t.Fatalf("Blocks, Count = %d, %d; want 10, 2", s.Blocks(), s.Count())
		}
		var seen []pmem.Extent
		s.Ascend(func(e pmem.Extent) bool { seen = append(seen, e); return false })
		if !slices.Equal(seen, exts(ext(10, 5))) {
			t.Fatalf("Ascend stopping after one visited %v", seen)
		}
	})
}

func TestExtentSetZeroValueIsEmptyAndUsable(t *testing.T) {
	var s ExtentSet
	if s.Count() != 0 || s.Blocks() != 0 || s.Overlaps(ext(0, 100)) {
		t.Fatalf("zero set is not empty")
	}
	if _, err := s.Insert(ext(3, 4)); err != nil {
		t.Fatal(err)
	}
	if got := s.Extents(); !slices.Equal(got, exts(ext(3, 4))) {
		t.Fatalf("members = %v", got)
	}
	mustCheck(t, &s)
}

func TestDeltaAppend(t *testing.T) {
	t.Run("a record written then deleted vanishes from both lists", func(t *testing.T) {
		s := setOf(t, ext(100, 1))
		d, _ := s.Insert(ext(10, 5))
		o, err := s.Remove(ext(10, 5))
		if err != nil {
			t.Fatal(err)
		}
		d.Append(o)
		if len(d.Removed) != 0 || len(d.Added) != 0 {
			t.Fatalf("composed delta = %+v, want empty", d)
		}
	})
	t.Run("a record rewritten twice ends with the last value", func(t *testing.T) {
		s := setOf(t, ext(10, 5))
		d, _ := s.Insert(ext(15, 5))
		o, _ := s.Insert(ext(20, 5))
		d.Append(o)
		want := Delta{Removed: exts(ext(10, 5)), Added: exts(ext(10, 15))}
		if !slices.Equal(d.Removed, want.Removed) || !slices.Equal(d.Added, want.Added) {
			t.Fatalf("composed delta = %+v, want %+v", d, want)
		}
	})
	t.Run("unrelated changes concatenate in order", func(t *testing.T) {
		s := NewExtentSet()
		d, _ := s.Insert(ext(10, 5))
		o, _ := s.Insert(ext(30, 5))
		d.Append(o)
		if !slices.Equal(d.Added, exts(ext(10, 5), ext(30, 5))) || len(d.Removed) != 0 {
			t.Fatalf("composed delta = %+v", d)
		}
	})
	t.Run("appending leaves a slice shared with the caller untouched", func(t *testing.T) {
		shared := exts(ext(10, 5), ext(30, 5))
		d := Delta{Added: shared[:1]}
		d.Append(Delta{Removed: exts(ext(10, 5)), Added: exts(ext(50, 1))})
		if shared[1] != ext(30, 5) {
			t.Fatalf("Append wrote into the caller's array: %v", shared)
		}
	})
}

// TestDeltaAppendRandom folds the deltas of random runs of changes and checks
// that applying the fold to the records before the run gives the set after it.
func TestDeltaAppendRandom(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := NewExtentSet()
	var log []string
	for run := 0; run < 300; run++ {
		before := s.Extents()
		var folded Delta
		for i := rng.IntN(12); i >= 0; i-- {
			e := ext(rng.Uint64N(200), 1+rng.Uint64N(8))
			var d Delta
			var err error
			if rng.IntN(2) == 0 {
				d, err = s.Insert(e)
				log = append(log, "insert "+e.String())
			} else {
				d, err = s.Remove(e)
				log = append(log, "remove "+e.String())
			}
			if err != nil {
				continue
			}
			folded.Append(d)
		}
		if err := s.check(); err != nil {
			t.Fatalf("seed %d: %v\nops: %v", seed, err, tail(log, 40))
		}
		m := modelOf(before)
		m.apply(t, folded)
		if got := m.extents(); !slices.Equal(got, s.Extents()) {
			t.Fatalf("seed %d: run %d: folded delta %+v gives %v, set is %v\nops: %v",
				seed, run, folded, got, s.Extents(), tail(log, 40))
		}
	}
}

func tail(log []string, n int) []string {
	if len(log) > n {
		return log[len(log)-n:]
	}
	return log
}
