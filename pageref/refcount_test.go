package pageref

// This file tests Detach and the release of detached blocks, including the
// exactly-once guarantee under concurrency.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daxstore/daxstore/pmem"
)

func TestDetach(t *testing.T) {
	const n = 4 * chunkBlocks
	tests := []struct {
		name     string
		refs     []pmem.Extent // acquired before the Detach
		e        pmem.Extent
		wantBusy []pmem.Extent
	}{
		{"detach of idle blocks marks nothing", nil, ext(10, 20), nil},
		{"detach of idle blocks in untouched chunks marks nothing", []pmem.Extent{ext(0, 1)}, ext(chunkBlocks, 2*chunkBlocks), nil},
		{"detach of referenced blocks marks them all", []pmem.Extent{ext(10, 20)}, ext(10, 20), []pmem.Extent{ext(10, 20)}},
		{"detach of a mixed range marks only the referenced runs",
			[]pmem.Extent{ext(12, 3), ext(13, 1), ext(20, 2), ext(chunkBlocks-1, 3)},
			ext(10, chunkBlocks),
			[]pmem.Extent{ext(12, 3), ext(20, 2), ext(chunkBlocks-1, 3)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rel releases
			tb := New(n, rel.record)
			for _, r := range tc.refs {
				if err := tb.Acquire(r); err != nil {
					t.Fatal(err)
				}
			}
			before := counts(tb, n)
			busy, err := tb.Detach(tc.e)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(busy, tc.wantBusy) {
				t.Fatalf("busy = %v, want %v", busy, tc.wantBusy)
			}
			if got := counts(tb, n); !slices.Equal(got, before) {
				t.Fatalf("Detach changed counts at blocks %v", diff(got, before))
			}
			for b := range pmem.Block(n) {
				want := slices.ContainsFunc(tc.wantBusy, func(e pmem.Extent) bool { return e.Contains(b) })
				if tb.IsDetached(b) != want {
					t.Fatalf("block %d: IsDetached = %v, want %v", b, !want, want)
				}
			}
			if c := rel.take(); c != nil {
				t.Fatalf("onRelease called by Detach: %v", c)
			}
			mustCheck(t, tb)
		})
	}
}

func TestDetachOfDetachedBlockFailsWithoutChange(t *testing.T) {
	tb := New(100, nil)
	if err := tb.Acquire(ext(0, 20)); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Detach(ext(10, 2)); err != nil {
		t.Fatal(err)
	}
	busy, err := tb.Detach(ext(0, 20))
	if !errors.Is(err, ErrDetached) {
		t.Fatalf("got %v, want ErrDetached", err)
	}
	if busy != nil {
		t.Fatalf("failed Detach returned busy %v", busy)
	}
	for b := range pmem.Block(20) {
		if want := b == 10 || b == 11; tb.IsDetached(b) != want {
			t.Fatalf("block %d: IsDetached = %v, want %v", b, !want, want)
		}
	}
}

func TestAcquireOfDetachedBlockFailsWithoutChange(t *testing.T) {
	const n = 2 * chunkBlocks
	tests := []struct {
		name string
		e    pmem.Extent
	}{
		{"acquire of the detached block alone fails", ext(chunkBlocks+5, 1)},
		{"acquire of a range ending in it fails", ext(chunkBlocks-10, 16)},
		{"acquire of a range starting at it fails", ext(chunkBlocks+5, 10)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rel releases
			tb := New(n, rel.record)
			if err := tb.Acquire(ext(chunkBlocks+5, 1)); err != nil {
				t.Fatal(err)
			}
			if _, err := tb.Detach(ext(chunkBlocks+5, 1)); err != nil {
				t.Fatal(err)
			}
			before := counts(tb, n)
			if err := tb.Acquire(tc.e); !errors.Is(err, ErrDetached) {
				t.Fatalf("got %v, want ErrDetached", err)
			}
			if got := counts(tb, n); !slices.Equal(got, before) {
				t.Fatalf("counts changed at blocks %v", diff(got, before))
			}
			if got := tb.ReferencedBlocks(); got != 1 {
				t.Fatalf("ReferencedBlocks = %d, want 1", got)
			}
			if c := rel.take(); c != nil {
				t.Fatalf("onRelease called: %v", c)
			}
			mustCheck(t, tb)
		})
	}
}

