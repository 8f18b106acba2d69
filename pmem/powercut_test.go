//go:build unix

// This file tests emulated media: what a power cut keeps, what it loses,
// and that nothing a dead process flushes reaches the media.

package pmem

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// emulatedRegion creates a region of blocks 4 KiB blocks on emulated media
// switched by pc, in a fresh temporary directory.
func emulatedRegion(t *testing.T, pc *powerCut, blocks int64) *Region {
	t.Helper()
	r, err := Create(filepath.Join(t.TempDir(), "region"), CreateOptions{Size: blocks * 4096, powerCut: pc})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// media returns the file's bytes of data block b: what survived.
func mediaBlock(t *testing.T, r *Region, b Block) []byte {
	t.Helper()
	return readAt(t, r.Path(), int64(b)*r.BlockSize(), int(r.BlockSize()))
}

// reopenAfterCut revives pc and opens r's file again on it.
func reopenAfterCut(t *testing.T, r *Region, pc *powerCut) *Region {
	t.Helper()
	pc.Revive()
	r2, err := OpenWith(r.Path(), OpenOptions{powerCut: pc})
	if err != nil {
		t.Fatalf("OpenWith after Revive: %v", err)
	}
	t.Cleanup(func() { _ = r2.Close() })
	return r2
}

func TestEmulatedMediaKeepsFlushedStoresAndTearsUnflushedOnes(t *testing.T) {
	cases := []struct {
		name          string
		tear          float64
		wantUnflushed string // "old", "new" or "lines": each line old or new, both seen
	}{
		{"a cut with tear 0 loses every unflushed store", 0, "old"},
		{"a cut with tear 1 keeps every unflushed store", 1, "new"},
		{"a cut with tear one half keeps some whole cache lines and loses others", 0.5, "lines"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pc := newPowerCut(7)
			r := emulatedRegion(t, pc, 8)
			if !r.Emulated() || r.DAX() || r.FlushMethod() != "emulated" {
				t.Fatalf("Emulated %v DAX %v FlushMethod %q; want true, false, emulated", r.Emulated(), r.DAX(), r.FlushMethod())
			}
			flushed, unflushed := Extent{Start: 1, Len: 1}, Extent{Start: 3, Len: 2}
			fill(r.Bytes(flushed), 1)
			if err := r.Flush(flushed); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			want := bytes.Clone(r.Bytes(flushed))
			fill(r.Bytes(unflushed), 2)
			newBytes := bytes.Clone(r.Bytes(unflushed))
			// A partial flush of a block: its lines survive, the rest of
			// the block does not (with tear 0).
			partial := r.Bytes(Extent{Start: 5, Len: 1})
			fill(partial, 3)
			if err := r.FlushBytes(5*r.BlockSize()+100, 10); err != nil {
				t.Fatalf("FlushBytes: %v", err)
			}
			pc.CutNow(tc.tear)
			if !pc.Cut() {
				t.Fatal("Cut() = false after CutNow")
			}

			r2 := reopenAfterCut(t, r, pc)
			if got := r2.Bytes(flushed); !bytes.Equal(got, want) {
				t.Fatal("a flushed block did not survive the cut")
			}
			line := r2.Bytes(Extent{Start: 5, Len: 1})[64:128]
			if !bytes.Equal(line, partial[64:128]) {
				t.Fatal("the cache line FlushBytes covered did not survive the cut")
			}
			got := r2.Bytes(unflushed)
			var old, fresh int
			for i := 0; i < len(got); i += CacheLineSize {
				switch l := got[i : i+CacheLineSize]; {
				case bytes.Equal(l, newBytes[i:i+CacheLineSize]):
					fresh++
				case bytes.Equal(l, make([]byte, CacheLineSize)):
					old++
				default:
					t.Fatalf("cache line at %d is neither old nor new: torn inside a line", i)
				}
			}
			switch {
			case tc.wantUnflushed == "old" && fresh > 0:
				t.Fatalf("%d unflushed cache lines survived a cut with tear 0", fresh)
			case tc.wantUnflushed == "new" && old > 0:
				t.Fatalf("%d unflushed cache lines were lost in a cut with tear 1", old)
			case tc.wantUnflushed == "lines" && (old == 0 || fresh == 0):
				t.Fatalf("tear 0.5 over %d lines kept %d and lost %d", old+fresh, fresh, old)
			}
		})
	}
}

