package pageref

// This file checks the table against a plain sequential model with random
// operation sequences, and runs Check after every operation.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/daxstore/daxstore/pmem"
)

// model is the obvious implementation: a count and a detached flag per
// block.
type model struct {
	count    []uint32
	detached []bool
}

func (m *model) valid(e pmem.Extent) bool {
	n := uint64(len(m.count))
	return e.Len > 0 && uint64(e.Start) < n && e.Len <= n-uint64(e.Start)
}

func (m *model) acquire(e pmem.Extent) error {
	if !m.valid(e) {
		return ErrInvalidRange
	}
	for b := e.Start; b < e.End(); b++ {
		if m.detached[b] {
			return ErrDetached
		}
	}
	for b := e.Start; b < e.End(); b++ {
		m.count[b]++
	}
	return nil
}

func (m *model) release(e pmem.Extent) (released []pmem.Extent, err error) {
	if !m.valid(e) {
		return nil, ErrInvalidRange
	}
	for b := e.Start; b < e.End(); b++ {
		if m.count[b] == 0 {
			return nil, ErrNotReferenced
		}
	}
	for b := e.Start; b < e.End(); b++ {
		if m.count[b]--; m.count[b] == 0 && m.detached[b] {
			m.detached[b] = false
			released = appendBlock(released, b)
		}
	}
	return released, nil
}

func (m *model) detach(e pmem.Extent) (busy []pmem.Extent, err error) {
	if !m.valid(e) {
		return nil, ErrInvalidRange
	}
	for b := e.Start; b < e.End(); b++ {
		if m.detached[b] {
			return nil, ErrDetached
		}
	}
	for b := e.Start; b < e.End(); b++ {
		if m.count[b] > 0 {
			m.detached[b] = true
			busy = appendBlock(busy, b)
		}
	}
	return busy, nil
}

func (m *model) referenced(e pmem.Extent) (runs []pmem.Extent) {
	if !m.valid(e) {
		return nil
	}
	for b := e.Start; b < e.End(); b++ {
		if m.count[b] > 0 {
			runs = appendBlock(runs, b)
		}
	}
	return runs
}

func TestModel(t *testing.T) {
	seeds, ops := 5, 1000
	if testing.Short() {
		seeds = 2
	}
	base := uint64(time.Now().UnixNano())
	t.Logf("base seed %d", base)
	for s := range seeds {
		seed := base + uint64(s)
		if log, err := modelRun(seed, ops); err != nil {
			t.Fatalf("seed %d: %v\nop log (last 40):\n%s", seed, err, strings.Join(log[max(0, len(log)-40):], "\n"))
		}
	}
}

func TestModelPages(t *testing.T) {
	// A table of two directory pages and a bit, with extents that cover
	// whole pages (page range counts), whole chunks and single blocks.
	seeds, ops := 2, 150
	if testing.Short() {
		seeds = 1
	}
	base := uint64(time.Now().UnixNano())
	t.Logf("base seed %d", base)
	for s := range seeds {
		seed := base + uint64(s)
		if log, err := modelRunOn(seed, ops, 2*pageBlocks+3*chunkBlocks+7, randomPageExtent); err != nil {
			t.Fatalf("seed %d: %v\nop log (last 40):\n%s", seed, err, strings.Join(log[max(0, len(log)-40):], "\n"))
		}
	}
}

// randomPageExtent draws whole pages, one or two, with ragged edges now and
// then, and otherwise what randomExtent draws.
func randomPageExtent(rng *rand.Rand, n uint64) pmem.Extent {
	if rng.IntN(3) != 0 {
		return randomExtent(rng, n)
	}
	first := rng.Uint64N(n / pageBlocks)
	start := int64(first * pageBlocks)
	end := int64(min((first+1+rng.Uint64N(2))*pageBlocks, n))
	if rng.IntN(3) == 0 {
		start = max(start+rng.Int64N(2*chunkBlocks)-chunkBlocks, 0)
		end = min(end+rng.Int64N(2*chunkBlocks)-chunkBlocks, int64(n))
	}
	return ext(uint64(start), uint64(max(end-start, 1)))
}

func modelRun(seed uint64, ops int) (log []string, err error) {
	return modelRunOn(seed, ops, 3*chunkBlocks+7, randomExtent)
}

