package stress

// The crash child: the stress workload on a persistent store in a process
// that Crash kills, announcing each operation that changes a key on stdout
// before it starts ("begin") and how it ended after it returned ("ack",
// "nack" for a failure that changed nothing, "fail" otherwise).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/daxstore/daxstore/dax"
)

// ChildEnv is the environment variable that carries a crash child's orders.
// A process started with it set is a crash child.
const ChildEnv = "DAXSTORE_STRESS_CHILD"

// childMaxRun bounds a child that nobody kills.
const childMaxRun = 10 * time.Minute

// childOrders is what Crash tells its child.
type childOrders struct {
	Config   Config `json:"config"`
	Round    int    `json:"round"`
	FirstGen uint32 `json:"first_gen"` // above every generation of earlier rounds
	// Stall delays the child's open and its first operation: a test's
	// stand-in for a machine too loaded to run the child soon.
	Stall time.Duration `json:"stall,omitempty"`
}

// markerName is the key each crash child puts first, before any worker
// starts; no worker touches it. A round whose kill waits for the child's
// first acknowledgement thus always knows one key's exact state.
const markerName = "stress/crash/marker"

// markerID is the marker's word id, above every filler's.
const markerID = maxKeys + 1 + fillerSlots

// markerLen is the size of the marker's value.
const markerLen = 64 * wordSize

// RunChildIfRequested turns the process into a crash child when ChildEnv is
// set: it runs the workload until it is killed and never returns. Call it
// first thing in TestMain of a test package that calls Crash.
func RunChildIfRequested() {
	if os.Getenv(ChildEnv) == "" {
		return
	}
	if err := RunChild(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// RunChild runs a crash child's workload, as ChildEnv orders, writing its
// lines to w, until it is killed (or ctx ends).
func RunChild(ctx context.Context, w io.Writer) error {
	var o childOrders
	env := os.Getenv(ChildEnv)
	if env == "" {
		return fmt.Errorf("stress: crash child: $%s is not set (only Crash starts children)", ChildEnv)
	}
	if err := json.Unmarshal([]byte(env), &o); err != nil {
		return fmt.Errorf("stress: crash child: bad orders in $%s: %w", ChildEnv, err)
	}
	c := o.Config.EnsureDefaults()
	c.Seed = roundSeed(c.Seed, o.Round)
	c.Duration, c.Ops = childMaxRun, 0
	if err := c.validate(); err != nil {
		return err
	}
	opts := c.storeOptions()
	opts.NoAdminSocket = true
	time.Sleep(o.Stall) // an injected fault (see childOrders), not a synchronization
	s, err := dax.Open(c.Dir, opts)
	if err != nil {
		return fmt.Errorf("stress: crash child: open store: %w", err)
	}
	r := newRunner(c, s, o.FirstGen)
	log := &opLog{w: w, stop: func() {}}
	r.log = log
	r.viol.echo = func(kind, msg string) { log.line("violation %s %s", kind, msg) }
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	log.stop = cancel
	log.line("ready")
	time.Sleep(o.Stall)
	putMarker(s, log, o.FirstGen)
	r.run(runCtx, nil)
	log.line("done")
	return s.CloseWith(context.Background(), dax.CloseOptions{Force: true})
}

// putMarker puts the marker with generation gen, announcing it like any
// operation. A failure is only logged: the parent learns from the lines
// whether the marker's state is known.
func putMarker(s *dax.Store, log *opLog, gen uint32) {
	buf := make([]byte, markerLen)
	fillWords(buf, word{markerID, gen})
	seq := log.begin("put", markerName, gen, markerLen)
	err := s.Put(markerName, buf)
	log.end(seq, err, errors.Is(err, dax.ErrNoSpace))
}

// roundSeed is the seed of a round's child: different every round, the
// same for the same seed and round.
func roundSeed(seed int64, round int) int64 {
	return seed ^ int64(uint64(round+1)*0x9e3779b97f4a7c15)
}

// opLog writes the crash child's lines. Its methods do nothing on a nil
// log, so the workers call them unconditionally.
type opLog struct {
	w    io.Writer
	stop func() // ends the run when the parent stopped listening

	mu  sync.Mutex // serializes lines, so their order is the order of events
	seq int64      // last operation number handed out
	err error      // the first write error
}

// begin announces an operation on key before it starts and returns its
// number for end.
func (l *opLog) begin(kind, key string, gen uint32, n int64) int64 {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	l.writeLocked(fmt.Sprintf("begin %d %s %s %d %d\n", l.seq, kind, key, gen, n))
	return l.seq
}

// end announces how operation seq ended: acknowledged (err nil), failed
// with nothing changed (noop), or failed with an unknown effect.
func (l *opLog) end(seq int64, err error, noop bool) {
	if l == nil {
		return
	}
	what := "ack"
	switch {
	case err == nil:
	case noop:
		what = "nack"
	default:
		what = "fail"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writeLocked(fmt.Sprintf("%s %d\n", what, seq))
}

// line writes one free-form line (newlines in it are flattened).
func (l *opLog) line(format string, args ...any) {
	if l == nil {
		return
	}
	msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", "; ")
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writeLocked(msg + "\n")
}

// writeLocked writes one line straight to w, unbuffered: a line must reach
// the parent before the operation it announces can start.
func (l *opLog) writeLocked(s string) {
	if l.err != nil {
		return
	}
	if _, err := io.WriteString(l.w, s); err != nil {
		l.err = err
		if !errors.Is(err, os.ErrClosed) {
			fmt.Fprintf(os.Stderr, "stress: crash child: %v\n", err)
		}
		l.stop()
	}
}
