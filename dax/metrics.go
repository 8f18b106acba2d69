package dax

// Metrics: GET /metrics on the admin socket serves the store's figures in
// the Prometheus text exposition format, from a registry private to the
// store (a host's own default registry is never touched).
//
// Most figures are read at scrape time from what the store keeps anyway
// (Stats, the pin registry's shard sequence numbers, the busy set). The
// few counters the store did not keep are added on the paths below with
// atomics spread over shards chosen by the calling goroutine's stack, so
// that goroutines on different CPUs rarely share a cache line; pins and
// unpins cost nothing extra, since their counts are the pin registry's own.
// Options.NoMetrics turns the added counting off (the endpoint then serves
// the scrape-time figures only).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

// opKind names an operation counted by daxstore_operations_total.
type opKind uint8

const (
	opPut opKind = iota
	opGet
	opRead
	opWrite
	opPin
	opUnpin
	opTruncate
	opPunch
	opZero
	opRemove
	opRename
	opAllocate
	opMap
	numOps
)

var opNames = [numOps]string{"put", "get", "read", "write", "pin", "unpin", "truncate", "punch", "zero", "remove", "rename", "allocate", "map"}

// metricShards spreads the hot counters; a power of two.
const metricShards = 16

// opShard is one shard of the counters, alone on its cache lines.
type opShard struct {
	ops     [numOps]atomic.Uint64
	errs    [numOps]atomic.Uint64
	read    atomic.Uint64 // bytes read
	written atomic.Uint64 // bytes written
	_       [64]byte
}

// metrics is a store's counters and its private registry.
type metrics struct {
	off    bool // Options.NoMetrics: count nothing on the operation paths
	shards [metricShards]opShard

	// foldedReads and foldedReadBytes hold the ReadAt counts of inodes
	// that left memory; resident inodes keep their own (inode.reads).
	foldedReads, foldedReadBytes atomic.Uint64

	allocWaitNanos atomic.Int64 // total time allocations waited for space
	lastRelease    atomic.Int64 // when detached blocks last lost their last reference (ns since epoch)

	commitLatency *prometheus.HistogramVec // labeled by sync
	wakeLatency   prometheus.Histogram

	reg     *prometheus.Registry
	handler http.Handler
}

// newMetrics builds s's metrics and registers them in a new registry.
func newMetrics(s *Store) *metrics {
	m := &metrics{off: s.opts.NoMetrics, reg: prometheus.NewRegistry()}
	m.commitLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "daxstore_journal_commit_seconds",
		Help:    "Time from applying a journal batch to its being durable (sync=\"true\"), or to its being written for batches that are not synced (sync=\"false\": block releases, NoSync stores).",
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12), // 1µs to ~4s
	}, []string{"sync"})
	m.wakeLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "daxstore_release_wakeup_seconds",
		Help:    "Time from the last release of detached (busy) blocks to the wakeup of an allocation that was waiting for space.",
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12),
	})
	m.reg.MustRegister(m.commitLatency, m.wakeLatency, &storeCollector{s: s, m: m})
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return m
}

// shard returns the calling goroutine's shard: goroutine stacks are
// distinct memory, so the address of a local differs between goroutines
// and stays put within one (unless its stack grows, which only moves it).
func (m *metrics) shard() *opShard {
	var x byte
	return &m.shards[(uintptr(unsafe.Pointer(&x))>>13)&(metricShards-1)]
}

// done counts an operation of kind k that ended with err.
func (m *metrics) done(k opKind, err error) {
	if m == nil || m.off {
		return
	}
	sh := m.shard()
	sh.ops[k].Add(1)
	if err != nil {
		sh.errs[k].Add(1)
	}
}

// isOff reports whether counting is off (Options.NoMetrics, or no metrics).
func (m *metrics) isOff() bool { return m == nil || m.off }

// foldReads moves the read counts of in, which is leaving memory, into the
// store's totals. The caller holds in's extent-map lock, and the namespace
// lock exclusive, so a scrape (which sums resident inodes and the totals
// under the namespace lock shared) sees each read exactly once.
func (m *metrics) foldReads(in *inode) {
	if m == nil {
		return
	}
	m.foldedReads.Add(in.reads)
	m.foldedReadBytes.Add(in.readBytes)
	in.reads, in.readBytes = 0, 0
}

