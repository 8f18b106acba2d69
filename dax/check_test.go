package dax

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/daxstore/daxstore/journal"
	"github.com/daxstore/daxstore/pmem"
)

// checkFixture is a store with a written file, an allocated (unwritten)
// file, a pin and a busy extent, which Check passes.
type checkFixture struct {
	s       *Store
	written pmem.Block // a written block of "a", pinned by pin
	busy    pmem.Block // a busy block, pinned by pin2
	free    pmem.Block // a free block
	pin     Pin
}

func newCheckFixture(t *testing.T) *checkFixture {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "a", pattern(1, 3*testBS))
	b, err := s.Create("b")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Allocate(0, 2*testBS); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "gone", pattern(2, testBS))
	pin := mustPin(t, mustOpen(t, s, "a"), 0, testBS, PinOptions{Label: "a"})
	pin2 := mustPin(t, mustOpen(t, s, "gone"), 0, testBS, PinOptions{Label: "gone"})
	t.Cleanup(func() { _ = pin2.Unpin(); _ = pin.Unpin() })
	if err := s.Remove("gone"); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
	return &checkFixture{s: s, written: pin.r.runs[0].Start, busy: pin2.r.runs[0].Start,
		free: s.free.Extents()[0].Start, pin: pin}
}

// TestCheckCatchesCorruption corrupts the in-memory state one way at a time
// and expects Check to name each violation.
func TestCheckCatchesCorruption(t *testing.T) {
	one := func(b pmem.Block) pmem.Extent { return pmem.Extent{Start: b, Len: 1} }
	cases := []struct {
		name    string
		corrupt func(t *testing.T, f *checkFixture)
		want    string
	}{
		{"a free block is referenced", func(t *testing.T, f *checkFixture) {
			if err := f.s.refs.Acquire(one(f.free)); err != nil {
				t.Fatal(err)
			}
		}, "are referenced"},
		{"a reference no pin holds", func(t *testing.T, f *checkFixture) {
			if err := f.s.refs.Acquire(one(f.written + 1)); err != nil {
				t.Fatal(err)
			}
		}, "referenced by no pin"},
		{"a pinned block counts one reference too many", func(t *testing.T, f *checkFixture) {
			if err := f.s.refs.Acquire(one(f.written)); err != nil {
				t.Fatal(err)
			}
		}, "but 1 pins cover it"},
		{"a file block is marked detached", func(t *testing.T, f *checkFixture) {
			if _, err := f.s.refs.Detach(one(f.written)); err != nil {
				t.Fatal(err)
			}
		}, "marked detached but not busy"},
		{"a busy block nobody will release", func(t *testing.T, f *checkFixture) {
			x := f.s.busy.All()[0]
			x.Extent = one(f.free)
			if err := f.s.free.Take(x.Extent); err != nil {
				t.Fatal(err)
			}
			if _, err := f.s.busy.Add(x); err != nil {
				t.Fatal(err)
			}
		}, "have no reference, but only 0 wait for release"},
		{"the allocator lost a block", func(t *testing.T, f *checkFixture) {
			if err := f.s.free.Take(one(f.free)); err != nil {
				t.Fatal(err)
			}
		}, "allocatable space"},
		{"a block is both allocatable and held back for a sync", func(t *testing.T, f *checkFixture) {
			f.s.undurable.add([]pmem.Extent{one(f.free)}, 0)
		}, "both allocatable and waiting for a sync"},
		{"two keys name one inode in memory", func(t *testing.T, f *checkFixture) {
			f.s.names["zz"] = f.s.names["a"]
		}, "name the same inode"},
		{"the file count is off", func(t *testing.T, f *checkFixture) {
			f.s.flog.files.Add(1)
		}, "files counted in memory"},
		{"an inode calls itself by another name", func(t *testing.T, f *checkFixture) {
			other := "z"
			f.s.names["a"].key.Store(&other)
		}, `which calls itself "z"`},
		{"a file's size differs from the journal", func(t *testing.T, f *checkFixture) {
			f.s.names["a"].size++
		}, "in memory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newCheckFixture(t)
			c.corrupt(t, f)
			err := f.s.Check()
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Check = %v; want ErrCorrupt naming %q", err, c.want)
			}
		})
	}
}

