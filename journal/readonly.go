// This file holds what a read-only journal needs that Pebble does not give:
// a directory lock that writes nothing, and the in-process bookkeeping that
// keeps POSIX record locks from being lost.

package journal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/sys/unix"
)

// ErrNotExist is returned by a read-only Open when the directory holds no
// journal (it is missing, empty, or holds no Pebble database). It wraps
// fs.ErrNotExist.
var ErrNotExist = fmt.Errorf("journal: no journal here: %w", fs.ErrNotExist)

// claims records which journal directories this process has open, keyed by
// absolute path: -1 for a writer, n > 0 for n readers. A read-only Journal
// locks with a POSIX read lock (fcntl F_RDLCK), and POSIX record locks
// belong to the process: a second lock on the same file by this process
// would convert Pebble's write lock instead of conflicting with it, and
// closing any descriptor of the file would drop it. So conflicts inside the
// process are settled here, before any lock file is opened
// (TestReadOnlyOpenConflictsInsideTheProcess).
var claims struct {
	sync.Mutex
	dirs map[string]int // protected by the mutex
}

// claimDir registers dir as open for reading or writing in this process and
// returns the function that unregisters it. Readers share; a writer is
// alone.
func claimDir(dir string, readOnly bool) (release func(), err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	claims.Lock()
	defer claims.Unlock()
	if claims.dirs == nil {
		claims.dirs = make(map[string]int)
	}
	n := claims.dirs[abs]
	if n < 0 || (n > 0 && !readOnly) {
		return nil, fmt.Errorf("%w: open in this process", ErrLocked)
	}
	if readOnly {
		claims.dirs[abs] = n + 1
	} else {
		claims.dirs[abs] = -1
	}
	return func() {
		claims.Lock()
		defer claims.Unlock()
		if claims.dirs[abs] > 1 {
			claims.dirs[abs]--
		} else {
			delete(claims.dirs, abs)
		}
	}, nil
}

// checkJournalDir fails with ErrNotExist unless dir is a directory, so that
// a read-only Open never creates one.
func checkJournalDir(fsys vfs.FS, dir string) error {
	fi, err := fsys.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return ErrNotExist
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory: %w", dir, ErrNotExist)
	}
	return nil
}

// sharedLockFS is an FS whose Lock takes a shared lock without writing:
// Pebble's own Lock opens the LOCK file with O_CREATE|O_TRUNC, which bumps
// its modification time and fails where the user may not write. Only
// pebble.LockDirectory sees this FS.
type sharedLockFS struct{ vfs.FS }

// Lock takes a POSIX read lock on name, opened read-only. Pebble's writers
// hold a write lock on the same file, so a reader and a writer in different
// processes exclude each other (claimDir settles the same process). A
// missing LOCK file means no Pebble ever opened the directory: there is
// then nothing to lock against, and Pebble's read-only open reports that
// no database exists.
func (sharedLockFS) Lock(name string) (io.Closer, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nopCloser{}, nil
	}
	if err != nil {
		return nil, err
	}
	spec := unix.Flock_t{Type: unix.F_RDLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &spec); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// lockDirectory takes the directory lock for Open: Pebble's exclusive lock
// for a writer; for a reader on the real filesystem, the shared lock of
// sharedLockFS. A memfs.FS keeps its locks in memory, so a reader there takes
// the exclusive in-memory lock, which writes nothing that outlives it.
func lockDirectory(dir string, fsys vfs.FS, opts Options) (*pebble.Lock, error) {
	if opts.ReadOnly && opts.FS == nil {
		return pebble.LockDirectory(dir, sharedLockFS{fsys})
	}
	return pebble.LockDirectory(dir, fsys)
}
