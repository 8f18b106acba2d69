package dax

// File: the io.ReaderAt / io.WriterAt view of one key, and the write path
// that fills holes without ever exposing a block's previous bytes.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/daxstore/daxstore/alloc"
	"github.com/daxstore/daxstore/pmem"
)

// File is an open handle on a key. It implements io.ReaderAt, io.WriterAt
// and io.Closer, and is safe for concurrent use. A File whose key is removed
// returns ErrNotFound from then on.
//
// A region file that shrinks under the store (another process truncates
// it) or media that fail make the store's own copies fault: ReadAt, WriteAt,
// Get, Put and Pin then return an error wrapping ErrCorrupt instead of the
// process dying, and the store refuses further changes (ErrFailed) until it
// is reopened. Only the slices a Pin hands out are
// beyond this: a fault in the caller's own loads from them kills the
// process, as with any mmap. Deleting the region file does no harm: the
// mapping keeps its inode alive until Close.
type File struct {
	s      *Store
	in     *inode
	closed atomic.Bool
}

var (
	_ io.ReaderAt = (*File)(nil)
	_ io.WriterAt = (*File)(nil)
	_ io.Closer   = (*File)(nil)
)

// Key returns the file's current name. It takes no lock, so error paths
// may call it while they hold the file's locks.
func (f *File) Key() string { return f.in.name() }

// enter starts an operation on f (see Store.begin); end it with f.s.end().
func (f *File) enter(mutating bool) error {
	if f.closed.Load() {
		return ErrClosed
	}
	return f.s.begin(mutating)
}

// live fails when the file's key was removed. mapMu must be held.
func (f *File) live() error {
	if f.in.removed {
		return ErrNotFound
	}
	return nil
}

func (f *File) errorf(op string, err error) error {
	return fmt.Errorf("daxstore: %s %q: %w", op, f.Key(), err)
}

// checkRange validates a byte range [off, off+n) of a file.
func checkRange(off, n int64) error {
	if off < 0 || n < 0 || off > MaxFileSize || n > MaxFileSize-off {
		return fmt.Errorf("offset %d length %d (files are limited to %d bytes): %w", off, n, int64(MaxFileSize), ErrInvalidRange)
	}
	return nil
}

// blockSpan returns the file blocks [fb, fe) that bytes [off, off+n) touch.
func (s *Store) blockSpan(off, n int64) (fb, fe uint64) {
	return uint64(off / s.bs), uint64((off + n + s.bs - 1) / s.bs)
}

// Size returns the file size in bytes.
func (f *File) Size() (int64, error) {
	if err := f.enter(false); err != nil {
		return 0, f.errorf("size", err)
	}
	defer f.s.end()
	f.in.mapMu.Lock()
	defer f.in.mapMu.Unlock()
	if err := f.live(); err != nil {
		return 0, f.errorf("size", err)
	}
	return f.in.size, nil
}

// Sync makes the file durable. Every write already flushes its data and
// commits its metadata before it returns, so Sync has nothing left to do
// unless the store runs with Options.NoSync, which it then cannot undo.
func (f *File) Sync() error {
	if err := f.enter(false); err != nil {
		return f.errorf("sync", err)
	}
	f.s.end()
	return nil
}

// Close releases the handle. Pins taken through it stay valid. A second
// Close returns ErrClosed.
func (f *File) Close() error {
	if !f.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("daxstore: close file: %w", ErrClosed)
	}
	f.s.release(f.in)
	return nil
}

// ReadAt reads len(p) bytes at off. Holes and unwritten blocks read as zeros;
// it never returns bytes of another key. At the end of the file it returns
// the bytes read and io.EOF.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	// Only the offset is checked: the part of p past the end of the file
	// is not read, and a file may end at MaxFileSize, so a read that
	// reaches past that end must get io.EOF, not ErrInvalidRange.
	if err := checkRange(off, 0); err != nil {
		f.s.met.done(opRead, err)
		return 0, f.errorf("read", err)
	}
	if err := f.enter(false); err != nil {
		f.s.met.done(opRead, err)
		return 0, f.errorf("read", err)
	}
	defer f.s.end()
	f.in.ioMu.RLock()
	defer f.in.ioMu.RUnlock()
	n, counted, err := f.readLocked(p, off, true)
	if err != nil && err != io.EOF {
		if counted {
			f.s.met.failed(opRead)
		} else {
			f.s.met.done(opRead, err)
		}
		return n, f.errorf("read", err)
	}
	return n, err
}

