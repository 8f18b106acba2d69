// Package fusefs serves a daxstore store as a FUSE file system, on go-fuse's
// fs package: keys holding '/' read as paths in directories, attributes live
// in the journal, fallocate maps to Allocate, PunchHole and ZeroRange, lseek
// SEEK_DATA/SEEK_HOLE reads the extent map, and the kernel's page cache is
// invalidated whenever the store changes a file by a path the kernel did not
// see (a pin or window writing, an API call in the same process).
package fusefs
