package fusefs

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/daxstore/daxstore/dax"
)

// dirNode is a directory: the root, an explicit directory (Mkdir) or an
// implicit one (keys lie under it). Its path is where it sits in the tree
// go-fuse keeps, which go-fuse moves on a rename through the mount and the
// notifier moves on a rename through the API.
type dirNode struct {
	fs.Inode
	noXattrs
	s *Server
}

var (
	_ fs.NodeLookuper  = (*dirNode)(nil)
	_ fs.NodeReaddirer = (*dirNode)(nil)
	_ fs.NodeGetattrer = (*dirNode)(nil)
	_ fs.NodeSetattrer = (*dirNode)(nil)
	_ fs.NodeMkdirer   = (*dirNode)(nil)
	_ fs.NodeRmdirer   = (*dirNode)(nil)
	_ fs.NodeCreater   = (*dirNode)(nil)
	_ fs.NodeMknoder   = (*dirNode)(nil)
	_ fs.NodeUnlinker  = (*dirNode)(nil)
	_ fs.NodeRenamer   = (*dirNode)(nil)
	_ fs.NodeLinker    = (*dirNode)(nil)
	_ fs.NodeSymlinker = (*dirNode)(nil)
	_ fs.NodeStatfser  = (*dirNode)(nil)
)

// nodePath is the path of n in the tree go-fuse keeps ("" for the root),
// or ENOENT once n is no longer linked into it.
func (s *Server) nodePath(n *fs.Inode) (string, syscall.Errno) {
	root := s.root.EmbeddedInode()
	var parts []string
	for n != root {
		name, parent := n.Parent()
		if parent == nil {
			return "", syscall.ENOENT
		}
		parts = append(parts, name)
		n = parent
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, "/"), 0
}

// join is the key of name in the directory at dir.
func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// parentOf is the directory holding key ("" for the root).
func parentOf(key string) string {
	i := strings.LastIndexByte(key, '/')
	if i < 0 {
		return ""
	}
	return key[:i]
}

func (d *dirNode) path() (string, syscall.Errno) { return d.s.nodePath(d.EmbeddedInode()) }

// child is the key of name in d, refused with ENAMETOOLONG or EINVAL when
// the store could not hold it.
func (d *dirNode) child(name string) (string, syscall.Errno) {
	p, e := d.path()
	if e != 0 {
		return "", e
	}
	key := join(p, name)
	return key, nameErrno(name, key)
}

// caller is the owner of what a request makes: the process asking.
func (s *Server) caller(ctx context.Context) (uint32, uint32) {
	if c, ok := fuse.FromContext(ctx); ok {
		return c.Uid, c.Gid
	}
	return s.o.UID, s.o.GID
}

func (s *Server) dirAttr(di dax.DirInfo, ino uint64, a *fuse.Attr) {
	mode, uid, gid := uint32(0o755), s.o.UID, s.o.GID
	if di.HasAttr {
		mode, uid, gid = di.Mode&0o7777, di.UID, di.GID
	}
	a.Ino = ino
	a.Mode = syscall.S_IFDIR | mode
	a.Nlink = 2
	a.Size = 4096
	a.Blksize = uint32(max(s.bs, 4096))
	a.Owner = fuse.Owner{Uid: uid, Gid: gid}
	mtime := di.ModTime
	atime := orTime(di.ATime, mtime)
	ctime := laterTime(di.CTime, mtime)
	a.SetTimes(&atime, &mtime, &ctime)
}

func (s *Server) fileAttr(fi dax.FileInfo, a *fuse.Attr) {
	mode, uid, gid := uint32(0o644), s.o.UID, s.o.GID
	if fi.HasAttr {
		mode, uid, gid = fi.Mode&0o7777, fi.UID, fi.GID
	}
	a.Ino = fi.Ino
	a.Mode = syscall.S_IFREG | mode
	a.Nlink = 1
	a.Size = uint64(fi.Size)
	a.Blocks = fi.Blocks * uint64(s.bs) / 512
	a.Blksize = uint32(max(s.bs, 4096))
	a.Owner = fuse.Owner{Uid: uid, Gid: gid}
	mtime := fi.ModTime
	atime := orTime(fi.ATime, mtime)
	ctime := laterTime(fi.CTime, mtime)
	a.SetTimes(&atime, &mtime, &ctime)
}

func orTime(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}

func laterTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// dirInode returns the inode of the directory name in d: the one the tree
// already holds for it, so its number stays the same, or a new one.
func (d *dirNode) dirInode(ctx context.Context, name string) *fs.Inode {
	if ch := d.GetChild(name); ch != nil {
		if _, ok := ch.Operations().(*dirNode); ok {
			return ch
		}
	}
	ino := d.s.dirIno.Add(1)
	return d.NewInode(ctx, &dirNode{s: d.s}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino})
}

// fileInode returns the inode of the file fi, registered for notifications.
func (d *dirNode) fileInode(ctx context.Context, fi dax.FileInfo) (*fs.Inode, *fileNode) {
	ch := d.NewInode(ctx, &fileNode{s: d.s, ino: fi.Ino}, fs.StableAttr{Mode: syscall.S_IFREG, Ino: fi.Ino})
	n := ch.Operations().(*fileNode)
	d.s.nodesMu.Lock()
	d.s.nodes[fi.Ino] = n
	d.s.nodesMu.Unlock()
	return ch, n
}

func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	key, e := d.child(name)
	if e == syscall.EINVAL {
		return nil, syscall.ENOENT
	}
	if e != 0 {
		return nil, e
	}
	s := d.s
	di, err := s.st.StatDir(key)
	if err == nil {
		ch := d.dirInode(ctx, name)
		s.dirAttr(di, ch.StableAttr().Ino, &out.Attr)
		return ch, 0
	}
	if !errors.Is(err, dax.ErrNotFound) && !errors.Is(err, dax.ErrNotDir) {
		return nil, s.errno("lookup", key, err)
	}
	fi, err := s.st.Stat(key)
	if err != nil {
		return nil, s.errno("lookup", key, err)
	}
	ch, _ := d.fileInode(ctx, fi)
	s.fileAttr(fi, &out.Attr)
	return ch, 0
}

func (d *dirNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	p, e := d.path()
	if e != 0 {
		return nil, e
	}
	// "." and "..", which ls -a and readdir(3) users expect to see.
	self := d.StableAttr().Ino
	up := self
	if _, parent := d.Parent(); parent != nil {
		up = parent.StableAttr().Ino
	}
	list := []fuse.DirEntry{{Name: ".", Mode: syscall.S_IFDIR, Ino: self}, {Name: "..", Mode: syscall.S_IFDIR, Ino: up}}
	for de, err := range d.s.st.ReadDir(p) {
		if err != nil {
			return nil, d.s.errno("readdir", p, err)
		}
		if de.IsDir {
			var ino uint64
			if ch := d.GetChild(de.Name); ch != nil {
				if _, ok := ch.Operations().(*dirNode); ok {
					ino = ch.StableAttr().Ino
				}
			}
			list = append(list, fuse.DirEntry{Name: de.Name, Mode: syscall.S_IFDIR, Ino: ino})
		} else {
			list = append(list, fuse.DirEntry{Name: de.Name, Mode: syscall.S_IFREG, Ino: de.File.Ino})
		}
	}
	return fs.NewListDirStream(list), 0
}

func (d *dirNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	p, e := d.path()
	if e != 0 {
		return e
	}
	di, err := d.s.st.StatDir(p)
	if err != nil {
		return d.s.errno("getattr", p, err)
	}
	d.s.dirAttr(di, d.StableAttr().Ino, &out.Attr)
	return 0
}

// attrChange is the AttrChange a setattr request asks for.
func attrChange(in *fuse.SetAttrIn) dax.AttrChange {
	var c dax.AttrChange
	if m, ok := in.GetMode(); ok {
		c.Mask |= dax.AttrMode
		c.Mode = m & 0o7777
	}
	if u, ok := in.GetUID(); ok {
		c.Mask |= dax.AttrUID
		c.UID = u
	}
	if g, ok := in.GetGID(); ok {
		c.Mask |= dax.AttrGID
		c.GID = g
	}
	if t, ok := in.GetATime(); ok {
		c.Mask |= dax.AttrATime
		c.ATime = t
	}
	if t, ok := in.GetMTime(); ok {
		c.Mask |= dax.AttrMTime
		c.MTime = t
	}
	return c
}

