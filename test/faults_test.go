package test

// The fault suite exists to prove that a fault in the journal's filesystem
// never kills, hangs or wedges a store: each round runs random operations
// on a store whose journal lives on a filesystem that fails writes, syncs,
// creates or renames with ENOSPC, EIO or EACCES from a random point on. The
// failing call must return an error, later changes must be refused with the
// same cause, Close must return, Pebble's goroutines must go away, and
// after the fault is removed a reopen must pass Check with every
// acknowledged operation present.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daxstore/daxstore/internal/daxtest"
	"github.com/daxstore/daxstore/internal/poll"

	"github.com/daxstore/daxstore/dax"
	"github.com/daxstore/daxstore/internal/faultfs"
)

var (
	faultSeed   = flag.Int64("faults.seed", 0, "seed of TestJournalFaults (0: time-based)")
	faultRounds = flag.Int("faults.rounds", 0, "rounds of TestJournalFaults (0: 200, or 40 with -short)")
)

const (
	faultKeys     = 5
	faultMaxBytes = 24 << 10 // files stay below this size
)

// faultRun is one round: a store, its model and its log.
type faultRun struct {
	t     *testing.T
	seed  int64
	rng   *rand.Rand
	dir   string
	fs    *faultfs.FS
	s     *dax.Store
	model map[string][]byte // acknowledged contents
	pins  []dax.Pin
	log   []string

	// The operation that met the fault: its key, and that key's content
	// before it (nil, absent) and after it (nil, absent). A Put or Remove
	// leaves one or the other whole; an in-place write, truncate or punch
	// leaves either size and each byte old or new, as a crash does (their
	// bytes in written blocks change in place before the commit).
	late []string // keys Put after a background fault, before the journal recorded it

	uncertain         string
	inPlace           bool
	before, after     []byte
	hadBefore, hadAft bool
}

func (r *faultRun) logf(format string, args ...any) {
	r.log = append(r.log, fmt.Sprintf(format, args...))
}

func (r *faultRun) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("seed %d: %s\nop log:\n  %s\nreplay: go test ./test -run TestJournalFaults -faults.rounds=1 -faults.seed=%d",
		r.seed, fmt.Sprintf(format, args...), strings.Join(r.log, "\n  "), r.seed)
}

func (r *faultRun) key() string { return fmt.Sprintf("f%d", r.rng.Intn(faultKeys)) }

func (r *faultRun) data(n int) []byte {
	b := make([]byte, n)
	r.rng.Read(b)
	return b
}

// resize returns v cut or zero-extended to n bytes, as a new slice.
func faultResize(v []byte, n int) []byte {
	out := make([]byte, n)
	copy(out, v)
	return out
}

// step runs one random operation. It returns the operation's error, having
// applied the operation to next if it succeeds.
func (r *faultRun) step() (key string, next []byte, exists bool, err error) {
	key = r.key()
	cur, ok := r.model[key]
	switch op := r.rng.Intn(10); {
	case op < 3 || !ok:
		v := r.data(r.rng.Intn(faultMaxBytes))
		r.logf("put %s %d", key, len(v))
		return key, v, true, r.s.Put(key, v)
	case op < 5:
		off := r.rng.Intn(faultMaxBytes / 2)
		d := r.data(1 + r.rng.Intn(faultMaxBytes/2))
		r.logf("write %s %d+%d", key, off, len(d))
		nv := faultResize(cur, max(len(cur), off+len(d)))
		copy(nv[off:], d)
		return key, nv, true, r.withFile(key, func(f *dax.File) error {
			_, err := f.WriteAt(d, int64(off))
			return err
		})
	case op < 6:
		n := r.rng.Intn(faultMaxBytes)
		r.logf("truncate %s %d", key, n)
		return key, faultResize(cur, n), true, r.withFile(key, func(f *dax.File) error { return f.Truncate(int64(n)) })
	case op < 7:
		off, n := r.rng.Intn(faultMaxBytes), 1+r.rng.Intn(faultMaxBytes/2)
		r.logf("punch %s %d+%d", key, off, n)
		nv := bytes.Clone(cur)
		if end := min(off+n, len(nv)); off < end {
			clear(nv[off:end])
		}
		return key, nv, true, r.withFile(key, func(f *dax.File) error { return f.PunchHole(int64(off), int64(n)) })
	case op < 8:
		r.logf("remove %s", key)
		return key, nil, false, r.s.Remove(key)
	default:
		// A pin changes no content; it holds blocks busy across later
		// operations and the fault.
		if len(cur) == 0 {
			return key, cur, true, nil
		}
		off := r.rng.Intn(len(cur))
		n := 1 + r.rng.Intn(len(cur)-off)
		r.logf("pin %s %d+%d", key, off, n)
		err := r.withFile(key, func(f *dax.File) error {
			p, err := f.Pin(int64(off), int64(n), dax.PinOptions{Label: "fault-test"})
			if err == nil {
				r.pins = append(r.pins, p)
			}
			return err
		})
		if err == nil && len(r.pins) > 3 {
			i := r.rng.Intn(len(r.pins))
			r.logf("unpin %d", i)
			err = r.pins[i].Unpin()
			r.pins = append(r.pins[:i], r.pins[i+1:]...)
		}
		return key, cur, true, err
	}
}

