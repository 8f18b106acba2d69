package dax

// Inspection: snapshots of busy extents, pins and statistics, from a live
// store, through another process's admin socket, or from the journal of a
// store nobody holds.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/daxstore/daxstore/busyextent"
	"github.com/daxstore/daxstore/journal"
)

// BusyExtent describes region blocks detached from a file and waiting for
// their last reference to drop.
type BusyExtent struct {
	Start        uint64    `json:"start"`  // first region block
	Blocks       uint64    `json:"blocks"` // length in blocks
	Key          string    `json:"key"`    // owner when detached
	Ino          uint64    `json:"ino"`
	FileOffset   int64     `json:"file_offset"` // byte offset in the owner that Start backed
	Reason       string    `json:"reason"`      // truncate, punch, zero, remove or overwrite
	DetachedAt   time.Time `json:"detached_at"`
	PinnedBlocks uint64    `json:"pinned_blocks"` // blocks still referenced now
	Pins         uint64    `json:"pins"`          // pins holding it (live) or that held it (stale)
	// Labels holds the distinct labels of those pins, at most 64 of them;
	// Pins beyond them are counted only.
	Labels []string `json:"labels"`
	// Stale marks a record read from the journal of a store that no
	// process holds for writing (Inspect, or a store opened ReadOnly): no
	// pin can hold it, and the next read-write Open frees it.
	Stale bool `json:"stale,omitempty"`
}

// Busy returns the busy extents, ordered by start block.
func (s *Store) Busy() []BusyExtent {
	all := s.busy.All()
	out := make([]BusyExtent, 0, len(all))
	for _, x := range all {
		b := busyExtent(x, s.bs)
		b.Stale = s.opts.ReadOnly // as the journal holds it; see Options.ReadOnly
		for _, r := range s.refs.Referenced(x.Extent) {
			b.PinnedBlocks += r.Len
		}
		// Collected as a break records them: any number of pins makes a
		// bounded list of distinct labels and a count.
		var live busyextent.Extent
		for _, p := range s.pinsOn(x.Extent) {
			live.AddPin(p.Label)
		}
		b.Pins = live.Pins
		if live.Labels != nil {
			sort.Strings(live.Labels)
			b.Labels = live.Labels
		}
		out = append(out, b)
	}
	return out
}

func busyExtent(x busyextent.Extent, bs int64) BusyExtent {
	labels := x.Labels
	if labels == nil {
		labels = []string{}
	}
	return BusyExtent{
		Start: uint64(x.Start), Blocks: x.Len, Key: x.Key, Ino: x.Ino, FileOffset: int64(x.FileBlock) * bs,
		Reason: x.Reason.String(), DetachedAt: x.DetachedAt, Pins: x.Pins, Labels: labels,
	}
}

