package journal

// Reading the journal. Open reads what recovery needs and nothing per key
// (LoadCore); a key's inode is one point read (LookupInode); listing pages
// through the inode records in key order (ScanInodes); Check and tests read
// everything, from the live journal or from a snapshot (Load).

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/daxstore/daxstore/pmem"
)

// State is the journal as Load or LoadCore found it.
type State struct {
	// Meta is the store-wide record, when HasMeta.
	Meta    Meta
	HasMeta bool // false for a brand-new journal
	// Mark is the last commit mark a batch set (Batch.SetMark), 0 when none.
	Mark uint64
	// Free is the free-space checkpoint, sorted by Start, and FreeLog the
	// changes committed since, in Seq order: free space is Free with each
	// log record's Claimed removed and Freed added, in order.
	Free    []pmem.Extent
	FreeLog []FreeLog
	Busy    []BusyRecord // every busy run of every busy record, sorted by Extent.Start
	// BusyRecords counts the journal records that hold Busy: a run-list
	// record holds many runs.
	BusyRecords int

	// HasInodes reports whether any file exists.
	HasInodes bool
	// Files is the number of files as of the free-space checkpoint, when
	// HasFiles; add each FreeLog record's Files. A journal that never
	// checkpointed it (format 1) has HasFiles false.
	Files    uint64
	HasFiles bool
	// Legacy reports records of journal format 1, which only Upgrade
	// reads: the store must be upgraded before use.
	Legacy bool

	// Filled by Load only, not by LoadCore.
	Names   map[string]uint64         // key -> inode number
	Inodes  map[uint64]Inode          // by inode number, extents included
	Extents map[uint64][]ExtentRecord // each inode's extents, sorted by FileBlock
	Dirs    []Dir                     // the directory records, in path order
}

