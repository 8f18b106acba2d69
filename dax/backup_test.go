package dax

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// openCopy opens the backup in dir as a normal store and checks it.
func openCopy(t *testing.T, dir string) *Store {
	t.Helper()
	c, err := Open(dir, &Options{NoAdminSocket: true, MustExist: true})
	if err != nil {
		t.Fatalf("open the copy: %v", err)
	}
	t.Cleanup(func() { closeForce(c) })
	if err := c.Check(); err != nil {
		t.Fatalf("check the copy: %v", err)
	}
	return c
}

func TestBackupIdleStoreIsSparseAndEqual(t *testing.T) {
	const size = 64 << 20
	s := newStore(t, size, nil)
	want := map[string][]byte{}
	for i := range 40 {
		v := pattern(byte(i), 1+i*4096*3) // from inline to 120 blocks
		k := fmt.Sprintf("k/%02d", i)
		mustPut(t, s, k, v)
		want[k] = v
	}
	// A written but all-zero file: its blocks stay holes in the copy.
	f, err := s.Create("zeros")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 1<<20), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want["zeros"] = make([]byte, 1<<20)
	dst := filepath.Join(t.TempDir(), "copy")
	st, err := s.Backup(t0(), dst)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	t.Logf("backup: %+v", st)
	stats := mustStats(t, s)
	used := int64(stats.UsedBlocks) * testBS
	if st.Files != int64(len(want)) || st.RegionBytes != size/testBS*testBS {
		t.Fatalf("stats %+v: want %d files and a region of %d bytes", st, len(want), size)
	}
	if st.CopiedBytes > used-1<<20 || st.CopiedBytes < used-1<<20-int64(len(want))*testBS {
		t.Fatalf("copied %d bytes; used %d of which 1 MiB zeros", st.CopiedBytes, used)
	}
	var sys syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dst, "region"), &sys); err != nil {
		t.Fatal(err)
	}
	if sys.Size != size || sys.Blocks*512 > used+1<<20 {
		t.Fatalf("copy's region: size %d, %d bytes allocated; want size %d and at most about %d used", sys.Size, sys.Blocks*512, size, used)
	}
	c := openCopy(t, dst)
	if c.uuid != s.uuid {
		t.Fatalf("copy's uuid differs")
	}
	n := 0
	for fi, err := range c.Files("") {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if !bytes.Equal(mustGet(t, c, fi.Key), want[fi.Key]) {
			t.Fatalf("%q differs in the copy", fi.Key)
		}
	}
	if n != len(want) {
		t.Fatalf("copy holds %d keys, want %d", n, len(want))
	}
}

