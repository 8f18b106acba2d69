//go:build unix

// This file gives windows their memory: a reserved range of address space
// into which region blocks and zero pages are mapped at fixed addresses, so
// that scattered blocks read as one contiguous slice.

package pmem

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugeAlign is the alignment of spans of at least that many bytes, so that
// a filesystem that can back them with huge pages (fsdax PMD faults) may.
const hugeAlign = 2 << 20

// Span is a range of address space reserved for a window: it starts
// inaccessible (PROT_NONE), and MapBlocks and MapZeros replace parts of it
// with region blocks or read-only zero pages, each replacement atomic (a
// concurrent load sees the old page or the new one, never a hole). The
// address range never moves and is never handed to anyone else until
// Release, so a slice of it stays valid (though its contents may change)
// for the span's life.
//
// Concurrency: Bytes may be used from any goroutine; MapBlocks, MapZeros
// and Release must be serialised by the caller. A store through a page that
// is mapped read-only (zero pages, blocks mapped read-only, or an
// unmapped part) raises SIGSEGV, as with any mmap.
type Span struct {
	r    *Region
	base unsafe.Pointer
	size int64
}

// CheckSpan reports whether windows can map this region's blocks: an error
// wrapping errors.ErrUnsupported when blocks are smaller than the page size
// (a page would hold parts of two blocks, which cannot be mapped apart), or
// when the region lives on emulated media without a memory file to map.
func (r *Region) CheckSpan() error {
	if r.BlockSize() < pageSize {
		return fmt.Errorf("pmem: %s: blocks of %d bytes are smaller than the page size (%d bytes), so they cannot be mapped one by one: %w",
			r.path, r.BlockSize(), pageSize, errors.ErrUnsupported)
	}
	if r.media != nil && r.media.mem == nil {
		return fmt.Errorf("pmem: %s: emulated media have no memory file to map on this system: %w", r.path, errors.ErrUnsupported)
	}
	return nil
}

// ReserveSpan reserves size bytes of address space (rounded up to pages),
// aligned to 2 MiB when size is at least that, inaccessible until mapped.
func (r *Region) ReserveSpan(size int64) (*Span, error) {
	if err := r.CheckSpan(); err != nil {
		return nil, err
	}
	if size <= 0 || size > 1<<47 {
		return nil, fmt.Errorf("pmem: reserve a span of %d bytes: bad size", size)
	}
	size = (size + pageSize - 1) &^ (pageSize - 1)
	extra := int64(0)
	if size >= hugeAlign {
		extra = hugeAlign
	}
	p, err := unix.MmapPtr(-1, 0, nil, uintptr(size+extra), unix.PROT_NONE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|mapNoReserve)
	if err != nil {
		return nil, fmt.Errorf("pmem: reserve a span of %d bytes: %w", size, err)
	}
	base := p
	if extra > 0 {
		// Trim the slack so that the span starts on a 2 MiB boundary.
		head := (hugeAlign - uintptr(p)%hugeAlign) % hugeAlign
		if head > 0 {
			_ = unix.MunmapPtr(p, head)
		}
		base = unsafe.Add(p, head)
		if tail := uintptr(extra) - head; tail > 0 {
			_ = unix.MunmapPtr(unsafe.Add(base, size), tail)
		}
	}
	return &Span{r: r, base: base, size: size}, nil
}

// Bytes returns the whole span as one slice.
func (sp *Span) Bytes() []byte {
	return unsafe.Slice((*byte)(sp.base), int(sp.size))
}

// Size returns the span's length in bytes, a multiple of the page size.
func (sp *Span) Size() int64 { return sp.size }

// checkRange validates bytes [at, at+n) of the span: page aligned and
// inside it.
func (sp *Span) checkRange(at, n int64) error {
	if at < 0 || n <= 0 || at > sp.size || n > sp.size-at || at%pageSize != 0 || n%pageSize != 0 {
		return fmt.Errorf("pmem: span range [%d,+%d) is not page aligned inside the span of %d bytes", at, n, sp.size)
	}
	return nil
}

// MapBlocks maps data blocks e at byte offset at of the span, shared
// (stores reach the region, durable after Region.Flush of e), writable or
// read-only. On a DAX region it asks for MAP_SYNC, as the region's own
// mapping does. It fails, changing nothing, on a read-only region when
// writable, on a bad range, or on a closed region; a failing mmap leaves
// the range as it was.
func (sp *Span) MapBlocks(at int64, e Extent, writable bool) error {
	return sp.MapBlockPages(at, e, 0, -1, writable)
}

// MapBlockPages is MapBlocks of bytes [from, from+n) of blocks e only
// (n < 0: to the end of e), both multiples of the page size: with blocks
// larger than a page, a window maps part of a block (the pages of the
// file's last block that lie inside the file).
func (sp *Span) MapBlockPages(at int64, e Extent, from, n int64, writable bool) error {
	r := sp.r
	off, end, ok := r.blockRange(e)
	if !ok {
		return fmt.Errorf("pmem: map %v: outside the data blocks [1,%d)", e, r.sb.BlockCount)
	}
	if n < 0 {
		n = end - off - from
	}
	if from < 0 || n <= 0 || from > end-off || n > end-off-from || from%pageSize != 0 {
		return fmt.Errorf("pmem: map bytes [%d,+%d) of %v: not page aligned inside the blocks", from, n, e)
	}
	off += from
	if err := sp.checkRange(at, n); err != nil {
		return err
	}
	if writable && r.ro {
		return fmt.Errorf("pmem: map %v writable: the region is open read-only: %w", e, os.ErrPermission)
	}
	m := r.m.Load()
	if m == nil {
		return fmt.Errorf("pmem: map %v: %w", e, os.ErrClosed)
	}
	fd := int(m.file.Fd())
	if r.media != nil {
		fd = int(r.media.mem.Fd())
	}
	prot := unix.PROT_READ
	if writable {
		prot |= unix.PROT_WRITE
	}
	flags := unix.MAP_SHARED | unix.MAP_FIXED
	if r.dax && haveMapSync {
		flags = mapSyncFlags | unix.MAP_FIXED
	}
	if _, err := unix.MmapPtr(fd, off, unsafe.Add(sp.base, at), uintptr(n), prot, flags); err != nil {
		return fmt.Errorf("pmem: map %v at span offset %d: %w", e, at, err)
	}
	return nil
}

// MapZeros maps read-only zero pages over bytes [at, at+n) of the span
// (private anonymous memory: the kernel's shared zero page, which takes no
// memory). A store to them raises SIGSEGV.
func (sp *Span) MapZeros(at, n int64) error {
	if err := sp.checkRange(at, n); err != nil {
		return err
	}
	if _, err := unix.MmapPtr(-1, 0, unsafe.Add(sp.base, at), uintptr(n), unix.PROT_READ,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED|mapNoReserve); err != nil {
		return fmt.Errorf("pmem: map zeros at span offset %d: %w", at, err)
	}
	return nil
}

// Release unmaps the whole span and gives the address range back. The
// span's slices must not be used afterwards. A second Release does nothing.
func (sp *Span) Release() error {
	if sp.size == 0 {
		return nil
	}
	err := unix.MunmapPtr(sp.base, uintptr(sp.size))
	if err != nil {
		return fmt.Errorf("pmem: release span: %w", err)
	}
	sp.size = 0
	return nil
}
