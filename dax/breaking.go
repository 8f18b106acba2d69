package dax

// Layout-breaking operations: Truncate, PunchHole, ZeroRange, Remove and
// Put over an existing key. They take the file's IO and invalidate locks
// exclusive, sort every affected block into "free now" or "busy until its
// last pin drops", commit one batch, and only then, outside every lock,
// call OnBreak and (under the Wait policy) wait for the release.

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/daxstore/daxstore/busyextent"
	"github.com/daxstore/daxstore/pmem"
)

// breaker carries one layout-breaking operation on one file. Its methods
// run with the file's three locks held exclusive; the apply methods also
// with commitMu held, so that a pin dropping right after its block is
// detached cannot get its release committed before the detach itself.
type breaker struct {
	s      *Store
	in     *inode
	key    string
	reason busyextent.Reason
	t      *txn
	fresh  []pmem.Extent // reserved blocks not yet handed out (copy-on-write, zero-range)
	used   []pmem.Extent // reserved blocks handed out: claimed by the commit
	// winNeed is how many blocks plan expects writable follow windows to
	// need afterwards (see backWindows); reserved best effort.
	winNeed uint64

	detached []pmem.Extent        // blocks moved to busy
	now      time.Time            // the detach time of every run, set by the first: one record holds them all
	ticket   uint64               // stamps this operation's busy extents, for the Wait policy
	pending  []busyextent.Extent  // detached runs not yet in the busy set: see addBusy
	broken   map[uint64]brokenPin // pins whose blocks were detached, by id
}

// brokenPin is what a break needs to call a pin's OnBreak once its locks
// are gone, when the pin's record may already serve another pin.
type brokenPin struct {
	r       *pinRecord
	onBreak func()
}

// breakResult is what a breaking operation reports once its locks are gone.
type breakResult struct {
	durable  *durable // what the commit owes once the locks are gone: settle it
	detached []pmem.Extent
	ticket   uint64 // the busy set's ticket on detached
	broken   map[uint64]brokenPin
}

// policy resolves a per-call policy against the store default.
func (s *Store) policy(bo BreakOptions) BreakPolicy {
	if bo.Policy == PolicyDefault {
		return s.opts.BreakPolicy
	}
	return bo.Policy
}

// runBreak runs op (which takes and drops its own locks, and may be retried
// when space runs out), then, outside every lock, calls OnBreak of each
// broken pin and, under the Wait policy, waits for the detached blocks to be
// released.
func (s *Store) runBreak(ctx context.Context, policy BreakPolicy, op func() (*breakResult, error)) error {
	if err := checkBreakPolicy(policy); err != nil {
		return err
	}
	var res *breakResult
	err := s.retrySpace(ctx, func() (err error) {
		res, err = op()
		return err
	})
	if err != nil {
		return err
	}
	if res == nil {
		return nil
	}
	for id, p := range res.broken {
		if p.onBreak != nil && p.r.markBroken(id) {
			p.onBreak()
		}
	}
	if policy == PolicyWait && len(res.detached) > 0 {
		// Wait for this operation's ticket, not for the block numbers:
		// released blocks may be reused and detached again by another
		// operation before this wait looks (TestWaitPolicyIgnoresReusedBlocks).
		if err := s.busy.WaitReleased(ctx, res.ticket, res.detached...); err != nil {
			return fmt.Errorf("waiting for %d detached extents to be released: %w", len(res.detached), err)
		}
	}
	return nil
}

// referenced reports the pins holding written blocks of file blocks
// [fb, fe), for the Fail policy and for error messages.
func (s *Store) referencedIn(in *inode, fb, fe uint64) []PinInfo {
	seen := map[uint64]bool{}
	var out []PinInfo
	for _, m := range in.extents.find(fb, fe) {
		for _, r := range s.refs.Referenced(m.region()) {
			for _, p := range s.pinsOn(r) {
				if !seen[p.ID] {
					seen[p.ID] = true
					out = append(out, p)
				}
			}
		}
	}
	return out
}

