package journal

import "testing"

// BenchmarkSetBusyRuns measures checking and encoding the run-list record
// of 1,024 scattered one-block runs of one label: a break's record, and
// what a release of one of its runs rewrites.
func BenchmarkSetBusyRuns(b *testing.B) {
	runs := runList(10, 1024, "bench")
	b.ReportAllocs()
	for b.Loop() {
		if s := checkBusyRuns(runs); s != "" {
			b.Fatal(s)
		}
		EncodeBusyRuns(runs)
	}
}
