package dax

// Tests of windows (File.Map): follow windows equal ReadAt after every
// operation, pinned windows keep their bytes, the mapping budget, the
// write-fault rule, and windows across Close, reopen and emulated media.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/daxstore/daxstore/internal/powercut"
)

// fileRange returns bytes [off, off+n) of f as a window must show them:
// ReadAt, with zeros past the end of the file.
func fileRange(t testing.TB, f *File, off, n int64) []byte {
	t.Helper()
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		t.Fatalf("ReadAt: %v", err)
	}
	return buf
}

// sameAsFile fails the test unless w shows exactly what f holds.
func sameAsFile(t testing.TB, w *Window, f *File, what string) {
	t.Helper()
	want := fileRange(t, f, w.Offset(), w.Len())
	got := w.Bytes()
	if len(got) != len(want) {
		t.Fatalf("%s: window is %d bytes, want %d", what, len(got), len(want))
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: window differs from ReadAt at window byte %d (file offset %d): %#x, want %#x",
			what, i, w.Offset()+int64(i), got[i], want[i])
	}
}

// mustMap maps [off, off+n) of f.
func mustMap(t testing.TB, f *File, off, n int64, o MapOptions) *Window {
	t.Helper()
	w, err := f.Map(off, n, o)
	if err != nil {
		t.Fatalf("map %q [%d,+%d): %v", f.Key(), off, n, err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// faults reports whether fn raised a memory fault, caught as a panic.
func faults(fn func()) (faulted bool) {
	defer func(old bool) {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			faulted = true
		}
	}(debug.SetPanicOnFault(true))
	fn()
	return false
}

func TestFollowWindowEqualsReadAtAfterEveryOperation(t *testing.T) {
	const bs = testBS
	for _, writable := range []bool{false, true} {
		t.Run(fmt.Sprintf("writable=%v", writable), func(t *testing.T) {
			s := newStore(t, 8<<20, nil)
			mustPut(t, s, "k", pattern(1, 10*bs))
			f := mustOpen(t, s, "k")
			defer f.Close()
			// From mid-block 0 to mid-block 14: past the end of the file.
			w := mustMap(t, f, bs/2, 14*bs, MapOptions{Writable: writable, Label: "follow"})
			sameAsFile(t, w, f, "after Map")
			ops := []struct {
				name string
				do   func() error
			}{
				{"write inside", func() error { _, err := f.WriteAt(pattern(2, 3*bs), 2*bs+100); return err }},
				{"punch whole blocks", func() error { return f.PunchHole(3*bs, 2*bs) }},
				{"punch partial", func() error { return f.PunchHole(bs+10, 100) }},
				{"zero range", func() error { return f.ZeroRange(5*bs-7, 2*bs+14) }},
				{"write the block a truncate will cut", func() error { _, err := f.WriteAt(pattern(10, bs), 6*bs); return err }},
				{"truncate down to mid-block", func() error { return f.Truncate(6*bs + 123) }},
				{"truncate up", func() error { return f.Truncate(9 * bs) }},
				{"write past the end over a hole", func() error { _, err := f.WriteAt(pattern(3, 100), 12*bs); return err }},
				{"allocate", func() error { return f.Allocate(12*bs, 3*bs) }},
				{"write into unwritten", func() error { _, err := f.WriteAt(pattern(4, 10), 13*bs+5); return err }},
				{"pin fills a hole", func() error {
					p, err := f.Pin(3*bs, bs, PinOptions{})
					if err == nil {
						err = p.Unpin()
					}
					return err
				}},
				{"put a smaller value", func() error { return s.Put("k", pattern(5, 4*bs+1)) }},
				{"put a larger value", func() error { return s.Put("k", pattern(6, 20*bs)) }},
				{"put an inline-sized value", func() error { return s.Put("k", pattern(7, 100)) }},
				{"put an empty value", func() error { return s.Put("k", nil) }},
				{"write again", func() error { _, err := f.WriteAt(pattern(8, 5*bs), 0); return err }},
			}
			for _, op := range ops {
				gen := w.Generation()
				if err := op.do(); err != nil {
					t.Fatalf("%s: %v", op.name, err)
				}
				sameAsFile(t, w, f, op.name)
				if strings.HasPrefix(op.name, "put") && w.Generation() == gen {
					t.Fatalf("%s: Generation stayed %d", op.name, gen)
				}
				if w.Stale() {
					t.Fatalf("%s: window stale", op.name)
				}
				if writable {
					// Every page inside the file is backed: a store lands
					// in the file.
					size, _ := f.Size()
					if end := size - w.Offset(); end > 0 {
						i := min(end, w.Len()) - 1
						if faults(func() { w.Bytes()[i] = 0xA5 }) {
							t.Fatalf("%s: store at window byte %d (inside the file) faulted", op.name, i)
						}
						sameAsFile(t, w, f, op.name+", then a store through the window")
					}
				}
				mustCheck(t, s)
			}
			if s.Put("k", pattern(9, 10)) != nil || mustGet(t, s, "k") == nil {
				t.Fatal("put")
			}
			in := f.in
			in.mapMu.Lock()
			inline := in.inline
			in.mapMu.Unlock()
			if inline {
				t.Fatal("a Put of a small value made a file with a follow window inline")
			}
		})
	}
}

func TestFollowWindowReadsZerosOverHolesUnwrittenAndPastEOF(t *testing.T) {
	const bs = testBS
	s := newStore(t, 4<<20, nil)
	f, err := s.Create("sparse")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(pattern(1, bs), 2*bs); err != nil {
		t.Fatal(err)
	}
	if err := f.Allocate(4*bs, 2*bs); err != nil {
		t.Fatal(err)
	}
	w := mustMap(t, f, 0, 10*bs, MapOptions{})
	sameAsFile(t, w, f, "sparse file")
	b := w.Bytes()
	if !allZero(b[:2*bs]) || !allZero(b[3*bs:]) || !bytes.Equal(b[2*bs:3*bs], pattern(1, bs)) {
		t.Fatal("holes, unwritten blocks or the range past EOF do not read as zeros")
	}
	if got := w.Pieces(); got != 3 {
		t.Fatalf("Pieces = %d, want 3 (zeros, one block, zeros)", got)
	}
}

func TestFollowWindowGoesStaleOnRemove(t *testing.T) {
	s := newStore(t, 4<<20, nil)
	mustPut(t, s, "k", pattern(1, 3*testBS))
	f := mustOpen(t, s, "k")
	defer f.Close()
	for _, writable := range []bool{false, true} {
		w := mustMap(t, f, 0, 3*testBS, MapOptions{Writable: writable})
		if writable {
			defer func() {
				if !w.Stale() || !allZero(w.Bytes()) {
					t.Fatal("window not stale and zero after Remove")
				}
				if !faults(func() { w.Bytes()[0] = 1 }) {
					t.Fatal("a store into a stale window did not fault")
				}
			}()
		}
	}
	if err := s.Remove("k"); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
	// The freed blocks are reused by another key: the windows keep zeros.
	mustPut(t, s, "other", pattern(9, 100*testBS))
}

func TestWritableWindowWritesSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	o := &Options{Size: 4 << 20, NoAdminSocket: true}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.Create("k")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(5 * testBS); err != nil {
		t.Fatal(err)
	}
	w, err := f.Map(0, 5*testBS, MapOptions{Writable: true, Label: "writer"})
	if err != nil {
		t.Fatal(err)
	}
	want := pattern(3, 5*testBS)
	copy(w.Bytes(), want)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := fileRange(t, f, 0, 5*testBS); !bytes.Equal(got, want) {
		t.Fatal("ReadAt does not see the stores through the window")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, w.Close(), ErrClosed)
	f.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, o); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := mustGet(t, s, "k"); !bytes.Equal(got, want) {
		t.Fatal("stores through a window lost across reopen")
	}
	mustCheck(t, s)
}

