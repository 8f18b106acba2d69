package test

// Regression tests of mapping windows: each is a case the window model
// test or stress found, reduced to its few steps.

import (
	"bytes"
	"os"
	"testing"

	"github.com/daxstore/daxstore/dax"
)

// openWindowStore opens a store of 8 KiB blocks (two pages each) for a
// regression test.
func openWindowStore(t *testing.T, bs int64) *dax.Store {
	t.Helper()
	s, err := dax.Open(t.TempDir(), &dax.Options{Size: 256 * bs, BlockSize: uint32(bs), NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestWindowPageWhollyPastEOFInsideTheLastBlockIsReadOnly: with blocks of
// two pages, the second page of the last block lies wholly past EOF when
// the file ends in the first. WINDOWS.md: pages wholly past EOF are
// read-only zeros, also in a writable follow window; a store there must
// fault, and must never show in the file once it grows.
// (Found by TestWindowModel, "8k blocks without sync", -wmodel.seed=3.)
func TestWindowPageWhollyPastEOFInsideTheLastBlockIsReadOnly(t *testing.T) {
	page := int64(os.Getpagesize())
	bs := 2 * page
	s := openWindowStore(t, bs)
	f, err := s.Create("k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{'a'}, 100), 0); err != nil {
		t.Fatal(err)
	}
	w, err := f.Map(0, bs, dax.MapOptions{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	at := page + 10 // in the second page: wholly past EOF (100)
	if err := catchFault(func() { w.Bytes()[at] = 'X' }); err == nil {
		t.Errorf("a store at %d, in a page wholly past EOF %d, did not fault", at, 100)
	}
	if got := w.Bytes()[at]; got != 0 {
		t.Errorf("the window shows %q at %d, past EOF 100: want zero", got, at)
	}
	if err := f.Truncate(bs); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 1)
	if _, err := f.ReadAt(p, at); err != nil {
		t.Fatal(err)
	}
	if p[0] != 0 {
		t.Errorf("after growing the file over it, ReadAt shows the store past the old EOF: %q at %d", p[0], at)
	}
	if got := w.Bytes()[at]; got != p[0] {
		t.Errorf("window shows %q at %d, ReadAt %q", got, at, p[0])
	}
}