// readLocked is ReadAt for a caller holding the IO lock shared. With
// tally, it counts the read in the file's read metrics (under the
// extent-map lock, with the bytes it is to copy) and says so in counted,
// so that the caller counts only its error, if any; callers that count
// the operation as something else (a Get) pass false.
func (f *File) readLocked(p []byte, off int64, tally bool) (n int, counted bool, err error) {
	in := f.in
	in.mapMu.Lock()
	if err := f.live(); err != nil {
		in.mapMu.Unlock()
		return 0, false, err
	}
	count := tally && !f.s.met.isOff()
	if off >= in.size {
		if count {
			in.reads++
		}
		in.mapMu.Unlock()
		return 0, count, io.EOF
	}
	want := min(int64(len(p)), in.size-off)
	if count {
		in.reads++
		in.readBytes += uint64(want)
	}
	if in.inline {
		copy(p, in.data[off:off+want])
		in.mapMu.Unlock()
		if want < int64(len(p)) {
			return int(want), count, io.EOF
		}
		return int(want), count, nil
	}
	var one [1]mapping
	fb, fe := f.s.blockSpan(off, want)
	pieces, err := f.s.holdWritten(in.extents.pieces(fb, fe, &one))
	in.mapMu.Unlock()
	if err != nil {
		return 0, count, err
	}
	err = f.s.copyOut(p[:want], off, pieces)
	if rerr := f.s.releasePieces(pieces); err == nil {
		err = rerr
	}
	if err != nil {
		return 0, count, f.s.faulted(err)
	}
	if want < int64(len(p)) {
		return int(want), count, io.EOF
	}
	return int(want), count, nil
}

// holdWritten takes a short-term reference on the written pieces, so their
// blocks cannot be released while the copy runs without the extent-map
// lock. It returns the pieces (unwritten ones too, unreferenced).
func (s *Store) holdWritten(pieces []mapping) ([]mapping, error) {
	for i, m := range pieces {
		if m.unwritten {
			continue
		}
		if err := s.refs.Acquire(m.region()); err != nil {
			_ = s.releasePieces(pieces[:i])
			return nil, err
		}
	}
	return pieces, nil
}

