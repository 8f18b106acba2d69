package dax

// Helpers shared by the package's tests: small stores, state snapshots to
// prove that a failed call changed nothing, and waits for the releaser.

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

// testBS is the block size of the test stores.
const testBS = 4096

// newStore opens a fresh store of size bytes in a temporary directory. The
// journal runs with NoSync (tests that need durability reopen after a clean
// Close, which loses nothing) and without the admin socket. The store is
// force-closed at the end of the test if the test left it open.
func newStore(t testing.TB, size int64, mod func(*Options)) *Store {
	t.Helper()
	o := &Options{Size: size, NoSync: true, NoAdminSocket: true}
	if mod != nil {
		mod(o)
	}
	s, err := Open(t.TempDir(), o)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { closeForce(s) })
	return s
}

// closeForce closes s if it is still open, whatever it holds.
func closeForce(s *Store) {
	if !s.closed.Load() {
		_ = s.CloseWith(context.Background(), CloseOptions{Force: true})
	}
}

// mustCheck fails the test when the store's invariants do not hold.
func mustCheck(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Check(); err != nil {
		t.Fatalf("check: %v", err)
	}
}

// settle waits until every released block has been committed back to free
// space, so Stats are exact.
func settle(t testing.TB, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.releaser.Sync(ctx); err != nil {
		t.Fatalf("releaser sync: %v", err)
	}
}

// mustStats returns the store's statistics.
func mustStats(t testing.TB, s *Store) Stats {
	t.Helper()
	st, err := s.Stats()
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	return st
}

// state is everything observable about a store that a failed call must not
// change.
type state struct {
	Stats Stats
	Busy  []BusyExtent
	Pins  []PinInfo
	Files []FileInfo
	Data  map[string][]byte
}

// snapshot captures the store's observable state after the releaser has
// caught up.
func snapshot(t testing.TB, s *Store) state {
	t.Helper()
	settle(t, s)
	files, err := s.List("")
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	data := map[string][]byte{}
	for _, fi := range files {
		v, err := s.Get(fi.Key)
		if err != nil {
			t.Fatalf("get %q: %v", fi.Key, err)
		}
		data[fi.Key] = v
	}
	st := mustStats(t, s)
	st.LastCheckPause = 0 // a measurement of the last Check, not state
	return state{Stats: st, Busy: s.Busy(), Pins: s.Pins(), Files: files, Data: data}
}

// sameState fails the test when the store's state differs from before.
func sameState(t testing.TB, s *Store, before state) {
	t.Helper()
	after := snapshot(t, s)
	// The region file's space is no part of the store's state: it grows
	// when an operation reserves blocks, even one that then fails.
	before.Stats.RegionFileBytes, after.Stats.RegionFileBytes = 0, 0
	if !reflect.DeepEqual(before.Stats, after.Stats) {
		t.Errorf("stats changed:\nbefore %+v\nafter  %+v", before.Stats, after.Stats)
	}
	if !reflect.DeepEqual(before.Busy, after.Busy) {
		t.Errorf("busy extents changed:\nbefore %+v\nafter  %+v", before.Busy, after.Busy)
	}
	if !reflect.DeepEqual(before.Pins, after.Pins) {
		t.Errorf("pins changed:\nbefore %+v\nafter  %+v", before.Pins, after.Pins)
	}
	if !reflect.DeepEqual(before.Files, after.Files) {
		t.Errorf("files changed:\nbefore %+v\nafter  %+v", before.Files, after.Files)
	}
	for k, v := range before.Data {
		if !bytes.Equal(v, after.Data[k]) {
			t.Errorf("value of %q changed", k)
		}
	}
	mustCheck(t, s)
}

// pattern returns n bytes that differ from zeros and from every other seed.
func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i%251) | 1
	}
	return b
}

// pinBytes concatenates a pin's slices.
func pinBytes(p Pin) []byte {
	var out []byte
	for _, b := range p.Bytes() {
		out = append(out, b...)
	}
	return out
}

// allZero reports whether b holds only zeros.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// mustPut stores value under key.
func mustPut(t testing.TB, s *Store, key string, value []byte) {
	t.Helper()
	if err := s.Put(key, value); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}

// mustOpen opens key.
func mustOpen(t testing.TB, s *Store, key string) *File {
	t.Helper()
	f, err := s.Open(key)
	if err != nil {
		t.Fatalf("open %q: %v", key, err)
	}
	return f
}

// mustGet returns the value of key.
func mustGet(t testing.TB, s *Store, key string) []byte {
	t.Helper()
	v, err := s.Get(key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return v
}

// mustPin pins [off, off+n) of f.
func mustPin(t testing.TB, f *File, off, n int64, o PinOptions) Pin {
	t.Helper()
	p, err := f.Pin(off, n, o)
	if err != nil {
		t.Fatalf("pin %q [%d,+%d): %v", f.Key(), off, n, err)
	}
	return p
}

// wantErr fails the test unless err wraps target.
func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want one wrapping %v", err, target)
	}
}

// within runs fn and fails the test if it does not return within d: a
// liveness bound, not a speed target.
func within(t testing.TB, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not complete within %v (stuck)", what, d)
	}
}

// t0 is the context of calls that have no deadline.
func t0() context.Context { return context.Background() }
