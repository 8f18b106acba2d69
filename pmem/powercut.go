//go:build unix

// This file emulates persistent media that can lose power, so that tests can
// prove crash consistency at the granularity real hardware has: cache lines
// that were flushed survive a power cut, stores that were not may or may not.

package pmem

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// CacheLineSize is the unit in which stores reach media: a flush writes back
// whole cache lines, and at a power cut each dirty line survives whole or
// not at all.
const CacheLineSize = 64

// errPowerOff is returned by Create and OpenWith on emulated media whose
// powerCut has cut the power and not been revived.
var errPowerOff = errors.New("pmem: emulated media is powered off")

// powerCut is a power switch for regions on emulated media, for
// crash-consistency tests. A region created or opened with a powerCut keeps
// two images: the mapping that Bytes returns is the CPU's volatile view (a
// shared mapping of an anonymous memory file, loaded from the file at open,
// so that windows can map its blocks too; see Span), and the file is the
// media. Flush and FlushBytes write the covered cache lines from the view to
// the file; nothing else does, not even Close. A cut (CutAfter, CutNow)
// freezes the media: from then on every flush of those regions is dropped
// silently, as the CPU of a machine that lost power would not notice
// either, so nothing the "dead" process does afterwards reaches the media.
// Revive turns the power back on for regions opened afterwards; reopening
// the file then shows exactly what survived.
//
// The file is written with pwrite and never fsynced: the emulation models a
// power cut of the persistent memory, not of the machine running the test.
//
// A powerCut is safe for concurrent use and may serve several regions. Its
// flushes are serialised, which makes it a test device, not a fast one.
type powerCut struct {
	// mu serialises every media write against a cut, so a flush either
	// reaches the media before the cut or not at all. It protects every
	// field below.
	mu      sync.Mutex
	rng     *rand.Rand
	onCut   func()
	epoch   uint64              // bumped by Revive; media of an older epoch stay dead for good
	cut     bool                // the power is off
	armed   bool                // a CutAfter is pending
	target  int                 // the flush count at which the armed cut fires
	tear    float64             // the armed cut's tear probability
	flushes int                 // flushes that reached, or were about to reach, the media
	media   map[*media]struct{} // open emulated regions, all of the current epoch
}

// newPowerCut returns a powerCut with the power on and no cut armed. seed
// drives the choice of torn cache lines, so the same seed and the same
// sequence of stores and flushes give the same media after a cut.
func newPowerCut(seed int64) *powerCut {
	s := uint64(seed)
	return &powerCut{
		rng:   rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15)),
		media: make(map[*media]struct{}),
	}
}

// SetOnCut sets fn to be called at the instant of every cut, before any
// torn line is written and before the media die, for example to take a
// crash clone of the filesystem that holds the metadata journal. fn runs
// with the powerCut's lock held: it must not call the powerCut's methods or
// flush a region on it. nil removes the callback.
func (pc *powerCut) SetOnCut(fn func()) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.onCut = fn
}

// CutAfter arms a cut that fires inside the flushes-th Flush or FlushBytes
// call from now on (counting every region on pc), before that flush
// reaches the media: the call returns nil and its lines are as unflushed as
// any others. flushes below 1 means the next flush. tear is the probability,
// clamped to [0, 1], that each dirty cache line (one whose view bytes differ
// from the media) reaches the media anyway, modelling stores that the CPU
// had already written back on its own. A later CutAfter replaces an armed
// one; CutAfter on a device that is already cut does nothing.
func (pc *powerCut) CutAfter(flushes int, tear float64) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.cut {
		return
	}
	pc.armed = true
	pc.target = pc.flushes + max(flushes, 1)
	pc.tear = clampTear(tear)
}

// CutNow cuts the power at once, tearing dirty cache lines with probability
// tear as CutAfter describes, and disarms any pending CutAfter. A second
// cut before Revive does nothing.
func (pc *powerCut) CutNow(tear float64) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.cut {
		return
	}
	pc.cutLocked(clampTear(tear))
}

// Cut reports whether the power is off: a cut fired and Revive has not been
// called since.
func (pc *powerCut) Cut() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.cut
}

// Flushes returns how many non-empty Flush and FlushBytes calls on pc's
// regions were made while the power was on, the one a cut fired in
// included. Tests use it to choose a CutAfter count inside a workload.
func (pc *powerCut) Flushes() int {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.flushes
}

// Revive turns the power back on after a cut, for regions created or opened
// from now on. Regions that were open at the cut stay dead for good: their
// flushes never reach the media, even if their process keeps running. It
// does nothing while the power is on.
func (pc *powerCut) Revive() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if !pc.cut {
		return
	}
	pc.cut = false
	pc.epoch++
	clear(pc.media)
}

func clampTear(tear float64) float64 {
	if !(tear > 0) { // NaN too
		return 0
	}
	return min(tear, 1)
}