func TestLastReleaseReportsDetachedBlocks(t *testing.T) {
	var rel releases
	tb := New(4*chunkBlocks, rel.record)
	// Two references on [chunkBlocks-4, +10), one more on its middle.
	whole, mid := ext(chunkBlocks-4, 10), ext(chunkBlocks-1, 2)
	for _, e := range []pmem.Extent{whole, whole, mid} {
		if err := tb.Acquire(e); err != nil {
			t.Fatal(err)
		}
	}
	busy, err := tb.Detach(ext(0, 4*chunkBlocks))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(busy, []pmem.Extent{whole}) {
		t.Fatalf("busy = %v, want %v", busy, []pmem.Extent{whole})
	}

	t.Run("a release that leaves references reports nothing", func(t *testing.T) {
		if err := tb.Release(whole); err != nil {
			t.Fatal(err)
		}
		if c := rel.take(); c != nil {
			t.Fatalf("onRelease called: %v", c)
		}
	})
	t.Run("the last release reports the runs around the still-held middle, in one call", func(t *testing.T) {
		if err := tb.Release(whole); err != nil {
			t.Fatal(err)
		}
		want := [][]pmem.Extent{{ext(chunkBlocks-4, 3), ext(chunkBlocks+1, 5)}}
		if c := rel.take(); !slices.EqualFunc(c, want, slices.Equal) {
			t.Fatalf("onRelease calls = %v, want %v", c, want)
		}
		for b := whole.Start; b < whole.End(); b++ {
			if want := mid.Contains(b); tb.IsDetached(b) != want {
				t.Fatalf("block %d: IsDetached = %v, want %v", b, !want, want)
			}
		}
	})
	t.Run("releasing the middle reports it and clears its words", func(t *testing.T) {
		if err := tb.Release(ext(chunkBlocks-1, 1)); err != nil {
			t.Fatal(err)
		}
		if err := tb.Release(ext(chunkBlocks, 1)); err != nil {
			t.Fatal(err)
		}
		want := [][]pmem.Extent{{ext(chunkBlocks-1, 1)}, {ext(chunkBlocks, 1)}}
		if c := rel.take(); !slices.EqualFunc(c, want, slices.Equal) {
			t.Fatalf("onRelease calls = %v, want %v", c, want)
		}
		for b := whole.Start; b < whole.End(); b++ {
			if tb.IsDetached(b) || tb.Count(b) != 0 {
				t.Fatalf("block %d still detached or referenced", b)
			}
		}
		mustCheck(t, tb)
	})
	t.Run("a released block can be referenced again, and is idle to a new Detach", func(t *testing.T) {
		if err := tb.Acquire(whole); err != nil {
			t.Fatal(err)
		}
		if err := tb.Release(whole); err != nil {
			t.Fatal(err)
		}
		busy, err := tb.Detach(whole)
		if err != nil || busy != nil {
			t.Fatalf("Detach = %v, %v; want no busy blocks", busy, err)
		}
		if c := rel.take(); c != nil {
			t.Fatalf("onRelease called: %v", c)
		}
	})
}

func TestReleaseUnderflowWithDetachedBlocksChangesNothing(t *testing.T) {
	var rel releases
	tb := New(100, rel.record)
	if err := tb.Acquire(ext(0, 5)); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Detach(ext(0, 5)); err != nil {
		t.Fatal(err)
	}
	// Block 5 was never referenced: the release must fail before block 0..4
	// lose their last reference.
	if err := tb.Release(ext(0, 6)); !errors.Is(err, ErrNotReferenced) {
		t.Fatalf("got %v, want ErrNotReferenced", err)
	}
	if c := rel.take(); c != nil {
		t.Fatalf("onRelease called: %v", c)
	}
	for b := range pmem.Block(5) {
		if tb.Count(b) != 1 || !tb.IsDetached(b) {
			t.Fatalf("block %d: count %d detached %v, want 1 and true", b, tb.Count(b), tb.IsDetached(b))
		}
	}
}

