package dax

// The namespace: keys, inodes and the per-file locks, and the operations
// that only rename, create or list.

import (
	"fmt"
	"iter"
	"math"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/daxstore/daxstore/journal"
	"github.com/daxstore/daxstore/pmem"
)

// MaxKeyLen is the longest key in bytes.
const MaxKeyLen = 1024

// MaxFileSize is the largest size a file may reach, in bytes (64 TiB). It
// keeps every block computation far from overflow.
const MaxFileSize = 1 << 46

// inode is one file. Lock order: ioMu → invalMu → mapMu (after the store's
// namespace lock, before alloc, busy and pageref).
//
// Only files in use are in memory (see inodeCache): an inode is resident
// while users is above zero, and may be dropped from memory once it is not,
// since its journal record then says everything it does.
type inode struct {
	ino uint64

	// ioMu is the IO lock: reads and writes hold it shared; truncate,
	// punch, zero-range, remove and Put hold it exclusive, which drains
	// the reads and writes in flight.
	ioMu rankedRWMutex[ioRank]
	// invalMu is the invalidate lock: Pin holds it shared; layout-breaking
	// operations hold it exclusive so no pin can start while they run.
	invalMu rankedRWMutex[invalidateRank]
	// mapMu is the extent-map lock: it protects extents, size, mtime,
	// removed, external, inline and data. Writers hold it for the whole write so two
	// writes cannot both fill the same hole.
	mapMu    rankedMutex[extentMapRank]
	extents  *extentMap
	size     int64
	mtime    time.Time
	removed  bool // the key was removed; open Files get ErrNotFound
	external bool // the journal keeps the extents in extent records, not in the inode record
	// pinCache is a written extent that Pin may use without mapMu; see
	// pinCache for why it stays true.
	pinCache pinCache
	// inline marks a file whose bytes are data, kept in its journal record
	// and here, with no region blocks: extents is empty and size is
	// len(data). data is never written in place (a change installs a new
	// slice), so a reader may use the slice it saw after dropping mapMu.
	inline bool
	data   []byte
	// reads and readBytes count this file's ReadAt calls and the bytes
	// they copied, under mapMu, which every read holds anyway: counting
	// there costs no atomic on the read path. They move into the store's
	// metrics totals when the inode leaves memory (foldReads).
	reads, readBytes uint64
	// attr holds the file's attributes, nil for a file never given any;
	// under mapMu. A change installs a new value (see SetAttr).
	attr *fileAttr

	// windows are the open follow windows of the file, under mapMu: every
	// commit that changes the extent map or the size remaps them before
	// any block it frees can be reused (see remapWindows). winSize is the
	// size they were last laid out for. Each window holds a user of the
	// inode, so the inode stays resident while it is open.
	windows []*Window
	winSize int64

	// users counts open Files and operations in flight on the inode. It
	// rises only under the namespace lock (shared is enough), and the
	// inode leaves memory only under that lock held exclusive while it is
	// zero, so one file never has two inodes in memory.
	users atomic.Int32

	// key is the file's name. Rename changes it with the namespace lock
	// and mapMu held; anyone may read it without a lock, so that an error
	// message can name the file while holding a file lock, which must not
	// take the namespace lock (it comes first in the lock order).
	key atomic.Pointer[string]
}

func newInode(ino uint64, key string, size int64, mtime time.Time) *inode {
	in := &inode{ino: ino, size: size, mtime: mtime, extents: newExtentMap()}
	in.key.Store(&key)
	return in
}

