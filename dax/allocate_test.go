package dax

// Tests that no block ever shows its previous owner's bytes: unwritten
// extents read as zeros, and a write into part of a new or unwritten block
// zeroes the rest of it.

import (
	"bytes"
	"testing"

	"github.com/daxstore/daxstore/pmem"
)

// reusedBlocksStore returns a store of exactly 4 data blocks that key "old"
// filled with a pattern and then gave up, so any new key gets those blocks
// with the old bytes still in them.
func reusedBlocksStore(t *testing.T) *Store {
	t.Helper()
	s := newStore(t, 5*testBS, nil)
	mustPut(t, s, "old", pattern(0xA0, 4*testBS))
	if err := s.Remove("old"); err != nil {
		t.Fatal(err)
	}
	// The stale bytes really are there, so zeros below prove something.
	if old := s.region.Bytes(pmem.Extent{Start: 1, Len: 4}); !bytes.Equal(old, pattern(0xA0, 4*testBS)) {
		t.Fatal("setup: the removed key's bytes are not in the region")
	}
	return s
}

func readAll(t *testing.T, f *File) []byte {
	t.Helper()
	size, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, size)
	if n, err := f.ReadAt(buf, 0); err != nil || int64(n) != size {
		t.Fatalf("read %d of %d bytes: %v", n, size, err)
	}
	return buf
}

func TestAllocatedBlocksReadAsZerosUntilWritten(t *testing.T) {
	s := reusedBlocksStore(t)
	f, err := s.Create("new")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Allocate(0, 4*testBS); err != nil {
		t.Fatal(err)
	}
	if fi, _ := s.Stat("new"); fi.Blocks != 4 || fi.Size != 4*testBS {
		t.Fatalf("after Allocate: %+v, want 4 blocks and size %d", fi, 4*testBS)
	}
	if got := readAll(t, f); !allZero(got) {
		t.Fatal("unwritten blocks show the old key's bytes")
	}
	mustCheck(t, s)

	t.Run("a write into part of an unwritten block zeroes the rest of it", func(t *testing.T) {
		if _, err := f.WriteAt([]byte("0123456789"), testBS+100); err != nil {
			t.Fatal(err)
		}
		want := make([]byte, 4*testBS)
		copy(want[testBS+100:], "0123456789")
		if got := readAll(t, f); !bytes.Equal(got, want) {
			t.Fatalf("file differs from 10 bytes in zeros at byte %d", firstDiff(got, want))
		}
		// In the region too, so a later pin of the block sees the same.
		f.in.mapMu.Lock()
		m := f.in.extents.find(1, 2)
		f.in.mapMu.Unlock()
		if len(m) != 1 || m[0].unwritten {
			t.Fatalf("file block 1 maps to %+v, want one written block", m)
		}
		if blk := s.region.Bytes(m[0].region()); !bytes.Equal(blk, want[testBS:2*testBS]) {
			t.Fatal("the region block still holds old bytes around the write")
		}
		mustCheck(t, s)
	})
	t.Run("a pin of an unwritten block sees zeros", func(t *testing.T) {
		p := mustPin(t, f, 3*testBS, testBS, PinOptions{})
		defer p.Unpin()
		if !allZero(pinBytes(p)) {
			t.Fatal("pin of an unwritten block shows old bytes")
		}
	})
	t.Run("allocate over written blocks leaves their data alone", func(t *testing.T) {
		before := readAll(t, f)
		if err := f.Allocate(0, 4*testBS); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, f); !bytes.Equal(got, before) {
			t.Fatal("Allocate changed written data")
		}
		mustCheck(t, s)
	})
}

func TestAWriteIntoAHoleZeroesTheRestOfItsNewBlock(t *testing.T) {
	s := reusedBlocksStore(t)
	f, err := s.Create("new")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("0123456789"), 2*testBS+50); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(4 * testBS); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 4*testBS)
	copy(want[2*testBS+50:], "0123456789")
	if got := readAll(t, f); !bytes.Equal(got, want) {
		t.Fatalf("file differs from 10 bytes in zeros at byte %d", firstDiff(got, want))
	}
	p := mustPin(t, f, 0, 4*testBS, PinOptions{})
	defer p.Unpin()
	if got := pinBytes(p); !bytes.Equal(got, want) {
		t.Fatalf("pin differs from 10 bytes in zeros at byte %d", firstDiff(got, want))
	}
	mustCheck(t, s)
}

func TestZeroRangeThenPartialWriteShowsNoOldBytes(t *testing.T) {
	s := newStore(t, 32*testBS, nil)
	mustPut(t, s, "k", pattern(0xB0, 4*testBS))
	f := mustOpen(t, s, "k")
	// Unpinned blocks turn unwritten in place: their old bytes stay in the
	// region, and must never show through.
	if err := f.ZeroRange(0, 4*testBS); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f); !allZero(got) {
		t.Fatal("zeroed range does not read zeros")
	}
	if _, err := f.WriteAt([]byte("0123456789"), testBS+7); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 4*testBS)
	copy(want[testBS+7:], "0123456789")
	if got := readAll(t, f); !bytes.Equal(got, want) {
		t.Fatalf("file differs from 10 bytes in zeros at byte %d", firstDiff(got, want))
	}
	// Truncating into the block and growing again reads zeros too.
	if err := f.Truncate(testBS + 9); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(4 * testBS); err != nil {
		t.Fatal(err)
	}
	clear(want[testBS+9:])
	if got := readAll(t, f); !bytes.Equal(got, want) {
		t.Fatalf("file differs after truncate and grow at byte %d", firstDiff(got, want))
	}
	mustCheck(t, s)
}
