//go:build unix

// This file tests creating, opening, addressing, flushing and closing
// regions on a plain (non-DAX) file, the way every developer machine runs
// them.

package pmem

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// createTestRegion creates a region in a fresh temporary directory and
// closes it when the test ends, unless the test closed it already.
func createTestRegion(t testing.TB, opts CreateOptions) *Region {
	t.Helper()
	r, err := Create(filepath.Join(t.TempDir(), "region"), opts)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// fileState is what a failed call must leave unchanged.
type fileState struct {
	data  []byte
	mode  os.FileMode
	mtime time.Time
}

func snapshot(t *testing.T, path string) fileState {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return fileState{data: data, mode: fi.Mode(), mtime: fi.ModTime()}
}

func (s fileState) assertSame(t *testing.T, path string) {
	t.Helper()
	now := snapshot(t, path)
	if !bytes.Equal(now.data, s.data) || now.mode != s.mode || !now.mtime.Equal(s.mtime) {
		t.Fatalf("%s changed: %d bytes, mode %v, mtime %v; was %d bytes, mode %v, mtime %v",
			path, len(now.data), now.mode, now.mtime, len(s.data), s.mode, s.mtime)
	}
}

// fill writes a pattern that differs per block and per seed.
func fill(b []byte, seed uint64) {
	for i := range b {
		b[i] = byte(seed*131 + uint64(i)*7 + uint64(i>>9))
	}
}

// checkFlushMethod checks that a DAX region flushes cache lines, and any
// other one msyncs, or does nothing on a file whose pages are all its
// storage (tmpfs, ramfs).
func checkFlushMethod(t *testing.T, r *Region) {
	t.Helper()
	got := r.FlushMethod()
	want := "msync"
	switch {
	case r.DAX():
		want = cpuFlushInsn.String()
	case r.inRAM:
		want = "none (memory)"
	}
	if got != want {
		t.Fatalf("DAX() = %v, in memory %v, but FlushMethod() = %q; want %q", r.DAX(), r.inRAM, got, want)
	}
}

// TestRegionOnTmpfsFlushesNothingAndSaysSo checks the file system test
// behind inRAM: a region in /dev/shm is in memory, one on the root disk
// (or the default temporary directory, when that is not tmpfs) is not.
func TestRegionOnTmpfsFlushesNothingAndSaysSo(t *testing.T) {
	if fi, err := os.Stat("/dev/shm"); err != nil || !fi.IsDir() {
		t.Skip("no /dev/shm")
	}
	shm, err := os.MkdirTemp("/dev/shm", "daxregion")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(shm)
	r, err := Create(filepath.Join(shm, "region"), CreateOptions{Size: 16 * 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.inRAM || r.FlushMethod() != "none (memory)" {
		t.Fatalf("a region in /dev/shm: in memory %v, FlushMethod %q", r.inRAM, r.FlushMethod())
	}
	if err := r.Flush(Extent{Start: 1, Len: 2}); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(Extent{Start: 15, Len: 2}); err == nil {
		t.Fatal("Flush past the region succeeded on tmpfs: the bounds are checked before the file system")
	}
	disk, err := os.MkdirTemp("/var/tmp", "daxregion")
	if err != nil {
		t.Skip("no /var/tmp")
	}
	defer os.RemoveAll(disk)
	d, err := Create(filepath.Join(disk, "region"), CreateOptions{Size: 16 * 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if inRAM(d.m.Load().file) {
		t.Skip("/var/tmp is in memory here")
	}
	if d.inRAM || d.FlushMethod() != "msync" {
		t.Fatalf("a region on disk: in memory %v, FlushMethod %q", d.inRAM, d.FlushMethod())
	}
}

func TestCreateOpenRoundTrip(t *testing.T) {
	uuid := [16]byte{1, 2, 3, 4, 5, 6, 0x47, 8, 0x89, 10, 11, 12, 13, 14, 15, 16}
	cases := []struct {
		name       string
		opts       CreateOptions
		wantBS     int64
		wantBlocks uint64
	}{
		{"a zero block size means the default and the size rounds down to whole blocks",
			CreateOptions{Size: 10*4096 + 100}, DefaultBlockSize, 10},
		{"the smallest region is two 512-byte blocks",
			CreateOptions{BlockSize: MinBlockSize, Size: 1024}, MinBlockSize, 2},
		{"a 64 KiB block size smaller than a huge page works",
			CreateOptions{BlockSize: 64 << 10, Size: 1 << 20}, 64 << 10, 16},
		{"the largest block size works",
			CreateOptions{BlockSize: MaxBlockSize, Size: 3 << 20}, MaxBlockSize, 3},
		{"a given UUID is kept",
			CreateOptions{Size: 1 << 20, UUID: uuid}, DefaultBlockSize, 256},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "region")
			r, err := Create(path, tc.opts)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if r.BlockSize() != tc.wantBS || r.BlockCount() != tc.wantBlocks || r.Path() != path {
				t.Fatalf("created BlockSize %d BlockCount %d Path %s; want %d, %d, %s",
					r.BlockSize(), r.BlockCount(), r.Path(), tc.wantBS, tc.wantBlocks, path)
			}
			if r.Size() != tc.wantBS*int64(tc.wantBlocks) {
				t.Fatalf("Size() = %d, want %d", r.Size(), tc.wantBS*int64(tc.wantBlocks))
			}
			checkFlushMethod(t, r)
			created := r.Superblock()
			if tc.opts.UUID != ([16]byte{}) && created.UUID != tc.opts.UUID {
				t.Fatalf("UUID %s, want %s", FormatUUID(created.UUID), FormatUUID(tc.opts.UUID))
			}
			if created.UUID == ([16]byte{}) {
				t.Fatal("Create left the UUID zero")
			}
			data := r.Bytes(Extent{Start: 1, Len: r.BlockCount() - 1})
			if len(data) != int(r.Size()-r.BlockSize()) || bytes.ContainsFunc(data, func(c rune) bool { return c != 0 }) {
				t.Fatalf("data blocks of a new region: %d bytes, not all zero", len(data))
			}
			if err := r.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}

			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != tc.wantBS*int64(tc.wantBlocks) || fi.Mode().Perm() != 0o600 {
				t.Fatalf("file is %d bytes, mode %v; want %d bytes, mode 0600", fi.Size(), fi.Mode().Perm(), tc.wantBS*int64(tc.wantBlocks))
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if sb, err := DecodeSuperblock(raw); err != nil || sb != created {
				t.Fatalf("superblock on disk = %+v, %v; want %+v", sb, err, created)
			}
			if bytes.ContainsFunc(raw[SuperblockSize:tc.wantBS], func(c rune) bool { return c != 0 }) {
				t.Fatal("the rest of block 0 is not zero")
			}

			r, err = Open(path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer r.Close()
			if r.Superblock() != created || r.BlockSize() != tc.wantBS || r.BlockCount() != tc.wantBlocks {
				t.Fatalf("reopened superblock %+v, want %+v", r.Superblock(), created)
			}
			checkFlushMethod(t, r)
		})
	}
}

func TestDataSurvivesCloseAndReopen(t *testing.T) {
	r := createTestRegion(t, CreateOptions{BlockSize: 4096, Size: 64 * 4096})
	path := r.Path()
	extents := []Extent{{Start: 1, Len: 1}, {Start: 5, Len: 3}, {Start: 63, Len: 1}}
	for i, e := range extents {
		b := r.Bytes(e)
		fill(b, uint64(i+1))
		if err := r.Flush(e); err != nil {
			t.Fatalf("Flush(%v): %v", e, err)
		}
	}
	// A write that covers part of a block, flushed by byte range.
	partial := r.Bytes(Extent{Start: 20, Len: 2})[1000:5000]
	copy(partial, strings.Repeat("partial write ", 400))
	if err := r.FlushBytes(20*4096+1000, 4000); err != nil {
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
	r2, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer r2.Close()
	for i, e := range extents {
		want := make([]byte, e.Len*4096)
		fill(want, uint64(i+1))
		if got := r2.Bytes(e); !bytes.Equal(got, want) {
			t.Fatalf("extent %v after reopen differs from what was written", e)
		}
		if got := raw[int64(e.Start)*4096 : int64(e.End())*4096]; !bytes.Equal(got, want) {
			t.Fatalf("extent %v is not at byte offset %d of the file", e, int64(e.Start)*4096)
		}
	}
	got := r2.Bytes(Extent{Start: 20, Len: 2})
	if !bytes.Equal(got[1000:5000], []byte(strings.Repeat("partial write ", 400))[:4000]) {
		t.Fatal("partial write lost after reopen")
	}
	if bytes.ContainsFunc(got[:1000], func(c rune) bool { return c != 0 }) || bytes.ContainsFunc(got[5000:], func(c rune) bool { return c != 0 }) {
		t.Fatal("bytes around the partial write are not zero")
	}
}

func TestOpenRejectsCorruptRegionsWithoutChangingThem(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	cases := []struct {
		name   string
		damage func(t *testing.T, path string)
		detail string
	}{
		{"a bad magic is not a daxstore region", func(t *testing.T, path string) {
			writeAt(t, path, 0, []byte("XAXSTORE"))
		}, "not a daxstore region"},
		{"a flipped checksum byte is a bad checksum", func(t *testing.T, path string) {
			b := readAt(t, path, sbOffCRC, 1)
			writeAt(t, path, sbOffCRC, []byte{b[0] ^ 0x40})
		}, "bad checksum"},
		{"an unknown version is refused", func(t *testing.T, path string) {
			b := readAt(t, path, 0, SuperblockSize)
			b[sbOffVersion] = 2
			writeAt(t, path, 0, reseal(b))
		}, "unknown format version 2"},
		{"a file shorter than its blocks says both sizes", func(t *testing.T, path string) {
			if err := os.Truncate(path, 16*4096-1); err != nil {
				t.Fatal(err)
			}
		}, "file is 65535 bytes, but the superblock says 16 blocks of 4096 bytes (65536 bytes)"},
		{"a zero-length file is short", func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, "short: 0 bytes"},
		{"a file cut inside the superblock is short", func(t *testing.T, path string) {
			if err := os.Truncate(path, 20); err != nil {
				t.Fatal(err)
			}
		}, "short: 20 bytes"},
		{"a garbage file is not a daxstore region", func(t *testing.T, path string) {
			garbage := make([]byte, 64<<10)
			rng := rand.New(rand.NewPCG(seed, 1))
			for i := range garbage {
				garbage[i] = byte(rng.Uint32())
			}
			if err := os.WriteFile(path, garbage, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a daxstore region"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := createTestRegion(t, CreateOptions{BlockSize: 4096, Size: 16 * 4096})
			path := r.Path()
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, path)
			// Make a changed mtime detectable even on coarse clocks.
			old := time.Now().Add(-time.Hour).Truncate(time.Second)
			if err := os.Chtimes(path, old, old); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, path)

			r2, err := Open(path)
			if err == nil {
				r2.Close()
				t.Fatal("Open of a damaged region succeeded")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open error %q does not wrap ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), tc.detail) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open error %q does not name the file and %q", err, tc.detail)
			}
			before.assertSame(t, path)
		})
	}
}

func readAt(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenFailuresThatAreNotCorruption(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		path string
		is   error
	}{
		{"a missing file is not found", filepath.Join(dir, "missing"), os.ErrNotExist},
		{"a directory is not a region", dir, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Open(tc.path)
			if err == nil {
				r.Close()
				t.Fatal("Open succeeded")
			}
			if errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open error %q wraps ErrCorrupt", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("Open error %q does not wrap %v", err, tc.is)
			}
		})
	}
}

