package dax

// Tests of Close with pins outstanding: refuse, wait, or force.

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// pinnedStore returns a store in dir with key "k" (4 blocks) and one pin of
// its first 2 blocks labelled "reader".
func pinnedStore(t *testing.T, dir string) (*Store, Pin) {
	t.Helper()
	s, err := Open(dir, &Options{Size: 64 * testBS, NoSync: true, NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeForce(s) })
	mustPut(t, s, "k", pattern(1, 4*testBS))
	return s, mustPin(t, mustOpen(t, s, "k"), 0, 2*testBS, PinOptions{Label: "reader"})
}

func TestCloseWithPinsRefusesAndStaysUsable(t *testing.T) {
	s, p := pinnedStore(t, t.TempDir())
	err := s.Close()
	wantErr(t, err, ErrPinned)
	if !strings.Contains(err.Error(), "reader") || !strings.Contains(err.Error(), `"k"`) {
		t.Errorf("error %q does not list the pin's label and key", err)
	}
	// Still open and whole.
	mustPut(t, s, "after", []byte("still usable"))
	if got := mustGet(t, s, "after"); string(got) != "still usable" {
		t.Fatalf("got %q", got)
	}
	if len(pinBytes(p)) != 2*testBS {
		t.Fatal("the pin lost its bytes")
	}
	mustCheck(t, s)
	if err := p.Unpin(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close after Unpin: %v", err)
	}
}

func TestCloseWithWaitReturnsOnceEveryPinIsReleased(t *testing.T) {
	s, p := pinnedStore(t, t.TempDir())
	p2 := mustPin(t, mustOpen(t, s, "k"), testBS, 3*testBS, PinOptions{Label: "second"})
	closed := make(chan error, 1)
	go func() { closed <- s.CloseWith(context.Background(), CloseOptions{Wait: true}) }()
	select {
	case err := <-closed:
		t.Fatalf("CloseWith Wait returned %v with pins outstanding", err)
	case <-time.After(30 * time.Millisecond):
	}
	if err := p.Unpin(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		t.Fatalf("CloseWith Wait returned %v with one pin still outstanding", err)
	case <-time.After(30 * time.Millisecond):
	}
	go func() { p2.Unpin() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("CloseWith Wait still waiting 10s after the last Unpin")
	}
	_, err := s.Stats()
	wantErr(t, err, ErrClosed)
}

func TestCloseWithWaitRespectsTheContext(t *testing.T) {
	s, p := pinnedStore(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	var err error
	within(t, 10*time.Second, "CloseWith Wait under a deadline", func() {
		err = s.CloseWith(ctx, CloseOptions{Wait: true})
	})
	wantErr(t, err, context.DeadlineExceeded)
	mustPut(t, s, "after", []byte("open"))
	mustCheck(t, s)
	if err := p.Unpin(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCloseWithForceInvalidatesThePinsAndReopensClean(t *testing.T) {
	dir := t.TempDir()
	s, p := pinnedStore(t, dir)
	// One attached pin and one whose blocks are detached, so the forced
	// Close leaves busy extents in the journal.
	p2 := mustPin(t, mustOpen(t, s, "k"), 3*testBS, testBS, PinOptions{Label: "detached"})
	if err := mustOpen(t, s, "k").Truncate(3 * testBS); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWith(context.Background(), CloseOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	for _, pin := range []Pin{p, p2} {
		if pin.Bytes() != nil {
			t.Errorf("pin %q: Bytes is not nil after a forced Close", pin.Label())
		}
		wantErr(t, pin.Unpin(), ErrClosed)
	}

	s, err := Open(dir, &Options{NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if busy := s.Busy(); len(busy) != 0 {
		t.Fatalf("busy extents after reopen: %+v", busy)
	}
	st := mustStats(t, s)
	if st.BusyBlocks != 0 || st.Pins != 0 || st.PinnedBlocks != 0 || st.UsedBlocks != 3 {
		t.Fatalf("after reopen: %+v; want nothing busy or pinned and 3 used blocks", st)
	}
	if got := mustGet(t, s, "k"); !bytes.Equal(got, pattern(1, 4*testBS)[:3*testBS]) {
		t.Fatal("value changed across the forced close")
	}
	mustCheck(t, s)
}

func TestForcedCloseRacingUnpinsReopensClean(t *testing.T) {
	for i := range 10 {
		dir := t.TempDir()
		s, err := Open(dir, &Options{Size: 256 * testBS, NoSync: true, NoAdminSocket: true})
		if err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, "k", pattern(1, 64*testBS))
		f := mustOpen(t, s, "k")
		var pins []Pin
		for j := range int64(64) {
			pins = append(pins, mustPin(t, f, j*testBS, testBS, PinOptions{}))
		}
		if err := s.Remove("k"); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := g; j < len(pins); j += 4 {
					if err := pins[j].Unpin(); err != nil && !errors.Is(err, ErrClosed) {
						t.Errorf("round %d: unpin racing a forced close: %v", i, err)
					}
				}
			}()
		}
		if err := s.CloseWith(context.Background(), CloseOptions{Force: true}); err != nil {
			t.Errorf("round %d: forced close racing unpins: %v", i, err)
		}
		wg.Wait()
		s, err = Open(dir, &Options{NoAdminSocket: true})
		if err != nil {
			t.Fatal(err)
		}
		mustCheck(t, s)
		if st := mustStats(t, s); st.FreeBlocks != st.DataBlocks {
			t.Fatalf("round %d: %d of %d blocks free after reopen, want all", i, st.FreeBlocks, st.DataBlocks)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