// reader is what Load reads from: the live DB or a snapshot of it.
type reader interface {
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

// LoadCore reads what opening a store needs and nothing whose size grows
// with the number of files: the meta record, the commit mark, the
// free-space checkpoint and log, and the busy records. Its time and memory
// are proportional to free and busy extents and to the log, which
// CheckpointFree keeps short.
func (j *Journal) LoadCore() (*State, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.db == nil {
		return nil, fmt.Errorf("journal: load %s: %w", j.dir, ErrClosed)
	}
	return j.loadCore(j.db)
}

// loadCore is LoadCore from r, the live DB or a snapshot. j.mu must be
// held shared.
func (j *Journal) loadCore(r reader) (*State, error) {
	st := &State{}
	for _, p := range []byte{prefixMeta, prefixMark, prefixFree, prefixFreeLog, prefixBusy, prefixFiles} {
		if err := j.scanPrefix(r, p, st); err != nil {
			return nil, err
		}
	}
	var err error
	if st.HasInodes, err = j.anyWithPrefix(r, prefixName); err != nil {
		return nil, err
	}
	if st.Legacy, err = j.anyWithPrefix(r, prefixInode); err != nil {
		return nil, err
	}
	if err := j.checkPrefixes(r); err != nil {
		return nil, err
	}
	return st, nil
}

// Load reads every record, checking each on its own (framing, checksum,
// limits) but not the relations between records; that is the caller's
// Check. Any undecodable record or unknown key prefix fails the whole Load
// with an error that wraps pmem.ErrCorrupt and names the key in hex.
func (j *Journal) Load() (*State, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.db == nil {
		return nil, fmt.Errorf("journal: load %s: %w", j.dir, ErrClosed)
	}
	// One snapshot, so that commits going on meanwhile cannot tear the
	// state between the record kinds.
	snap := j.db.NewSnapshot()
	defer snap.Close()
	return j.loadAll(snap)
}

// Snapshot is a consistent, unchanging view of the journal, for reading
// everything while commits go on. Close it before closing the journal.
type Snapshot struct {
	j    *Journal
	snap *pebble.Snapshot
}

// Snapshot returns a view of the journal as it is now: every batch applied
// before the call, none applied after.
func (j *Journal) Snapshot() (*Snapshot, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.db == nil {
		return nil, fmt.Errorf("journal: snapshot %s: %w", j.dir, ErrClosed)
	}
	return &Snapshot{j: j, snap: j.db.NewSnapshot()}, nil
}

// Load is Journal.Load on the snapshot.
func (s *Snapshot) Load() (*State, error) {
	s.j.mu.RLock()
	defer s.j.mu.RUnlock()
	if s.j.db == nil || s.snap == nil {
		return nil, fmt.Errorf("journal: load snapshot of %s: %w", s.j.dir, ErrClosed)
	}
	return s.j.loadAll(s.snap)
}

// LoadCore is Journal.LoadCore on the snapshot: everything but the files.
func (s *Snapshot) LoadCore() (*State, error) {
	s.j.mu.RLock()
	defer s.j.mu.RUnlock()
	if s.j.db == nil || s.snap == nil {
		return nil, fmt.Errorf("journal: load snapshot of %s: %w", s.j.dir, ErrClosed)
	}
	return s.j.loadCore(s.snap)
}

// ScanFiles calls fn with every file of the snapshot, in key order, its
// extents included (those of an External file read from its extent
// records), holding only one file at a time besides the extent records of
// External files: a check of a million files need not build them all in
// memory. It returns fn's first error, or an error wrapping pmem.ErrCorrupt
// for a record that does not decode, a format 1 record, or extent records
// that no External file owns (an inline file's, or a missing inode's:
// their numbers are in the error).
func (s *Snapshot) ScanFiles(fn func(Inode) error) error {
	s.j.mu.RLock()
	defer s.j.mu.RUnlock()
	if s.j.db == nil || s.snap == nil {
		return fmt.Errorf("journal: scan snapshot of %s: %w", s.j.dir, ErrClosed)
	}
	// Extent records sort before inode records ('E' < 'N'): read them
	// first. Only files of more than MaxInlineExtents extents have them.
	ext := map[uint64][]ExtentRecord{}
	st := &State{Extents: ext}
	if err := s.j.scanPrefix(s.snap, prefixExtent, st); err != nil {
		return err
	}
	it, err := s.snap.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixName}, UpperBound: []byte{prefixName + 1}})
	if err != nil {
		return s.j.loadError(err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		value, err := it.ValueAndErr()
		if err != nil {
			return s.j.loadError(err)
		}
		if isLegacyName(value) {
			return corruptError("name", it.Key(), "a format 1 record in a format 2 journal")
		}
		in, err := DecodeInode(it.Key(), value)
		if err != nil {
			return err
		}
		if in.External {
			in.Extents = ext[in.Ino]
			delete(ext, in.Ino)
		}
		if err := fn(in); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return s.j.loadError(err)
	}
	if len(ext) > 0 {
		inos := make([]uint64, 0, len(ext))
		for ino := range ext {
			inos = append(inos, ino)
		}
		slices.Sort(inos)
		return fmt.Errorf("journal: extent records of inodes %v, which no file with external extents owns: %w", inos, pmem.ErrCorrupt)
	}
	return nil
}

// Close releases the snapshot. A second Close does nothing.
//
// Close after the journal's Close does nothing: the DB took its snapshots
// with it.
func (s *Snapshot) Close() error {
	if s.snap == nil {
		return nil
	}
	s.j.mu.RLock()
	defer s.j.mu.RUnlock()
	if s.j.db == nil {
		s.snap = nil
		return nil
	}
	err := s.snap.Close()
	s.snap = nil
	return err
}

