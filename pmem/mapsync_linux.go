//go:build linux && !(mips || mipsle || mips64 || mips64le)

// This file names the MAP_SYNC flags on the Linux architectures that have
// them.

package pmem

import "golang.org/x/sys/unix"

// haveMapSync reports whether this architecture's kernel ABI has MAP_SYNC.
const haveMapSync = true

// mapSyncFlags makes mmap fail (EOPNOTSUPP) rather than silently ignore
// MAP_SYNC on a file that is not DAX.
const mapSyncFlags = unix.MAP_SHARED_VALIDATE | unix.MAP_SYNC
