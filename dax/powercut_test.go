package dax

// This file tests the power-cut simulator end to end on a store: what a cut
// keeps, what it loses, and that a store restarted after it is whole.

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/daxstore/daxstore/internal/powercut"
	"github.com/daxstore/daxstore/internal/testhooks"
)

// powerCutStore opens a small store in dir on sim.
func powerCutStore(t *testing.T, dir string, sim *powercut.Sim) *Store {
	t.Helper()
	s, err := Open(dir, &Options{Size: 1 << 20, NoAdminSocket: true, media: testhooks.Media{PowerCut: sim}})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// restartAfterCut retires the store that saw the cut, restarts sim and
// reopens dir, checking the result.
func restartAfterCut(t *testing.T, s *Store, dir string, sim *powercut.Sim) *Store {
	t.Helper()
	_ = s.CloseWith(context.Background(), CloseOptions{Force: true})
	sim.Restart()
	if sim.Cut() {
		t.Fatal("Cut() is still true after Restart")
	}
	s = powerCutStore(t, dir, sim)
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Check(); err != nil {
		t.Fatalf("Check after the restart: %v", err)
	}
	return s
}

// getOrMissing returns key's value, or nil if it does not exist.
func getOrMissing(t *testing.T, s *Store, key string) []byte {
	t.Helper()
	v, err := s.Get(key)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	return v
}

func TestPowerCutSimKeepsAcknowledgedPutsAndLosesTheOneInFlight(t *testing.T) {
	dir := t.TempDir()
	sim := powercut.New(1)
	s := powerCutStore(t, dir, sim)
	acked := bytes.Repeat([]byte("a"), 10000)
	if err := s.Put("acked", acked); err != nil {
		t.Fatal(err)
	}
	sim.CutAfterFlushes(1, 0)
	if err := s.Put("in-flight", bytes.Repeat([]byte("b"), 5000)); err != nil {
		t.Fatalf("Put during the cut: %v (the CPU does not notice a cut)", err)
	}
	if !sim.Cut() {
		t.Fatalf("the cut armed for the next flush did not fire in a Put (%d flushes)", sim.Flushes())
	}
	// The dead store goes on, but nothing it does survives.
	if err := s.Put("after", []byte("c")); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("acked"); err != nil {
		t.Fatal(err)
	}

	s = restartAfterCut(t, s, dir, sim)
	if got := getOrMissing(t, s, "acked"); !bytes.Equal(got, acked) {
		t.Fatalf("an acknowledged Put did not survive: %d bytes", len(got))
	}
	for _, key := range []string{"in-flight", "after"} {
		if got := getOrMissing(t, s, key); got != nil {
			t.Fatalf("%s survived a cut before its data was flushed: %q", key, got[:min(len(got), 8)])
		}
	}
}

func TestPowerCutSimLosesUnflushedPinStoresUnlessTheCutTearsThemIn(t *testing.T) {
	cases := []struct {
		name string
		tear float64
		want byte
	}{
		{"an untorn cut loses stores through a pin that were never flushed", 0, 'o'},
		{"a fully torn cut keeps them", 1, 'n'},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			sim := powercut.New(2)
			s := powerCutStore(t, dir, sim)
			if err := s.Put("k", bytes.Repeat([]byte("o"), 4096)); err != nil {
				t.Fatal(err)
			}
			f, err := s.Open("k")
			if err != nil {
				t.Fatal(err)
			}
			p, err := f.Pin(0, 4096, PinOptions{Writable: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range p.Bytes() {
				for i := range b {
					b[i] = 'n'
				}
			}
			sim.CutNow(tc.tear)
			_ = p.Unpin()
			s = restartAfterCut(t, s, dir, sim)
			if got := getOrMissing(t, s, "k"); !bytes.Equal(got, bytes.Repeat([]byte{tc.want}, 4096)) {
				t.Fatalf("after the cut k holds %q..., want all %q", got[:min(len(got), 8)], tc.want)
			}
		})
	}
}

func TestPowerCutSimRestartWithoutACutKeepsEverythingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	sim := powercut.New(3)
	s := powerCutStore(t, dir, sim)
	if err := s.Put("k", []byte("value")); err != nil {
		t.Fatal(err)
	}
	s = restartAfterCut(t, s, dir, sim)
	if got := getOrMissing(t, s, "k"); string(got) != "value" {
		t.Fatalf("k = %q after a restart without a cut, want %q", got, "value")
	}
	// The restarted store runs on live media again.
	if err := s.Put("k2", []byte("more")); err != nil {
		t.Fatal(err)
	}
	s = restartAfterCut(t, s, dir, sim)
	if got := getOrMissing(t, s, "k2"); string(got) != "more" {
		t.Fatalf("k2 = %q after a second restart, want %q", got, "more")
	}
}
