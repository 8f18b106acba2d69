package dax

// Check proves the store's invariants against the journal, the view that
// recovery would rebuild from, and compares it with memory.

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/daxstore/daxstore/alloc"
	"github.com/daxstore/daxstore/journal"
	"github.com/daxstore/daxstore/pmem"
)

// Check verifies every invariant the design names:
//   - every data block is in exactly one of: free space, one file extent,
//     the busy list (none is lost, none is claimed twice);
//   - the extents of a file do not overlap and lie inside its size;
//   - names and inodes match one to one, and the file count is right;
//   - an inline file maps no blocks and its size is its bytes' length;
//   - memory (free space, busy list, and the name, size, extent map and
//     inline bytes of every file in memory) equals the journal, where free space in memory
//     is the allocatable blocks plus those NoSync holds back until a
//     journal sync;
//   - the reference table, the busy set and both free-space indexes pass
//     their own checks;
//   - every block's reference count is the number of pins covering it, and
//     only written file blocks and busy blocks are referenced;
//   - a block carries the detached mark exactly when it is busy and still
//     referenced; busy blocks no longer referenced wait in the releaser.
//
// It pauses the store only to take a journal snapshot and copy what is in
// memory, with no operation in flight; the journal is then read and checked
// from the snapshot while operations go on, so the pause does not grow with
// the number of files.
//
// It returns nil, or an error wrapping ErrCorrupt that lists every
// violation. TestCheckCatchesCorruption corrupts each in turn.
func (s *Store) Check() error {
	img, err := s.checkImage()
	if err != nil {
		return err
	}
	defer img.snap.Close()
	if err := s.begin(false); err != nil {
		return fmt.Errorf("daxstore: check: %w", err)
	}
	defer s.end()
	if checkReadHook != nil {
		checkReadHook()
	}
	v := img.violations
	bad := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	st, err := img.snap.Load()
	if err != nil {
		return fmt.Errorf("daxstore: check: %w", err)
	}
	free, err := replayFree(st, st.Meta.BlockCount, func(format string, args ...any) error {
		return fmt.Errorf(format, args...)
	})
	if err != nil {
		bad("journal free space: %v", err)
		free = alloc.NewExtentSet()
	}
	if files, known := replayFiles(st); known && files != int64(len(st.Names)) {
		bad("the journal counts %d files but holds %d", files, len(st.Names))
	}
	checkJournal(st, free.Extents(), s.bs, bad)
	img.compareMemory(st, free.Extents(), bad)
	img.checkWritten(st, bad)
	if len(v) == 0 {
		return nil
	}
	return fmt.Errorf("daxstore: check: %d violations: %w:\n  %s", len(v), ErrCorrupt, joinLines(v))
}

// checkReadHook, when set by a test, runs after Check has let the store go
// and before it reads the snapshot.
var checkReadHook func()

// checkImage is what Check copies from memory while the store is paused,
// with the journal snapshot taken at the same moment.
type checkImage struct {
	snap       *journal.Snapshot
	files      []fileImage   // the files in memory
	fileCount  int64         // files as the store counts them
	jfree      []pmem.Extent // journaled free space
	avail      []pmem.Extent // allocatable space
	undurable  []pmem.Extent // freed, waiting for a journal sync (NoSync)
	busy       []pmem.Extent
	referenced []pmem.Extent
	violations []string
}

// checkImage pauses the store (no operation or pin in flight, no commit),
// takes a journal snapshot, copies memory and runs the checks that need
// the live structures: their own checks and the reference counts.
func (s *Store) checkImage() (*checkImage, error) {
	s.lockOut()
	defer s.unlockOut()
	if s.closed.Load() {
		return nil, fmt.Errorf("daxstore: check: %w", ErrClosed)
	}
	img := &checkImage{}
	bad := func(format string, args ...any) {
		img.violations = append(img.violations, fmt.Sprintf(format, args...))
	}
	// The namespace and the extent maps come first in the lock order, and
	// commitMu after them: copy the files, then freeze commits. Nothing
	// changes a file while quiesce is held exclusive; commitMu keeps out
	// the releaser, which commits without quiesce.
	img.files = s.fileImages(bad)
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	snap, err := s.jnl.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("daxstore: check: %w", err)
	}
	img.snap = snap
	img.fileCount = s.flog.files.Load()
	img.jfree = s.journaledFree.Extents()
	img.avail = s.free.Extents()
	img.undurable = s.undurable.snapshot()
	for _, x := range s.busy.All() {
		img.busy = append(img.busy, x.Extent)
	}
	s.checkStructures(bad)
	img.referenced = s.checkReferences(img.files, bad)
	if s.failed != nil {
		bad("store failed: %v", s.failed)
	}
	return img, nil
}

