package dax

import (
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/daxstore/daxstore/internal/testhooks"
	"github.com/daxstore/daxstore/journal"
	"github.com/daxstore/daxstore/pageref"
	"github.com/daxstore/daxstore/pmem"
)

// BreakPolicy says what a layout-breaking operation (Truncate, PunchHole,
// ZeroRange, Remove, or Put over an existing key) does with blocks that pins
// still reference.
type BreakPolicy uint8

const (
	// PolicyDefault means "use Options.BreakPolicy" in per-call options.
	PolicyDefault BreakPolicy = iota
	// PolicyDetach moves referenced blocks out of the file into the busy-extent
	// list and returns at once. The pin holders keep their bytes; the blocks
	// are freed when the last pin drops. This is the default.
	PolicyDetach
	// PolicyWait detaches like PolicyDetach, drops every lock of the file, then waits
	// (bounded by the call's context) until the detached blocks are freed.
	PolicyWait
	// PolicyFail returns ErrPinned and changes nothing when any affected block is
	// referenced.
	PolicyFail
)

// String returns the policy's name as ParseBreakPolicy accepts it.
func (p BreakPolicy) String() string {
	switch p {
	case PolicyDefault:
		return "default"
	case PolicyDetach:
		return "detach"
	case PolicyWait:
		return "wait"
	case PolicyFail:
		return "fail"
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// ParseBreakPolicy parses "detach", "wait" or "fail". Anything else fails
// with ErrInvalidRange.
func ParseBreakPolicy(s string) (BreakPolicy, error) {
	for _, p := range []BreakPolicy{PolicyDetach, PolicyWait, PolicyFail} {
		if p.String() == s {
			return p, nil
		}
	}
	return PolicyDefault, fmt.Errorf("daxstore: unknown break policy %q (want detach, wait or fail): %w", s, ErrInvalidRange)
}

// checkBreakPolicy refuses a value outside the defined policies, which would
// otherwise act as none of them. Open checks Options.BreakPolicy with it,
// and every breaking operation the policy it resolved.
func checkBreakPolicy(p BreakPolicy) error {
	if p > PolicyFail {
		return fmt.Errorf("unknown break policy %d (want PolicyDetach, PolicyWait or PolicyFail): %w", uint8(p), ErrInvalidRange)
	}
	return nil
}

// checkRegionBlocks refuses a region of more blocks than the reference
// table covers (pageref.MaxBlocks: 1 PiB of 4 KiB blocks), which would
// otherwise open with blocks no pin could reference.
func checkRegionBlocks(blocks uint64, blockSize uint32) error {
	if blocks > pageref.MaxBlocks {
		return fmt.Errorf("region of %d blocks of %d bytes exceeds the limit of %d blocks: %w",
			blocks, blockSize, uint64(pageref.MaxBlocks), ErrInvalidRange)
	}
	return nil
}

// Options configures Open. The zero value (or nil) means the defaults.
type Options struct {
	// Size is the region size in bytes used when the store is created
	// (default 1 GiB). It is ignored when the store exists. A region of
	// more than 2^38 blocks is refused with ErrInvalidRange.
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
	// over pinned blocks (default PolicyDetach). A value other than the defined
	// policies makes Open fail with ErrInvalidRange.
	BreakPolicy BreakPolicy

	// AllocWait bounds how long an allocation waits for busy blocks to be
	// released when the region is otherwise full (default 1s). Negative
	// means do not wait: fail with ErrNoSpace at once.
	AllocWait time.Duration

	// InodeCache is how many files the store keeps in memory beyond those
	// in use (default 16384). A file is in memory while a File of it is
	// open, a pin or an operation holds it; the others live in the journal
	// and are read back on use, so opening a store costs nothing per file
	// and memory does not grow with the number of files.
	InodeCache int

	// InlineLimit is the largest value, in bytes, that Put and PutReader
	// store inline: in the file's journal record itself, with no region
	// block (default 2048; 0 means the default, a negative value stores
	// every value in blocks; at most MaxInlineLimit, else Open fails with
	// ErrInvalidRange). A small value then costs one journal record and
	// about its own size, instead of a whole block. Reads serve an inline
	// value from memory. Pin, WriteAt and Allocate on an inline file first
	// move its bytes into region blocks, in a commit of their own; the file
	// stays in blocks until a Put of a small value makes it inline again.
	InlineLimit int

	// MaxWindowMappings is the store-wide budget of window pieces: the
	// mappings (VMAs) that open windows take, one per physically
	// contiguous run of blocks and one per run of zero pages (default
	// 16384; the kernel's default vm.max_map_count is 65530 per process,
	// for everything the process maps). File.Map fails with
	// ErrMappingBudget rather than take a window past it. The budget is
	// checked when a window is mapped; a later remap of a follow window
	// (its file was punched or rewritten into more pieces) is never refused
	// for it, since a break must not fail for a window, so the total may
	// then exceed the budget until windows close. Negative is invalid.
	MaxWindowMappings int

	// NoSync makes metadata commits return before the journal reaches
	// stable storage. THIS IS UNSAFE: a power cut or kernel crash may lose
	// the most recent acknowledged operations, and even a process crash may
	// lose the last few microseconds of them (the journal's writer hands
	// bytes to the kernel in the background). What survives is always a
	// consistent prefix of whole operations. Reads still never show another
	// key's bytes: blocks an operation frees are not reused until a journal
	// sync has made their freeing durable (the store forces one when it
	// runs out of other space, or when such blocks reach 1/8 of the region).
	// Use it for scratch stores and benchmarks of the data path.
	NoSync bool

	// NoAdminSocket disables DIR/admin.sock, the live inspection endpoint
	// that `daxstore busy` and `daxstore pins` use while this process holds
	// the store.
	NoAdminSocket bool

	// AdminWrites lets the processes that may use the admin socket (this
	// user and root; see AdminClient) change the store through it:
	// `daxstore put`, `rm`, `truncate`, `punch` and `zero` while this
	// process holds the store. Off by default: the socket then serves
	// reads only (ls, stat, get, df, check, busy, pins), and a write
	// fails with ErrAdminWrites naming this process.
	AdminWrites bool

	// Logger receives what an operator should hear of and no call of the
	// caller's can return: admin socket connections refused for their
	// peer's uid. nil discards it.
	Logger *log.Logger

	// NoMetrics stops the counting that GET /metrics on the admin socket
	// adds to operations (operations and errors by kind, bytes, commit and
	// wakeup latencies, allocation wait time); the figures the store keeps
	// anyway are still served. It exists to measure what counting costs
	// (`daxstore bench` reports it); the cost is a few atomic adds.
	NoMetrics bool

	// ReadOnly opens an existing store for reading only. Open then creates,
	// writes, renames and removes nothing (no lock file, journal file or
	// admin socket; the region is mapped without write permission), so a
	// store the user may only read opens too. It shares the directory with
	// other read-only opens, in this process or others, but not with a
	// read-write one (ErrLocked on either side). It does not run recovery:
	// busy extents left by a dead process are reported as they are in the
	// journal (BusyExtent.Stale) rather than freed. Every call that would
	// change the store, Pin included, returns ErrReadOnly. A directory
	// without a store gives ErrNoStore.
	ReadOnly bool

	// LockTimeout is how long Open waits for the store directory's lock
	// while another process holds it (as bbolt's Options.Timeout). Zero,
	// the default, fails at once with ErrLocked. A positive duration
	// retries until the lock is free or the duration has passed, and then
	// fails with ErrLocked naming the holder's pid; OpenContext's context
	// cuts the wait short. The wait polls with a backoff of at most 50ms,
	// so a lock released during it is taken within about that long.
	// Read-only opens wait the same way for a writer to leave. Meant for
	// short-lived holders such as CLI commands: a process that keeps the
	// store open keeps every waiter out until its timeout.
	LockTimeout time.Duration

	// MustExist makes Open fail with ErrNoStore instead of creating a store
	// where dir holds none, for callers that mean to open a store they
	// made earlier (a typo in a path must not make a fresh region). A store
	// whose creation was cut short (its journal names it, its region file
	// was never made) is still finished: that is recovery, not creation.
	MustExist bool

	// Preallocate reserves the file space of the whole region at every
	// read-write Open, as if every block were about to be written. By
	// default the region file is sparse and takes space as the store hands
	// blocks out, in chunks of up to 64 MiB: a new 64 GiB region takes
	// neither RAM (tmpfs) nor disk, and an operation meets a full
	// filesystem as ErrNoSpace. With Preallocate, Open fails with
	// ErrNoSpace unless the filesystem holds the whole region, and no
	// operation later fails for want of region file space; use it when
	// the region shares its filesystem with files that could take that
	// space. On tmpfs it takes the region's size in RAM at once.
	Preallocate bool

	// media is test-only plumbing: simulated power cuts or a faulty
	// journal filesystem. Only this module's tests set it, through
	// internal/testhooks; the zero value means real media.
	media testhooks.Media
}

const (
	defaultSize       = 1 << 30
	defaultAllocWait  = time.Second
	defaultInodeCache = 16384
	defaultInline     = 2048
	// defaultWindowMappings leaves three quarters of the kernel's default
	// vm.max_map_count (65530) to the rest of the process.
	defaultWindowMappings = 16384
)

// MaxInlineLimit is the largest Options.InlineLimit: the most bytes the
// journal keeps in one inode record (64 KiB).
const MaxInlineLimit = journal.MaxInlineData

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
		out.BreakPolicy = PolicyDetach
	}
	if out.AllocWait == 0 {
		out.AllocWait = defaultAllocWait
	}
	if out.InodeCache == 0 {
		out.InodeCache = defaultInodeCache
	}
	if out.InlineLimit == 0 {
		out.InlineLimit = defaultInline
	}
	if out.MaxWindowMappings == 0 {
		out.MaxWindowMappings = defaultWindowMappings
	}
	return out
}

