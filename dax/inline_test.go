package dax

// Tests of inline values: values of at most Options.InlineLimit bytes live
// in the file's journal record, with no region block, until an operation
// that needs blocks moves them there.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/daxstore/daxstore/internal/powercut"
	"github.com/daxstore/daxstore/journal"
)

// wantInline fails unless key is an inline file (no blocks) holding want.
func wantInline(t *testing.T, s *Store, key string, want []byte, inline bool) {
	t.Helper()
	fi, err := s.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size != int64(len(want)) {
		t.Fatalf("%s: size %d, want %d", key, fi.Size, len(want))
	}
	if got := mustGet(t, s, key); !bytes.Equal(got, want) {
		t.Fatalf("%s: Get returned %d bytes, not the value", key, len(got))
	}
	rec, ok, err := s.jnl.LookupInode(key)
	if err != nil || !ok {
		t.Fatalf("%s: journal lookup: %v %v", key, ok, err)
	}
	if rec.Inline != inline || (inline && (fi.Blocks != 0 || !bytes.Equal(rec.Data, want))) {
		t.Fatalf("%s: journal record inline=%v (%d bytes), %d blocks; want inline=%v", key, rec.Inline, len(rec.Data), fi.Blocks, inline)
	}
}

func TestInlinePutReadsEverywhere(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	before := mustStats(t, s)
	value := pattern(7, 300)
	mustPut(t, s, "k", value)
	if st := mustStats(t, s); st.FreeBlocks != before.FreeBlocks || st.UsedBlocks != 0 {
		t.Fatalf("an inline Put took blocks: free %d -> %d, used %d", before.FreeBlocks, st.FreeBlocks, st.UsedBlocks)
	}
	wantInline(t, s, "k", value, true)

	if got, err := s.AppendGet(make([]byte, 0, 512), "k"); err != nil || !bytes.Equal(got, value) {
		t.Fatalf("AppendGet: %v", err)
	}
	if err := s.View("k", func(v []byte) error {
		if !bytes.Equal(v, value) {
			return errors.New("View saw other bytes")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f := mustOpen(t, s, "k")
	defer f.Close()
	buf := make([]byte, 200)
	if n, err := f.ReadAt(buf, 200); n != 100 || err != io.EOF || !bytes.Equal(buf[:n], value[200:]) {
		t.Fatalf("ReadAt past the end: %d, %v", n, err)
	}
	if n, err := f.ReadAt(buf[:50], 10); n != 50 || err != nil || !bytes.Equal(buf[:50], value[10:60]) {
		t.Fatalf("ReadAt inside: %d, %v", n, err)
	}
	if _, err := f.ReadAt(buf, 300); err != io.EOF {
		t.Fatalf("ReadAt at the end: %v", err)
	}
	if off, err := f.SeekData(5); off != 5 || err != nil {
		t.Fatalf("SeekData = %d, %v", off, err)
	}
	if off, err := f.SeekHole(5); off != 300 || err != nil {
		t.Fatalf("SeekHole = %d, %v", off, err)
	}
	if _, err := f.SeekData(300); err != io.EOF {
		t.Fatalf("SeekData at the end: %v", err)
	}
	list, err := s.List("")
	if err != nil || len(list) != 1 || list[0].Size != 300 || list[0].Blocks != 0 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	// The value is a copy: changing the caller's slice changes nothing.
	value[0] ^= 0xff
	if got := mustGet(t, s, "k"); got[0] == value[0] {
		t.Fatal("the store kept the caller's slice")
	}
	value[0] ^= 0xff
	mustCheck(t, s)

	// An empty value is inline too.
	mustPut(t, s, "empty", nil)
	wantInline(t, s, "empty", []byte{}, true)
	mustCheck(t, s)
}

func TestInlineOverwriteBothWays(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	free := mustStats(t, s).FreeBlocks
	small, large := pattern(1, 100), pattern(2, 2*testBS+10)

	mustPut(t, s, "k", small)
	mustPut(t, s, "k", large) // inline -> blocks
	wantInline(t, s, "k", large, false)
	if st := mustStats(t, s); st.FreeBlocks != free-3 {
		t.Fatalf("after inline -> blocks: %d free, want %d", st.FreeBlocks, free-3)
	}
	mustCheck(t, s)

	// blocks -> inline while a pin holds the old blocks: the pin keeps its
	// bytes, the blocks go busy, and come back when it drops.
	f := mustOpen(t, s, "k")
	defer f.Close()
	p := mustPin(t, f, 0, int64(len(large)), PinOptions{Label: "old value"})
	mustPut(t, s, "k", small)
	wantInline(t, s, "k", small, true)
	if !bytes.Equal(pinBytes(p), large) {
		t.Fatal("the pin lost the old value's bytes")
	}
	if st := mustStats(t, s); st.BusyBlocks != 3 {
		t.Fatalf("%d busy blocks, want the 3 old ones", st.BusyBlocks)
	}
	mustCheck(t, s)
	if err := p.Unpin(); err != nil {
		t.Fatal(err)
	}
	settle(t, s)
	if st := mustStats(t, s); st.BusyBlocks != 0 || st.FreeBlocks != free {
		t.Fatalf("after Unpin: %d busy, %d free; want 0 and %d", st.BusyBlocks, st.FreeBlocks, free)
	}
	// The open File sees the inline value.
	buf := make([]byte, len(small))
	if n, err := f.ReadAt(buf, 0); n != len(small) || err != nil || !bytes.Equal(buf, small) {
		t.Fatalf("ReadAt through the old handle: %d, %v", n, err)
	}
	mustCheck(t, s)

	// inline -> inline of another size.
	mustPut(t, s, "k", small[:7])
	wantInline(t, s, "k", small[:7], true)

	// Fail policy: an inline overwrite of pinned blocks fails and changes
	// nothing.
	mustPut(t, s, "k", large)
	p = mustPin(t, f, 0, 10, PinOptions{})
	if err := s.PutWith(t0(), "k", small, BreakOptions{Policy: PolicyFail}); !errors.Is(err, ErrPinned) {
		t.Fatalf("PutWith Fail over a pin = %v, want ErrPinned", err)
	}
	wantInline(t, s, "k", large, false)
	if err := p.Unpin(); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
}

func TestInlinePutRecords(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "first", pattern(1, 10)) // reserves a chunk of inode numbers
	for _, c := range []struct {
		what, key  string
		maxRecords uint64
	}{
		// The inode record, and the file count in the free-space log.
		{"new key", "k", 2},
		{"overwrite", "k", 1},
		{"second new key", "k2", 2},
		{"overwrite again", "k2", 1},
	} {
		before := mustStats(t, s)
		mustPut(t, s, c.key, pattern(2, 64))
		after := mustStats(t, s)
		if commits, records := after.Commits-before.Commits, after.JournalRecords-before.JournalRecords; commits != 1 || records > c.maxRecords {
			t.Errorf("%s: %d commits with %d records; want 1 commit of at most %d", c.what, commits, records, c.maxRecords)
		}
		if after.FreeBlocks != before.FreeBlocks {
			t.Errorf("%s: free blocks %d -> %d", c.what, before.FreeBlocks, after.FreeBlocks)
		}
	}
	mustCheck(t, s)
}

func TestWriteAtOnInlineFileMovesItIntoBlocks(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	value := pattern(3, 100)
	mustPut(t, s, "k", value)
	f := mustOpen(t, s, "k")
	defer f.Close()
	if _, err := f.WriteAt([]byte("xyz"), 50); err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(value)
	copy(want[50:], "xyz")
	wantInline(t, s, "k", want, false)
	st := mustStats(t, s)
	if fi, _ := s.Stat("k"); fi.Blocks != 1 || st.InlineSpills != 1 {
		t.Fatalf("after WriteAt: %d blocks, %d spills; want 1 and 1", fi.Blocks, st.InlineSpills)
	}
	mustCheck(t, s)
	// Writing past the end of the old inline bytes zero-fills the gap.
	mustPut(t, s, "k2", value)
	f2 := mustOpen(t, s, "k2")
	defer f2.Close()
	if _, err := f2.WriteAt([]byte("end"), 3*testBS); err != nil {
		t.Fatal(err)
	}
	want2 := make([]byte, 3*testBS+3)
	copy(want2, value)
	copy(want2[3*testBS:], "end")
	wantInline(t, s, "k2", want2, false)
	mustCheck(t, s)

	s = reopen(t, s, &Options{NoAdminSocket: true, InodeCache: 1})
	wantInline(t, s, "k", want, false)
	wantInline(t, s, "k2", want2, false)
	mustCheck(t, s)
}

func TestPinOnInlineFileMovesItIntoBlocks(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	value := pattern(4, 700)
	mustPut(t, s, "k", value)
	f := mustOpen(t, s, "k")
	defer f.Close()
	p := mustPin(t, f, 100, 500, PinOptions{Label: "dma"})
	if !bytes.Equal(pinBytes(p), value[100:600]) {
		t.Fatal("the pin does not show the inline bytes")
	}
	wantInline(t, s, "k", value, false)
	mustCheck(t, s)
	// A second pin needs no move.
	p2 := mustPin(t, f, 0, 10, PinOptions{})
	if st := mustStats(t, s); st.InlineSpills != 1 {
		t.Fatalf("%d spills, want 1", st.InlineSpills)
	}
	for _, p := range []Pin{p, p2} {
		if err := p.Unpin(); err != nil {
			t.Fatal(err)
		}
	}
	mustCheck(t, s)
}

func TestAllocateOnInlineFileMovesItIntoBlocks(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	value := pattern(5, 100)
	mustPut(t, s, "k", value)
	f := mustOpen(t, s, "k")
	defer f.Close()
	if err := f.Allocate(0, 2*testBS); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 2*testBS)
	copy(want, value)
	wantInline(t, s, "k", want, false)
	if fi, _ := s.Stat("k"); fi.Blocks != 2 {
		t.Fatalf("%d blocks, want 2", fi.Blocks)
	}
	mustCheck(t, s)
}

func TestTruncatePunchAndZeroOfInlineFile(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	value := pattern(6, 1000)
	mustPut(t, s, "k", value)
	f := mustOpen(t, s, "k")
	defer f.Close()

	if err := f.Truncate(600); err != nil {
		t.Fatal(err)
	}
	wantInline(t, s, "k", value[:600], true)
	if err := f.Truncate(1500); err != nil { // grows within the limit
		t.Fatal(err)
	}
	want := make([]byte, 1500)
	copy(want, value[:600])
	wantInline(t, s, "k", want, true)

	if err := f.PunchHole(10, 20); err != nil {
		t.Fatal(err)
	}
	clear(want[10:30])
	wantInline(t, s, "k", want, true)
	if err := f.ZeroRange(1400, 500); err != nil { // clipped at the end
		t.Fatal(err)
	}
	clear(want[1400:])
	wantInline(t, s, "k", want, true)
	if st := mustStats(t, s); st.UsedBlocks != 0 || st.InlineSpills != 0 {
		t.Fatalf("%d used blocks, %d spills; want none", st.UsedBlocks, st.InlineSpills)
	}
	mustCheck(t, s)

	// Past the limit the bytes move into blocks in the same commit.
	before := mustStats(t, s)
	if err := f.Truncate(5 * testBS); err != nil {
		t.Fatal(err)
	}
	after := mustStats(t, s)
	grown := make([]byte, 5*testBS)
	copy(grown, want)
	wantInline(t, s, "k", grown, false)
	if after.Commits-before.Commits != 1 || after.InlineSpills != 1 {
		t.Fatalf("truncate past the limit: %d commits, %d spills; want 1 and 1", after.Commits-before.Commits, after.InlineSpills)
	}
	if fi, _ := s.Stat("k"); fi.Blocks != 1 {
		t.Fatalf("%d blocks, want 1 (the rest is a hole)", fi.Blocks)
	}
	mustCheck(t, s)
	s = reopen(t, s, &Options{NoAdminSocket: true, InodeCache: 1})
	wantInline(t, s, "k", grown, false)
	mustCheck(t, s)
}

func TestPutReaderInline(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	small, large := pattern(8, 2048), pattern(9, 2049)
	cases := []struct {
		key    string
		value  []byte
		size   int64
		inline bool
	}{
		{"known-small", small, int64(len(small)), true},
		{"unknown-small", small, -1, true},
		{"unknown-large", large, -1, false},
		{"known-large", large, int64(len(large)), false},
		{"unknown-empty", nil, -1, true},
	}
	for _, c := range cases {
		if err := s.PutReader(t0(), c.key, bytes.NewReader(c.value), c.size, BreakOptions{}); err != nil {
			t.Fatalf("%s: %v", c.key, err)
		}
		want := c.value
		if want == nil {
			want = []byte{}
		}
		wantInline(t, s, c.key, want, c.inline)
	}
	// A reader that ends early fails and changes nothing.
	before := snapshot(t, s)
	err := s.PutReader(t0(), "known-small", bytes.NewReader(small[:10]), 100, BreakOptions{})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short reader = %v, want io.ErrUnexpectedEOF", err)
	}
	sameState(t, s, before)
	wantInline(t, s, "known-small", small, true)
	// A reader that fails fails the Put.
	boom := errors.New("boom")
	if err := s.PutReader(t0(), "x", io.MultiReader(bytes.NewReader(small[:5]), failingReader{boom}), -1, BreakOptions{}); !errors.Is(err, boom) {
		t.Fatalf("failing reader = %v, want its error", err)
	}
	// A cancelled context stops it before it reads.
	ctx, cancel := context.WithCancel(t0())
	cancel()
	if err := s.PutReader(ctx, "x", bytes.NewReader(small), -1, BreakOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled = %v", err)
	}
	if _, err := s.Stat("x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a failed PutReader created the key: %v", err)
	}
	mustCheck(t, s)
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestInlineLimitOption(t *testing.T) {
	t.Run("over the maximum is refused before anything is made", func(t *testing.T) {
		dir := t.TempDir()
		_, err := Open(dir, &Options{Size: 64 * testBS, NoAdminSocket: true, InlineLimit: MaxInlineLimit + 1})
		if !errors.Is(err, ErrInvalidRange) {
			t.Fatalf("Open = %v, want ErrInvalidRange", err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("Open left %d entries", len(ents))
		}
	})
	t.Run("negative stores every value in blocks", func(t *testing.T) {
		s := newStore(t, 64*testBS, func(o *Options) { o.InlineLimit = -1 })
		mustPut(t, s, "k", pattern(1, 64))
		wantInline(t, s, "k", pattern(1, 64), false)
		mustPut(t, s, "e", nil)
		wantInline(t, s, "e", []byte{}, false)
		mustCheck(t, s)
	})
	t.Run("a custom limit is the largest inline value", func(t *testing.T) {
		s := newStore(t, 64*testBS, func(o *Options) { o.InlineLimit = 100 })
		mustPut(t, s, "at", pattern(1, 100))
		mustPut(t, s, "over", pattern(1, 101))
		wantInline(t, s, "at", pattern(1, 100), true)
		wantInline(t, s, "over", pattern(1, 101), false)
		mustCheck(t, s)
	})
	t.Run("the maximum works", func(t *testing.T) {
		s := newStore(t, 64*testBS, func(o *Options) { o.InlineLimit = MaxInlineLimit })
		v := pattern(3, MaxInlineLimit)
		mustPut(t, s, "max", v)
		wantInline(t, s, "max", v, true)
		mustCheck(t, s)
	})
	t.Run("the default is 2048", func(t *testing.T) {
		if o := (&Options{}).EnsureDefaults(); o.InlineLimit != 2048 {
			t.Fatalf("default %d", o.InlineLimit)
		}
	})
	t.Run("inline files of a store reopened with inlining off still read", func(t *testing.T) {
		s := newStore(t, 64*testBS, nil)
		mustPut(t, s, "k", pattern(4, 50))
		s = reopen(t, s, &Options{NoAdminSocket: true, InlineLimit: -1})
		wantInline(t, s, "k", pattern(4, 50), true)
		f := mustOpen(t, s, "k")
		defer f.Close()
		if err := f.Truncate(20); err != nil { // moves into blocks: nothing is inline now
			t.Fatal(err)
		}
		wantInline(t, s, "k", pattern(4, 20), false)
		mustCheck(t, s)
	})
}

func TestInlineValuesSurviveReopenAndRemove(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	vals := map[string][]byte{}
	for i := range 50 {
		k := strings.Repeat("k", 1+i%7) + string(rune('a'+i%26))
		vals[k] = pattern(byte(i), i*40)
		mustPut(t, s, k, vals[k])
	}
	s = reopen(t, s, &Options{NoAdminSocket: true, InodeCache: 1})
	for k, v := range vals {
		wantInline(t, s, k, v, len(v) <= 2048)
	}
	mustCheck(t, s)
	for k := range vals {
		if err := s.Remove(k); err != nil {
			t.Fatal(err)
		}
	}
	if st := mustStats(t, s); st.Files != 0 || st.UsedBlocks != 0 {
		t.Fatalf("after removing all: %d files, %d used blocks", st.Files, st.UsedBlocks)
	}
	mustCheck(t, s)
}

func TestInlinePutSurvivesPowerCut(t *testing.T) {
	dir := t.TempDir()
	sim := powercut.New(3)
	s := powerCutStore(t, dir, sim)
	acked := pattern(1, 500)
	if err := s.Put("acked", acked); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("over", pattern(2, 3*testBS)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("over", pattern(3, 10)); err != nil { // blocks -> inline, acknowledged
		t.Fatal(err)
	}
	sim.CutAfterFlushes(1, 0)
	if err := s.Put("in-flight", pattern(4, 5000)); err != nil {
		t.Fatalf("Put during the cut: %v", err)
	}
	if !sim.Cut() {
		t.Fatal("the cut did not fire")
	}
	if err := s.Put("after", pattern(5, 10)); err != nil {
		t.Fatal(err)
	}
	s = restartAfterCut(t, s, dir, sim)
	if got := getOrMissing(t, s, "acked"); !bytes.Equal(got, acked) {
		t.Fatalf("acked inline value: %d bytes", len(got))
	}
	if got := getOrMissing(t, s, "over"); !bytes.Equal(got, pattern(3, 10)) {
		t.Fatalf("acked blocks -> inline overwrite: %d bytes", len(got))
	}
	if got := getOrMissing(t, s, "after"); got != nil {
		t.Fatal("a Put after the cut survived it")
	}
}

func TestCheckCatchesInlineMismatches(t *testing.T) {
	t.Run("an inline file that maps blocks in memory", func(t *testing.T) {
		s := newStore(t, 64*testBS, nil)
		mustPut(t, s, "k", pattern(1, 100))
		f := mustOpen(t, s, "k")
		defer f.Close()
		f.in.mapMu.Lock()
		f.in.extents.insert(mapping{fileBlock: 0, start: 5, n: 1})
		f.in.mapMu.Unlock()
		err := s.Check()
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "inline file of 100 bytes") {
			t.Fatalf("Check = %v", err)
		}
	})
	t.Run("inline bytes in memory differ from the journal", func(t *testing.T) {
		s := newStore(t, 64*testBS, nil)
		mustPut(t, s, "k", pattern(1, 100))
		f := mustOpen(t, s, "k")
		defer f.Close()
		b := s.jnl.NewBatch()
		b.SetInode(journal.Inode{Ino: f.in.ino, Key: "k", Size: 100, ModTime: f.in.mtime.UnixNano(), Inline: true, Data: pattern(2, 100)})
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		err := s.Check()
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "inline true with 100 bytes in memory") {
			t.Fatalf("Check = %v", err)
		}
	})
	t.Run("a block file in memory, inline in the journal", func(t *testing.T) {
		s := newStore(t, 64*testBS, nil)
		mustPut(t, s, "k", pattern(1, 100))
		f := mustOpen(t, s, "k")
		defer f.Close()
		f.in.mapMu.Lock()
		f.in.inline = false
		f.in.mapMu.Unlock()
		if err := s.Check(); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Check = %v", err)
		}
	})
}

