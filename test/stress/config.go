package stress

// What a stress run does: the workers of each kind, the sizes of what they
// write, the break policies they use and how long pins are held, with the
// defaults a user gets from `daxstore stress` without flags.

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/daxstore/daxstore/dax"
)

// Config describes one stress run. The zero value of every field means its
// default (see EnsureDefaults); a run needs Duration or Ops (or both).
type Config struct {
	// Seed seeds every worker's schedule: worker w draws its operations
	// from a generator seeded with (Seed, w), so the same seed replays the
	// same operations per worker. Interleavings still differ between runs.
	Seed int64 `json:"seed"`

	// Duration bounds the run; Ops bounds the operations each worker runs.
	// With both, the run ends at whichever comes first. One must be set.
	Duration time.Duration `json:"duration"`
	Ops      int           `json:"ops"`

	// Workers per kind. A negative count means none; zero means the
	// default for that kind.
	Writers    int `json:"writers"`
	Putters    int `json:"putters"`
	Readers    int `json:"readers"`
	Pinners    int `json:"pinners"`
	Truncaters int `json:"truncaters"`
	Punchers   int `json:"punchers"`
	Zeroers    int `json:"zeroers"`
	Removers   int `json:"removers"`
	Pressure   int `json:"pressure"` // allocation-pressure workers (fillers)
	// Windowers map follow and pinned windows (File.Map). By default there
	// are none when BlockSize is below the page size, which windows need.
	Windowers int `json:"windowers"`

	// Keys is the size of the key space the workers share (default 8).
	// Few keys make operations collide, which is the point.
	Keys int `json:"keys"`

	// Size and BlockSize shape the region created for the run (defaults
	// 64 MiB and 4096 bytes). RegionPath puts the region file elsewhere
	// than Dir/region, e.g. on an fsdax mount.
	Size       int64  `json:"size"`
	BlockSize  uint32 `json:"block_size"`
	RegionPath string `json:"region_path,omitempty"`

	// Dir is the store directory. It must not hold a store yet. Empty
	// means a temporary directory, removed when Run returns.
	Dir string `json:"dir,omitempty"`

	// ValueMin and ValueMax bound the bytes of one write or Put (defaults
	// 1 KiB and 256 KiB); files stay below ValueMax. Both are rounded to
	// multiples of 8, the size of the self-describing word.
	ValueMin int64 `json:"value_min"`
	ValueMax int64 `json:"value_max"`

	// Policies weighs the break policy of each layout-breaking operation
	// (default detach=6, wait=2, fail=2).
	Policies PolicyMix `json:"policies"`

	// PinHold bounds the usual hold time of a pin (default 20ms); one pin
	// in LongHoldPercent (default 5) is held up to PinHoldLong instead
	// (default 1s). A negative LongHoldPercent means no long holds.
	PinHold         time.Duration `json:"pin_hold"`
	PinHoldLong     time.Duration `json:"pin_hold_long"`
	LongHoldPercent int           `json:"long_hold_percent"`

	// WakeBound is how soon a Wait-policy operation must return after the
	// last pin it waits for is released (default 5s); later is a violation.
	WakeBound time.Duration `json:"wake_bound"`

	// CheckEvery is how often the run calls Store.Check, which pauses
	// every operation while it runs (default 1s; negative: only at the end).
	CheckEvery time.Duration `json:"check_every"`

	// FreeTarget is the free space the allocation-pressure workers keep,
	// in bytes (default Size/32, at least 2*ValueMax): they add fillers
	// while more is free and remove them while less is, so freed blocks
	// are reused at once and other workers now and then meet ErrNoSpace.
	FreeTarget int64 `json:"free_target"`

	// AllocWait and NoSync are passed to dax.Options: how long an
	// allocation waits for busy blocks (default 1s), and whether commits
	// skip the sync (unsafe; Crash refuses it).
	AllocWait time.Duration `json:"alloc_wait"`
	NoSync    bool          `json:"no_sync,omitempty"`
	// AdminWrites lets other processes change the store through its admin
	// socket while the run holds it (dax.Options.AdminWrites).
	AdminWrites bool `json:"admin_writes,omitempty"`

	// KillAfterMax bounds the random delay after which Crash kills its
	// child, counted from the child's "ready" or its first acknowledgement
	// (see Round.ArmedAt), never from its start (default 1s; the delay is
	// at least a fifth of it).
	KillAfterMax time.Duration `json:"kill_after_max"`

	// ChildArgs are the arguments Crash runs os.Executable() with for the
	// child; the child's orders travel in the environment. Empty suits a
	// test binary whose TestMain calls RunChildIfRequested; the daxstore
	// CLI passes "stress --crash-child".
	ChildArgs []string `json:"-"`

	// hooks lets this package's tests inject faults; nil in real runs.
	hooks *hooks
	// childStall delays each crash child's open and first operation, for
	// this package's tests (see childOrders.Stall).
	childStall time.Duration
}

