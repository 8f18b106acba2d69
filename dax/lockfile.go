package dax

// One writer at a time per store directory: an advisory flock on DIR/LOCK
// that also records the writer's pid, so a second opener can say who holds
// it. Read-only opens share the lock and write nothing.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const lockFileName = "LOCK"

// lockDir takes the store directory's lock or returns an error wrapping
// ErrLocked that names the holder's pid when it is known.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("daxstore: open lock file: %w", err)
	}
	if err := flock(f, dir, unix.LOCK_EX); err != nil {
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
func lockDirShared(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("daxstore: open lock file: %w", err)
	}
	if err := flock(f, dir, unix.LOCK_SH); err != nil {
		return nil, err
	}
	return f, nil
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
