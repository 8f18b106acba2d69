package main

// The live-inspection test: a second process sees the busy extents and pins
// of the process that holds the store, through `daxstore busy` and
// `daxstore pins`, and sees them gone once the holder has unpinned and
// closed.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/daxstore/daxstore/dax"
)

// holderEnv names the store directory when the test binary runs as the
// holder process.
const holderEnv = "DAXSTORE_TEST_HOLDER"

// holderWritesEnv, when set, makes the holder accept writes over its
// admin socket (dax.Options.AdminWrites).
const holderWritesEnv = "DAXSTORE_TEST_HOLDER_WRITES"

// The holder's key, pin and window.
const (
	holderKey    = "held"
	holderLabel  = "holder-pin"
	holderPin    = 32 << 10 // bytes pinned and punched, from offset 0
	holderWindow = "holder-window"
)

// runHolder is the holder process: it opens the store in dir, puts a key,
// pins its first holderPin bytes, maps the next holderPin bytes as a follow
// window, punches the pinned bytes out of the key, says "ready", and holds
// the pin and the window until stdin reaches EOF. Then it unpins, closes
// the window and closes the store, which must succeed.
func runHolder(dir string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "holder:", err)
		return 1
	}
	s, err := dax.Open(dir, &dax.Options{AdminWrites: os.Getenv(holderWritesEnv) != ""})
	if err != nil {
		return fail(err)
	}
	if err := s.Put(holderKey, bytes.Repeat([]byte("h"), 2*holderPin)); err != nil {
		return fail(err)
	}
	f, err := s.Open(holderKey)
	if err != nil {
		return fail(err)
	}
	pin, err := f.Pin(0, holderPin, dax.PinOptions{Label: holderLabel, Writable: true})
	if err != nil {
		return fail(err)
	}
	w, err := f.Map(holderPin, holderPin, dax.MapOptions{Label: holderWindow})
	if err != nil {
		return fail(err)
	}
	if err := f.PunchHole(0, holderPin); err != nil {
		return fail(err)
	}
	fmt.Println("ready")
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		return fail(err)
	}
	if err := pin.Unpin(); err != nil {
		return fail(err)
	}
	if err := w.Close(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := s.Close(); err != nil {
		return fail(err)
	}
	return 0
}

// holderProc is a running holder process.
type holderProc struct {
	pid    int
	proc   *os.Process
	stdin  io.WriteCloser // closing it lets the holder finish
	stderr *bytes.Buffer  // read only after exited is closed
	exited chan struct{}  // closed when the holder has exited
	err    error          // how it exited; set before exited is closed
}

// startHolder runs the holder on dir and waits until it is ready.
func startHolder(t *testing.T, dir string) *holderProc {
	t.Helper()
	return startHolderWith(t, dir, false)
}

// startHolderWith is startHolder with the holder accepting writes over its
// admin socket when writes is set.
func startHolderWith(t *testing.T, dir string, writes bool) *holderProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(cliEnv(), holderEnv+"="+dir)
	if writes {
		cmd.Env = append(cmd.Env, holderWritesEnv+"=1")
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h := &holderProc{stdin: stdin, stderr: new(bytes.Buffer), exited: make(chan struct{})}
	cmd.Stderr = h.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.pid, h.proc = cmd.Process.Pid, cmd.Process
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-h.exited:
		case <-time.After(patience):
			cmd.Process.Kill()
			<-h.exited
		}
	})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		io.Copy(io.Discard, stdout)
		h.err = cmd.Wait()
		close(h.exited)
	}()
	select {
	case line := <-ready:
		if line != "ready\n" {
			<-h.exited
			t.Fatalf("the holder said %q instead of ready (%v); stderr: %s", line, h.err, h.stderr)
		}
	case <-time.After(patience):
		t.Fatalf("the holder is not ready after %v", patience)
	}
	return h
}