func (j *Journal) loadAll(r reader) (*State, error) {
	st := &State{
		Names:   make(map[string]uint64),
		Inodes:  make(map[uint64]Inode),
		Extents: make(map[uint64][]ExtentRecord),
	}
	for _, p := range []byte{prefixMeta, prefixMark, prefixFree, prefixFreeLog, prefixBusy, prefixFiles, prefixName, prefixInode, prefixExtent, prefixDir} {
		if err := j.scanPrefix(r, p, st); err != nil {
			return nil, err
		}
	}
	if err := j.checkPrefixes(r); err != nil {
		return nil, err
	}
	for ino, in := range st.Inodes {
		switch {
		case in.External:
			in.Extents = st.Extents[ino]
			st.Inodes[ino] = in
		case len(st.Extents[ino]) > 0:
			return nil, corruptError("inode", nameKey(in.Key), "inode %d holds its extents inline, yet %d extent records name it", ino, len(st.Extents[ino]))
		default:
			st.Extents[ino] = in.Extents
		}
	}
	for name, ino := range st.Names {
		if _, ok := st.Inodes[ino]; !ok && st.Legacy {
			return nil, corruptError("name", nameKey(name), "format 1 name of inode %d, which has no inode record", ino)
		}
	}
	return st, nil
}

// knownPrefixes are the record kinds, in key order.
var knownPrefixes = []byte{prefixBusy, prefixMark, prefixDir, prefixExtent, prefixFree, prefixInode, prefixFiles, prefixFreeLog, prefixMeta, prefixName}

// checkPrefixes fails with ErrCorrupt if any key has a prefix this schema
// does not know, so that a foreign or damaged journal is not taken for an
// empty store. It seeks over the known kinds, reading one key per gap.
func (j *Journal) checkPrefixes(r reader) error {
	it, err := r.NewIter(nil)
	if err != nil {
		return j.loadError(err)
	}
	defer it.Close()
	for valid := it.First(); valid; {
		key := it.Key()
		if len(key) == 0 || bytes.IndexByte(knownPrefixes, key[0]) < 0 {
			return fmt.Errorf("journal: load %s: unknown record prefix at key %s: %w", j.dir, shortHex(key), pmem.ErrCorrupt)
		}
		valid = it.SeekGE([]byte{key[0] + 1})
	}
	if err := it.Error(); err != nil {
		return j.loadError(err)
	}
	return nil
}

// anyWithPrefix reports whether a key of kind prefix exists.
func (j *Journal) anyWithPrefix(r reader, prefix byte) (bool, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return false, j.loadError(err)
	}
	found := it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return false, j.loadError(err)
	}
	return found, nil
}

// scanPrefix decodes every record of kind prefix into st. Keys arrive in
// order, so lists come out sorted.
func (j *Journal) scanPrefix(r reader, prefix byte, st *State) (err error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return j.loadError(err)
	}
	defer func() {
		if cerr := it.Close(); err == nil && cerr != nil {
			err = j.loadError(cerr)
		}
	}()
	sorted := true // st.Busy is in start order so far
	defer func() {
		if err == nil && !sorted {
			slices.SortStableFunc(st.Busy, func(a, b BusyRecord) int { return cmp.Compare(a.Extent.Start, b.Extent.Start) })
		}
	}()
	for valid := it.First(); valid; valid = it.Next() {
		key := it.Key()
		value, err := it.ValueAndErr()
		if err != nil {
			return j.loadError(fmt.Errorf("value of key %s: %w", shortHex(key), err))
		}
		switch prefix {
		case prefixMeta:
			m, err := DecodeMeta(key, value)
			if err != nil {
				return err
			}
			st.Meta, st.HasMeta = m, true
		case prefixMark:
			m, err := DecodeMark(key, value)
			if err != nil {
				return err
			}
			st.Mark = m
		case prefixFree:
			e, err := DecodeFree(key, value)
			if err != nil {
				return err
			}
			st.Free = append(st.Free, e)
		case prefixFiles:
			n, err := DecodeFiles(key, value)
			if err != nil {
				return err
			}
			st.Files, st.HasFiles = n, true
		case prefixFreeLog:
			l, err := DecodeFreeLog(key, value)
			if err != nil {
				return err
			}
			st.FreeLog = append(st.FreeLog, l)
		case prefixBusy:
			rs, err := DecodeBusyRuns(key, value)
			if err != nil {
				return err
			}
			// The runs of two records may interleave: sorted below.
			sorted = sorted && (len(st.Busy) == 0 || st.Busy[len(st.Busy)-1].Extent.End() <= rs[0].Extent.Start)
			st.Busy = append(st.Busy, rs...)
			st.BusyRecords++
		case prefixName:
			st.HasInodes = true
			if isLegacyName(value) {
				st.Legacy = true
				name, ino, err := decodeLegacyName(key, value)
				if err != nil {
					return err
				}
				st.Names[name] = ino
				continue
			}
			in, err := DecodeInode(key, value)
			if err != nil {
				return err
			}
			if _, dup := st.Inodes[in.Ino]; dup {
				return corruptError("inode", key, "inode %d is also another key's", in.Ino)
			}
			st.Names[in.Key] = in.Ino
			st.Inodes[in.Ino] = in
		case prefixInode:
			st.Legacy = true
			in, err := decodeLegacyInode(key, value)
			if err != nil {
				return err
			}
			in.External = true // format 1 kept every extent in a record of its own
			st.Inodes[in.Ino] = in
		case prefixExtent:
			r, err := DecodeExtent(key, value)
			if err != nil {
				return err
			}
			st.Extents[r.Ino] = append(st.Extents[r.Ino], r)
		case prefixDir:
			d, err := DecodeDir(key, value)
			if err != nil {
				return err
			}
			st.Dirs = append(st.Dirs, d)
		}
	}
	if err := it.Error(); err != nil {
		return j.loadError(err)
	}
	return nil
}

