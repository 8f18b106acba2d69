package dax

// Windows: one contiguous mapping of a range of a file, built from the
// region's blocks, so that a file whose blocks are scattered still reads as
// one []byte, and (in follow mode) kept equal to the file as the file
// changes, as the kernel keeps an mmap of a DAX file. See File.Map.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daxstore/daxstore/pmem"
)

// WindowMode says how a window relates to later changes of its file.
type WindowMode uint8

const (
	// MapFollow is the mmap semantics: the window always shows the file.
	// Truncate, PunchHole, ZeroRange, Remove and Put over the key (and a
	// WriteAt, Allocate or Pin that fills a hole or converts unwritten
	// blocks) remap the affected pages of every follow window of the file
	// under the file's locks, before they return and before any block they
	// free can be reused. A follow window holds no block references, so it
	// never keeps space busy.
	MapFollow WindowMode = iota
	// MapPinned holds the window's blocks exactly as a Pin does: a break
	// detaches them to the busy list per its policy, the window keeps its
	// bytes, OnBreak is called, and the blocks are freed when the window
	// closes. A pinned window is never remapped while the store is open.
	MapPinned
)

// String returns "follow" or "pinned".
func (m WindowMode) String() string {
	switch m {
	case MapFollow:
		return "follow"
	case MapPinned:
		return "pinned"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// MapOptions configures File.Map.
type MapOptions struct {
	// Writable maps the window's file blocks writable: stores through
	// Bytes land in the file (durable after Flush). A writable follow
	// window keeps every page inside the file backed by a written block:
	// Map fills holes and converts unwritten blocks in its range (as Pin
	// does), and later punches, zero-ranges, truncates up and extensions
	// leave fresh zeroed blocks there. When the region has no block to
	// spare for that, the operation still succeeds and those pages read
	// as read-only zeros until a later change of the file (a WriteAt,
	// Allocate, truncate, punch or zero-range) finds space to back them.
	// Pages wholly past the end of the file stay read-only zeros. On a
	// read-only store Map refuses it (ErrReadOnly).
	Writable bool
	// Label names the window in Pins, `daxstore pins` and, for a pinned
	// window, in the busy list; as PinOptions.Label.
	Label string
	// Mode is MapFollow (the zero value) or MapPinned.
	Mode WindowMode
	// OnBreak, for a pinned window, is called as PinOptions.OnBreak is.
	// A follow window ignores it: its changes show in Generation.
	OnBreak func()
}

// ErrMappingBudget: a window would take more mappings than the store's
// budget (Options.MaxWindowMappings) has left.
var ErrMappingBudget = errors.New("window would exceed the mapping budget")

// Window is a contiguous mapping of bytes [off, off+n) of a file. See
// File.Map. Its methods are safe for concurrent use, but Bytes must not be
// used once Close has begun.
//
// The write-fault rule: a store into a page that the window maps
// read-only (every page of a read-only window; holes, unwritten blocks and
// pages wholly past the end of the file; every page of a stale window)
// raises SIGSEGV, as a store into a read-only mmap does. That is a
// programming error and kills the process, unless the goroutine asked
// for such faults to panic (runtime/debug.SetPanicOnFault), as the tests
// do. The file's last page is mapped whole, so a store through a
// writable window past the end of the file but inside that page does not
// fault; those bytes are not part of the file (ReadAt does not return
// them), and an extension zeroes them before they become part of the
// file, as the kernel does with the tail of the last page of an mmap.
// The same holds for the file's own old bytes that a truncate to the
// middle of a block leaves there when the region has no block to spare
// for a zeroed copy: a follow window holds no blocks and never makes a
// break fail, and zeroing them in place before the new size is durable
// could let a crash keep the old size with those bytes lost, so they stay
// visible in the window's last page, past the end, until the file next
// changes there (TestWindowTruncateOnAFullRegionNeedsNoBlock).
// With blocks larger than a page, the pages of the last block wholly past
// the end are read-only zeros like any page past the end
// (TestWindowPageWhollyPastEOFInsideTheLastBlockIsReadOnly).
//
// Stores through a writable window race the store's own changes of the
// file as stores through an mmap race truncate: a store that lands while
// a punch or a Put replaces the page is lost, but never reaches a block
// another file owns (TestFollowWindowNeverShowsAnotherKeysBytesUnderConcurrentBreaks).
type Window struct {
	s    *Store
	in   *inode
	off  int64
	n    int64
	opts MapOptions
	fb   uint64 // the file block at the span's first block
	nb   uint64 // blocks the span holds
	data []byte // the window's bytes inside the span

	// mu serialises every change of the span: remaps (under the file's
	// extent-map lock), the store's Close and the window's Close. It
	// protects span, cur and closed.
	mu   rankedMutex[windowRank]
	span *pmem.Span
	cur  []piece // what the span maps now, tiling its pages in order
	// lay and spare are scratch arrays of remapLocked (see there).
	lay, spare []piece
	closed     bool // Close released the span
	pin        Pin  // a pinned window's pin
	// remapErr, set by tests, makes remaps fail as a failing mmap would
	// (TestFailedRemapLeavesTheWindowStaleAndZero).
	remapErr error

	created time.Time
	gen     atomic.Uint64
	stale   atomic.Bool
	npieces atomic.Int64
	done    atomic.Bool // Close began: a second Close fails
}

// piece is one mapping of a window's span: span pages [idx, idx+n)
// mapped to the region's pages from page start (writable or not), or to
// read-only zero pages when start is 0 (block 0, the superblock, is never
// a data block). Pieces count pages rather than blocks because with blocks
// larger than a page the file's last block may lie partly past the end of
// the file, and its pages wholly past the end must be read-only zeros.
type piece struct {
	idx, n uint64
	start  uint64 // region page (region byte offset / page size); 0: zeros
	rw     bool
}

func (p piece) end() uint64 { return p.idx + p.n }

// joins reports whether q continues p as one mapping.
func (p piece) joins(q piece) bool {
	if p.end() != q.idx || p.rw != q.rw || (p.start == 0) != (q.start == 0) {
		return false
	}
	return p.start == 0 || p.start+p.n == q.start
}

// clip returns the part of p in span pages [lo, hi), which must meet it.
func (p piece) clip(lo, hi uint64) piece {
	a, b := max(lo, p.idx), min(hi, p.end())
	q := piece{idx: a, n: b - a, rw: p.rw}
	if p.start != 0 {
		q.start = p.start + (a - p.idx)
	}
	return q
}

// pageSize is the granularity of a window's mappings.
var pageSize = int64(os.Getpagesize())

// ppb returns the pages per block (blocks are at least a page: CheckSpan).
func (s *Store) ppb() uint64 { return uint64(s.bs / pageSize) }

// appendPiece appends q to ps, merged into the last piece when it
// continues it.
func appendPiece(ps []piece, q piece) []piece {
	if q.n == 0 {
		return ps
	}
	if k := len(ps) - 1; k >= 0 && ps[k].joins(q) {
		ps[k].n += q.n
		return ps
	}
	return append(ps, q)
}

// splice returns cur with span pages [lo, hi) replaced by repl, built in
// dst's array (which must not overlap cur or repl).
func splice(dst, cur []piece, lo, hi uint64, repl []piece) []piece {
	out := dst[:0]
	for _, p := range cur {
		if p.idx < lo {
			out = appendPiece(out, p.clip(p.idx, min(lo, p.end())))
		}
	}
	for _, p := range repl {
		out = appendPiece(out, p)
	}
	for _, p := range cur {
		if p.end() > hi {
			out = appendPiece(out, p.clip(max(hi, p.idx), p.end()))
		}
	}
	return out
}

// mappedAs reports whether cur (a tiling of the span) already maps all of
// p's blocks as p would.
func mappedAs(cur []piece, p piece) bool {
	k := sort.Search(len(cur), func(i int) bool { return cur[i].end() > p.idx })
	for ; k < len(cur) && cur[k].idx < p.end(); k++ {
		o := cur[k]
		if o.rw != p.rw || (o.start == 0) != (p.start == 0) {
			return false
		}
		if p.start != 0 && int64(o.start)-int64(o.idx) != int64(p.start)-int64(p.idx) {
			return false
		}
	}
	return true
}

// windowSet is the store's registry of open windows, for Pins, Stats and
// Close.
type windowSet struct {
	mu     sync.Mutex // protects set; taken alone
	set    map[*Window]struct{}
	pieces atomic.Int64  // pieces of every open window
	remaps atomic.Uint64 // mmap calls remaps made since Open
}

func (ws *windowSet) add(w *Window) {
	ws.mu.Lock()
	if ws.set == nil {
		ws.set = make(map[*Window]struct{})
	}
	ws.set[w] = struct{}{}
	ws.mu.Unlock()
}

func (ws *windowSet) remove(w *Window) {
	ws.mu.Lock()
	delete(ws.set, w)
	ws.mu.Unlock()
}

// list returns the open windows.
func (ws *windowSet) list() []*Window {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	out := make([]*Window, 0, len(ws.set))
	for w := range ws.set {
		out = append(out, w)
	}
	return out
}

// charge takes n pieces from the budget, or fails with ErrMappingBudget
// and takes nothing.
func (s *Store) chargePieces(n int) error {
	limit := int64(s.opts.MaxWindowMappings)
	for {
		used := s.windows.pieces.Load()
		if used+int64(n) > limit {
			return fmt.Errorf("%w: the window takes %d mappings and %d of Options.MaxWindowMappings (%d) are in use; close windows or raise the budget",
				ErrMappingBudget, n, used, limit)
		}
		if s.windows.pieces.CompareAndSwap(used, used+int64(n)) {
			return nil
		}
	}
}

// Map maps bytes [off, off+n) of the file into one contiguous range of
// memory and returns the window over it: Bytes is one slice of length n,
// built by mapping each physically contiguous run of the file's blocks
// (MAP_SHARED, MAP_FIXED, with MAP_SYNC on real fsdax) into one reserved
// address range. Holes, unwritten blocks and pages wholly past the end of
// the file map to read-only zero pages.
//
// In follow mode (the default) the window covers the fixed file range
// [off, off+n) and always shows what the file holds there: after any
// operation on the file returns, Bytes equals what ReadAt returns for the
// range, with zeros past the end of the file. It grows into the range as
// the file grows (no Resize is needed: that is the rule). A Put over the
// key shows the new value and bumps Generation; a Remove makes the window
// Stale and read zeros. An inline file is first moved into blocks, and
// while the file has a follow window a Put never makes it inline again.
// The rule past the end of the file holds at page granularity: pages
// wholly past the end map to zero pages, and the bytes of the last page
// past the end read as zeros (Map zeroes the last block's bytes past the
// end, and a shrink that leaves a partial last block under a follow
// window gives the file a copy with them zeroed), with one exception: on
// a full region that shrink has no block for the copy and still succeeds,
// and then the old bytes past the new end stay visible through the last
// page until the file next changes there (see Window). A writable window
// may store into the last page's tail without a fault: see Window.
//
// In pinned mode the window is a Pin of [off, off+n), which must lie
// inside the file, plus the mapping of its blocks: see MapPinned.
//
// Windows need blocks of at least the page size; with smaller blocks Map
// fails with an error wrapping errors.ErrUnsupported. A window that would
// take the store past Options.MaxWindowMappings mappings fails with
// ErrMappingBudget (the file may have had holes filled by then, which
// reads the same). An empty or out-of-range request fails with
// ErrInvalidRange, a bad label with ErrInvalidLabel; none of them changes
// anything.
func (f *File) Map(off, n int64, opts MapOptions) (_ *Window, err error) {
	defer func() { f.s.met.done(opMap, err) }()
	w, err := f.mapWindow(off, n, opts)
	if err != nil {
		return nil, f.errorf("map", err)
	}
	return w, nil
}

func (f *File) mapWindow(off, n int64, opts MapOptions) (*Window, error) {
	s := f.s
	if err := checkRange(off, n); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("empty range: %w", ErrInvalidRange)
	}
	if err := checkLabel(opts.Label); err != nil {
		return nil, err
	}
	if opts.Mode != MapFollow && opts.Mode != MapPinned {
		return nil, fmt.Errorf("window mode %v: %w", opts.Mode, ErrInvalidRange)
	}
	if s.opts.ReadOnly && (opts.Writable || opts.Mode == MapPinned) {
		return nil, ErrReadOnly
	}
	fb, fe := s.blockSpan(off, n)
	w := &Window{s: s, in: f.in, off: off, n: n, opts: opts, fb: fb, nb: fe - fb, created: time.Now()}
	var err error
	if opts.Mode == MapPinned {
		err = s.retrySpace(context.Background(), func() error { return f.mapPinned(w) })
	} else {
		err = s.retrySpace(context.Background(), func() error { return f.mapFollow(w) })
	}
	if err != nil {
		return nil, err
	}
	return w, nil
}

// reserveSpan takes the budget for pieces cur and reserves and maps the
// span; on failure it takes nothing.
func (w *Window) reserveSpan(cur []piece) error {
	s := w.s
	if err := s.chargePieces(len(cur)); err != nil {
		return err
	}
	span, err := s.region.ReserveSpan(int64(w.nb) * s.bs)
	if err == nil {
		w.span = span
		if err = w.mapPieces(cur, nil); err != nil {
			_ = span.Release()
			w.span = nil
		}
	}
	if err != nil {
		s.windows.pieces.Add(-int64(len(cur)))
		return err
	}
	w.cur = cur
	w.npieces.Store(int64(len(cur)))
	skip := w.off - int64(w.fb)*s.bs
	w.data = span.Bytes()[skip : skip+w.n : skip+w.n]
	return nil
}

// mapFollow maps follow window w, under the file's invalidate and
// extent-map locks.
func (f *File) mapFollow(w *Window) error {
	s := f.s
	if err := f.enter(false); err != nil {
		return err
	}
	defer s.end()
	if err := s.region.CheckSpan(); err != nil {
		return err
	}
	d, err := f.mapFollowLocked(w)
	if serr := s.settle(d); serr != nil && err == nil {
		// The store failed: the window never existed for anyone.
		_ = w.Close()
		return serr
	}
	return err
}

func (f *File) mapFollowLocked(w *Window) (*durable, error) {
	s, in := f.s, f.in
	in.invalMu.RLock()
	defer in.invalMu.RUnlock()
	in.mapMu.Lock()
	defer in.mapMu.Unlock()
	if err := f.live(); err != nil {
		return nil, err
	}
	var d *durable
	if in.inline {
		if s.opts.ReadOnly {
			return nil, fmt.Errorf("an inline file must move into blocks to be mapped: %w", ErrReadOnly)
		}
		spilled, err := s.spillLocked(in)
		if err != nil {
			return spilled, err
		}
		d = spilled
	}
	if w.opts.Writable {
		if fe := min(w.fb+w.nb, s.blocksFor(in.size)); w.fb < fe {
			md, err := s.materialize(in, w.fb, fe)
			d = chain(d, md)
			if err != nil {
				return d, err
			}
		}
	}
	if !s.opts.ReadOnly && in.size%s.bs != 0 {
		// The bytes of the last block past the end may hold what a shrink
		// left there (see breaker.shrinkTail): the window must read zeros.
		if err := s.zeroPastEOF(in, (in.size/s.bs+1)*s.bs); err != nil {
			return d, err
		}
	}
	w.mu.Lock()
	err := w.reserveSpan(w.layoutLocked(nil, 0, w.nb))
	w.mu.Unlock()
	if err != nil {
		return d, err
	}
	in.windows = append(in.windows, w)
	in.winSize = in.size
	in.users.Add(1)
	s.windows.add(w)
	return d, nil
}

// mapPinned pins w's range and maps the pin's runs.
func (f *File) mapPinned(w *Window) error {
	s := f.s
	if err := f.enter(true); err != nil {
		return err
	}
	defer s.end()
	if err := s.region.CheckSpan(); err != nil {
		return err
	}
	p, d, err := f.pinLocked(w.off, w.n, PinOptions{Writable: w.opts.Writable, Label: w.opts.Label, OnBreak: w.opts.OnBreak})
	if serr := s.settle(d); serr != nil && err == nil {
		_ = p.Unpin()
		return serr
	}
	if err != nil {
		return err
	}
	var cur []piece
	var idx uint64
	ppb := s.ppb()
	for _, e := range p.r.runs {
		cur = appendPiece(cur, piece{idx: idx, n: e.Len * ppb, start: uint64(e.Start) * ppb, rw: w.opts.Writable})
		idx += e.Len * ppb
	}
	w.mu.Lock()
	err = w.reserveSpan(cur)
	w.mu.Unlock()
	if err != nil {
		_ = p.Unpin()
		return err
	}
	w.pin = p
	s.windows.add(w)
	return nil
}

// layoutLocked returns how a follow window maps span blocks [lo, hi) for
// the file as it is now, as pieces of span pages. The pages of the last
// block that lie wholly past the end of the file map to zero pages, as
// blocks past the end do. The pieces are appended to dst[:0]. The
// extent-map lock must be held.
func (w *Window) layoutLocked(dst []piece, lo, hi uint64) []piece {
	s, in := w.s, w.in
	ppb := s.ppb()
	out := dst[:0]
	if in.removed || w.stale.Load() {
		return append(out, piece{idx: lo * ppb, n: (hi - lo) * ppb})
	}
	eof := s.blocksFor(in.size)
	// The span page past the file's last page.
	filePages := uint64((in.size + pageSize - 1) / pageSize)
	eofPage := filePages - min(filePages, w.fb*ppb)
	fb, fe := w.fb+lo, min(w.fb+hi, eof)
	next := lo * ppb
	if fb < fe {
		in.extents.visit(fb, fe, func(m mapping) {
			m, ok := m.clip(fb, fe)
			if !ok {
				return
			}
			i := (m.fileBlock - w.fb) * ppb
			out = appendPiece(out, piece{idx: next, n: i - next})
			p := piece{idx: i, n: min(m.n*ppb, eofPage-i)}
			if !m.unwritten {
				p.start, p.rw = uint64(m.start)*ppb, w.opts.Writable
			}
			out = appendPiece(out, p)
			next = p.end()
		})
	}
	return appendPiece(out, piece{idx: next, n: hi*ppb - next})
}

// mapPieces maps ps into the span, skipping those that cur already maps
// the same way (all of them are mapped when cur is nil: a new span). It
// returns the first error; w.mu must be held.
func (w *Window) mapPieces(ps []piece, cur []piece) error {
	_, err := w.mapPiecesCount(ps, cur)
	return err
}

func (w *Window) mapPiecesCount(ps []piece, cur []piece) (calls int, err error) {
	ppb := w.s.ppb()
	for _, p := range ps {
		if cur != nil && mappedAs(cur, p) {
			continue
		}
		if cur != nil && w.remapErr != nil {
			return calls, w.remapErr
		}
		at, n := int64(p.idx)*pageSize, int64(p.n)*pageSize
		if p.start == 0 {
			err = w.span.MapZeros(at, n)
		} else {
			b, skip := p.start/ppb, p.start%ppb
			e := pmem.Extent{Start: pmem.Block(b), Len: (skip + p.n + ppb - 1) / ppb}
			err = w.span.MapBlockPages(at, e, int64(skip)*pageSize, n, p.rw)
		}
		if err != nil {
			return calls, err
		}
		calls++
	}
	return calls, nil
}

// setCurLocked records cur as what the span maps; w.mu must be held.
func (w *Window) setCurLocked(cur []piece) {
	w.s.windows.pieces.Add(int64(len(cur) - len(w.cur)))
	w.cur = cur
	w.npieces.Store(int64(len(cur)))
}

// remapLocked remaps file blocks [fb, fe) of follow window w to what the
// file maps there now. The extent-map lock must be held. When a mapping
// call fails, the whole window falls back to read-only zero pages and
// becomes Stale, so it never keeps showing a block the caller is about to
// free; only if that fails too does it return an error, and then the
// caller must not free anything (commitLocked fails the store).
func (w *Window) remapLocked(fb, fe uint64) error {
	if fe <= w.fb || fb >= w.fb+w.nb {
		return nil
	}
	lo, hi := max(fb, w.fb)-w.fb, min(fe, w.fb+w.nb)-w.fb
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.span == nil {
		return nil
	}
	// The layout and the spliced tiling are built in arrays kept from the
	// last remap, so that a remap allocates nothing once warm.
	ps := w.layoutLocked(w.lay, lo, hi) // zero pages once the key is removed
	w.lay = ps
	calls, err := w.mapPiecesCount(ps, w.cur)
	w.s.windows.remaps.Add(uint64(calls))
	if err != nil {
		return w.zeroAllLocked(err)
	}
	if calls > 0 {
		w.gen.Add(1)
	}
	old := w.cur
	w.setCurLocked(splice(w.spare, old, lo*w.s.ppb(), hi*w.s.ppb(), ps))
	w.spare = old
	if w.in.removed {
		// Only now that the zero pages are in: a reader that sees Stale
		// must read zeros (TestWindowStaleReadsZeros).
		w.stale.Store(true)
	}
	return nil
}

// zeroAllLocked maps read-only zero pages over the whole span and marks
// the window stale, after cause (nil for the store's Close); w.mu must be
// held.
func (w *Window) zeroAllLocked(cause error) error {
	if err := w.span.MapZeros(0, w.span.Size()); err != nil {
		return fmt.Errorf("window %q: remap failed (%v) and so did its fallback to zero pages: %w", w.opts.Label, cause, err)
	}
	w.stale.Store(true)
	w.gen.Add(1)
	w.setCurLocked([]piece{{idx: 0, n: w.nb * w.s.ppb()}})
	return nil
}

// remapWindows remaps, for every inode t touched that has follow windows,
// the file blocks t changed (its extent-map operations, and the blocks
// between the old and new size), or all of them once the key is removed.
// commitLocked calls it before the batch is applied: every commit that
// changes an extent map or a size passes here with the file's extent-map
// lock held, and the blocks the commit frees become allocatable only after
// the commit is durable (settle, after the file's locks are released), so
// no window ever maps a block that someone else may own. It is the one
// place that keeps follow windows equal to their files
// (TestFollowWindowEqualsReadAtAfterEveryOperation,
// TestFollowWindowNeverShowsAnotherKeysBytesUnderConcurrentBreaks).
func (s *Store) remapWindows(t *txn) error {
	for _, in := range t.touched {
		if len(in.windows) == 0 {
			continue
		}
		lo, hi := uint64(maxBlock), uint64(0)
		for _, r := range t.dirty {
			if r.in == in {
				lo, hi = min(lo, r.lo), max(hi, r.hi)
			}
		}
		if in.size != in.winSize {
			a, b := min(in.size, in.winSize), max(in.size, in.winSize)
			lo, hi = min(lo, uint64(a/s.bs)), max(hi, s.blocksFor(b))
			in.winSize = in.size
		}
		if in.removed {
			lo, hi = 0, maxBlock
		}
		if lo >= hi {
			continue
		}
		for _, w := range in.windows {
			if err := w.remapLocked(lo, hi); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxBlock is past every file block (MaxFileSize is far below it).
const maxBlock = uint64(1) << 62

// dirtyRange is a range of file blocks of one inode that a txn changed.
type dirtyRange struct {
	in     *inode
	lo, hi uint64
}

// windowed reports whether a follow window of in covers file block fb.
// The extent-map lock must be held.
func (in *inode) windowed(fb uint64) bool {
	for _, w := range in.windows {
		if !w.stale.Load() && fb >= w.fb && fb < w.fb+w.nb {
			return true
		}
	}
	return false
}

// writableRanges returns the file blocks, inside the file, of in's
// writable follow windows, merged and in order. The extent-map lock must
// be held.
func (s *Store) writableRanges(in *inode) []hole {
	eof := s.blocksFor(in.size)
	var rs []hole
	for _, w := range in.windows {
		if !w.opts.Writable || w.stale.Load() || in.removed {
			continue
		}
		if fe := min(w.fb+w.nb, eof); w.fb < fe {
			rs = append(rs, hole{fileBlock: w.fb, n: fe - w.fb})
		}
	}
	slices.SortFunc(rs, func(a, b hole) int { return int(min(1, max(-1, int64(a.fileBlock)-int64(b.fileBlock)))) })
	var out []hole
	for _, r := range rs {
		if k := len(out) - 1; k >= 0 && out[k].fileBlock+out[k].n >= r.fileBlock {
			out[k].n = max(out[k].n, r.fileBlock+r.n-out[k].fileBlock)
			continue
		}
		out = append(out, r)
	}
	return out
}

// windowNeed returns how many new blocks the writable follow windows of in
// need now (their holes inside the file), plus the blocks of [lo, hi) they
// cover up to end (blocks an operation is about to turn into holes).
func (s *Store) windowNeed(in *inode, lo, hi uint64) uint64 {
	var n uint64
	for _, r := range s.writableRanges(in) {
		n += holeBlocks(holes(in.extents.find(r.fileBlock, r.fileBlock+r.n), r.fileBlock, r.fileBlock+r.n))
	}
	if lo < hi {
		for _, w := range in.windows {
			if w.opts.Writable && !w.stale.Load() {
				if a, b := max(lo, w.fb), min(hi, w.fb+w.nb); a < b {
					n += b - a
				}
			}
		}
	}
	return n
}

// backWindows gives the holes and unwritten blocks of in's writable follow
// windows (inside the file) zeroed, written blocks, in t: unwritten blocks
// are zeroed in place and marked written, holes get new zeroed blocks from
// take. Holes take cannot fill stay holes, whose pages read as read-only
// zeros until a later change of the file backs them: that is what a
// writable window gets when the region runs out of space, rather than a
// failed truncate or punch. The extent-map lock must be held.
func (s *Store) backWindows(t *txn, in *inode, take func(n uint64) (pmem.Extent, bool)) error {
	for _, r := range s.writableRanges(in) {
		fb, fe := r.fileBlock, r.fileBlock+r.n
		ps := in.extents.find(fb, fe)
		for _, m := range ps {
			if !m.unwritten {
				continue
			}
			if err := s.zeroBlocks(m.region()); err != nil {
				return s.poisonCause(err)
			}
			t.markWritten(in, m)
		}
		for _, h := range holes(ps, fb, fe) {
			for h.n > 0 {
				e, ok := take(h.n)
				if !ok {
					return nil
				}
				if err := s.zeroBlocks(e); err != nil {
					return s.poisonCause(err)
				}
				t.mapOps(in, in.extents.insert(mapping{fileBlock: h.fileBlock, start: e.Start, n: e.Len}))
				h.fileBlock += e.Len
				h.n -= e.Len
			}
		}
	}
	return nil
}

// backWindowsReserve is backWindows for an operation outside a break: it
// reserves the blocks itself, best effort, and gives back what it did not
// use. The extent-map lock must be held.
func (s *Store) backWindowsReserve(t *txn, in *inode) error {
	if len(in.windows) == 0 {
		return nil
	}
	var pool []pmem.Extent
	if need := s.windowNeed(in, 0, 0); need > 0 {
		pool, _ = s.reserve(need, 0) // no space: those pages stay zeros
	}
	err := s.backWindows(t, in, func(n uint64) (pmem.Extent, bool) {
		if len(pool) == 0 {
			return pmem.Extent{}, false
		}
		e := carve(&pool, n)
		t.claimed = append(t.claimed, e)
		return e, true
	})
	s.unreserve(pool)
	return err
}

// takeSome hands out up to n fresh blocks of the break's reservation, or
// none when it is used up.
func (b *breaker) takeSome(n uint64) (pmem.Extent, bool) {
	if len(b.fresh) == 0 {
		return pmem.Extent{}, false
	}
	return b.take(n), true
}

// closeWindows remaps every open window to read-only zero pages and marks
// it stale, for the store's Close: the region may be reused by the next
// opener, and a reader racing Close must not fault. Window.Close still
// releases each address range.
func (s *Store) closeWindows() {
	for _, w := range s.windows.list() {
		w.mu.Lock()
		if !w.closed && w.span != nil {
			// Nothing better to do if even this fails: the old
			// mapping stays, which at least never faults.
			_ = w.zeroAllLocked(nil)
		}
		w.mu.Unlock()
	}
}

// Bytes returns the window's memory: one slice of length Len, valid until
// Close. What it shows depends on the mode (see MapFollow, MapPinned);
// stores into it are subject to the write-fault rule (see Window).
func (w *Window) Bytes() []byte { return w.data }

// Offset returns the file offset the window starts at.
func (w *Window) Offset() int64 { return w.off }

// Len returns the window's length in bytes.
func (w *Window) Len() int64 { return w.n }

// Mode returns the window's mode.
func (w *Window) Mode() WindowMode { return w.opts.Mode }

// Label returns the window's label.
func (w *Window) Label() string { return w.opts.Label }

// Writable reports whether the window was mapped writable.
func (w *Window) Writable() bool { return w.opts.Writable }

// Generation counts the times the store remapped part of the window
// because its file changed (or it went stale); it never decreases. A
// caller that caches what it read can compare generations to learn that a
// break or a Put reached the window's range.
func (w *Window) Generation() uint64 { return w.gen.Load() }

// Stale reports whether the window no longer shows its file: for a
// follow window, its key was removed, the store closed, or a remap failed
// (the window then falls back to zero pages rather than keep showing
// blocks about to be freed); for a pinned window, a forced Close closed
// the store.
// A stale window reads as zeros, read-only, until it is closed.
func (w *Window) Stale() bool { return w.stale.Load() }

// Pieces returns the number of mappings the window takes now: one per
// physically contiguous run of blocks and one per run of zero pages (the
// kernel may merge neighbours further). They count against
// Options.MaxWindowMappings.
func (w *Window) Pieces() int { return int(w.npieces.Load()) }

// Flush makes stores through the window durable: it flushes the region
// blocks the window maps (cache-line write-back on DAX, msync otherwise,
// the cache lines on emulated media), as WriteAt's own flush does. It
// fails with ErrClosed after Close or the store's Close. A read-only or
// stale window has nothing to flush.
func (w *Window) Flush() error {
	if w.done.Load() {
		return fmt.Errorf("daxstore: flush window %q: %w", w.opts.Label, ErrClosed)
	}
	if w.opts.Mode == MapPinned {
		// Pin.Flush enters the store itself: entering twice could
		// deadlock against a Close waiting in between.
		return w.pin.Flush()
	}
	s := w.s
	if w.opts.Writable {
		// After end; stores may have reached the file however the flush goes.
		defer w.notify()
	}
	if err := s.begin(false); err != nil {
		return fmt.Errorf("daxstore: flush window %q: %w", w.opts.Label, err)
	}
	defer s.end()
	if !w.opts.Writable || w.stale.Load() {
		return nil
	}
	in := w.in
	in.mapMu.Lock()
	var exts []pmem.Extent
	for _, m := range in.extents.find(w.fb, w.fb+w.nb) {
		if !m.unwritten {
			exts = append(exts, m.region())
		}
	}
	in.mapMu.Unlock()
	// A block the file lets go of meanwhile is flushed for nothing, which
	// does no harm: flushing never changes bytes.
	var errs []error
	for _, e := range exts {
		if err := s.region.Flush(e); err != nil {
			errs = append(errs, err)
		}
	}
	s.region.Drain()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("daxstore: flush window %q: %w", w.opts.Label, s.faulted(err))
	}
	return nil
}

// Close unmaps the window and releases its address range; a pinned
// window then unpins its blocks (freed once their last reference drops).
// Bytes must not be used afterwards. A second Close fails with ErrClosed.
// Close works after the store's Close too.
func (w *Window) Close() error {
	if !w.done.CompareAndSwap(false, true) {
		return fmt.Errorf("daxstore: close window %q: %w", w.opts.Label, ErrClosed)
	}
	s, in := w.s, w.in
	s.windows.remove(w)
	if w.opts.Mode == MapFollow {
		in.mapMu.Lock()
		if i := slices.Index(in.windows, w); i >= 0 {
			in.windows = slices.Delete(in.windows, i, i+1)
		}
		in.mapMu.Unlock()
	}
	w.mu.Lock()
	var err error
	if w.span != nil {
		err = w.span.Release()
		w.setCurLocked(nil)
		w.span = nil
	}
	w.closed = true
	w.mu.Unlock()
	if w.opts.Mode == MapPinned {
		// Unmapped first, so the blocks are never freed while mapped. The
		// pin's Unpin reports the window's stores.
		if uerr := w.pin.Unpin(); uerr != nil && !errors.Is(uerr, ErrClosed) && err == nil {
			err = uerr
		}
	} else {
		if w.opts.Writable {
			w.notify()
		}
		s.release(in)
	}
	if err != nil {
		return fmt.Errorf("daxstore: close window %q: %w", w.opts.Label, err)
	}
	return nil
}

// windowInfos describes the open follow windows, and returns the pinned
// windows by pin id, for Pins.
func (s *Store) windowInfos() (follow []PinInfo, pinned map[uint64]*Window) {
	pinned = map[uint64]*Window{}
	for _, w := range s.windows.list() {
		if w.opts.Mode == MapPinned {
			pinned[w.pin.id] = w
			continue
		}
		follow = append(follow, PinInfo{
			Key: w.in.name(), Ino: w.in.ino, Offset: w.off, Length: w.n, Label: w.opts.Label,
			Writable: w.opts.Writable, Created: w.created, Mode: modeFollowWindow, Pieces: w.Pieces(),
		})
	}
	return follow, pinned
}

// PinInfo.Mode values.
const (
	modePin          = "pin"
	modeFollowWindow = "follow window"
	modePinnedWindow = "pinned window"
)
