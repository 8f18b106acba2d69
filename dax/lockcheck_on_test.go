//go:build lockcheck

package dax

// lockChecking: the lockcheck build records every ranked lock, which
// allocates, so tests that count allocations skip under it.
const lockChecking = true
