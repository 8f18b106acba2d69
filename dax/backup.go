package dax

// Online backup: a consistent copy of a live store, taken while writers and
// pins go on.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/daxstore/daxstore/journal"
	"github.com/daxstore/daxstore/pmem"
)

// BackupStats describes a finished Backup.
type BackupStats struct {
	Dir         string // the copy's store directory
	Files       int64  // files in the copy
	RegionBytes int64  // size of the copy's region file (sparse: most of it is holes)
	// CopiedBytes is the region bytes written into the copy: the written
	// file blocks the checkpoint references, less blocks that held only
	// zeros (left as holes). Free and busy blocks are not copied.
	CopiedBytes int64
	// BusyBlocks is the blocks that were busy at the checkpoint and were
	// not copied: the copy frees them when it is opened, as recovery does.
	BusyBlocks uint64
	// HeldBlocks is the most blocks freed during the copy and held back
	// from reuse until it was done (see Store.Backup).
	HeldBlocks uint64
	// Pause is how long the backup held the commit lock to take its
	// checkpoint (a journal snapshot). It is the longest stall a writer can
	// see from the backup: a commit waits for it at most this long, and
	// nothing else waits for the backup (the copy runs beside writers and
	// pins, and takes quiesce shared for 1 MiB at a time, as a read does).
	Pause   time.Duration
	Elapsed time.Duration // the whole backup
	Pid     int           `json:",omitempty"` // the holder that wrote the copy (BackupLive); 0 for Store.Backup
}

// backupHold keeps blocks that a checkpoint references from being reused
// while a backup copies them: while holds > 0, every block a commit frees
// (freeNow) is put in held instead of free space, and the last backup to
// finish hands them to the allocator. commitMu protects holds and held;
// heldBlocks is also read without it (Stats, retrySpace).
type backupHold struct {
	holds      int
	held       []pmem.Extent
	heldBlocks atomic.Int64
}

// holdFreed takes exts for the backups in progress and reports whether it
// did (false: there is none). commitMu must be held.
func (s *Store) holdFreed(exts []pmem.Extent) bool {
	if s.backup.holds == 0 {
		return false
	}
	s.backup.held = append(s.backup.held, exts...)
	s.backup.heldBlocks.Add(extentBlocks(exts))
	return true
}

// heldExtents returns a copy of the blocks held for backups, for Check.
// commitMu must be held.
func (s *Store) heldExtents() []pmem.Extent { return slices.Clone(s.backup.held) }

// endHold ends one backup's hold; the last one hands the held blocks to the
// allocator and wakes whoever waits for space.
func (s *Store) endHold() {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.backup.holds--
	if s.backup.holds > 0 || len(s.backup.held) == 0 {
		return
	}
	held := s.backup.held
	s.backup.held = nil
	s.backup.heldBlocks.Store(0)
	_ = s.freeNow(held) // a failure fails the store, which reports it
}

// backupCopyHook, when set by a test, runs after the checkpoint and the
// journal's copy, before the region blocks are copied.
var backupCopyHook func()

// backupChunk is the most region bytes copied under one hold of quiesce,
// so that a Check or Close waits for at most one chunk's copy.
const backupChunk = 1 << 20

