package test

// The crash test exists to prove durability against real process death: a
// child process (this test binary, re-executed) runs durable operations and
// acknowledges each on stdout; the parent kills it with SIGKILL at a random
// moment, reopens the store, and demands that every acknowledged operation
// survived, that the one in flight landed whole or not at all (Put, Remove)
// or byte by byte old-or-new (in-place writes, truncate, punch), that Check
// passes, and that no block stays busy or leaks after pins die with their
// process.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daxstore/daxstore/dax"
	"github.com/daxstore/daxstore/internal/daxtest"
	"github.com/daxstore/daxstore/internal/syncbuf"
)

var (
	crashSeed   = flag.Int64("crash.seed", 0, "seed of TestCrash (0: time-based)")
	crashRounds = flag.Int("crash.rounds", 0, "kill rounds of TestCrash (0: 20, or 10 with -short)")
)

// The child reads its orders from the environment: crashChildEnv holds the
// mode ("ops" or "pins").
const (
	crashChildEnv = "DAXSTORE_CRASH_CHILD"
	crashDirEnv   = "DAXSTORE_CRASH_DIR"
	crashSeedEnv  = "DAXSTORE_CRASH_SEED"
	crashRoundEnv = "DAXSTORE_CRASH_ROUND"
	crashStallEnv = "DAXSTORE_CRASH_STALL" // a delay before open and before the first op

	// crashPatience bounds every wait for a child's line. It only turns a
	// hung child into a failure: a loaded machine may take many seconds to
	// start a race-enabled binary and open a store, so it is minutes long.
	crashPatience = 5 * time.Minute

	crashKeys      = 6
	crashMaxBlocks = 16 // files stay around this many blocks
)

// crashOp is one operation of the child, as printed in its "begin" and
// "ack" lines: the kind, the key, and up to three numbers.
//
//	put KEY VERSION LEN     value = crashBytes(valueSeed(KEY, VERSION), LEN)
//	write KEY OFF LEN SEED  data = crashBytes(SEED, LEN)
//	truncate KEY SIZE
//	punch KEY OFF LEN
//	zero KEY OFF LEN
//	create KEY
//	remove KEY
//	pin KEY OFF LEN         (changes no content)
//	unpin INDEX             (of the child's pins, in order; changes no content)
type crashOp struct {
	kind string
	key  string
	a    [3]int64
}

func (op crashOp) String() string {
	var b strings.Builder
	b.WriteString(op.kind + " " + op.key)
	for _, x := range op.a[:crashArgs(op.kind)] {
		b.WriteString(" " + strconv.FormatInt(x, 10))
	}
	return b.String()
}

func crashArgs(kind string) int {
	switch kind {
	case "put", "punch", "zero", "pin":
		return 2
	case "write":
		return 3
	case "truncate":
		return 1
	}
	return 0
}

func parseCrashOp(s string) (crashOp, error) {
	f := strings.Fields(s)
	if len(f) < 2 {
		return crashOp{}, fmt.Errorf("bad op %q", s)
	}
	op := crashOp{kind: f[0], key: f[1]}
	if len(f) != 2+crashArgs(op.kind) {
		return crashOp{}, fmt.Errorf("bad op %q", s)
	}
	for i, x := range f[2:] {
		v, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return crashOp{}, fmt.Errorf("bad op %q: %v", s, err)
		}
		op.a[i] = v
	}
	return op, nil
}

// crashBytes are n bytes derived from seed, never zero, so holes and
// zeroed ranges are told apart from data.
func crashBytes(seed int64, n int64) []byte {
	r := rand.New(rand.NewSource(seed))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(1 + r.Intn(255))
	}
	return p
}

// valueSeed derives a Put's content seed from its key and version.
func valueSeed(key string, version int64) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", key, version)
	return int64(h.Sum64() >> 1)
}

