package fusefs

import (
	"context"
	"errors"
	"io"
	"syscall"

	"github.com/daxstore/daxstore/dax"
)

// maxNameLen is the longest path component the mount accepts, as statfs
// reports it (NAME_MAX of the common Linux file systems).
const maxNameLen = 255

// errnoTable maps the store's sentinels to the errno a tool expects, in
// the order they are tested. ErrInvalidKey, ErrInvalidRange and ErrNoSpace
// need context and are handled by toErrno itself.
var errnoTable = []struct {
	err   error
	errno syscall.Errno
}{
	{dax.ErrNotFound, syscall.ENOENT},
	{dax.ErrExist, syscall.EEXIST},
	{dax.ErrPinned, syscall.EBUSY},
	{dax.ErrReadOnly, syscall.EROFS},
	{dax.ErrNotEmpty, syscall.ENOTEMPTY},
	{dax.ErrNotDir, syscall.ENOTDIR},
	{dax.ErrIsDir, syscall.EISDIR},
	{dax.ErrInvalidLabel, syscall.EINVAL},
	{dax.ErrTooManyPins, syscall.EBUSY},
	{dax.ErrTooLarge, syscall.EFBIG},
	{dax.ErrMappingBudget, syscall.ENOMEM},
	{dax.ErrClosed, syscall.EIO},
	{dax.ErrFailed, syscall.EIO},
	{dax.ErrCorrupt, syscall.EIO},
	{errors.ErrUnsupported, syscall.EOPNOTSUPP},
	{context.Canceled, syscall.EINTR},
	{context.DeadlineExceeded, syscall.EINTR},
}

// Errno returns the errno the mount answers for err, an error of the dax
// package: ErrNotFound is ENOENT, ErrExist EEXIST, ErrInvalidKey
// ENAMETOOLONG for a key longer than dax.MaxKeyLen and EINVAL otherwise,
// ErrInvalidRange EINVAL, ErrNoSpace ENOSPC, ErrPinned EBUSY, ErrReadOnly
// EROFS, ErrNotEmpty ENOTEMPTY, ErrNotDir ENOTDIR, ErrIsDir EISDIR,
// ErrClosed, ErrFailed and ErrCorrupt EIO, a canceled context (an
// interrupted request) EINTR. Any other error is EIO. key is the key or
// path the operation was about ("" when none).
func Errno(err error, key string) syscall.Errno {
	if err == nil || err == io.EOF {
		return 0
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	switch {
	case errors.Is(err, dax.ErrInvalidKey):
		if len(key) > dax.MaxKeyLen {
			return syscall.ENAMETOOLONG
		}
		return syscall.EINVAL
	case errors.Is(err, dax.ErrInvalidRange):
		return syscall.EINVAL
	case errors.Is(err, dax.ErrNoSpace):
		return syscall.ENOSPC
	}
	for _, e := range errnoTable {
		if errors.Is(err, e.err) {
			return e.errno
		}
	}
	return syscall.EIO
}

// errno is Errno plus the mount's log: a full region is worth a line,
// which the store's error text makes name the busy blocks and the oldest
// pin holding them, and an EIO a line with the error it stands for.
func (s *Server) errno(op, key string, err error) syscall.Errno {
	e := Errno(err, key)
	switch e {
	case syscall.ENOSPC:
		s.log.Printf("fusefs: %s %q: no space: %v", op, key, err)
	case syscall.EIO:
		s.log.Printf("fusefs: %s %q: %v", op, key, err)
	}
	return e
}

// nameErrno refuses a path component or key the store cannot hold with the
// errno tools expect, before the store sees it.
func nameErrno(name, key string) syscall.Errno {
	if len(name) > maxNameLen || len(key) > dax.MaxKeyLen {
		return syscall.ENAMETOOLONG
	}
	if !dax.ValidPath(key) {
		return syscall.EINVAL
	}
	return 0
}

// sizeErrno refuses a file range past the store's largest file with EFBIG,
// as a file system does past its s_maxbytes.
func sizeErrno(off, n int64) syscall.Errno {
	if off < 0 || n < 0 {
		return syscall.EINVAL
	}
	if off > dax.MaxFileSize || n > dax.MaxFileSize-off {
		return syscall.EFBIG
	}
	return 0
}