// checkStructures runs the own checks of the structures the store
// composes. commitMu and quiesce must be held.
func (s *Store) checkStructures(bad func(string, ...any)) {
	for _, c := range []struct {
		what  string
		check func() error
	}{
		{"reference table", s.refs.Check},
		{"busy set", s.busy.Check},
		{"allocatable space", s.free.Check},
		{"journaled free space", s.journaledFree.Check},
	} {
		if err := c.check(); err != nil {
			bad("%s: %v", c.what, err)
		}
	}
}

// checkReferences compares the reference table (counts and detached marks)
// with the pins, the files, the busy set and free space. With quiesce and
// the pin gate held exclusive no reference is taken or dropped (reads,
// pins and Unpin all hold one of them), and commitMu keeps the releaser
// from committing, so the comparison is exact.
func (s *Store) checkReferences(files []fileImage, bad func(string, ...any)) (referenced []pmem.Extent) {
	region := pmem.Extent{Start: 1, Len: s.refs.Blocks() - 1}
	referenced = s.refs.Referenced(region)
	detached := s.refs.Detached(region)

	var busy []pmem.Extent
	for _, x := range s.busy.All() {
		busy = append(busy, x.Extent)
	}
	free := append(s.free.Extents(), s.undurable.snapshot()...)
	sortExtents(free)

	if x := intersect(referenced, free); len(x) > 0 {
		bad("free blocks %v are referenced", x)
	}
	if x := subtract(detached, busy); len(x) > 0 {
		bad("blocks %v are marked detached but not busy", x)
	}
	if x := subtract(detached, referenced); len(x) > 0 {
		bad("blocks %v are marked detached with no reference", x)
	}
	refBusy := intersect(referenced, busy)
	if x := subtract(refBusy, detached); len(x) > 0 {
		bad("busy blocks %v are referenced but not marked detached", x)
	}
	// A busy block whose last reference dropped waits in the releaser. A
	// read-only store is the exception: its busy extents are the journal's
	// stale ones, which only the next read-write Open frees.
	if idle, pending := blocksIn(busy)-blocksIn(refBusy), s.releaser.Pending(); idle > pending && !s.opts.ReadOnly {
		bad("%d busy blocks have no reference, but only %d wait for release", idle, pending)
	}

	// Each block's count is the number of pins that cover it.
	var edges []pinEdge
	s.pins.each(func(p *Pin) {
		for _, r := range p.runs {
			edges = append(edges, pinEdge{r.Start, 1}, pinEdge{r.End(), -1})
		}
	})
	slices.SortFunc(edges, func(a, b pinEdge) int { return cmp.Compare(a.at, b.at) })
	var covered []pmem.Extent
	depth := 0
	for i, e := range edges {
		depth += e.delta
		if i+1 < len(edges) && edges[i+1].at > e.at && depth > 0 {
			run := pmem.Extent{Start: e.at, Len: uint64(edges[i+1].at - e.at)}
			covered = append(covered, run)
			for b := run.Start; b < run.End(); b++ {
				if got := s.refs.Count(b); got != uint32(depth) {
					bad("block %d has %d references, but %d pins cover it", b, got, depth)
					break
				}
			}
		}
	}
	if x := subtract(referenced, covered); len(x) > 0 {
		bad("blocks %v are referenced by no pin", x)
	}
	return referenced
}

// checkWritten reports referenced blocks that are neither written blocks
// of a file, as the snapshot has them, nor busy.
func (img *checkImage) checkWritten(st *journal.State, bad func(string, ...any)) {
	written := slices.Clone(img.busy)
	for _, recs := range st.Extents {
		for _, r := range recs {
			if !r.Unwritten {
				written = append(written, pmem.Extent{Start: r.Start, Len: r.Len})
			}
		}
	}
	if x := subtract(img.referenced, written); len(x) > 0 {
		bad("blocks %v are referenced but neither written file blocks nor busy", x)
	}
}

// pinEdge is where a pinned run starts (+1) or ends (-1).
type pinEdge struct {
	at    pmem.Block
	delta int
}

func sortExtents(es []pmem.Extent) {
	slices.SortFunc(es, func(a, b pmem.Extent) int { return cmp.Compare(a.Start, b.Start) })
}

// intersect returns the blocks in both a and b, which must each be sorted
// by start and free of overlaps.
func intersect(a, b []pmem.Extent) []pmem.Extent {
	var out []pmem.Extent
	for i, j := 0, 0; i < len(a) && j < len(b); {
		if x, ok := a[i].Intersect(b[j]); ok {
			out = append(out, x)
		}
		if a[i].End() < b[j].End() {
			i++
		} else {
			j++
		}
	}
	return out
}

