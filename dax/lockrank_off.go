//go:build !lockcheck

package dax

// Without the lockcheck tag the lock-order hooks do nothing.

func lockAcquire(lockRank) {}
func lockRelease(lockRank) {}

// lockcheckBuild tells tests that the hooks run (and allocate).
const lockcheckBuild = false
