package dax

// File and directory attributes: the POSIX mode, owner and times that a
// file-system face of the store (the FUSE mount, Store.FS) shows and keeps.
// The key-file API itself neither needs nor checks them.

import (
	"context"
	"errors"
	"time"
)

// AttrMask says which fields of an AttrChange to apply.
type AttrMask uint8

const (
	AttrMode  AttrMask = 1 << iota // permission bits, Mode & 07777
	AttrUID                        // owner
	AttrGID                        // group
	AttrATime                      // access time
	AttrMTime                      // modification time
)

// AttrChange sets some attributes of a file or directory: those whose bit
// is in Mask. The change time becomes the time of the change.
type AttrChange struct {
	Mask         AttrMask
	Mode         uint32 // permission bits (07777); other bits are refused with ErrInvalidRange
	UID, GID     uint32
	ATime, MTime time.Time
}

// ErrNotEmpty: Rmdir of a directory that still holds files or directories.
var ErrNotEmpty = errors.New("directory not empty")

// ErrNotDir: a path names a file where a directory is needed (a
// directory operation on a file, or a file used as a parent directory).
var ErrNotDir = errors.New("not a directory")

// ErrIsDir: a file operation on a path that is a directory.
var ErrIsDir = errors.New("is a directory")

// SetAttr changes the attributes of the file named key and returns the
// file's description after the change, in one durable commit. A file that
// never had attributes (HasAttr false) takes mode 0644, owner 0:0 and
// times equal to its modification time for the fields c leaves out.
func (s *Store) SetAttr(key string, c AttrChange) (FileInfo, error) {
	return FileInfo{}, errors.ErrUnsupported
}

// CreateWith is Create with the file's first attributes set in the same
// commit.
func (s *Store) CreateWith(key string, c AttrChange) (*File, error) {
	return nil, errors.ErrUnsupported
}

// Stat describes the file f is open on, from memory.
func (f *File) Stat() (FileInfo, error) {
	return FileInfo{}, errors.ErrUnsupported
}

// RenameOptions configures RenameWith.
type RenameOptions struct {
	// Replace lets the rename replace a file already named new, as
	// rename(2) does: the replaced file is removed in the same commit,
	// and its referenced blocks are broken as Remove breaks them, under
	// Break's policy.
	Replace bool
	Break   BreakOptions
}

// RenameWith renames the file old to new. Without o.Replace it is Rename.
func (s *Store) RenameWith(ctx context.Context, old, new string, o RenameOptions) error {
	return errors.ErrUnsupported
}
