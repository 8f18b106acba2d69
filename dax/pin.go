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

// The busy set groups at most busyextent.MaxRuns runs in one record: this
// fails to compile if a journal run-list record could not hold them.
const _ = uint(journal.MaxBusyRuns - busyextent.MaxRuns)

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
// to them. It is a small value, a handle: copies of it are the same pin, and
// taking and dropping one allocates nothing. The pin's record lives in a
// store-owned slab and is reused once the pin is unpinned; the handle carries
// the pin's id, a generation, so that a second Unpin, or any use of a handle
// whose record now serves another pin, fails with ErrUnpinned and never
// touches that other pin (TestStaleHandleAfterReuse).
//
// Its methods are safe for concurrent use, with one exception that is a
// use-after-unpin anyway: Bytes and Flush must not run concurrently with the
// Unpin of the same pin. The zero Pin is not a pin: Unpin and Flush return
// ErrUnpinned and Bytes returns nil.
type Pin struct {
	r     *pinRecord
	id    uint64 // the pin's id: r serves this pin while r.id holds it
	off   int64
	n     int64
	label string
}

// closedMark is set in a record's id by a forced Close: the pin's first
// Unpin then reports ErrClosed. Pin ids stay below it.
const closedMark = uint64(1) << 63

// pinRecord is the store's state of one pin. Records are kept per registry
// shard and reused: a pin's fields are written before its record is
// registered, then read by the registry's walkers under the shard lock and
// by the holder through a handle whose id matches.
type pinRecord struct {
	s *Store
	// id is the id of the pin the record serves, 0 while it serves none,
	// and the pin's id with closedMark once a forced Close invalidated it.
	// Unpin moves it to 0 with a compare-and-swap from the handle's id: the
	// one place where a handle claims its record, so exactly one Unpin of a
	// pin succeeds.
	id atomic.Uint64
	// brokenID is the newest id among the record's pins whose OnBreak was
	// called: OnBreak runs once per pin, and a record's ids only grow.
	brokenID atomic.Uint64

	pinFields
	pinID uint64 // the id of the pin last registered in the record

	// The storage of runs and bytes for a pin of one run, the common case,
	// so that such a pin allocates nothing once its record exists.
	run1   [1]pmem.Extent
	bytes1 [1][]byte

	// The registry's links, under the lock of shard shard: the shard's
	// registered pins, or its free records (through next alone).
	prev, next *pinRecord
	shard      uint8
}

// pinFields are what a pin is: written when its record is registered,
// unchanged until it is unpinned.
type pinFields struct {
	ino      uint64
	key      string
	off, n   int64
	label    string
	writable bool
	onBreak  func()
	age      time.Duration // when it was pinned: s.epoch plus age (see pinAge)
	runs     []pmem.Extent // region blocks held, file order, each physically contiguous
	bytes    [][]byte      // the pinned range, one slice per run
}

// markBroken reports whether OnBreak of pin id is still to be called, and
// records that it now is.
func (r *pinRecord) markBroken(id uint64) bool {
	for {
		v := r.brokenID.Load()
		if v >= id {
			return false
		}
		if r.brokenID.CompareAndSwap(v, id) {
			return true
		}
	}
}

