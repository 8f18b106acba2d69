package dax

// Group commit: a commit applies under its locks and waits for the sync
// after them. These tests park the journal's write-ahead-log sync (faultfs)
// and look at the store while a commit waits for it.

import (
	"bytes"
	"testing"
	"time"

	"github.com/daxstore/daxstore/internal/faultfs"
	"github.com/daxstore/daxstore/pmem"
)

// syncedStore opens a store whose journal syncs (no NoSync) in an
// in-memory filesystem that can park a sync.
func syncedStore(t *testing.T) (*Store, *faultfs.FS) {
	t.Helper()
	fs := faultfs.New(0)
	s := newStore(t, 4<<20, func(o *Options) {
		o.NoSync = false
		o.JournalFaults = fs
	})
	return s, fs
}

// parkedCommit starts op on its own goroutine with the log's next sync
// parked, and returns once op's commit waits for that sync. The returned
// channel yields op's result once the sync is released; release is also
// registered as a cleanup, so a failing test never leaves op stuck.
func parkedCommit(t *testing.T, fs *faultfs.FS, op func() error) (park *faultfs.Parked, done <-chan error) {
	t.Helper()
	park = fs.ParkSync(".log")
	t.Cleanup(park.Release)
	ch := make(chan error, 1)
	go func() { ch <- op() }()
	select {
	case <-park.Reached():
	case err := <-ch:
		t.Fatalf("the operation returned (%v) without syncing the journal's log", err)
	}
	return park, ch
}

// watchdog is how long a test lets a reader run before it calls the reader
// stuck behind the parked sync. Readers take microseconds; the bound only
// turns a deadlock (the old behaviour) into a failure instead of a hang.
const watchdog = time.Minute

// unblocked runs reader f and fails the test if f does not return before
// the watchdog fires (a reader that waits for a parked sync never would) or
// returns an error.
func unblocked(t *testing.T, what string, f func() error) {
	t.Helper()
	var err error
	within(t, watchdog, what+" while a commit waits for its sync (a reader must never wait for an fsync)", func() { err = f() })
	if err != nil {
		t.Fatalf("%s while a commit waits for its sync: %v", what, err)
	}
}

// notDone fails the test if the operation behind done has returned.
func notDone(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("%s returned (%v) while its commit's sync is parked: it must acknowledge only once durable", what, err)
	default:
	}
}

func fileBlocks(t *testing.T, s *Store, key string) []pmem.Extent {
	t.Helper()
	s.nsMu.RLock()
	in := s.names[key]
	s.nsMu.RUnlock()
	in.mapMu.Lock()
	defer in.mapMu.Unlock()
	var out []pmem.Extent
	for _, m := range in.extents.find(0, ^uint64(0)) {
		out = append(out, m.region())
	}
	return out
}

// TestGroupCommitReadersDoNotWaitForSync parks the sync of a Put over "a"
// and proves that Get, Stat, ReadAt and Pin of another key and of "a"
// itself complete meanwhile, that the Put does not return before the sync,
// and that the blocks the Put frees are not handed out until it is durable.
func TestGroupCommitReadersDoNotWaitForSync(t *testing.T) {
	s, fs := syncedStore(t)
	v1 := bytes.Repeat([]byte{1}, 3*testBS)
	v2 := bytes.Repeat([]byte{2}, 2*testBS)
	vb := bytes.Repeat([]byte{7}, testBS+5)
	if err := s.Put("a", v1); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("b", vb); err != nil {
		t.Fatal(err)
	}
	fa, err := s.Open("a")
	if err != nil {
		t.Fatal(err)
	}
	fb, err := s.Open("b")
	if err != nil {
		t.Fatal(err)
	}
	old := fileBlocks(t, s, "a")

	park, done := parkedCommit(t, fs, func() error { return s.Put("a", v2) })

	for _, c := range []struct {
		key  string
		file *File
		want []byte
	}{{"b", fb, vb}, {"a", fa, v2}} {
		// The same key shows the new value: it is published under the
		// locks when the batch is applied, before it is durable (the
		// package doc says why that is safe).
		unblocked(t, "Get "+c.key, func() error {
			got, err := s.Get(c.key)
			if err == nil && !bytes.Equal(got, c.want) {
				t.Errorf("Get %s = %d bytes [%x...], want %d bytes [%x...]", c.key, len(got), got[:1], len(c.want), c.want[:1])
			}
			return err
		})
		unblocked(t, "Stat "+c.key, func() error {
			fi, err := s.Stat(c.key)
			if err == nil && fi.Size != int64(len(c.want)) {
				t.Errorf("Stat %s: size %d, want %d", c.key, fi.Size, len(c.want))
			}
			return err
		})
		unblocked(t, "ReadAt "+c.key, func() error {
			buf := make([]byte, len(c.want))
			_, err := c.file.ReadAt(buf, 0)
			if err == nil && !bytes.Equal(buf, c.want) {
				t.Errorf("ReadAt %s read the wrong bytes", c.key)
			}
			return err
		})
		unblocked(t, "Pin "+c.key, func() error {
			p, err := c.file.Pin(0, int64(len(c.want)), PinOptions{Label: "reader"})
			if err != nil {
				return err
			}
			return p.Unpin()
		})
	}
	notDone(t, done, "Put")

	// The old value's blocks return to free space only once the Put is
	// durable: no allocation may hand them out while its sync is parked.
	for _, e := range old {
		if s.free.Overlaps(e) {
			t.Fatalf("blocks %v freed by a commit that is not durable yet are allocatable", e)
		}
	}
	got, err := s.reserve(s.free.FreeBlocks(), 0)
	if err != nil {
		t.Fatalf("reserve every allocatable block: %v", err)
	}
	for _, g := range got {
		for _, e := range old {
			if g.Start < e.End() && e.Start < g.End() {
				t.Fatalf("an allocation got %v, which overlaps %v, freed by a commit still waiting for its sync", g, e)
			}
		}
	}
	s.unreserve(got)
	notDone(t, done, "Put")

	park.Release()
	if err := <-done; err != nil {
		t.Fatalf("Put: %v", err)
	}
	for _, e := range old {
		if !s.free.Covers(e) {
			t.Errorf("blocks %v freed by the durable Put are not allocatable", e)
		}
	}
	mustCheck(t, s)
}