// applyCrashOp applies op to a model of the store's contents.
func applyCrashOp(m map[string][]byte, op crashOp) {
	v := m[op.key]
	resize := func(size int64) []byte {
		if int64(len(v)) >= size {
			return v[:size:size]
		}
		return append(v[:len(v):len(v)], make([]byte, size-int64(len(v)))...)
	}
	switch op.kind {
	case "put":
		m[op.key] = crashBytes(valueSeed(op.key, op.a[0]), op.a[1])
	case "create":
		m[op.key] = []byte{}
	case "remove":
		delete(m, op.key)
	case "write":
		nv := bytes.Clone(resize(max(int64(len(v)), op.a[0]+op.a[1])))
		copy(nv[op.a[0]:], crashBytes(op.a[2], op.a[1]))
		m[op.key] = nv
	case "truncate":
		m[op.key] = bytes.Clone(resize(op.a[0]))
	case "punch", "zero":
		nv := bytes.Clone(v)
		if end := min(op.a[0]+op.a[1], int64(len(nv))); op.a[0] < end {
			clear(nv[op.a[0]:end])
		}
		m[op.key] = nv
	case "pin", "unpin":
	}
}

// --- the child ---

// crashChild runs in the re-executed test binary. It returns the exit code.
func crashChild() int {
	mode, dir := os.Getenv(crashChildEnv), os.Getenv(crashDirEnv)
	seed, err1 := strconv.ParseInt(os.Getenv(crashSeedEnv), 10, 64)
	round, err2 := strconv.ParseInt(os.Getenv(crashRoundEnv), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 2
	}
	var stall time.Duration
	if v := os.Getenv(crashStallEnv); v != "" {
		if stall, err1 = time.ParseDuration(v); err1 != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err1)
			return 2
		}
	}
	// Never outlive the parent: it holds our stdin open until it kills
	// us, so end of file means it is gone.
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(3)
	}()
	// A stall stands in for a machine too loaded to run the child soon
	// (see TestCrashWaitsForASlowChild); it is an injected fault, not a
	// synchronization.
	time.Sleep(stall)
	// Almost no file stays in memory, so the child reads files back from
	// the journal all the time and the kill lands in those paths too.
	s, err := dax.Open(dir, &dax.Options{InodeCache: 2})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child: open:", err)
		return 2
	}
	say("open")
	c := &crashWorker{s: s, rng: rand.New(rand.NewSource(seed)), round: round, sizes: map[string]int64{}}
	infos, err := s.List("")
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child: list:", err)
		return 2
	}
	for _, fi := range infos {
		c.sizes[fi.Key] = fi.Size
	}
	time.Sleep(stall)
	if mode == "pins" {
		err = c.holdPins()
	} else {
		err = c.run()
	}
	fmt.Fprintln(os.Stderr, "crash child:", err)
	return 2
}

// say writes one line to stdout in a single write, so a kill never tears it.
func say(line string) {
	if _, err := os.Stdout.Write([]byte(line + "\n")); err != nil {
		os.Exit(4) // the parent is gone
	}
}

type crashWorker struct {
	s     *dax.Store
	rng   *rand.Rand
	round int64
	n     int64
	sizes map[string]int64 // the child's view of the keys
	pins  []dax.Pin        // held until the kill
}

// run does random durable operations until it is killed.
func (c *crashWorker) run() error {
	for {
		if err := c.do(c.pick()); err != nil {
			return err
		}
	}
}

// do announces op, runs it and acknowledges it once it returned.
func (c *crashWorker) do(op crashOp) error {
	say("begin " + op.String())
	if err := c.exec(op); err != nil {
		return fmt.Errorf("%v: %w", op, err)
	}
	say("ack " + op.String())
	switch op.kind {
	case "put":
		c.sizes[op.key] = op.a[1]
	case "create":
		c.sizes[op.key] = 0
	case "remove":
		delete(c.sizes, op.key)
	case "write":
		c.sizes[op.key] = max(c.sizes[op.key], op.a[0]+op.a[1])
	case "truncate":
		c.sizes[op.key] = op.a[0]
	}
	return nil
}

