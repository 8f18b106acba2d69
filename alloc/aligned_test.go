package alloc

// This file tests the aligned policy (SetAlign, AllocFor): where large and
// small requests go, and, against the bitmap model over random operations,
// that alignment never costs an allocation its success or a piece.

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/daxstore/daxstore/pmem"
)

// alignedOf returns an Allocator with alignment unit align whose free space
// is exactly es.
func alignedOf(t *testing.T, align uint64, es ...pmem.Extent) *Allocator {
	t.Helper()
	a := allocatorOf(t, es...)
	a.SetAlign(align)
	return a
}

func TestAlignedAllocPolicy(t *testing.T) {
	const A = 16
	// fragments are one-block free extents at 1000, 1002, ...
	fragments := func(n int) []pmem.Extent {
		var out []pmem.Extent
		for i := range n {
			out = append(out, ext(1000+2*uint64(i), 1))
		}
		return out
	}
	tests := []struct {
		name string
		free []pmem.Extent
		n    uint64
		hint Hint
		want []pmem.Extent
		left []pmem.Extent
	}{
		{name: "a large request with no goal starts on an aligned block",
			free: exts(ext(1, 200)), n: 32, hint: Hint{},
			want: exts(ext(16, 32)), left: exts(ext(1, 15), ext(48, 153))},
		{name: "a large request starts congruent with its file block",
			free: exts(ext(1, 200)), n: 32, hint: Hint{FileBlock: 21},
			want: exts(ext(5, 32)), left: exts(ext(1, 4), ext(37, 164))},
		{name: "a small request for a large file is placed congruent too",
			free: exts(ext(1, 200)), n: 4, hint: Hint{FileBlock: 40},
			want: exts(ext(8, 4)), left: exts(ext(1, 7), ext(12, 189))},
		{name: "a file continues at its congruent goal",
			free: exts(ext(1, 200)), n: 32, hint: Hint{Goal: 80, FileBlock: 64},
			want: exts(ext(80, 32)), left: exts(ext(1, 79), ext(112, 89))},
		{name: "a large file leaves an incongruent goal for the nearest congruent place",
			free: exts(ext(1, 200)), n: 8, hint: Hint{Goal: 17, FileBlock: 16},
			want: exts(ext(32, 8)), left: exts(ext(1, 31), ext(40, 161))},
		{name: "a large file whose goal was taken moves to the middle of the largest extent",
			free: exts(ext(1, 40), ext(60, 200), ext(300, 100)), n: 16, hint: Hint{Goal: 50, FileBlock: 32},
			want: exts(ext(144, 16)), left: exts(ext(1, 40), ext(60, 84), ext(160, 100), ext(300, 100))},
		{name: "past 64 extents from the goal a large request takes the smallest extent with a congruent run",
			free: append(exts(ext(1, 100), ext(200, 40), ext(300, 40), ext(403, 40)), fragments(70)...), n: 32, hint: Hint{Goal: 1000},
			want: exts(ext(208, 32)), left: append(exts(ext(1, 100), ext(200, 8), ext(300, 40), ext(403, 40)), fragments(70)...)},
		{name: "a large request with room only for incongruent runs takes one whole",
			free: exts(ext(1, 20), ext(35, 20)), n: 20, hint: Hint{},
			want: exts(ext(1, 20)), left: exts(ext(35, 20))},
		{name: "a large request in fragmented space is gathered, not refused",
			free: exts(ext(1, 10), ext(19, 10), ext(33, 10)), n: 25, hint: Hint{Goal: 5},
			want: exts(ext(1, 5), ext(19, 10), ext(33, 10)), left: exts(ext(6, 5))},
		{name: "a small request takes an unaligned head, not an aligned run",
			free: exts(ext(32, 64), ext(100, 10)), n: 4, hint: Hint{},
			want: exts(ext(100, 4)), left: exts(ext(32, 64), ext(104, 6))},
		{name: "a small request takes the unaligned tail of an extent",
			free: exts(ext(32, 40)), n: 4, hint: Hint{},
			want: exts(ext(68, 4)), left: exts(ext(32, 36))},
		{name: "a small request at its goal continues the file even in an aligned run",
			free: exts(ext(32, 64), ext(100, 10)), n: 4, hint: Hint{Goal: 48},
			want: exts(ext(48, 4)), left: exts(ext(32, 16), ext(52, 44), ext(100, 10))},
		{name: "a small request splits an aligned run when nothing else holds it",
			free: exts(ext(32, 32), ext(100, 3)), n: 4, hint: Hint{},
			want: exts(ext(32, 4)), left: exts(ext(36, 28), ext(100, 3))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := alignedOf(t, A, tc.free...)
			got, err := a.AllocFor(tc.n, tc.hint)
			if err != nil {
				t.Fatalf("AllocFor(%d, %+v): %v", tc.n, tc.hint, err)
			}
			mustCheckAlloc(t, a)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("AllocFor(%d, %+v) = %v, want %v", tc.n, tc.hint, got, tc.want)
			}
			if left := a.Extents(); !slices.Equal(left, tc.left) {
				t.Fatalf("free afterwards = %v, want %v", left, tc.left)
			}
		})
	}
	t.Run("SetAlign(0) restores the plain policy", func(t *testing.T) {
		a := alignedOf(t, A, ext(1, 200))
		a.SetAlign(0)
		got, err := a.AllocFor(32, Hint{FileBlock: 21})
		if err != nil || !slices.Equal(got, exts(ext(1, 32))) {
			t.Fatalf("AllocFor = %v, %v; want [1,+32)", got, err)
		}
	})
	t.Run("errors are Alloc's and change nothing", func(t *testing.T) {
		a := alignedOf(t, A, ext(1, 20))
		for _, n := range []uint64{0, 21, math.MaxUint64} {
			if _, err := a.AllocFor(n, Hint{FileBlock: math.MaxUint64}); err == nil {
				t.Fatalf("AllocFor(%d) succeeded", n)
			}
		}
		if got := a.Extents(); !slices.Equal(got, exts(ext(1, 20))) {
			t.Fatalf("failed calls changed free space to %v", got)
		}
	})
}

