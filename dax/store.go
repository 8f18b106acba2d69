// Package dax is daxstore's public API: a key-file store whose file bytes
// live in a memory-mapped persistent-memory region and whose metadata is
// journaled in Pebble.
//
// Getting started: Open a directory (it creates the store, see Options),
// then Put, Get and Remove whole values, or Create/Open a File for ranges.
// Close the store when done; until then another read-write Open of the
// directory fails with ErrLocked, while Inspect or `daxstore stat` shows
// the store live. The examples
// below cover values, files, pins and break policies, windows, inspection,
// Store.FS and Watch. Errors wrap the sentinel errors below (ErrNotFound,
// ErrNoSpace, ErrPinned, ...): test them with errors.Is. This is the only package an application
// needs; the module's other packages are the store's parts.
//
// A Store holds named files. A File is an io.ReaderAt, io.WriterAt and
// io.Closer with Truncate, PunchHole, ZeroRange and Allocate. A Pin gives
// zero-copy access to a file's bytes in the region and keeps those blocks
// alive: truncate, punch, zero-range, remove and overwrite never free a
// block that a pin still references. Such blocks move to the busy-extent
// list and are freed when their last pin drops.
//
// Small values: Put and PutReader store a value of at most
// Options.InlineLimit bytes (default 2048) inline, in the file's journal
// record, with no region block; a Put of one is a single journal record
// (plus the file count when it creates the key) and costs about its own
// size in space. Get, AppendGet, View, ReadAt, Stat, Files, List,
// SeekData and SeekHole serve it from that record (Blocks is 0; it has no
// holes). Truncate within the limit, PunchHole and ZeroRange change its
// bytes in the record. Every operation that needs region blocks first
// moves the bytes into new blocks, in a commit of its own before the
// operation's: WriteAt, Allocate and Pin (so a pin of an inline value pins
// blocks, like any other); a Truncate past the limit moves them within its
// own single commit. The file then stays in blocks until a Put of a small value
// makes it inline again; Stats.InlineSpills counts the moves. A move may
// fail with ErrNoSpace like any allocation. A crash keeps the old or the
// new value of an inline Put, as of any Put: the record is the value.
//
// Windows: File.Map maps a range of a file into one contiguous []byte
// built from the region's blocks, however scattered they are. A follow
// window (MapFollow, the default) always shows the file, as an mmap of a
// DAX file does: truncate, punch, zero-range, Put over the key and writes
// that fill holes remap its pages under the file's locks, before they
// return and before any block they free can be reused; Remove and the
// store's Close leave it stale, reading zeros. A pinned window (MapPinned)
// holds its blocks as a Pin does and keeps its bytes. A store into a page
// a window maps read-only raises SIGSEGV (see Window). Windows count
// against Options.MaxWindowMappings and show in Pins and Stats.
//
// Durability: every operation that changes metadata commits one journal
// batch and syncs it before returning (unless Options.NoSync). Data written
// into new blocks is flushed before that commit, so a crash never exposes a
// block whose bytes were not in place. Commits are grouped: an operation
// applies its batch and publishes the change under its locks, releases
// them, and only then waits for the sync, which concurrent commits share.
// So a reader never waits for a sync, and may see a change whose commit is
// not durable yet (as with a page cache before fsync); the operation itself
// returns only once it is. No block freed by a commit is reused before that
// commit is durable, and the journal's log is ordered, so a crash recovers
// a state in which no file shows another file's bytes (see commit.go). Overwrites of already-written blocks
// are made in place and flushed, but are not atomic across a crash, as on
// any DAX filesystem: use Put for an atomic replace.
package dax

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

	// nsMu is the namespace lock: it protects names, nextIno and
	// inoCeiling. names holds the files in memory (see acquire): every one
	// in use and, up to Options.InodeCache, some recently used. The rest
	// live in the journal only.
	nsMu       rankedRWMutex[nsRank]
	names      map[string]*inode
	nextIno    uint64 // the next inode number to hand out
	inoCeiling uint64 // the journal's NextInode: numbers below it may be in use

	// dirRecords says whether the journal holds directory records (see
	// dirPresence); under nsMu held exclusive.
	dirRecords dirPresence

	// free holds the blocks that may be handed out now. Blocks reserved by
	// an operation in flight are in neither free nor any file until that
	// operation commits or gives them back.
	free *alloc.Allocator

	// commitMu orders every journal commit that touches free or busy
	// records, so the deltas reach the journal in the order they were
	// computed. It protects journaledFree and failed.
	commitMu      rankedMutex[commitRank]
	journaledFree *alloc.ExtentSet // free space exactly as the journal records it
	flog          freeLog          // the free-space log's position and the file count (freelog.go)
	failed        error            // first journal failure; the store refuses changes after it
	hasFailed     atomic.Bool      // failed is set: read without commitMu on hot paths
	undurable     undurableFree    // NoSync: freed blocks waiting for a journal sync
	seal          sealState        // commit marks and the region's seal (seal.go)
	seq           commitSeq        // synced commits applied and durable (group commit, commit.go)
	settling      atomic.Int64     // blocks freed by applied commits that wait for their sync
	backup        backupHold       // blocks freed while a Backup copies (backup.go)

	refs     *pageref.Table
	busy     *busyextent.Set
	releaser *busyextent.Releaser
	prefault *prefaulter

	pins    pinRegistry // every outstanding pin
	windows windowSet   // every open window
	epoch   time.Time   // when Open began; pins record their time relative to it

	admin *adminServer
	stats counters
	met   *metrics // GET /metrics (metrics.go)
	watch watchSet // Watch callbacks; see notify
}

