package dax

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daxstore/daxstore/internal/poll"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// scrape GETs /metrics from the admin socket of the store in dir and parses
// it with the Prometheus text parser.
func scrape(t *testing.T, dir string) map[string]*dto.MetricFamily {
	t.Helper()
	path := filepath.Join(dir, AdminSocketName)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://daxstore/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q, want the text format", ct)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return parseMetrics(t, body)
}

func parseMetrics(t *testing.T, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	var p expfmt.TextParser
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse metrics: %v\n%s", err, body)
	}
	return mfs
}

// metricValue returns the value of family name's sample whose labels
// include labels (name=value pairs); a histogram gives its sample count.
func metricValue(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	mf := mfs[name]
	if mf == nil {
		t.Fatalf("no metric family %s", name)
	}
	if mf.GetHelp() == "" {
		t.Errorf("%s has no HELP", name)
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no sample of %s with labels %v", name, labels)
	return 0
}

// TestMetricsEndpointMovesWithOperations scrapes GET /metrics on a live
// store's admin socket, parses it with the Prometheus text parser, and
// checks that every documented family is there and that operations move
// the figures they should: a put bumps the put counter and bytes written,
// a pin shows in pins outstanding, a punch over a pin shows busy blocks and
// an extent, an unpin releases them.
func TestMetricsEndpointMovesWithOperations(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{Size: 64 * testBS})
	if err != nil {
		t.Fatal(err)
	}
	defer closeForce(s)

	m0 := scrape(t, dir)
	for _, name := range []string{
		"daxstore_operations_total", "daxstore_operation_errors_total", "daxstore_read_bytes_total",
		"daxstore_written_bytes_total", "daxstore_journal_commit_seconds", "daxstore_pins",
		"daxstore_oldest_pin_age_seconds", "daxstore_pinned_blocks", "daxstore_busy_extents",
		"daxstore_space_waiters", "daxstore_alloc_waits_total", "daxstore_alloc_wait_seconds_total",
		"daxstore_release_wakeup_seconds", "daxstore_blocks", "daxstore_block_size_bytes",
		"daxstore_flush_method", "daxstore_files", "daxstore_windows", "daxstore_journal_commits_total",
		"daxstore_released_blocks_total", "daxstore_detached_blocks_total",
	} {
		if mfs := m0[name]; mfs == nil {
			if name == "daxstore_release_wakeup_seconds" || name == "daxstore_journal_commit_seconds" {
				continue // histograms without observations may be left out; checked below
			}
			t.Errorf("no metric family %s", name)
		}
	}
	st, _ := s.Stats()
	if got := metricValue(t, m0, "daxstore_flush_method", "method", st.FlushMethod); got != 1 {
		t.Errorf("flush method %q: %v, want 1", st.FlushMethod, got)
	}
	if got := metricValue(t, m0, "daxstore_blocks", "state", "free"); got != float64(st.FreeBlocks) {
		t.Errorf("free blocks %v, want %d", got, st.FreeBlocks)
	}

	val := bytes.Repeat([]byte("v"), 3*testBS)
	if err := s.Put("k", val); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	m1 := scrape(t, dir)
	if d := metricValue(t, m1, "daxstore_operations_total", "op", "put") - metricValue(t, m0, "daxstore_operations_total", "op", "put"); d != 1 {
		t.Errorf("put counter moved by %v, want 1", d)
	}
	if d := metricValue(t, m1, "daxstore_written_bytes_total") - metricValue(t, m0, "daxstore_written_bytes_total"); d != float64(len(val)) {
		t.Errorf("bytes written moved by %v, want %d", d, len(val))
	}
	if got := metricValue(t, m1, "daxstore_operation_errors_total", "op", "get"); got != 1 {
		t.Errorf("get errors %v, want 1", got)
	}
	if got := metricValue(t, m1, "daxstore_journal_commit_seconds", "sync", "true"); got < 1 {
		t.Errorf("commit latency histogram has %v samples after a put, want at least 1", got)
	}
	if got := metricValue(t, m1, "daxstore_files"); got != 1 {
		t.Errorf("files %v, want 1", got)
	}

	f, err := s.Open("k")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, testBS)
	if _, err := f.ReadAt(buf, testBS); err != nil {
		t.Fatal(err)
	}
	p, err := f.Pin(0, testBS, PinOptions{Label: "metrics"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.PunchHole(0, testBS); err != nil {
		t.Fatal(err)
	}
	m2 := scrape(t, dir)
	if d := metricValue(t, m2, "daxstore_read_bytes_total") - metricValue(t, m1, "daxstore_read_bytes_total"); d != testBS {
		t.Errorf("bytes read moved by %v, want %d", d, testBS)
	}
	if got := metricValue(t, m2, "daxstore_operations_total", "op", "read"); got != 1 {
		t.Errorf("read counter %v, want 1", got)
	}
	if got := metricValue(t, m2, "daxstore_pins"); got != 1 {
		t.Errorf("pins outstanding %v, want 1", got)
	}
	if got := metricValue(t, m2, "daxstore_operations_total", "op", "pin"); got != 1 {
		t.Errorf("pin counter %v, want 1", got)
	}
	if got := metricValue(t, m2, "daxstore_oldest_pin_age_seconds"); got <= 0 {
		t.Errorf("oldest pin age %v, want > 0", got)
	}
	if got := metricValue(t, m2, "daxstore_blocks", "state", "busy"); got != 1 {
		t.Errorf("busy blocks %v after a punch over a pin, want 1", got)
	}
	if got := metricValue(t, m2, "daxstore_busy_extents"); got != 1 {
		t.Errorf("busy extents %v after a punch over a pin, want 1", got)
	}
	if got := metricValue(t, m2, "daxstore_operations_total", "op", "punch"); got != 1 {
		t.Errorf("punch counter %v, want 1", got)
	}

	if err := p.Unpin(); err != nil {
		t.Fatal(err)
	}
	if err := p.Unpin(); !errors.Is(err, ErrUnpinned) {
		t.Fatalf("second unpin: %v", err)
	}
	settle(t, s)
	m3 := scrape(t, dir)
	if got := metricValue(t, m3, "daxstore_pins"); got != 0 {
		t.Errorf("pins outstanding %v after unpin, want 0", got)
	}
	if got := metricValue(t, m3, "daxstore_operations_total", "op", "unpin"); got != 1 {
		t.Errorf("unpin counter %v, want 1", got)
	}
	if got := metricValue(t, m3, "daxstore_operation_errors_total", "op", "unpin"); got != 1 {
		t.Errorf("unpin errors %v, want 1", got)
	}
	if got := metricValue(t, m3, "daxstore_blocks", "state", "busy"); got != 0 {
		t.Errorf("busy blocks %v after the last unpin, want 0", got)
	}
	if got := metricValue(t, m3, "daxstore_released_blocks_total"); got != 1 {
		t.Errorf("released blocks %v, want 1", got)
	}
	if got := metricValue(t, m3, "daxstore_oldest_pin_age_seconds"); got != 0 {
		t.Errorf("oldest pin age %v with no pin, want 0", got)
	}
}

// TestNoMetricsCountsNothing checks that Options.NoMetrics turns the added
// counting off while the figures the store keeps anyway are still served,
// and that WriteMetrics gives what the parser reads.
func TestNoMetricsCountsNothing(t *testing.T) {
	for _, off := range []bool{false, true} {
		s := newStore(t, 64*testBS, func(o *Options) { o.NoMetrics = off })
		if err := s.Put("k", []byte("value")); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := s.WriteMetrics(&buf); err != nil {
			t.Fatal(err)
		}
		mfs := parseMetrics(t, buf.Bytes())
		want := 1.0
		if off {
			want = 0
		}
		if got := metricValue(t, mfs, "daxstore_operations_total", "op", "put"); got != want {
			t.Errorf("NoMetrics=%v: put counter %v, want %v", off, got, want)
		}
		if got := metricValue(t, mfs, "daxstore_files"); got != 1 {
			t.Errorf("NoMetrics=%v: files %v, want 1", off, got)
		}
	}
}

// TestMetricsWithoutHolderOpensReadOnly checks Metrics on a store nobody
// holds: it opens the store read-only and reports its space, and the
// store is left as it was.
func TestMetricsWithoutHolderOpensReadOnly(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{Size: 64 * testBS})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("k", bytes.Repeat([]byte("x"), 2*testBS)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	live, err := Metrics(context.Background(), dir, &buf)
	if err != nil || live {
		t.Fatalf("Metrics: live %v, %v", live, err)
	}
	mfs := parseMetrics(t, buf.Bytes())
	if got := metricValue(t, mfs, "daxstore_blocks", "state", "used"); got != 2 {
		t.Errorf("used blocks %v, want 2", got)
	}
	if _, err := Metrics(context.Background(), t.TempDir(), io.Discard); !errors.Is(err, ErrNoStore) {
		t.Errorf("Metrics of an empty directory: %v, want ErrNoStore", err)
	}
}

// TestMetricsOfAnAllocationThatWaitedForAPin fills the region, has a put
// wait for blocks a pin holds, and unpins: the space waiter shows while it
// waits, and afterwards the allocation wait, its duration and the
// release-to-wakeup latency are counted.
func TestMetricsOfAnAllocationThatWaitedForAPin(t *testing.T) {
	s, p := fullStore(t, time.Minute)
	gather := func() map[string]*dto.MetricFamily {
		var buf bytes.Buffer
		if err := s.WriteMetrics(&buf); err != nil {
			t.Fatal(err)
		}
		return parseMetrics(t, buf.Bytes())
	}
	done := make(chan error, 1)
	go func() { done <- s.Put("new", pattern(3, 4*testBS)) }()
	poll.Until(t, "the put to wait for space", func() bool {
		return metricValue(t, gather(), "daxstore_space_waiters") > 0
	})
	if err := p.Unpin(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("put after unpin: %v", err)
		}
	case <-time.After(poll.Bound):
		t.Fatalf("the put is still waiting %v after the unpin", poll.Bound)
	}
	mfs := gather()
	if got := metricValue(t, mfs, "daxstore_alloc_waits_total"); got != 1 {
		t.Errorf("alloc waits %v, want 1", got)
	}
	if got := metricValue(t, mfs, "daxstore_alloc_wait_seconds_total"); got <= 0 {
		t.Errorf("alloc wait time %v, want > 0", got)
	}
	if got := metricValue(t, mfs, "daxstore_release_wakeup_seconds"); got < 1 {
		t.Errorf("release-to-wakeup histogram has %v samples, want at least 1", got)
	}
	if got := metricValue(t, mfs, "daxstore_space_waiters"); got != 0 {
		t.Errorf("space waiters %v after the wait, want 0", got)
	}
}

