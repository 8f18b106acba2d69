//go:build !lockcheck

package dax

// lockChecking: see lockcheck_on_test.go.
const lockChecking = false
