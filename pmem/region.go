//go:build unix

// This file creates, opens and closes a region file and hands out its mapped
// blocks.

package pmem

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pageSize is the granularity of msync and madvise.
var pageSize = int64(os.Getpagesize())

// CreateOptions configures Create. The zero value is valid except for Size.
type CreateOptions struct {
	// BlockSize is the block size in bytes: a power of two in
	// [MinBlockSize, MaxBlockSize]. 0 means DefaultBlockSize.
	BlockSize uint32
	// Size is the region size in bytes, including block 0 (the
	// superblock). It is rounded down to whole blocks and must give at
	// least 2 blocks.
	Size int64
	// UUID identifies the store. The zero UUID means: generate one with
	// NewUUID.
	UUID [16]byte
	// powerCut, for this module's crash-consistency tests only (set
	// through internal/pmemhooks), puts the region on emulated media that
	// lose unflushed stores when it cuts the power; see powerCut. nil
	// means a real mapping of the file.
	powerCut *powerCut
}

// OpenOptions configures OpenWith. The zero value opens a real mapping.
type OpenOptions struct {
	// powerCut, for crash-consistency tests only, opens the region on
	// emulated media: see CreateOptions.powerCut.
	powerCut *powerCut
	// ReadOnly opens the file read-only and maps it without write
	// permission, so a region the user may only read opens too. A store
	// through Bytes then faults, and Flush and Prefault have nothing to do.
	// It cannot be combined with emulated media.
	ReadOnly bool
}

// superblock validates the options and returns the superblock they
// describe.
func (o CreateOptions) superblock() (Superblock, error) {
	bs := o.BlockSize
	if bs == 0 {
		bs = DefaultBlockSize
	}
	if err := checkBlockSize(bs); err != nil {
		return Superblock{}, err
	}
	if o.Size < 2*int64(bs) {
		return Superblock{}, fmt.Errorf("size %d bytes: need at least 2 blocks of %d bytes (%d bytes)", o.Size, bs, 2*int64(bs))
	}
	sb := Superblock{
		Version:    FormatVersion,
		BlockSize:  bs,
		BlockCount: uint64(o.Size) / uint64(bs),
		UUID:       o.UUID,
	}
	if sb.UUID == ([16]byte{}) {
		u, err := NewUUID()
		if err != nil {
			return Superblock{}, err
		}
		sb.UUID = u
	}
	return sb, sb.validate()
}

// Region is an open region file, mapped into memory. Block 0 holds the
// superblock; blocks 1..BlockCount-1 hold data and are reached with Bytes.
//
// The file is sparse: a data block must be reserved (Reserve) before it is
// stored to, or a full filesystem makes the store raise SIGBUS.
//
// Concurrency: Bytes, Flush, FlushBytes, Drain, Prefault, Reserve,
// ReserveAll, Reserved and the accessors may be called from any number of
// goroutines at once. Close must be called
// only when no other call on the region is running and no slice returned by
// Bytes is used any more: afterwards those slices point at unmapped memory,
// and touching them kills the process with SIGSEGV.
type Region struct {
	path  string
	sb    Superblock
	shift uint      // log2(sb.BlockSize)
	size  int64     // BlockCount * BlockSize: the mapped length
	dax   bool      // mapped with MAP_SYNC
	insn  flushInsn // cache flush instruction for Flush; insnNone means msync
	// inRAM is set when the file lives on tmpfs or ramfs: its pages are
	// the file, there is no storage behind them to write back to, and
	// msync would be a system call per Flush that persists nothing.
	inRAM bool
	media *media // emulated media (CreateOptions.powerCut); nil for a real mapping
	ro    bool   // opened with OpenOptions.ReadOnly: SetSeal refuses
	space *space // which chunks of the file are allocated (space.go)

	// m is the live mapping; nil once closed. Only Close changes it, so
	// the hot paths pay one atomic load.
	m atomic.Pointer[mapping]
	// noPopulate is set once the kernel refuses MADV_POPULATE_WRITE, so
	// Prefault stops asking.
	noPopulate atomic.Bool
}

// mapping is the part of a Region that Close tears down.
type mapping struct {
	file *os.File
	data []byte  // the whole region, size bytes
	base uintptr // address of data[0]; the mapping never moves
}

// Create creates a new region file at path, which must not exist yet
// (O_EXCL), and returns it open and mapped. The file is sparse: Create
// sets its size (ftruncate) and allocates only the superblock's block, so a
// huge region takes no space until it is used; Reserve allocates the
// rest as blocks are handed out. Create writes the superblock through the
// mapping, flushes it, and fsyncs the file and its directory, so a region
// that Create returned survives a crash. On failure it removes the partial
// file; an existing file is never touched. The error of a full filesystem
// wraps syscall.ENOSPC. The file is created with mode 0600.
func Create(path string, opts CreateOptions) (*Region, error) {
	sb, err := opts.superblock()
	if err != nil {
		return nil, fmt.Errorf("pmem: create %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pmem: create: %w", err)
	}
	r, err := create(path, f, sb, opts.powerCut)
	if err != nil {
		// The file is ours (O_EXCL), so removing it cannot lose anyone's
		// data (TestCreateRemovesThePartialFile).
		_ = f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("pmem: create %s: %w", path, err)
	}
	return r, nil
}