// residentReads sums the read counts of the inodes in memory and those
// folded from inodes that left it.
func (s *Store) residentReads() (reads, bytes uint64) {
	s.nsMu.RLock()
	defer s.nsMu.RUnlock()
	reads, bytes = s.met.foldedReads.Load(), s.met.foldedReadBytes.Load()
	for _, in := range s.names {
		in.mapMu.Lock()
		reads += in.reads
		bytes += in.readBytes
		in.mapMu.Unlock()
	}
	return reads, bytes
}

// failed counts a failed operation whose success the caller counts
// elsewhere (pins and unpins: see storeCollector).
func (m *metrics) failed(k opKind) {
	if m == nil || m.off {
		return
	}
	m.shard().errs[k].Add(1)
}

// readBytes counts a read of kind k (read or get) that moved n bytes.
func (m *metrics) readBytes(k opKind, n int, err error) {
	if m == nil || m.off {
		return
	}
	sh := m.shard()
	sh.ops[k].Add(1)
	if n > 0 {
		sh.read.Add(uint64(n))
	}
	if err != nil {
		sh.errs[k].Add(1)
	}
}

// wroteBytes counts a write of kind k (write or put) that stored n bytes.
func (m *metrics) wroteBytes(k opKind, n int, err error) {
	if m == nil || m.off {
		return
	}
	sh := m.shard()
	sh.ops[k].Add(1)
	if err != nil {
		sh.errs[k].Add(1)
		return
	}
	sh.written.Add(uint64(n))
}

// commitDone observes a journal commit that began at start.
func (m *metrics) commitDone(start time.Time, synced bool) {
	if m == nil || m.off || start.IsZero() {
		return
	}
	l := "false"
	if synced {
		l = "true"
	}
	m.commitLatency.WithLabelValues(l).Observe(time.Since(start).Seconds())
}

// now is time.Now when counting, the zero time otherwise (commitDone then
// ignores it), so that NoMetrics also saves the clock reads.
func (m *metrics) now() time.Time {
	if m == nil || m.off {
		return time.Time{}
	}
	return time.Now()
}

// released notes that detached blocks just lost their last reference.
func (m *metrics) released(epoch time.Time) {
	if m == nil || m.off {
		return
	}
	m.lastRelease.Store(int64(time.Since(epoch)))
}

// woke observes an allocation woken at now (since epoch) after waiting
// since waitStart (since epoch) for space; a release before the wait began
// did not wake it and is not observed.
func (m *metrics) woke(epoch time.Time, waitStart time.Duration) {
	if m == nil || m.off {
		return
	}
	now, rel := time.Since(epoch), time.Duration(m.lastRelease.Load())
	if rel >= waitStart && now >= rel {
		m.wakeLatency.Observe((now - rel).Seconds())
	}
}

// waited adds the duration of one allocation's wait for space.
func (m *metrics) waited(d time.Duration) {
	if m == nil || m.off {
		return
	}
	m.allocWaitNanos.Add(int64(d))
}

// storeCollector reads the store's figures at scrape time.
type storeCollector struct {
	s *Store
	m *metrics
}

