package main

import (
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// parseExposition parses `daxstore metrics` output with the Prometheus
// text parser.
func parseExposition(t *testing.T, out string) map[string]*dto.MetricFamily {
	t.Helper()
	var p expfmt.TextParser
	mfs, err := p.TextToMetricFamilies(strings.NewReader(out))
	if err != nil {
		t.Fatalf("parse metrics: %v\n%s", err, out)
	}
	return mfs
}

// sample returns the value of the counter or gauge sample of family name
// whose labels include the given name=value pairs.
func sample(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	mf := mfs[name]
	if mf == nil {
		t.Fatalf("no metric family %s", name)
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			ok := false
			for _, lp := range m.GetLabel() {
				ok = ok || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
			}
			if !ok {
				continue next
			}
		}
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Gauge.GetValue()
	}
	t.Fatalf("no sample of %s with labels %v", name, labels)
	return 0
}

// TestMetricsCommandAsksTheHolder runs `daxstore metrics` while another
// process holds the store with a pin over punched blocks: the figures are
// the holder's (its put, its pin, its busy blocks), and once the holder
// has closed, the command opens the store read-only and says so.
func TestMetricsCommandAsksTheHolder(t *testing.T) {
	t.Parallel()
	dir := newStore(t)
	h := startHolder(t, dir)
	const blocks = holderPin / 4096

	out := mustRun(t, nil, "metrics", "--dir", dir)
	if !strings.HasPrefix(out, "# daxstore: live view") {
		t.Fatalf("metrics does not say it is a live view:\n%s", out)
	}
	mfs := parseExposition(t, out)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"daxstore_operations_total", []string{"op", "put"}, 1},
		{"daxstore_operations_total", []string{"op", "pin"}, 1},
		{"daxstore_operations_total", []string{"op", "punch"}, 1},
		{"daxstore_operations_total", []string{"op", "map"}, 1},
		{"daxstore_written_bytes_total", nil, 2 * holderPin},
		{"daxstore_pins", nil, 1},
		{"daxstore_windows", nil, 1},
		{"daxstore_blocks", []string{"state", "busy"}, blocks},
		{"daxstore_busy_extents", nil, 1},
		{"daxstore_files", nil, 1},
	} {
		if got := sample(t, mfs, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	h.stdin.Close()
	select {
	case <-h.exited:
	case <-time.After(patience):
		t.Fatalf("the holder did not exit within %v of its stdin closing", patience)
	}
	if h.err != nil {
		t.Fatalf("the holder failed: %v; stderr: %s", h.err, h.stderr)
	}
	out = mustRun(t, nil, "metrics", "--dir", dir)
	if !strings.HasPrefix(out, "# daxstore: nobody holds the store") {
		t.Fatalf("metrics without a holder does not say so:\n%s", out)
	}
	mfs = parseExposition(t, out)
	if got := sample(t, mfs, "daxstore_operations_total", "op", "put"); got != 0 {
		t.Errorf("put counter %v from a read-only open, want 0", got)
	}
	if got := sample(t, mfs, "daxstore_files"); got != 1 {
		t.Errorf("files %v, want 1", got)
	}
	if got := sample(t, mfs, "daxstore_blocks", "state", "busy"); got != 0 {
		t.Errorf("busy blocks %v after the holder closed, want 0", got)
	}
}
