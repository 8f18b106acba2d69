package dax

// Pins: long-term, zero-copy references to a file's bytes in the region.
// A pinned block is never freed or reused while the pin holds it, even
// after the file lets go of it.

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/daxstore/daxstore/busyextent"
	"github.com/daxstore/daxstore/journal"
	"github.com/daxstore/daxstore/pageref"
	"github.com/daxstore/daxstore/pmem"
)

// MaxLabelLen is the longest pin label, in bytes: the longest a journal
// busy record stores.
const MaxLabelLen = journal.MaxLabelLen

// MaxPinsPerBlock is the most pins that may hold one region block at once;
// a pin beyond it fails with ErrTooManyPins. It sits 2^20 below the widest
// count a block's reference word holds (2^31-1), so the short references
// that reads and writes take still succeed on a block at the limit.
const MaxPinsPerBlock = pageref.MaxCount - 1<<20

// A busy extent keeps at most busyextent.MaxLabels labels, and a break
// journals them in one record: this fails to compile if a record could not
// hold them.
const _ = uint(journal.MaxLabels - busyextent.MaxLabels)

// checkLabel reports why label is not a valid pin label, or nil.
func checkLabel(label string) error {
	switch {
	case len(label) > MaxLabelLen:
		return fmt.Errorf("label of %d bytes, limit %d: %w", len(label), MaxLabelLen, ErrInvalidLabel)
	case !utf8.ValidString(label):
		return fmt.Errorf("label %q is not UTF-8: %w", label, ErrInvalidLabel)
	}
	return nil
}

// Pin holds region blocks of one file range alive and gives zero-copy access
// to them. Its methods are safe for concurrent use.
type Pin struct {
	s        *Store
	id       uint64
	ino      uint64
	key      string
	off, n   int64
	label    string
	writable bool
	onBreak  func()
	age      time.Duration // when it was pinned: s.epoch plus age (see pinAge)
	runs     []pmem.Extent // region blocks held, file order, each physically contiguous
	bytes    [][]byte      // the pinned range, one slice per run

	// The storage of runs and bytes for a pin of one run, the common case,
	// so that such a pin costs one allocation.
	run1   [1]pmem.Extent
	bytes1 [1][]byte

	released atomic.Bool // Unpin ran, or a forced Close invalidated the pin
	unpinned atomic.Bool // the holder called Unpin
	broken   atomic.Bool // OnBreak was called

	// The registry's links, under the lock of shard shard.
	prev, next *Pin
	shard      uint8
}

// Pin pins bytes [off, off+n) of the file, which must lie inside it. Holes
// in the range are first filled with zeroed blocks, and unwritten blocks are
// zeroed, so the holder only ever sees the file's bytes or zeros. Pins are
// taken under the file's invalidate lock, so they are atomic with respect
// to truncate, punch and zero-range: a pin sees the layout either before or
// after them, never in between.
//
// A label that is not UTF-8 or longer than MaxLabelLen fails with
// ErrInvalidLabel, and a pin that would take a block past MaxPinsPerBlock
// fails with ErrTooManyPins; neither takes a reference.
func (f *File) Pin(off, n int64, opts PinOptions) (*Pin, error) {
	if f.s.opts.ReadOnly {
		// A pin exists to survive layout changes, and may fill holes or
		// convert unwritten blocks: none of that belongs to a reader.
		return nil, f.errorf("pin", ErrReadOnly)
	}
	if err := checkRange(off, n); err != nil {
		return nil, f.errorf("pin", err)
	}
	if err := checkLabel(opts.Label); err != nil {
		return nil, f.errorf("pin", err)
	}
	if n == 0 {
		return nil, f.errorf("pin", fmt.Errorf("empty range: %w", ErrInvalidRange))
	}
	if p := f.pinWritten(off, n, opts); p != nil {
		return p, nil
	}
	var p *Pin
	err := f.s.retrySpace(context.Background(), func() (err error) {
		p, err = f.pin(off, n, opts)
		return err
	})
	if err != nil {
		return nil, f.errorf("pin", err)
	}
	return p, nil
}

