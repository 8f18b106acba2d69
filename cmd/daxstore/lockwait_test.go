package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// Forty puts started together on one store all succeed: each waits for the
// lock while another holds it, instead of failing with "locked".
func TestParallelPutsWaitForTheLock(t *testing.T) {
	dir := newStore(t)
	const n = 40
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A generous --wait: the machine may be loaded, and 40
			// race-enabled processes take turns.
			results[i] = runCLI(t, []byte(fmt.Sprintf("value %d", i)), "put", "--dir", dir, "--wait", patience.String(), fmt.Sprintf("k%02d", i))
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 || r.stderr != "" {
			t.Errorf("put k%02d: exit %d, stderr %q", i, r.code, r.stderr)
		}
	}
	if t.Failed() {
		return
	}
	for i := range n {
		if got, want := mustRun(t, nil, "get", "--dir", dir, fmt.Sprintf("k%02d", i)), fmt.Sprintf("value %d", i); got != want {
			t.Errorf("get k%02d = %q, want %q", i, got, want)
		}
	}
	mustRun(t, nil, "check", "--dir", dir)
}

// --wait 0 fails at once while another process holds the store, and a wait
// that runs out names the holder's pid and how long it waited.
func TestWaitFlagWhileHeld(t *testing.T) {
	dir := newStore(t)
	h := startHolder(t, dir)
	for _, wait := range []string{"0", "50ms"} {
		r := runCLI(t, []byte("x"), "put", "--dir", dir, "--wait", wait, "other")
		subs := []string{"locked", fmt.Sprintf("pid %d", h.pid)}
		if wait != "0" {
			subs = append(subs, "waited "+wait)
		}
		wantOneErrorLine(t, r, 1, subs...)
		if wait == "0" && strings.Contains(r.stderr, "waited") {
			t.Errorf("--wait 0 waited: %q", r.stderr)
		}
	}
	r := runCLI(t, nil, "ls", "--dir", dir, "--wait", "-1s")
	wantOneErrorLine(t, r, 2, "--wait")
}
