// Package journal persists daxstore's metadata - meta, files, free and busy
// extents - in Pebble. It is the only package that imports Pebble. Every
// record is versioned and checksummed, and every metadata operation is one
// atomic batch.
//
// # Format 2
//
// A file is one record under its key, holding its inode and, for a file of
// at most MaxInlineExtents extents, the extents (larger files keep theirs
// in extent records). Free space is a checkpoint plus one log record per
// commit (Batch.LogFree, Batch.CheckpointFree). So the journal is read in
// parts: LoadCore reads what opening a store needs (meta, free space, busy
// extents), whose size does not grow with the number of files; LookupInode
// reads one file; ScanInodes pages through the files of a prefix in key
// order; Load reads everything, from one snapshot, for checks and tests.
// Upgrade converts a format 1 journal (a name, an inode and one record per
// extent for every file).
//
// A file may carry attributes (mode, owner, access and change times) at
// the end of its record (Inode.HasAttr); one without them is written as
// before. Directories made explicit have records of their own ('D' + path,
// see Dir), read with LookupDir and ScanDirs.
//
// # Faults
//
// An I/O error on the journal's files never ends or crashes the process and
// never leaves Pebble spinning: the operation that meets it returns an error
// wrapping ErrFailed and the system error (errors.Is(err, syscall.ENOSPC) on
// a full filesystem), the journal refuses every later change with the same
// error, Close returns, and an Open after the fault is gone recovers every
// batch whose Commit (or wait) returned nil. Pebble prints nothing. Pebble
// cannot be shut down safely once it met such a fault (its fatal-error
// paths leave its version state half updated), so Close of a failed
// journal leaves the DB in memory with its goroutines parked, never to
// touch the disk again, and releases the directory lock: one DB's memory
// and descriptors stay until the process exits.
//
// # Durability and damage
//
// What is detected, and what is not:
//
//   - Tables (*.sst) and the manifest are checksummed: a flipped byte or a
//     truncated table is found by Open or Load (or a later read) and
//     reported as one line wrapping pmem.ErrCorrupt
//     (TestCorruptTableIsOneLine). Load decodes and checks every record.
//   - Close moves every batch out of the write-ahead log into tables, so
//     damage to the log of a cleanly closed journal (a flipped byte,
//     truncation) loses nothing (TestLogDamageAfterCleanCloseLosesNothing).
//   - After a crash, the newest batches live only in the write-ahead log.
//     Pebble stops its replay at the first damaged record, because a
//     damaged record there is what a write torn by the crash looks like; a
//     power cut may also keep unsynced blocks out of order, so damage
//     cannot be told from a tear. A flipped byte in the log, or a truncated
//     log, after a crash therefore drops the batches from the damaged one
//     on: what Open finds is still a prefix of the committed batches, each
//     whole, never a gap or a changed batch
//     (TestLogDamageAfterCrashLeavesAPrefix). The journal alone cannot see
//     the loss; its caller can, with commit marks: Batch.SetMark puts a
//     number in a batch, State.Mark returns the last one, and a caller that
//     keeps the mark of a durable batch elsewhere (daxstore keeps it in its
//     region, as the seal) knows on the next Open whether the log lost it.
//     Loss of batches after the last mark so kept stays unseen.
//
// This file holds the Journal itself: opening, closing and the sync policy.
package journal

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/daxstore/daxstore/internal/memfs"
	"github.com/daxstore/daxstore/pmem"
)

// ErrClosed is returned by every method of a Journal after Close, including a
// second Close. It wraps os.ErrClosed.
var ErrClosed = fmt.Errorf("journal: %w", os.ErrClosed)

// ErrLocked is returned by Open when the directory is already open in another
// Journal, in this process or another one.
var ErrLocked = errors.New("journal: directory is locked by another user")

// Pebble sizing. A journal holds metadata only and is read in full once, at
// Load; afterwards it is write-mostly. Many stores may be open at once in a
// test binary on a small machine, so the memory footprint stays small.
//
// Every record of a commit is a skiplist insert into the memtable, on the
// committing goroutine, and its cost grows with the memtable: a 1 MiB
// memtable makes a synced 4 KiB Put of daxstore 5-10% faster than 4 MiB
// (daxstore bench), and still holds a few thousand operations, so flushes
// stay rare and small.
const (
	memTableSize = 1 << 20 // bytes per memtable; Pebble keeps up to 2 before stalling writes
	cacheSize    = 4 << 20 // bytes of block cache, owned by the Pebble DB
	maxOpenFiles = 256     // sstables kept open in Pebble's file cache
)