func (f *File) pin(off, n int64, opts PinOptions) (*Pin, error) {
	s := f.s
	if err := f.enter(true); err != nil {
		return nil, err
	}
	defer s.end()
	p, d, err := f.pinLocked(off, n, opts)
	// The blocks a hole got are mapped (and pinned) already; the pin is
	// handed out once their commit is durable, waited for with no lock of
	// the file held. A commit is settled even when the pin then failed.
	// Should the wait fail, the store has failed: drop the pin, which
	// nobody has seen.
	if serr := s.settle(d); serr != nil && err == nil {
		_ = p.Unpin()
		return nil, serr
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// pinLocked is pin under the file's invalidate and extent-map locks. It
// returns the pin and what the commit that materialized its blocks owes.
func (f *File) pinLocked(off, n int64, opts PinOptions) (*Pin, *durable, error) {
	s, in := f.s, f.in
	key := f.Key()
	in.invalMu.RLock()
	defer in.invalMu.RUnlock()
	in.mapMu.Lock()
	defer in.mapMu.Unlock()
	if err := f.live(); err != nil {
		return nil, nil, err
	}
	if off+n > in.size {
		return nil, nil, fmt.Errorf("range [%d,+%d) past end of file (size %d): %w", off, n, in.size, ErrInvalidRange)
	}
	spilled, err := s.spillLocked(in)
	if err != nil {
		return nil, nil, err
	}
	fb, fe := s.blockSpan(off, n)
	d, err := s.materialize(in, fb, fe)
	d = chain(spilled, d)
	if err != nil {
		return nil, d, err
	}
	var runs []pmem.Extent
	for _, m := range in.extents.find(fb, fe) {
		e := m.region()
		if k := len(runs) - 1; k >= 0 && runs[k].End() == e.Start {
			runs[k].Len += e.Len
		} else {
			runs = append(runs, e)
		}
	}
	limit := s.pins.perBlock()
	for i, e := range runs {
		if err := s.refs.AcquireUpTo(e, limit); err != nil {
			for _, held := range runs[:i] {
				_ = s.refs.Release(held)
			}
			if errors.Is(err, pageref.ErrTooManyRefs) {
				return nil, d, fmt.Errorf("a block of %v already holds %d references, the most a pin may add to: %w", e, limit, ErrTooManyPins)
			}
			return nil, d, err
		}
	}
	p := &Pin{
		s: s, ino: in.ino, key: key, off: off, n: n, label: opts.Label, writable: opts.Writable,
		onBreak: opts.OnBreak, age: s.pinAge(), runs: runs,
	}
	p.bytes = s.pinnedBytes(runs, off-int64(fb)*s.bs, n)
	s.pins.add(p, pinHint(runs[0].Start))
	return p, d, nil
}

// pinWritten is Pin's fast path, for a range that lies in one written
// extent: nothing needs to be allocated, zeroed or committed, so it takes
// the file's invalidate lock shared, looks the extent up, takes the
// references and registers the pin, with one allocation and no store-wide
// lock but quiesce. It returns nil, having changed nothing, whenever the
// general path must run instead, which then also reports any error.
func (f *File) pinWritten(off, n int64, opts PinOptions) *Pin {
	s, in := f.s, f.in
	if f.closed.Load() {
		return nil
	}
	in.invalMu.RLock()
	defer in.invalMu.RUnlock()
	in.mapMu.Lock()
	if in.removed || off+n > in.size {
		in.mapMu.Unlock()
		return nil
	}
	fb, fe := s.blockSpan(off, n)
	m, ok := in.extents.at(fb)
	if !ok || m.unwritten || m.fileEnd() < fe {
		in.mapMu.Unlock()
		return nil
	}
	key := in.name()
	in.mapMu.Unlock()
	run := pmem.Extent{Start: m.start + pmem.Block(fb-m.fileBlock), Len: fe - fb}
	hint := pinHint(run.Start)
	// The gate, not quiesce, keeps Close and Check out: its shards spread
	// pins on different cores over different cache lines. Taking it after
	// the invalidate lock is safe: its only exclusive holders, Close and
	// Check, take no file lock.
	gate := s.pinGate.rlock(hint)
	defer gate.RUnlock()
	if s.closed.Load() || s.hasFailed.Load() {
		return nil
	}
	// Only a layout-breaking operation, which needs the invalidate lock
	// exclusive, can take these written blocks from the file: the
	// references need not be taken under mapMu.
	if s.refs.AcquireUpTo(run, s.pins.perBlock()) != nil {
		return nil
	}
	p := &Pin{
		s: s, ino: in.ino, key: key, off: off, n: n, label: opts.Label, writable: opts.Writable,
		onBreak: opts.OnBreak, age: s.pinAge(),
	}
	skip := off - int64(fb)*s.bs
	p.run1[0] = run
	p.bytes1[0] = s.region.Bytes(run)[skip : skip+n : skip+n]
	p.runs, p.bytes = p.run1[:], p.bytes1[:]
	// Registered before the invalidate lock is dropped, so that a break
	// that detaches these blocks finds the pin (labels, OnBreak).
	s.pins.add(p, hint)
	return p
}

// pinAge returns the time since the store was opened, for a pin's creation
// time. It reads only the monotonic clock, half the cost of time.Now, which
// Pin's fast path feels.
func (s *Store) pinAge() time.Duration { return time.Since(s.epoch) }

// materialize makes every block of file blocks [fb, fe) written: holes get
// new zeroed blocks, unwritten blocks are zeroed, both flushed before the
// commit that maps them. The extent-map lock must be held; the caller
// settles the returned commit after releasing it.
func (s *Store) materialize(in *inode, fb, fe uint64) (*durable, error) {
	pieces := in.extents.find(fb, fe)
	gaps := holes(pieces, fb, fe)
	t := s.newTxn()
	if err := s.fillHoles(t, in, gaps, false, func(e pmem.Extent, _ uint64) error { return s.zeroBlocks(e) }); err != nil {
		t.b.Close()
		return nil, err
	}
	changed := len(gaps) > 0
	for _, m := range pieces {
		if !m.unwritten {
			continue
		}
		if err := s.zeroBlocks(m.region()); err != nil {
			t.b.Close()
			return nil, s.poisonCause(err)
		}
		t.markWritten(in, m)
		changed = true
	}
	if !changed {
		t.b.Close()
		return nil, nil
	}
	s.region.Drain()
	in.mtime = time.Now()
	t.setInode(in)
	return s.commit(t)
}

// zeroBlocks zeroes region blocks e and flushes them.
func (s *Store) zeroBlocks(e pmem.Extent) error {
	if err := pmem.Clear(s.region.Bytes(e)); err != nil {
		return err
	}
	return s.region.Flush(e)
}

// poison fails the store after an error that left memory ahead of the
// journal.
func (s *Store) poison(err error) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	return s.fail(err)
}

// pinnedBytes slices the pinned range out of runs: skip bytes off the front
// of the first run, n bytes in all.
func (s *Store) pinnedBytes(runs []pmem.Extent, skip, n int64) [][]byte {
	out := make([][]byte, 0, len(runs))
	for _, e := range runs {
		b := s.region.Bytes(e)
		b = b[min(skip, int64(len(b))):]
		skip = max(0, skip-int64(len(s.region.Bytes(e))))
		b = b[:min(n, int64(len(b)))]
		n -= int64(len(b))
		if len(b) > 0 {
			out = append(out, b[:len(b):len(b)])
		}
	}
	return out
}

// Bytes returns the pinned bytes as zero-copy slices of the region, one per
// physically contiguous run, in file order, covering exactly the pinned
// range. Stores into them through a Writable pin reach the region; call
// Flush to make them durable. After Unpin it returns nil: the slices must
// not be used after Unpin.
func (p *Pin) Bytes() [][]byte {
	if p.released.Load() {
		return nil
	}
	return p.bytes
}

// Flush makes stores made through the pin's slices durable.
func (p *Pin) Flush() error {
	if p.released.Load() {
		// A forced Close also marks its pins released: report the closed
		// store, as Unpin does, unless the holder unpinned first.
		if !p.unpinned.Load() && p.s.closed.Load() {
			return fmt.Errorf("daxstore: flush pin %q: %w", p.label, ErrClosed)
		}
		return fmt.Errorf("daxstore: flush pin %q: %w", p.label, ErrUnpinned)
	}
	if err := p.s.begin(false); err != nil {
		return fmt.Errorf("daxstore: flush pin %q: %w", p.label, err)
	}
	defer p.s.end()
	var errs []error
	for _, e := range p.runs {
		errs = append(errs, p.s.region.Flush(e))
	}
	p.s.region.Drain()
	return errors.Join(errs...)
}

// Unpin releases the pin. Blocks that the file detached meanwhile are freed
// once their last pin drops. A second Unpin returns ErrUnpinned and changes
// nothing, whether or not the store was closed in between; the first Unpin
// of a pin that a forced Close invalidated returns ErrClosed.
func (p *Pin) Unpin() error {
	s := p.s
	// The pin gate, held shared, keeps Check from seeing a pin half
	// released: references dropped but still registered.
	gate := s.pinGate.rlock(pinHint(p.runs[0].Start))
	defer gate.RUnlock()
	if p.unpinned.Swap(true) {
		return fmt.Errorf("daxstore: unpin %q: %w", p.label, ErrUnpinned)
	}
	if !p.released.CompareAndSwap(false, true) {
		return fmt.Errorf("daxstore: unpin %q: %w", p.label, ErrClosed)
	}
	// Drop the references before leaving the registry: a Close waiting for
	// the last pin then finds every release already queued, and commits it
	// before it closes the journal.
	var errs []error
	for _, e := range p.runs {
		if err := s.refs.Release(e); err != nil {
			errs = append(errs, err)
		}
	}
	s.pins.remove(p)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("daxstore: unpin %q: %w", p.label, err)
	}
	return nil
}

