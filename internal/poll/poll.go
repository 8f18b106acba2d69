// Package poll is test plumbing: it waits for a condition that another
// goroutine or process brings about, for tests that must pass on a loaded
// machine.
package poll

import (
	"testing"
	"time"
)

// Bound is how long Until waits before it fails the test. It is a liveness
// bound, not a speed target: a condition that has not come about after five
// minutes on even a starved machine never will (a lost wakeup, a leak).
const Bound = 5 * time.Minute

// Until polls cond until it holds, and fails the test naming what when it
// has not held within Bound. The poll interval is short, so a test that
// waits for something quick stays quick.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", Bound, what)
		}
		time.Sleep(100 * time.Microsecond) // the poll interval; the condition is what synchronizes
	}
}
