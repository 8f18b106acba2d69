package dax

// Tests of the central promise: a block a pin references is never freed or
// reused, whatever the file does to it, and the pin holder's bytes are
// never zeroed under it.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
)

// canary is what a pin holder writes through its pin: a fill value or a new
// key that ever shows it has been handed a pinned block.
var canary = []byte("CANARY-PINNED-BYTES!")

func fillCanary(p Pin) {
	for _, b := range p.Bytes() {
		for i := 0; i < len(b); i += len(canary) {
			copy(b[i:], canary)
		}
	}
}

func hasCanary(b []byte) bool { return bytes.Contains(b, canary[:8]) }

// breakOp is one layout-breaking operation over the whole of key "victim".
type breakOp struct {
	name string
	// do breaks the layout of victim (size bytes) with the policy given.
	do func(ctx context.Context, s *Store, f *File, size int64, bo BreakOptions) error
	// want is what the key reads afterwards; nil means it is gone.
	want func(size int64) []byte
	// fileBlocks is how many blocks the file owns afterwards.
	fileBlocks func(size int64) uint64
}

var newValue = pattern(77, 3*testBS+123)

var breakOps = []breakOp{
	{
		name: "punch hole",
		do: func(ctx context.Context, s *Store, f *File, size int64, bo BreakOptions) error {
			return f.PunchHoleWith(ctx, 0, size, bo)
		},
		want: func(size int64) []byte { return make([]byte, size) },
		// The range is clipped at the end of the file, so a last block
		// that the file fills only in part is zeroed (here: copied on
		// write, being pinned), not unmapped.
		fileBlocks: func(size int64) uint64 { return uint64(min(1, size%testBS)) },
	},
	{
		name: "truncate",
		do: func(ctx context.Context, s *Store, f *File, size int64, bo BreakOptions) error {
			return f.TruncateWith(ctx, 0, bo)
		},
		want:       func(int64) []byte { return []byte{} },
		fileBlocks: func(int64) uint64 { return 0 },
	},
	{
		name: "zero range",
		do: func(ctx context.Context, s *Store, f *File, size int64, bo BreakOptions) error {
			return f.ZeroRangeWith(ctx, 0, size, bo)
		},
		want:       func(size int64) []byte { return make([]byte, size) },
		fileBlocks: func(size int64) uint64 { return uint64((size + testBS - 1) / testBS) },
	},
	{
		name: "remove",
		do: func(ctx context.Context, s *Store, f *File, size int64, bo BreakOptions) error {
			return s.RemoveWith(ctx, "victim", bo)
		},
		want:       func(int64) []byte { return nil },
		fileBlocks: func(int64) uint64 { return 0 },
	},
	{
		name: "put over the key",
		do: func(ctx context.Context, s *Store, f *File, size int64, bo BreakOptions) error {
			return s.PutWith(ctx, "victim", newValue, bo)
		},
		want:       func(int64) []byte { return newValue },
		fileBlocks: func(int64) uint64 { return uint64((len(newValue) + testBS - 1) / testBS) },
	},
}

// checkVictim fails the test unless key victim reads want (nil: missing)
// and owns blocks region blocks.
func checkVictim(t *testing.T, s *Store, op breakOp, size int64) {
	t.Helper()
	want := op.want(size)
	got, err := s.Get("victim")
	if want == nil {
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("victim after %s: got %d bytes, error %v; want ErrNotFound", op.name, len(got), err)
		}
		return
	}
	if err != nil {
		t.Fatalf("victim after %s: %v", op.name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("victim after %s reads %d bytes (canary %v), want %d bytes", op.name, len(got), hasCanary(got), len(want))
	}
	fi, err := s.Stat("victim")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Blocks != op.fileBlocks(size) {
		t.Fatalf("victim owns %d blocks after %s, want %d", fi.Blocks, op.name, op.fileBlocks(size))
	}
}

