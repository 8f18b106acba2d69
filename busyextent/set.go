package busyextent

// This file exists to hold the busy extents themselves: the ordered set, its
// trimming and overlap queries, and the journal delta of every change.

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"

	"github.com/daxstore/daxstore/pmem"
)

// Extent is a run of busy blocks together with what they were at detach time:
// the file that owned them, where in that file they sat, why they were
// detached and which pins held them.
type Extent struct {
	pmem.Extent           // the region blocks
	Ticket      uint64    // the operation that detached it (NewTicket); 0 for none. Not journaled
	Key         string    // owning key at detach time
	Ino         uint64    // owning inode at detach time
	FileBlock   uint64    // file block that Start was mapped at
	Reason      Reason    // the operation that detached the blocks
	DetachedAt  time.Time // when the blocks were detached
	Pins        uint64    // pins holding it at detach time
	// Labels holds the distinct labels of those pins, in the order first
	// seen, at most MaxLabels of them: a record of any number of pins stays
	// bounded. Pins beyond what Labels names are counted only.
	Labels []string
}

// MaxLabels is the most distinct labels an Extent keeps. It must not exceed
// what one journal busy record holds (dax checks this at compile time).
const MaxLabels = 64

// AddPin counts one more pin holding x, labelled label: Pins grows by one,
// and label joins Labels unless it is there already or Labels is full. It
// costs at most MaxLabels string comparisons, so labelling an extent with
// n pins is O(n).
func (x *Extent) AddPin(label string) {
	x.Pins++
	if len(x.Labels) < MaxLabels && !slices.Contains(x.Labels, label) {
		x.Labels = append(x.Labels, label)
	}
}

// clone returns x with its own copy of Labels, so that neither the caller nor
// the set can change the other's extent.
func (x Extent) clone() Extent {
	x.Labels = slices.Clone(x.Labels)
	return x
}

// piece returns the part e of x, which must lie inside x, keeping x's owner,
// reason, time and labels and moving FileBlock by e's offset into x.
func (x Extent) piece(e pmem.Extent) Extent {
	x.FileBlock += uint64(e.Start - x.Start)
	x.Extent = e
	return x
}

// String formats the extent with its reason and owner, for error messages
// and logs; labels and time are left out.
func (x Extent) String() string {
	return fmt.Sprintf("%v %s key=%q ino=%d fileblock=%d", x.Extent, x.Reason, x.Key, x.Ino, x.FileBlock)
}

// MaxRuns is the most runs one journal busy record holds (a Record). A break
// that detaches more runs than that, or runs of more than MaxLabels distinct
// labels, is journaled as several records. The bound trades the break, which
// writes one record per MaxRuns runs, against each release batch, which
// rewrites every record it shrinks whole: with 64, a punch of 1 GiB with 1%
// pinned writes 41 records instead of 2,622, and releasing its pins one at
// a time costs about 2.5x what a record per run cost (16-20 ms against 7 ms
// for 656 pins; 1,024 runs a record made it 80-90 ms). It must not exceed
// what one journal run-list record holds (dax checks this at compile time).
const MaxRuns = 64

// Run is one run of a Record: the region blocks, the file block that Start
// was mapped at, and the pins that held it.
type Run struct {
	pmem.Extent
	// FileBlock is the file block Start was mapped at.
	FileBlock uint64
	// Pins counts the pins that hold the run.
	Pins   uint64
	Labels []string // at most MaxLabels, no more than Pins
}

// Record is one journal busy record: runs detached from one owner by one
// operation at one time, in start order and not overlapping, at most
// MaxRuns of them with at most MaxLabels distinct labels among them. It is
// keyed in the journal by the start of its first run.
type Record struct {
	Ticket     uint64 // not journaled
	Key        string
	Ino        uint64
	Reason     Reason
	DetachedAt time.Time
	Runs       []Run
}