func (c *crashWorker) exec(op crashOp) error {
	switch op.kind {
	case "put":
		return c.s.Put(op.key, crashBytes(valueSeed(op.key, op.a[0]), op.a[1]))
	case "remove":
		return c.s.Remove(op.key)
	case "unpin":
		i, err := strconv.Atoi(op.key)
		if err != nil || i >= len(c.pins) {
			return fmt.Errorf("no pin %q", op.key)
		}
		p := c.pins[i]
		c.pins = append(c.pins[:i], c.pins[i+1:]...)
		return p.Unpin()
	case "create":
		f, err := c.s.Create(op.key)
		if err != nil {
			return err
		}
		return f.Close()
	}
	f, err := c.s.Open(op.key)
	if err != nil {
		return err
	}
	defer f.Close()
	switch op.kind {
	case "write":
		_, err = f.WriteAt(crashBytes(op.a[2], op.a[1]), op.a[0])
	case "truncate":
		err = f.Truncate(op.a[0])
	case "punch":
		err = f.PunchHole(op.a[0], op.a[1])
	case "zero":
		err = f.ZeroRange(op.a[0], op.a[1])
	case "pin":
		var p dax.Pin
		p, err = f.Pin(op.a[0], op.a[1], dax.PinOptions{Label: "crash " + op.String(), Writable: true})
		if err == nil {
			c.pins = append(c.pins, p)
		}
	default:
		err = fmt.Errorf("unknown op %q", op.kind)
	}
	return err
}

// pick chooses an operation that is valid for the child's view.
func (c *crashWorker) pick() crashOp {
	bs := c.s.BlockSize()
	key := fmt.Sprintf("c%d", c.rng.Intn(crashKeys))
	size, exists := c.sizes[key]
	limit := crashMaxBlocks * bs
	c.n++
	put := crashOp{kind: "put", key: key, a: [3]int64{c.round*1_000_000 + c.n, c.rng.Int63n(limit)}}
	if c.rng.Intn(3) == 0 {
		put.a[1] = c.rng.Int63n(2049) // within the default inline limit: stored in the journal record
	}
	// Pins held across breaks leave busy blocks, and unpins release them
	// with commits that do not sync: kills land in those paths too.
	switch p := c.rng.Intn(100); {
	case p < 6 && exists && size > 0:
		off := c.rng.Int63n(size)
		return crashOp{kind: "pin", key: key, a: [3]int64{off, 1 + c.rng.Int63n(min(size-off, 3*bs))}}
	case p < 12 && len(c.pins) > 0:
		return crashOp{kind: "unpin", key: strconv.Itoa(c.rng.Intn(len(c.pins)))}
	}
	r := c.rng.Intn(100)
	if !exists {
		if r < 25 {
			return crashOp{kind: "create", key: key}
		}
		return put
	}
	switch {
	case r < 30:
		return put
	case r < 60:
		return crashOp{kind: "write", key: key, a: [3]int64{c.rng.Int63n(limit), 1 + c.rng.Int63n(3*bs), c.rng.Int63()}}
	case r < 70:
		return crashOp{kind: "truncate", key: key, a: [3]int64{c.rng.Int63n(limit)}}
	case r < 80:
		return crashOp{kind: "punch", key: key, a: [3]int64{c.rng.Int63n(size + 1), 1 + c.rng.Int63n(4*bs)}}
	case r < 88:
		return crashOp{kind: "zero", key: key, a: [3]int64{c.rng.Int63n(size + 1), 1 + c.rng.Int63n(4*bs)}}
	}
	return crashOp{kind: "remove", key: key}
}

// holdPins puts keys, pins ranges of them, breaks the layout under every
// pin (punch, zero, truncate, put over, remove), writes into the punched
// ranges, then says "holding" and waits for the kill with the pins held.
func (c *crashWorker) holdPins() error {
	bs := c.s.BlockSize()
	keys := []string{"p0", "p1", "p2", "p3", "p4"}
	for i, k := range keys {
		if err := c.do(crashOp{kind: "put", key: k, a: [3]int64{c.round*1_000_000 + int64(i), 8*bs + bs/3}}); err != nil {
			return err
		}
	}
	for _, k := range keys {
		for range 2 {
			off := c.rng.Int63n(6 * bs)
			if err := c.do(crashOp{kind: "pin", key: k, a: [3]int64{off, 1 + c.rng.Int63n(2*bs)}}); err != nil {
				return err
			}
		}
	}
	breaks := []crashOp{
		{kind: "punch", key: "p0", a: [3]int64{bs / 2, 7 * bs}},
		{kind: "zero", key: "p1", a: [3]int64{0, 8 * bs}},
		{kind: "truncate", key: "p2", a: [3]int64{bs / 3}},
		{kind: "put", key: "p3", a: [3]int64{c.round*1_000_000 + 10, 3 * bs}},
		{kind: "remove", key: "p4"},
		{kind: "write", key: "p0", a: [3]int64{bs, 2 * bs, 7}},
	}
	for _, op := range breaks {
		if err := c.do(op); err != nil {
			return err
		}
	}
	say("holding")
	select {}
}