func (r *faultRun) withFile(key string, fn func(*dax.File) error) error {
	f, err := r.s.Open(key)
	if err != nil {
		return err
	}
	err = fn(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// closeStore closes r.s, forcing out pins, and fails the round if Close
// does not return. The deadline only detects a hang; it is not a budget.
func (r *faultRun) closeStore() error {
	done := make(chan error, 1)
	go func() { done <- r.s.CloseWith(context.Background(), dax.CloseOptions{Force: true}) }()
	select {
	case err := <-done:
		r.s, r.pins = nil, nil
		return err
	case <-time.After(2 * time.Minute):
		var b strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
		r.fatalf("Close of the store hangs\n%s", b.String())
		return nil
	}
}

// settle waits until the goroutines Open started are gone again, which
// proves that nothing of the failed journal keeps running.
func (r *faultRun) settle(baseline int) {
	deadline := time.Now().Add(time.Minute)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			r.fatalf("%d goroutines outlive the closed store (%d before it)\n%s", runtime.NumGoroutine(), baseline, b.String())
		}
		time.Sleep(time.Millisecond) // polling, not synchronization: the loop re-checks
	}
}

func (r *faultRun) open() {
	s, err := dax.Open(r.dir, daxtest.WithJournalFaults(&dax.Options{Size: 8 << 20, NoAdminSocket: true}, r.fs))
	if err != nil {
		r.fatalf("open: %v", err)
	}
	r.s = s
}

func (r *faultRun) run() {
	baseline := runtime.NumGoroutine()
	r.open()
	ops := []faultfs.Op{faultfs.Write, faultfs.Sync, faultfs.Create, faultfs.Rename, faultfs.Write | faultfs.Sync, faultfs.AllOps}
	errnos := []syscall.Errno{syscall.ENOSPC, syscall.EIO, syscall.EACCES}
	fault := faultfs.Fault{Ops: ops[r.rng.Intn(len(ops))], Err: errnos[r.rng.Intn(len(errnos))], After: r.rng.Intn(80)}
	if r.rng.Intn(3) == 0 {
		fault.Times = 1
	}
	arm := r.rng.Intn(20)
	var failure error
	for i := 0; i < 100 && failure == nil; i++ {
		if i == arm {
			r.logf("arm %v", fault)
			r.fs.Arm(fault)
		}
		key, next, exists, err := r.step()
		if err == nil {
			if exists {
				r.model[key] = next
			} else {
				delete(r.model, key)
			}
			continue
		}
		failure = err
		r.logf("-> %v", err)
		r.uncertain = key
		r.inPlace = strings.HasPrefix(r.log[len(r.log)-2], "write ") || strings.HasPrefix(r.log[len(r.log)-2], "truncate ") ||
			strings.HasPrefix(r.log[len(r.log)-2], "punch ")
		r.before, r.hadBefore = r.model[key]
		r.after, r.hadAft = next, exists
	}
	if failure != nil {
		r.checkFailure(failure, fault)
	} else if n := r.fs.Injected(); n > 0 {
		// The fault struck background work after the last operation, so
		// changes must meet it from the moment the journal records it.
		// That happens when the failing call returns into the journal,
		// which may be just after the fault was counted: a Put in
		// between is acknowledged and must survive like any other.
		r.logf("fault struck after the last operation (%d injected)", n)
		var early int
		poll.Until(r.t, fmt.Sprintf("seed %d: a Put to meet the journal's failure", r.seed), func() bool {
			key := fmt.Sprintf("late%d", early)
			err := r.s.Put(key, []byte("x"))
			if err == nil {
				r.logf("put %s (before the failure was recorded)", key)
				r.late = append(r.late, key)
				early++
				return false
			}
			failure = err
			return true
		})
		r.logf("-> %v", failure)
		r.checkFailure(failure, fault)
	} else {
		r.logf("no failure")
	}
	if err := r.closeStore(); failure != nil && err == nil {
		r.fatalf("Close of a failed store returned nil")
	}
	if r.fs.Injected() == 0 {
		// A failed journal leaves its Pebble goroutines parked, never to
		// touch the disk (journal.Close says why); a healthy one leaves
		// nothing.
		r.settle(baseline)
	}

	r.fs.Disarm()
	r.logf("reopen")
	r.open()
	defer r.closeStore()
	if err := r.s.Check(); err != nil {
		r.fatalf("Check after the fault: %v", err)
	}
	r.compare()
}

