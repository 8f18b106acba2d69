package dax

// Directories: the store's keys are flat, but a key holding '/' reads as a
// path, and its leading components as directories. Such directories are
// implicit: they exist while a key lies under them. Mkdir makes an explicit
// directory, a journal record of its own with attributes, which exists
// until Rmdir, so that an empty directory persists as a file system's does.
//
// The rules:
//   - a directory exists if it is the root (""), has a record, or a key
//     that is a valid path (ValidPath) or an explicit directory lies under
//     it; keys that are not valid paths are invisible to ReadDir (and so to
//     the mount and Store.FS) but stay reachable through the key API;
//   - a key may equal an implicit directory (the directory wins in
//     ReadDir), never an explicit one: creating such a key fails with
//     ErrIsDir, and Mkdir or SetDirAttr over a file's name with ErrExist;
//   - the key API stays flat: Put, Create and Rename do not check that
//     parent directories exist;
//   - Check wants the parent of every explicit directory to be the root,
//     explicit, or to hold a key that is a valid path. So an operation
//     that takes the last such key out of an implicit directory that
//     still holds an explicit one (Remove, Rename, RenameWith, RenameDir,
//     Rmdir) makes that directory explicit in the same commit, with the
//     default attributes; it existed before and after. Only when a file
//     has the directory's name too can it not, and Check reports it.

import (
	"fmt"
	"io/fs"
	"iter"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/daxstore/daxstore/journal"
)

// DirInfo describes a directory. Path "" is the root.
type DirInfo struct {
	// Path is the directory's slash-separated path, "" for the root.
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
// reachable through the key API, and are left out of ReadDir (and of the
// FUSE mount and Store.FS, which list directories through it).
func ValidPath(key string) bool {
	return key != "." && fs.ValidPath(key) && validKey(key) == nil
}

// checkDirPath reports why path cannot name a directory: root (""), when
// root is not allowed, or a path that is not ValidPath.
func checkDirPath(path string, rootOK bool) error {
	if path == "" {
		if rootOK {
			return nil
		}
		return fmt.Errorf("daxstore: the root directory: %w", ErrInvalidKey)
	}
	if !ValidPath(path) {
		if err := validKey(path); err != nil {
			return err
		}
		return fmt.Errorf("daxstore: %q is not a valid path: %w", path, ErrInvalidKey)
	}
	return nil
}

// parentDir returns the directory holding path ("" for the root).
func parentDir(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[:i]
	}
	return ""
}

// under returns the key prefix of the entries of directory path.
func under(path string) string {
	if path == "" {
		return ""
	}
	return path + "/"
}

// pastSubtree is the greatest key of directory path's subtree and beyond,
// as an "after" bound: every key is UTF-8, which never holds the byte
// 0xff, so no key under path sorts after path+"/\xff".
func pastSubtree(path string) string { return path + "/\xff" }

// fileExistsLocked reports whether a file is named key. The namespace lock
// must be held (shared is enough): nothing creates or removes a key then.
func (s *Store) fileExistsLocked(key string) (bool, error) {
	if s.names[key] != nil {
		return true, nil
	}
	_, ok, err := s.jnl.LookupInode(key)
	return ok, err
}

// keyUnderLocked reports whether a key lies under directory dir: any key
// when anyKey, else one that is a valid path (which makes dir exist).
func (s *Store) keyUnderLocked(dir string, anyKey bool) (bool, error) {
	p := under(dir)
	after := ""
	for {
		n := 64
		if anyKey {
			n = 1
		}
		recs, err := s.jnl.ScanInodes(p, after, n)
		if err != nil {
			return false, err
		}
		for _, r := range recs {
			if anyKey || ValidPath(r.Key) {
				return true, nil
			}
		}
		if len(recs) < n {
			return false, nil
		}
		after = recs[len(recs)-1].Key
	}
}

// dirUnderLocked reports whether an explicit directory lies under dir.
func (s *Store) dirUnderLocked(dir string) (bool, error) {
	ds, err := s.jnl.ScanDirs(under(dir), "", 1)
	return len(ds) > 0, err
}

// statDirLocked describes the directory at path, explicit or implicit, and
// whether there is one. The namespace lock must be held.
func (s *Store) statDirLocked(path string) (DirInfo, bool, error) {
	rec, ok, err := s.jnl.LookupDir(path)
	if err != nil {
		return DirInfo{}, false, err
	}
	if ok {
		return dirInfo(rec), true, nil
	}
	info := DirInfo{Path: path, Mode: defaultDirMode, ModTime: s.epoch, ATime: s.epoch, CTime: s.epoch}
	if path == "" {
		return info, true, nil
	}
	if ok, err := s.keyUnderLocked(path, false); err != nil || ok {
		return info, ok, err
	}
	ok, err = s.dirUnderLocked(path)
	return info, ok, err
}

