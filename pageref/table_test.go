package pageref

// This file tests the table's layout and read-only views: counts, ranges,
// Referenced, ReferencedBlocks and memory use.

import (
	"errors"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/daxstore/daxstore/pmem"
)

func ext(start, n uint64) pmem.Extent { return pmem.Extent{Start: pmem.Block(start), Len: n} }

// releases records onRelease calls.
type releases struct {
	mu    sync.Mutex // protects calls
	calls [][]pmem.Extent
}

func (r *releases) record(runs []pmem.Extent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, slices.Clone(runs))
}

func (r *releases) take() [][]pmem.Extent {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

// counts returns the counts of blocks [0, n).
func counts(t *Table, n uint64) []uint32 {
	c := make([]uint32, n)
	for b := range n {
		c[b] = t.Count(pmem.Block(b))
	}
	return c
}

func mustCheck(t *testing.T, tb *Table) {
	t.Helper()
	if err := tb.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestAcquireReleaseCounts(t *testing.T) {
	const n = 3 * chunkBlocks
	tb := New(n, nil)
	steps := []struct {
		name    string
		acquire bool
		e       pmem.Extent
	}{
		{"one block is acquired", true, ext(5, 1)},
		{"a range overlapping it is acquired", true, ext(3, 5)},
		{"a range crossing two chunk boundaries is acquired", true, ext(chunkBlocks-2, chunkBlocks+4)},
		{"the last block is acquired", true, ext(n-1, 1)},
		{"part of the first range is released", false, ext(4, 2)},
		{"the crossing range is released", false, ext(chunkBlocks-2, chunkBlocks+4)},
	}
	want := make([]uint32, n)
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			var err error
			d := uint32(1)
			if s.acquire {
				err = tb.Acquire(s.e)
			} else {
				err = tb.Release(s.e)
				d = math.MaxUint32 // -1
			}
			if err != nil {
				t.Fatal(err)
			}
			for b := s.e.Start; b < s.e.End(); b++ {
				want[b] += d
			}
			if got := counts(tb, n); !slices.Equal(got, want) {
				t.Fatalf("counts differ from the expected ones at blocks %v", diff(got, want))
			}
			var ref uint64
			for _, c := range want {
				if c > 0 {
					ref++
				}
			}
			if got := tb.ReferencedBlocks(); got != ref {
				t.Fatalf("ReferencedBlocks = %d, want %d", got, ref)
			}
			mustCheck(t, tb)
		})
	}
}

func diff(got, want []uint32) []int {
	var d []int
	for i := range got {
		if got[i] != want[i] {
			d = append(d, i)
		}
	}
	return d
}

func TestBadRangesChangeNothing(t *testing.T) {
	const n = 1000
	tests := []struct {
		name string
		op   string
		e    pmem.Extent
		want error
	}{
		{"acquire of an empty range fails", "acquire", ext(3, 0), ErrInvalidRange},
		{"acquire starting past the end fails", "acquire", ext(n, 1), ErrInvalidRange},
		{"acquire running past the end fails", "acquire", ext(n-2, 3), ErrInvalidRange},
		{"acquire whose end overflows fails", "acquire", ext(10, math.MaxUint64-5), ErrInvalidRange},
		{"release of an empty range fails", "release", ext(3, 0), ErrInvalidRange},
		{"release running past the end fails", "release", ext(n-1, 2), ErrInvalidRange},
		{"release of a block at 0 fails", "release", ext(7, 1), ErrNotReferenced},
		{"release of a range with one block at 0 fails", "release", ext(0, 12), ErrNotReferenced},
		{"release in a never-touched chunk fails", "release", ext(600, 3), ErrNotReferenced},
		{"detach of an empty range fails", "detach", ext(0, 0), ErrInvalidRange},
		{"detach starting past the end fails", "detach", ext(math.MaxUint64, 1), ErrInvalidRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := New(n, nil)
			if err := tb.Acquire(ext(0, 7)); err != nil {
				t.Fatal(err)
			}
			if err := tb.Acquire(ext(8, 4)); err != nil {
				t.Fatal(err)
			}
			before := counts(tb, n)
			var err error
			switch tc.op {
			case "acquire":
				err = tb.Acquire(tc.e)
			case "release":
				err = tb.Release(tc.e)
			case "detach":
				var busy []pmem.Extent
				busy, err = tb.Detach(tc.e)
				if busy != nil {
					t.Errorf("failed detach returned busy runs %v", busy)
				}
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v, want %v", err, tc.want)
			}
			if got := counts(tb, n); !slices.Equal(got, before) {
				t.Fatalf("counts changed at blocks %v", diff(got, before))
			}
			for b := range pmem.Block(n) {
				if tb.IsDetached(b) {
					t.Fatalf("block %d became detached", b)
				}
			}
			if got := tb.ReferencedBlocks(); got != 11 {
				t.Fatalf("ReferencedBlocks = %d, want 11", got)
			}
			mustCheck(t, tb)
		})
	}
}

