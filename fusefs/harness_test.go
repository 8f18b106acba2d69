package fusefs_test

// The harness exists because a process must never mmap a file of a FUSE
// mount it serves itself: a page fault on such a mapping waits for the
// server, and the server's goroutines wait for the garbage collector, which
// waits for the faulting thread. So every system-level test runs the mount
// in a child: the test binary re-executes itself (TestMain sees
// mountChildEnv) as a mount server on a store directory, prints one ready
// line, and then serves control commands on its stdin and stdout that reach
// the store through its API (pins, windows, puts, writes, punches, Check),
// the paths the kernel does not see. The test process does every system
// call on the mount, mmap included, and can SIGKILL the child once it is
// ready. Cleanup stops the child and unmounts, lazily if it must: no test
// leaves a mount behind.

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/daxstore/daxstore/dax"
	"github.com/daxstore/daxstore/fusefs"
	"github.com/daxstore/daxstore/internal/syncbuf"
)

// mountChildEnv, when set, makes the test binary a mount server instead of
// running tests. Its value is the child's configuration, a childConfig in
// JSON.
const mountChildEnv = "DAXSTORE_FUSETEST_CHILD"

// replyTimeout bounds how long the test waits for the child's ready line or
// for the reply to one command: a mount that hangs fails the test with the
// child's log instead of hanging it. It is a bound on failure, never a
// synchronisation: every reply is awaited, however fast it comes.
const replyTimeout = 3 * time.Minute

func TestMain(m *testing.M) {
	if cfg := os.Getenv(mountChildEnv); cfg != "" {
		os.Exit(mountChild(cfg))
	}
	os.Exit(m.Run())
}

// mountConfig is what the child opens and how it mounts it.
type mountConfig struct {
	RegionSize int64         // region size of a new store (0: 64 MiB)
	BlockSize  uint32        // block size of a new store (0: 4096)
	AllocWait  time.Duration // dax.Options.AllocWait (0: the default)
	Policy     string        // break policy: detach (default), wait or fail
	Debug      bool          // log every FUSE request to the child's stderr
}

// childConfig is mountConfig with the paths, as the child reads it.
type childConfig struct {
	mountConfig
	Dir, Mnt string
}