func TestNoBlockIsReusedWhilePinned(t *testing.T) {
	const victimBlocks = 4
	size := int64(victimBlocks*testBS - 10)
	for _, op := range breakOps {
		t.Run(op.name+" keeps the pinned blocks out of reach until Unpin", func(t *testing.T) {
			s := newStore(t, 48*testBS, func(o *Options) { o.AllocWait = -1 })
			mustPut(t, s, "victim", pattern(1, int(size)))
			f := mustOpen(t, s, "victim")
			p := mustPin(t, f, 0, size, PinOptions{Writable: true, Label: "dma"})
			fillCanary(p)
			if err := p.Flush(); err != nil {
				t.Fatal(err)
			}
			pinned := pinBytes(p)

			if err := op.do(t0(), s, f, size, BreakOptions{}); err != nil {
				t.Fatalf("%s: %v", op.name, err)
			}
			checkVictim(t, s, op, size)
			settle(t, s)
			st := mustStats(t, s)
			if st.BusyBlocks != victimBlocks || st.Detached != victimBlocks {
				t.Fatalf("after %s: %d busy, %d detached blocks; want %d", op.name, st.BusyBlocks, st.Detached, victimBlocks)
			}
			mustCheck(t, s)

			// Reallocate everything the region has left, with several
			// sizes so both exact fits and splits are exercised.
			var keys []string
			for i := 0; ; i++ {
				key := fmt.Sprintf("fill-%03d", i)
				err := s.Put(key, pattern(byte(i), (i%3+1)*testBS-i%7))
				if errors.Is(err, ErrNoSpace) {
					if err := s.Put(key, pattern(byte(i), testBS)); err == nil {
						keys = append(keys, key)
						continue
					} else if !errors.Is(err, ErrNoSpace) {
						t.Fatalf("put %s: %v", key, err)
					}
					break
				}
				if err != nil {
					t.Fatalf("put %s: %v", key, err)
				}
				keys = append(keys, key)
			}
			if st := mustStats(t, s); st.FreeBlocks != 0 || st.BusyBlocks != victimBlocks {
				t.Fatalf("region not full: %+v", st)
			}
			for _, k := range keys {
				if v := mustGet(t, s, k); hasCanary(v) {
					t.Fatalf("%s was given a pinned block: it reads the canary", k)
				}
			}
			if got := pinBytes(p); !bytes.Equal(got, pinned) {
				t.Fatal("the pin holder's bytes changed while the region was reallocated")
			}
			checkVictim(t, s, op, size)
			mustCheck(t, s)

			before := mustStats(t, s)
			if err := p.Unpin(); err != nil {
				t.Fatal(err)
			}
			settle(t, s)
			after := mustStats(t, s)
			if after.FreeBlocks != before.FreeBlocks+victimBlocks {
				t.Errorf("free blocks went from %d to %d after Unpin, want +%d", before.FreeBlocks, after.FreeBlocks, victimBlocks)
			}
			if after.Released != before.Released+victimBlocks {
				t.Errorf("released went from %d to %d, want +%d", before.Released, after.Released, victimBlocks)
			}
			if after.BusyBlocks != 0 || after.PinnedBlocks != 0 || after.Pins != 0 {
				t.Errorf("after Unpin: %d busy, %d pinned blocks, %d pins; want none", after.BusyBlocks, after.PinnedBlocks, after.Pins)
			}
			if p.Bytes() != nil {
				t.Error("Bytes after Unpin is not nil")
			}
			mustCheck(t, s)
		})
	}
}

func TestPinOfAHoleSeesZerosAndGetsItsOwnBlocks(t *testing.T) {
	s := newStore(t, 32*testBS, nil)
	f, err := s.Create("sparse")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(3 * testBS); err != nil {
		t.Fatal(err)
	}
	p := mustPin(t, f, 10, 2*testBS, PinOptions{Writable: true, Label: "hole"})
	if got := pinBytes(p); len(got) != 2*testBS || !allZero(got) {
		t.Fatalf("pin of a hole: %d bytes, all zero %v", len(got), allZero(got))
	}
	fi, _ := s.Stat("sparse")
	if fi.Blocks != 3 {
		t.Fatalf("pin of bytes [10, 10+2 blocks) materialized %d blocks, want 3", fi.Blocks)
	}
	// Stores through the pin are the file's bytes while it stays attached.
	copy(p.Bytes()[0], "through the pin")
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 15)
	if _, err := f.ReadAt(buf, 10); err != nil || string(buf) != "through the pin" {
		t.Fatalf("file reads %q, %v", buf, err)
	}
	if err := p.Unpin(); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
}

