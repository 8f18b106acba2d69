package dax

import (
	"slices"
	"sync"
	"sync/atomic"
)

// Change notification: how a cache outside the store (the FUSE mount's
// kernel page cache) learns that a file changed by a path it did not see.

// ChangeKind says what a FileChange reports.
type ChangeKind uint8

const (
	// ChangeData: bytes [Off, Off+Len) of the file may read differently
	// (a write, a punch, a zero-range, an allocation, a flushed pin or
	// window). Len -1 means to the end of the file.
	ChangeData ChangeKind = iota + 1
	// ChangeSize: the file's size changed; Off is the smaller of the old
	// and the new size, Len -1, and every byte from Off on may read
	// differently. A Truncate reports it alone; a WriteAt or an Allocate
	// that grows the file reports ChangeData for its range first.
	ChangeSize
	// ChangeCreate: Key now names a file (a Create or a Put of a new key),
	// or a directory (Mkdir; Dir true).
	ChangeCreate
	// ChangeRemove: Key no longer names a file (Remove, or replaced by a
	// rename) or a directory (Rmdir; Dir true).
	ChangeRemove
	// ChangeRename: the file (or, Dir true, the directory and everything
	// under it) named Key is now named NewKey.
	ChangeRename
	// ChangeAttr: the attributes of the file or directory changed.
	ChangeAttr
	// ChangeReplace: a Put replaced the whole contents (and the size) of
	// the file Key, which keeps its inode number.
	ChangeReplace
)

// FileChange is one change to the store, reported to Watch callbacks.
type FileChange struct {
	// Kind says what changed.
	Kind ChangeKind
	// Key is the file's key (for a pin's change, the key it was pinned
	// under; a File's method reports the key the file has when it
	// reports) or the directory's path. Ino, which renames keep, is what
	// names a file for certain.
	Key      string
	NewKey   string // ChangeRename only
	Dir      bool   // Key is a directory path
	Ino      uint64 // the file's inode number; 0 for directories
	Off, Len int64  // ChangeData and ChangeSize: the bytes that changed
	// Via is the File whose method made the change: WriteAt, Truncate,
	// PunchHole, ZeroRange, Allocate and their With forms. It is nil for
	// changes made through the Store (Put, Remove, Rename, SetAttr, Mkdir,
	// ...), a pin or a window, so a watcher that made a change through its
	// own File can tell it from the others.
	Via *File
}

// watchSet is the store's Watch callbacks. list is nil while nobody
// watches, so that a change costs one atomic load when nobody does; it is
// replaced, never changed in place, so a notifier walks the slice it
// loaded without a lock.
type watchSet struct {
	mu   sync.Mutex // serializes Watch and stop
	list atomic.Pointer[[]*watcher]
}

// watcher is one Watch callback. running counts the calls in progress
// and stopped ends new ones; stop waits on idle until running is 0. A
// mutex rather than a RWMutex held across fn: fn may change the store
// itself, and a nested call must not wait behind a stop that waits for
// the outer one.
type watcher struct {
	fn      func(FileChange)
	mu      sync.Mutex
	idle    sync.Cond
	running int
	stopped bool
}

// Watch calls fn after every change to the store's files and directories,
// once the change is applied, outside every store lock, in the goroutine
// that made it, before the method that made it returns. Any number of
// watchers may be registered; each sees every change made after its Watch
// returned, and fn may run concurrently with itself, from every goroutine
// that changes the store. fn must return quickly: the change's caller waits
// for it. It may call the store (Stat, Open, ReadAt, even a change, which
// it then sees reported too), but a watcher that does real work hands the
// change to a goroutine of its own.
//
// A change is reported once it may be visible, also when the method that
// made it then fails (a journal sync that fails after the new bytes were
// in place): a reported change may turn out to change nothing, a change is
// never missed. Bytes stored through a pin or a window are reported when
// the pin is flushed or unpinned, or the window flushed or closed: the
// store cannot see the stores themselves.
//
// The returned stop ends the calls: after it returns fn is not running
// and will not run again. stop may be called more than once, from any
// goroutine, but not from fn itself, which would wait for its own return.
func (s *Store) Watch(fn func(FileChange)) (stop func()) {
	w := &watcher{fn: fn}
	w.idle.L = &w.mu
	ws := &s.watch
	ws.mu.Lock()
	var list []*watcher
	if old := ws.list.Load(); old != nil {
		list = append(list, *old...)
	}
	list = append(list, w)
	ws.list.Store(&list)
	ws.mu.Unlock()
	return func() {
		ws.mu.Lock()
		if old := ws.list.Load(); old != nil {
			list := slices.DeleteFunc(slices.Clone(*old), func(o *watcher) bool { return o == w })
			if len(list) == 0 {
				ws.list.Store(nil)
			} else {
				ws.list.Store(&list)
			}
		}
		ws.mu.Unlock()
		// A notifier that loaded the old list may still call w: it
		// either sees stopped, or counted itself running before stop
		// set it and is waited for.
		w.mu.Lock()
		w.stopped = true
		for w.running > 0 {
			w.idle.Wait()
		}
		w.mu.Unlock()
	}
}

// notify reports c to every watcher. Every path that changes a file's
// bytes, size, name or existence, or a directory, calls it once the
// change is applied (in memory: before waiting for its commit's sync is
// fine, after is too) and with no store lock held, quiesce included: a
// watcher may call back into the store, and a shared quiesce taken again
// would deadlock behind a waiting Close. With nobody watching it costs one
// atomic load. A change with Kind 0 is no change. For a File method, c.Via
// is the File, and notify fills in Key and Ino from it.
func (s *Store) notify(c FileChange) {
	if list := s.watch.list.Load(); list != nil {
		s.notifySlow(list, c)
	}
}

// notify reports a change that a method of f made to bytes [off, off+n)
// (n -1: to the end of the file).
func (f *File) notify(kind ChangeKind, off, n int64) {
	if list := f.s.watch.list.Load(); list != nil {
		f.s.notifySlow(list, FileChange{Kind: kind, Off: off, Len: n, Via: f})
	}
}

func (s *Store) notifySlow(list *[]*watcher, c FileChange) {
	if c.Kind == 0 {
		return
	}
	if c.Via != nil {
		c.Key, c.Ino = c.Via.Key(), c.Via.in.ino
	}
	for _, w := range *list {
		w.call(c)
	}
}

// call runs fn on c unless w was stopped.
func (w *watcher) call(c FileChange) {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.running++
	w.mu.Unlock()
	defer w.done() // a panicking fn must not leave stop waiting forever
	w.fn(c)
}

func (w *watcher) done() {
	w.mu.Lock()
	w.running--
	if w.running == 0 && w.stopped {
		w.idle.Broadcast()
	}
	w.mu.Unlock()
}

// notify reports the stores a writable follow window may have made to its
// range. A pinned window's are its pin's to report.
func (w *Window) notify() {
	if list := w.s.watch.list.Load(); list != nil {
		w.s.notifySlow(list, FileChange{Kind: ChangeData, Key: w.in.name(), Ino: w.in.ino, Off: w.off, Len: w.n})
	}
}
