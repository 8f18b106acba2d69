// This file keeps Pebble from exiting, panicking or spinning on an I/O
// error. Pebble treats a failed write of its log or manifest as fatal: it
// calls Logger.Fatalf (which by default exits the process), panics, or - for
// a failed flush or compaction - reports a background error and retries at
// once, forever. A library must instead turn the fault into an error its
// caller sees. The guard records the journal's first I/O error as a sticky
// failure, and from then on freezes the journal's files, as a process exit
// would: nothing Pebble does afterwards reaches the disk, so what a reopen
// finds is exactly what was on disk when the fault struck.

package journal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrFailed is wrapped by every error a Journal returns after a write, sync,
// create or rename of its files failed, or after Pebble reported a fatal or
// background error. The failed journal refuses every further change: what
// Pebble holds in memory may be ahead of the disk. Close it and open it
// again to recover every batch whose Commit or wait returned nil. The
// error also wraps the system error behind the failure where there is one,
// so errors.Is(err, syscall.ENOSPC) tells a full filesystem apart.
var ErrFailed = errors.New("journal failed after an I/O error; reopen it")

// failure is a journal's sticky error: one line of text, ErrFailed, and the
// errno that caused it if any. Pebble's errors carry stacks and redaction
// markers in their formatting; the failure keeps only the message.
type failure struct {
	msg   string
	errno syscall.Errno // 0 when the cause was not a system error
}

func (f *failure) Error() string { return f.msg }

func (f *failure) Unwrap() []error {
	if f.errno != 0 {
		return []error{ErrFailed, f.errno}
	}
	return []error{ErrFailed}
}

func newFailure(dir, what string, err error) *failure {
	f := &failure{msg: fmt.Sprintf("journal %s: %v: %s", dir, ErrFailed, firstLine(what))}
	if err != nil {
		f.msg += ": " + firstLine(err.Error())
		errors.As(err, &f.errno)
	}
	return f
}

// firstLine cuts s at its first line break: Pebble appends stacks to some
// messages.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// guard is the per-journal failure state shared by the logger, the event
// listener and the filesystem wrapper.
type guard struct {
	dir     string
	failed  atomic.Pointer[failure] // the first failure; nil while healthy
	failCh  chan struct{}           // closed when failed is set
	opening atomic.Bool             // pebble.Open has not returned yet
	closing atomic.Bool             // Close began: parked goroutines give up
	release chan struct{}           // closed when closing is set
	once    sync.Once               // closes release

	// Counters for tests: they prove that a failed journal does not spin.
	bgErrors atomic.Int64 // background errors Pebble reported
	parked   atomic.Int64 // goroutines parked in the filesystem now
}

func newGuard(dir string) *guard {
	return &guard{dir: dir, release: make(chan struct{}), failCh: make(chan struct{})}
}

// fail records f unless a failure was recorded already, and returns the
// journal's failure.
func (g *guard) fail(f *failure) *failure {
	if g.failed.CompareAndSwap(nil, f) {
		close(g.failCh)
		return f
	}
	return g.failed.Load()
}

// err returns the journal's failure, or nil.
func (g *guard) err() error {
	if f := g.failed.Load(); f != nil {
		return f
	}
	return nil
}

// beginClose releases every goroutine parked in the filesystem; from now on
// a refused call returns its error at once.
func (g *guard) beginClose() {
	g.once.Do(func() {
		g.closing.Store(true)
		close(g.release)
	})
}

// The marker frame. Whether a call into Pebble came from a commit is decided
// by looking for commitGuard on the current goroutine's stack; Pebble's own
// goroutines (flush, compaction, the log writer) do not carry it. The stack
// is only walked on an error or once the journal failed.
var commitEntry = reflect.ValueOf(commitGuard).Pointer()

// fatalPanic carries a Fatalf raised on a commit's goroutine up to
// commitGuard, which returns it as an error.
type fatalPanic struct{ f *failure }