// dirInfo describes an explicit directory from its record.
func dirInfo(d journal.Dir) DirInfo {
	return DirInfo{Path: d.Path, Explicit: d.Path != "", HasAttr: true, Mode: d.Mode, UID: d.UID, GID: d.GID,
		ModTime: time.Unix(0, d.MTime), ATime: time.Unix(0, d.ATime), CTime: time.Unix(0, d.CTime)}
}

// dirRecord is the journal record of a directory described by di.
func dirRecord(di DirInfo) journal.Dir {
	return journal.Dir{Path: di.Path, Mode: di.Mode, UID: di.UID, GID: di.GID,
		MTime: di.ModTime.UnixNano(), ATime: di.ATime.UnixNano(), CTime: di.CTime.UnixNano()}
}

// withAttr returns di with c applied and its change time now.
func (di DirInfo) withAttr(c AttrChange, now time.Time) DirInfo {
	if c.Mask&AttrMode != 0 {
		di.Mode = c.Mode
	}
	if c.Mask&AttrUID != 0 {
		di.UID = c.UID
	}
	if c.Mask&AttrGID != 0 {
		di.GID = c.GID
	}
	if c.Mask&AttrATime != 0 {
		di.ATime = c.ATime
	}
	if c.Mask&AttrMTime != 0 {
		di.ModTime = c.MTime
	}
	di.CTime = now
	di.HasAttr, di.Explicit = true, di.Path != ""
	return di
}

// parentErrLocked explains why the parent of path is not a directory:
// ErrNotDir when a file is among its ancestors, else ErrNotFound.
func (s *Store) parentErrLocked(path string) error {
	for a := parentDir(path); a != ""; a = parentDir(a) {
		if _, isDir, err := s.statDirLocked(a); err != nil {
			return err
		} else if isDir {
			break
		}
		if ok, err := s.fileExistsLocked(a); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("%q is a file: %w", a, ErrNotDir)
		}
	}
	return fmt.Errorf("parent directory %q: %w", parentDir(path), ErrNotFound)
}

// Mkdir makes an explicit, empty directory at path with attributes c
// (those c leaves out are mode 0755, owner 0:0 and the time of the call),
// in one durable commit. Its parent must be the root or an existing
// directory (ErrNotFound), and no file or directory may already be at path
// (ErrExist); a file among its ancestors gives ErrNotDir. A path that is
// not ValidPath fails with ErrInvalidKey, a bad c as SetAttr does.
func (s *Store) Mkdir(path string, c AttrChange) error {
	if err := checkDirPath(path, false); err != nil {
		return err
	}
	if err := checkAttrChange(c); err != nil {
		return err
	}
	if err := s.begin(true); err != nil {
		return fmt.Errorf("daxstore: mkdir %q: %w", path, err)
	}
	var made FileChange
	defer func() { s.notify(made) }() // after end: outside every lock
	defer s.end()
	d, err := s.mkdirLocked(path, c)
	if err == nil {
		made = FileChange{Kind: ChangeCreate, Key: path, Dir: true}
		err = s.settle(d)
	}
	if err != nil {
		return fmt.Errorf("daxstore: mkdir %q: %w", path, err)
	}
	return nil
}

func (s *Store) mkdirLocked(path string, c AttrChange) (*durable, error) {
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	if ok, err := s.fileExistsLocked(path); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("a file has the name: %w", ErrExist)
	}
	if _, ok, err := s.statDirLocked(path); err != nil {
		return nil, err
	} else if ok {
		return nil, ErrExist
	}
	if _, ok, err := s.statDirLocked(parentDir(path)); err != nil {
		return nil, err
	} else if !ok {
		return nil, s.parentErrLocked(path)
	}
	now := time.Now()
	di := DirInfo{Path: path, Mode: defaultDirMode, ModTime: now, ATime: now}.withAttr(c, now)
	t := s.newTxn()
	t.b.SetDir(dirRecord(di))
	s.dirRecords = dirsSome
	return s.commit(t)
}

// Rmdir removes the directory at path in one durable commit: it must hold
// nothing, no key and no directory (ErrNotEmpty). An implicit directory
// holds something by definition. ErrNotFound when there is no directory
// at path, ErrNotDir when a file is there instead.
func (s *Store) Rmdir(path string) error {
	if err := checkDirPath(path, false); err != nil {
		return err
	}
	if err := s.begin(true); err != nil {
		return fmt.Errorf("daxstore: rmdir %q: %w", path, err)
	}
	var removed FileChange
	defer func() { s.notify(removed) }() // after end: outside every lock
	defer s.end()
	d, err := s.rmdirLocked(path)
	if err == nil {
		removed = FileChange{Kind: ChangeRemove, Key: path, Dir: true}
		err = s.settle(d)
	}
	if err != nil {
		return fmt.Errorf("daxstore: rmdir %q: %w", path, err)
	}
	return nil
}

