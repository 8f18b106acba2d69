package main

// Progress on a terminal, drawn by a progress-bar library: a spinner for a
// command that runs longer than a second, and a status line for the
// benchmark's steps. Off a terminal nothing is drawn, so scripts and pipes
// see only the output. stress draws its own line (stressprogress.go).

import (
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progressDelay is how long a command runs silently before it shows a
// spinner, and progressEvery how often a drawing is refreshed.
const (
	progressDelay = time.Second
	progressEvery = 250 * time.Millisecond
)

// progress is a bar or spinner on a terminal, and nothing elsewhere. Its
// methods are safe on a nil *progress and for concurrent use.
type progress struct {
	mu  sync.Mutex // serialises drawing
	bar *progressbar.ProgressBar
}

// newProgress draws on w, when w is a terminal, a bar from 0 to max or, for
// max < 0, a spinner; what describes it.
func newProgress(w io.Writer, max int64, what string) *progress {
	if !isTerminal(w) {
		return nil
	}
	return &progress{bar: progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(max > 0),
		progressbar.OptionThrottle(progressEvery),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(20),
	)}
}

// describe replaces the text beside the bar.
func (p *progress) describe(s string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bar.Describe(s)
	_ = p.bar.RenderBlank()
}

// set moves the bar to n (for a spinner: advances it).
func (p *progress) set(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar.GetMax64() < 0 {
		_ = p.bar.Add(1)
		return
	}
	_ = p.bar.Set64(min(n, p.bar.GetMax64()))
}

// done erases the drawing, so the command's own output starts on a clean
// line.
func (p *progress) done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.bar.Clear()
	_ = p.bar.Exit()
}

// startProgress shows a spinner saying "what" on w after progressDelay when
// w is a terminal. The returned stop erases it and returns once nothing
// more will be drawn, so the caller's output never interleaves with it.
func startProgress(w io.Writer, what string) (stop func()) {
	if !isTerminal(w) {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		timer := time.NewTimer(progressDelay)
		defer timer.Stop()
		var p *progress
		for {
			select {
			case <-done:
				p.done()
				return
			case <-timer.C:
				if p == nil {
					p = newProgress(w, -1, "daxstore: "+what)
				}
				p.set(0)
				timer.Reset(progressEvery)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}