// cutLocked cuts the power; pc.mu must be held.
func (pc *powerCut) cutLocked(tear float64) {
	if pc.onCut != nil {
		pc.onCut()
	}
	if tear > 0 {
		for m := range pc.media {
			// A failure to write a torn line only means fewer lines
			// survived, which a cut allows anyway.
			_ = m.tear(pc.rng, tear)
		}
	}
	pc.cut = true
	pc.armed = false
}

// media is one region's pair of images on a powerCut.
type media struct {
	pc    *powerCut
	epoch uint64   // the epoch it was attached in; live only while pc.epoch equals it
	file  *os.File // the media image
	view  []byte   // the CPU's view: a shared mapping of mem, the whole region
	// mem is the memory file behind view (a memfd on Linux), which
	// windows map; nil where the system has none, and then windows on
	// emulated media are unsupported.
	mem *os.File
}

// attach maps a view of size bytes, loads file f's first size bytes into
// it and registers the pair as live media. It fails with errPowerOff while
// the power is off.
func (pc *powerCut) attach(f *os.File, size int64) (*media, error) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.cut {
		return nil, fmt.Errorf("%w (a power cut happened and Revive was not called)", errPowerOff)
	}
	if size <= 0 || size > math.MaxInt {
		return nil, fmt.Errorf("cannot map %d bytes", size)
	}
	view, mem, err := newView(size)
	if err != nil {
		return nil, fmt.Errorf("map the view of emulated media: %w", err)
	}
	if _, err := f.ReadAt(view, 0); err != nil {
		_ = unix.Munmap(view)
		if mem != nil {
			_ = mem.Close()
		}
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: file is shorter than the region", ErrCorrupt)
		}
		return nil, fmt.Errorf("load emulated media: %w", err)
	}
	m := &media{pc: pc, epoch: pc.epoch, file: f, view: view, mem: mem}
	pc.media[m] = struct{}{}
	return m, nil
}

// detach unregisters m, so a cut no longer reads its view, then unmaps
// the view. It never writes the view to the media.
func (m *media) detach() error {
	m.pc.mu.Lock()
	delete(m.pc.media, m)
	m.pc.mu.Unlock()
	err := unix.Munmap(m.view)
	if m.mem != nil {
		// Windows that still map the memory file keep it alive.
		if cerr := m.mem.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// liveLocked reports whether m's writes reach the media; pc.mu must be held.
func (m *media) liveLocked() bool {
	return !m.pc.cut && m.epoch == m.pc.epoch
}

// flush writes the cache lines covering view bytes [off, off+n) to the
// media, unless the power is off or an armed cut fires now, in which case
// the flush is dropped and returns nil. n must be positive.
func (m *media) flush(off, n int64) error {
	pc := m.pc
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if !m.liveLocked() {
		return nil
	}
	pc.flushes++
	if pc.armed && pc.flushes >= pc.target {
		pc.cutLocked(pc.tear)
		return nil
	}
	return m.writeLocked(off, n)
}

// persist writes view bytes [off, off+n) through to the media without
// counting a flush or firing a cut: for the superblock that Create writes.
func (m *media) persist(off, n int64) error {
	m.pc.mu.Lock()
	defer m.pc.mu.Unlock()
	if !m.liveLocked() {
		return fmt.Errorf("%w (a power cut happened and Revive was not called)", errPowerOff)
	}
	return m.writeLocked(off, n)
}

// writeLocked copies the whole cache lines covering [off, off+n) from the
// view to the media; pc.mu must be held.
func (m *media) writeLocked(off, n int64) error {
	lo := off &^ (CacheLineSize - 1)
	hi := min((off+n+CacheLineSize-1)&^(CacheLineSize-1), int64(len(m.view)))
	if _, err := m.file.WriteAt(m.view[lo:hi], lo); err != nil {
		return fmt.Errorf("write emulated media: %w", err)
	}
	return nil
}

// tearChunk is how much of the media a cut compares with the view at once.
const tearChunk = 1 << 20

// tear writes each dirty cache line of m to the media with probability p;
// pc.mu must be held. Lines are drawn in address order, so a seed gives a
// reproducible result; the order they would reach real media in does not
// matter, as only the final image is observable.
func (m *media) tear(rng *rand.Rand, p float64) error {
	if !m.liveLocked() {
		return nil
	}
	buf := make([]byte, min(tearChunk, len(m.view)))
	for base := 0; base < len(m.view); base += len(buf) {
		old := buf[:min(len(buf), len(m.view)-base)]
		if _, err := m.file.ReadAt(old, int64(base)); err != nil {
			return fmt.Errorf("read emulated media: %w", err)
		}
		for i := 0; i < len(old); i += CacheLineSize {
			j := min(i+CacheLineSize, len(old))
			line := m.view[base+i : base+j]
			if string(line) == string(old[i:j]) || rng.Float64() >= p {
				continue
			}
			if _, err := m.file.WriteAt(line, int64(base+i)); err != nil {
				return fmt.Errorf("write emulated media: %w", err)
			}
		}
	}
	return nil
}
