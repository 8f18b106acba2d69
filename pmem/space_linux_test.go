package pmem

// Region space follows use: Create leaves the file sparse, Reserve
// allocates it in chunks, and a full filesystem is an error, never a
// SIGBUS.

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/daxstore/daxstore/internal/tmpfs"
)

// allocatedBytes returns the file space allocated to path (st_blocks).
func allocatedBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// fsMetadataSlack is what a filesystem may add to st_blocks for its own
// metadata as a file grows: ext4 counts the blocks of a file's extent tree
// (one more 4 KiB block once the extents outgrow the inode), tmpfs nothing.
// It is far below a space chunk, so a chunk allocated twice, or not at
// all, still shows.
const fsMetadataSlack = 64 << 10

// grewAsChunks reports whether a file that grew by got bytes grew by the
// want bytes of its chunks, give or take the filesystem's metadata.
func grewAsChunks(got, want int64) bool {
	return got >= want && got <= want+fsMetadataSlack
}

func TestCreateIsSparseAndReserveAllocatesWholeChunks(t *testing.T) {
	const size = 16 << 30
	path := filepath.Join(t.TempDir(), "region")
	r, err := Create(path, CreateOptions{Size: size})
	if err != nil {
		t.Fatalf("Create of a 16 GiB region: %v", err)
	}
	defer func() { _ = r.Close() }()
	if got := allocatedBytes(t, path); got > 64<<10 {
		t.Fatalf("a new 16 GiB region has %d bytes allocated, want at most 64 KiB (the superblock)", got)
	}
	chunk := r.SpaceChunk()
	if chunk != MaxSpaceChunk {
		t.Fatalf("SpaceChunk of a 16 GiB region = %d, want %d", chunk, MaxSpaceChunk)
	}
	perChunk := uint64(chunk / r.BlockSize())
	base := allocatedBytes(t, path)
	grew := func(want int64, what string) {
		t.Helper()
		if got := allocatedBytes(t, path) - base; !grewAsChunks(got, want) {
			t.Fatalf("%s: the file grew by %d bytes, want %d (and at most %d for the filesystem's metadata)", what, got, want, fsMetadataSlack)
		}
	}

	first := Extent{Start: 1, Len: 1}
	if r.Reserved(first) {
		t.Fatal("block 1 is Reserved before any Reserve")
	}
	if err := r.Reserve(first); err != nil {
		t.Fatalf("Reserve(%v): %v", first, err)
	}
	// The superblock's block was allocated already and lies in chunk 0.
	grew(chunk-r.BlockSize(), "Reserve of one block")
	if !r.Reserved(Extent{Start: 1, Len: perChunk - 1}) || r.Reserved(Extent{Start: Block(perChunk), Len: 1}) {
		t.Fatal("Reserve of block 1 must reserve exactly chunk 0")
	}
	copy(r.Bytes(Extent{Start: Block(perChunk - 1), Len: 1}), "last block of chunk 0")

	// Blocks that straddle chunks 1 and 2 reserve both; again, nothing.
	straddle := Extent{Start: Block(2*perChunk - 1), Len: 2}
	for range 2 {
		if err := r.Reserve(straddle); err != nil {
			t.Fatalf("Reserve(%v): %v", straddle, err)
		}
	}
	grew(3*chunk-r.BlockSize(), "Reserve across chunks 1 and 2, twice")

	// After a reopen nothing is known to be reserved, and reserving again
	// costs no space.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if r, err = Open(path); err != nil {
		t.Fatal(err)
	}
	if r.Reserved(first) {
		t.Fatal("a reopened region claims chunk 0 Reserved without a Reserve")
	}
	if err := r.Reserve(Extent{Start: 1, Len: 3*perChunk - 1}); err != nil {
		t.Fatal(err)
	}
	grew(3*chunk-r.BlockSize(), "Reserve of reserved chunks after a reopen")
	if got := string(r.Bytes(Extent{Start: Block(perChunk - 1), Len: 1})[:21]); got != "last block of chunk 0" {
		t.Fatalf("after a reopen and a second Reserve, the block holds %q", got)
	}
}

