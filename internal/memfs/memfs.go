// Package memfs is an in-memory filesystem for a store's journal that can
// simulate a power cut, so that this module's tests in any package can cut
// power under the journal without importing Pebble. It is test plumbing:
// internal, so it is no part of the journal's public API. A journal runs on
// it through journal.Options.FS.
package memfs

import (
	"math/rand/v2"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// FS is an in-memory filesystem for journals that can simulate a power
// cut: CrashClone returns what would survive one at that instant. The zero
// value is an empty filesystem ready to use, and an FS is safe for
// concurrent use. Several journals may live on one FS in different
// directories; a directory can be open in only one Journal at a time, as on
// a real filesystem.
type FS struct {
	once sync.Once  // creates fs on first use, so the zero value works
	fs   *vfs.MemFS // set by once; the Pebble crashable memory filesystem
}

// New returns an empty in-memory filesystem.
func New() *FS {
	m := &FS{}
	m.vfs()
	return m
}

// vfs returns the underlying Pebble filesystem, creating it on first use.
func (m *FS) vfs() *vfs.MemFS {
	m.once.Do(func() {
		if m.fs == nil {
			m.fs = vfs.NewCrashableMem()
		}
	})
	return m.fs
}

// VFS returns the Pebble filesystem underneath, for test plumbing that
// wraps it (internal/faultfs). It makes an FS a journal.FS.
func (m *FS) VFS() vfs.FS { return m.vfs() }

// CrashClone returns a copy of the filesystem holding only what was synced:
// what a power cut at this instant would leave. Journals open on m keep
// running and their later writes do not reach the clone. The clone is itself
// crashable.
func (m *FS) CrashClone() *FS {
	c := &FS{fs: m.vfs().CrashClone(vfs.CrashCloneCfg{})}
	c.vfs()
	return c
}

// CrashClonePartial is CrashClone for a power cut that lands while the kernel
// is writing back: everything synced survives, and each unsynced block or
// directory entry survives with probability unsyncedPercent/100, drawn from a
// generator seeded with seed (the same seed gives the same clone of the same
// contents). unsyncedPercent is clamped to [0, 100].
func (m *FS) CrashClonePartial(unsyncedPercent int, seed uint64) *FS {
	unsyncedPercent = min(max(unsyncedPercent, 0), 100)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	c := &FS{fs: m.vfs().CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsyncedPercent, RNG: rng})}
	c.vfs()
	return c
}
