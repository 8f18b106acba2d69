package test

// The window model test proves that mapping windows do what WINDOWS.md and
// File.Map's documentation promise, against the same block model as
// TestModel: random writes, truncates, punches, zero-ranges, Puts, removes,
// renames, allocations and pins run with several windows open at random
// ranges (read-only and writable follow windows, pinned windows, some past
// the end of the file), random stores go through the writable ones, and
// after every operation each follow window must equal the model's bytes of
// its range (zeros past EOF, zeros once its key is removed), each pinned
// window its own blocks' bytes, and ReadAt the window. The seed and the last
// operations are printed on failure.

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daxstore/daxstore/dax"
)

var (
	wmodelSeed = flag.Int64("wmodel.seed", 0, "seed of TestWindowModel (0: time-based)")
	wmodelOps  = flag.Int("wmodel.ops", 0, "operations per TestWindowModel configuration (0: 1000, or 250 with -short)")
)

// windowModelConfigs have room to spare: the model of free space does not
// count the blocks writable follow windows fill, so ErrNoSpace must not
// happen. Blocks of a page and of two pages both map.
var windowModelConfigs = []modelConfig{
	{name: "4k blocks with the region in shared memory", blockSize: 4096, regionBlocks: 2048, maxBlocks: 16, keys: 4, shm: true},
	{name: "8k blocks without sync", blockSize: 8192, regionBlocks: 1024, maxBlocks: 10, keys: 4, noSync: true},
}

func TestWindowModel(t *testing.T) {
	seed := *wmodelSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	ops := *wmodelOps
	if ops == 0 {
		ops = 1000
		if testing.Short() {
			ops = 250
		}
	}
	t.Logf("seed %d (rerun with -wmodel.seed=%d), %d operations per configuration", seed, seed, ops)
	for i, cfg := range windowModelConfigs {
		t.Run(cfg.name, func(t *testing.T) {
			w := &wharness{harness: newHarness(t, cfg, seed+int64(i)), page: int64(os.Getpagesize())}
			w.rerun = fmt.Sprintf("go test ./test -run 'TestWindowModel' -wmodel.seed=%d", seed)
			defer w.shutdownWindows()
			for w.opN = 1; w.opN <= ops; w.opN++ {
				w.step()
			}
			w.finish()
			t.Logf("outcomes: %v", w.counts)
		})
	}
}

// mwin is the model of one open window.
type mwin struct {
	w        *dax.Window
	label    string
	f        *mfile // the file (inode) it maps: follows renames and Puts, not a new key of the same name
	off, n   int64
	writable bool
	pinned   bool
	segs     []seg // a pinned window's blocks, as a pin's
	stale    bool  // a follow window whose key was removed
	gen      uint64
	breaks   *atomic.Int32
	broken   bool
}

type wharness struct {
	*harness
	page int64
	wins []*mwin
}

