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

// TestWindowStaleReadsZeros: Stale documents that a stale window reads as
// zeros, so a reader that sees Stale() return true must then read zeros.
// Remove marks a window stale before it maps the zero pages, which leaves
// an instant in which a reader sees Stale() and the removed file's bytes.
// The race is narrow, so the test tries many times; it only ever fails
// when the order is wrong. (Found by TestWindowStress.)
func TestWindowStaleReadsZeros(t *testing.T) {
	s := openWindowStore(t, int64(os.Getpagesize()))
	page := int64(os.Getpagesize())
	rounds := 300
	if testing.Short() {
		rounds = 50
	}
	seen := 0
	for round := range rounds {
		if err := s.Put("k", bytes.Repeat([]byte{'v'}, int(4*page))); err != nil {
			t.Fatal(err)
		}
		f, err := s.Open("k")
		if err != nil {
			t.Fatal(err)
		}
		w, err := f.Map(0, 4*page, dax.MapOptions{})
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		bad := make(chan int64, 1)
		spinning := make(chan struct{})
		go func() {
			close(spinning)
			for !w.Stale() {
			}
			b := w.Bytes()
			for i := int64(0); i < int64(len(b)); i += page {
				if b[i] != 0 {
					bad <- i
					return
				}
			}
			bad <- -1
		}()
		<-spinning // the reader polls while Remove runs
		if err := s.Remove("k"); err != nil {
			t.Fatal(err)
		}
		if at := <-bad; at >= 0 {
			seen++
			if seen == 1 {
				t.Errorf("round %d: Stale() returned true while the window still showed the removed file's bytes at %d", round, at)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if seen > 0 {
		t.Errorf("%d of %d rounds saw a stale window with the removed file's bytes", seen, rounds)
	}
}

// TestWindowTruncateOnAFullRegionNeedsNoBlock: on a full region, a
// truncate to the middle of a block needs no new block without a window,
// and a follow window must not change that: it holds no block references
// (WINDOWS.md), and a writable one's doc says an operation that cannot
// back its pages still succeeds, leaving them read-only zeros. Today the
// truncate fails with ErrNoSpace under any follow window. (Found reading
// the op log of a TestWindowStress run.)
func TestWindowTruncateOnAFullRegionNeedsNoBlock(t *testing.T) {
	const bs = 4096
	for _, tc := range []struct {
		name string
		opts *dax.MapOptions
	}{
		{"without a window", nil},
		{"under a read-only follow window", &dax.MapOptions{}},
		{"under a writable follow window", &dax.MapOptions{Writable: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := dax.Open(t.TempDir(), &dax.Options{Size: 33 * bs, BlockSize: bs, NoAdminSocket: true, AllocWait: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			f, err := s.Create("k")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(bytes.Repeat([]byte{1}, 10*bs), 0); err != nil {
				t.Fatal(err)
			}
			if tc.opts != nil {
				w, err := f.Map(0, 16*bs, *tc.opts)
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
			}
			if err := s.Put("fill", bytes.Repeat([]byte{2}, 22*bs)); err != nil {
				t.Fatal(err)
			}
			if st, err := s.Stats(); err != nil || st.FreeBlocks != 0 {
				t.Fatalf("the region is not full: %+v %v", st, err)
			}
			if err := f.Truncate(6*bs + 240); err != nil {
				t.Fatalf("truncate to the middle of a block on a full region: %v", err)
			}
			p := make([]byte, 7*bs)
			n, _ := f.ReadAt(p, 0)
			if n != 6*bs+240 || !bytes.Equal(p[:n], bytes.Repeat([]byte{1}, n)) {
				t.Fatalf("after the truncate ReadAt returns %d bytes, want %d ones", n, 6*bs+240)
			}
		})
	}
}
