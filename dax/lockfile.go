package dax

// One writer at a time per store directory: an advisory flock on DIR/LOCK
// that also records the writer's pid, so a second opener can say who holds
// it. Read-only opens share the lock and write nothing.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const lockFileName = "LOCK"

// lockDir takes the store directory's lock or returns an error wrapping
// ErrLocked that names the holder's pid when it is known. It waits for the
// lock as lockWait says.
func lockDir(ctx context.Context, dir string, wait time.Duration) (*os.File, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("daxstore: open lock file: %w", err)
	}
	if err := flockWait(ctx, f, dir, unix.LOCK_EX, wait); err != nil {
		return nil, err
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// lockDirShared takes the store directory's lock shared, for a read-only
// open: it opens DIR/LOCK read-only and neither creates nor writes it. A
// missing LOCK file means no read-write Open ever ran there; it returns a
// nil file then, and the journal's own lock still keeps a writer out.
func lockDirShared(ctx context.Context, dir string, wait time.Duration) (*os.File, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("daxstore: open lock file: %w", err)
	}
	if err := flockWait(ctx, f, dir, unix.LOCK_SH, wait); err != nil {
		return nil, err
	}
	return f, nil
}

// Backoff bounds of flockWait's polling.
const (
	lockPollMin = time.Millisecond
	lockPollMax = 50 * time.Millisecond
)

// lockBusyHook, when set (by tests only), runs once a waiting Open has
// found the lock held, before it waits.
var lockBusyHook func()

// flockWait takes the lock how on f, retrying for up to wait while another
// process holds it (Options.LockTimeout), or until ctx is done. On failure
// it closes f and returns flock's error, wrapping ErrLocked and naming the
// holder's pid, or ctx's error.
//
// It polls with LOCK_NB and a backoff that doubles from lockPollMin to
// lockPollMax rather than blocking in flock(2) without LOCK_NB: a blocked
// flock cannot be interrupted from Go, so a goroutine parked in it would
// outlive a timeout or a cancelled context, and might even take the lock
// after Open gave up. Polling leaves nothing behind, costs at most 20
// wakeups a second, and hands the lock over within lockPollMax of its
// release. Waiters are not served in order; for short CLI commands that
// is fine.
func flockWait(ctx context.Context, f *os.File, dir string, how int, wait time.Duration) error {
	if wait <= 0 {
		return flock(f, dir, how)
	}
	deadline := time.Now().Add(wait)
	pause := lockPollMin
	for tries := 0; ; tries++ {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if tries == 0 && lockBusyHook != nil {
			lockBusyHook()
		}
		left := time.Until(deadline)
		if !errors.Is(err, unix.EWOULDBLOCK) || left <= 0 {
			// One last try that also closes f and names the holder.
			if err := flock(f, dir, how); err != nil {
				return fmt.Errorf("%w (waited %v)", err, wait)
			}
			return nil
		}
		t := time.NewTimer(min(pause, left))
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return fmt.Errorf("daxstore: %s: waiting for the lock: %w", dir, ctx.Err())
		case <-t.C:
		}
		pause = min(2*pause, lockPollMax)
	}
}

// flock takes the lock how on f without waiting, or closes f and returns
// an error wrapping ErrLocked that names the writer's pid when it is known.
func flock(f *os.File, dir string, how int) error {
	err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
	if err == nil {
		return nil
	}
	f.Close()
	if !errors.Is(err, unix.EWOULDBLOCK) {
		return fmt.Errorf("daxstore: lock %s: %w", f.Name(), err)
	}
	// The pid is the last writer's: readers record none. Name it only if
	// that process still runs (a reader may hold the lock after it died).
	if pid := lockHolder(dir); pid > 0 && unix.Kill(pid, 0) != unix.ESRCH {
		return fmt.Errorf("daxstore: %s: %w (pid %d)", dir, ErrLocked, pid)
	}
	return fmt.Errorf("daxstore: %s: %w", dir, ErrLocked)
}

// lockHolder returns the pid recorded by the process that holds (or last
// held) the store directory, or 0 when none is recorded. ErrLocked names
// it; tests reach it through internal/testhooks.
func lockHolder(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, lockFileName))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// unlockDir releases the lock. Closing the descriptor drops the flock.
func unlockDir(f *os.File) error {
	if f == nil {
		return nil
	}
	return f.Close()
}
