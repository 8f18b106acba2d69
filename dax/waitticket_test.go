package dax

import (
	"context"
	"testing"
	"time"
)

// TestWaitPolicyIgnoresReusedBlocks drives the ABA interleaving through the
// API: a Wait-policy truncate detaches a pinned block; before the truncate
// starts waiting (in the pin's OnBreak, which runs first) the pin is
// dropped, the block is released, handed to another key in a full region,
// pinned there and detached again by that key's removal. The truncate's own
// block came back, so it must return nil, although the same block number is
// busy again for an unrelated pin.
func TestWaitPolicyIgnoresReusedBlocks(t *testing.T) {
	s := newStore(t, 16*testBS, nil)
	mustPut(t, s, "a", pattern(1, testBS))
	st := mustStats(t, s)
	mustPut(t, s, "filler", pattern(2, int(st.FreeBlocks)*testBS)) // the region is full
	a := mustOpen(t, s, "a")
	var pa, pb Pin
	var reused BusyExtent
	pa = mustPin(t, a, 0, testBS, PinOptions{Label: "first", OnBreak: func() {
		if err := pa.Unpin(); err != nil {
			t.Errorf("unpin: %v", err)
			return
		}
		// The only free block is the one just released: b gets it.
		if err := s.Put("b", pattern(3, testBS)); err != nil {
			t.Errorf("put b: %v", err)
			return
		}
		pb = mustPin(t, mustOpen(t, s, "b"), 0, testBS, PinOptions{Label: "unrelated"})
		if err := s.Remove("b"); err != nil {
			t.Errorf("remove b: %v", err)
			return
		}
		if busy := s.Busy(); len(busy) == 1 {
			reused = busy[0]
		}
	}})
	before := pa.r.runs[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := a.TruncateWith(ctx, 0, BreakOptions{Policy: PolicyWait})
	if pb == (Pin{}) {
		t.Fatal("the OnBreak callback did not reuse the block")
	}
	defer pb.Unpin()
	if reused.Key != "b" || reused.Start != uint64(before.Start) || pb.r.runs[0] != before {
		t.Fatalf("the test did not reproduce the reuse: busy %+v, b pinned %v, a had %v", reused, pb.r.runs[0], before)
	}
	if err != nil {
		t.Fatalf("the truncate's block was released, but it reports %v", err)
	}
	mustCheck(t, s)
}