// extent returns run i of r as an Extent.
func (r *Record) extent(i int) Extent {
	u := r.Runs[i]
	return Extent{Extent: u.Extent, Ticket: r.Ticket, Key: r.Key, Ino: r.Ino, FileBlock: u.FileBlock,
		Reason: r.Reason, DetachedAt: r.DetachedAt, Pins: u.Pins, Labels: u.Labels}
}

// find returns the index of the run of r starting at b, or -1.
func (r *Record) find(b pmem.Block) int {
	i, ok := slices.BinarySearchFunc(r.Runs, b, func(u Run, b pmem.Block) int { return cmp.Compare(u.Start, b) })
	if !ok {
		return -1
	}
	return i
}

// sameOwner reports whether x can join record r: same owner, reason, time
// and ticket.
func (r *Record) sameOwner(x *Extent) bool {
	return r.Ticket == x.Ticket && r.Key == x.Key && r.Ino == x.Ino && r.Reason == x.Reason && r.DetachedAt.Equal(x.DetachedAt)
}

// Delta maps a change of the set onto journal busy records: delete the
// record under each key of Deleted, then write every record of Written
// (keyed by the start of its first run), replacing any record under that
// key. Applying every Delta a Set returns, in order, to a copy of the
// journaled records keeps that copy's runs equal to Set.All and its record
// count equal to Set.Records (TestRandomOpsMatchBlockModel proves it). The
// records of Written share their runs and labels with the set: read them,
// do not change them.
type Delta struct {
	// Deleted are the keys (first-run starts) of the records to delete.
	Deleted []pmem.Block
	// Written are the records to write, each under its first run's start.
	Written []Record
}

// Empty reports whether d changes no record.
func (d Delta) Empty() bool { return len(d.Deleted) == 0 && len(d.Written) == 0 }

// item is one busy run in the set's tree, with the record that holds it.
type item struct {
	pmem.Extent
	rec *Record
}

// extent returns the busy extent of it, sharing its labels with the set.
func (it item) extent() Extent {
	return it.rec.extent(it.rec.find(it.Start))
}

// Set is the busy set: non-overlapping extents ordered by start, each held
// by one journal record (a run list; see Record). Neighbours are never
// coalesced, because each extent keeps its own owner. A Set is safe for
// concurrent use; the zero Set is not usable, call NewSet.
type Set struct {
	// mu protects tree, blocks, records and wake, and makes each
	// generation bump and the close of wake one step, which is what keeps
	// Wait free of lost wakeups.
	mu      sync.Mutex
	tree    *btree.BTreeG[item] // busy runs by Start; none empty, none overlapping (Check)
	blocks  uint64              // sum of Len over tree
	records int                 // records holding the runs of tree
	wake    chan struct{}       // closed by the next bump; nil until a waiter needs it

	gen     atomic.Uint64 // the generation; written only with mu held, read without it
	waiters atomic.Int64  // goroutines inside Wait or WaitReleased
	tickets atomic.Uint64 // the last ticket NewTicket handed out
}

// btreeDegree trades node size against depth; busy sets are usually small,
// and 16 keeps a node of items within a few cache-friendly kilobytes.
const btreeDegree = 16

// NewSet returns an empty busy set at generation 0.
func NewSet() *Set {
	return &Set{tree: btree.NewG(btreeDegree, func(a, b item) bool { return a.Start < b.Start })}
}

// validate reports why e can never be a busy extent: it is empty, or its end
// does not fit in a block number.
func validate(e pmem.Extent) error {
	if e.Len == 0 {
		return fmt.Errorf("empty extent: %w", ErrInvalid)
	}
	if e.End() <= e.Start {
		return fmt.Errorf("extent at block %d of %d blocks runs past the last block number: %w", e.Start, e.Len, ErrInvalid)
	}
	return nil
}

// at returns the search key for an extent starting at b.
func at(b pmem.Block) item { return item{Extent: pmem.Extent{Start: b}} }