// withDefaults completes c for something that has no attributes of its own
// yet, so that the first chmod does not also make root its owner.
func (s *Server) withDefaults(c dax.AttrChange, mode uint32) dax.AttrChange {
	if c.Mask&dax.AttrMode == 0 {
		c.Mask |= dax.AttrMode
		c.Mode = mode
	}
	if c.Mask&dax.AttrUID == 0 {
		c.Mask |= dax.AttrUID
		c.UID = s.o.UID
	}
	if c.Mask&dax.AttrGID == 0 {
		c.Mask |= dax.AttrGID
		c.GID = s.o.GID
	}
	return c
}

func (d *dirNode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	p, e := d.path()
	if e != 0 {
		return e
	}
	s := d.s
	if _, ok := in.GetSize(); ok {
		return syscall.EISDIR
	}
	c := attrChange(in)
	di, err := s.st.StatDir(p)
	if err != nil {
		return s.errno("setattr", p, err)
	}
	if c.Mask != 0 {
		if !di.HasAttr {
			c = s.withDefaults(c, 0o755)
			if c.Mask&dax.AttrMTime == 0 {
				c.Mask |= dax.AttrMTime
				c.MTime = di.ModTime
			}
		}
		done := s.beginOwn(p)
		di, err = s.st.SetDirAttr(p, c)
		done()
		if err != nil {
			return s.errno("setattr", p, err)
		}
	}
	s.dirAttr(di, d.StableAttr().Ino, &out.Attr)
	return 0
}

func (d *dirNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	key, e := d.child(name)
	if e != 0 {
		return nil, e
	}
	s := d.s
	uid, gid := s.caller(ctx)
	done := s.beginOwn(key)
	err := s.st.Mkdir(key, dax.AttrChange{Mask: dax.AttrMode | dax.AttrUID | dax.AttrGID, Mode: mode & 0o7777, UID: uid, GID: gid})
	done()
	if err != nil {
		return nil, s.errno("mkdir", key, err)
	}
	di, err := s.st.StatDir(key)
	if err != nil {
		return nil, s.errno("mkdir", key, err)
	}
	ch := d.dirInode(ctx, name)
	s.dirAttr(di, ch.StableAttr().Ino, &out.Attr)
	return ch, 0
}

func (d *dirNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	key, e := d.child(name)
	if e != 0 {
		return e
	}
	s := d.s
	done := s.beginOwn(key)
	err := s.st.Rmdir(key)
	done()
	if err != nil {
		return s.errno("rmdir", key, err)
	}
	return 0
}

// ensureExplicit makes dir and every implicit directory above it explicit,
// with the attributes they show now, so that removing or renaming the last
// key out of dir leaves the directory in place, as a file system does
// (`rm -r` removes a directory's files, then the directory).
func (s *Server) ensureExplicit(dir string) syscall.Errno {
	for dir != "" {
		di, err := s.st.StatDir(dir)
		if err != nil {
			return s.errno("mkdir", dir, err)
		}
		if di.Explicit {
			return 0
		}
		c := s.withDefaults(dax.AttrChange{}, di.Mode&0o7777)
		c.Mask |= dax.AttrMTime
		c.MTime = di.ModTime
		if di.HasAttr {
			c.Mode, c.UID, c.GID = di.Mode&0o7777, di.UID, di.GID
		}
		done := s.beginOwn(dir)
		_, err = s.st.SetDirAttr(dir, c)
		done()
		if err != nil {
			return s.errno("mkdir", dir, err)
		}
		dir = parentOf(dir)
	}
	return 0
}

func (d *dirNode) create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, *fileNode, syscall.Errno) {
	key, e := d.child(name)
	if e != 0 {
		return nil, nil, e
	}
	s := d.s
	p := parentOf(key)
	if _, err := s.st.StatDir(p); err != nil {
		return nil, nil, s.errno("create", key, err)
	}
	uid, gid := s.caller(ctx)
	done := s.beginOwn(key)
	f, err := s.st.CreateWith(key, dax.AttrChange{Mask: dax.AttrMode | dax.AttrUID | dax.AttrGID, Mode: mode & 0o7777, UID: uid, GID: gid})
	done()
	if errors.Is(err, dax.ErrExist) && flags&syscall.O_EXCL == 0 {
		// Made by someone else since the kernel looked: open it, as
		// open(2) without O_EXCL does.
		f, err = s.st.Open(key)
		if err == nil && flags&syscall.O_TRUNC != 0 {
			err = f.TruncateWith(ctx, 0, dax.BreakOptions{})
		}
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, nil, s.errno("create", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, s.errno("create", key, err)
	}
	ch, n := d.fileInode(ctx, fi)
	n.adopt(f)
	s.fileAttr(fi, &out.Attr)
	return ch, n, 0
}

func (d *dirNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	ch, n, e := d.create(ctx, name, flags, mode, out)
	if e != 0 {
		return nil, nil, 0, e
	}
	return ch, &handle{n: n}, 0, 0
}

// Mknod makes regular files only: the store holds nothing else.
func (d *dirNode) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if t := mode & syscall.S_IFMT; t != 0 && t != syscall.S_IFREG {
		return nil, syscall.EOPNOTSUPP
	}
	ch, n, e := d.create(ctx, name, syscall.O_EXCL, mode, out)
	if e != 0 {
		return nil, e
	}
	n.release()
	return ch, 0
}