func TestPinnedWindowKeepsItsBytesAfterPunch(t *testing.T) {
	s := newStore(t, 4<<20, nil)
	value := pattern(1, 8*testBS)
	mustPut(t, s, "k", value)
	f := mustOpen(t, s, "k")
	defer f.Close()
	broke := make(chan struct{}, 1)
	w, err := f.Map(testBS, 4*testBS, MapOptions{Mode: MapPinned, Writable: true, Label: "pinned", OnBreak: func() { broke <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	copy(w.Bytes(), "through the pinned window")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	copy(value[testBS:], "through the pinned window")
	if got := fileRange(t, f, 0, 8*testBS); !bytes.Equal(got, value) {
		t.Fatal("a store through a pinned window is not in the file")
	}
	wantErr(t, s.Close(), ErrPinned)
	if err := f.PunchHole(0, 8*testBS); err != nil {
		t.Fatal(err)
	}
	select {
	case <-broke:
	default:
		t.Fatal("OnBreak not called")
	}
	if !bytes.Equal(w.Bytes(), value[testBS:5*testBS]) {
		t.Fatal("pinned window lost its bytes after a punch")
	}
	if st := mustStats(t, s); st.BusyBlocks != 4 {
		t.Fatalf("BusyBlocks = %d, want the 4 pinned", st.BusyBlocks)
	}
	// Another key takes all free space: never the pinned blocks.
	mustPut(t, s, "other", pattern(2, 200*testBS))
	if !bytes.Equal(w.Bytes(), value[testBS:5*testBS]) {
		t.Fatal("pinned window changed while its blocks were busy")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	settle(t, s)
	if st := mustStats(t, s); st.BusyBlocks != 0 || st.Windows != 0 || st.WindowPieces != 0 {
		t.Fatalf("after Close: %+v", st)
	}
	mustCheck(t, s)
}

func TestMapBudgetRefusesAndChangesNothing(t *testing.T) {
	s := newStore(t, 4<<20, func(o *Options) { o.MaxWindowMappings = 4 })
	f, err := s.Create("k")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := int64(0); i < 8; i += 2 { // blocks 0, 2, 4, 6: seven pieces
		if _, err := f.WriteAt(pattern(byte(i), testBS), i*testBS); err != nil {
			t.Fatal(err)
		}
	}
	w := mustMap(t, f, 0, testBS, MapOptions{})
	before := snapshot(t, s)
	_, err = f.Map(0, 7*testBS, MapOptions{Label: "too many"})
	wantErr(t, err, ErrMappingBudget)
	if !strings.Contains(err.Error(), "MaxWindowMappings") {
		t.Fatalf("error does not name the budget: %v", err)
	}
	sameState(t, s, before)
	if st := mustStats(t, s); st.Windows != 1 || st.WindowPieces != 1 {
		t.Fatalf("stats after a refused Map: windows %d pieces %d", st.Windows, st.WindowPieces)
	}
	w.Close()
	mustMap(t, f, 0, 3*testBS, MapOptions{}) // three pieces fit now
}

func TestWriteIntoReadOnlyWindowPageIsACaughtFault(t *testing.T) {
	s := newStore(t, 4<<20, nil)
	mustPut(t, s, "k", pattern(1, 2*testBS))
	f := mustOpen(t, s, "k")
	defer f.Close()
	ro := mustMap(t, f, 0, 2*testBS, MapOptions{})
	if !faults(func() { ro.Bytes()[10] = 1 }) {
		t.Fatal("a store into a read-only window did not fault")
	}
	rw := mustMap(t, f, 0, 4*testBS, MapOptions{Writable: true})
	if !faults(func() { rw.Bytes()[3*testBS] = 1 }) {
		t.Fatal("a store past the end of the file did not fault")
	}
	if faults(func() { rw.Bytes()[testBS] = 1 }) {
		t.Fatal("a store inside the file through a writable window faulted")
	}
	if got := mustGet(t, s, "k"); got[testBS] != 1 {
		t.Fatal("store through the window not in the file")
	}
	sameAsFile(t, ro, f, "read-only window after the store")
}

func TestStoreCloseLeavesWindowsStaleAndZero(t *testing.T) {
	s := newStore(t, 4<<20, nil)
	mustPut(t, s, "k", pattern(1, 4*testBS))
	f := mustOpen(t, s, "k")
	w, err := f.Map(0, 4*testBS, MapOptions{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close with a follow window open: %v", err)
	}
	if !w.Stale() || !allZero(w.Bytes()) {
		t.Fatal("window not stale and zero after the store's Close")
	}
	wantErr(t, w.Flush(), ErrClosed)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestMapRefusesSmallBlocksAndBadInput(t *testing.T) {
	small := newStore(t, 1<<20, func(o *Options) { o.BlockSize = 512 })
	mustPut(t, small, "k", pattern(1, 4096))
	f := mustOpen(t, small, "k")
	defer f.Close()
	_, err := f.Map(0, 512, MapOptions{})
	wantErr(t, err, errors.ErrUnsupported)

	s := newStore(t, 4<<20, nil)
	mustPut(t, s, "k", pattern(1, 4096))
	g := mustOpen(t, s, "k")
	defer g.Close()
	before := snapshot(t, s)
	for _, c := range []struct {
		off, n int64
		o      MapOptions
		want   error
	}{
		{0, 0, MapOptions{}, ErrInvalidRange},
		{-1, 10, MapOptions{}, ErrInvalidRange},
		{0, MaxFileSize + 1, MapOptions{}, ErrInvalidRange},
		{0, 10, MapOptions{Mode: 7}, ErrInvalidRange},
		{0, 10, MapOptions{Label: "\xff"}, ErrInvalidLabel},
		{0, 10000, MapOptions{Mode: MapPinned}, ErrInvalidRange}, // past EOF
	} {
		_, err := g.Map(c.off, c.n, c.o)
		wantErr(t, err, c.want)
	}
	sameState(t, s, before)
}

func TestPinsAndStatsShowWindows(t *testing.T) {
	s := newStore(t, 4<<20, nil)
	mustPut(t, s, "k", pattern(1, 4*testBS))
	f := mustOpen(t, s, "k")
	defer f.Close()
	mustMap(t, f, 0, 2*testBS, MapOptions{Label: "fw"})
	mustMap(t, f, 0, 2*testBS, MapOptions{Label: "pw", Mode: MapPinned})
	mustPin(t, f, 0, 10, PinOptions{Label: "p"})
	modes := map[string]PinInfo{}
	for _, p := range s.Pins() {
		modes[p.Label] = p
	}
	if modes["fw"].Mode != "follow window" || modes["fw"].Pieces != 1 || modes["fw"].Blocks != 0 ||
		modes["pw"].Mode != "pinned window" || modes["pw"].Pieces != 1 || modes["pw"].Blocks != 2 ||
		modes["p"].Mode != "pin" {
		t.Fatalf("Pins: %+v", modes)
	}
	st := mustStats(t, s)
	if st.Windows != 2 || st.WindowPieces != 2 {
		t.Fatalf("Stats: windows %d pieces %d", st.Windows, st.WindowPieces)
	}
	if err := f.PunchHole(testBS, testBS); err != nil {
		t.Fatal(err)
	}
	if st := mustStats(t, s); st.WindowRemaps == 0 || st.WindowPieces != 3 {
		t.Fatalf("after a punch under the follow window: remaps %d pieces %d", st.WindowRemaps, st.WindowPieces)
	}
}

func TestWindowOnPowerCutMedia(t *testing.T) {
	dir := t.TempDir()
	sim := powercut.New(1)
	s := powerCutStore(t, dir, sim)
	mustPut(t, s, "k", pattern(1, 3*testBS))
	f := mustOpen(t, s, "k")
	w, err := f.Map(0, 3*testBS, MapOptions{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	sameAsFile(t, w, f, "emulated media")
	copy(w.Bytes()[testBS:], "through the window")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	sameAsFile(t, w, f, "after a store")
	if err := f.PunchHole(0, testBS); err != nil {
		t.Fatal(err)
	}
	sameAsFile(t, w, f, "after a punch")
	w.Close()
	f.Close()
	s = restartAfterCut(t, s, dir, sim) // no cut: a plain restart
	if got := mustGet(t, s, "k"); string(got[testBS:testBS+18]) != "through the window" {
		t.Fatalf("flushed store through the window lost on emulated media: %q", got[testBS:testBS+18])
	}
}

// tagged returns n bytes of 8-byte words that each name owner.
func tagged(owner uint64, n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], owner)
	}
	return b
}

func TestFollowWindowNeverShowsAnotherKeysBytesUnderConcurrentBreaks(t *testing.T) {
	const (
		bs     = testBS
		blocks = 16
		rounds = 120
		ownerA = 0xAAAA_0000_0000_AAAA
		ownerB = 0xBBBB_0000_0000_BBBB
	)
	// A small region, so that the blocks a punch frees are soon reused by
	// the other key's Puts.
	s := newStore(t, 64*bs, func(o *Options) { o.InlineLimit = -1 })
	mustPut(t, s, "a", tagged(ownerA, blocks*bs))
	f := mustOpen(t, s, "a")
	defer f.Close()
	ro := mustMap(t, f, 0, blocks*bs, MapOptions{Label: "reader"})
	rw := mustMap(t, f, 0, blocks*bs, MapOptions{Label: "writer", Writable: true})
	done := make(chan struct{})
	errs := make(chan error, 3)
	read := func(w *Window) {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if r := recover(); r != nil {
				errs <- fmt.Errorf("reader of %q faulted: %v", w.Label(), r)
			}
		}()
		for {
			select {
			case <-done:
				errs <- nil
				return
			default:
			}
			b := w.Bytes()
			for i := 0; i+8 <= len(b); i += 8 {
				// A store through the writable window racing an
				// in-place zeroing may leave a word part zero, but
				// every byte must be key a's or zero.
				v := binary.LittleEndian.Uint64(b[i:])
				for k := 0; k < 64; k += 8 {
					if c := byte(v >> k); c != 0 && c != byte(uint64(ownerA)>>k) {
						errs <- fmt.Errorf("window %q shows word %#x at offset %d, not key a's", w.Label(), v, i)
						return
					}
				}
			}
		}
	}
	go read(ro)
	go read(rw)
	go func() {
		// Stores through the writable window, racing the breaks: they
		// must never reach key b's blocks.
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if r := recover(); r != nil {
				errs <- fmt.Errorf("writer faulted: %v", r)
			}
		}()
		b := rw.Bytes()
		for i := 0; ; i = (i + 8) % len(b) {
			select {
			case <-done:
				errs <- nil
				return
			default:
			}
			binary.LittleEndian.PutUint64(b[i:], ownerA)
		}
	}()
	for r := range rounds {
		off := int64(r%blocks) * bs
		var err error
		switch r % 4 {
		case 0:
			err = f.PunchHole(off, 3*bs)
		case 1:
			err = f.ZeroRange(off, 2*bs+96) // word aligned: a word is zero or whole
		case 2:
			// Up only: the writer stores all over the window, and a
			// store past the end of the file faults by design.
			err = f.Truncate(blocks*bs + off + 16)
		case 3:
			err = s.Put("a", tagged(ownerA, blocks*bs))
		}
		if err != nil {
			t.Fatalf("round %d: %v", r, err)
		}
		if err := s.Put("b", tagged(ownerB, 16*bs)); err != nil {
			t.Fatalf("round %d: put b: %v", r, err)
		}
		if got := mustGet(t, s, "b"); !bytes.Equal(got, tagged(ownerB, 16*bs)) {
			t.Fatalf("round %d: a store through key a's window reached key b's blocks", r)
		}
	}
	close(done)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	mustCheck(t, s)
}

func TestFailedRemapLeavesTheWindowStaleAndZero(t *testing.T) {
	s := newStore(t, 64*testBS, func(o *Options) { o.InlineLimit = -1 })
	mustPut(t, s, "a", pattern(1, 8*testBS))
	f := mustOpen(t, s, "a")
	defer f.Close()
	w := mustMap(t, f, 0, 8*testBS, MapOptions{})
	w.remapErr = errors.New("injected mmap failure")
	gen := w.Generation()
	if err := f.PunchHole(0, 8*testBS); err != nil {
		t.Fatalf("a punch failed for a window's sake: %v", err)
	}
	if !w.Stale() || !allZero(w.Bytes()) || w.Generation() == gen || w.Pieces() != 1 {
		t.Fatalf("after a failed remap: stale %v, zero %v, generation %d (was %d), pieces %d",
			w.Stale(), allZero(w.Bytes()), w.Generation(), gen, w.Pieces())
	}
	// The freed blocks go to another key; the window keeps its zeros.
	mustPut(t, s, "b", pattern(2, 40*testBS))
	if !allZero(w.Bytes()) {
		t.Fatal("a stale window shows another key's bytes")
	}
	if _, err := f.WriteAt(pattern(3, testBS), 0); err != nil {
		t.Fatal(err)
	}
	if !allZero(w.Bytes()) {
		t.Fatal("a stale window follows its file again")
	}
	mustCheck(t, s)
}

func TestWritableWindowOnAFullRegionGetsZeroPagesAndTheBreakSucceeds(t *testing.T) {
	s := newStore(t, 32*testBS, func(o *Options) { o.InlineLimit = -1; o.AllocWait = -1 })
	mustPut(t, s, "a", pattern(1, 8*testBS))
	f := mustOpen(t, s, "a")
	defer f.Close()
	w := mustMap(t, f, 0, 8*testBS, MapOptions{Writable: true})
	free := mustStats(t, s).FreeBlocks
	mustPut(t, s, "filler", pattern(2, int(free)*testBS)) // the region is full
	if err := f.PunchHole(2*testBS, 2*testBS); err != nil {
		t.Fatalf("punch under a writable window on a full region: %v", err)
	}
	sameAsFile(t, w, f, "after the punch")
	if !faults(func() { w.Bytes()[2*testBS] = 1 }) {
		t.Fatal("a punched page left without a block is writable")
	}
	if faults(func() { w.Bytes()[0] = 1 }) {
		t.Fatal("a backed page stopped being writable")
	}
	// Space comes back; the next change of the file backs the pages.
	if err := s.Remove("filler"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("x"), 7*testBS); err != nil {
		t.Fatal(err)
	}
	if faults(func() { w.Bytes()[2*testBS] = 1 }) {
		t.Fatal("the punched pages are still unbacked after space came back")
	}
	sameAsFile(t, w, f, "after backing")
	mustCheck(t, s)
}

func TestForcedCloseLeavesPinnedWindowsStaleAndZero(t *testing.T) {
	s := newStore(t, 4<<20, nil)
	mustPut(t, s, "k", pattern(1, 4*testBS))
	f := mustOpen(t, s, "k")
	defer f.Close()
	w, err := f.Map(0, 4*testBS, MapOptions{Mode: MapPinned})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWith(context.Background(), CloseOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if !w.Stale() || !allZero(w.Bytes()) {
		t.Fatal("pinned window not stale and zero after a forced Close")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close of a pinned window after a forced Close: %v", err)
	}
	wantErr(t, w.Close(), ErrClosed)
}

func TestMapZeroesWhatAShrinkLeftPastTheEnd(t *testing.T) {
	s := newStore(t, 4<<20, nil)
	mustPut(t, s, "k", pattern(1, 2*testBS))
	f := mustOpen(t, s, "k")
	defer f.Close()
	// Without a window the shrink leaves the tail of block 1 in place.
	if err := f.Truncate(testBS + 100); err != nil {
		t.Fatal(err)
	}
	w := mustMap(t, f, 0, 2*testBS, MapOptions{})
	sameAsFile(t, w, f, "window over a shrunk last block")
	if err := f.Truncate(2 * testBS); err != nil {
		t.Fatal(err)
	}
	sameAsFile(t, w, f, "after growing back")
}

func TestWindowsOnAReadOnlyStore(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{Size: 4 << 20, NoAdminSocket: true, InlineLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "k", pattern(1, 3*testBS))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(dir, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	f := mustOpen(t, ro, "k")
	defer f.Close()
	w := mustMap(t, f, 0, 4*testBS, MapOptions{})
	sameAsFile(t, w, f, "read-only store")
	for _, o := range []MapOptions{{Writable: true}, {Mode: MapPinned}} {
		_, err := f.Map(0, testBS, o)
		wantErr(t, err, ErrReadOnly)
	}
}

// TestWritableWindowPagesPastEOFFollowTheEndAtPageGranularity: with blocks
// of two pages, a writable window maps the second page of the file's last
// block read-only while the file ends in the first, writable once the file
// grows into it (a WriteAt inside the same block), and read-only again
// after a shrink back; ReadAt and the window agree throughout.
func TestWritableWindowPagesPastEOFFollowTheEndAtPageGranularity(t *testing.T) {
	pageSize := int64(os.Getpagesize())
	bs := 2 * pageSize
	s := newStore(t, 256*bs, func(o *Options) { o.BlockSize = uint32(bs) })
	mustPut(t, s, "k", pattern(1, int(3*bs+100))) // ends 100 bytes into block 3
	f := mustOpen(t, s, "k")
	defer f.Close()
	w := mustMap(t, f, bs, 4*bs, MapOptions{Writable: true})
	second := 2*bs + pageSize + 10 // window byte in the second page of block 3
	if !faults(func() { w.Bytes()[second] = 'x' }) {
		t.Fatal("a store into a page wholly past EOF did not fault")
	}
	if faults(func() { w.Bytes()[2*bs+200] = 0 }) {
		t.Fatal("a store into the last page, past EOF, faulted")
	}
	sameAsFile(t, w, f, "before growing")
	if _, err := f.WriteAt([]byte("grown"), 3*bs+pageSize+50); err != nil {
		t.Fatal(err)
	}
	sameAsFile(t, w, f, "after a WriteAt into the second page")
	if faults(func() { w.Bytes()[second] = 'y' }) {
		t.Fatal("a store into the second page, inside the file now, faulted")
	}
	if got := fileRange(t, f, bs+second, 1); got[0] != 'y' {
		t.Fatalf("the store through the window reads back as %q", got)
	}
	if err := f.Truncate(3*bs + 100); err != nil {
		t.Fatal(err)
	}
	sameAsFile(t, w, f, "after shrinking back")
	if !faults(func() { w.Bytes()[second] = 'z' }) {
		t.Fatal("after the shrink, a store into the page wholly past EOF did not fault")
	}
}

// TestWritableWindowMapsEveryWrittenPageWritableAroundUnbackedHoles: on a
// full region, an extension past EOF leaves the gap under a writable
// follow window unbacked (read-only zeros, as Map's doc allows), and a
// later partial write into one gap block backs that block alone. Every
// page inside the file that a written block backs must then be mapped
// writable (the block before each hole included) and every hole page
// read-only, with the window equal to ReadAt. (TestWindowStress once
// reported a written block before such a hole as read-only; the cause was
// its own attribution of the fault, see TestWindowStoreFaultNamesTheRefusingPage
// in test/, and this pins down the layout itself.)
func TestWritableWindowMapsEveryWrittenPageWritableAroundUnbackedHoles(t *testing.T) {
	const bs = testBS
	for gap := uint64(3); gap < 10; gap++ {
		t.Run(fmt.Sprintf("write into gap block %d", gap), func(t *testing.T) {
			s := newStore(t, 33*bs, func(o *Options) { o.BlockSize = bs; o.AllocWait = -1 })
			mustPut(t, s, "k", pattern(1, 2*bs+100))
			mustPut(t, s, "spare", pattern(3, bs))
			f := mustOpen(t, s, "k")
			defer f.Close()
			w := mustMap(t, f, 0, 16*bs, MapOptions{Writable: true})
			st, err := s.Stats()
			if err != nil {
				t.Fatal(err)
			}
			mustPut(t, s, "fill", pattern(2, int(st.FreeBlocks-2)*bs))
			// Two blocks at 10 and 11: the gap [3,10) stays unbacked.
			if _, err := f.WriteAt(pattern(4, bs+10), 10*bs); err != nil {
				t.Fatal(err)
			}
			if st, _ := s.Stats(); st.FreeBlocks != 0 {
				t.Fatalf("%d blocks free after the extension, want none", st.FreeBlocks)
			}
			if err := s.Remove("spare"); err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(pattern(5, 50), int64(gap)*bs+1000); err != nil {
				t.Fatal(err)
			}
			size, err := f.Size()
			if err != nil {
				t.Fatal(err)
			}
			sameAsFile(t, w, f, "after the partial write into the gap")
			holes := 0
			for fb := int64(0); fb*bs < size; fb++ {
				h, err := f.SeekHole(fb * bs)
				if err != nil {
					t.Fatal(err)
				}
				hole := h == fb*bs
				if hole {
					holes++
				} else if fb >= 3 && fb < 10 && fb != int64(gap) {
					t.Fatalf("gap block %d is backed: the region was not full", fb)
				}
				if fb == int64(gap) && hole {
					t.Fatalf("gap block %d is still a hole after the write into it", fb)
				}
				i := fb*bs + 8
				before := w.Bytes()[i]
				if faults(func() { w.Bytes()[i] = before }) != hole {
					t.Errorf("block %d (hole %v, file size %d): a store through the writable window faulted = %v, want %v",
						fb, hole, size, !hole, hole)
				}
			}
			if holes != 6 {
				t.Fatalf("%d holes in the file, want the 6 gap blocks left unbacked", holes)
			}
		})
	}
}
