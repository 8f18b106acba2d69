// Package dax is daxstore's public API: a key-file store whose file bytes
// live in a memory-mapped persistent-memory region and whose metadata is
// journaled in Pebble.
//
// A Store holds named files. A File is an io.ReaderAt, io.WriterAt and
// io.Closer with Truncate, PunchHole, ZeroRange and Allocate. A Pin gives
// zero-copy access to a file's bytes in the region and keeps those blocks
// alive: truncate, punch, zero-range, remove and overwrite never free a
// block that a pin still references. Such blocks move to the busy-extent
// list and are freed when their last pin drops.
//
// Durability: every operation that changes metadata commits one journal
// batch and syncs it before returning (unless Options.NoSync). Data written
// into new blocks is flushed before that commit, so a crash never exposes a
// block whose bytes were not in place. Overwrites of already-written blocks
// are made in place and flushed, but are not atomic across a crash, as on
// any DAX filesystem: use Put for an atomic replace.
package dax

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daxstore/daxstore/alloc"
	"github.com/daxstore/daxstore/busyextent"
	"github.com/daxstore/daxstore/journal"
	"github.com/daxstore/daxstore/pageref"
	"github.com/daxstore/daxstore/pmem"
)

// Store is an open daxstore. Its methods are safe for concurrent use.
type Store struct {
	dir    string
	opts   Options
	lock   *os.File // flock on DIR/LOCK, held for the store's life
	region *pmem.Region
	jnl    *journal.Journal
	bs     int64 // block size in bytes
	uuid   [16]byte

	// quiesce is held shared by every operation for its duration, and
	// exclusive by Check and Close, which need a state with nothing in
	// flight. Nobody holds it while waiting for a pin or for space.
	quiesce sync.RWMutex
	closed  atomic.Bool // set under quiesce held exclusive

	nsMu    sync.RWMutex // the namespace lock: protects names, inodes, nextIno
	names   map[string]*inode
	inodes  map[uint64]*inode
	nextIno uint64

	// free holds the blocks that may be handed out now. Blocks reserved by
	// an operation in flight are in neither free nor any file until that
	// operation commits or gives them back.
	free *alloc.Allocator

	// commitMu orders every journal commit that touches free or busy
	// records, so the deltas reach the journal in the order they were
	// computed. It protects journaledFree and failed.
	commitMu      sync.Mutex
	journaledFree *alloc.ExtentSet // free space exactly as the journal records it
	failed        error            // first journal failure; the store refuses changes after it
	hasFailed     atomic.Bool      // failed is set: read without commitMu on hot paths

	refs     *pageref.Table
	busy     *busyextent.Set
	releaser *busyextent.Releaser
	prefault *prefaulter

	pins    pinRegistry // every outstanding pin
	epoch   time.Time   // when Open began; pins record their time relative to it
	pinGate pinGate     // held shared by Pin's fast path; see lockOut

	admin *adminServer
	stats counters
}

// counters are cumulative statistics, updated with atomics.
type counters struct {
	released       atomic.Uint64 // blocks freed from busy after their last reference
	releaseBatches atomic.Uint64 // journal batches that freed busy blocks
	detached       atomic.Uint64 // blocks moved to busy
	allocWaits     atomic.Uint64 // allocations that waited for busy blocks
}

