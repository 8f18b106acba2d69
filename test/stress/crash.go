package stress

// Crash torture: the workload runs in a child process that is killed with
// SIGKILL at a random moment, round after round on the same store. After
// each kill the parent reopens the store and demands what the child was
// promised: Check passes, no block stays busy or leaks (pins die with their
// process), every acknowledged Put or Remove that nothing overlapped
// afterwards holds exactly, and every other key still reads as its own
// words or zeros.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/daxstore/daxstore/dax"
)

// Round is the outcome of one crash round.
type Round struct {
	// Round numbers the round, from 1.
	Round       int           `json:"round"`
	KilledAfter time.Duration `json:"killed_after_ns"` // from ArmedAt to the kill
	// ArmedAt is what started the kill timer: "ready" (the child opened
	// the store) in odd rounds, "first ack" (the child acknowledged its
	// first operation) in even ones, so that every even round verifies
	// acknowledged operations however slowly the machine runs the child.
	ArmedAt      string `json:"armed_at"`
	Begun        int    `json:"begun"`        // operations the child announced
	Acked        int    `json:"acked"`        // of those, acknowledged
	KeysExact    int    `json:"keys_exact"`   // keys whose exact state was known and held
	KeysChecked  int    `json:"keys_checked"` // keys checked word by word only
	CheckOK      bool   `json:"check_ok"`
	Violations   int    `json:"violations"`
	FirstProblem string `json:"first_problem,omitempty"`
}

// CrashReport is the outcome of Crash. It passed when Violations is 0.
type CrashReport struct {
	// Seed seeds the child workloads (see Report.Seed).
	Seed int64 `json:"seed"`
	// Dir is the store directory the rounds used.
	Dir string `json:"dir"`
	// Elapsed is the whole run's wall time.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Rounds reports each kill-and-recover round.
	Rounds []Round `json:"rounds"`
	// Acked and KeysExact total the rounds' figures of the same names.
	Acked     int `json:"acked"`
	KeysExact int `json:"keys_exact"`
	// Violations counts everything that proves a bug, by kind in
	// ViolationKinds; FirstViolations describes the first few.
	Violations      int            `json:"violations"`
	ViolationKinds  map[string]int `json:"violation_kinds,omitempty"`
	FirstViolations []string       `json:"first_violations,omitempty"`
	// Interrupted says the caller's context ended the run early.
	Interrupted bool `json:"interrupted,omitempty"`
}

// OK reports whether every round passed.
func (r *CrashReport) OK() bool { return r.Violations == 0 }

