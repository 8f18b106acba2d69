package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// tinyConfig is a run small enough for a unit test: every measurement runs,
// briefly, on small sizes.
func tinyConfig(t *testing.T) Config {
	return Config{
		Path: t.TempDir(), DiskPath: t.TempDir(), Quick: true, Sizes: []int{4 << 10, 64 << 10}, Duration: 5 * time.Millisecond,
		PunchBytes: 8 << 20, PunchRuns: 1, Wakeups: 20, SmallSizes: []int{64, 1 << 10}, SpaceKeys: 300,
	}
}

func TestRunMeasuresEveryFigureAndJudgesEveryTarget(t *testing.T) {
	rep, err := Run(context.Background(), tinyConfig(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		group, subject string
		size           int64
	}{
		{"put", "daxstore Put", 4 << 10}, {"put", "bbolt", 4 << 10}, {"put", "pebble", 64 << 10},
		{"put", "files", 64 << 10}, {"put", "ideal path", 4 << 10},
		{"get", subjAppendGet, 4 << 10}, {"get", subjView, 64 << 10}, {"get", subjGet, 4 << 10},
		{"get", subjReadAt, 64 << 10}, {"get", subjPin, 64 << 10}, {"get", subjCopyLimit, 4 << 10},
		{"pin", subjPinLatency, 0}, {"pin", subjPinDistinct, 0}, {"pin", subjPinSame, 0},
		{"punch", subjFallocate, 8 << 20}, {"punch", subjPunch + ", 1% pinned", 8 << 20},
		{"punch", subjTruncate + ", nothing pinned", 8 << 20},
		{"wakeup", subjWakeP99, 0}, {"memory", subjMemPerGiB, 0}, {"memory", subjMemPerPin, 0},
		{"put", "daxstore Put", 64}, {"put", "pebble", 1 << 10},
		{groupSpace, subjSpaceDax, 64}, {groupSpace, subjSpacePebble, 1 << 10},
		{groupWindowRead, subjWindowRead, 8 << 20}, {groupWindowRead, subjWindowFirstTouch, 8 << 20},
		{groupWindowRead, subjWindowReadLimit, 8 << 20}, {groupWindowMap, subjWindowMap, 4 << 10},
		{groupWindowMap, subjWindowMap, 8 << 20}, {groupWindowMap, subjWindowMapLimit, 4 << 10},
		{groupWindowPunch, subjWindowPunchP99, 2 << 20}, {groupWindowPunch, subjNoWindowPunchP99, 2 << 20},
		{groupMetrics, subjMetricsPinOn, 0}, {groupMetrics, subjMetricsPinOff, 0},
		{groupMetrics, subjMetricsReadOn, 0}, {groupMetrics, subjMetricsReadOff, 0},
	} {
		f := rep.find(want.group, want.subject, want.size)
		if f == nil {
			t.Errorf("no %s figure for %q at size %d", want.group, want.subject, want.size)
			continue
		}
		if !(f.Value > 0) {
			t.Errorf("%s %q: value %v", want.group, want.subject, f.Value)
		}
	}
	readers, writers := 0, map[int]int{}
	for _, f := range rep.Figures {
		switch {
		case f.Group == groupReaders && f.Value > 0:
			readers++
		case f.Group == groupWriters && f.Value > 0:
			writers[f.Threads]++
		}
	}
	if readers != 16 {
		t.Errorf("%d reader p99 figures, want 16 (Get, Stat, ReadAt, Pin × two keys × two media)", readers)
	}
	for _, n := range WriterCounts {
		if writers[n] != 2 {
			t.Errorf("%d concurrent-Put figures at %d goroutines, want daxstore's and Pebble's", writers[n], n)
		}
	}
	if f := rep.find("put", "daxstore Put", 4<<10); f != nil && (f.VsBestPeer <= 0 || f.VsLimit <= 0 || f.BestPeer == "") {
		t.Errorf("daxstore Put has no ratios: %+v", f)
	}
	// 2 sizes × (2 Put + 2 copying Get) + 2 vs bbolt + 2 zero-copy (64KiB
	// only here: 1) + pin 2 + punch 2 + wakeup + memory.
	if len(rep.Targets) < 15 {
		t.Errorf("only %d targets judged: %+v", len(rep.Targets), rep.Targets)
	}
	// Goal 4: small values against Pebble, in time and in space.
	for _, goal := range []string{"Put 64B ≥ 1.0x Pebble (small values)", "Put 1KiB ≥ 1.0x Pebble (small values)",
		"Space per 64B value ≤ 1.3x Pebble's", "Space per 1KiB value ≤ 1.3x Pebble's"} {
		if !slices.ContainsFunc(rep.Targets, func(tg Target) bool { return tg.Goal == goal && tg.Value > 0 }) {
			t.Errorf("target %q not judged", goal)
		}
	}
	// Goal 5: reads into a caller's buffer and View against the limit, at
	// every size, under one stated buffer policy.
	for _, size := range []string{"4KiB", "64KiB"} {
		for _, s := range []string{"AppendGet (reused buffer)", "View (zero-copy)"} {
			goal := s + " " + size + " ≥ 0.8x the limit (map lookup + copy)"
			if !slices.ContainsFunc(rep.Targets, func(tg Target) bool { return tg.Goal == goal && tg.Value > 0 }) {
				t.Errorf("target %q not judged", goal)
			}
		}
	}
	// Goal 7 of the windows issue.
	for _, goal := range []string{"Sequential read of 8MiB through a window ≥ 0.9x copy from the mapping",
		"PunchHole of 2MiB under a follow window p99 ≤ 50 µs"} {
		if !slices.ContainsFunc(rep.Targets, func(tg Target) bool { return tg.Goal == goal && tg.Value > 0 }) {
			t.Errorf("target %q not judged", goal)
		}
	}
	if f := rep.find(groupWindowMap, subjWindowMap, 8<<20); f != nil && f.VsLimit <= 0 {
		t.Errorf("Map+Close of 8MiB is not compared with mmap+munmap: %+v", f)
	}
	if rep.GetBuffers == "" {
		t.Error("the report does not say which buffer policy the Get figures use")
	}
	var buf bytes.Buffer
	if err := rep.Format(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"medium:", "get buffers: every system", "daxstore Put", "VS BEST PEER", "TARGET", "fallocate(PUNCH_HOLE)"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, buf.String())
		}
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Fatal(err)
	}
}