// checkFailure checks the error of the operation that met the fault and
// that the store refuses changes afterwards with the same cause.
func (r *faultRun) checkFailure(err error, fault faultfs.Fault) {
	if r.fs.Injected() == 0 {
		r.fatalf("an operation failed with no fault injected: %v", err)
	}
	want := dax.ErrFailed
	if fault.Err == syscall.ENOSPC {
		want = dax.ErrNoSpace
	}
	if !errors.Is(err, want) || !errors.Is(err, fault.Err) {
		r.fatalf("the failing operation returned %v, want %v and %v", err, want, fault.Err)
	}
	if strings.Contains(err.Error(), "\n") {
		r.fatalf("the error spans lines: %q", err)
	}
	perr := r.s.Put("refused", []byte("x"))
	if !errors.Is(perr, want) || !errors.Is(perr, fault.Err) {
		r.fatalf("Put after the failure returned %v, want %v and %v", perr, want, fault.Err)
	}
}

// compare checks the reopened store against the model: every acknowledged
// operation is there, and the one that met the fault is there or not.
func (r *faultRun) compare() {
	for i := 0; i < faultKeys; i++ {
		key := fmt.Sprintf("f%d", i)
		got, err := r.s.Get(key)
		has := err == nil
		if err != nil && !errors.Is(err, dax.ErrNotFound) {
			r.fatalf("get %s: %v", key, err)
		}
		want, wantHas := r.model[key]
		if has == wantHas && bytes.Equal(got, want) {
			continue
		}
		if key == r.uncertain {
			if has == r.hadBefore && bytes.Equal(got, r.before) {
				continue
			}
			if has == r.hadAft && bytes.Equal(got, r.after) {
				continue
			}
			if r.inPlace && has && oldOrNew(got, r.before, r.after) {
				continue
			}
		}
		r.fatalf("%s after the reopen: present %v, %d bytes; acknowledged: present %v, %d bytes (first difference at %d)",
			key, has, len(got), wantHas, len(want), firstDiff(got, want))
	}
	for _, key := range r.late {
		if got, err := r.s.Get(key); err != nil || string(got) != "x" {
			r.fatalf("%s, acknowledged before the failure was recorded, after the reopen: %q, %v", key, got, err)
		}
	}
	if _, err := r.s.Stat("refused"); !errors.Is(err, dax.ErrNotFound) {
		r.fatalf("a Put refused after the failure is in the store: %v", err)
	}
}

// oldOrNew reports whether got has the size of old or of new, and each of
// its bytes is that of old or of new (zero past their ends).
func oldOrNew(got, old, new []byte) bool {
	if len(got) != len(old) && len(got) != len(new) {
		return false
	}
	for i, c := range got {
		if c != faultByte(old, i) && c != faultByte(new, i) {
			return false
		}
	}
	return true
}

func faultByte(p []byte, i int) byte {
	if i < len(p) {
		return p[i]
	}
	return 0
}

// TestJournalFaults runs the fault suite: -faults.rounds rounds, each with
// its own seed derived from -faults.seed.
func TestJournalFaults(t *testing.T) {
	rounds := *faultRounds
	if rounds <= 0 {
		rounds = 200
		if testing.Short() {
			rounds = 40
		}
	}
	seed := *faultSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d, %d rounds", seed, rounds)
	failed := 0
	for i := 0; i < rounds; i++ {
		rs := seed + int64(i)
		r := &faultRun{t: t, seed: rs, rng: rand.New(rand.NewSource(rs)), dir: filepath.Join(t.TempDir(), "s"),
			fs: faultfs.New(8 << 10), model: map[string][]byte{}}
		r.run()
		if r.uncertain != "" {
			failed++
		}
	}
	t.Logf("%d of %d rounds met their fault", failed, rounds)
}
