package dax

// Store.FS: the store seen through io/fs, read-only, so that the standard
// library's file-system tools (fs.WalkDir, fs.Glob, fs.Sub, http.FS,
// template.ParseFS, testing/fstest) work on it without a FUSE mount.

import (
	"errors"
	"io"
	"io/fs"
	"iter"
	"path"
	"sync"
	"time"
)

// FS returns a read-only io/fs view of the store. Its root "." is the
// store's root directory; every other name is a key read as a path, split
// on '/', with the directories that Store.ReadDir shows (explicit ones
// made by Mkdir, and implicit ones that exist because keys lie under them).
//
// The returned FS implements fs.ReadFileFS, fs.StatFS, fs.ReadDirFS and
// fs.SubFS. Its files implement io.ReaderAt and io.Seeker, and read
// through a File opened by FS.Open and closed by their Close: a file
// removed after Open reads as an error wrapping fs.ErrNotExist, and one
// changed after Open shows the change. Its directories implement
// fs.ReadDirFile, reading the store's listing n entries at a time; an open
// directory holds its place in the listing (an iterator) until Close, so
// close what you open.
//
// Rules of the view:
//   - Keys that are not valid paths (ValidPath: empty, "." or ".."
//     components, a leading or trailing '/', "//") are hidden: they appear
//     in no listing and no name opens them. They stay reachable through the
//     key API.
//   - A name that is both a file key and a directory (keys "a" and "a/b")
//     is the directory; the file "a" is then hidden from the view.
//   - FileInfo.Mode is the attribute mode (see AttrChange), or 0644 for a
//     file and 0755 for a directory that have none, with fs.ModeDir on
//     directories. ModTime is the modification time. Sys returns the
//     store's own description: a FileInfo for a file, a DirInfo for a
//     directory.
//   - Errors are *fs.PathError values whose Err matches both the store's
//     sentinel and io/fs's: ErrNotFound is fs.ErrNotExist, ErrExist is
//     fs.ErrExist, ErrInvalidKey and ErrInvalidRange are fs.ErrInvalid and
//     ErrClosed is fs.ErrClosed. A name that fs.ValidPath refuses is
//     fs.ErrInvalid. After the store's Close every call fails with
//     fs.ErrClosed.
func (s *Store) FS() fs.FS { return &storeFS{s: s} }

// storeFS is the view rooted at dir ("" for the store's root; fs.Sub
// makes others).
type storeFS struct {
	s   *Store
	dir string
}

var (
	_ fs.ReadFileFS  = (*storeFS)(nil)
	_ fs.StatFS      = (*storeFS)(nil)
	_ fs.ReadDirFS   = (*storeFS)(nil)
	_ fs.SubFS       = (*storeFS)(nil)
	_ fs.ReadDirFile = (*fsDir)(nil)
	_ io.ReaderAt    = (*fsFile)(nil)
	_ io.Seeker      = (*fsFile)(nil)
)

// fsError is an error that matches both the store's sentinel, through err,
// and io/fs's, so that callers of either package can test it.
type fsError struct {
	err  error
	kind error // an io/fs sentinel
}

func (e *fsError) Error() string   { return e.err.Error() }
func (e *fsError) Unwrap() []error { return []error{e.err, e.kind} }

// pathError wraps err, from the store, in an *fs.PathError for op on name.
func pathError(op, name string, err error) error {
	var kind error
	switch {
	case errors.Is(err, ErrNotFound):
		kind = fs.ErrNotExist
	case errors.Is(err, ErrExist):
		kind = fs.ErrExist
	case errors.Is(err, ErrInvalidKey), errors.Is(err, ErrInvalidRange):
		kind = fs.ErrInvalid
	case errors.Is(err, ErrClosed):
		kind = fs.ErrClosed
	}
	if kind != nil && !errors.Is(err, kind) {
		err = &fsError{err: err, kind: kind}
	}
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// key returns the store path of name, which must pass fs.ValidPath: "" for
// the root.
func (v *storeFS) key(op, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	p := v.dir
	switch {
	case name == ".":
	case p == "":
		p = name
	default:
		p += "/" + name
	}
	if p != "" && !ValidPath(p) {
		// fs.ValidPath accepts what the store cannot name (too long,
		// a NUL byte): nothing can be there.
		return "", &fs.PathError{Op: op, Path: name, Err: &fsError{err: ErrInvalidKey, kind: fs.ErrInvalid}}
	}
	return p, nil
}

// lookup describes the directory or file at p: a directory wins over a
// file of the same name, as in ReadDir.
func (v *storeFS) lookup(p string) (DirInfo, FileInfo, bool, error) {
	di, err := v.s.StatDir(p)
	if err == nil {
		return di, FileInfo{}, true, nil
	}
	if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrNotDir) || p == "" {
		return DirInfo{}, FileInfo{}, false, err
	}
	fi, err := v.s.Stat(p)
	return DirInfo{}, fi, false, err
}