// Backup writes a consistent copy of the store into dir, while the store
// stays in use: a point-in-time checkpoint of the journal plus the region
// blocks it references, in a region file of the same size, block size
// and UUID, so the copy opens with Open as a normal store (it is the
// store as a crash at the checkpoint would have left it: busy blocks are
// free there) and passes Check.
//
// dir must be missing (it is created, with its parents) or an empty
// directory; otherwise Backup fails with an error wrapping fs.ErrExist and
// changes nothing. On any error, ctx's cancellation included, Backup removes
// what it wrote (dir too if it made it).
//
// Writers are held off only while the checkpoint is taken: Backup holds the
// commit lock while it takes a journal snapshot, microseconds
// (BackupStats.Pause), and waits for no operation in flight. It then reads
// the snapshot and copies, beside the writers, only the written file blocks the checkpoint
// references, skipping blocks that hold only zeros, so the copy is sparse
// and costs about the space in use. Until the copy is done, no block freed
// by a commit is reused (BackupStats.HeldBlocks; Stats counts them as
// free, and an allocation that needs them waits for them as for busy
// blocks, bounded by Options.AllocWait). So a key replaced (Put), removed,
// truncated or punched during the backup is in the copy exactly as it was
// at the checkpoint.
//
// What is not guaranteed: bytes written in place into a key's existing
// blocks during the backup (WriteAt over written blocks, ZeroRange or a
// Truncate that zeroes the tail of a partial block, stores through a pin
// or window) may or may not be in the copy, in any mix, at any byte, as
// with any copy of a DAX file that is being written; the copy keeps such
// a key's size and extents at the checkpoint. Use Put for values the
// backup must see whole.
func (s *Store) Backup(ctx context.Context, dir string) (BackupStats, error) {
	start := time.Now()
	st := BackupStats{Dir: dir}
	cleanup, err := prepareBackupDir(dir)
	if err != nil {
		return st, fmt.Errorf("daxstore: backup to %s: %w", dir, err)
	}
	ok := false
	defer func() {
		if !ok {
			cleanup()
		}
	}()
	snap, err := s.backupCheckpoint(&st)
	if err != nil {
		return st, fmt.Errorf("daxstore: backup: %w", err)
	}
	defer s.endHold()
	exts, sb, err := s.backupExport(ctx, snap, dir, &st)
	if err != nil {
		return st, fmt.Errorf("daxstore: backup to %s: %w", dir, err)
	}
	if backupCopyHook != nil {
		backupCopyHook()
	}
	if err := s.backupRegion(ctx, dir, sb, exts, &st); err != nil {
		return st, fmt.Errorf("daxstore: backup to %s: %w", dir, err)
	}
	if err := syncPath(dir); err != nil {
		return st, fmt.Errorf("daxstore: backup to %s: %w", dir, err)
	}
	st.HeldBlocks = uint64(s.backup.heldBlocks.Load())
	st.Elapsed = time.Since(start)
	ok = true
	return st, nil
}