// Open opens the store in dir, creating it when dir holds none. A second
// process opening the same dir gets ErrLocked. Open replays the journal,
// checks that region and journal belong together (ErrMismatch), and frees
// every busy extent left by a previous process: pins do not outlive it.
func Open(dir string, o *Options) (*Store, error) {
	opts := o.EnsureDefaults()
	if opts.Size < 0 {
		return nil, fmt.Errorf("daxstore: open: negative size %d: %w", opts.Size, ErrInvalidRange)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("daxstore: open: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{
		dir:    dir,
		opts:   opts,
		lock:   lock,
		names:  make(map[string]*inode),
		inodes: make(map[uint64]*inode),
		free:   alloc.New(),
		busy:   busyextent.NewSet(),
		epoch:  time.Now(),
	}
	if err := s.open(); err != nil {
		s.closeResources()
		return nil, err
	}
	return s, nil
}

func (s *Store) regionPath() string {
	if s.opts.RegionPath != "" {
		return s.opts.RegionPath
	}
	return filepath.Join(s.dir, "region")
}

func (s *Store) open() error {
	jo := journal.Options{NoSync: s.opts.NoSync}
	switch {
	case s.opts.PowerCut != nil:
		jo.FS = s.opts.PowerCut.journalFS()
	case s.opts.JournalFaults != nil:
		jo.FS = s.opts.JournalFaults
	}
	jnl, err := journal.Open(filepath.Join(s.dir, "journal"), jo)
	if err != nil {
		return fmt.Errorf("daxstore: %w", err)
	}
	s.jnl = jnl
	st, err := jnl.Load()
	if err != nil {
		return fmt.Errorf("daxstore: recover: %w", err)
	}
	if !st.HasMeta {
		if len(st.Names)+len(st.Inodes)+len(st.Extents)+len(st.Free)+len(st.Busy) > 0 {
			return fmt.Errorf("daxstore: recover: journal has records but no store metadata: %w", ErrCorrupt)
		}
		return s.create()
	}
	if _, err := os.Stat(s.regionPath()); errors.Is(err, fs.ErrNotExist) && pristine(st) {
		// A crash between the journal's first batch and the region's
		// creation: finish creating the store.
		m := st.Meta
		return s.createRegion(pmem.Superblock{Version: pmem.FormatVersion, BlockSize: m.BlockSize, BlockCount: m.BlockCount, UUID: m.UUID})
	}
	region, err := pmem.OpenWith(s.regionPath(), pmem.OpenOptions{PowerCut: s.opts.PowerCut.device()})
	if err != nil {
		return fmt.Errorf("daxstore: open region: %w", err)
	}
	s.region = region
	sb := region.Superblock()
	m := st.Meta
	if sb.UUID != m.UUID || sb.BlockSize != m.BlockSize || sb.BlockCount != m.BlockCount {
		return fmt.Errorf("daxstore: region %s (uuid %s, %d blocks of %d) and journal (uuid %s, %d blocks of %d): %w",
			s.regionPath(), pmem.FormatUUID(sb.UUID), sb.BlockCount, sb.BlockSize,
			pmem.FormatUUID(m.UUID), m.BlockCount, m.BlockSize, ErrMismatch)
	}
	s.uuid, s.bs = sb.UUID, int64(sb.BlockSize)
	s.nextIno = max(m.NextInode, 1)
	if err := s.rebuild(st); err != nil {
		return err
	}
	return s.start()
}

// create makes a new store. The journal names it first and the region
// follows, so a crash in between leaves a journal from which the next Open
// finishes the creation, never a region that no journal claims.
func (s *Store) create() error {
	path := s.regionPath()
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("daxstore: region %s exists but journal %s holds no store; remove one of them: %w",
			path, filepath.Join(s.dir, "journal"), ErrMismatch)
	}
	uuid, err := pmem.NewUUID()
	if err != nil {
		return fmt.Errorf("daxstore: create: %w", err)
	}
	sb := pmem.Superblock{Version: pmem.FormatVersion, BlockSize: s.opts.BlockSize,
		BlockCount: uint64(s.opts.Size / max(1, int64(s.opts.BlockSize))), UUID: uuid}
	if _, err := sb.MarshalBinary(); err != nil {
		return fmt.Errorf("daxstore: create: region of %d bytes in blocks of %d: %v: %w", s.opts.Size, s.opts.BlockSize, err, ErrInvalidRange)
	}
	b := s.jnl.NewBatch()
	b.SetMeta(journal.Meta{UUID: sb.UUID, BlockSize: sb.BlockSize, BlockCount: sb.BlockCount, NextInode: 1})
	b.SetFree(pmem.Extent{Start: 1, Len: sb.BlockCount - 1})
	if err := b.Commit(true); err != nil {
		return fmt.Errorf("daxstore: create: %w", err)
	}
	return s.createRegion(sb)
}

// createRegion creates the region the journal already describes, with an
// empty store in it.
func (s *Store) createRegion(sb pmem.Superblock) error {
	region, err := pmem.Create(s.regionPath(), pmem.CreateOptions{BlockSize: sb.BlockSize,
		Size: int64(sb.BlockCount) * int64(sb.BlockSize), UUID: sb.UUID, PowerCut: s.opts.PowerCut.device()})
	if err != nil {
		return fmt.Errorf("daxstore: create region: %w", err)
	}
	s.region = region
	s.uuid, s.bs, s.nextIno = sb.UUID, int64(sb.BlockSize), 1
	data := pmem.Extent{Start: 1, Len: sb.BlockCount - 1}
	s.journaledFree = alloc.NewExtentSet()
	if _, err := s.journaledFree.Insert(data); err != nil {
		return err
	}
	if err := s.free.Free(data); err != nil {
		return err
	}
	return s.start()
}

