package dax

// Group commit: a commit applies under its locks and waits for the sync
// after them. These tests park the journal's write-ahead-log sync (faultfs)
// and look at the store while a commit waits for it.

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"syscall"
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
		o.media.JournalFaults = fs
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

// TestGroupCommitWritersShareASync parks the sync of a Put and proves that
// a Put of another key applies meanwhile (it waits for no other commit's
// sync, so the two can share one) and that neither returns before the
// sync is released.
func TestGroupCommitWritersShareASync(t *testing.T) {
	s, fs := syncedStore(t)
	park, first := parkedCommit(t, fs, func() error { return s.Put("a", []byte("first")) })
	second := make(chan error, 1)
	go func() { second <- s.Put("c", []byte("second")) }()
	// The second Put publishes its value when its batch is applied; that
	// needs no sync, so it happens while the first Put's sync is parked.
	within(t, watchdog, "the second Put's apply while the first Put's sync is parked", func() {
		for {
			if got, err := s.Get("c"); err == nil && string(got) == "second" {
				return
			}
			runtime.Gosched()
		}
	})
	notDone(t, first, "the first Put")
	notDone(t, second, "the second Put")
	park.Release()
	for _, ch := range []<-chan error{first, second} {
		if err := <-ch; err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	mustCheck(t, s)
}

// TestGroupCommitReleaseWaitsForDetach parks the sync of a Put that
// detaches a pinned block, then drops the pin: the releaser commits the
// block back to free space at once, but must not make it allocatable while
// the commit that detached it may still be lost, or a crash could give the
// old file a block that a new owner has written.
func TestGroupCommitReleaseWaitsForDetach(t *testing.T) {
	s, fs := syncedStore(t)
	if err := s.Put("a", bytes.Repeat([]byte{1}, testBS)); err != nil {
		t.Fatal(err)
	}
	f, err := s.Open("a")
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.Pin(0, testBS, PinOptions{Label: "holder"})
	if err != nil {
		t.Fatal(err)
	}
	old := fileBlocks(t, s, "a")
	park, done := parkedCommit(t, fs, func() error { return s.Put("a", []byte("new")) })
	// The Put has detached the pinned block once its apply is over: wait
	// for that by taking the file's lock, which the apply holds.
	within(t, watchdog, "the Put's apply", func() { _, _ = s.Stat("a") })
	if err := p.Unpin(); err != nil {
		t.Fatal(err)
	}
	within(t, watchdog, "the releaser's commit", func() {
		if err := s.releaser.Sync(t0()); err != nil {
			t.Errorf("releaser sync: %v", err)
		}
	})
	if s.busy.Blocks() != 0 {
		t.Fatalf("busy blocks = %d after the release committed, want 0", s.busy.Blocks())
	}
	for _, e := range old {
		if s.free.Overlaps(e) {
			t.Fatalf("released block %v is allocatable while the commit that detached it waits for its sync", e)
		}
	}
	notDone(t, done, "Put")
	park.Release()
	if err := <-done; err != nil {
		t.Fatalf("Put: %v", err)
	}
	for _, e := range old {
		if !s.free.Covers(e) {
			t.Errorf("released block %v is not allocatable once the detaching commit is durable", e)
		}
	}
	mustCheck(t, s)
}

// TestGroupCommitSealsAMarkOnlyOnceDurable parks the sync of a commit that
// carries a commit mark: the region's seal must not vouch for the mark
// until the commit is durable, or a log that lost the commit would pass.
func TestGroupCommitSealsAMarkOnlyOnceDurable(t *testing.T) {
	s, fs := syncedStore(t)
	if err := s.Put("a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	s.commitMu.Lock()
	s.seal.at = time.Time{} // the next synced commit carries a mark
	before := s.seal.region.Seal()
	s.commitMu.Unlock()
	park, done := parkedCommit(t, fs, func() error { return s.Put("b", []byte("y")) })
	within(t, watchdog, "the Put's apply", func() { _, _ = s.Stat("b") })
	s.commitMu.Lock()
	mark, sealed := s.seal.mark, s.seal.region.Seal()
	s.commitMu.Unlock()
	if mark <= before {
		t.Fatalf("the parked commit carries no new mark (mark %d, sealed %d)", mark, before)
	}
	if sealed != before {
		t.Fatalf("seal = %d while the commit carrying mark %d waits for its sync, want %d", sealed, mark, before)
	}
	park.Release()
	if err := <-done; err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got := s.seal.region.Seal(); got != mark {
		t.Fatalf("seal = %d once the commit is durable, want its mark %d", got, mark)
	}
}

// TestGroupCommitFailedSyncFailsTheStore fails the log's sync of a Put
// whose apply already published the new value: memory is ahead of the
// journal, so the Put and every later change fail with ErrFailed, and the
// blocks the Put freed are never handed out.
func TestGroupCommitFailedSyncFailsTheStore(t *testing.T) {
	s, fs := syncedStore(t)
	if err := s.Put("a", bytes.Repeat([]byte{1}, 2*testBS)); err != nil {
		t.Fatal(err)
	}
	old := fileBlocks(t, s, "a")
	fs.Arm(faultfs.Fault{Ops: faultfs.Sync, Err: syscall.EIO})
	err := s.Put("a", []byte("new"))
	if !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Put whose sync fails = %v, want ErrFailed and EIO", err)
	}
	for _, e := range old {
		if s.free.Overlaps(e) {
			t.Fatalf("blocks %v freed by a commit whose sync failed are allocatable", e)
		}
	}
	if err := s.Put("b", []byte("z")); !errors.Is(err, ErrFailed) {
		t.Fatalf("Put after the failed sync = %v, want ErrFailed", err)
	}
}

// TestGroupCommitEveryOperationReleasesItsLocksBeforeTheSync parks the
// sync of each kind of commit in turn and proves that readers of another
// key and of the key being changed go on, and that the operation returns
// only after the sync.
func TestGroupCommitEveryOperationReleasesItsLocksBeforeTheSync(t *testing.T) {
	for _, c := range []struct {
		name string
		op   func(s *Store, f *File) error
	}{
		{"Create", func(s *Store, _ *File) error { _, err := s.Create("new"); return err }},
		{"Rename", func(s *Store, _ *File) error { return s.Rename("a", "renamed") }},
		{"Remove", func(s *Store, _ *File) error { return s.Remove("a") }},
		{"WriteAt into a hole", func(_ *Store, f *File) error { _, err := f.WriteAt([]byte("w"), 5*testBS); return err }},
		{"Allocate", func(_ *Store, f *File) error { return f.Allocate(4*testBS, 2*testBS) }},
		{"Truncate", func(_ *Store, f *File) error { return f.Truncate(testBS) }},
		{"PunchHole", func(_ *Store, f *File) error { return f.PunchHole(0, testBS) }},
		{"ZeroRange", func(_ *Store, f *File) error { return f.ZeroRange(0, testBS) }},
		{"Pin of a hole", func(_ *Store, f *File) error {
			p, err := f.Pin(2*testBS+1, 10, PinOptions{})
			if err != nil {
				return err
			}
			return p.Unpin()
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, fs := syncedStore(t)
			if err := s.Put("a", bytes.Repeat([]byte{1}, 2*testBS)); err != nil {
				t.Fatal(err)
			}
			f, err := s.Open("a")
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(4 * testBS); err != nil { // a hole at blocks 2 and 3
				t.Fatal(err)
			}
			if err := s.Put("b", []byte("other")); err != nil {
				t.Fatal(err)
			}
			park, done := parkedCommit(t, fs, func() error { return c.op(s, f) })
			unblocked(t, "Get b", func() error { _, err := s.Get("b"); return err })
			unblocked(t, "Stat b", func() error { _, err := s.Stat("b"); return err })
			unblocked(t, "ReadAt a", func() error {
				_, err := f.ReadAt(make([]byte, 10), 0)
				if errors.Is(err, ErrNotFound) || errors.Is(err, io.EOF) {
					return nil // removed or truncated: the answer is news, not a wait
				}
				return err
			})
			notDone(t, done, c.name)
			park.Release()
			if err := <-done; err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			mustCheck(t, s)
		})
	}
}

// TestGroupCommitAllocationWaitsForBlocksFreedBySettlingCommit fills the
// region, parks the sync of a Put that frees most of it, and starts a Put
// that needs those blocks: it must wait for the sync and then succeed, not
// fail with ErrNoSpace while the space is on its way back.
func TestGroupCommitAllocationWaitsForBlocksFreedBySettlingCommit(t *testing.T) {
	fs := faultfs.New(0)
	s := newStore(t, 1<<20, func(o *Options) {
		o.NoSync = false
		o.media.JournalFaults = fs
		o.AllocWait = time.Hour // the test releases the sync; no deadline may fire first
	})
	free := int(s.free.FreeBlocks())
	big := bytes.Repeat([]byte{3}, (free-2)*testBS)
	if err := s.Put("a", big); err != nil {
		t.Fatal(err)
	}
	park, first := parkedCommit(t, fs, func() error { return s.Put("a", []byte("small")) })
	waits := s.stats.allocWaits.Load()
	second := make(chan error, 1)
	go func() { second <- s.Put("b", big) }()
	within(t, watchdog, "the second Put's wait for space", func() {
		for s.stats.allocWaits.Load() == waits {
			select {
			case err := <-second:
				second <- err
				return
			default:
				runtime.Gosched()
			}
		}
	})
	notDone(t, second, "a Put whose space is freed by a commit waiting for its sync")
	park.Release()
	if err := <-first; err != nil {
		t.Fatalf("first Put: %v", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("Put of space freed by a commit that was waiting for its sync: %v", err)
	}
	mustCheck(t, s)
}