// create lays out a region in the new, empty file f, on emulated media if
// pc is not nil. On error the caller closes and removes f; create only
// undoes its own mapping.
func create(path string, f *os.File, sb Superblock, pc *powerCut) (*Region, error) {
	enc, err := sb.MarshalBinary()
	if err != nil {
		return nil, err
	}
	size := int64(sb.BlockCount) * int64(sb.BlockSize)
	if err := f.Truncate(size); err != nil {
		return nil, fmt.Errorf("ftruncate: %w", err)
	}
	// The superblock is stored through the mapping below: its block must
	// have space first, or a full filesystem would make that store SIGBUS.
	if err := fallocate(f, 0, int64(sb.BlockSize)); err != nil && !unsupported(err) {
		return nil, fmt.Errorf("fallocate the superblock: %w", err)
	}
	r, err := mapRegion(path, f, sb, size, pc, false)
	if err != nil {
		return nil, err
	}
	m := r.m.Load()
	copy(m.data, enc)
	if r.media != nil {
		// Creating the region is set-up, not a flush a cut may land in.
		err = r.media.persist(0, SuperblockSize)
	} else {
		err = r.flush(m, 0, SuperblockSize)
	}
	if err != nil {
		err = fmt.Errorf("flush superblock: %w", err)
	}
	if err == nil {
		if err = f.Sync(); err != nil {
			err = fmt.Errorf("fsync: %w", err)
		}
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		_ = r.unmap(m)
		return nil, err
	}
	return r, nil
}

// mapRegion maps the first size bytes of f, which hold a region with
// superblock sb: on emulated media if pc is not nil, else for real, without
// write permission if readOnly.
func mapRegion(path string, f *os.File, sb Superblock, size int64, pc *powerCut, readOnly bool) (*Region, error) {
	if pc != nil {
		md, err := pc.attach(f, size)
		if err != nil {
			return nil, err
		}
		r := newRegion(path, f, sb, md.view, false)
		r.media = md
		r.ro = readOnly
		return r, nil
	}
	data, dax, err := mapFile(f, size, readOnly)
	if err != nil {
		return nil, err
	}
	r := newRegion(path, f, sb, data, dax)
	r.ro = readOnly
	// Populating pages writable would fail on a read-only mapping.
	r.noPopulate.Store(readOnly)
	return r, nil
}

// unmap undoes mapRegion. It never writes anything to the file.
func (r *Region) unmap(m *mapping) error {
	if r.media != nil {
		return r.media.detach()
	}
	return unmapFile(m.data, r.dax)
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory for fsync: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	// Some filesystems cannot fsync a directory and say EINVAL; there is
	// nothing more to do on them.
	if err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// Open opens and maps an existing region. It reads (pread) and checks the
// superblock before mapping anything, and never writes to the file. The
// error wraps ErrCorrupt if the superblock is bad or the file is shorter
// than BlockCount*BlockSize; bytes past the region in a longer file are
// ignored. A failed Open leaves the file as it was
// (TestOpenRejectsCorruptRegionsWithoutChangingThem). Open does not touch
// the data blocks, so a huge, mostly empty region opens in constant time
// (TestOpenLeavesDataBlocksUntouchedAndPrefaultPopulatesReservedBlocks);
// see Prefault. No chunk is known to be reserved after Open: see Reserve.
// Open is OpenWith with the zero OpenOptions.
func Open(path string) (*Region, error) {
	return OpenWith(path, OpenOptions{})
}

// OpenWith opens an existing region as Open does, with options. On
// emulated media (opts.powerCut) it reads the whole file into the view, so
// it takes time in proportion to the region size, and it fails with an
// error wrapping errPowerOff while the power is cut.
func OpenWith(path string, opts OpenOptions) (*Region, error) {
	flag := os.O_RDWR
	if opts.ReadOnly {
		if opts.powerCut != nil {
			return nil, fmt.Errorf("pmem: open %s: read-only emulated media are not supported", path)
		}
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("pmem: open: %w", err)
	}
	r, err := open(path, f, opts)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("pmem: open %s: %w", path, err)
	}
	return r, nil
}

func open(path string, f *os.File, opts OpenOptions) (*Region, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (mode %v)", fi.Mode())
	}
	var buf [SuperblockSize]byte
	n, err := f.ReadAt(buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read superblock: %w", err)
	}
	sb, err := decodeSuperblock(buf[:n])
	if err != nil {
		return nil, err
	}
	size := int64(sb.BlockCount) * int64(sb.BlockSize)
	if fi.Size() < size {
		return nil, fmt.Errorf("%w region: file is %d bytes, but the superblock says %d blocks of %d bytes (%d bytes)",
			ErrCorrupt, fi.Size(), sb.BlockCount, sb.BlockSize, size)
	}
	return mapRegion(path, f, sb, size, opts.powerCut, opts.ReadOnly)
}

