package dax

import "github.com/daxstore/daxstore/internal/testhooks"

// Test plumbing stays off the public API: this module's tests outside the
// package reach it through internal/testhooks (typed by internal/daxtest),
// which no other module can import.
func init() {
	testhooks.Register(testhooks.Hooks{
		SetMedia:   func(o any, m testhooks.Media) { o.(*Options).media = m },
		LockHolder: lockHolder,
	})
}