func (s *Store) rmdirLocked(path string) (*durable, error) {
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	_, explicit, err := s.jnl.LookupDir(path)
	if err != nil {
		return nil, err
	}
	keys, err := s.keyUnderLocked(path, true)
	if err != nil {
		return nil, err
	}
	dirs, err := s.dirUnderLocked(path)
	if err != nil {
		return nil, err
	}
	if !explicit && !keys && !dirs {
		if ok, err := s.fileExistsLocked(path); err != nil {
			return nil, err
		} else if ok {
			return nil, ErrNotDir
		}
		return nil, ErrNotFound
	}
	if keys || dirs {
		return nil, ErrNotEmpty
	}
	keep, err := s.leavingParentsLocked(path, true)
	if err != nil {
		return nil, err
	}
	t := s.newTxn()
	keepParents(t, keep)
	t.b.DeleteDir(path)
	return s.commit(t)
}

// StatDir describes the directory at path ("" is the root), explicit or
// implicit; ErrNotFound if there is none (also when a file is at path). An
// implicit directory, and the root until SetDirAttr gives it attributes,
// shows mode 0755, owner 0:0 and the time the store was opened.
func (s *Store) StatDir(path string) (DirInfo, error) {
	if err := checkDirPath(path, true); err != nil {
		return DirInfo{}, err
	}
	if err := s.begin(false); err != nil {
		return DirInfo{}, fmt.Errorf("daxstore: stat directory %q: %w", path, err)
	}
	defer s.end()
	s.nsMu.RLock()
	defer s.nsMu.RUnlock()
	di, ok, err := s.statDirLocked(path)
	if err != nil {
		return DirInfo{}, fmt.Errorf("daxstore: stat directory %q: %w", path, err)
	}
	if !ok {
		return DirInfo{}, fmt.Errorf("daxstore: stat directory %q: %w", path, ErrNotFound)
	}
	return di, nil
}

// SetDirAttr changes the attributes of the directory at path ("" is the
// root) in one durable commit, and returns its description after the
// change. An implicit directory becomes explicit, taking the attributes
// StatDir showed for the fields c leaves out; if a file has its name too,
// it cannot (ErrExist). ErrNotFound when there is no directory at path,
// ErrNotDir when a file is there instead; a bad c fails as SetAttr does.
func (s *Store) SetDirAttr(path string, c AttrChange) (DirInfo, error) {
	if err := checkDirPath(path, true); err != nil {
		return DirInfo{}, err
	}
	if err := checkAttrChange(c); err != nil {
		return DirInfo{}, err
	}
	if err := s.begin(true); err != nil {
		return DirInfo{}, fmt.Errorf("daxstore: set directory attributes %q: %w", path, err)
	}
	var changed FileChange
	defer func() { s.notify(changed) }() // after end: outside every lock
	defer s.end()
	di, d, err := s.setDirAttrLocked(path, c)
	if err == nil {
		changed = FileChange{Kind: ChangeAttr, Key: path, Dir: true}
		err = s.settle(d)
	}
	if err != nil {
		return DirInfo{}, fmt.Errorf("daxstore: set directory attributes %q: %w", path, err)
	}
	return di, nil
}

func (s *Store) setDirAttrLocked(path string, c AttrChange) (DirInfo, *durable, error) {
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	di, ok, err := s.statDirLocked(path)
	if err != nil {
		return DirInfo{}, nil, err
	}
	if !ok {
		if ok, err := s.fileExistsLocked(path); err != nil {
			return DirInfo{}, nil, err
		} else if ok {
			return DirInfo{}, nil, ErrNotDir
		}
		return DirInfo{}, nil, ErrNotFound
	}
	if !di.Explicit && path != "" {
		// An implicit directory that is also a file's name cannot become
		// explicit: a file and an explicit directory never share a name.
		if ok, err := s.fileExistsLocked(path); err != nil {
			return DirInfo{}, nil, err
		} else if ok {
			return DirInfo{}, nil, fmt.Errorf("a file has the same name; rename it first: %w", ErrExist)
		}
	}
	di = di.withAttr(c, time.Now())
	t := s.newTxn()
	t.b.SetDir(dirRecord(di))
	s.dirRecords = dirsSome
	d, err := s.commit(t)
	return di, d, err
}

// ReadDir reads the journal a page at a time: a short page first and
// after skipping a subdirectory's subtree (the next subdirectory may follow
// at once, and the records of its subtree would be read for nothing), then
// pages twice as long each time, up to readDirPage.
const (
	readDirPage     = 256
	readDirSeekPage = 16
)

// readDirRecords counts the records ReadDir read from the journal: tests
// use it to prove that skipping a subtree reads none of it.
var readDirRecords atomic.Int64

// dirItem is one record a ReadDir stream read: a key (and its file) or an
// explicit directory's path.
type dirItem struct {
	raw string
	dir bool
	fi  FileInfo
}

// dirStream pages through the inode records (or, dirs, the directory
// records) under one directory in key order.
type dirStream struct {
	s      *Store
	prefix string
	dirs   bool
	buf    []dirItem
	after  string // fetch records after this one ("": from the first)
	page   int
	done   bool
	// skips are the subtrees of the subdirectories found so far, whose
	// records the stream drops and, when it can, seeks past.
	skips []span
}