// tuneForLookups sets Pebble up for what the store asks of it once files
// stay in the journal: a point read of one key's record on every use of a
// file not in memory, and writes of small records. Metadata records are
// small and compress poorly, and decompressing a block on every lookup
// cost a fifth of a random overwrite's CPU, so tables are not compressed.
// A Bloom filter on every level lets a lookup skip the tables that do not
// hold its key, and answers a lookup of a missing key (every Put of a new
// key makes one) without reading a data block.
func tuneForLookups(po *pebble.Options) {
	po.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	filter := bloom.FilterPolicy(10)
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = filter
	}
	po.Filters = map[string]pebble.FilterPolicy{filter.Name(): filter}
}

// Options configures Open. The zero value is safe: every commit asked to sync
// waits for the WAL fsync, on the real filesystem.
type Options struct {
	// NoSync makes commits that ask to sync return without waiting for the
	// write-ahead log to reach stable storage. THIS TRADES DURABILITY FOR
	// SPEED: a power cut or kernel crash may lose the most recently
	// acknowledged operations, and a process crash may lose those Pebble had
	// not yet handed to the kernel (a window of microseconds). What survives
	// is always a prefix of the committed batches, each batch whole: the
	// journal is never corrupted, because Pebble's WAL is checksummed and a
	// torn tail is discarded on recovery.
	NoSync bool

	// FS selects the filesystem. nil means the real filesystem. The
	// module's tests pass an in-memory one that simulates power cuts
	// (internal/memfs) or fails on demand (internal/faultfs).
	FS FS

	// ReadOnly opens an existing journal for reading only: Open creates,
	// writes, renames and removes nothing, not even the LOCK file (Pebble
	// replays the write-ahead log into memory and never flushes it), and
	// every Commit fails. Readers share the directory with each other but
	// not with a writer: either side gets ErrLocked. A directory that is
	// missing or holds no journal gives ErrNotExist.
	ReadOnly bool
}

// FS is a filesystem for the journal other than the real one: a
// *memfs.FS, or test plumbing that wraps one. VFS returns the Pebble filesystem to use.
// An FS may also have a method MemTableSize() int returning the bytes per
// memtable to use instead of the default; small memtables make Pebble flush
// and compact often, which is what fault-injection tests want to reach.
type FS interface {
	// VFS returns the Pebble filesystem the journal runs on.
	VFS() vfs.FS
}

// Journal is an open metadata journal. Its methods are safe for concurrent
// use; Batches are not (see Batch).
//
// A journal whose files cannot be written (a full or failing filesystem, a
// directory that became unwritable) fails instead of taking the process
// down: the operation that met the fault returns an error wrapping
// ErrFailed (and the system error, such as syscall.ENOSPC), every later
// change returns the same error, and Pebble's background work stops. Close
// then returns without hanging, and a later Open of the directory, once the
// fault is gone, finds every batch whose Commit or wait returned nil.
type Journal struct {
	dir    string
	noSync bool
	g      *guard // the journal's failure state, shared with Pebble's hooks

	// mu guards db and lock against Close: every operation that touches the
	// DB holds it shared for its whole duration (a synced Commit includes its
	// fsync), and Close holds it exclusively, so Close waits for operations in
	// flight and no operation ever reaches a closed Pebble DB.
	mu      sync.RWMutex
	db      *pebble.DB   // nil once closed
	lock    *pebble.Lock // the directory lock; released after db is closed
	release func()       // ends this Journal's claimDir claim (a no-op on a memfs.FS)
	dirty   atomic.Bool  // a batch was applied since Open: Close flushes
}

