package stress

// The operations of the workers: each runs one planned Op against the
// store, verifies what it can see, and sorts its outcome into expected
// (no space, pinned under Fail, a key that vanished meanwhile) or a
// violation.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/daxstore/daxstore/dax"
)

// task is one operation being run.
type task struct {
	r   *runner
	ws  *workerState
	op  Op
	seq int // the operation's number in its worker's schedule
}

func (x *task) key() *keyState { return x.r.keys[x.op.Key] }

func (x *task) String() string { return fmt.Sprintf("%s op %d (%s)", x.ws.w, x.seq, x.op) }

// buffer returns the worker's scratch buffer resized to n bytes.
func (x *task) buffer(n int64) []byte {
	if int64(cap(x.ws.buf)) < n {
		x.ws.buf = make([]byte, n)
	}
	return x.ws.buf[:n]
}

// expect is a set of errors that races make normal for an operation.
type expect uint8

const (
	expNoSpace      expect = 1 << iota // the region is full
	expNotFound                        // the key was removed meanwhile
	expInvalidRange                    // the file shrank meanwhile
)

// waitTimeoutError is a Wait-policy call that outlived its bound; lost says
// it was judged a lost wakeup (already recorded as a violation).
type waitTimeoutError struct {
	err  error
	lost bool
}

func (e *waitTimeoutError) Error() string { return e.err.Error() }
func (e *waitTimeoutError) Unwrap() error { return e.err }

// settle counts the outcome of the operation as statistic k and records a
// violation for an error that exp does not allow.
func (x *task) settle(k statKind, err error, exp expect) {
	x.r.count.add(k, x.classify(err, exp))
}

func (x *task) classify(err error, exp expect) outcome {
	var wt *waitTimeoutError
	switch {
	case err == nil:
		return outOK
	case errors.As(err, &wt):
		if wt.lost {
			return outUnexpected
		}
		return outWaitTimeout
	case errors.Is(err, dax.ErrFailed):
		x.r.viol.add(ViolationFailed, "%s: %v", x, err)
		x.r.stop() // nothing can change any more: end the run
		return outUnexpected
	case exp&expNoSpace != 0 && errors.Is(err, dax.ErrNoSpace):
		return outNoSpace
	case x.op.Policy == dax.PolicyFail && errors.Is(err, dax.ErrPinned):
		return outPinned
	case exp&expNotFound != 0 && errors.Is(err, dax.ErrNotFound):
		return outRaced
	case exp&expInvalidRange != 0 && errors.Is(err, dax.ErrInvalidRange):
		return outRaced
	}
	x.r.viol.add(ViolationError, "%s: %v", x, err)
	return outUnexpected
}

// noop reports whether an operation that failed with err certainly
// changed nothing, for the crash child's acknowledgements.
func (x *task) noop(err error) bool {
	return errors.Is(err, dax.ErrNoSpace) || errors.Is(err, dax.ErrNotFound) ||
		(x.op.Policy == dax.PolicyFail && errors.Is(err, dax.ErrPinned))
}

// openOrCreate opens the key, creating it when it does not exist.
func (r *runner) openOrCreate(name string) (*dax.File, error) {
	for range 3 {
		f, err := r.s.Open(name)
		if !errors.Is(err, dax.ErrNotFound) {
			return f, err
		}
		f, err = r.s.Create(name)
		if !errors.Is(err, dax.ErrExist) {
			return f, err
		}
	}
	return nil, fmt.Errorf("stress: open or create %q: created and removed meanwhile: %w", name, dax.ErrNotFound)
}

// write writes the key's words over a range, sparing pin canaries.
func (x *task) write() {
	k, op := x.key(), x.op
	gen, low := k.begin()
	seq := x.r.log.begin("write", k.name, gen, op.Len)
	f, err := x.r.openOrCreate(k.name)
	if err != nil {
		k.end(gen, low, false)
		x.r.log.end(seq, err, x.noop(err))
		x.settle(statKind(OpWrite), err, expNotFound)
		return
	}
	buf := x.buffer(op.Len)
	fillWords(buf, word{k.id, gen})
	k.canaryMu.RLock()
	wrote := false
	for _, p := range k.canaryFree(span{op.Off, op.Off + op.Len}) {
		if _, err = f.WriteAt(buf[p.off-op.Off:p.end-op.Off], p.off); err != nil {
			break
		}
		wrote = true
	}
	k.canaryMu.RUnlock()
	k.end(gen, low, false)
	_ = f.Close()
	x.r.log.end(seq, err, !wrote && x.noop(err))
	x.settle(statKind(OpWrite), err, expNoSpace|expNotFound)
}

