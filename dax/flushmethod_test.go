package dax

import "testing"

// TestStatsNameTheFlushMethod checks that Stats says how the region makes
// stores durable, consistently with DAX: a CPU cache line flush exactly
// when the region is mapped with MAP_SYNC. Wherever the test directory is
// (tmpfs, a disk, an fsdax mount in the QEMU guest of test/fsdax), the
// pair must agree.
func TestStatsNameTheFlushMethod(t *testing.T) {
	s := newStore(t, 16<<20, nil)
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	cpu := map[string]bool{"clwb": true, "clflushopt": true, "clflush": true}
	switch {
	case st.FlushMethod == "":
		t.Fatal("Stats names no flush method")
	case st.DAX != cpu[st.FlushMethod]:
		t.Fatalf("Stats: DAX %v with flush method %q", st.DAX, st.FlushMethod)
	case st.DAX != s.DAX():
		t.Fatalf("Stats.DAX %v, Store.DAX %v", st.DAX, s.DAX())
	}
	t.Logf("region %s: DAX %v, flush %s", st.Region, st.DAX, st.FlushMethod)
}