var (
	descOps = prometheus.NewDesc("daxstore_operations_total",
		"Operations by kind since Open, failed ones included (except pin and unpin, which count pins taken and let go, by Unpin or a forced Close, pinned windows included; their failures count in daxstore_operation_errors_total only).", []string{"op"}, nil)
	descErrs = prometheus.NewDesc("daxstore_operation_errors_total",
		"Operations by kind that returned an error since Open (ErrNotFound included).", []string{"op"}, nil)
	descRead = prometheus.NewDesc("daxstore_read_bytes_total",
		"Bytes returned by ReadAt, Get and AppendGet since Open.", nil, nil)
	descWritten = prometheus.NewDesc("daxstore_written_bytes_total",
		"Bytes stored by WriteAt and Put since Open.", nil, nil)
	descPins = prometheus.NewDesc("daxstore_pins",
		"Pins outstanding now, pinned windows included.", nil, nil)
	descPinAge = prometheus.NewDesc("daxstore_oldest_pin_age_seconds",
		"Age of the oldest outstanding pin (0 when none).", nil, nil)
	descPinned = prometheus.NewDesc("daxstore_pinned_blocks",
		"Blocks that at least one pin or window references now.", nil, nil)
	descBusyExtents = prometheus.NewDesc("daxstore_busy_extents",
		"Busy extents now: runs of blocks detached from files while pinned, waiting for their last pin.", nil, nil)
	descBlocks = prometheus.NewDesc("daxstore_blocks",
		"Data blocks by state: free, used (by files or operations in flight) and busy (detached, waiting for their last pin).", []string{"state"}, nil)
	descBlockSize = prometheus.NewDesc("daxstore_block_size_bytes",
		"The store's block size.", nil, nil)
	descWaiters = prometheus.NewDesc("daxstore_space_waiters",
		"Goroutines waiting now for busy blocks to be released or for blocks to become idle.", nil, nil)
	descAllocWaits = prometheus.NewDesc("daxstore_alloc_waits_total",
		"Allocations that waited for busy blocks to come back since Open.", nil, nil)
	descAllocWaitSecs = prometheus.NewDesc("daxstore_alloc_wait_seconds_total",
		"Total time allocations spent waiting for space since Open.", nil, nil)
	descCommits = prometheus.NewDesc("daxstore_journal_commits_total",
		"Journal batches of operations since Open.", nil, nil)
	descReleased = prometheus.NewDesc("daxstore_released_blocks_total",
		"Busy blocks given back to free space after their last pin since Open.", nil, nil)
	descDetached = prometheus.NewDesc("daxstore_detached_blocks_total",
		"Blocks moved from files to busy because pins referenced them, since Open.", nil, nil)
	descFiles = prometheus.NewDesc("daxstore_files",
		"Files in the store.", nil, nil)
	descWindows = prometheus.NewDesc("daxstore_windows",
		"Open windows (File.Map).", nil, nil)
	descFlush = prometheus.NewDesc("daxstore_flush_method",
		"How stores to the region are made durable: 1 for the method in use (clwb, clflushopt, clflush, msync, emulated, none (memory)).", []string{"method"}, nil)
)

// Describe sends every metric's description.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOps, descErrs, descRead, descWritten, descPins, descPinAge, descPinned,
		descBusyExtents, descBlocks, descBlockSize, descWaiters, descAllocWaits, descAllocWaitSecs, descCommits,
		descReleased, descDetached, descFiles, descWindows, descFlush} {
		ch <- d
	}
}

