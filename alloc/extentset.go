package alloc

// This file exists to hold the ordered set of disjoint, coalesced extents
// that both the free-space index and its journal records are built on.

import (
	"fmt"
	"math"

	"github.com/daxstore/daxstore/pmem"
	"github.com/google/btree"
)

// btreeDegree is the B-tree fan-out of every index in this package. 32 keeps
// a set of a million extents four levels deep with nodes of about 1 KiB.
const btreeDegree = 32

// Delta is how a change to an ExtentSet maps onto journal records keyed by
// extent start: delete the record of every Removed extent, then write every
// Added extent. A Removed and an Added extent with the same start are legal
// together and mean "rewrite the record".
//
// Within one Delta the Added extents have distinct starts, and so do the
// Removed extents.
type Delta struct {
	// Removed are the extents whose records to delete.
	Removed []pmem.Extent
	// Added are the extents whose records to write.
	Added []pmem.Extent
}

// Append folds o, a change made after d, into d, keeping order: d's records
// come first, then o's. Applying the result (all deletes, then all writes)
// leaves the records exactly as applying d and then o would.
//
// Plain concatenation would not: a record that d writes and o deletes would
// be deleted first and then written. So an extent that o removes and d added
// is dropped from both lists - the record either never existed before d, or
// d already deletes it - and an extent of d's that o rewrites is replaced by
// o's. Append costs O(len(d.Added)) for each extent in o.
func (d *Delta) Append(o Delta) {
	if len(o.Removed) == 0 && len(o.Added) == 0 {
		return
	}
	// superseded marks d.Added entries whose record o deletes or rewrites.
	superseded := make([]bool, len(d.Added))
	for _, r := range o.Removed {
		if i := lastWithStart(d.Added, r.Start); i >= 0 {
			superseded[i] = true
			continue // d created this record; nothing before d needs deleting
		}
		d.Removed = append(d.Removed, r)
	}
	for _, a := range o.Added {
		if i := lastWithStart(d.Added, a.Start); i >= 0 {
			superseded[i] = true
		}
	}
	// Build a fresh slice: d.Added may share its array with a caller's slice.
	added := make([]pmem.Extent, 0, len(d.Added)+len(o.Added))
	for i, a := range d.Added {
		if !superseded[i] {
			added = append(added, a)
		}
	}
	d.Added = append(added, o.Added...)
}

// lastWithStart returns the index of the last extent in es that starts at b,
// or -1. It scans backwards because a change most often touches what the
// previous change just wrote.
func lastWithStart(es []pmem.Extent, b pmem.Block) int {
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].Start == b {
			return i
		}
	}
	return -1
}

// ExtentSet is an ordered set of disjoint, coalesced extents: no two members
// share a block and no two members touch (one's End is never another's
// Start). Every method that changes the set either succeeds completely or
// returns an error and leaves the set unchanged.
//
// The zero ExtentSet is an empty set ready to use. An ExtentSet is not safe
// for concurrent use.
type ExtentSet struct {
	tree   *btree.BTreeG[pmem.Extent] // members ordered by Start; nil until first use
	blocks uint64                     // sum of the members' Len
}

// NewExtentSet returns an empty set.
func NewExtentSet() *ExtentSet {
	return &ExtentSet{tree: newByStart()}
}

func newByStart() *btree.BTreeG[pmem.Extent] {
	return btree.NewG(btreeDegree, func(a, b pmem.Extent) bool { return a.Start < b.Start })
}

// members returns the by-start tree, creating it for a zero ExtentSet.
func (s *ExtentSet) members() *btree.BTreeG[pmem.Extent] {
	if s.tree == nil {
		s.tree = newByStart()
	}
	return s.tree
}

// validExtent returns an error wrapping ErrInvalid when e is empty or runs
// past the last block number, so that e.End() would wrap around.
func validExtent(e pmem.Extent) error {
	if e.Empty() {
		return fmt.Errorf("%w: empty extent", ErrInvalid)
	}
	if e.Len > math.MaxUint64-uint64(e.Start) {
		return fmt.Errorf("%w: extent runs past the last block number", ErrInvalid)
	}
	return nil
}

// Insert adds e to the set, merging it with the members it touches.
// It returns an error wrapping ErrInvalid if e is empty or wraps past the
// last block number, or ErrOverlap if any block of e is already a member; in
// both cases the set is unchanged. The Delta removes the merged neighbours
// and adds the merged extent.
func (s *ExtentSet) Insert(e pmem.Extent) (Delta, error) {
	var d Delta
	err := s.checkedInsert(e, &d)
	return d, err
}

// Add is Insert for a caller that has no use for the Delta; it allocates
// nothing beyond the set's own nodes.
func (s *ExtentSet) Add(e pmem.Extent) error { return s.checkedInsert(e, nil) }

func (s *ExtentSet) checkedInsert(e pmem.Extent, d *Delta) error {
	if err := validExtent(e); err != nil {
		return fmt.Errorf("alloc: insert %v: %w", e, err)
	}
	if m, ok := s.firstOverlap(e); ok {
		return fmt.Errorf("alloc: insert %v: %w %v", e, ErrOverlap, m)
	}
	s.insert(e, d)
	return nil
}

