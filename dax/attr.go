package dax

// File and directory attributes: the POSIX mode, owner and times that a
// file-system face of the store (the FUSE mount, Store.FS) shows and keeps.
// The key-file API itself neither needs nor checks them.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/daxstore/daxstore/busyextent"
	"github.com/daxstore/daxstore/journal"
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
	// Mask selects the fields to apply.
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

// fileAttr is a file's attributes in memory: what an inode record's
// attribute block holds. A value is never changed in place; SetAttr
// installs a new one, so a *fileAttr read under mapMu stays valid.
type fileAttr struct {
	mode, uid, gid uint32
	atime, ctime   int64 // unix nanoseconds
}

// attrFromRecord returns the attributes of a journal record, nil if it has
// none.
func attrFromRecord(rec journal.Inode) *fileAttr {
	if !rec.HasAttr {
		return nil
	}
	return &fileAttr{mode: rec.Mode, uid: rec.UID, gid: rec.GID, atime: rec.ATime, ctime: rec.CTime}
}

// record copies a into a journal record; a nil a leaves it without
// attributes. Every commit that rewrites an inode record goes through
// recordInodes, which calls this, so attributes survive every change.
func (a *fileAttr) record(rec *journal.Inode) {
	if a == nil {
		return
	}
	rec.HasAttr, rec.Mode, rec.UID, rec.GID, rec.ATime, rec.CTime = true, a.mode, a.uid, a.gid, a.atime, a.ctime
}

// fillAttr sets fi's attribute fields from a (nil: none). fi.ModTime must
// be set. The reported change time is the later of the stored one and the
// modification time, so that writes, which change the modification time,
// need not rewrite the change time too. The access time is only what
// SetAttr last set: reads never update it (noatime).
func fillAttr(fi *FileInfo, a *fileAttr) {
	if a == nil {
		fi.ATime, fi.CTime = fi.ModTime, fi.ModTime
		return
	}
	fi.HasAttr, fi.Mode, fi.UID, fi.GID = true, a.mode, a.uid, a.gid
	fi.ATime = time.Unix(0, a.atime)
	fi.CTime = time.Unix(0, max(a.ctime, fi.ModTime.UnixNano()))
}

// Default attributes of a file or directory that has none.
const (
	defaultFileMode = 0o644
	defaultDirMode  = 0o755
)

// checkAttrChange reports why c cannot be applied: unknown mask bits, or a
// mode with bits beyond the permission bits.
func checkAttrChange(c AttrChange) error {
	const all = AttrMode | AttrUID | AttrGID | AttrATime | AttrMTime
	if c.Mask&^all != 0 {
		return fmt.Errorf("daxstore: attribute mask %#x has unknown bits: %w", uint8(c.Mask), ErrInvalidRange)
	}
	if c.Mask&AttrMode != 0 && c.Mode > journal.MaxMode {
		return fmt.Errorf("daxstore: mode %#o has bits beyond %#o: %w", c.Mode, journal.MaxMode, ErrInvalidRange)
	}
	for _, t := range []struct {
		bit AttrMask
		at  time.Time
	}{{AttrATime, c.ATime}, {AttrMTime, c.MTime}} {
		if c.Mask&t.bit != 0 && !representable(t.at) {
			return fmt.Errorf("daxstore: time %v is outside what the journal stores (1678 to 2262): %w", t.at, ErrInvalidRange)
		}
	}
	return nil
}

// representable reports whether t survives a round trip through unix
// nanoseconds in an int64.
func representable(t time.Time) bool {
	return t.Equal(time.Unix(0, t.UnixNano()))
}

// apply returns a with c applied, c's change time being now; a nil a
// stands for the defaults, with times equal to mtime.
func (a *fileAttr) apply(c AttrChange, mtime time.Time, mode uint32, now time.Time) *fileAttr {
	n := fileAttr{mode: mode, atime: mtime.UnixNano()}
	if a != nil {
		n = *a
	}
	if c.Mask&AttrMode != 0 {
		n.mode = c.Mode
	}
	if c.Mask&AttrUID != 0 {
		n.uid = c.UID
	}
	if c.Mask&AttrGID != 0 {
		n.gid = c.GID
	}
	if c.Mask&AttrATime != 0 {
		n.atime = c.ATime.UnixNano()
	}
	n.ctime = now.UnixNano()
	return &n
}

