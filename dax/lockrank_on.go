//go:build lockcheck

package dax

// With the lockcheck tag every ranked lock records, per goroutine, the
// ranks it holds, and taking a lock that does not rank above every lock
// the goroutine holds panics with both names: the inversion is reported
// where it happens, whether or not the schedule would have deadlocked.

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"sync"
)

var lockHeld struct {
	mu sync.Mutex
	by map[uint64][]lockRank // goroutine id -> ranks held, in the order taken
}

// goid returns the calling goroutine's id, parsed from its stack header
// ("goroutine 18 [running]:"). Slow, which is why it is only in this build.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		panic(fmt.Sprintf("lockcheck: cannot parse goroutine id from %q", buf[:]))
	}
	return id
}

func lockAcquire(r lockRank) {
	g := goid()
	lockHeld.mu.Lock()
	defer lockHeld.mu.Unlock()
	if lockHeld.by == nil {
		lockHeld.by = make(map[uint64][]lockRank)
	}
	for _, h := range lockHeld.by[g] {
		if h >= r {
			panic(fmt.Sprintf("lockcheck: goroutine %d takes the %s lock while holding the %s lock (order: namespace, IO, invalidate, extent-map, commit)", g, r, h))
		}
	}
	lockHeld.by[g] = append(lockHeld.by[g], r)
}

func lockRelease(r lockRank) {
	g := goid()
	lockHeld.mu.Lock()
	defer lockHeld.mu.Unlock()
	if dropRank(g, r) {
		return
	}
	// Unlocked by another goroutine than the one that locked it, which
	// Go allows: drop it from whichever goroutine holds it.
	for other := range lockHeld.by {
		if dropRank(other, r) {
			return
		}
	}
}

// dropRank removes the last r that goroutine g holds. lockHeld.mu must be
// held.
func dropRank(g uint64, r lockRank) bool {
	held := lockHeld.by[g]
	for i := len(held) - 1; i >= 0; i-- {
		if held[i] == r {
			held = append(held[:i], held[i+1:]...)
			if len(held) == 0 {
				delete(lockHeld.by, g)
			} else {
				lockHeld.by[g] = held
			}
			return true
		}
	}
	return false
}

// lockcheckBuild tells tests that the hooks run (and allocate).
const lockcheckBuild = true
