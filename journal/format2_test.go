// This file tests journal format 2: the free-space checkpoint and log,
// LoadCore, LookupInode, ScanInodes, Snapshot, and Upgrade from format 1.

package journal

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/daxstore/daxstore/internal/memfs"
	"github.com/daxstore/daxstore/pmem"
)

func loadCore(t *testing.T, j *Journal) *State {
	t.Helper()
	st, err := j.LoadCore()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// coreOf returns what LoadCore must return for a journal whose Load
// returned st: the same, without the per-file maps.
func coreOf(st *State) *State {
	c := *st
	c.Names, c.Inodes, c.Extents = nil, nil, nil
	return &c
}

func logSeqs(logs []FreeLog) []uint64 {
	var out []uint64
	for _, l := range logs {
		out = append(out, l.Seq)
	}
	return out
}

func TestCheckpointFreeDropsExactlyTheLogThroughUpto(t *testing.T) {
	seqs := []uint64{0, 1, 2, 5, 255, 256, 257, math.MaxUint64 - 1, math.MaxUint64}
	oldFree := []pmem.Extent{{Start: 1, Len: 1}, {Start: 5, Len: 2}, {Start: 100, Len: 50}}
	newFree := []pmem.Extent{{Start: 5, Len: 2}, {Start: 7, Len: 3}, {Start: 200, Len: 1}}
	for _, upto := range []uint64{0, 1, 4, 5, 255, 256, math.MaxUint64 - 1, math.MaxUint64} {
		t.Run(fmt.Sprintf("a checkpoint up to %d keeps the later log and replaces the free records", upto), func(t *testing.T) {
			j := openMem(t, memfs.New(), Options{})
			defer closeJournal(t, j)
			b := j.NewBatch()
			for _, e := range oldFree {
				b.SetFree(e)
			}
			// Queued in reverse: Load returns them in numeric Seq order.
			for _, s := range slices.Backward(seqs) {
				b.LogFree(FreeLog{Seq: s, Claimed: []pmem.Extent{{Start: pmem.Block(s % 1000), Len: 1}}, Files: 1})
			}
			b.SetInode(Inode{Ino: 1, Key: "file"})
			commit(t, b, true)
			if got := logSeqs(load(t, j).FreeLog); !reflect.DeepEqual(got, seqs) {
				t.Fatalf("before the checkpoint: log %v, want %v", got, seqs)
			}

			b = j.NewBatch()
			b.CheckpointFree(newFree, upto, 42)
			commit(t, b, true)
			var wantSeqs []uint64
			for _, s := range seqs {
				if s > upto {
					wantSeqs = append(wantSeqs, s)
				}
			}
			st := load(t, j)
			if got := logSeqs(st.FreeLog); !reflect.DeepEqual(got, wantSeqs) {
				t.Fatalf("log %v, want %v", got, wantSeqs)
			}
			if !reflect.DeepEqual(st.Free, newFree) {
				t.Fatalf("free %v, want exactly the checkpoint %v", st.Free, newFree)
			}
			if !st.HasFiles || st.Files != 42 {
				t.Fatalf("files %d (has %v), want 42", st.Files, st.HasFiles)
			}
			if st.Names["file"] != 1 {
				t.Fatal("a checkpoint touched an inode record")
			}
			if core := loadCore(t, j); !reflect.DeepEqual(core, coreOf(st)) {
				t.Fatalf("LoadCore %+v\nLoad     %+v", core, st)
			}
		})
	}
	t.Run("an empty checkpoint drops every free record", func(t *testing.T) {
		j := openMem(t, memfs.New(), Options{})
		defer closeJournal(t, j)
		b := j.NewBatch()
		for _, e := range oldFree {
			b.SetFree(e)
		}
		commit(t, b, true)
		b = j.NewBatch()
		b.CheckpointFree(nil, 0, 0)
		commit(t, b, true)
		if st := load(t, j); st.Free != nil {
			t.Fatalf("free %v", st.Free)
		}
	})
	t.Run("a refused checkpoint drops nothing", func(t *testing.T) {
		j := openMem(t, memfs.New(), Options{})
		defer closeJournal(t, j)
		b := j.NewBatch()
		b.SetFree(oldFree[0])
		b.LogFree(FreeLog{Seq: 3})
		commit(t, b, true)
		before := load(t, j)
		b = j.NewBatch()
		b.CheckpointFree([]pmem.Extent{{Start: math.MaxUint64, Len: 2}}, math.MaxUint64, 0)
		if err := b.Commit(true); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("Commit = %v, want ErrInvalidRecord", err)
		}
		if got := load(t, j); !reflect.DeepEqual(got, before) {
			t.Fatalf("state changed to %+v", got)
		}
	})
}

