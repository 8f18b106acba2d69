package test

// Under Options.NoSync a commit that frees blocks may be lost in a power
// cut. Its blocks must not be handed to another key before it is durable,
// or after the cut the old file maps blocks that hold the new key's bytes.

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

// TestNoSyncPowerCutNeverShowsReusedBlocks truncates a durable key a, puts a
// key b that fits in a's old blocks, and cuts the power: whatever survived,
// a never reads b's bytes.
func TestNoSyncPowerCutNeverShowsReusedBlocks(t *testing.T) {
	const bs = 4096
	seed := rand.Int63()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	for round := range 12 {
		dir := t.TempDir()
		sim := powercut.New(seed + int64(round))
		opts := daxtest.WithPowerCut(&dax.Options{Size: 256 * bs, BlockSize: bs, NoAdminSocket: true, NoSync: true, AllocWait: -1}, sim)
		blocks := 1 + rng.Intn(8)
		tear := []float64{0, 0.5, 1}[round%3]
		shrink := int64(rng.Intn(blocks)) * bs // a keeps this much
		oplog := fmt.Sprintf("round %d: a and b of %d blocks, truncate a to %d, cut with tear %.1f", round, blocks, shrink, tear)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d %s: %s", seed, oplog, fmt.Sprintf(format, args...))
		}
		a := bytes.Repeat([]byte{'a'}, blocks*bs)
		b := bytes.Repeat([]byte{'b'}, blocks*bs)

		s, err := dax.Open(dir, opts)
		if err != nil {
			fail("open: %v", err)
		}
		if err := s.Put("a", a); err != nil {
			fail("put a: %v", err)
		}
		if err := s.Close(); err != nil { // a clean close makes a durable
			fail("close: %v", err)
		}
		if s, err = dax.Open(dir, opts); err != nil {
			fail("reopen: %v", err)
		}
		f, err := s.Open("a")
		if err != nil {
			fail("open a: %v", err)
		}
		if err := f.Truncate(shrink); err != nil {
			fail("truncate a: %v", err)
		}
		if err := s.Put("b", b); err != nil {
			fail("put b: %v", err)
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
			fail("get a after the cut: %v", err)
		}
		if i := bytes.IndexFunc(got, func(r rune) bool { return r != 'a' }); i >= 0 {
			fail("after the cut a (%d bytes) reads %q at offset %d: another key's bytes", len(got), got[i], i)
		}
		if len(got) != len(a) && int64(len(got)) != shrink {
			fail("after the cut a holds %d bytes, want %d or %d", len(got), len(a), shrink)
		}
		if err := s.Close(); err != nil {
			fail("close: %v", err)
		}
	}
}

// TestNoSyncReusesFreedBlocksWhenFull proves that holding freed blocks back
// under NoSync never costs space: when an allocation needs them, the store
// syncs the journal and hands them out.
func TestNoSyncReusesFreedBlocksWhenFull(t *testing.T) {
	const bs = 4096
	s, err := dax.Open(t.TempDir(), &dax.Options{Size: 64 * bs, BlockSize: bs, NoAdminSocket: true, NoSync: true, AllocWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The filler leaves 7 blocks; k takes them. Removing k frees fewer
	// blocks than make a commit sync on its own, so only the allocation
	// that needs them can make them allocatable.
	if err := s.Put("filler", bytes.Repeat([]byte{'f'}, 56*bs)); err != nil {
		t.Fatal(err)
	}
	value := bytes.Repeat([]byte{'x'}, 7*bs)
	for i := range 5 {
		if err := s.Put("k", value); err != nil {
			t.Fatalf("put %d of a value that fits once freed blocks are reused: %v", i, err)
		}
		if err := s.Remove("k"); err != nil {
			t.Fatal(err)
		}
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.FreeBlocks+st.UsedBlocks != st.DataBlocks {
			t.Fatalf("stats: free %d + used %d != %d data blocks", st.FreeBlocks, st.UsedBlocks, st.DataBlocks)
		}
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
	}
}