// Open opens the file or directory name. A file is opened on the store at
// once (a File, closed by the returned file's Close).
func (v *storeFS) Open(name string) (fs.File, error) {
	p, err := v.key("open", name)
	if err != nil {
		return nil, err
	}
	di, err := v.s.StatDir(p)
	if err == nil {
		return &fsDir{v: v, name: name, info: fsDirInfo(di)}, nil
	}
	if p == v.dir || !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrNotDir) {
		// The root of a view must be a directory.
		return nil, pathError("open", name, err)
	}
	f, err := v.s.Open(p)
	if err != nil {
		return nil, pathError("open", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, pathError("open", name, err)
	}
	return &fsFile{name: name, f: f, info: fsFileInfo(fi)}, nil
}

// Stat describes name without opening it.
func (v *storeFS) Stat(name string) (fs.FileInfo, error) {
	p, err := v.key("stat", name)
	if err != nil {
		return nil, err
	}
	di, fi, isDir, err := v.lookup(p)
	switch {
	case err != nil:
		return nil, pathError("stat", name, err)
	case isDir:
		return fsDirInfo(di), nil
	case p == v.dir:
		return nil, pathError("stat", name, ErrNotDir)
	}
	return fsFileInfo(fi), nil
}

// ReadFile returns the bytes of the file name, read through a File.
func (v *storeFS) ReadFile(name string) ([]byte, error) {
	p, err := v.key("read", name)
	if err != nil {
		return nil, err
	}
	if _, err := v.s.StatDir(p); err == nil {
		return nil, pathError("read", name, ErrIsDir)
	} else if p == v.dir || !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrNotDir) {
		return nil, pathError("read", name, err)
	}
	f, err := v.s.Open(p)
	if err != nil {
		return nil, pathError("read", name, err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, pathError("read", name, err)
	}
	b, err := readFileAll(f, size)
	if err != nil {
		return nil, pathError("read", name, err)
	}
	return b, nil
}

// readFileAll reads f to its end, which may have moved since the size hint was
// taken.
func readFileAll(f *File, hint int64) ([]byte, error) {
	b := make([]byte, 0, min(max(hint, 512), 1<<30)+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := f.ReadAt(b[len(b):cap(b)], int64(len(b)))
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// ReadDir lists the directory name in name order.
func (v *storeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := v.key("readdir", name)
	if err != nil {
		return nil, err
	}
	var list []fs.DirEntry
	for e, err := range v.s.ReadDir(p) {
		if err != nil {
			return list, pathError("readdir", name, err)
		}
		list = append(list, v.entry(p, e))
	}
	return list, nil
}

// Sub returns the view of the directory dir. Like fs.Sub it does not check
// that dir exists: opening "." in the view does.
func (v *storeFS) Sub(dir string) (fs.FS, error) {
	p, err := v.key("sub", dir)
	if err != nil {
		return nil, err
	}
	return &storeFS{s: v.s, dir: p}, nil
}

// entry turns a listing entry of the directory p into an fs.DirEntry.
func (v *storeFS) entry(p string, e DirEntry) fs.DirEntry {
	if !e.IsDir {
		return fs.FileInfoToDirEntry(fsFileInfo(e.File))
	}
	if p != "" {
		p += "/"
	}
	return &dirEntry{s: v.s, name: e.Name, path: p + e.Name}
}

// dirEntry is a directory in a listing. Its Info is read when asked for,
// since a listing carries no directory attributes.
type dirEntry struct {
	s    *Store
	name string
	path string
}

func (e *dirEntry) Name() string      { return e.name }
func (e *dirEntry) IsDir() bool       { return true }
func (e *dirEntry) Type() fs.FileMode { return fs.ModeDir }
func (e *dirEntry) String() string    { return fs.FormatDirEntry(e) }

func (e *dirEntry) Info() (fs.FileInfo, error) {
	di, err := e.s.StatDir(e.path)
	if err != nil {
		return nil, pathError("stat", e.name, err)
	}
	return fsDirInfo(di), nil
}

// fsInfo is an fs.FileInfo of a file or a directory.
type fsInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
	sys   any
}

func (i *fsInfo) Name() string       { return i.name }
func (i *fsInfo) Size() int64        { return i.size }
func (i *fsInfo) Mode() fs.FileMode  { return i.mode }
func (i *fsInfo) ModTime() time.Time { return i.mtime }
func (i *fsInfo) IsDir() bool        { return i.mode.IsDir() }
func (i *fsInfo) Sys() any           { return i.sys }
func (i *fsInfo) String() string     { return fs.FormatFileInfo(i) }

// fileMode turns the attribute bits (07777) into an fs.FileMode.
func fileMode(bits uint32) fs.FileMode {
	m := fs.FileMode(bits & 0o777)
	if bits&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if bits&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if bits&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// wallTime drops t's monotonic reading, so that a time read from memory
// and the same time read back from the journal compare and print alike.
func wallTime(t time.Time) time.Time { return t.Round(0) }

func fsFileInfo(fi FileInfo) *fsInfo {
	mode := fs.FileMode(defaultFileMode)
	if fi.HasAttr {
		mode = fileMode(fi.Mode)
	}
	return &fsInfo{name: path.Base(fi.Key), size: fi.Size, mode: mode, mtime: wallTime(fi.ModTime), sys: fi}
}

func fsDirInfo(di DirInfo) *fsInfo {
	mode := fs.FileMode(defaultDirMode)
	if di.HasAttr {
		mode = fileMode(di.Mode)
	}
	name := "."
	if di.Path != "" {
		name = path.Base(di.Path)
	}
	return &fsInfo{name: name, mode: mode | fs.ModeDir, mtime: wallTime(di.ModTime), sys: di}
}

// fsFile is an open file of the view: an io.ReaderAt and io.Seeker over a
// File.
type fsFile struct {
	name string
	f    *File
	info *fsInfo // as of Open

	mu  sync.Mutex // protects off
	off int64      // where Read reads next
}

// Stat describes the file as it was when opened.
func (f *fsFile) Stat() (fs.FileInfo, error) { return f.info, nil }

// Read reads from the file's offset and advances it.
func (f *fsFile) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.readAt(p, f.off)
	f.off += int64(n)
	return n, err
}

// ReadAt reads len(p) bytes at off, as io.ReaderAt says: fewer only with an
// error, io.EOF at the end of the file. It does not move the offset.
func (f *fsFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: errors.New("negative offset")}
	}
	return f.readAt(p, off)
}

