package fusefs

import (
	"context"
	"errors"
	"io"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/daxstore/daxstore/dax"
)

// fileNode is a file, known by its dax inode number, which stays the same
// across renames. While the kernel has it open, one *dax.File serves every
// handle (refs counts them); its path is then the File's key, otherwise
// the node's place in go-fuse's tree, checked against the inode number.
type fileNode struct {
	fs.Inode
	noXattrs
	s   *Server
	ino uint64

	mu   sync.Mutex
	f    *dax.File
	refs int
}

var (
	_ fs.NodeOpener         = (*fileNode)(nil)
	_ fs.NodeReader         = (*fileNode)(nil)
	_ fs.NodeWriter         = (*fileNode)(nil)
	_ fs.NodeReleaser       = (*fileNode)(nil)
	_ fs.NodeFlusher        = (*fileNode)(nil)
	_ fs.NodeFsyncer        = (*fileNode)(nil)
	_ fs.NodeGetattrer      = (*fileNode)(nil)
	_ fs.NodeSetattrer      = (*fileNode)(nil)
	_ fs.NodeAllocater      = (*fileNode)(nil)
	_ fs.NodeLseeker        = (*fileNode)(nil)
	_ fs.NodeCopyFileRanger = (*fileNode)(nil)
	_ fs.NodeStatfser       = (*fileNode)(nil)
	_ fs.NodeOnForgetter    = (*fileNode)(nil)
)

// handle is an open file description: the node's shared File stays open
// until the last handle is released.
type handle struct{ n *fileNode }

func (n *fileNode) OnForget() {
	n.s.nodesMu.Lock()
	if n.s.nodes[n.ino] == n {
		delete(n.s.nodes, n.ino)
	}
	n.s.nodesMu.Unlock()
}

// key is the file's current key.
func (n *fileNode) key() (string, syscall.Errno) {
	n.mu.Lock()
	f := n.f
	n.mu.Unlock()
	if f != nil {
		return f.Key(), 0
	}
	return n.s.nodePath(n.EmbeddedInode())
}

// stat describes the file, from its open File or else by its path; ENOENT
// when the path now names another file.
func (n *fileNode) stat() (dax.FileInfo, syscall.Errno) {
	n.mu.Lock()
	f := n.f
	n.mu.Unlock()
	if f != nil {
		fi, err := f.Stat()
		if err != nil {
			return fi, n.s.errno("stat", f.Key(), err)
		}
		return fi, 0
	}
	key, e := n.s.nodePath(n.EmbeddedInode())
	if e != 0 {
		return dax.FileInfo{}, e
	}
	fi, err := n.s.st.Stat(key)
	if err != nil {
		return fi, n.s.errno("stat", key, err)
	}
	if fi.Ino != n.ino {
		return fi, syscall.ENOENT
	}
	return fi, 0
}

// adopt makes f, just opened or created, the node's shared File, or
// closes it when the node has one already.
func (n *fileNode) adopt(f *dax.File) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.f != nil {
		n.refs++
		f.Close()
		return
	}
	n.f, n.refs = f, 1
	n.s.own.Store(f, n)
}

// acquire returns the node's shared File, opening it if no handle has it
// open; release drops the reference.
func (n *fileNode) acquire() (*dax.File, syscall.Errno) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.f != nil {
		n.refs++
		return n.f, 0
	}
	key, e := n.s.nodePath(n.EmbeddedInode())
	if e != 0 {
		return nil, e
	}
	f, err := n.s.st.Open(key)
	if err != nil {
		return nil, n.s.errno("open", key, err)
	}
	fi, err := f.Stat()
	if err != nil || fi.Ino != n.ino {
		f.Close()
		if err != nil {
			return nil, n.s.errno("open", key, err)
		}
		return nil, syscall.ENOENT
	}
	n.f, n.refs = f, 1
	n.s.own.Store(f, n)
	return f, 0
}

func (n *fileNode) release() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.refs--; n.refs > 0 || n.f == nil {
		return
	}
	f := n.f
	n.f = nil
	n.s.own.Delete(f)
	if err := f.Close(); err != nil && !errors.Is(err, dax.ErrClosed) {
		n.s.log.Printf("fusefs: close %q: %v", f.Key(), err)
	}
}

// file is the shared File of an open node (nil when none is open).
func (n *fileNode) file() *dax.File {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.f
}