func TestLoadCoreReadsNothingPerFile(t *testing.T) {
	t.Run("a new journal has no meta, no inodes and is not legacy", func(t *testing.T) {
		j := openMem(t, memfs.New(), Options{})
		defer closeJournal(t, j)
		if got := loadCore(t, j); !reflect.DeepEqual(got, &State{}) {
			t.Fatalf("got %+v", got)
		}
	})
	t.Run("a full journal loads everything but the per-file records", func(t *testing.T) {
		j := openMem(t, memfs.New(), Options{})
		defer closeJournal(t, j)
		b, want := fullBatch(j)
		b.SetMark(17)
		want.Mark = 17
		commit(t, b, true)
		if got := load(t, j); !reflect.DeepEqual(got, want) {
			t.Fatalf("Load got  %+v\nwant %+v", got, want)
		}
		core := loadCore(t, j)
		if core.Names != nil || core.Inodes != nil || core.Extents != nil {
			t.Fatalf("LoadCore returned per-file data: %v %v %v", core.Names, core.Inodes, core.Extents)
		}
		if !reflect.DeepEqual(core, coreOf(want)) {
			t.Fatalf("LoadCore got %+v\nwant %+v", core, coreOf(want))
		}
	})
	t.Run("HasInodes follows the inode records, not the extent records", func(t *testing.T) {
		j := openMem(t, memfs.New(), Options{})
		defer closeJournal(t, j)
		b := j.NewBatch()
		b.SetExtent(ExtentRecord{Ino: 3, Start: 1, Len: 1}) // no inode: Check's business
		commit(t, b, true)
		if loadCore(t, j).HasInodes || load(t, j).HasInodes {
			t.Fatal("HasInodes without an inode")
		}
		b = j.NewBatch()
		b.SetInode(Inode{Ino: 3, Key: "k", External: true})
		commit(t, b, true)
		if !loadCore(t, j).HasInodes || !load(t, j).HasInodes {
			t.Fatal("HasInodes false with an inode")
		}
		b = j.NewBatch()
		b.DeleteInode("k")
		commit(t, b, true)
		if loadCore(t, j).HasInodes || load(t, j).HasInodes {
			t.Fatal("HasInodes after the last inode was deleted")
		}
	})
	t.Run("a format 1 journal is Legacy and has inodes", func(t *testing.T) {
		j := openMem(t, memfs.New(), Options{})
		defer closeJournal(t, j)
		b := j.NewBatch()
		writeLegacyFile(b, Inode{Ino: 1, Key: "old"}, 0)
		commit(t, b, true)
		for name, st := range map[string]*State{"LoadCore": loadCore(t, j), "Load": load(t, j)} {
			if !st.Legacy || !st.HasInodes {
				t.Fatalf("%s: Legacy %v HasInodes %v, want both", name, st.Legacy, st.HasInodes)
			}
		}
	})
	t.Run("a format 2 journal is not Legacy", func(t *testing.T) {
		j := openMem(t, memfs.New(), Options{})
		defer closeJournal(t, j)
		b, _ := fullBatch(j)
		commit(t, b, true)
		if loadCore(t, j).Legacy || load(t, j).Legacy {
			t.Fatal("Legacy on a format 2 journal")
		}
	})
}

