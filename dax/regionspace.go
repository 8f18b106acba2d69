package dax

// The region file is sparse (pmem.Create): its filesystem allocates space
// only as the store hands blocks out. A store through the mapping into a
// page the filesystem cannot back raises SIGBUS, which kills the process,
// so no block reaches an operation before its file space is reserved
// (pmem.Region.Reserve), and a full filesystem is an ErrNoSpace instead.

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/daxstore/daxstore/alloc"
	"github.com/daxstore/daxstore/pmem"
)

// regionSpaceTries bounds how many allocations reserve tries when the
// filesystem under the region is full: blocks that already have file space
// (freed by earlier operations) may still serve the request.
const regionSpaceTries = 4

// regionSpace reserves file space for exts, just allocated for a request of
// n blocks placed as h hints. If the filesystem is full it sets those blocks aside
// and allocates again, up to regionSpaceTries times, so free blocks whose
// space is already allocated still serve; it then returns the blocks that
// have space. On failure every block goes back to free space, nothing
// changes, and the error wraps ErrNoSpace (a full filesystem) or the
// system error. Every path that hands region blocks to an operation (Put,
// WriteAt, Allocate, a pin of a hole, a break's fresh blocks) comes
// through here: TestRegionFullIsErrNoSpaceNotSIGBUS proves it.
func (s *Store) regionSpace(exts []pmem.Extent, n uint64, h alloc.Hint) ([]pmem.Extent, error) {
	var aside []pmem.Extent // allocated, but the filesystem had no space for them
	defer func() {
		// Unlike unreserve, this does not bump the busy generation: these
		// blocks serve nobody until the filesystem grows, so no waiter
		// needs waking, and a bump would make retrySpace, which waits for
		// the generation to move, retry at once and spin.
		for _, e := range aside {
			if err := s.free.Free(e); err != nil {
				s.commitMu.Lock()
				s.fail(fmt.Errorf("unreserve %v: %w", e, err))
				s.commitMu.Unlock()
			}
		}
	}()
	for try := 1; ; try++ {
		err := s.reserveFile(exts)
		if err == nil {
			return exts, nil
		}
		aside = append(aside, exts...)
		if !errors.Is(err, ErrNoSpace) || try == regionSpaceTries {
			return nil, err
		}
		var aerr error
		if exts, aerr = s.free.AllocFor(n, h); aerr != nil {
			// Every free block left needs file space the filesystem
			// has not got: that, not the allocator, is why this fails.
			return nil, err
		}
	}
}

// reserveFile reserves file space for every block of exts.
func (s *Store) reserveFile(exts []pmem.Extent) error {
	for _, e := range exts {
		if err := s.region.Reserve(e); err != nil {
			return regionSpaceError(err)
		}
	}
	return nil
}

// regionSpaceError makes a failed reservation of region file space an
// error that wraps ErrNoSpace when the filesystem (or the user's quota) is
// full, and the cause in every case.
func regionSpaceError(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: the filesystem holding the region is full: %w", ErrNoSpace, err)
	}
	return fmt.Errorf("reserve region file space: %w", err)
}

// regionFileBytes is Region.FileBytes, 0 when it fails: a figure for
// people, not a reason to fail Stats.
func regionFileBytes(r *pmem.Region) int64 {
	n, err := r.FileBytes()
	if err != nil {
		return 0
	}
	return n
}

// hugePageBytes is the largest page a mapping of the region can use where
// both the address and the region offset are aligned to it (fsdax maps
// 2 MiB pages), which windows reserve their addresses aligned to.
const hugePageBytes = 2 << 20

// hugeAlign returns the allocator's alignment unit for blocks of bs bytes:
// 2 MiB worth of blocks, so that a large file's runs sit at region offsets
// congruent to their file offsets modulo 2 MiB and a window can map them
// with huge pages; 0 (no alignment) when 2 MiB is not a multiple of bs.
func hugeAlign(bs int64) uint64 {
	if bs <= 0 || bs > hugePageBytes || hugePageBytes%bs != 0 {
		return 0
	}
	return uint64(hugePageBytes / bs)
}