// inodeFromRecord builds the in-memory inode of a journal record, checking
// what the journal's decoder cannot: that its extents lie in the region's
// data blocks and do not overlap.
func (s *Store) inodeFromRecord(rec journal.Inode) (*inode, error) {
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("inode %d of key %q: "+format+": %w", append([]any{rec.Ino, rec.Key}, append(args, ErrCorrupt)...)...)
	}
	if rec.Size < 0 || rec.Size > MaxFileSize {
		return nil, corrupt("size %d", rec.Size)
	}
	in := newInode(rec.Ino, rec.Key, rec.Size, time.Unix(0, rec.ModTime))
	in.external = rec.External
	in.attr = attrFromRecord(rec)
	if rec.Inline {
		// The decoder proved that it maps no blocks and that size is
		// len(Data).
		in.inline, in.data = true, rec.Data
		return in, nil
	}
	blocks := s.refs.Blocks()
	for _, r := range rec.Extents {
		e := pmem.Extent{Start: r.Start, Len: r.Len}
		if !inDataBlocks(e, blocks) {
			return nil, corrupt("file block %d maps to %v, outside the region", r.FileBlock, e)
		}
		if r.FileBlock > math.MaxUint64-r.Len || len(in.extents.find(r.FileBlock, r.FileBlock+r.Len)) > 0 {
			return nil, corrupt("file block %d is mapped twice", r.FileBlock)
		}
		in.extents.insert(mapping{fileBlock: r.FileBlock, start: r.Start, n: r.Len, unwritten: r.Unwritten})
	}
	if in.extents.blocks() != rec.Blocks {
		return nil, corrupt("%d blocks recorded, %d mapped", rec.Blocks, in.extents.blocks())
	}
	return in, nil
}

// name returns the file's current key; it takes no lock.
func (in *inode) name() string { return *in.key.Load() }

// lockAll takes the file's three locks exclusive, in order.
func (in *inode) lockAll() {
	in.ioMu.Lock()
	in.invalMu.Lock()
	in.mapMu.Lock()
	// Whoever holds every lock may take written blocks from the file: the
	// extent that Pin's fast path remembers may no longer be the file's.
	in.pinCache.clear()
}

func (in *inode) unlockAll() {
	in.mapMu.Unlock()
	in.invalMu.Unlock()
	in.ioMu.Unlock()
}

// acquire returns the inode of key, resident, and keeps it so until
// release; nil when no file has key. A hit takes the namespace lock shared;
// a miss reads the journal under it held exclusive, so that nothing can
// create, change or drop the file between the read and the inode's
// arrival in memory.
func (s *Store) acquire(key string) (*inode, error) {
	s.nsMu.RLock()
	in := s.names[key]
	if in != nil {
		in.users.Add(1)
	}
	s.nsMu.RUnlock()
	if in != nil {
		return in, nil
	}
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	return s.acquireLocked(key)
}

// acquireLocked is acquire for a caller holding the namespace lock
// exclusive.
func (s *Store) acquireLocked(key string) (*inode, error) {
	if in := s.names[key]; in != nil {
		in.users.Add(1)
		return in, nil
	}
	rec, ok, err := s.jnl.LookupInode(key)
	if err != nil {
		return nil, fmt.Errorf("look up: %w", noSpace(err))
	}
	if !ok {
		return nil, nil
	}
	if rec.Key != key {
		return nil, fmt.Errorf("look up: record of key %q names %q: %w", key, rec.Key, ErrCorrupt)
	}
	in, err := s.inodeFromRecord(rec)
	if err != nil {
		return nil, fmt.Errorf("look up: %w", err)
	}
	in.users.Add(1)
	s.residentLocked(in)
	return in, nil
}

// release ends a use of in that acquire began.
func (s *Store) release(in *inode) { in.users.Add(-1) }

// residentLocked puts in into memory under its key and, when more inodes
// are in memory than Options.InodeCache allows, drops a few that nobody
// uses. Go's map iteration starts at a random place, so which ones is
// random: a cheap stand-in for least-recently-used that needs no list
// touched on every hit. The namespace lock must be held exclusive.
func (s *Store) residentLocked(in *inode) {
	s.names[in.name()] = in
	over := len(s.names) - s.opts.InodeCache
	if over <= 0 {
		return
	}
	looked := 0
	for k, old := range s.names {
		if over <= 0 || looked >= 4*over+8 {
			break
		}
		looked++
		if old != in && old.users.Load() == 0 {
			// Its read counts go to the store's totals. The extent-map
			// lock is taken raw, outside the rank order: nobody uses
			// old (users 0), so at most a holder finishing its last
			// call has it, and that holder waits for nothing.
			old.mapMu.mu.Lock()
			s.met.foldReads(old)
			old.mapMu.mu.Unlock()
			delete(s.names, k)
			over--
		}
	}
}

