package bench

// Commits and readers: the latency of readers while a durable writer
// commits, and the throughput of concurrent durable Puts with the journal
// on disk against Pebble with sync writes. A commit applies under its
// locks and waits for its sync after releasing them (group commit), so a
// reader should never wait for an fsync and concurrent writers should
// share one.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/sys/unix"

	"github.com/daxstore/daxstore/dax"
)

// Subjects and goals of the commit part.
const (
	groupReaders = "readers"
	groupWriters = "writers"

	// readerGoalUs is the p99 a reader may reach with a durable writer
	// running, in µs.
	readerGoalUs = 20
	// commitValue is the value size of the commit part's Puts.
	commitValue = 4 << 10
)

// WriterCounts are the goroutine counts of the concurrent-Put figures.
var WriterCounts = []int{1, 2, 4, 8}

// defaultDiskPath returns the directory of the "journal on disk" figures:
// /var/tmp when it is a writable directory that is not tmpfs, else the
// system's temporary directory.
func defaultDiskPath() string {
	var st unix.Statfs_t
	if unix.Statfs("/var/tmp", &st) == nil && int64(st.Type) != unix.TMPFS_MAGIC && writable("/var/tmp") {
		return "/var/tmp"
	}
	return os.TempDir()
}

// commitAll measures reader latencies with a durable writer on the run's
// medium and with the journal on disk, then concurrent Puts with the
// journal on disk against Pebble.
func (r *runner) commitAll() error {
	diskDir, err := os.MkdirTemp(r.cfg.DiskPath, "daxstore-bench-disk-")
	if err != nil {
		return fmt.Errorf("disk path: %w", err)
	}
	defer os.RemoveAll(diskDir)
	media := []struct{ name, dir string }{
		{fmt.Sprintf("%s (%s)", r.cfg.Path, fsOf(r.cfg.Path)), r.dir},
		{fmt.Sprintf("journal on %s (%s)", r.cfg.DiskPath, fsOf(r.cfg.DiskPath)), diskDir},
	}
	for _, m := range media {
		if err := r.readersWithWriter(m.name, m.dir); err != nil {
			return fmt.Errorf("readers with a writer, %s: %w", m.name, err)
		}
	}
	for _, n := range WriterCounts {
		if err := r.concurrentPuts(diskDir, n); err != nil {
			return fmt.Errorf("%d concurrent Puts: %w", n, err)
		}
	}
	return nil
}

func fsOf(path string) string {
	var st unix.Statfs_t
	if unix.Statfs(path, &st) != nil {
		return "unknown"
	}
	return fsName(int64(st.Type))
}

// commitStore opens a fresh durable store whose journal lives under
// journalRoot and whose region lives on the run's medium (emulated
// persistent memory, as in every other figure).
func (r *runner) commitStore(journalRoot, name string) (*dax.Store, func() error, error) {
	dir, err := os.MkdirTemp(journalRoot, name+"-")
	if err != nil {
		return nil, nil, err
	}
	region, err := r.sub(name + "-region")
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	s, err := dax.Open(dir, &dax.Options{Size: 256 << 20, NoAdminSocket: true, RegionPath: filepath.Join(region, "region")})
	if err != nil {
		os.RemoveAll(dir)
		os.RemoveAll(region)
		return nil, nil, err
	}
	return s, func() error {
		defer os.RemoveAll(dir)
		defer os.RemoveAll(region)
		return s.Close()
	}, nil
}