// commitGuard runs fn, a commit into Pebble, and turns a Fatalf raised on
// this goroutine into fn's error. Pebble's commit path calls Fatalf when a
// commit fails and would report success if Fatalf returned; panicking there
// is safe because Pebble holds none of its locks at that point. Other panics
// pass through.
//
//go:noinline
func commitGuard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			fp, ok := r.(fatalPanic)
			if !ok {
				panic(r)
			}
			err = fp.f
		}
	}()
	return fn()
}

// inCommit walks the current goroutine's stack for commitGuard.
func inCommit() bool {
	pcs := make([]uintptr, 64)
	for skip := 2; ; skip += len(pcs) {
		n := runtime.Callers(skip, pcs)
		for _, pc := range pcs[:n] {
			f := runtime.FuncForPC(pc - 1)
			if f == nil {
				continue
			}
			if f.Entry() == commitEntry {
				return true
			}
		}
		if n < len(pcs) {
			return false
		}
	}
}

// guardLogger is Pebble's logger. It is silent: informational messages are
// dropped, non-fatal errors are left to the caller's error (Pebble retries
// or reports those itself), and Fatalf fails the journal instead of ending
// the process.
type guardLogger struct{ g *guard }

func (guardLogger) Infof(string, ...any) {}

func (guardLogger) Errorf(string, ...any) {}

// Fatalf records the failure. On a commit's goroutine it panics to
// commitGuard, since Pebble's commit path would otherwise report success. On
// Pebble's own goroutines and in Open it returns: Pebble's code there returns
// the error after Fatalf, often with its mutex held, so parking or panicking
// would deadlock Close; the frozen filesystem keeps whatever Pebble does next
// off the disk, and parks it at its next attempt to create a file.
func (l guardLogger) Fatalf(format string, args ...any) {
	nf := newFailure(l.g.dir, "pebble: "+fmt.Sprintf(format, args...), nil)
	for _, a := range args {
		if err, ok := a.(error); ok && errors.As(err, &nf.errno) {
			break
		}
	}
	f := l.g.fail(nf)
	if inCommit() {
		panic(fatalPanic{f})
	}
}

// listener returns the journal's Pebble event listener.
func (g *guard) listener() *pebble.EventListener {
	return &pebble.EventListener{
		// A failed flush or compaction: Pebble retries it at once. The
		// journal fails, and the retry parks in the frozen filesystem.
		BackgroundError: func(err error) {
			g.bgErrors.Add(1)
			g.fail(newFailure(g.dir, "pebble background error", err))
		},
		// Pebble's default exits the process. The read that found the
		// corruption returns it as an error; nothing to add here.
		DataCorruption: func(pebble.DataCorruptionInfo) {},
	}
}

// guardFS wraps the journal's filesystem. While the journal is healthy it
// passes every call through, and records the first failed write, sync,
// create or rename as the journal's failure. Afterwards no call changes the
// disk:
//
//   - The write-ahead log (*.log) never returns an error to Pebble, which
//     panics on some of them (rotating the log) with its mutex released and
//     then unlocks it again, a fatal error no recover can catch. A failed
//     write or sync is recorded and reported as done; later writes to any
//     log are dropped. Commit checks the failure after Pebble returns, so a
//     commit whose data did not reach the log returns the failure: the
//     failure is recorded before the log writer signals the sync.
//   - On a commit's goroutine no call fails either (the commit path panics
//     on errors too): creates return a file that drops its writes, renames
//     and directory syncs do nothing.
//   - On Pebble's own goroutines the failing call, and every create,
//     rename, write and sync after it, parks for good (Close leaves a
//     failed DB as it is): Pebble never sees the error, so it neither
//     spins retrying a flush or compaction nor runs into the half-updated
//     state its fatal-error paths leave. Removes return the failure.
//   - While pebble.Open runs, no call fails either: Open waits for the
//     flush of the log it replayed, Pebble retries a failed flush at once,
//     and its manifest writer keeps its first error, so Open would wait
//     forever. The failure is recorded and every change dropped; Open
//     completes on what is in memory, and the journal's Open sees the
//     failure, closes Pebble and returns it. The disk holds what a crash
//     at the failing call would have left, which Pebble recovers from.
type guardFS struct {
	vfs.FS
	g *guard
}

