//go:build linux && (mips || mipsle || mips64 || mips64le)

// This file records that MIPS Linux has no MAP_SYNC, so regions there always
// use a plain shared mapping and msync.

package pmem

// haveMapSync reports whether this architecture's kernel ABI has MAP_SYNC.
const haveMapSync = false

// mapSyncFlags is unused without MAP_SYNC.
const mapSyncFlags = 0
