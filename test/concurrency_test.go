package test

// The concurrency test exists to prove the locking protocol under load and
// the race detector: writers, readers, pin holders and layout breakers share
// a few keys for a couple of seconds while Check runs alongside. Every byte
// ever written to key k encodes k, so a reader that sees another key's byte
// (a block reused while still referenced) fails at once; pin holders store
// canaries and find them intact before they unpin; at the end Check passes
// and every busy block has come back.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daxstore/daxstore/dax"
)

const (
	concKeys = 4
	// Each file is concBlocks blocks: writers store into blocks
	// [0, concShared); pin holder g owns blocks concShared+2g and +1, which
	// no WriteAt touches, so only layout breaks (which never alter pinned
	// bytes) compete with its canaries.
	concShared  = 8
	concPinners = 4
	concBlocks  = concShared + 2*concPinners
)

// keyByte returns a byte that only key k's data uses: 64k+1 .. 64k+63.
func keyByte(k int, rng *rand.Rand) byte { return byte(k*64 + 1 + rng.Intn(63)) }

// validByte reports whether b may appear in key k: its own bytes or zero.
func validByte(k int, b byte) bool { return b == 0 || (b%64 != 0 && int(b-1)/64 == k) }

func concKey(k int) string { return fmt.Sprintf("k%d", k) }

type concTest struct {
	t      *testing.T
	s      *dax.Store
	bs     int64
	seed   int64
	stop   atomic.Bool
	ops    atomic.Int64
	broken atomic.Int64 // pins whose blocks a break detached while held
}

func (c *concTest) failf(format string, args ...any) {
	c.t.Helper()
	c.t.Errorf("seed %d: "+format, append([]any{c.seed}, args...)...)
	c.stop.Store(true)
}

// allowed reports whether err is one of the outcomes a racing operation may
// meet: its key removed meanwhile, a pin range past a truncated end, a Wait
// that timed out, a Fail that met a pin.
func allowed(err error) bool {
	return err == nil || errors.Is(err, dax.ErrNotFound) || errors.Is(err, dax.ErrInvalidRange) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, dax.ErrPinned)
}

// checkBytes fails when p, read from key k at off, holds a byte of another
// key (or a stale one).
func (c *concTest) checkBytes(what string, k int, off int64, p []byte) {
	c.t.Helper()
	for i, b := range p {
		if !validByte(k, b) {
			c.failf("%s of %s: byte at %d is %#x, which key %d never wrote", what, concKey(k), off+int64(i), b, k)
			return
		}
	}
}

func (c *concTest) fill(k int, n int64, rng *rand.Rand) []byte {
	b := keyByte(k, rng)
	p := make([]byte, n)
	for i := range p {
		p[i] = b
	}
	return p
}

func (c *concTest) writer(rng *rand.Rand) {
	for !c.stop.Load() {
		k := rng.Intn(concKeys)
		f, err := c.s.Open(concKey(k))
		if err != nil {
			if !allowed(err) {
				c.failf("open: %v", err)
			}
			continue
		}
		off := rng.Int63n(concShared * c.bs)
		n := 1 + rng.Int63n(min(2*c.bs, concShared*c.bs-off))
		if _, err := f.WriteAt(c.fill(k, n, rng), off); !allowed(err) {
			c.failf("write %s [%d,+%d): %v", concKey(k), off, n, err)
		}
		f.Close()
		c.ops.Add(1)
	}
}

func (c *concTest) reader(rng *rand.Rand) {
	for !c.stop.Load() {
		k := rng.Intn(concKeys)
		if rng.Intn(4) == 0 {
			v, err := c.s.Get(concKey(k))
			if !allowed(err) {
				c.failf("get %s: %v", concKey(k), err)
			}
			c.checkBytes("get", k, 0, v)
			c.ops.Add(1)
			continue
		}
		f, err := c.s.Open(concKey(k))
		if err != nil {
			if !allowed(err) {
				c.failf("open: %v", err)
			}
			continue
		}
		off := rng.Int63n(concBlocks * c.bs)
		p := make([]byte, 1+rng.Int63n(3*c.bs))
		n, err := f.ReadAt(p, off)
		if err != nil && err != io.EOF && !allowed(err) {
			c.failf("read %s [%d,+%d): %v", concKey(k), off, len(p), err)
		}
		c.checkBytes("read", k, off, p[:n])
		f.Close()
		c.ops.Add(1)
	}
}