// validate reports the first option outside its documented range, wrapped
// around ErrInvalidRange. It looks at nothing on disk, so Open refuses bad
// options before it creates or locks anything
// (TestOpenWithInvalidOptionsLeavesNothingBehind). o has its defaults.
func (o Options) validate() error {
	if o.Size < 0 {
		return fmt.Errorf("negative size %d: %w", o.Size, ErrInvalidRange)
	}
	if o.LockTimeout < 0 {
		return fmt.Errorf("negative lock timeout %v: %w", o.LockTimeout, ErrInvalidRange)
	}
	// The superblock's own checks are the rules for a region's geometry:
	// a block size that is a power of two in range, at least two blocks,
	// no overflow.
	sb := pmem.Superblock{Version: pmem.FormatVersion, BlockSize: o.BlockSize,
		BlockCount: uint64(o.Size) / max(1, uint64(o.BlockSize))}
	if _, err := sb.MarshalBinary(); err != nil {
		return fmt.Errorf("region of %d bytes in blocks of %d: %v: %w", o.Size, o.BlockSize, err, ErrInvalidRange)
	}
	if err := checkBreakPolicy(o.BreakPolicy); err != nil {
		return err
	}
	if o.InodeCache < 0 {
		return fmt.Errorf("negative InodeCache %d: %w", o.InodeCache, ErrInvalidRange)
	}
	if o.MaxWindowMappings < 0 {
		return fmt.Errorf("negative MaxWindowMappings %d: %w", o.MaxWindowMappings, ErrInvalidRange)
	}
	if o.InlineLimit > MaxInlineLimit {
		return fmt.Errorf("InlineLimit %d exceeds %d: %w", o.InlineLimit, MaxInlineLimit, ErrInvalidRange)
	}
	if err := checkRegionBlocks(sb.BlockCount, sb.BlockSize); err != nil {
		return err
	}
	if o.ReadOnly && o.media.PowerCut != nil {
		return fmt.Errorf("ReadOnly with PowerCut: emulated media cannot be opened read-only: %w", ErrInvalidRange)
	}
	if strings.ContainsRune(o.RegionPath, 0) {
		return fmt.Errorf("region path %q holds a NUL byte: %w", o.RegionPath, ErrInvalidRange)
	}
	return nil
}

// BreakOptions are per-call options of the layout-breaking operations.
type BreakOptions struct {
	// Policy overrides Options.BreakPolicy for this call when not
	// PolicyDefault. A value other than the defined policies makes the call
	// fail with ErrInvalidRange before it changes anything.
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
	// messages, so an operator can tell who holds space. It must be valid
	// UTF-8 of at most MaxLabelLen bytes; Pin refuses any other with
	// ErrInvalidLabel. Labels need not be distinct: a busy extent keeps
	// the count of its pins and up to 64 of their distinct labels.
	Label string
	// OnBreak, if set, is called once, outside every store lock, after a
	// truncate, punch, zero-range, remove or overwrite detached any of the
	// pin's blocks from its file. The pin stays valid.
	OnBreak func()
}