func (c mountConfig) encode(dir, mnt string) string {
	b, err := json.Marshal(childConfig{c, dir, mnt})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// needFUSE skips the test, with one line saying why, where a mount cannot
// be made: not root, or no /dev/fuse.
func needFUSE(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("FUSE mount tests need root (they mount with the mount(2) syscall)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("FUSE mount tests need /dev/fuse: %v", err)
	}
}

// mountProc is a running mount child seen from the test.
type mountProc struct {
	t      testing.TB
	Dir    string // store directory
	Mnt    string // mountpoint
	cfg    mountConfig
	cmd    *exec.Cmd
	in     *os.File        // the child's stdin (commands)
	outF   *os.File        // the child's stdout (replies), for read deadlines
	out    *bufio.Reader   // replies
	stderr *syncbuf.Buffer // the child's log
	exited chan struct{}   // closed once the child has exited
	status *exitStatus     // set before exited is closed
}

type exitStatus struct{ err error }

// In returns the same mount for use by t, a subtest: Do and Must fail the
// test that calls them.
func (p *mountProc) In(t testing.TB) *mountProc {
	q := *p
	q.t = t
	return &q
}

// startMount makes a store directory and a mountpoint under a fresh
// temporary directory, starts the mount child on them and waits for its
// ready line. Cleanup stops the child, unmounts (lazily if it must) and
// fails the test if the mountpoint is still mounted after that.
func startMount(t testing.TB, cfg mountConfig) *mountProc {
	t.Helper()
	needFUSE(t)
	base := t.TempDir()
	dir, mnt := filepath.Join(base, "store"), filepath.Join(base, "mnt")
	for _, d := range []string{dir, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return startMountAt(t, cfg, dir, mnt)
}

// startMountAt starts a mount child on an existing store directory and
// mountpoint.
func startMountAt(t testing.TB, cfg mountConfig, dir, mnt string) *mountProc {
	t.Helper()
	needFUSE(t)
	p := &mountProc{t: t, Dir: dir, Mnt: mnt, cfg: cfg, stderr: &syncbuf.Buffer{}, exited: make(chan struct{}), status: &exitStatus{}}
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(os.Environ(), mountChildEnv+"="+cfg.encode(dir, mnt))
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = inR, outW, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inR.Close()
	outW.Close()
	p.in, p.outF, p.out = inW, outR, bufio.NewReaderSize(outR, 1<<16)
	go func() {
		p.status.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.stop)
	line, err := p.readLine()
	if err != nil || line != "ready" {
		t.Fatalf("mount child did not get ready: line %q, %v; its log:\n%s", line, err, p.stderr.String())
	}
	return p
}

func (p *mountProc) readLine() (string, error) {
	if err := p.outF.SetReadDeadline(time.Now().Add(replyTimeout)); err != nil {
		return "", err
	}
	line, err := p.out.ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

// Do sends one command and returns the text of an "ok" reply, or the
// child's error as an error. A broken pipe or a missing reply fails the
// test: the child died or hung.
func (p *mountProc) Do(format string, args ...any) (string, error) {
	p.t.Helper()
	line := fmt.Sprintf(format, args...)
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		p.t.Fatalf("command %.80q: %v; the mount child's log:\n%s", line, err, p.tail())
	}
	reply, err := p.readLine()
	if err != nil {
		p.t.Fatalf("command %.80q: no reply: %v; the mount child's log:\n%s", line, err, p.tail())
	}
	switch {
	case reply == "ok":
		return "", nil
	case strings.HasPrefix(reply, "ok "):
		return reply[3:], nil
	case strings.HasPrefix(reply, "err "):
		return "", errors.New(reply[4:])
	}
	p.t.Fatalf("command %.80q: bad reply %.200q", line, reply)
	return "", nil
}

// Must is Do that fails the test on an error reply.
func (p *mountProc) Must(format string, args ...any) string {
	p.t.Helper()
	out, err := p.Do(format, args...)
	if err != nil {
		p.t.Fatalf("command %.80q: %v", fmt.Sprintf(format, args...), err)
	}
	return out
}

// tail is the end of the child's log, for failure messages.
func (p *mountProc) tail() string {
	s := p.stderr.String()
	if len(s) > 8000 {
		s = "...\n" + s[len(s)-8000:]
	}
	return s
}

// Kill SIGKILLs the child and waits until it is gone. The mount stays in
// the mount table, its connection aborted, until unmounted.
func (p *mountProc) Kill() {
	p.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatal(err)
	}
	p.waitExit(replyTimeout)
}

func (p *mountProc) waitExit(d time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// Quit asks the child to unmount and close the store, and waits until it
// has exited; it fails the test if the child could not do so cleanly.
func (p *mountProc) Quit() {
	p.t.Helper()
	p.Must("quit")
	p.in.Close()
	if !p.waitExit(replyTimeout) {
		p.t.Fatalf("mount child did not exit after quit; its log:\n%s", p.tail())
	}
	if err := p.status.err; err != nil {
		p.t.Fatalf("mount child: %v; its log:\n%s", err, p.tail())
	}
	if mounted(p.Mnt) {
		p.t.Fatalf("%s still mounted after the mount child exited", p.Mnt)
	}
}

// stop is the cleanup: whatever state the test left, the child is gone and
// the mountpoint unmounted afterwards.
func (p *mountProc) stop() {
	select {
	case <-p.exited:
	default:
		// Ask politely; a child that does not answer is killed.
		io.WriteString(p.in, "quit\n")
		p.in.Close()
		if !p.waitExit(time.Minute) {
			p.cmd.Process.Kill()
			p.waitExit(replyTimeout)
		}
	}
	p.in.Close()
	p.outF.Close()
	Unmount(p.t, p.Mnt)
}

// Unmount unmounts mnt if it is mounted, lazily when a plain unmount is
// refused (a dead server, files still open), and fails the test if it stays
// mounted.
func Unmount(t testing.TB, mnt string) {
	t.Helper()
	if !mounted(mnt) {
		return
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("umount -l %s: %v", mnt, err)
		}
	}
	if mounted(mnt) {
		t.Errorf("%s is still mounted", mnt)
	}
}

// mounted reports whether mnt is a mountpoint in this mount namespace.
func mounted(mnt string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && unescapeMountPath(f[4]) == mnt {
			return true
		}
	}
	return false
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ---- the child ----

// mountChild is the mount server: it opens the store, mounts it, says
// "ready", and serves commands until "quit" or the end of its stdin.
func mountChild(cfgText string) int {
	var cfg childConfig
	if err := json.Unmarshal([]byte(cfgText), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "bad %s %q: %v\n", mountChildEnv, cfgText, err)
		return 2
	}
	dir, mnt, size, bs := cfg.Dir, cfg.Mnt, cfg.RegionSize, cfg.BlockSize
	if size == 0 {
		size = 64 << 20
	}
	if bs == 0 {
		bs = 4096
	}
	policy := dax.PolicyDetach
	if cfg.Policy != "" {
		var err error
		if policy, err = dax.ParseBreakPolicy(cfg.Policy); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	st, err := dax.Open(dir, &dax.Options{Size: size, BlockSize: bs, AllocWait: cfg.AllocWait, BreakPolicy: policy})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open store:", err)
		return 1
	}
	logger := log.New(os.Stderr, "mount: ", log.Lmicroseconds)
	srv, err := fusefs.Mount(st, mnt, fusefs.Options{Log: logger, Debug: cfg.Debug, UID: uint32(os.Getuid()), GID: uint32(os.Getgid())})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mount:", err)
		st.Close()
		return 1
	}
	c := &child{st: st, srv: srv, pins: map[string]dax.Pin{}, wins: map[string]*dax.Window{}}
	fmt.Println("ready")
	in := bufio.NewReaderSize(os.Stdin, 1<<16)
	out := bufio.NewWriter(os.Stdout)
	for {
		line, err := in.ReadString('\n')
		line = strings.TrimSuffix(line, "\n")
		if line == "" && err != nil {
			// The test went away: unmount and close as for quit.
			c.shutdown()
			return 0
		}
		reply, quit := c.serve(line)
		fmt.Fprintln(out, reply)
		out.Flush()
		if quit {
			return 0
		}
	}
}

