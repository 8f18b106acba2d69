// Package stress is daxstore's pin/punch stress tool: many workers write,
// put, read, pin, truncate, punch, zero and remove a small set of keys at
// once, while an allocation-pressure worker keeps the region near full, and
// every read, pin and periodic Store.Check looks for the signs of a block
// freed while still referenced: a pinned canary that changed, bytes of
// another key (or bytes a finished Put replaced) in a read, a block with two
// owners, a waiter never woken, a block leaked once every pin is gone.
//
// Run drives one run in this process; Crash kills a child process running
// the same workload at random moments and proves what it acknowledged
// survived. `daxstore stress` is the command-line front end. Only package
// dax's exported API is used, as an application would use it.
package stress

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daxstore/daxstore/dax"
)

// hooks inject faults from this package's tests.
type hooks struct {
	// afterCanary runs after a pinner wrote its canary, before the hold.
	afterCanary func(p dax.Pin)
	// beforeFinal runs after the workers stopped, before the final checks.
	beforeFinal func(s *dax.Store)
	// until, when set, keeps the run going past its Duration until it
	// returns true (or the caller's context ends): a test asks for what
	// must have happened, not for what fit in a time budget.
	until func(r *runner) bool
}

// runner is one run against an open store.
type runner struct {
	c       Config
	s       *dax.Store
	bs      int64
	keys    []*keyState // the main keys
	fillers []*keyState // the pressure workers' keys
	log     *opLog      // the crash child's acknowledgements, or nil
	start   time.Time

	ctx  context.Context // ends the run: its duration, the caller, or a failed store
	stop context.CancelFunc

	count     counters
	viol      violations
	lat       latencies
	checks    atomic.Int64
	checkTime atomic.Int64 // nanoseconds spent in Check
	breaks    atomic.Int64
	canaries  atomic.Int64
	words     atomic.Int64
	// windowStores and windowFaults count stores through writable follow
	// windows: landed, or faulted on a page made read-only meanwhile.
	windowStores, windowFaults atomic.Int64

	checkMu     sync.Mutex // protects checkResult
	checkResult string     // "" (no Check yet), "ok", or the first failure

	workers []*workerState
}

// workerState is one worker's share of the report.
type workerState struct {
	w      Worker
	ops    atomic.Int64
	digest *digest             // touched only by the worker until it returns
	buf    []byte              // the worker's scratch buffer
	fill   map[int]fillerValue // pressure workers: what their fillers hold
}

// keyName and fillerName name the run's keys; their ids start at 1 so that
// no word of data is all zeros, and fillers' ids lie above every main key's.
func keyName(i int) string    { return fmt.Sprintf("stress/k%02d", i) }
func fillerName(i int) string { return fmt.Sprintf("stress/fill/%02d", i) }
func keyID(i int) uint32      { return uint32(i) + 1 }
func fillerID(i int) uint32   { return maxKeys + 1 + uint32(i) }

func newRunner(c Config, s *dax.Store, firstGen uint32) *runner {
	r := &runner{c: c, s: s, bs: s.BlockSize()}
	for i := range c.Keys {
		r.keys = append(r.keys, newKeyState(keyID(i), keyName(i), firstGen))
	}
	for i := range fillerSlots {
		r.fillers = append(r.fillers, newKeyState(fillerID(i), fillerName(i), firstGen))
	}
	for _, w := range c.Workers() {
		r.workers = append(r.workers, &workerState{w: w, digest: newDigest()})
	}
	return r
}

// Run runs the stress workload described by cfg and returns its report.
// progress, when not nil, is called about four times a second from a
// separate goroutine. Run returns an error only when it could not run
// (bad config, the store would not open or close); everything it found
// wrong with the store is in the report's violations. Cancelling ctx ends
// the run early, with every final check still made.
func Run(ctx context.Context, cfg Config, progress func(Progress)) (*Report, error) {
	c := cfg.EnsureDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	if c.Dir == "" {
		dir, err := os.MkdirTemp("", "daxstore-stress-")
		if err != nil {
			return nil, fmt.Errorf("stress: %w", err)
		}
		defer os.RemoveAll(dir)
		c.Dir = dir
	} else if err := requireFresh(c.Dir); err != nil {
		return nil, err
	}
	s, err := dax.Open(c.Dir, c.storeOptions())
	if err != nil {
		return nil, fmt.Errorf("stress: open store: %w", err)
	}
	r := newRunner(c, s, 1)
	interrupted := r.run(ctx, progress)
	final, err := r.finish()
	if err != nil {
		return nil, err
	}
	rep := r.report()
	rep.Final = final
	rep.Interrupted = interrupted
	return rep, nil
}

// requireFresh fails unless dir holds no store.
func requireFresh(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "journal")); err == nil {
		return fmt.Errorf("stress: %s already holds a store; stress needs a fresh directory", dir)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stress: %w", err)
	}
	return nil
}