// visit calls fn in start order for every busy run that overlaps e, which
// must be valid, until fn returns false. s.mu must be held, and fn must not
// change the tree.
func (s *Set) visit(e pmem.Extent, fn func(item) bool) {
	more := true
	// Only the last run starting before e can reach into it: runs do not
	// overlap, so every earlier one ends before that one starts.
	s.tree.DescendLessOrEqual(at(e.Start), func(x item) bool {
		if x.Start < e.Start && x.End() > e.Start {
			more = fn(x)
		}
		return false
	})
	if !more {
		return
	}
	end := e.End()
	s.tree.AscendGreaterOrEqual(at(e.Start), func(x item) bool {
		return x.Start < end && fn(x)
	})
}

// firstFree returns the first block of e, which must be valid, that is not
// busy; ok is false when every block of e is busy. s.mu must be held.
func (s *Set) firstFree(e pmem.Extent) (b pmem.Block, ok bool) {
	next := e.Start
	s.visit(e, func(x item) bool {
		if x.Start > next {
			return false
		}
		next = x.End()
		return next < e.End()
	})
	return next, next < e.End()
}

// checkAdd reports why x can never be added: an invalid extent or reason,
// or more labels than MaxLabels or than its pins.
func checkAdd(x *Extent) error {
	if err := validate(x.Extent); err != nil {
		return fmt.Errorf("busyextent: add %v: %w", x.Extent, err)
	}
	if !x.Reason.Valid() {
		return fmt.Errorf("busyextent: add %v: %v: %w", x.Extent, x.Reason, ErrInvalid)
	}
	if len(x.Labels) > MaxLabels || uint64(len(x.Labels)) > x.Pins {
		return fmt.Errorf("busyextent: add %v: %d labels for %d pins, at most %d labels: %w",
			x.Extent, len(x.Labels), x.Pins, MaxLabels, ErrInvalid)
	}
	return nil
}

// Add makes the blocks of x busy and returns the journal records to write;
// see AddRuns, of which it is the single-extent case.
func (s *Set) Add(x Extent) (Delta, error) {
	return s.AddRuns([]Extent{x})
}

