package alloc

// This file exists to state the invariants of the indexes as code, so that
// tests can prove them after every operation (TestExtentSetTable,
// TestAllocatorRandom and the others call check).

import (
	"fmt"

	"github.com/daxstore/daxstore/pmem"
)

// check verifies that the members are non-empty, do not wrap past the last
// block number, are sorted, disjoint and coalesced (no two touch), and that
// the block counter equals their sum.
func (s *ExtentSet) check() error {
	var sum uint64
	var prev pmem.Extent
	var err error
	s.Ascend(func(e pmem.Extent) bool {
		if verr := validExtent(e); verr != nil {
			err = fmt.Errorf("member %v: %w", e, verr)
			return false
		}
		if !prev.Empty() && prev.End() >= e.Start {
			err = fmt.Errorf("members %v and %v overlap or touch", prev, e)
			return false
		}
		sum += e.Len
		prev = e
		return true
	})
	if err != nil {
		return err
	}
	if sum != s.blocks {
		return fmt.Errorf("block counter %d, members hold %d", s.blocks, sum)
	}
	return nil
}

// check verifies the by-start set (see ExtentSet.check) and that the
// by-size index holds exactly the same extents.
func (a *Allocator) check() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.free.check(); err != nil {
		return fmt.Errorf("by-start index: %w", err)
	}
	if got, want := a.sizes().Len(), a.free.Count(); got != want {
		return fmt.Errorf("by-size index has %d extents, by-start has %d", got, want)
	}
	// Equal counts plus every by-size extent being a by-start member (and
	// by-size keys being distinct) make the two sets equal.
	var err error
	a.sizes().Ascend(func(e pmem.Extent) bool {
		if m, ok := a.free.members().Get(e); !ok || m != e {
			err = fmt.Errorf("by-size extent %v is not a by-start member", e)
			return false
		}
		return true
	})
	return err
}

// Check verifies the set's invariants (see check) and returns an error
// describing the first violation. It is for a store's own Check, which must
// prove every invariant of the structures it composes.
func (s *ExtentSet) Check() error { return s.check() }

// Check verifies the allocator's invariants (see check).
func (a *Allocator) Check() error { return a.check() }
