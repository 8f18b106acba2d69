// Package faultfs is an in-memory filesystem for a store's journal that
// fails on demand: it injects ENOSPC, EIO or EACCES into writes, syncs,
// creates and renames, so that tests can prove a fault in the journal never
// kills, hangs or wedges the store. It is test plumbing: only this module's
// tests can import it, and a store uses it only through
// internal/daxtest.WithJournalFaults.
package faultfs

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Op is a set of filesystem calls a Fault applies to.
type Op uint8

// The calls a fault can hit.
const (
	Write  Op = 1 << iota // File.Write, WriteAt and Preallocate
	Sync                  // File.Sync, SyncData and SyncTo, of files and directories
	Create                // Create, ReuseForWrite, OpenReadWrite, Link and MkdirAll
	Rename                // Rename

	AllOps = Write | Sync | Create | Rename
)

func (o Op) String() string {
	s := ""
	for _, x := range []struct {
		op   Op
		name string
	}{{Write, "write"}, {Sync, "sync"}, {Create, "create"}, {Rename, "rename"}} {
		if o&x.op != 0 {
			if s != "" {
				s += "|"
			}
			s += x.name
		}
	}
	if s == "" {
		return "none"
	}
	return s
}

// Fault describes the failures to inject.
type Fault struct {
	Ops   Op            // the calls that fail
	Err   syscall.Errno // the error they fail with, e.g. syscall.ENOSPC
	After int           // matching calls that succeed before the first failure
	Times int           // failures to inject; 0 means every matching call until Disarm
}

func (f Fault) String() string {
	times := "until disarmed"
	if f.Times > 0 {
		times = fmt.Sprintf("%d times", f.Times)
	}
	return fmt.Sprintf("%v on %v after %d calls, %s", f.Err, f.Ops, f.After, times)
}

// FS is the faulty filesystem. The zero value is not usable; call New. An
// FS is safe for concurrent use, and outlives the stores opened on it: after
// Disarm, a store reopened on the same FS finds what the faulty one left.
type FS struct {
	vfs.FS // the in-memory filesystem underneath

	memTableSize int

	mu       sync.Mutex
	fault    *Fault  // armed fault; nil when disarmed
	seen     int     // matching calls since Arm
	injected int     // failures injected since New
	parked   *Parked // armed park; nil when none is armed
}

// Parked is a sync held back on purpose, for tests that must observe a
// store while a commit waits for its fsync. See FS.ParkSync.
type Parked struct {
	suffix  string
	reached chan struct{} // closed when a matching sync starts waiting
	release chan struct{} // closed by Release
	once    sync.Once
}

// ParkSync arms a park: the next sync of a file whose name ends with
// suffix (".log" for the journal's write-ahead log) blocks, before it
// reaches the filesystem underneath, until Release. Only that one sync
// parks; later ones pass, and so does every sync once Release was called.
// A new ParkSync replaces an armed park that nothing has reached yet.
func (fs *FS) ParkSync(suffix string) *Parked {
	p := &Parked{suffix: suffix, reached: make(chan struct{}), release: make(chan struct{})}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.parked = p
	return p
}

// Reached is closed once a sync is parked.
func (p *Parked) Reached() <-chan struct{} { return p.reached }

// Release lets the parked sync, if any, go on. It is safe to call more
// than once, and before anything parked (then nothing will).
func (p *Parked) Release() { p.once.Do(func() { close(p.release) }) }

// park blocks a sync of name while a park armed for it is not released.
func (fs *FS) park(name string) {
	fs.mu.Lock()
	p := fs.parked
	if p == nil || !strings.HasSuffix(name, p.suffix) {
		fs.mu.Unlock()
		return
	}
	fs.parked = nil // one sync parks; the rest pass
	fs.mu.Unlock()
	close(p.reached)
	<-p.release
}

// New returns an empty in-memory filesystem with no fault armed.
// memTableSize, if positive, is the journal's memtable size in bytes: small
// memtables make the journal flush and compact within a few operations, so
// faults reach that background work too.
func New(memTableSize int) *FS {
	return &FS{FS: vfs.NewMem(), memTableSize: memTableSize}
}

// VFS returns the filesystem for the journal.
func (fs *FS) VFS() vfs.FS { return fs }

// MemTableSize returns the journal's memtable size, 0 for the default.
func (fs *FS) MemTableSize() int { return fs.memTableSize }

// Arm replaces any armed fault with f.
func (fs *FS) Arm(f Fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.fault, fs.seen = &f, 0
}

// Disarm stops injecting failures.
func (fs *FS) Disarm() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.fault = nil
}

// Injected returns how many failures were injected since New.
func (fs *FS) Injected() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.injected
}

// inject returns the error a call of kind op on name must fail with, or nil.
func (fs *FS) inject(op Op, verb, name string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f := fs.fault
	if f == nil || f.Ops&op == 0 {
		return nil
	}
	fs.seen++
	if fs.seen <= f.After || (f.Times > 0 && fs.seen > f.After+f.Times) {
		return nil
	}
	fs.injected++
	return &os.PathError{Op: verb, Path: name, Err: f.Err}
}

func (fs *FS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &file{File: f, fs: fs, name: name}, nil
}

func (fs *FS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if err := fs.inject(Create, "create", name); err != nil {
		return nil, err
	}
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs *FS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if err := fs.inject(Create, "create", newname); err != nil {
		return nil, err
	}
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(newname, f, err)
}

func (fs *FS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	if err := fs.inject(Create, "open", name); err != nil {
		return nil, err
	}
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.wrap(name, f, err)
}

func (fs *FS) OpenDir(name string) (vfs.File, error) {
	f, err := fs.FS.OpenDir(name)
	return fs.wrap(name, f, err)
}

func (fs *FS) Link(oldname, newname string) error {
	if err := fs.inject(Create, "link", newname); err != nil {
		return err
	}
	return fs.FS.Link(oldname, newname)
}

func (fs *FS) MkdirAll(dir string, perm os.FileMode) error {
	if err := fs.inject(Create, "mkdir", dir); err != nil {
		return err
	}
	return fs.FS.MkdirAll(dir, perm)
}

func (fs *FS) Rename(oldname, newname string) error {
	if err := fs.inject(Rename, "rename", newname); err != nil {
		return err
	}
	return fs.FS.Rename(oldname, newname)
}

func (fs *FS) Unwrap() vfs.FS { return fs.FS }

// file injects faults into the writes and syncs of one open file.
type file struct {
	vfs.File
	fs   *FS
	name string
}

func (f *file) Write(p []byte) (int, error) {
	if err := f.fs.inject(Write, "write", f.name); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.inject(Write, "write", f.name); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *file) Preallocate(off, n int64) error {
	if err := f.fs.inject(Write, "fallocate", f.name); err != nil {
		return err
	}
	return f.File.Preallocate(off, n)
}

func (f *file) Sync() error {
	f.fs.park(f.name)
	if err := f.fs.inject(Sync, "sync", f.name); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *file) SyncData() error {
	f.fs.park(f.name)
	if err := f.fs.inject(Sync, "sync", f.name); err != nil {
		return err
	}
	return f.File.SyncData()
}

func (f *file) SyncTo(length int64) (bool, error) {
	f.fs.park(f.name)
	if err := f.fs.inject(Sync, "sync", f.name); err != nil {
		return false, err
	}
	return f.File.SyncTo(length)
}
