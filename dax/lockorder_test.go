package dax

import (
	"errors"
	"testing"
	"time"
)

// TestErrorPathsTakeNoNamespaceLock: the namespace lock comes before every
// file lock, so an error path holding the IO or extent-map lock must not
// take it to name the file. With the namespace lock held elsewhere, such a
// path would block there holding the file lock (a lock-order inversion
// that deadlocks against Rename or Remove). Every error below must come
// back while the test holds the namespace lock.
func TestErrorPathsTakeNoNamespaceLock(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "k", pattern(1, 2*testBS))
	f := mustOpen(t, s, "k")
	if err := s.Remove("k"); err != nil {
		t.Fatal(err)
	}
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	calls := []struct {
		name string
		call func() error
	}{
		{"Size", func() error { _, err := f.Size(); return err }},
		{"ReadAt", func() error { _, err := f.ReadAt(make([]byte, 10), 0); return err }},
		{"WriteAt", func() error { _, err := f.WriteAt([]byte("x"), 0); return err }},
		{"Truncate", func() error { return f.Truncate(1) }},
		{"PunchHole", func() error { return f.PunchHole(0, 1) }},
		{"Allocate", func() error { return f.Allocate(0, 1) }},
		{"Pin", func() error { _, err := f.Pin(0, 1, PinOptions{}); return err }},
	}
	for _, c := range calls {
		var err error
		within(t, 10*time.Second, c.name+" of a removed file with the namespace lock held elsewhere", func() { err = c.call() })
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: %v, want ErrNotFound", c.name, err)
		}
	}
}