// Pins returns the outstanding pins and windows, oldest first: pins
// (Mode "pin"), pinned windows (Mode "pinned window", which are pins) and
// follow windows (Mode "follow window", ID 0, holding no blocks).
func (s *Store) Pins() []PinInfo {
	out, pinned := s.windowInfos()
	if out == nil {
		out = []PinInfo{}
	}
	s.pins.each(func(r *pinRecord) {
		pi := r.info()
		pi.Mode, pi.Pieces = modePin, len(r.runs)
		if w := pinned[r.pinID]; w != nil {
			pi.Mode, pi.Pieces = modePinnedWindow, w.Pieces()
		}
		out = append(out, pi)
	})
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Stats are a store's figures at one instant.
type Stats struct {
	// Region is the region file's path.
	Region         string `json:"region"`
	DAX            bool   `json:"dax"`          // mapped with MAP_SYNC on real fsdax
	FlushMethod    string `json:"flush_method"` // how stores are made durable: see pmem.Region.FlushMethod
	BlockSize      int64  `json:"block_size"`
	DataBlocks     uint64 `json:"data_blocks"` // blocks usable for data (all but the superblock)
	FreeBlocks     uint64 `json:"free_blocks"`
	UsedBlocks     uint64 `json:"used_blocks"` // owned by files or held by operations in flight
	BusyBlocks     uint64 `json:"busy_blocks"` // detached, waiting for their last pin
	Files          int    `json:"files"`
	ResidentFiles  int    `json:"resident_files"` // files whose metadata is in memory (see Options.InodeCache)
	Pins           int    `json:"pins"`
	PinnedBlocks   uint64 `json:"pinned_blocks"`   // blocks with a reference now
	Waiters        int    `json:"waiters"`         // goroutines waiting for busy blocks or idle blocks
	PendingRelease uint64 `json:"pending_release"` // released blocks not yet committed to free
	Released       uint64 `json:"released"`        // blocks freed from busy since Open
	ReleaseBatches uint64 `json:"release_batches"` // journal batches that freed them
	Detached       uint64 `json:"detached"`        // blocks moved to busy since Open
	AllocWaits     uint64 `json:"alloc_waits"`     // allocations that waited for busy blocks
	RefTableBytes  int64  `json:"ref_table_bytes"` // memory of the reference-count table
	Commits        uint64 `json:"commits"`         // journal batches of operations since Open
	JournalRecords uint64 `json:"journal_records"` // records those batches and the checkpoints wrote
	Checkpoints    uint64 `json:"checkpoints"`     // free-space checkpoints since Open
	// LastCheckPause is how long the last Check kept new operations
	// waiting: from asking for the store to itself until letting it go,
	// including the wait for operations in flight to finish.
	LastCheckPause time.Duration `json:"last_check_pause_ns"`
	// RegionFileBytes is the file space the region takes on its
	// filesystem (RAM on tmpfs): the region is sparse and grows by chunks
	// as blocks are first used, or all of it with Options.Preallocate.
	// It never shrinks, and an operation that reserved blocks grows it
	// even if it then fails. 0 if it cannot be read.
	RegionFileBytes int64  `json:"region_file_bytes"`
	InlineSpills    uint64 `json:"inline_spills"` // inline files moved into region blocks since Open (see Options.InlineLimit)
	Windows         int    `json:"windows"`       // open windows, follow and pinned (see File.Map)
	// WindowPieces is the mappings open windows take (see
	// Options.MaxWindowMappings).
	WindowPieces int    `json:"window_pieces"`
	WindowRemaps uint64 `json:"window_remaps"` // mapping calls that remapped follow windows since Open
}

// Stats returns the store's figures.
func (s *Store) Stats() (Stats, error) {
	if err := s.begin(false); err != nil {
		return Stats{}, fmt.Errorf("daxstore: stats: %w", err)
	}
	defer s.end()
	st := s.statsLocked()
	return st, nil
}

func (s *Store) statsLocked() Stats {
	files := int(s.flog.files.Load())
	s.nsMu.RLock()
	resident := len(s.names)
	s.nsMu.RUnlock()
	pins := s.pins.len()
	data := s.region.BlockCount() - 1
	// Blocks that NoSync holds back until a journal sync are free: the next
	// allocation that needs them syncs and takes them.
	free, busy := s.free.FreeBlocks()+s.undurable.held()+uint64(s.backup.heldBlocks.Load()), s.busy.Blocks()
	return Stats{
		Region: s.regionPath(), DAX: s.region.DAX(), FlushMethod: s.region.FlushMethod(), BlockSize: s.bs,
		DataBlocks: data, FreeBlocks: free, UsedBlocks: data - min(data, free+busy), BusyBlocks: busy,
		Files: files, ResidentFiles: resident, Pins: pins, PinnedBlocks: s.refs.ReferencedBlocks(),
		Waiters:        s.busy.Waiters() + s.refs.Waiters(),
		PendingRelease: s.releaser.Pending(),
		Released:       s.stats.released.Load(), ReleaseBatches: s.stats.releaseBatches.Load(),
		Detached: s.stats.detached.Load(), AllocWaits: s.stats.allocWaits.Load(),
		RefTableBytes: s.refs.MemoryBytes(), RegionFileBytes: regionFileBytes(s.region),
		Commits: s.stats.commits.Load(), JournalRecords: s.stats.records.Load(), Checkpoints: s.stats.checkpoints.Load(),
		LastCheckPause: time.Duration(s.stats.checkPause.Load()),
		InlineSpills:   s.stats.spills.Load(),
		Windows:        len(s.windows.list()), WindowPieces: int(s.windows.pieces.Load()),
		WindowRemaps: s.windows.remaps.Load(),
	}
}

// Snapshot is everything inspection shows at one instant.
type Snapshot struct {
	Live  bool         `json:"live"` // taken from a running store (false: read from the journal)
	Pid   int          `json:"pid,omitempty"`
	Stats Stats        `json:"stats"`
	Busy  []BusyExtent `json:"busy"`
	Pins  []PinInfo    `json:"pins"`
}

// Snapshot returns the store's busy extents, pins and statistics.
func (s *Store) Snapshot() (*Snapshot, error) {
	st, err := s.Stats()
	if err != nil {
		return nil, err
	}
	return &Snapshot{Live: true, Pid: os.Getpid(), Stats: st, Busy: s.Busy(), Pins: s.Pins()}, nil
}

// Inspect returns a snapshot of the store in dir without changing it. When
// another process holds the store it asks that process over its admin
// socket; otherwise it reads the journal, where busy extents left by a dead
// process are marked Stale (the next Open frees them). It never runs
// recovery.
func Inspect(ctx context.Context, dir string) (*Snapshot, error) {
	snap, err := querySocket(ctx, dir)
	if err == nil {
		return snap, nil
	}
	if _, serr := os.Stat(filepath.Join(dir, "journal")); serr != nil {
		return nil, fmt.Errorf("daxstore: inspect: %w in %s", ErrNoStore, dir)
	}
	lock, lerr := lockDirShared(ctx, dir, 0)
	if lerr != nil {
		// lerr already names daxstore and the directory.
		return nil, fmt.Errorf("%w (admin socket unreachable: %v)", lerr, err)
	}
	defer unlockDir(lock)
	return inspectJournal(dir)
}

// inspectJournal reads a store that no process holds for writing, with the
// journal opened read-only so that nothing on disk changes. The caller
// holds the lock shared.
func inspectJournal(dir string) (*Snapshot, error) {
	jnl, err := journal.Open(filepath.Join(dir, "journal"), journal.Options{ReadOnly: true})
	if errors.Is(err, journal.ErrNotExist) {
		return nil, fmt.Errorf("daxstore: inspect: %w in %s: the journal is empty", ErrNoStore, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("daxstore: inspect: %w", err)
	}
	defer jnl.Close()
	// What Open reads, and nothing per file: free space is the checkpoint
	// with the log replayed (a store that crashed left log records after
	// it), and the file count is the journal's own.
	st, err := jnl.LoadCore()
	if err != nil {
		return nil, fmt.Errorf("daxstore: inspect: %w", err)
	}
	if !st.HasMeta {
		return nil, fmt.Errorf("daxstore: inspect: %w in %s: the journal holds none", ErrNoStore, dir)
	}
	free, err := replayFree(st, st.Meta.BlockCount, func(format string, args ...any) error {
		return fmt.Errorf("daxstore: inspect: "+format+": %w", append(args, ErrCorrupt)...)
	})
	if err != nil {
		return nil, err
	}
	files, known := replayFiles(st)
	if !known {
		// A format 1 journal, which kept no count: count its files.
		all, err := jnl.Load()
		if err != nil {
			return nil, fmt.Errorf("daxstore: inspect: %w", err)
		}
		files = int64(len(all.Inodes))
	}
	bs := int64(st.Meta.BlockSize)
	snap := &Snapshot{Busy: []BusyExtent{}, Pins: []PinInfo{}}
	snap.Stats = Stats{BlockSize: bs, DataBlocks: st.Meta.BlockCount - 1, Files: int(files), FreeBlocks: free.Blocks()}
	for _, r := range st.Busy {
		x := busyextent.Extent{Extent: r.Extent, Key: r.Key, Ino: r.Ino, FileBlock: r.FileBlock,
			Reason: busyextent.Reason(r.Reason), DetachedAt: time.Unix(0, r.DetachedAt), Pins: r.Pins, Labels: r.Labels}
		b := busyExtent(x, bs)
		b.Stale = true
		snap.Busy = append(snap.Busy, b)
		snap.Stats.BusyBlocks += r.Extent.Len
	}
	snap.Stats.UsedBlocks = snap.Stats.DataBlocks - min(snap.Stats.DataBlocks, snap.Stats.FreeBlocks+snap.Stats.BusyBlocks)
	return snap, nil
}

// errNoSocket: nobody serves the admin socket.
var errNoSocket = errors.New("no admin socket")
