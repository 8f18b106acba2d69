package test

// fsx's mapread and mapwrite for the exerciser: reads and stores through a
// follow window mapped for the one operation, checked against the model.

import (
	"bytes"
	"errors"
	"io"
	"os"

	"github.com/daxstore/daxstore/dax"
)

// windowsMap reports whether this configuration's blocks can be mapped as
// windows: a block of at least a page.
func (x *fsx) windowsMap() bool { return x.bs >= int64(os.Getpagesize()) }

// mapOpen maps [off, off+n) for a map op and returns the window, or nil
// when the model expects Map to fail (and it did, with the right error,
// changing nothing). An inline value moves into blocks first, as for a
// pin; a writable window also fills the holes of its range inside the file.
func (x *fsx) mapOpen(kind string, off, n int64, writable bool) *dax.Window {
	x.t.Helper()
	opts := dax.MapOptions{Writable: writable, Label: "fsx-window"}
	var want error
	var fb, fe int64
	switch {
	case badRange(off, n) || n == 0:
		want = dax.ErrInvalidRange
	case !x.windowsMap():
		want = errors.ErrUnsupported
	case !x.spill():
		want = dax.ErrNoSpace
	case writable && off < x.size:
		fb, fe = x.span(off, min(off+n, x.size)-off)
		if x.holes(fb, fe) > x.freeBlocks() {
			want = dax.ErrNoSpace
		}
	}
	w, err := x.f.Map(off, n, opts)
	if n == 0 && err == nil {
		// A zero-length window is not documented either way: accept one
		// that is empty.
		if w.Len() != 0 || len(w.Bytes()) != 0 {
			x.fatalf("%s: a window of 0 bytes has %d", kind, len(w.Bytes()))
		}
		x.expect(kind+" close", w.Close(), nil)
		return nil
	}
	x.expect(kind, err, want)
	if want != nil {
		if w != nil {
			x.fatalf("%s: a failed Map returned a window", kind)
		}
		return nil
	}
	if w.Offset() != off || w.Len() != n || int64(len(w.Bytes())) != n || w.Mode() != dax.MapFollow || w.Writable() != writable {
		x.fatalf("%s: window reports [%d,+%d) %d bytes %v writable %v, want [%d,+%d) follow writable %v",
			kind, w.Offset(), w.Len(), len(w.Bytes()), w.Mode(), w.Writable(), off, n, writable)
	}
	for b := fb; b < fe; b++ {
		if m := x.blocks[b]; m == nil || m.data == nil {
			x.blocks[b] = x.newBlock() // filled with zeroed blocks
		}
	}
	// What it shows: the file's bytes, zeros past EOF, as ReadAt does.
	want2 := make([]byte, n)
	if off < x.size {
		copy(want2, x.read(off, min(n, x.size-off)))
	}
	if got := w.Bytes(); !bytes.Equal(got, want2) {
		i := fsxDiff(got, want2)
		x.fatalf("%s: window [%d,+%d) differs from the model at byte %d (file offset %d): got % x, want % x",
			kind, off, n, i, off+int64(i), excerpt(got, i), excerpt(want2, i))
	}
	p := make([]byte, n)
	if m, err := x.f.ReadAt(p, off); err != nil && err != io.EOF || !bytes.Equal(p[:m], w.Bytes()[:m]) {
		x.fatalf("%s: ReadAt [%d,+%d) (%d bytes, error %v) differs from the window at %d", kind, off, n, m, err, fsxDiff(p[:m], w.Bytes()[:m]))
	}
	return w
}

func (x *fsx) mapRead(op fsxOp) {
	if op.n < 0 || op.n > 1<<24 {
		x.fatalf("mapread length %d out of what the exerciser allows", op.n)
	}
	if w := x.mapOpen("mapread", op.off, op.n, false); w != nil {
		x.expect("mapread close", w.Close(), nil)
		x.expect("mapread second close", w.Close(), dax.ErrClosed)
	}
}

