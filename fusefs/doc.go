// Package fusefs serves a daxstore store as a FUSE file system, on go-fuse's
// fs package: keys holding '/' read as paths in directories, attributes live
// in the journal, fallocate maps to Allocate, PunchHole and ZeroRange, lseek
// SEEK_DATA/SEEK_HOLE reads the extent map, and the kernel's page cache is
// invalidated whenever the store changes a file by a path the kernel did not
// see (a pin or window writing, an API call in the same process).
//
// # What the mount shows
//
// Every key that is a valid path (dax.ValidPath) is a regular file; the
// others stay reachable through the key API only. Directories are the
// store's: explicit (mkdir) or implicit (keys lie under them). A name that
// is both a file and a directory shows the directory. Removing or renaming
// the last file out of an implicit directory first makes it explicit, so the
// directory stays until rmdir, as on any file system. Files and directories
// made through the key API have no attributes of their own: they show mode
// 0644 (0755), the owner in Options, and their modification time for every
// time; the first chmod, chown or utimens gives them attributes, with those
// defaults for the fields it leaves out. Reads never update access times
// (noatime). Inode numbers of files are the store's and stay the same across
// renames; directories get numbers per mount.
//
// # What it refuses
//
// Hard links (EPERM: a file has exactly one key), symbolic links, device
// nodes and FIFOs (EOPNOTSUPP), extended attributes (EOPNOTSUPP), renameat2
// with RENAME_EXCHANGE or RENAME_WHITEOUT (EINVAL), and fallocate modes other
// than 0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE and ZERO_RANGE[|KEEP_SIZE]
// (EOPNOTSUPP). fallocate with KEEP_SIZE reserves blocks only inside the file:
// the store keeps none past the end. A file removed while open (by unlink,
// by a rename over it, or through the API) reads and writes ENOENT on the
// descriptors still open, where a local file system would keep it alive
// until the last close. Store errors map to errnos as Errno says; a full
// region (ENOSPC) is logged with the store's account of the busy blocks and
// the oldest pin holding them.
//
// # Breaks and durability
//
// Truncate, hole punch, zero-range, unlink and rename over a file break
// pinned blocks as the store's BreakPolicy says, exactly as the same calls
// through the API do: under Detach a punch over a pinned range leaves the
// pin its bytes and the file zeros; under Wait the request waits (an
// interrupted request returns EINTR). Every write is durable when it returns
// unless the store runs with NoSync; fsync and close (flush) call File.Sync.
//
// # Coherence
//
// Changes to a file's bytes, size or attributes that the kernel did not make
// (a pin or window flushed, a break that detached, WriteAt, Truncate or Put
// through the API of the serving process) are invalidated in the kernel
// before the call that made them returns, so read(2), mmap and fstat through
// the mount show them from then on. Names made, removed or renamed through
// the API are invalidated promptly by a goroutine of the mount, not before
// the call returns: the kernel may hold a directory's lock while a request
// waits for a pin, and the goroutine releasing the pin must not wait for it.
//
// Never mmap a file of a mount from the process that serves it: a page
// fault there waits for a FUSE reply that the stopped Go runtime cannot
// send.
package fusefs