func (h *wharness) step() {
	type op struct {
		weight int
		fn     func()
	}
	ops := []op{
		{12, h.opWrite}, {4, h.opRead}, {7, h.opTruncate}, {7, h.opPunch}, {6, h.opZero},
		{4, h.opAllocate}, {7, h.opPut}, {3, h.opRemove}, {2, h.opRename}, {3, h.opCreate},
		{3, h.opPin}, {2, h.opCanary}, {2, h.opUnpin},
		{10, h.opMap}, {5, h.opUnmap}, {14, h.opWindowWrite}, {2, h.opWindowFault}, {1, h.opMapBad},
		{3, h.opPutUnderWindow},
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	r := h.rng.Intn(total)
	if h.rng.Intn(300) == 0 {
		h.reopenUnderWindows()
		r = total // no other operation this step
	}
	for _, o := range ops {
		if r < o.weight {
			o.fn()
			break
		}
		r -= o.weight
	}
	h.follow()
	h.verifyWindows(h.opN%25 == 0)
}

// keyOf returns the key that names file f now, or "" once it is removed.
func (h *wharness) keyOf(f *mfile) string {
	for k, g := range h.files {
		if g == f {
			return k
		}
	}
	return ""
}

// follow applies to the model what the store does to follow windows after
// any change: a removed key's windows go stale, and a writable window keeps
// every block of its range inside the file backed (holes and unwritten
// blocks get zeroed blocks, an inline value moves into blocks). Doing it
// after the operation rather than within it yields the same bytes and the
// same block sharing, since the fresh blocks are nobody else's.
func (h *wharness) follow() {
	for _, w := range h.wins {
		if w.pinned {
			for _, s := range w.segs {
				if !s.b.owned {
					w.broken = true
				}
			}
			continue
		}
		if w.stale {
			continue
		}
		if h.keyOf(w.f) == "" {
			w.stale = true
			h.counts["window went stale"]++
			continue
		}
		if w.writable {
			h.back(w.f, w.off, w.n)
		}
	}
}

// back gives every block of f that bytes [off, min(off+n, size)) touch a
// written block, as a writable follow window needs.
func (h *wharness) back(f *mfile, off, n int64) {
	end := min(off+n, f.size)
	if off >= end {
		return
	}
	if f.inline {
		h.spill(f)
	}
	fb, fe := h.span(off, end-off)
	for b := fb; b < fe; b++ {
		if m := f.blocks[b]; m == nil || m.unwritten {
			f.blocks[b] = h.newBlock()
		}
	}
}

// checkFollow compares a follow window with what it must show: the file's
// bytes of its range, zeros past EOF, zeros once stale. It returns the
// first window byte that differs, or -1, and the byte wanted there. The
// part past EOF is checked without building it, as a window may be large.
func (h *wharness) checkFollow(w *mwin, got []byte) (int64, byte) {
	in := int64(0)
	if !w.stale && w.off < w.f.size {
		in = min(w.n, w.f.size-w.off)
		if want := h.read(w.f, w.off, in); !bytes.Equal(got[:in], want) {
			i := firstDiff(got[:in], want)
			return int64(i), want[i]
		}
	}
	for i := in; i < w.n; i += int64(len(zeroChunk)) {
		c := got[i:min(w.n, i+int64(len(zeroChunk)))]
		if !bytes.Equal(c, zeroChunk[:len(c)]) {
			return i + int64(firstDiff(c, zeroChunk[:len(c)])), 0
		}
	}
	return -1, 0
}

// zeroChunk is compared with the parts of windows that must read as zeros.
var zeroChunk = make([]byte, 64<<10)

func (h *wharness) wantPinned(w *mwin) []byte {
	out := make([]byte, 0, w.n)
	for _, s := range w.segs {
		out = append(out, s.b.data[s.lo:s.hi]...)
	}
	return out
}

func (h *wharness) verifyWindows(full bool) {
	h.t.Helper()
	if err := h.s.Check(); err != nil {
		h.fatalf("check: %v", err)
	}
	for _, w := range h.wins {
		got := w.w.Bytes()
		if int64(len(got)) != w.n {
			h.fatalf("window %s: Bytes has %d bytes, want %d", w.label, len(got), w.n)
		}
		if g := w.w.Generation(); g < w.gen {
			h.fatalf("window %s: generation went back from %d to %d", w.label, w.gen, g)
		} else {
			w.gen = g
		}
		if w.pinned {
			if want := h.wantPinned(w); !bytes.Equal(got, want) {
				h.fatalf("pinned window %s [%d,+%d): differs from its blocks at %d", w.label, w.off, w.n, firstDiff(got, want))
			}
			want := int32(0)
			if w.broken {
				want = 1
			}
			if n := w.breaks.Load(); n != want {
				h.fatalf("pinned window %s: OnBreak called %d times, want %d", w.label, n, want)
			}
			continue
		}
		if st := w.w.Stale(); st != w.stale {
			h.fatalf("follow window %s: Stale() = %v, model %v", w.label, st, w.stale)
		}
		if i, want := h.checkFollow(w, got); i >= 0 {
			h.fatalf("follow window %s [%d,+%d) of size %d (stale %v): differs from the model at window byte %d (file offset %d): got %#x want %#x",
				w.label, w.off, w.n, w.f.size, w.stale, i, w.off+i, got[i], want)
		}
		if w.stale {
			continue
		}
		// ReadAt of the same range must agree with the window (and so
		// with the model) up to EOF.
		if n := min(w.n, w.f.size-w.off); n > 0 {
			p := make([]byte, n)
			if _, err := h.file(h.keyOf(w.f)).ReadAt(p, w.off); err != nil {
				h.fatalf("read under window %s: %v", w.label, err)
			}
			if !bytes.Equal(p, got[:n]) {
				h.fatalf("ReadAt [%d,+%d) differs from window %s at %d", w.off, n, w.label, firstDiff(p, got[:n]))
			}
		}
	}
	h.verifyWindowInspection()
	if !full {
		return
	}
	for _, k := range h.existingKeys() {
		h.verifyFile(k)
	}
}

// verifyWindowInspection compares what Pins and Stats say of the windows
// with the model: each window listed once with its mode, range, pieces
// and (pinned) blocks, and the totals.
func (h *wharness) verifyWindowInspection() {
	h.t.Helper()
	byLabel := map[string]dax.PinInfo{}
	for _, pi := range h.s.Pins() {
		if pi.Mode == "pin" {
			continue // TestModel checks pins
		}
		if _, dup := byLabel[pi.Label]; dup {
			h.fatalf("Pins() lists window %q twice", pi.Label)
		}
		byLabel[pi.Label] = pi
	}
	if len(byLabel) != len(h.wins) {
		h.fatalf("Pins() lists %d windows, model has %d", len(byLabel), len(h.wins))
	}
	pieces := 0
	for _, w := range h.wins {
		pi, ok := byLabel[w.label]
		if !ok {
			h.fatalf("Pins() does not list window %s", w.label)
		}
		mode, blocks, detached := "follow window", uint64(0), uint64(0)
		if w.pinned {
			mode, blocks = "pinned window", uint64(len(w.segs))
			for _, s := range w.segs {
				if !s.b.owned {
					detached++
				}
			}
		}
		n := w.w.Pieces()
		pieces += n
		if pi.Mode != mode || pi.Offset != w.off || pi.Length != w.n || pi.Writable != w.writable ||
			pi.Blocks != blocks || pi.Detached != detached || pi.Pieces != n || n < 1 {
			h.fatalf("Pins() reports %+v for window %s, model has %s [%d,+%d) writable %v, %d blocks (%d detached), %d pieces",
				pi, w.label, mode, w.off, w.n, w.writable, blocks, detached, n)
		}
	}
	st, err := h.s.Stats()
	if err != nil {
		h.fatalf("stats: %v", err)
	}
	if st.Windows != len(h.wins) || st.WindowPieces != pieces {
		h.fatalf("stats report %d windows in %d pieces, model has %d in %d", st.Windows, st.WindowPieces, len(h.wins), pieces)
	}
}

// --- window operations ---

// opPutUnderWindow is a Put over a key that has a follow window: the
// window then shows the new value (follow checks that), and its Generation
// changes when the new value reaches into its range.
func (h *wharness) opPutUnderWindow() {
	var ws []*mwin
	for _, w := range h.wins {
		if !w.pinned && !w.stale {
			ws = append(ws, w)
		}
	}
	if len(ws) == 0 {
		return
	}
	f := ws[h.rng.Intn(len(ws))].f
	key := h.keyOf(f)
	old := map[*mblock]bool{}
	for _, m := range f.blocks {
		old[m] = true
	}
	oldInline, gens := f.inline, map[*mwin]uint64{}
	for _, w := range h.wins {
		gens[w] = w.w.Generation()
	}
	// opPut draws its key from h.keys: offer it only this one.
	keys := h.keys
	h.keys = []string{key}
	h.opPut()
	h.keys = keys
	replaced := f.inline != oldInline || len(f.blocks) != len(old)
	for _, m := range f.blocks {
		replaced = replaced || !old[m]
	}
	if !replaced {
		return // refused (Fail over a pin, no space), or empty over empty
	}
	for _, w := range h.wins {
		if w.f == f && !w.pinned && w.off < f.size && w.w.Generation() == gens[w] {
			h.fatalf("follow window %s [%d,+%d): Generation still %d after a Put of %d bytes over its key", w.label, w.off, w.n, gens[w], f.size)
		}
	}
	h.counts["put under a window"]++
}

func (h *wharness) opMap() {
	if len(h.wins) >= 8 {
		h.opUnmap()
	}
	key := h.pickExisting()
	if key == "" {
		h.opCreate()
		return
	}
	f := h.files[key]
	h.nextID++
	w := &mwin{label: fmt.Sprintf("win%d", h.nextID), f: f, breaks: new(atomic.Int32)}
	switch r := h.rng.Intn(8); {
	case r < 3:
	case r < 6:
		w.writable = true
	default:
		w.pinned = true
		w.writable = h.rng.Intn(2) == 0
	}
	if w.pinned {
		if f.size == 0 {
			return
		}
		w.off = h.rng.Int63n(f.size)
		w.n = 1 + h.rng.Int63n(min(f.size-w.off, 4*h.bs))
	} else {
		w.off = h.randOff(f.size)
		switch h.rng.Intn(10) {
		case 0: // wholly past EOF
			w.off = f.size + h.rng.Int63n(2*h.bs)
			w.n = 1 + h.rng.Int63n(2*h.bs)
		case 1: // large: the whole space the operations aim at, and more
			w.off = h.rng.Int63n(h.bs)
			w.n = h.cfg.maxBlocks*h.bs + h.rng.Int63n(4*h.bs)
		case 2: // from the start
			w.off = 0
			w.n = max(1, f.size) + h.rng.Int63n(h.bs)
		case 3: // more than 2 MiB, which the store aligns for huge pages
			if h.rng.Intn(3) == 0 {
				w.off = h.rng.Int63n(h.cfg.maxBlocks) * h.bs
				w.n = 3<<20 + h.rng.Int63n(h.bs)
			} else {
				w.n = 1 + h.rng.Int63n(4*h.bs)
			}
		default:
			w.n = 1 + h.rng.Int63n(4*h.bs)
		}
	}
	mode := dax.MapFollow
	if w.pinned {
		mode = dax.MapPinned
	}
	h.logf("map %q [%d,+%d) %s %v writable %v (size %d)", key, w.off, w.n, w.label, mode, w.writable, f.size)
	opts := dax.MapOptions{Writable: w.writable, Label: w.label, Mode: mode}
	if w.pinned {
		opts.OnBreak = func() { w.breaks.Add(1) }
	}
	win, err := h.file(key).Map(w.off, w.n, opts)
	if err != nil {
		h.fatalf("map %q [%d,+%d): %v", key, w.off, w.n, err)
	}
	w.w = win
	if win.Offset() != w.off || win.Len() != w.n || win.Mode() != mode || win.Writable() != w.writable || win.Label() != w.label {
		h.fatalf("window reports [%d,+%d) %v writable %v %q, want [%d,+%d) %v writable %v %q",
			win.Offset(), win.Len(), win.Mode(), win.Writable(), win.Label(), w.off, w.n, mode, w.writable, w.label)
	}
	if p := win.Pieces(); p < 1 {
		h.fatalf("window %s takes %d pieces", w.label, p)
	}
	w.gen = win.Generation()
	h.counts["map "+mode.String()]++
	if w.pinned {
		// Exactly a pin of the range: holes and unwritten blocks get
		// zeroed blocks, which the window then shares with the file.
		h.spill(f)
		fb, fe := h.span(w.off, w.n)
		for b := fb; b < fe; b++ {
			if m := f.blocks[b]; m == nil || m.unwritten {
				f.blocks[b] = h.newBlock()
			}
			m := f.blocks[b]
			m.pins++
			base := b * h.bs
			w.segs = append(w.segs, seg{b: m, lo: max(base, w.off) - base, hi: min(base+h.bs, w.off+w.n) - base})
		}
	}
	h.wins = append(h.wins, w)
}

func (h *wharness) opUnmap() {
	if len(h.wins) == 0 {
		return
	}
	h.unmap(h.rng.Intn(len(h.wins)))
}

func (h *wharness) unmap(i int) {
	w := h.wins[i]
	h.logf("close window %s", w.label)
	if err := w.w.Close(); err != nil {
		h.fatalf("close window %s: %v", w.label, err)
	}
	if err := w.w.Close(); !errors.Is(err, dax.ErrClosed) {
		h.fatalf("second close of window %s: %v, want ErrClosed", w.label, err)
	}
	for _, s := range w.segs {
		s.b.pins--
	}
	h.wins = append(h.wins[:i], h.wins[i+1:]...)
}

// opWindowWrite stores random bytes through a writable window: for a
// follow window only within the file (past EOF its pages are read-only),
// and they must land in the file; for a pinned window anywhere in it, and
// they land in its blocks (and so in the file while it still maps them).
func (h *wharness) opWindowWrite() {
	var ws []*mwin
	for _, w := range h.wins {
		if w.writable && !w.stale && (w.pinned || w.off < w.f.size) {
			ws = append(ws, w)
		}
	}
	if len(ws) == 0 {
		return
	}
	w := ws[h.rng.Intn(len(ws))]
	limit := w.n
	if !w.pinned {
		limit = min(w.n, w.f.size-w.off)
	}
	a := h.rng.Int63n(limit)
	b := a + 1 + h.rng.Int63n(min(limit-a, 3*h.bs))
	p := h.randBytes(b - a)
	h.logf("store through window %s [%d,+%d) at window bytes [%d,%d) (size %d)", w.label, w.off, w.n, a, b, w.f.size)
	if err := catchFault(func() { copy(w.w.Bytes()[a:b], p) }); err != nil {
		h.fatalf("store through writable window %s at [%d,%d): %v", w.label, a, b, err)
	}
	h.counts["window store"]++
	if w.pinned {
		pos := int64(0)
		for _, s := range w.segs {
			l := s.hi - s.lo
			lo, hi := max(a, pos), min(b, pos+l)
			if lo < hi {
				copy(s.b.data[s.lo+lo-pos:s.lo+hi-pos], p[lo-a:hi-a])
			}
			pos += l
		}
	} else {
		off := w.off + a
		fb, fe := h.span(off, b-a)
		for blk := fb; blk < fe; blk++ {
			m := w.f.blocks[blk]
			if m == nil || m.unwritten || w.f.inline {
				h.fatalf("model: writable window %s over a block it does not back (file block %d)", w.label, blk)
			}
			base := blk * h.bs
			lo, hi := max(base, off), min(base+h.bs, off+b-a)
			copy(m.data[lo-base:hi-base], p[lo-off:hi-off])
		}
	}
	if h.rng.Intn(3) == 0 {
		if err := w.w.Flush(); err != nil {
			h.fatalf("flush window %s: %v", w.label, err)
		}
	}
}

// opWindowFault stores into a byte a window maps read-only: any byte of a
// read-only or stale window, a page of a writable follow window wholly past
// EOF. It must fault (a panic under SetPanicOnFault) and change nothing.
func (h *wharness) opWindowFault() {
	type target struct {
		w *mwin
		i int64
	}
	var ts []target
	for _, w := range h.wins {
		i := h.rng.Int63n(w.n)
		switch {
		case !w.writable || w.stale:
			ts = append(ts, target{w, i})
		case !w.pinned:
			// The first page of the window wholly past EOF, if any.
			eofPage := (w.f.size + h.page - 1) / h.page * h.page
			if first := max(eofPage, w.off); first < w.off+w.n {
				ts = append(ts, target{w, first - w.off + h.rng.Int63n(w.off+w.n-first)})
			}
		}
	}
	if len(ts) == 0 {
		return
	}
	t := ts[h.rng.Intn(len(ts))]
	b := t.w.w.Bytes()
	before := b[t.i]
	h.logf("store into read-only byte %d of window %s [%d,+%d) writable %v stale %v (size %d)",
		t.i, t.w.label, t.w.off, t.w.n, t.w.writable, t.w.stale, t.w.f.size)
	if err := catchFault(func() { b[t.i] = before ^ 0x5a }); err == nil {
		h.fatalf("store into read-only byte %d of window %s did not fault", t.i, t.w.label)
	}
	if b[t.i] != before {
		h.fatalf("faulting store changed byte %d of window %s", t.i, t.w.label)
	}
	h.counts["read-only store faulted"]++
}

// catchFault runs fn with faults turned into panics, and returns the
// fault's panic as an error (nil when fn did not fault).
func catchFault(fn func()) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("fault: %v", r)
		}
	}()
	fn()
	return nil
}