// LookupInode returns the inode stored under key, with its extents, and
// whether there is one. It is one point read, plus one range read for a
// file whose extents are External.
func (j *Journal) LookupInode(key string) (Inode, bool, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.db == nil {
		return Inode{}, false, fmt.Errorf("journal: lookup: %w", ErrClosed)
	}
	k := nameKey(key)
	value, closer, err := j.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return Inode{}, false, nil
	}
	if err != nil {
		return Inode{}, false, j.loadError(err)
	}
	in, err := DecodeInode(k, value)
	closer.Close()
	if err != nil {
		return Inode{}, false, err
	}
	if in.External {
		if in.Extents, err = j.externalExtents(j.db, in.Ino); err != nil {
			return Inode{}, false, err
		}
	}
	return in, true, nil
}

// externalExtents reads the extent records of inode ino.
func (j *Journal) externalExtents(r reader, ino uint64) (exts []ExtentRecord, err error) {
	lo := extentPrefix(ino)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return nil, j.loadError(err)
	}
	defer func() {
		if cerr := it.Close(); err == nil && cerr != nil {
			err = j.loadError(cerr)
		}
	}()
	for valid := it.First(); valid; valid = it.Next() {
		value, err := it.ValueAndErr()
		if err != nil {
			return nil, j.loadError(err)
		}
		r, err := DecodeExtent(it.Key(), value)
		if err != nil {
			return nil, err
		}
		exts = append(exts, r)
	}
	return exts, j.loadErrorOrNil(it.Error())
}

func (j *Journal) loadErrorOrNil(err error) error {
	if err == nil {
		return nil
	}
	return j.loadError(err)
}

// ScanInodes returns up to limit inodes whose keys start with prefix and
// sort after after ("" for the first page), in key order, without the
// extents of External inodes (their Blocks is exact). It reads only the
// records it returns plus one, so listing a prefix costs in proportion to
// its matches. It holds no lock between calls: page through with the last
// key returned.
func (j *Journal) ScanInodes(prefix, after string, limit int) ([]Inode, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.db == nil {
		return nil, fmt.Errorf("journal: scan: %w", ErrClosed)
	}
	lo := nameKey(prefix)
	it, err := j.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return nil, j.loadError(err)
	}
	defer it.Close()
	valid := it.First()
	if after != "" {
		valid = it.SeekGE(append(nameKey(after), 0))
	}
	var out []Inode
	for ; valid && len(out) < limit; valid = it.Next() {
		value, err := it.ValueAndErr()
		if err != nil {
			return nil, j.loadError(err)
		}
		in, err := DecodeInode(it.Key(), value)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, j.loadErrorOrNil(it.Error())
}

var _ io.Closer = (*Snapshot)(nil)
