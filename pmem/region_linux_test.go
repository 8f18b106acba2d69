// This file tests the Linux-only promises: Open does not fault in the data
// blocks, and Prefault does once they are reserved.

package pmem

import (
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// residentPages counts the pages of b that are in memory.
func residentPages(t *testing.T, b []byte) int {
	t.Helper()
	vec := make([]byte, (int64(len(b))+pageSize-1)/pageSize)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

func TestOpenLeavesDataBlocksUntouchedAndPrefaultPopulatesReservedBlocks(t *testing.T) {
	// A sparse 1 GiB region, built by hand so that no filesystem
	// preallocates it: only Open can bring its pages in.
	const blocks = 1 << 18
	path := filepath.Join(t.TempDir(), "region")
	enc := mustMarshal(t, Superblock{Version: FormatVersion, BlockSize: 4096, BlockCount: blocks, UUID: [16]byte{1}})
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(enc); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(blocks * 4096); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	r, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer r.Close()
	all := r.Bytes(Extent{Start: 1, Len: blocks - 1})
	if n := residentPages(t, all); n > 64 {
		t.Fatalf("after Open %d pages of the data blocks are resident; Open must not prefault", n)
	}

	e := Extent{Start: 1000, Len: 64}
	before := allocatedBytes(t, path)
	r.Prefault(e)
	if n := residentPages(t, r.Bytes(e)); n != 0 {
		t.Fatalf("Prefault of unreserved blocks brought %d pages in", n)
	}
	if got := allocatedBytes(t, path); got != before {
		t.Fatalf("Prefault of unreserved blocks allocated %d bytes of file space", got-before)
	}
	if err := r.Reserve(e); err != nil {
		t.Fatal(err)
	}
	r.Prefault(e)
	if r.noPopulate.Load() {
		t.Skip("kernel has no MADV_POPULATE_WRITE")
	}
	if n, want := residentPages(t, r.Bytes(e)), int(e.Len*4096/uint64(pageSize)); n != want {
		t.Fatalf("after Reserve and Prefault(%v) %d of %d pages are resident", e, n, want)
	}
}
