package stress

// What a run reports: operations and their outcomes per kind, violations
// with a description of the first few, how soon waiters woke after the pin
// they waited for dropped, and the live figures of the progress line.

import (
	"fmt"
	"hash"
	"hash/fnv"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Report is the outcome of a run. The run passed when Violations is 0.
type Report struct {
	// Seed is the run's seed: Config.Seed, or the one drawn for it.
	Seed int64 `json:"seed"`
	// Dir is the store directory.
	Dir string `json:"dir"`
	// Elapsed is the run's wall time.
	Elapsed time.Duration `json:"elapsed_ns"`
	Config  Config        `json:"config"` // with defaults
	// Interrupted says the caller's context ended the run early.
	Interrupted bool `json:"interrupted,omitempty"`

	Ops     int64          `json:"ops"` // operations run, all kinds
	Kinds   []KindReport   `json:"kinds"`
	Workers []WorkerReport `json:"workers"`

	// Violations counts everything that proves a bug: see the Violation*
	// constants for the kinds. FirstViolations describes the first few.
	Violations      int            `json:"violations"`
	ViolationKinds  map[string]int `json:"violation_kinds,omitempty"`
	FirstViolations []string       `json:"first_violations,omitempty"`

	// WakeLatency is the time from the Unpin that released the last pin a
	// Wait-policy operation waited for to that operation's return.
	WakeLatency Latency `json:"wake_latency"`

	Checks      int           `json:"checks"`        // Store.Check calls, the final ones included
	CheckTime   time.Duration `json:"check_time_ns"` // spent in them, every operation paused
	CheckResult string        `json:"check_result"`  // "ok", or the first failure

	Breaks   int64 `json:"breaks"`   // OnBreak calls on the run's pins
	Canaries int64 `json:"canaries"` // canaries written through pins and verified
	// WindowStores counts the stores of words through writable follow
	// windows that landed; WindowFaults those that met a page a racing
	// truncate or remove had just made read-only (the documented fault).
	WindowStores int64 `json:"window_stores"`
	WindowFaults int64 `json:"window_faults"`
	WordsChecked int64 `json:"words_checked"` // 8-byte words that reads verified

	// Final is the store after every pin dropped and the store was
	// reopened; the leak checks compare its figures.
	Final FinalState `json:"final"`
}

// OK reports whether the run found no violation.
func (r *Report) OK() bool { return r.Violations == 0 }

// KindReport counts the operations of one kind and their outcomes.
// NoSpace, Pinned, Raced and WaitTimeouts are expected outcomes of a busy
// store; Unexpected errors are violations.
type KindReport struct {
	// Kind names the operation kind; Ops counts the operations run and OK
	// those that succeeded. The fields below count expected failures.
	Kind         string `json:"kind"`
	Ops          int64  `json:"ops"`
	OK           int64  `json:"ok"`
	NoSpace      int64  `json:"no_space"`      // ErrNoSpace
	Pinned       int64  `json:"pinned"`        // ErrPinned under the Fail policy
	Raced        int64  `json:"raced"`         // the key vanished or shrank meanwhile
	WaitTimeouts int64  `json:"wait_timeouts"` // a Wait-policy call outlived a long pin hold
	Unexpected   int64  `json:"unexpected"`
}

// WorkerReport is what one worker ran. Digest fingerprints the sequence of
// operations it ran (as Digest of Plan's operations would).
type WorkerReport struct {
	// Worker names the worker, Ops counts its operations and Digest
	// hashes its schedule, to compare replays with the same seed.
	Worker string `json:"worker"`
	Ops    int64  `json:"ops"`
	Digest string `json:"digest"`
}

// Latency summarizes wake latencies.
type Latency struct {
	// Samples is the number of latencies measured; P50, P90 and P99 are
	// their percentiles and Max the largest.
	Samples int           `json:"samples"`
	P50     time.Duration `json:"p50_ns"`
	P90     time.Duration `json:"p90_ns"`
	P99     time.Duration `json:"p99_ns"`
	Max     time.Duration `json:"max_ns"`
}

// FinalState is the store after the run, reopened.
type FinalState struct {
	// DataBlocks is the region size in blocks; FreeBlocks, UsedBlocks and
	// BusyBlocks split it as Store.Stats does.
	DataBlocks uint64 `json:"data_blocks"`
	FreeBlocks uint64 `json:"free_blocks"`
	UsedBlocks uint64 `json:"used_blocks"`
	BusyBlocks uint64 `json:"busy_blocks"`
	FileBlocks uint64 `json:"file_blocks"` // the sum of Blocks over every key
	Files      int    `json:"files"`
	Detached   uint64 `json:"detached"` // blocks moved to busy during the run
	Released   uint64 `json:"released"` // blocks freed from busy during the run
	AllocWaits uint64 `json:"alloc_waits"`
}

// Progress is a run's state at one instant, for a live progress line.
type Progress struct {
	// Elapsed is the time since the run began; Ops the operations run.
	Elapsed    time.Duration `json:"elapsed_ns"`
	Ops        int64         `json:"ops"`
	OpsPerSec  float64       `json:"ops_per_sec"` // since the previous Progress
	Kinds      []KindRate    `json:"kinds"`
	FreeBlocks uint64        `json:"free_blocks"`
	BusyBlocks uint64        `json:"busy_blocks"`
	Pins       int           `json:"pins"`
	Waiters    int           `json:"waiters"`
	Violations int           `json:"violations"`
}

// KindRate is one kind's operations so far and their rate.
type KindRate struct {
	// Kind names the operation kind; Ops counts them so far and OpsPerSec
	// is their rate since the previous Progress.
	Kind      string  `json:"kind"`
	Ops       int64   `json:"ops"`
	OpsPerSec float64 `json:"ops_per_sec"`
}

// Violation kinds.
const (
	ViolationCanary          = "canary"            // a pinned canary changed
	ViolationForeign         = badForeign          // a read saw bytes of another key, or garbage
	ViolationStale           = badStale            // a read saw bytes a finished Put or Remove replaced
	ViolationValue           = "wrong-value"       // a filler or acknowledged value differs from what was stored
	ViolationCheck           = "check"             // Store.Check failed
	ViolationFailed          = "store-failed"      // an operation returned ErrFailed
	ViolationError           = "unexpected-error"  // an operation failed in a way no race explains
	ViolationWakeLatency     = "wake-latency"      // a waiter woke later than WakeBound after its release
	ViolationLostWakeup      = "lost-wakeup"       // a waiter timed out long after every pin it waited for dropped
	ViolationBusyNotReleased = "busy-not-released" // busy blocks remained after the last pin dropped
	ViolationLeak            = "leak"              // after reopening, blocks are neither free nor owned
	ViolationLost            = "lost-ack"          // Crash: an acknowledged operation did not survive
	ViolationChild           = "child"             // Crash: the child failed on its own
	ViolationRecovery        = "recovery"          // Crash: the store did not open after the kill
)

// maxDescribed is how many violations are described in full.
const maxDescribed = 20

// violations collects the violations of a run.
type violations struct {
	start time.Time
	echo  func(kind, msg string) // if set, also told of every violation (the crash child prints them)
	mu    sync.Mutex             // protects the fields below
	n     int                    // all violations
	kinds map[string]int         // per kind
	first []string               // descriptions of the first maxDescribed
}

func (v *violations) add(kind, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if v.echo != nil {
		v.echo(kind, msg)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.n++
	if v.kinds == nil {
		v.kinds = map[string]int{}
	}
	v.kinds[kind]++
	if len(v.first) < maxDescribed {
		at := time.Since(v.start).Round(time.Millisecond)
		v.first = append(v.first, fmt.Sprintf("%s at %v: %s", kind, at, msg))
	}
}

func (v *violations) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.n
}

// fill copies the violations into r.
func (v *violations) fill(r *Report) {
	v.mu.Lock()
	defer v.mu.Unlock()
	r.Violations = v.n
	if len(v.kinds) > 0 {
		r.ViolationKinds = maps.Clone(v.kinds)
	}
	r.FirstViolations = slices.Clone(v.first)
}

// statKind is a kind of operation as counted: the planned kinds, with the
// pressure worker's split into fills and drains.
type statKind uint8

const (
	statFill  = statKind(OpPressure)
	statDrain = statKind(numOpKinds)
	numStats  = statDrain + 1
)

func (k statKind) String() string {
	switch k {
	case statFill:
		return "fill"
	case statDrain:
		return "drain"
	}
	return OpKind(k).String()
}

// outcome is how one operation ended.
type outcome uint8

const (
	outOK outcome = iota
	outNoSpace
	outPinned
	outRaced
	outWaitTimeout
	outUnexpected
	numOutcomes
)

// counters counts operations per kind and outcome, lock-free.
type counters struct {
	n [numStats][numOutcomes]atomic.Int64
}

func (c *counters) add(k statKind, o outcome) { c.n[k][o].Add(1) }

func (c *counters) ops(k statKind) int64 {
	var sum int64
	for o := range numOutcomes {
		sum += c.n[k][o].Load()
	}
	return sum
}

func (c *counters) kinds() []KindReport {
	out := make([]KindReport, 0, numStats)
	for k := range numStats {
		l := func(o outcome) int64 { return c.n[k][o].Load() }
		out = append(out, KindReport{
			Kind: k.String(), Ops: c.ops(k), OK: l(outOK), NoSpace: l(outNoSpace), Pinned: l(outPinned),
			Raced: l(outRaced), WaitTimeouts: l(outWaitTimeout), Unexpected: l(outUnexpected),
		})
	}
	return out
}

// latencies collects wake latencies.
type latencies struct {
	mu sync.Mutex      // protects d
	d  []time.Duration // every sample
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.d = append(l.d, d)
}

func (l *latencies) summary() Latency {
	l.mu.Lock()
	d := slices.Clone(l.d)
	l.mu.Unlock()
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	q := func(p int) time.Duration { return d[min(len(d)-1, len(d)*p/100)] }
	return Latency{Samples: len(d), P50: q(50), P90: q(90), P99: q(99), Max: d[len(d)-1]}
}

// Digest fingerprints a sequence of operations, as WorkerReport.Digest
// does for the operations a worker ran.
func Digest(ops []Op) string {
	d := newDigest()
	for _, op := range ops {
		d.add(op)
	}
	return d.String()
}

// digest is a running fingerprint of operations.
type digest struct{ h hash.Hash64 }

func newDigest() *digest { return &digest{h: fnv.New64a()} }

func (d *digest) add(op Op) { _, _ = d.h.Write([]byte(op.String() + "\n")) }

func (d *digest) String() string { return fmt.Sprintf("%016x", d.h.Sum64()) }
