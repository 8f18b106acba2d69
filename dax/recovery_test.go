package dax

// Tests of recovery and Check: busy is a legitimate third state of a block
// while the store runs, and no busy extent survives a reopen.

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daxstore/daxstore/journal"
	"github.com/daxstore/daxstore/pmem"
)

// busyStore builds, in dir, a store with busy extents of three reasons: a
// punch of "a", the removal of "b" and a put over "c", each while pinned.
// It returns the store, the blocks left busy and the values the keys hold.
func busyStore(t *testing.T, dir string) (*Store, uint64, map[string][]byte) {
	t.Helper()
	s, err := Open(dir, &Options{Size: 64 * testBS, NoSync: true, NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeForce(s) })
	mustPut(t, s, "a", pattern(1, 4*testBS))
	mustPut(t, s, "b", pattern(2, 3*testBS))
	mustPut(t, s, "c", pattern(3, 2*testBS))
	for _, k := range []string{"a", "b", "c"} {
		mustPin(t, mustOpen(t, s, k), 0, 2*testBS, PinOptions{Label: "pin of " + k})
	}
	if err := mustOpen(t, s, "a").PunchHole(0, 4*testBS); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("b"); err != nil {
		t.Fatal(err)
	}
	// Past the inline limit, so that the new value owns one block.
	newC := pattern(4, testBS)
	mustPut(t, s, "c", newC)
	return s, 6, map[string][]byte{"a": make([]byte, 4*testBS), "c": newC}
}

func TestCheckAcceptsBusyAsTheThirdStateOfABlock(t *testing.T) {
	s, busy, _ := busyStore(t, t.TempDir())
	settle(t, s)
	st := mustStats(t, s)
	if st.BusyBlocks != busy {
		t.Fatalf("%d busy blocks, want %d", st.BusyBlocks, busy)
	}
	if st.FreeBlocks+st.BusyBlocks+st.UsedBlocks != st.DataBlocks || st.UsedBlocks != 1 {
		t.Fatalf("free %d + busy %d + used %d != data %d (want 1 used)", st.FreeBlocks, st.BusyBlocks, st.UsedBlocks, st.DataBlocks)
	}
	reasons := map[string]bool{}
	for _, b := range s.Busy() {
		reasons[b.Reason] = true
		if len(b.Labels) != 1 || b.PinnedBlocks != b.Blocks {
			t.Errorf("busy extent %+v: want one label and every block pinned", b)
		}
	}
	for _, r := range []string{"punch", "remove", "overwrite"} {
		if !reasons[r] {
			t.Errorf("no busy extent with reason %s in %+v", r, s.Busy())
		}
	}
	mustCheck(t, s)
}

func TestCheckReportsABusyExtentThatMemoryLost(t *testing.T) {
	s, _, _ := busyStore(t, t.TempDir())
	x := s.busy.All()[0]
	if _, _, err := s.busy.Remove(x.Extent); err != nil {
		t.Fatal(err)
	}
	err := s.Check()
	wantErr(t, err, ErrCorrupt)
	if !strings.Contains(err.Error(), "busy extents in memory") {
		t.Fatalf("check does not say what differs: %v", err)
	}
}

func TestReopenFreesEveryBusyExtentLeftInTheJournal(t *testing.T) {
	dir := t.TempDir()
	s, busy, values := busyStore(t, dir)
	if err := s.CloseWith(context.Background(), CloseOptions{Force: true}); err != nil {
		t.Fatal(err)
	}

	// Nobody holds the store: inspection reads the busy extents from the
	// journal, marked stale.
	snap, err := Inspect(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var stale uint64
	for _, b := range snap.Busy {
		if !b.Stale {
			t.Errorf("busy extent %+v read from the journal is not marked stale", b)
		}
		stale += b.Blocks
	}
	if snap.Live || stale != busy || snap.Stats.BusyBlocks != busy {
		t.Fatalf("inspect: live %v, %d stale busy blocks (stats %d), want %d", snap.Live, stale, snap.Stats.BusyBlocks, busy)
	}

	s, err = Open(dir, &Options{NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := mustStats(t, s)
	if st.BusyBlocks != 0 || len(s.Busy()) != 0 || st.FreeBlocks != st.DataBlocks-1 {
		t.Fatalf("after reopen: %d busy blocks, %d free of %d; want 0 busy and all but 1 free", st.BusyBlocks, st.FreeBlocks, st.DataBlocks)
	}
	jst, err := s.jnl.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(jst.Busy) != 0 {
		t.Fatalf("the journal still holds busy records: %+v", jst.Busy)
	}
	for k, want := range values {
		if got := mustGet(t, s, k); !bytes.Equal(got, want) {
			t.Errorf("%q changed across the reopen", k)
		}
	}
	if _, err := s.Get("b"); err == nil {
		t.Error("removed key b came back")
	}
	mustCheck(t, s)

	// The freed blocks are usable again, all of them.
	mustPut(t, s, "big", pattern(9, int(st.FreeBlocks)*testBS))
	mustCheck(t, s)
}

func TestOpenRejectsABusyRecordOutsideTheRegion(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{Size: 16 * testBS, NoSync: true, NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	jnl, err := journal.Open(filepath.Join(dir, "journal"), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := jnl.NewBatch()
	b.SetBusy(journal.BusyRecord{Extent: pmem.Extent{Start: 100, Len: 2}, Key: "x", Reason: 1})
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if err := jnl.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, &Options{NoAdminSocket: true})
	wantErr(t, err, ErrCorrupt)
}