// child holds the pins and windows the test took through the control pipe.
type child struct {
	st     *dax.Store
	srv    *fusefs.Server
	pins   map[string]dax.Pin
	wins   map[string]*dax.Window
	nextID int
}

// serve runs one command and returns its reply line. A fault on a window's
// memory (a store into a read-only page) becomes an error reply, not a dead
// mount.
func (c *child) serve(line string) (reply string, quit bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			reply = fmt.Sprintf("err panic: %v", r)
		}
	}()
	a := strings.Fields(line)
	if len(a) == 0 {
		return "err empty command", false
	}
	out, err := c.run(a[0], a[1:])
	switch {
	case err == errQuit:
		return "ok", true
	case err != nil:
		return "err " + strings.ReplaceAll(err.Error(), "\n", "; "), false
	case out == "":
		return "ok", false
	}
	return "ok " + out, false
}

var errQuit = errors.New("quit")

func (c *child) shutdown() error {
	for id, p := range c.pins {
		p.Unpin()
		delete(c.pins, id)
	}
	for id, w := range c.wins {
		w.Close()
		delete(c.wins, id)
	}
	uerr := c.srv.Unmount()
	cerr := c.st.CloseWith(context.Background(), dax.CloseOptions{Force: true})
	return errors.Join(uerr, cerr)
}

func (c *child) id() string {
	c.nextID++
	return strconv.Itoa(c.nextID)
}

// withFile runs fn on an open File of key, closed afterwards.
func (c *child) withFile(key string, fn func(f *dax.File) error) error {
	f, err := c.st.Open(key)
	if err != nil {
		return err
	}
	defer f.Close()
	return fn(f)
}