// PolicyMix weighs the break policies of layout-breaking operations: each
// operation draws Detach, Wait or Fail with probability weight/sum.
type PolicyMix struct {
	// Detach, Wait and Fail weigh the break policies.
	Detach int `json:"detach"`
	Wait   int `json:"wait"`
	Fail   int `json:"fail"`
}

// String formats the mix as ParsePolicyMix reads it.
func (m PolicyMix) String() string {
	return fmt.Sprintf("detach=%d,wait=%d,fail=%d", m.Detach, m.Wait, m.Fail)
}

// ParsePolicyMix parses "detach=6,wait=2,fail=2". Policies left out weigh
// zero; at least one weight must be positive.
func ParsePolicyMix(s string) (PolicyMix, error) {
	var m PolicyMix
	bad := func(why string) (PolicyMix, error) {
		return PolicyMix{}, fmt.Errorf("invalid policy mix %q: %s (write e.g. detach=6,wait=2,fail=2)", s, why)
	}
	if strings.TrimSpace(s) == "" {
		return bad("empty")
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return bad(fmt.Sprintf("%q is not policy=weight", part))
		}
		name = strings.ToLower(strings.TrimSpace(name))
		w, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || w < 0 || w > 1000 {
			return bad(fmt.Sprintf("weight %q is not a whole number from 0 to 1000", val))
		}
		if seen[name] {
			return bad(fmt.Sprintf("%s given twice", name))
		}
		seen[name] = true
		switch name {
		case "detach":
			m.Detach = w
		case "wait":
			m.Wait = w
		case "fail":
			m.Fail = w
		default:
			return bad(fmt.Sprintf("unknown policy %q", name))
		}
	}
	if m.Detach+m.Wait+m.Fail == 0 {
		return bad("all weights are zero")
	}
	return m, nil
}

// pick maps r in [0, sum) to a policy.
func (m PolicyMix) pick(r int) dax.BreakPolicy {
	switch {
	case r < m.Detach:
		return dax.PolicyDetach
	case r < m.Detach+m.Wait:
		return dax.PolicyWait
	default:
		return dax.PolicyFail
	}
}

func (m PolicyMix) sum() int { return m.Detach + m.Wait + m.Fail }

// Defaults of the fields of Config.
const (
	DefaultKeys         = 8
	DefaultSize         = 64 << 20
	DefaultBlockSize    = 4096
	DefaultValueMin     = 1 << 10
	DefaultValueMax     = 256 << 10
	DefaultPinHold      = 20 * time.Millisecond
	DefaultPinHoldLong  = time.Second
	DefaultLongHold     = 5 // percent
	DefaultWakeBound    = 5 * time.Second
	DefaultCheckEvery   = time.Second
	DefaultAllocWait    = time.Second
	DefaultKillAfterMax = time.Second
)

// defaultWorkers is the number of workers of each kind by default.
var defaultWorkers = [numWorkerKinds]int{
	KindWriter: 2, KindPutter: 2, KindReader: 3, KindPinner: 4, KindTruncater: 1,
	KindPuncher: 2, KindZeroer: 1, KindRemover: 1, KindPressure: 1, KindWindower: 2,
}

// DefaultPolicies is the break-policy mix by default.
var DefaultPolicies = PolicyMix{Detach: 6, Wait: 2, Fail: 2}

// EnsureDefaults returns a copy of c with every zero field set to its
// default. It does not validate; Run does.
func (c Config) EnsureDefaults() Config {
	defaultWindowers := c.Windowers == 0
	for k := WorkerKind(0); k < numWorkerKinds; k++ {
		if *c.count(k) == 0 {
			*c.count(k) = defaultWorkers[k]
		}
	}
	if c.Keys == 0 {
		c.Keys = DefaultKeys
	}
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if defaultWindowers && !windowsMap(c.BlockSize) {
		c.Windowers = -1
	}
	if c.ValueMin == 0 {
		c.ValueMin = DefaultValueMin
	}
	if c.ValueMax == 0 {
		c.ValueMax = DefaultValueMax
	}
	c.ValueMin = max(wordSize, c.ValueMin&^(wordSize-1))
	c.ValueMax &^= wordSize - 1
	if c.Policies == (PolicyMix{}) {
		c.Policies = DefaultPolicies
	}
	if c.PinHold == 0 {
		c.PinHold = DefaultPinHold
	}
	if c.PinHoldLong == 0 {
		c.PinHoldLong = DefaultPinHoldLong
	}
	if c.LongHoldPercent == 0 {
		c.LongHoldPercent = DefaultLongHold
	}
	if c.WakeBound == 0 {
		c.WakeBound = DefaultWakeBound
	}
	if c.CheckEvery == 0 {
		c.CheckEvery = DefaultCheckEvery
	}
	if c.FreeTarget == 0 {
		c.FreeTarget = max(c.Size/32, 2*c.ValueMax)
	}
	if c.AllocWait == 0 {
		c.AllocWait = DefaultAllocWait
	}
	if c.KillAfterMax == 0 {
		c.KillAfterMax = DefaultKillAfterMax
	}
	return c
}