func TestZeroRangeNeverZeroesThePinHoldersBytes(t *testing.T) {
	s := newStore(t, 32*testBS, nil)
	orig := pattern(3, 4*testBS)
	mustPut(t, s, "k", orig)
	f := mustOpen(t, s, "k")
	p := mustPin(t, f, testBS, testBS, PinOptions{Writable: true, Label: "holder"})
	fillCanary(p)
	pinned := pinBytes(p)
	before, _ := s.Stat("k")

	if err := f.ZeroRange(testBS, testBS); err != nil {
		t.Fatal(err)
	}
	if got := pinBytes(p); !bytes.Equal(got, pinned) {
		t.Fatal("ZeroRange zeroed the pin holder's bytes")
	}
	want := append([]byte{}, orig...)
	clear(want[testBS : 2*testBS])
	if got := mustGet(t, s, "k"); !bytes.Equal(got, want) {
		t.Fatal("the file does not read zeros over the zeroed block and its old bytes elsewhere")
	}
	after, _ := s.Stat("k")
	if after.Blocks != before.Blocks {
		t.Fatalf("ZeroRange changed the file's blocks from %d to %d; they must stay allocated", before.Blocks, after.Blocks)
	}
	if busy := s.Busy(); len(busy) != 1 || busy[0].Blocks != 1 || busy[0].Reason != "zero" || busy[0].FileOffset != testBS {
		t.Fatalf("busy extents %+v, want one block detached by zero at offset %d", busy, testBS)
	}
	mustCheck(t, s)
	if err := p.Unpin(); err != nil {
		t.Fatal(err)
	}
	settle(t, s)
	mustCheck(t, s)
}

func TestPartialBlockBreaksOfAPinnedBlockCopyOnWrite(t *testing.T) {
	const lo, hi = testBS + 100, testBS + 300 // inside file block 1
	cases := []struct {
		name string
		do   func(f *File) error
		// zeroFrom..zeroTo of block 1 read as zeros afterwards (after
		// growing the file back for truncate).
		zeroFrom, zeroTo int64
	}{
		{"punching part of the block", func(f *File) error { return f.PunchHole(lo, hi-lo) }, lo, hi},
		{"zeroing part of the block", func(f *File) error { return f.ZeroRange(lo, hi-lo) }, lo, hi},
		{"punching its tail from the middle on", func(f *File) error { return f.PunchHole(lo, 2*testBS-lo) }, lo, 2 * testBS},
		{"zeroing its head", func(f *File) error { return f.ZeroRange(testBS, hi-testBS) }, testBS, hi},
		{"truncating inside the block", func(f *File) error {
			if err := f.Truncate(lo); err != nil {
				return err
			}
			return f.Truncate(4 * testBS)
		}, lo, 4 * testBS},
	}
	for _, tc := range cases {
		t.Run(tc.name+" leaves the pin its bytes and the file a zeroed copy", func(t *testing.T) {
			s := newStore(t, 32*testBS, nil)
			orig := pattern(9, 4*testBS)
			mustPut(t, s, "k", orig)
			f := mustOpen(t, s, "k")
			p := mustPin(t, f, testBS, testBS, PinOptions{Writable: true, Label: "holder"})
			if err := tc.do(f); err != nil {
				t.Fatal(err)
			}
			if got := pinBytes(p); !bytes.Equal(got, orig[testBS:2*testBS]) {
				t.Fatal("the pin holder's bytes changed")
			}
			want := append([]byte{}, orig...)
			clear(want[tc.zeroFrom:tc.zeroTo])
			got := mustGet(t, s, "k")
			if !bytes.Equal(got, want) {
				t.Fatalf("file block 1 reads wrong bytes: first diff at %d", firstDiff(got, want))
			}
			// The file has its own block now: stores through the pin no
			// longer reach it.
			fillCanary(p)
			if got := mustGet(t, s, "k"); hasCanary(got) {
				t.Fatal("the file still shares the pinned block after copy-on-write")
			}
			if st := mustStats(t, s); st.BusyBlocks != 1 {
				t.Fatalf("%d busy blocks, want the 1 pinned block", st.BusyBlocks)
			}
			mustCheck(t, s)
			if err := p.Unpin(); err != nil {
				t.Fatal(err)
			}
			settle(t, s)
			if st := mustStats(t, s); st.BusyBlocks != 0 {
				t.Fatalf("%d busy blocks after Unpin", st.BusyBlocks)
			}
			mustCheck(t, s)
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