// insert is Insert for an e already known to be valid and to overlap no
// member. It records the change in d unless d is nil.
func (s *ExtentSet) insert(e pmem.Extent, d *Delta) {
	t := s.members()
	merged := e
	if prev, ok := s.atOrBefore(e.Start); ok && prev.End() == e.Start {
		t.Delete(prev)
		if d != nil {
			d.Removed = append(d.Removed, prev)
		}
		merged = pmem.Extent{Start: prev.Start, Len: prev.Len + merged.Len}
	}
	if next, ok := t.Get(pmem.Extent{Start: e.End()}); ok {
		t.Delete(next)
		if d != nil {
			d.Removed = append(d.Removed, next)
		}
		merged.Len += next.Len
	}
	t.ReplaceOrInsert(merged)
	if d != nil {
		d.Added = append(d.Added, merged)
	}
	s.blocks += e.Len
}

// Remove takes e out of the set, splitting the member that holds it.
// Because members are coalesced, any range whose every block is in the set
// lies inside one member. It returns an error wrapping ErrInvalid if e is
// empty or wraps past the last block number, or ErrNotCovered if some block
// of e is not a member; in both cases the set is unchanged. The Delta
// removes the member and adds what is left of it on either side of e.
func (s *ExtentSet) Remove(e pmem.Extent) (Delta, error) {
	var d Delta
	err := s.checkedRemove(e, &d)
	return d, err
}

// Take is Remove for a caller that has no use for the Delta; it allocates
// nothing beyond the set's own nodes.
func (s *ExtentSet) Take(e pmem.Extent) error { return s.checkedRemove(e, nil) }

func (s *ExtentSet) checkedRemove(e pmem.Extent, d *Delta) error {
	if err := validExtent(e); err != nil {
		return fmt.Errorf("alloc: remove %v: %w", e, err)
	}
	m, ok := s.Find(e.Start)
	if !ok || !m.Covers(e) {
		if ok {
			return fmt.Errorf("alloc: remove %v: %w (member %v)", e, ErrNotCovered, m)
		}
		return fmt.Errorf("alloc: remove %v: %w", e, ErrNotCovered)
	}
	s.remove(e, m, d)
	return nil
}

// remove is Remove for an e already known to be valid and to lie inside
// member m. It records the change in d unless d is nil.
func (s *ExtentSet) remove(e, m pmem.Extent, d *Delta) {
	t := s.members()
	t.Delete(m)
	if d != nil {
		d.Removed = append(d.Removed, m)
	}
	if left := (pmem.Extent{Start: m.Start, Len: uint64(e.Start - m.Start)}); !left.Empty() {
		t.ReplaceOrInsert(left)
		if d != nil {
			d.Added = append(d.Added, left)
		}
	}
	if right := (pmem.Extent{Start: e.End(), Len: uint64(m.End() - e.End())}); !right.Empty() {
		t.ReplaceOrInsert(right)
		if d != nil {
			d.Added = append(d.Added, right)
		}
	}
	s.blocks -= e.Len
}

// Covers reports whether every block of e is in the set. It is true for an
// empty e and false for an e that wraps past the last block number.
func (s *ExtentSet) Covers(e pmem.Extent) bool {
	if e.Empty() {
		return true
	}
	if validExtent(e) != nil {
		return false
	}
	m, ok := s.Find(e.Start)
	return ok && m.Covers(e)
}

// Overlaps reports whether some block of e is in the set. It is false for
// an empty e; an e that wraps past the last block number is treated as
// ending at the last block number.
func (s *ExtentSet) Overlaps(e pmem.Extent) bool {
	if e.Empty() {
		return false
	}
	_, ok := s.firstOverlap(clamp(e))
	return ok
}

// clamp shortens an extent that would wrap past the last block number.
func clamp(e pmem.Extent) pmem.Extent {
	if e.Len > math.MaxUint64-uint64(e.Start) {
		e.Len = math.MaxUint64 - uint64(e.Start)
	}
	return e
}

// Find returns the member that contains block b.
func (s *ExtentSet) Find(b pmem.Block) (pmem.Extent, bool) {
	m, ok := s.atOrBefore(b)
	if !ok || !m.Contains(b) {
		return pmem.Extent{}, false
	}
	return m, true
}

// atOrBefore returns the member with the greatest Start <= b.
func (s *ExtentSet) atOrBefore(b pmem.Block) (m pmem.Extent, ok bool) {
	s.members().DescendLessOrEqual(pmem.Extent{Start: b}, func(x pmem.Extent) bool {
		m, ok = x, true
		return false
	})
	return m, ok
}

// firstOverlap returns the lowest member that shares a block with e, which
// must not wrap past the last block number.
func (s *ExtentSet) firstOverlap(e pmem.Extent) (m pmem.Extent, ok bool) {
	if e.Empty() {
		return pmem.Extent{}, false
	}
	if prev, found := s.atOrBefore(e.Start); found && prev.End() > e.Start {
		return prev, true
	}
	s.members().AscendGreaterOrEqual(pmem.Extent{Start: e.Start}, func(x pmem.Extent) bool {
		m, ok = x, x.Start < e.End()
		return false
	})
	if !ok {
		return pmem.Extent{}, false
	}
	return m, true
}

// Blocks returns the total number of blocks in the set.
func (s *ExtentSet) Blocks() uint64 { return s.blocks }

// Count returns the number of members.
func (s *ExtentSet) Count() int { return s.members().Len() }

// Ascend calls fn for each member in ascending order until fn returns
// false. fn must not change the set.
func (s *ExtentSet) Ascend(fn func(pmem.Extent) bool) { s.members().Ascend(fn) }

// Extents returns a sorted copy of the members.
func (s *ExtentSet) Extents() []pmem.Extent {
	out := make([]pmem.Extent, 0, s.Count())
	s.Ascend(func(e pmem.Extent) bool {
		out = append(out, e)
		return true
	})
	return out
}