func TestCountOverflowFailsWithoutChange(t *testing.T) {
	tb := New(100, nil)
	if err := tb.Acquire(ext(10, 5)); err != nil {
		t.Fatal(err)
	}
	tb.chunk(0).words[12].Store(MaxCount) // as if 2^31-1 references were held
	err := tb.Acquire(ext(10, 5))
	if !errors.Is(err, ErrTooManyRefs) {
		t.Fatalf("got %v, want ErrTooManyRefs", err)
	}
	want := []uint32{1, 1, MaxCount, 1, 1}
	for i, w := range want {
		if got := tb.Count(pmem.Block(10 + i)); got != w {
			t.Errorf("block %d: count %d, want %d", 10+i, got, w)
		}
	}
	mustCheck(t, tb)
}

func TestOutOfRangeQueriesAreQuiet(t *testing.T) {
	tb := New(10, nil)
	if err := tb.Acquire(ext(9, 1)); err != nil {
		t.Fatal(err)
	}
	if c := tb.Count(10); c != 0 {
		t.Errorf("Count past the end = %d", c)
	}
	if tb.IsDetached(math.MaxUint64) {
		t.Error("IsDetached past the end = true")
	}
	if r := tb.Referenced(ext(5, 10)); r != nil {
		t.Errorf("Referenced of a range past the end = %v", r)
	}
	if r := tb.Referenced(ext(5, 0)); r != nil {
		t.Errorf("Referenced of an empty range = %v", r)
	}
}

func TestReferencedReturnsCoalescedRuns(t *testing.T) {
	tb := New(4*chunkBlocks, nil)
	for _, e := range []pmem.Extent{ext(3, 2), ext(5, 1), ext(chunkBlocks-1, 2), ext(3*chunkBlocks, 1)} {
		if err := tb.Acquire(e); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		e    pmem.Extent
		want []pmem.Extent
	}{
		{"the whole table shows every run", ext(0, 4*chunkBlocks),
			[]pmem.Extent{ext(3, 3), ext(chunkBlocks-1, 2), ext(3*chunkBlocks, 1)}},
		{"a range cuts runs at its edges", ext(4, chunkBlocks-4), []pmem.Extent{ext(4, 2), ext(chunkBlocks-1, 1)}},
		{"a range of idle blocks shows nothing", ext(6, 100), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tb.Referenced(tc.e); !slices.Equal(got, tc.want) {
				t.Fatalf("Referenced(%v) = %v, want %v", tc.e, got, tc.want)
			}
		})
	}
}

func TestNewClampsHugeRegions(t *testing.T) {
	tb := New(math.MaxUint64, nil)
	if tb.Blocks() != MaxBlocks {
		t.Fatalf("Blocks = %d, want %d", tb.Blocks(), uint64(MaxBlocks))
	}
	if err := tb.Acquire(ext(MaxBlocks-1, 1)); err != nil {
		t.Fatalf("acquire of the last block: %v", err)
	}
	if err := tb.Acquire(ext(MaxBlocks, 1)); !errors.Is(err, ErrInvalidRange) {
		t.Fatalf("acquire past the clamp: got %v, want ErrInvalidRange", err)
	}
	empty := New(0, nil)
	if err := empty.Acquire(ext(0, 1)); !errors.Is(err, ErrInvalidRange) {
		t.Fatalf("acquire on an empty table: got %v, want ErrInvalidRange", err)
	}
}