// Open opens the journal in dir, creating the directory (mode 0755, parents
// included) and an empty journal if they are missing (but see
// Options.ReadOnly). Pebble replays its
// write-ahead log, so every batch whose commit returned after a sync is
// present. Open fails with an error wrapping ErrLocked if dir is open
// elsewhere, and with one wrapping pmem.ErrCorrupt if Pebble finds its files
// corrupt. Pebble prints nothing, ever: its errors reach the caller as errors
// (see Journal on I/O faults).
func Open(dir string, opts Options) (*Journal, error) {
	if dir == "" {
		return nil, errors.New("journal: open: empty directory name")
	}
	wrap := func(err error) error {
		if pebble.IsCorruptionError(err) && !errors.Is(err, pmem.ErrCorrupt) {
			return fmt.Errorf("journal: open %s: %w: %s", dir, pmem.ErrCorrupt, flatten(err))
		}
		return fmt.Errorf("journal: open %s: %w", dir, err)
	}

	if isNilMemFS(opts.FS) {
		opts.FS = nil // a nil *memfs.FS means the real filesystem, as a nil FS does
	}
	fs := vfs.Default
	memTable := memTableSize
	if opts.FS != nil {
		fs = opts.FS.VFS()
		if m, ok := opts.FS.(interface{ MemTableSize() int }); ok && m.MemTableSize() > 0 {
			memTable = m.MemTableSize()
		}
	}
	prepare := createDir
	if opts.ReadOnly {
		prepare = checkJournalDir
	}
	if err := prepare(fs, dir); err != nil {
		return nil, wrap(err)
	}
	release := func() {}
	if opts.FS == nil {
		r, err := claimDir(dir, opts.ReadOnly)
		if err != nil {
			return nil, wrap(err)
		}
		release = r
	}
	lock, err := lockDirectory(dir, fs, opts)
	if err != nil {
		release()
		if lockHeld(err) {
			return nil, wrap(fmt.Errorf("%w: %w", ErrLocked, err))
		}
		return nil, wrap(err)
	}

	g := newGuard(dir)
	po := &pebble.Options{
		Lock:               lock,
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       uint64(memTable),
		// Pebble stalls writes while this many memtables' worth of bytes
		// wait for a flush, or while level 0 holds this many tables. A
		// stalled commit waits inside Pebble until a flush or compaction
		// succeeds, so if that work then fails for good the commit (and
		// Close behind it) would wait forever. Thresholds far above
		// Pebble's 2 and 12 mean a stall needs a backlog of many flushes
		// or compactions when the fault strikes; a fault fails the
		// journal at once and no later commit enters Pebble. The cost is
		// memory under a flush backlog: at most 16 memtables.
		MemTableStopWritesThreshold: 16,
		L0StopWritesThreshold:       64,
		CacheSize:                   cacheSize,
		MaxOpenFiles:                maxOpenFiles,
		ReadOnly:                    opts.ReadOnly,
		Logger:                      guardLogger{g},
		EventListener:               g.listener(),
		// Every call goes through the guard. Setting FS also skips
		// Pebble's disk-health wrapper, which only logs slow disks.
		FS: &guardFS{FS: fs, g: g},
	}
	tuneForLookups(po)
	g.opening.Store(true)
	db, err := pebble.Open(dir, po)
	g.opening.Store(false)
	if ferr := g.err(); ferr != nil {
		// A fault the guard hid from Pebble: what Pebble holds may not
		// be what the disk holds. An opened DB is left as it is, as Close
		// leaves a failed journal's (see there), and its reference on the
		// directory lock is dropped.
		if err == nil {
			_ = lock.Close()
		}
		err = ferr
	} else if err != nil {
		g.beginClose() // goroutines of a half-open DB may be parked
	}
	if err != nil {
		_ = lock.Close()
		release()
		if opts.ReadOnly && errors.Is(err, pebble.ErrDBDoesNotExist) {
			err = ErrNotExist
		}
		return nil, wrap(err)
	}
	return &Journal{dir: dir, noSync: opts.NoSync, g: g, db: db, lock: lock, release: release}, nil
}

// isNilMemFS reports whether fs is a nil *memfs.FS, which means the real
// filesystem, as a nil FS does.
func isNilMemFS(fs FS) bool {
	m, ok := fs.(*memfs.FS)
	return ok && m == nil
}

// closeDB closes a Pebble DB that may have met a fault. Pebble's state after
// a fault it considers fatal may trip its own checks; a panic there becomes
// an error, so that Close always returns.
func closeDB(db *pebble.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pebble close: %v", r)
		}
	}()
	return db.Close()
}

