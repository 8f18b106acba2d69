package dax

// Every error the package returns names the package once: a wrapper that
// adds "daxstore:" around an error that already carries it makes messages
// like "daxstore: put "k": daxstore: store failed ...".

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// prefixCount counts the "daxstore: " prefixes in err's message: at its
// start or after a space, so that a path like /tmp/daxstore: is not one.
func prefixCount(err error) int {
	return strings.Count(" "+err.Error(), " daxstore: ")
}

// namedCall is one call that must fail.
type namedCall struct {
	name string
	call func() error
}

// errorCalls provokes the errors of a healthy store holding key "k" (two
// written blocks, the first pinned by p), in order: the last one detaches
// the pinned block. Each call returns an error.
func errorCalls(s *Store, f *File, p Pin) []namedCall {
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	read := func(off int64) func() error {
		return func() error { _, err := f.ReadAt(make([]byte, 8), off); return err }
	}
	return []namedCall{
		{"Create of an invalid key", func() error { _, err := s.Create(""); return err }},
		{"Create of an existing key", func() error { _, err := s.Create("k"); return err }},
		{"Open of a missing key", func() error { _, err := s.Open("missing"); return err }},
		{"Stat of a missing key", func() error { _, err := s.Stat("missing"); return err }},
		{"Get of a missing key", func() error { _, err := s.Get("missing"); return err }},
		{"Put of an invalid key", func() error { return s.Put("a\x00", nil) }},
		{"Put larger than the region", func() error { return s.Put("big", make([]byte, 128*testBS)) }},
		{"Remove of a missing key", func() error { return s.Remove("missing") }},
		{"Rename of a missing key", func() error { return s.Rename("missing", "x") }},
		{"Rename onto an invalid key", func() error { return s.Rename("k", "") }},
		{"ReadAt at a negative offset", read(-1)},
		{"WriteAt past MaxFileSize", func() error { _, err := f.WriteAt([]byte{1}, MaxFileSize); return err }},
		{"Truncate to a negative size", func() error { return f.Truncate(-1) }},
		{"PunchHole of a bad range", func() error { return f.PunchHole(-1, 1) }},
		{"ZeroRange of a bad range", func() error { return f.ZeroRange(0, -1) }},
		{"Allocate of a bad range", func() error { return f.Allocate(-1, 1) }},
		{"Pin past the end", func() error { _, err := f.Pin(0, 3*testBS, PinOptions{}); return err }},
		{"Pin of an empty range", func() error { _, err := f.Pin(0, 0, PinOptions{}); return err }},
		{"Pin with a bad label", func() error { _, err := f.Pin(0, 1, PinOptions{Label: "\xff"}); return err }},
		{"Truncate under the Fail policy", func() error { return f.TruncateWith(context.Background(), 0, BreakOptions{Policy: PolicyFail}) }},
		{"Remove under the Fail policy", func() error { return s.RemoveWith(context.Background(), "k", BreakOptions{Policy: PolicyFail}) }},
		{"Put under the Fail policy", func() error { return s.PutWith(context.Background(), "k", nil, BreakOptions{Policy: PolicyFail}) }},
		{"Punch under an undefined policy", func() error { return f.PunchHoleWith(context.Background(), 0, 1, BreakOptions{Policy: 9}) }},
		{"Close with a pin outstanding", func() error { return s.Close() }},
		{"Open of a locked store", func() error { _, err := Open(s.Dir(), &Options{NoAdminSocket: true}); return err }},
		{"Open with a bad block size", func() error {
			_, err := Open(filepath.Join(s.Dir(), "sub"), &Options{BlockSize: 3000, NoAdminSocket: true})
			return err
		}},
		{"Open with an undefined policy", func() error {
			_, err := Open(filepath.Join(s.Dir(), "sub2"), &Options{BreakPolicy: 9, NoAdminSocket: true})
			return err
		}},
		{"ParseBreakPolicy of an unknown name", func() error { _, err := ParseBreakPolicy("later"); return err }},
		{"Inspect of a store held without an admin socket", func() error {
			_, err := Inspect(context.Background(), s.Dir())
			return err
		}},
		{"Inspect of a directory with no store", func() error {
			_, err := Inspect(context.Background(), filepath.Join(s.Dir(), "none"))
			return err
		}},
		// Last: it detaches the pinned block that the Fail cases need.
		{"Punch waiting with an expired context", func() error {
			return f.PunchHoleWith(expired, 0, testBS, BreakOptions{Policy: PolicyWait})
		}},
	}
}

