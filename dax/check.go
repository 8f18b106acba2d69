package dax

// Check proves the store's invariants against the journal, the view that
// recovery would rebuild from, and compares it with memory.

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/daxstore/daxstore/alloc"
	"github.com/daxstore/daxstore/journal"
	"github.com/daxstore/daxstore/pmem"
)

// Check verifies, with no operation in flight:
//   - every data block is in exactly one of: free space, one file extent,
//     the busy list (none is lost, none is claimed twice);
//   - the extents of a file do not overlap and lie inside its size;
//   - names and inodes match one to one;
//   - memory (free space, busy list, names, sizes, extent maps) equals the
//     journal;
//   - no pinned block is free.
//
// It returns nil, or an error wrapping ErrCorrupt that lists every
// violation.
func (s *Store) Check() error {
	s.lockOut()
	defer s.unlockOut()
	if s.closed.Load() {
		return fmt.Errorf("daxstore: check: %w", ErrClosed)
	}
	// The namespace and the extent maps come first in the lock order, and
	// commitMu after them: copy the files, then freeze commits. Nothing
	// changes a file while quiesce is held exclusive; commitMu keeps out
	// the releaser, which commits without quiesce.
	files := s.fileImages()
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	st, err := s.jnl.Load()
	if err != nil {
		return fmt.Errorf("daxstore: check: %w", err)
	}
	var v []string
	bad := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	checkJournal(st, s.bs, bad)
	s.compareMemory(st, files, bad)
	s.pins.each(func(p *Pin) {
		if p.released.Load() {
			return // an Unpin in progress: its blocks may be free already
		}
		for _, r := range p.runs {
			if s.journaledFree.Overlaps(r) || s.free.Overlaps(r) {
				bad("pin %q holds region blocks %v that are free", p.label, r)
			}
		}
	})
	if s.failed != nil {
		bad("store failed: %v", s.failed)
	}
	if len(v) == 0 {
		return nil
	}
	return fmt.Errorf("daxstore: check: %d violations: %w:\n  %s", len(v), ErrCorrupt, joinLines(v))
}

func joinLines(v []string) string {
	out := v[0]
	for _, s := range v[1:] {
		out += "\n  " + s
	}
	return out
}

// checkJournal verifies the invariants that hold for the journal alone.
func checkJournal(st *journal.State, bs int64, bad func(string, ...any)) {
	type claim struct {
		e   pmem.Extent
		who string
	}
	var claims []claim
	for _, e := range st.Free {
		claims = append(claims, claim{e, "free space"})
	}
	for _, r := range st.Busy {
		claims = append(claims, claim{r.Extent, fmt.Sprintf("busy (was %q)", r.Key)})
	}
	for ino, recs := range st.Extents {
		in, ok := st.Inodes[ino]
		if !ok {
			bad("extents of inode %d, which does not exist", ino)
		}
		limit := uint64((in.Size + bs - 1) / bs)
		for i, r := range recs {
			claims = append(claims, claim{pmem.Extent{Start: r.Start, Len: r.Len}, fmt.Sprintf("%q file block %d", in.Key, r.FileBlock)})
			if i > 0 && recs[i-1].FileBlock+recs[i-1].Len > r.FileBlock {
				bad("%q: extents at file blocks %d and %d overlap", in.Key, recs[i-1].FileBlock, r.FileBlock)
			}
			if r.FileBlock+r.Len > limit {
				bad("%q: extent at file block %d (+%d) lies past its size %d", in.Key, r.FileBlock, r.Len, in.Size)
			}
		}
	}
	sort.Slice(claims, func(i, j int) bool { return claims[i].e.Start < claims[j].e.Start })
	next, prev := pmem.Block(1), "the superblock"
	for _, c := range claims {
		switch {
		case c.e.Len == 0:
			bad("empty extent claimed by %s", c.who)
		case c.e.Start > next:
			bad("region blocks %v belong to nobody (leaked)", pmem.Extent{Start: next, Len: uint64(c.e.Start - next)})
		case c.e.Start < next:
			bad("region blocks from %d claimed by both %s and %s", c.e.Start, prev, c.who)
		}
		if c.e.End() > next {
			next, prev = c.e.End(), c.who
		}
	}
	if blocks := pmem.Block(st.Meta.BlockCount); next < blocks {
		bad("region blocks %v belong to nobody (leaked)", pmem.Extent{Start: next, Len: uint64(blocks - next)})
	} else if next > blocks {
		bad("%s reaches past the region's %d blocks", prev, blocks)
	}
	for name, ino := range st.Names {
		if in, ok := st.Inodes[ino]; !ok || in.Key != name {
			bad("key %q names inode %d, which does not name it back", name, ino)
		}
	}
	for ino, in := range st.Inodes {
		if st.Names[in.Key] != ino {
			bad("inode %d (%q) has no name", ino, in.Key)
		}
	}
}

