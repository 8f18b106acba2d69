package dax

// Unit tests of the extent map: merging on insert, trimming and splitting
// on remove, clipping on find, and that the journal ops it returns always
// rebuild exactly the map it holds.

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/daxstore/daxstore/pmem"
)

func mp(fb uint64, start pmem.Block, n uint64) mapping {
	return mapping{fileBlock: fb, start: start, n: n}
}

func uw(m mapping) mapping { m.unwritten = true; return m }

// buildMap inserts ms in order and returns the map and a journal model fed
// with every op.
func buildMap(t *testing.T, ms ...mapping) (*extentMap, map[uint64]mapping) {
	t.Helper()
	em, model := newExtentMap(), map[uint64]mapping{}
	for _, m := range ms {
		applyOps(model, em.insert(m))
	}
	return em, model
}

// applyOps applies journal ops to a model keyed by file block, as the
// journal applies extent records.
func applyOps(model map[uint64]mapping, ops []mapOp) {
	for _, op := range ops {
		if op.del {
			delete(model, op.m.fileBlock)
		} else {
			model[op.m.fileBlock] = op.m
		}
	}
}

// modelMappings returns the model's mappings in file order.
func modelMappings(model map[uint64]mapping) []mapping {
	out := make([]mapping, 0, len(model))
	for _, m := range model {
		out = append(out, m)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].fileBlock < out[j-1].fileBlock; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func TestExtentMapInsertMergesContiguousNeighboursOfTheSameKind(t *testing.T) {
	cases := []struct {
		name string
		in   []mapping
		want []mapping
	}{
		{"a mapping right after its neighbour in file and region merges", []mapping{mp(0, 10, 2), mp(2, 12, 3)}, []mapping{mp(0, 10, 5)}},
		{"a mapping right before its neighbour merges", []mapping{mp(2, 12, 3), mp(0, 10, 2)}, []mapping{mp(0, 10, 5)}},
		{"a mapping filling the gap between two neighbours merges all three", []mapping{mp(0, 10, 2), mp(4, 14, 1), mp(2, 12, 2)}, []mapping{mp(0, 10, 5)}},
		{"file-contiguous but not region-contiguous mappings stay apart", []mapping{mp(0, 10, 2), mp(2, 20, 2)}, []mapping{mp(0, 10, 2), mp(2, 20, 2)}},
		{"region-contiguous but not file-contiguous mappings stay apart", []mapping{mp(0, 10, 2), mp(3, 12, 2)}, []mapping{mp(0, 10, 2), mp(3, 12, 2)}},
		{"a written and an unwritten mapping stay apart", []mapping{mp(0, 10, 2), uw(mp(2, 12, 2))}, []mapping{mp(0, 10, 2), uw(mp(2, 12, 2))}},
		{"two unwritten mappings merge", []mapping{uw(mp(0, 10, 2)), uw(mp(2, 12, 2))}, []mapping{uw(mp(0, 10, 4))}},
		{"an unwritten mapping between written ones merges with neither", []mapping{mp(0, 10, 1), mp(2, 12, 1), uw(mp(1, 11, 1))}, []mapping{mp(0, 10, 1), uw(mp(1, 11, 1)), mp(2, 12, 1)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			em, model := buildMap(t, tc.in...)
			if got := em.all(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("map %v, want %v", got, tc.want)
			}
			if got := modelMappings(model); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("journal ops build %v, want %v", got, tc.want)
			}
		})
	}
}

func TestExtentMapRemoveTrimsAndSplits(t *testing.T) {
	cases := []struct {
		name        string
		in          []mapping
		fb, end     uint64
		wantRemoved []mapping
		wantLeft    []mapping
	}{
		{"removing the middle of a mapping splits it", []mapping{mp(0, 100, 10)}, 3, 5,
			[]mapping{mp(3, 103, 2)}, []mapping{mp(0, 100, 3), mp(5, 105, 5)}},
		{"removing its head trims it", []mapping{mp(0, 100, 10)}, 0, 4,
			[]mapping{mp(0, 100, 4)}, []mapping{mp(4, 104, 6)}},
		{"removing its tail trims it", []mapping{mp(0, 100, 10)}, 7, 20,
			[]mapping{mp(7, 107, 3)}, []mapping{mp(0, 100, 7)}},
		{"removing across several mappings and holes takes exactly the range", []mapping{mp(0, 100, 4), mp(6, 50, 2), uw(mp(9, 200, 5))}, 2, 11,
			[]mapping{mp(2, 102, 2), mp(6, 50, 2), uw(mp(9, 200, 2))}, []mapping{mp(0, 100, 2), uw(mp(11, 202, 3))}},
		{"removing a hole changes nothing", []mapping{mp(0, 100, 2), mp(5, 105, 2)}, 2, 5,
			nil, []mapping{mp(0, 100, 2), mp(5, 105, 2)}},
		{"removing an empty range changes nothing", []mapping{mp(0, 100, 4)}, 2, 2,
			nil, []mapping{mp(0, 100, 4)}},
		{"removing everything empties the map", []mapping{mp(0, 100, 4), mp(10, 7, 1)}, 0, ^uint64(0),
			[]mapping{mp(0, 100, 4), mp(10, 7, 1)}, []mapping{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			em, model := buildMap(t, tc.in...)
			removed, ops := em.remove(tc.fb, tc.end)
			applyOps(model, ops)
			if !reflect.DeepEqual(removed, tc.wantRemoved) {
				t.Fatalf("removed %v, want %v", removed, tc.wantRemoved)
			}
			if got := em.all(); !reflect.DeepEqual(got, tc.wantLeft) {
				t.Fatalf("map %v, want %v", got, tc.wantLeft)
			}
			if got := modelMappings(model); !reflect.DeepEqual(got, tc.wantLeft) {
				t.Fatalf("journal ops build %v, want %v", got, tc.wantLeft)
			}
		})
	}
}

