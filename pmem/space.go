//go:build unix

package pmem

// Region space follows use: Create makes the region file sparse, so a huge,
// empty region costs neither RAM (tmpfs) nor disk. File space is allocated
// (fallocate) in chunks by Reserve before any block in them is written. A
// store through the mapping into a page the filesystem cannot back would
// raise SIGBUS and kill the process; a failed Reserve is an error instead.

import (
	"fmt"
	"math/bits"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// MaxSpaceChunk is the largest unit in which Reserve allocates file space.
// Smaller regions use smaller chunks (SpaceChunk), so that a region never
// takes much more of its filesystem than it uses.
const MaxSpaceChunk = 64 << 20

// space records which chunks of a region file are known to be allocated.
// It starts empty at every Create and Open: allocating a range that is
// already allocated changes nothing and costs no space, so forgetting is
// safe.
type space struct {
	shift uint            // log2 of the chunk size in bytes
	done  []atomic.Uint64 // one bit per chunk: allocated in the file
	// mu serialises the fallocate calls, so that concurrent reservations
	// of one chunk allocate it once. The fast path (every bit set) does
	// not take it.
	mu sync.Mutex
	// unsupported is set once the filesystem says it cannot preallocate
	// (EOPNOTSUPP): then it allocates blocks as they are first written,
	// and Reserve has nothing to do.
	unsupported atomic.Bool
}

// chunkShift returns log2 of the chunk size for a region of size bytes in
// blocks of bs: about a 64th of the region, a power of two between
// max(bs, page size) and MaxSpaceChunk.
func chunkShift(size, bs int64) uint {
	lo := max(bs, pageSize, 64<<10)
	c := min(max(size/64, lo), MaxSpaceChunk)
	shift := uint(bits.Len64(uint64(c)) - 1)
	if int64(1)<<shift < c {
		shift++ // round up to a power of two
	}
	return shift
}

func newSpace(size, bs int64) *space {
	shift := chunkShift(size, bs)
	chunks := (uint64(size) + 1<<shift - 1) >> shift
	return &space{shift: shift, done: make([]atomic.Uint64, (chunks+63)/64)}
}

func (sp *space) has(c uint64) bool {
	return sp.done[c/64].Load()&(1<<(c%64)) != 0
}

func (sp *space) set(c uint64) {
	sp.done[c/64].Or(1 << (c % 64))
}

// reserved reports whether chunks [c0, c1] are all known to be allocated.
func (sp *space) reserved(c0, c1 uint64) bool {
	if sp.unsupported.Load() {
		return true
	}
	for c := c0; c <= c1; c++ {
		if !sp.has(c) {
			return false
		}
	}
	return true
}

// SpaceChunk returns the unit in bytes, a power of two and a multiple of
// the block size, in which Reserve allocates file space.
func (r *Region) SpaceChunk() int64 { return 1 << r.space.shift }

// Reserve makes sure the region file has space allocated for every block
// of data blocks e, so that stores into them cannot fail for want of space.
// It allocates (fallocate) whole chunks of SpaceChunk bytes that are not
// yet known to be allocated; once a chunk is, Reserve of blocks in it costs
// a few atomic loads. On a filesystem that cannot preallocate it does
// nothing, and blocks are allocated as they are first written, as on any
// sparse file.
//
// An error changes nothing that was known before: a full filesystem gives
// an error wrapping syscall.ENOSPC (or EDQUOT) that names the file, the
// filesystem type and its free space. Reserve is safe for concurrent use.
// It refuses an invalid extent, a read-only region and a closed one.
func (r *Region) Reserve(e Extent) error {
	off, end, ok := r.blockRange(e)
	if !ok {
		return fmt.Errorf("pmem: reserve %v: not data blocks of a region of %d blocks", e, r.sb.BlockCount)
	}
	sp := r.space
	c0, c1 := uint64(off)>>sp.shift, uint64(end-1)>>sp.shift
	if sp.reserved(c0, c1) {
		return nil
	}
	if r.ro {
		return fmt.Errorf("pmem: reserve %v of %s: %w", e, r.path, unix.EROFS)
	}
	m := r.m.Load()
	if m == nil {
		return fmt.Errorf("pmem: reserve %v of %s: %w", e, r.path, os.ErrClosed)
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for c := c0; c <= c1; {
		if sp.has(c) {
			c++
			continue
		}
		run := c + 1
		for run <= c1 && !sp.has(run) {
			run++
		}
		lo, hi := int64(c)<<sp.shift, min(int64(run)<<sp.shift, r.size)
		err := fallocate(m.file, lo, hi-lo)
		switch {
		case err == nil:
		case unsupported(err):
			sp.unsupported.Store(true)
			return nil
		default:
			return fmt.Errorf("pmem: reserve %d bytes at offset %d of %s (%s): %w", hi-lo, lo, r.path, describeFS(m.file), err)
		}
		for ; c < run; c++ {
			sp.set(c)
		}
	}
	return nil
}

// ReserveAll reserves the file space of the whole region at once, as
// Reserve of every data block would, but with one fallocate even on tmpfs:
// it allocates the pages without zeroing or mapping them, so the process
// does not map the whole region at once. Errors are those of Reserve.
func (r *Region) ReserveAll() error {
	if r.ro {
		return fmt.Errorf("pmem: reserve all of %s: %w", r.path, unix.EROFS)
	}
	m := r.m.Load()
	if m == nil {
		return fmt.Errorf("pmem: reserve all of %s: %w", r.path, os.ErrClosed)
	}
	sp := r.space
	sp.mu.Lock()
	defer sp.mu.Unlock()
	switch err := fallocate(m.file, 0, r.size); {
	case err == nil:
	case unsupported(err):
		sp.unsupported.Store(true)
		return nil
	default:
		return fmt.Errorf("pmem: reserve all %d bytes of %s (%s): %w", r.size, r.path, describeFS(m.file), err)
	}
	for c := uint64(0); c<<sp.shift < uint64(r.size); c++ {
		sp.set(c)
	}
	return nil
}

// Reserved reports whether every block of data blocks e is known to have
// file space allocated (Reserve), so that a store into it cannot fail for
// want of space. It reports false for an invalid extent.
func (r *Region) Reserved(e Extent) bool {
	off, end, ok := r.blockRange(e)
	if !ok {
		return false
	}
	return r.space.reserved(uint64(off)>>r.space.shift, uint64(end-1)>>r.space.shift)
}

// FileBytes returns the file space the region takes on its filesystem
// (st_blocks): the superblock's block plus every chunk reserved so far by
// this or an earlier process, or the whole region once ReserveAll ran.
func (r *Region) FileBytes() (int64, error) {
	m := r.m.Load()
	if m == nil {
		return 0, fmt.Errorf("pmem: stat %s: %w", r.path, os.ErrClosed)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(m.file.Fd()), &st); err != nil {
		return 0, fmt.Errorf("pmem: stat %s: %w", r.path, err)
	}
	return int64(st.Blocks) * 512, nil
}

// fsMagic names the filesystems a region is usually found on.
var fsMagic = map[int64]string{
	0x01021994: "tmpfs",
	0xEF53:     "ext4",
	0x58465342: "xfs",
	0x9123683E: "btrfs",
	0x2FC12FC1: "zfs",
	0x6969:     "nfs",
	0x65735546: "fuse",
}

// inRAM reports whether f lives on tmpfs or ramfs, whose pages are the
// file itself.
func inRAM(f *os.File) bool {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return false
	}
	const tmpfsMagic, ramfsMagic = 0x01021994, 0x858458f6 // Linux's statfs f_type
	return int64(st.Type) == tmpfsMagic || int64(st.Type) == ramfsMagic
}

// describeFS names the filesystem holding f and its free space, for the
// error of a full filesystem.
func describeFS(f *os.File) string {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return "filesystem unknown: " + err.Error()
	}
	name, ok := fsMagic[int64(st.Type)]
	if !ok {
		name = fmt.Sprintf("filesystem type %#x", st.Type)
	}
	return fmt.Sprintf("%s with %d bytes free", name, int64(st.Bavail)*int64(st.Bsize))
}