func pinnedError(pins []PinInfo) error {
	return fmt.Errorf("%w: %s", ErrPinned, describePins(pins))
}

// blockReferenced reports whether the written block backing file block fb
// is referenced; ok is false when fb is a hole or unwritten.
func (s *Store) blockReferenced(in *inode, fb uint64) (m mapping, referenced, ok bool) {
	ms := in.extents.find(fb, fb+1)
	if len(ms) == 0 || ms[0].unwritten {
		return mapping{}, false, false
	}
	return ms[0], s.refs.Count(ms[0].start) > 0, true
}

// drop unmaps file blocks [fb, fe): unreferenced blocks return to free space
// with the commit, referenced ones move to busy.
func (b *breaker) drop(fb, fe uint64) error {
	removed, ops := b.in.extents.remove(fb, fe)
	b.t.mapOps(b.in, ops)
	for _, m := range removed {
		if err := b.detach(m); err != nil {
			return err
		}
	}
	return nil
}

// detach gives up the region blocks of m, which the file no longer maps.
func (b *breaker) detach(m mapping) error {
	s := b.s
	busyRuns, err := s.refs.Detach(m.region())
	if err != nil {
		return err
	}
	if len(busyRuns) > 0 && b.now.IsZero() {
		b.now = time.Now()
	}
	next := m.start
	for _, r := range busyRuns {
		if r.Start > next {
			b.t.freed = append(b.t.freed, pmem.Extent{Start: next, Len: uint64(r.Start - next)})
		}
		next = r.End()
		b.pending = append(b.pending, busyextent.Extent{
			Extent: r, Key: b.key, Ino: b.in.ino, FileBlock: m.fileBlock + uint64(r.Start-m.start),
			Reason: b.reason, DetachedAt: b.now,
		})
	}
	if end := m.region().End(); end > next {
		b.t.freed = append(b.t.freed, pmem.Extent{Start: next, Len: uint64(end - next)})
	}
	return nil
}

// addBusy adds the runs that detach collected to the busy set and the
// batch, labelled with the pins holding them, and marks those pins broken.
// The pins are matched against every run in one pass, so detaching the
// scattered pinned blocks of a large file costs O(pins · log runs), not a
// pass over all pins per run. The runs go to the busy set in one call,
// which journals them as one run-list record (per busyextent.MaxRuns runs),
// and runs held by pins of one label share one label slice.
func (b *breaker) addBusy() error {
	s := b.s
	if len(b.pending) == 0 {
		return nil
	}
	order := make([]int, len(b.pending)) // indexes of pending, by region start
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int { return cmp.Compare(b.pending[i].Start, b.pending[j].Start) })
	lastPin := make([]*pinRecord, len(b.pending)) // the pin last labelled on each run
	if len(b.broken) == 0 {
		// Usually one pin a run: size the map once rather than grow it.
		b.broken = make(map[uint64]brokenPin, len(b.pending))
	}
	single := map[string][]string{} // a shared one-label slice per label
	s.pins.each(func(p *pinRecord) {
		for _, r := range p.runs {
			// The first run ending after r starts, then on while they
			// start before r ends: runs do not overlap each other.
			k, _ := slices.BinarySearchFunc(order, r.Start, func(i int, start pmem.Block) int {
				if b.pending[i].End() <= start {
					return -1
				}
				return 1
			})
			for ; k < len(order) && b.pending[order[k]].Start < r.End(); k++ {
				i := order[k]
				if lastPin[i] == p {
					continue
				}
				lastPin[i] = p
				b.broken[p.pinID] = brokenPin{r: p, onBreak: p.onBreak}
				x := &b.pending[i]
				if x.Pins == 0 {
					// The first pin: share the label's slice. Its
					// capacity is 1, so a second label (AddPin)
					// appends into a copy of its own.
					l, ok := single[p.label]
					if !ok {
						l = []string{p.label}
						single[p.label] = l
					}
					x.Pins, x.Labels = 1, l
					continue
				}
				// Counted, with a bounded set of labels: a record of any
				// number of pins is one the journal accepts.
				x.AddPin(p.label)
			}
		}
	})
	if b.ticket == 0 {
		b.ticket = s.busy.NewTicket()
	}
	var blocks uint64
	for i := range b.pending {
		b.pending[i].Ticket = b.ticket
		b.detached = append(b.detached, b.pending[i].Extent)
		blocks += b.pending[i].Len
	}
	d, err := s.busy.AddRuns(b.pending)
	if err != nil {
		return err
	}
	applyBusyDelta(b.t.b, d)
	s.stats.detached.Add(blocks)
	b.pending = nil
	return nil
}