// run starts the workers, the checker and the progress reporter, and
// returns once the workers stopped, reporting whether ctx (the caller's)
// ended the run early.
func (r *runner) run(ctx context.Context, progress func(Progress)) (interrupted bool) {
	r.start = time.Now()
	r.viol.start = r.start
	runCtx, cancel := context.WithCancel(context.Background())
	r.ctx, r.stop = runCtx, cancel
	defer cancel()
	callerDone := context.AfterFunc(ctx, cancel)
	defer callerDone()
	var ender sync.WaitGroup
	if r.c.Duration > 0 {
		ender.Go(func() { r.endAfter(r.c.Duration) })
	}

	var workers sync.WaitGroup
	for _, ws := range r.workers {
		workers.Go(func() { r.work(ws) })
	}
	side, sideCancel := context.WithCancel(context.Background())
	var helpers sync.WaitGroup
	if r.c.CheckEvery > 0 {
		helpers.Go(func() { r.checkLoop(side) })
	}
	if progress != nil {
		helpers.Go(func() { r.progressLoop(side, progress) })
	}
	workers.Wait()
	cancel()
	ender.Wait() // its hook reads the runner, which finish changes
	sideCancel()
	helpers.Wait()
	return ctx.Err() != nil
}

// endAfter ends the run once d has passed and the until hook, if any, is
// satisfied; it returns early when the run ends otherwise.
func (r *runner) endAfter(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.ctx.Done():
		return
	}
	if h := r.c.hooks; h != nil && h.until != nil {
		// Polled: what the hook asks for is spread over every worker.
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for !h.until(r) {
			select {
			case <-tick.C:
			case <-r.ctx.Done():
				return
			}
		}
	}
	r.stop()
}

// work runs one worker's schedule until the run ends.
func (r *runner) work(ws *workerState) {
	p := newPlanner(r.c, ws.w)
	ws.fill = map[int]fillerValue{}
	for i := 0; r.c.Ops == 0 || i < r.c.Ops; i++ {
		if r.ctx.Err() != nil {
			return
		}
		op := p.next()
		ws.digest.add(op)
		ws.ops.Add(1)
		x := &task{r: r, ws: ws, op: op, seq: i}
		switch op.Kind {
		case OpWrite:
			x.write()
		case OpPut:
			x.put()
		case OpRead:
			x.read()
		case OpGet:
			x.get()
		case OpPin:
			x.pin()
		case OpTruncate, OpPunch, OpZero:
			x.reshape()
		case OpRemove:
			x.remove()
		case OpPressure:
			x.pressure()
		case OpMap:
			x.mapFollow()
		case OpMapPinned:
			x.mapPinned()
		}
	}
}

// checkLoop calls Store.Check every CheckEvery until ctx ends.
func (r *runner) checkLoop(ctx context.Context) {
	t := time.NewTicker(r.c.CheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.check("periodic check")
		}
	}
}

// check calls Store.Check and records the result.
func (r *runner) check(what string) {
	t0 := time.Now()
	err := r.s.Check()
	r.checkTime.Add(int64(time.Since(t0)))
	r.checks.Add(1)
	r.checkMu.Lock()
	defer r.checkMu.Unlock()
	if err == nil {
		if r.checkResult == "" {
			r.checkResult = "ok"
		}
		return
	}
	msg := firstLines(err.Error(), 4)
	if r.checkResult == "" || r.checkResult == "ok" {
		r.checkResult = msg
	}
	r.viol.add(ViolationCheck, "%s: %s", what, msg)
}

// firstLines joins the first n lines of s with "; ".
func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	more := len(lines) - n
	lines = lines[:min(n, len(lines))]
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	out := strings.Join(lines, "; ")
	if more > 0 {
		out += fmt.Sprintf("; ... %d more", more)
	}
	return out
}

// progressLoop reports progress about four times a second until ctx ends.
func (r *runner) progressLoop(ctx context.Context, progress func(Progress)) {
	const every = 250 * time.Millisecond
	t := time.NewTicker(every)
	defer t.Stop()
	var last [numStats]int64
	lastAt := r.start
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p := Progress{Elapsed: now.Sub(r.start), Violations: r.viol.count()}
			secs := now.Sub(lastAt).Seconds()
			lastAt = now
			var delta int64
			for k := range numStats {
				n := r.count.ops(k)
				p.Ops += n
				delta += n - last[k]
				p.Kinds = append(p.Kinds, KindRate{Kind: k.String(), Ops: n, OpsPerSec: float64(n-last[k]) / secs})
				last[k] = n
			}
			p.OpsPerSec = float64(delta) / secs
			if st, err := r.s.Stats(); err == nil {
				p.FreeBlocks, p.BusyBlocks, p.Pins, p.Waiters = st.FreeBlocks, st.BusyBlocks, st.Pins, st.Waiters
			}
			progress(p)
		}
	}
}

// report assembles the report of the run so far.
func (r *runner) report() *Report {
	rep := &Report{
		Seed: r.c.Seed, Dir: r.c.Dir, Elapsed: time.Since(r.start), Config: r.c,
		Kinds: r.count.kinds(), WakeLatency: r.lat.summary(), Checks: int(r.checks.Load()),
		CheckTime: time.Duration(r.checkTime.Load()),
		Breaks:    r.breaks.Load(), Canaries: r.canaries.Load(), WordsChecked: r.words.Load(),
		WindowStores: r.windowStores.Load(), WindowFaults: r.windowFaults.Load(),
	}
	for _, k := range rep.Kinds {
		rep.Ops += k.Ops
	}
	for _, ws := range r.workers {
		rep.Workers = append(rep.Workers, WorkerReport{Worker: ws.w.String(), Ops: ws.ops.Load(), Digest: ws.digest.String()})
	}
	r.checkMu.Lock()
	rep.CheckResult = r.checkResult
	r.checkMu.Unlock()
	r.viol.fill(rep)
	return rep
}
