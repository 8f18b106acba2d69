package main

// bench runs every measurement and prints the report; a tiny run checks the
// plumbing, not the figures.

import (
	"os"
	"strings"
	"testing"

	"github.com/daxstore/daxstore/test/bench"
)

// tinyBench are flags that make a bench run take a few seconds.
var tinyBench = []string{"bench", "--quick", "--sizes", "4KiB", "--duration", "5ms", "--punch-size", "4MiB", "--wakeups", "10"}

func TestBenchReportsFiguresAndTargets(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	t.Run("as JSON", func(t *testing.T) {
		var rep bench.Report
		mustJSON(t, &rep, append(tinyBench, "--json", "--path", dir, "--disk-path", dir)...)
		if len(rep.Figures) < 20 || len(rep.Targets) < 5 || rep.Machine.CPUs < 1 {
			t.Fatalf("report with %d figures, %d targets, machine %+v", len(rep.Figures), len(rep.Targets), rep.Machine)
		}
		if !strings.Contains(rep.Command, "bench --quick") || rep.Machine.Path != dir {
			t.Fatalf("report names command %q and path %q", rep.Command, rep.Machine.Path)
		}
	})
	t.Run("as a table", func(t *testing.T) {
		out := mustRun(t, nil, append(tinyBench, "--path", dir, "--disk-path", dir)...)
		for _, want := range []string{"machine:", "daxstore Put", "bbolt", "pebble", "ideal path", "TARGET", "Pin+Unpin",
			"Map+Close latency", "PunchHole p99 under a follow window", "through a window ≥ 0.9x copy from the mapping"} {
			if !strings.Contains(out, want) {
				t.Errorf("bench output lacks %q:\n%s", want, out)
			}
		}
	})
}

func TestBenchScaleRunsItsChildrenAndJudgesTheGoals(t *testing.T) {
	t.Parallel()
	var rep bench.Report
	mustJSON(t, &rep, "bench", "--scale", "--scale-keys", "200", "--duration", "5ms", "--json", "--path", shortDir(t))
	// The real binary re-executes itself for each Open (bench-child) and
	// runs its own get: each figure exists only if they worked.
	found := map[string]bool{}
	for _, f := range rep.Figures {
		if f.Keys == 200 && f.Value > 0 {
			found[f.Subject] = true
		}
	}
	for _, want := range []string{"daxstore Open", "pebble Open", "bbolt Open", "daxstore peak RSS through Open",
		"daxstore Go heap after Open", "daxstore get KEY (a process)", "longest Put during Check"} {
		if !found[want] {
			t.Errorf("no figure %q at 200 keys in %+v", want, rep.Figures)
		}
	}
	if len(rep.Targets) != 6 || rep.Scale == "" {
		t.Errorf("targets %+v (want 6 at 200 keys), scale %q", rep.Targets, rep.Scale)
	}
}

func TestBenchRefusesBadFlags(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"a value size of zero", []string{"bench", "--sizes", "0"}, "value size"},
		{"a value size that is not a size", []string{"bench", "--sizes", "4KiB,big"}, "value size"},
		{"a path that does not exist", []string{"bench", "--path", "/nonexistent/daxstore"}, "path"},
		{"an argument", []string{"bench", "now"}, "wrong number of arguments"},
		{"a scale of 19 keys", []string{"bench", "--scale", "--scale-keys", "19"}, "key count"},
		{"a scale value size of zero", []string{"bench", "--scale", "--scale-value-size", "0"}, "value size"},
	} {
		t.Run("it refuses "+c.name, func(t *testing.T) {
			code := 1
			if c.want == "wrong number of arguments" {
				code = 2
			}
			wantOneErrorLine(t, runCLI(t, nil, c.args...), code, c.want)
		})
	}
}

// The mount part runs a real `daxstore mount` child where a FUSE mount is
// possible (root and /dev/fuse), and says why it skipped elsewhere.
func TestBenchMountPartMeasuresThroughAMountOrSaysWhyNot(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	var rep bench.Report
	mustJSON(t, &rep, "bench", "--only", "mount", "--quick", "--duration", "5ms", "--punch-size", "4MiB",
		"--json", "--path", dir, "--disk-path", dir)
	_, fuseErr := os.Stat("/dev/fuse")
	if os.Geteuid() != 0 || fuseErr != nil {
		if len(rep.Skipped) != 1 || !strings.HasPrefix(rep.Skipped[0], "mount: ") || len(rep.Figures) != 0 {
			t.Fatalf("without root or /dev/fuse: skipped %q, %d figures; want one mount reason and none", rep.Skipped, len(rep.Figures))
		}
		t.Skipf("a FUSE mount needs root and /dev/fuse; the part said: %s", rep.Skipped[0])
	}
	if len(rep.Skipped) != 0 {
		t.Fatalf("the mount part skipped on a machine that can mount: %q", rep.Skipped)
	}
	groups := map[string]int{}
	for _, f := range rep.Figures {
		if f.Value <= 0 || f.MBPerSec <= 0 {
			t.Errorf("figure %+v has no value", f)
		}
		if f.Role == "daxstore" && f.VsLimit <= 0 {
			t.Errorf("figure %+v has no ratio to tmpfs", f)
		}
		groups[f.Group]++
	}
	for _, g := range []string{"mount seq read", "mount seq write", "mount 4KiB read", "mount 4KiB write"} {
		if groups[g] != 2 {
			t.Errorf("group %q has %d figures, want the mount and tmpfs", g, groups[g])
		}
	}
	// The child unmounted: nothing of the run is mounted any more.
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), dir) {
		t.Fatalf("a mount under %s is left behind:\n%s", dir, mounts)
	}
}
