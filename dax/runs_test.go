package dax

// Tests of how many physically contiguous runs a large file gets on an
// unfragmented region, written each way a file can be written. Every run
// costs one mapping in a window, and a run whose region offset is
// congruent to its file offset modulo 2 MiB can be mapped with huge pages.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// hugePage is the size of the pages fsdax maps where both the address and
// the file offset allow it.
const hugePage = hugePageBytes

// physRuns returns f's blocks as physically contiguous runs in file order:
// neighbouring mappings that continue each other in both file and region
// space are one run, written or unwritten.
func physRuns(f *File) []mapping {
	in := f.in
	in.mapMu.Lock()
	defer in.mapMu.Unlock()
	var out []mapping
	for _, m := range in.extents.all() {
		if n := len(out); n > 0 && out[n-1].fileEnd() == m.fileBlock && out[n-1].region().End() == m.start {
			out[n-1].n += m.n
			continue
		}
		m.unwritten = false
		out = append(out, m)
	}
	return out
}

// congruent reports whether run m's region offset equals its file offset
// modulo 2 MiB, so that huge pages can map it.
func congruent(m mapping, bs int64) bool {
	return (int64(m.start)*bs-int64(m.fileBlock)*bs)%hugePage == 0
}

// describeRuns says how many runs there are and which are not congruent,
// for failure messages and logs.
func describeRuns(runs []mapping, bs int64) string {
	var off []string
	for _, m := range runs {
		if !congruent(m, bs) {
			off = append(off, fmt.Sprintf("file block %d at region block %d (+%d)", m.fileBlock, m.start, m.n))
		}
	}
	if len(off) > 5 {
		off = append(off[:5], fmt.Sprintf("... %d more", len(off)-5))
	}
	return fmt.Sprintf("%d runs, %d not congruent to the file offset modulo 2 MiB %v", len(runs), countIncongruent(runs, bs), off)
}

func countIncongruent(runs []mapping, bs int64) int {
	n := 0
	for _, m := range runs {
		if !congruent(m, bs) {
			n++
		}
	}
	return n
}

// incongruentBytes returns the bytes of the file in runs that are not
// congruent: what a window cannot map with huge pages.
func incongruentBytes(runs []mapping, bs int64) int64 {
	var n int64
	for _, m := range runs {
		if !congruent(m, bs) {
			n += int64(m.n) * bs
		}
	}
	return n
}

// patternReader yields n bytes, a 4 KiB pattern over and over, without
// holding them.
type patternReader struct{ off, n int64 }

var readerPattern = pattern(7, 4<<10)

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n-r.off)]
	for i := 0; i < len(p); {
		i += copy(p[i:], readerPattern[(r.off+int64(i))%int64(len(readerPattern)):])
	}
	r.off += int64(len(p))
	return len(p), nil
}

// writeSeq writes n bytes of f from offset from on in chunks of chunk
// bytes.
func writeSeq(t *testing.T, f *File, from, n, chunk int64) {
	t.Helper()
	buf := bytes.Repeat([]byte{0x5a}, int(chunk))
	for off := from; off < n; off += chunk {
		if _, err := f.WriteAt(buf[:min(chunk, n-off)], off); err != nil {
			t.Fatalf("write at %d: %v", off, err)
		}
	}
}