// opMapBad maps with bad input: a clear error, no window, no change.
func (h *wharness) opMapBad() {
	key := h.pickExisting()
	if key == "" {
		return
	}
	f, size := h.file(key), h.files[key].size
	cases := []struct {
		name string
		off  int64
		n    int64
		mode dax.WindowMode
	}{
		{"negative offset", -1, 10, dax.MapFollow},
		{"negative length", 0, -1, dax.MapFollow},
		{"past the largest size", dax.MaxFileSize - 1, 2, dax.MapFollow},
		{"pinned past EOF", size, 1, dax.MapPinned},
		{"pinned across EOF", max(0, size-1), 2 + h.bs, dax.MapPinned},
	}
	c := cases[h.rng.Intn(len(cases))]
	h.logf("map bad input: %s [%d,+%d) of size %d", c.name, c.off, c.n, size)
	w, err := f.Map(c.off, c.n, dax.MapOptions{Mode: c.mode, Label: "bad"})
	if !errors.Is(err, dax.ErrInvalidRange) {
		if w != nil {
			_ = w.Close()
		}
		h.fatalf("map with %s: %v, want ErrInvalidRange", c.name, err)
	}
	h.counts["map bad input"]++
}

// finish reopens the store and compares every file with the model, and
// with a window of it.
func (h *wharness) finish() {
	h.reopenUnderWindows()
	for _, k := range h.existingKeys() {
		h.verifyFile(k)
		// One window per file after the reopen shows the same bytes.
		f := h.files[k]
		w, err := h.file(k).Map(0, max(1, f.size), dax.MapOptions{Label: "final"})
		if err != nil {
			h.fatalf("map %q after reopen: %v", k, err)
		}
		if got, want := w.Bytes(), h.read(f, 0, max(1, f.size)); !bytes.Equal(got, want) {
			h.fatalf("window of %q after reopen differs at %d", k, firstDiff(got, want))
		}
		if err := w.Close(); err != nil {
			h.fatalf("close window of %q after reopen: %v", k, err)
		}
	}
}

