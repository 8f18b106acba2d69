// This file names the CPU cache flush instructions a region can persist
// with, independent of the architecture that implements them.

package pmem

// flushInsn is the instruction a DAX region writes cache lines back with.
type flushInsn uint8

const (
	insnNone       flushInsn = iota // no usable instruction: use msync
	insnCLFLUSH                     // flush and invalidate, serialising
	insnCLFLUSHOPT                  // flush and invalidate, weakly ordered
	insnCLWB                        // write back, line may stay cached
)

func (i flushInsn) String() string {
	switch i {
	case insnCLFLUSH:
		return "clflush"
	case insnCLFLUSHOPT:
		return "clflushopt"
	case insnCLWB:
		return "clwb"
	default:
		return "none"
	}
}
