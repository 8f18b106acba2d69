package dax

// Tests of large and sparse values: Get's size limit, SeekData/SeekHole,
// and PutReader, the streaming atomic replace.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
)

func TestGetOfAHugeSparseKeyIsRefusedWithoutAllocating(t *testing.T) {
	s := newStore(t, 1<<20, nil)
	f, err := s.Create("huge")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("head"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 30); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	v, err := s.Get("huge")
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) || v != nil {
		t.Fatalf("Get of a 64 GiB key: %d bytes, error %v; want ErrTooLarge", len(v), err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("Get of a 64 GiB key allocated %d bytes before refusing it", grew)
	}
	if n := testing.AllocsPerRun(10, func() { _, _ = s.Get("huge") }); n > 20 {
		t.Fatalf("a refused Get allocates %v times, want a handful (the error)", n)
	}
	// At the limit Get still works; one byte more is refused.
	if err := f.Truncate(MaxGetSize + 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("huge"); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Get of MaxGetSize+1 bytes: %v, want ErrTooLarge", err)
	}
	if err := f.Truncate(8 << 10); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get("huge"); err != nil || len(v) != 8<<10 || string(v[:4]) != "head" {
		t.Fatalf("Get of a small key: %d bytes, %v", len(v), err)
	}
}

func TestSeekDataAndSeekHoleFollowTheExtentMap(t *testing.T) {
	s := newStore(t, 1<<20, nil)
	f, err := s.Create("k")
	if err != nil {
		t.Fatal(err)
	}
	const b = testBS
	// Layout by block: 0 data, 1 hole, 2-3 data (two writes), 4 unwritten,
	// 5 data written by a second write not contiguous in the region,
	// 6-9 hole; the size ends inside block 9.
	write := func(off, n int64) {
		t.Helper()
		if _, err := f.WriteAt(bytes.Repeat([]byte{'x'}, int(n)), off); err != nil {
			t.Fatal(err)
		}
	}
	write(0, b)
	write(2*b, b)
	write(5*b, b)
	write(3*b, b)
	if err := f.Allocate(4*b, b); err != nil {
		t.Fatal(err)
	}
	size := int64(9*b + 100)
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		off            int64
		data, hole     int64
		dataEOF, noHol bool
	}{
		{off: 0, data: 0, hole: b},
		{off: 10, data: 10, hole: b},
		{off: b, data: 2 * b, hole: b},
		{off: b + 7, data: 2 * b, hole: b + 7},
		{off: 2*b + 1, data: 2*b + 1, hole: 4 * b},
		{off: 4 * b, data: 5 * b, hole: 4 * b},
		{off: 5 * b, data: 5 * b, hole: 6 * b},
		{off: 6 * b, dataEOF: true, hole: 6 * b},
		{off: size - 1, dataEOF: true, hole: size - 1},
		{off: size, dataEOF: true, noHol: true},
		{off: size + b, dataEOF: true, noHol: true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("at %d", tt.off), func(t *testing.T) {
			d, err := f.SeekData(tt.off)
			if tt.dataEOF {
				if err != io.EOF {
					t.Errorf("SeekData(%d) = %d, %v; want io.EOF", tt.off, d, err)
				}
			} else if err != nil || d != tt.data {
				t.Errorf("SeekData(%d) = %d, %v; want %d", tt.off, d, err, tt.data)
			}
			h, err := f.SeekHole(tt.off)
			if tt.noHol {
				if err != io.EOF {
					t.Errorf("SeekHole(%d) = %d, %v; want io.EOF", tt.off, h, err)
				}
			} else if err != nil || h != tt.hole {
				t.Errorf("SeekHole(%d) = %d, %v; want %d", tt.off, h, err, tt.hole)
			}
		})
	}
	if _, err := f.SeekData(-1); !errors.Is(err, ErrInvalidRange) {
		t.Errorf("SeekData(-1): %v, want ErrInvalidRange", err)
	}
	// Walking data runs and reading them, with zeros elsewhere, gives what
	// ReadAt of the whole file gives.
	whole := make([]byte, size)
	if _, err := f.ReadAt(whole, 0); err != nil {
		t.Fatal(err)
	}
	if got := readSparse(t, f, size); !bytes.Equal(got, whole) {
		t.Fatal("reading the data runs found by SeekData/SeekHole differs from ReadAt")
	}
}

