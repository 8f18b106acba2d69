package bench

// What counting for GET /metrics costs the hot paths: Pin+Unpin of one
// block and a 4 KiB ReadAt, on a store with metrics and on one with
// Options.NoMetrics, measured in interleaved rounds (on, off, off, on, ...)
// so that the machine's drift hits both alike; the figures are the medians.

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/daxstore/daxstore/dax"
)

// Subjects of the metrics-cost figures.
const (
	groupMetrics         = "metrics"
	subjMetricsPinOn     = "Pin+Unpin latency, metrics on"
	subjMetricsPinOff    = "Pin+Unpin latency, metrics off (NoMetrics)"
	subjMetricsReadOn    = "ReadAt 4KiB latency, metrics on"
	subjMetricsReadOff   = "ReadAt 4KiB latency, metrics off (NoMetrics)"
	metricsRounds        = 9
	metricsCostTarget    = 1.02 // at most 2% slower with metrics on
	metricsRoundFraction = 4    // each round runs Duration/metricsRoundFraction
)

// metricsCost measures the hot paths with and without metrics.
func (r *runner) metricsCost() (err error) {
	r.progress("metrics cost")
	type side struct {
		s          *dax.Store
		f          *dax.File
		pin, reads []float64 // ns per op, one per round
	}
	var sides [2]*side // 0: metrics on, 1: off
	for i := range sides {
		dir, err := r.sub(fmt.Sprintf("metrics%d", i))
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		s, err := dax.Open(dir, &dax.Options{Size: 16 << 20, NoAdminSocket: true, NoMetrics: i == 1})
		if err != nil {
			return err
		}
		defer func() {
			if cerr := s.Close(); err == nil {
				err = cerr
			}
		}()
		value := make([]byte, 64<<10)
		fill(value, 11)
		if err := s.Put("m", value); err != nil {
			return err
		}
		f, err := s.Open("m")
		if err != nil {
			return err
		}
		defer f.Close()
		sides[i] = &side{s: s, f: f}
	}
	bs := sides[0].s.BlockSize()
	buf := make([]byte, 4<<10)
	d := max(r.cfg.Duration/metricsRoundFraction, time.Millisecond)
	for round := range metricsRounds {
		for j := range sides {
			sd := sides[(round+j)%2] // alternate which side goes first
			runtime.GC()
			res, err := timed(r.ctx, d, 1000, 1000, func(int) error {
				p, err := sd.f.Pin(0, bs, dax.PinOptions{})
				if err != nil {
					return err
				}
				return p.Unpin()
			})
			if err != nil {
				return fmt.Errorf("metrics cost, pin: %w", err)
			}
			sd.pin = append(sd.pin, res.nsPerOp())
			res, err = timed(r.ctx, d, 1000, 1000, func(i int) error {
				_, err := sd.f.ReadAt(buf, int64(i%16)*int64(len(buf)))
				return err
			})
			if err != nil {
				return fmt.Errorf("metrics cost, read: %w", err)
			}
			sd.reads = append(sd.reads, res.nsPerOp())
		}
	}
	note := fmt.Sprintf("median of %d interleaved rounds", metricsRounds)
	on, off := sides[0], sides[1]
	r.add(Figure{Group: groupMetrics, Subject: subjMetricsPinOn, Role: roleDax, Value: medianOf(on.pin), Unit: unitNs, Count: metricsRounds, Note: note})
	r.add(Figure{Group: groupMetrics, Subject: subjMetricsPinOff, Role: roleDax, Value: medianOf(off.pin), Unit: unitNs, Count: metricsRounds, Note: note})
	r.add(Figure{Group: groupMetrics, Subject: subjMetricsReadOn, Role: roleDax, Value: medianOf(on.reads), Unit: unitNs, Count: metricsRounds, Note: note})
	r.add(Figure{Group: groupMetrics, Subject: subjMetricsReadOff, Role: roleDax, Value: medianOf(off.reads), Unit: unitNs, Count: metricsRounds, Note: note})
	return nil
}

// metricsTargets checks that counting for metrics costs the hot paths at
// most 2%.
func (rep *Report) metricsTargets() []Target {
	var out []Target
	for _, c := range []struct{ goal, on, off string }{
		{"Pin+Unpin with metrics ≤ 1.02x without (NoMetrics)", subjMetricsPinOn, subjMetricsPinOff},
		{"ReadAt 4KiB with metrics ≤ 1.02x without (NoMetrics)", subjMetricsReadOn, subjMetricsReadOff},
	} {
		on, off := rep.find(groupMetrics, c.on, 0), rep.find(groupMetrics, c.off, 0)
		if on == nil || off == nil || off.Value <= 0 {
			continue
		}
		v := on.Value / off.Value
		out = append(out, Target{Goal: c.goal, Value: v,
			Text: fmt.Sprintf("%.3fx (%.1f vs %.1f ns)", v, on.Value, off.Value), Met: v <= metricsCostTarget})
	}
	return out
}