func TestExtentMapFindClipsToTheRange(t *testing.T) {
	em, _ := buildMap(t, mp(0, 100, 4), uw(mp(6, 50, 4)), mp(12, 9, 1))
	cases := []struct {
		name    string
		fb, end uint64
		want    []mapping
	}{
		{"a range inside one mapping returns its clipped middle", 1, 3, []mapping{mp(1, 101, 2)}},
		{"a range over a hole and two mappings clips both ends", 2, 8, []mapping{mp(2, 102, 2), uw(mp(6, 50, 2))}},
		{"a range in a hole returns nothing", 4, 6, nil},
		{"an empty range returns nothing", 2, 2, nil},
		{"a range past every mapping returns nothing", 13, 100, nil},
		{"a range over everything returns every mapping whole", 0, ^uint64(0), []mapping{mp(0, 100, 4), uw(mp(6, 50, 4)), mp(12, 9, 1)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := em.find(tc.fb, tc.end); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("find(%d, %d) = %v, want %v", tc.fb, tc.end, got, tc.want)
			}
		})
	}
	if got := em.blocks(); got != 9 {
		t.Fatalf("blocks() = %d, want 9", got)
	}
}

// TestExtentMapRandomOpsKeepTheJournalModelEqual applies random inserts and
// removes. After every op: the journal ops rebuild exactly all(); the map
// resolves every file block as a per-block model does; mappings are ordered,
// non-overlapping and fully merged.
func TestExtentMapRandomOpsKeepTheJournalModelEqual(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 0))
	var log []string
	defer func() {
		if t.Failed() {
			t.Logf("seed %d, op log:\n  %s", seed, strings.Join(log, "\n  "))
		}
	}()
	const span = 64 // file blocks in play
	type block struct {
		region    pmem.Block
		unwritten bool
	}
	em, model, blocks := newExtentMap(), map[uint64]mapping{}, map[uint64]block{}
	nextRegion := pmem.Block(1)
	for i := 0; i < 3000; i++ {
		fb := rng.Uint64N(span)
		n := 1 + rng.Uint64N(8)
		if rng.IntN(2) == 0 {
			// Insert into the holes of [fb, fb+n), region blocks either
			// continuing the neighbour's (to merge) or fresh.
			for _, h := range holes(em.find(fb, fb+n), fb, fb+n) {
				m := mapping{fileBlock: h.fileBlock, n: h.n, unwritten: rng.IntN(3) == 0}
				if g := em.goal(h.fileBlock); g != 0 && rng.IntN(2) == 0 {
					m.start = g
				} else {
					m.start = nextRegion
					nextRegion += pmem.Block(h.n + rng.Uint64N(2))
				}
				log = append(log, fmt.Sprintf("insert %+v", m))
				applyOps(model, em.insert(m))
				for k := range m.n {
					blocks[m.fileBlock+k] = block{m.start + pmem.Block(k), m.unwritten}
				}
			}
		} else {
			log = append(log, fmt.Sprintf("remove [%d, %d)", fb, fb+n))
			removed, ops := em.remove(fb, fb+n)
			applyOps(model, ops)
			var got uint64
			for _, r := range removed {
				for k := range r.n {
					want, ok := blocks[r.fileBlock+k]
					if !ok || want != (block{r.start + pmem.Block(k), r.unwritten}) {
						t.Fatalf("op %d: removed %+v, but file block %d was %+v (mapped %v)", i, r, r.fileBlock+k, want, ok)
					}
				}
				got += r.n
			}
			var want uint64
			for b := fb; b < fb+n; b++ {
				if _, ok := blocks[b]; ok {
					want++
					delete(blocks, b)
				}
			}
			if got != want {
				t.Fatalf("op %d: removed %d blocks, want %d", i, got, want)
			}
		}
		all := em.all()
		if got := modelMappings(model); !reflect.DeepEqual(got, all) {
			t.Fatalf("op %d: journal ops build %v, map holds %v", i, got, all)
		}
		var total uint64
		for j, m := range all {
			if m.n == 0 {
				t.Fatalf("op %d: empty mapping %+v", i, m)
			}
			if j > 0 {
				p := all[j-1]
				if p.fileEnd() > m.fileBlock {
					t.Fatalf("op %d: %+v overlaps %+v", i, p, m)
				}
				if p.fileEnd() == m.fileBlock && p.region().End() == m.start && p.unwritten == m.unwritten {
					t.Fatalf("op %d: %+v and %+v should have merged", i, p, m)
				}
			}
			for k := range m.n {
				if b, ok := blocks[m.fileBlock+k]; !ok || b != (block{m.start + pmem.Block(k), m.unwritten}) {
					t.Fatalf("op %d: map resolves file block %d to %+v, model has %+v (%v)", i, m.fileBlock+k, m, b, ok)
				}
			}
			total += m.n
		}
		if total != uint64(len(blocks)) || em.blocks() != total {
			t.Fatalf("op %d: map holds %d blocks (blocks() %d), model %d", i, total, em.blocks(), len(blocks))
		}
	}
}