func (d *dirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	key, e := d.child(name)
	if e != 0 {
		return e
	}
	s := d.s
	if _, err := s.st.Stat(key); err != nil {
		if _, derr := s.st.StatDir(key); derr == nil {
			return syscall.EISDIR
		}
		return s.errno("unlink", key, err)
	}
	if e := s.ensureExplicit(parentOf(key)); e != 0 {
		return e
	}
	done := s.beginOwn(key)
	err := s.st.RemoveWith(ctx, key, dax.BreakOptions{})
	done()
	if err != nil {
		return s.errno("unlink", key, err)
	}
	return 0
}

// renameNoReplace is RENAME_NOREPLACE, the one renameat2 flag the mount
// supports; RENAME_EXCHANGE and RENAME_WHITEOUT get EINVAL.
const renameNoReplace = 1

func (d *dirNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if flags&^renameNoReplace != 0 {
		return syscall.EINVAL
	}
	np, ok := newParent.(*dirNode)
	if !ok {
		return syscall.ENOTDIR
	}
	oldKey, e := d.child(name)
	if e != 0 {
		return e
	}
	newKey, e := np.child(newName)
	if e != 0 {
		return e
	}
	s := d.s
	if oldKey == newKey {
		return 0
	}
	_, derr := s.st.StatDir(oldKey)
	srcDir := derr == nil
	if !srcDir {
		if _, err := s.st.Stat(oldKey); err != nil {
			return s.errno("rename", oldKey, err)
		}
	}
	_, terr := s.st.StatDir(newKey)
	dstDir := terr == nil
	_, ferr := s.st.Stat(newKey)
	dstFile := ferr == nil
	switch {
	case dstDir && !srcDir:
		return syscall.EISDIR
	case dstFile && srcDir && !dstDir:
		return syscall.ENOTDIR
	case (dstDir || dstFile) && flags&renameNoReplace != 0:
		return syscall.EEXIST
	}
	if parentOf(oldKey) != parentOf(newKey) {
		if e := s.ensureExplicit(parentOf(oldKey)); e != 0 {
			return e
		}
	}
	done := s.beginOwn(oldKey, newKey)
	var err error
	if srcDir {
		err = s.st.RenameDir(oldKey, newKey)
		if errors.Is(err, dax.ErrExist) {
			err = dax.ErrNotEmpty
		}
	} else {
		err = s.st.RenameWith(ctx, oldKey, newKey, dax.RenameOptions{Replace: dstFile})
	}
	done()
	if err != nil {
		return s.errno("rename", oldKey, err)
	}
	return 0
}

// Link refuses hard links: a key names exactly one file, and a file has
// exactly one key.
func (d *dirNode) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

// Symlink refuses symbolic links: the store holds regular files only.
func (d *dirNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EOPNOTSUPP
}

func (d *dirNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return d.s.statfs(out)
}

// statfs reports the region: its data blocks, the free ones (busy blocks,
// detached and waiting for their last pin, count as used) and as many
// more files as there are free blocks.
func (s *Server) statfs(out *fuse.StatfsOut) syscall.Errno {
	st, err := s.st.Stats()
	if err != nil {
		return s.errno("statfs", "", err)
	}
	out.Bsize = uint32(st.BlockSize)
	out.Frsize = uint32(st.BlockSize)
	out.Blocks = st.DataBlocks
	out.Bfree = st.FreeBlocks
	out.Bavail = st.FreeBlocks
	out.Files = uint64(st.Files) + st.FreeBlocks
	out.Ffree = st.FreeBlocks
	out.NameLen = maxNameLen
	return 0
}