// counters are cumulative statistics, updated with atomics.
type counters struct {
	released       atomic.Uint64 // blocks freed from busy after their last reference
	releaseBatches atomic.Uint64 // journal batches that freed busy blocks
	detached       atomic.Uint64 // blocks moved to busy
	allocWaits     atomic.Uint64 // allocations that waited for busy blocks
	commits        atomic.Uint64 // journal batches of operations
	records        atomic.Uint64 // records in those batches and in checkpoints
	checkpoints    atomic.Uint64 // free-space checkpoints
	checkPause     atomic.Int64  // nanoseconds the last Check held operations off, waiting included
	spills         atomic.Uint64 // inline files moved into region blocks
}

// Open opens the store in dir, creating it when dir holds none (with
// Options.ReadOnly or Options.MustExist it fails with ErrNoStore instead). It
// checks every option before it touches the disk (ErrInvalidRange), and an
// Open that fails while creating a store removes what it made, so dir is left
// as it was (TestFailedCreateLeavesNothingBehind). A second process opening
// the same dir gets ErrLocked. Open replays the journal, checks that region
// and journal belong together (ErrMismatch), and frees every busy extent left
// by a previous process: pins do not outlive it.
func Open(dir string, o *Options) (*Store, error) {
	return OpenContext(context.Background(), dir, o)
}

// OpenContext is Open with a context that bounds the wait for another
// process's lock (Options.LockTimeout): when ctx is done first, it returns
// an error wrapping ctx.Err(). The context plays no part once the lock is
// taken.
func OpenContext(ctx context.Context, dir string, o *Options) (*Store, error) {
	opts := o.EnsureDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("daxstore: open %s: %w", dir, err)
	}
	if opts.ReadOnly {
		// Serving the socket would create DIR/admin.sock.
		opts.NoAdminSocket = true
	}
	s := &Store{
		dir:   dir,
		opts:  opts,
		names: make(map[string]*inode),
		free:  alloc.New(),
		busy:  busyextent.NewSet(),
		epoch: time.Now(),
	}
	if err := s.checkRegionPath(); err != nil {
		return nil, err
	}
	if opts.ReadOnly || opts.MustExist {
		if err := s.requireJournal(); err != nil {
			return nil, err
		}
	}
	var undo *undoCreate
	var err error
	if opts.ReadOnly {
		s.lock, err = lockDirShared(ctx, dir, opts.LockTimeout)
	} else {
		undo = s.planUndo()
		if err = os.MkdirAll(dir, 0o755); err != nil {
			err = fmt.Errorf("daxstore: open: %w", err)
		} else if s.lock, err = lockDir(ctx, dir, opts.LockTimeout); errors.Is(err, ErrLocked) || ctx.Err() != nil {
			// The holder owns whatever is there.
			undo = nil
		}
	}
	if err == nil {
		err = s.open()
	}
	if err != nil {
		lock := s.lock
		s.lock = nil
		_ = s.closeResources()
		undo.run()
		_ = unlockDir(lock)
		return nil, err
	}
	return s, nil
}