func TestCreateOverAnExistingPathFailsWithoutTouchingIt(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, path string)
	}{
		{"an existing plain file is kept", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("precious bytes"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"an existing region is kept", func(t *testing.T, path string) {
			r, err := Create(path, CreateOptions{Size: 8 * 4096})
			if err != nil {
				t.Fatal(err)
			}
			fill(r.Bytes(Extent{Start: 1, Len: 7}), 9)
			if err := r.Flush(Extent{Start: 1, Len: 7}); err != nil {
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{"an empty file is kept", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "region")
			tc.setup(t, path)
			before := snapshot(t, path)
			r, err := Create(path, CreateOptions{Size: 1 << 20})
			if err == nil {
				r.Close()
				t.Fatal("Create over an existing file succeeded")
			}
			if !errors.Is(err, os.ErrExist) {
				t.Fatalf("Create error %q does not wrap os.ErrExist", err)
			}
			before.assertSame(t, path)
		})
	}
}

func TestCreateRejectsBadOptionsAndLeavesNoFile(t *testing.T) {
	cases := []struct {
		name   string
		opts   CreateOptions
		detail string
	}{
		{"a zero size is too small", CreateOptions{}, "need at least 2 blocks"},
		{"a negative size is too small", CreateOptions{Size: -1 << 20}, "need at least 2 blocks"},
		{"one block and a bit is too small", CreateOptions{Size: 2*4096 - 1}, "need at least 2 blocks of 4096 bytes"},
		{"a block size that is not a power of two is refused", CreateOptions{BlockSize: 1000, Size: 1 << 20}, "bad block size 1000"},
		{"a block size below 512 is refused", CreateOptions{BlockSize: 256, Size: 1 << 20}, "bad block size 256"},
		{"a block size above 1 MiB is refused", CreateOptions{BlockSize: 2 << 20, Size: 1 << 30}, "bad block size"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "region")
			r, err := Create(path, tc.opts)
			if err == nil {
				r.Close()
				t.Fatalf("Create(%+v) succeeded", tc.opts)
			}
			if !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("Create error %q does not mention %q", err, tc.detail)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("Create left a file behind: stat says %v", err)
			}
		})
	}
}

