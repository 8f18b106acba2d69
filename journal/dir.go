package journal

// Explicit directories. The store's keys are flat; a directory exists
// implicitly while a key lies under it. A directory record makes one exist
// on its own, with attributes, as mkdir does: 'D' + path, holding its mode,
// owner and times. The record with the empty path holds the root's
// attributes.

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// dirVersion is the value format of directory records.
const dirVersion byte = 1

// Dir is an explicit directory: its path ("" for the root) and attributes.
type Dir struct {
	// Path is the directory's slash-separated path; "" is the root.
	Path     string
	Mode     uint32 // permission bits, at most MaxMode
	UID, GID uint32
	MTime    int64 // unix nanoseconds
	ATime    int64
	CTime    int64
}

func dirKey(path string) []byte {
	k := make([]byte, 1+len(path))
	k[0] = prefixDir
	copy(k[1:], path)
	return k
}

func checkDir(d Dir) string {
	if s := checkName(d.Path); s != "" {
		return s
	}
	if d.Mode > MaxMode {
		return fmt.Sprintf("mode %#o has bits beyond %#o", d.Mode, MaxMode)
	}
	return ""
}

// EncodeDir returns the key and value of a directory record. It does not
// check limits; Batch.SetDir does.
func EncodeDir(d Dir) (key, value []byte) {
	key = dirKey(d.Path)
	v := newValueVersion(dirVersion, 3*4+3*8)
	v = binary.BigEndian.AppendUint32(v, d.Mode)
	v = binary.BigEndian.AppendUint32(v, d.UID)
	v = binary.BigEndian.AppendUint32(v, d.GID)
	v = binary.BigEndian.AppendUint64(v, uint64(d.MTime))
	v = binary.BigEndian.AppendUint64(v, uint64(d.ATime))
	v = binary.BigEndian.AppendUint64(v, uint64(d.CTime))
	return key, seal(key, v)
}

// DecodeDir decodes a directory record. Any defect wraps pmem.ErrCorrupt.
func DecodeDir(key, value []byte) (Dir, error) {
	const kind = "directory"
	if len(key) < 1 || key[0] != prefixDir {
		return Dir{}, corruptError(kind, key, "malformed key")
	}
	d := openVersions(kind, key, value, dirVersion, dirVersion)
	r := Dir{Path: string(key[1:])}
	r.Mode = d.u32("mode")
	r.UID = d.u32("uid")
	r.GID = d.u32("gid")
	r.MTime = int64(d.u64("mtime"))
	r.ATime = int64(d.u64("atime"))
	r.CTime = int64(d.u64("ctime"))
	if err := d.done(); err != nil {
		return Dir{}, err
	}
	if s := checkDir(r); s != "" {
		return Dir{}, corruptError(kind, key, "%s", s)
	}
	return r, nil
}

// SetDir queues a directory record, replacing the one of the same path. A
// path longer than MaxKeyLen or a mode beyond MaxMode is refused with
// ErrInvalidRecord. The journal does not check that the path is one a
// file system would accept, nor that its parent exists: its caller does.
func (b *Batch) SetDir(d Dir) {
	if !b.writable() {
		return
	}
	if s := checkDir(d); s != "" {
		b.invalid(fmt.Sprintf("set directory %q", d.Path), s)
		return
	}
	k, v := EncodeDir(d)
	b.set("set directory", k, v)
}

// DeleteDir queues removing the directory record of path; a missing one is
// not an error.
func (b *Batch) DeleteDir(path string) {
	if !b.writable() {
		return
	}
	if s := checkName(path); s != "" {
		b.invalid("delete directory", s)
		return
	}
	b.del("delete directory", dirKey(path))
}

// LookupDir returns the directory record of path and whether there is one.
// It is one point read.
func (j *Journal) LookupDir(path string) (Dir, bool, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.db == nil {
		return Dir{}, false, fmt.Errorf("journal: lookup directory: %w", ErrClosed)
	}
	k := dirKey(path)
	value, closer, err := j.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return Dir{}, false, nil
	}
	if err != nil {
		return Dir{}, false, j.loadError(err)
	}
	d, err := DecodeDir(k, value)
	closer.Close()
	if err != nil {
		return Dir{}, false, err
	}
	return d, true, nil
}

// ScanDirs returns up to limit directory records whose paths start with
// prefix and sort after after ("" for the first page, which includes the
// root's record when prefix is ""), in path order. As ScanInodes, it reads
// only what it returns plus one record and holds no lock between calls.
func (j *Journal) ScanDirs(prefix, after string, limit int) ([]Dir, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.db == nil {
		return nil, fmt.Errorf("journal: scan directories: %w", ErrClosed)
	}
	return j.scanDirs(j.db, prefix, after, limit)
}

func (j *Journal) scanDirs(r reader, prefix, after string, limit int) ([]Dir, error) {
	lo := dirKey(prefix)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return nil, j.loadError(err)
	}
	defer it.Close()
	valid := it.First()
	if after != "" {
		valid = it.SeekGE(append(dirKey(after), 0))
	}
	var out []Dir
	for ; valid && len(out) < limit; valid = it.Next() {
		value, err := it.ValueAndErr()
		if err != nil {
			return nil, j.loadError(err)
		}
		d, err := DecodeDir(it.Key(), value)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, j.loadErrorOrNil(it.Error())
}

// Dirs returns every directory record of the snapshot, in path order.
func (s *Snapshot) Dirs() ([]Dir, error) {
	s.j.mu.RLock()
	defer s.j.mu.RUnlock()
	if s.j.db == nil || s.snap == nil {
		return nil, fmt.Errorf("journal: scan snapshot of %s: %w", s.j.dir, ErrClosed)
	}
	var out []Dir
	after := ""
	for {
		page, err := s.j.scanDirs(s.snap, "", after, 1024)
		if err != nil {
			return nil, err
		}
		for _, d := range page {
			// The root's record comes first and only on the first page.
			out = append(out, d)
		}
		if len(page) < 1024 {
			return out, nil
		}
		after = page[len(page)-1].Path
	}
}