// checkRegionPath refuses, before anything is created, a region path that
// is a directory or whose directory is missing (when that directory is not
// the store's own, which Open creates).
func (s *Store) checkRegionPath() error {
	path := s.regionPath()
	fi, err := os.Stat(path)
	if err == nil && fi.IsDir() {
		return fmt.Errorf("daxstore: open %s: region path %s is a directory: %w", s.dir, path, ErrInvalidRange)
	}
	if err == nil || sameDir(filepath.Dir(path), s.dir) {
		return nil
	}
	if _, err := os.Lstat(path); err == nil {
		return nil // a dangling symbolic link: let the open report it
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil {
		return fmt.Errorf("daxstore: open %s: region directory: %w", s.dir, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("daxstore: open %s: region directory %s is not a directory: %w", s.dir, filepath.Dir(path), ErrInvalidRange)
	}
	return nil
}

// sameDir reports whether paths a and b name the same directory, by their
// absolute form (neither need exist).
func sameDir(a, b string) bool {
	absA, errA := filepath.Abs(a)
	absB, errB := filepath.Abs(b)
	return errA == nil && errB == nil && absA == absB
}

// requireJournal fails with ErrNoStore unless the store directory has a
// journal directory with something in it; it creates nothing.
func (s *Store) requireJournal() error {
	jdir := filepath.Join(s.dir, "journal")
	fi, err := os.Stat(jdir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("daxstore: %w in %s%s", ErrNoStore, s.dir, s.journalGoneHint())
	case err != nil:
		return fmt.Errorf("daxstore: open: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("daxstore: %w in %s: %s is not a directory", ErrNoStore, s.dir, jdir)
	}
	d, err := os.Open(jdir)
	if err != nil {
		return fmt.Errorf("daxstore: open: %w", err)
	}
	names, err := d.Readdirnames(1)
	d.Close()
	if len(names) == 0 && errors.Is(err, io.EOF) {
		return fmt.Errorf("daxstore: %w in %s: the journal is empty; create one with daxstore init", ErrNoStore, s.dir)
	}
	return nil
}

// undoCreate records what a read-write Open found missing, so that an Open
// that fails while the directory held no store removes exactly what it
// made: never a file that was there before, never one another process made
// (it could not have: Open holds the lock from before it creates anything
// to after it undoes).
type undoCreate struct {
	madeDirs     []string // directories Open creates, the deepest first
	lockFile     string   // DIR/LOCK, when it was missing at the start
	journal      string   // the journal directory, when it was missing
	emptyJournal string   // the journal directory, when it existed but was empty
	region       string   // the region file, when it was missing
	fresh        bool     // the journal held no store: everything new is ours
}

func (s *Store) planUndo() *undoCreate {
	u := &undoCreate{}
	for d := filepath.Clean(s.dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		u.madeDirs = append(u.madeDirs, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	jdir := filepath.Join(s.dir, "journal")
	entries, err := os.ReadDir(jdir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		u.fresh = true
	case err == nil && len(entries) == 0:
		u.fresh, u.emptyJournal = true, jdir
	}
	missing := func(p string) string {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			return p
		}
		return ""
	}
	u.lockFile, u.journal, u.region = missing(filepath.Join(s.dir, lockFileName)), missing(jdir), missing(s.regionPath())
	return u
}

// run removes what the failed Open made. A region or lock file that was
// missing is always its own; the journal and the directories only when the
// journal held no store, since an existing journal's new files are Pebble's
// and may already be all that holds its state.
func (u *undoCreate) run() {
	if u == nil {
		return
	}
	for _, p := range []string{u.region, u.lockFile} {
		if p != "" {
			_ = os.Remove(p)
		}
	}
	if !u.fresh {
		return // the journal's new files are Pebble's
	}
	if u.emptyJournal != "" {
		entries, _ := os.ReadDir(u.emptyJournal)
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(u.emptyJournal, e.Name()))
		}
	}
	if u.journal != "" {
		_ = os.RemoveAll(u.journal)
	}
	for _, d := range u.madeDirs {
		_ = os.Remove(d) // only if empty
	}
}

func (s *Store) regionPath() string {
	if s.opts.RegionPath != "" {
		return s.opts.RegionPath
	}
	return filepath.Join(s.dir, "region")
}

func (s *Store) open() error {
	ro := s.opts.ReadOnly
	jo := journal.Options{NoSync: s.opts.NoSync, ReadOnly: ro}
	switch {
	case s.opts.media.PowerCut != nil:
		jo.FS = s.opts.media.PowerCut.JournalFS()
	case s.opts.media.JournalFaults != nil:
		jo.FS = s.opts.media.JournalFaults
	}
	jnl, err := journal.Open(filepath.Join(s.dir, "journal"), jo)
	if errors.Is(err, journal.ErrNotExist) {
		return fmt.Errorf("daxstore: %w in %s: the journal is empty; create one with daxstore init", ErrNoStore, s.dir)
	}
	if err != nil {
		return fmt.Errorf("daxstore: %w", noSpace(err))
	}
	s.jnl = jnl
	st, err := jnl.LoadCore()
	if err != nil {
		return fmt.Errorf("daxstore: recover: %w", err)
	}
	if st.Legacy && st.HasMeta {
		if ro {
			return fmt.Errorf("daxstore: open %s: the journal is in format 1; open the store read-write once to upgrade it: %w", s.dir, ErrReadOnly)
		}
		if _, err := jnl.Upgrade(); err != nil {
			return fmt.Errorf("daxstore: upgrade journal: %w", noSpace(err))
		}
		if st, err = jnl.LoadCore(); err != nil {
			return fmt.Errorf("daxstore: recover: %w", err)
		}
	}
	if !st.HasMeta {
		if st.HasInodes || st.Legacy || len(st.Free)+len(st.FreeLog)+len(st.Busy) > 0 {
			return fmt.Errorf("daxstore: recover: journal has records but no store metadata: %w", ErrCorrupt)
		}
		if ro || s.opts.MustExist {
			return fmt.Errorf("daxstore: %w in %s: the journal holds none; create one with daxstore init", ErrNoStore, s.dir)
		}
		return s.create()
	}
	if err := checkRegionBlocks(st.Meta.BlockCount, st.Meta.BlockSize); err != nil {
		return fmt.Errorf("daxstore: open: %w", err)
	}
	if _, err := os.Lstat(s.regionPath()); errors.Is(err, fs.ErrNotExist) && pristine(st) {
		if ro {
			return fmt.Errorf("daxstore: %w in %s: its creation did not finish (no region %s); a read-write open finishes it",
				ErrNoStore, s.dir, s.regionPath())
		}
		// A crash between the journal's first batch and the region's
		// creation: finish creating the store.
		m := st.Meta
		s.seal.mark = st.Mark // marks never go back
		return s.createRegion(pmem.Superblock{Version: pmem.FormatVersion, BlockSize: m.BlockSize, BlockCount: m.BlockCount, UUID: m.UUID})
	}
	if err := s.missingRegion(st.Meta.BlockCount, st.Meta.BlockSize); err != nil {
		return err
	}
	po := pmem.OpenOptions{ReadOnly: ro}
	setDevice(s.opts.media, &po)
	region, err := pmem.OpenWith(s.regionPath(), po)
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
	if err := checkSeal(region, st.Mark, filepath.Join(s.dir, "journal")); err != nil {
		return err
	}
	// Marks continue from the journal's. Sealing st.Mark itself would be
	// safe (Pebble's read-write Open flushed the replayed log into tables)
	// but gains nothing, and a failed Open must write nothing.
	s.seal = sealState{mark: st.Mark, sealed: max(region.Seal(), st.Mark)}
	if !ro {
		s.seal.region = region
	}
	s.uuid, s.bs = sb.UUID, int64(sb.BlockSize)
	s.free.SetAlign(hugeAlign(s.bs))
	s.nextIno = max(m.NextInode, 1)
	s.inoCeiling = s.nextIno
	s.refs = pageref.New(region.BlockCount(), s.onLastRelease)
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
	if err := checkRegionBlocks(sb.BlockCount, sb.BlockSize); err != nil {
		return fmt.Errorf("daxstore: create: %w", err)
	}
	b := s.jnl.NewBatch()
	b.SetMeta(journal.Meta{UUID: sb.UUID, BlockSize: sb.BlockSize, BlockCount: sb.BlockCount, NextInode: 1})
	b.CheckpointFree([]pmem.Extent{{Start: 1, Len: sb.BlockCount - 1}}, 0, 0)
	if err := b.Commit(true); err != nil {
		return fmt.Errorf("daxstore: create: %w", noSpace(err))
	}
	return s.createRegion(sb)
}

// createRegion creates the region the journal already describes, with an
// empty store in it.
func (s *Store) createRegion(sb pmem.Superblock) error {
	co := pmem.CreateOptions{BlockSize: sb.BlockSize, Size: int64(sb.BlockCount) * int64(sb.BlockSize), UUID: sb.UUID}
	setDevice(s.opts.media, &co)
	region, err := pmem.Create(s.regionPath(), co)
	if err != nil {
		// pmem removed its partial file. What stays is the journal naming
		// the store, which the next Open finishes, unless this Open made the
		// journal too: then it removes it (TestRegionOnAFullFilesystem).
		return fmt.Errorf("daxstore: create region: %w", noSpace(err))
	}
	s.region = region
	s.seal = sealState{region: region, mark: s.seal.mark}
	s.uuid, s.bs, s.nextIno, s.inoCeiling = sb.UUID, int64(sb.BlockSize), 1, 1
	s.free.SetAlign(hugeAlign(s.bs))
	s.refs = pageref.New(region.BlockCount(), s.onLastRelease)
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

// noSpace makes a filesystem's ENOSPC under err match ErrNoSpace too, so a
// caller tests one sentinel for "out of space" whether the region or the
// filesystem under it is full.
func noSpace(err error) error {
	if errors.Is(err, syscall.ENOSPC) && !errors.Is(err, ErrNoSpace) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

// pristine reports whether a journal holds a store with nothing in it yet.
func pristine(st *journal.State) bool {
	return !st.HasInodes && len(st.Busy) == 0 && len(st.FreeLog) == 0 && len(st.Free) == 1 &&
		st.Free[0] == pmem.Extent{Start: 1, Len: st.Meta.BlockCount - 1}
}

// rebuild loads free space from the journal's checkpoint and log and the
// file count, then frees every busy extent left by the previous process in
// one batch. It reads nothing per file: files come into memory when used.
func (s *Store) rebuild(st *journal.State) error {
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("daxstore: recover: "+format+": %w", append(args, ErrCorrupt)...)
	}
	blocks := s.region.BlockCount()
	inRegion := func(e pmem.Extent) bool { return inDataBlocks(e, blocks) }
	free, err := replayFree(st, blocks, corrupt)
	if err != nil {
		return err
	}
	s.journaledFree = free
	if len(st.FreeLog) > 0 {
		s.flog.seq = st.FreeLog[len(st.FreeLog)-1].Seq
		s.flog.since = len(st.FreeLog)
	}
	files, known := replayFiles(st)
	if !known {
		// A journal that never recorded its file count (format 1): count
		// once; the next checkpoint records it.
		if files, err = s.countFiles(); err != nil {
			return err
		}
		s.flog.since = max(s.flog.since, 1)
	}
	s.flog.files.Store(files)
	if s.opts.ReadOnly {
		// A read-only store never commits, so it shows the busy extents as
		// the journal holds them (Busy marks them Stale) and leaves their
		// freeing to the next read-write Open. Nothing can allocate here,
		// so they need not be free in memory either.
		for _, r := range st.Busy {
			x := busyextent.Extent{Extent: r.Extent, Key: r.Key, Ino: r.Ino, FileBlock: r.FileBlock,
				Reason: busyextent.Reason(r.Reason), DetachedAt: time.Unix(0, r.DetachedAt), Pins: r.Pins, Labels: r.Labels}
			if !inRegion(r.Extent) || s.journaledFree.Overlaps(r.Extent) {
				return corrupt("busy extent %v outside the region or over free space", r.Extent)
			}
			if _, err := s.busy.Add(x); err != nil {
				return corrupt("busy extent %v: %v", r.Extent, err)
			}
		}
	} else if len(st.Busy) > 0 {
		// No pin survives its process, so every busy extent is free now.
		// One batch turns them all back into free space.
		t := s.newTxn()
		for _, r := range st.Busy {
			if !inRegion(r.Extent) {
				t.b.Close()
				return corrupt("busy extent %v outside the region", r.Extent)
			}
			if s.journaledFree.Overlaps(r.Extent) {
				t.b.Close()
				return corrupt("busy extent %v over free space", r.Extent)
			}
			t.b.DeleteBusy(r.Extent.Start)
			t.freed = append(t.freed, r.Extent)
		}
		if err := s.logFree(t); err != nil {
			t.b.Close()
			return fmt.Errorf("daxstore: recover: free busy extents: %w", err)
		}
		if err := t.b.Commit(true); err != nil {
			return fmt.Errorf("daxstore: recover: free busy extents: %w", err)
		}
	}
	s.journaledFree.Ascend(func(e pmem.Extent) bool {
		err = s.free.Free(e)
		return err == nil
	})
	return err
}

// countFiles counts the files in the journal, a page at a time.
func (s *Store) countFiles() (int64, error) {
	var n int64
	after := ""
	for {
		page, err := s.jnl.ScanInodes("", after, 4096)
		if err != nil {
			return 0, fmt.Errorf("daxstore: recover: count files: %w", err)
		}
		n += int64(len(page))
		if len(page) < 4096 {
			return n, nil
		}
		after = page[len(page)-1].Key
	}
}

// start brings up the parts that run while the store is open.
func (s *Store) start() error {
	if s.opts.Preallocate && !s.opts.ReadOnly {
		if err := s.region.ReserveAll(); err != nil {
			return fmt.Errorf("daxstore: preallocate the region: %w", regionSpaceError(err))
		}
	}
	s.prefault = newPrefaulter(s.region)
	s.releaser = busyextent.NewReleaser(s.commitRelease)
	s.met = newMetrics(s)
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
	// Admin requests in flight (a put reading a slow client) end now
	// rather than hold Close up.
	s.admin.abortOps()
	for {
		gone, done := s.pins.emptied()
		n := s.pins.len()
		if n == 0 || opts.Force {
			// A Pin in flight holds quiesce or a pin registry shard and
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
				break // with quiesce and the registry held
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
	// No operation runs now, so no remap: every window goes to zeros
	// before the region may be reused by the next opener.
	s.closeWindows()

	forced := s.pins.drain(func(r *pinRecord) {
		// Mark the pin closed unless its Unpin already claimed it.
		for {
			v := r.id.Load()
			if v == 0 || v&closedMark != 0 || r.id.CompareAndSwap(v, v|closedMark) {
				return
			}
		}
	})
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
	if s.jnl != nil && s.journaledFree != nil && !s.opts.ReadOnly {
		// Checkpoint free space, so the next Open replays no log. A
		// failed store leaves the log as it is: it replays the same.
		s.commitMu.Lock()
		if s.failed == nil {
			errs = append(errs, s.checkpointLocked())
		}
		s.commitMu.Unlock()
	}
	if s.jnl != nil {
		err := s.jnl.Close()
		if err == nil {
			// A clean journal Close made every commit durable, in
			// tables: the seal may vouch for the last mark.
			err = s.sealLocked()
		}
		errs = append(errs, err)
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
// a closed store, and on a read-only or failed one when the operation
// changes state.
func (s *Store) begin(mutating bool) error {
	s.quiesce.RLock()
	if s.closed.Load() {
		s.quiesce.RUnlock()
		return ErrClosed
	}
	if mutating && s.opts.ReadOnly {
		s.quiesce.RUnlock()
		return ErrReadOnly
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
// new ones out until unlockOut: quiesce held exclusive and every pin
// registry shard locked (a fast Pin holds no quiesce; see pinRegistry.pinOne).
func (s *Store) lockOut() {
	s.quiesce.Lock()
	s.pins.lockAll()
}

func (s *Store) unlockOut() {
	s.pins.unlockAll()
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

// describedPins is the most pins an error message lists; it counts the
// rest, so that a block held by 100,000 pins makes a readable error.
const describedPins = 8

// describePins formats pins for an error message: the first describedPins
// in order, then how many more there are.
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
	if more := len(parts) - describedPins; more > 0 {
		parts = append(parts[:describedPins], fmt.Sprintf("and %d more pins", more))
	}
	return strings.Join(parts, "; ")
}
