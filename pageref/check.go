package pageref

// This file exists so that a store's Check can compare the detached marks
// with its busy set: the marks are the table's, the busy set is not.

import "github.com/daxstore/daxstore/pmem"

// Detached returns the runs of blocks in e that carry the detached mark,
// ascending and coalesced, read as Referenced reads counts: each block once,
// at some instant during the call. It returns nil for an empty or
// out-of-range e.
func (t *Table) Detached(e pmem.Extent) []pmem.Extent {
	if t.checkRange(e) != nil {
		return nil
	}
	var runs []pmem.Extent
	last := chunkOf(e.End() - 1)
	for ci := t.present(chunkOf(e.Start), last); ci <= last; ci = t.present(ci+1, last) {
		c := t.chunk(ci)
		if c == nil {
			continue
		}
		lo, hi := span(e, ci)
		for i := lo; i < hi; i++ {
			if c.words[i].Load()&detachedBit != 0 {
				runs = appendBlock(runs, blockOf(ci, i))
			}
		}
	}
	return runs
}
