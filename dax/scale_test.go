package dax

// Tests of the metadata design that keeps files in the journal and brings
// them into memory on use: what Open reads, what stays in memory, what a
// commit writes, listing, upgrade from format 1 and Check's pause.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/daxstore/daxstore/internal/dirsnap"
	"github.com/daxstore/daxstore/journal"
	"github.com/daxstore/daxstore/pmem"
)

// reopen closes s and opens its directory again with o.
func reopen(t *testing.T, s *Store, o *Options) *Store {
	t.Helper()
	dir := s.Dir()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { closeForce(s) })
	return s
}

func resident(s *Store) int {
	s.nsMu.RLock()
	defer s.nsMu.RUnlock()
	return len(s.names)
}

func TestOpenReadsNoFileUntilOneIsUsed(t *testing.T) {
	const n = 500
	s := newStore(t, 1024*testBS, nil)
	for i := range n {
		mustPut(t, s, fmt.Sprintf("k%04d", i), pattern(byte(i), 100))
	}
	s = reopen(t, s, &Options{NoAdminSocket: true})
	if got := resident(s); got != 0 {
		t.Fatalf("%d files in memory right after Open; want 0", got)
	}
	if st := mustStats(t, s); st.Files != n || st.ResidentFiles != 0 {
		t.Fatalf("stats: %d files, %d resident; want %d and 0", st.Files, st.ResidentFiles, n)
	}
	if fi, err := s.Stat("k0007"); err != nil || fi.Size != 100 {
		t.Fatalf("Stat = %+v, %v", fi, err)
	}
	if got := resident(s); got != 0 {
		t.Fatalf("Stat brought %d files into memory; want 0", got)
	}
	if got := mustGet(t, s, "k0042"); !bytes.Equal(got, pattern(42, 100)) {
		t.Fatal("k0042 read back wrong")
	}
	if got := resident(s); got != 1 {
		t.Fatalf("%d files in memory after one Get; want 1", got)
	}
	if _, err := s.Get("missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing key = %v, want ErrNotFound", err)
	}
	mustCheck(t, s)
}