// pinner pins ranges of its own lane, stores a canary through the pin,
// lets the others run, and finds the canary intact before it unpins.
func (c *concTest) pinner(g int, rng *rand.Rand) {
	lane := int64(concShared+2*g) * c.bs
	for !c.stop.Load() {
		k := rng.Intn(concKeys)
		f, err := c.s.Open(concKey(k))
		if err != nil {
			if !allowed(err) {
				c.failf("open: %v", err)
			}
			continue
		}
		off := lane + rng.Int63n(2*c.bs)
		n := 1 + rng.Int63n(lane+2*c.bs-off)
		broke := new(atomic.Bool)
		p, err := f.Pin(off, n, dax.PinOptions{Writable: true, Label: fmt.Sprintf("pinner%d", g), OnBreak: func() { broke.Store(true) }})
		f.Close()
		if err != nil {
			if !allowed(err) {
				c.failf("pin %s [%d,+%d): %v", concKey(k), off, n, err)
			}
			continue
		}
		var pos int64
		for _, b := range p.Bytes() {
			c.checkBytes("pin", k, off+pos, b)
			pos += int64(len(b))
		}
		canary := make([]byte, n)
		for i := range canary {
			canary[i] = keyByte(k, rng)
		}
		pos = 0
		for _, b := range p.Bytes() {
			copy(b, canary[pos:])
			pos += int64(len(b))
		}
		if rng.Intn(2) == 0 {
			if err := p.Flush(); err != nil {
				c.failf("flush pin: %v", err)
			}
		}
		// Hold the pin a while, so breaks land on it; the canary must
		// hold however long or short that turns out to be.
		time.Sleep(time.Duration(rng.Intn(2000)) * time.Microsecond)
		pos = 0
		for _, b := range p.Bytes() {
			for i, x := range b {
				if x != canary[pos+int64(i)] {
					c.failf("pin of %s [%d,+%d): canary byte %d changed from %#x to %#x while pinned (broken %v)",
						concKey(k), off, n, pos+int64(i), canary[pos+int64(i)], x, broke.Load())
					break
				}
			}
			pos += int64(len(b))
		}
		if broke.Load() {
			c.broken.Add(1)
		}
		if err := p.Unpin(); err != nil {
			c.failf("unpin: %v", err)
		}
		c.ops.Add(1)
	}
}

// breaker truncates, punches, zeroes, preallocates, puts and removes,
// with every break policy.
func (c *concTest) breaker(rng *rand.Rand) {
	size := int64(concBlocks) * c.bs
	for !c.stop.Load() {
		k := rng.Intn(concKeys)
		key := concKey(k)
		policy := []dax.BreakPolicy{dax.PolicyDefault, dax.PolicyDetach, dax.PolicyWait, dax.PolicyFail}[rng.Intn(4)]
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		bo := dax.BreakOptions{Policy: policy}
		var err error
		var what string
		switch r := rng.Intn(10); {
		case r < 2:
			what = "put"
			err = c.s.PutWith(ctx, key, c.fill(k, size-rng.Int63n(c.bs), rng), bo)
		case r < 3 && rng.Intn(2) == 0:
			what = "remove and put"
			if err = c.s.RemoveWith(ctx, key, bo); err == nil {
				err = c.s.Put(key, c.fill(k, size, rng))
			}
		case r < 3:
			what = "rename away and back"
			if err = c.s.Rename(key, key+".moving"); err == nil {
				err = c.s.Rename(key+".moving", key)
			}
		default:
			var f *dax.File
			if f, err = c.s.Open(key); err != nil {
				break
			}
			off, n := rng.Int63n(size), 1+rng.Int63n(4*c.bs)
			switch r {
			case 3, 4:
				what = "truncate and grow"
				if err = f.TruncateWith(ctx, rng.Int63n(size), bo); err == nil {
					err = f.Truncate(size)
				}
			case 5, 6:
				what = fmt.Sprintf("punch [%d,+%d)", off, n)
				err = f.PunchHoleWith(ctx, off, n, bo)
			case 7, 8:
				what = fmt.Sprintf("zero [%d,+%d)", off, n)
				err = f.ZeroRangeWith(ctx, off, n, bo)
			default:
				what = fmt.Sprintf("allocate [%d,+%d)", off, n)
				err = f.Allocate(off, min(n, size-off))
			}
			f.Close()
		}
		cancel()
		if !allowed(err) {
			c.failf("%s %s policy %v: %v", what, key, policy, err)
		}
		c.ops.Add(1)
		// Pacing, so the breaks leave the others room; no outcome
		// depends on it.
		time.Sleep(time.Duration(rng.Intn(500)) * time.Microsecond)
	}
}

