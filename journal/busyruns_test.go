package journal

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/daxstore/daxstore/internal/memfs"
	"github.com/daxstore/daxstore/pmem"
)

// runList returns n one-block runs of one owner, every other block from
// start, each held by one pin labelled label.
func runList(start pmem.Block, n int, label string) []BusyRecord {
	out := make([]BusyRecord, n)
	for i := range out {
		out[i] = BusyRecord{Extent: pmem.Extent{Start: start + pmem.Block(2*i), Len: 1}, Ino: 4, Key: "big",
			FileBlock: uint64(2 * i), Reason: 2, DetachedAt: 1234, Pins: 1, Labels: []string{label}}
	}
	return out
}

func TestBusyRunsRoundTrip(t *testing.T) {
	mixed := []BusyRecord{
		{Extent: pmem.Extent{Start: 100, Len: 3}, Ino: 9, Key: "k", FileBlock: 50, Reason: 1, DetachedAt: -5},
		// Touching the previous run, with the file block going backwards.
		{Extent: pmem.Extent{Start: 103, Len: 1}, Ino: 9, Key: "k", FileBlock: 2, Reason: 1, DetachedAt: -5, Pins: 3, Labels: []string{"dma", "rdma"}},
		{Extent: pmem.Extent{Start: 1 << 40, Len: 7}, Ino: 9, Key: "k", FileBlock: math.MaxUint64 - 7, Reason: 1, DetachedAt: -5, Pins: 1 << 50, Labels: []string{"rdma", ""}},
		{Extent: pmem.Extent{Start: math.MaxUint64 - 1, Len: 1}, Ino: 9, Key: "k", FileBlock: 0, Reason: 1, DetachedAt: -5, Pins: 1, Labels: []string{"dma"}},
	}
	many := make([]BusyRecord, 0, MaxLabels-1)
	for i := range MaxLabels - 1 { // MaxLabels-1 own labels and "shared"
		many = append(many, BusyRecord{Extent: pmem.Extent{Start: pmem.Block(1 + i), Len: 1},
			Pins: 2, Labels: []string{fmt.Sprint("pin ", i), "shared"}[:1+min(1, i%2)]})
	}
	cases := []struct {
		name string
		runs []BusyRecord
	}{
		{"one run without labels", []BusyRecord{{Extent: pmem.Extent{Start: 1, Len: 1}}}},
		{"the runs of a punch with one label", runList(10, 1000, "bench")},
		{"runs of mixed owners' labels, gaps and file blocks", mixed},
		{"the most runs a record holds", runList(1, MaxBusyRuns, "x")},
		{"the most distinct labels a record holds", many},
	}
	for _, c := range cases {
		t.Run(c.name+" decodes to itself", func(t *testing.T) {
			k, v := EncodeBusyRuns(c.runs)
			if s := checkBusyRuns(c.runs); s != "" {
				t.Fatalf("the case is not a valid run list: %s", s)
			}
			got, err := DecodeBusyRuns(k, v)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.runs) {
				t.Fatalf("got %+v\nwant %+v", got, c.runs)
			}
			if _, err := DecodeBusy(k, v); !errors.Is(err, pmem.ErrCorrupt) {
				t.Fatalf("DecodeBusy of a run list = %v, want ErrCorrupt (it holds one extent only)", err)
			}
		})
	}
	t.Run("a punch of 1000 scattered pinned blocks takes at most 7 bytes a run", func(t *testing.T) {
		_, v := EncodeBusyRuns(runList(10, 1000, "bench"))
		if len(v) > 7*1000 {
			t.Fatalf("%d bytes for 1000 runs", len(v))
		}
	})
	for _, old := range []struct {
		name string
		r    BusyRecord
		enc  func(BusyRecord) ([]byte, []byte)
	}{
		{"version 1", BusyRecord{Extent: pmem.Extent{Start: 7, Len: 3}, Ino: 2, Key: "old", FileBlock: 5, Reason: 3, DetachedAt: 42, Pins: 2, Labels: []string{"dma", "dma"}}, encodeBusyV1},
		{"version 2", BusyRecord{Extent: pmem.Extent{Start: 7, Len: 3}, Ino: 2, Key: "old", FileBlock: 5, Reason: 3, DetachedAt: 42, Pins: 9, Labels: []string{"dma"}}, EncodeBusy},
	} {
		t.Run("a "+old.name+" record decodes as one run", func(t *testing.T) {
			k, v := old.enc(old.r)
			got, err := DecodeBusyRuns(k, v)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, []BusyRecord{old.r}) {
				t.Fatalf("got %+v, want %+v", got, old.r)
			}
		})
	}
}

func TestBusyRunsRejectsWhatItCannotHaveWritten(t *testing.T) {
	k, good := EncodeBusyRuns(runList(10, 3, "dma"))
	body := good[:len(good)-crcLen]
	// resealed rebuilds the value with body changed by edit.
	resealed := func(edit func(b []byte) []byte) []byte {
		return seal(k, edit(append([]byte(nil), body...)))
	}
	head := 1 + 8 + 1 + len("big") + 1 + 8 // version, ino, key, reason, time
	cases := []struct {
		name  string
		value []byte
	}{
		{"no runs", resealed(func(b []byte) []byte {
			b = append(b[:head], 0) // an empty label table
			return append(b, 0)     // and zero runs
		})},
		{"an unused label", resealed(func(b []byte) []byte {
			out := append([]byte(nil), b[:head]...)
			out = append(out, 2)
			out = appendString(out, "dma")
			out = appendString(out, "spare")
			return append(out, b[head+1+1+3:]...)
		})},
		{"a repeated label", resealed(func(b []byte) []byte {
			out := append([]byte(nil), b[:head]...)
			out = append(out, 2)
			out = appendString(out, "dma")
			out = appendString(out, "dma")
			rest := append([]byte(nil), b[head+1+1+3:]...)
			rest[len(rest)-1] = 1 // the last run names the second copy
			return append(out, rest...)
		})},
		{"trailing bytes", resealed(func(b []byte) []byte { return append(b, 0) })},
		{"a truncated run", resealed(func(b []byte) []byte { return b[:len(b)-1] })},
	}
	for _, c := range cases {
		t.Run(c.name+" is corrupt", func(t *testing.T) {
			if _, err := DecodeBusyRuns(k, c.value); !errors.Is(err, pmem.ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestLoadReturnsTheRunsOfEveryBusyRecordInStartOrder(t *testing.T) {
	j := openMem(t, memfs.New(), Options{})
	defer closeJournal(t, j)
	a := runList(100, 3, "a") // blocks 100, 102, 104
	b := runList(101, 3, "b") // blocks 101, 103, 105: interleaved with a
	batch := j.NewBatch()
	batch.SetBusyRuns(a)
	batch.SetBusyRuns(b)
	batch.SetBusy(BusyRecord{Extent: pmem.Extent{Start: 50, Len: 1}, Key: "old", Pins: 1, Labels: []string{"v2"}})
	if batch.Count() != 3 {
		t.Fatalf("Count = %d, want 3 records for 7 runs", batch.Count())
	}
	commit(t, batch, true)
	st := load(t, j)
	if st.BusyRecords != 3 {
		t.Fatalf("BusyRecords = %d, want 3", st.BusyRecords)
	}
	want := []BusyRecord{{Extent: pmem.Extent{Start: 50, Len: 1}, Key: "old", Pins: 1, Labels: []string{"v2"}},
		a[0], b[0], a[1], b[1], a[2], b[2]}
	if !reflect.DeepEqual(st.Busy, want) {
		t.Fatalf("Busy = %+v\nwant %+v", st.Busy, want)
	}
}
