package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/daxstore/daxstore/test/stress"
)

// busyProgress is a progress report with every figure large and every kind
// active: the longest line the run can produce.
func busyProgress(elapsed time.Duration) stress.Progress {
	p := stress.Progress{Elapsed: elapsed, Ops: 1 << 40, OpsPerSec: 12.5e6, BusyBlocks: 1 << 24, Pins: 123456,
		Waiters: 9999, Violations: 42}
	for _, k := range []string{"write", "put", "pin", "punch", "truncate", "zero", "remove", "read", "window"} {
		p.Kinds = append(p.Kinds, stress.KindRate{Kind: k, Ops: 1 << 30, OpsPerSec: 1.5e6})
	}
	return p
}

// Off a terminal the progress is one plain line per stressLineEvery, each
// at most 80 columns, however many reports arrive in between.
func TestStressProgressOffATerminal(t *testing.T) {
	var buf bytes.Buffer
	l := newStressLine(&buf, 10*time.Second)
	const reports = 20 // 5 seconds of reports, four a second as stress.Run sends them
	for i := 1; i <= reports; i++ {
		l.update(busyProgress(time.Duration(i) * 250 * time.Millisecond))
	}
	l.done()
	out := buf.String()
	if strings.ContainsAny(out, "\r\x1b") {
		t.Errorf("progress off a terminal holds carriage returns or escapes: %q", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines for 5 seconds of progress, want 5 (one a second):\n%s", len(lines), out)
	}
	for i, line := range lines {
		if len(line) > 80 {
			t.Errorf("line %d is %d columns, more than 80: %q", i, len(line), line)
		}
		if want := fmt.Sprintf("stress %ds/10s: ", i+1); !strings.HasPrefix(line, want) {
			t.Errorf("line %d = %q, want it to start with %q", i, line, want)
		}
	}
}

// The line fits any width, keeps its essential figures first, and shows
// the kinds' rates as room allows.
func TestFormatStressProgressFitsTheWidth(t *testing.T) {
	p := busyProgress(3 * time.Second)
	for width := minWidth; width <= 300; width++ {
		if line := formatStressProgress(p, time.Minute, width); len(line) > width {
			t.Fatalf("width %d: line of %d columns: %q", width, len(line), line)
		}
	}
	if line := formatStressProgress(p, time.Minute, 80); !strings.Contains(line, "violations 42") {
		t.Errorf("at 80 columns the violations count is cut: %q", line)
	}
	p.Kinds[len(p.Kinds)-1].OpsPerSec = 9e6
	if line := formatStressProgress(p, time.Minute, 120); !strings.Contains(line, "| window 9.0M") {
		t.Errorf("the busiest kind does not come first: %q", line)
	}
	wide := formatStressProgress(p, time.Minute, 300)
	for _, k := range p.Kinds {
		if !strings.Contains(wide, k.Kind+" "+formatCount(k.OpsPerSec)) {
			t.Errorf("at 300 columns kind %s is missing: %q", k.Kind, wide)
		}
	}
}

// openPty returns the two ends of a new pseudo-terminal of cols columns.
func openPty(t *testing.T, cols uint16) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: cols}); err != nil {
		t.Fatal(err)
	}
	return m, s
}

func TestTermWidth(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if width, tty := termWidth(w); width != defaultWidth || tty {
		t.Errorf("termWidth(pipe) = %d, %v; want %d, false", width, tty, defaultWidth)
	}
	if width, tty := termWidth(&bytes.Buffer{}); width != defaultWidth || tty {
		t.Errorf("termWidth(buffer) = %d, %v; want %d, false", width, tty, defaultWidth)
	}
	for _, c := range []struct{ cols, want int }{{132, 132}, {80, 80}, {50, 50}, {5, minWidth}} {
		_, slave := openPty(t, uint16(c.cols))
		if width, tty := termWidth(slave); width != c.want || !tty {
			t.Errorf("termWidth(%d-column terminal) = %d, %v; want %d, true", c.cols, width, tty, c.want)
		}
	}
}

// On a terminal the line is redrawn in place within the terminal's width.
func TestStressProgressOnATerminal(t *testing.T) {
	const cols = 60
	master, slave := openPty(t, cols)
	l := newStressLine(slave, 0)
	if !l.tty {
		t.Fatal("a pseudo-terminal is not taken for a terminal")
	}
	l.update(busyProgress(time.Second))
	l.done()
	// Read back what was drawn (the pty echoes output to its master).
	buf := make([]byte, 4096)
	n, err := master.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	out := string(buf[:n])
	draw, _, _ := strings.Cut(strings.TrimPrefix(out, "\r"), "\x1b[K")
	if !strings.HasPrefix(out, "\r") || !strings.HasPrefix(draw, "stress 1s: ") || len(draw) > cols-1 {
		t.Errorf("drawn %q: want a carriage return and a line of at most %d columns", out, cols-1)
	}
}
