package fusefs

import (
	"context"
	"fmt"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/daxstore/daxstore/dax"
)

// Options configures Mount.
type Options struct {
	// AllowOther lets users other than the one mounting use the mount
	// (FUSE's allow_other; needs user_allow_other in /etc/fuse.conf for a
	// non-root mounter).
	AllowOther bool
	// Debug logs every FUSE request and reply to Log.
	Debug bool
	// Log receives the mount's messages: refusals worth explaining (a
	// full region with busy blocks, keys hidden from the namespace) and,
	// with Debug, the request trace. nil means log.Default().
	Log *log.Logger
	// UID and GID own the files and directories that have no attributes
	// of their own (made through the key API). The mounting process's
	// ids are the usual choice.
	UID, GID uint32
	// FsName is the name the mount table shows (default "daxstore").
	FsName string
}

// cacheTimeout is how long the kernel may trust an entry or attributes
// without asking again. Changes the kernel did not make are notified at
// once (see notify.go), so this only bounds the cost of lookups.
const cacheTimeout = time.Second

// dirInoBase is where the mount's directory inode numbers start: far above
// any file's dax inode number, which the mount uses as is.
const dirInoBase = 1 << 62

// Server is a mounted store.
type Server struct {
	st   *dax.Store
	o    Options
	log  *log.Logger
	srv  *fuse.Server
	root *dirNode
	bs   int64 // the store's block size

	// own holds the *dax.File of every file the mount has open: a change
	// made through one of them is one the kernel made, and needs no
	// invalidation.
	own sync.Map // *dax.File -> *fileNode
	// ownKeys counts the store-level calls (create, remove, rename,
	// setattr, mkdir, ...) the mount has in flight per key: the kernel
	// made them too. A change by another caller to the same key in the
	// same instant goes without notification; the entry timeout bounds
	// what that costs.
	ownMu   sync.Mutex
	ownKeys map[string]int

	nodesMu sync.Mutex
	nodes   map[uint64]*fileNode // dax ino -> the node the kernel knows
	dirIno  atomic.Uint64        // the last directory inode number handed out

	q         notifyQueue
	serving   atomic.Bool // the kernel talks to the mount: notifications may go out
	stopWatch func()
	done      chan struct{} // closed once the mount is no longer served and cleaned up
	unmounted atomic.Bool
}

// Mount mounts st at mountpoint and serves it until Unmount, or until the
// file system is unmounted from outside (fusermount -u, umount). The store
// stays the caller's: Unmount does not close it. As root it mounts with
// mount(2) directly, else through fusermount3.
//
// Hard links are refused with EPERM and symbolic links, device nodes and
// FIFOs with EOPNOTSUPP: the store holds regular files only. Reads never
// update access times (noatime). Keys that are not valid paths (see
// dax.ValidPath) do not appear in the mount.
func Mount(st *dax.Store, mountpoint string, o Options) (*Server, error) {
	if st == nil {
		return nil, fmt.Errorf("fusefs: mount %s: no store", mountpoint)
	}
	if o.Log == nil {
		o.Log = log.Default()
	}
	if o.FsName == "" {
		o.FsName = "daxstore"
	}
	s := &Server{
		st: st, o: o, log: o.Log, bs: st.BlockSize(),
		ownKeys: make(map[string]int),
		nodes:   make(map[uint64]*fileNode),
		done:    make(chan struct{}),
	}
	s.dirIno.Store(dirInoBase)
	s.q.init()
	s.root = &dirNode{s: s}
	timeout := cacheTimeout
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther:  o.AllowOther,
			Debug:       o.Debug,
			Logger:      o.Log,
			FsName:      o.FsName,
			Name:        "daxstore",
			DirectMount: os.Geteuid() == 0,
			// The kernel checks modes and owners against the attributes
			// the mount keeps, as for a local file system; without it
			// anyone who can reach the mount could change any file.
			Options: []string{"default_permissions"},
			// Up to 1 MiB per write request: large sequential writes
			// cost fewer round trips through the kernel.
			MaxWrite: 1 << 20,
		},
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		// No UID/GID here: go-fuse would show them for every owner 0,
		// also a file chowned to root. Files without attributes of their
		// own get o.UID and o.GID from fileAttr and dirAttr instead.
		Logger: o.Log,
		// Directories take numbers from dirInoBase up and files their dax
		// inode numbers; go-fuse's own automatic numbers stay above both.
		FirstAutomaticIno: 1 << 63,
	}
	s.stopWatch = st.Watch(s.watch)
	srv, err := fs.Mount(mountpoint, s.root, opts)
	if err != nil {
		s.stopWatch()
		s.q.close()
		return nil, fmt.Errorf("fusefs: mount %s: %w", mountpoint, err)
	}
	s.srv = srv
	s.serving.Store(true)
	go s.notifier()
	go func() {
		srv.Wait()
		s.cleanup()
	}()
	return s, nil
}

// cleanup runs once the file system is no longer served: it stops the
// notifications and closes every file the kernel left open (a lazy or
// forced unmount releases nothing).
func (s *Server) cleanup() {
	s.stopWatch()
	s.q.close()
	s.own.Range(func(k, v any) bool {
		n := v.(*fileNode)
		n.mu.Lock()
		if n.f == k.(*dax.File) {
			n.f, n.refs = nil, 0
		}
		n.mu.Unlock()
		s.own.Delete(k)
		if err := k.(*dax.File).Close(); err != nil {
			s.log.Printf("fusefs: close %q at unmount: %v", k.(*dax.File).Key(), err)
		}
		return true
	})
	close(s.done)
}

// Wait blocks until the file system is unmounted and every file it had
// open is closed.
func (s *Server) Wait() { <-s.done }

// Done is closed once the file system is unmounted and every file it had
// open is closed.
func (s *Server) Done() <-chan struct{} { return s.done }

// Unmount unmounts the file system and waits until it is no longer served.
// It fails (EBUSY) while a process still uses the mount; the mount then
// goes on serving.
func (s *Server) Unmount() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	if err := s.srv.Unmount(); err != nil {
		return fmt.Errorf("fusefs: unmount: %w", err)
	}
	s.Wait()
	return nil
}

// WaitContext is Wait bounded by ctx.
func (s *Server) WaitContext(ctx context.Context) error {
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// beginOwn marks keys as changed by the mount itself until the returned
// function runs (see ownKeys).
func (s *Server) beginOwn(keys ...string) func() {
	s.ownMu.Lock()
	for _, k := range keys {
		s.ownKeys[k]++
	}
	s.ownMu.Unlock()
	return func() {
		s.ownMu.Lock()
		for _, k := range keys {
			if s.ownKeys[k]--; s.ownKeys[k] <= 0 {
				delete(s.ownKeys, k)
			}
		}
		s.ownMu.Unlock()
	}
}

func (s *Server) isOwnKey(k string) bool {
	s.ownMu.Lock()
	defer s.ownMu.Unlock()
	return s.ownKeys[k] > 0
}