func TestFinishComparesWithTheBestPeerInTheRightDirection(t *testing.T) {
	rep := &Report{Figures: []Figure{
		{Group: "put", Subject: "daxstore Put", Role: roleDax, Size: 4096, Value: 300, HigherIsBetter: true},
		{Group: "put", Subject: "slow", Role: rolePeer, Size: 4096, Value: 100, HigherIsBetter: true},
		{Group: "put", Subject: "fast", Role: rolePeer, Size: 4096, Value: 200, HigherIsBetter: true},
		{Group: "put", Subject: "ideal path", Role: roleLimit, Size: 4096, Value: 400, HigherIsBetter: true},
		{Group: "punch", Subject: subjPunch + ", nothing pinned", Role: roleDax, Size: 1 << 30, Value: 10},
		{Group: "punch", Subject: subjPunch + ", 1% pinned", Role: roleDax, Size: 1 << 30, Value: 30},
		{Group: "punch", Subject: subjFallocate, Role: rolePeer, Size: 1 << 30, Value: 100},
		{Group: "punch", Subject: "slower peer", Role: rolePeer, Size: 1 << 30, Value: 500},
	}}
	rep.finish()
	cases := []struct {
		name    string
		subject string
		size    int64
		peer    string
		vsPeer  float64
		vsLimit float64
		group   string
	}{
		{"a throughput is compared with the fastest peer", "daxstore Put", 4096, "fast", 1.5, 0.75, "put"},
		{"a peer is compared with the best peer too", "slow", 4096, "fast", 0.5, 0.25, "put"},
		{"a time is compared with the quickest peer", subjPunch + ", nothing pinned", 1 << 30, subjFallocate, 0.1, 0, "punch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := rep.find(c.group, c.subject, c.size)
			if f == nil {
				t.Fatal("figure missing")
			}
			if f.BestPeer != c.peer || f.VsBestPeer != c.vsPeer || f.VsLimit != c.vsLimit {
				t.Fatalf("got best peer %q, ratio %v, vs limit %v; want %q, %v, %v",
					f.BestPeer, f.VsBestPeer, f.VsLimit, c.peer, c.vsPeer, c.vsLimit)
			}
		})
	}
	want := map[string]bool{
		"Put 4KiB ≥ 1.0x the best peer":                                true,  // 1.5x
		"Put 4KiB ≥ 0.8x the ideal path":                               false, // 0.75x
		"Punch of 1GiB, nothing pinned, ≤ 0.25x fallocate(PUNCH_HOLE)": true,  // 0.1x
		"Punch with 1% pinned ≤ 2x the unpinned punch":                 false, // 3x
		"Punch of 1GiB with 1% pinned ≤ 0.5x fallocate(PUNCH_HOLE)":    true,  // 0.3x
		"Punch with 1% pinned ≤ 4x the unpinned punch":                 true,  // 3x
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

func TestConfigRefusesBadSettings(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"a value size of zero", Config{Sizes: []int{0}}},
		{"a value size above 1 GiB", Config{Sizes: []int{1<<30 + 1}}},
		{"a duration under a millisecond", Config{Duration: time.Microsecond}},
		{"a punch file under 1 MiB", Config{PunchBytes: 4096}},
		{"a negative number of punch runs", Config{PunchRuns: -1}},
		{"a path that does not exist", Config{Path: "/nonexistent/daxstore-bench"}},
	} {
		t.Run("it refuses "+c.name, func(t *testing.T) {
			if _, err := Run(context.Background(), c.cfg, nil); err == nil {
				t.Fatal("Run accepted it")
			}
		})
	}
}

