package pageref

// This file exists so that a store's Check can compare the detached marks
// with its busy set: the marks are the table's, the busy set is not.

import "github.com/daxstore/daxstore/pmem"

// Detached returns the runs of blocks in e that carry the detached mark,
// ascending and coalesced, read as Referenced reads counts: each block once,
// at some instant during the call. It returns nil for an empty or
// out-of-range e.
func (t *Table) Detached(e pmem.Extent) []pmem.Extent { return t.runsWith(e, detachedBit) }