func TestLookupInode(t *testing.T) {
	j := openMem(t, memfs.New(), Options{})
	defer closeJournal(t, j)
	b, want := fullBatch(j)
	full := inlineInode(10, "full", MaxInlineExtents)
	b.SetInode(full)
	bare := Inode{Ino: 11, Key: "bare", Blocks: 0, External: true}
	b.SetInode(bare)
	commit(t, b, true)
	st := load(t, j)
	if !reflect.DeepEqual(st.Inodes[1], want.Inodes[1]) || st.Inodes[10].Key != "full" {
		t.Fatalf("Load got %+v", st.Inodes)
	}

	found := []struct {
		name, key string
		want      Inode
	}{
		{"an inode of inline extents", "alpha", want.Inodes[1]},
		{"an inode of MaxInlineExtents inline extents", "full", full},
		{"an External inode, with its extent records sorted", "delta", want.Inodes[4]},
		{"an External inode without extent records", "bare", bare},
	}
	for _, c := range found {
		t.Run(c.name+" is found whole", func(t *testing.T) {
			got, ok, err := j.LookupInode(c.key)
			if err != nil || !ok {
				t.Fatalf("LookupInode(%q) = %v, %v", c.key, ok, err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
			if !reflect.DeepEqual(got, st.Inodes[got.Ino]) {
				t.Fatalf("LookupInode %+v differs from Load %+v", got, st.Inodes[got.Ino])
			}
		})
	}
	for _, key := range []string{"gamma", "alph", "alpha\x00", "alphaa", "", strings.Repeat("k", MaxKeyLen+1)} {
		t.Run(fmt.Sprintf("missing key %.12q is not found", key), func(t *testing.T) {
			got, ok, err := j.LookupInode(key)
			if err != nil || ok || !reflect.DeepEqual(got, Inode{}) {
				t.Fatalf("got %+v, %v, %v", got, ok, err)
			}
		})
	}
	t.Run("a deleted inode is not found", func(t *testing.T) {
		b := j.NewBatch()
		b.DeleteInode("alpha")
		commit(t, b, true)
		if _, ok, err := j.LookupInode("alpha"); ok || err != nil {
			t.Fatalf("found %v, %v", ok, err)
		}
	})
	t.Run("a format 1 name record is corrupt to LookupInode", func(t *testing.T) {
		b := j.NewBatch()
		writeLegacyFile(b, Inode{Ino: 20, Key: "old"}, 0)
		commit(t, b, true)
		if _, _, err := j.LookupInode("old"); !errors.Is(err, pmem.ErrCorrupt) {
			t.Fatalf("err = %v, want ErrCorrupt", err)
		}
	})
}

// scanAll pages through prefix with the given page size and returns the
// keys seen, failing if a page is longer than limit or the paging does not
// end.
func scanAll(t *testing.T, j *Journal, prefix string, limit int) []string {
	t.Helper()
	var keys []string
	after := ""
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatalf("paging %q by %d does not end: %q", prefix, limit, keys)
		}
		ins, err := j.ScanInodes(prefix, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(ins) > limit {
			t.Fatalf("a page of %d for limit %d", len(ins), limit)
		}
		if len(ins) == 0 {
			return keys
		}
		for _, in := range ins {
			keys = append(keys, in.Key)
		}
		after = ins[len(ins)-1].Key
	}
}

func TestScanInodesPaging(t *testing.T) {
	j := openMem(t, memfs.New(), Options{})
	defer closeJournal(t, j)
	keys := []string{"a", "a\x00", "a/1", "a/10", "a/2", "ab", "b", "b/x", "\xff", "\xff\xff"} // in byte order
	byKey := map[string]Inode{}
	b := j.NewBatch()
	for i, k := range slices.Backward(keys) {
		in := inlineInode(uint64(i+1), k, i%3)
		if i == 4 {
			in = Inode{Ino: uint64(i + 1), Key: k, Blocks: 40, External: true}
			for n := range 40 {
				b.SetExtent(ExtentRecord{Ino: in.Ino, FileBlock: uint64(n), Start: pmem.Block(500 + n), Len: 1})
			}
		}
		b.SetInode(in)
		byKey[k] = in
	}
	b.SetExtent(ExtentRecord{Ino: 99, Start: 1, Len: 1}) // records of other kinds around
	b.SetFree(pmem.Extent{Start: 1000, Len: 1})
	b.LogFree(FreeLog{Seq: 1})
	commit(t, b, true)

	matching := func(prefix string) []string {
		var out []string
		for _, k := range keys { // keys is in byte order
			if strings.HasPrefix(k, prefix) {
				out = append(out, k)
			}
		}
		return out
	}
	for _, prefix := range []string{"", "a", "a/", "a/1", "a/10", "a\x00", "ab", "b", "\xff", "\xff\xff", "c", "a/3", "zz", "\x00", "a/10/"} {
		want := matching(prefix)
		t.Run(fmt.Sprintf("prefix %q lists %d keys in order, whole or by pages", prefix, len(want)), func(t *testing.T) {
			ins, err := j.ScanInodes(prefix, "", 100)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, in := range ins {
				got = append(got, in.Key)
				w := byKey[in.Key]
				if w.External {
					w.Extents = nil // ScanInodes does not read extent records
				}
				if !reflect.DeepEqual(in, w) {
					t.Fatalf("inode %+v, want %+v", in, w)
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %q, want %q", got, want)
			}
			for _, limit := range []int{1, 2, 3} {
				if got := scanAll(t, j, prefix, limit); !reflect.DeepEqual(got, want) {
					t.Fatalf("by pages of %d: got %q, want %q", limit, got, want)
				}
			}
		})
	}
	cases := []struct {
		name, prefix, after string
		limit               int
		want                []string
	}{
		{"a page starts after a key that does not exist", "a", "a/15", 10, []string{"a/2", "ab"}},
		{"a page starts after the key, not at it", "a", "a/1", 2, []string{"a/10", "a/2"}},
		{"after a key below the prefix starts at the prefix", "a/", "0", 10, []string{"a/1", "a/10", "a/2"}},
		{"after a key above the prefix is empty", "a/", "b", 10, nil},
		{"after the last matching key is empty", "a/", "a/2", 10, nil},
		{"limit 0 returns nothing", "", "", 0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ins, err := j.ScanInodes(c.prefix, c.after, c.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, in := range ins {
				got = append(got, in.Key)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
	t.Run("paging goes on across a delete of the next key", func(t *testing.T) {
		first, err := j.ScanInodes("a", "", 3)
		if err != nil || len(first) != 3 || first[2].Key != "a/1" {
			t.Fatalf("%v %v", first, err)
		}
		b := j.NewBatch()
		b.DeleteInode("a/10")                  // the next one
		b.SetInode(Inode{Ino: 50, Key: "a/0"}) // before the cursor: not seen
		commit(t, b, true)
		rest, err := j.ScanInodes("a", first[2].Key, 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, in := range rest {
			got = append(got, in.Key)
		}
		if want := []string{"a/2", "ab"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
	t.Run("a format 1 name record in range is corrupt", func(t *testing.T) {
		b := j.NewBatch()
		writeLegacyFile(b, Inode{Ino: 60, Key: "old"}, 0)
		commit(t, b, true)
		if _, err := j.ScanInodes("o", "", 10); !errors.Is(err, pmem.ErrCorrupt) {
			t.Fatalf("err = %v, want ErrCorrupt", err)
		}
		if _, err := j.ScanInodes("a", "", 10); err != nil {
			t.Fatalf("a scan outside the bad record: %v", err)
		}
	})
}

func TestSnapshotSeesStateAsOfItsCreation(t *testing.T) {
	j := openMem(t, memfs.New(), Options{})
	defer closeJournal(t, j)
	b, want := fullBatch(j)
	commit(t, b, true)
	s, err := j.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Change every kind of record after the snapshot.
	b = j.NewBatch()
	b.SetMeta(Meta{NextInode: 99})
	b.DeleteInode("alpha")
	b.SetInode(inlineInode(9, "new", 2))
	b.DeleteExtents(4)
	b.SetExtent(ExtentRecord{Ino: 4, FileBlock: 1, Start: 600, Len: 3})
	b.CheckpointFree([]pmem.Extent{{Start: 700, Len: 1}}, 5, 3)
	b.LogFree(FreeLog{Seq: 8, Freed: []pmem.Extent{{Start: 10, Len: 1}}})
	b.DeleteBusy(50)
	b.SetMark(4)
	commit(t, b, true)

	for round := range 2 {
		got, err := s.Load()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("load %d of the snapshot got %+v\nwant %+v", round, got, want)
		}
	}
	live := load(t, j)
	if live.Meta.NextInode != 99 || live.Names["new"] != 9 || live.Names["alpha"] != 0 || live.Mark != 4 ||
		!reflect.DeepEqual(logSeqs(live.FreeLog), []uint64{7, 8}) {
		t.Fatalf("the live journal misses the later commit: %+v", live)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	if _, err := s.Load(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Load of a closed snapshot = %v, want ErrClosed", err)
	}
}

// TestSnapshotIsConsistentUnderCommits loads snapshots while batches
// commit: each batch sets the meta's NextInode to its number and adds that
// inode, so a consistent view holds exactly NextInode inodes.
func TestSnapshotIsConsistentUnderCommits(t *testing.T) {
	j := openMem(t, memfs.New(), Options{NoSync: true})
	defer closeJournal(t, j)
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := uint64(1); i <= n; i++ {
			b := j.NewBatch()
			b.SetMeta(Meta{NextInode: i})
			b.SetInode(inlineInode(i, fmt.Sprintf("k%04d", i), 1))
			b.LogFree(FreeLog{Seq: i, Files: 1})
			if err := b.Commit(false); err != nil {
				errs <- err
				return
			}
		}
	}()
	check := func(st *State) {
		t.Helper()
		k := int(st.Meta.NextInode)
		if len(st.Inodes) != k || len(st.Names) != k || len(st.FreeLog) != k {
			t.Fatalf("torn view: meta says %d, inodes %d names %d log %d", k, len(st.Inodes), len(st.Names), len(st.FreeLog))
		}
	}
	for range 20 {
		s, err := j.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		st, err := s.Load()
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		check(st)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	check(load(t, j))
}

// writeLegacyFile queues the format 1 records of a file of n extents, as
// inlineExtents lays them out: its name record, inode record and one
// extent record per extent. It returns the file as format 2 must hold it.
func writeLegacyFile(b *Batch, in Inode, n int) Inode {
	k, v := encodeLegacyName(in.Key, in.Ino)
	b.set("legacy name", k, v)
	k, v = encodeLegacyInode(in)
	b.set("legacy inode", k, v)
	exts := inlineExtents(in.Ino, n)
	for _, r := range exts {
		b.SetExtent(r)
	}
	in.Blocks = uint64(n)
	in.Extents = exts
	in.External = n > MaxInlineExtents
	return in
}

// format1Journal builds a format 1 journal of the given files, named by
// their extent counts, with records of every other kind, and returns the
// state it must load as after Upgrade.
func format1Journal(t *testing.T, j *Journal, extentCounts []int) *State {
	t.Helper()
	want := emptyState()
	b := j.NewBatch()
	m := Meta{UUID: [16]byte{1}, BlockSize: 4096, BlockCount: 1 << 20, NextInode: uint64(len(extentCounts) + 1)}
	b.SetMeta(m)
	want.Meta, want.HasMeta = m, true
	for i, n := range extentCounts {
		ino := uint64(i + 1)
		in := writeLegacyFile(b, Inode{Ino: ino, Key: fmt.Sprintf("file-%d-of-%d", i, n), Size: int64(n) * 8192, ModTime: int64(i) * 1e9}, n)
		want.Names[in.Key] = ino
		want.Inodes[ino] = in
		want.Extents[ino] = in.Extents
	}
	want.HasInodes = len(extentCounts) > 0
	// Format 1 free records are the checkpoint format 2 starts from.
	want.Free = []pmem.Extent{{Start: 1, Len: 9}, {Start: 1 << 19, Len: 1 << 19}}
	for _, e := range want.Free {
		b.SetFree(e)
	}
	busy := BusyRecord{Extent: pmem.Extent{Start: 50, Len: 5}, Ino: 7, Key: "gone", Pins: 1}
	b.SetBusy(busy)
	want.Busy = []BusyRecord{busy}
	b.SetMark(3)
	want.Mark = 3
	commit(t, b, true)
	return want
}

func TestUpgradeOfAFormat1Journal(t *testing.T) {
	counts := []int{0, 1, MaxInlineExtents, MaxInlineExtents + 1, 100}
	fs := memfs.New()
	j := openMem(t, fs, Options{})
	want := format1Journal(t, j, counts)

	t.Run("before Upgrade the journal is Legacy and per-file reads refuse it", func(t *testing.T) {
		if !loadCore(t, j).Legacy || !load(t, j).Legacy {
			t.Fatal("not Legacy")
		}
		if _, _, err := j.LookupInode("file-1-of-1"); !errors.Is(err, pmem.ErrCorrupt) {
			t.Fatalf("LookupInode = %v, want ErrCorrupt", err)
		}
		if _, err := j.ScanInodes("", "", 10); !errors.Is(err, pmem.ErrCorrupt) {
			t.Fatalf("ScanInodes = %v, want ErrCorrupt", err)
		}
	})
	n, err := j.Upgrade()
	if err != nil {
		t.Fatal(err)
	}
	if n != len(counts) {
		t.Fatalf("Upgrade converted %d files, want %d", n, len(counts))
	}
	check := func(t *testing.T, j *Journal) {
		t.Helper()
		st := load(t, j)
		if st.Legacy || loadCore(t, j).Legacy {
			t.Fatal("still Legacy after Upgrade")
		}
		for _, f := range []struct {
			name      string
			got, want any
		}{
			{"names", st.Names, want.Names}, {"inodes", st.Inodes, want.Inodes}, {"extents", st.Extents, want.Extents},
			{"meta", st.Meta, want.Meta}, {"free", st.Free, want.Free}, {"free log", st.FreeLog, want.FreeLog},
			{"busy", st.Busy, want.Busy}, {"mark", st.Mark, want.Mark}, {"has inodes", st.HasInodes, want.HasInodes},
		} {
			if !reflect.DeepEqual(f.got, f.want) {
				t.Fatalf("%s: got  %+v\nwant %+v", f.name, f.got, f.want)
			}
		}
		for _, in := range want.Inodes {
			got, ok, err := j.LookupInode(in.Key)
			if err != nil || !ok || !reflect.DeepEqual(got, in) {
				t.Fatalf("LookupInode(%q) = %+v, %v, %v; want %+v", in.Key, got, ok, err, in)
			}
			// Only an External inode keeps extent records.
			exts, err := j.externalExtents(j.db, in.Ino)
			if err != nil {
				t.Fatal(err)
			}
			if in.External != (len(exts) > 0) {
				t.Fatalf("inode %d (External %v) kept %d extent records", in.Ino, in.External, len(exts))
			}
		}
		if left, err := j.anyWithPrefix(j.db, prefixInode); err != nil || left {
			t.Fatalf("format 1 inode records left: %v %v", left, err)
		}
		ins, err := j.ScanInodes("", "", 100)
		if err != nil || len(ins) != len(counts) {
			t.Fatalf("ScanInodes after Upgrade: %d, %v", len(ins), err)
		}
	}
	t.Run("after Upgrade every file reads as it did, in format 2", func(t *testing.T) { check(t, j) })
	t.Run("a second Upgrade converts nothing", func(t *testing.T) {
		if n, err := j.Upgrade(); n != 0 || err != nil {
			t.Fatalf("Upgrade = %d, %v", n, err)
		}
		check(t, j)
	})
	t.Run("the upgrade survives a power cut", func(t *testing.T) {
		crashed := fs.CrashClone()
		closeJournal(t, j)
		j = openMem(t, crashed, Options{})
		check(t, j)
	})
	closeJournal(t, j)
}

// TestUpgradeOfManyFilesTakesSeveralBatches upgrades more files than one
// upgrade batch holds.
func TestUpgradeOfManyFilesTakesSeveralBatches(t *testing.T) {
	j := openMem(t, memfs.New(), Options{NoSync: true})
	defer closeJournal(t, j)
	counts := make([]int, 2*upgradeBatch+3)
	for i := range counts {
		counts[i] = i % 3
	}
	want := format1Journal(t, j, counts)
	n, err := j.Upgrade()
	if err != nil || n != len(counts) {
		t.Fatalf("Upgrade = %d, %v; want %d", n, err, len(counts))
	}
	st := load(t, j)
	if st.Legacy || !reflect.DeepEqual(st.Inodes, want.Inodes) || !reflect.DeepEqual(st.Names, want.Names) {
		t.Fatalf("Legacy %v, %d inodes, %d names; want %d", st.Legacy, len(st.Inodes), len(st.Names), len(want.Inodes))
	}
}

func TestUpgradeRefusesInconsistentFormat1Records(t *testing.T) {
	cases := []struct {
		name  string
		build func(b *Batch)
	}{
		{"a name record whose inode names another key", func(b *Batch) {
			writeLegacyFile(b, Inode{Ino: 1, Key: "a"}, 1)
			k, v := encodeLegacyName("a", 2) // "a" claims inode 2, whose key is "b"
			b.set("legacy name", k, v)
			writeLegacyFile(b, Inode{Ino: 2, Key: "b"}, 0)
		}},
		{"an inode whose key has no name record", func(b *Batch) {
			writeLegacyFile(b, Inode{Ino: 1, Key: "a"}, 0)
			k, v := encodeLegacyInode(Inode{Ino: 2, Key: "nameless"})
			b.set("legacy inode", k, v)
		}},
		{"an inode whose name record is damaged", func(b *Batch) {
			writeLegacyFile(b, Inode{Ino: 1, Key: "a"}, 0)
			k, v := encodeLegacyName("a", 1)
			v[1] ^= 1
			b.set("legacy name", k, v)
		}},
	}
	for _, c := range cases {
		t.Run(c.name+" fails Upgrade with ErrCorrupt and changes nothing", func(t *testing.T) {
			j := openMem(t, memfs.New(), Options{})
			defer closeJournal(t, j)
			b := j.NewBatch()
			c.build(b)
			commit(t, b, true)
			before := snapshotKeys(t, j)
			n, err := j.Upgrade()
			if !errors.Is(err, pmem.ErrCorrupt) {
				t.Fatalf("Upgrade = %d, %v; want ErrCorrupt", n, err)
			}
			if n != 0 {
				t.Fatalf("Upgrade reported %d files converted", n)
			}
			if after := snapshotKeys(t, j); !reflect.DeepEqual(after, before) {
				t.Fatalf("records changed:\nbefore %q\nafter  %q", before, after)
			}
			if !loadCore(t, j).Legacy {
				t.Fatal("no longer Legacy after a failed Upgrade")
			}
		})
	}
}

// snapshotKeys returns every record of j as key=value strings.
func snapshotKeys(t *testing.T, j *Journal) []string {
	t.Helper()
	it, err := j.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []string
	for valid := it.First(); valid; valid = it.Next() {
		out = append(out, fmt.Sprintf("%x=%x", it.Key(), it.Value()))
	}
	return out
}