// unitsSplit reports whether allocating e out of free extent m splits an
// aligned unit of align blocks that lay wholly inside m.
func unitsSplit(m, e pmem.Extent, align uint64) bool {
	for u := (uint64(m.Start) + align - 1) / align * align; u+align <= uint64(m.End()); u += align {
		if uint64(e.Start) < u+align && u < uint64(e.End()) {
			return true
		}
	}
	return false
}

// TestAlignedAllocatorRandom runs random AllocFor, Free and Take calls on
// an aligned Allocator against the bitmap model and checks, after every
// call, the invariants, the model, and the policy's promises:
//   - an allocation fails only for want of free blocks, never for want of
//     alignment, and takes as few pieces as the largest free runs allow;
//   - a large request gets a run congruent with its file block whenever a
//     free extent holds one, as long as the free space has at most 64
//     extents or one extent has room for n+A-1 blocks (the scan is bounded);
//   - a free run at the goal is used when the request is small or the goal
//     congruent;
//   - a small request away from its goal splits an aligned free unit only
//     when no free extent could hold it without (under the same bound).
func TestAlignedAllocatorRandom(t *testing.T) {
	const blocks = 2048
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed>>7|3))
	ops := 20000
	if testing.Short() {
		ops = 3000
	}
	for _, align := range []uint64{8, 64} {
		a := New()
		a.SetAlign(align)
		model := make(bitmap, blocks)
		var log []string
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d, align %d, after %d ops: %s\nlast ops:\n  %s", seed, align, len(log),
				fmt.Sprintf(format, args...), strings.Join(tail(log, 30), "\n  "))
		}
		if err := a.Free(ext(1, blocks-1)); err != nil {
			t.Fatal(err)
		}
		model.set(ext(1, blocks-1), true)
		for range ops {
			var err error
			switch op := rng.IntN(10); {
			case op < 5:
				n := 1 + rng.Uint64N(2*align)
				if rng.IntN(20) == 0 {
					n = 1 + rng.Uint64N(blocks/2)
				}
				h := Hint{FileBlock: rng.Uint64N(4 * align)}
				if rng.IntN(3) > 0 {
					h.Goal = pmem.Block(rng.Uint64N(blocks))
				}
				before := model.extents()
				var got []pmem.Extent
				got, err = a.AllocFor(n, h)
				log = append(log, fmt.Sprintf("AllocFor(%d, %+v) = %v, %v", n, h, got, err))
				free := model.count(ext(0, blocks), true)
				if n > free {
					if !errors.Is(err, ErrNoSpace) {
						fail("error = %v, want ErrNoSpace", err)
					}
					err = nil
					break
				}
				if err != nil {
					fail("AllocFor(%d) failed with %d blocks free: %v", n, free, err)
				}
				checkAlignedPolicy(fail, before, got, n, h, align)
				checkAllocation(func(f string, args ...any) {
					if strings.HasPrefix(f, "blocks [%d,+%d) were free") {
						return // the goal rule differs for large requests: checked above
					}
					fail(f, args...)
				}, model, got, n, h.Goal)
			case op < 9:
				e := model.usedRunAround(rng, rng.IntN(blocks))
				if e.Empty() || e.Start == 0 {
					continue
				}
				err = a.Free(e)
				log = append(log, fmt.Sprintf("Free(%v) = %v", e, err))
				if err == nil {
					model.set(e, true)
				}
			default:
				start := 1 + rng.Uint64N(blocks-1)
				e := ext(start, 1+rng.Uint64N(min(16, blocks-start)))
				err = a.Take(e)
				log = append(log, fmt.Sprintf("Take(%v) = %v", e, err))
				switch {
				case model.count(e, true) < e.Len:
					if !errors.Is(err, ErrNotFree) {
						fail("error = %v, want ErrNotFree", err)
					}
					err = nil
				case err == nil:
					model.set(e, false)
				}
			}
			if err != nil {
				fail("unexpected error: %v", err)
			}
			if err := a.check(); err != nil {
				fail("invariant broken: %v", err)
			}
			compareWithModel(fail, a, model)
		}
	}
}