// mapWrite is fsx's mapwrite: a store past EOF would fault (pages wholly
// past EOF are read-only), so the file is first extended to the op's end.
func (x *fsx) mapWrite(op fsxOp) {
	if op.n < 0 || op.n > 1<<24 {
		x.fatalf("mapwrite length %d out of what the exerciser allows", op.n)
	}
	if !badRange(op.off, op.n) && op.off+op.n > x.size {
		x.truncate(fsxOp{kind: "truncate", off: op.off + op.n})
		if x.size != op.off+op.n {
			return // an inline value that did not fit into blocks
		}
	}
	w := x.mapOpen("mapwrite", op.off, op.n, true)
	if w == nil {
		return
	}
	data := fsxBytes(op.seed, op.n)
	if err := catchFault(func() { copy(w.Bytes(), data) }); err != nil {
		x.fatalf("mapwrite: store through the writable window [%d,+%d) inside the file: %v", op.off, op.n, err)
	}
	fb, fe := x.span(op.off, op.n)
	for b := fb; b < fe; b++ {
		base := b * x.bs
		lo, hi := max(base, op.off), min(base+x.bs, op.off+op.n)
		copy(x.blocks[b].data[lo-base:hi-base], data[lo-op.off:hi-op.off])
	}
	x.expect("mapwrite flush", w.Flush(), nil)
	x.expect("mapwrite close", w.Close(), nil)
}

// fsxWin is a long-lived read-only follow window (mapopen).
type fsxWin struct {
	id     int
	w      *dax.Window
	off, n int64
}

// mapOpenLong maps a read-only follow window and keeps it: verify compares
// it with the model after every later operation.
func (x *fsx) mapOpenLong(op fsxOp) {
	if op.n < 0 || op.n > 1<<24 {
		x.fatalf("mapopen length %d out of what the exerciser allows", op.n)
	}
	for _, w := range x.wins {
		if w.id == op.id {
			x.fatalf("the log maps window id %d twice", op.id)
		}
	}
	if w := x.mapOpen("mapopen", op.off, op.n, false); w != nil {
		x.wins = append(x.wins, &fsxWin{id: op.id, w: w, off: op.off, n: op.n})
	}
}

func (x *fsx) mapCloseLong(op fsxOp) {
	for i, w := range x.wins {
		if w.id == op.id {
			x.expect("mapclose", w.w.Close(), nil)
			x.expect("mapclose twice", w.w.Close(), dax.ErrClosed)
			x.wins = append(x.wins[:i], x.wins[i+1:]...)
			return
		}
	}
	x.fatalf("the log closes window %d, which is not open", op.id)
}

// verifyWindows compares every long-lived window with the model: the
// file's bytes of its range, zeros past EOF.
func (x *fsx) verifyWindows() {
	x.t.Helper()
	for _, w := range x.wins {
		if w.w.Stale() {
			x.fatalf("window %d [%d,+%d) is stale, but its file and store are alive", w.id, w.off, w.n)
		}
		want := make([]byte, w.n)
		if w.off < x.size {
			copy(want, x.read(w.off, min(w.n, x.size-w.off)))
		}
		if got := w.w.Bytes(); !bytes.Equal(got, want) {
			i := fsxDiff(got, want)
			x.fatalf("window %d [%d,+%d) differs from the model at byte %d (file offset %d): got % x, want % x",
				w.id, w.off, w.n, i, w.off+int64(i), excerpt(got, i), excerpt(want, i))
		}
	}
}

// staleWindows checks, once the store has closed, that every long-lived
// window is stale and reads zeros, then closes them: they do not survive
// the store.
func (x *fsx) staleWindows() {
	x.t.Helper()
	for _, w := range x.wins {
		if !w.w.Stale() {
			x.fatalf("window %d is not stale after the store closed", w.id)
		}
		if b := w.w.Bytes(); !bytes.Equal(b, make([]byte, len(b))) {
			x.fatalf("window %d reads non-zero bytes after the store closed", w.id)
		}
		x.expect("close window of a closed store", w.w.Close(), nil)
	}
	x.wins = nil
}
