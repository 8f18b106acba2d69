package fusefs

// Coherence: the kernel caches pages, attributes and names of the mount.
// Changes it made itself (through the mount's own Files and store calls)
// it already knows of; every other change to the store (a pin or window
// flushed, a break that detached, a Put or Remove through the API of the
// same process) the store reports to watch. Changes to a file's bytes,
// size or attributes are invalidated there, in the goroutine that made
// them, before its call returns; changes to names go to the notifier
// goroutine. A FUSE handler never notifies: the kernel may hold the very
// page or directory locks a notification needs while it waits for the
// handler.

import (
	"context"
	"strings"
	"sync"

	"github.com/hanwen/go-fuse/v2/fs"

	"github.com/daxstore/daxstore/dax"
)

// notifyQueue is an unbounded queue of changes: the store's goroutine that
// pushes must never wait for the kernel.
type notifyQueue struct {
	mu     sync.Mutex
	items  []note
	closed bool
	wake   chan struct{} // holds a token while items is not empty
	done   chan struct{} // closed by close
}

func (q *notifyQueue) init() {
	q.wake = make(chan struct{}, 1)
	q.done = make(chan struct{})
}

// note is one queued change, or a barrier: a channel the notifier closes
// when it gets there.
type note struct {
	c       dax.FileChange
	barrier chan struct{}
}

func (q *notifyQueue) push(c dax.FileChange) { q.pushNote(note{c: c}) }

func (q *notifyQueue) pushNote(n note) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, n)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// take waits for changes and returns them all; false once the queue is
// closed.
func (q *notifyQueue) take() ([]note, bool) {
	for {
		q.mu.Lock()
		items, closed := q.items, q.closed
		q.items = nil
		q.mu.Unlock()
		if closed {
			return nil, false
		}
		if len(items) > 0 {
			return items, true
		}
		select {
		case <-q.wake:
		case <-q.done:
		}
	}
}

func (q *notifyQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		q.items = nil
		close(q.done)
	}
}

// watch receives every change of the store, in the goroutine that made it,
// and queues those the kernel did not make.
func (s *Server) watch(c dax.FileChange) {
	if !s.serving.Load() {
		return // the kernel has cached nothing yet
	}
	if c.Via != nil {
		if _, ok := s.own.Load(c.Via); ok {
			return
		}
	}
	switch c.Kind {
	case dax.ChangeCreate, dax.ChangeRemove, dax.ChangeRename, dax.ChangeAttr:
		if s.isOwnKey(c.Key) {
			return
		}
	}
	switch c.Kind {
	case dax.ChangeData, dax.ChangeSize, dax.ChangeReplace, dax.ChangeAttr:
		// Invalidated before the change's call returns, so read(2), a
		// shared mapping and fstat show it from then on. This goroutine
		// is never a FUSE handler of the mount (their changes are the
		// mount's own and were skipped above) and holds no store lock, so
		// the handlers the kernel may wait for here can run.
		s.notify(c)
	default:
		// Names: the kernel takes the directory's lock for these, which
		// it may hold while a handler waits for a pin (the Wait policy)
		// that this very goroutine would release later.
		s.q.push(c)
	}
}

// notifier tells the kernel about the queued changes until the mount
// ends.
func (s *Server) notifier() {
	for {
		batch, ok := s.q.take()
		if !ok {
			return
		}
		for _, n := range batch {
			if n.barrier != nil {
				close(n.barrier)
				continue
			}
			s.notify(n.c)
		}
	}
}

// notifyBarrier waits until the notifier has told the kernel about every
// change queued before the call. It returns false if the mount ended first
// (or ctx did).
func (s *Server) notifyBarrier(ctx context.Context) bool {
	b := make(chan struct{})
	if !s.q.pushNote(note{barrier: b}) {
		return false
	}
	select {
	case <-b:
		return true
	case <-s.q.done:
		return false
	case <-ctx.Done():
		return false
	}
}

// fileInode is the inode of the file with dax inode number ino if the
// kernel knows it.
func (s *Server) fileInode(ino uint64) *fs.Inode {
	s.nodesMu.Lock()
	n := s.nodes[ino]
	s.nodesMu.Unlock()
	if n == nil {
		return nil
	}
	return n.EmbeddedInode()
}

// dirInode is the inode of the directory at path if the kernel knows it.
func (s *Server) dirInode(path string) *fs.Inode {
	n := s.root.EmbeddedInode()
	if path == "" {
		return n
	}
	for name := range strings.SplitSeq(path, "/") {
		if n = n.GetChild(name); n == nil {
			return nil
		}
	}
	return n
}

// baseName is the last component of key.
func baseName(key string) string {
	return key[strings.LastIndexByte(key, '/')+1:]
}

// notify tells the kernel what c changed. Errors mean the kernel no longer
// knows the inode or name, which needs no invalidation.
func (s *Server) notify(c dax.FileChange) {
	switch c.Kind {
	case dax.ChangeData, dax.ChangeSize, dax.ChangeReplace:
		n := s.fileInode(c.Ino)
		if n == nil {
			return
		}
		off, l := c.Off, c.Len
		if c.Kind == dax.ChangeReplace {
			off, l = 0, 0
		}
		if l < 0 {
			l = 0 // to the end of the file
		}
		n.NotifyContent(off, l)
	case dax.ChangeAttr:
		var n *fs.Inode
		if c.Dir {
			n = s.dirInode(c.Key)
		} else {
			n = s.fileInode(c.Ino)
		}
		if n != nil {
			n.NotifyContent(-1, 0) // attributes only
		}
	case dax.ChangeCreate:
		if p := s.dirInode(parentOf(c.Key)); p != nil {
			p.NotifyEntry(baseName(c.Key))
		}
	case dax.ChangeRemove:
		p := s.dirInode(parentOf(c.Key))
		if p == nil {
			return
		}
		name := baseName(c.Key)
		if ch := p.GetChild(name); ch != nil {
			p.NotifyDelete(name, ch)
		} else {
			p.NotifyEntry(name)
		}
	case dax.ChangeRename:
		op, np := s.dirInode(parentOf(c.Key)), s.dirInode(parentOf(c.NewKey))
		oldName, newName := baseName(c.Key), baseName(c.NewKey)
		if op != nil {
			// Keep go-fuse's tree, which gives nodes their paths, in
			// step with the store.
			if ch := op.GetChild(oldName); ch != nil {
				if np != nil {
					op.MvChild(oldName, np, newName, true)
				} else {
					op.RmChild(oldName)
				}
			}
			op.NotifyEntry(oldName)
		}
		if np != nil {
			np.NotifyEntry(newName)
		}
	}
}