// zeroPartial zeroes bytes [from, to) of file block fb. A hole or an
// unwritten block already reads as zeros. A referenced block is not touched
// (its holder must keep its bytes): the file gets a copy with the range
// zeroed, and the old block is detached.
func (b *breaker) zeroPartial(fb uint64, from, to int64) error {
	s := b.s
	m, referenced, ok := s.blockReferenced(b.in, fb)
	if !ok || from >= to {
		return nil
	}
	if !referenced {
		if err := pmem.Clear(s.region.Bytes(pmem.Extent{Start: m.start, Len: 1})[from:to]); err != nil {
			return err
		}
		return s.region.FlushBytes(int64(m.start)*s.bs+from, to-from)
	}
	return b.copyZeroed(fb, m, from, to)
}

// shrinkTail prepares the last kept block fb of a shrink to the block offset
// from. Its bytes past the new end are left alone: they lie past the end of
// the file, where nothing reads, and the next grow zeroes them
// (zeroPastEOF) before it exposes them. Zeroing them here, before the
// size commit, would let a crash in between keep the old size with those
// bytes already zeroed (TestTruncatePowerCutKeepsTheOldBytesOrTheNewSize).
// A referenced block is the exception: a later grow would zero, in place,
// bytes its pin holder sees, so the file gets a copy with the tail zeroed,
// which no reader sees before the commit maps it.
//
// A block under a follow window is copied too when the break has a block
// to spare (plan reserves one best effort): the window must read zeros
// past the end, and zeroing in place is what a crash must not see. A
// follow window holds no blocks and must never make a break fail, so on a
// full region the block stays: its old bytes past the new end stay
// visible through the window's last page (never through ReadAt) until the
// file next changes there, as an extension zeroes them before exposing
// them (TestWindowTruncateOnAFullRegionNeedsNoBlock).
func (b *breaker) shrinkTail(fb uint64, from int64) error {
	m, referenced, ok := b.s.blockReferenced(b.in, fb)
	if !ok || (!referenced && (!b.in.windowed(fb) || len(b.fresh) == 0)) {
		return nil
	}
	return b.copyZeroed(fb, m, from, b.s.bs)
}

// copyZeroed gives file block fb, mapped by m and referenced, a fresh copy
// with bytes [from, to) zeroed, and detaches the old block, whose holders
// keep their bytes.
func (b *breaker) copyZeroed(fb uint64, m mapping, from, to int64) error {
	s := b.s
	e := b.take(1)
	dst := s.region.Bytes(e)
	if _, err := pmem.Copy(dst, s.region.Bytes(pmem.Extent{Start: m.start, Len: 1})); err != nil {
		return err
	}
	if err := pmem.Clear(dst[from:to]); err != nil {
		return err
	}
	if err := s.region.Flush(e); err != nil {
		return err
	}
	if err := b.drop(fb, fb+1); err != nil {
		return err
	}
	b.t.mapOps(b.in, b.in.extents.insert(mapping{fileBlock: fb, start: e.Start, n: 1}))
	return nil
}

