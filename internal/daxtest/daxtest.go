// Package daxtest gives this module's tests outside package dax typed
// access to dax's test-only options: running a store on simulated media
// (power cuts, journal faults) and reading the lock file's holder pid.
// It is internal, so none of it is part of dax's public API.
package daxtest

import (
	"github.com/daxstore/daxstore/dax"
	"github.com/daxstore/daxstore/internal/faultfs"
	"github.com/daxstore/daxstore/internal/powercut"
	"github.com/daxstore/daxstore/internal/testhooks"
)

// WithPowerCut sets o to open its store on sim's emulated media and
// in-memory journal, and returns o. A nil sim means real media. Reopen the
// directory after a cut with options made the same way and the same sim.
func WithPowerCut(o *dax.Options, sim *powercut.Sim) *dax.Options {
	testhooks.Get().SetMedia(o, testhooks.Media{PowerCut: sim})
	return o
}

// WithJournalFaults sets o to keep its store's journal in fs, which fails
// operations on demand, and returns o.
func WithJournalFaults(o *dax.Options, fs *faultfs.FS) *dax.Options {
	testhooks.Get().SetMedia(o, testhooks.Media{JournalFaults: fs})
	return o
}

// LockHolder returns the pid recorded by the process that holds (or last
// held) the store in dir, or 0 when none is recorded. ErrLocked errors name
// that pid already; tests use this to check what a dead holder left.
func LockHolder(dir string) int { return testhooks.Get().LockHolder(dir) }