// span is the keys [lo, hi].
type span struct{ lo, hi string }

// head returns the stream's next record outside the skipped subtrees,
// reading a page when needed.
func (st *dirStream) head() (*dirItem, error) {
	for {
		if len(st.buf) == 0 && !st.done {
			if err := st.fetch(); err != nil {
				return nil, err
			}
		}
		if len(st.buf) == 0 {
			return nil, nil
		}
		raw := st.buf[0].raw
		// The stream only moves on: subtrees behind it are done with.
		st.skips = slices.DeleteFunc(st.skips, func(sp span) bool { return sp.hi < raw })
		if !slices.ContainsFunc(st.skips, func(sp span) bool { return sp.lo <= raw }) {
			return &st.buf[0], nil
		}
		st.buf = st.buf[1:]
	}
}

// skip makes the stream pass over the subtree of directory dir: its
// records are dropped, and those not read yet are never read, since the
// next read seeks past them.
func (st *dirStream) skip(dir string) {
	st.skips = append(st.skips, span{lo: dir + "/", hi: pastSubtree(dir)})
	st.page = readDirSeekPage
}

func (st *dirStream) fetch() error {
	s := st.s
	if err := s.begin(false); err != nil {
		return err
	}
	defer s.end()
	s.nsMu.RLock()
	defer s.nsMu.RUnlock()
	for _, sp := range st.skips {
		if st.after >= sp.lo && st.after < sp.hi {
			st.after = sp.hi // spans never overlap: each is another subdirectory's
		}
	}
	n := st.page
	st.page = min(2*n, readDirPage)
	st.buf = st.buf[:0]
	if st.dirs {
		ds, err := s.jnl.ScanDirs(st.prefix, st.after, n)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if d.Path != "" { // the root's own record
				st.buf = append(st.buf, dirItem{raw: d.Path, dir: true})
			}
		}
		st.done = len(ds) < n
		if len(ds) > 0 {
			st.after = ds[len(ds)-1].Path
		}
		readDirRecords.Add(int64(len(ds)))
		return nil
	}
	recs, err := s.jnl.ScanInodes(st.prefix, st.after, n)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		it := dirItem{raw: rec.Key}
		if in := s.names[rec.Key]; in != nil {
			it.fi = info(rec.Key, in)
		} else {
			it.fi = recordInfo(rec)
		}
		st.buf = append(st.buf, it)
	}
	st.done = len(recs) < n
	if len(recs) > 0 {
		st.after = recs[len(recs)-1].Key
	}
	readDirRecords.Add(int64(len(recs)))
	return nil
}

// readDirHold is how many entries ReadDir holds back before it resolves,
// by looking them up, the directories that hold back the first (see
// ReadDir); tests lower it.
var readDirHold = 256

// readDirHook, when set by a test, learns how many entries ReadDir holds.
var readDirHook func(held int)

// pendingEntry is an entry ReadDir found but may not yield yet: a
// directory whose name sorts before it may still come (see ReadDir).
type pendingEntry struct {
	e DirEntry
	// cuts are the lengths of the prefixes of the name that may still
	// name such a directory, shortest first: each ends before a byte
	// below '/', and the last is the whole name (a directory of the same
	// name wins over a file). cuts[k:] are unresolved.
	cuts []int
	k    int
}

// released reports whether nothing can come any more that precedes the
// entry or shares its name, the records before key next having been read
// (next "" and end: all of them).
func (pe *pendingEntry) released(prefix, next string, end bool) bool {
	if end || pe.k == len(pe.cuts) {
		return true
	}
	// The subtree of the shortest unresolved prefix d ends before
	// prefix+d+"0" ('0' follows '/'), and so do those of the longer ones.
	return prefix+pe.e.Name[:pe.cuts[pe.k]]+"0" <= next
}

// dirReader is one ReadDir in progress.
type dirReader struct {
	s       *Store
	prefix  string
	streams [2]*dirStream
	pending []pendingEntry
	probed  map[string]bool // directory name -> exists, as looked up
	last    string          // the last name yielded
	yielded bool
}

