package journal

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/daxstore/daxstore/internal/faultfs"
)

// faultRound runs one journal through a fault: commits until the fault
// makes one fail, then checks that the journal failed cleanly and that a
// reopen after the fault finds every acknowledged batch.
func faultRound(t *testing.T, seed uint64, fault faultfs.Fault) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	fs := faultfs.New(16 << 10) // small memtables: flushes and compactions within a round
	dir := "/j"
	j, err := Open(dir, Options{FS: fs})
	if err != nil {
		t.Fatalf("seed %d: open: %v", seed, err)
	}
	acked := map[string]uint64{}
	var lastErr error
	pad := strings.Repeat("x", 200)
	warm := rng.IntN(200)
	for i := 0; i < 3000 && lastErr == nil; i++ {
		if i == warm {
			fs.Arm(fault)
		}
		b := j.NewBatch()
		name := fmt.Sprintf("k%05d-%s", i, pad)
		b.SetInode(Inode{Ino: uint64(i + 1), Key: name})
		if err := b.Commit(true); err != nil {
			lastErr = err
			break
		}
		acked[name] = uint64(i + 1)
	}
	if lastErr == nil {
		t.Logf("seed %d: %v never fired (%d injected)", seed, fault, fs.Injected())
	} else {
		if !errors.Is(lastErr, ErrFailed) {
			t.Fatalf("seed %d: %v: commit error %v does not wrap ErrFailed", seed, fault, lastErr)
		}
		if !errors.Is(lastErr, fault.Err) {
			t.Fatalf("seed %d: %v: commit error %v does not wrap %v", seed, fault, lastErr, fault.Err)
		}
		if strings.Contains(lastErr.Error(), "\n") {
			t.Fatalf("seed %d: error spans lines: %q", seed, lastErr)
		}
		b := j.NewBatch()
		b.SetInode(Inode{Ino: 1, Key: "after"})
		if err := b.Commit(true); !errors.Is(err, ErrFailed) {
			t.Fatalf("seed %d: commit after the failure: %v, want ErrFailed", seed, err)
		}
		// Give Pebble's goroutines every chance to spin; a failed journal
		// must not keep retrying its background work.
		for range 2000 {
			runtime.Gosched()
		}
		if n := j.g.bgErrors.Load(); n > 4 {
			t.Fatalf("seed %d: %v: %d background errors after the failure: Pebble keeps retrying", seed, fault, n)
		}
	}
	cerr := j.Close()
	if lastErr != nil && cerr == nil {
		t.Fatalf("seed %d: Close of a failed journal returned nil", seed)
	}
	fs.Disarm()
	j, err = Open(dir, Options{FS: fs})
	if err != nil {
		t.Fatalf("seed %d: %v: reopen after the fault: %v", seed, fault, err)
	}
	defer j.Close()
	st, err := j.Load()
	if err != nil {
		t.Fatalf("seed %d: load after the fault: %v", seed, err)
	}
	for name, ino := range acked {
		if st.Names[name] != ino {
			t.Fatalf("seed %d: %v: acknowledged name %.6s -> %d lost (have %d)", seed, fault, name, ino, st.Names[name])
		}
	}
}

// TestFaultFailsJournalCleanly injects each kind of fault at random points
// under a journal: the failing commit returns an error wrapping ErrFailed
// and the system error, the journal refuses later commits, Pebble stops its
// background retries, Close returns, and a reopen finds every acknowledged
// batch. Before the guard, the first of these faults ended the process.
func TestFaultFailsJournalCleanly(t *testing.T) {
	ops := []faultfs.Op{faultfs.Write, faultfs.Sync, faultfs.Create, faultfs.Rename, faultfs.AllOps}
	errnos := []syscall.Errno{syscall.ENOSPC, syscall.EIO, syscall.EACCES}
	rounds := 40
	if testing.Short() {
		rounds = 15
	}
	for seed := uint64(1); seed <= uint64(rounds); seed++ {
		rng := rand.New(rand.NewPCG(seed, 2))
		f := faultfs.Fault{Ops: ops[rng.IntN(len(ops))], Err: errnos[rng.IntN(len(errnos))], After: rng.IntN(40)}
		if rng.IntN(2) == 0 {
			f.Times = 1
		}
		faultRound(t, seed, f)
	}
}

// TestOpenFaultsFailCleanly injects faults while Open replays a journal
// whose write-ahead log holds enough to flush: Open either succeeds or
// returns an error wrapping the system error, never hangs or exits, and
// after the fault a reopen finds every batch.
func TestOpenFaultsFailCleanly(t *testing.T) {
	ops := []faultfs.Op{faultfs.Write, faultfs.Sync, faultfs.Create, faultfs.Rename, faultfs.AllOps}
	errnos := []syscall.Errno{syscall.ENOSPC, syscall.EIO, syscall.EACCES}
	refused := 0
	for seed := uint64(1); seed <= 30; seed++ {
		rng := rand.New(rand.NewPCG(seed, 3))
		fs := faultfs.New(16 << 10)
		j, err := Open("/j", Options{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		n := 50 + rng.IntN(200)
		for i := range n {
			b := j.NewBatch()
			b.SetInode(Inode{Ino: uint64(i + 1), Key: fmt.Sprintf("k%05d-%s", i, strings.Repeat("y", 200))})
			if err := b.Commit(true); err != nil {
				t.Fatal(err)
			}
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		f := faultfs.Fault{Ops: ops[rng.IntN(len(ops))], Err: errnos[rng.IntN(len(errnos))], After: rng.IntN(10)}
		fs.Arm(f)
		j, err = Open("/j", Options{FS: fs})
		if err != nil {
			if !errors.Is(err, f.Err) || !errors.Is(err, ErrFailed) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("seed %d: open with %v: %q, want one line wrapping ErrFailed and %v", seed, f, err, f.Err)
			}
			refused++
		} else {
			_ = j.Close()
		}
		fs.Disarm()
		j, err = Open("/j", Options{FS: fs})
		if err != nil {
			t.Fatalf("seed %d: reopen after %v: %v", seed, f, err)
		}
		st, err := j.Load()
		if err != nil {
			t.Fatalf("seed %d: load: %v", seed, err)
		}
		if len(st.Names) != n {
			t.Fatalf("seed %d: after %v: %d names, want %d", seed, f, len(st.Names), n)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d of 30 opens met their fault", refused)
}