// zeroFull makes file blocks [fb, fe) read as zeros while staying allocated:
// unreferenced written blocks turn unwritten in place; referenced ones are
// detached and replaced by fresh unwritten blocks. Holes stay holes.
func (b *breaker) zeroFull(fb, fe uint64) error {
	s := b.s
	for _, m := range b.in.extents.find(fb, fe) {
		if m.unwritten {
			continue
		}
		next := m.fileBlock
		runs := s.refs.Referenced(m.region())
		for _, r := range append(runs, pmem.Extent{Start: m.region().End()}) {
			rfb := m.fileBlock + uint64(r.Start-m.start)
			if rfb > next { // unreferenced: convert in place
				_, ops := b.in.extents.remove(next, rfb)
				b.t.mapOps(b.in, ops)
				b.t.mapOps(b.in, b.in.extents.insert(mapping{
					fileBlock: next, start: m.start + pmem.Block(next-m.fileBlock), n: rfb - next, unwritten: true}))
			}
			if r.Len == 0 {
				break
			}
			if err := b.drop(rfb, rfb+r.Len); err != nil {
				return err
			}
			for at, left := rfb, r.Len; left > 0; {
				e := b.take(left)
				b.t.mapOps(b.in, b.in.extents.insert(mapping{fileBlock: at, start: e.Start, n: e.Len, unwritten: true}))
				at += e.Len
				left -= e.Len
			}
			next = rfb + r.Len
		}
	}
	return nil
}

// breakFile runs the common frame of a breaking operation on f: begin, the
// file's locks, the Fail-policy check over plan's blocks, the reservation of
// fresh blocks, then apply and one commit under commitMu; then, with the
// locks released, the wait for the commit's sync (settle).
//
// plan returns the file blocks whose references matter and how many fresh
// blocks apply will need; apply changes the map through the breaker.
func (f *File) breakFile(op string, reason busyextent.Reason, policy BreakPolicy,
	plan func(b *breaker) (fb, fe uint64, fresh uint64, err error),
	apply func(b *breaker) error) (*breakResult, error) {
	s := f.s
	if err := f.enter(true); err != nil {
		return nil, err
	}
	defer s.end()
	res, err := f.breakLocked(reason, policy, plan, apply)
	if err != nil {
		return nil, err
	}
	if err := s.settle(res.durable); err != nil {
		return nil, err
	}
	return res, nil
}

// breakLocked is the part of breakFile under the file's locks.
func (f *File) breakLocked(reason busyextent.Reason, policy BreakPolicy,
	plan func(b *breaker) (fb, fe uint64, fresh uint64, err error),
	apply func(b *breaker) error) (*breakResult, error) {
	in := f.in
	in.lockAll()
	defer in.unlockAll()
	if err := f.live(); err != nil {
		return nil, err
	}
	b := &breaker{s: f.s, in: in, key: in.name(), reason: reason}
	return b.run(policy, plan, apply)
}

