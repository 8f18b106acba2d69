package main

// A progress line on a terminal for commands that run longer than a second:
// a large put or get, a check of a big store, a wait for pins to drop.

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progressDelay is how long a command runs silently before it shows
// progress, and progressEvery how often the line is redrawn.
const (
	progressDelay = time.Second
	progressEvery = 250 * time.Millisecond
)

// startProgress shows "daxstore: what... 3s" on w after progressDelay when
// w is a terminal, and keeps the elapsed time current. The returned stop
// erases the line and returns once nothing more will be drawn, so the
// caller's own output never interleaves with it.
func startProgress(w io.Writer, what string) (stop func()) {
	if !isTerminal(w) {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		timer := time.NewTimer(progressDelay)
		defer timer.Stop()
		drawn := false
		for {
			select {
			case <-done:
				if drawn {
					fmt.Fprint(w, "\r\x1b[K")
				}
				return
			case <-timer.C:
				fmt.Fprintf(w, "\r\x1b[Kdaxstore: %s... %s", what, time.Since(start).Round(time.Second))
				drawn = true
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