// subtract returns the blocks of a (sorted, no overlaps) that are in no
// extent of b (any order, overlaps allowed).
func subtract(a, b []pmem.Extent) []pmem.Extent {
	var cut []pmem.Extent // b sorted and merged
	for _, e := range slices.SortedFunc(slices.Values(b), func(x, y pmem.Extent) int { return cmp.Compare(x.Start, y.Start) }) {
		if k := len(cut) - 1; k >= 0 && e.Start <= cut[k].End() {
			if e.End() > cut[k].End() {
				cut[k].Len = uint64(e.End() - cut[k].Start)
			}
			continue
		}
		cut = append(cut, e)
	}
	var out []pmem.Extent
	j := 0
	for _, e := range a {
		next := e.Start
		for j < len(cut) && cut[j].End() <= next {
			j++
		}
		for k := j; k < len(cut) && cut[k].Start < e.End(); k++ {
			if cut[k].Start > next {
				out = append(out, pmem.Extent{Start: next, Len: uint64(cut[k].Start - next)})
			}
			next = max(next, cut[k].End())
		}
		if next < e.End() {
			out = append(out, pmem.Extent{Start: next, Len: uint64(e.End() - next)})
		}
	}
	return out
}

func blocksIn(es []pmem.Extent) uint64 {
	var n uint64
	for _, e := range es {
		n += e.Len
	}
	return n
}

func joinLines(v []string) string {
	out := v[0]
	for _, s := range v[1:] {
		out += "\n  " + s
	}
	return out
}

// checkJournal verifies the invariants that hold for the journal alone.
func checkJournal(st *journal.State, free []pmem.Extent, bs int64, bad func(string, ...any)) {
	type claim struct {
		e   pmem.Extent
		who string
	}
	var claims []claim
	for _, e := range free {
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

// compareMemory reports where the copy of memory differs from the
// journal snapshot, whose free space (checkpoint and log replayed) is free.
func (img *checkImage) compareMemory(st *journal.State, free []pmem.Extent, bad func(string, ...any)) {
	if !slices.Equal(img.jfree, free) {
		bad("free space in memory %v differs from the journal %v", img.jfree, free)
	}
	// Allocatable space plus the blocks NoSync holds back until a sync is
	// the journal's free space.
	avail := alloc.NewExtentSet()
	for _, e := range append(slices.Clone(img.avail), img.undurable...) {
		if _, err := avail.Insert(e); err != nil {
			bad("free block run %v is both allocatable and waiting for a sync: %v", e, err)
		}
	}
	if got := avail.Extents(); !slices.Equal(got, free) {
		bad("allocatable space %v (with %v waiting for a sync) differs from the journal's free space %v", img.avail, img.undurable, free)
	}
	var jbusy []pmem.Extent
	for _, r := range st.Busy {
		jbusy = append(jbusy, r.Extent)
	}
	if !slices.Equal(img.busy, jbusy) {
		bad("busy extents in memory %v differ from the journal %v", img.busy, jbusy)
	}
	if img.fileCount != int64(len(st.Names)) {
		bad("%d files counted in memory, %d in the journal", img.fileCount, len(st.Names))
	}
	for _, f := range img.files {
		name := f.name
		jin, ok := st.Inodes[st.Names[name]]
		if !ok || st.Names[name] != f.ino {
			bad("key %q (inode %d) is missing from the journal", name, f.ino)
			continue
		}
		if jin.Size != f.size {
			bad("%q: size %d in memory, %d in the journal", name, f.size, jin.Size)
		}
		if f.inline != jin.Inline || !bytes.Equal(f.data, jin.Data) {
			bad("%q: inline %v with %d bytes in memory, inline %v with %d bytes in the journal", name, f.inline, len(f.data), jin.Inline, len(jin.Data))
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
	size    int64
	extents []journal.ExtentRecord
	inline  bool
	data    []byte
}

// fileImages copies every file's metadata, taking the namespace lock and
// then each extent-map lock, in the documented order, and reports where
// names and inodes do not match one to one. quiesce must be held
// exclusive, so that the copy is one consistent state.
func (s *Store) fileImages(bad func(string, ...any)) []fileImage {
	s.nsMu.RLock()
	defer s.nsMu.RUnlock()
	out := make([]fileImage, 0, len(s.names))
	inos := make(map[uint64]string, len(s.names))
	for name, in := range s.names {
		if other, dup := inos[in.ino]; dup {
			bad("keys %q and %q name the same inode %d in memory", name, other, in.ino)
		}
		inos[in.ino] = name
		if k := in.name(); k != name {
			bad("key %q names inode %d, which calls itself %q", name, in.ino, k)
		}
		in.mapMu.Lock()
		f := fileImage{name: name, ino: in.ino, size: in.size, inline: in.inline, data: in.data}
		if in.inline && (in.extents.len() > 0 || int64(len(in.data)) != in.size) {
			bad("%q: inline file of %d bytes has size %d and maps %d extents", name, len(in.data), in.size, in.extents.len())
		}
		for _, m := range in.extents.all() {
			f.extents = append(f.extents, journal.ExtentRecord{Ino: in.ino, FileBlock: m.fileBlock, Start: m.start, Len: m.n, Unwritten: m.unwritten})
		}
		in.mapMu.Unlock()
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b fileImage) int { return strings.Compare(a.name, b.name) })
	return out
}