// run is the part of breakFile after the file's locks are held. The caller
// settles the result's commit once it has released them.
func (b *breaker) run(policy BreakPolicy,
	plan func(b *breaker) (fb, fe uint64, fresh uint64, err error),
	apply func(b *breaker) error) (*breakResult, error) {
	s := b.s
	fb, fe, need, err := plan(b)
	if err != nil {
		return nil, err
	}
	if policy == PolicyFail {
		if pins := s.referencedIn(b.in, fb, fe); len(pins) > 0 {
			return nil, pinnedError(pins)
		}
	}
	if need > 0 {
		reserved, err := s.reserve(need, 0)
		if err != nil {
			return nil, err
		}
		b.fresh = reserved
	}
	if b.winNeed > 0 {
		// Best effort: without space the break still succeeds, and the
		// pages of writable windows it leaves unbacked read as zeros.
		if extra, err := s.reserve(b.winNeed, 0); err == nil {
			b.fresh = append(b.fresh, extra...)
		}
	}
	b.t = s.newTxn()
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if s.failed != nil {
		b.t.b.Close()
		s.unreserveLocked(b.fresh)
		return nil, s.failed
	}
	sizeBefore := b.in.size
	if err := apply(b); err != nil {
		b.t.b.Close()
		failed := s.fail(err)
		if errors.Is(err, pmem.ErrFault) {
			// The caller learns the cause (ErrCorrupt); later changes get
			// the store's failure, as after a fault in WriteAt.
			return nil, err
		}
		return nil, failed
	}
	if len(b.in.windows) > 0 && !b.in.removed {
		if err := s.backWindows(b.t, b.in, b.takeSome); err != nil {
			b.t.b.Close()
			return nil, s.fail(err)
		}
	}
	if err := b.addBusy(); err != nil {
		b.t.b.Close()
		return nil, s.fail(err)
	}
	// A pin may have dropped between plan and apply, so fewer blocks needed
	// a copy than were reserved: give the rest back.
	s.unreserveLocked(b.fresh)
	b.t.claimed = append(b.t.claimed, b.used...)
	if !b.t.changed() && b.in.size == sizeBefore {
		// Nothing in the layout changed (an empty range, a range of holes,
		// or partial blocks zeroed in place): there is nothing to journal.
		b.t.b.Close()
		return &breakResult{}, nil
	}
	if !b.in.removed {
		b.in.mtime = time.Now()
		b.t.setInode(b.in)
	}
	d, err := s.commitLocked(b.t, true)
	if err != nil {
		return nil, err
	}
	return &breakResult{durable: d, detached: b.detached, ticket: b.ticket, broken: b.broken}, nil
}

// spill moves an inline file's bytes into fresh blocks taken from the
// reservation (plan asks for inlineBlocks of them), zeroed past the end
// and flushed, within the operation's own commit.
func (b *breaker) spill() error {
	s, in := b.s, b.in
	data := in.data
	for fb, n := uint64(0), s.blocksFor(int64(len(data))); n > 0; {
		e := b.take(n)
		if err := s.writeBlocks(e, fb, data, 0, true); err != nil {
			return err
		}
		b.t.mapOps(in, in.extents.insert(mapping{fileBlock: fb, start: e.Start, n: e.Len}))
		fb += e.Len
		n -= e.Len
	}
	s.region.Drain()
	in.inline, in.data = false, nil
	b.t.setInode(in)
	s.stats.spills.Add(1)
	return nil
}

// setInline gives an inline file the bytes data, a new slice: readers may
// still hold the old one.
func (b *breaker) setInline(data []byte) {
	b.in.data, b.in.size = data, int64(len(data))
	b.t.setInode(b.in)
}

// take hands out n fresh blocks (or fewer, contiguous) from the reservation.
func (b *breaker) take(n uint64) pmem.Extent {
	e := carve(&b.fresh, n)
	b.used = append(b.used, e)
	return e
}

// unreserveLocked is unreserve for a caller holding commitMu.
func (s *Store) unreserveLocked(exts []pmem.Extent) {
	for _, e := range exts {
		if err := s.free.Free(e); err != nil {
			s.fail(fmt.Errorf("unreserve %v: %w", e, err))
		}
	}
	if len(exts) > 0 {
		s.busy.Bump()
	}
}

// countReferencedPartial counts the partial blocks among fbs that are
// referenced and so need a copy-on-write block.
func (s *Store) countReferencedPartial(in *inode, fbs ...uint64) (n uint64) {
	seen := map[uint64]bool{}
	for _, fb := range fbs {
		if seen[fb] {
			continue
		}
		seen[fb] = true
		if _, ref, ok := s.blockReferenced(in, fb); ok && ref {
			n++
		}
	}
	return n
}

// Truncate sets the file size with the store's default break policy. See
// TruncateWith.
func (f *File) Truncate(size int64) error {
	return f.TruncateWith(context.Background(), size, BreakOptions{})
}

