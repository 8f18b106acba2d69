package test

// A shrinking Truncate must change nothing inside the file before its size
// commit: a power cut in between keeps the old size, and then every old
// byte must still be there.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"testing"

	"github.com/daxstore/daxstore/dax"
	"github.com/daxstore/daxstore/internal/daxtest"
	"github.com/daxstore/daxstore/internal/powercut"
)

// TestTruncatePowerCutKeepsTheOldBytesOrTheNewSize cuts the power inside
// each of the first region flushes that a shrink to the middle of a block
// could make, keeping every unflushed cache line or a random part of them,
// and then grows the file back: the file holds its old bytes at the old
// size, or the prefix at the new size and zeros past it.
func TestTruncatePowerCutKeepsTheOldBytesOrTheNewSize(t *testing.T) {
	const bs = 4096
	seed := rand.Int63()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	for round := range 24 {
		blocks := 1 + rng.Intn(4)
		old := make([]byte, blocks*bs)
		for i := range old {
			old[i] = byte(1 + rng.Intn(255))
		}
		size := int64(rng.Intn(len(old)-1) + 1)
		if size%bs == 0 {
			size-- // the tail of the last kept block is what is under test
		}
		cutAt := 1 + round%3
		tear := []float64{1, 0.5, 0}[round/3%3]
		oplog := fmt.Sprintf("round %d: %d bytes, truncate to %d, cut in flush %d with tear %.1f", round, len(old), size, cutAt, tear)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d %s: %s", seed, oplog, fmt.Sprintf(format, args...))
		}

		dir := t.TempDir()
		sim := powercut.New(seed + int64(round))
		opts := daxtest.WithPowerCut(&dax.Options{Size: 64 * bs, BlockSize: bs, NoAdminSocket: true, AllocWait: -1}, sim)
		s, err := dax.Open(dir, opts)
		if err != nil {
			fail("open: %v", err)
		}
		if err := s.Put("a", old); err != nil {
			fail("put: %v", err)
		}
		f, err := s.Open("a")
		if err != nil {
			fail("open a: %v", err)
		}
		sim.CutAfterFlushes(cutAt, tear)
		terr := f.Truncate(size)
		cutInside := sim.Cut()
		if terr != nil && !cutInside {
			fail("truncate: %v", terr)
		}
		sim.CutNow(tear)
		_ = s.CloseWith(context.Background(), dax.CloseOptions{Force: true})
		sim.Restart()

		if s, err = dax.Open(dir, opts); err != nil {
			fail("open after the cut: %v", err)
		}
		if err := s.Check(); err != nil {
			fail("check after the cut: %v", err)
		}
		got, err := s.Get("a")
		if err != nil {
			fail("get after the cut: %v", err)
		}
		switch {
		case len(got) == len(old):
			if !cutInside {
				fail("the truncate returned before the cut, but the old size %d survived", len(old))
			}
			if !bytes.Equal(got, old) {
				i := firstDiff(got, old)
				fail("the old size survived, but byte %d reads %#x, was %#x", i, got[i], old[i])
			}
		case int64(len(got)) == size:
			if !bytes.Equal(got, old[:size]) {
				fail("the new size survived with different bytes (first at %d)", firstDiff(got, old[:size]))
			}
		default:
			fail("after the cut the file holds %d bytes, want %d or %d", len(got), len(old), size)
		}
		// Growing again reads zeros past the size that survived.
		f, err = s.Open("a")
		if err != nil {
			fail("open a: %v", err)
		}
		if err := f.Truncate(int64(len(old)) + bs); err != nil {
			fail("grow: %v", err)
		}
		grown, err := s.Get("a")
		if err != nil {
			fail("get after the grow: %v", err)
		}
		if i := bytes.IndexFunc(grown[len(got):], func(r rune) bool { return r != 0 }); i >= 0 {
			fail("after growing from %d, byte %d is not zero", len(got), len(got)+i)
		}
		if err := s.Close(); err != nil {
			fail("close: %v", err)
		}
	}
}