// TestCreateRemovesThePartialFile makes Create fail after it has created the
// file: no filesystem can allocate a petabyte.
func TestCreateRemovesThePartialFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "region")
	r, err := Create(path, CreateOptions{Size: 1 << 50})
	if err == nil {
		r.Close()
		t.Skip("this filesystem allocated a petabyte")
	}
	t.Logf("Create error: %v", err)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Create left a partial file behind: stat says %v", err)
	}
}

func TestBytes(t *testing.T) {
	r := createTestRegion(t, CreateOptions{BlockSize: 4096, Size: 16 * 4096})
	invalid := []struct {
		name string
		e    Extent
	}{
		{"the empty extent gives nil", Extent{}},
		{"an empty extent inside the region gives nil", Extent{Start: 3}},
		{"block 0 gives nil", Extent{Start: 0, Len: 1}},
		{"an extent that starts at block 0 gives nil", Extent{Start: 0, Len: 4}},
		{"an extent ending one past the region gives nil", Extent{Start: 10, Len: 7}},
		{"an extent starting at BlockCount gives nil", Extent{Start: 16, Len: 1}},
		{"an extent far past the region gives nil", Extent{Start: 1 << 40, Len: 1}},
		{"an extent whose end overflows gives nil", Extent{Start: math.MaxUint64 - 1, Len: 5}},
		{"a huge length gives nil", Extent{Start: 1, Len: math.MaxUint64}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			if b := r.Bytes(tc.e); b != nil {
				t.Fatalf("Bytes(%v) = %d bytes, want nil", tc.e, len(b))
			}
		})
	}
	valid := []struct {
		name string
		e    Extent
	}{
		{"the first data block is one block long", Extent{Start: 1, Len: 1}},
		{"the last data block is one block long", Extent{Start: 15, Len: 1}},
		{"all data blocks are the region minus block 0", Extent{Start: 1, Len: 15}},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			b := r.Bytes(tc.e)
			if want := int(tc.e.Len) * 4096; len(b) != want || cap(b) != want {
				t.Fatalf("Bytes(%v): len %d cap %d, want %d", tc.e, len(b), cap(b), want)
			}
		})
	}
	t.Run("slices of overlapping extents alias the same memory", func(t *testing.T) {
		whole := r.Bytes(Extent{Start: 1, Len: 15})
		copy(r.Bytes(Extent{Start: 4, Len: 1}), "hello")
		if got := string(whole[3*4096 : 3*4096+5]); got != "hello" {
			t.Fatalf("store through one slice is not visible through another: %q", got)
		}
	})
	t.Run("appending to a slice does not overwrite the next block", func(t *testing.T) {
		next := r.Bytes(Extent{Start: 6, Len: 1})
		next[0] = 'n'
		b := append(r.Bytes(Extent{Start: 5, Len: 1}), 'x')
		if next[0] != 'n' || len(b) != 4097 {
			t.Fatal("append wrote into the next block")
		}
	})
	t.Run("Bytes does not allocate", func(t *testing.T) {
		if n := testing.AllocsPerRun(100, func() { _ = r.Bytes(Extent{Start: 2, Len: 3}) }); n != 0 {
			t.Fatalf("Bytes allocates %v times per call", n)
		}
	})
}

