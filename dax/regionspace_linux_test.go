package dax

// Region space follows use: a new store's region takes no space until
// written, and a filesystem too small for the region makes operations fail
// with ErrNoSpace, not SIGBUS, until it grows.

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/daxstore/daxstore/internal/tmpfs"
)

// allocatedBytes returns the file space allocated to path (st_blocks).
func allocatedBytes(t testing.TB, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

func TestInitOfALargeRegionTakesNoSpaceUntilWritten(t *testing.T) {
	const size = 16 << 30
	s := newStore(t, size, nil)
	path := s.regionPath()
	if got := allocatedBytes(t, path); got > 64<<10 {
		t.Fatalf("a new store with a 16 GiB region has %d bytes of region file allocated, want at most 64 KiB", got)
	}
	const n = 100 << 20
	chunk := s.region.SpaceChunk()
	value := pattern(1, 1<<20)
	for i := range n / len(value) {
		mustPut(t, s, fmt.Sprintf("k%03d", i), value)
	}
	// Writing n bytes reserves the chunks they fall in, and up to two more
	// ahead of the allocator (prefault.go).
	got := allocatedBytes(t, path)
	hi := (n+chunk-1)/chunk*chunk + 2*chunk
	if got < n || got > hi {
		t.Fatalf("after %d MiB of Puts the region file has %d bytes allocated, want [%d, %d]", n>>20, got, n, hi)
	}
	settle(t, s)
	if st := mustStats(t, s); st.RegionFileBytes < n || st.RegionFileBytes > hi {
		t.Fatalf("Stats.RegionFileBytes = %d, want [%d, %d]", st.RegionFileBytes, n, hi)
	}
	mustCheck(t, s)
}

func TestRegionFullIsErrNoSpaceNotSIGBUS(t *testing.T) {
	fsDir := smallTmpfs(t, "8m")
	regionPath := filepath.Join(fsDir, "region")
	// The journal lives apart: a full journal is another matter (the
	// journal's fault tests).
	dir := t.TempDir()
	o := &Options{Size: 64 << 20, NoAdminSocket: true, RegionPath: regionPath}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("open a 64 MiB region on an 8 MiB tmpfs: %v", err)
	}
	defer closeForce(s)

	// Fill the filesystem: large values first, then single blocks, which
	// take whatever reserved space is left.
	want := map[string][]byte{}
	var full error
	for _, size := range []int{256 << 10, testBS} {
		for i := 0; ; i++ {
			k := fmt.Sprintf("v%d-%04d", size, i)
			v := pattern(byte(i), size)
			if full = s.Put(k, v); full != nil {
				break
			}
			want[k] = v
		}
		wantErr(t, full, ErrNoSpace)
	}
	t.Logf("the filesystem filled after %d values: %v", len(want), full)
	if !strings.Contains(full.Error(), "tmpfs") || !strings.Contains(full.Error(), "filesystem holding the region is full") {
		t.Fatalf("the error of a full filesystem does not name it: %v", full)
	}
	if got := allocatedBytes(t, regionPath); got < 6<<20 {
		t.Fatalf("the region filled only %d bytes of an 8 MiB filesystem", got)
	}

	f, err := s.Create("hole")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(1 << 20); err != nil {
		t.Fatal(err)
	}
	// A pinned block that ZeroRange must not zero: the file needs a
	// fresh block for it.
	g := mustOpen(t, s, "v262144-0000")
	defer g.Close()
	held := mustPin(t, g, 0, testBS, PinOptions{Label: "held"})
	before := snapshot(t, s)
	if err := g.ZeroRange(100, 1000); err != nil {
		wantErr(t, err, ErrNoSpace)
	} else {
		t.Fatal("ZeroRange of a pinned block on a full filesystem succeeded")
	}
	if err := s.Put("one-more", pattern(9, testBS)); err != nil {
		wantErr(t, err, ErrNoSpace)
	} else {
		t.Fatal("Put on a full filesystem succeeded")
	}
	if _, err := f.WriteAt(pattern(8, 64<<10), 0); err != nil {
		wantErr(t, err, ErrNoSpace)
	} else {
		t.Fatal("WriteAt into a hole on a full filesystem succeeded")
	}
	if err := f.Allocate(128<<10, 64<<10); err != nil {
		wantErr(t, err, ErrNoSpace)
	} else {
		t.Fatal("Allocate on a full filesystem succeeded")
	}
	if p, err := f.Pin(0, testBS, PinOptions{}); err != nil {
		wantErr(t, err, ErrNoSpace)
	} else {
		p.Unpin()
		t.Fatal("Pin of a hole on a full filesystem succeeded")
	}
	sameState(t, s, before)
	if err := held.Unpin(); err != nil {
		t.Fatal(err)
	}

	tmpfs.Resize(t, fsDir, "32m")
	mustPut(t, s, "one-more", pattern(9, 1<<20))
	want["one-more"] = pattern(9, 1<<20)
	if _, err := f.WriteAt(pattern(8, 64<<10), 0); err != nil {
		t.Fatalf("WriteAt after the filesystem grew: %v", err)
	}
	if err := f.Allocate(128<<10, 64<<10); err != nil {
		t.Fatalf("Allocate after the filesystem grew: %v", err)
	}
	p := mustPin(t, f, 512<<10, testBS, PinOptions{})
	if !allZero(pinBytes(p)) {
		t.Fatal("a pinned hole is not zeros")
	}
	if err := p.Unpin(); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, o); err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if got := mustGet(t, s, k); !bytes.Equal(got, v) {
			t.Fatalf("after a reopen %q holds other bytes", k)
		}
	}
	mustCheck(t, s)
}

func TestPreallocateReservesTheWholeRegionOrFailsWithErrNoSpace(t *testing.T) {
	fsDir := smallTmpfs(t, "8m")
	dir := t.TempDir()
	o := &Options{Size: 6 << 20, NoAdminSocket: true, RegionPath: filepath.Join(fsDir, "region"), Preallocate: true}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("open with Preallocate: %v", err)
	}
	if got := allocatedBytes(t, o.RegionPath); got != 6<<20 {
		t.Fatalf("a preallocated 6 MiB region has %d bytes allocated", got)
	}
	mustPut(t, s, "k", pattern(1, 1<<20))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A second store whose region does not fit in what is left.
	o2 := &Options{Size: 6 << 20, NoAdminSocket: true, RegionPath: filepath.Join(fsDir, "region2"), Preallocate: true}
	if _, err := Open(t.TempDir(), o2); !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "tmpfs") {
		t.Fatalf("open with Preallocate of a region larger than the free space = %v, want ErrNoSpace naming tmpfs", err)
	}
	// The first store still opens: its space is its own.
	if s, err = Open(dir, o); err != nil {
		t.Fatalf("reopen with Preallocate: %v", err)
	}
	mustCheck(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
