package busyextent

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/daxstore/daxstore/pmem"
)

var seedFlag = flag.Uint64("busyextent.seed", 0, "seed for TestRandomOpsMatchBlockModel (0: from the clock)")

// owned is what the per-block model knows about one busy block.
type owned struct {
	key       string
	fileBlock uint64
	at        time.Time
}

// TestRandomOpsMatchBlockModel runs seeded random Adds, Removes and queries
// against a model that records the owner of every busy block, and after each
// operation checks the invariants, the whole contents, and that the deltas
// replayed so far equal the set.
func TestRandomOpsMatchBlockModel(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var log []string
	defer func() {
		if t.Failed() {
			if len(log) > 60 {
				log = log[len(log)-60:]
			}
			t.Logf("seed %d (rerun with -busyextent.seed=%d); last operations:\n%s", seed, seed, strings.Join(log, "\n"))
		}
	}()

	const space = 400
	s := NewSet()
	model := map[pmem.Block]owned{}
	journal := map[pmem.Block]Record{}
	randExtent := func() pmem.Extent {
		start := rng.Uint64N(space)
		return ext(start, 1+rng.Uint64N(min(24, space-start)))
	}
	allBusy := func(e pmem.Extent) bool {
		for b := e.Start; b < e.End(); b++ {
			if _, ok := model[b]; !ok {
				return false
			}
		}
		return true
	}
	anyBusy := func(e pmem.Extent) bool {
		for b := e.Start; b < e.End(); b++ {
			if _, ok := model[b]; ok {
				return true
			}
		}
		return false
	}

	for i := 0; i < 3000 && !t.Failed(); i++ {
		switch op := rng.IntN(10); {
		case op < 4:
			// One extent, or several of one owner as one break adds them.
			at := t0.Add(time.Duration(i) * time.Millisecond)
			var xs []Extent
			possible := true
			for n := 1 + rng.IntN(2)*rng.IntN(6); n > 0; n-- {
				e := randExtent()
				x := Extent{
					Extent: e, Key: fmt.Sprintf("k%d", i), Ino: uint64(i), FileBlock: rng.Uint64N(1 << 20),
					Reason: ReasonPunch, DetachedAt: at, Pins: 1, Labels: []string{fmt.Sprintf("pin%d", i)},
				}
				possible = possible && !anyBusy(e) && !slices.ContainsFunc(xs, func(y Extent) bool { return y.Overlaps(e) })
				xs = append(xs, x)
			}
			if len(xs) == 1 {
				xs[0].Reason = Reason(1 + rng.IntN(5))
			}
			d, err := s.AddRuns(xs)
			log = append(log, fmt.Sprintf("%d: AddRuns(%v) -> %v", i, xs, err))
			if (err == nil) != possible {
				t.Fatalf("AddRuns(%v) = %v, model says possible=%v", xs, err, possible)
			}
			if err == nil {
				for _, x := range xs {
					for b := x.Start; b < x.End(); b++ {
						model[b] = owned{x.Key, x.FileBlock + uint64(b-x.Start), x.DetachedAt}
					}
				}
				if len(d.Written) != 1 || len(d.Deleted) != 0 {
					t.Fatalf("AddRuns of one owner wrote %d records and deleted %d, want 1 and 0", len(d.Written), len(d.Deleted))
				}
				applyDelta(t, journal, d)
			}
		case op < 8:
			var runs []pmem.Extent
			for n := 1 + rng.IntN(3); n > 0; n-- {
				runs = append(runs, randExtent())
			}
			if all := s.All(); len(all) > 0 && rng.IntN(3) > 0 {
				// Mostly remove busy blocks: disjoint pieces of busy
				// extents, often several from the same one.
				runs = runs[:0]
				x := all[rng.IntN(len(all))]
				for n := 1 + rng.IntN(4); n > 0; n-- {
					if rng.IntN(2) == 0 {
						x = all[rng.IntN(len(all))]
					}
					off := rng.Uint64N(x.Len)
					r := ext(uint64(x.Start)+off, 1+rng.Uint64N(x.Len-off))
					if !slices.ContainsFunc(runs, r.Overlaps) {
						runs = append(runs, r)
					}
				}
			}
			gen := s.Generation()
			released, d, err := s.RemoveRuns(runs)
			log = append(log, fmt.Sprintf("%d: RemoveRuns(%v) -> %d released, %v", i, runs, len(released), err))
			possible := true
			seen := map[pmem.Block]bool{}
			for _, r := range runs {
				possible = possible && allBusy(r)
				for b := r.Start; b < r.End(); b++ {
					possible = possible && !seen[b]
					seen[b] = true
				}
			}
			if (err == nil) != possible {
				t.Fatalf("RemoveRuns(%v) = %v, model says possible=%v", runs, err, possible)
			}
			if err != nil {
				if s.Generation() != gen {
					t.Fatalf("failed RemoveRuns changed the generation")
				}
				break
			}
			if s.Generation() != gen+1 {
				t.Fatalf("RemoveRuns moved the generation from %d to %d", gen, s.Generation())
			}
			var n uint64
			for _, x := range released {
				for b := x.Start; b < x.End(); b++ {
					want := model[b]
					if !seen[b] || x.Key != want.key || x.FileBlock+uint64(b-x.Start) != want.fileBlock || !x.DetachedAt.Equal(want.at) {
						t.Fatalf("released %v does not match the model at block %d: %+v", x, b, want)
					}
					delete(model, b)
				}
				n += x.Len
			}
			if n != uint64(len(seen)) {
				t.Fatalf("released %d blocks, removed %d", n, len(seen))
			}
			applyDelta(t, journal, d)
		default:
			e := randExtent()
			log = append(log, fmt.Sprintf("%d: queries on %v", i, e))
			if got, want := s.Covers(e), allBusy(e); got != want {
				t.Fatalf("Covers(%v) = %v, model says %v", e, got, want)
			}
			if got, want := s.Overlaps(e), anyBusy(e); got != want {
				t.Fatalf("Overlaps(%v) = %v, model says %v", e, got, want)
			}
			var n uint64
			for _, x := range s.Overlapping(e) {
				in, ok := x.Intersect(e)
				if !ok {
					t.Fatalf("Overlapping(%v) returned %v", e, x)
				}
				n += in.Len
			}
			var want uint64
			for b := e.Start; b < e.End(); b++ {
				if _, ok := model[b]; ok {
					want++
				}
			}
			if n != want {
				t.Fatalf("Overlapping(%v) holds %d of its blocks, model says %d", e, n, want)
			}
		}
		compareToModel(t, s, model, journal)
	}
}

