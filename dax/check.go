package dax

// Check proves the store's invariants against the journal, the view that
// recovery would rebuild from, and compares it with memory.

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

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
	s.checkResident(bad)
	st, err := img.snap.LoadCore()
	if err != nil {
		return fmt.Errorf("daxstore: check: %w", err)
	}
	if st.Legacy {
		bad("the journal holds format 1 records")
	}
	free, err := replayFree(st, st.Meta.BlockCount, func(format string, args ...any) error {
		return fmt.Errorf(format, args...)
	})
	if err != nil {
		bad("journal free space: %v", err)
		free = alloc.NewExtentSet()
	}
	files, err := img.scanFiles(st, free.Extents(), s.bs, bad)
	if err != nil {
		return fmt.Errorf("daxstore: check: %w", err)
	}
	if n, known := replayFiles(st); known && n != files.count {
		bad("the journal counts %d files but holds %d", n, files.count)
	}
	files.checkTiling(st, bad)
	if err := img.checkDirs(files.keys, bad); err != nil {
		return fmt.Errorf("daxstore: check: %w", err)
	}
	img.compareMemory(st, free.Extents(), files.count, bad)
	if x := subtract(img.referenced, append(files.written, img.busy...)); len(x) > 0 {
		bad("blocks %v are referenced but neither written file blocks nor busy", x)
	}
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
	snap        *journal.Snapshot
	fileCount   int64         // files as the store counts them
	jfree       []pmem.Extent // journaled free space
	avail       []pmem.Extent // allocatable space
	undurable   []pmem.Extent // freed, waiting for a journal sync (NoSync)
	busy        []pmem.Extent
	busyRecords int  // journal records the busy set keeps its runs in
	readOnly    bool // the store is open read-only
	referenced  []pmem.Extent
	violations  []string
}

