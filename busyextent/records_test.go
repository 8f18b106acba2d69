package busyextent

import (
	"fmt"
	"slices"
	"testing"

	"github.com/daxstore/daxstore/pmem"
)

// scattered returns n one-block extents of one break of key "big", every
// other block from block 10, all sharing one label slice as a break builds
// them.
func scattered(n int) []Extent {
	labels := []string{"bench"}
	xs := make([]Extent, n)
	for i := range xs {
		xs[i] = busy(10+2*uint64(i), 1, "big", 2*uint64(i))
		xs[i].DetachedAt = t0
		xs[i].Ticket = 7
		xs[i].Pins, xs[i].Labels = 1, labels
	}
	return xs
}

func TestAddRunsWritesOneRecordPerRunList(t *testing.T) {
	t.Run("a break of 3000 scattered runs writes one record per MaxRuns runs", func(t *testing.T) {
		s := NewSet()
		xs := scattered(3000)
		d, err := s.AddRuns(xs)
		if err != nil {
			t.Fatal(err)
		}
		mustCheck(t, s)
		want := (3000 + MaxRuns - 1) / MaxRuns
		if len(d.Written) != want || len(d.Deleted) != 0 || s.Records() != want || s.Len() != 3000 {
			t.Fatalf("wrote %d records, deleted %d; set holds %d records of %d runs; want %d records of 3000",
				len(d.Written), len(d.Deleted), s.Records(), s.Len(), want)
		}
		model := map[pmem.Block]Record{}
		applyDelta(t, model, d)
		sameExtents(t, "replayed journal", modelList(model), s.All())
		// One copy of the labels for the whole break, not one per run.
		s.tree.Ascend(func(x item) bool {
			first := d.Written[0].Runs[0].Labels
			if got := x.rec.Runs[x.rec.find(x.Start)].Labels; &got[0] != &first[0] {
				t.Fatalf("run %v has its own copy of the labels", x.Extent)
			}
			return true
		})
		if &d.Written[0].Runs[0].Labels[0] == &xs[0].Labels[0] {
			t.Fatal("the set shares the caller's labels")
		}
	})
	t.Run("runs of more than MaxLabels distinct labels split the record", func(t *testing.T) {
		xs := scattered(MaxLabels + 1)
		for i := range xs {
			xs[i].Labels = []string{fmt.Sprint("pin ", i)}
		}
		s := NewSet()
		d, err := s.AddRuns(xs)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Written) != 2 || len(d.Written[0].Runs) != MaxLabels {
			t.Fatalf("wrote %d records, the first of %d runs; want 2, the first of %d", len(d.Written), len(d.Written[0].Runs), MaxLabels)
		}
		mustCheck(t, s)
	})
	t.Run("runs of two owners go to two records", func(t *testing.T) {
		xs := scattered(4)
		xs[1].Key, xs[3].Key = "other", "other"
		s := NewSet()
		d, err := s.AddRuns(xs)
		if err != nil {
			t.Fatal(err)
		}
		// In start order the owners alternate: each change starts a record.
		if len(d.Written) != 4 || s.Records() != 4 {
			t.Fatalf("wrote %d records, want 4", len(d.Written))
		}
		mustCheck(t, s)
	})
}

func TestRemoveRunsShrinksTheRecordOfABreak(t *testing.T) {
	s := NewSet()
	xs := scattered(5) // blocks 10, 12, 14, 16, 18
	d, err := s.AddRuns(xs)
	if err != nil {
		t.Fatal(err)
	}
	model := map[pmem.Block]Record{}
	applyDelta(t, model, d)
	steps := []struct {
		name    string
		runs    []pmem.Extent
		deleted []pmem.Block
		written []pmem.Block // the first start of each record written
		left    int          // runs left in the record
	}{
		{"releasing middle runs rewrites the record under its key", []pmem.Extent{ext(12, 1), ext(16, 1)}, nil, []pmem.Block{10}, 3},
		{"releasing the first run moves the record to a new key", []pmem.Extent{ext(10, 1)}, []pmem.Block{10}, []pmem.Block{14}, 2},
		{"releasing the rest deletes the record", []pmem.Extent{ext(14, 1), ext(18, 1)}, []pmem.Block{14}, nil, 0},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			_, d, err := s.RemoveRuns(st.runs)
			if err != nil {
				t.Fatal(err)
			}
			mustCheck(t, s)
			var written []pmem.Block
			for _, r := range d.Written {
				written = append(written, r.Runs[0].Start)
				if len(r.Runs) != st.left {
					t.Fatalf("the record keeps %d runs, want %d", len(r.Runs), st.left)
				}
			}
			if !slices.Equal(d.Deleted, st.deleted) || !slices.Equal(written, st.written) {
				t.Fatalf("delta deletes %v and writes %v; want %v and %v", d.Deleted, written, st.deleted, st.written)
			}
			applyDelta(t, model, d)
			sameExtents(t, "replayed journal", modelList(model), s.All())
			if len(model) != s.Records() {
				t.Fatalf("the journal holds %d records, the set %d", len(model), s.Records())
			}
		})
	}
}