// TestFilesLeaveMemoryAndComeBackUnchanged keeps one file in memory at most
// and changes many files through every kind of operation, so that each
// change is made to a file read back from the journal: every byte and the
// whole metadata must survive the round trips, and a reopen.
func TestFilesLeaveMemoryAndComeBackUnchanged(t *testing.T) {
	s := newStore(t, 4096*testBS, func(o *Options) { o.InodeCache = 1 })
	model := map[string][]byte{}
	const files = 12
	key := func(i int) string { return fmt.Sprintf("f/%02d", i) }
	write := func(k string, off int64, p []byte) {
		f := mustOpen(t, s, k)
		if _, err := f.WriteAt(p, off); err != nil {
			t.Fatalf("write %q: %v", k, err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		v := model[k]
		if end := off + int64(len(p)); end > int64(len(v)) {
			v = append(v, make([]byte, end-int64(len(v)))...)
		}
		copy(v[off:], p)
		model[k] = v
	}
	for i := range files {
		mustPut(t, s, key(i), pattern(byte(i), testBS/2))
		model[key(i)] = pattern(byte(i), testBS/2)
	}
	// Interleaved block writes leave every file with more extents than an
	// inode record holds inline.
	for blk := range journal.MaxInlineExtents + 8 {
		for i := range files {
			write(key(i), int64(blk)*testBS, pattern(byte(blk*files+i), 64))
		}
	}
	for i := range files {
		f := mustOpen(t, s, key(i))
		switch i % 4 {
		case 0:
			if err := f.Truncate(3 * testBS); err != nil {
				t.Fatal(err)
			}
			model[key(i)] = model[key(i)][:3*testBS]
		case 1:
			if err := f.PunchHole(testBS, 10*testBS); err != nil {
				t.Fatal(err)
			}
			clear(model[key(i)][testBS : 11*testBS])
		case 2:
			if err := f.ZeroRange(5*testBS+7, 2*testBS); err != nil {
				t.Fatal(err)
			}
			clear(model[key(i)][5*testBS+7 : 7*testBS+7])
		case 3:
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Rename(key(i), key(i)+"-renamed"); err != nil {
				t.Fatal(err)
			}
			model[key(i)+"-renamed"] = model[key(i)]
			delete(model, key(i))
			continue
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Remove(key(4)); err != nil {
		t.Fatal(err)
	}
	delete(model, key(4))
	verify := func(s *Store) {
		t.Helper()
		if got := resident(s); got > 2 {
			t.Errorf("%d files in memory with InodeCache 1 and none in use", got)
		}
		for k, want := range model {
			if got := mustGet(t, s, k); !bytes.Equal(got, want) {
				t.Fatalf("%q: read %d bytes that differ from the %d written", k, len(got), len(want))
			}
		}
		list, err := s.List("f/")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, fi := range list {
			keys = append(keys, fi.Key)
			if fi.Size != int64(len(model[fi.Key])) {
				t.Errorf("List: %q has size %d, want %d", fi.Key, fi.Size, len(model[fi.Key]))
			}
		}
		want := slices.Sorted(func(yield func(string) bool) {
			for k := range model {
				if !yield(k) {
					return
				}
			}
		})
		if !slices.Equal(keys, want) {
			t.Fatalf("List = %q, want %q", keys, want)
		}
		if st := mustStats(t, s); st.Files != len(model) {
			t.Fatalf("Stats.Files = %d, want %d", st.Files, len(model))
		}
		mustCheck(t, s)
	}
	verify(s)
	verify(reopen(t, s, &Options{NoAdminSocket: true, InodeCache: 1}))
}

func TestAFileInUseStaysInMemory(t *testing.T) {
	s := newStore(t, 256*testBS, func(o *Options) { o.InodeCache = 1 })
	mustPut(t, s, "held", pattern(1, testBS))
	f := mustOpen(t, s, "held")
	for i := range 20 {
		mustPut(t, s, fmt.Sprintf("other%d", i), pattern(2, 10))
		mustGet(t, s, fmt.Sprintf("other%d", i))
	}
	s.nsMu.RLock()
	same := s.names["held"] == f.in
	s.nsMu.RUnlock()
	if !same {
		t.Fatal("the inode of an open File left memory")
	}
	// A Remove through the store reaches the File's own inode.
	if err := s.Remove("held"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Size(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Size of a removed file = %v, want ErrNotFound", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
	mustCheck(t, s)
}

func TestPutWritesAtMostTwoRecords(t *testing.T) {
	s := newStore(t, 256*testBS, nil)
	mustPut(t, s, "first", pattern(1, testBS)) // reserves a chunk of inode numbers
	for _, c := range []struct {
		what, key string
	}{{"new key", "k"}, {"overwrite", "k"}, {"second new key", "k2"}, {"overwrite again", "k"}} {
		before := mustStats(t, s)
		mustPut(t, s, c.key, pattern(2, testBS))
		after := mustStats(t, s)
		if commits, records := after.Commits-before.Commits, after.JournalRecords-before.JournalRecords; commits != 1 || records > 2 {
			t.Errorf("%s: %d commits with %d records; want 1 commit of at most 2", c.what, commits, records)
		}
	}
	mustCheck(t, s)
}

func TestAFileOfManyExtentsKeepsThemOutOfItsRecord(t *testing.T) {
	s := newStore(t, 1024*testBS, nil)
	fa, b := must(s.Create("a")), must(s.Create("b"))
	n := journal.MaxInlineExtents + 20
	for i := range n {
		for _, f := range []*File{fa, b} {
			if _, err := f.WriteAt(pattern(byte(i), testBS), int64(i)*testBS); err != nil {
				t.Fatal(err)
			}
		}
	}
	rec, ok, err := s.jnl.LookupInode("a")
	if err != nil || !ok {
		t.Fatalf("LookupInode = %v, %v", ok, err)
	}
	if !rec.External || len(rec.Extents) != n || rec.Blocks != uint64(n) {
		t.Fatalf("record of a file of %d extents: external %v, %d extents, %d blocks", n, rec.External, len(rec.Extents), rec.Blocks)
	}
	if err := fa.Truncate(3 * testBS); err != nil {
		t.Fatal(err)
	}
	rec, _, err = s.jnl.LookupInode("a")
	if err != nil || rec.External || len(rec.Extents) != 3 {
		t.Fatalf("after truncate to 3 blocks: external %v, %d extents, %v", rec.External, len(rec.Extents), err)
	}
	st, err := s.jnl.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := len(st.Extents[rec.Ino]); got != 3 {
		t.Fatalf("journal holds %d extents of a, want 3 (its extent records must be gone)", got)
	}
	fa.Close()
	b.Close()
	mustCheck(t, s)
	s = reopen(t, s, &Options{NoAdminSocket: true, InodeCache: 1})
	got := mustGet(t, s, "b")
	for i := range n {
		if !bytes.Equal(got[i*testBS:(i+1)*testBS], pattern(byte(i), testBS)) {
			t.Fatalf("b: block %d read back wrong", i)
		}
	}
	mustCheck(t, s)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestFreeSpaceLogIsCheckpointed(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	for i := range checkpointMin + 100 {
		// A block-sized value: an inline one claims and frees nothing.
		mustPut(t, s, "k", pattern(byte(i), testBS))
	}
	if st := mustStats(t, s); st.Checkpoints == 0 {
		t.Fatalf("no checkpoint after %d commits", checkpointMin+100)
	}
	st, err := s.jnl.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.FreeLog) == 0 || len(st.FreeLog) > checkpointMin {
		t.Fatalf("%d free-space log records after a checkpoint; want between 1 and %d", len(st.FreeLog), checkpointMin)
	}
	mustCheck(t, s)
	s = reopen(t, s, &Options{NoAdminSocket: true})
	st, err = s.jnl.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.FreeLog) != 0 || !st.HasFiles || st.Files != 1 {
		t.Fatalf("after a clean Close: %d log records, file count %d (known %v); want 0 and 1", len(st.FreeLog), st.Files, st.HasFiles)
	}
	mustCheck(t, s)
}

// copyTree copies the directory tree src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeOfAFormat1Store opens a store written by the format 1 code
// (testdata/format1: a value, an empty file, two files of 40 extents under
// dir/, a removed key and a renamed one).
func TestUpgradeOfAFormat1Store(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	copyTree(t, "testdata/format1", dir)

	before, err := dirsnap.Take(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, &Options{ReadOnly: true}); !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "upgrade") {
		t.Fatalf("read-only Open of a format 1 store = %v; want ErrReadOnly saying to upgrade", err)
	}
	after, err := dirsnap.Take(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := dirsnap.DiffContents(before, after); d != "" {
		t.Fatalf("a read-only Open changed the store:\n%s", d)
	}

	s, err := Open(dir, &Options{NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeForce(s) })
	check := func(s *Store) {
		t.Helper()
		if got := mustGet(t, s, "plain"); string(got) != "format one value" {
			t.Fatalf("plain = %q", got)
		}
		if got := mustGet(t, s, "new-name"); string(got) != "renamed value" {
			t.Fatalf("new-name = %q", got)
		}
		if got := mustGet(t, s, "empty"); len(got) != 0 {
			t.Fatalf("empty holds %d bytes", len(got))
		}
		for _, k := range []string{"gone", "old-name"} {
			if _, err := s.Get(k); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%q: %v, want ErrNotFound", k, err)
			}
		}
		frag := mustGet(t, s, "dir/fragmented")
		other := mustGet(t, s, "dir/other")
		if len(frag) != 40*4096 || len(other) != 39*4096+100 {
			t.Fatalf("sizes %d and %d", len(frag), len(other))
		}
		for i := range 40 {
			want := bytes.Repeat([]byte{byte(i + 1)}, 4096)
			if !bytes.Equal(frag[i*4096:(i+1)*4096], want) || !bytes.Equal(other[i*4096:i*4096+100], want[:100]) {
				t.Fatalf("block %d read back wrong", i)
			}
		}
		list, err := s.List("dir/")
		if err != nil || len(list) != 2 {
			t.Fatalf("List(dir/) = %v, %v", list, err)
		}
		if st := mustStats(t, s); st.Files != 5 {
			t.Fatalf("Stats.Files = %d, want 5", st.Files)
		}
		mustCheck(t, s)
	}
	check(s)
	st, err := s.jnl.LoadCore()
	if err != nil || st.Legacy {
		t.Fatalf("after the upgrade: legacy %v, %v", st.Legacy, err)
	}
	mustPut(t, s, "after", []byte("upgrade"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(dir, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	check2 := func() {
		if got := mustGet(t, ro, "after"); string(got) != "upgrade" {
			t.Fatalf("after = %q", got)
		}
	}
	check2()
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestListAndFilesPageThroughAPrefix(t *testing.T) {
	s := newStore(t, 256*testBS, func(o *Options) { o.InodeCache = 4 })
	for i := range 2*listPage + 3 {
		mustPut(t, s, fmt.Sprintf("p/%04d", i), nil)
	}
	for _, k := range []string{"q", "q/a", "q/b", "q0", "r"} {
		mustPut(t, s, k, []byte(k))
	}
	// A file in memory with a change the list must show.
	f := mustOpen(t, s, "p/0003")
	if _, err := f.WriteAt([]byte("grown"), 0); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	list, err := s.List("q")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, fi := range list {
		keys = append(keys, fi.Key)
	}
	if want := []string{"q", "q/a", "q/b", "q0"}; !slices.Equal(keys, want) {
		t.Fatalf("List(q) = %q, want %q", keys, want)
	}
	list, err = s.List("p/")
	if err != nil || len(list) != 2*listPage+3 {
		t.Fatalf("List(p/) = %d files, %v", len(list), err)
	}
	for i, fi := range list {
		if want := fmt.Sprintf("p/%04d", i); fi.Key != want {
			t.Fatalf("List(p/)[%d] = %q, want %q", i, fi.Key, want)
		}
	}
	if list[3].Size != 5 {
		t.Fatalf("p/0003 listed with size %d, want 5", list[3].Size)
	}
	if list, err := s.List("nothing"); err != nil || len(list) != 0 {
		t.Fatalf("List(nothing) = %v, %v", list, err)
	}
	n := 0
	for fi, err := range s.Files("p/") {
		if err != nil {
			t.Fatal(err)
		}
		// The loop body may use the store: Files holds no lock.
		mustPut(t, s, "z/"+fi.Key, nil)
		if n++; n == 3 {
			break
		}
	}
	if list, _ := s.List("z/"); len(list) != 3 {
		t.Fatalf("%d files made while listing, want 3", len(list))
	}
	mustCheck(t, s)
}

// TestCheckReadsTheJournalWithTheStoreRunning changes the store while Check
// reads its snapshot: the change neither waits for Check nor upsets it.
func TestCheckReadsTheJournalWithTheStoreRunning(t *testing.T) {
	s := newStore(t, 256*testBS, nil)
	mustPut(t, s, "a", pattern(1, 3*testBS))
	ran := false
	checkReadHook = func() {
		ran = true
		mustPut(t, s, "b", pattern(2, testBS))
		mustPut(t, s, "a", pattern(3, testBS))
		if err := s.Remove("b"); err != nil {
			t.Error(err)
		}
	}
	defer func() { checkReadHook = nil }()
	mustCheck(t, s)
	if !ran {
		t.Fatal("the hook did not run")
	}
	checkReadHook = nil
	mustCheck(t, s)
}

// TestOpenRefusesAFreeSpaceLogThatContradictsItself writes log records
// that claim blocks free space does not hold, or free blocks it already
// holds: Open must fail with ErrCorrupt, naming the record, and change
// nothing a second Open would see.
func TestOpenRefusesAFreeSpaceLogThatContradictsItself(t *testing.T) {
	for _, c := range []struct {
		name string
		log  journal.FreeLog
		want string
	}{
		{"a claim of blocks a file owns", journal.FreeLog{Claimed: []pmem.Extent{{Start: 1, Len: 1}}}, "which is not free"},
		{"a free of blocks already free", journal.FreeLog{Freed: []pmem.Extent{{Start: 60, Len: 1}}}, "already free"},
		{"a free outside the region", journal.FreeLog{Freed: []pmem.Extent{{Start: 64, Len: 1}}}, "outside the region"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t, 64*testBS, nil)
			mustPut(t, s, "a", pattern(1, testBS))
			dir := s.Dir()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			j, err := journal.Open(filepath.Join(dir, "journal"), journal.Options{})
			if err != nil {
				t.Fatal(err)
			}
			b := j.NewBatch()
			c.log.Seq = 1 << 40
			b.LogFree(c.log)
			if err := b.Commit(true); err != nil {
				t.Fatal(err)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			// Refused twice the same way: the first refusal changed
			// nothing that a second Open would see.
			for range 2 {
				_, err = Open(dir, &Options{NoAdminSocket: true})
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("Open = %v; want ErrCorrupt saying %q", err, c.want)
				}
			}
		})
	}
}

// TestFilesReportsACloseBetweenPages closes the store while a Files loop
// runs: the loop gets ErrClosed at the next page, not a panic or a hang.
func TestFilesReportsACloseBetweenPages(t *testing.T) {
	s := newStore(t, 256*testBS, nil)
	for i := range listPage + 10 {
		mustPut(t, s, fmt.Sprintf("k/%04d", i), nil)
	}
	n := 0
	var last error
	for fi, err := range s.Files("k/") {
		if err != nil {
			last = err
			break
		}
		if n++; n == 1 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
		_ = fi
	}
	if n != listPage || !errors.Is(last, ErrClosed) {
		t.Fatalf("Files yielded %d files then %v; want the first page (%d) then ErrClosed", n, last, listPage)
	}
}

// TestReadOnlyStoreListsAndReadsFilesFromTheJournal opens a store read-only
// and reads files it never had in memory.
func TestReadOnlyStoreListsAndReadsFilesFromTheJournal(t *testing.T) {
	s := newStore(t, 256*testBS, nil)
	for i := range 50 {
		mustPut(t, s, fmt.Sprintf("k/%02d", i), pattern(byte(i), 100+i))
	}
	dir := s.Dir()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(dir, &Options{ReadOnly: true, InodeCache: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	list, err := ro.List("k/")
	if err != nil || len(list) != 50 {
		t.Fatalf("List = %d files, %v", len(list), err)
	}
	for i, fi := range list {
		if got := mustGet(t, ro, fi.Key); !bytes.Equal(got, pattern(byte(i), 100+i)) {
			t.Fatalf("%q read back wrong", fi.Key)
		}
	}
	if err := ro.Put("k/00", nil); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Put on a read-only store = %v, want ErrReadOnly", err)
	}
	mustCheck(t, ro)
}

// TestInspectOfAStoreNobodyHoldsReplaysTheFreeSpaceLog reads a closed
// store whose journal has a commit after its last checkpoint, as a crash
// leaves it: Inspect must count that commit's blocks and file, as Open
// would.
func TestInspectOfAStoreNobodyHoldsReplaysTheFreeSpaceLog(t *testing.T) {
	s := newStore(t, 64*testBS, func(o *Options) { o.InlineLimit = -1 })
	mustPut(t, s, "a", pattern(1, 2*testBS))
	dir := s.Dir()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// One more Put, as the store commits it: the file's record and its
	// free-space log record, after the checkpoint Close wrote.
	j, err := journal.Open(filepath.Join(dir, "journal"), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := j.LoadCore()
	if err != nil {
		t.Fatal(err)
	}
	e := pmem.Extent{Start: st.Free[0].Start, Len: 3}
	b := j.NewBatch()
	b.SetInode(journal.Inode{Ino: 5000, Key: "b", Size: 3 * testBS, Blocks: 3,
		Extents: []journal.ExtentRecord{{Ino: 5000, Start: e.Start, Len: 3}}})
	b.LogFree(journal.FreeLog{Seq: 1 << 30, Claimed: []pmem.Extent{e}, Files: 1})
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	snap, err := Inspect(t0(), dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, &Options{NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustCheck(t, s)
	want := mustStats(t, s)
	if snap.Live || snap.Stats.FreeBlocks != want.FreeBlocks || snap.Stats.Files != want.Files || snap.Stats.Files != 2 {
		t.Fatalf("Inspect of the closed store: %d free blocks, %d files; Open then shows %d and %d (want 2 files)",
			snap.Stats.FreeBlocks, snap.Stats.Files, want.FreeBlocks, want.Files)
	}
}