// run is the command table. Offsets inside a pin or window are relative to
// its start; data is hex. "sync" waits for the mount's notifier to catch
// up with every change made so far.
func (c *child) run(cmd string, a []string) (string, error) {
	argc := map[string]int{
		"pin": 3, "pinwrite": 3, "pinread": 1, "pinflush": 1, "unpin": 1,
		"map": 3, "winwrite": 3, "winread": 3, "winflush": 1, "winclose": 1,
		"put": 2, "write": 3, "punch": 3, "zero": 3, "truncate": 2, "remove": 1,
		"size": 1, "get": 1, "check": 0, "quit": 0, "stats": 0, "sync": 0,
	}
	n, ok := argc[cmd]
	if !ok {
		return "", fmt.Errorf("unknown command %q", cmd)
	}
	if len(a) < n {
		return "", fmt.Errorf("%s needs %d arguments", cmd, n)
	}
	num := func(i int) int64 {
		v, err := strconv.ParseInt(a[i], 10, 64)
		if err != nil {
			panic(fmt.Sprintf("%s: argument %d: %v", cmd, i, err))
		}
		return v
	}
	data := func(i int) []byte {
		b, err := hex.DecodeString(a[i])
		if err != nil {
			panic(fmt.Sprintf("%s: argument %d: %v", cmd, i, err))
		}
		return b
	}
	flag := func(s string) bool {
		for _, x := range a[n:] {
			if x == s {
				return true
			}
		}
		return false
	}
	switch cmd {
	case "quit":
		if err := c.shutdown(); err != nil {
			return "", err
		}
		return "", errQuit
	case "check":
		return "", c.st.Check()
	case "sync": // wait until the kernel was told of every change so far
		ctx, cancel := context.WithTimeout(context.Background(), replyTimeout)
		defer cancel()
		if !fusefs.NotifyBarrier(ctx, c.srv) {
			return "", errors.New("the notifier did not catch up: the mount ended or it hung")
		}
		return "", nil
	case "stats":
		s, err := c.st.Stats()
		return fmt.Sprintf("free=%d busy=%d pins=%d windows=%d", s.FreeBlocks, s.BusyBlocks, s.Pins, s.Windows), err
	case "pin": // pin KEY OFF LEN [w]
		var p dax.Pin
		err := c.withFile(a[0], func(f *dax.File) (err error) {
			p, err = f.Pin(num(1), num(2), dax.PinOptions{Writable: flag("w"), Label: "fusetest"})
			return err
		})
		if err != nil {
			return "", err
		}
		id := c.id()
		c.pins[id] = p
		return id, nil
	case "pinwrite": // pinwrite ID OFF HEX: store into the pinned bytes
		p, ok := c.pins[a[0]]
		if !ok {
			return "", fmt.Errorf("no pin %s", a[0])
		}
		off, b := num(1), data(2)
		if off < 0 || off+int64(len(b)) > p.Len() {
			return "", fmt.Errorf("pinwrite [%d,+%d) outside the pin's %d bytes", off, len(b), p.Len())
		}
		for _, s := range p.Bytes() {
			if off < int64(len(s)) {
				k := copy(s[off:], b)
				b = b[k:]
				off = 0
			} else {
				off -= int64(len(s))
			}
		}
		return "", nil
	case "pinread": // pinread ID [LEN] -> HEX of every pinned byte (LEN, the pin's length, is ignored)
		p, ok := c.pins[a[0]]
		if !ok {
			return "", fmt.Errorf("no pin %s", a[0])
		}
		var b []byte
		for _, s := range p.Bytes() {
			b = append(b, s...)
		}
		return hex.EncodeToString(b), nil
	case "pinflush":
		p, ok := c.pins[a[0]]
		if !ok {
			return "", fmt.Errorf("no pin %s", a[0])
		}
		return "", p.Flush()
	case "unpin":
		p, ok := c.pins[a[0]]
		if !ok {
			return "", fmt.Errorf("no pin %s", a[0])
		}
		delete(c.pins, a[0])
		return "", p.Unpin()
	case "map": // map KEY OFF LEN [w] [pinned]
		var w *dax.Window
		o := dax.MapOptions{Writable: flag("w"), Label: "fusetest"}
		if flag("pinned") {
			o.Mode = dax.MapPinned
		}
		err := c.withFile(a[0], func(f *dax.File) (err error) {
			w, err = f.Map(num(1), num(2), o)
			return err
		})
		if err != nil {
			return "", err
		}
		id := c.id()
		c.wins[id] = w
		return id, nil
	case "winwrite": // winwrite ID OFF HEX
		w, ok := c.wins[a[0]]
		if !ok {
			return "", fmt.Errorf("no window %s", a[0])
		}
		off, b := num(1), data(2)
		if off < 0 || off+int64(len(b)) > w.Len() {
			return "", fmt.Errorf("winwrite [%d,+%d) outside the window's %d bytes", off, len(b), w.Len())
		}
		copy(w.Bytes()[off:], b)
		return "", nil
	case "winread": // winread ID OFF LEN -> HEX
		w, ok := c.wins[a[0]]
		if !ok {
			return "", fmt.Errorf("no window %s", a[0])
		}
		off, n := num(1), num(2)
		if off < 0 || n < 0 || off+n > w.Len() {
			return "", fmt.Errorf("winread [%d,+%d) outside the window's %d bytes", off, n, w.Len())
		}
		return hex.EncodeToString(w.Bytes()[off : off+n]), nil
	case "winflush":
		w, ok := c.wins[a[0]]
		if !ok {
			return "", fmt.Errorf("no window %s", a[0])
		}
		return "", w.Flush()
	case "winclose":
		w, ok := c.wins[a[0]]
		if !ok {
			return "", fmt.Errorf("no window %s", a[0])
		}
		delete(c.wins, a[0])
		return "", w.Close()
	case "put": // put KEY HEX
		return "", c.st.Put(a[0], data(1))
	case "write": // write KEY OFF HEX, through a File of this process
		return "", c.withFile(a[0], func(f *dax.File) error {
			_, err := f.WriteAt(data(2), num(1))
			return err
		})
	case "punch":
		return "", c.withFile(a[0], func(f *dax.File) error { return f.PunchHole(num(1), num(2)) })
	case "zero":
		return "", c.withFile(a[0], func(f *dax.File) error { return f.ZeroRange(num(1), num(2)) })
	case "truncate":
		return "", c.withFile(a[0], func(f *dax.File) error { return f.Truncate(num(1)) })
	case "remove":
		return "", c.st.Remove(a[0])
	case "size":
		fi, err := c.st.Stat(a[0])
		return strconv.FormatInt(fi.Size, 10), err
	case "get":
		b, err := c.st.Get(a[0])
		return hex.EncodeToString(b), err
	}
	return "", fmt.Errorf("unhandled command %q", cmd)
}