// SetAttr changes the attributes of the file named key and returns the
// file's description after the change, in one durable commit. A file that
// never had attributes (HasAttr false) takes mode 0644, owner 0:0 and
// times equal to its modification time for the fields c leaves out. The
// change time becomes the time of the call; AttrMTime sets the file's
// modification time. A mode beyond 07777, unknown mask bits or a time
// outside 1678..2262 fail with ErrInvalidRange and change nothing.
func (s *Store) SetAttr(key string, c AttrChange) (FileInfo, error) {
	if err := validKey(key); err != nil {
		return FileInfo{}, err
	}
	if err := checkAttrChange(c); err != nil {
		return FileInfo{}, err
	}
	if err := s.begin(true); err != nil {
		return FileInfo{}, fmt.Errorf("daxstore: setattr %q: %w", key, err)
	}
	var changed FileChange
	defer func() { s.notify(changed) }() // after end: outside every lock
	defer s.end()
	in, err := s.acquire(key)
	if err != nil {
		return FileInfo{}, fmt.Errorf("daxstore: setattr %q: %w", key, err)
	}
	if in == nil {
		return FileInfo{}, fmt.Errorf("daxstore: setattr %q: %w", key, ErrNotFound)
	}
	defer s.release(in)
	d, err := s.setAttrLocked(in, c)
	if err == nil {
		changed = FileChange{Kind: ChangeAttr, Key: in.name(), Ino: in.ino}
		err = s.settle(d)
	}
	if err != nil {
		return FileInfo{}, fmt.Errorf("daxstore: setattr %q: %w", key, err)
	}
	return info(in.name(), in), nil
}

// setAttrLocked applies c to in under its extent-map lock and commits.
func (s *Store) setAttrLocked(in *inode, c AttrChange) (*durable, error) {
	in.mapMu.Lock()
	defer in.mapMu.Unlock()
	if in.removed {
		return nil, ErrNotFound
	}
	was, wasTime := in.attr, in.mtime
	now := time.Now()
	in.attr = in.attr.apply(c, in.mtime, defaultFileMode, now)
	if c.Mask&AttrMTime != 0 {
		in.mtime = c.MTime
	}
	t := s.newTxn()
	t.setInode(in)
	d, err := s.commit(t)
	if err != nil {
		in.attr, in.mtime = was, wasTime
		return nil, err
	}
	return d, nil
}

// CreateWith is Create with the file's first attributes set in the same
// commit: those c leaves out are mode 0644, owner 0:0 and the creation
// time. It fails as Create does, and as SetAttr does for a bad c, without
// creating anything.
func (s *Store) CreateWith(key string, c AttrChange) (*File, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	if err := checkAttrChange(c); err != nil {
		return nil, err
	}
	return s.createFile(key, func(in *inode) {
		now := in.mtime
		in.attr = (*fileAttr)(nil).apply(c, now, defaultFileMode, now)
		if c.Mask&AttrMTime != 0 {
			in.mtime = c.MTime
		}
	})
}