// put replaces the key's value with a fresh generation.
func (x *task) put() {
	k, op := x.key(), x.op
	gen, low := k.begin()
	buf := x.buffer(op.Len)
	fillWords(buf, word{k.id, gen})
	seq := x.r.log.begin("put", k.name, gen, op.Len)
	err := x.breakCall(k, span{0, math.MaxInt64}, func(ctx context.Context, bo dax.BreakOptions) error {
		return x.r.s.PutWith(ctx, k.name, buf, bo)
	})
	k.end(gen, low, err == nil)
	x.r.log.end(seq, err, x.noop(err))
	x.settle(statKind(OpPut), err, expNoSpace)
}

// read reads a range of the key and checks every word.
func (x *task) read() {
	k, op := x.key(), x.op
	rule := k.readRule()
	buf := x.buffer(op.Len)
	n, err := x.r.readAt(k.name, buf, op.Off)
	if err != nil {
		x.settle(statKind(OpRead), err, expNotFound)
		return
	}
	x.verify(k, rule, buf[:n], op.Off, "read", func() ([]byte, int64, error) {
		b := make([]byte, op.Len)
		n, err := x.r.readAt(k.name, b, op.Off)
		return b[:n], op.Off, err
	})
	x.settle(statKind(OpRead), nil, 0)
}

// readAt opens the key, reads at off and closes it; reading past the end
// is not an error.
func (r *runner) readAt(name string, b []byte, off int64) (int, error) {
	f, err := r.s.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := f.ReadAt(b, off)
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// get reads the key's whole value and checks every word.
func (x *task) get() {
	k := x.key()
	rule := k.readRule()
	v, err := x.r.s.Get(k.name)
	if err != nil {
		x.settle(statKind(OpGet), err, expNotFound)
		return
	}
	x.verify(k, rule, v, 0, "get", func() ([]byte, int64, error) {
		v, err := x.r.s.Get(k.name)
		return v, 0, err
	})
	x.settle(statKind(OpGet), nil, 0)
}

// verify checks b, the key's bytes at off as a read under rule saw them.
// A word the rule does not explain is read again (reread) with every write
// of the key held off, so a word torn by a concurrent in-place write is not
// taken for corruption; only a word that is still wrong is a violation.
func (x *task) verify(k *keyState, rule wordRule, b []byte, off int64, what string, reread func() ([]byte, int64, error)) {
	x.r.words.Add(int64(len(b) / wordSize))
	first, bad := k.seal(rule).firstBad(b, off)
	if !bad {
		return
	}
	k.canaryMu.Lock()
	b2, off2, err := reread()
	rule2 := k.seal(rule)
	k.canaryMu.Unlock()
	if err != nil {
		return // the key is gone: nothing left to confirm
	}
	again, bad := rule2.firstBad(b2, off2)
	if !bad {
		return
	}
	kind := again.reason
	x.r.viol.add(kind, "%s: %s of %q [%d,+%d): word at offset %d is %v, want zeros or key %d generations [%d,%d) (first seen at %d: %v)",
		x, what, k.name, off, len(b), again.at, again.got, k.id, rule2.floor, rule2.next, first.at, first.got)
}

// pin pins a range of the key, checks what it sees, writes a canary
// through a writable pin, holds it, verifies the canary and unpins.
func (x *task) pin() {
	k, op, r := x.key(), x.op, x.r
	f, err := r.s.Open(k.name)
	if err != nil {
		x.settle(statKind(OpPin), err, expNotFound)
		return
	}
	size, err := f.Size()
	if err != nil || size < wordSize {
		_ = f.Close()
		if err == nil {
			err = fmt.Errorf("stress: %q is empty: %w", k.name, dax.ErrInvalidRange)
		}
		x.settle(statKind(OpPin), err, expNotFound|expInvalidRange)
		return
	}
	words := size / wordSize
	off := op.Off * words / pinScale * wordSize
	n := min(op.Len, size-off)
	sp := span{off, off + n}
	rule := k.readRule()
	created := time.Now()
	p, err := f.Pin(off, n, dax.PinOptions{
		Writable: op.Writable, Label: fmt.Sprintf("stress/%s/%d", x.ws.w, x.seq),
		OnBreak: func() { r.breaks.Add(1) },
	})
	_ = f.Close()
	if err != nil {
		x.settle(statKind(OpPin), err, expNoSpace|expNotFound|expInvalidRange)
		return
	}
	rec := k.addPin(sp, created, 2*r.c.waitTimeout())
	x.verify(k, rule, flatten(p.Bytes()), off, "pin", func() ([]byte, int64, error) {
		return flatten(p.Bytes()), off, nil
	})
	var canary word
	if op.Writable {
		canary = x.writeCanary(k, p, sp)
	}
	x.hold(op.Hold)
	if canary != (word{}) {
		x.checkCanary(k, p, canary)
		k.canaryMu.Lock()
		k.dropCanary(sp)
		k.canaryMu.Unlock()
	}
	rec.unpinning.Store(time.Now().UnixNano())
	err = p.Unpin()
	rec.unpinned.Store(time.Now().UnixNano())
	x.settle(statKind(OpPin), err, 0)
}

// writeCanary fills the pinned range with a fresh word of the key, unless
// another pin's canary overlaps it, and returns the word (zero: none).
func (x *task) writeCanary(k *keyState, p dax.Pin, sp span) word {
	w := x.fillCanary(k, p.Bytes(), sp)
	if w == (word{}) {
		return w
	}
	if err := p.Flush(); err != nil {
		x.classify(fmt.Errorf("stress: flush canary: %w", err), 0)
	}
	if h := x.r.c.hooks; h != nil && h.afterCanary != nil {
		h.afterCanary(p)
	}
	return w
}

// fillCanary fills runs, the memory of range sp of the key (a pin's or a
// pinned window's), with a fresh word of the key, unless another canary
// overlaps sp, and returns the word (zero: none).
func (x *task) fillCanary(k *keyState, runs [][]byte, sp span) word {
	k.canaryMu.Lock()
	defer k.canaryMu.Unlock()
	if !k.addCanary(sp) {
		return word{}
	}
	gen, low := k.begin()
	w := word{k.id, gen}
	seq := x.r.log.begin("canary", k.name, gen, 0)
	for _, b := range runs {
		fillWords(b, w)
	}
	k.end(gen, low, false)
	x.r.log.end(seq, nil, false)
	return w
}

// checkCanary verifies that every word of the pin still holds canary.
func (x *task) checkCanary(k *keyState, p dax.Pin, canary word) {
	x.checkCanaryRuns(k, "pin", p.Offset(), p.Len(), p.Bytes(), canary)
}

// checkCanaryRuns verifies that every word of runs, the memory of bytes
// [off, off+n) of the key that what holds, still holds canary.
func (x *task) checkCanaryRuns(k *keyState, what string, off, n int64, runs [][]byte, canary word) {
	x.r.canaries.Add(1)
	at := off
	for _, b := range runs {
		for i := 0; i+wordSize <= len(b); i += wordSize {
			if got := readWord(b[i:]); got != canary {
				x.r.viol.add(ViolationCanary, "%s: %s of %q [%d,+%d): word at offset %d is %v, want canary %v",
					x, what, k.name, off, n, at+int64(i), got, canary)
				return
			}
		}
		at += int64(len(b))
	}
}

// hold sleeps for d, or until the run ends.
func (x *task) hold(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-x.r.ctx.Done():
	}
}