// count returns the field holding the number of workers of kind k.
func (c *Config) count(k WorkerKind) *int {
	switch k {
	case KindWriter:
		return &c.Writers
	case KindPutter:
		return &c.Putters
	case KindReader:
		return &c.Readers
	case KindPinner:
		return &c.Pinners
	case KindTruncater:
		return &c.Truncaters
	case KindPuncher:
		return &c.Punchers
	case KindZeroer:
		return &c.Zeroers
	case KindRemover:
		return &c.Removers
	case KindWindower:
		return &c.Windowers
	default:
		return &c.Pressure
	}
}

// Workers returns the workers that c runs, kind by kind, after defaults.
func (c Config) Workers() []Worker {
	c = c.EnsureDefaults()
	var ws []Worker
	for k := WorkerKind(0); k < numWorkerKinds; k++ {
		for i := 0; i < *c.count(k); i++ {
			ws = append(ws, Worker{Kind: k, Index: i})
		}
	}
	return ws
}

// maxKeys bounds Config.Keys: key ids of the fillers start above it.
const maxKeys = 1 << 16

// validate reports the first thing wrong with c, which has its defaults.
func (c Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Duration < 0 || c.Ops < 0 {
		bad("duration and ops must not be negative")
	}
	if c.Duration == 0 && c.Ops == 0 {
		bad("set a duration or an op count")
	}
	if c.Keys < 1 || c.Keys > maxKeys {
		bad("keys must be from 1 to %d, not %d", maxKeys, c.Keys)
	}
	if c.BlockSize < 512 || c.BlockSize > 1<<20 || c.BlockSize&(c.BlockSize-1) != 0 {
		bad("block size must be a power of two from 512 to 1 MiB, not %d", c.BlockSize)
	}
	if c.ValueMin < wordSize || c.ValueMax < c.ValueMin {
		bad("value sizes must satisfy 8 <= min <= max, not min %d max %d", c.ValueMin, c.ValueMax)
	}
	// The keys at their largest, a Put's second copy, the fillers' slack
	// and the COW blocks of breaking operations must fit with room to spare.
	if need := 4 * int64(c.Keys) * c.ValueMax; c.Size < need || c.Size < 64*int64(c.BlockSize) {
		bad("region of %d bytes is too small for %d keys of up to %d bytes (need at least %d, and 64 blocks)",
			c.Size, c.Keys, c.ValueMax, max(need, 64*int64(c.BlockSize)))
	}
	if c.ValueMax > 1<<30 {
		bad("value max must be at most 1 GiB, not %d", c.ValueMax)
	}
	if c.Policies.Detach < 0 || c.Policies.Wait < 0 || c.Policies.Fail < 0 || c.Policies.sum() == 0 {
		bad("policy weights must not be negative and must not all be zero (%s)", c.Policies)
	}
	if c.PinHold < 0 || c.PinHoldLong < 0 || c.PinHoldLong < c.PinHold {
		bad("pin hold times must satisfy 0 <= hold <= long hold, not %v and %v", c.PinHold, c.PinHoldLong)
	}
	if c.LongHoldPercent > 100 {
		bad("long hold percent must be at most 100, not %d", c.LongHoldPercent)
	}
	if c.WakeBound < 0 || c.FreeTarget < 0 || c.FreeTarget > c.Size || c.KillAfterMax < 0 {
		bad("wake bound, free target and kill delay must not be negative, and free target at most the size")
	}
	if c.WakeBound <= c.AllocWait {
		bad("wake bound %v must exceed the allocation wait %v: a Wait-policy Put may spend that long on space", c.WakeBound, c.AllocWait)
	}
	if c.Windowers > 0 && !windowsMap(c.BlockSize) {
		bad("windowers need blocks of at least a page (%d bytes), not %d", os.Getpagesize(), c.BlockSize)
	}
	if c.Pressure > fillerSlots {
		bad("at most %d pressure workers, not %d", fillerSlots, c.Pressure)
	}
	total := 0
	for k := WorkerKind(0); k < numWorkerKinds; k++ {
		total += max(0, *c.count(k))
	}
	if total == 0 {
		bad("no workers")
	}
	if total > 10000 {
		bad("%d workers is too many (at most 10000)", total)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stress: bad config: %w", err)
	}
	return nil
}

// storeOptions are the dax options of the run's store.
func (c Config) storeOptions() *dax.Options {
	return &dax.Options{
		Size: c.Size, BlockSize: c.BlockSize, RegionPath: c.RegionPath,
		AllocWait: c.AllocWait, NoSync: c.NoSync, AdminWrites: c.AdminWrites,
		// Fewer files in memory than the workers share, so that files
		// leave memory and come back from the journal all the time,
		// racing the operations that bring them in.
		InodeCache: 4,
	}
}

// waitTimeout bounds one Wait-policy operation: the longest hold, what a
// pin holder may spend behind an allocation, and the wake bound, plus
// slack. Past it the operation gives up and the run asks why.
func (c Config) waitTimeout() time.Duration {
	return c.PinHoldLong + 2*max(0, c.AllocWait) + c.WakeBound + 2*time.Second
}
