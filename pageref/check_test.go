package pageref

import (
	"slices"
	"testing"

	"github.com/daxstore/daxstore/pmem"
)

func TestDetachedListsTheMarkedRuns(t *testing.T) {
	tb := New(1<<20, func([]pmem.Extent) {})
	for _, e := range []pmem.Extent{{Start: 10, Len: 4}, {Start: 70000, Len: 2}} {
		if err := tb.Acquire(e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.Detach(pmem.Extent{Start: 8, Len: 5}); err != nil { // marks 10..12
		t.Fatal(err)
	}
	if _, err := tb.Detach(pmem.Extent{Start: 70001, Len: 1}); err != nil {
		t.Fatal(err)
	}
	got := tb.Detached(pmem.Extent{Start: 1, Len: 1<<20 - 1})
	want := []pmem.Extent{{Start: 10, Len: 3}, {Start: 70001, Len: 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("Detached = %v, want %v", got, want)
	}
	if got := tb.Detached(pmem.Extent{Start: 1 << 20, Len: 1}); got != nil {
		t.Fatalf("Detached past the table = %v, want nil", got)
	}
}