// Reads are counted in their file's inode (no atomic on the read path) and
// move to the store's totals when the inode leaves memory: by eviction
// from the inode cache, by Remove, or by a rename over it. No read may be
// lost or counted twice on the way, and the counters never go back.
func TestReadCountsSurviveInodesLeavingMemory(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{Size: 256 * testBS, InodeCache: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer closeForce(s)
	val := bytes.Repeat([]byte{7}, 100)
	var wantReads, wantBytes float64
	prevReads := -1.0
	readAll := func(key string, times int) {
		t.Helper()
		f, err := s.Open(key)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		for i := 0; i < times; i++ {
			if _, err := f.ReadAt(buf, 10); err != nil {
				t.Fatal(err)
			}
		}
		// One read past the end: counted, no bytes.
		if _, err := f.ReadAt(buf, 1000); err != io.EOF {
			t.Fatalf("read past the end: %v, want io.EOF", err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		wantReads += float64(times + 1)
		wantBytes += float64(64 * times)
	}
	check := func(when string) {
		t.Helper()
		m := scrape(t, dir)
		reads := metricValue(t, m, "daxstore_operations_total", "op", "read")
		if reads != wantReads {
			t.Errorf("%s: read counter %v, want %v", when, reads, wantReads)
		}
		if got := metricValue(t, m, "daxstore_read_bytes_total"); got != wantBytes {
			t.Errorf("%s: bytes read %v, want %v", when, got, wantBytes)
		}
		if reads < prevReads {
			t.Errorf("%s: read counter went back from %v to %v", when, prevReads, reads)
		}
		prevReads = reads
	}
	// Blocks, not inline values, and inline ones: both paths count.
	for i := 0; i < 8; i++ {
		if err := s.PutWith(context.Background(), fmt.Sprintf("k%d", i), val, BreakOptions{}); err != nil {
			t.Fatal(err)
		}
		readAll(fmt.Sprintf("k%d", i), i+1)
		check(fmt.Sprintf("after reading k%d", i))
	}
	// Eight files through a cache of two: most were evicted meanwhile.
	if err := s.Remove("k7"); err != nil {
		t.Fatal(err)
	}
	check("after Remove")
	readAll("k6", 3)
	if err := s.RenameWith(context.Background(), "k5", "k6", RenameOptions{Replace: true}); err != nil {
		t.Fatal(err)
	}
	check("after a rename replaced a file that was read")
	// A Get of a sparse file reads through the same path but is a get,
	// not a read; its bytes count as read bytes, once.
	f, err := s.Create("sparse")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("x"), 3*testBS); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := s.Get("sparse"); err != nil {
		t.Fatal(err)
	}
	wantBytes += 3*testBS + 1
	check("after a Get of a sparse file")
}