// AddRuns makes the blocks of every extent of xs busy in one step and
// returns the journal records to write: the extents of one owner, reason,
// time and ticket share records, up to MaxRuns runs and MaxLabels distinct
// labels each, so a break that detaches many scattered runs writes a
// handful of records, not one per run. Each extent must be non-empty, fit
// in the block numbers, carry a valid Reason, hold at most MaxLabels labels
// and no more than Pins, and overlap neither another of xs nor a busy
// block; otherwise AddRuns returns an error wrapping ErrInvalid or
// ErrOverlap and changes nothing. Neighbours are not coalesced, because
// their owners differ. The set keeps its own copy of the labels, one per
// distinct label slice of xs, so runs that share a slice share the copy.
// AddRuns does not change the generation: no space came back.
func (s *Set) AddRuns(xs []Extent) (Delta, error) {
	for i := range xs {
		if err := checkAdd(&xs[i]); err != nil {
			return Delta{}, err
		}
	}
	if len(xs) == 0 {
		return Delta{}, nil
	}
	byStart := func(a, b Extent) int { return cmp.Compare(a.Start, b.Start) }
	sorted := xs
	if !slices.IsSortedFunc(xs, byStart) {
		sorted = slices.Clone(xs)
		slices.SortStableFunc(sorted, byStart)
	}
	for i := 1; i < len(sorted); i++ {
		if sorted[i-1].Overlaps(sorted[i].Extent) {
			return Delta{}, fmt.Errorf("busyextent: add %v and %v: runs overlap: %w", sorted[i-1].Extent, sorted[i].Extent, ErrOverlap)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range sorted {
		x := &sorted[i]
		var clash item
		found := false
		s.visit(x.Extent, func(y item) bool {
			clash, found = y, true
			return false
		})
		if found {
			return Delta{}, fmt.Errorf("busyextent: add %v of key %q: busy as %v: %w", x.Extent, x.Key, clash.extent(), ErrOverlap)
		}
	}

	type slice struct {
		first *string
		n     int
	}
	copies := map[slice][]string{} // the set's copy of each distinct label slice
	var (
		d        Delta
		rec      *Record
		distinct []string // distinct labels of rec
	)
	flush := func() {
		if rec != nil {
			s.records++
			d.Written = append(d.Written, *rec)
		}
	}
	for i := range sorted {
		x := &sorted[i]
		labels := x.Labels
		if len(labels) > 0 {
			k := slice{&labels[0], len(labels)}
			c, ok := copies[k]
			if !ok {
				c = slices.Clone(labels)
				copies[k] = c
			}
			labels = c
		} else {
			labels = nil
		}
		// Labels that would join rec's distinct ones.
		fresh := 0
		for _, l := range labels {
			if !slices.Contains(distinct, l) {
				fresh++
			}
		}
		if rec == nil || !rec.sameOwner(x) || len(rec.Runs) == MaxRuns || len(distinct)+fresh > MaxLabels {
			flush()
			rec = &Record{Ticket: x.Ticket, Key: x.Key, Ino: x.Ino, Reason: x.Reason, DetachedAt: x.DetachedAt,
				Runs: make([]Run, 0, min(len(sorted)-i, MaxRuns))}
			distinct = distinct[:0]
		}
		for _, l := range labels {
			if !slices.Contains(distinct, l) {
				distinct = append(distinct, l)
			}
		}
		rec.Runs = append(rec.Runs, Run{Extent: x.Extent, FileBlock: x.FileBlock, Pins: x.Pins, Labels: labels})
		s.tree.ReplaceOrInsert(item{Extent: x.Extent, rec: rec})
		s.blocks += x.Len
	}
	flush()
	return d, nil
}

// Remove makes the blocks of e free of the busy set; see RemoveRuns, of which
// it is the single-run case.
func (s *Set) Remove(e pmem.Extent) (released []Extent, d Delta, err error) {
	return s.RemoveRuns([]pmem.Extent{e})
}

// recordChange is what one RemoveRuns call does to one record.
type recordChange struct {
	gone  []pmem.Block // starts of the record's runs removed, ascending
	added []Run        // pieces of its runs that stay, ascending
}

// RemoveRuns removes the blocks of every run from the busy set in one step.
// A run may span several busy extents but every block of every run must be
// busy, and no two runs may overlap; otherwise RemoveRuns returns an error
// wrapping ErrNotBusy or ErrInvalid and changes nothing. Partly covered busy
// extents are trimmed or split: the pieces that stay keep their owner,
// reason, time and labels, with FileBlock moved by their offset.
//
// released holds the removed pieces in start order, each with its owner and
// adjusted FileBlock. d rewrites each record that lost runs once, net of the
// whole call: deleted when it has none left, else written with the runs it
// keeps (and its old key deleted when its first run went). Unless runs is
// empty, RemoveRuns bumps the generation and wakes every Wait and
// WaitReleased. The released extents are the caller's to keep.
func (s *Set) RemoveRuns(runs []pmem.Extent) (released []Extent, d Delta, err error) {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b pmem.Extent) int { return cmp.Compare(a.Start, b.Start) })
	for i, r := range sorted {
		if err := validate(r); err != nil {
			return nil, Delta{}, fmt.Errorf("busyextent: remove %v: %w", r, err)
		}
		if i > 0 && sorted[i-1].Overlaps(r) {
			return nil, Delta{}, fmt.Errorf("busyextent: remove %v and %v: runs overlap: %w", sorted[i-1], r, ErrInvalid)
		}
	}
	if len(sorted) == 0 {
		return nil, Delta{}, nil
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range sorted {
		if b, free := s.firstFree(r); free {
			return nil, Delta{}, fmt.Errorf("busyextent: remove %v: block %d: %w", r, b, ErrNotBusy)
		}
	}
	changes := map[*Record]*recordChange{}
	var touched []*Record // in order of first touch, so the delta is deterministic
	var hit []item
	for _, r := range sorted {
		hit = hit[:0]
		s.visit(r, func(x item) bool {
			hit = append(hit, x)
			return true
		})
		for _, x := range hit {
			s.tree.Delete(x)
			c := changes[x.rec]
			if c == nil {
				c = &recordChange{}
				changes[x.rec] = c
				touched = append(touched, x.rec)
			}
			// Runs go left to right, so the only piece an earlier run can
			// have cut from this record that this run touches is the right
			// remainder added last.
			var u Run
			if n := len(c.added); n > 0 && c.added[n-1].Start == x.Start {
				u = c.added[n-1]
				c.added = c.added[:n-1]
			} else {
				u = x.rec.Runs[x.rec.find(x.Start)]
				c.gone = append(c.gone, x.Start)
			}
			gone, _ := x.Intersect(r)
			released = append(released, x.rec.extentOf(u.piece(gone)))
			s.blocks -= gone.Len
			if x.Start < gone.Start {
				left := u.piece(pmem.Extent{Start: x.Start, Len: uint64(gone.Start - x.Start)})
				s.tree.ReplaceOrInsert(item{Extent: left.Extent, rec: x.rec})
				c.added = append(c.added, left)
			}
			if gone.End() < x.End() {
				right := u.piece(pmem.Extent{Start: gone.End(), Len: uint64(x.End() - gone.End())})
				s.tree.ReplaceOrInsert(item{Extent: right.Extent, rec: x.rec})
				c.added = append(c.added, right)
			}
		}
	}
	for _, rec := range touched {
		c := changes[rec]
		key := rec.Runs[0].Start
		// The runs that stay, merged with the pieces, in start order. A
		// fresh slice: earlier Deltas may still be reading the old one.
		keep := make([]Run, 0, len(rec.Runs)-len(c.gone)+len(c.added))
		g, a := 0, 0
		for _, u := range rec.Runs {
			if g < len(c.gone) && c.gone[g] == u.Start {
				g++
				continue
			}
			for a < len(c.added) && c.added[a].Start < u.Start {
				keep = append(keep, c.added[a])
				a++
			}
			keep = append(keep, u)
		}
		keep = append(keep, c.added[a:]...)
		rec.Runs = keep
		if len(keep) == 0 {
			s.records--
			d.Deleted = append(d.Deleted, key)
			continue
		}
		if keep[0].Start != key {
			d.Deleted = append(d.Deleted, key)
		}
		d.Written = append(d.Written, *rec)
	}
	s.bumpLocked()
	return cloneAll(released), d, nil
}

// piece returns the part e of u, which must lie inside u, moving FileBlock
// by e's offset into u.
func (u Run) piece(e pmem.Extent) Run {
	u.FileBlock += uint64(e.Start - u.Start)
	u.Extent = e
	return u
}

// extentOf returns run u of r as an Extent.
func (r *Record) extentOf(u Run) Extent {
	return Extent{Extent: u.Extent, Ticket: r.Ticket, Key: r.Key, Ino: r.Ino, FileBlock: u.FileBlock,
		Reason: r.Reason, DetachedAt: r.DetachedAt, Pins: u.Pins, Labels: u.Labels}
}

// cloneAll clones every extent of xs in place and returns xs, so that the
// caller shares no Labels array with the set.
func cloneAll(xs []Extent) []Extent {
	for i := range xs {
		xs[i] = xs[i].clone()
	}
	return xs
}

// Overlapping returns, in start order, copies of the busy extents that share
// at least one block with e. It returns nil for an empty or invalid e.
func (s *Set) Overlapping(e pmem.Extent) []Extent {
	if validate(e) != nil {
		return nil
	}
	var out []Extent
	s.mu.Lock()
	defer s.mu.Unlock()
	s.visit(e, func(x item) bool {
		out = append(out, x.extent().clone())
		return true
	})
	return out
}

// Covers reports whether every block of e is busy. It reports false for an
// empty or invalid e.
func (s *Set) Covers(e pmem.Extent) bool {
	if validate(e) != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, free := s.firstFree(e)
	return !free
}

// Overlaps reports whether at least one block of e is busy. It reports false
// for an empty or invalid e.
func (s *Set) Overlaps(e pmem.Extent) bool {
	if validate(e) != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.overlapsLocked(e)
}

// overlapsLocked reports whether a block of e, which must be valid, is busy.
// s.mu must be held.
func (s *Set) overlapsLocked(e pmem.Extent) bool {
	found := false
	s.visit(e, func(item) bool {
		found = true
		return false
	})
	return found
}

// All returns deep copies of every busy extent, sorted by start; callers may
// keep and change them.
func (s *Set) All() []Extent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Extent, 0, s.tree.Len())
	s.tree.Ascend(func(x item) bool {
		out = append(out, x.extent().clone())
		return true
	})
	return out
}