func (s *Store) releasePieces(pieces []mapping) error {
	var errs []error
	for _, m := range pieces {
		if m.unwritten {
			continue
		}
		if err := s.refs.Release(m.region()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// copyOut fills p, the file bytes at off, from pieces (file order, clipped
// to p's blocks); everything else reads as zeros. A fault on the mapping
// stops it with an error wrapping ErrCorrupt.
func (s *Store) copyOut(p []byte, off int64, pieces []mapping) error {
	pos := off // next file offset of p not yet filled
	end := off + int64(len(p))
	for _, m := range pieces {
		base := int64(m.fileBlock) * s.bs
		lo, hi := max(base, off), min(base+int64(m.n)*s.bs, end)
		if lo >= hi {
			continue
		}
		clear(p[pos-off : lo-off])
		if m.unwritten {
			clear(p[lo-off : hi-off])
		} else if _, err := pmem.Copy(p[lo-off:hi-off], s.region.Bytes(m.region())[lo-base:hi-base]); err != nil {
			return err
		}
		pos = hi
	}
	clear(p[pos-off:])
	return nil
}

// faulted marks the store failed when err is a fault on the region mapping
// (pmem.ErrFault), and returns err. Such a fault means the region file was
// truncated under the store or its media failed: the region no longer
// holds what the journal describes, so the store refuses further changes
// (ErrFailed) until it is reopened, which checks the region's size. Reads
// go on, and those that touch the lost part return the fault, which wraps
// ErrCorrupt. The process is never killed (TestRegionShrunkUnderTheStore).
func (s *Store) faulted(err error) error {
	if errors.Is(err, pmem.ErrFault) {
		_ = s.poison(err)
	}
	return err
}

// poisonCause is poison for an error that left memory ahead of the
// journal, but returns a fault on the mapping itself, so the caller learns
// the cause (ErrCorrupt); later changes get the store's failure.
func (s *Store) poisonCause(err error) error {
	if errors.Is(err, pmem.ErrFault) {
		return s.faulted(err)
	}
	return s.poison(err)
}

// WriteAt writes p at off, growing the file when it writes past the end.
// Bytes of new blocks that p does not cover are zeroed, and the data is
// flushed before the new blocks are committed, so a crash never shows a
// block's old bytes. Overwrites of written blocks are in place and not
// atomic across a crash. When the region is full but busy blocks exist it
// waits up to Options.AllocWait for them.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if err := checkRange(off, int64(len(p))); err != nil {
		f.s.met.done(opWrite, err)
		return 0, f.errorf("write", err)
	}
	old := int64(-1) // the size before, once the write may change bytes
	err := f.s.retrySpace(context.Background(), func() error { return f.writeAt(p, off, &old) })
	f.s.met.wroteBytes(opWrite, len(p), err)
	if old >= 0 {
		f.notify(ChangeData, off, int64(len(p)))
		if off+int64(len(p)) > old {
			f.notify(ChangeSize, old, -1)
		}
	}
	if err != nil {
		return 0, f.errorf("write", err)
	}
	return len(p), nil
}

// hole is a run of unmapped file blocks.
type hole struct{ fileBlock, n uint64 }

// holes returns the gaps of [fb, fe) that pieces (file order) leave.
func holes(pieces []mapping, fb, fe uint64) []hole {
	var out []hole
	next := fb
	for _, m := range pieces {
		if m.fileBlock > next {
			out = append(out, hole{next, m.fileBlock - next})
		}
		next = m.fileEnd()
	}
	if fe > next {
		out = append(out, hole{next, fe - next})
	}
	return out
}

func holeBlocks(hs []hole) uint64 {
	var n uint64
	for _, h := range hs {
		n += h.n
	}
	return n
}

func (f *File) writeAt(p []byte, off int64, old *int64) error {
	if err := f.enter(true); err != nil {
		return err
	}
	defer f.s.end()
	d, err := f.writeLocked(p, off, old)
	// The new blocks and size are visible already; the write returns
	// once they are durable, waiting with no lock of the file held. An
	// inline file's move into blocks is settled even if the write failed.
	if serr := f.s.settle(d); err == nil {
		err = serr
	}
	return err
}

// writeLocked is writeAt under the file's locks. It returns what its
// commit owes, to settle once they are released, and sets *old to the
// size before the write once it may change bytes.
func (f *File) writeLocked(p []byte, off int64, old *int64) (*durable, error) {
	s, in := f.s, f.in
	// The extent-map lock is held for the whole write: it keeps two writes
	// from filling the same hole and keeps layout-breaking operations (and
	// so any release of these blocks) out until the data is in place. That
	// is also why the write takes no short-term references of its own.
	in.ioMu.RLock()
	defer in.ioMu.RUnlock()
	in.mapMu.Lock()
	defer in.mapMu.Unlock()
	if err := f.live(); err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, nil
	}
	*old = in.size
	spilled, err := s.spillLocked(in)
	if err != nil {
		return nil, err
	}
	d, err := f.writeMappedLocked(p, off)
	return chain(spilled, d), err
}

// writeMappedLocked is writeLocked for a file in region blocks.
func (f *File) writeMappedLocked(p []byte, off int64) (*durable, error) {
	s, in := f.s, f.in
	if err := s.zeroPastEOF(in, off); err != nil {
		return nil, err
	}
	end := off + int64(len(p))
	fb, fe := s.blockSpan(off, int64(len(p)))
	pieces := in.extents.find(fb, fe)
	gaps := holes(pieces, fb, fe)
	t := s.newTxn()
	err := s.fillHoles(t, in, gaps, false, func(e pmem.Extent, fileBlock uint64) error {
		return s.writeBlocks(e, fileBlock, p, off, true)
	})
	if err != nil {
		t.b.Close()
		return nil, err
	}
	changed := len(t.claimed) > 0
	for _, m := range pieces {
		if err := s.writeBlocks(m.region(), m.fileBlock, p, off, m.unwritten); err != nil {
			t.b.Close()
			return nil, s.poisonCause(err)
		}
		if m.unwritten {
			// The blocks now hold their data and zeros: convert them.
			t.markWritten(in, m)
			changed = true
		}
	}
	s.region.Drain()
	if end > in.size {
		in.size = end
		changed = true
	}
	if len(in.windows) > 0 {
		// An extension may leave holes under writable windows.
		if err := s.backWindowsReserve(t, in); err != nil {
			t.b.Close()
			return nil, err
		}
		changed = changed || t.changed()
	}
	if !changed {
		t.b.Close() // a pure in-place overwrite: no metadata to commit
		return nil, nil
	}
	in.mtime = time.Now()
	t.setInode(in)
	return s.commit(t)
}