// readSparse reads f as a sparse copy does: only the data runs.
func readSparse(t *testing.T, f *File, size int64) []byte {
	t.Helper()
	out := make([]byte, size)
	for off := int64(0); off < size; {
		d, err := f.SeekData(off)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		h, err := f.SeekHole(d)
		if err != nil || h <= d {
			t.Fatalf("SeekHole(%d) = %d, %v after SeekData", d, h, err)
		}
		if _, err := f.ReadAt(out[d:h], d); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		off = h
	}
	return out
}

// countingReader counts the bytes read through it, and can fail after n.
type countingReader struct {
	r      io.Reader
	n      int64
	failAt int64 // fail once this many bytes were read; 0: never
}

var errReader = errors.New("reader broke")

func (c *countingReader) Read(p []byte) (int, error) {
	if c.failAt > 0 && c.n >= c.failAt {
		return 0, errReader
	}
	if c.failAt > 0 {
		p = p[:min(int64(len(p)), c.failAt-c.n)]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestPutReaderStoresWhatItReads(t *testing.T) {
	s := newStore(t, 16<<20, nil)
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 0))
	ctx := context.Background()
	for _, n := range []int{0, 1, testBS - 1, testBS, testBS + 1, putChunk - 1, putChunk, 2*putChunk + 3*testBS + 17} {
		for _, known := range []bool{true, false} {
			val := make([]byte, n)
			for i := range val {
				val[i] = byte(rng.UintN(256))
			}
			size := int64(-1)
			if known {
				size = int64(n)
			}
			if err := s.PutReader(ctx, "k", bytes.NewReader(val), size, BreakOptions{}); err != nil {
				t.Fatalf("PutReader of %d bytes (size %d): %v (seed %d)", n, size, err, seed)
			}
			got, err := s.Get("k")
			if err != nil || !bytes.Equal(got, val) {
				t.Fatalf("after PutReader of %d bytes (size %d) Get returned %d bytes, %v (seed %d)", n, size, len(got), err, seed)
			}
			mustCheck(t, s)
		}
	}
	// A known size reads exactly that much.
	r := &countingReader{r: bytes.NewReader(make([]byte, 3*testBS))}
	if err := s.PutReader(ctx, "k", r, testBS+5, BreakOptions{}); err != nil || r.n != testBS+5 {
		t.Fatalf("PutReader with size %d read %d bytes: %v", testBS+5, r.n, err)
	}
}

func TestPutReaderOfTooMuchFailsEarlyAndChangesNothing(t *testing.T) {
	s := newStore(t, 1<<20, func(o *Options) { o.AllocWait = -1 })
	old := bytes.Repeat([]byte("old value "), 1000)
	if err := s.Put("k", old); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s)
	ctx := context.Background()
	big := int64(2 << 20) // twice the region
	tests := []struct {
		name     string
		size     int64
		maxRead  int64 // the most input the put may consume
		wantErrs error
	}{
		// With the size known, space is checked before any input is read.
		{"a known size fails before reading anything", big, 0, ErrNoSpace},
		// Without it, the put reads until the region runs out, not more.
		{"an unknown size fails once the region is full", -1, 1<<20 + putChunk, ErrNoSpace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &countingReader{r: io.LimitReader(zeroReader{}, big)}
			err := s.PutReader(ctx, "k", r, tt.size, BreakOptions{})
			if !errors.Is(err, tt.wantErrs) {
				t.Fatalf("PutReader: %v, want %v", err, tt.wantErrs)
			}
			if r.n > tt.maxRead {
				t.Fatalf("PutReader read %d bytes of input before failing, want at most %d", r.n, tt.maxRead)
			}
			sameState(t, s, before)
			mustCheck(t, s)
		})
	}
	t.Run("a reader error or short input leaves the old value", func(t *testing.T) {
		for _, c := range []struct {
			r    *countingReader
			size int64
			want error
		}{
			{&countingReader{r: zeroReader{}, failAt: 100_000}, -1, errReader},
			{&countingReader{r: zeroReader{}, failAt: 100_000}, 512 << 10, errReader},
			{&countingReader{r: bytes.NewReader(make([]byte, 5000))}, 6000, io.ErrUnexpectedEOF},
		} {
			if err := s.PutReader(ctx, "k", c.r, c.size, BreakOptions{}); !errors.Is(err, c.want) {
				t.Fatalf("PutReader: %v, want %v", err, c.want)
			}
			sameState(t, s, before)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.PutReader(cctx, "k", zeroReader{}, -1, BreakOptions{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("PutReader with a cancelled context: %v", err)
		}
		sameState(t, s, before)
		mustCheck(t, s)
	})
}

// zeroReader reads zeros forever.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