// Blocks returns the number of busy blocks.
func (s *Set) Blocks() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.blocks
}

// Len returns the number of busy extents.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tree.Len()
}

// Records returns the number of journal records that hold the busy
// extents: what applying every Delta leaves in the journal.
func (s *Set) Records() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records
}

// Oldest returns a copy of the extent with the earliest DetachedAt (the
// lowest start among equals); ok is false when nothing is busy. It scans the
// whole set: it serves error messages and inspection, not a hot path.
func (s *Set) Oldest() (x Extent, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var oldest item
	s.tree.Ascend(func(y item) bool {
		if !ok || y.rec.DetachedAt.Before(oldest.rec.DetachedAt) {
			oldest, ok = y, true
		}
		return true
	})
	if !ok {
		return Extent{}, false
	}
	return oldest.extent().clone(), true
}

// Check verifies the set's invariants: every extent is valid and has a valid
// reason, extents are ordered and do not overlap, each is a run of its
// record, its records hold no other runs, and Blocks and Records equal the
// sums over them. It returns an error wrapping pmem.ErrCorrupt describing
// the first violation. Tests run it after every operation.
func (s *Set) Check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		err   error
		prev  item
		first = true
		sum   uint64
		runs  = map[*Record]int{}
	)
	s.tree.Ascend(func(x item) bool {
		i := -1
		if x.rec != nil {
			i = x.rec.find(x.Start)
		}
		switch {
		case validate(x.Extent) != nil:
			err = fmt.Errorf("busyextent: check: invalid extent %v: %w", x.Extent, pmem.ErrCorrupt)
		case i < 0 || x.rec.Runs[i].Extent != x.Extent:
			err = fmt.Errorf("busyextent: check: extent %v is not a run of its record: %w", x.Extent, pmem.ErrCorrupt)
		case !x.rec.Reason.Valid():
			err = fmt.Errorf("busyextent: check: extent %v has no valid reason: %w", x.extent(), pmem.ErrCorrupt)
		case !first && prev.End() > x.Start:
			err = fmt.Errorf("busyextent: check: %v overlaps %v: %w", prev.Extent, x.Extent, pmem.ErrCorrupt)
		}
		if err == nil {
			runs[x.rec]++
		}
		prev, first = x, false
		sum += x.Len
		return err == nil
	})
	if err != nil {
		return err
	}
	if sum != s.blocks {
		return fmt.Errorf("busyextent: check: extents hold %d blocks, counter says %d: %w", sum, s.blocks, pmem.ErrCorrupt)
	}
	if len(runs) != s.records {
		return fmt.Errorf("busyextent: check: extents lie in %d records, counter says %d: %w", len(runs), s.records, pmem.ErrCorrupt)
	}
	for rec, n := range runs {
		if n != len(rec.Runs) {
			return fmt.Errorf("busyextent: check: record of %v holds %d runs, %d of them busy: %w",
				rec.Runs[0].Extent, len(rec.Runs), n, pmem.ErrCorrupt)
		}
	}
	return nil
}