// Crash runs rounds of crash torture on cfg.Dir (a temporary directory,
// removed afterwards, when empty; else it must not hold a store yet).
// Each round re-executes os.Executable() with cfg.ChildArgs as the child,
// kills it after a delay drawn from the seed and the round (up to
// KillAfterMax after the child is ready, or in even rounds after it
// acknowledged its first operation; see Round.ArmedAt), and checks the
// store. report, when not nil, is called after each round. Crash returns
// an error only when it could not run; what it found wrong is in the
// report.
func Crash(ctx context.Context, cfg Config, rounds int, report func(Round)) (*CrashReport, error) {
	c := cfg.EnsureDefaults()
	if c.Duration == 0 && c.Ops == 0 {
		c.Duration = childMaxRun // the child runs until killed
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	if c.NoSync {
		return nil, errors.New("stress: crash: NoSync may lose acknowledged operations in a crash; crash torture needs synced commits")
	}
	if rounds < 1 {
		return nil, fmt.Errorf("stress: crash: rounds must be at least 1, not %d", rounds)
	}
	if c.Dir == "" {
		dir, err := os.MkdirTemp("", "daxstore-crash-")
		if err != nil {
			return nil, fmt.Errorf("stress: crash: %w", err)
		}
		defer os.RemoveAll(dir)
		c.Dir = dir
	} else if err := requireFresh(c.Dir); err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("stress: crash: find own executable: %w", err)
	}
	// Create the store here, so every child finds one.
	s, err := dax.Open(c.Dir, crashOptions(c))
	if err != nil {
		return nil, fmt.Errorf("stress: crash: create store: %w", err)
	}
	if err := s.Close(); err != nil {
		return nil, fmt.Errorf("stress: crash: %w", err)
	}
	cr := &crashRun{c: c, exe: exe, known: map[string]expectedValue{}, firstGen: 1}
	rep := &CrashReport{Seed: c.Seed, Dir: c.Dir}
	start := time.Now()
	for i := 1; i <= rounds; i++ {
		if ctx.Err() != nil {
			rep.Interrupted = true
			break
		}
		rd, v, stop := cr.round(ctx, i)
		rep.add(rd, v)
		if report != nil {
			report(rd)
		}
		if stop {
			rep.Interrupted = ctx.Err() != nil
			break
		}
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// add adds a round and its violations to the report.
func (rep *CrashReport) add(rd Round, v *violations) {
	rep.Rounds = append(rep.Rounds, rd)
	rep.Acked += rd.Acked
	rep.KeysExact += rd.KeysExact
	v.mu.Lock()
	defer v.mu.Unlock()
	rep.Violations += v.n
	for kind, n := range v.kinds {
		if rep.ViolationKinds == nil {
			rep.ViolationKinds = map[string]int{}
		}
		rep.ViolationKinds[kind] += n
	}
	for _, d := range v.first {
		if len(rep.FirstViolations) < maxDescribed {
			rep.FirstViolations = append(rep.FirstViolations, fmt.Sprintf("round %d: %s", rd.Round, d))
		}
	}
}

// crashOptions are the store options of the parent's opens.
func crashOptions(c Config) *dax.Options {
	o := c.storeOptions()
	o.NoAdminSocket = true
	return o
}

// expectedValue is the exact state of a key that the parent knows.
type expectedValue struct {
	present bool
	w       word
	n       int64
}

// crashRun is the parent's state across rounds.
type crashRun struct {
	c        Config
	exe      string
	known    map[string]expectedValue // keys whose exact state is known
	firstGen uint32                   // the next round's first generation
}

// loggedOp is one operation of the child, from its lines.
type loggedOp struct {
	kind, key  string
	gen        uint32
	n          int64
	begin, end int    // line numbers; end -1: never ended
	status     string // ack, nack, fail, or "" (never ended)
}

// round runs round i: child, kill, verification. stop says no further
// round can run (the store did not open, or ctx ended).
func (cr *crashRun) round(ctx context.Context, i int) (rd Round, v *violations, stop bool) {
	rd.Round = i
	r := &runner{c: cr.c, start: time.Now()}
	r.viol.start = r.start
	v = &r.viol
	defer func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		rd.Violations = v.n
		if len(v.first) > 0 {
			rd.FirstProblem = v.first[0]
		}
	}()

	lines, killedAfter, armedAt, err := cr.runChild(ctx, i)
	rd.KilledAfter, rd.ArmedAt = killedAfter, armedAt
	if err != nil {
		r.viol.add(ViolationChild, "%v", err)
		return rd, v, ctx.Err() != nil
	}
	stop = cr.afterKill(r, &rd, lines)
	return rd, v, stop
}

// afterKill learns what round rd's child (which wrote lines) was promised,
// then reopens the store and checks it, filling in rd. It reports whether
// the store failed to open or close, after which no round can run.
func (cr *crashRun) afterKill(r *runner, rd *Round, lines []string) (stop bool) {
	ops := parseChildLines(lines, &r.viol)
	rd.Begun = len(ops)
	for _, op := range ops {
		if op.status == "ack" {
			rd.Acked++
		}
	}
	cr.learnRound(ops)

	s, err := dax.Open(cr.c.Dir, crashOptions(cr.c))
	if err != nil {
		r.viol.add(ViolationRecovery, "open after the kill: %v", err)
		return true
	}
	r.s = s
	before := r.viol.count()
	r.check("check after the kill")
	rd.CheckOK = r.viol.count() == before
	if st, err := s.Stats(); err != nil {
		r.viol.add(ViolationError, "stats after the kill: %v", err)
	} else {
		r.checkLeaks(s, st, nil, "after the kill")
	}
	rd.KeysExact, rd.KeysChecked = cr.verify(r, s)
	if err := s.Close(); err != nil {
		r.viol.add(ViolationError, "close after the kill: %v", err)
		return true
	}
	return false
}

// crashPatience bounds the wait for a child to be ready or to acknowledge
// its first operation. It only turns a hung child into a violation: a
// loaded machine may take many seconds to start a child and open a store.
const crashPatience = 5 * time.Minute

// runChild starts round i's child, kills it a seeded delay after it is
// armed (see Round.ArmedAt), and returns every line it wrote, the delay and
// what armed it.
func (cr *crashRun) runChild(ctx context.Context, i int) ([]string, time.Duration, string, error) {
	armedAt := "ready"
	if i%2 == 0 {
		armedAt = "first ack"
	}
	lines, delay, err := cr.killChild(ctx, i, armedAt)
	return lines, delay, armedAt, err
}

// killChild runs round i's child and kills it once the timer armed at
// armedAt ran out.
func (cr *crashRun) killChild(ctx context.Context, i int, armedAt string) ([]string, time.Duration, error) {
	orders, err := json.Marshal(childOrders{Config: cr.c, Round: i, FirstGen: cr.firstGen, Stall: cr.c.childStall})
	if err != nil {
		return nil, 0, fmt.Errorf("encode child orders: %w", err)
	}
	cmd := exec.Command(cr.exe, cr.c.ChildArgs...)
	cmd.Env = append(os.Environ(), ChildEnv+"="+string(orders))
	var stderr tailBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, 0, fmt.Errorf("child stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("start child: %w", err)
	}
	var lines []string
	armed := make(chan struct{})
	read := make(chan struct{}) // closed once stdout reached its end
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		isArmed := false
		for sc.Scan() {
			l := sc.Text()
			lines = append(lines, l)
			if isArmed {
				continue
			}
			if armedAt == "ready" && l == "ready" && len(lines) == 1 ||
				armedAt == "first ack" && strings.HasPrefix(l, "ack ") {
				isArmed = true
				close(armed)
			}
		}
	}()
	rng := rand.New(rand.NewPCG(uint64(cr.c.Seed), uint64(i)|1<<63))
	span := cr.c.KillAfterMax - cr.c.KillAfterMax/5
	delay := cr.c.KillAfterMax/5 + time.Duration(rng.Int64N(int64(span)+1))
	var early error
	patience := time.NewTimer(crashPatience)
	defer patience.Stop()
	select {
	case <-armed:
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
		case <-read: // stdout closed: the child died on its own
			early = errors.New("exited on its own")
		}
		t.Stop()
	case <-read:
		early = fmt.Errorf("exited before its kill timer was armed at %s", armedAt)
	case <-patience.C:
		early = fmt.Errorf("did not reach %s in %v", armedAt, crashPatience)
	case <-ctx.Done():
	}
	_ = cmd.Process.Kill() // SIGKILL: no deferred function, no flush runs
	<-read                 // every line, before Wait closes the pipe
	werr := cmd.Wait()
	if early != nil {
		return lines, delay, fmt.Errorf("child %s (%v): %s", early, werr, stderr.String())
	}
	return lines, delay, nil
}

