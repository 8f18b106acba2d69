package dax

// The in-memory extent map of one file: which region blocks back which file
// blocks. Every change is returned as an ordered list of journal operations
// so the caller can commit exactly what changed in the same batch.

import (
	"github.com/google/btree"

	"github.com/daxstore/daxstore/pmem"
)

// mapping maps file blocks [fileBlock, fileBlock+n) to region blocks
// [start, start+n). An unwritten mapping owns its blocks but reads as zeros:
// its bytes were never initialised.
type mapping struct {
	fileBlock uint64
	start     pmem.Block
	n         uint64
	unwritten bool
}

func (m mapping) fileEnd() uint64 { return m.fileBlock + m.n }

func (m mapping) region() pmem.Extent { return pmem.Extent{Start: m.start, Len: m.n} }

// clip returns the part of m covering file blocks [fb, end); ok is false when
// they do not meet.
func (m mapping) clip(fb, end uint64) (mapping, bool) {
	lo, hi := max(m.fileBlock, fb), min(m.fileEnd(), end)
	if lo >= hi {
		return mapping{}, false
	}
	return mapping{
		fileBlock: lo,
		start:     m.start + pmem.Block(lo-m.fileBlock),
		n:         hi - lo,
		unwritten: m.unwritten,
	}, true
}

// mapOp is one journal operation on extent records: delete the record at
// fileBlock, or set m. Ops apply in order; a later op on the same file block
// wins.
type mapOp struct {
	del bool
	m   mapping
}

// extentMap is a file's extent map, ordered by file block. Mappings never
// overlap in file space. It is not safe for concurrent use: the file's
// extent-map lock guards it.
type extentMap struct {
	tree   *btree.BTreeG[mapping]
	nblock uint64 // region blocks mapped: kept so a file's record never sums its map
}

// extentDegree is the B-tree degree of extent maps. Most files have one or a
// few extents, and files come into memory and leave it all the time (see
// acquire), so the trees are small and share one free list of nodes
// rather than each allocating its own.
const extentDegree = 8

var extentNodes = btree.NewFreeListG[mapping](1024)

func byFileBlock(a, b mapping) bool { return a.fileBlock < b.fileBlock }

func newExtentMap() *extentMap {
	return &extentMap{tree: btree.NewWithFreeListG(extentDegree, byFileBlock, extentNodes)}
}

// blocks returns the number of region blocks the map owns.
func (em *extentMap) blocks() uint64 { return em.nblock }

// len returns the number of mappings.
func (em *extentMap) len() int { return em.tree.Len() }

// all returns every mapping in file order.
func (em *extentMap) all() []mapping {
	out := make([]mapping, 0, em.tree.Len())
	em.tree.Ascend(func(m mapping) bool { out = append(out, m); return true })
	return out
}

// find returns the mappings covering file blocks [fb, end), clipped to it,
// in file order. Holes are the gaps between them.
func (em *extentMap) find(fb, end uint64) []mapping {
	var out []mapping
	em.visit(fb, end, func(m mapping) {
		if c, ok := m.clip(fb, end); ok {
			out = append(out, c)
		}
	})
	return out
}

// at returns the mapping that covers file block fb, if any. A mapping that
// starts at fb, the common case, is found without allocating.
func (em *extentMap) at(fb uint64) (mapping, bool) {
	if m, ok := em.tree.Get(mapping{fileBlock: fb}); ok {
		return m, true
	}
	m, ok := em.before(fb + 1)
	if !ok || m.fileEnd() <= fb {
		return mapping{}, false
	}
	return m, true
}

// pieces is find for the hot read paths: when one mapping covers all of
// [fb, end), the common case, it returns it in one[:] without allocating.
func (em *extentMap) pieces(fb, end uint64, one *[1]mapping) []mapping {
	if fb >= end {
		return nil
	}
	if m, ok := em.at(fb); ok && m.fileEnd() >= end {
		one[0], _ = m.clip(fb, end)
		return one[:]
	}
	return em.find(fb, end)
}

// visit calls fn with every whole mapping that meets [fb, end).
func (em *extentMap) visit(fb, end uint64, fn func(mapping)) {
	if fb >= end {
		return
	}
	// The mapping that starts at or before fb may reach into the range.
	em.tree.DescendLessOrEqual(mapping{fileBlock: fb}, func(m mapping) bool {
		if m.fileEnd() > fb {
			fn(m)
		}
		return false
	})
	em.tree.AscendRange(mapping{fileBlock: fb + 1}, mapping{fileBlock: end}, func(m mapping) bool {
		fn(m)
		return true
	})
}

// remove unmaps file blocks [fb, end), trimming mappings at the edges. It
// returns the removed pieces (the region blocks the file no longer owns) and
// the journal ops.
func (em *extentMap) remove(fb, end uint64) (removed []mapping, ops []mapOp) {
	var whole []mapping
	em.visit(fb, end, func(m mapping) { whole = append(whole, m) })
	for _, m := range whole {
		em.tree.Delete(m)
		ops = append(ops, mapOp{del: true, m: m})
		if c, ok := m.clip(fb, end); ok {
			removed = append(removed, c)
			em.nblock -= c.n
		}
		if head, ok := m.clip(m.fileBlock, fb); ok {
			em.tree.ReplaceOrInsert(head)
			ops = append(ops, mapOp{m: head})
		}
		if tail, ok := m.clip(end, m.fileEnd()); ok {
			em.tree.ReplaceOrInsert(tail)
			ops = append(ops, mapOp{m: tail})
		}
	}
	return removed, ops
}

// insert maps m, which must not overlap any mapping, merging it with file-
// and region-contiguous neighbours of the same kind so the map stays small.
func (em *extentMap) insert(m mapping) (ops []mapOp) {
	em.nblock += m.n
	if prev, ok := em.before(m.fileBlock); ok && prev.fileEnd() == m.fileBlock &&
		prev.region().End() == m.start && prev.unwritten == m.unwritten {
		em.tree.Delete(prev)
		ops = append(ops, mapOp{del: true, m: prev})
		m = mapping{fileBlock: prev.fileBlock, start: prev.start, n: prev.n + m.n, unwritten: m.unwritten}
	}
	if next, ok := em.tree.Get(mapping{fileBlock: m.fileEnd()}); ok &&
		m.region().End() == next.start && next.unwritten == m.unwritten {
		em.tree.Delete(next)
		ops = append(ops, mapOp{del: true, m: next})
		m.n += next.n
	}
	em.tree.ReplaceOrInsert(m)
	return append(ops, mapOp{m: m})
}

// before returns the mapping that starts last before fileBlock.
func (em *extentMap) before(fileBlock uint64) (mapping, bool) {
	if fileBlock == 0 {
		return mapping{}, false
	}
	var out mapping
	found := false
	em.tree.DescendLessOrEqual(mapping{fileBlock: fileBlock - 1}, func(m mapping) bool {
		out, found = m, true
		return false
	})
	return out, found
}

// goal suggests a region block for file block fb: right after the region
// block that backs fb-1, so sequential writes stay contiguous.
func (em *extentMap) goal(fb uint64) pmem.Block {
	if m, ok := em.before(fb + 1); ok && m.fileEnd() <= fb+1 {
		return m.start + pmem.Block(m.n) + pmem.Block(fb-m.fileEnd())
	}
	return 0
}
