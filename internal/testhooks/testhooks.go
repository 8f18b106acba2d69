// Package testhooks is the route by which this module's tests outside
// package dax reach test-only parts of it: the simulated media a store can
// run on, and the lock file's record of its holder. Package dax registers
// its side at init; internal/daxtest wraps it with typed helpers. Being
// internal, neither appears in dax's public API nor can code outside this
// module use them.
package testhooks

import (
	"github.com/daxstore/daxstore/internal/faultfs"
	"github.com/daxstore/daxstore/internal/powercut"
)

// Media is the test-only media a store may run on. The zero Media means
// real media and the real filesystem.
type Media struct {
	// PowerCut runs the store on emulated media that lose unflushed stores
	// at a simulated power cut, with the journal in an in-memory filesystem
	// that loses unsynced writes. It takes precedence over JournalFaults.
	PowerCut *powercut.Sim

	// JournalFaults puts the journal in this in-memory filesystem, which
	// fails writes, syncs, creates and renames on demand.
	JournalFaults *faultfs.FS
}

// Hooks are the functions package dax registers at init.
type Hooks struct {
	// SetMedia sets the media of opts, which must be a *dax.Options
	// (typed as any because this package cannot import dax).
	SetMedia func(opts any, m Media)

	// LockHolder returns the pid recorded in dir's lock file by the
	// process that holds (or last held) the store, or 0 when none is.
	LockHolder func(dir string) int
}

var hooks Hooks

// Register records package dax's hooks. Only dax calls it, once, at init.
func Register(h Hooks) { hooks = h }

// Get returns the registered hooks. Their fields are nil until package dax
// is initialized, which any importer of dax guarantees.
func Get() Hooks { return hooks }