func TestEmulatedRegionCloseNeverWritesTheViewBack(t *testing.T) {
	pc := newPowerCut(1)
	r := emulatedRegion(t, pc, 4)
	e := Extent{Start: 1, Len: 3}
	fill(r.Bytes(e), 9)
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := mediaBlock(t, r, 2); bytes.ContainsFunc(got, func(c rune) bool { return c != 0 }) {
		t.Fatal("Close wrote unflushed stores to the media")
	}
	if pc.Cut() {
		t.Fatal("Close cut the power")
	}
}

func TestEmulatedFlushesAfterACutAreDroppedForGood(t *testing.T) {
	pc := newPowerCut(1)
	r := emulatedRegion(t, pc, 4)
	pc.CutNow(0)
	e := Extent{Start: 1, Len: 1}
	fill(r.Bytes(e), 4)
	if err := r.Flush(e); err != nil {
		t.Fatalf("Flush after the cut = %v, want nil (the CPU does not notice)", err)
	}
	if err := r.FlushBytes(4096, 64); err != nil {
		t.Fatalf("FlushBytes after the cut = %v, want nil", err)
	}
	if got := mediaBlock(t, r, 1); bytes.ContainsFunc(got, func(c rune) bool { return c != 0 }) {
		t.Fatal("a flush after the cut reached the media")
	}
	if n := pc.Flushes(); n != 0 {
		t.Fatalf("Flushes() = %d after flushes on a dead device, want 0", n)
	}

	// The process that saw the cut stays dead after the power returns.
	r2 := reopenAfterCut(t, r, pc)
	if err := r.Flush(e); err != nil {
		t.Fatalf("Flush of the dead region = %v", err)
	}
	if got := mediaBlock(t, r, 1); bytes.ContainsFunc(got, func(c rune) bool { return c != 0 }) {
		t.Fatal("a region open at the cut reached the media after Revive")
	}
	fill(r2.Bytes(e), 5)
	if err := r2.Flush(e); err != nil {
		t.Fatalf("Flush of the reopened region: %v", err)
	}
	if got := mediaBlock(t, r, 1); !bytes.Equal(got, r2.Bytes(e)) {
		t.Fatal("a flush of the region reopened after Revive did not reach the media")
	}
}

func TestEmulatedCutAfterFiresInsideTheNthFlush(t *testing.T) {
	for _, n := range []int{1, 2, 5} {
		t.Run(fmt.Sprintf("a cut armed for flush %d keeps the flushes before it and loses that one", n), func(t *testing.T) {
			pc := newPowerCut(int64(n))
			var calls atomic.Int32
			pc.SetOnCut(func() { calls.Add(1) })
			r := emulatedRegion(t, pc, 8)
			pc.CutAfter(n, 0)
			for i := 1; i <= n; i++ {
				e := Extent{Start: Block(i), Len: 1}
				fill(r.Bytes(e), uint64(i))
				if err := r.Flush(e); err != nil {
					t.Fatalf("Flush %d: %v", i, err)
				}
				if cut := pc.Cut(); cut != (i == n) {
					t.Fatalf("after flush %d of %d, Cut() = %v", i, n, cut)
				}
			}
			if got := pc.Flushes(); got != n {
				t.Fatalf("Flushes() = %d, want %d", got, n)
			}
			if c := calls.Load(); c != 1 {
				t.Fatalf("OnCut called %d times, want 1", c)
			}
			r2 := reopenAfterCut(t, r, pc)
			for i := 1; i <= n; i++ {
				e := Extent{Start: Block(i), Len: 1}
				want := make([]byte, r.BlockSize())
				if i < n {
					fill(want, uint64(i))
				}
				if !bytes.Equal(r2.Bytes(e), want) {
					t.Fatalf("block %d after a cut in flush %d: survived = %v, want %v", i, n, i == n, i < n)
				}
			}
		})
	}
}