// compareMemory reports where the in-memory state (files as fileImages
// copied them) differs from the journal. commitMu and quiesce must be held.
func (s *Store) compareMemory(st *journal.State, files []fileImage, bad func(string, ...any)) {
	if got := s.journaledFree.Extents(); !slices.Equal(got, st.Free) {
		bad("free space in memory %v differs from the journal %v", got, st.Free)
	}
	// Allocatable space plus the blocks NoSync holds back until a sync is
	// the journal's free space.
	avail := alloc.NewExtentSet()
	for _, e := range append(s.free.Extents(), s.undurable.snapshot()...) {
		if _, err := avail.Insert(e); err != nil {
			bad("free block run %v is both allocatable and waiting for a sync: %v", e, err)
		}
	}
	if got := avail.Extents(); !slices.Equal(got, st.Free) {
		bad("allocatable space %v (with %v waiting for a sync) differs from the journal's free space %v", s.free.Extents(), s.undurable.snapshot(), st.Free)
	}
	var busy []pmem.Extent
	for _, x := range s.busy.All() {
		busy = append(busy, x.Extent)
	}
	var jbusy []pmem.Extent
	for _, r := range st.Busy {
		jbusy = append(jbusy, r.Extent)
	}
	if !slices.Equal(busy, jbusy) {
		bad("busy extents in memory %v differ from the journal %v", busy, jbusy)
	}
	if len(files) != len(st.Names) {
		bad("%d keys in memory, %d in the journal", len(files), len(st.Names))
	}
	for _, f := range files {
		name := f.name
		jin, ok := st.Inodes[st.Names[name]]
		if !ok || st.Names[name] != f.ino {
			bad("key %q (inode %d) is missing from the journal", name, f.ino)
			continue
		}
		if jin.Size != f.size {
			bad("%q: size %d in memory, %d in the journal", name, f.size, jin.Size)
		}
		if !slices.Equal(f.extents, st.Extents[f.ino]) {
			bad("%q: extent map in memory %v differs from the journal %v", name, f.extents, st.Extents[f.ino])
		}
	}
}

// fileImage is what Check compares of one file: its name in the namespace,
// inode, size and extent map as journal records.
type fileImage struct {
	name    string
	ino     uint64
	keyName string // the inode's own idea of its key
	size    int64
	extents []journal.ExtentRecord
}

// fileImages copies every file's metadata, taking the namespace lock and
// then each extent-map lock, in the documented order. quiesce must be held
// exclusive, so that the copy is one consistent state.
func (s *Store) fileImages() []fileImage {
	s.nsMu.RLock()
	defer s.nsMu.RUnlock()
	out := make([]fileImage, 0, len(s.names))
	for name, in := range s.names {
		in.mapMu.Lock()
		f := fileImage{name: name, ino: in.ino, keyName: in.name(), size: in.size}
		for _, m := range in.extents.all() {
			f.extents = append(f.extents, journal.ExtentRecord{Ino: in.ino, FileBlock: m.fileBlock, Start: m.start, Len: m.n, Unwritten: m.unwritten})
		}
		in.mapMu.Unlock()
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b fileImage) int { return strings.Compare(a.name, b.name) })
	return out
}