// TestReleaseExactlyOnce is the proof named in chunk.dec: holders release
// their references on a range in random pieces, taking and dropping nested
// references on the way, while a Detach of the range lands at a random
// moment. Every block must end up freed exactly once: either directly by the
// Detach caller (idle when Detach read it) or by onRelease, never both, never
// twice.
func TestReleaseExactlyOnce(t *testing.T) {
	rounds := 400
	if testing.Short() {
		rounds = 50
	}
	base := uint64(time.Now().UnixNano())
	t.Logf("base seed %d", base)
	var st raceStats
	for r := range rounds {
		seed := base + uint64(r)
		if err := exactlyOnceRound(seed, &st, false); err != nil {
			t.Fatalf("seed %d (round %d): %v", seed, r, err)
		}
	}
	t.Logf("%d rounds: %d with both idle and detached blocks, %d nested acquires refused as detached",
		rounds, st.mixed, st.refused.Load())
}

func TestReleaseExactlyOnceWithPageReferences(t *testing.T) {
	// The same race over ranges that cover a whole directory page, taken
	// as page range counts and pushed down while holders release.
	rounds := 40
	if testing.Short() {
		rounds = 8
	}
	base := uint64(time.Now().UnixNano())
	t.Logf("base seed %d", base)
	var st raceStats
	for r := range rounds {
		seed := base + uint64(r)
		if err := exactlyOnceRound(seed, &st, true); err != nil {
			t.Fatalf("seed %d (round %d): %v", seed, r, err)
		}
	}
	t.Logf("%d rounds: %d with both idle and detached blocks, %d nested acquires refused as detached",
		rounds, st.mixed, st.refused.Load())
}

// raceStats shows that the rounds exercise the races they are meant to.
type raceStats struct {
	mixed   int          // rounds where Detach found both idle and referenced blocks
	refused atomic.Int64 // nested Acquires that met a detached block
}