// Collect reads the figures. A store closed meanwhile yields the counters
// only (Stats fails, and the handler reports nothing it cannot read).
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	s, m := c.s, c.m
	var ops, errs [numOps]uint64
	var read, written uint64
	for i := range m.shards {
		sh := &m.shards[i]
		for k := range numOps {
			ops[k] += sh.ops[k].Load()
			errs[k] += sh.errs[k].Load()
		}
		read += sh.read.Load()
		written += sh.written.Load()
	}
	// Successful reads (and reads that faulted: their error is counted
	// apart) are counted in their inodes; see readLocked.
	r, rb := s.residentReads()
	ops[opRead] += r
	read += rb
	// Pins and unpins are the registry's: every pin takes a sequence
	// number of its shard, and every pin not outstanding was let go.
	var taken uint64
	var oldest time.Duration = -1
	for i := range s.pins.shards {
		sh := &s.pins.shards[i]
		sh.mu.Lock()
		taken += sh.seq
		for p := sh.head; p != nil; p = p.next {
			if oldest < 0 || p.age < oldest {
				oldest = p.age
			}
		}
		sh.mu.Unlock()
	}
	outstanding := uint64(s.pins.len())
	ops[opPin] += taken
	ops[opUnpin] += taken - min(taken, outstanding)
	for k := range numOps {
		ch <- prometheus.MustNewConstMetric(descOps, prometheus.CounterValue, float64(ops[k]), opNames[k])
		ch <- prometheus.MustNewConstMetric(descErrs, prometheus.CounterValue, float64(errs[k]), opNames[k])
	}
	ch <- prometheus.MustNewConstMetric(descRead, prometheus.CounterValue, float64(read))
	ch <- prometheus.MustNewConstMetric(descWritten, prometheus.CounterValue, float64(written))
	ch <- prometheus.MustNewConstMetric(descAllocWaitSecs, prometheus.CounterValue, time.Duration(m.allocWaitNanos.Load()).Seconds())
	age := 0.0
	if oldest >= 0 {
		age = max(0, (s.pinAge() - oldest).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(descPinAge, prometheus.GaugeValue, age)

	st, err := s.Stats()
	if err != nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(descPins, float64(st.Pins))
	gauge(descPinned, float64(st.PinnedBlocks))
	gauge(descBusyExtents, float64(s.busy.Len()))
	gauge(descBlocks, float64(st.FreeBlocks), "free")
	gauge(descBlocks, float64(st.UsedBlocks), "used")
	gauge(descBlocks, float64(st.BusyBlocks), "busy")
	gauge(descBlockSize, float64(st.BlockSize))
	gauge(descWaiters, float64(st.Waiters))
	gauge(descFiles, float64(st.Files))
	gauge(descWindows, float64(st.Windows))
	gauge(descFlush, 1, st.FlushMethod)
	counter(descAllocWaits, st.AllocWaits)
	counter(descCommits, st.Commits)
	counter(descReleased, st.Released)
	counter(descDetached, st.Detached)
}

// putCounter counts the bytes PutReader reads, for
// daxstore_written_bytes_total.
type putCounter struct {
	r io.Reader
	n int64
}

func (c *putCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// WriteMetrics writes the store's metrics to w in the Prometheus text
// exposition format (version 0.0.4), as GET /metrics on the admin socket
// serves them.
func (s *Store) WriteMetrics(w io.Writer) error {
	mfs, err := s.met.reg.Gather()
	if err != nil {
		return fmt.Errorf("daxstore: metrics: %w", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.FmtText)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("daxstore: metrics: %w", err)
		}
	}
	return nil
}

// Metrics writes the metrics of the store in dir to w in the Prometheus
// text exposition format. When another process holds the store it asks
// that process over its admin socket (live, with every counter since that
// process opened the store); otherwise it opens the store read-only and
// writes what a store just opened shows (space, files, busy extents; the
// counters are zero). It returns the figures' origin: live is true when
// they came from the holder.
func Metrics(ctx context.Context, dir string, w io.Writer) (live bool, err error) {
	body, serr := queryMetrics(ctx, dir)
	if serr == nil {
		defer body.Close()
		if _, err := io.Copy(w, body); err != nil {
			return true, fmt.Errorf("daxstore: metrics: admin socket: %w", err)
		}
		return true, nil
	}
	if !errors.Is(serr, errNoSocket) {
		return false, fmt.Errorf("daxstore: metrics: %w", serr)
	}
	s, err := Open(dir, &Options{ReadOnly: true, MustExist: true, NoAdminSocket: true})
	if err != nil {
		return false, err
	}
	werr := s.WriteMetrics(w)
	if cerr := s.Close(); werr == nil && cerr != nil {
		werr = cerr
	}
	return false, werr
}

// queryMetrics asks the process serving dir's admin socket for its
// metrics; an unreachable socket wraps errNoSocket.
func queryMetrics(ctx context.Context, dir string) (io.ReadCloser, error) {
	path := filepath.Join(dir, AdminSocketName)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	client := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://daxstore/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("%w: %v", errNoSocket, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("admin socket: %s", resp.Status)
	}
	return &closeTransport{resp.Body, tr}, nil
}

// closeTransport closes the transport's idle connection with the body.
type closeTransport struct {
	io.ReadCloser
	tr *http.Transport
}

func (c *closeTransport) Close() error {
	err := c.ReadCloser.Close()
	c.tr.CloseIdleConnections()
	return err
}
