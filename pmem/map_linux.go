// This file is the Linux side of a region's mapping: MAP_SYNC on real fsdax,
// a plain shared mapping elsewhere, fallocate, and MADV_POPULATE_WRITE.

package pmem

import (
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/edsrzf/mmap-go"
	"golang.org/x/sys/unix"
)

// fallocate allocates file space for bytes [off, off+n) of f; allocated
// ranges stay as they are. It never changes the file size
// (FALLOC_FL_KEEP_SIZE): a region file that another process shrank must
// stay short, so that stores past its end fault (ErrFault) and a reopen
// finds it short, rather than be silently extended with zeros
// (TestRegionShrunkUnderTheStore). It returns the system error as is;
// unsupported tells whether the filesystem cannot preallocate at all.
func fallocate(f *os.File, off, n int64) error {
	for {
		err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, off, n)
		if err != unix.EINTR {
			return err
		}
	}
}

// unsupported reports whether err from fallocate means the filesystem can
// never preallocate.
func unsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS)
}

// mapFile maps the first size bytes of f shared, read-write unless
// readOnly (then f may be open read-only, and a store through the mapping
// faults). It first asks for MAP_SYNC, which only a DAX file grants; then
// stores are durable once their cache lines are written back, and dax is
// true. When the kernel or filesystem refuses MAP_SYNC (EOPNOTSUPP, or
// EINVAL from a kernel that predates MAP_SHARED_VALIDATE) it falls back to
// a plain shared mapping.
func mapFile(f *os.File, size int64, readOnly bool) (data []byte, dax bool, err error) {
	if size <= 0 || size > math.MaxInt {
		return nil, false, fmt.Errorf("cannot map %d bytes", size)
	}
	prot, mode := unix.PROT_READ|unix.PROT_WRITE, mmap.RDWR
	if readOnly {
		prot, mode = unix.PROT_READ, mmap.RDONLY
	}
	if haveMapSync {
		data, err := unix.Mmap(int(f.Fd()), 0, int(size), prot, mapSyncFlags)
		if err == nil {
			return data, true, nil
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL) {
			return nil, false, fmt.Errorf("mmap with MAP_SYNC: %w", err)
		}
	}
	m, err := mmap.MapRegion(f, int(size), mode, 0, 0)
	if err != nil {
		return nil, false, fmt.Errorf("mmap: %w", err)
	}
	return m, false, nil
}

// unmapFile undoes mapFile.
func unmapFile(data []byte, dax bool) error {
	if dax {
		return unix.Munmap(data)
	}
	m := mmap.MMap(data)
	return m.Unmap()
}

// populateWrite prefaults b's pages writable (MADV_POPULATE_WRITE, Linux
// 5.14 and later); on DAX this allocates and maps the blocks up front.
func populateWrite(b []byte) error {
	return unix.Madvise(b, unix.MADV_POPULATE_WRITE)
}

// populateUnsupported reports whether err means the kernel or the mapping
// will never honour populateWrite, so asking again is pointless.
func populateUnsupported(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP)
}

// newView returns size bytes of zeroed memory for the view of emulated
// media: a shared mapping of a memfd, so that windows (Span) can map the
// same pages by file offset, as they map a real region file.
func newView(size int64) (view []byte, mem *os.File, err error) {
	if size <= 0 || size > math.MaxInt {
		return nil, nil, fmt.Errorf("cannot map %d bytes", size)
	}
	fd, err := unix.MemfdCreate("daxstore-emulated-media", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("memfd_create: %w", err)
	}
	mem = os.NewFile(uintptr(fd), "daxstore-emulated-media")
	if err := mem.Truncate(size); err != nil {
		mem.Close()
		return nil, nil, fmt.Errorf("size the memfd: %w", err)
	}
	view, err = unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		mem.Close()
		return nil, nil, fmt.Errorf("mmap: %w", err)
	}
	return view, mem, nil
}

// mapNoReserve keeps a reserved span (PROT_NONE, or zero pages) from
// counting against the commit limit.
const mapNoReserve = unix.MAP_NORESERVE