// TestBackupHoldsReplacedBlocks replaces, removes and punches keys after
// the checkpoint and fills the region with new data before the blocks are
// copied: without the hold the freed blocks are reused and the copy shows
// other keys' bytes.
func TestBackupHoldsReplacedBlocks(t *testing.T) {
	for _, noSync := range []bool{true, false} {
		t.Run(fmt.Sprintf("NoSync=%v", noSync), func(t *testing.T) {
			s := newStore(t, 4<<20, func(o *Options) { o.NoSync = noSync; o.AllocWait = -1 })
			old := map[string][]byte{}
			for i := range 8 {
				k := fmt.Sprintf("old/%d", i)
				old[k] = pattern(byte(10+i), 64<<10)
				mustPut(t, s, k, old[k])
			}
			var hookErr error
			backupCopyHook = func() {
				for i := range 8 {
					k := fmt.Sprintf("old/%d", i)
					switch i % 3 {
					case 0:
						hookErr = errors.Join(hookErr, s.Put(k, pattern(99, 64<<10)))
					case 1:
						hookErr = errors.Join(hookErr, s.Remove(k))
					case 2:
						f, err := s.Open(k)
						if err == nil {
							err = errors.Join(f.PunchHole(0, 64<<10), f.Close())
						}
						hookErr = errors.Join(hookErr, err)
					}
				}
				// Fill the region: every free block is taken, including
				// any freed above had they not been held.
				for i := 0; ; i++ {
					if err := s.Put(fmt.Sprintf("fill/%d", i), pattern(200, 64<<10)); err != nil {
						if !errors.Is(err, ErrNoSpace) {
							hookErr = errors.Join(hookErr, err)
						}
						break
					}
				}
				if held := s.backup.heldBlocks.Load(); held == 0 {
					hookErr = errors.Join(hookErr, errors.New("no block held during the copy"))
				}
				hookErr = errors.Join(hookErr, s.Check())
			}
			defer func() { backupCopyHook = nil }()
			dst := filepath.Join(t.TempDir(), "copy")
			st, err := s.Backup(t0(), dst)
			if err != nil || hookErr != nil {
				t.Fatalf("backup: %v; during the copy: %v", err, hookErr)
			}
			backupCopyHook = nil
			if s.backup.heldBlocks.Load() != 0 || st.HeldBlocks == 0 {
				t.Fatalf("held blocks after the backup %d, stats %+v", s.backup.heldBlocks.Load(), st)
			}
			c := openCopy(t, dst)
			for k, v := range old {
				if got := mustGet(t, c, k); !bytes.Equal(got, v) {
					t.Fatalf("%q in the copy is not its value at the checkpoint", k)
				}
			}
			// The held blocks went back: the store can use them again.
			if err := s.Put("after", pattern(5, 64<<10)); err != nil {
				t.Fatalf("put after the backup: %v", err)
			}
			mustCheck(t, s)
		})
	}
}

func TestBackupSkipsBusyBlocks(t *testing.T) {
	s := newStore(t, 8<<20, nil)
	mustPut(t, s, "a", pattern(1, 64<<10))
	f := mustOpen(t, s, "a")
	p := mustPin(t, f, 0, 64<<10, PinOptions{Label: "held"})
	mustPut(t, s, "a", pattern(2, 64<<10)) // the pinned blocks go busy
	busy := s.Busy()
	if len(busy) == 0 {
		t.Fatal("no busy blocks")
	}
	dst := filepath.Join(t.TempDir(), "copy")
	st, err := s.Backup(t0(), dst)
	if err != nil {
		t.Fatal(err)
	}
	if st.BusyBlocks != 16 {
		t.Fatalf("stats %+v: want 16 busy blocks", st)
	}
	r, err := os.Open(filepath.Join(dst, "region"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, b := range busy {
		buf := make([]byte, int64(b.Blocks)*testBS)
		if _, err := r.ReadAt(buf, int64(b.Start)*testBS); err != nil {
			t.Fatal(err)
		}
		if !allZero(buf) {
			t.Fatalf("busy blocks %d+%d were copied", b.Start, b.Blocks)
		}
	}
	c := openCopy(t, dst)
	if !bytes.Equal(mustGet(t, c, "a"), pattern(2, 64<<10)) {
		t.Fatal("copy of a differs")
	}
	if len(c.Busy()) != 0 {
		t.Fatal("the copy kept busy blocks")
	}
	p.Unpin()
	f.Close()
}

func TestBackupBadDestinationChangesNothing(t *testing.T) {
	s := newStore(t, 8<<20, nil)
	mustPut(t, s, "a", pattern(1, 10000))
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "x"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := s.Backup(t0(), full)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("backup into a non-empty directory: %v", err)
	}
	if ents, _ := os.ReadDir(full); len(ents) != 1 {
		t.Fatalf("the directory changed: %v", ents)
	}
	file := filepath.Join(full, "x")
	if _, err := s.Backup(t0(), file); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("backup onto a file: %v", err)
	}
	if _, err := s.Backup(t0(), s.Dir()); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("backup onto the store itself: %v", err)
	}
	ro := t.TempDir()
	if err := os.Chmod(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if _, err := s.Backup(t0(), ro); !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("backup into an unwritable directory: %v", err)
		}
	}
	// Unwritable even for root: a path below a regular file.
	if _, err := s.Backup(t0(), filepath.Join(file, "sub")); err == nil || errors.Is(err, fs.ErrExist) {
		t.Fatalf("backup below a file: %v", err)
	}
	if ents, _ := os.ReadDir(full); len(ents) != 1 {
		t.Fatalf("the directory changed: %v", ents)
	}
	if s.backup.holds != 0 {
		t.Fatal("a failed backup left its hold")
	}
	mustCheck(t, s)
}