// wholeKey holds only values written by Put, each uniform and as long as
// its byte says (wholeLen), so a reader can tell a torn value.
const wholeKey = "whole"

func wholeLen(b byte) int { return 100 + int(b)*37 }

func (c *concTest) putter(rng *rand.Rand) {
	for !c.stop.Load() {
		b := byte(1 + rng.Intn(255))
		if err := c.s.Put(wholeKey, bytes.Repeat([]byte{b}, wholeLen(b))); err != nil {
			c.failf("put %s: %v", wholeKey, err)
		}
		c.ops.Add(1)
		time.Sleep(time.Duration(rng.Intn(300)) * time.Microsecond) // pacing only
	}
}

// checkWhole fails unless v is one whole value of wholeKey.
func (c *concTest) checkWhole(what string, v []byte) {
	c.t.Helper()
	if len(v) == 0 || len(v) != wholeLen(v[0]) || bytes.Count(v, v[:1]) != len(v) {
		c.failf("%s of %s: %d bytes starting %#x is not one value of a Put", what, wholeKey, len(v), v[:min(1, len(v))])
	}
}

// wholeReader reads wholeKey by Get, by ReadAt through a handle kept across
// the Puts, and through pins, which must keep their value after a Put.
func (c *concTest) wholeReader(rng *rand.Rand) {
	f, err := c.s.Open(wholeKey)
	if err != nil {
		c.failf("open %s: %v", wholeKey, err)
		return
	}
	defer f.Close()
	buf := make([]byte, wholeLen(255)+10)
	for !c.stop.Load() {
		switch rng.Intn(3) {
		case 0:
			v, err := c.s.Get(wholeKey)
			if err != nil {
				c.failf("get %s: %v", wholeKey, err)
			}
			c.checkWhole("get", v)
		case 1:
			n, err := f.ReadAt(buf, 0)
			if err != io.EOF {
				c.failf("read %s: %v, want io.EOF", wholeKey, err)
			}
			c.checkWhole("read", buf[:n])
		default:
			p, err := f.Pin(0, 100, dax.PinOptions{Label: "whole"})
			if err != nil {
				c.failf("pin %s: %v", wholeKey, err)
				continue
			}
			first := bytes.Clone(p.Bytes()[0][:1])
			// Held a while so Puts land on it; the value must hold
			// however long that turns out to be.
			time.Sleep(time.Duration(rng.Intn(500)) * time.Microsecond)
			if got := bytes.Join(p.Bytes(), nil); bytes.Count(got, first) != 100 {
				c.failf("pin of %s changed while held: %x", wholeKey, got)
			}
			if err := p.Unpin(); err != nil {
				c.failf("unpin: %v", err)
			}
		}
		c.ops.Add(1)
	}
}