func (f *fsFile) readAt(p []byte, off int64) (int, error) {
	n, err := f.f.ReadAt(p, off)
	if err != nil && err != io.EOF {
		return n, pathError("read", f.name, err)
	}
	return n, err
}

// Seek sets the offset of the next Read: io.SeekEnd counts from the file's
// size now.
func (f *fsFile) Seek(offset int64, whence int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = f.off
	case io.SeekEnd:
		size, err := f.f.Size()
		if err != nil {
			return 0, pathError("seek", f.name, err)
		}
		base = size
	default:
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrInvalid}
	}
	off := base + offset
	if offset > 0 && off < base || off < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrInvalid}
	}
	f.off = off
	return off, nil
}

// Close closes the File; a second Close fails with fs.ErrClosed.
func (f *fsFile) Close() error {
	if err := f.f.Close(); err != nil {
		return pathError("close", f.name, err)
	}
	return nil
}

// fsDir is an open directory of the view.
type fsDir struct {
	v    *storeFS
	name string
	info *fsInfo // as of Open

	mu     sync.Mutex // protects the fields below
	next   func() (DirEntry, error, bool)
	stop   func()
	done   bool // the listing reached its end
	closed bool
}

// Stat describes the directory as it was when opened.
func (d *fsDir) Stat() (fs.FileInfo, error) { return d.info, nil }

func (d *fsDir) Read([]byte) (int, error) {
	return 0, pathError("read", d.name, ErrIsDir)
}

// ReadDir returns the next n entries of the directory in name order, as
// fs.ReadDirFile says: with n > 0 at most n, and io.EOF at the end; with
// n <= 0 all that remain. The listing is read from the store as it goes,
// so an entry made or removed meanwhile may or may not be seen.
func (d *fsDir) ReadDir(n int) ([]fs.DirEntry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, pathError("readdir", d.name, ErrClosed)
	}
	p := d.info.sys.(DirInfo).Path
	if d.next == nil && !d.done {
		d.next, d.stop = iter.Pull2(d.v.s.ReadDir(p))
	}
	var list []fs.DirEntry
	for (n <= 0 || len(list) < n) && !d.done {
		e, err, ok := d.next()
		if !ok {
			d.finish()
			break
		}
		if err != nil {
			d.finish()
			return list, pathError("readdir", d.name, err)
		}
		list = append(list, d.v.entry(p, e))
	}
	if n > 0 && len(list) == 0 {
		return nil, io.EOF
	}
	return list, nil
}

// finish ends the listing and lets go of its iterator.
func (d *fsDir) finish() {
	d.done = true
	if d.stop != nil {
		d.stop()
		d.next, d.stop = nil, nil
	}
}

// Close ends the listing; a second Close fails with fs.ErrClosed.
func (d *fsDir) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return pathError("close", d.name, ErrClosed)
	}
	d.closed = true
	d.finish()
	return nil
}
