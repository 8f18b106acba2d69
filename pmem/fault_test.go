//go:build unix

package pmem

import (
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestGuardedCopiesTurnAFaultIntoAnError(t *testing.T) {
	r, err := Create(filepath.Join(t.TempDir(), "region"), CreateOptions{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	e := Extent{Start: 100, Len: 1}
	src := []byte("bytes that will be cut off")
	if _, err := Copy(r.Bytes(e), src); err != nil {
		t.Fatalf("Copy into a healthy mapping: %v", err)
	}
	// Another process cuts the file down to its superblock: every page of
	// the mapping past it now faults.
	if err := os.Truncate(r.Path(), SuperblockSize); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	ops := map[string]func() error{
		"Copy out of the mapping": func() error { _, err := Copy(buf, r.Bytes(e)); return err },
		"Copy into the mapping":   func() error { _, err := Copy(r.Bytes(e), src); return err },
		"Clear":                   func() error { return Clear(r.Bytes(e)) },
		"IsZero":                  func() error { _, err := IsZero(r.Bytes(e)); return err },
		"Append":                  func() error { _, err := Append(nil, r.Bytes(e)); return err },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, ErrFault) || !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s after the file shrank: %v, want ErrFault wrapping ErrCorrupt", name, err)
		}
		// The goroutine's setting is restored: a later fault elsewhere
		// still kills the process, as Go's default wants.
		if debug.SetPanicOnFault(false) {
			t.Fatalf("%s left SetPanicOnFault on", name)
		}
	}
	prev := debug.SetPanicOnFault(true)
	if err := Clear(r.Bytes(e)); !errors.Is(err, ErrFault) {
		t.Errorf("Clear with SetPanicOnFault already on: %v", err)
	}
	if !debug.SetPanicOnFault(prev) {
		t.Error("Clear turned off a SetPanicOnFault its caller had on")
	}
}

// BenchmarkCopy4KiB weighs the fault guard on the hot read path: the
// built-in copy against Copy, which adds two SetPanicOnFault calls and a
// deferred recover.
func BenchmarkCopy4KiB(b *testing.B) {
	r := benchRegion(b, 1<<20)
	src := r.Bytes(Extent{Start: 1, Len: 1})
	dst := make([]byte, len(src))
	b.Run("builtin", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			copy(dst, src)
		}
	})
	b.Run("guard-only", func(b *testing.B) {
		// An empty guarded copy: the fixed cost the guard adds.
		for b.Loop() {
			if _, err := Copy(dst[:0], src[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("guarded", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			if _, err := Copy(dst, src); err != nil {
				b.Fatal(err)
			}
		}
	})
}