// parseChildLines turns the child's lines into its operations, in the
// order they began, and records the violations the child reported.
func parseChildLines(lines []string, viol *violations) []*loggedOp {
	var ops []*loggedOp
	bySeq := map[int64]*loggedOp{}
	for n, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "begin":
			if len(f) != 6 {
				viol.add(ViolationChild, "malformed line %q", l)
				continue
			}
			seq, _ := strconv.ParseInt(f[1], 10, 64)
			gen, _ := strconv.ParseUint(f[4], 10, 32)
			size, _ := strconv.ParseInt(f[5], 10, 64)
			op := &loggedOp{kind: f[2], key: f[3], gen: uint32(gen), n: size, begin: n, end: -1}
			ops = append(ops, op)
			bySeq[seq] = op
		case "ack", "nack", "fail":
			seq, _ := strconv.ParseInt(f[1], 10, 64)
			if op := bySeq[seq]; op != nil {
				op.end, op.status = n, f[0]
			}
		case "violation":
			kind := ViolationChild
			msg := strings.TrimPrefix(l, "violation ")
			if len(f) > 1 {
				kind, msg = f[1], strings.TrimPrefix(msg, f[1]+" ")
			}
			viol.add(kind, "in the child: %s", msg)
		}
	}
	return ops
}

// learn updates what is known of each key the round touched. A key's
// state is known exactly when its last operation was an acknowledged Put
// or Remove and every other operation on it ended before that one began;
// operations that failed without changing anything do not count.
func (cr *crashRun) learn(ops []*loggedOp) {
	byKey := map[string][]*loggedOp{}
	for _, op := range ops {
		if op.status != "nack" {
			byKey[op.key] = append(byKey[op.key], op)
		}
	}
	for key, kops := range byKey {
		last := kops[len(kops)-1] // ops are in the order they began
		exact := last.status == "ack" && (last.kind == "put" || last.kind == "remove")
		for _, op := range kops[:len(kops)-1] {
			if op.end < 0 || op.end > last.begin {
				exact = false
			}
		}
		if !exact {
			delete(cr.known, key)
			continue
		}
		if last.kind == "remove" {
			cr.known[key] = expectedValue{}
			continue
		}
		cr.known[key] = expectedValue{present: true, w: word{idOf(key, cr.c.Keys), last.gen}, n: last.n}
	}
}