// unusableCalls provokes the errors of a store that failed or was closed,
// with f open on "k" and p a pin of it.
func unusableCalls(s *Store, f *File, p Pin) map[string]func() error {
	return map[string]func() error{
		"Create":    func() error { _, err := s.Create("new"); return err },
		"Put":       func() error { return s.Put("k", []byte("v")) },
		"Remove":    func() error { return s.Remove("k") },
		"Rename":    func() error { return s.Rename("k", "k2") },
		"WriteAt":   func() error { _, err := f.WriteAt(make([]byte, testBS), 4*testBS); return err },
		"Truncate":  func() error { return f.Truncate(0) },
		"PunchHole": func() error { return f.PunchHole(0, testBS) },
		"ZeroRange": func() error { return f.ZeroRange(0, testBS) },
		"Allocate":  func() error { return f.Allocate(8*testBS, testBS) },
		"Pin":       func() error { _, err := f.Pin(testBS, testBS, PinOptions{}); return err },
		"Flush":     func() error { return p.Flush() },
	}
}

func TestNoErrorCarriesTheDaxstorePrefixTwice(t *testing.T) {
	setup := func(t *testing.T) (*Store, *File, Pin) {
		s := newStore(t, 64*testBS, func(o *Options) { o.AllocWait = -1 })
		mustPut(t, s, "k", pattern(1, 2*testBS))
		f := mustOpen(t, s, "k")
		t.Cleanup(func() { f.Close() })
		p := mustPin(t, f, 0, testBS, PinOptions{Label: "holder"})
		return s, f, p
	}
	check := func(t *testing.T, name string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error", name)
			return
		}
		if n := prefixCount(err); n != 1 {
			t.Errorf("%s: %q carries daxstore: %d times, want once", name, err, n)
		}
	}
	t.Run("errors of a healthy store", func(t *testing.T) {
		s, f, p := setup(t)
		for _, c := range errorCalls(s, f, p) {
			check(t, c.name, c.call())
		}
	})
	t.Run("errors of a failed store", func(t *testing.T) {
		s, f, p := setup(t)
		s.poison(errors.New("injected journal fault"))
		check(t, "Check", s.Check())
		for name, call := range unusableCalls(s, f, p) {
			err := call()
			if name == "Flush" { // a flush changes no metadata: it still works
				continue
			}
			if !errors.Is(err, ErrFailed) {
				t.Errorf("%s: %v, want ErrFailed", name, err)
			}
			check(t, name, err)
		}
	})
	t.Run("errors of a closed store", func(t *testing.T) {
		s, f, p := setup(t)
		if err := s.CloseWith(context.Background(), CloseOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		for name, call := range unusableCalls(s, f, p) {
			err := call()
			if !errors.Is(err, ErrClosed) {
				t.Errorf("%s: %v, want ErrClosed", name, err)
			}
			check(t, name, err)
		}
		check(t, "Unpin", p.Unpin())
		check(t, "second Unpin", p.Unpin())
		_, err := s.Stats()
		check(t, "Stats", err)
		_, err = s.List("")
		check(t, "List", err)
		_, err = s.Get("k")
		check(t, "Get", err)
		_, err = s.Stat("k")
		check(t, "Stat", err)
		_, err = s.Open("k")
		check(t, "Open", err)
		_, err = s.Snapshot()
		check(t, "Snapshot", err)
		_, err = f.Size()
		check(t, "Size", err)
		_, err = f.ReadAt(make([]byte, 8), 0)
		check(t, "ReadAt", err)
		check(t, "Sync", f.Sync())
		check(t, "Check", s.Check())
		check(t, "Close", s.Close())
	})
}
