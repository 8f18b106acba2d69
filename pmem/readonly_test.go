//go:build unix

package pmem

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

// TestReadOnlyOpenMapsWithoutWritePermission proves a read-only region can
// be read but not stored into (the store faults, here turned into a panic),
// and that neither leaves a trace in the file.
func TestReadOnlyOpenMapsWithoutWritePermission(t *testing.T) {
	path := filepath.Join(t.TempDir(), "region")
	r, err := Create(path, CreateOptions{BlockSize: 4096, Size: 8 * 4096})
	if err != nil {
		t.Fatal(err)
	}
	copy(r.Bytes(Extent{Start: 1, Len: 1}), "hello")
	if err := r.Flush(Extent{Start: 1, Len: 1}); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)

	ro, err := OpenWith(path, OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	b := ro.Bytes(Extent{Start: 1, Len: 1})
	if string(b[:5]) != "hello" {
		t.Fatalf("read %q", b[:5])
	}
	ro.Prefault(Extent{Start: 1, Len: 2}) // must not fault or write
	faulted := func() (faulted bool) {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() { faulted = recover() != nil }()
		b[0] = 'j'
		return false
	}()
	if !faulted {
		t.Fatal("a store into a read-only region did not fault")
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi2, _ := os.Stat(path)
	if !bytes.Equal(before, after) || !fi.ModTime().Equal(fi2.ModTime()) {
		t.Fatal("a read-only open changed the region file")
	}
	if _, err := OpenWith(path, OpenOptions{ReadOnly: true, powerCut: newPowerCut(1)}); err == nil {
		t.Fatal("read-only emulated media were accepted")
	}
}