func (n *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	f, e := n.acquire()
	if e != 0 {
		return nil, 0, e
	}
	if flags&syscall.O_TRUNC != 0 {
		if err := f.TruncateWith(ctx, 0, dax.BreakOptions{}); err != nil {
			n.release()
			return nil, 0, n.s.errno("open", f.Key(), err)
		}
	}
	// No FOPEN_DIRECT_IO: the page cache serves reads and mmap, and the
	// notifier invalidates it for changes the kernel did not make. No
	// FOPEN_KEEP_CACHE either: each open starts from what the store holds.
	return &handle{n: n}, 0, 0
}

func (n *fileNode) Release(ctx context.Context, fh fs.FileHandle) syscall.Errno {
	if _, ok := fh.(*handle); ok {
		n.release()
	}
	return 0
}

func (n *fileNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f := n.file()
	if f == nil {
		return nil, syscall.EBADF
	}
	c, err := f.ReadAt(dest, off)
	if err != nil && err != io.EOF {
		return nil, n.s.errno("read", f.Key(), err)
	}
	return fuse.ReadResultData(dest[:c]), 0
}

func (n *fileNode) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	f := n.file()
	if f == nil {
		return 0, syscall.EBADF
	}
	if e := sizeErrno(off, int64(len(data))); e != 0 {
		return 0, e
	}
	c, err := f.WriteAt(data, off)
	if err != nil {
		if c > 0 {
			return uint32(c), 0
		}
		return 0, n.s.errno("write", f.Key(), err)
	}
	return uint32(c), 0
}

// Flush and Fsync make the file durable. Every write is durable when it
// returns unless the store runs without syncs, so they are cheap.
func (n *fileNode) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno {
	return n.sync()
}

func (n *fileNode) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	return n.sync()
}

func (n *fileNode) sync() syscall.Errno {
	f := n.file()
	if f == nil {
		return 0
	}
	if err := f.Sync(); err != nil {
		return n.s.errno("fsync", f.Key(), err)
	}
	return 0
}

func (n *fileNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fi, e := n.stat()
	if e != 0 {
		return e
	}
	n.s.fileAttr(fi, &out.Attr)
	return 0
}

func (n *fileNode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	s := n.s
	if size, ok := in.GetSize(); ok {
		if e := sizeErrno(int64(size), 0); e != 0 {
			return e
		}
		f, e := n.acquire()
		if e != 0 {
			return e
		}
		err := f.TruncateWith(ctx, int64(size), dax.BreakOptions{})
		key := f.Key()
		n.release()
		if err != nil {
			return s.errno("truncate", key, err)
		}
	}
	if c := attrChange(in); c.Mask != 0 {
		fi, e := n.stat()
		if e != 0 {
			return e
		}
		if !fi.HasAttr {
			c = s.withDefaults(c, 0o644)
		}
		done := s.beginOwn(fi.Key)
		_, err := s.st.SetAttr(fi.Key, c)
		done()
		if err != nil {
			return s.errno("setattr", fi.Key, err)
		}
	}
	fi, e := n.stat()
	if e != 0 {
		return e
	}
	s.fileAttr(fi, &out.Attr)
	return 0
}

// The fallocate(2) modes the mount knows.
const (
	fallocKeepSize  = 0x01
	fallocPunchHole = 0x02
	fallocZeroRange = 0x10
)

// Allocate serves fallocate(2): mode 0 and KEEP_SIZE reserve blocks
// (KEEP_SIZE only inside the file: the store keeps no blocks past the
// end), PUNCH_HOLE|KEEP_SIZE punches, ZERO_RANGE zeroes (and grows the
// file without KEEP_SIZE). Every other mode is EOPNOTSUPP. Breaks of
// pinned blocks follow the store's policy.
func (n *fileNode) Allocate(ctx context.Context, fh fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	f := n.file()
	if f == nil {
		return syscall.EBADF
	}
	switch mode {
	case 0, fallocKeepSize, fallocPunchHole | fallocKeepSize, fallocZeroRange, fallocZeroRange | fallocKeepSize:
	default:
		return syscall.EOPNOTSUPP
	}
	if off > dax.MaxFileSize || size > dax.MaxFileSize {
		return syscall.EFBIG
	}
	o, l := int64(off), int64(size)
	if l <= 0 {
		return syscall.EINVAL
	}
	if e := sizeErrno(o, l); e != 0 && (mode == 0 || mode == fallocZeroRange) {
		return e
	}
	s := n.s
	key := f.Key()
	var err error
	switch mode {
	case 0:
		err = f.Allocate(o, l)
	case fallocKeepSize:
		var cur int64
		if cur, err = f.Size(); err == nil && o < cur {
			err = f.Allocate(o, min(l, cur-o))
		}
	case fallocPunchHole | fallocKeepSize:
		err = f.PunchHoleWith(ctx, o, min(l, dax.MaxFileSize-o), dax.BreakOptions{})
	default:
		if err = f.ZeroRangeWith(ctx, o, min(l, dax.MaxFileSize-o), dax.BreakOptions{}); err == nil && mode&fallocKeepSize == 0 {
			var cur int64
			if cur, err = f.Size(); err == nil && cur < o+l {
				err = f.TruncateWith(ctx, o+l, dax.BreakOptions{})
			}
		}
	}
	if err != nil {
		return s.errno("fallocate", key, err)
	}
	if mode&(fallocPunchHole|fallocZeroRange) != 0 {
		// The kernel drops its cached pages of a punched or zeroed range
		// itself; dropping them once more costs little and does not rely
		// on it.
		s.q.push(dax.FileChange{Kind: dax.ChangeData, Key: key, Ino: n.ino, Off: o, Len: l})
	}
	return 0
}

