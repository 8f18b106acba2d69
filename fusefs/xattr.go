package fusefs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
)

// noXattrs answers extended-attribute requests as a file system without
// them does: nothing to list, and EOPNOTSUPP for the rest, which tools
// preserving attributes (cp -p, rsync -X) take for "not supported here"
// rather than a failure (go-fuse's own default, ENODATA, is not).
type noXattrs struct{}

var (
	_ fs.NodeGetxattrer    = (*dirNode)(nil)
	_ fs.NodeSetxattrer    = (*fileNode)(nil)
	_ fs.NodeListxattrer   = (*fileNode)(nil)
	_ fs.NodeRemovexattrer = (*dirNode)(nil)
)

func (noXattrs) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return 0, syscall.EOPNOTSUPP
}

func (noXattrs) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return syscall.EOPNOTSUPP
}

func (noXattrs) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return syscall.EOPNOTSUPP
}

func (noXattrs) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return 0, 0
}
