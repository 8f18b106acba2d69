package fusefs_test

// The kill test exists for the promise that a crash of the mount process
// loses nothing acknowledged: it SIGKILLs the mount child while the test
// writes and fsyncs through the mount, unmounts the dead mount lazily,
// reopens the store in the test process, runs Check, and finds every byte
// that an fsync acknowledged.

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/daxstore/daxstore/dax"
)

const (
	killBase  = 1 << 20  // bytes fsync'd before the writer starts
	killChunk = 64 << 10 // one write
	killSlots = 16       // the writer cycles over this many chunks after killBase
)

// killPattern is what generation gen of slot holds: deterministic, so the
// check can tell generations apart.
func killPattern(slot, gen int) []byte {
	b := make([]byte, killChunk)
	rand.New(rand.NewSource(int64(slot)<<32 | int64(gen))).Read(b)
	return b
}

func TestMountSurvivesSIGKILLMidWrite(t *testing.T) {
	needFUSE(t)
	m := startMount(t, mountConfig{})
	path := filepath.Join(m.Mnt, "k")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	base := make([]byte, killBase)
	rand.New(rand.NewSource(7)).Read(base)
	if _, err := f.WriteAt(base, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}

	// The writer overwrites the slots in turn, each write a new generation
	// of its slot, and fsyncs every fifth write. synced[s] is the newest
	// generation of slot s an fsync acknowledged; tried[s] the newest it
	// started to write. It runs until a write fails: the server is gone.
	var (
		mu      sync.Mutex
		synced  [killSlots]int
		tried   [killSlots]int
		started = make(chan struct{})
		done    = make(chan error, 1)
	)
	for s := range killSlots {
		synced[s], tried[s] = -1, -1
	}
	go func() {
		var pending [killSlots]int
		for s := range pending {
			pending[s] = -1
		}
		for i := 0; ; i++ {
			slot, gen := i%killSlots, i/killSlots
			mu.Lock()
			tried[slot] = gen
			mu.Unlock()
			if _, err := unix.Pwrite(int(f.Fd()), killPattern(slot, gen), killBase+int64(slot)*killChunk); err != nil {
				done <- err
				return
			}
			pending[slot] = gen
			if i%5 == 4 {
				if err := unix.Fsync(int(f.Fd())); err != nil {
					done <- err
					return
				}
				mu.Lock()
				copy(synced[:], pending[:])
				mu.Unlock()
			}
			if i == 3*killSlots {
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("the writer failed before the kill: %v; mount log:\n%s", err, m.tail())
	}
	m.Kill()
	select {
	case err := <-done:
		t.Logf("the write in flight at the kill: %v", err)
		if !errors.Is(err, unix.ENOTCONN) && !errors.Is(err, unix.ECONNABORTED) && !errors.Is(err, unix.EIO) {
			t.Errorf("a write after the mount process died: %v, want ENOTCONN, ECONNABORTED or EIO", err)
		}
	case <-time.After(replyTimeout):
		t.Fatal("a write hung after the mount process was killed")
	}
	f.Close()
	Unmount(t, m.Mnt)

	st, err := dax.Open(m.Dir, &dax.Options{MustExist: true})
	if err != nil {
		t.Fatalf("reopen after the kill: %v", err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		t.Fatalf("Check after the kill: %v", err)
	}
	got, err := st.Get("k")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < killBase || !bytes.Equal(got[:killBase], base) {
		t.Fatalf("the first %d bytes, fsync'd before any other write, did not survive (%d bytes)", killBase, len(got))
	}
	mu.Lock()
	defer mu.Unlock()
	checked := 0
	for s := range killSlots {
		if synced[s] < 0 {
			continue
		}
		off := killBase + s*killChunk
		if len(got) < off+killChunk {
			t.Fatalf("slot %d: file of %d bytes, but generation %d of it was fsync'd", s, len(got), synced[s])
		}
		// Each page holds the fsync'd generation or a later one the writer
		// started: a write cut by the kill may be torn, page by page.
		for p := 0; p < killChunk; p += 4096 {
			ok := false
			for g := synced[s]; g <= tried[s] && !ok; g++ {
				ok = bytes.Equal(got[off+p:off+p+4096], killPattern(s, g)[p:p+4096])
			}
			if !ok {
				t.Fatalf("slot %d page %d: neither generation %d (fsync'd) nor a later one up to %d", s, p/4096, synced[s], tried[s])
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no slot was fsync'd before the kill")
	}
	t.Logf("%d slots fsync'd before the kill; newest generations fsync'd %v, started %v", checked, synced, tried)
	st.Close()

	// Remounted, the file reads the same through the mount.
	m2 := startMountAt(t, mountConfig{}, m.Dir, m.Mnt)
	again, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(again, got) {
		t.Fatalf("after remount the file reads %d bytes (%v), the store held %d", len(again), err, len(got))
	}
	m2.Must("check")
	m2.Quit()
}
