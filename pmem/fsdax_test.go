//go:build unix

// This file checks a region on a real fsdax filesystem, when the test is
// given one with -fsdax-dir.

package pmem

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var fsdaxDir = flag.String("fsdax-dir", "", "directory on a filesystem mounted -o dax; enables TestRegionOnFsdax")

// TestRegionOnFsdax proves the DAX path end to end: the region maps with
// MAP_SYNC, stores flushed with cache line write-back are in the file after
// a reopen, and a plain read of the file sees them too.
func TestRegionOnFsdax(t *testing.T) {
	if *fsdaxDir == "" {
		t.Skip("no -fsdax-dir given")
	}
	path := filepath.Join(*fsdaxDir, fmt.Sprintf("pmem-test-%d.region", os.Getpid()))
	r, err := Create(path, CreateOptions{Size: 32 << 20})
	if err != nil {
		t.Fatalf("Create on fsdax: %v", err)
	}
	defer os.Remove(path)
	if !r.DAX() {
		r.Close()
		t.Fatalf("region in %s is not mapped with MAP_SYNC (FlushMethod %s)", *fsdaxDir, r.FlushMethod())
	}
	t.Logf("DAX region %s: %d blocks of %d bytes, flush with %s", path, r.BlockCount(), r.BlockSize(), r.FlushMethod())

	extents := []Extent{{Start: 1, Len: 1}, {Start: 100, Len: 16}, {Start: Block(r.BlockCount() - 3), Len: 3}}
	for i, e := range extents {
		r.Prefault(e)
		fill(r.Bytes(e), uint64(i+1))
		if err := r.Flush(e); err != nil {
			t.Fatalf("Flush(%v): %v", e, err)
		}
	}
	copy(r.Bytes(Extent{Start: 50, Len: 1})[10:], "partial")
	if err := r.FlushBytes(50*r.BlockSize()+10, 7); err != nil {
		t.Fatalf("FlushBytes: %v", err)
	}
	r.Drain()
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err = Open(path)
	if err != nil {
		t.Fatalf("Open on fsdax: %v", err)
	}
	defer r.Close()
	if !r.DAX() {
		t.Fatal("reopened region is not mapped with MAP_SYNC")
	}
	bs := r.BlockSize()
	for i, e := range extents {
		want := make([]byte, int64(e.Len)*bs)
		fill(want, uint64(i+1))
		if !bytes.Equal(r.Bytes(e), want) {
			t.Fatalf("extent %v differs after reopen", e)
		}
		if !bytes.Equal(raw[int64(e.Start)*bs:int64(e.End())*bs], want) {
			t.Fatalf("extent %v differs in a plain read of the file", e)
		}
	}
	if got := string(r.Bytes(Extent{Start: 50, Len: 1})[10:17]); got != "partial" {
		t.Fatalf("partial write reads back as %q", got)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
}