func TestPowerCutBadInputAndIdempotence(t *testing.T) {
	t.Run("a region cannot be created or opened while the power is off", func(t *testing.T) {
		pc := newPowerCut(1)
		r := emulatedRegion(t, pc, 4)
		pc.CutNow(0)
		path := filepath.Join(t.TempDir(), "other")
		if _, err := Create(path, CreateOptions{Size: 4 * 4096, powerCut: pc}); !errors.Is(err, errPowerOff) {
			t.Fatalf("Create on a dead device = %v, want errPowerOff", err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("failed Create left %s behind: %v", path, err)
		}
		if _, err := OpenWith(r.Path(), OpenOptions{powerCut: pc}); !errors.Is(err, errPowerOff) {
			t.Fatalf("OpenWith on a dead device = %v, want errPowerOff", err)
		}
	})
	t.Run("a second cut, a CutAfter when cut and a Revive when live change nothing", func(t *testing.T) {
		pc := newPowerCut(1)
		var calls atomic.Int32
		pc.SetOnCut(func() { calls.Add(1) })
		pc.Revive()
		if pc.Cut() {
			t.Fatal("Revive of a live device cut it")
		}
		r := emulatedRegion(t, pc, 4)
		pc.CutNow(0)
		pc.CutNow(1)
		pc.CutAfter(1, 1)
		if c := calls.Load(); c != 1 {
			t.Fatalf("OnCut called %d times, want 1", c)
		}
		r2 := reopenAfterCut(t, r, pc)
		e := Extent{Start: 1, Len: 1}
		fill(r2.Bytes(e), 1)
		if err := r2.Flush(e); err != nil {
			t.Fatal(err)
		}
		if pc.Cut() {
			t.Fatal("a CutAfter armed while cut fired after Revive")
		}
	})
	t.Run("a count below one means the next flush and a tear outside [0,1] is clamped", func(t *testing.T) {
		pc := newPowerCut(1)
		r := emulatedRegion(t, pc, 4)
		e := Extent{Start: 1, Len: 1}
		fill(r.Bytes(e), 1)
		pc.CutAfter(-3, 7)
		if err := r.Flush(e); err != nil {
			t.Fatal(err)
		}
		if !pc.Cut() {
			t.Fatal("CutAfter(-3) did not fire at the next flush")
		}
		if got := mediaBlock(t, r, 1); !bytes.Equal(got, r.Bytes(e)) {
			t.Fatal("tear 7 was not clamped to 1: dirty lines were lost")
		}
	})
}

// TestEmulatedConcurrentFlushesAndACut proves that a flush either reaches the
// media before the cut or not at all: a value whose flush returned while
// the power was still on is never lost.
func TestEmulatedConcurrentFlushesAndACut(t *testing.T) {
	const writers = 4
	pc := newPowerCut(3)
	r := emulatedRegion(t, pc, writers+1)
	pc.CutAfter(200, 0)
	acked := make([]uint64, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := Extent{Start: Block(w + 1), Len: 1}
			b := r.Bytes(e)
			for v := uint64(1); ; v++ {
				for i := range b {
					b[i] = byte(v)
				}
				if err := r.Flush(e); err != nil {
					t.Errorf("Flush: %v", err)
					return
				}
				if pc.Cut() {
					return
				}
				acked[w] = v
			}
		}()
	}
	wg.Wait()
	r2 := reopenAfterCut(t, r, pc)
	for w := range writers {
		got := r2.Bytes(Extent{Start: Block(w + 1), Len: 1})
		v := byte(acked[w])
		if got[0] != v && got[0] != v+1 {
			t.Errorf("writer %d: media holds %d, acknowledged %d", w, got[0], v)
		}
		if !bytes.Equal(got, bytes.Repeat(got[:1], len(got))) {
			t.Errorf("writer %d: the block mixes two flushes although tear is 0", w)
		}
	}
}