// peek returns a description of key's file without bringing it into
// memory: from memory when it is resident, otherwise from the journal. The
// namespace lock is held shared across the journal read: only a resident
// inode can change, and nothing can become resident or leave memory while
// it is held, so the record read is the file as it is.
func (s *Store) peek(key string) (FileInfo, bool, error) {
	s.nsMu.RLock()
	defer s.nsMu.RUnlock()
	if in := s.names[key]; in != nil {
		return info(key, in), true, nil
	}
	rec, ok, err := s.jnl.LookupInode(key)
	if err != nil || !ok {
		return FileInfo{}, false, err
	}
	return recordInfo(rec), true, nil
}

// recordInfo describes a file from its journal record.
func recordInfo(rec journal.Inode) FileInfo {
	fi := FileInfo{Key: rec.Key, Ino: rec.Ino, Size: rec.Size, Blocks: rec.Blocks, ModTime: time.Unix(0, rec.ModTime)}
	fillAttr(&fi, attrFromRecord(rec))
	return fi
}

// validKey reports why key is not acceptable, or nil.
func validKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("daxstore: empty key: %w", ErrInvalidKey)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("daxstore: key of %d bytes, limit %d: %w", len(key), MaxKeyLen, ErrInvalidKey)
	case !utf8.ValidString(key):
		return fmt.Errorf("daxstore: key %q is not UTF-8: %w", key, ErrInvalidKey)
	case strings.IndexByte(key, 0) >= 0:
		return fmt.Errorf("daxstore: key %q holds a NUL byte: %w", key, ErrInvalidKey)
	}
	return nil
}

// Create creates an empty file named key. It fails with ErrExist when the
// key exists.
func (s *Store) Create(key string) (*File, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	return s.createFile(key, nil)
}