func TestFlushRejectsBadRanges(t *testing.T) {
	r := createTestRegion(t, CreateOptions{BlockSize: 4096, Size: 16 * 4096})
	size := r.Size()
	extents := []struct {
		name string
		e    Extent
		ok   bool
	}{
		{"an empty extent is a no-op", Extent{}, true},
		{"an empty extent past the end is a no-op", Extent{Start: 99}, true},
		{"all data blocks flush", Extent{Start: 1, Len: 15}, true},
		{"block 0 is refused", Extent{Start: 0, Len: 1}, false},
		{"an extent past the end is refused", Extent{Start: 15, Len: 2}, false},
		{"an extent whose end overflows is refused", Extent{Start: math.MaxUint64, Len: 2}, false},
	}
	for _, tc := range extents {
		t.Run(tc.name, func(t *testing.T) {
			if err := r.Flush(tc.e); (err == nil) != tc.ok {
				t.Fatalf("Flush(%v) = %v, want ok %v", tc.e, err, tc.ok)
			}
		})
	}
	ranges := []struct {
		name   string
		off, n int64
		ok     bool
	}{
		{"an empty range is a no-op", 0, 0, true},
		{"an empty range at the end is a no-op", size, 0, true},
		{"the whole region flushes", 0, size, true},
		{"an unaligned range flushes", 4095, 3, true},
		{"the last byte flushes", size - 1, 1, true},
		{"a negative offset is refused", -1, 1, false},
		{"a negative length is refused", 0, -1, false},
		{"a range past the end is refused", size - 1, 2, false},
		{"an offset past the end is refused", size + 1, 0, false},
		{"an overflowing range is refused", math.MaxInt64, math.MaxInt64, false},
	}
	for _, tc := range ranges {
		t.Run(tc.name, func(t *testing.T) {
			if err := r.FlushBytes(tc.off, tc.n); (err == nil) != tc.ok {
				t.Fatalf("FlushBytes(%d, %d) = %v, want ok %v", tc.off, tc.n, err, tc.ok)
			}
		})
	}
}