// ReadDir yields the entries of the directory at path ("" is the root) in
// name order, one per name, reading the journal a page at a time and
// skipping over the subtree of each subdirectory, so its cost is in
// proportion to the entries it yields. A name that is both a file and a
// directory yields the directory. Keys that are not valid paths are left
// out. It holds no lock while the loop body runs; an entry created,
// removed or renamed meanwhile may or may not be yielded. A missing
// directory yields ErrNotFound (ErrNotDir when a file is at path), and an
// error ends the sequence.
//
// Keys come in byte order, in which a subdirectory "a" (its keys "a/...")
// sorts after the names "a-b" or "a.txt", which sort after "a" by name.
// So an entry whose name n holds bytes below '/' waits until the keys of
// each subdirectory n[:i] (i at such a byte) have gone by, and every
// entry waits for its own name's subtree to go by (the directory wins);
// those are the only names that can still precede or merge with it. When
// more than readDirHold entries wait (a directory of "img-0001.jpg" files
// waits for "img/"), ReadDir looks up the directory the first one waits
// for instead, once per name, so what it holds stays bounded.
func (s *Store) ReadDir(path string) iter.Seq2[DirEntry, error] {
	return func(yield func(DirEntry, error) bool) {
		if err := checkDirPath(path, true); err != nil {
			yield(DirEntry{}, err)
			return
		}
		if err := s.dirMustExist(path); err != nil {
			yield(DirEntry{}, fmt.Errorf("daxstore: read directory %q: %w", path, err))
			return
		}
		p := under(path)
		r := &dirReader{s: s, prefix: p, probed: map[string]bool{}}
		r.streams = [2]*dirStream{
			{s: s, prefix: p, page: readDirSeekPage},
			{s: s, prefix: p, dirs: true, page: readDirSeekPage},
		}
		if err := r.run(yield); err != nil {
			yield(DirEntry{}, fmt.Errorf("daxstore: read directory %q: %w", path, err))
		}
	}
}

// run merges the streams, yielding entries as they are released. It
// returns nil when the directory is done or yield asked to stop.
func (r *dirReader) run(yield func(DirEntry, error) bool) error {
	p := r.prefix
	for {
		var next *dirItem
		var from *dirStream
		for _, st := range r.streams {
			h, err := st.head()
			if err != nil {
				return err
			}
			if h != nil && (next == nil || h.raw < next.raw) {
				next, from = h, st
			}
		}
		at := ""
		if next != nil {
			at = next.raw
		}
		for {
			for len(r.pending) > 0 && r.pending[0].released(p, at, next == nil) {
				e := r.pending[0].e
				r.pending = r.pending[1:]
				r.last, r.yielded = e.Name, true
				if !yield(e, nil) {
					return nil
				}
			}
			if next == nil {
				return nil
			}
			if len(r.pending) <= readDirHold {
				break
			}
			if err := r.resolve(); err != nil {
				return err
			}
		}
		item := *next
		from.buf = from.buf[1:]
		if !ValidPath(item.raw) {
			continue
		}
		name, isDir := item.raw[len(p):], item.dir
		if i := strings.IndexByte(name, '/'); i >= 0 {
			name, isDir = name[:i], true
		}
		e := DirEntry{Name: name, IsDir: isDir}
		if !isDir {
			e.File = item.fi
		}
		r.add(e)
		if readDirHook != nil {
			readDirHook(len(r.pending))
		}
	}
}

// resolve looks up the directory the first held entry waits for and, if
// there is one, holds it too and skips its subtree.
func (r *dirReader) resolve() error {
	pe := &r.pending[0]
	d := pe.e.Name[:pe.cuts[pe.k]]
	pe.k++
	exists, ok := r.probed[d]
	if !ok {
		var err error
		if exists, err = r.s.dirExists(r.prefix + d); err != nil {
			return err
		}
		r.probed[d] = exists
	}
	if exists {
		r.add(DirEntry{Name: d, IsDir: true})
	}
	return nil
}

// add holds e back, in name order; a directory replaces a file of the
// same name. A directory's subtree is skipped. A name at or before the
// last one yielded (made since by a concurrent change) is dropped, so
// that names come in order, once each.
func (r *dirReader) add(e DirEntry) {
	if e.IsDir {
		for _, st := range r.streams {
			st.skip(r.prefix + e.Name)
		}
	}
	if r.yielded && e.Name <= r.last {
		return
	}
	i, found := slices.BinarySearchFunc(r.pending, e.Name, func(x pendingEntry, name string) int {
		return strings.Compare(x.e.Name, name)
	})
	if found {
		if e.IsDir {
			r.pending[i].e = e
		}
		return
	}
	var cuts []int
	for j := 0; j < len(e.Name); j++ {
		if e.Name[j] < '/' {
			cuts = append(cuts, j)
		}
	}
	cuts = append(cuts, len(e.Name))
	r.pending = slices.Insert(r.pending, i, pendingEntry{e: e, cuts: cuts})
}

// dirExists reports whether a directory is at path.
func (s *Store) dirExists(path string) (bool, error) {
	if err := s.begin(false); err != nil {
		return false, err
	}
	defer s.end()
	s.nsMu.RLock()
	defer s.nsMu.RUnlock()
	_, ok, err := s.statDirLocked(path)
	return ok, err
}

// dirMustExist fails unless a directory is at path: ErrNotDir when a file
// is there instead, else ErrNotFound.
func (s *Store) dirMustExist(path string) error {
	if err := s.begin(false); err != nil {
		return err
	}
	defer s.end()
	s.nsMu.RLock()
	defer s.nsMu.RUnlock()
	if _, ok, err := s.statDirLocked(path); err != nil || ok {
		return err
	}
	if ok, err := s.fileExistsLocked(path); err != nil {
		return err
	} else if ok {
		return ErrNotDir
	}
	return ErrNotFound
}

