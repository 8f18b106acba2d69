// Package pmemhooks is the route by which this module's test plumbing
// reaches the emulated persistent-memory media of package pmem, which
// pmem keeps off its public API. pmem registers its side at init;
// internal/powercut drives the media and dax passes them to pmem.
package pmemhooks

// Device is pmem's power switch for regions on emulated media: stores
// reach the media only through flushes, and a cut freezes the media. See
// pmem's powercut.go for the full contract.
type Device interface {
	// SetOnCut sets fn to be called at the instant of every cut, with
	// the device's lock held (fn must not call the device).
	SetOnCut(fn func())
	// CutAfter arms a cut inside the flushes-th flush from now, tearing
	// in each unflushed cache line with probability tear.
	CutAfter(flushes int, tear float64)
	// CutNow cuts the power at once.
	CutNow(tear float64)
	// Cut reports whether the power is off.
	Cut() bool
	// Flushes counts the flushes that reached the media.
	Flushes() int
	// Revive turns the power back on for regions opened afterwards.
	Revive()
}

// Hooks are the functions package pmem registers at init.
type Hooks struct {
	// NewDevice returns a device with the power on; seed drives which
	// cache lines a torn cut keeps.
	NewDevice func(seed int64) Device
	// WithDevice puts the region that opts (a *pmem.CreateOptions or a
	// *pmem.OpenOptions, typed any because this package cannot import
	// pmem) creates or opens on d's emulated media.
	WithDevice func(opts any, d Device)
}

var hooks Hooks

// Register records package pmem's hooks. Only pmem calls it, at init.
func Register(h Hooks) { hooks = h }

// Get returns the registered hooks; they are set once pmem is initialized,
// which importing pmem guarantees.
func Get() Hooks { return hooks }