// --- the parent ---

// crashStore is a store the parent kills children over, with the model of
// its contents that the acknowledgements define.
type crashStore struct {
	dir   string
	opts  dax.Options
	model map[string][]byte
}

func newCrashStore(t *testing.T, bs uint32) *crashStore {
	// A short path: the admin socket's path must fit in a sockaddr.
	dir, err := os.MkdirTemp("", "daxcrash")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cs := &crashStore{dir: dir, opts: dax.Options{Size: 8 << 20, BlockSize: bs, InodeCache: 2}, model: map[string][]byte{}}
	s, err := dax.Open(dir, &cs.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return cs
}

// child is one child process and the lines it printed.
type child struct {
	cmd    *exec.Cmd
	lines  chan string
	stdin  io.WriteCloser // held open until the kill: the child's lifeline
	stderr syncbuf.Buffer
}

// startChild starts a child in mode on dir; stall, when not zero, delays
// its open and its first operation.
func startChild(t *testing.T, mode, dir string, seed, round int64, stall time.Duration) *child {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		crashChildEnv+"="+mode, crashDirEnv+"="+dir,
		crashSeedEnv+"="+strconv.FormatInt(seed, 10), crashRoundEnv+"="+strconv.FormatInt(round, 10))
	if stall > 0 {
		cmd.Env = append(cmd.Env, crashStallEnv+"="+stall.String())
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c := &child{cmd: cmd, lines: make(chan string, 1<<16)}
	cmd.Stderr = &c.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	return c
}

// await collects the child's lines until one satisfies done, and returns
// them. It fails the test, killing the child, when the child's output ends
// first or nothing satisfied done within crashPatience.
func (c *child) await(t *testing.T, what string, done func(line string) bool) []string {
	t.Helper()
	var seen []string
	ctx, cancel := context.WithTimeout(context.Background(), crashPatience)
	defer cancel()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				err := c.cmd.Wait()
				t.Fatalf("child ended (%v) before %s; it printed %d lines; stderr:\n%s", err, what, len(seen), c.stderr.String())
			}
			seen = append(seen, l)
			if done(l) {
				return seen
			}
		case <-ctx.Done():
			seen = c.kill(t, seen)
			t.Fatalf("child did not reach %s in %v; it printed %d lines; stderr:\n%s", what, crashPatience, len(seen), c.stderr.String())
		}
	}
}

// kill kills the child with SIGKILL, and returns seen with every further
// line it printed.
func (c *child) kill(t *testing.T, seen []string) []string {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill: %v", err)
	}
	for l := range c.lines {
		seen = append(seen, l)
	}
	c.stdin.Close()
	err := c.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\nstderr:\n%s", err, c.stderr.String())
	}
	return seen
}

// replay applies the acknowledged operations of lines to the model and
// returns the operation in flight at the kill (nil when none) and how many
// were acknowledged.
func (cs *crashStore) replay(t *testing.T, lines []string) (inflight *crashOp, acked int) {
	t.Helper()
	for _, l := range lines {
		kind, rest, _ := strings.Cut(l, " ")
		switch kind {
		case "open", "holding":
		case "begin":
			if inflight != nil {
				t.Fatalf("child began %q before acknowledging %v", rest, *inflight)
			}
			op, err := parseCrashOp(rest)
			if err != nil {
				t.Fatal(err)
			}
			inflight = &op
		case "ack":
			if inflight == nil || inflight.String() != rest {
				t.Fatalf("child acknowledged %q, which is not the operation in flight (%v)", rest, inflight)
			}
			applyCrashOp(cs.model, *inflight)
			inflight = nil
			acked++
		default:
			t.Fatalf("child printed %q", l)
		}
	}
	return inflight, acked
}