// MaxRenameDirEntries is the most keys and explicit directories one
// RenameDir moves: it is one journal commit, whose size and time grow with
// them, so a larger directory is refused (ErrInvalidRange) rather than
// made into a commit of unbounded size.
const MaxRenameDirEntries = 65536

// renameDirLimit is MaxRenameDirEntries; tests lower it.
var renameDirLimit = MaxRenameDirEntries

// maxRenameDirBytes bounds the inline bytes one RenameDir rewrites, for the
// same reason: 65536 files of the largest inline size would be gigabytes.
const maxRenameDirBytes = 64 << 20

// RenameDir moves the directory old, every key under it and every explicit
// directory under it, to new, in one durable commit. new must not exist
// (ErrExist) unless it is an empty explicit directory, which is replaced;
// its parent must be a directory (ErrNotFound, ErrNotDir as for Mkdir), and
// it may not lie under old (ErrInvalidKey). A directory of more than
// MaxRenameDirEntries entries is refused with ErrInvalidRange, as is one
// whose moved keys would grow past MaxKeyLen (ErrInvalidKey). Files in
// memory take their new keys as Rename gives them; open Files and pins of
// moved files stay valid.
func (s *Store) RenameDir(old, new string) error {
	if err := checkDirPath(old, false); err != nil {
		return err
	}
	if err := checkDirPath(new, false); err != nil {
		return err
	}
	if strings.HasPrefix(new, old+"/") {
		return fmt.Errorf("daxstore: rename directory %q into itself (%q): %w", old, new, ErrInvalidKey)
	}
	if err := s.begin(true); err != nil {
		return fmt.Errorf("daxstore: rename directory %q: %w", old, err)
	}
	var renamed FileChange
	defer func() { s.notify(renamed) }() // after end: outside every lock
	defer s.end()
	d, err := s.renameDirLocked(old, new)
	if err == nil && old != new {
		renamed = FileChange{Kind: ChangeRename, Key: old, NewKey: new, Dir: true}
	}
	if err == nil {
		err = s.settle(d)
	}
	if err != nil {
		return fmt.Errorf("daxstore: rename directory %q to %q: %w", old, new, err)
	}
	return nil
}

func (s *Store) renameDirLocked(old, new string) (*durable, error) {
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	oldInfo, ok, err := s.statDirLocked(old)
	if err != nil {
		return nil, err
	}
	if !ok {
		if ok, err := s.fileExistsLocked(old); err != nil {
			return nil, err
		} else if ok {
			return nil, ErrNotDir
		}
		return nil, ErrNotFound
	}
	if old == new {
		return nil, nil
	}
	if err := s.renameTargetLocked(new); err != nil {
		return nil, err
	}
	recs, dirs, err := s.subtreeLocked(old)
	if err != nil {
		return nil, err
	}
	moved := func(key string) string { return new + key[len(old):] }
	for _, r := range recs {
		if err := validKey(moved(r.Key)); err != nil {
			return nil, fmt.Errorf("key %q would become too long: %w", r.Key, ErrInvalidKey)
		}
	}
	for _, d := range dirs {
		if err := validKey(moved(d.Path)); err != nil {
			return nil, fmt.Errorf("directory %q would become too long: %w", d.Path, ErrInvalidKey)
		}
	}

	// The files in memory are renamed as Rename renames one, under their
	// extent-map locks, which writers hold while they commit a file's
	// record: no writer can commit a record under the old key once the
	// key changed. Holding several extent-map locks at once is outside
	// the rank order, which allows one; it cannot deadlock, because the
	// namespace lock held exclusive keeps every other taker of more than
	// one out, and no holder of one waits for another or for the
	// namespace lock. So only the first is taken through its rank check.
	var res []*inode
	for _, r := range recs {
		if in := s.names[r.Key]; in != nil {
			res = append(res, in)
		}
	}
	for i, in := range res {
		if i == 0 {
			in.mapMu.Lock()
		} else {
			in.mapMu.mu.Lock()
		}
	}
	defer func() {
		for i := len(res) - 1; i >= 0; i-- {
			if i == 0 {
				res[i].mapMu.Unlock()
			} else {
				res[i].mapMu.mu.Unlock()
			}
		}
	}()

	keep, err := s.leavingParentsLocked(old, true)
	if err != nil {
		return nil, err
	}
	t := s.newTxn()
	keepParents(t, keep)
	now := time.Now()
	t.b.DeleteDir(new) // an empty explicit directory at new is replaced
	if oldInfo.Explicit {
		t.b.DeleteDir(old)
		oldInfo.Path, oldInfo.CTime = new, now
		t.b.SetDir(dirRecord(oldInfo))
	}
	for _, d := range dirs {
		t.b.DeleteDir(d.Path)
		d.Path, d.CTime = moved(d.Path), now.UnixNano()
		t.b.SetDir(d)
	}
	prev := make([]*string, len(res))
	for i, in := range res {
		prev[i] = in.key.Load()
		k := moved(*prev[i])
		in.key.Store(&k)
		t.b.DeleteInode(*prev[i])
		t.touch(in) // recordInodes writes the record under the new key
	}
	for _, r := range recs {
		if s.names[r.Key] != nil {
			continue
		}
		t.b.DeleteInode(r.Key)
		r.Key = moved(r.Key)
		t.b.SetInode(r) // an External file's extent records stay keyed by inode
	}
	d, err := s.commit(t)
	if err != nil {
		for i, in := range res {
			in.key.Store(prev[i])
		}
		return nil, err
	}
	for i, in := range res {
		delete(s.names, *prev[i])
		s.names[in.name()] = in
	}
	return d, nil
}

