package journal

import (
	"errors"
	"testing"

	"github.com/daxstore/daxstore/internal/memfs"
	"github.com/daxstore/daxstore/pmem"
)

// TestSyncMakesNoSyncCommitsDurable proves Sync's promise: under NoSync,
// every batch committed before Sync survives a power cut that keeps nothing
// unsynced.
func TestSyncMakesNoSyncCommitsDurable(t *testing.T) {
	fs := memfs.New()
	j := openMem(t, fs, Options{NoSync: true})
	const n = 10
	for i := 1; i <= n; i++ {
		b := j.NewBatch()
		b.SetMeta(Meta{NextInode: uint64(i)})
		b.SetExtent(ExtentRecord{Ino: uint64(i), Start: pmem.Block(i), Len: 1})
		commit(t, b, true)
	}
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	crashed := fs.CrashClonePartial(0, 1)
	closeJournal(t, j)
	if err := j.Sync(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sync after Close: %v, want ErrClosed", err)
	}

	j = openMem(t, crashed, Options{})
	defer closeJournal(t, j)
	st, err := j.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Meta.NextInode; got != n {
		t.Fatalf("after a cut that kept only synced data, %d batches survived, want %d", got, n)
	}
	for i := 1; i <= n; i++ {
		if len(st.Extents[uint64(i)]) != 1 {
			t.Fatalf("batch %d lost", i)
		}
	}
}