// fillHoles reserves region blocks for the holes gaps of in, near the
// blocks before them, has fill (if any) put every new run's bytes in place
// and flushed, and maps the runs, unwritten or written, in t. A failure of
// fill fails the store: earlier runs may already be mapped in memory. The
// extent-map lock must be held.
func (s *Store) fillHoles(t *txn, in *inode, gaps []hole, unwritten bool, fill func(e pmem.Extent, fileBlock uint64) error) error {
	need := holeBlocks(gaps)
	if need == 0 {
		return nil
	}
	// One reservation for every gap, placed to continue the run before
	// the first and, for a large file, congruent with its file blocks.
	first := gaps[0].fileBlock
	reserved, err := s.reserveFor(need, alloc.Hint{Goal: in.extents.goal(first), FileBlock: first})
	if err != nil {
		return err
	}
	t.claimed = append(t.claimed, reserved...)
	for _, h := range gaps {
		for h.n > 0 {
			e := carve(&reserved, h.n)
			if fill != nil {
				if err := fill(e, h.fileBlock); err != nil {
					return s.poisonCause(err)
				}
			}
			t.mapOps(in, in.extents.insert(mapping{fileBlock: h.fileBlock, start: e.Start, n: e.Len, unwritten: unwritten}))
			h.fileBlock += e.Len
			h.n -= e.Len
		}
	}
	return nil
}

// markWritten records in t that the unwritten blocks of m now hold their
// data (and zeros), flushed.
func (t *txn) markWritten(in *inode, m mapping) {
	_, ops := in.extents.remove(m.fileBlock, m.fileEnd())
	t.mapOps(in, ops)
	m.unwritten = false
	t.mapOps(in, in.extents.insert(m))
}

// writeBlocks copies the part of p (the file bytes at off) that falls into
// region blocks e, which back file blocks from fileBlock on, and flushes
// it. With zeroRest every byte of e that p does not cover is zeroed and
// flushed too: e is new or unwritten and must not show its old bytes.
func (s *Store) writeBlocks(e pmem.Extent, fileBlock uint64, p []byte, off int64, zeroRest bool) error {
	dst := s.region.Bytes(e)
	base := int64(fileBlock) * s.bs
	lo, hi := max(base, off), min(base+int64(len(dst)), off+int64(len(p)))
	if lo > hi {
		lo, hi = base, base // p does not reach these blocks
	}
	// A fault on the mapping (a region file truncated under the store)
	// becomes an error; callers fail the store.
	if _, err := pmem.Copy(dst[lo-base:hi-base], p[lo-off:hi-off]); err != nil {
		return err
	}
	if zeroRest {
		if err := pmem.Clear(dst[:lo-base]); err != nil {
			return err
		}
		if err := pmem.Clear(dst[hi-base:]); err != nil {
			return err
		}
		return s.region.Flush(e)
	}
	if hi == lo {
		return nil
	}
	return s.region.FlushBytes(int64(e.Start)*s.bs+(lo-base), hi-lo)
}

// Allocate reserves blocks for [off, off+n) as unwritten extents, which read
// as zeros until written, and grows the file to off+n if it is shorter.
// Blocks already mapped are left alone.
func (f *File) Allocate(off, n int64) (err error) {
	defer func() { f.s.met.done(opAllocate, err) }()
	if err := checkRange(off, n); err != nil {
		return f.errorf("allocate", err)
	}
	old := int64(-1) // the size before, once the allocation may change the file
	err = f.s.retrySpace(context.Background(), func() error { return f.allocate(off, n, &old) })
	if old >= 0 {
		f.notify(ChangeData, off, n)
		if off+n > old {
			f.notify(ChangeSize, old, -1)
		}
	}
	if err != nil {
		return f.errorf("allocate", err)
	}
	return nil
}