func exactlyOnceRound(seed uint64, st *raceStats, pages bool) error {
	rng := rand.New(rand.NewPCG(seed, 0))
	n := uint64(4 * chunkBlocks)
	e := ext(rng.Uint64N(200), 1+rng.Uint64N(3*chunkBlocks))
	if pages {
		// From block 0 most of the time, so that the page is covered.
		n = pageBlocks + 2*chunkBlocks
		start := rng.Uint64N(200) * uint64(rng.IntN(2))
		e = ext(start, min(pageBlocks+rng.Uint64N(2*chunkBlocks), n-start))
	}
	holders := 2 + rng.IntN(6)

	var mu sync.Mutex // protects released
	released := map[pmem.Block]int{}
	tb := New(n, func(runs []pmem.Extent) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range runs {
			for b := r.Start; b < r.End(); b++ {
				released[b]++
			}
		}
	})
	for range holders {
		if err := tb.Acquire(e); err != nil {
			return err
		}
	}

	// Each holder releases e in shuffled pieces; the Detach fires once a
	// random number of pieces has been released.
	plans := make([][]pmem.Extent, holders)
	total := 0
	for h := range plans {
		plans[h] = splitShuffled(rng, e)
		if pages && rng.IntN(3) == 0 {
			plans[h] = []pmem.Extent{e} // the page reference dropped whole
		}
		total += len(plans[h])
	}
	fireAt := rng.Int64N(int64(total) + 1)
	var done atomic.Int64
	errs := make(chan error, holders+1)
	var wg sync.WaitGroup
	for h := range holders {
		hseed := rng.Uint64()
		wg.Go(func() {
			hr := rand.New(rand.NewPCG(hseed, 1))
			for _, p := range plans[h] {
				if hr.IntN(3) == 0 {
					// A nested reference, as a read taking a short-term ref
					// under a pin: it fails only if the piece was detached.
					if err := tb.Acquire(p); err == nil {
						runtime.Gosched()
						if err := tb.Release(p); err != nil {
							errs <- fmt.Errorf("nested release %v: %w", p, err)
							return
						}
					} else if errors.Is(err, ErrDetached) {
						st.refused.Add(1)
					} else {
						errs <- fmt.Errorf("nested acquire %v: %w", p, err)
						return
					}
				}
				if err := tb.Release(p); err != nil {
					errs <- fmt.Errorf("holder %d release %v: %w", h, p, err)
					return
				}
				done.Add(1)
				if hr.IntN(4) == 0 {
					runtime.Gosched()
				}
			}
		})
	}
	var busy []pmem.Extent
	wg.Go(func() {
		for done.Load() < fireAt {
			runtime.Gosched()
		}
		var err error
		if busy, err = tb.Detach(e); err != nil {
			errs <- fmt.Errorf("detach: %w", err)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}

	busySet := map[pmem.Block]bool{}
	for _, r := range busy {
		if !e.Covers(r) {
			return fmt.Errorf("busy run %v outside %v", r, e)
		}
		for b := r.Start; b < r.End(); b++ {
			busySet[b] = true
		}
	}
	for b, c := range released {
		if c != 1 {
			return fmt.Errorf("block %d reported to onRelease %d times", b, c)
		}
		if !busySet[b] {
			return fmt.Errorf("block %d reported to onRelease but was idle to Detach (freed twice)", b)
		}
	}
	for b := e.Start; b < e.End(); b++ {
		freedDirectly := !busySet[b]
		if freedDirectly == (released[b] == 1) {
			return fmt.Errorf("block %d: freed directly %v, reported %d times; want exactly one of them", b, freedDirectly, released[b])
		}
		if tb.Count(b) != 0 || tb.IsDetached(b) {
			return fmt.Errorf("block %d left with count %d detached %v", b, tb.Count(b), tb.IsDetached(b))
		}
	}
	if len(busySet) > 0 && uint64(len(busySet)) < e.Len {
		st.mixed++
	}
	if len(released) != len(busySet) {
		return fmt.Errorf("%d blocks reported, %d detached", len(released), len(busySet))
	}
	if tb.ReferencedBlocks() != 0 {
		return fmt.Errorf("ReferencedBlocks = %d at the end", tb.ReferencedBlocks())
	}
	return tb.Check()
}

// splitShuffled cuts e into random pieces in random order.
func splitShuffled(rng *rand.Rand, e pmem.Extent) []pmem.Extent {
	var pieces []pmem.Extent
	// Half the holders release chunk by chunk, so that range references
	// are dropped whole while others push theirs down and Detach marks.
	whole := rng.IntN(2) == 0
	for b := e.Start; b < e.End(); {
		l := min(1+rng.Uint64N(64), uint64(e.End()-b))
		if whole {
			l = min(uint64(chunkBlocks-b&chunkMask), uint64(e.End()-b))
		}
		pieces = append(pieces, pmem.Extent{Start: b, Len: l})
		b += pmem.Block(l)
	}
	rng.Shuffle(len(pieces), func(i, j int) { pieces[i], pieces[j] = pieces[j], pieces[i] })
	return pieces
}

// TestReleaseRacingAPushDown pins down the interleaving behind a Release that
// failed with ErrNotReferenced on a block its caller held: the reference was
// in the chunk's range count, the Release read the block's word at 0, and a
// push-down (by another holder's Release of part of the chunk, or by Detach)
// moved the range count into the words before the Release looked at the range
// count, so it found the reference nowhere. The hook makes the push-down land
// in exactly that gap.
func TestReleaseRacingAPushDown(t *testing.T) {
	chunk1 := ext(chunkBlocks, chunkBlocks)
	const a, b = chunkBlocks + 7, chunkBlocks + 9 // blocks released by holders A and B
	for _, tc := range []struct {
		name string
		held pmem.Extent // each of two holders acquires it whole
		// pushDown runs in A's gap and returns the blocks it detached.
		pushDown func(t *testing.T, tb *Table) []pmem.Extent
	}{
		{"by another holder's release, chunk reference", chunk1, func(t *testing.T, tb *Table) []pmem.Extent {
			if err := tb.Release(ext(b, 1)); err != nil {
				t.Errorf("holder B's release: %v", err)
			}
			return nil
		}},
		{"by another holder's release, page reference", ext(0, pageBlocks), func(t *testing.T, tb *Table) []pmem.Extent {
			if err := tb.Release(ext(b, 1)); err != nil {
				t.Errorf("holder B's release: %v", err)
			}
			return nil
		}},
		{"by Detach", chunk1, func(t *testing.T, tb *Table) []pmem.Extent {
			busy, err := tb.Detach(chunk1)
			if err != nil {
				t.Errorf("detach: %v", err)
			}
			return busy
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rel releases
			tb := New(pageBlocks+2*chunkBlocks, rel.record)
			for range 2 {
				if err := tb.Acquire(tc.held); err != nil {
					t.Fatal(err)
				}
			}
			var busy []pmem.Extent
			fired := false
			tb.gap = func(ci uint64, i int) {
				if fired || blockOf(ci, i) != pmem.Block(a) {
					return
				}
				fired = true
				busy = tc.pushDown(t, tb)
			}
			if err := tb.Release(ext(a, 1)); err != nil {
				t.Fatalf("holder A's release of a block it holds: %v", err)
			}
			if !fired {
				t.Fatal("the push-down never landed in the gap")
			}
			tb.gap = nil
			for _, x := range []uint64{a, b, a + 1} {
				want := uint32(2)
				if x == a || x == b && busy == nil {
					want = 1
				}
				if got := tb.Count(pmem.Block(x)); got != want {
					t.Errorf("block %d: count %d, want %d", x, got, want)
				}
			}
			mustCheck(t, tb)

			// Every remaining reference releases cleanly, and a detached
			// block is reported exactly once.
			start, end := uint64(tc.held.Start), uint64(tc.held.End())
			rest := []pmem.Extent{ext(start, a-start), ext(a+1, end-a-1)}
			if busy == nil {
				rest = append(rest, ext(start, b-start), ext(b+1, end-b-1))
			} else {
				rest = append(rest, tc.held)
			}
			for _, r := range rest {
				if err := tb.Release(r); err != nil {
					t.Fatalf("release %v: %v", r, err)
				}
			}
			if tb.ReferencedBlocks() != 0 {
				t.Fatalf("ReferencedBlocks = %d at the end", tb.ReferencedBlocks())
			}
			if busy != nil && !slices.Equal(busy, []pmem.Extent{chunk1}) {
				t.Fatalf("Detach returned %v, want %v", busy, chunk1)
			}
			reported := map[pmem.Block]int{}
			for _, c := range rel.take() {
				for _, r := range c {
					for x := r.Start; x < r.End(); x++ {
						reported[x]++
					}
				}
			}
			for x := tc.held.Start; x < tc.held.End(); x++ {
				want := 0
				if busy != nil {
					want = 1
				}
				if reported[x] != want {
					t.Fatalf("block %d reported %d times, want %d", x, reported[x], want)
				}
			}
			mustCheck(t, tb)
		})
	}
}

// TestCountRacingAPushDown: Count of a block held only through its chunk's
// range count, with a push-down (another holder's Release of part of the
// chunk) landing between Count's loads, still sees the reference. dax
// relies on it: a block that Count says is idle gets zeroed in place.
func TestCountRacingAPushDown(t *testing.T) {
	chunk1 := ext(chunkBlocks, chunkBlocks)
	const x = chunkBlocks + 3
	tb := New(4*chunkBlocks, nil)
	for range 2 {
		if err := tb.Acquire(chunk1); err != nil {
			t.Fatal(err)
		}
	}
	// Both references are only in the range count. The second holder's
	// Release of another block pushes them down into the words.
	fired := false
	tb.gap = func(ci uint64, i int) {
		if fired {
			return
		}
		fired = true
		if err := tb.Release(ext(x+1, 1)); err != nil {
			t.Errorf("release: %v", err)
		}
	}
	got := tb.Count(x)
	tb.gap = nil
	if !fired {
		t.Fatal("the push-down never landed in the gap")
	}
	if got == 0 {
		t.Fatalf("Count of a held block = 0 while its range count was pushed down")
	}
	if got := tb.Count(x); got != 2 {
		t.Fatalf("Count after the push-down = %d, want 2", got)
	}
	mustCheck(t, tb)
}