func TestBackupCancelRemovesThePartialCopy(t *testing.T) {
	s := newStore(t, 16<<20, nil)
	for i := range 10 {
		mustPut(t, s, fmt.Sprintf("k%d", i), pattern(byte(i), 1<<20))
	}
	parent := t.TempDir()
	for _, existing := range []bool{false, true} {
		dst := filepath.Join(parent, "new", "copy")
		if existing {
			dst = t.TempDir()
		}
		ctx, cancel := context.WithCancel(t0())
		backupCopyHook = cancel // cancel between the journal and the blocks
		_, err := s.Backup(ctx, dst)
		backupCopyHook = nil
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled backup: %v", err)
		}
		if existing {
			if ents, _ := os.ReadDir(dst); len(ents) != 0 {
				t.Fatalf("cancelled backup left %v", ents)
			}
		} else if ents, _ := os.ReadDir(parent); len(ents) != 0 {
			t.Fatalf("cancelled backup left %v", ents)
		}
	}
	if s.backup.holds != 0 || s.backup.heldBlocks.Load() != 0 {
		t.Fatal("a cancelled backup left its hold")
	}
	mustCheck(t, s)
}

// TestBackupUnderStress takes a backup while writers Put, overwrite in
// place, punch, remove and pin, then opens the copy and verifies every key
// acknowledged before the backup began: its value is one it had at or after
// that moment, whole.
func TestBackupUnderStress(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	s := newStore(t, 32<<20, func(o *Options) { o.NoSync = false })
	const keys = 64
	// value encodes key and version, so a torn or foreign value is seen.
	value := func(k, v int) []byte {
		n := 32 + (k*7919+v*104729)%(48<<10) // room for the header
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(k*31+v*17+i%241) | 1
		}
		copy(b, fmt.Sprintf("%d:%d:", k, v))
		return b
	}
	var acked [keys]atomic.Int64 // latest version acknowledged per key
	for k := range keys {
		mustPut(t, s, fmt.Sprintf("v/%d", k), value(k, 0))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var werr error
	report := func(err error) {
		mu.Lock()
		werr = errors.Join(werr, err)
		mu.Unlock()
	}
	var version atomic.Int64
	// The slowest Put that overlapped the backup, for the log only: a
	// writer's view of the stall, sync and scheduling included.
	var during atomic.Bool
	var slowest atomic.Int64
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := rng.IntN(keys)
				// Each key belongs to one writer, so versions per key rise.
				if k%3 != w {
					k = k - k%3 + w
					if k >= keys {
						k = w
					}
				}
				switch rng.IntN(5) {
				case 0, 1:
					v := int(version.Add(1))
					began, overlap := time.Now(), during.Load()
					err := s.Put(fmt.Sprintf("v/%d", k), value(k, v))
					if overlap = overlap || during.Load(); overlap {
						for d := int64(time.Since(began)); ; {
							old := slowest.Load()
							if d <= old || slowest.CompareAndSwap(old, d) {
								break
							}
						}
					}
					if err != nil && !errors.Is(err, ErrNoSpace) {
						report(err)
						return
					} else if err == nil {
						acked[k].Store(int64(v))
					}
				case 2: // churn: a scratch file written, punched, removed
					f, err := s.Create(fmt.Sprintf("s/%d/%d", w, i))
					if err != nil {
						report(err)
						return
					}
					_, err = f.WriteAt(pattern(byte(i), 32<<10), 0)
					if err == nil {
						err = f.PunchHole(4096, 8192)
					}
					if err := errors.Join(err, f.Close(), s.Remove(fmt.Sprintf("s/%d/%d", w, i))); err != nil && !errors.Is(err, ErrNoSpace) {
						report(err)
						return
					}
				case 3: // a pin across a Put over the key
					f, err := s.Open(fmt.Sprintf("v/%d", k))
					if err != nil {
						report(err)
						return
					}
					p, err := f.Pin(0, 1, PinOptions{Label: "stress"})
					if err == nil {
						v := int(version.Add(1))
						if perr := s.Put(fmt.Sprintf("v/%d", k), value(k, v)); perr == nil {
							acked[k].Store(int64(v))
						} else if !errors.Is(perr, ErrNoSpace) {
							report(perr)
						}
						p.Unpin()
					}
					f.Close()
				case 4: // in-place overwrites of a key of the writer's own,
					// not verified: the copy does not promise them whole
					f, err := s.Open(fmt.Sprintf("w/%d", w))
					if errors.Is(err, ErrNotFound) {
						f, err = s.Create(fmt.Sprintf("w/%d", w))
					}
					if err != nil {
						report(err)
						return
					}
					_, err = f.WriteAt(pattern(byte(i), 16<<10), int64(rng.IntN(4))*4096)
					if err := errors.Join(err, f.Close()); err != nil && !errors.Is(err, ErrNoSpace) {
						report(err)
						return
					}
				}
			}
		}()
	}
	// Let the writers run a little before and during the backup.
	for range 50 {
		if err := s.Put("tick", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	var before [keys]int64
	for k := range keys {
		before[k] = acked[k].Load()
	}
	dst := filepath.Join(t.TempDir(), "copy")
	during.Store(true)
	st, err := s.Backup(t0(), dst)
	during.Store(false)
	close(stop)
	wg.Wait()
	if err != nil || werr != nil {
		t.Fatalf("backup: %v; writers: %v", err, werr)
	}
	t.Logf("backup under load: commit lock held %v for the checkpoint; slowest Put during the backup %v; %d bytes copied, %d blocks held, %d files, took %v",
		st.Pause, time.Duration(slowest.Load()), st.CopiedBytes, st.HeldBlocks, st.Files, st.Elapsed)
	mustCheck(t, s)
	c := openCopy(t, dst)
	for k := range keys {
		got := mustGet(t, c, fmt.Sprintf("v/%d", k))
		var kk, v int
		if _, err := fmt.Sscanf(string(got[:min(len(got), 24)]), "%d:%d:", &kk, &v); err != nil || kk != k {
			t.Fatalf("seed %d: key %d in the copy holds %q...", seed, k, got[:min(len(got), 24)])
		}
		if !bytes.Equal(got, value(k, v)) {
			t.Fatalf("seed %d: key %d version %d is torn in the copy", seed, k, v)
		}
		if int64(v) < before[k] {
			t.Fatalf("seed %d: key %d has version %d in the copy, older than %d acknowledged before the backup", seed, k, v, before[k])
		}
	}
}

// TestBackupStoppedByClose closes the store in the middle of a backup: Close
// returns nil without waiting for the copy, and the backup fails with
// ErrClosed and removes its partial copy.
func TestBackupStoppedByClose(t *testing.T) {
	s := newStore(t, 8<<20, nil)
	mustPut(t, s, "a", pattern(1, 1<<20))
	var closeErr error
	backupCopyHook = func() { closeErr = s.Close() }
	defer func() { backupCopyHook = nil }()
	dst := filepath.Join(t.TempDir(), "copy")
	_, err := s.Backup(t0(), dst)
	if !errors.Is(err, ErrClosed) || closeErr != nil {
		t.Fatalf("backup: %v; close: %v", err, closeErr)
	}
	if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the partial copy is still there: %v", err)
	}
}