// recover reopens the store after a kill, checks it, and compares it with
// the model and the operation in flight. The model then becomes what the
// store holds.
func (cs *crashStore) recover(t *testing.T, inflight *crashOp) {
	t.Helper()
	s, err := dax.Open(cs.dir, &cs.opts)
	if err != nil {
		t.Fatalf("open after kill: %v", err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
	}()
	if err := s.Check(); err != nil {
		t.Fatalf("check after kill: %v", err)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	infos, err := s.List("")
	if err != nil {
		t.Fatal(err)
	}
	var owned uint64
	actual := map[string][]byte{}
	for _, fi := range infos {
		owned += fi.Blocks
		if actual[fi.Key], err = s.Get(fi.Key); err != nil {
			t.Fatalf("get %q: %v", fi.Key, err)
		}
	}
	if st.BusyBlocks != 0 || st.FreeBlocks+st.UsedBlocks != st.DataBlocks || st.UsedBlocks != owned || st.Pins != 0 {
		t.Fatalf("after kill: %d busy, %d free + %d used of %d data blocks, files own %d, %d pins",
			st.BusyBlocks, st.FreeBlocks, st.UsedBlocks, st.DataBlocks, owned, st.Pins)
	}
	if err := compareCrash(actual, cs.model, inflight); err != nil {
		t.Fatal(err)
	}
	cs.model = actual
}

// compareCrash checks actual against the model of the acknowledged
// operations, allowing the operation in flight to have landed: whole or
// not at all for put, create and remove; byte by byte old-or-new for the
// in-place ones (write, truncate, punch, zero), which are not atomic.
func compareCrash(actual, model map[string][]byte, inflight *crashOp) error {
	after := map[string][]byte{}
	for k, v := range model {
		after[k] = v
	}
	if inflight != nil {
		applyCrashOp(after, *inflight)
	}
	keys := map[string]bool{}
	for k := range actual {
		keys[k] = true
	}
	for k := range model {
		keys[k] = true
	}
	for k := range after {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		got, exists := actual[k]
		old, oldOK := model[k]
		same := func(v []byte, ok bool) bool { return ok == exists && bytes.Equal(v, got) }
		if inflight == nil || inflight.key != k || inflight.kind == "pin" || inflight.kind == "unpin" {
			if !same(old, oldOK) {
				return fmt.Errorf("key %q (exists %v, %d bytes) differs from its acknowledged state (exists %v, %d bytes) at %d",
					k, exists, len(got), oldOK, len(old), firstDiff(got, old))
			}
			continue
		}
		nw, newOK := after[k]
		switch inflight.kind {
		case "put", "create", "remove":
			if !same(old, oldOK) && !same(nw, newOK) {
				return fmt.Errorf("key %q after a kill during %v holds neither the old nor the new value (exists %v, %d bytes; old %d bytes, new %d bytes)",
					k, inflight, exists, len(got), len(old), len(nw))
			}
		default:
			if !exists || (len(got) != len(old) && len(got) != len(nw)) {
				return fmt.Errorf("key %q after a kill during %v: exists %v, size %d, want size %d or %d",
					k, inflight, exists, len(got), len(old), len(nw))
			}
			for i, b := range got {
				if b != byteAt(old, i) && b != byteAt(nw, i) {
					return fmt.Errorf("key %q after a kill during %v: byte %d is %#x, neither old %#x nor new %#x",
						k, inflight, i, b, byteAt(old, i), byteAt(nw, i))
				}
			}
		}
	}
	return nil
}

func byteAt(p []byte, i int) byte {
	if i < len(p) {
		return p[i]
	}
	return 0
}

func TestCrash(t *testing.T) {
	if testing.Short() && *crashRounds == 0 {
		*crashRounds = 10
	}
	rounds := *crashRounds
	if rounds == 0 {
		rounds = 20
	}
	seed := *crashSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun with -crash.seed=%d), %d rounds", seed, seed, rounds)
	t.Run("acknowledged operations survive SIGKILL and the one in flight lands whole or byte by byte", func(t *testing.T) {
		crashKillRounds(t, seed, rounds, 0)
	})
	t.Run("pins held by a killed process leave no busy or leaked block", func(t *testing.T) {
		cs := newCrashStore(t, 4096)
		c := startChild(t, "pins", cs.dir, seed, 1, 0)
		lines := c.await(t, "holding its pins", func(l string) bool { return l == "holding" })
		ctx, cancel := context.WithTimeout(context.Background(), crashPatience)
		defer cancel()
		live, err := dax.Inspect(ctx, cs.dir)
		if err != nil {
			c.kill(t, lines)
			t.Fatalf("inspect the live child: %v", err)
		}
		if !live.Live || live.Pid != c.cmd.Process.Pid || len(live.Pins) != 10 || live.Stats.BusyBlocks == 0 {
			c.kill(t, lines)
			t.Fatalf("inspect the live child: live %v pid %d (child %d), %d pins, %d busy blocks",
				live.Live, live.Pid, c.cmd.Process.Pid, len(live.Pins), live.Stats.BusyBlocks)
		}
		if _, err := dax.Open(cs.dir, nil); !errors.Is(err, dax.ErrLocked) {
			c.kill(t, lines)
			t.Fatalf("open of a store the child holds: %v, want ErrLocked", err)
		}
		lines = c.kill(t, lines)
		inflight, _ := cs.replay(t, lines)
		if inflight != nil {
			t.Fatalf("operation %v in flight while holding", inflight)
		}
		if pid := daxtest.LockHolder(cs.dir); pid != c.cmd.Process.Pid {
			t.Errorf("LockHolder = %d, want the dead child's pid %d", pid, c.cmd.Process.Pid)
		}
		dead, err := dax.Inspect(ctx, cs.dir)
		if err != nil {
			t.Fatalf("inspect the dead child's store: %v", err)
		}
		if dead.Live || dead.Stats.BusyBlocks != live.Stats.BusyBlocks || len(dead.Busy) == 0 {
			t.Fatalf("inspect the dead child's store: live %v, %d busy blocks in %d extents (live view had %d)",
				dead.Live, dead.Stats.BusyBlocks, len(dead.Busy), live.Stats.BusyBlocks)
		}
		for _, b := range dead.Busy {
			if !b.Stale {
				t.Fatalf("busy extent %+v of a dead process is not marked stale", b)
			}
		}
		t.Logf("the child held %d pins over %d busy blocks when killed", len(live.Pins), live.Stats.BusyBlocks)
		cs.recover(t, nil)
	})
}

// TestCrashWaitsForASlowChild runs kill rounds against children that
// stall before they open the store and again before their first
// operation, as on a machine too busy to run them soon: the kill timer
// starts only once the child has opened the store (or acknowledged its
// first operation), so the rounds still kill children at work and still
// see acknowledged operations.
func TestCrashWaitsForASlowChild(t *testing.T) {
	seed := *crashSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun with -crash.seed=%d)", seed, seed)
	crashKillRounds(t, seed, 4, 300*time.Millisecond)
}