func TestUseAfterClose(t *testing.T) {
	r := createTestRegion(t, CreateOptions{BlockSize: 4096, Size: 16 * 4096})
	if err := r.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	e := Extent{Start: 1, Len: 1}
	if err := r.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("second Close = %v, want os.ErrClosed", err)
	}
	if b := r.Bytes(e); b != nil {
		t.Fatal("Bytes after Close returned memory")
	}
	if err := r.Flush(e); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Flush after Close = %v, want os.ErrClosed", err)
	}
	if err := r.FlushBytes(0, 1); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("FlushBytes after Close = %v, want os.ErrClosed", err)
	}
	r.Prefault(e)
	r.Drain()
	if r.BlockCount() != 16 || r.BlockSize() != 4096 {
		t.Fatal("accessors changed after Close")
	}
}

// TestConcurrentBytesAndFlush runs writers that each own every nth block
// alongside flushes, prefaults and reads of the whole region; run it with
// -race. The data must all be there after a reopen.
func TestConcurrentBytesAndFlush(t *testing.T) {
	const writers, blocks, rounds = 8, 129, 20
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := createTestRegion(t, CreateOptions{BlockSize: 4096, Size: blocks * 4096})
	var wg sync.WaitGroup
	final := make([][]uint64, writers) // final[w][i]: pattern seed of w's ith block
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for b := 1 + w; b < blocks; b += writers {
				final[w] = append(final[w], 0)
			}
			for range rounds {
				i := rng.IntN(len(final[w]))
				e := Extent{Start: Block(1 + w + i*writers), Len: 1}
				s := rng.Uint64() | 1 // 0 means never written
				fill(r.Bytes(e), s)
				final[w][i] = s
				r.Prefault(e)
				var err error
				if rng.IntN(2) == 0 {
					err = r.Flush(e)
				} else {
					err = r.FlushBytes(int64(e.Start)*4096, 4096)
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d flush %v: %w", w, e, err)
					return
				}
				r.Drain()
			}
		})
	}
	wg.Go(func() { // a reader of everything
		for range rounds {
			if b := r.Bytes(Extent{Start: 1, Len: blocks - 1}); len(b) != (blocks-1)*4096 {
				errs <- fmt.Errorf("reader got %d bytes", len(b))
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	path := r.Path()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	want := make([]byte, 4096)
	for w := range writers {
		for i, s := range final[w] {
			clear(want)
			if s != 0 {
				fill(want, s)
			}
			e := Extent{Start: Block(1 + w + i*writers), Len: 1}
			if !bytes.Equal(r2.Bytes(e), want) {
				t.Fatalf("block %d of writer %d lost its last write (seed %d)", e.Start, w, seed)
			}
		}
	}
}
