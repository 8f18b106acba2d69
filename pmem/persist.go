//go:build unix

// This file makes stores to a region durable: cache line write-back on real
// DAX, msync otherwise.

package pmem

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Flush makes every store to data blocks e that happened before the call
// durable: once Flush returns nil, the bytes survive a crash or power loss.
// On DAX it writes back each cache line (CLWB, CLFLUSHOPT or CLFLUSH) and
// then fences (SFENCE); on emulated media it writes the covering cache
// lines to the file (nothing, silently, after a power cut: see powerCut);
// on tmpfs or ramfs, whose pages are the file, it does nothing; otherwise
// it msyncs (MS_SYNC) the covering pages.
// An empty extent is a no-op. It returns an error, and flushes nothing, if
// e touches block 0 or reaches past BlockCount, or the region is closed.
func (r *Region) Flush(e Extent) error {
	m := r.m.Load()
	if m == nil {
		return fmt.Errorf("pmem: flush %s: %w", r.path, os.ErrClosed)
	}
	if e.Empty() {
		return nil
	}
	off, end, ok := r.blockRange(e)
	if !ok {
		return fmt.Errorf("pmem: flush %s: extent %v is outside the data blocks [1,%d)", r.path, e, r.sb.BlockCount)
	}
	if err := r.flush(m, off, end-off); err != nil {
		return fmt.Errorf("pmem: flush %s: extent %v: %w", r.path, e, err)
	}
	return nil
}

// FlushBytes is Flush for the byte range [off, off+n) of the region, for
// writes that cover part of a block. Offsets count from the start of the
// region (block 0). n == 0 is a no-op. It returns an error, and flushes
// nothing, if the range is negative or reaches past Size, or the region is
// closed.
func (r *Region) FlushBytes(off, n int64) error {
	m := r.m.Load()
	if m == nil {
		return fmt.Errorf("pmem: flush %s: %w", r.path, os.ErrClosed)
	}
	if off < 0 || n < 0 || off > r.size || n > r.size-off {
		return fmt.Errorf("pmem: flush %s: byte range [%d,+%d) is outside the region of %d bytes", r.path, off, n, r.size)
	}
	if n == 0 {
		return nil
	}
	if err := r.flush(m, off, n); err != nil {
		return fmt.Errorf("pmem: flush %s: byte range [%d,+%d): %w", r.path, off, n, err)
	}
	return nil
}

// flush persists bytes [off, off+n) of m, which the caller has checked.
func (r *Region) flush(m *mapping, off, n int64) error {
	if r.media != nil {
		return r.media.flush(off, n)
	}
	if r.insn != insnNone {
		// CLWB, CLFLUSHOPT and CLFLUSH check the page as a load does:
		// on a line whose page the file no longer backs they fault too.
		return guard(func() {
			flushLines(r.insn, m.base+uintptr(off), uintptr(n))
			storeFence()
		})
	}
	if r.inRAM {
		// A tmpfs or ramfs file is its pages: a store through a shared
		// mapping is in the file at once, and survives the process as
		// msync would make it; nothing survives a power cut either way.
		return nil
	}
	// msync wants a page-aligned address; it rounds the length up itself.
	start := off &^ (pageSize - 1)
	for {
		err := unix.Msync(m.data[start:off+n], unix.MS_SYNC)
		if err == nil {
			return nil
		}
		if err != unix.EINTR {
			return fmt.Errorf("msync: %w", err)
		}
	}
}

// Drain is an ordering point after a series of flushes: every store and
// flush before it is complete before any store after it. Flush already
// drains, so Drain is only needed by code that orders its own stores
// against earlier flushes. It fences (SFENCE) on DAX and does nothing when
// Flush uses msync, which is synchronous.
func (r *Region) Drain() {
	if r.insn != insnNone {
		storeFence()
	}
}
