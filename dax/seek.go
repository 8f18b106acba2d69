package dax

// Finding data and holes, so a reader of a sparse file can copy only the
// bytes that are there, as lseek's SEEK_DATA and SEEK_HOLE let it on a
// filesystem.

import (
	"io"
)

// SeekData returns the offset of the first data byte at or after off, as
// lseek(2) with SEEK_DATA does: holes and unwritten (allocated but never
// written) blocks are not data, since they read as zeros. Data is found
// with block granularity, so a data region may hold zeros too. It returns
// io.EOF when no data lies at or after off before the end of the file
// (lseek's ENXIO), including when off is at or past the end.
func (f *File) SeekData(off int64) (int64, error) {
	return f.seek("seek data", off, true)
}

// SeekHole returns the offset of the first hole byte at or after off, as
// lseek(2) with SEEK_HOLE does: the start of a hole or of an unwritten
// block, or the end of the file, which counts as a hole. It returns io.EOF
// when off is at or past the end of the file (lseek's ENXIO).
//
// A copy of a sparse file alternates the two: data runs from SeekData(off)
// to SeekHole of that, and everything else reads as zeros.
func (f *File) SeekHole(off int64) (int64, error) {
	return f.seek("seek hole", off, false)
}

func (f *File) seek(op string, off int64, data bool) (int64, error) {
	if err := checkRange(off, 0); err != nil {
		return 0, f.errorf(op, err)
	}
	if err := f.enter(false); err != nil {
		return 0, f.errorf(op, err)
	}
	defer f.s.end()
	in := f.in
	in.mapMu.Lock()
	if err := f.live(); err != nil {
		in.mapMu.Unlock()
		return 0, f.errorf(op, err)
	}
	size := in.size
	var pos int64
	if off < size && in.inline {
		pos = size // an inline file is all data, no holes
		if data {
			pos = off
		}
	} else if off < size {
		if data {
			pos = f.s.nextData(in.extents, off)
		} else {
			pos = f.s.nextHole(in.extents, off)
		}
	}
	in.mapMu.Unlock()
	if off >= size || pos >= size && data {
		return 0, io.EOF
	}
	return min(pos, size), nil
}

// nextData returns the first byte at or after off that a written mapping
// backs, or MaxFileSize if there is none. It visits the mappings from off
// up to the first written one: unwritten ones are all it skips.
func (s *Store) nextData(em *extentMap, off int64) int64 {
	fb := uint64(off / s.bs)
	if m, ok := em.at(fb); ok && !m.unwritten {
		return off
	}
	pos := int64(MaxFileSize)
	em.tree.AscendGreaterOrEqual(mapping{fileBlock: fb + 1}, func(m mapping) bool {
		if m.unwritten {
			return true
		}
		pos = int64(m.fileBlock) * s.bs
		return false
	})
	return pos
}

// nextHole returns the first byte at or after off that no written mapping
// backs: off itself, or the end of the file-contiguous run of written
// mappings that covers off.
func (s *Store) nextHole(em *extentMap, off int64) int64 {
	m, ok := em.at(uint64(off / s.bs))
	if !ok || m.unwritten {
		return off
	}
	next := m.fileEnd()
	em.tree.AscendGreaterOrEqual(mapping{fileBlock: next}, func(m mapping) bool {
		if m.fileBlock != next || m.unwritten {
			return false
		}
		next = m.fileEnd()
		return true
	})
	return int64(next) * s.bs
}