// checkImage pauses the store (no operation or pin in flight, no commit),
// takes a journal snapshot, copies memory and runs the checks that need
// the live structures: their own checks and the reference counts.
func (s *Store) checkImage() (*checkImage, error) {
	start := time.Now()
	s.lockOut()
	defer func() {
		s.unlockOut()
		s.stats.checkPause.Store(int64(time.Since(start)))
	}()
	if s.closed.Load() {
		return nil, fmt.Errorf("daxstore: check: %w", ErrClosed)
	}
	img := &checkImage{}
	bad := func(format string, args ...any) {
		img.violations = append(img.violations, fmt.Sprintf(format, args...))
	}
	// Nothing changes a file while quiesce is held exclusive; commitMu
	// keeps out the releaser, which commits without quiesce. The files in
	// memory are compared with the journal after the pause (checkResident),
	// one at a time, so the pause does not grow with them.
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
	img.undurable = append(s.undurable.snapshot(), s.heldExtents()...)
	for _, x := range s.busy.All() {
		img.busy = append(img.busy, x.Extent)
	}
	img.busyRecords, img.readOnly = s.busy.Records(), s.opts.ReadOnly
	s.checkStructures(bad)
	img.referenced = s.checkReferences(bad)
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
// with the pins, the files, the busy set and free space. With quiesce held
// exclusive and every pin registry shard locked no reference is taken or
// dropped (reads, pins and Unpin all hold one of them), and commitMu keeps the releaser
// from committing, so the comparison is exact.
func (s *Store) checkReferences(bad func(string, ...any)) (referenced []pmem.Extent) {
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
	s.pins.eachLocked(func(p *pinRecord) {
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

// journalFiles is what Check keeps of the snapshot's files while it reads
// them one at a time: the blocks each claims, not the files themselves, so
// that a check of a million files stays a few tens of megabytes.
type journalFiles struct {
	count   int64
	keys    []string      // by file index, to name an owner in a violation
	claims  []claim       // every block run of free space, busy and the files
	written []pmem.Extent // written file blocks that a reference covers
}

// claim is one block run and who claims it: free space, a busy run
// (busy > 0: st.Busy[busy-1]) or a file (file > 0: keys[file-1], at file
// block fb). The owner is named only when a violation is reported.
type claim struct {
	e    pmem.Extent
	busy int
	file int
	fb   uint64
}

// scanFiles reads the snapshot's files one at a time and checks what holds
// for each alone (extents that do not overlap and lie inside its size, a
// unique inode number), collecting every block run claimed by free space,
// busy runs and files for checkTiling, and the written runs that a
// reference covers.
func (img *checkImage) scanFiles(st *journal.State, free []pmem.Extent, bs int64, bad func(string, ...any)) (*journalFiles, error) {
	jf := &journalFiles{}
	for _, e := range free {
		jf.claims = append(jf.claims, claim{e: e})
	}
	for i, r := range st.Busy {
		jf.claims = append(jf.claims, claim{e: r.Extent, busy: i + 1})
	}
	var inos []uint64
	referenced := func(e pmem.Extent) bool {
		i, _ := slices.BinarySearchFunc(img.referenced, e.Start, func(x pmem.Extent, b pmem.Block) int {
			if x.End() <= b {
				return -1
			}
			return 1
		})
		return i < len(img.referenced) && img.referenced[i].Start < e.End()
	}
	err := img.snap.ScanFiles(func(in journal.Inode) error {
		jf.count++
		jf.keys = append(jf.keys, in.Key)
		inos = append(inos, in.Ino)
		limit := uint64((in.Size + bs - 1) / bs)
		for i, r := range in.Extents {
			e := pmem.Extent{Start: r.Start, Len: r.Len}
			jf.claims = append(jf.claims, claim{e: e, file: len(jf.keys), fb: r.FileBlock})
			if i > 0 && in.Extents[i-1].FileBlock+in.Extents[i-1].Len > r.FileBlock {
				bad("%q: extents at file blocks %d and %d overlap", in.Key, in.Extents[i-1].FileBlock, r.FileBlock)
			}
			if r.FileBlock+r.Len > limit {
				bad("%q: extent at file block %d (+%d) lies past its size %d", in.Key, r.FileBlock, r.Len, in.Size)
			}
			if !r.Unwritten && referenced(e) {
				jf.written = append(jf.written, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(inos)
	for i := 1; i < len(inos); i++ {
		if inos[i] == inos[i-1] {
			bad("inode %d belongs to two keys", inos[i])
		}
	}
	return jf, nil
}

// checkTiling proves that every data block is in exactly one of free
// space, a busy run and one file extent.
func (jf *journalFiles) checkTiling(st *journal.State, bad func(string, ...any)) {
	who := func(c claim) string {
		switch {
		case c.busy > 0:
			return fmt.Sprintf("busy (was %q)", st.Busy[c.busy-1].Key)
		case c.file > 0:
			return fmt.Sprintf("%q file block %d", jf.keys[c.file-1], c.fb)
		}
		return "free space"
	}
	claims := jf.claims
	slices.SortFunc(claims, func(a, b claim) int { return cmp.Compare(a.e.Start, b.e.Start) })
	next, prev := pmem.Block(1), claim{}
	first := true // prev is the superblock
	prevWho := func() string {
		if first {
			return "the superblock"
		}
		return who(prev)
	}
	for _, c := range claims {
		switch {
		case c.e.Len == 0:
			bad("empty extent claimed by %s", who(c))
		case c.e.Start > next:
			bad("region blocks %v belong to nobody (leaked)", pmem.Extent{Start: next, Len: uint64(c.e.Start - next)})
		case c.e.Start < next:
			bad("region blocks from %d claimed by both %s and %s", c.e.Start, prevWho(), who(c))
		}
		if c.e.End() > next {
			next, prev, first = c.e.End(), c, false
		}
	}
	if blocks := pmem.Block(st.Meta.BlockCount); next < blocks {
		bad("region blocks %v belong to nobody (leaked)", pmem.Extent{Start: next, Len: uint64(blocks - next)})
	} else if next > blocks {
		bad("%s reaches past the region's %d blocks", prevWho(), blocks)
	}
}

// compareMemory reports where the copy of memory differs from the
// journal snapshot, whose free space (checkpoint and log replayed) is free.
func (img *checkImage) compareMemory(st *journal.State, free []pmem.Extent, files int64, bad func(string, ...any)) {
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
	// A read-only store holds each journaled run on its own.
	if img.busyRecords != st.BusyRecords && !img.readOnly {
		bad("busy extents lie in %d records in memory, %d in the journal", img.busyRecords, st.BusyRecords)
	}
	if img.fileCount != files {
		bad("%d files counted in memory, %d in the journal", img.fileCount, files)
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

// checkResident compares every file in memory with its record in the
// journal, one file at a time under its own extent-map lock, and reports
// keys and inodes in memory that do not match one to one. Every commit is
// applied to the journal before the file's locks are released, so under
// the extent-map lock memory and the live journal agree about the file.
// The namespace lock is held shared only while the files in memory are
// listed, and each file is held in memory (users) until it is compared.
func (s *Store) checkResident(bad func(string, ...any)) {
	type entry struct {
		name string
		in   *inode
	}
	s.nsMu.RLock()
	list := make([]entry, 0, len(s.names))
	inos := make(map[uint64]string, len(s.names))
	for name, in := range s.names {
		if other, dup := inos[in.ino]; dup {
			bad("keys %q and %q name the same inode %d in memory", name, other, in.ino)
		}
		inos[in.ino] = name
		if k := in.name(); k != name {
			bad("key %q names inode %d, which calls itself %q", name, in.ino, k)
			continue
		}
		in.users.Add(1)
		list = append(list, entry{name, in})
	}
	s.nsMu.RUnlock()
	slices.SortFunc(list, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	for _, e := range list {
		s.compareResident(e.name, e.in, bad)
		s.release(e.in)
	}
}

// compareResident compares one file in memory with its journal record.
func (s *Store) compareResident(name string, in *inode, bad func(string, ...any)) {
	in.mapMu.Lock()
	defer in.mapMu.Unlock()
	if in.removed || in.name() != name {
		return // removed or renamed since the listing: nothing to compare
	}
	f := fileImage{name: name, ino: in.ino, size: in.size, inline: in.inline, data: in.data}
	if in.inline && (in.extents.len() > 0 || int64(len(in.data)) != in.size) {
		bad("%q: inline file of %d bytes has size %d and maps %d extents", name, len(in.data), in.size, in.extents.len())
	}
	for _, m := range in.extents.all() {
		f.extents = append(f.extents, extentRecord(in.ino, m))
	}
	rec, ok, err := s.jnl.LookupInode(name)
	switch {
	case err != nil:
		bad("%q: %v", name, err)
	case !ok || rec.Ino != f.ino:
		bad("key %q (inode %d) is missing from the journal", name, f.ino)
	default:
		if rec.Size != f.size {
			bad("%q: size %d in memory, %d in the journal", name, f.size, rec.Size)
		}
		if f.inline != rec.Inline || !bytes.Equal(f.data, rec.Data) {
			bad("%q: inline %v with %d bytes in memory, inline %v with %d bytes in the journal", name, f.inline, len(f.data), rec.Inline, len(rec.Data))
		}
		if !slices.Equal(f.extents, rec.Extents) && (len(f.extents) > 0 || len(rec.Extents) > 0) {
			bad("%q: extent map in memory %v differs from the journal %v", name, f.extents, rec.Extents)
		}
		if rec.External != in.external {
			bad("%q: extents external %v in memory, %v in the journal", name, in.external, rec.External)
		}
		if mem := attrFromRecord(rec); (mem == nil) != (in.attr == nil) || (mem != nil && *mem != *in.attr) {
			bad("%q: attributes %+v in memory, %+v in the journal", name, in.attr, mem)
		}
	}
}
