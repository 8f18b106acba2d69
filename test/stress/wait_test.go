package stress

// How a Wait-policy call is judged: a latency sample when it returns, an
// expected timeout while a pin over its range is held, a lost wakeup when
// every pin over its range dropped longer than the wake bound ago.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestWaitJudgement(t *testing.T) {
	const bound = 100 * time.Millisecond
	t0 := time.Now()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	for _, tc := range []struct {
		name     string
		unpinAt  []time.Duration // one pin each; <0: still held
		end      time.Duration   // when the call returned
		err      error
		lost     bool // judged a lost wakeup
		timeout  bool // judged an expected timeout
		samples  int
		latency  time.Duration
		violated bool
	}{
		{name: "a call that returns soon after the last unpin gives one latency sample",
			unpinAt: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}, end: 25 * time.Millisecond,
			samples: 1, latency: 5 * time.Millisecond},
		{name: "a call that returns long after the last unpin is a wake-latency violation",
			unpinAt: []time.Duration{10 * time.Millisecond}, end: 10*time.Millisecond + 2*bound,
			samples: 1, latency: 2 * bound, violated: true},
		{name: "a call that returns with no unpin during it gives no sample",
			unpinAt: []time.Duration{-1}, end: time.Millisecond},
		{name: "a timeout while a pin is still held is expected",
			unpinAt: []time.Duration{10 * time.Millisecond, -1}, end: 10 * bound, err: context.DeadlineExceeded, timeout: true},
		{name: "a timeout soon after the last unpin is expected",
			unpinAt: []time.Duration{10*bound - bound/2}, end: 10 * bound, err: context.DeadlineExceeded, timeout: true},
		{name: "a timeout long after every pin dropped is a lost wakeup",
			unpinAt: []time.Duration{10 * time.Millisecond}, end: 10 * bound, err: context.DeadlineExceeded, lost: true, violated: true},
		{name: "a call abandoned as overdue is a lost wakeup",
			unpinAt: []time.Duration{10 * time.Millisecond}, end: 3 * bound, err: fmt.Errorf("wait: %w", context.Canceled), lost: true, violated: true},
		{name: "a timeout with no pin over the range at all is a lost wakeup",
			end: 10 * bound, err: context.DeadlineExceeded, lost: true, violated: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &runner{c: Config{WakeBound: bound}.EnsureDefaults()}
			k := newKeyState(1, "k", 1)
			x := &task{r: r, ws: &workerState{w: Worker{Kind: KindPuncher}}}
			for _, u := range tc.unpinAt {
				rec := k.addPin(span{0, 4096}, t0.Add(-time.Millisecond), time.Hour)
				if u >= 0 {
					rec.unpinning.Store(at(u).UnixNano())
					rec.unpinned.Store(at(u).UnixNano())
				}
			}
			cause := error(nil)
			if errors.Is(tc.err, context.Canceled) {
				cause = errOverdue
			}
			err := x.judgeWait(k, span{0, 4096}, t0, at(tc.end), tc.err, cause)
			var wt *waitTimeoutError
			gotTimeout := errors.As(err, &wt)
			if gotTimeout != (tc.lost || tc.timeout) || (gotTimeout && wt.lost != tc.lost) {
				t.Fatalf("judgeWait = %v (timeout %v), want lost %v timeout %v", err, gotTimeout, tc.lost, tc.timeout)
			}
			if got := r.viol.count() > 0; got != tc.violated {
				t.Fatalf("violation recorded: %v, want %v (%v)", got, tc.violated, r.viol.first)
			}
			l := r.lat.summary()
			if l.Samples != tc.samples || (tc.samples > 0 && l.Max != tc.latency) {
				t.Fatalf("latency %+v, want %d samples of %v", l, tc.samples, tc.latency)
			}
		})
	}
}