func isLog(name string) bool { return strings.HasSuffix(name, ".log") }

// refuse is what a call that changes the disk does once the journal failed;
// the call then reports success without changing anything. On a commit's
// goroutine, during Open and once Close began it returns at once (see guardFS): Pebble then finishes what it is
// doing on state it believes intact, and the disk keeps what it held when
// the fault struck. On Pebble's own goroutines otherwise it parks for good,
// even the call that failed first: an error would send a flush or
// compaction into its error paths, where Pebble treats a failed manifest
// write as fatal and leaves its version state half updated, or rolls back
// a compaction into an L0 layout that a flush has changed meanwhile; both
// can panic on a goroutine no recover reaches.
func (fs *guardFS) refuse() {
	if inCommit() || fs.g.opening.Load() || fs.g.closing.Load() {
		return
	}
	fs.g.parked.Add(1)
	<-fs.g.release // Close began: drop the call, as above
	fs.g.parked.Add(-1)
}

// failOp records err of op on name as the journal's failure.
func (fs *guardFS) failOp(op, name string, err error) *failure {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fs.g.fail(newFailure(fs.g.dir, pe.Op+" "+fs.PathBase(pe.Path), pe.Err))
	}
	return fs.g.fail(newFailure(fs.g.dir, op+" "+fs.PathBase(name), err))
}

// create runs a call that makes a file for writing.
func (fs *guardFS) create(op, name string, fn func() (vfs.File, error)) (vfs.File, error) {
	if fs.g.failed.Load() == nil {
		file, err := fn()
		if err == nil {
			return &guardFile{File: file, fs: fs, name: name, log: isLog(name)}, nil
		}
		fs.failOp(op, name, err)
	}
	fs.refuse()
	return droppedFile{name: fs.PathBase(name)}, nil
}

// change runs a call that changes the namespace (rename, link, mkdir).
func (fs *guardFS) change(op, name string, fn func() error) error {
	if fs.g.failed.Load() == nil {
		err := fn()
		if err == nil {
			return nil
		}
		fs.failOp(op, name, err)
	}
	fs.refuse()
	return nil
}

func (fs *guardFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.create("create", name, func() (vfs.File, error) { return fs.FS.Create(name, c) })
}

func (fs *guardFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.create("reuse", newname, func() (vfs.File, error) { return fs.FS.ReuseForWrite(oldname, newname, c) })
}

func (fs *guardFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return fs.create("open", name, func() (vfs.File, error) { return fs.FS.OpenReadWrite(name, c, opts...) })
}

func (fs *guardFS) OpenDir(name string) (vfs.File, error) {
	d, err := fs.FS.OpenDir(name)
	if err != nil {
		return nil, err
	}
	return &guardFile{File: d, fs: fs, name: name}, nil
}

func (fs *guardFS) Rename(oldname, newname string) error {
	return fs.change("rename", newname, func() error { return fs.FS.Rename(oldname, newname) })
}

func (fs *guardFS) Link(oldname, newname string) error {
	return fs.change("link", newname, func() error { return fs.FS.Link(oldname, newname) })
}

func (fs *guardFS) MkdirAll(dir string, perm os.FileMode) error {
	return fs.change("mkdir", dir, func() error { return fs.FS.MkdirAll(dir, perm) })
}

// Remove and RemoveAll delete obsolete files. A failure is Pebble's to
// handle (it logs and carries on) and does not fail the journal; once the
// journal failed they delete nothing, so that files the disk's manifest
// may still name survive until the reopen.
func (fs *guardFS) Remove(name string) error {
	if f := fs.g.failed.Load(); f != nil {
		return f
	}
	return fs.FS.Remove(name)
}

