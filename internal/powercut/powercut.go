// Package powercut simulates power cuts under a daxstore store, for this
// module's crash-consistency tests only: it cuts power to a whole store at
// one instant - region and journal together - at any flush of the data path,
// so that a test can reopen exactly what survived. A test opens a store on a
// Sim through internal/daxtest (package dax's own tests set the option
// directly). It is internal so that it never appears in the public API.
package powercut

import (
	"sync"

	"github.com/daxstore/daxstore/internal/memfs"
	"github.com/daxstore/daxstore/internal/pmemhooks"
	_ "github.com/daxstore/daxstore/pmem" // registers the emulated media
)

// Sim simulates power cuts under a store. A store opened on it (see
// internal/daxtest.WithPowerCut) keeps its
// region on pmem's emulated media (see internal/pmemhooks): stores into the region
// reach the media only through flushes, and a cut freezes the media. Its
// journal lives in an in-memory filesystem (DIR/journal inside it), of
// which a cut keeps only what was synced. The region file stays at its real
// path.
//
// A cut fires inside a region flush (CutAfterFlushes) or at once (CutNow).
// The store that saw it keeps running, but nothing it does afterwards
// survives: close it (CloseWith with Force; errors are expected), call
// Restart, and Open the same directory on the same Sim to see
// what a machine rebooted after the cut would see.
//
// A Sim is safe for concurrent use. Use one per store directory.
type Sim struct {
	dev  pmemhooks.Device
	seed uint64

	// mu protects the fields below. The device's cut callback takes it
	// while the device's own lock is held, so never call the device with
	// mu held.
	mu     sync.Mutex
	fs     *memfs.FS // the journal's filesystem for the store open now or next
	clone  *memfs.FS // what the last cut left of fs; nil until a cut
	tear   float64   // tear probability of the pending cut, for the journal too
	clones uint64    // crash clones taken, to vary their seeds
}

// New returns a simulator with the power on, no cut armed and an
// empty journal filesystem. seed decides which unflushed cache lines and
// unsynced journal blocks survive a torn cut.
func New(seed int64) *Sim {
	s := &Sim{dev: pmemhooks.Get().NewDevice(seed), seed: uint64(seed), fs: memfs.New()}
	s.dev.SetOnCut(s.onCut)
	return s
}

// onCut runs at the instant of the cut, under the device's lock: it takes
// what the journal's filesystem would keep.
func (s *Sim) onCut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clones++
	s.clone = s.fs.CrashClonePartial(int(s.tear*100), s.seed^s.clones*0x9e3779b97f4a7c15)
}

// CutAfterFlushes arms a power cut inside the n-th region flush from now
// (n below 1 means the next one), before that flush reaches the media. tear,
// clamped to [0, 1], is the probability that each unflushed cache line of
// the region, and each unsynced block of the journal, survives anyway. A
// later call replaces an armed cut; after a cut it does nothing until
// Restart.
func (s *Sim) CutAfterFlushes(n int, tear float64) {
	if s.dev.Cut() {
		return
	}
	s.setTear(tear)
	s.dev.CutAfter(n, tear)
}

// CutNow cuts the power at once, with tear as in CutAfterFlushes. A second
// cut before Restart does nothing.
func (s *Sim) CutNow(tear float64) {
	if s.dev.Cut() {
		return
	}
	s.setTear(tear)
	s.dev.CutNow(tear)
}

func (s *Sim) setTear(tear float64) {
	if !(tear > 0) { // NaN too
		tear = 0
	}
	s.mu.Lock()
	s.tear = min(tear, 1)
	s.mu.Unlock()
}

// Cut reports whether the power is off: a cut fired since the last Restart.
// An operation that returned while Cut was still false was acknowledged
// before the cut, so it must survive it.
func (s *Sim) Cut() bool { return s.dev.Cut() }

// Flushes returns how many region flushes happened with the power on, over
// the simulator's life. Tests use it to pick a CutAfterFlushes count that
// lands inside a workload.
func (s *Sim) Flushes() int { return s.dev.Flushes() }

// Restart brings the power back after a cut: the journal filesystem becomes
// the crash clone taken at the cut, and the media accept flushes again from
// regions opened afterwards. Without a cut since the last Restart it cuts
// the power first (tear 0). Close the store that saw the cut before
// calling Restart; it stays dead, and its directory lock would keep the
// next Open out.
func (s *Sim) Restart() {
	if !s.dev.Cut() {
		s.CutNow(0)
	}
	s.mu.Lock()
	if s.clone != nil {
		s.fs, s.clone = s.clone, nil
	}
	s.mu.Unlock()
	s.dev.Revive()
}

// Device returns the emulated media switch, or nil for a nil Sim (real
// media).
func (s *Sim) Device() pmemhooks.Device {
	if s == nil {
		return nil
	}
	return s.dev
}

// JournalFS returns the journal's filesystem for the store opened now or
// next, or nil (the real filesystem) for a nil Sim.
func (s *Sim) JournalFS() *memfs.FS {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fs
}