// renameTargetLocked fails unless new may receive a renamed directory:
// nothing there, or an empty explicit directory; and its parent a
// directory.
func (s *Store) renameTargetLocked(new string) error {
	if ok, err := s.fileExistsLocked(new); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("a file is named %q: %w", new, ErrExist)
	}
	_, explicit, err := s.jnl.LookupDir(new)
	if err != nil {
		return err
	}
	// Any key under new, valid path or not, would collide with a moved
	// one; so would a directory record.
	keys, err := s.keyUnderLocked(new, true)
	if err != nil {
		return err
	}
	dirs, err := s.dirUnderLocked(new)
	if err != nil {
		return err
	}
	if keys || dirs {
		return fmt.Errorf("%q is a directory that is not empty: %w", new, ErrExist)
	}
	if !explicit {
		if _, ok, err := s.statDirLocked(parentDir(new)); err != nil {
			return err
		} else if !ok {
			return s.parentErrLocked(new)
		}
	}
	return nil
}

// subtreeLocked returns the records of every key and every explicit
// directory under dir, refusing more than MaxRenameDirEntries of them (or
// more than maxRenameDirBytes of inline bytes) with ErrInvalidRange.
func (s *Store) subtreeLocked(dir string) ([]journal.Inode, []journal.Dir, error) {
	p := under(dir)
	tooMany := func() error {
		return fmt.Errorf("directory %q holds more than %d keys and directories, the most one rename moves; move its contents in parts: %w",
			dir, renameDirLimit, ErrInvalidRange)
	}
	var recs []journal.Inode
	var bytes int
	for after := ""; ; {
		page, err := s.jnl.ScanInodes(p, after, listPage)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range page {
			bytes += len(r.Data)
		}
		recs = append(recs, page...)
		if len(recs) > renameDirLimit {
			return nil, nil, tooMany()
		}
		if bytes > maxRenameDirBytes {
			return nil, nil, fmt.Errorf("directory %q holds more than %d bytes of inline values, the most one rename rewrites: %w",
				dir, maxRenameDirBytes, ErrInvalidRange)
		}
		if len(page) < listPage {
			break
		}
		after = page[len(page)-1].Key
	}
	var dirs []journal.Dir
	for after := ""; ; {
		page, err := s.jnl.ScanDirs(p, after, listPage)
		if err != nil {
			return nil, nil, err
		}
		dirs = append(dirs, page...)
		if len(recs)+len(dirs) > renameDirLimit {
			return nil, nil, tooMany()
		}
		if len(page) < listPage {
			break
		}
		after = page[len(page)-1].Path
	}
	return recs, dirs, nil
}

// dirPresence says whether a store holds directory records, so that
// creating a key in a store that never made a directory costs no journal
// read (refuseDirLocked). It is learned on first need and raised by every
// operation that writes a directory record; it is never lowered (Rmdir of
// the last one leaves it set, which costs a read per new key, no more).
type dirPresence uint8

const (
	dirsUnknown dirPresence = iota
	dirsNone
	dirsSome
)

// hasDirRecordsLocked reports whether the journal may hold directory
// records, learning it on first use. The namespace lock must be held
// exclusive.
func (s *Store) hasDirRecordsLocked() (bool, error) {
	if s.dirRecords == dirsUnknown {
		ds, err := s.jnl.ScanDirs("", "", 1)
		if err != nil {
			return false, err
		}
		s.dirRecords = dirsNone
		if len(ds) > 0 {
			s.dirRecords = dirsSome
		}
	}
	return s.dirRecords == dirsSome, nil
}

// refuseDirLocked fails with ErrIsDir when key is an explicit directory:
// a file and an explicit directory never share a name (Check). A key
// equal to an implicit directory is allowed; the directory wins in
// ReadDir. The namespace lock must be held exclusive.
func (s *Store) refuseDirLocked(key string) error {
	if some, err := s.hasDirRecordsLocked(); err != nil || !some {
		return err
	}
	_, ok, err := s.jnl.LookupDir(key)
	if err != nil {
		return err
	}
	if ok {
		return fmt.Errorf("%q is a directory: %w", key, ErrIsDir)
	}
	return nil
}

