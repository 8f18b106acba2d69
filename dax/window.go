package dax

// Windows: one contiguous mapping of a range of a file, built from the
// region's blocks. See File.Map.

import (
	"errors"
	"fmt"
)

// WindowMode says how a window relates to later changes of its file.
type WindowMode uint8

const (
	// MapFollow is the mmap semantics: the window always shows the file.
	// Truncate, PunchHole, ZeroRange, Remove and Put over the key remap the
	// affected pages of every follow window before they return and before
	// any block they free can be reused. A follow window holds no block
	// references, so it never keeps space busy.
	MapFollow WindowMode = iota
	// MapPinned holds the window's blocks exactly as a Pin does: a break
	// detaches them to the busy list per its policy, the window keeps its
	// bytes, OnBreak is called, and the blocks are freed when the window
	// closes.
	MapPinned
)

func (m WindowMode) String() string {
	switch m {
	case MapFollow:
		return "follow"
	case MapPinned:
		return "pinned"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// MapOptions configures File.Map.
type MapOptions struct {
	// Writable maps the window's file blocks writable: stores through
	// Bytes land in the file (durable after Flush).
	Writable bool
	// Label names the window in Pins, `daxstore pins` and, for a pinned
	// window, in the busy list; as PinOptions.Label.
	Label string
	// Mode is MapFollow (the zero value) or MapPinned.
	Mode WindowMode
	// OnBreak, for a pinned window, is called as PinOptions.OnBreak is.
	OnBreak func()
}

// ErrMappingBudget: a window would take more mappings than the store's
// budget (Options.MaxWindowMappings) has left.
var ErrMappingBudget = errors.New("window would exceed the mapping budget")

// Window is a contiguous mapping of bytes [off, off+n) of a file. See
// File.Map.
type Window struct {
	f    *File
	off  int64
	n    int64
	opts MapOptions
}

// Map maps bytes [off, off+n) of the file into one contiguous range of
// memory and returns the window over it.
func (f *File) Map(off, n int64, opts MapOptions) (*Window, error) {
	return nil, f.errorf("map", errors.ErrUnsupported)
}

// Bytes returns the window's memory: one slice of length Len.
func (w *Window) Bytes() []byte { return nil }

// Offset returns the file offset the window starts at.
func (w *Window) Offset() int64 { return w.off }

// Len returns the window's length in bytes.
func (w *Window) Len() int64 { return w.n }

// Mode returns the window's mode.
func (w *Window) Mode() WindowMode { return w.opts.Mode }

// Label returns the window's label.
func (w *Window) Label() string { return w.opts.Label }

// Writable reports whether the window was mapped writable.
func (w *Window) Writable() bool { return w.opts.Writable }

// Generation counts the times the store remapped part of a follow window
// because its file changed; it never decreases.
func (w *Window) Generation() uint64 { return 0 }

// Stale reports whether a follow window no longer follows a file: its key
// was removed, or the store closed. A stale window reads as zeros.
func (w *Window) Stale() bool { return false }

// Pieces returns the number of mappings the window takes now.
func (w *Window) Pieces() int { return 0 }

// Flush makes stores through the window durable.
func (w *Window) Flush() error { return errors.ErrUnsupported }

// Close unmaps the window (and, for a pinned window, releases its blocks).
// A second Close fails with ErrClosed.
func (w *Window) Close() error { return errors.ErrUnsupported }
