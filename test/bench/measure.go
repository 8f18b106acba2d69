package bench

// Timing: a loop that runs an operation for a given time in growing
// batches, so that reading the clock costs nothing next to a 100 ns
// operation, and the parallel form of it.

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// result is what a timed loop measured.
type result struct {
	ops     int64
	elapsed time.Duration
}

func (r result) opsPerSec() float64 { return float64(r.ops) / r.elapsed.Seconds() }
func (r result) nsPerOp() float64   { return float64(r.elapsed.Nanoseconds()) / float64(r.ops) }

// timed calls op(0), op(1), ... for at least d and at least minOps calls,
// after a warm-up of warm calls, and returns how many calls it timed and
// how long they took. It stops at op's first error.
func timed(ctx context.Context, d time.Duration, warm, minOps int, op func(i int) error) (result, error) {
	i := 0
	for ; i < warm; i++ {
		if err := op(i); err != nil {
			return result{}, err
		}
	}
	var res result
	batch := 1
	for res.elapsed < d || res.ops < int64(minOps) {
		if err := ctx.Err(); err != nil {
			return result{}, err
		}
		start := time.Now()
		for j := 0; j < batch; j++ {
			if err := op(i); err != nil {
				return result{}, err
			}
			i++
		}
		el := time.Since(start)
		res.ops += int64(batch)
		res.elapsed += el
		// Aim for batches of a tenth of d, growing at most tenfold at a
		// time, as testing.B does.
		if el <= 0 {
			batch *= 10
		} else if target := int(int64(batch) * int64(d/10) / int64(el)); target > batch {
			batch = min(target, 10*batch)
		}
	}
	return res, nil
}

// parallel runs op on n goroutines at once for d and returns the calls
// made by all of them and the wall time. Goroutine g calls op(g, 0),
// op(g, 1), ...
func parallel(ctx context.Context, n int, d time.Duration, op func(g, i int) error) (result, error) {
	var (
		stop    atomic.Bool
		total   atomic.Int64
		start   sync.WaitGroup
		done    sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	start.Add(1)
	for g := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			var count int64
			for i := 0; !stop.Load(); i++ {
				// Read the flag once per 64 calls only: a shared load per
				// call would itself be a point of contention.
				for k := 0; k < 64; k++ {
					if err := op(g, i*64+k); err != nil {
						errOnce.Do(func() { first = err })
						stop.Store(true)
						break
					}
					count++
				}
			}
			total.Add(count)
		}()
	}
	t0 := time.Now()
	start.Done()
	timer := time.NewTimer(d)
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	timer.Stop()
	stop.Store(true)
	done.Wait()
	el := time.Since(t0)
	if first != nil {
		return result{}, first
	}
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	return result{ops: total.Load(), elapsed: el}, nil
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// median returns the median of samples, which it sorts.
func median(samples []time.Duration) time.Duration {
	slices.Sort(samples)
	return percentile(samples, 50)
}

// sink keeps the compiler from dropping reads whose result is unused.
var sink atomic.Uint64

// readAll reads every byte of b, eight bytes at a time and with eight
// independent sums so the loads overlap, the way a consumer of a zero-copy
// buffer (a checksum, a parser) would, and returns their sum so the reads
// cannot be optimised away.
func readAll(b []byte) uint64 {
	var s0, s1, s2, s3, s4, s5, s6, s7 uint64
	lines := len(b) / 64
	if lines > 0 {
		w := unsafe.Slice((*[8]uint64)(unsafe.Pointer(unsafe.SliceData(b))), lines)
		for i := range w {
			x := &w[i]
			s0 += x[0]
			s1 += x[1]
			s2 += x[2]
			s3 += x[3]
			s4 += x[4]
			s5 += x[5]
			s6 += x[6]
			s7 += x[7]
		}
	}
	rest := b[lines*64:]
	for len(rest) >= 8 {
		s0 += *(*uint64)(unsafe.Pointer(&rest[0]))
		rest = rest[8:]
	}
	for _, c := range rest {
		s1 += uint64(c)
	}
	return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7
}

// fill fills b with a pattern that depends on seed, so no two values of a
// run are alike and no system can compress or deduplicate them.
func fill(b []byte, seed uint64) {
	x := seed*0x9E3779B97F4A7C15 + 1
	for i := 0; i+8 <= len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		*(*uint64)(unsafe.Pointer(&b[i])) = x
	}
	for i := len(b) &^ 7; i < len(b); i++ {
		b[i] = byte(x >> (8 * (i & 7)))
	}
}

// sizeName names a byte count the way the report does: 4KiB, 1MiB, 1GiB.
func sizeName(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// procs is the number of goroutines the all-cores measurements run.
func procs() int { return runtime.GOMAXPROCS(0) }