// TruncateWith sets the file size. Growing adds a hole. Shrinking unmaps the
// blocks past the end; growing again reads zeros there. Blocks still pinned
// are detached, waited for, or make it fail, as the policy says. Nothing
// inside the file changes before the new size is committed, so a crash
// leaves the old size with the old bytes, or the new size.
func (f *File) TruncateWith(ctx context.Context, size int64, bo BreakOptions) (err error) {
	defer func() { f.s.met.done(opTruncate, err) }()
	if err := checkRange(size, 0); err != nil {
		return f.errorf("truncate", err)
	}
	policy := f.s.policy(bo)
	err = f.s.runBreak(ctx, policy, func() (*breakResult, error) {
		bs := f.s.bs
		keep := uint64((size + bs - 1) / bs)
		tail := size % bs
		old := int64(-1) // the size before, once apply ran
		defer func() {
			if old >= 0 && old != size {
				f.notify(ChangeSize, min(old, size), -1)
			}
		}()
		return f.breakFile("truncate", busyextent.ReasonTruncate, policy,
			func(b *breaker) (uint64, uint64, uint64, error) {
				if b.in.inline {
					// Within the inline limit the bytes stay in the
					// record; past it they move into blocks first.
					if size <= f.s.inlineLimit() {
						return 0, 0, 0, nil
					}
					return 0, 0, f.s.blocksFor(b.in.size), nil
				}
				if size >= b.in.size {
					// Growing: writable windows get the new blocks backed.
					b.winNeed = f.s.windowNeed(b.in, f.s.blocksFor(b.in.size), keep)
					return 0, 0, 0, nil
				}
				var need uint64
				if tail != 0 {
					need = f.s.countReferencedPartial(b.in, keep-1)
					if b.in.windowed(keep - 1) {
						if _, ref, ok := f.s.blockReferenced(b.in, keep-1); ok && !ref {
							// Copied for the window if a block is
							// free (see shrinkTail): best effort, as
							// a follow window must never make a
							// break fail.
							b.winNeed = 1
						}
					}
				}
				// A partial tail block copied on write counts as referenced
				// for the Fail policy too.
				return keep - min(keep, boolBlock(tail != 0)), math.MaxUint64, need, nil
			},
			func(b *breaker) error {
				old = b.in.size
				if b.in.inline && size == b.in.size {
					return nil
				}
				if b.in.inline && size <= f.s.inlineLimit() {
					data := make([]byte, size)
					copy(data, b.in.data)
					b.setInline(data)
					return nil
				}
				if b.in.inline {
					if err := b.spill(); err != nil {
						return err
					}
				}
				if err := f.s.zeroPastEOF(b.in, size); err != nil {
					return err
				}
				if size < b.in.size {
					if err := b.drop(keep, math.MaxUint64); err != nil {
						return err
					}
					if tail != 0 {
						if err := b.shrinkTail(keep-1, tail); err != nil {
							return err
						}
					}
				}
				b.in.size = size
				return nil
			})
	})
	if err != nil {
		return f.errorf("truncate", err)
	}
	return nil
}