// reopenUnderWindows closes the pinned windows and pins, closes the store
// under the follow windows (which must then be stale zeros that fault on a
// store, and still close), and opens the store again.
func (h *wharness) reopenUnderWindows() {
	for i := len(h.wins) - 1; i >= 0; i-- {
		if h.wins[i].pinned {
			h.unmap(i)
		}
	}
	for len(h.pins) > 0 {
		h.unpin(len(h.pins) - 1)
	}
	h.logf("close the store under %d follow windows", len(h.wins))
	h.counts["reopen under windows"]++
	if err := h.s.Close(); err != nil {
		h.fatalf("close with follow windows open: %v", err)
	}
	for _, w := range h.wins {
		if !w.w.Stale() {
			h.fatalf("follow window %s is not stale after the store closed", w.label)
		}
		if b := w.w.Bytes(); !bytes.Equal(b, make([]byte, w.n)) {
			h.fatalf("follow window %s reads non-zero byte at %d after the store closed", w.label, firstDiff(b, make([]byte, w.n)))
		}
		if err := catchFault(func() { w.w.Bytes()[0] = 1 }); err == nil {
			h.fatalf("store into window %s of a closed store did not fault", w.label)
		}
	}
	for len(h.wins) > 0 {
		h.unmap(len(h.wins) - 1)
	}
	h.handle = map[string]*dax.File{}
	h.dead = nil
	s, err := dax.Open(h.dir, &h.opts)
	if err != nil {
		h.fatalf("reopen: %v", err)
	}
	h.s = s
	if err := s.Check(); err != nil {
		h.fatalf("check after reopen: %v", err)
	}
}

// shutdownWindows releases whatever a failed run left open.
func (h *wharness) shutdownWindows() {
	for _, w := range h.wins {
		_ = w.w.Close()
	}
	h.wins = nil
	h.shutdown()
}