// flatten copies the runs of a pin into one buffer.
func flatten(runs [][]byte) []byte {
	n := 0
	for _, b := range runs {
		n += len(b)
	}
	out := make([]byte, 0, n)
	for _, b := range runs {
		out = append(out, b...)
	}
	return out
}

// reshape truncates, punches or zeroes a range of the key.
func (x *task) reshape() {
	k, op := x.key(), x.op
	seq := x.r.log.begin(op.Kind.String(), k.name, 0, 0)
	f, err := x.r.s.Open(k.name)
	if err == nil {
		bs := x.r.bs
		var over span
		var call func(ctx context.Context, bo dax.BreakOptions) error
		switch op.Kind {
		case OpTruncate:
			over = span{op.Off / bs * bs, math.MaxInt64}
			call = func(ctx context.Context, bo dax.BreakOptions) error { return f.TruncateWith(ctx, op.Off, bo) }
		case OpPunch:
			over = span{op.Off / bs * bs, (op.Off + op.Len + bs - 1) / bs * bs}
			call = func(ctx context.Context, bo dax.BreakOptions) error { return f.PunchHoleWith(ctx, op.Off, op.Len, bo) }
		default:
			over = span{op.Off / bs * bs, (op.Off + op.Len + bs - 1) / bs * bs}
			call = func(ctx context.Context, bo dax.BreakOptions) error { return f.ZeroRangeWith(ctx, op.Off, op.Len, bo) }
		}
		err = x.breakCall(k, over, call)
		_ = f.Close()
	}
	x.r.log.end(seq, err, x.noop(err))
	x.settle(statKind(op.Kind), err, expNoSpace|expNotFound)
}

