package dax

// One process at a time per store directory: an advisory flock on DIR/LOCK
// that also records the holder's pid, so a second opener can say who holds it.

import (
	"errors"
	"fmt"
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
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			if pid := LockHolder(dir); pid > 0 {
				return nil, fmt.Errorf("daxstore: %s: %w (pid %d)", dir, ErrLocked, pid)
			}
			return nil, fmt.Errorf("daxstore: %s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("daxstore: lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// LockHolder returns the pid recorded by the process that holds (or last
// held) the store directory, or 0 when none is recorded.
func LockHolder(dir string) int {
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
