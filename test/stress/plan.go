package stress

// The schedule: every worker draws its operations from its own generator,
// seeded with the run's seed and the worker's id, and from nothing else, so
// a seed replays the same operations per worker and Plan can list them
// without running them.

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/daxstore/daxstore/dax"
)

// WorkerKind is what a worker does.
type WorkerKind uint8

// The worker kinds.
const (
	KindWriter    WorkerKind = iota // WriteAt into keys
	KindPutter                      // Put whole values
	KindReader                      // ReadAt and Get, checking every word
	KindPinner                      // pin ranges, write and verify canaries, hold, unpin
	KindTruncater                   // Truncate, with a break policy
	KindPuncher                     // PunchHole, with a break policy
	KindZeroer                      // ZeroRange, with a break policy
	KindRemover                     // Remove, with a break policy
	KindPressure                    // keep the region near full with fillers
	KindWindower                    // map follow and pinned windows, verify, store, hold, close
	numWorkerKinds
)

var workerKindNames = [numWorkerKinds]string{
	"writer", "putter", "reader", "pinner", "truncater", "puncher", "zeroer", "remover", "pressure", "windower",
}

// String returns the kind's name, as reports show it.
func (k WorkerKind) String() string {
	if k < numWorkerKinds {
		return workerKindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Worker is one worker of a run: the Index-th of its kind.
type Worker struct {
	// Kind is what the worker does; Index tells it from others of its kind.
	Kind  WorkerKind
	Index int
}

// ID is the number the worker's generator is seeded with, next to the
// run's seed.
func (w Worker) ID() uint64 { return uint64(w.Kind)<<32 | uint64(uint32(w.Index)) }

// String names the worker: its kind and index.
func (w Worker) String() string { return fmt.Sprintf("%s-%d", w.Kind, w.Index) }

// OpKind is the kind of one operation.
type OpKind uint8

// The operation kinds. A reader plans OpRead or OpGet; the pressure worker
// plans OpPressure, which runs as a fill (Put) or a drain (Remove)
// depending on the free space at the time. A windower plans OpMap (a
// follow window) or OpMapPinned.
const (
	OpWrite OpKind = iota
	OpPut
	OpRead
	OpGet
	OpPin
	OpTruncate
	OpPunch
	OpZero
	OpRemove
	OpPressure
	OpMap
	OpMapPinned
	numOpKinds
)

var opKindNames = [numOpKinds]string{
	"write", "put", "read", "get", "pin", "truncate", "punch", "zero", "remove", "pressure", "map", "mappin",
}

// String returns the kind's name, as reports show it.
func (k OpKind) String() string {
	if k < numOpKinds {
		return opKindNames[k]
	}
	return fmt.Sprintf("op(%d)", k)
}

// Op is one planned operation. Which fields matter depends on Kind; every
// offset and length is a multiple of 8.
type Op struct {
	// Kind says what the operation does.
	Kind OpKind
	// Key indexes the key space (for OpPressure: the filler slot).
	Key int
	// Off and Len are the byte range of writes, reads, punches and
	// zero-ranges and follow windows, the size of Puts (Len), truncates
	// (Off) and fillers (Len). For pins and pinned windows Off is a
	// fraction of the file size, in units of 1/pinScale, and Len the
	// largest length pinned.
	Off, Len int64
	// Policy is the break policy of layout-breaking operations.
	Policy dax.BreakPolicy
	// Hold is how long a pin or window is held, or how long a remover
	// pauses before it removes.
	Hold time.Duration
	// Writable makes a pin or pinned window writable, with canaries, and
	// a follow window writable, with stores of the key's words; for
	// OpPressure it asks for a check of the filler's whole value
	// afterwards.
	Writable bool
}

// pinScale is the unit of a pin's planned offset: Off/pinScale of the size.
const pinScale = 1 << 20

// String describes the operation for op logs.
func (op Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s key=%d", op.Kind, op.Key)
	switch op.Kind {
	case OpWrite, OpRead, OpPunch, OpZero:
		fmt.Fprintf(&b, " off=%d len=%d", op.Off, op.Len)
	case OpMap:
		fmt.Fprintf(&b, " off=%d len=%d hold=%v writable=%v", op.Off, op.Len, op.Hold, op.Writable)
	case OpPut, OpPressure:
		fmt.Fprintf(&b, " len=%d", op.Len)
	case OpTruncate:
		fmt.Fprintf(&b, " size=%d", op.Off)
	case OpPin, OpMapPinned:
		fmt.Fprintf(&b, " at=%d/%d len<=%d hold=%v writable=%v", op.Off, pinScale, op.Len, op.Hold, op.Writable)
	case OpRemove:
		fmt.Fprintf(&b, " after=%v", op.Hold)
	}
	switch op.Kind {
	case OpPut, OpTruncate, OpPunch, OpZero, OpRemove:
		fmt.Fprintf(&b, " policy=%s", op.Policy)
	case OpPressure:
		if op.Writable {
			b.WriteString(" verify")
		}
	}
	return b.String()
}

// fillerSlots is the number of filler keys of the pressure workers.
const fillerSlots = 64

// planner draws one worker's operations.
type planner struct {
	c   Config // with defaults
	w   Worker
	rng *rand.Rand
}

func newPlanner(c Config, w Worker) *planner {
	return &planner{c: c, w: w, rng: rand.New(rand.NewPCG(uint64(c.Seed), w.ID()))}
}

// Plan returns the first n operations that worker w of a run with config c
// performs, without running them. Two calls with equal arguments return
// equal operations; Run executes exactly this sequence per worker.
func Plan(c Config, w Worker, n int) []Op {
	p := newPlanner(c.EnsureDefaults(), w)
	ops := make([]Op, 0, max(0, n))
	for range n {
		ops = append(ops, p.next())
	}
	return ops
}

// aligned draws a multiple of 8 from [lo, hi] (lo, hi multiples of 8).
func (p *planner) aligned(lo, hi int64) int64 {
	if hi <= lo {
		return lo
	}
	return lo + p.rng.Int64N((hi-lo)/wordSize+1)*wordSize
}

// size draws a length from [lo, hi] spread over powers of two, so small
// and large operations both happen often.
func (p *planner) size(lo, hi int64) int64 {
	if hi <= lo {
		return lo
	}
	lb, hb := bits.Len64(uint64(lo)), bits.Len64(uint64(hi))
	b := lb + p.rng.IntN(hb-lb+1)
	from, to := max(lo, int64(1)<<(b-1)), min(hi, int64(1)<<b-1)
	return p.aligned(roundUp(from), to&^(wordSize-1))
}

func roundUp(n int64) int64 { return (n + wordSize - 1) &^ (wordSize - 1) }

func (p *planner) key() int { return p.rng.IntN(p.c.Keys) }

func (p *planner) policy() dax.BreakPolicy {
	return p.c.Policies.pick(p.rng.IntN(p.c.Policies.sum()))
}

// span draws a range of a file of at most ValueMax bytes.
func (p *planner) span(maxLen int64) (off, n int64) {
	n = p.size(wordSize, max(wordSize, maxLen))
	off = p.aligned(0, p.c.ValueMax-n)
	return off, n
}

// hold draws a pin's hold time.
func (p *planner) hold() time.Duration {
	c := p.c
	if c.LongHoldPercent > 0 && p.rng.IntN(100) < c.LongHoldPercent {
		return c.PinHold + time.Duration(p.rng.Int64N(int64(c.PinHoldLong-c.PinHold)+1))
	}
	return time.Duration(p.rng.Int64N(int64(c.PinHold) + 1))
}

// next draws the worker's next operation.
func (p *planner) next() Op {
	c := p.c
	switch p.w.Kind {
	case KindWriter:
		op := Op{Kind: OpWrite, Key: p.key()}
		op.Len = p.size(c.ValueMin, c.ValueMax)
		op.Off = p.aligned(0, c.ValueMax-op.Len)
		return op
	case KindPutter:
		return Op{Kind: OpPut, Key: p.key(), Len: p.size(c.ValueMin, c.ValueMax), Policy: p.policy()}
	case KindReader:
		op := Op{Kind: OpRead, Key: p.key()}
		if p.rng.IntN(3) == 0 {
			op.Kind = OpGet
			return op
		}
		op.Off, op.Len = p.span(c.ValueMax)
		return op
	case KindPinner:
		return Op{Kind: OpPin, Key: p.key(), Off: p.rng.Int64N(pinScale), Len: p.size(wordSize, max(wordSize, c.ValueMax/4)),
			Hold: p.hold(), Writable: p.rng.IntN(4) != 0}
	case KindTruncater:
		return Op{Kind: OpTruncate, Key: p.key(), Off: p.aligned(0, c.ValueMax), Policy: p.policy()}
	case KindPuncher, KindZeroer:
		op := Op{Kind: OpPunch, Key: p.key()}
		if p.w.Kind == KindZeroer {
			op.Kind = OpZero
		}
		op.Off, op.Len = p.span(c.ValueMax / 2)
		op.Policy = p.policy()
		return op
	case KindRemover:
		// A remover pauses first, or the keys would hardly ever exist.
		return Op{Kind: OpRemove, Key: p.key(), Policy: p.policy(), Hold: time.Duration(p.rng.Int64N(int64(2*c.PinHold) + 1))}
	case KindWindower:
		if p.rng.IntN(3) == 0 {
			return Op{Kind: OpMapPinned, Key: p.key(), Off: p.rng.Int64N(pinScale), Len: p.size(wordSize, max(wordSize, c.ValueMax/4)),
				Hold: p.hold(), Writable: p.rng.IntN(4) != 0}
		}
		op := Op{Kind: OpMap, Key: p.key(), Hold: p.hold(), Writable: p.rng.IntN(2) == 0}
		// Up to the largest file and a little past it: pages past EOF
		// read as zeros, and the window grows into them as the file does.
		op.Off, op.Len = p.span(c.ValueMax)
		if p.rng.IntN(4) == 0 {
			op.Len += p.aligned(0, c.ValueMax/4)
		}
		return op
	default:
		// Uniform sizes averaging twice Size/fillerSlots: half the fillers
		// can take the whole region.
		maxFill := max(int64(c.BlockSize), 4*c.Size/fillerSlots) &^ (wordSize - 1)
		return Op{Kind: OpPressure, Key: p.rng.IntN(fillerSlots), Len: p.aligned(int64(c.BlockSize), maxFill),
			Writable: p.rng.IntN(8) == 0}
	}
}