// idOf returns the word id of a key of the run, 0 for a foreign name.
func idOf(key string, keys int) uint32 {
	for i := range keys {
		if keyName(i) == key {
			return keyID(i)
		}
	}
	for i := range fillerSlots {
		if fillerName(i) == key {
			return fillerID(i)
		}
	}
	if key == markerName {
		return markerID
	}
	return 0
}

// verify checks every key of the run in s and returns how many were
// checked exactly and how many word by word.
func (cr *crashRun) verify(r *runner, s *dax.Store) (exact, checked int) {
	names := make([]string, 0, cr.c.Keys+fillerSlots)
	for i := range cr.c.Keys {
		names = append(names, keyName(i))
	}
	for i := range fillerSlots {
		names = append(names, fillerName(i))
	}
	names = append(names, markerName)
	for _, name := range names {
		got, err := s.Get(name)
		if err != nil && !errors.Is(err, dax.ErrNotFound) {
			r.viol.add(ViolationError, "get %q after the kill: %v", name, err)
			continue
		}
		present := err == nil
		want, known := cr.known[name]
		if known {
			exact++
			switch {
			case want.present != present:
				r.viol.add(ViolationLost, "%q: acknowledged %s, but after the kill it %s",
					name, map[bool]string{true: "put", false: "remove"}[want.present], map[bool]string{true: "exists", false: "is missing"}[present])
			case present:
				wantBytes := make([]byte, want.n)
				fillWords(wantBytes, want.w)
				if !bytes.Equal(got, wantBytes) {
					r.viol.add(ViolationLost, "%q: acknowledged put of %d bytes %v, but after the kill it holds %d bytes starting %v",
						name, want.n, want.w, len(got), firstWord(got))
				}
			}
			continue
		}
		if !present {
			continue
		}
		checked++
		rule := wordRule{id: idOf(name, cr.c.Keys), next: cr.firstGen}
		if bad, ok := rule.firstBad(got, 0); ok {
			r.viol.add(bad.reason, "%q after the kill: word at offset %d is %v, want zeros or key %d generations below %d",
				name, bad.at, bad.got, rule.id, rule.next)
		}
	}
	return exact, checked
}

func firstWord(b []byte) word {
	if len(b) < wordSize {
		return word{}
	}
	return readWord(b)
}

// tailBuffer keeps the last few KiB written to it: a child's stderr.
type tailBuffer struct {
	mu sync.Mutex // protects b
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 4<<10 {
		t.b = t.b[len(t.b)-4<<10:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