// TestLargeFileRunsOnAnEmptyRegion writes a 1 GiB file each way a file
// can be written into an empty, sparse 2 GiB region (4 GiB for two
// writers) and checks that it ends in at most 64 physically contiguous
// runs (64 mappings in a window), and that the paths that ask for all the
// space at once (Put, PutReader of a known size, Allocate) get runs
// congruent to their file offsets modulo 2 MiB, which huge pages can map.
// The streaming paths start with a small file, which the allocator packs
// into partial space: only their first run, within the first 2 MiB, may be
// incongruent.
func TestLargeFileRunsOnAnEmptyRegion(t *testing.T) {
	const (
		gib      = int64(1 << 30)
		maxRuns  = 64
		region   = 2 * gib
		twoFiles = 4 * gib
	)
	type path struct {
		name        string
		region      int64
		write       func(t *testing.T, s *Store) []*File
		incongruent int // runs allowed not to be congruent, per file
	}
	create := func(t *testing.T, s *Store, key string) *File {
		t.Helper()
		f, err := s.Create(key)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	paths := []path{
		{name: "one Put of 1 GiB", region: region, write: func(t *testing.T, s *Store) []*File {
			mustPut(t, s, "k", make([]byte, gib))
			return []*File{mustOpen(t, s, "k")}
		}},
		{name: "PutReader of a known size", region: region, write: func(t *testing.T, s *Store) []*File {
			if err := s.PutReader(context.Background(), "k", &patternReader{n: gib}, gib, BreakOptions{}); err != nil {
				t.Fatal(err)
			}
			return []*File{mustOpen(t, s, "k")}
		}},
		{name: "PutReader of an unknown size", region: region, incongruent: 1, write: func(t *testing.T, s *Store) []*File {
			if err := s.PutReader(context.Background(), "k", &patternReader{n: gib}, -1, BreakOptions{}); err != nil {
				t.Fatal(err)
			}
			return []*File{mustOpen(t, s, "k")}
		}},
		{name: "WriteAt in 1 MiB sequential chunks", region: region, incongruent: 1, write: func(t *testing.T, s *Store) []*File {
			f := create(t, s, "k")
			writeSeq(t, f, 0, gib, 1<<20)
			return []*File{f}
		}},
		{name: "WriteAt in 4 KiB sequential chunks", region: region, incongruent: 1, write: func(t *testing.T, s *Store) []*File {
			f := create(t, s, "k")
			// 4 KiB writes cross into a large file at 2 MiB and continue
			// its run from there on: 64 MiB of them show both, and 1 MiB
			// writes finish the file (a whole GiB of 4 KiB writes takes
			// half a minute under the race detector and shows no more).
			writeSeq(t, f, 0, 64<<20, 4<<10)
			writeSeq(t, f, 64<<20, gib, 1<<20)
			return []*File{f}
		}},
		{name: "Allocate of 1 GiB, then WriteAt in 1 MiB chunks", region: region, write: func(t *testing.T, s *Store) []*File {
			f := create(t, s, "k")
			if err := f.Allocate(0, gib); err != nil {
				t.Fatal(err)
			}
			writeSeq(t, f, 0, gib, 1<<20)
			return []*File{f}
		}},
		{name: "two files written in turns, 1 MiB each", region: twoFiles, incongruent: 1, write: func(t *testing.T, s *Store) []*File {
			a, b := create(t, s, "a"), create(t, s, "b")
			buf := bytes.Repeat([]byte{0x5a}, 1<<20)
			for off := int64(0); off < gib; off += int64(len(buf)) {
				for _, f := range []*File{a, b} {
					if _, err := f.WriteAt(buf, off); err != nil {
						t.Fatalf("%s: write at %d: %v", f.Key(), off, err)
					}
				}
			}
			return []*File{a, b}
		}},
		{name: "two files written concurrently, 1 MiB each", region: twoFiles, incongruent: 1, write: func(t *testing.T, s *Store) []*File {
			files := []*File{create(t, s, "a"), create(t, s, "b")}
			var wg sync.WaitGroup
			errs := make([]error, len(files))
			for i, f := range files {
				wg.Go(func() {
					buf := bytes.Repeat([]byte{byte(i + 1)}, 1<<20)
					for off := int64(0); off < gib; off += int64(len(buf)) {
						if _, err := f.WriteAt(buf, off); err != nil {
							errs[i] = fmt.Errorf("%s: write at %d: %w", f.Key(), off, err)
							return
						}
					}
				})
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			return files
		}},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			s := newStore(t, p.region, nil)
			files := p.write(t, s)
			for _, f := range files {
				runs := physRuns(f)
				var blocks uint64
				for _, m := range runs {
					blocks += m.n
				}
				if want := uint64(gib / s.bs); blocks != want {
					t.Fatalf("%s: %d blocks mapped, want %d", f.Key(), blocks, want)
				}
				t.Logf("%s: %s", f.Key(), describeRuns(runs, s.bs))
				if len(runs) > maxRuns {
					t.Errorf("%s: a 1 GiB file on an empty region got %d runs, want at most %d", f.Key(), len(runs), maxRuns)
				}
				if n := countIncongruent(runs, s.bs); n > p.incongruent {
					t.Errorf("%s: %s; want at most %d", f.Key(), describeRuns(runs, s.bs), p.incongruent)
				}
				if n := incongruentBytes(runs, s.bs); n > int64(p.incongruent)*hugePage {
					t.Errorf("%s: %d bytes in runs not congruent (%s), want at most the first %d",
						f.Key(), n, describeRuns(runs, s.bs), p.incongruent*hugePage)
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
			}
			mustCheck(t, s)
		})
	}
}

// TestLargeFileRunsAfterSmallFiles fills the front of a region with small
// files, removes some of them, and then writes a 1 GiB file in 1 MiB
// WriteAt calls: the small files must have been packed so that the large
// file still finds aligned space, ending in at most 64 runs of which only
// its first, within the first 2 MiB (written while the file was small),
// may be incongruent.
func TestLargeFileRunsAfterSmallFiles(t *testing.T) {
	const gib = int64(1 << 30)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	s := newStore(t, 2*gib, func(o *Options) { o.InlineLimit = -1 })
	var keys []string
	for i := range 2000 {
		key := fmt.Sprintf("small/%d", i)
		mustPut(t, s, key, pattern(byte(i), 1+rng.IntN(64<<10)))
		keys = append(keys, key)
	}
	for _, key := range keys {
		if rng.IntN(3) == 0 {
			if err := s.Remove(key); err != nil {
				t.Fatal(err)
			}
		}
	}
	f, err := s.Create("large")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	writeSeq(t, f, 0, gib, 1<<20)
	runs := physRuns(f)
	t.Logf("seed %d: %s", seed, describeRuns(runs, s.bs))
	if len(runs) > 64 {
		t.Errorf("seed %d: a 1 GiB file after small files got %d runs, want at most 64", seed, len(runs))
	}
	off := incongruentBytes(runs, s.bs)
	if n := countIncongruent(runs, s.bs); n > 1 || (n == 1 && congruent(runs[0], s.bs)) || off > hugePage {
		t.Errorf("seed %d: %s, %d bytes incongruent; want at most the first 2 MiB incongruent", seed, describeRuns(runs, s.bs), off)
	}
	mustCheck(t, s)
}
