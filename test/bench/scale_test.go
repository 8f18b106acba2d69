package bench

// The scale suite at tiny sizes: every figure is measured and every target
// judged. The figures themselves are not checked; they belong to the
// benchmark, not to a unit test.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/daxstore/daxstore/dax"
)

// standInEnv, when set, makes the test binary stand in for the daxstore
// binary that the scale suite runs as a child: `bench-child ...` runs
// RunChild, and `get KEY --dir DIR` writes the value of KEY, as the CLI's
// get does.
const standInEnv = "DAXSTORE_BENCH_STAND_IN"

func TestMain(m *testing.M) {
	if os.Getenv(standInEnv) != "" {
		if err := standIn(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func standIn(args []string) error {
	switch {
	case len(args) > 0 && args[0] == "bench-child":
		return RunChild(args[1:], os.Stdout)
	case len(args) == 4 && args[0] == "get" && args[2] == "--dir":
		s, err := dax.Open(args[3], &dax.Options{ReadOnly: true, MustExist: true, NoAdminSocket: true})
		if err != nil {
			return err
		}
		defer s.Close()
		v, err := s.Get(args[1])
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(v)
		return err
	}
	return fmt.Errorf("stand-in: unknown command %q", args)
}

func tinyScale(t *testing.T) ScaleConfig {
	return ScaleConfig{Path: t.TempDir(), Keys: []int{200, 2000}, Duration: 5 * time.Millisecond,
		Exe: os.Args[0], Env: []string{standInEnv + "=1"}}
}

func TestRunScaleMeasuresEveryFigureAndJudgesEveryTarget(t *testing.T) {
	rep, err := RunScale(context.Background(), tinyScale(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		group, subject string
		keys           int64
	}
	var wants []want
	for _, n := range []int64{200, 2000} {
		for _, sys := range []string{"daxstore", "pebble", "bbolt"} {
			wants = append(wants, want{groupOpen, sys + " Open", n}, want{groupRSS, sys + " RSS after Open", n},
				want{groupPeakRSS, sys + " peak RSS through Open", n}, want{groupHeap, sys + " Go heap after Open", n})
		}
		wants = append(wants, want{groupFill, subjFill, n}, want{groupCLI, subjCLIGet, n},
			want{groupRate, subjScalePut, n}, want{groupRate, subjScaleGet, n},
			want{groupOverwrite, subjOverwrite, n}, want{groupList, subjList, n},
			want{groupCheck, subjCheck, n}, want{groupPause, subjPause, n},
			want{groupOverwrite, subjOverwriteBase, n}, want{groupList, subjListBase, n})
	}
	for _, w := range wants {
		f := rep.findKeys(w.group, w.subject, w.keys)
		switch {
		case f == nil:
			t.Errorf("no %s figure for %q at %d keys", w.group, w.subject, w.keys)
		case !(f.Value > 0):
			t.Errorf("%s %q at %d keys: value %v", w.group, w.subject, w.keys, f.Value)
		}
	}
	if f := rep.findKeys(groupOpen, subjDaxOpen, 2000); f != nil && (f.BestPeer == "" || f.VsBestPeer <= 0) {
		t.Errorf("daxstore Open is not compared with the peers: %+v", f)
	}
	if f := rep.findKeys(groupPause, subjPause, 2000); f != nil && f.Count < 1 {
		t.Errorf("no Put overlapped Check: %+v", f)
	}
	// Every goal at every count.
	var goals []string
	for _, k := range []string{"200", "2k"} {
		goals = append(goals, "Open of "+k+" keys ≤ 100 ms (goal 1)", "Go heap after Open of "+k+" keys ≤ 64 MiB (goal 1)",
			"CLI get of one key in "+k+" keys ≤ 100 ms (goal 1)", "Check pauses the store at "+k+" keys ≤ 10 ms (goal 8)",
			"List of a 10-key prefix at "+k+" keys ≤ 2x at 1k keys: in proportion to matches (goal 9)",
			"Random overwrites at "+k+" keys ≥ 0.8x the 1k-key rate (goal 11)")
	}
	for _, g := range goals {
		if !slices.ContainsFunc(rep.Targets, func(tg Target) bool { return tg.Goal == g && tg.Value > 0 }) {
			t.Errorf("target %q not judged", g)
		}
	}
	if len(rep.Targets) != len(goals) {
		t.Errorf("%d targets judged, want %d: %+v", len(rep.Targets), len(goals), rep.Targets)
	}
	var buf bytes.Buffer
	if err := rep.Format(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2k keys", "scale: every key holds 512 bytes", "pebble Open (peer)", "TARGET"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, buf.String())
		}
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Fatal(err)
	}
}

func TestScaleTargetsAreJudgedInTheRightDirection(t *testing.T) {
	fig := func(group, subject string, keys int64, v float64) Figure {
		return Figure{Group: group, Subject: subject, Role: roleDax, Keys: keys, Value: v}
	}
	base := func(group, subject string, keys int64, v float64) Figure {
		f := fig(group, subject, keys, v)
		f.Role = roleBase
		return f
	}
	rep := &Report{Figures: []Figure{
		fig(groupOpen, subjDaxOpen, 1_000_000, 100), fig(groupHeap, "daxstore Go heap after Open", 1_000_000, 64<<20+1),
		fig(groupCLI, subjCLIGet, 1_000_000, 101), fig(groupPause, subjStorePause, 1_000_000, 9),
		base(groupList, subjListBase, 1_000_000, 50), fig(groupList, subjList, 1_000_000, 100),
		base(groupOverwrite, subjOverwriteBase, 1_000_000, 1000), fig(groupOverwrite, subjOverwrite, 1_000_000, 799),
	}}
	rep.finish()
	want := map[string]bool{
		"Open of 1M keys ≤ 100 ms (goal 1)":                                                     true,
		"Go heap after Open of 1M keys ≤ 64 MiB (goal 1)":                                       false,
		"CLI get of one key in 1M keys ≤ 100 ms (goal 1)":                                       false,
		"Check pauses the store at 1M keys ≤ 10 ms (goal 8)":                                    true,
		"List of a 10-key prefix at 1M keys ≤ 2x at 1k keys: in proportion to matches (goal 9)": true,
		"Random overwrites at 1M keys ≥ 0.8x the 1k-key rate (goal 11)":                         false,
	}
	if len(rep.Targets) != len(want) {
		t.Fatalf("targets %+v, want %d of them", rep.Targets, len(want))
	}
	for _, tg := range rep.Targets {
		met, ok := want[tg.Goal]
		if !ok || met != tg.Met {
			t.Errorf("target %q met=%v (value %v); want listed=%v met=%v", tg.Goal, tg.Met, tg.Value, ok, met)
		}
	}
}

func TestScaleConfigRefusesBadSettings(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(*ScaleConfig)
	}{
		{"fewer than 20 keys", func(c *ScaleConfig) { c.Keys = []int{19} }},
		{"a value size above 64 KiB", func(c *ScaleConfig) { c.ValueSize = 64<<10 + 1 }},
		{"no daxstore binary", func(c *ScaleConfig) { c.Exe = "" }},
		{"a path that does not exist", func(c *ScaleConfig) { c.Path = "/nonexistent/daxstore-bench" }},
	} {
		t.Run("it refuses "+c.name, func(t *testing.T) {
			cfg := tinyScale(t)
			c.mod(&cfg)
			if _, err := RunScale(context.Background(), cfg, nil); err == nil {
				t.Fatal("RunScale accepted it")
			}
		})
	}
}
