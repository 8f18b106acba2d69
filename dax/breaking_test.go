package dax

// Tests of the break policies (Fail, Wait, Detach), of OnBreak, and of
// pins dropping while a layout-breaking operation runs.

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daxstore/daxstore/internal/poll"
)

// pinnedVictim returns a store whose key "victim" (4 blocks less 10 bytes)
// is open as f and pinned whole, writable, with a canary, under label
// "holder"; key "other" is unrelated.
func pinnedVictim(t *testing.T, mod func(*Options)) (s *Store, f *File, p Pin, size int64) {
	t.Helper()
	size = 4*testBS - 10
	s = newStore(t, 64*testBS, mod)
	mustPut(t, s, "victim", pattern(1, int(size)))
	mustPut(t, s, "other", pattern(2, 2*testBS))
	f = mustOpen(t, s, "victim")
	p = mustPin(t, f, 0, size, PinOptions{Writable: true, Label: "holder"})
	fillCanary(p)
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	return s, f, p, size
}

func TestFailPolicyChangesNothingWhileBlocksArePinned(t *testing.T) {
	for _, op := range breakOps {
		for _, storeWide := range []bool{false, true} {
			name := op.name + " with the Fail policy per call returns ErrPinned and changes nothing"
			bo, mod := BreakOptions{Policy: PolicyFail}, func(*Options) {}
			if storeWide {
				name = op.name + " with the Fail policy as the store default returns ErrPinned and changes nothing"
				bo, mod = BreakOptions{}, func(o *Options) { o.BreakPolicy = PolicyFail }
			}
			t.Run(name, func(t *testing.T) {
				s, f, p, size := pinnedVictim(t, mod)
				pinned := pinBytes(p)
				before := snapshot(t, s)
				err := op.do(t0(), s, f, size, bo)
				wantErr(t, err, ErrPinned)
				if !strings.Contains(err.Error(), "holder") {
					t.Errorf("error %q does not name the pin", err)
				}
				if !bytes.Equal(pinBytes(p), pinned) {
					t.Error("the pinned bytes changed")
				}
				sameState(t, s, before)
				if err := p.Unpin(); err != nil {
					t.Fatal(err)
				}
				// Once the pin is gone the same call goes through.
				if err := op.do(t0(), s, f, size, bo); err != nil {
					t.Fatalf("%s after Unpin: %v", op.name, err)
				}
				checkVictim(t, s, op, size)
				mustCheck(t, s)
			})
		}
	}
}

func TestFailPolicyIgnoresPinsOutsideTheRange(t *testing.T) {
	s := newStore(t, 64*testBS, func(o *Options) { o.BreakPolicy = PolicyFail })
	mustPut(t, s, "k", pattern(1, 8*testBS))
	f := mustOpen(t, s, "k")
	p := mustPin(t, f, 0, 2*testBS, PinOptions{Label: "head"})
	defer p.Unpin()
	steps := []struct {
		name string
		do   func() error
	}{
		{"punching blocks after the pin", func() error { return f.PunchHole(4*testBS, 2*testBS) }},
		{"zeroing blocks after the pin", func() error { return f.ZeroRange(2*testBS, testBS) }},
		{"truncating to the end of the pin", func() error { return f.Truncate(2 * testBS) }},
	}
	for _, st := range steps {
		t.Run(st.name+" succeeds", func(t *testing.T) {
			if err := st.do(); err != nil {
				t.Fatal(err)
			}
			if got := mustStats(t, s).BusyBlocks; got != 0 {
				t.Fatalf("%d busy blocks, want 0", got)
			}
			mustCheck(t, s)
		})
	}
}