func boolBlock(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// PunchHole unmaps bytes [off, off+n) with the default break policy. See
// PunchHoleWith.
func (f *File) PunchHole(off, n int64) error {
	return f.PunchHoleWith(context.Background(), off, n, BreakOptions{})
}

// PunchHoleWith makes bytes [off, off+n) a hole: whole blocks are unmapped
// (freed, or detached while pinned) and partial blocks zeroed (copied on
// write while pinned, so the holder keeps its bytes). The size does not
// change; the part of the range past the end of the file is ignored.
func (f *File) PunchHoleWith(ctx context.Context, off, n int64, bo BreakOptions) (err error) {
	defer func() { f.s.met.done(opPunch, err) }()
	if err := checkRange(off, n); err != nil {
		return f.errorf("punch", err)
	}
	err = f.rangeBreak(ctx, "punch", busyextent.ReasonPunch, off, n, bo, (*breaker).drop)
	if err != nil {
		return f.errorf("punch", err)
	}
	return nil
}

// ZeroRange makes bytes [off, off+n) read as zeros with the default break
// policy. See ZeroRangeWith.
func (f *File) ZeroRange(off, n int64) error {
	return f.ZeroRangeWith(context.Background(), off, n, BreakOptions{})
}

// ZeroRangeWith makes bytes [off, off+n) read as zeros and keeps whole
// blocks allocated (as unwritten blocks). It never zeroes bytes a pin holder
// sees: a pinned block is detached and the file gets a fresh block instead.
// The size does not change; the part past the end of the file is ignored.
func (f *File) ZeroRangeWith(ctx context.Context, off, n int64, bo BreakOptions) (err error) {
	defer func() { f.s.met.done(opZero, err) }()
	if err := checkRange(off, n); err != nil {
		return f.errorf("zero", err)
	}
	err = f.rangeBreak(ctx, "zero", busyextent.ReasonZero, off, n, bo, (*breaker).zeroFull)
	if err != nil {
		return f.errorf("zero", err)
	}
	return nil
}

// rangeBreak is PunchHole and ZeroRange: full blocks go through whole,
// partial blocks at the edges are zeroed.
func (f *File) rangeBreak(ctx context.Context, op string, reason busyextent.Reason, off, n int64, bo BreakOptions,
	whole func(b *breaker, fb, fe uint64) error) error {
	s := f.s
	policy := s.policy(bo)
	bs := s.bs
	return s.runBreak(ctx, policy, func() (*breakResult, error) {
		var end, first, last int64 // clipped range; whole blocks [first, last)
		applied := false
		defer func() {
			if applied {
				f.notify(ChangeData, off, end-off)
			}
		}()
		return f.breakFile(op, reason, policy,
			func(b *breaker) (uint64, uint64, uint64, error) {
				end = min(off+n, b.in.size)
				if off >= end {
					return 0, 0, 0, nil
				}
				first, last = (off+bs-1)/bs, end/bs
				need := s.countReferencedPartial(b.in, partialBlocks(off, end, bs)...)
				if reason == busyextent.ReasonZero && first < last {
					for _, m := range b.in.extents.find(uint64(first), uint64(last)) {
						if !m.unwritten {
							for _, r := range s.refs.Referenced(m.region()) {
								need += r.Len
							}
						}
					}
				}
				fb, fe := s.blockSpan(off, end-off)
				if reason == busyextent.ReasonPunch && first < last {
					// Punched blocks under writable windows get fresh ones.
					b.winNeed = s.windowNeed(b.in, uint64(first), uint64(last))
				} else {
					b.winNeed = s.windowNeed(b.in, 0, 0)
				}
				return fb, fe, need, nil
			},
			func(b *breaker) error {
				if off >= end {
					return nil
				}
				applied = true
				if b.in.inline {
					// Zeros in place of the range: an inline file has
					// no blocks to punch, and reads the same.
					data := bytes.Clone(b.in.data)
					clear(data[off:end])
					b.setInline(data)
					return nil
				}
				if first < last {
					if err := whole(b, uint64(first), uint64(last)); err != nil {
						return err
					}
				}
				if first > last { // the range lies inside one block
					return b.zeroPartial(uint64(off/bs), off%bs, end-(off/bs)*bs)
				}
				if off%bs != 0 {
					if err := b.zeroPartial(uint64(off/bs), off%bs, bs); err != nil {
						return err
					}
				}
				if end%bs != 0 {
					return b.zeroPartial(uint64(end/bs), 0, end%bs)
				}
				return nil
			})
	})
}

// partialBlocks returns the blocks of [off, end) that the range covers only
// in part.
func partialBlocks(off, end, bs int64) []uint64 {
	var out []uint64
	if off%bs != 0 {
		out = append(out, uint64(off/bs))
	}
	if end%bs != 0 && (end/bs != off/bs || off%bs == 0) {
		out = append(out, uint64(end/bs))
	}
	return out
}