// checkAlignedPolicy checks one allocation got of n blocks for hint h
// against the free extents before it.
func checkAlignedPolicy(fail func(string, ...any), before, got []pmem.Extent, n uint64, h Hint, align uint64) {
	phase := h.FileBlock % align
	large := h.FileBlock+n >= align
	var atGoal pmem.Extent
	exact := len(before) <= nearScanLimit
	congruentFit, roomy, harmlessFit := false, false, false
	for _, m := range before {
		if m.Contains(h.Goal) {
			atGoal = m
		}
		skip := (phase + align - uint64(m.Start)%align) % align
		if skip < m.Len && m.Len-skip >= n {
			congruentFit = true
		}
		if m.Len >= n+align-1 {
			roomy = true
		}
		if m.Len >= n && (!unitsSplit(m, ext(uint64(m.Start), n), align) || !unitsSplit(m, ext(uint64(m.End())-n, n), align)) {
			harmlessFit = true
		}
	}
	fitsAtGoal := !atGoal.Empty() && uint64(atGoal.End()-h.Goal) >= n
	if fitsAtGoal && (!large || uint64(h.Goal)%align == phase) {
		if len(got) != 1 || got[0] != (pmem.Extent{Start: h.Goal, Len: n}) {
			fail("the free run at goal %d holds %d blocks, but AllocFor returned %v", h.Goal, n, got)
		}
		return
	}
	if large {
		if (roomy || (exact && congruentFit)) && (len(got) != 1 || uint64(got[0].Start)%align != phase) {
			fail("large request of %d blocks for file block %d got %v, not congruent modulo %d, though free space %v has room",
				n, h.FileBlock, got, align, before)
		}
		return
	}
	if exact && harmlessFit && len(got) == 1 {
		for _, m := range before {
			if m.Covers(got[0]) && unitsSplit(m, got[0], align) {
				fail("small request of %d blocks got %v, splitting an aligned unit of %v, though free space %v has a harmless place",
					n, got, m, before)
			}
		}
	}
}