// The lseek(2) whences the kernel passes on.
const (
	seekData = 3
	seekHole = 4
)

func (n *fileNode) Lseek(ctx context.Context, fh fs.FileHandle, off uint64, whence uint32) (uint64, syscall.Errno) {
	f := n.file()
	if f == nil {
		return 0, syscall.EBADF
	}
	if off > dax.MaxFileSize {
		return 0, syscall.ENXIO
	}
	var r int64
	var err error
	switch whence {
	case seekData:
		r, err = f.SeekData(int64(off))
	case seekHole:
		r, err = f.SeekHole(int64(off))
	default:
		return 0, syscall.EINVAL
	}
	if err == io.EOF {
		return 0, syscall.ENXIO
	}
	if err != nil {
		return 0, n.s.errno("lseek", f.Key(), err)
	}
	return uint64(r), 0
}

// copyChunk bounds the buffer copy_file_range copies through.
const copyChunk = 1 << 20

// CopyFileRange copies the data runs of the source with ReadAt and
// WriteAt and punches the destination where the source has holes, so a
// sparse file stays sparse. It copies at most 1 GiB per call, as the
// reply's count allows; callers loop.
func (n *fileNode) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle,
	offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	if flags != 0 {
		return 0, syscall.EINVAL
	}
	on, ok := out.Operations().(*fileNode)
	if !ok {
		return 0, syscall.EXDEV
	}
	src, dst := n.file(), on.file()
	if src == nil || dst == nil {
		return 0, syscall.EBADF
	}
	if offIn > dax.MaxFileSize || offOut > dax.MaxFileSize {
		return 0, syscall.EFBIG
	}
	length = min(length, 1<<30)
	s := n.s
	size, err := src.Size()
	if err != nil {
		return 0, s.errno("copy_file_range", src.Key(), err)
	}
	start := int64(offIn)
	if start >= size || length == 0 {
		return 0, 0
	}
	end := min(start+int64(length), size)
	if e := sizeErrno(int64(offOut), end-start); e != 0 {
		return 0, e
	}
	delta := int64(offOut) - start
	buf := make([]byte, min(copyChunk, end-start))
	for pos := start; pos < end; {
		data, err := src.SeekData(pos)
		if err == io.EOF || data > end {
			data = end
		} else if err != nil {
			return 0, s.errno("copy_file_range", src.Key(), err)
		}
		if data > pos {
			if err := dst.PunchHoleWith(ctx, pos+delta, data-pos, dax.BreakOptions{}); err != nil {
				return 0, s.errno("copy_file_range", dst.Key(), err)
			}
			pos = data
			continue
		}
		hole, err := src.SeekHole(pos)
		if err == io.EOF || hole > end {
			hole = end
		} else if err != nil {
			return 0, s.errno("copy_file_range", src.Key(), err)
		}
		for pos < hole {
			b := buf[:min(int64(len(buf)), hole-pos)]
			c, err := src.ReadAt(b, pos)
			if err != nil && err != io.EOF {
				return 0, s.errno("copy_file_range", src.Key(), err)
			}
			if c == 0 {
				return 0, syscall.EIO
			}
			if _, err := dst.WriteAt(b[:c], pos+delta); err != nil {
				return 0, s.errno("copy_file_range", dst.Key(), err)
			}
			pos += int64(c)
		}
	}
	dsize, err := dst.Size()
	if err == nil && dsize < end+delta {
		err = dst.TruncateWith(ctx, end+delta, dax.BreakOptions{})
	}
	if err != nil {
		return 0, s.errno("copy_file_range", dst.Key(), err)
	}
	return uint32(end - start), 0
}

func (n *fileNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.s.statfs(out)
}