func TestIntersectAndSubtract(t *testing.T) {
	e := func(s, n uint64) pmem.Extent { return pmem.Extent{Start: pmem.Block(s), Len: n} }
	a := []pmem.Extent{e(1, 4), e(10, 5), e(20, 1)}
	b := []pmem.Extent{e(12, 10), e(3, 1), e(13, 2)}
	if got, want := intersect(a, []pmem.Extent{e(3, 1), e(12, 10)}), []pmem.Extent{e(3, 1), e(12, 3), e(20, 1)}; !slices.Equal(got, want) {
		t.Fatalf("intersect = %v, want %v", got, want)
	}
	if got, want := subtract(a, b), []pmem.Extent{e(1, 2), e(4, 1), e(10, 2)}; !slices.Equal(got, want) {
		t.Fatalf("subtract = %v, want %v", got, want)
	}
	if got := subtract(a, nil); !slices.Equal(got, a) {
		t.Fatalf("subtract nothing = %v, want %v", got, a)
	}
}

// TestCheckCatchesJournalCorruption writes journal records that break the
// invariants of the journal alone, behind the store's back, and checks that
// Check, which reads them from a snapshot one file at a time, names each.
func TestCheckCatchesJournalCorruption(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(t *testing.T, s *Store, a journal.Inode) []journal.Inode
		want    string
	}{
		{"a second key claims a's block", func(t *testing.T, s *Store, a journal.Inode) []journal.Inode {
			b := a
			b.Key, b.Ino = "b", a.Ino+1000
			b.Extents = []journal.ExtentRecord{{Ino: b.Ino, FileBlock: 0, Start: a.Extents[0].Start, Len: 1}}
			b.Blocks = 1
			return []journal.Inode{b}
		}, "claimed by both"},
		{"a file forgets its block", func(t *testing.T, s *Store, a journal.Inode) []journal.Inode {
			a.Extents, a.Blocks = nil, 0
			return []journal.Inode{a}
		}, "belong to nobody (leaked)"},
		{"two keys share an inode number", func(t *testing.T, s *Store, a journal.Inode) []journal.Inode {
			b := journal.Inode{Ino: a.Ino, Key: "b"}
			return []journal.Inode{b}
		}, "belongs to two keys"},
		{"an extent lies past the file's size", func(t *testing.T, s *Store, a journal.Inode) []journal.Inode {
			a.Size = 1
			a.Extents[0].FileBlock = 5
			return []journal.Inode{a}
		}, "lies past its size"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t, 64*testBS, nil)
			mustPut(t, s, "a", pattern(1, testBS))
			a, ok, err := s.jnl.LookupInode("a")
			if err != nil || !ok || len(a.Extents) != 1 {
				t.Fatalf("LookupInode(a) = %+v, %v, %v", a, ok, err)
			}
			b := s.jnl.NewBatch()
			for _, in := range c.corrupt(t, s, a) {
				b.SetInode(in)
			}
			if err := b.Commit(true); err != nil {
				t.Fatal(err)
			}
			err = s.Check()
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Check = %v; want ErrCorrupt naming %q", err, c.want)
			}
		})
	}
}

func TestCheckCatchesExtentRecordsNoFileOwns(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "a", pattern(1, testBS))
	b := s.jnl.NewBatch()
	b.SetExtent(journal.ExtentRecord{Ino: 9999, FileBlock: 0, Start: 40, Len: 1})
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "9999") {
		t.Fatalf("Check = %v; want ErrCorrupt naming inode 9999", err)
	}
}
