//go:build linux

package pmem

// Tests of Span: blocks and zero pages mapped at fixed addresses alias the
// region, on a real mapping and on emulated media.

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
)

func TestSpanMapsBlocksAndZerosAtFixedAddresses(t *testing.T) {
	for _, emulated := range []bool{false, true} {
		name := "file"
		if emulated {
			name = "emulated"
		}
		t.Run(name, func(t *testing.T) {
			opts := CreateOptions{Size: 1 << 20}
			if emulated {
				opts.powerCut = newPowerCut(1)
			}
			r, err := Create(filepath.Join(t.TempDir(), "region"), opts)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			bs := r.BlockSize()
			copy(r.Bytes(Extent{Start: 5, Len: 1}), "block five")
			copy(r.Bytes(Extent{Start: 9, Len: 2}), "blocks nine and ten")
			sp, err := r.ReserveSpan(4 * bs)
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Release()
			if err := sp.MapBlocks(0, Extent{Start: 9, Len: 2}, true); err != nil {
				t.Fatal(err)
			}
			if err := sp.MapZeros(2*bs, bs); err != nil {
				t.Fatal(err)
			}
			if err := sp.MapBlocks(3*bs, Extent{Start: 5, Len: 1}, false); err != nil {
				t.Fatal(err)
			}
			b := sp.Bytes()
			if !bytes.HasPrefix(b, []byte("blocks nine and ten")) || !bytes.HasPrefix(b[3*bs:], []byte("block five")) {
				t.Fatal("span does not show the mapped blocks")
			}
			for _, c := range b[2*bs : 3*bs] {
				if c != 0 {
					t.Fatal("zero pages are not zero")
				}
			}
			copy(b[bs:], "through the span")
			if !bytes.HasPrefix(r.Bytes(Extent{Start: 10, Len: 1}), []byte("through the span")) {
				t.Fatal("a store through the span does not reach the region")
			}
			if err := sp.MapBlocks(bs, Extent{Start: 0, Len: 1}, false); err == nil {
				t.Fatal("the superblock was mapped")
			}
			if err := sp.MapZeros(10, bs); err == nil {
				t.Fatal("an unaligned range was mapped")
			}
			if err := sp.MapZeros(3*bs, 2*bs); err == nil {
				t.Fatal("a range past the span was mapped")
			}
			if err := sp.Release(); err != nil {
				t.Fatal(err)
			}
			if err := sp.Release(); err != nil {
				t.Fatalf("second Release: %v", err)
			}
		})
	}
}

func TestSpanOfTwoMiBIsAligned(t *testing.T) {
	r, err := Create(filepath.Join(t.TempDir(), "region"), CreateOptions{Size: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sp, err := r.ReserveSpan(2<<20 + 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Release()
	if addr := uintptr(sp.base); addr%(2<<20) != 0 {
		t.Fatalf("span at %#x is not 2 MiB aligned", addr)
	}
}

func TestSpanRefusesSmallBlocksAndWritableReadOnlyRegions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "region")
	r, err := Create(path, CreateOptions{Size: 1 << 20, BlockSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReserveSpan(4096); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("512-byte blocks: %v, want ErrUnsupported", err)
	}
	r.Close()
	path = filepath.Join(t.TempDir(), "region")
	r, err = Create(path, CreateOptions{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	ro, err := OpenWith(path, OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	sp, err := ro.ReserveSpan(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Release()
	if err := sp.MapBlocks(0, Extent{Start: 1, Len: 1}, true); err == nil {
		t.Fatal("a read-only region mapped a block writable")
	}
	if err := sp.MapBlocks(0, Extent{Start: 1, Len: 1}, false); err != nil {
		t.Fatal(err)
	}
}

// TestSpanMapsPagesOfABlock: with blocks of two pages, MapBlockPages maps
// one page of a block, which a window needs for the file's last block
// when the file ends in its first page; bad ranges change nothing.
func TestSpanMapsPagesOfABlock(t *testing.T) {
	ps := pageSize
	r, err := Create(filepath.Join(t.TempDir(), "region"), CreateOptions{Size: 1 << 20, BlockSize: uint32(2 * ps)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	blk := r.Bytes(Extent{Start: 3, Len: 1})
	copy(blk, "first page")
	copy(blk[ps:], "second page")
	sp, err := r.ReserveSpan(4 * ps)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Release()
	if err := sp.MapZeros(0, 4*ps); err != nil {
		t.Fatal(err)
	}
	if err := sp.MapBlockPages(0, Extent{Start: 3, Len: 1}, ps, ps, false); err != nil {
		t.Fatal(err)
	}
	if err := sp.MapBlockPages(2*ps, Extent{Start: 3, Len: 1}, 0, ps, false); err != nil {
		t.Fatal(err)
	}
	b := sp.Bytes()
	if !bytes.HasPrefix(b, []byte("second page")) || !bytes.HasPrefix(b[2*ps:], []byte("first page")) {
		t.Fatal("the span does not show the pages mapped")
	}
	if b[ps] != 0 || b[3*ps] != 0 {
		t.Fatal("the pages left as zeros are not zero")
	}
	for _, c := range []struct{ from, n int64 }{{ps, 2 * ps}, {10, ps}, {0, 10}, {-ps, ps}, {0, 0}} {
		if err := sp.MapBlockPages(0, Extent{Start: 3, Len: 1}, c.from, c.n, false); err == nil {
			t.Errorf("bytes [%d,+%d) of a block of %d were mapped", c.from, c.n, 2*ps)
		}
	}
	if !bytes.HasPrefix(b, []byte("second page")) {
		t.Fatal("a refused map changed the span")
	}
}
