package busyextent

// This file exists to hold the busy extents themselves: the ordered set, its
// trimming and overlap queries, and the journal delta of every change.

import (
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

// Delta maps a change of the set onto journal records keyed by extent start:
// delete the record of every Removed extent, then write every Added one.
// Applying every Delta a Set returns, in order, to a copy of the journaled
// records keeps that copy equal to Set.All (TestRandomOpsMatchBlockModel
// and TestRemoveRunsNetsTheDelta prove it).
// A start may appear in both lists, when an extent is trimmed at its end.
type Delta struct {
	Removed []Extent
	Added   []Extent
}

// Empty reports whether d changes no record.
func (d Delta) Empty() bool { return len(d.Removed) == 0 && len(d.Added) == 0 }

// Set is the busy set: non-overlapping extents ordered by start. Neighbours
// are never coalesced, because each extent keeps its own owner. A Set is safe
// for concurrent use; the zero Set is not usable, call NewSet.
type Set struct {
	// mu protects tree, blocks and wake, and makes each generation bump and
	// the close of wake one step, which is what keeps Wait free of lost
	// wakeups.
	mu     sync.Mutex
	tree   *btree.BTreeG[Extent] // busy extents by Start; none empty, none overlapping (Check)
	blocks uint64                // sum of Len over tree
	wake   chan struct{}         // closed by the next bump; nil until a waiter needs it

	gen     atomic.Uint64 // the generation; written only with mu held, read without it
	waiters atomic.Int64  // goroutines inside Wait or WaitReleased
	tickets atomic.Uint64 // the last ticket NewTicket handed out
}

// btreeDegree trades node size against depth; busy sets are usually small,
// and 16 keeps a node of Extents within a few cache-friendly kilobytes.
const btreeDegree = 16

// NewSet returns an empty busy set at generation 0.
func NewSet() *Set {
	return &Set{tree: btree.NewG(btreeDegree, func(a, b Extent) bool { return a.Start < b.Start })}
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
func at(b pmem.Block) Extent { return Extent{Extent: pmem.Extent{Start: b}} }

// visit calls fn in start order for every busy extent that overlaps e, which
// must be valid, until fn returns false. s.mu must be held, and fn must not
// change the tree.
func (s *Set) visit(e pmem.Extent, fn func(Extent) bool) {
	more := true
	// Only the last extent starting before e can reach into it: extents do
	// not overlap, so every earlier one ends before that one starts.
	s.tree.DescendLessOrEqual(at(e.Start), func(x Extent) bool {
		if x.Start < e.Start && x.End() > e.Start {
			more = fn(x)
		}
		return false
	})
	if !more {
		return
	}
	end := e.End()
	s.tree.AscendGreaterOrEqual(at(e.Start), func(x Extent) bool {
		return x.Start < end && fn(x)
	})
}

// firstFree returns the first block of e, which must be valid, that is not
// busy; ok is false when every block of e is busy. s.mu must be held.
func (s *Set) firstFree(e pmem.Extent) (b pmem.Block, ok bool) {
	next := e.Start
	s.visit(e, func(x Extent) bool {
		if x.Start > next {
			return false
		}
		next = x.End()
		return next < e.End()
	})
	return next, next < e.End()
}

// Add makes the blocks of x busy and returns the journal records to write.
// x must be non-empty, fit in the block numbers, carry a valid Reason, hold
// at most MaxLabels labels and no more than Pins, and overlap no busy block; otherwise Add returns an error wrapping ErrInvalid or
// ErrOverlap and changes nothing. Neighbours are not coalesced, because their
// owners differ. The set keeps its own copy of x.Labels. Add does not change
// the generation: no space came back.
func (s *Set) Add(x Extent) (Delta, error) {
	if err := validate(x.Extent); err != nil {
		return Delta{}, fmt.Errorf("busyextent: add %v: %w", x.Extent, err)
	}
	if !x.Reason.Valid() {
		return Delta{}, fmt.Errorf("busyextent: add %v: %v: %w", x.Extent, x.Reason, ErrInvalid)
	}
	if len(x.Labels) > MaxLabels || uint64(len(x.Labels)) > x.Pins {
		return Delta{}, fmt.Errorf("busyextent: add %v: %d labels for %d pins, at most %d labels: %w",
			x.Extent, len(x.Labels), x.Pins, MaxLabels, ErrInvalid)
	}
	x = x.clone()

	s.mu.Lock()
	defer s.mu.Unlock()
	var clash Extent
	found := false
	s.visit(x.Extent, func(y Extent) bool {
		clash, found = y, true
		return false
	})
	if found {
		return Delta{}, fmt.Errorf("busyextent: add %v of key %q: busy as %v: %w", x.Extent, x.Key, clash, ErrOverlap)
	}
	s.tree.ReplaceOrInsert(x)
	s.blocks += x.Len
	return Delta{Added: []Extent{x.clone()}}, nil
}

// Remove makes the blocks of e free of the busy set; see RemoveRuns, of which
// it is the single-run case.
func (s *Set) Remove(e pmem.Extent) (released []Extent, d Delta, err error) {
	return s.RemoveRuns([]pmem.Extent{e})
}

// RemoveRuns removes the blocks of every run from the busy set in one step.
// A run may span several busy extents but every block of every run must be
// busy, and no two runs may overlap; otherwise RemoveRuns returns an error
// wrapping ErrNotBusy or ErrInvalid and changes nothing. Partly covered busy
// extents are trimmed or split: the pieces that stay keep their owner,
// reason, time and labels, with FileBlock moved by their offset.
//
// released holds the removed pieces in start order, each with its owner and
// adjusted FileBlock. d holds the journal records to rewrite, net of the
// whole call. Unless runs is empty, RemoveRuns bumps the generation and wakes
// every Wait and WaitReleased. All returned extents are the caller's to keep.
func (s *Set) RemoveRuns(runs []pmem.Extent) (released []Extent, d Delta, err error) {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b pmem.Extent) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
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
	var hit []Extent
	for _, r := range sorted {
		hit = hit[:0]
		s.visit(r, func(x Extent) bool {
			hit = append(hit, x)
			return true
		})
		for _, x := range hit {
			s.tree.Delete(x)
			// Runs go left to right, so the only piece an earlier run can
			// have created that this run touches is the right remainder
			// added last; its record was never written, so drop it instead
			// of deleting it.
			if n := len(d.Added); n > 0 && d.Added[n-1].Start == x.Start {
				d.Added = d.Added[:n-1]
			} else {
				d.Removed = append(d.Removed, x)
			}
			gone, _ := x.Intersect(r)
			released = append(released, x.piece(gone))
			s.blocks -= gone.Len
			if x.Start < gone.Start {
				left := x.piece(pmem.Extent{Start: x.Start, Len: uint64(gone.Start - x.Start)})
				s.tree.ReplaceOrInsert(left)
				d.Added = append(d.Added, left)
			}
			if gone.End() < x.End() {
				right := x.piece(pmem.Extent{Start: gone.End(), Len: uint64(x.End() - gone.End())})
				s.tree.ReplaceOrInsert(right)
				d.Added = append(d.Added, right)
			}
		}
	}
	s.bumpLocked()
	return cloneAll(released), Delta{Removed: cloneAll(d.Removed), Added: cloneAll(d.Added)}, nil
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
	s.visit(e, func(x Extent) bool {
		out = append(out, x.clone())
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
	s.visit(e, func(Extent) bool {
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
	s.tree.Ascend(func(x Extent) bool {
		out = append(out, x.clone())
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

// Oldest returns a copy of the extent with the earliest DetachedAt (the
// lowest start among equals); ok is false when nothing is busy. It scans the
// whole set: it serves error messages and inspection, not a hot path.
func (s *Set) Oldest() (x Extent, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tree.Ascend(func(y Extent) bool {
		if !ok || y.DetachedAt.Before(x.DetachedAt) {
			x, ok = y, true
		}
		return true
	})
	return x.clone(), ok
}

// Check verifies the set's invariants: every extent is valid and has a valid
// reason, extents are ordered and do not overlap, and Blocks equals the sum
// of their lengths. It returns an error wrapping pmem.ErrCorrupt describing
// the first violation. Tests run it after every operation.
func (s *Set) Check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		err   error
		prev  Extent
		first = true
		sum   uint64
	)
	s.tree.Ascend(func(x Extent) bool {
		switch {
		case validate(x.Extent) != nil:
			err = fmt.Errorf("busyextent: check: invalid extent %v: %w", x, pmem.ErrCorrupt)
		case !x.Reason.Valid():
			err = fmt.Errorf("busyextent: check: extent %v has no valid reason: %w", x, pmem.ErrCorrupt)
		case !first && prev.End() > x.Start:
			err = fmt.Errorf("busyextent: check: %v overlaps %v: %w", prev, x, pmem.ErrCorrupt)
		}
		prev, first = x, false
		sum += x.Len
		return err == nil
	})
	if err == nil && sum != s.blocks {
		err = fmt.Errorf("busyextent: check: extents hold %d blocks, counter says %d: %w", sum, s.blocks, pmem.ErrCorrupt)
	}
	return err
}
