package bench

import (
	"context"
	"testing"
)

func TestRegionPartReportsInitSpaceAndPutRatio(t *testing.T) {
	cfg := tinyConfig(t)
	cfg.Only = []string{"region"}
	rep, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	space := rep.find("region", subjInitSpace, 64<<30)
	if space == nil || space.Value > 1<<20 {
		t.Fatalf("file space after init of a 64 GiB region: %+v, want at most 1 MiB", space)
	}
	for _, s := range []string{subjPutSparse, subjPutPrealloc} {
		if f := rep.find("region", s, 64<<10); f == nil || !(f.Value > 0) {
			t.Errorf("no %q figure: %+v", s, f)
		}
	}
	goals := map[string]bool{}
	for _, tg := range rep.Targets {
		goals[tg.Goal] = true
	}
	if len(goals) != 5 {
		t.Errorf("the region part judged %d targets, want 5: %+v", len(goals), rep.Targets)
	}
	// 1 GiB files written by 1 MiB WriteAt on an empty region, alone or
	// two in turns: the allocator keeps each in at most 64 runs (one
	// mapping each in a window); two in turns took 1024 each before.
	for _, s := range []string{subjExtents1MiB, subjExtentsTwo} {
		if f := rep.find("region", s, 1<<30); f == nil || f.Value < 1 || f.Value > extentsGoal {
			t.Errorf("%s: %+v, want 1 to %d runs", s, f, extentsGoal)
		}
	}
}