// remove removes the key.
func (x *task) remove() {
	k := x.key()
	x.hold(x.op.Hold)
	if x.r.ctx.Err() != nil {
		x.settle(statKind(OpRemove), nil, 0) // the run ended during the pause
		return
	}
	gen, low := k.begin()
	seq := x.r.log.begin("remove", k.name, gen, 0)
	err := x.breakCall(k, span{0, math.MaxInt64}, func(ctx context.Context, bo dax.BreakOptions) error {
		return x.r.s.RemoveWith(ctx, k.name, bo)
	})
	k.end(gen, low, err == nil)
	x.r.log.end(seq, err, x.noop(err))
	x.settle(statKind(OpRemove), err, expNotFound)
}

// breakCall runs a layout-breaking call with the operation's policy. Under
// Wait it bounds the call, abandons it once it is overdue (see overdue),
// and judges how soon it returned after the pins over the range dropped.
func (x *task) breakCall(k *keyState, over span, call func(context.Context, dax.BreakOptions) error) error {
	bo := dax.BreakOptions{Policy: x.op.Policy}
	if x.op.Policy != dax.PolicyWait {
		return call(context.Background(), bo)
	}
	ctx, cancel := context.WithTimeout(context.Background(), x.r.c.waitTimeout())
	defer cancel()
	ctx, abandon := context.WithCancelCause(ctx)
	defer abandon(nil)
	t0 := time.Now()
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		x.watchWait(k, over, t0, done, abandon)
	}()
	err := call(ctx, bo)
	t1 := time.Now()
	close(done)
	<-watched
	return x.judgeWait(k, over, t0, t1, err, context.Cause(ctx))
}

// errOverdue is why a Wait-policy call was abandoned.
var errOverdue = errors.New("stress: no pin over the range has been held for longer than the wake bound")

// watchWait abandons a Wait-policy call over span over of key k, begun at
// t0, as soon as it is overdue, until done is closed.
func (x *task) watchWait(k *keyState, over span, t0 time.Time, done <-chan struct{}, abandon context.CancelCauseFunc) {
	t := time.NewTicker(max(time.Millisecond, x.r.c.WakeBound/20))
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			if _, _, late := x.overdue(k, over, t0, now); late {
				abandon(errOverdue)
				return
			}
		}
	}
}

// overdue reports whether a Wait-policy call over span over of key k, begun
// at t0 and still waiting at now, waits longer than it may: every pin over
// the range has been released (last is the latest Unpin call) and more than
// WakeBound has passed since then and since t0. Such a call waits for
// nothing the run holds: its wakeup was lost.
func (x *task) overdue(k *keyState, over span, t0, now time.Time) (pins []*pinRecord, last int64, late bool) {
	pins = k.pinsOver(over, now)
	for _, p := range pins {
		u0 := p.unpinning.Load()
		if u0 == 0 {
			return pins, 0, false // still held: the wait is legitimate
		}
		last = max(last, u0)
	}
	since := max(t0.UnixNano(), last)
	return pins, last, now.UnixNano()-since > int64(x.r.c.WakeBound)
}

// judgeWait judges a Wait-policy call over span over of key k that ran from
// t0 to t1 and returned err (cause: why its context ended, if it did). A
// call that returned is a latency sample: the time since the latest Unpin
// (called before t1, returned after t0) of a pin over the range. A call
// that was abandoned as overdue, or timed out while overdue, lost its
// wakeup; one that timed out while a pin was still held did not.
func (x *task) judgeWait(k *keyState, over span, t0, t1 time.Time, err, cause error) error {
	bound := x.r.c.WakeBound
	if err == nil {
		var last int64
		for _, p := range k.pinsOver(over, t1) {
			if u0 := p.unpinning.Load(); u0 == 0 || u0 > t1.UnixNano() {
				continue // not released before the call returned: not waited for
			}
			if u := awaitUnpinned(p); u >= t0.UnixNano() {
				last = max(last, u)
			}
		}
		if last > 0 {
			lat := max(0, time.Duration(t1.UnixNano()-last))
			x.r.lat.add(lat)
			if lat > bound {
				x.r.viol.add(ViolationWakeLatency, "%s: returned %v after the last pin over [%d,%d) of %q was released (bound %v)",
					x, lat.Round(time.Millisecond), over.off, over.end, k.name, bound)
			}
		}
		return nil
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return err
	}
	pins, last, late := x.overdue(k, over, t0, t1)
	if !late && !errors.Is(cause, errOverdue) {
		return &waitTimeoutError{err: err} // a pin held long, or dropped just now
	}
	ago := "there were none"
	if last > 0 {
		ago = fmt.Sprintf("the last dropped %v before", t1.Sub(time.Unix(0, last)).Round(time.Millisecond))
	}
	x.r.viol.add(ViolationLostWakeup, "%s: waited %v for the release of [%d,%d) of %q, but all %d pins over it had dropped (%s): %v",
		x, t1.Sub(t0).Round(time.Millisecond), over.off, over.end, k.name, len(pins), ago, err)
	return &waitTimeoutError{err: err, lost: true}
}