func TestReadAllReadsEveryByte(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 33, 4096, 4099} {
		b := make([]byte, n)
		fill(b, uint64(n))
		var want uint64
		for i := 0; i+8 <= n; i += 8 {
			var w uint64
			for k := 7; k >= 0; k-- {
				w = w<<8 | uint64(b[i+k])
			}
			want += w
		}
		for _, c := range b[n/8*8:] {
			want += uint64(c)
		}
		if got := readAll(b); got != want {
			t.Errorf("readAll of %d bytes = %d, want %d", n, got, want)
		}
	}
}

func TestRecordsPerPutTargetIsJudged(t *testing.T) {
	for _, c := range []struct {
		records float64
		met     bool
	}{{2, true}, {1, true}, {2.01, false}, {5, false}} {
		rep := &Report{Figures: []Figure{{Group: groupRecords, Subject: subjRecordsPerPut, Role: roleDax, Size: 4096, Value: c.records, Unit: unitRecords}}}
		rep.finish()
		var got *Target
		for i := range rep.Targets {
			if rep.Targets[i].Goal == "Journal records per Put of 4KiB ≤ 2 (one extent)" {
				got = &rep.Targets[i]
			}
		}
		if got == nil || got.Met != c.met {
			t.Fatalf("%.2f records per Put: target %+v, want met=%v", c.records, got, c.met)
		}
	}
}

func TestWindowTargetsAreJudged(t *testing.T) {
	for _, c := range []struct {
		name                   string
		steady, limit, punch99 float64
		readMet, punchMet      bool
	}{
		{"both met", 950, 1000, 40, true, true},
		{"a read at 0.85x the limit misses", 850, 1000, 50, false, true},
		{"a punch p99 of 51 µs misses", 900, 1000, 51, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			const n = 64 << 20
			rep := &Report{Figures: []Figure{
				{Group: groupWindowRead, Subject: subjWindowReadLimit, Role: roleLimit, Size: n, Value: c.limit, HigherIsBetter: true},
				{Group: groupWindowRead, Subject: subjWindowRead, Role: roleDax, Size: n, Value: c.steady, HigherIsBetter: true},
				{Group: groupWindowRead, Subject: subjWindowFirstTouch, Role: roleDax, Size: n, Value: c.limit / 4, HigherIsBetter: true},
				{Group: groupWindowPunch, Subject: subjNoWindowPunchP99, Role: roleDax, Size: 2 << 20, Value: 20, Unit: unitUs},
				{Group: groupWindowPunch, Subject: subjWindowPunchP99, Role: roleDax, Size: 2 << 20, Value: c.punch99, Unit: unitUs},
			}}
			rep.finish()
			want := map[string]bool{
				"Sequential read of 64MiB through a window ≥ 0.9x copy from the mapping": c.readMet,
				"PunchHole of 2MiB under a follow window p99 ≤ 50 µs":                    c.punchMet,
			}
			if len(rep.Targets) != len(want) {
				t.Fatalf("targets %+v, want %d", rep.Targets, len(want))
			}
			for _, tg := range rep.Targets {
				met, ok := want[tg.Goal]
				if !ok || met != tg.Met {
					t.Errorf("target %q met=%v (%s); want listed=%v met=%v", tg.Goal, tg.Met, tg.Text, ok, met)
				}
			}
			if text := rep.Targets[0].Text + rep.Targets[1].Text; !strings.Contains(text, "first touch 0.25x") ||
				!strings.Contains(text, "the punch without a window, 20.0 µs") {
				t.Errorf("the targets do not show first touch and the reference punch: %q", text)
			}
		})
	}
}