// checkDirs checks the directory records of the snapshot against its file
// keys (sorted): each is a valid path, names no file, and its parent is
// the root, an explicit directory, or implicit through a key that is a
// valid path.
func (img *checkImage) checkDirs(keys []string, bad func(string, ...any)) error {
	dirs, err := img.snap.Dirs()
	if err != nil {
		return err
	}
	explicit := make(map[string]bool, len(dirs))
	for _, d := range dirs {
		explicit[d.Path] = true
	}
	for _, d := range dirs {
		if d.Path == "" {
			continue
		}
		if !ValidPath(d.Path) {
			bad("directory record %q is not a valid path", d.Path)
			continue
		}
		if _, found := slices.BinarySearch(keys, d.Path); found {
			bad("directory %q is also a file", d.Path)
		}
		parent := parentDir(d.Path)
		if parent == "" || explicit[parent] || validKeyUnder(keys, parent) {
			continue
		}
		bad("directory %q has no parent directory %q: no record and no key under it", d.Path, parent)
	}
	return nil
}

// validKeyUnder reports whether a key of sorted keys that is a valid path
// lies under directory dir.
func validKeyUnder(keys []string, dir string) bool {
	p := dir + "/"
	i, _ := slices.BinarySearch(keys, p)
	for ; i < len(keys) && strings.HasPrefix(keys[i], p); i++ {
		if ValidPath(keys[i]) {
			return true
		}
	}
	return false
}

// leavingParentsLocked returns the directories to make explicit in the
// commit that takes key (with subtree, every key and directory under key
// too) away from its parents, so that no explicit directory is left whose
// parent exists only through it (which Check reports): each ancestor with
// no record that keeps no key that is a valid path, yet still holds an
// explicit directory. They exist before and after; they only become
// explicit, with the default attributes. A store without directory
// records returns at once. The namespace lock must be held exclusive.
func (s *Store) leavingParentsLocked(key string, subtree bool) ([]journal.Dir, error) {
	if some, err := s.hasDirRecordsLocked(); err != nil || !some {
		return nil, err
	}
	var out []journal.Dir
	now := time.Now().UnixNano()
	for p := parentDir(key); p != ""; p = parentDir(p) {
		if _, ok, err := s.jnl.LookupDir(p); err != nil || ok {
			return out, err
		}
		kept, err := s.keyStaysUnderLocked(p, key, subtree)
		if err != nil || kept {
			return out, err
		}
		// p needs to become explicit if a directory promoted below it
		// or an explicit one other than the leaving ones stays under it.
		if len(out) == 0 {
			ds, err := s.dirsStayUnderLocked(p, key, subtree)
			if err != nil {
				return nil, err
			}
			if !ds {
				continue
			}
		}
		if isFile, err := s.fileExistsLocked(p); err != nil || isFile {
			// A file has p's name: p cannot become explicit. The
			// directory under it is left to Check (see the rules at
			// the top of this file).
			return out, err
		}
		out = append(out, journal.Dir{Path: p, Mode: defaultDirMode, MTime: now, ATime: now, CTime: now})
	}
	return out, nil
}

// keyStaysUnderLocked reports whether a key that is a valid path and not
// leaving lies under dir (leaving: key, and with subtree the keys under
// it, whose records it seeks past).
func (s *Store) keyStaysUnderLocked(dir, key string, subtree bool) (bool, error) {
	p := under(dir)
	for after := ""; ; {
		recs, err := s.jnl.ScanInodes(p, after, 64)
		if err != nil {
			return false, err
		}
		for _, r := range recs {
			if r.Key != key && !(subtree && strings.HasPrefix(r.Key, key+"/")) && ValidPath(r.Key) {
				return true, nil
			}
		}
		if len(recs) < 64 {
			return false, nil
		}
		after = recs[len(recs)-1].Key
		if subtree && strings.HasPrefix(after, key+"/") {
			after = pastSubtree(key)
		}
	}
}

// dirsStayUnderLocked reports whether an explicit directory that is not
// leaving (key, and with subtree those under it) lies under dir.
func (s *Store) dirsStayUnderLocked(dir, key string, subtree bool) (bool, error) {
	p := under(dir)
	for after := ""; ; {
		ds, err := s.jnl.ScanDirs(p, after, 64)
		if err != nil {
			return false, err
		}
		for _, d := range ds {
			if d.Path != key && !(subtree && strings.HasPrefix(d.Path, key+"/")) {
				return true, nil
			}
		}
		if len(ds) < 64 {
			return false, nil
		}
		after = ds[len(ds)-1].Path
		if subtree && strings.HasPrefix(after, key+"/") {
			after = pastSubtree(key)
		}
	}
}

// keepParents queues the directories leavingParentsLocked returned.
func keepParents(t *txn, dirs []journal.Dir) {
	for _, d := range dirs {
		t.b.SetDir(d)
	}
}
