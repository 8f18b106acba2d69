package main

// The stress progress line. On a terminal it is one line redrawn in place
// and cut to the terminal's width, so it never wraps into a scroll of
// half-lines; elsewhere (a pipe, a log file, CI) it is one plain line per
// stressLineEvery, each at most defaultWidth columns, so a log shows the
// run's course without carriage returns or escape codes.

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"golang.org/x/term"

	"github.com/daxstore/daxstore/test/stress"
)

const (
	// defaultWidth is the width of a line written anywhere but a
	// terminal, and of a terminal whose size cannot be read.
	defaultWidth = 80
	// minWidth is the narrowest line drawn, however narrow the terminal.
	minWidth = 20
	// stressLineEvery is how often a line is written off a terminal.
	stressLineEvery = time.Second
)

// termWidth returns w's width in columns and whether w is a terminal:
// the terminal's own width (at least minWidth), else defaultWidth.
func termWidth(w io.Writer) (int, bool) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return defaultWidth, false
	}
	cols, _, err := term.GetSize(int(f.Fd()))
	if err != nil || cols <= 0 {
		return defaultWidth, true
	}
	return max(cols, minWidth), true
}

// stressLine writes stress progress to w. It is used from one goroutine
// (the run's progress callback, then done).
type stressLine struct {
	w     io.Writer
	tty   bool
	width int           // columns a line may take
	total time.Duration // the run's length, or 0 when unknown
	next  time.Duration // off a terminal: when the next line is due
	drawn bool          // on a terminal: a line is showing
}

func newStressLine(w io.Writer, total time.Duration) *stressLine {
	width, tty := termWidth(w)
	return &stressLine{w: w, tty: tty, width: width, total: total, next: stressLineEvery}
}

// update shows p: redrawn in place on a terminal (its width read anew, as
// the window may have been resized), and otherwise as a new line once per
// stressLineEvery.
func (l *stressLine) update(p stress.Progress) {
	if l.tty {
		l.width, _ = termWidth(l.w)
		// One column short of the width: a character in the last column
		// makes some terminals wrap at once.
		fmt.Fprintf(l.w, "\r%s\x1b[K", formatStressProgress(p, l.total, l.width-1))
		l.drawn = true
		return
	}
	if p.Elapsed < l.next {
		return
	}
	for l.next <= p.Elapsed {
		l.next += stressLineEvery
	}
	fmt.Fprintln(l.w, formatStressProgress(p, l.total, l.width))
}

// done erases the line on a terminal, so the report starts on a clean line.
func (l *stressLine) done() {
	if l.tty && l.drawn {
		fmt.Fprint(l.w, "\r\x1b[K")
	}
}

// formatStressProgress is the progress line in at most width columns:
// elapsed time (of the total when known), the total rate, the violations so
// far, the store's busy blocks, pins and waiters, and then the busiest
// kinds' rates, each field in only when it fits whole.
func formatStressProgress(p stress.Progress, total time.Duration, width int) string {
	elapsed := p.Elapsed.Round(time.Second).String()
	if total > 0 {
		elapsed += "/" + total.Round(time.Second).String()
	}
	line := fmt.Sprintf("stress %s: %s ops/s", elapsed, formatCount(p.OpsPerSec))
	fields := []string{
		fmt.Sprintf(", violations %d", p.Violations),
		fmt.Sprintf(", busy %d", p.BusyBlocks),
		fmt.Sprintf(", pins %d", p.Pins),
		fmt.Sprintf(", waiters %d", p.Waiters),
	}
	kinds := slices.Clone(p.Kinds)
	slices.SortStableFunc(kinds, func(a, b stress.KindRate) int { return cmp.Compare(b.OpsPerSec, a.OpsPerSec) })
	sep := " |"
	for _, k := range kinds {
		if k.OpsPerSec >= 0.5 {
			fields = append(fields, fmt.Sprintf("%s %s %s", sep, k.Kind, formatCount(k.OpsPerSec)))
			sep = ","
		}
	}
	for _, f := range fields {
		if len(line)+len(f) > width {
			break
		}
		line += f
	}
	if len(line) > width {
		line = line[:width]
	}
	return line
}
