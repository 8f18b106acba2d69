package stress

// The windower's operations: map a window of a key (File.Map), check every
// word it shows, store the key's words through a writable follow window or
// a canary through a writable pinned one, hold it while the other workers
// punch, truncate, Put and remove, check it again and close it. A follow
// window must show the file as a read does (zeros past EOF and once the
// key is removed); a pinned window must keep its canary across breaks, as
// a pin does.

import (
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/daxstore/daxstore/dax"
)

// windowsMap reports whether blocks of bs bytes can be mapped as windows:
// a block must be at least a page.
func windowsMap(bs uint32) bool { return int64(bs) >= int64(os.Getpagesize()) }

// catchFault runs fn with memory faults turned into panics, and returns
// the fault as an error (nil when fn did not fault). A store into a page a
// window maps read-only faults: past EOF after a racing truncate, or in a
// window whose key a racing Remove took away.
func catchFault(fn func()) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stress: fault: %v", r)
		}
	}()
	fn()
	return nil
}

// snapshot copies the window's bytes; a read of a window must never
// fault, so a fault is a violation.
func (x *task) snapshot(k *keyState, w *dax.Window) ([]byte, bool) {
	b := make([]byte, w.Len())
	if err := catchFault(func() { copy(b, w.Bytes()) }); err != nil {
		x.r.viol.add(ViolationError, "%s: reading window of %q [%d,+%d): %v", x, k.name, w.Offset(), w.Len(), err)
		return nil, false
	}
	return b, true
}

// checkWindow checks every word the window shows under rule; a word the
// rule does not explain is read again with the key's writes held off.
func (x *task) checkWindow(k *keyState, rule wordRule, w *dax.Window, what string) {
	b, ok := x.snapshot(k, w)
	if !ok {
		return
	}
	x.verify(k, rule, b, w.Offset(), what, func() ([]byte, int64, error) {
		b, ok := x.snapshot(k, w)
		if !ok {
			return nil, 0, fmt.Errorf("stress: window read faulted")
		}
		return b, w.Offset(), nil
	})
}

// mapFollow maps a follow window, checks it, stores words through it when
// writable, holds it, checks it again and closes it.
func (x *task) mapFollow() {
	k, op, r := x.key(), x.op, x.r
	f, err := r.s.Open(k.name)
	if err != nil {
		x.settle(statKind(OpMap), err, expNotFound)
		return
	}
	defer f.Close()
	rule := k.readRule()
	w, err := f.Map(op.Off, op.Len, dax.MapOptions{Writable: op.Writable, Label: fmt.Sprintf("stress/%s/%d", x.ws.w, x.seq)})
	if err != nil {
		// A writable window fills the holes of its range, and moving an
		// inline value into blocks takes space too.
		x.settle(statKind(OpMap), err, expNoSpace|expNotFound)
		return
	}
	x.checkWindow(k, rule, w, "follow window")
	if op.Writable {
		x.storeThrough(k, f, w)
	}
	x.hold(op.Hold)
	x.checkWindow(k, k.readRule(), w, "follow window after its hold")
	x.settle(statKind(OpMap), w.Close(), 0)
}

// storeThrough stores a fresh generation of the key's words through a
// writable follow window, over the part of it inside the file and outside
// every canary, then flushes. A store that meets a page made read-only by a
// racing truncate or remove faults: that is counted, not a violation.
func (x *task) storeThrough(k *keyState, f *dax.File, w *dax.Window) {
	size, err := f.Size()
	if err != nil {
		return // removed meanwhile
	}
	off := w.Offset()
	end := min(off+w.Len(), size&^(wordSize-1))
	if end <= off {
		return
	}
	gen, low := k.begin()
	seq := x.r.log.begin("write", k.name, gen, end-off)
	buf := x.buffer(end - off)
	fillWords(buf, word{k.id, gen})
	b := w.Bytes()
	k.canaryMu.RLock()
	for _, p := range k.canaryFree(span{off, end}) {
		if err = catchFault(func() { copy(b[p.off-off:p.end-off], buf[p.off-off:p.end-off]) }); err != nil {
			x.r.windowFaults.Add(1)
			break
		}
	}
	k.canaryMu.RUnlock()
	if err == nil {
		x.r.windowStores.Add(1)
		if err = w.Flush(); err != nil {
			x.classify(fmt.Errorf("stress: flush window: %w", err), 0)
		}
	}
	k.end(gen, low, false)
	x.r.log.end(seq, err, false)
}

// mapPinned maps a pinned window of a range inside the file, checks it,
// writes a canary through it when writable, holds it while breaks detach
// its blocks, checks that the canary is intact and closes it.
func (x *task) mapPinned() {
	k, op, r := x.key(), x.op, x.r
	f, err := r.s.Open(k.name)
	if err != nil {
		x.settle(statKind(OpMapPinned), err, expNotFound)
		return
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil || size < wordSize {
		if err == nil {
			err = fmt.Errorf("stress: %q is empty: %w", k.name, dax.ErrInvalidRange)
		}
		x.settle(statKind(OpMapPinned), err, expNotFound|expInvalidRange)
		return
	}
	words := size / wordSize
	off := op.Off * words / pinScale * wordSize
	n := min(op.Len, size-off)
	sp := span{off, off + n}
	rule := k.readRule()
	created := time.Now()
	w, err := f.Map(off, n, dax.MapOptions{
		Writable: op.Writable, Mode: dax.MapPinned, Label: fmt.Sprintf("stress/%s/%d", x.ws.w, x.seq),
		OnBreak: func() { r.breaks.Add(1) },
	})
	if err != nil {
		x.settle(statKind(OpMapPinned), err, expNoSpace|expNotFound|expInvalidRange)
		return
	}
	rec := k.addPin(sp, created, 2*r.c.waitTimeout())
	x.checkWindow(k, rule, w, "pinned window")
	var canary word
	if op.Writable {
		canary = x.fillCanary(k, [][]byte{w.Bytes()}, sp)
		if canary != (word{}) {
			if err := w.Flush(); err != nil {
				x.classify(fmt.Errorf("stress: flush window canary: %w", err), 0)
			}
		}
	}
	x.hold(op.Hold)
	if canary != (word{}) {
		x.checkCanaryRuns(k, "pinned window", off, n, [][]byte{w.Bytes()}, canary)
		k.canaryMu.Lock()
		k.dropCanary(sp)
		k.canaryMu.Unlock()
	}
	rec.unpinning.Store(time.Now().UnixNano())
	err = w.Close()
	rec.unpinned.Store(time.Now().UnixNano())
	x.settle(statKind(OpMapPinned), err, 0)
}
