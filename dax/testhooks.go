package dax

import (
	"github.com/daxstore/daxstore/internal/pmemhooks"
	"github.com/daxstore/daxstore/internal/testhooks"
)

// Test plumbing stays off the public API: this module's tests outside the
// package reach it through internal/testhooks (typed by internal/daxtest),
// which no other module can import.
func init() {
	testhooks.Register(testhooks.Hooks{
		SetMedia:   func(o any, m testhooks.Media) { o.(*Options).media = m },
		LockHolder: lockHolder,
	})
}

// setDevice puts the region that opts (*pmem.CreateOptions or
// *pmem.OpenOptions) creates or opens on the power-cut simulator's
// emulated media, if the store runs on one.
func setDevice(m testhooks.Media, opts any) {
	if m.PowerCut != nil {
		pmemhooks.Get().WithDevice(opts, m.PowerCut.Device())
	}
}