// createFile is Create and CreateWith once their arguments are checked: init
// gives the new inode its attributes (nil for none).
func (s *Store) createFile(key string, init func(in *inode)) (*File, error) {
	if err := s.begin(true); err != nil {
		return nil, fmt.Errorf("daxstore: create %q: %w", key, err)
	}
	var created FileChange
	defer func() { s.notify(created) }() // after end: outside every lock
	defer s.end()
	in, d, err := s.createLocked(key, init)
	if err == nil {
		created = FileChange{Kind: ChangeCreate, Key: key, Ino: in.ino}
		if err = s.settle(d); err != nil { // with the namespace lock released
			s.release(in)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("daxstore: create %q: %w", key, err)
	}
	return &File{s: s, in: in}, nil
}

// createLocked is Create under the namespace lock: it commits and
// publishes the new inode, given its attributes by init (nil for none),
// and returns what the commit owes.
func (s *Store) createLocked(key string, init func(*inode)) (*inode, *durable, error) {
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	old, err := s.acquireLocked(key)
	if err != nil {
		return nil, nil, err
	}
	if old != nil {
		s.release(old)
		return nil, nil, ErrExist
	}
	if err := s.refuseDirLocked(key); err != nil {
		return nil, nil, err
	}
	in := newInode(s.nextIno, key, 0, time.Now())
	if init != nil {
		init(in)
	}
	t := s.newTxn()
	s.recordNewInode(t, in)
	d, err := s.commit(t)
	if err != nil {
		return nil, nil, err
	}
	s.addInode(in)
	in.users.Add(1) // the File's
	return in, d, nil
}

// inodeChunk is how many inode numbers one meta record reserves: the
// journal records a ceiling, not every number handed out, so creating a
// file writes no meta record but once per inodeChunk files. A crash skips
// the rest of a chunk; numbers are unique, not dense.
const inodeChunk = 1024

// recordNewInode adds a new inode's record, the file count and, when the
// reserved inode numbers run out, a raised ceiling to t. nsMu must be held
// exclusive.
func (s *Store) recordNewInode(t *txn, in *inode) {
	t.setInode(in)
	t.files++
	if in.ino >= s.inoCeiling {
		s.inoCeiling = in.ino + inodeChunk
		t.b.SetMeta(journal.Meta{UUID: s.uuid, BlockSize: uint32(s.bs), BlockCount: s.refs.Blocks(), NextInode: s.inoCeiling})
	}
}

// addInode publishes a committed new inode. nsMu must be held exclusive.
func (s *Store) addInode(in *inode) {
	s.residentLocked(in)
	s.nextIno = in.ino + 1
}

// Open opens the file named key. The File keeps the file's metadata in
// memory until Close.
func (s *Store) Open(key string) (*File, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	if err := s.begin(false); err != nil {
		return nil, fmt.Errorf("daxstore: open %q: %w", key, err)
	}
	defer s.end()
	in, err := s.acquire(key)
	if err != nil {
		return nil, fmt.Errorf("daxstore: open %q: %w", key, err)
	}
	if in == nil {
		return nil, fmt.Errorf("daxstore: open %q: %w", key, ErrNotFound)
	}
	return &File{s: s, in: in}, nil
}

// Rename gives the file old the name new. It fails with ErrNotFound when old
// is missing and ErrExist when new exists; it never replaces a file.
func (s *Store) Rename(old, new string) (err error) {
	defer func() { s.met.done(opRename, err) }()
	if err := validKey(old); err != nil {
		return err
	}
	if err := validKey(new); err != nil {
		return err
	}
	if err := s.begin(true); err != nil {
		return fmt.Errorf("daxstore: rename %q: %w", old, err)
	}
	renamed := FileChange{Kind: ChangeRename, Key: old, NewKey: new}
	defer func() { s.notify(renamed) }() // after end: outside every lock
	defer s.end()
	d, err := s.renameLocked(old, new, &renamed.Ino)
	if err != nil || old == new {
		renamed.Kind = 0
	}
	if err != nil {
		return err
	}
	if err := s.settle(d); err != nil { // with the namespace lock released
		return fmt.Errorf("daxstore: rename %q: %w", old, err)
	}
	return nil
}

// renameLocked is Rename under the namespace lock; it returns what its
// commit owes and sets *ino to the file's inode number.
func (s *Store) renameLocked(old, new string, ino *uint64) (*durable, error) {
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	in, err := s.acquireLocked(old)
	if err != nil {
		return nil, fmt.Errorf("daxstore: rename %q: %w", old, err)
	}
	if in == nil {
		return nil, fmt.Errorf("daxstore: rename %q: %w", old, ErrNotFound)
	}
	defer s.release(in)
	*ino = in.ino
	if old == new {
		return nil, nil
	}
	if other, err := s.acquireLocked(new); err != nil {
		return nil, fmt.Errorf("daxstore: rename %q: %w", old, err)
	} else if other != nil {
		s.release(other)
		return nil, fmt.Errorf("daxstore: rename %q to %q: %w", old, new, ErrExist)
	}
	if err := s.refuseDirLocked(new); err != nil {
		return nil, fmt.Errorf("daxstore: rename %q: %w", old, err)
	}
	keep, err := s.leavingParentsLocked(old, false)
	if err != nil {
		return nil, fmt.Errorf("daxstore: rename %q: %w", old, err)
	}
	in.mapMu.Lock()
	defer in.mapMu.Unlock()
	t := s.newTxn()
	keepParents(t, keep)
	t.b.DeleteInode(old)
	prev := in.key.Load()
	in.key.Store(&new)
	t.setInode(in)
	d, err := s.commit(t)
	if err != nil {
		in.key.Store(prev)
		return nil, fmt.Errorf("daxstore: rename %q: %w", old, err)
	}
	delete(s.names, old)
	s.names[new] = in
	return d, nil
}

// FileInfo describes a file.
type FileInfo struct {
	// Key is the file's name, Ino its inode number (never reused) and Size
	// its size in bytes.
	Key     string    `json:"key"`
	Ino     uint64    `json:"ino"`
	Size    int64     `json:"size"`
	Blocks  uint64    `json:"blocks"` // region blocks the file owns, written or unwritten
	ModTime time.Time `json:"mod_time"`
	// The attributes a file-system face of the store shows (see
	// AttrChange). HasAttr is false for a file never given any, such as
	// one made through the key API; its Mode, UID and GID are then 0 and
	// its ATime and CTime equal ModTime. CTime is the later of the last
	// attribute change and ModTime, so a write moves it too. ATime
	// changes only through SetAttr: reads never update it (noatime).
	Mode    uint32    `json:"mode,omitempty"`
	UID     uint32    `json:"uid,omitempty"`
	GID     uint32    `json:"gid,omitempty"`
	ATime   time.Time `json:"atime"`
	CTime   time.Time `json:"ctime"`
	HasAttr bool      `json:"has_attr,omitempty"`
}

// Stat describes the file named key. It reads the journal for a file not in
// memory, and does not bring it in.
func (s *Store) Stat(key string) (FileInfo, error) {
	if err := validKey(key); err != nil {
		return FileInfo{}, err
	}
	if err := s.begin(false); err != nil {
		return FileInfo{}, fmt.Errorf("daxstore: stat %q: %w", key, err)
	}
	defer s.end()
	fi, ok, err := s.peek(key)
	if err != nil {
		return FileInfo{}, fmt.Errorf("daxstore: stat %q: %w", key, err)
	}
	if !ok {
		return FileInfo{}, fmt.Errorf("daxstore: stat %q: %w", key, ErrNotFound)
	}
	return fi, nil
}

// info describes in under the name key, the one the caller looked up: a
// rename since then does not move a listing entry.
func info(key string, in *inode) FileInfo {
	in.mapMu.Lock()
	defer in.mapMu.Unlock()
	fi := FileInfo{Key: key, Ino: in.ino, Size: in.size, Blocks: in.extents.blocks(), ModTime: in.mtime}
	fillAttr(&fi, in.attr)
	return fi
}

// listPage is how many files Files reads from the journal at a time.
const listPage = 256

// Files yields the files whose keys start with prefix, in key order,
// reading the journal a page at a time: its cost is in proportion to the
// files it yields, and it holds no lock while the caller's loop body runs,
// so the body may use the store. A file created, removed or renamed while
// the loop runs may or may not be yielded. An error ends the sequence.
func (s *Store) Files(prefix string) iter.Seq2[FileInfo, error] {
	return func(yield func(FileInfo, error) bool) {
		after := ""
		for {
			page, err := s.listPage(prefix, after)
			if err != nil {
				yield(FileInfo{}, fmt.Errorf("daxstore: list: %w", err))
				return
			}
			for _, fi := range page {
				if !yield(fi, nil) {
					return
				}
			}
			if len(page) < listPage {
				return
			}
			after = page[len(page)-1].Key
		}
	}
}

// listPage reads the next page of Files from the journal, describing the
// files in memory from memory, which is never behind the journal.
func (s *Store) listPage(prefix, after string) ([]FileInfo, error) {
	if err := s.begin(false); err != nil {
		return nil, err
	}
	defer s.end()
	s.nsMu.RLock()
	defer s.nsMu.RUnlock()
	recs, err := s.jnl.ScanInodes(prefix, after, listPage)
	if err != nil {
		return nil, err
	}
	out := make([]FileInfo, 0, len(recs))
	for _, rec := range recs {
		if in := s.names[rec.Key]; in != nil {
			out = append(out, info(rec.Key, in))
			continue
		}
		out = append(out, recordInfo(rec))
	}
	return out, nil
}

// List returns the files whose keys start with prefix, sorted by key. Its
// cost is in proportion to the files it returns; see Files to list without
// building a slice.
func (s *Store) List(prefix string) ([]FileInfo, error) {
	var out []FileInfo
	for fi, err := range s.Files(prefix) {
		if err != nil {
			return nil, err
		}
		out = append(out, fi)
	}
	if out == nil {
		out = []FileInfo{}
	}
	return out, nil
}
