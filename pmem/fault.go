package pmem

// Faults on the mapping: a region file that another process truncates, or
// media that report a poisoned line, make the next load or store through the
// mapping raise SIGBUS, which kills a Go program. The helpers here do the
// store's own copies with the runtime told to turn such a fault into a
// panic, and turn that panic into an error.

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// ErrFault reports a memory fault on the region mapping: the region file was
// truncated under the store, or the media holding it failed. It wraps
// ErrCorrupt, as a short region does at open.
var ErrFault = fmt.Errorf("%w: fault on the region mapping (region file truncated or media error)", ErrCorrupt)

// Copy copies src to dst as the built-in copy does, with either side in the
// region mapping. A fault on the mapping stops the copy and returns an error
// wrapping ErrFault; dst may then hold part of src.
func Copy(dst, src []byte) (n int, err error) {
	defer catchFault(&err, debug.SetPanicOnFault(true))
	return copy(dst, src), nil
}

// Clear zeroes b, which may lie in the region mapping. A fault on the
// mapping stops it and returns an error wrapping ErrFault.
func Clear(b []byte) (err error) {
	defer catchFault(&err, debug.SetPanicOnFault(true))
	clear(b)
	return nil
}

// Append appends src, which may lie in the region mapping, to dst, as the
// built-in append does. A fault returns dst unchanged and an error wrapping
// ErrFault.
func Append(dst, src []byte) (out []byte, err error) {
	defer catchFault(&err, debug.SetPanicOnFault(true))
	return append(dst, src...), nil
}

// IsZero reports whether every byte of b, which may lie in the region
// mapping, is zero. A fault returns an error wrapping ErrFault.
func IsZero(b []byte) (zero bool, err error) {
	defer catchFault(&err, debug.SetPanicOnFault(true))
	for _, c := range b {
		if c != 0 {
			return false, nil
		}
	}
	return true, nil
}

// guard runs fn, turning a fault on the mapping into an error wrapping
// ErrFault. It is for the rarer paths (flushes, scans); the hot copies use
// Copy and Clear, which cost no closure.
func guard(fn func()) (err error) {
	defer catchFault(&err, debug.SetPanicOnFault(true))
	fn()
	return nil
}

// catchFault is deferred by the guarded helpers: it restores the
// goroutine's previous SetPanicOnFault setting and turns a fault panic into
// an error in *err. Any other panic goes on: it is a bug, not a fault.
//
// SetPanicOnFault is per goroutine and costs a field store, so the guarded
// copy pays two calls and an open-coded defer (see BenchmarkReadAt in dax).
func catchFault(err *error, old bool) {
	debug.SetPanicOnFault(old)
	r := recover()
	if r == nil {
		return
	}
	// A fault panic is a runtime.Error with the faulting address.
	if fault, ok := r.(interface {
		runtime.Error
		Addr() uintptr
	}); ok {
		*err = fmt.Errorf("%w at address %#x", ErrFault, fault.Addr())
		return
	}
	panic(r)
}