// flatten returns err's message on one line. Pebble's corruption errors end
// in a line naming their marker ("<corruption detail carrier>") and format
// with stacks under %+v; a caller needs the message only.
func flatten(err error) string {
	msg := strings.ReplaceAll(err.Error(), "<corruption detail carrier>", "")
	return strings.Join(strings.Fields(msg), " ")
}

// createDir creates dir and its missing parents, then syncs every directory
// that gained an entry, so that the new directory survives a power cut.
func createDir(fs vfs.FS, dir string) error {
	if _, err := fs.Stat(dir); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// Collect the parents between dir and its closest existing ancestor
	// (included): those are the directories whose listing changes.
	var parents []string
	for p := fs.PathDir(dir); ; p = fs.PathDir(p) {
		parents = append(parents, p)
		if fs.PathDir(p) == p {
			break
		}
		if _, err := fs.Stat(p); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, p := range parents {
		d, err := fs.OpenDir(p)
		if err != nil {
			return err
		}
		serr := d.Sync()
		cerr := d.Close()
		if err := errors.Join(serr, cerr); err != nil {
			return fmt.Errorf("sync directory %s: %w", p, err)
		}
	}
	return nil
}

// lockHeld reports whether a LockDirectory error means someone else holds
// the lock, as opposed to a failure to create the lock file.
func lockHeld(err error) bool {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return false // creating the LOCK file failed
	}
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) ||
		err.Error() == "lock held by current process"
}

// Dir returns the directory the journal was opened in.
func (j *Journal) Dir() string { return j.dir }

// Close waits for commits in flight, then moves every batch from the
// write-ahead log into checksummed tables and closes Pebble: every batch
// applied before Close is durable once Close returns nil, and none of them
// depends on the log any more, so damage to the log after a clean Close
// loses nothing (see Durability in the package documentation). A second
// Close returns an error wrapping ErrClosed, and so does every other method
// after Close. Close of a failed journal returns its failure, after
// releasing everything: the directory can be opened again at once.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.db == nil {
		return fmt.Errorf("journal: close %s: %w", j.dir, ErrClosed)
	}
	if j.dirty.Load() && j.g.err() == nil {
		j.flush()
	}
	var err error
	if j.g.err() == nil {
		j.g.beginClose()
		err = closeDB(j.db)
	} else {
		// Drop the reference the left-behind DB holds on the directory
		// lock (it never closes), so that the Close below releases it.
		_ = j.lock.Close()
	}
	// A failed journal's DB is left as it is, with its goroutines parked in
	// the frozen filesystem, where they never touch the disk again. Pebble
	// treats a failed log or manifest write as fatal and leaves its
	// in-memory version state half updated (version_set.go, logAndApply):
	// waking its goroutines for a Close runs them into that state, which
	// can panic on a goroutine no recover reaches. The cost is the failed
	// DB's memory and descriptors until the process exits; the directory
	// lock is released below, so a reopen in the same process works.
	j.db = nil
	if lerr := j.lock.Close(); lerr != nil && err == nil {
		err = lerr
	}
	j.lock = nil
	j.release()
	if ferr := j.g.err(); ferr != nil {
		// Pebble's complaints about the state the fault left are noise
		// next to the fault.
		return fmt.Errorf("journal: close: %w", ferr)
	}
	if err != nil {
		return fmt.Errorf("journal: close %s: %w", j.dir, err)
	}
	return nil
}

// flush moves the memtable into tables and waits for that, or for a fault.
// It runs under commitGuard because it rotates the write-ahead log as a
// commit does; a fault is left for Close to report.
func (j *Journal) flush() {
	var done <-chan struct{}
	err := commitGuard(func() error {
		var err error
		done, err = j.db.AsyncFlush()
		return err
	})
	if err != nil || done == nil {
		return
	}
	select {
	case <-done:
	case <-j.g.failCh: // a failed flush is retried until Close: do not wait for it
	}
}

// Failed returns the journal's failure (an error wrapping ErrFailed), or nil
// while it is healthy.
func (j *Journal) Failed() error { return j.g.err() }

func (j *Journal) loadError(err error) error {
	if pebble.IsCorruptionError(err) {
		return fmt.Errorf("journal: load %s: %w: %s", j.dir, pmem.ErrCorrupt, flatten(err))
	}
	return fmt.Errorf("journal: load %s: %w", j.dir, err)
}
