package journal

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
)

func TestExportWritesTheSnapshotExactly(t *testing.T) {
	src, err := Open(filepath.Join(t.TempDir(), "src"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer closeJournal(t, src)
	b, want := fullBatch(src)
	commit(t, b, false)
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	// A commit after the snapshot is not exported.
	later := src.NewBatch()
	later.DeleteInode("alpha")
	commit(t, later, false)

	dst := filepath.Join(t.TempDir(), "copy")
	if err := snap.Export(context.Background(), dst); err != nil {
		t.Fatalf("export: %v", err)
	}
	j, err := Open(dst, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := j.Load()
	closeJournal(t, j)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("exported\n%+v\nwant\n%+v", got, want)
	}
	// A journal is there now: a second export refuses it and keeps it.
	if err := snap.Export(context.Background(), dst); err == nil {
		t.Fatal("export over a journal succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := snap.Export(ctx, filepath.Join(t.TempDir(), "c")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled export: %v", err)
	}
}
