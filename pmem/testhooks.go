package pmem

import (
	"fmt"

	"github.com/daxstore/daxstore/internal/pmemhooks"
)

// Emulated media are test plumbing, not API: the module's tests reach them
// through internal/pmemhooks, which no other module can import.
func init() {
	pmemhooks.Register(pmemhooks.Hooks{
		NewDevice: func(seed int64) pmemhooks.Device { return newPowerCut(seed) },
		WithDevice: func(opts any, d pmemhooks.Device) {
			pc, _ := d.(*powerCut) // nil for a nil Device: real media
			switch o := opts.(type) {
			case *CreateOptions:
				o.powerCut = pc
			case *OpenOptions:
				o.powerCut = pc
			default:
				panic(fmt.Sprintf("pmemhooks.WithDevice: %T is not pmem options", opts))
			}
		},
	})
}
