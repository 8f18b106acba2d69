package dax

// Directories: the store's keys are flat, but a key holding '/' reads as a
// path, and its leading components as directories. Such directories are
// implicit: they exist while a key lies under them. Mkdir makes an explicit
// directory, a journal record of its own with attributes, which exists
// until Rmdir, so that an empty directory persists as a file system's does.

import (
	"errors"
	"iter"
	"time"
)

// DirInfo describes a directory. Path "" is the root.
type DirInfo struct {
	Path string `json:"path"`
	// Explicit is true for a directory made by Mkdir (it has a journal
	// record and attributes), false for one that exists only because keys
	// lie under it.
	Explicit bool      `json:"explicit"`
	Mode     uint32    `json:"mode,omitempty"` // permission bits; 0755 for an implicit directory
	UID      uint32    `json:"uid,omitempty"`
	GID      uint32    `json:"gid,omitempty"`
	ModTime  time.Time `json:"mod_time"`
	ATime    time.Time `json:"atime"`
	CTime    time.Time `json:"ctime"`
	HasAttr  bool      `json:"has_attr,omitempty"`
}

// DirEntry is one name in a directory: a file or a directory.
type DirEntry struct {
	Name  string   // one path component
	IsDir bool     // a directory, explicit or implicit
	File  FileInfo // the file, when !IsDir
}

// ValidPath reports whether key can be reached as a path: components
// separated by single slashes, none empty, "." or "..", no leading or
// trailing slash, and a valid key. Keys that are not valid paths stay
// reachable through the key API, and are left out of ReadDir.
func ValidPath(key string) bool { return false }

// Mkdir makes an explicit, empty directory at path with attributes c. Its
// parent must be the root or an existing directory (ErrNotFound), and no
// file or directory may already be at path (ErrExist); a file among its
// ancestors gives ErrNotDir.
func (s *Store) Mkdir(path string, c AttrChange) error { return errors.ErrUnsupported }

// Rmdir removes the directory at path: it must hold nothing (ErrNotEmpty).
// An implicit directory holds something by definition.
func (s *Store) Rmdir(path string) error { return errors.ErrUnsupported }

// StatDir describes the directory at path ("" is the root), explicit or
// implicit; ErrNotFound if there is none.
func (s *Store) StatDir(path string) (DirInfo, error) { return DirInfo{}, errors.ErrUnsupported }

// SetDirAttr changes the attributes of the directory at path. An implicit
// directory becomes explicit.
func (s *Store) SetDirAttr(path string, c AttrChange) (DirInfo, error) {
	return DirInfo{}, errors.ErrUnsupported
}

// ReadDir yields the entries of the directory at path in name order, one
// per name, reading the journal a page at a time and skipping over the
// subtree of each subdirectory, so its cost is in proportion to the entries
// it yields. A name that is both a file and a directory yields the
// directory. Keys that are not valid paths are left out.
func (s *Store) ReadDir(path string) iter.Seq2[DirEntry, error] {
	return func(yield func(DirEntry, error) bool) { yield(DirEntry{}, errors.ErrUnsupported) }
}

// RenameDir moves the directory old, every key under it and every explicit
// directory under it, to new, in one commit. new must not exist
// (ErrExist) unless it is an empty explicit directory, which is replaced.
// Open Files and pins of moved files stay valid.
func (s *Store) RenameDir(old, new string) error { return errors.ErrUnsupported }