func (f *File) allocate(off, n int64, old *int64) error {
	if err := f.enter(true); err != nil {
		return err
	}
	defer f.s.end()
	d, err := f.allocateLocked(off, n, old)
	if serr := f.s.settle(d); err == nil {
		err = serr
	}
	return err
}

// allocateLocked is allocate under the file's locks; it sets *old as
// writeLocked does.
func (f *File) allocateLocked(off, n int64, old *int64) (*durable, error) {
	s, in := f.s, f.in
	in.ioMu.RLock()
	defer in.ioMu.RUnlock()
	in.mapMu.Lock()
	defer in.mapMu.Unlock()
	if err := f.live(); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	*old = in.size
	spilled, err := s.spillLocked(in)
	if err != nil {
		return nil, err
	}
	if err := s.zeroPastEOF(in, off+n); err != nil {
		return spilled, err
	}
	fb, fe := s.blockSpan(off, n)
	gaps := holes(in.extents.find(fb, fe), fb, fe)
	t := s.newTxn()
	// Unwritten blocks read as zeros whatever they hold: nothing to write.
	if err := s.fillHoles(t, in, gaps, true, nil); err != nil {
		t.b.Close()
		return spilled, err
	}
	if off+n > in.size {
		in.size = off + n
	}
	// Unwritten blocks under writable windows are zeroed and written.
	if err := s.backWindowsReserve(t, in); err != nil {
		t.b.Close()
		return spilled, err
	}
	in.mtime = time.Now()
	t.setInode(in)
	d, err := s.commit(t)
	return chain(spilled, d), err
}

// spillLocked moves an inline file's bytes into new region blocks, zeroed
// past its end and flushed, in a commit of its own, so that an operation
// that needs blocks (WriteAt, Allocate, Pin) then runs on them as on any
// file. A crash after this commit leaves the same bytes, in blocks. It
// does nothing for a file in blocks. The extent-map lock must be held; the
// caller chains the returned commit before its own and settles both once
// it has released its locks.
func (s *Store) spillLocked(in *inode) (*durable, error) {
	if !in.inline {
		return nil, nil
	}
	t := s.newTxn()
	data := in.data
	if n := s.blocksFor(int64(len(data))); n > 0 {
		err := s.fillHoles(t, in, []hole{{0, n}}, false, func(e pmem.Extent, fb uint64) error {
			return s.writeBlocks(e, fb, data, 0, true)
		})
		if err != nil {
			t.b.Close()
			return nil, err
		}
		s.region.Drain()
	}
	in.inline, in.data = false, nil
	t.setInode(in)
	s.stats.spills.Add(1)
	return s.commit(t)
}

// zeroPastEOF zeroes the bytes of the file's last block from the end of the
// file up to upto (at most the end of that block) and flushes them, before
// an operation grows the file over them. A shrink leaves the bytes past its
// new end in place (see breaker.shrinkTail), and a crash between an
// extending write's flush and the commit of its new size leaves that
// write's bytes there: growing the file must not show them (TestPowerCut
// found this). Every path that grows a file (WriteAt, Truncate, Allocate)
// calls it; Put writes whole new blocks and Pin never reaches past the end.
// No pin can see these bytes: pins lie inside the file, and a shrink copies
// a pinned last block. The extent-map lock must be held.
func (s *Store) zeroPastEOF(in *inode, upto int64) error {
	size := in.size
	if size%s.bs == 0 || upto <= size {
		return nil
	}
	fb := uint64(size / s.bs)
	ms := in.extents.find(fb, fb+1)
	if len(ms) == 0 || ms[0].unwritten {
		return nil
	}
	from, to := size%s.bs, min(s.bs, upto-int64(fb)*s.bs)
	tail := s.region.Bytes(pmem.Extent{Start: ms[0].start, Len: 1})[from:to]
	// Every zeroing is flushed, so bytes that read as zero are zero on the
	// media too: the common case costs a scan and no flush. The scan reads
	// the mapping, guarded against a fault as the copies are.
	if zero, err := pmem.IsZero(tail); zero || err != nil {
		return s.faulted(err)
	}
	if err := pmem.Clear(tail); err != nil {
		return s.faulted(err)
	}
	return s.region.FlushBytes(int64(ms[0].start)*s.bs+from, to-from)
}