func TestMemoryBytes(t *testing.T) {
	const (
		blocks = 268435456 // 1 TiB of 4 KiB blocks
		gib    = 1024      // GiB in the region
	)
	tb := New(blocks, nil)
	idle := tb.MemoryBytes()
	t.Logf("1 TiB region, nothing pinned: %d bytes (%d per GiB)", idle, idle/gib)
	if idle/gib > 64<<10 {
		t.Fatalf("an idle 1 TiB table uses %d bytes per GiB, want at most 64 KiB", idle/gib)
	}

	t.Run("pinning one block adds one chunk and its directory page", func(t *testing.T) {
		if err := tb.Acquire(ext(blocks/2, 1)); err != nil {
			t.Fatal(err)
		}
		grew := tb.MemoryBytes() - idle
		t.Logf("grew by %d bytes (chunk %d, page %d)", grew, chunkBytes, pageBytes)
		if grew != chunkBytes+pageBytes {
			t.Fatalf("grew by %d bytes, want %d", grew, chunkBytes+pageBytes)
		}
	})
	t.Run("pinning a block in the next chunk adds exactly one chunk", func(t *testing.T) {
		before := tb.MemoryBytes()
		if err := tb.Acquire(ext(blocks/2+chunkBlocks, 1)); err != nil {
			t.Fatal(err)
		}
		if grew := tb.MemoryBytes() - before; grew != chunkBytes {
			t.Fatalf("grew by %d bytes, want %d", grew, chunkBytes)
		}
	})
	t.Run("pinning again in a present chunk adds nothing", func(t *testing.T) {
		before := tb.MemoryBytes()
		if err := tb.Acquire(ext(blocks/2+1, 1)); err != nil {
			t.Fatal(err)
		}
		if grew := tb.MemoryBytes() - before; grew != 0 {
			t.Fatalf("grew by %d bytes, want 0", grew)
		}
	})
	t.Run("scans of the whole region find the pins across absent pages", func(t *testing.T) {
		whole := ext(0, blocks)
		want := []pmem.Extent{ext(blocks/2, 2), ext(blocks/2+chunkBlocks, 1)}
		if got := tb.Referenced(whole); !slices.Equal(got, want) {
			t.Fatalf("Referenced = %v, want %v", got, want)
		}
		if b, ok := tb.firstReferenced(whole); !ok || b != blocks/2 {
			t.Fatalf("firstReferenced = %d, %v; want %d", b, ok, blocks/2)
		}
		tail := ext(blocks/2+chunkBlocks+1, blocks/2-chunkBlocks-1)
		if b, ok := tb.firstReferenced(tail); ok {
			t.Fatalf("firstReferenced of the idle tail = %d", b)
		}
	})
	t.Run("releasing keeps the chunks", func(t *testing.T) {
		before := tb.MemoryBytes()
		for _, b := range []uint64{blocks / 2, blocks/2 + 1, blocks/2 + chunkBlocks} {
			if err := tb.Release(ext(b, 1)); err != nil {
				t.Fatal(err)
			}
		}
		if tb.MemoryBytes() != before {
			t.Fatalf("memory changed from %d to %d", before, tb.MemoryBytes())
		}
		if tb.ReferencedBlocks() != 0 {
			t.Fatalf("ReferencedBlocks = %d after releasing everything", tb.ReferencedBlocks())
		}
		mustCheck(t, tb)
	})
}

func TestConcurrentChunkCreationCountsMemoryOnce(t *testing.T) {
	tb := New(64*chunkBlocks, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for ci := range uint64(64) {
				b := ci*chunkBlocks + uint64(g)
				if err := tb.Acquire(ext(b, 1)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	mustCheck(t, tb)
	if got := tb.ReferencedBlocks(); got != 64*8 {
		t.Fatalf("ReferencedBlocks = %d, want %d", got, 64*8)
	}
}

func TestAcquireUpToStopsAtItsLimit(t *testing.T) {
	t.Run("references up to the limit succeed and the next fails without change", func(t *testing.T) {
		tb := New(100, nil)
		for range 3 {
			if err := tb.AcquireUpTo(ext(10, 2), 3); err != nil {
				t.Fatal(err)
			}
		}
		if err := tb.AcquireUpTo(ext(10, 2), 3); !errors.Is(err, ErrTooManyRefs) {
			t.Fatalf("got %v, want ErrTooManyRefs", err)
		}
		if tb.Count(10) != 3 || tb.Count(11) != 3 {
			t.Fatalf("counts %d %d, want 3 3", tb.Count(10), tb.Count(11))
		}
		mustCheck(t, tb)
	})
	t.Run("a plain Acquire still succeeds on a block at a lower limit", func(t *testing.T) {
		tb := New(100, nil)
		if err := tb.AcquireUpTo(ext(10, 1), 1); err != nil {
			t.Fatal(err)
		}
		if err := tb.Acquire(ext(10, 1)); err != nil {
			t.Fatalf("Acquire above the long-term limit: %v", err)
		}
		mustCheck(t, tb)
	})
	t.Run("a limit above MaxCount never carries a count into the detached mark", func(t *testing.T) {
		tb := New(100, nil)
		if err := tb.Acquire(ext(10, 1)); err != nil {
			t.Fatal(err)
		}
		tb.chunk(0).words[10].Store(MaxCount) // as if 2^31-1 references were held
		if err := tb.AcquireUpTo(ext(10, 1), math.MaxUint32); !errors.Is(err, ErrTooManyRefs) {
			t.Fatalf("got %v, want ErrTooManyRefs", err)
		}
		if tb.IsDetached(10) || tb.Count(10) != MaxCount {
			t.Fatalf("word changed: detached %v count %d", tb.IsDetached(10), tb.Count(10))
		}
	})
}