// Stat describes the file f is open on, from memory. It fails with
// ErrNotFound once the file's key is removed, and ErrClosed after Close.
func (f *File) Stat() (FileInfo, error) {
	if err := f.enter(false); err != nil {
		return FileInfo{}, f.errorf("stat", err)
	}
	defer f.s.end()
	f.in.mapMu.Lock()
	removed := f.in.removed
	f.in.mapMu.Unlock()
	if removed {
		return FileInfo{}, f.errorf("stat", ErrNotFound)
	}
	return info(f.in.name(), f.in), nil
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
// With it, a file already named new is removed in the same commit, its
// blocks freed or, if pinned, detached under o.Break's policy as
// RemoveWith does (PolicyFail: ErrPinned and nothing changes; PolicyWait: RenameWith
// returns once they are released). Open Files of the replaced file get
// ErrNotFound afterwards. Like Rename, it looks at keys only: it neither
// checks nor moves directories.
func (s *Store) RenameWith(ctx context.Context, old, new string, o RenameOptions) (err error) {
	if !o.Replace {
		return s.Rename(old, new)
	}
	defer func() { s.met.done(opRename, err) }()
	if err := validKey(old); err != nil {
		return err
	}
	if err := validKey(new); err != nil {
		return err
	}
	policy := s.policy(o.Break)
	var ch [2]FileChange // what the rename changed, for watchers
	err = s.runBreak(ctx, policy, func() (*breakResult, error) {
		res, err := s.renameReplace(old, new, policy, &ch)
		s.notify(ch[0]) // after renameReplace's end: outside every lock
		s.notify(ch[1])
		return res, err
	})
	if err != nil {
		return fmt.Errorf("daxstore: rename %q to %q: %w", old, new, err)
	}
	return nil
}

func (s *Store) renameReplace(old, new string, policy BreakPolicy, ch *[2]FileChange) (*breakResult, error) {
	if err := s.begin(true); err != nil {
		return nil, err
	}
	defer s.end()
	res, err := s.renameReplaceLocked(old, new, policy, ch)
	if err != nil {
		return nil, err
	}
	if err := s.settle(res.durable); err != nil {
		return nil, err
	}
	return res, nil
}

// renameReplaceLocked is RenameWith's rename-over under the namespace lock,
// the replaced file's three locks and the renamed file's extent-map lock.
// It sets *ch to the changes once applied.
func (s *Store) renameReplaceLocked(old, new string, policy BreakPolicy, ch *[2]FileChange) (*breakResult, error) {
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	in, err := s.acquireLocked(old)
	if err != nil {
		return nil, err
	}
	if in == nil {
		return nil, ErrNotFound
	}
	defer s.release(in)
	if old == new {
		return &breakResult{}, nil
	}
	other, err := s.acquireLocked(new)
	if err != nil {
		return nil, err
	}
	keep, err := s.leavingParentsLocked(old, false)
	if err != nil {
		return nil, err
	}
	if other == nil {
		if err := s.refuseDirLocked(new); err != nil {
			return nil, err
		}
		in.mapMu.Lock()
		defer in.mapMu.Unlock()
		t := s.newTxn()
		keepParents(t, keep)
		d, err := s.renameInto(t, in, old, new)
		if err != nil {
			return nil, err
		}
		ch[0] = FileChange{Kind: ChangeRename, Key: old, NewKey: new, Ino: in.ino}
		return &breakResult{durable: d}, nil
	}
	defer s.release(other)
	other.lockAll()
	defer other.unlockAll()
	// A second extent-map lock, outside the rank order (which allows one
	// at a time): it cannot deadlock, since the namespace lock held
	// exclusive keeps out every other taker of two, and no holder of one
	// waits for another. See renameDirLocked.
	in.mapMu.mu.Lock()
	defer in.mapMu.mu.Unlock()
	prev := in.key.Load()
	b := &breaker{s: s, in: other, key: new, reason: busyextent.ReasonRemove}
	res, err := b.run(policy,
		func(*breaker) (uint64, uint64, uint64, error) { return 0, math.MaxUint64, 0, nil },
		func(b *breaker) error {
			if err := b.drop(0, math.MaxUint64); err != nil {
				return err
			}
			// The replaced file is touched first, so that its record's
			// deletion comes before the renamed file's record under
			// the same key, which thus wins.
			b.t.touch(other)
			b.t.files--
			other.removed = true
			b.t.b.DeleteInode(old)
			in.key.Store(&new)
			b.t.touch(in)
			keepParents(b.t, keep)
			return nil
		})
	if err != nil {
		other.removed = false
		in.key.Store(prev)
		return nil, err
	}
	s.met.foldReads(other) // its extent-map lock is held (lockAll)
	delete(s.names, old)
	s.names[new] = in
	*ch = [2]FileChange{{Kind: ChangeRemove, Key: new, Ino: other.ino}, {Kind: ChangeRename, Key: old, NewKey: new, Ino: in.ino}}
	return res, nil
}

// renameInto commits t renaming in from old to new, no file being named
// new. The namespace lock and in's extent-map lock must be held.
func (s *Store) renameInto(t *txn, in *inode, old, new string) (*durable, error) {
	t.b.DeleteInode(old)
	prev := in.key.Load()
	in.key.Store(&new)
	t.setInode(in)
	d, err := s.commit(t)
	if err != nil {
		in.key.Store(prev)
		return nil, err
	}
	delete(s.names, old)
	s.names[new] = in
	return d, nil
}
