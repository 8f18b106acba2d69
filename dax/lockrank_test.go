//go:build lockcheck

package dax

import (
	"strings"
	"testing"
)

// TestLockCheckCatchesAnInversion proves the checker of the lockcheck build:
// taking the namespace lock while holding a file's extent-map lock panics
// naming both, and the order it documents passes.
func TestLockCheckCatchesAnInversion(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "k", pattern(1, testBS))
	in := s.names["k"]

	in.ioMu.RLock()
	in.mapMu.Lock()
	s.commitMu.Lock()
	s.commitMu.Unlock()
	in.mapMu.Unlock()
	in.ioMu.RUnlock()

	var msg string
	func() {
		defer func() {
			if r := recover(); r != nil {
				msg, _ = r.(string)
			}
		}()
		in.mapMu.Lock()
		defer in.mapMu.Unlock()
		s.nsMu.RLock() // inverted: panics before it takes the lock
		s.nsMu.RUnlock()
	}()
	if !strings.Contains(msg, "takes the namespace lock while holding the extent-map lock") {
		t.Fatalf("inversion not reported; recovered %q", msg)
	}
}