// handle returns the holder's view of the pin that r now serves.
func (r *pinRecord) handle() Pin {
	return Pin{r: r, id: r.id.Load(), off: r.off, n: r.n, label: r.label}
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
func (f *File) Pin(off, n int64, opts PinOptions) (Pin, error) {
	if f.s.opts.ReadOnly {
		// A pin exists to survive layout changes, and may fill holes or
		// convert unwritten blocks: none of that belongs to a reader.
		return Pin{}, f.pinError(ErrReadOnly)
	}
	if err := checkRange(off, n); err != nil {
		return Pin{}, f.pinError(err)
	}
	if err := checkLabel(opts.Label); err != nil {
		return Pin{}, f.pinError(err)
	}
	if n == 0 {
		return Pin{}, f.pinError(fmt.Errorf("empty range: %w", ErrInvalidRange))
	}
	if p, ok := f.pinWritten(off, n, &opts); ok {
		return p, nil
	}
	return f.pinSlow(off, n, opts)
}

// pinSlow is Pin's general path, kept out of line so that the fast path's
// frame stays small.
// pinError counts a failed Pin and wraps its error.
func (f *File) pinError(err error) error {
	f.s.met.failed(opPin)
	return f.errorf("pin", err)
}

func (f *File) pinSlow(off, n int64, opts PinOptions) (Pin, error) {
	var p Pin
	err := f.s.retrySpace(context.Background(), func() (err error) {
		p, err = f.pin(off, n, opts)
		return err
	})
	if err != nil {
		return Pin{}, f.pinError(err)
	}
	return p, nil
}

func (f *File) pin(off, n int64, opts PinOptions) (Pin, error) {
	s := f.s
	if err := f.enter(true); err != nil {
		return Pin{}, err
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
		return Pin{}, serr
	}
	if err != nil {
		return Pin{}, err
	}
	return p, nil
}

// pinLocked is pin under the file's invalidate and extent-map locks. It
// returns the pin and what the commit that materialized its blocks owes.
func (f *File) pinLocked(off, n int64, opts PinOptions) (Pin, *durable, error) {
	s, in := f.s, f.in
	key := f.Key()
	in.invalMu.RLock()
	defer in.invalMu.RUnlock()
	in.mapMu.Lock()
	defer in.mapMu.Unlock()
	if err := f.live(); err != nil {
		return Pin{}, nil, err
	}
	if off+n > in.size {
		return Pin{}, nil, fmt.Errorf("range [%d,+%d) past end of file (size %d): %w", off, n, in.size, ErrInvalidRange)
	}
	spilled, err := s.spillLocked(in)
	if err != nil {
		return Pin{}, nil, err
	}
	fb, fe := s.blockSpan(off, n)
	d, err := s.materialize(in, fb, fe)
	d = chain(spilled, d)
	if err != nil {
		return Pin{}, d, err
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
				return Pin{}, d, fmt.Errorf("a block of %v already holds %d references, the most a pin may add to: %w", e, limit, ErrTooManyPins)
			}
			return Pin{}, d, err
		}
	}
	pf := pinFields{
		ino: in.ino, key: key, off: off, n: n, label: opts.Label, writable: opts.Writable,
		onBreak: opts.OnBreak, age: s.pinAge(), runs: runs,
		bytes: s.pinnedBytes(runs, off-int64(fb)*s.bs, n),
	}
	return s.pins.add(s, &pf, pinHint(runs[0].Start)), d, nil
}

// pinWritten is Pin's fast path, for a range that lies in one written
// extent: nothing needs to be allocated, zeroed or committed, so it takes
// the file's invalidate lock shared, finds the extent in the file's pin
// cache (or, on a miss, in the extent map under mapMu, and caches it),
// takes the references and registers the pin, with no allocation once the
// shard has a free record, and no store-wide lock but the registry shard's
// (see pinRegistry.pinOne). It returns ok false, having changed nothing, whenever the general
// path must run instead, which then also reports any error.
func (f *File) pinWritten(off, n int64, opts *PinOptions) (p Pin, ok bool) {
	s, in := f.s, f.in
	if f.closed.Load() {
		return Pin{}, false
	}
	in.invalMu.RLock()
	defer in.invalMu.RUnlock()
	fb, fe := s.blockSpan(off, n)
	m, size, hit := in.pinCache.load()
	if !hit || off+n > size || fb < m.fileBlock || m.fileEnd() < fe {
		in.mapMu.Lock()
		if in.removed || off+n > in.size {
			in.mapMu.Unlock()
			return Pin{}, false
		}
		m, hit = in.extents.at(fb)
		if !hit || m.unwritten || m.fileEnd() < fe {
			in.mapMu.Unlock()
			return Pin{}, false
		}
		in.pinCache.store(m, in.size)
		in.mapMu.Unlock()
	}
	run := pmem.Extent{Start: m.start + pmem.Block(fb-m.fileBlock), Len: fe - fb}
	skip := off - int64(fb)*s.bs
	pf := pinFields{
		ino: in.ino, key: in.name(), off: off, n: n, label: opts.Label, writable: opts.Writable,
		onBreak: opts.OnBreak, age: s.pinAge(),
	}
	// Registered before the invalidate lock is dropped, so that a break
	// that detaches these blocks finds the pin (labels, OnBreak).
	return s.pins.pinOne(s, &pf, run, skip)
}

// pinCache remembers one written extent of a file and a size the file has
// at least, for Pin's fast path: a pin inside it needs neither mapMu nor
// the extent map. It is written under mapMu and read with no lock, as a
// sequence lock of atomics. What it says stays true until a layout-breaking
// operation, the only one that takes written blocks from a file, removes
// it or shrinks it, and that operation clears the cache under every file
// lock (inode.lockAll); a reader holds the invalidate lock shared, so no
// such operation runs between its reading the cache and registering its
// pin.
type pinCache struct {
	seq       atomic.Uint64 // odd while a writer changes the fields
	fileBlock atomic.Uint64
	start     atomic.Uint64
	blocks    atomic.Uint64 // 0: nothing cached
	size      atomic.Int64
}

// load returns the cached extent and size; ok is false when nothing is
// cached or a writer is at work.
func (c *pinCache) load() (m mapping, size int64, ok bool) {
	seq := c.seq.Load()
	if seq&1 != 0 {
		return mapping{}, 0, false
	}
	m = mapping{fileBlock: c.fileBlock.Load(), start: pmem.Block(c.start.Load()), n: c.blocks.Load()}
	size = c.size.Load()
	return m, size, m.n != 0 && c.seq.Load() == seq
}

