//go:build unix && !linux

// This file maps a region on Unix systems other than Linux, which have no
// MAP_SYNC, fallocate or MADV_POPULATE_WRITE: a plain shared mapping, made
// durable with msync.

package pmem

import (
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/edsrzf/mmap-go"
	"golang.org/x/sys/unix"
)

// fallocate is unsupported here: the filesystem allocates blocks as they
// are first written.
func fallocate(f *os.File, off, n int64) error { return unix.ENOSYS }

// unsupported reports whether err from fallocate means the filesystem can
// never preallocate.
func unsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS)
}

// mapFile maps the first size bytes of f shared, read-write unless
// readOnly; dax is always false here.
func mapFile(f *os.File, size int64, readOnly bool) (data []byte, dax bool, err error) {
	if size <= 0 || size > math.MaxInt {
		return nil, false, fmt.Errorf("cannot map %d bytes", size)
	}
	mode := mmap.RDWR
	if readOnly {
		mode = mmap.RDONLY
	}
	m, err := mmap.MapRegion(f, int(size), mode, 0, 0)
	if err != nil {
		return nil, false, fmt.Errorf("mmap: %w", err)
	}
	return m, false, nil
}

// unmapFile undoes mapFile.
func unmapFile(data []byte, dax bool) error {
	m := mmap.MMap(data)
	return m.Unmap()
}

// populateWrite is unsupported outside Linux.
func populateWrite(b []byte) error { return unix.ENOSYS }

// populateUnsupported reports whether err means populateWrite will never
// work.
func populateUnsupported(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP)
}

// newView returns size bytes of zeroed anonymous memory for the view of
// emulated media. Without memfd there is no file to map windows from: mem
// is nil, and windows on emulated media are unsupported here.
func newView(size int64) (view []byte, mem *os.File, err error) {
	if size <= 0 || size > math.MaxInt {
		return nil, nil, fmt.Errorf("cannot map %d bytes", size)
	}
	view, err = unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap: %w", err)
	}
	return view, nil, nil
}

// haveMapSync: only Linux has MAP_SYNC.
const haveMapSync = false

// mapSyncFlags is never used where haveMapSync is false.
const mapSyncFlags = unix.MAP_SHARED

// mapNoReserve: reserving address space takes no swap on these systems
// either way.
const mapNoReserve = 0