func modelRunOn(seed uint64, ops int, n uint64, draw func(*rand.Rand, uint64) pmem.Extent) (log []string, err error) {
	rng := rand.New(rand.NewPCG(seed, 0))
	var rel releases
	tb := New(n, rel.record)
	m := &model{count: make([]uint32, n), detached: make([]bool, n)}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	for i := range ops {
		e := draw(rng, n)
		var got, want error
		var op string
		switch k := rng.IntN(10); {
		case k < 4:
			op = fmt.Sprintf("acquire %v", e)
			got, want = tb.Acquire(e), m.acquire(e)
		case k < 7:
			op = fmt.Sprintf("release %v", e)
			got = tb.Release(e)
			var released []pmem.Extent
			released, want = m.release(e)
			var wantCalls [][]pmem.Extent
			if released != nil {
				wantCalls = [][]pmem.Extent{released}
			}
			if calls := rel.take(); !slices.EqualFunc(calls, wantCalls, slices.Equal) {
				err = fmt.Errorf("onRelease calls %v, want %v", calls, wantCalls)
			}
		case k < 8:
			op = fmt.Sprintf("detach %v", e)
			busy, gerr := tb.Detach(e)
			wbusy, werr := m.detach(e)
			got, want = gerr, werr
			if !slices.Equal(busy, wbusy) {
				err = fmt.Errorf("busy %v, want %v", busy, wbusy)
			}
		case k < 9:
			op = fmt.Sprintf("referenced %v", e)
			if r, w := tb.Referenced(e), m.referenced(e); !slices.Equal(r, w) {
				err = fmt.Errorf("referenced %v, want %v", r, w)
			}
		default:
			op = fmt.Sprintf("wait idle %v (canceled)", e)
			got = tb.WaitIdle(canceled, e)
			switch {
			case !m.valid(e):
				want = ErrInvalidRange
			case m.referenced(e) != nil:
				want = context.Canceled
			}
		}
		log = append(log, fmt.Sprintf("%4d %s -> %v", i, op, got))
		if err != nil {
			return log, err
		}
		if (got == nil) != (want == nil) || (want != nil && !errors.Is(got, want)) {
			return log, fmt.Errorf("error %v, want %v", got, want)
		}
		if err := compare(tb, m); err != nil {
			return log, err
		}
	}
	return log, nil
}

// randomExtent favours short extents near chunk edges, with a few empty,
// huge or out-of-range ones.
func randomExtent(rng *rand.Rand, n uint64) pmem.Extent {
	switch rng.IntN(20) {
	case 0:
		return ext(rng.Uint64N(n), 0)
	case 1:
		return ext(rng.Uint64N(n+4), 1+rng.Uint64N(2*n))
	case 2:
		return ext(rng.Uint64N(n), 1+rng.Uint64N(2*chunkBlocks))
	case 3, 4, 5:
		// Whole chunks, taken as range references, with ragged edges
		// now and then.
		first := rng.Uint64N(n / chunkBlocks)
		start := int64(first * chunkBlocks)
		end := int64(min((first+1+rng.Uint64N(2))*chunkBlocks, n))
		if rng.IntN(3) == 0 {
			start = max(start+rng.Int64N(9)-4, 0)
			end = min(end+rng.Int64N(9)-4, int64(n))
		}
		return ext(uint64(start), uint64(max(end-start, 1)))
	}
	edge := rng.Uint64N(n/chunkBlocks+1) * chunkBlocks
	start := max(int64(edge)+rng.Int64N(40)-20, 0)
	return ext(uint64(start), 1+rng.Uint64N(24))
}

func compare(tb *Table, m *model) error {
	var ref uint64
	for b := range pmem.Block(len(m.count)) {
		// A block's count is its word's plus its chunk's range count.
		if c, d := tb.Count(b), tb.IsDetached(b); c != m.count[b] || d != m.detached[b] {
			return fmt.Errorf("block %d: count %d detached %v, want %d and %v", b, c, d, m.count[b], m.detached[b])
		}
		if m.count[b] > 0 {
			ref++
		}
	}
	if got := tb.ReferencedBlocks(); got != ref {
		return fmt.Errorf("ReferencedBlocks %d, want %d", got, ref)
	}
	return tb.Check()
}
