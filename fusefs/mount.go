package fusefs

import (
	"errors"
	"log"

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

// Server is a mounted store.
type Server struct{}

// Mount mounts st at mountpoint and serves it until Unmount, or until the
// file system is unmounted from outside (fusermount -u, umount). The store
// stays the caller's: Unmount does not close it.
func Mount(st *dax.Store, mountpoint string, o Options) (*Server, error) {
	return nil, errors.ErrUnsupported
}

// Wait blocks until the file system is unmounted.
func (s *Server) Wait() {}

// Unmount unmounts the file system and waits until it is no longer served.
func (s *Server) Unmount() error { return errors.ErrUnsupported }