// store caches written extent m and size. mapMu must be held.
func (c *pinCache) store(m mapping, size int64) {
	c.seq.Add(1)
	c.fileBlock.Store(m.fileBlock)
	c.start.Store(uint64(m.start))
	c.blocks.Store(m.n)
	c.size.Store(size)
	c.seq.Add(1)
}

// clear forgets the cached extent. mapMu must be held.
func (c *pinCache) clear() {
	c.seq.Add(1)
	c.blocks.Store(0)
	c.seq.Add(1)
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
func (p Pin) Bytes() [][]byte {
	if p.r == nil || p.r.id.Load() != p.id {
		return nil
	}
	return p.r.bytes
}

// Flush makes stores made through the pin's slices durable.
func (p Pin) Flush() error {
	r := p.r
	if r == nil {
		return fmt.Errorf("daxstore: flush pin: %w", ErrUnpinned)
	}
	switch r.id.Load() {
	case p.id:
	case p.id | closedMark:
		// A forced Close invalidated the pin: report the closed store,
		// as Unpin does, unless the holder unpinned first.
		return fmt.Errorf("daxstore: flush pin %q: %w", p.label, ErrClosed)
	default:
		return fmt.Errorf("daxstore: flush pin %q: %w", p.label, ErrUnpinned)
	}
	s := r.s
	if r.writable {
		// Stores through the pin are reported here, after end: they may
		// have reached the file whether or not the flush succeeds.
		defer s.notify(FileChange{Kind: ChangeData, Key: r.key, Ino: r.ino, Off: r.off, Len: r.n})
	}
	if err := s.begin(false); err != nil {
		return fmt.Errorf("daxstore: flush pin %q: %w", p.label, err)
	}
	defer s.end()
	var errs []error
	for _, e := range r.runs {
		errs = append(errs, s.region.Flush(e))
	}
	s.region.Drain()
	return errors.Join(errs...)
}

// Unpin releases the pin. Blocks that the file detached meanwhile are freed
// once their last pin drops. A second Unpin returns ErrUnpinned and changes
// nothing, whether or not the store was closed in between, and so does the
// Unpin of a copy of an unpinned handle even after its record serves a new
// pin; the first Unpin of a pin that a forced Close invalidated returns
// ErrClosed.
func (p Pin) Unpin() error {
	r := p.r
	if r == nil {
		return fmt.Errorf("daxstore: unpin: %w", ErrUnpinned)
	}
	var stored FileChange // a writable pin's range, for watchers
	err := r.s.pins.unpin(r, p.id, &stored)
	r.s.notify(stored)
	if err != nil {
		r.s.met.failed(opUnpin)
	}
	switch {
	case err == errPinClosed:
		return fmt.Errorf("daxstore: unpin %q: %w", p.label, ErrClosed)
	case err == errPinGone:
		return fmt.Errorf("daxstore: unpin %q: %w", p.label, ErrUnpinned)
	case err != nil:
		return fmt.Errorf("daxstore: unpin %q: %w", p.label, err)
	}
	return nil
}

// releaseRuns drops one reference from each of runs.
func (s *Store) releaseRuns(runs []pmem.Extent) error {
	var errs []error
	for _, e := range runs {
		if err := s.refs.Release(e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Label returns the pin's label.
func (p Pin) Label() string { return p.label }

// Offset returns the offset of the pinned file range.
func (p Pin) Offset() int64 { return p.off }

// Len returns the number of pinned bytes.
func (p Pin) Len() int64 { return p.n }

// PinInfo describes a pin for inspection.
type PinInfo struct {
	// ID identifies the pin in the process that holds it.
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
	// Mode is "pin", "pinned window" or "follow window" (which holds no
	// blocks and has ID 0).
	Mode string `json:"mode"`
	// Pieces is the slices of a pin, or the mappings of a window.
	Pieces int `json:"pieces"`
}

// info describes the pin that r serves. The caller holds r's shard lock, so
// that r is not reused meanwhile.
func (r *pinRecord) info() PinInfo {
	s := r.s
	pi := PinInfo{ID: r.pinID, Key: r.key, Ino: r.ino, Offset: r.off, Length: r.n, Label: r.label, Writable: r.writable, Created: s.epoch.Add(r.age)}
	for _, e := range r.runs {
		pi.Blocks += e.Len
		for _, x := range s.busy.Overlapping(e) {
			if c, ok := x.Extent.Intersect(e); ok {
				pi.Detached += c.Len
			}
		}
	}
	return pi
}

// pinsOn describes the pins holding any block of e.
func (s *Store) pinsOn(e pmem.Extent) []PinInfo {
	var out []PinInfo
	s.pins.each(func(r *pinRecord) {
		for _, x := range r.runs {
			if x.Overlaps(e) {
				out = append(out, r.info())
				break
			}
		}
	})
	return out
}