func TestWaitPolicyReturnsOnlyAfterThePinIsReleased(t *testing.T) {
	for _, op := range breakOps {
		t.Run(op.name+" with the Wait policy blocks until Unpin, with the detach already visible", func(t *testing.T) {
			s, f, p, size := pinnedVictim(t, nil)
			done := make(chan error, 1)
			go func() { done <- op.do(t0(), s, f, size, BreakOptions{Policy: PolicyWait}) }()
			poll.Until(t, "the break to wait", func() bool { return mustStats(t, s).Waiters > 0 })
			select {
			case err := <-done:
				t.Fatalf("%s returned %v while the pin is held", op.name, err)
			case <-time.After(20 * time.Millisecond):
			}
			// It waits with every lock of the file dropped, after the commit.
			checkVictim(t, s, op, size)
			if got := mustStats(t, s).BusyBlocks; got != 4 {
				t.Fatalf("%d busy blocks while waiting, want 4", got)
			}
			go p.Unpin()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s still waiting 10s after the Unpin", op.name)
			}
			// Released means freed: nothing is busy once it returns.
			if st := mustStats(t, s); st.BusyBlocks != 0 {
				t.Fatalf("%d busy blocks after the wait returned", st.BusyBlocks)
			}
			mustCheck(t, s)
		})
	}
}