// readersWithWriter samples the latency of Get, Stat, ReadAt and Pin+Unpin
// of one key while another goroutine Puts durably, in a loop, to another
// key and to that same key, and reports each p99.
func (r *runner) readersWithWriter(medium, journalRoot string) (err error) {
	s, done, err := r.commitStore(journalRoot, "readers")
	if err != nil {
		return err
	}
	defer func() {
		if cerr := done(); err == nil {
			err = cerr
		}
	}()
	vals := make([][]byte, 2)
	for i := range vals {
		vals[i] = make([]byte, commitValue)
		fill(vals[i], uint64(i)+77)
	}
	for _, k := range []string{"read", "write"} {
		if err := s.Put(k, vals[0]); err != nil {
			return err
		}
	}
	for _, target := range []struct{ key, what string }{{"read", "another key"}, {"write", "the key being Put"}} {
		f, err := s.Open(target.key)
		if err != nil {
			return err
		}
		buf := make([]byte, commitValue)
		ops := []struct {
			name string
			op   func() error
		}{
			{"Get", func() error { _, err := s.Get(target.key); return err }},
			{"Stat", func() error { _, err := s.Stat(target.key); return err }},
			{"ReadAt", func() error { _, err := f.ReadAt(buf, 0); return err }},
			{"Pin", func() error {
				p, err := f.Pin(0, commitValue, dax.PinOptions{})
				if err != nil {
					return err
				}
				return p.Unpin()
			}},
		}
		for _, o := range ops {
			r.progress(fmt.Sprintf("%s of %s with a durable writer, %s", o.name, target.what, medium))
			p50, p99, reads, puts, err := r.sampleWithWriter(func(i int) error { return s.Put("write", vals[i%2]) }, o.op)
			if err != nil {
				return fmt.Errorf("%s: %w", o.name, err)
			}
			r.add(Figure{
				Group: groupReaders, Subject: fmt.Sprintf("%s p99 of %s, durable writer, %s", o.name, target.what, medium),
				Role: roleDax, Value: float64(p99.Nanoseconds()) / 1e3, Unit: unitUs,
				Note: fmt.Sprintf("p50 %.2f µs; %d reads over %s while one goroutine made %d durable 4KiB Puts",
					float64(p50.Nanoseconds())/1e3, reads, r.cfg.Duration, puts),
			})
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// sampleWithWriter runs put in a loop on its own goroutine, and meanwhile
// calls read, one call after another, for the run's duration per figure,
// timing every call. It returns the reads' p50 and p99, how many reads it
// timed and how many Puts the writer made meanwhile.
func (r *runner) sampleWithWriter(put func(i int) error, read func() error) (p50, p99 time.Duration, reads, puts int64, err error) {
	var (
		stop   atomic.Bool
		made   atomic.Int64
		wg     sync.WaitGroup
		putErr error
	)
	started := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			if err := put(i); err != nil {
				putErr = err
				return
			}
			if i == 0 {
				close(started)
			}
			made.Add(1)
		}
	}()
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	select {
	case <-started:
	case <-r.ctx.Done():
		return 0, 0, 0, 0, r.ctx.Err()
	}
	var h latencyHistogram
	end := time.Now().Add(r.cfg.Duration)
	for t0 := time.Now(); t0.Before(end); {
		if h.n%1024 == 0 {
			if err := r.ctx.Err(); err != nil {
				return 0, 0, 0, 0, err
			}
		}
		if err := read(); err != nil {
			return 0, 0, 0, 0, err
		}
		t1 := time.Now()
		h.add(t1.Sub(t0))
		t0 = t1
	}
	puts = made.Load()
	stop.Store(true)
	wg.Wait()
	if putErr != nil {
		return 0, 0, 0, 0, fmt.Errorf("writer: %w", putErr)
	}
	return h.percentile(50), h.percentile(99), h.n, puts, nil
}

// latencyHistogram counts latencies in 10 ns buckets up to 1 ms, and keeps
// the longer ones, so a reader loop of millions of calls needs no sample
// buffer.
type latencyHistogram struct {
	buckets [100_000]int64
	over    []time.Duration
	n       int64
}

const histBucket = 10 * time.Nanosecond

func (h *latencyHistogram) add(d time.Duration) {
	h.n++
	if i := int(d / histBucket); i < len(h.buckets) {
		h.buckets[i]++
		return
	}
	h.over = append(h.over, d)
}

// percentile returns the p-th percentile (0 < p <= 100), to the bucket.
func (h *latencyHistogram) percentile(p float64) time.Duration {
	rank := int64(float64(h.n)*p/100 + 0.5)
	var seen int64
	for i, c := range h.buckets {
		if seen += c; seen >= rank && c > 0 {
			return time.Duration(i+1) * histBucket
		}
	}
	slices.Sort(h.over)
	return h.over[min(max(int(rank-seen)-1, 0), len(h.over)-1)]
}

// writerRounds is how many slices each system's time of a concurrent-Put
// figure is cut into. The two systems take turns, slice by slice, so that
// a disk whose speed drifts during the run (other work on the machine)
// weighs on both alike.
const writerRounds = 5

// concurrentPuts measures n goroutines each Putting 4 KiB values to keys
// of their own, durably, with the journal on disk: daxstore against Pebble
// with sync writes in the same directory tree, taking turns.
func (r *runner) concurrentPuts(diskDir string, n int) (err error) {
	val := make([]byte, commitValue)
	fill(val, uint64(n)+991)
	const keysPer = 64
	key := func(g, i int) string { return fmt.Sprintf("w%02d-%03d", g, i%keysPer) }

	r.progress(fmt.Sprintf("%d concurrent Puts, journal on disk", n))
	s, done, err := r.commitStore(diskDir, fmt.Sprintf("writers%d", n))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := done(); err == nil {
			err = cerr
		}
	}()
	pdir, err := os.MkdirTemp(diskDir, fmt.Sprintf("pebble%d-", n))
	if err != nil {
		return err
	}
	defer os.RemoveAll(pdir)
	db, err := openPebble(pdir)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	}()
	systems := []struct {
		name string
		op   func(g, i int) error
		res  result
	}{
		{"daxstore", func(g, i int) error { return s.Put(key(g, i), val) }, result{}},
		{"pebble", func(g, i int) error { return db.Set([]byte(key(g, i)), val, pebble.Sync) }, result{}},
	}
	for i := range systems {
		// Every key is written once first, so timed calls replace values.
		if err := warmEach(n, keysPer, systems[i].op); err != nil {
			return fmt.Errorf("%s: %w", systems[i].name, err)
		}
	}
	slice := max(r.cfg.Duration/writerRounds, time.Millisecond)
	for range writerRounds {
		for i := range systems {
			res, err := parallel(r.ctx, n, slice, systems[i].op)
			if err != nil {
				return fmt.Errorf("%s: %w", systems[i].name, err)
			}
			systems[i].res.ops += res.ops
			systems[i].res.elapsed += res.elapsed
		}
	}
	r.add(writersFigure(fmt.Sprintf("daxstore Put, journal on %s", r.cfg.DiskPath), roleDax, n, systems[0].res))
	r.add(writersFigure(fmt.Sprintf("pebble Set (sync), on %s", r.cfg.DiskPath), rolePeer, n, systems[1].res))
	return nil
}

func writersFigure(subject, role string, n int, res result) Figure {
	return Figure{
		Group: groupWriters, Subject: subject, Role: role, Size: commitValue, Threads: n,
		Value: res.opsPerSec(), Unit: unitOpsPerSec, HigherIsBetter: true,
		MBPerSec: res.opsPerSec() * commitValue / 1e6,
	}
}

// warmEach makes warm calls of op on each of n goroutines at once.
func warmEach(n, warm int, op func(g, i int) error) error {
	errs := make(chan error, n)
	for g := range n {
		go func() {
			for i := range warm {
				if err := op(g, i); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