// awaitUnpinned returns when p's Unpin returned, waiting briefly for a
// holder that called Unpin but has not recorded its return yet.
func awaitUnpinned(p *pinRecord) int64 {
	deadline := time.Now().Add(time.Second)
	for {
		if u := p.unpinned.Load(); u != 0 {
			return u
		}
		if time.Now().After(deadline) {
			return p.unpinning.Load()
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// fillerValue is what a pressure worker knows a filler holds.
type fillerValue struct {
	gen     uint32
	n       int64
	present bool
}

// pressure keeps the region near full: it puts a filler while more than
// FreeTarget is free and removes one while less is. Only this worker
// touches its fillers, so it knows their exact values and checks them.
func (x *task) pressure() {
	r, op := x.r, x.op
	n, idx := max(1, r.c.Pressure), x.ws.w.Index
	slot := op.Key - op.Key%n + idx
	if slot >= fillerSlots {
		slot = idx % fillerSlots
	}
	st, err := r.s.Stats()
	if err != nil {
		x.settle(statFill, err, 0)
		return
	}
	fill := int64(st.FreeBlocks)*r.bs > r.c.FreeTarget
	if !fill {
		// Drain a filler this worker knows exists, the first of its slots
		// from the planned one on.
		own := (fillerSlots - idx + n - 1) / n // slots idx, idx+n, ...
		for j := range own {
			if s := idx + ((slot-idx)/n+j)%own*n; x.ws.fill[s].present {
				slot = s
				break
			}
		}
	}
	k := r.fillers[slot]
	gen, low := k.begin()
	if fill {
		buf := x.buffer(op.Len)
		fillWords(buf, word{k.id, gen})
		seq := r.log.begin("put", k.name, gen, op.Len)
		err = r.s.Put(k.name, buf)
		k.end(gen, low, err == nil)
		r.log.end(seq, err, x.noop(err))
		switch {
		case err == nil:
			x.ws.fill[slot] = fillerValue{gen: gen, n: op.Len, present: true}
		case !x.noop(err):
			delete(x.ws.fill, slot)
		}
		x.settle(statFill, err, expNoSpace)
	} else {
		seq := r.log.begin("remove", k.name, gen, 0)
		err = r.s.Remove(k.name)
		k.end(gen, low, err == nil)
		r.log.end(seq, err, x.noop(err))
		switch {
		case err == nil || errors.Is(err, dax.ErrNotFound):
			x.ws.fill[slot] = fillerValue{}
		default:
			delete(x.ws.fill, slot)
		}
		x.settle(statDrain, err, expNotFound)
	}
	if op.Writable {
		r.checkFiller(r.s, k, x.ws.fill, slot, x.String())
	}
}

// checkFiller compares the filler in slot with what fill says it holds.
func (r *runner) checkFiller(s *dax.Store, k *keyState, fill map[int]fillerValue, slot int, who string) {
	want, known := fill[slot]
	if !known {
		return
	}
	got, err := s.Get(k.name)
	switch {
	case !want.present && errors.Is(err, dax.ErrNotFound):
		return
	case !want.present && err == nil:
		r.viol.add(ViolationValue, "%s: removed filler %q exists with %d bytes", who, k.name, len(got))
		return
	case err != nil:
		r.viol.add(ViolationValue, "%s: filler %q of %d bytes (generation %d): %v", who, k.name, want.n, want.gen, err)
		return
	}
	r.words.Add(int64(len(got) / wordSize))
	if int64(len(got)) != want.n {
		r.viol.add(ViolationValue, "%s: filler %q holds %d bytes, want %d (generation %d)", who, k.name, len(got), want.n, want.gen)
		return
	}
	w := word{k.id, want.gen}
	for i := 0; i+wordSize <= len(got); i += wordSize {
		if g := readWord(got[i:]); g != w {
			r.viol.add(ViolationValue, "%s: filler %q word at offset %d is %v, want %v", who, k.name, i, g, w)
			return
		}
	}
}