func TestReserveRefusesWhatItCannotReserve(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "region")
	r, err := Create(path, CreateOptions{BlockSize: 4096, Size: 64 * 4096})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []Extent{{Start: 0, Len: 1}, {Start: 1, Len: 0}, {Start: 63, Len: 2}, {Start: 64, Len: 1}} {
		if err := r.Reserve(e); err == nil {
			t.Errorf("Reserve(%v) of a 64-block region succeeded", e)
		}
		if r.Reserved(e) {
			t.Errorf("Reserved(%v) of a 64-block region is true", e)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Reserve(Extent{Start: 1, Len: 1}); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Reserve after Close = %v, want os.ErrClosed", err)
	}
	ro, err := OpenWith(path, OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.Reserve(Extent{Start: 1, Len: 1}); !errors.Is(err, syscall.EROFS) {
		t.Errorf("Reserve of a read-only region = %v, want EROFS", err)
	}
}

func TestReserveOnAFullFilesystemIsENOSPCUntilItGrows(t *testing.T) {
	dir := t.TempDir()
	tmpfs.Mount(t, dir, "4m")
	path := filepath.Join(dir, "region")
	r, err := Create(path, CreateOptions{BlockSize: 4096, Size: 16 << 20})
	if err != nil {
		t.Fatalf("Create of a 16 MiB region on a 4 MiB tmpfs: %v", err)
	}
	defer r.Close()
	perChunk := uint64(r.SpaceChunk() / r.BlockSize())
	var failed Extent
	for c := uint64(0); c*perChunk < r.BlockCount(); c++ {
		e := Extent{Start: Block(c * perChunk), Len: perChunk}
		if c == 0 {
			e = Extent{Start: 1, Len: perChunk - 1} // block 0 is the superblock
		}
		if err := r.Reserve(e); err != nil {
			if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "tmpfs") {
				t.Fatalf("Reserve(%v) on a full tmpfs = %v, want ENOSPC naming tmpfs", e, err)
			}
			if r.Reserved(e) {
				t.Fatalf("a failed Reserve(%v) left it Reserved", e)
			}
			t.Logf("Reserve(%v): %v", e, err)
			failed = e
			break
		}
		clear(r.Bytes(e)) // reserved blocks take stores without a fault
	}
	if failed.Len == 0 {
		t.Fatal("a 16 MiB region reserved all of its space on a 4 MiB tmpfs")
	}
	tmpfs.Resize(t, dir, "32m")
	if err := r.Reserve(failed); err != nil {
		t.Fatalf("Reserve(%v) after the filesystem grew: %v", failed, err)
	}
	clear(r.Bytes(failed))
}

func TestConcurrentReservesAllocateEachChunkOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "region")
	r, err := Create(path, CreateOptions{BlockSize: 4096, Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	perChunk := uint64(r.SpaceChunk() / r.BlockSize())
	base := allocatedBytes(t, path)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			// Every goroutine reserves the first 8 chunks, each from a
			// different block, in a different order.
			for i := range 8 {
				c := uint64((i + g) % 8)
				e := Extent{Start: Block(max(1, c*perChunk+uint64(g))), Len: 1}
				if err := r.Reserve(e); err != nil {
					errs <- err
					return
				}
				clear(r.Bytes(e))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if !r.Reserved(Extent{Start: 1, Len: 8*perChunk - 1}) || r.Reserved(Extent{Start: Block(8 * perChunk), Len: 1}) {
		t.Fatal("8 goroutines reserving chunks 0-7 did not reserve exactly those")
	}
	if got, want := allocatedBytes(t, path)-base, 8*r.SpaceChunk()-r.BlockSize(); !grewAsChunks(got, want) {
		t.Fatalf("the file grew by %d bytes, want %d (8 chunks, and at most %d for the filesystem's metadata)", got, want, fsMetadataSlack)
	}
}