func TestWaitPolicyGivesUpAtTheDeadlineButKeepsTheDetach(t *testing.T) {
	for _, op := range breakOps {
		t.Run(op.name+" returns DeadlineExceeded and stays committed", func(t *testing.T) {
			s, f, p, size := pinnedVictim(t, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			var err error
			within(t, 10*time.Second, op.name, func() {
				err = op.do(ctx, s, f, size, BreakOptions{Policy: PolicyWait})
			})
			wantErr(t, err, context.DeadlineExceeded)
			checkVictim(t, s, op, size)
			if got := mustStats(t, s).BusyBlocks; got != 4 {
				t.Fatalf("%d busy blocks, want 4", got)
			}
			mustCheck(t, s)
			if err := p.Unpin(); err != nil {
				t.Fatal(err)
			}
			settle(t, s)
			if got := mustStats(t, s).BusyBlocks; got != 0 {
				t.Fatalf("%d busy blocks after Unpin", got)
			}
			mustCheck(t, s)
		})
	}
}

// TestWaitPolicyDoesNotDeadlockAPinHolderThatPinsAgain is Kara's scenario:
// the holder of a pin that a truncate waits for pins another page of the
// same file and reads it before it lets go. The truncate must not hold the
// invalidate lock (or any other) while it waits.
func TestWaitPolicyDoesNotDeadlockAPinHolderThatPinsAgain(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	orig := pattern(6, 4*testBS)
	mustPut(t, s, "k", orig)
	f := mustOpen(t, s, "k")
	tail := mustPin(t, f, 3*testBS, testBS, PinOptions{Label: "tail"})
	truncated := make(chan error, 1)
	go func() { truncated <- f.TruncateWith(context.Background(), 2*testBS, BreakOptions{Policy: PolicyWait}) }()
	poll.Until(t, "the truncate to wait for the tail pin", func() bool { return mustStats(t, s).Waiters > 0 })

	within(t, 10*time.Second, "the pin holder's second pin, read and unpins", func() {
		head, err := f.Pin(0, testBS, PinOptions{Label: "head"})
		if err != nil {
			t.Errorf("second pin: %v", err)
			return
		}
		if !bytes.Equal(pinBytes(head), orig[:testBS]) {
			t.Error("second pin reads wrong bytes")
		}
		buf := make([]byte, testBS)
		if _, err := f.ReadAt(buf, testBS); err != nil || !bytes.Equal(buf, orig[testBS:2*testBS]) {
			t.Errorf("read while the truncate waits: %v", err)
		}
		if err := head.Unpin(); err != nil {
			t.Error(err)
		}
		if err := tail.Unpin(); err != nil {
			t.Error(err)
		}
	})
	select {
	case err := <-truncated:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("truncate still waiting 10s after every pin was released")
	}
	if got := mustGet(t, s, "k"); !bytes.Equal(got, orig[:2*testBS]) {
		t.Fatal("the truncated file reads wrong bytes")
	}
	mustCheck(t, s)
}

func TestOnBreakIsCalledOncePerPinOutsideEveryLock(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "k", pattern(1, 8*testBS))
	f := mustOpen(t, s, "k")
	var calls [4]atomic.Int32
	var errs []error
	var mu sync.Mutex
	onBreak := func(i int) func() {
		return func() {
			calls[i].Add(1)
			// Both take locks that the breaking operation held: they
			// would deadlock if OnBreak ran under them.
			if _, err := f.Size(); err != nil && !errors.Is(err, ErrNotFound) {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			_ = s.Busy()
			_ = s.Pins()
			if _, err := s.Stats(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}
	}
	pins := []Pin{
		mustPin(t, f, 0, 2*testBS, PinOptions{Label: "p0", OnBreak: onBreak(0)}),
		mustPin(t, f, testBS, 2*testBS, PinOptions{Label: "p1", OnBreak: onBreak(1)}),
		mustPin(t, f, 6*testBS, 1, PinOptions{Label: "p2", OnBreak: onBreak(2)}),
		mustPin(t, f, 7*testBS, testBS, PinOptions{Label: "p3", OnBreak: onBreak(3)}),
	}
	want := func(step string, w ...int32) {
		t.Helper()
		for i := range calls {
			if got := calls[i].Load(); got != w[i] {
				t.Fatalf("after %s: OnBreak of p%d called %d times, want %d", step, i, got, w[i])
			}
		}
	}
	steps := []struct {
		name string
		do   func() error
		want []int32
	}{
		{"a punch of blocks 0-1 breaks p0 and p1", func() error { return f.PunchHole(0, 2*testBS) }, []int32{1, 1, 0, 0}},
		{"a punch of block 2 detaches more of p1 but does not call it again", func() error { return f.PunchHole(2*testBS, 2*testBS) }, []int32{1, 1, 0, 0}},
		{"a zero of block 6 breaks p2", func() error { return f.ZeroRange(6*testBS, testBS) }, []int32{1, 1, 1, 0}},
		{"a punch of the same blocks again calls nobody", func() error { return f.PunchHole(0, 7*testBS) }, []int32{1, 1, 1, 0}},
		{"a put over the key breaks p3", func() error { return s.Put("k", []byte("new")) }, []int32{1, 1, 1, 1}},
		{"a remove calls nobody again", func() error { return s.Remove("k") }, []int32{1, 1, 1, 1}},
	}
	for _, st := range steps {
		within(t, 10*time.Second, st.name, func() {
			if err := st.do(); err != nil {
				t.Errorf("%s: %v", st.name, err)
			}
		})
		want(st.name, st.want...)
	}
	for _, err := range errs {
		t.Errorf("inside OnBreak: %v", err)
	}
	for _, p := range pins {
		if err := p.Unpin(); err != nil {
			t.Fatal(err)
		}
	}
	mustCheck(t, s)
}

// TestPinsDroppingDuringBreaksNeverFailTheStore races Unpin against the
// breaking operations that plan copy-on-write blocks from the reference
// counts: a pin that drops between the plan and the apply leaves reserved
// blocks unused, which must go back to free space.
func TestPinsDroppingDuringBreaksNeverFailTheStore(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	s := newStore(t, 256*testBS, nil)
	orig := pattern(8, 8*testBS)
	mustPut(t, s, "k", orig)
	f := mustOpen(t, s, "k")
	deadline := time.Now().Add(time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		var pins []Pin
		for range 1 + rng.IntN(4) {
			off := rng.Int64N(7 * testBS)
			pins = append(pins, mustPin(t, f, off, 1+rng.Int64N(testBS), PinOptions{}))
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, p := range pins {
				p.Unpin()
			}
		}()
		off, n := rng.Int64N(6*testBS), 1+rng.Int64N(2*testBS)
		var err error
		switch i % 3 {
		case 0:
			err = f.ZeroRange(off, n)
		case 1:
			err = f.PunchHole(off, n)
		case 2:
			err = f.Truncate(off)
		}
		wg.Wait()
		if err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
		if _, err := f.WriteAt(orig, 0); err != nil {
			t.Fatalf("iteration %d: rewrite: %v", i, err)
		}
	}
	settle(t, s)
	mustCheck(t, s)
	if st := mustStats(t, s); st.BusyBlocks != 0 || st.UsedBlocks != 8 {
		t.Fatalf("after the race: %d busy, %d used blocks; want 0 and 8", st.BusyBlocks, st.UsedBlocks)
	}
}