// pristine reports whether a journal holds a store with nothing in it yet.
func pristine(st *journal.State) bool {
	return len(st.Names)+len(st.Inodes)+len(st.Extents)+len(st.Busy) == 0 && len(st.Free) == 1 &&
		st.Free[0] == pmem.Extent{Start: 1, Len: st.Meta.BlockCount - 1}
}

// rebuild loads the in-memory indexes from the journal's state, then frees
// every busy extent left by the previous process in one batch.
func (s *Store) rebuild(st *journal.State) error {
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("daxstore: recover: "+format+": %w", append(args, ErrCorrupt)...)
	}
	blocks := s.region.BlockCount()
	inRegion := func(e pmem.Extent) bool {
		return e.Len > 0 && e.Start >= 1 && uint64(e.End()) <= blocks && e.End() > e.Start
	}
	for ino, in := range st.Inodes {
		if in.Ino != ino || ino == 0 {
			return corrupt("inode record %d holds inode %d", ino, in.Ino)
		}
		if st.Names[in.Key] != ino {
			return corrupt("inode %d names key %q, which does not name it back", ino, in.Key)
		}
		if in.Size < 0 || in.Size > MaxFileSize {
			return corrupt("inode %d has size %d", ino, in.Size)
		}
		node := newInode(ino, in.Key, in.Size, time.Unix(0, in.ModTime))
		for _, r := range st.Extents[ino] {
			e := pmem.Extent{Start: r.Start, Len: r.Len}
			if !inRegion(e) {
				return corrupt("inode %d maps file block %d to %v, outside the region", ino, r.FileBlock, e)
			}
			if len(node.extents.find(r.FileBlock, r.FileBlock+r.Len)) > 0 {
				return corrupt("inode %d maps file block %d twice", ino, r.FileBlock)
			}
			node.extents.tree.ReplaceOrInsert(mapping{fileBlock: r.FileBlock, start: r.Start, n: r.Len, unwritten: r.Unwritten})
		}
		s.inodes[ino] = node
		s.names[in.Key] = node
		s.nextIno = max(s.nextIno, ino+1)
	}
	for name, ino := range st.Names {
		if s.inodes[ino] == nil {
			return corrupt("key %q names missing inode %d", name, ino)
		}
	}
	for ino := range st.Extents {
		if s.inodes[ino] == nil {
			return corrupt("extents of missing inode %d", ino)
		}
	}
	s.journaledFree = alloc.NewExtentSet()
	for _, e := range st.Free {
		if !inRegion(e) {
			return corrupt("free extent %v outside the region", e)
		}
		if _, err := s.journaledFree.Insert(e); err != nil {
			return corrupt("free extent %v: %v", e, err)
		}
	}
	// No pin survives its process, so every busy extent is free now. One
	// batch turns them all back into free space.
	if len(st.Busy) > 0 {
		b := s.jnl.NewBatch()
		for _, r := range st.Busy {
			if !inRegion(r.Extent) {
				b.Close()
				return corrupt("busy extent %v outside the region", r.Extent)
			}
			d, err := s.journaledFree.Insert(r.Extent)
			if err != nil {
				b.Close()
				return corrupt("busy extent %v: %v", r.Extent, err)
			}
			b.DeleteBusy(r.Extent.Start)
			applyFreeDelta(b, d)
		}
		if err := b.Commit(true); err != nil {
			return fmt.Errorf("daxstore: recover: free busy extents: %w", err)
		}
	}
	var ferr error
	s.journaledFree.Ascend(func(e pmem.Extent) bool {
		ferr = s.free.Free(e)
		return ferr == nil
	})
	return ferr
}

// start brings up the parts that run while the store is open.
func (s *Store) start() error {
	s.prefault = newPrefaulter(s.region)
	s.refs = pageref.New(s.region.BlockCount(), s.onLastRelease)
	s.releaser = busyextent.NewReleaser(s.commitRelease)
	if !s.opts.NoAdminSocket {
		a, err := startAdmin(s)
		if err != nil {
			return err
		}
		s.admin = a
	}
	return nil
}

// CloseOptions says what Close does about pins still outstanding.
type CloseOptions struct {
	// Force closes even with pins outstanding. The pins become invalid:
	// Bytes returns nil and Unpin returns ErrClosed. The mapping is then
	// left in place until the process exits, so slices a holder kept do not
	// fault, but their blocks may be reused by the next opener.
	Force bool
	// Wait waits, bounded by Close's context, for every pin to be released.
	Wait bool
}