// Label returns the pin's label.
func (p *Pin) Label() string { return p.label }

// Offset and Len return the pinned file range.
func (p *Pin) Offset() int64 { return p.off }

// Len returns the number of pinned bytes.
func (p *Pin) Len() int64 { return p.n }

// PinInfo describes a pin for inspection.
type PinInfo struct {
	ID       uint64    `json:"id"`
	Key      string    `json:"key"` // the key when pinned
	Ino      uint64    `json:"ino"`
	Offset   int64     `json:"offset"`
	Length   int64     `json:"length"`
	Label    string    `json:"label"`
	Writable bool      `json:"writable"`
	Created  time.Time `json:"created"`
	Blocks   uint64    `json:"blocks"`   // region blocks held
	Detached uint64    `json:"detached"` // of those, blocks the file no longer owns (busy)
}

func (p *Pin) info() PinInfo {
	pi := PinInfo{ID: p.id, Key: p.key, Ino: p.ino, Offset: p.off, Length: p.n, Label: p.label, Writable: p.writable, Created: p.s.epoch.Add(p.age)}
	for _, e := range p.runs {
		pi.Blocks += e.Len
		for _, x := range p.s.busy.Overlapping(e) {
			if c, ok := x.Extent.Intersect(e); ok {
				pi.Detached += c.Len
			}
		}
	}
	return pi
}

// pinsOn returns the pins holding any block of e.
func (s *Store) pinsOn(e pmem.Extent) []*Pin {
	var out []*Pin
	s.pins.each(func(p *Pin) {
		for _, r := range p.runs {
			if r.Overlaps(e) {
				out = append(out, p)
				break
			}
		}
	})
	return out
}