func TestAnotherProcessSeesTheHoldersBusyExtentsAndPins(t *testing.T) {
	t.Parallel()
	dir := newStore(t)
	h := startHolder(t, dir)
	pid := h.pid
	const blocks = holderPin / 4096

	t.Run("busy json is live and shows the punched, pinned extent", func(t *testing.T) {
		var snap dax.Snapshot
		mustJSON(t, &snap, "busy", "--json", "--dir", dir)
		if !snap.Live || snap.Pid != pid {
			t.Fatalf("snapshot live=%v pid=%d, want live from the holder (pid %d)", snap.Live, snap.Pid, pid)
		}
		var found bool
		for _, b := range snap.Busy {
			if b.Reason == "punch" && slices.Contains(b.Labels, holderLabel) && b.Key == holderKey && !b.Stale {
				found = true
			}
		}
		if !found || snap.Stats.BusyBlocks != blocks {
			t.Fatalf("busy extents %+v (%d blocks): want a punch of %q held by %q, %d blocks",
				snap.Busy, snap.Stats.BusyBlocks, holderKey, holderLabel, blocks)
		}
	})
	t.Run("the busy table shows the owner, reason and label", func(t *testing.T) {
		out := mustRun(t, nil, "busy", "--dir", dir)
		for _, want := range []string{fmt.Sprintf("pid %d", pid), "START", "OWNER KEY", holderKey, "punch", holderLabel,
			fmt.Sprintf("total: 1 extent, %d blocks (32 KiB)", blocks)} {
			if !strings.Contains(out, want) {
				t.Errorf("busy does not show %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "freed at next open") {
			t.Errorf("busy marks the live extents stale:\n%s", out)
		}
	})
	t.Run("pins json is live and shows the labelled, detached pin and the follow window", func(t *testing.T) {
		var snap dax.Snapshot
		mustJSON(t, &snap, "pins", "--json", "--dir", dir)
		if !snap.Live || len(snap.Pins) != 2 {
			t.Fatalf("snapshot live=%v with pins %+v, want live with one pin and one window", snap.Live, snap.Pins)
		}
		i := slices.IndexFunc(snap.Pins, func(p dax.PinInfo) bool { return p.Mode == "pin" })
		if i < 0 {
			t.Fatalf("no pin among %+v", snap.Pins)
		}
		p, w := snap.Pins[i], snap.Pins[1-i]
		if p.Label != holderLabel || p.Key != holderKey || p.Offset != 0 || p.Length != holderPin ||
			!p.Writable || p.Blocks != blocks || p.Detached != blocks {
			t.Fatalf("pin %+v, want %q on %q [0,+%d), writable, %d blocks all detached", p, holderLabel, holderKey, holderPin, blocks)
		}
		if w.Mode != "follow window" || w.Label != holderWindow || w.Key != holderKey || w.Offset != holderPin ||
			w.Length != holderPin || w.Writable || w.Blocks != 0 || w.Pieces < 1 {
			t.Fatalf("window %+v, want a read-only follow window %q on %q [%d,+%d) holding no blocks, mapped",
				w, holderWindow, holderKey, holderPin, holderPin)
		}
	})
	t.Run("the pins table shows the pin and the window", func(t *testing.T) {
		out := mustRun(t, nil, "pins", "--dir", dir)
		for _, want := range []string{"ID", "MODE", "LABEL", "DETACHED", "PIECES", holderLabel, holderKey, "yes",
			"follow window", holderWindow, "total: 1 pin and 1 window (1 mapping)"} {
			if !strings.Contains(out, want) {
				t.Errorf("pins does not show %q:\n%s", want, out)
			}
		}
	})
	t.Run("df shows the busy and pinned blocks live", func(t *testing.T) {
		var r dfReport
		mustJSON(t, &r, "df", "--json", "--dir", dir)
		if !r.Live || r.Busy.Blocks != blocks || r.Pins != 1 || r.Pinned.Blocks != blocks || r.Windows != 1 || r.WindowPieces != 1 {
			t.Fatalf("df --json = %+v, want live with %d busy and pinned blocks, 1 pin and 1 window of 1 mapping", r, blocks)
		}
	})
	t.Run("put fails and names the holder", func(t *testing.T) {
		r := runCLI(t, []byte("x"), "put", "--dir", dir, "other")
		wantOneErrorLine(t, r, 1, "locked", fmt.Sprintf("pid %d", pid))
	})

	h.stdin.Close()
	select {
	case <-h.exited:
	case <-time.After(patience):
		t.Fatalf("the holder did not exit within %v of its stdin closing", patience)
	}
	if h.err != nil {
		t.Fatalf("the holder failed to unpin and close: %v; stderr: %s", h.err, h.stderr)
	}
	var snap dax.Snapshot
	mustJSON(t, &snap, "busy", "--json", "--dir", dir)
	t.Run("after the holder closed, busy reads the journal and finds nothing busy", func(t *testing.T) {
		if snap.Live || len(snap.Busy) != 0 || len(snap.Pins) != 0 || snap.Stats.BusyBlocks != 0 {
			t.Fatalf("snapshot %+v, want one read from the journal with no busy extents or pins", snap)
		}
		out := mustRun(t, nil, "busy", "--dir", dir)
		if !strings.Contains(out, "read from the journal") || !strings.Contains(out, "no busy extents") {
			t.Fatalf("busy printed:\n%s", out)
		}
		if out := mustRun(t, nil, "check", "--dir", dir); out != "ok\n" {
			t.Fatalf("check printed %q", out)
		}
	})
}

func TestBusyAfterTheHolderDiedShowsStaleExtentsUntilTheNextOpen(t *testing.T) {
	t.Parallel()
	dir := newStore(t)
	h := startHolder(t, dir)
	if err := h.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	<-h.exited
	const blocks = holderPin / 4096

	var snap dax.Snapshot
	mustJSON(t, &snap, "busy", "--json", "--dir", dir)
	if snap.Live || len(snap.Busy) != 1 || !snap.Busy[0].Stale || snap.Busy[0].Reason != "punch" ||
		snap.Busy[0].Blocks != blocks || len(snap.Pins) != 0 {
		t.Fatalf("after the holder died: %+v, want one stale punch extent of %d blocks read from the journal", snap, blocks)
	}
	out := mustRun(t, nil, "busy", "--dir", dir)
	for _, want := range []string{"read from the journal", "NOTE", "freed at next open", holderKey} {
		if !strings.Contains(out, want) {
			t.Errorf("busy does not show %q:\n%s", want, out)
		}
	}
	// busy only looked: the extent is still there for the next open.
	mustJSON(t, &snap, "busy", "--json", "--dir", dir)
	if len(snap.Busy) != 1 {
		t.Fatalf("a second busy found %d extents, want the same 1", len(snap.Busy))
	}
	// check only looks too, and finds the stale extent in order.
	if out := mustRun(t, nil, "check", "--dir", dir); out != "ok\n" {
		t.Fatalf("check printed %q", out)
	}
	mustJSON(t, &snap, "busy", "--json", "--dir", dir)
	if len(snap.Busy) != 1 {
		t.Fatalf("after check, busy found %d extents, want the same 1", len(snap.Busy))
	}
	// A command that writes opens read-write, which recovers: the busy
	// extent becomes free space.
	mustRun(t, []byte("x"), "put", "--dir", dir, "other")
	snap = dax.Snapshot{}
	mustJSON(t, &snap, "busy", "--json", "--dir", dir)
	if len(snap.Busy) != 0 || snap.Stats.BusyBlocks != 0 {
		t.Fatalf("after an open: %+v, want no busy extents", snap)
	}
}
