package dax

import (
	"fmt"
	"time"

	"github.com/daxstore/daxstore/internal/faultfs"
	"github.com/daxstore/daxstore/pmem"
)

// BreakPolicy says what a layout-breaking operation (Truncate, PunchHole,
// ZeroRange, Remove, or Put over an existing key) does with blocks that pins
// still reference.
type BreakPolicy uint8

const (
	// PolicyDefault means "use Options.BreakPolicy" in per-call options.
	PolicyDefault BreakPolicy = iota
	// Detach moves referenced blocks out of the file into the busy-extent
	// list and returns at once. The pin holders keep their bytes; the blocks
	// are freed when the last pin drops. This is the default.
	Detach
	// Wait detaches like Detach, drops every lock of the file, then waits
	// (bounded by the call's context) until the detached blocks are freed.
	Wait
	// Fail returns ErrPinned and changes nothing when any affected block is
	// referenced.
	Fail
)

func (p BreakPolicy) String() string {
	switch p {
	case PolicyDefault:
		return "default"
	case Detach:
		return "detach"
	case Wait:
		return "wait"
	case Fail:
		return "fail"
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// ParseBreakPolicy parses "detach", "wait" or "fail".
func ParseBreakPolicy(s string) (BreakPolicy, error) {
	for _, p := range []BreakPolicy{Detach, Wait, Fail} {
		if p.String() == s {
			return p, nil
		}
	}
	return PolicyDefault, fmt.Errorf("daxstore: unknown break policy %q (want detach, wait or fail)", s)
}

// Options configures Open. The zero value (or nil) means the defaults.
type Options struct {
	// Size is the region size in bytes used when the store is created
	// (default 1 GiB). It is ignored when the store exists.
	Size int64

	// BlockSize is the region block size used when the store is created: a
	// power of two from 512 to 1 MiB (default 4096). Ignored when the store
	// exists.
	BlockSize uint32

	// RegionPath is where the region file lives. Empty means DIR/region.
	// Point it at a file on an fsdax mount for real persistent memory, or
	// into /dev/shm for memory-speed emulation. Once the store exists the
	// same path must be given again.
	RegionPath string

	// BreakPolicy is the store-wide default for layout-breaking operations
	// over pinned blocks (default Detach).
	BreakPolicy BreakPolicy

	// AllocWait bounds how long an allocation waits for busy blocks to be
	// released when the region is otherwise full (default 1s). Negative
	// means do not wait: fail with ErrNoSpace at once.
	AllocWait time.Duration

	// NoSync makes metadata commits return before the journal reaches
	// stable storage. THIS IS UNSAFE: a power cut or kernel crash may lose
	// the most recent acknowledged operations, and even a process crash may
	// lose the last few microseconds of them (the journal's writer hands
	// bytes to the kernel in the background). What survives is always a
	// consistent prefix of whole operations. Use it for scratch stores and
	// benchmarks of the data path.
	NoSync bool

	// NoAdminSocket disables DIR/admin.sock, the live inspection endpoint
	// that `daxstore busy` and `daxstore pins` use while this process holds
	// the store.
	NoAdminSocket bool

	// PowerCut is for crash-consistency tests only: it runs the store on
	// emulated media that lose unflushed stores at a simulated power cut,
	// with the journal in an in-memory filesystem that loses unsynced
	// writes. See PowerCutSim. nil means real media and the real
	// filesystem.
	PowerCut *PowerCutSim

	// JournalFaults is for fault-injection tests only: the journal lives
	// in this in-memory filesystem, which fails writes, syncs, creates and
	// renames on demand. Only this module's tests can build one. nil means
	// the real filesystem; PowerCut takes precedence.
	JournalFaults *faultfs.FS
}

const (
	defaultSize      = 1 << 30
	defaultAllocWait = time.Second
)

// EnsureDefaults returns a copy of o with every zero field set to its default.
// It accepts a nil receiver.
func (o *Options) EnsureDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	if out.Size == 0 {
		out.Size = defaultSize
	}
	if out.BlockSize == 0 {
		out.BlockSize = pmem.DefaultBlockSize
	}
	if out.BreakPolicy == PolicyDefault {
		out.BreakPolicy = Detach
	}
	if out.AllocWait == 0 {
		out.AllocWait = defaultAllocWait
	}
	return out
}

// BreakOptions are per-call options of the layout-breaking operations.
type BreakOptions struct {
	// Policy overrides Options.BreakPolicy for this call when not
	// PolicyDefault.
	Policy BreakPolicy
}

// PinOptions configures a pin.
type PinOptions struct {
	// Writable declares that the holder will store into the pinned bytes.
	// The store cannot stop writes through a read-only pin's slices (they
	// alias the region); the flag is recorded for inspection and makes Pin
	// convert unwritten blocks so that the holder's stores are not masked.
	Writable bool
	// Label names the pin in Busy, Pins, `daxstore busy` and ErrNoSpace
	// messages, so an operator can tell who holds space.
	Label string
	// OnBreak, if set, is called once, outside every store lock, after a
	// truncate, punch, zero-range, remove or overwrite detached any of the
	// pin's blocks from its file. The pin stays valid.
	OnBreak func()
}