func (fs *guardFS) RemoveAll(name string) error {
	if f := fs.g.failed.Load(); f != nil {
		return f
	}
	return fs.FS.RemoveAll(name)
}

func (fs *guardFS) Unwrap() vfs.FS { return fs.FS }

// guardFile guards the writes and syncs of a file (or directory) opened for
// writing through guardFS.
type guardFile struct {
	vfs.File
	fs   *guardFS
	name string
	log  bool // a write-ahead log: never return an error to Pebble
}

// frozen is asked before a write or sync: it reports whether to skip it
// (and report it done) because the journal failed. On Pebble's own
// goroutines it first parks, as refuse says; the log's writer never parks,
// since commits wait for it.
func (f *guardFile) frozen() bool {
	if f.fs.g.failed.Load() == nil {
		return false
	}
	if !f.log {
		f.fs.refuse()
	}
	return true
}

// failed handles the error of a write or sync that was attempted: it fails
// the journal and reports the call done, as frozen does.
func (f *guardFile) failed(op string, err error) {
	f.fs.failOp(op, f.name, err)
	if !f.log {
		f.fs.refuse()
	}
}

func (f *guardFile) Write(p []byte) (int, error) {
	if f.frozen() {
		return len(p), nil
	}
	if _, err := f.File.Write(p); err != nil {
		f.failed("write", err)
	}
	return len(p), nil
}

func (f *guardFile) WriteAt(p []byte, off int64) (int, error) {
	if f.frozen() {
		return len(p), nil
	}
	if _, err := f.File.WriteAt(p, off); err != nil {
		f.failed("write", err)
	}
	return len(p), nil
}

// do runs a call without a byte count under the same rules.
func (f *guardFile) do(op string, fn func() error) error {
	if f.frozen() {
		return nil
	}
	if err := fn(); err != nil {
		f.failed(op, err)
	}
	return nil
}

func (f *guardFile) Sync() error     { return f.do("sync", f.File.Sync) }
func (f *guardFile) SyncData() error { return f.do("sync", f.File.SyncData) }

func (f *guardFile) SyncTo(length int64) (bool, error) {
	full := false
	err := f.do("sync", func() error {
		var err error
		full, err = f.File.SyncTo(length)
		return err
	})
	return full, err
}

// Preallocate is an optimization whose errors Pebble ignores: a failure
// does not fail the journal, and a failed journal skips it.
func (f *guardFile) Preallocate(off, n int64) error {
	if f.fs.g.failed.Load() != nil {
		return nil
	}
	return f.File.Preallocate(off, n)
}

// droppedFile stands in for a file a failed journal could not or must not
// create: it drops every write and reads as empty.
type droppedFile struct{ name string }

func (droppedFile) Close() error                           { return nil }
func (droppedFile) Read([]byte) (int, error)               { return 0, io.EOF }
func (droppedFile) ReadAt([]byte, int64) (int, error)      { return 0, io.EOF }
func (droppedFile) Write(p []byte) (int, error)            { return len(p), nil }
func (droppedFile) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }
func (droppedFile) Preallocate(int64, int64) error         { return nil }
func (d droppedFile) Stat() (vfs.FileInfo, error)          { return droppedInfo(d), nil }
func (droppedFile) Sync() error                            { return nil }
func (droppedFile) SyncTo(int64) (bool, error)             { return true, nil }
func (droppedFile) SyncData() error                        { return nil }
func (droppedFile) Prefetch(int64, int64) error            { return nil }
func (droppedFile) Fd() uintptr                            { return vfs.InvalidFd }

type droppedInfo droppedFile

func (d droppedInfo) Name() string         { return d.name }
func (droppedInfo) Size() int64            { return 0 }
func (droppedInfo) Mode() os.FileMode      { return 0o644 }
func (droppedInfo) ModTime() time.Time     { return time.Time{} }
func (droppedInfo) IsDir() bool            { return false }
func (droppedInfo) Sys() any               { return nil }
func (droppedInfo) DeviceID() vfs.DeviceID { return vfs.DeviceID{} }