// Close closes the store. With pins outstanding it returns ErrPinned listing
// them and stays open; see CloseWith for forcing or waiting. A second Close
// returns ErrClosed.
func (s *Store) Close() error {
	return s.CloseWith(context.Background(), CloseOptions{})
}

// CloseWith closes the store as Close does, forcing or waiting for pins as
// opts says.
func (s *Store) CloseWith(ctx context.Context, opts CloseOptions) error {
	if s.closed.Load() {
		return fmt.Errorf("daxstore: close: %w", ErrClosed)
	}
	for {
		gone, done := s.pins.emptied()
		n := s.pins.len()
		if n == 0 || opts.Force {
			// A Pin in flight holds quiesce or the pin gate shared and
			// registers its pin before it lets go, so "no pins" is final
			// only with both held exclusive: look again there, or a pin
			// that Pin has just returned would be invalidated by a Close
			// that was not forced (TestCloseRacingPins).
			s.lockOut()
			if s.closed.Load() {
				s.unlockOut()
				done()
				return fmt.Errorf("daxstore: close: %w", ErrClosed)
			}
			n = s.pins.len()
			if n == 0 || opts.Force {
				done()
				break // with quiesce and the gate held
			}
			s.unlockOut()
		}
		if !opts.Wait {
			done()
			return fmt.Errorf("daxstore: close: %w: %s", ErrPinned, describePins(s.Pins()))
		}
		select {
		case <-gone:
			done()
		case <-ctx.Done():
			done()
			return fmt.Errorf("daxstore: close: waiting for %d pins: %w", n, ctx.Err())
		}
	}
	s.closed.Store(true)
	s.unlockOut()

	forced := s.pins.drain(func(p *Pin) { p.released.Store(true) })
	if forced > 0 {
		// The holders may still touch their slices: keep the mapping.
		s.region = nil
	}
	return s.closeResources()
}

// closeResources shuts down whatever Open brought up, in reverse order.
func (s *Store) closeResources() error {
	var errs []error
	if s.admin != nil {
		errs = append(errs, s.admin.close())
	}
	if s.releaser != nil {
		// Busy→free commits still pending are redundant (recovery frees
		// every busy extent) but cheap, and they keep the journal tidy.
		errs = append(errs, s.releaser.Close())
	}
	s.prefault.close()
	if s.jnl != nil {
		errs = append(errs, s.jnl.Close())
	}
	if s.region != nil {
		errs = append(errs, s.region.Close())
	}
	errs = append(errs, unlockDir(s.lock))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("daxstore: close: %w", err)
	}
	return nil
}

// begin starts an operation: it holds quiesce shared until end. It fails on
// a closed store, and on a failed one when the operation changes state.
func (s *Store) begin(mutating bool) error {
	s.quiesce.RLock()
	if s.closed.Load() {
		s.quiesce.RUnlock()
		return ErrClosed
	}
	if mutating && s.hasFailed.Load() {
		s.commitMu.Lock()
		failed := s.failed
		s.commitMu.Unlock()
		s.quiesce.RUnlock()
		return failed
	}
	return nil
}

// lockOut waits for every operation and pin in flight to finish and keeps
// new ones out until unlockOut: quiesce and the pin gate held exclusive.
func (s *Store) lockOut() {
	s.quiesce.Lock()
	s.pinGate.lock()
}

func (s *Store) unlockOut() {
	s.pinGate.unlock()
	s.quiesce.Unlock()
}

func (s *Store) end() { s.quiesce.RUnlock() }

// Dir returns the store directory.
func (s *Store) Dir() string { return s.dir }

// BlockSize returns the region block size in bytes.
func (s *Store) BlockSize() int64 { return s.bs }

// DAX reports whether the region is mapped with MAP_SYNC on a real fsdax
// filesystem, where CPU cache flushes alone make data durable.
func (s *Store) DAX() bool { return s.region != nil && s.region.DAX() }

// describePins formats pins for an error message.
func describePins(pins []PinInfo) string {
	parts := make([]string, 0, len(pins))
	for _, p := range pins {
		label := p.Label
		if label == "" {
			label = "(no label)"
		}
		parts = append(parts, fmt.Sprintf("%s on %q [%d,+%d) for %s", label, p.Key, p.Offset, p.Length,
			time.Since(p.Created).Round(time.Millisecond)))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}