// prepareBackupDir makes sure dir is a missing or empty directory, creates
// it, and returns what removes the backup's traces from it.
func prepareBackupDir(dir string) (cleanup func(), err error) {
	if dir == "" {
		return nil, fmt.Errorf("empty directory name: %w", ErrInvalidRange)
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Remove only what this backup creates: the first missing
		// ancestor down.
		top := dir
		for p := filepath.Dir(dir); p != top; p = filepath.Dir(p) {
			if _, err := os.Stat(p); err == nil {
				break
			}
			top = p
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		return func() { _ = os.RemoveAll(top) }, nil
	case err != nil:
		return nil, err
	case !fi.IsDir():
		return nil, fmt.Errorf("it is not a directory: %w", fs.ErrExist)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	if len(ents) > 0 {
		return nil, fmt.Errorf("the directory is not empty (it holds %s): %w", ents[0].Name(), fs.ErrExist)
	}
	// Probe now, so that an unwritable directory fails before the store
	// is paused.
	probe, err := os.CreateTemp(dir, ".backup-probe-")
	if err != nil {
		return nil, err
	}
	_ = probe.Close()
	_ = os.Remove(probe.Name())
	return func() {
		for _, name := range []string{"journal", "region"} {
			_ = os.RemoveAll(filepath.Join(dir, name))
		}
	}, nil
}

// backupCheckpoint takes a journal snapshot and starts a hold, so that no
// block the snapshot references is reused before the copy is done.
//
// It holds commitMu only, for the snapshot's creation (microseconds), and
// needs no pause of the operations in flight: every journal batch is one
// whole operation, so any snapshot is a state recovery could rebuild; a
// block is written before the batch that puts it in a file; and every
// block a file lets go reaches the allocator through freeNow, under
// commitMu, so a block the snapshot shows in a file is either still there
// or freed after the hold began, and held. Quiesce is held shared (as by
// any operation), so Close waits for it.
func (s *Store) backupCheckpoint(st *BackupStats) (*journal.Snapshot, error) {
	if err := s.begin(false); err != nil {
		return nil, err
	}
	defer s.end()
	s.commitMu.Lock()
	start := time.Now()
	defer func() {
		st.Pause = time.Since(start)
		s.commitMu.Unlock()
	}()
	if s.failed != nil {
		return nil, s.failed
	}
	snap, err := s.jnl.Snapshot()
	if err != nil {
		return nil, err
	}
	s.backup.holds++
	return snap, nil
}

// backupExport writes the snapshot into dir/journal, closes it, and returns
// the written file blocks it references, sorted and merged, and the
// region's superblock. It holds quiesce shared while it reads the
// snapshot, as Check does, so the journal is not closed under it.
func (s *Store) backupExport(ctx context.Context, snap *journal.Snapshot, dir string, st *BackupStats) ([]pmem.Extent, pmem.Superblock, error) {
	if err := s.begin(false); err != nil {
		_ = snap.Close()
		return nil, pmem.Superblock{}, err
	}
	// The snapshot is closed before quiesce is let go, so that Close
	// never closes the journal under an open snapshot.
	defer func() {
		_ = snap.Close()
		s.end()
	}()
	core, err := snap.LoadCore()
	if err != nil {
		return nil, pmem.Superblock{}, err
	}
	m := core.Meta
	sb := pmem.Superblock{Version: pmem.FormatVersion, BlockSize: m.BlockSize, BlockCount: m.BlockCount, UUID: m.UUID}
	for _, b := range core.Busy {
		st.BusyBlocks += b.Extent.Len
	}
	var exts []pmem.Extent
	err = snap.ScanFiles(func(in journal.Inode) error {
		st.Files++
		for _, r := range in.Extents {
			if !r.Unwritten {
				exts = append(exts, pmem.Extent{Start: r.Start, Len: r.Len})
			}
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, sb, err
	}
	if err := snap.Export(ctx, filepath.Join(dir, "journal")); err != nil {
		return nil, sb, err
	}
	sortExtents(exts)
	merged := exts[:0]
	for _, e := range exts {
		if n := len(merged); n > 0 && merged[n-1].End() == e.Start {
			merged[n-1].Len += e.Len
			continue
		}
		merged = append(merged, e)
	}
	return merged, sb, nil
}

// backupRegion creates dir/region like the store's (same size, block size
// and UUID, sparse) and copies exts into it, block by block, leaving
// blocks of zeros as holes. Each chunk is read under quiesce held shared,
// so the region stays mapped while it is read.
func (s *Store) backupRegion(ctx context.Context, dir string, sb pmem.Superblock, exts []pmem.Extent, st *BackupStats) error {
	path := filepath.Join(dir, "region")
	r, err := pmem.Create(path, pmem.CreateOptions{BlockSize: sb.BlockSize,
		Size: int64(sb.BlockCount) * int64(sb.BlockSize), UUID: sb.UUID})
	if err != nil {
		return err
	}
	st.RegionBytes = r.Size()
	if err := r.Close(); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	bs := int64(sb.BlockSize)
	perChunk := uint64(max(1, backupChunk/bs))
	for _, e := range exts {
		for e.Len > 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			c := pmem.Extent{Start: e.Start, Len: min(e.Len, perChunk)}
			e = pmem.Extent{Start: c.End(), Len: e.Len - c.Len}
			if err := s.copyChunk(f, c, bs, st); err != nil {
				return err
			}
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return f.Close()
}

// copyChunk writes the non-zero blocks of c into f at their offsets.
func (s *Store) copyChunk(f *os.File, c pmem.Extent, bs int64, st *BackupStats) error {
	if err := s.begin(false); err != nil {
		return err
	}
	defer s.end()
	src := s.region.Bytes(c)
	base := int64(c.Start) * bs
	for i := int64(0); i < int64(len(src)); {
		if zeroBytes(src[i : i+bs]) {
			i += bs
			continue
		}
		j := i + bs
		for j < int64(len(src)) && !zeroBytes(src[j:j+bs]) {
			j += bs
		}
		if _, err := f.WriteAt(src[i:j], base+i); err != nil {
			return err
		}
		st.CopiedBytes += j - i
		i = j
	}
	return nil
}

// zeroBytes reports whether b holds only zero bytes.
func zeroBytes(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// syncPath fsyncs the directory dir and its parent, so that the copy's
// entries survive a crash.
func syncPath(dir string) error {
	for _, p := range []string{dir, filepath.Dir(dir)} {
		d, err := os.Open(p)
		if err != nil {
			return err
		}
		serr := d.Sync()
		_ = d.Close()
		if serr != nil && !errors.Is(serr, os.ErrInvalid) {
			return fmt.Errorf("fsync %s: %w", p, serr)
		}
	}
	return nil
}

// backupRequest is the body of POST /backup on the admin socket.
type backupRequest struct {
	Dir string `json:"dir"` // absolute path, on the holder's machine
}

// backupRequestMax bounds the request body: a path and its JSON.
const backupRequestMax = 16 << 10

// serveBackup runs Backup for a client of the admin socket and answers
// BackupStats as JSON. The copy is written by this process, so the path
// must be absolute and on this machine. The request's context ends the
// backup (and removes the partial copy) when the client goes away or the
// socket closes, so neither a client nor the store's Close waits for a
// backup nobody awaits. The write deadline is lifted: the backup takes as
// long as the copy does, and the client waits for it.
func (s *Store) serveBackup(w http.ResponseWriter, r *http.Request) {
	var req backupRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, backupRequestMax)).Decode(&req); err != nil {
		http.Error(w, fmt.Sprintf("daxstore: backup: bad request: %v", err), http.StatusBadRequest)
		return
	}
	if !filepath.IsAbs(req.Dir) {
		http.Error(w, fmt.Sprintf("daxstore: backup to %q: the holder needs an absolute path", req.Dir), http.StatusBadRequest)
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	st, err := s.Backup(r.Context(), req.Dir)
	if err != nil {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, fs.ErrExist):
			code = http.StatusConflict
		case errors.Is(err, ErrInvalidRange):
			code = http.StatusBadRequest
		case errors.Is(err, ErrClosed):
			code = http.StatusServiceUnavailable
		}
		http.Error(w, err.Error(), code)
		return
	}
	st.Pid = os.Getpid()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}

// BackupLive asks the process that holds the store in dir to back it up
// into dest (Store.Backup), over its admin socket, and returns the holder's
// BackupStats (Pid set). The holder writes the copy itself, so dest is
// made absolute here and must be a path the holder can write on this
// machine. An error from the holder keeps its sentinel where one applies
// (fs.ErrExist for a destination that is not empty, ErrInvalidRange);
// when no process serves the socket the error says so. Cancelling ctx
// stops the backup and the holder removes the partial copy.
func BackupLive(ctx context.Context, dir, dest string) (BackupStats, error) {
	abs, err := filepath.Abs(dest)
	if err != nil {
		return BackupStats{}, fmt.Errorf("daxstore: backup to %s: %w", dest, err)
	}
	body, err := json.Marshal(backupRequest{Dir: abs})
	if err != nil {
		return BackupStats{}, err
	}
	path := filepath.Join(dir, AdminSocketName)
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://daxstore/backup", bytes.NewReader(body))
	if err != nil {
		return BackupStats{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return BackupStats{}, fmt.Errorf("daxstore: backup of %s through its holder: %w: %v", dir, errNoSocket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		text := strings.TrimSpace(string(msg))
		switch resp.StatusCode {
		case http.StatusConflict:
			return BackupStats{}, fmt.Errorf("%s (%w)", text, fs.ErrExist)
		case http.StatusBadRequest:
			return BackupStats{}, fmt.Errorf("%s (%w)", text, ErrInvalidRange)
		case http.StatusNotFound, http.StatusMethodNotAllowed:
			return BackupStats{}, fmt.Errorf("daxstore: backup of %s: the process holding it does not serve backups (%s)", dir, resp.Status)
		}
		return BackupStats{}, fmt.Errorf("daxstore: backup of %s through its holder: %s", dir, text)
	}
	var st BackupStats
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return BackupStats{}, fmt.Errorf("daxstore: backup of %s: reply from its holder: %w", dir, err)
	}
	return st, nil
}
