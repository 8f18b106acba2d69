package bench

import "testing"

func TestMetricsCostTargetsAreJudged(t *testing.T) {
	for _, c := range []struct {
		name                           string
		pinOn, pinOff, readOn, readOff float64
		pinMet, readMet                bool
	}{
		{"both within 2%", 102, 100, 300, 300, true, true},
		{"a pin 3% slower misses", 103, 100, 290, 300, false, true},
		{"a read 2.5% slower misses", 100, 100, 307.5, 300, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			rep := &Report{Figures: []Figure{
				{Group: groupMetrics, Subject: subjMetricsPinOn, Role: roleDax, Value: c.pinOn, Unit: unitNs},
				{Group: groupMetrics, Subject: subjMetricsPinOff, Role: roleDax, Value: c.pinOff, Unit: unitNs},
				{Group: groupMetrics, Subject: subjMetricsReadOn, Role: roleDax, Value: c.readOn, Unit: unitNs},
				{Group: groupMetrics, Subject: subjMetricsReadOff, Role: roleDax, Value: c.readOff, Unit: unitNs},
			}}
			rep.finish()
			want := map[string]bool{
				"Pin+Unpin with metrics ≤ 1.02x without (NoMetrics)":   c.pinMet,
				"ReadAt 4KiB with metrics ≤ 1.02x without (NoMetrics)": c.readMet,
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
		})
	}
}