// TestInlineValuesUnderConcurrentPutsAndReads races Puts that switch a key
// between inline and block values with Get, View, ReadAt and Pin: every
// read sees one whole value, never a mix or another key's bytes.
func TestInlineValuesUnderConcurrentPutsAndReads(t *testing.T) {
	s := newStore(t, 256*testBS, nil)
	values := [][]byte{pattern(1, 100), pattern(2, 3*testBS), pattern(3, 2048), pattern(4, 2049), pattern(5, 0)}
	valid := func(got []byte) bool {
		for _, v := range values {
			if bytes.Equal(got, v) {
				return true
			}
		}
		return false
	}
	mustPut(t, s, "k", values[0])
	f := mustOpen(t, s, "k")
	defer f.Close()
	const rounds = 300
	errs := make(chan error, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range rounds {
			if err := s.Put("k", values[i%len(values)]); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	reader := func(read func() ([]byte, error)) {
		for {
			select {
			case <-done:
				errs <- nil
				return
			default:
			}
			got, err := read()
			if err != nil {
				errs <- err
				return
			}
			if got != nil && !valid(got) {
				errs <- fmt.Errorf("read %d bytes that are no value put", len(got))
				return
			}
		}
	}
	go reader(func() ([]byte, error) { return s.Get("k") })
	go reader(func() ([]byte, error) {
		var out []byte
		err := s.View("k", func(v []byte) error { out = bytes.Clone(v); return nil })
		return out, err
	})
	go reader(func() ([]byte, error) {
		// ReadAt of a size read first may see a later value: check only
		// that what it returns is a prefix of some value.
		buf := make([]byte, 3*testBS)
		n, err := f.ReadAt(buf, 0)
		if err != nil && err != io.EOF {
			return nil, err
		}
		for _, v := range values {
			if bytes.HasPrefix(v, buf[:n]) {
				return nil, nil
			}
		}
		return nil, fmt.Errorf("ReadAt returned %d bytes that begin no value", n)
	})
	go reader(func() ([]byte, error) {
		p, err := f.Pin(0, 50, PinOptions{Label: "racer"})
		if errors.Is(err, ErrInvalidRange) { // the value of 0 bytes
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		got := pinBytes(p)
		if err := p.Unpin(); err != nil {
			return nil, err
		}
		for _, v := range values {
			if len(v) >= 50 && bytes.Equal(v[:50], got) {
				return nil, nil
			}
		}
		return nil, fmt.Errorf("a pin saw bytes that begin no value")
	})
	for range 5 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	settle(t, s)
	mustCheck(t, s)
}