// crashKillRounds runs rounds of children on two stores (4096- and
// 512-byte blocks), kills each at a random moment, and recovers and
// verifies the store after each kill.
//
// The kill timer starts once the child printed "open" in even rounds, so
// kills land anywhere from the first operation on, and once it
// acknowledged its first operation in odd rounds, so that every odd round
// verifies at least one acknowledged operation however slowly the machine
// runs the child. What a round verifies never depends on how much the
// child got done before its kill.
func crashKillRounds(t *testing.T, seed int64, rounds int, stall time.Duration) {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	stores := []*crashStore{newCrashStore(t, 4096), newCrashStore(t, 512)}
	total := 0
	var busy uint64
	for round := range int64(rounds) {
		cs := stores[round%2]
		delay := time.Duration(5+rng.Intn(196)) * time.Millisecond
		c := startChild(t, "ops", cs.dir, rng.Int63(), round, stall)
		armedAt := "its open"
		ready := func(l string) bool { return l == "open" }
		if round%2 == 1 {
			armedAt = "its first acknowledgement"
			ready = func(l string) bool { return strings.HasPrefix(l, "ack ") }
		}
		lines := c.await(t, armedAt, ready)
		// The delay picks the kill's moment; nothing waits on it.
		time.Sleep(delay)
		lines = c.kill(t, lines)
		inflight, acked := cs.replay(t, lines)
		total += acked
		if round%2 == 1 && acked == 0 {
			t.Fatalf("seed %d round %d: the child acknowledged an operation before the kill timer started, but replay counted none", seed, round)
		}
		snap, err := dax.Inspect(context.Background(), cs.dir)
		if err != nil {
			t.Fatalf("seed %d round %d: inspect the dead child's store: %v", seed, round, err)
		}
		for _, b := range snap.Busy {
			if !b.Stale {
				t.Fatalf("seed %d round %d: busy extent %+v of a dead process is not stale", seed, round, b)
			}
		}
		busy += snap.Stats.BusyBlocks
		t.Logf("round %d: killed %v after %s, %d operations acknowledged, %d busy blocks left, in flight: %v",
			round, delay, armedAt, acked, snap.Stats.BusyBlocks, inflight)
		cs.recover(t, inflight)
		if t.Failed() {
			t.Fatalf("seed %d round %d", seed, round)
		}
	}
	if rounds > 1 && total == 0 {
		t.Fatalf("seed %d: no child acknowledged any operation before its kill", seed)
	}
	t.Logf("%d operations acknowledged in all, %d busy blocks left by dead children", total, busy)
}