// newRegion wraps a validated superblock and its mapping.
func newRegion(path string, f *os.File, sb Superblock, data []byte, dax bool) *Region {
	r := &Region{
		path:  path,
		sb:    sb,
		size:  int64(len(data)),
		dax:   dax,
		space: newSpace(int64(len(data)), int64(sb.BlockSize)),
	}
	for bs := sb.BlockSize; bs > 1; bs >>= 1 {
		r.shift++
	}
	if dax {
		r.insn = cpuFlushInsn
	} else {
		r.inRAM = inRAM(f)
	}
	r.m.Store(&mapping{file: f, data: data, base: uintptr(unsafe.Pointer(unsafe.SliceData(data)))})
	return r
}

// Superblock returns the region's superblock.
func (r *Region) Superblock() Superblock { return r.sb }

// BlockSize returns the block size in bytes.
func (r *Region) BlockSize() int64 { return int64(r.sb.BlockSize) }

// BlockCount returns the number of blocks, including block 0.
func (r *Region) BlockCount() uint64 { return r.sb.BlockCount }

// Size returns the region size in bytes: BlockCount * BlockSize.
func (r *Region) Size() int64 { return r.size }

// Path returns the path the region was created or opened with.
func (r *Region) Path() string { return r.path }

// DAX reports whether the region is mapped with MAP_SYNC, that is, lives on
// a real fsdax filesystem: then writing back the CPU caches alone makes
// stores durable, and the kernel keeps file metadata in sync on page faults.
// When false, Flush uses msync, or writes to the file on emulated media.
func (r *Region) DAX() bool { return r.dax }

// Emulated reports whether the region lives on emulated media that a
// powerCut controls.
func (r *Region) Emulated() bool { return r.media != nil }

// FlushMethod names how Flush makes stores durable: "clwb", "clflushopt" or
// "clflush" (each followed by SFENCE) on DAX, "emulated" on emulated media,
// "none (memory)" for a file on tmpfs or ramfs, whose pages are all the
// storage it has, "msync" otherwise.
func (r *Region) FlushMethod() string {
	if r.media != nil {
		return "emulated"
	}
	if r.insn != insnNone {
		return r.insn.String()
	}
	if r.inRAM {
		return "none (memory)"
	}
	return "msync"
}

// blockRange returns the byte range [off, end) of data blocks e, or ok
// false if e is empty, touches block 0 or reaches past the region.
func (r *Region) blockRange(e Extent) (off, end int64, ok bool) {
	count := r.sb.BlockCount
	if e.Len == 0 || e.Start == 0 || uint64(e.Start) >= count || e.Len > count-uint64(e.Start) {
		return 0, 0, false
	}
	return int64(e.Start) << r.shift, int64(e.End()) << r.shift, true
}

// Bytes returns the mapped bytes of data blocks e: a slice that aliases the
// region (zero-copy), with its capacity limited to its length. Stores into
// it become durable only after Flush. It returns nil if e is empty, starts
// at block 0, reaches past BlockCount, or the region is closed. Bytes does
// not allocate and takes no lock.
func (r *Region) Bytes(e Extent) []byte {
	m := r.m.Load()
	off, end, ok := r.blockRange(e)
	if m == nil || !ok {
		return nil
	}
	return m.data[off:end:end]
}

// Prefault asks the kernel, best effort, to fault in the pages covering
// data blocks e writable (MADV_POPULATE_WRITE, Linux 5.14 and later), so
// that the first stores to them do not take page faults. It does so only
// if every block of e is Reserved: populating a page writable allocates
// it, and Prefault never takes file space that Reserve did not. Invalid
// or unreserved extents, a closed region and every kernel error are
// ignored; once the kernel says it does not support the request (EINVAL,
// ENOSYS, EOPNOTSUPP), later calls return at once.
func (r *Region) Prefault(e Extent) {
	if r.noPopulate.Load() || !r.Reserved(e) {
		return
	}
	m := r.m.Load()
	off, end, ok := r.blockRange(e)
	if m == nil || !ok {
		return
	}
	off &^= pageSize - 1
	end = min((end+pageSize-1)&^(pageSize-1), r.size)
	if err := populateWrite(m.data[off:end]); err != nil && populateUnsupported(err) {
		r.noPopulate.Store(true)
	}
}

// Close unmaps the region and closes the file. It does not flush: stores
// that were not flushed may be lost in a crash, and on emulated media they
// are always lost. A second Close returns an error wrapping os.ErrClosed.
// See Region for when Close may be called.
func (r *Region) Close() error {
	m := r.m.Swap(nil)
	if m == nil {
		return fmt.Errorf("pmem: close %s: %w", r.path, os.ErrClosed)
	}
	var errs []error
	if err := r.unmap(m); err != nil {
		errs = append(errs, fmt.Errorf("munmap: %w", err))
	}
	if err := m.file.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pmem: close %s: %w", r.path, err)
	}
	return nil
}
