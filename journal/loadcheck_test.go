// Tests of what Load and SetInode refuse or report in format 2: extents of
// another inode, extent records left under an inline inode, format 1
// records left behind by an interrupted or damaged journal, and a Load
// torn by concurrent commits.

package journal

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/daxstore/daxstore/internal/memfs"
	"github.com/daxstore/daxstore/pmem"
)

// SetInode documents "Ino of each equals the inode's" but does not check it:
// an inline extent of another inode is stored and comes back as this one's.
func TestJournalSetInodeRefusesAnExtentOfAnotherInode(t *testing.T) {
	j := openMem(t, memfs.New(), Options{})
	defer closeJournal(t, j)
	b := j.NewBatch()
	b.SetInode(Inode{Ino: 5, Key: "k", Blocks: 1, Extents: []ExtentRecord{{Ino: 7, FileBlock: 0, Start: 10, Len: 1}}})
	if err := b.Commit(true); !errors.Is(err, ErrInvalidRecord) {
		got, _, _ := j.LookupInode("k")
		t.Fatalf("Commit = %v, want ErrInvalidRecord; stored %+v", err, got)
	}
}

// Load of a format 1 journal (before Upgrade) must show its extent
// records: loadAll overwrites st.Extents[ino] with the legacy inode's nil
// inline extents, since a format 1 inode is not External.
func TestJournalLoadOfAFormat1JournalKeepsItsExtents(t *testing.T) {
	j := openMem(t, memfs.New(), Options{})
	defer closeJournal(t, j)
	want := format1Journal(t, j, []int{0, 1, 3})
	st := load(t, j)
	if !st.Legacy {
		t.Fatal("not Legacy")
	}
	for ino, exts := range want.Extents {
		if !reflect.DeepEqual(st.Extents[ino], exts) {
			t.Fatalf("inode %d: Load shows extents %v, the journal holds %v", ino, st.Extents[ino], exts)
		}
	}
}

// Extent records left under an inode that is not External (a leak: a file
// that shrank back to inline extents without DeleteExtents) are hidden by
// Load, which replaces them with the inline extents, so Check cannot see
// them. Load should report them (or fail with ErrCorrupt).
func TestJournalLoadShowsExtentRecordsOfAnInlineInode(t *testing.T) {
	j := openMem(t, memfs.New(), Options{})
	defer closeJournal(t, j)
	b := j.NewBatch()
	b.SetInode(inlineInode(5, "k", 1))
	b.SetExtent(ExtentRecord{Ino: 5, FileBlock: 100, Start: 900, Len: 1}) // stale
	commit(t, b, true)
	st, err := j.Load()
	if errors.Is(err, pmem.ErrCorrupt) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Extents[5] {
		if r.Start == 900 {
			return
		}
	}
	t.Fatalf("the extent record at block 900 is invisible: Extents[5] = %v", st.Extents[5])
}

// LoadCore decides Legacy from 'I' records only; Load also from format 1
// name records. A format 1 name record without its inode record makes
// Load say Legacy and LoadCore not, and Upgrade (which walks 'I' records)
// never converts or rejects it, so LookupInode of that key fails forever.
func TestJournalLoadCoreAndLoadAgreeOnLegacy(t *testing.T) {
	j := openMem(t, memfs.New(), Options{})
	defer closeJournal(t, j)
	b := j.NewBatch()
	k, v := encodeLegacyName("orphan", 3)
	b.set("legacy name", k, v)
	commit(t, b, true)
	if _, err := j.Upgrade(); err != nil {
		t.Fatal(err)
	}
	// Upgrade walks inode records, so it leaves the orphan; Load, which
	// Check runs, reports it.
	if _, err := j.Load(); !errors.Is(err, pmem.ErrCorrupt) || !strings.Contains(err.Error(), "no inode record") {
		t.Fatalf("Load of a journal with an orphan format 1 name = %v; want ErrCorrupt naming it", err)
	}
}

// Journal.Load on the live journal opens one iterator per record kind, so
// under concurrent commits it can return a torn state (meta from before a
// commit, inodes from after). Its doc no longer says "one consistent
// snapshot", but callers used to rely on that; Snapshot.Load is fine.
func TestJournalLiveLoadIsConsistentUnderCommits(t *testing.T) {
	j := openMem(t, memfs.New(), Options{NoSync: true})
	defer closeJournal(t, j)
	const n = 2000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := uint64(1); i <= n; i++ {
			b := j.NewBatch()
			b.SetMeta(Meta{NextInode: i})
			b.SetInode(Inode{Ino: i, Key: fmt.Sprintf("k%05d", i)})
			if b.Commit(false) != nil {
				return
			}
		}
	}()
	defer wg.Wait()
	for range 200 {
		st, err := j.Load()
		if err != nil {
			t.Fatal(err)
		}
		if k := int(st.Meta.NextInode); len(st.Inodes) != k {
			t.Fatalf("torn Load: meta says %d, %d inodes", k, len(st.Inodes))
		}
	}
}
