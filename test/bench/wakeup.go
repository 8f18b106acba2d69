package bench

// Release→wakeup latency: how long after the last Unpin of a detached block
// a goroutine waiting for that block's release (a punch under the Wait
// policy) is running again.

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/daxstore/daxstore/dax"
)

// Subjects of the wakeup figures.
const (
	subjWakeP50 = "release→wakeup p50"
	subjWakeP99 = "release→wakeup p99"
	subjWakeMax = "release→wakeup max"
)

// parkTime is how long the measurement lets the waiter sit after it
// registered as a waiter, so that it is asleep, not about to be, when the
// release comes.
const parkTime = 200 * time.Microsecond

func (r *runner) wakeup() (err error) {
	r.progress("release→wakeup latency")
	s, done, err := r.scratchStore("wakeup", 64<<20)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := done(); err == nil {
			err = cerr
		}
	}()
	bs := s.BlockSize()
	block := make([]byte, bs)
	fill(block, 9)
	f, err := s.Create("waited")
	if err != nil {
		return err
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	samples := make([]time.Duration, 0, r.cfg.Wakeups)
	for range r.cfg.Wakeups {
		if _, err := f.WriteAt(block, 0); err != nil {
			return err
		}
		p, err := f.Pin(0, bs, dax.PinOptions{Label: "bench"})
		if err != nil {
			return err
		}
		type woke struct {
			at  time.Time
			err error
		}
		done := make(chan woke, 1)
		go func() {
			err := f.PunchHoleWith(ctx, 0, bs, dax.BreakOptions{Policy: dax.PolicyWait})
			done <- woke{time.Now(), err}
		}()
		if err := waitForWaiter(ctx, s); err != nil {
			p.Unpin()
			<-done
			return err
		}
		time.Sleep(parkTime)
		t0 := time.Now()
		if err := p.Unpin(); err != nil {
			return err
		}
		w := <-done
		if w.err != nil {
			return fmt.Errorf("punch waiting for the release: %w", w.err)
		}
		samples = append(samples, w.at.Sub(t0))
	}
	slices.Sort(samples)
	note := fmt.Sprintf("%d samples: Unpin of the last pin of a punched block until PunchHole under the Wait policy returns", len(samples))
	r.add(Figure{Group: "wakeup", Subject: subjWakeP50, Role: roleDax, Value: us(percentile(samples, 50)), Unit: unitUs, Note: note})
	r.add(Figure{Group: "wakeup", Subject: subjWakeP99, Role: roleDax, Value: us(percentile(samples, 99)), Unit: unitUs})
	r.add(Figure{Group: "wakeup", Subject: subjWakeMax, Role: roleDax, Value: us(samples[len(samples)-1]), Unit: unitUs})
	return nil
}

// waitForWaiter returns once a goroutine waits for a release in s.
func waitForWaiter(ctx context.Context, s *dax.Store) error {
	for {
		st, err := s.Stats()
		if err != nil {
			return err
		}
		if st.Waiters > 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		runtime.Gosched()
	}
}