// inspector runs Check and the inspection calls while everything else runs.
func (c *concTest) inspector() {
	for !c.stop.Load() {
		if err := c.s.Check(); err != nil {
			c.failf("check under load: %v", err)
		}
		if _, err := c.s.Snapshot(); err != nil {
			c.failf("snapshot: %v", err)
		}
		if _, err := c.s.List(""); err != nil {
			c.failf("list: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // pacing: Check pauses everyone
	}
}

func TestConcurrency(t *testing.T) {
	seed := time.Now().UnixNano()
	d := 2 * time.Second
	if testing.Short() {
		d = 500 * time.Millisecond
	}
	for _, bs := range []int64{512, 4096} {
		t.Run(fmt.Sprintf("writers, readers, pins and breaks on shared keys with blocks of %d bytes never mix keys", bs), func(t *testing.T) {
			t.Logf("seed %d", seed)
			o := &dax.Options{Size: 4096 * bs, BlockSize: uint32(bs), NoAdminSocket: true}
			if bs == 512 {
				// Keep no idle file in memory: files leave memory and are
				// read back from the journal while the other goroutines
				// write, read, pin and break them.
				o.InodeCache = 1
			}
			s, err := dax.Open(t.TempDir(), o)
			if err != nil {
				t.Fatal(err)
			}
			c := &concTest{t: t, s: s, bs: bs, seed: seed}
			rngs := rand.New(rand.NewSource(seed))
			for k := range concKeys {
				if err := s.Put(concKey(k), c.fill(k, concBlocks*bs, rngs)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Put(wholeKey, bytes.Repeat([]byte{1}, wholeLen(1))); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			run := func(fn func(*rand.Rand)) {
				r := rand.New(rand.NewSource(rngs.Int63()))
				wg.Add(1)
				go func() { defer wg.Done(); fn(r) }()
			}
			for range 2 {
				run(c.writer)
				run(c.reader)
			}
			for g := range concPinners {
				run(func(r *rand.Rand) { c.pinner(g, r) })
			}
			run(c.breaker)
			run(c.putter)
			run(c.wholeReader)
			wg.Add(1)
			go func() { defer wg.Done(); c.inspector() }()
			// The workload's length. Only correctness is asserted, never
			// how many operations fit in it.
			time.Sleep(d)
			c.stop.Store(true)
			wg.Wait()
			t.Logf("%d operations, %d pins saw their blocks detached", c.ops.Load(), c.broken.Load())
			if t.Failed() {
				s.CloseWith(context.Background(), dax.CloseOptions{Force: true})
				return
			}
			c.finish()
		})
	}
}

// settlePatience bounds the polls that wait for released blocks to come
// back (the release is asynchronous). It only turns a lost release into a
// failure, so it allows for a heavily loaded machine.
const settlePatience = 5 * time.Minute

// finish proves the quiet state: Check passes, every busy block has come
// back, no block leaked, every key holds only its own bytes, and a Close
// that waits for a pin returns once the pin is released.
func (c *concTest) finish() {
	t, s := c.t, c.s
	if err := s.Check(); err != nil {
		t.Fatalf("check: %v", err)
	}
	var st dax.Stats
	deadline := time.Now().Add(settlePatience)
	for {
		var err error
		if st, err = s.Stats(); err != nil {
			t.Fatal(err)
		}
		if st.BusyBlocks == 0 && st.PendingRelease == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	infos, err := s.List("")
	if err != nil {
		t.Fatal(err)
	}
	var owned uint64
	for _, fi := range infos {
		owned += fi.Blocks
		v, err := s.Get(fi.Key)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Key == wholeKey {
			c.checkWhole("final get", v)
			continue
		}
		var k int
		if _, err := fmt.Sscanf(fi.Key, "k%d", &k); err != nil {
			t.Fatalf("unexpected key %q", fi.Key)
		}
		c.checkBytes("final get", k, 0, v)
	}
	if st.BusyBlocks != 0 || st.Pins != 0 || st.PinnedBlocks != 0 || st.FreeBlocks+st.UsedBlocks != st.DataBlocks || st.UsedBlocks != owned {
		t.Fatalf("after unpinning everything: %+v; files own %d blocks", st, owned)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("final check: %v", err)
	}
	f, err := s.Open(infos[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.Pin(0, 1, dax.PinOptions{Label: "last"})
	if err != nil {
		t.Fatal(err)
	}
	// While the pin is held, a waiting Close can only give up.
	short, cancelShort := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancelShort()
	if err := s.CloseWith(short, dax.CloseOptions{Wait: true}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close waiting for a held pin with a short deadline: %v, want DeadlineExceeded", err)
	}
	// Released before or during the next Close, the pin must let it
	// through; the deadline only turns a hang into a failure.
	unpinned := make(chan error, 1)
	go func() { unpinned <- p.Unpin() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := s.CloseWith(ctx, dax.CloseOptions{Wait: true}); err != nil {
		t.Fatalf("close waiting for the last pin: %v", err)
	}
	if err := <-unpinned; err != nil {
		t.Fatalf("unpin: %v", err)
	}
}

// TestCloseRacingPins proves that a Close that is not forced never
// invalidates a pin: a Pin in flight when Close looks at the pins either
// fails with ErrClosed or makes Close return ErrPinned, and a pin that Pin
// returned is released only by its own Unpin.
func TestCloseRacingPins(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 8
	}
	invalidated := 0
	for round := range rounds {
		s, err := dax.Open(t.TempDir(), &dax.Options{Size: 1 << 20, NoAdminSocket: true})
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.Create("k")
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(1 << 30); err != nil {
			t.Fatal(err)
		}
		var pinned atomic.Int64
		errs := make(chan error, 1)
		threePins := make(chan struct{})
		go func() {
			// Each Pin fills a hole, so it stays in flight for a journal
			// commit; each pin is held a little, as a holder would.
			for i := int64(0); i < 60; i++ {
				p, err := f.Pin(i*4096, 100, dax.PinOptions{Label: fmt.Sprintf("pin%d", i)})
				if err != nil {
					if !errors.Is(err, dax.ErrClosed) {
						err = fmt.Errorf("pin %d: %w", i, err)
					} else {
						err = nil
					}
					errs <- err
					return
				}
				if pinned.Add(1) == 3 {
					close(threePins)
				}
				// Held a little, as a holder would: the test passes in
				// any interleaving, this only varies them.
				time.Sleep(time.Millisecond)
				if err := p.Unpin(); err != nil {
					errs <- fmt.Errorf("round %d: pin %d was invalidated by a Close that was not forced: %w", round, i, err)
					return
				}
			}
			errs <- nil // Close may go through now
		}()
		select {
		case <-threePins:
		case err := <-errs:
			t.Fatalf("round %d: the pinner stopped before its third pin: %v", round, err)
		}
		for {
			err := s.Close()
			if err == nil {
				break
			}
			if !errors.Is(err, dax.ErrPinned) {
				t.Fatalf("close: %v", err)
			}
			// A backoff that varies the interleavings; not a synchronization.
			time.Sleep(time.Duration(round%7) * 30 * time.Microsecond)
		}
		if err := <-errs; err != nil {
			t.Error(err)
			invalidated++
		}
	}
	if invalidated > 0 {
		t.Fatalf("%d of %d rounds lost a pin to a Close that was not forced", invalidated, rounds)
	}
}

// TestAllocationWaitsForBusyBlocks proves the out-of-space protocol: an
// allocation that needs blocks a pin still holds waits for the release,
// bounded by Options.AllocWait, and when it gives up it says which pin
// holds the space and changes nothing.
func TestAllocationWaitsForBusyBlocks(t *testing.T) {
	const bs = 4096
	setup := func(t *testing.T, wait time.Duration) (*dax.Store, dax.Pin) {
		s, err := dax.Open(t.TempDir(), &dax.Options{Size: 16 * bs, BlockSize: bs, AllocWait: wait, NoAdminSocket: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.CloseWith(context.Background(), dax.CloseOptions{Force: true}) })
		if err := s.Put("a", bytes.Repeat([]byte{'a'}, 10*bs)); err != nil {
			t.Fatal(err)
		}
		f, err := s.Open("a")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		p, err := f.Pin(0, 10*bs, dax.PinOptions{Label: "slow holder"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Remove("a"); err != nil {
			t.Fatal(err)
		}
		if st, _ := s.Stats(); st.BusyBlocks != 10 || st.FreeBlocks != 5 {
			t.Fatalf("after removing a pinned key: %+v", st)
		}
		return s, p
	}
	t.Run("an allocation that needs busy blocks succeeds once the pin drops", func(t *testing.T) {
		// AllocWait only turns a lost wakeup into a failure: the pin
		// drops as soon as the allocation waits, however late that is.
		s, p := setup(t, 5*time.Minute)
		putDone := make(chan struct{})
		unpinned := make(chan error, 1)
		go func() {
			// The allocation counts its wait before it starts waiting.
			for {
				st, err := s.Stats()
				if err != nil {
					unpinned <- err
					return
				}
				if st.AllocWaits > 0 {
					break
				}
				select {
				case <-putDone:
					unpinned <- errors.New("the put returned without waiting")
					return
				case <-time.After(100 * time.Microsecond):
				}
			}
			unpinned <- p.Unpin()
		}()
		err := s.Put("b", bytes.Repeat([]byte{'b'}, 8*bs))
		close(putDone)
		if err != nil {
			t.Fatalf("put that needs the busy blocks: %v", err)
		}
		if err := <-unpinned; err != nil {
			t.Fatalf("unpin once the put waited: %v", err)
		}
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.AllocWaits == 0 {
			t.Fatal("no allocation waited: the put did not wait for the release")
		}
		if v, err := s.Get("b"); err != nil || !bytes.Equal(v, bytes.Repeat([]byte{'b'}, 8*bs)) {
			t.Fatalf("get after the wait: %v", err)
		}
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an allocation gives up after AllocWait, names the pin and changes nothing", func(t *testing.T) {
		s, p := setup(t, 100*time.Millisecond)
		start := time.Now()
		err := s.Put("b", bytes.Repeat([]byte{'b'}, 8*bs))
		if !errors.Is(err, dax.ErrNoSpace) || !strings.Contains(err.Error(), "slow holder") {
			t.Fatalf("put without space: %v, want ErrNoSpace naming the pin", err)
		}
		if took := time.Since(start); took < 90*time.Millisecond {
			t.Fatalf("gave up after %v, before AllocWait", took)
		}
		if _, err := s.Stat("b"); !errors.Is(err, dax.ErrNotFound) {
			t.Fatalf("stat after a failed put: %v", err)
		}
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
		if err := p.Unpin(); err != nil {
			t.Fatal(err)
		}
	})
}