// TestCrashCheckerRejects proves that the crash test's comparison can fail:
// it accepts exactly the states a kill may leave and rejects the others.
func TestCrashCheckerRejects(t *testing.T) {
	old, nw := []byte("oooooooo"), crashBytes(valueSeed("c0", 2), 8)
	put := &crashOp{kind: "put", key: "c0", a: [3]int64{2, 8}}
	write := &crashOp{kind: "write", key: "c0", a: [3]int64{2, 4, 9}}
	written := bytes.Clone(old)
	copy(written[2:], crashBytes(9, 4))
	half := bytes.Clone(old)
	copy(half[2:4], crashBytes(9, 2))
	mix := append(bytes.Clone(nw[:4]), old[4:]...)
	foreign := bytes.Clone(old)
	foreign[5] = 0
	cases := []struct {
		name     string
		actual   map[string][]byte
		inflight *crashOp
		ok       bool
	}{
		{"the acknowledged state is accepted", map[string][]byte{"c0": old}, nil, true},
		{"a lost acknowledged key is rejected", map[string][]byte{}, nil, false},
		{"a key nobody created is rejected", map[string][]byte{"c0": old, "c9": nil}, nil, false},
		{"a put in flight may leave the old value", map[string][]byte{"c0": old}, put, true},
		{"a put in flight may leave the new value", map[string][]byte{"c0": nw}, put, true},
		{"a put in flight must not leave a mix", map[string][]byte{"c0": mix}, put, false},
		{"a remove in flight may leave the key", map[string][]byte{"c0": old}, &crashOp{kind: "remove", key: "c0"}, true},
		{"a remove in flight may remove the key", map[string][]byte{}, &crashOp{kind: "remove", key: "c0"}, true},
		{"a write in flight may land whole", map[string][]byte{"c0": written}, write, true},
		{"a write in flight may land in part", map[string][]byte{"c0": half}, write, true},
		{"a write in flight must not change other bytes", map[string][]byte{"c0": foreign}, write, false},
		{"a write in flight must not touch another key", map[string][]byte{"c0": old, "c1": nil}, write, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := compareCrash(c.actual, map[string][]byte{"c0": old}, c.inflight)
			if (err == nil) != c.ok {
				t.Fatalf("compareCrash = %v, want ok %v", err, c.ok)
			}
		})
	}
}