// compareToModel checks the set's invariants, that every block of the set
// has the owner the model says, and that the replayed journal equals All.
func compareToModel(t *testing.T, s *Set, model map[pmem.Block]owned, journal map[pmem.Block]Record) {
	t.Helper()
	mustCheck(t, s)
	all := s.All()
	var n uint64
	for _, x := range all {
		for b := x.Start; b < x.End(); b++ {
			want, ok := model[b]
			if !ok || x.Key != want.key || x.FileBlock+uint64(b-x.Start) != want.fileBlock || !x.DetachedAt.Equal(want.at) {
				t.Fatalf("block %d is busy as %v, model says %+v (busy=%v)", b, x, want, ok)
			}
			if len(x.Labels) != 1 || x.Labels[0] != "pin"+strings.TrimPrefix(x.Key, "k") {
				t.Fatalf("extent %v lost its labels: %v", x, x.Labels)
			}
		}
		n += x.Len
	}
	if n != uint64(len(model)) || s.Blocks() != n || s.Len() != len(all) {
		t.Fatalf("set holds %d blocks (Blocks %d, Len %d of %d), model %d", n, s.Blocks(), s.Len(), len(all), len(model))
	}
	sameExtents(t, "replayed journal", modelList(journal), all)
	if s.Records() != len(journal) {
		t.Fatalf("set counts %d records, the replayed journal holds %d", s.Records(), len(journal))
	}
}
