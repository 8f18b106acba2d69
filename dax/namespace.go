package dax

// The namespace: keys, inodes and the per-file locks, and the operations
// that only rename, create or list.

import (
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/daxstore/daxstore/journal"
)

// MaxKeyLen is the longest key in bytes.
const MaxKeyLen = 1024

// MaxFileSize is the largest size a file may reach, in bytes (64 TiB). It
// keeps every block computation far from overflow.
const MaxFileSize = 1 << 46

// inode is one file. Lock order: ioMu → invalMu → mapMu (after the store's
// namespace lock, before alloc, busy and pageref).
type inode struct {
	ino uint64

	// ioMu is the IO lock: reads and writes hold it shared; truncate,
	// punch, zero-range, remove and Put hold it exclusive, which drains
	// the reads and writes in flight.
	ioMu rankedRWMutex[ioRank]
	// invalMu is the invalidate lock: Pin holds it shared; layout-breaking
	// operations hold it exclusive so no pin can start while they run.
	invalMu rankedRWMutex[invalidateRank]
	// mapMu is the extent-map lock: it protects extents, size, mtime and
	// removed. Writers hold it for the whole write so two writes cannot
	// both fill the same hole.
	mapMu   rankedMutex[extentMapRank]
	extents *extentMap
	size    int64
	mtime   time.Time
	removed bool // the key was removed; open Files get ErrNotFound
	// pinCache is a written extent that Pin may use without mapMu; see
	// pinCache for why it stays true.
	pinCache pinCache

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
	if err := s.begin(true); err != nil {
		return nil, fmt.Errorf("daxstore: create %q: %w", key, err)
	}
	defer s.end()
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	if s.names[key] != nil {
		return nil, fmt.Errorf("daxstore: create %q: %w", key, ErrExist)
	}
	in := newInode(s.nextIno, key, 0, time.Now())
	t := s.newTxn()
	s.recordNewInode(t, in)
	if err := s.commit(t); err != nil {
		return nil, fmt.Errorf("daxstore: create %q: %w", key, err)
	}
	s.addInode(in)
	return &File{s: s, in: in}, nil
}

// recordNewInode adds a new inode's name, inode and the advanced inode
// counter to t. nsMu must be held exclusive.
func (s *Store) recordNewInode(t *txn, in *inode) {
	t.b.SetName(in.name(), in.ino)
	t.setInode(in)
	t.b.SetMeta(journal.Meta{UUID: s.uuid, BlockSize: uint32(s.bs), BlockCount: s.region.BlockCount(), NextInode: in.ino + 1})
}

// addInode publishes a committed new inode. nsMu must be held exclusive.
func (s *Store) addInode(in *inode) {
	s.names[in.name()] = in
	s.inodes[in.ino] = in
	s.nextIno = in.ino + 1
}

// Open opens the file named key.
func (s *Store) Open(key string) (*File, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	if err := s.begin(false); err != nil {
		return nil, fmt.Errorf("daxstore: open %q: %w", key, err)
	}
	defer s.end()
	s.nsMu.RLock()
	in := s.names[key]
	s.nsMu.RUnlock()
	if in == nil {
		return nil, fmt.Errorf("daxstore: open %q: %w", key, ErrNotFound)
	}
	return &File{s: s, in: in}, nil
}

// Rename gives the file old the name new. It fails with ErrNotFound when old
// is missing and ErrExist when new exists; it never replaces a file.
func (s *Store) Rename(old, new string) error {
	if err := validKey(old); err != nil {
		return err
	}
	if err := validKey(new); err != nil {
		return err
	}
	if err := s.begin(true); err != nil {
		return fmt.Errorf("daxstore: rename %q: %w", old, err)
	}
	defer s.end()
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	in := s.names[old]
	switch {
	case in == nil:
		return fmt.Errorf("daxstore: rename %q: %w", old, ErrNotFound)
	case old == new:
		return nil
	case s.names[new] != nil:
		return fmt.Errorf("daxstore: rename %q to %q: %w", old, new, ErrExist)
	}
	in.mapMu.Lock()
	defer in.mapMu.Unlock()
	t := s.newTxn()
	t.b.DeleteName(old)
	t.b.SetName(new, in.ino)
	prev := in.key.Load()
	in.key.Store(&new)
	t.setInode(in)
	if err := s.commit(t); err != nil {
		in.key.Store(prev)
		return fmt.Errorf("daxstore: rename %q: %w", old, err)
	}
	delete(s.names, old)
	s.names[new] = in
	return nil
}

// FileInfo describes a file.
type FileInfo struct {
	Key     string    `json:"key"`
	Ino     uint64    `json:"ino"`
	Size    int64     `json:"size"`
	Blocks  uint64    `json:"blocks"` // region blocks the file owns, written or unwritten
	ModTime time.Time `json:"mod_time"`
}

// Stat describes the file named key.
func (s *Store) Stat(key string) (FileInfo, error) {
	if err := validKey(key); err != nil {
		return FileInfo{}, err
	}
	if err := s.begin(false); err != nil {
		return FileInfo{}, fmt.Errorf("daxstore: stat %q: %w", key, err)
	}
	defer s.end()
	s.nsMu.RLock()
	in := s.names[key]
	s.nsMu.RUnlock()
	if in == nil {
		return FileInfo{}, fmt.Errorf("daxstore: stat %q: %w", key, ErrNotFound)
	}
	return info(key, in), nil
}

// info describes in under the name key, the one the caller looked up: a
// rename since then does not move a listing entry.
func info(key string, in *inode) FileInfo {
	in.mapMu.Lock()
	defer in.mapMu.Unlock()
	return FileInfo{Key: key, Ino: in.ino, Size: in.size, Blocks: in.extents.blocks(), ModTime: in.mtime}
}

// List returns the files whose keys start with prefix, sorted by key.
func (s *Store) List(prefix string) ([]FileInfo, error) {
	if err := s.begin(false); err != nil {
		return nil, fmt.Errorf("daxstore: list: %w", err)
	}
	defer s.end()
	s.nsMu.RLock()
	nodes := make(map[string]*inode)
	for k, in := range s.names {
		if strings.HasPrefix(k, prefix) {
			nodes[k] = in
		}
	}
	s.nsMu.RUnlock()
	out := make([]FileInfo, 0, len(nodes))
	for k, in := range nodes {
		out = append(out, info(k, in))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
