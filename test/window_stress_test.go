package test

// The window stress exists to prove, under load and the race detector, the
// two promises a follow window makes while its file changes under it: no
// reader ever sees another file's bytes through it, and no store through it
// ever reaches a block its file no longer owns. Readers scan read-only and
// writable follow windows while other goroutines punch, truncate, zero,
// Put, allocate, remove and refill a region kept near full (so freed blocks
// are reused at once), and writers store through the writable windows. Every
// 8-byte word written names its owner: the key, the key's incarnation (a
// Remove and re-Create starts a new one) and the word's own file offset, so
// a word that shows up in another file, in another incarnation or at
// another offset is caught wherever it lands. Between rounds, with nothing
// running, every file holds only its own words, every follow window equals
// ReadAt, and a store through each writable window lands in its file.
//
// A reader racing a change may see the range's old or new words, or zeros;
// that is why words carry no per-write generation: racing stores through a
// window may legitimately land after a Put that started later.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daxstore/daxstore/dax"
)

var (
	wstressDuration = flag.Duration("wstress.duration", 30*time.Second, "duration of TestWindowStress (3s with -short)")
	wstressSeed     = flag.Int64("wstress.seed", 0, "seed of TestWindowStress (0: time-based)")
)

const (
	wsKeys      = 4
	wsBS        = 4096
	wsMaxBlocks = 32 // a file's words stay below this many blocks (mostly)
	// The region holds less than the keys could fill, so allocations
	// often run out and every freed block is soon someone else's.
	wsDataBlocks = wsKeys * wsMaxBlocks * 3 / 4
	wsOpsPerRnd  = 150 // operations of each changer per round
)

// wsWord is the word key k (incarnation inc) keeps at byte offset off:
// [k+1][tag][inc, 2 bytes][off/8, 4 bytes]. tag is free for the writer
// (the quiet check stores a marker there); readers ignore it.
func wsWord(k int, tag uint8, inc uint16, off int64) uint64 {
	return uint64(k+1) | uint64(tag)<<8 | uint64(inc)<<16 | uint64(off/8)<<32
}

// wsFill returns words of key k for bytes [off, off+n) (both multiples of 8).
func wsFill(k int, tag uint8, inc uint16, off, n int64) []byte {
	p := make([]byte, n)
	for i := int64(0); i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(p[i:], wsWord(k, tag, inc, off+i))
	}
	return p
}

// wsBad returns the index of the first word of b (file bytes at off) that
// is neither zero nor key k's word of incarnation inc for its offset, or -1.
func wsBad(k int, inc uint16, off int64, b []byte) int {
	for i := 0; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		if w == 0 {
			continue
		}
		if w&0xff != uint64(k+1) || uint16(w>>16) != inc || int64(w>>32) != (off+int64(i))/8 {
			return i
		}
	}
	return -1
}

// wsTorn is wsBad for a read racing writes: a copy of memory is not atomic
// per word, so a word being stored may read as a mix of its old and new
// bytes. Its old and new values are zero or the key's word for that offset
// (differing only in the tag), so every byte of such a mix is zero or the
// key's; any other byte (another key's id, another incarnation or offset)
// is foreign.
func wsTorn(k int, inc uint16, off int64, b []byte) int {
	for i := 0; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		want := wsWord(k, 0, inc, off+int64(i))
		for j := 0; j < 8; j++ {
			if j == 1 {
				continue // the tag
			}
			if g := byte(w >> (8 * j)); g != 0 && g != byte(want>>(8*j)) {
				return i
			}
		}
	}
	return -1
}

func wsDescribe(w uint64) string {
	if w == 0 {
		return "zeros"
	}
	return fmt.Sprintf("[key %d tag %d incarnation %d offset %d]", int(w&0xff)-1, uint8(w>>8), uint16(w>>16), int64(w>>32)*8)
}

func wsKey(k int) string { return fmt.Sprintf("w%d", k) }

// wsWindow is a follow window of one round, mapped while nothing ran.
type wsWindow struct {
	w        *dax.Window
	k        int
	inc      uint16 // the incarnation of the key it was mapped on
	writable bool
}

type wsTest struct {
	t    *testing.T
	s    *dax.Store
	seed int64
	stop atomic.Bool
	// ns[k] orders re-creations of key k (exclusive: Remove, Create and
	// the incarnation bump) against the operations that stamp words with
	// the incarnation (shared), so a stamped word is always its file's.
	ns   [wsKeys]sync.RWMutex
	inc  [wsKeys]atomic.Uint32
	wins []*wsWindow
	// What the run covered, logged at the end: only correctness is
	// asserted, never how much work fit.
	scans, stores, faults, breaks, refills, nospace atomic.Int64
	unbacked                                        atomic.Int64 // quiet stores that met a page left unbacked
	logMu                                           sync.Mutex
	log                                             []string
}

func (c *wsTest) logf(format string, args ...any) {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	c.log = append(c.log, fmt.Sprintf(format, args...))
	if len(c.log) > 1200 {
		c.log = c.log[len(c.log)-1000:]
	}
}

func (c *wsTest) failf(format string, args ...any) {
	c.t.Helper()
	c.logMu.Lock()
	recent := append([]string(nil), c.log[max(0, len(c.log)-60):]...)
	c.logMu.Unlock()
	c.t.Errorf("seed %d (rerun: go test ./test -run TestWindowStress -wstress.seed=%d): %s\nrecent operations (all goroutines):\n%s",
		c.seed, c.seed, fmt.Sprintf(format, args...), joinLines(recent))
	c.stop.Store(true)
}

// keyLog returns the logged operations on key k still kept, with the
// round marks, for a failure that an earlier change of k explains.
func (c *wsTest) keyLog(k int) string {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	var out []string
	for _, l := range c.log {
		if strings.Contains(l, " "+wsKey(k)+" ") || strings.HasPrefix(l, "round ") {
			out = append(out, l)
		}
	}
	return joinLines(out)
}

func joinLines(l []string) string {
	var b bytes.Buffer
	for _, s := range l {
		b.WriteString("  " + s + "\n")
	}
	return b.String()
}

// wsAllowed: outcomes a racing change may meet.
func wsAllowed(err error) bool {
	if err == nil || errors.Is(err, dax.ErrNotFound) || errors.Is(err, dax.ErrNoSpace) {
		return true
	}
	return false
}

func TestWindowStress(t *testing.T) {
	d := *wstressDuration
	if testing.Short() {
		d = min(d, 3*time.Second)
	}
	seed := *wstressSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun with -wstress.seed=%d), %v", seed, seed, d)
	s, err := dax.Open(t.TempDir(), &dax.Options{
		Size: (wsDataBlocks + 1) * wsBS, BlockSize: wsBS, AllocWait: -1, NoAdminSocket: true, NoSync: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &wsTest{t: t, s: s, seed: seed}
	defer func() {
		c.unmapAll()
		s.Close()
	}()
	for k := range wsKeys {
		if _, err := s.Create(wsKey(k)); err != nil {
			t.Fatal(err)
		}
		c.inc[k].Store(1)
	}
	rng := rand.New(rand.NewSource(seed))
	deadline := time.Now().Add(d)
	rounds := 0
	for !c.stop.Load() && (rounds == 0 || time.Now().Before(deadline)) {
		rounds++
		c.logf("round %d", rounds)
		c.mapRound(rng)
		c.round(rng.Int63(), rounds)
		if c.t.Failed() {
			break
		}
		c.quiet(rng)
		c.unmapAll()
	}
	t.Logf("%d rounds: %d scans, %d window stores (%d faulted on a page a change had made read-only), %d breaks, %d refills, %d ErrNoSpace, %d quiet stores met a page a full region left unbacked",
		rounds, c.scans.Load(), c.stores.Load(), c.faults.Load(), c.breaks.Load(), c.refills.Load(), c.nospace.Load(), c.unbacked.Load())
	if t.Failed() {
		return
	}
	c.closeUnderReaders(rng.Int63())
}

// mapRound maps the round's windows while nothing runs: per key a
// read-only and a writable follow window at random 8-aligned ranges, some
// reaching past EOF, some wholly past it.
func (c *wsTest) mapRound(rng *rand.Rand) {
	for k := range wsKeys {
		f, err := c.s.Open(wsKey(k))
		if err != nil {
			c.t.Fatalf("open %s: %v", wsKey(k), err)
		}
		for _, writable := range []bool{false, true} {
			off := rng.Int63n(wsMaxBlocks*wsBS/8) * 8
			n := (1 + rng.Int63n(wsMaxBlocks*wsBS/8)) * 8
			if rng.Intn(4) == 0 {
				off, n = 0, (wsMaxBlocks+1)*wsBS
			}
			w, err := f.Map(off, n, dax.MapOptions{Writable: writable, Label: fmt.Sprintf("%s-%v", wsKey(k), writable)})
			if errors.Is(err, dax.ErrNoSpace) {
				// Filling the holes of a writable window needs space, and
				// so does moving an inline value into blocks.
				c.nospace.Add(1)
				continue
			}
			if err != nil {
				c.t.Fatalf("map %s [%d,+%d) writable %v: %v", wsKey(k), off, n, writable, err)
			}
			c.logf("map %s [%d,+%d) writable %v", wsKey(k), off, n, writable)
			c.wins = append(c.wins, &wsWindow{w: w, k: k, inc: uint16(c.inc[k].Load()), writable: writable})
		}
		f.Close()
	}
}

func (c *wsTest) unmapAll() {
	for _, w := range c.wins {
		if err := w.w.Close(); err != nil {
			c.t.Errorf("close window: %v", err)
		}
	}
	c.wins = nil
}

// round runs readers until the changers and window writers have done their
// operations.
func (c *wsTest) round(seed int64, round int) {
	var readers, workers sync.WaitGroup
	var done atomic.Bool
	rng := rand.New(rand.NewSource(seed))
	for range 2 {
		r := rand.New(rand.NewSource(rng.Int63()))
		readers.Add(1)
		go func() { defer readers.Done(); c.reader(r, &done) }()
	}
	for g := range 3 {
		r := rand.New(rand.NewSource(rng.Int63()))
		workers.Add(1)
		go func() { defer workers.Done(); c.changer(r, g) }()
	}
	r := rand.New(rand.NewSource(rng.Int63()))
	workers.Add(1)
	go func() { defer workers.Done(); c.windowWriter(r) }()
	workers.Wait()
	done.Store(true)
	readers.Wait()
}

// scan checks every word a window shows. A stale window must read zeros.
// The bytes are copied first, so what is reported is what was read.
func (c *wsTest) scan(w *wsWindow, what string) {
	stale := w.w.Stale()
	off := w.w.Offset()
	b := make([]byte, w.w.Len())
	if err := catchFault(func() { copy(b, w.w.Bytes()) }); err != nil {
		c.failf("%s: reading window of %s [%d,+%d): %v", what, wsKey(w.k), off, len(b), err)
		return
	}
	bad := -1
	if stale {
		for i := 0; i+8 <= len(b); i += 8 {
			if binary.LittleEndian.Uint64(b[i:]) != 0 {
				bad = i
				break
			}
		}
	} else {
		bad = wsTorn(w.k, w.inc, off, b)
	}
	if bad >= 0 {
		c.failf("%s: window of %s incarnation %d [%d,+%d) writable %v stale %v shows %s at file offset %d",
			what, wsKey(w.k), w.inc, off, len(b), w.writable, stale, wsDescribe(binary.LittleEndian.Uint64(b[bad:])), off+int64(bad))
	}
	c.scans.Add(1)
}

func (c *wsTest) reader(rng *rand.Rand, done *atomic.Bool) {
	if len(c.wins) == 0 {
		return
	}
	for !done.Load() && !c.stop.Load() {
		c.scan(c.wins[rng.Intn(len(c.wins))], "reader")
	}
	// One more pass after the last change, so every window is read at
	// least once per round whatever the scheduling.
	for _, w := range c.wins {
		c.scan(w, "reader")
	}
}

// stamped runs fn with key k's file and incarnation while no re-creation
// of k can start.
func (c *wsTest) stamped(k int, fn func(f *dax.File, inc uint16) error) error {
	c.ns[k].RLock()
	defer c.ns[k].RUnlock()
	f, err := c.s.Open(wsKey(k))
	if err != nil {
		return err
	}
	defer f.Close()
	return fn(f, uint16(c.inc[k].Load()))
}

func wsRange(rng *rand.Rand) (off, n int64) {
	off = rng.Int63n(wsMaxBlocks*wsBS/8) * 8
	switch rng.Intn(3) {
	case 0:
		off = off / wsBS * wsBS
		n = (1 + rng.Int63n(4)) * wsBS
	default:
		n = (1 + rng.Int63n(3*wsBS/8)) * 8
	}
	return off, n
}

// changer punches, truncates, zeroes, allocates, Puts, removes and refills
// random keys.
func (c *wsTest) changer(rng *rand.Rand, g int) {
	for i := 0; i < wsOpsPerRnd && !c.stop.Load(); i++ {
		k := rng.Intn(wsKeys)
		off, n := wsRange(rng)
		var what string
		var err error
		// A remove leaves the key's windows stale for the rest of the
		// round, so it is rare: about one a round.
		r := rng.Intn(20)
		if r == 11 && rng.Intn(15) != 0 {
			r = 12 // a write instead
		}
		switch {
		case r < 3:
			what = fmt.Sprintf("punch [%d,+%d)", off, n)
			err = c.stamped(k, func(f *dax.File, _ uint16) error { return f.PunchHole(off, n) })
			c.breaks.Add(1)
		case r < 5:
			what = fmt.Sprintf("zero [%d,+%d)", off, n)
			err = c.stamped(k, func(f *dax.File, _ uint16) error { return f.ZeroRange(off, n) })
			c.breaks.Add(1)
		case r < 7:
			size := rng.Int63n(wsMaxBlocks*wsBS/8+1) * 8
			what = fmt.Sprintf("truncate %d", size)
			err = c.stamped(k, func(f *dax.File, _ uint16) error { return f.Truncate(size) })
			c.breaks.Add(1)
		case r < 8:
			what = fmt.Sprintf("allocate [%d,+%d)", off, n)
			err = c.stamped(k, func(f *dax.File, _ uint16) error { return f.Allocate(off, n) })
		case r < 11:
			size := rng.Int63n(wsMaxBlocks*wsBS/8+1) * 8
			what = fmt.Sprintf("put %d bytes", size)
			err = c.stamped(k, func(_ *dax.File, inc uint16) error {
				return c.s.Put(wsKey(k), wsFill(k, uint8(g), inc, 0, size))
			})
			c.refills.Add(1)
		case r < 12:
			what = "remove and create"
			c.ns[k].Lock()
			err = c.s.Remove(wsKey(k))
			if err == nil {
				c.inc[k].Add(1)
				var f *dax.File
				if f, err = c.s.Create(wsKey(k)); err == nil {
					f.Close()
				}
			}
			c.ns[k].Unlock()
			c.breaks.Add(1)
		default:
			what = fmt.Sprintf("write [%d,+%d)", off, n)
			err = c.stamped(k, func(f *dax.File, inc uint16) error {
				_, err := f.WriteAt(wsFill(k, uint8(g), inc, off, n), off)
				return err
			})
			c.refills.Add(1)
		}
		c.logf("changer %d: %s %s: %v", g, wsKey(k), what, err)
		if errors.Is(err, dax.ErrNoSpace) {
			c.nospace.Add(1)
		}
		if !wsAllowed(err) {
			c.failf("changer %d: %s %s: %v", g, wsKey(k), what, err)
			return
		}
	}
}

// windowWriter stores words through the writable windows. A store racing
// a truncate or a remove may meet a page just made read-only (past EOF, or
// a stale window): that fault is the documented outcome and is counted;
// every other store must land in the window's file or in nothing, which
// the readers and the quiet check prove.
func (c *wsTest) windowWriter(rng *rand.Rand) {
	var ws []*wsWindow
	for _, w := range c.wins {
		if w.writable {
			ws = append(ws, w)
		}
	}
	if len(ws) == 0 {
		return
	}
	for i := 0; i < 2*wsOpsPerRnd && !c.stop.Load(); i++ {
		w := ws[rng.Intn(len(ws))]
		b := w.w.Bytes()
		// Aim inside the file as it is now, mostly: a racing change may
		// still make the page read-only before the store lands. One store
		// in eight aims anywhere in the window, past EOF too.
		limit := int64(len(b))
		if rng.Intn(8) != 0 {
			fi, err := c.s.Stat(wsKey(w.k))
			if errors.Is(err, dax.ErrNotFound) {
				continue // between a Remove and its Create
			}
			if err != nil {
				c.failf("stat %s: %v", wsKey(w.k), err)
				return
			}
			limit = min(limit, fi.Size-w.w.Offset())
		}
		if limit < 8 {
			continue
		}
		a := rng.Int63n(limit/8) * 8
		n := min(limit-a, (1+rng.Int63n(2*wsBS/8))*8)
		p := wsFill(w.k, 0x77, w.inc, w.w.Offset()+a, n)
		if err := catchFault(func() { copy(b[a:a+n], p) }); err != nil {
			c.faults.Add(1)
		}
		c.stores.Add(1)
	}
}

// quiet checks the state between rounds, with nothing running: Check
// passes; every file holds only its own words (so no store through a
// window reached a block another file owns now); every follow window
// equals ReadAt of its range, zeros past EOF, or is stale and zero exactly
// when its key was re-created; and a store through each writable window
// inside its file shows in ReadAt.
func (c *wsTest) quiet(rng *rand.Rand) {
	if err := c.s.Check(); err != nil {
		c.failf("check: %v", err)
		return
	}
	for k := range wsKeys {
		v, err := c.s.Get(wsKey(k))
		if err != nil {
			c.failf("get %s: %v", wsKey(k), err)
			return
		}
		if i := wsBad(k, uint16(c.inc[k].Load()), 0, v); i >= 0 {
			c.failf("%s holds %s at offset %d: a block took another file's words", wsKey(k), wsDescribe(binary.LittleEndian.Uint64(v[i:])), i)
			return
		}
	}
	for _, w := range c.wins {
		if !c.quietWindow(rng, w) {
			return
		}
	}
}

// quietWindow checks one window between rounds: stale and zero exactly
// when its key was re-created, else equal to ReadAt of its range (zeros
// past EOF); and a store through a writable one inside the file lands in
// the file. It reports false after a failure.
func (c *wsTest) quietWindow(rng *rand.Rand, w *wsWindow) bool {
	t := c.t
	removed := w.inc != uint16(c.inc[w.k].Load())
	got := w.w.Bytes()
	off := w.w.Offset()
	if w.w.Stale() != removed {
		c.failf("window of %s incarnation %d: Stale() = %v, want %v", wsKey(w.k), w.inc, w.w.Stale(), removed)
		return false
	}
	want := make([]byte, len(got))
	// The file's last page is mapped whole: bytes a writable window stored
	// past EOF inside it stay in the window (not in the file), as with an
	// mmap. There the window may show its own words; elsewhere it must
	// equal ReadAt, zeros past EOF.
	tailLo, tailHi := int64(0), int64(0)
	if !removed {
		f, err := c.s.Open(wsKey(w.k))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.ReadAt(want, off); err != nil && err != io.EOF {
			t.Fatalf("read %s: %v", wsKey(w.k), err)
		}
		size, err := f.Size()
		if err != nil {
			t.Fatal(err)
		}
		page := int64(os.Getpagesize())
		tailLo = min(max(size, off), off+int64(len(got))) - off
		tailHi = min(max((size+page-1)/page*page, off), off+int64(len(got))) - off
		// Compared before and after a store through it.
		if !c.quietCompare(w, got, want, tailLo, tailHi) {
			return false
		}
		if w.writable && !c.quietStore(rng, w, f, want) {
			return false
		}
	}
	return c.quietCompare(w, got, want, tailLo, tailHi)
}

// quietCompare compares the window's bytes got with want, ReadAt of its
// range, except [tailLo, tailHi) (its last page past EOF), where it may
// show its own words.
func (c *wsTest) quietCompare(w *wsWindow, got, want []byte, tailLo, tailHi int64) bool {
	off := w.w.Offset()
	removed := w.w.Stale()
	if i := wsBad(w.k, w.inc, off+tailLo, got[tailLo:tailHi]); i >= 0 {
		i += int(tailLo)
		c.failf("window of %s incarnation %d [%d,+%d): shows %s at %d, in its last page past EOF",
			wsKey(w.k), w.inc, off, len(got), wsDescribe(binary.LittleEndian.Uint64(got[i:])), off+int64(i))
		return false
	}
	copy(want[tailLo:tailHi], got[tailLo:tailHi])
	if !bytes.Equal(got, want) {
		i := firstDiff(got, want) / 8 * 8
		c.failf("window of %s incarnation %d [%d,+%d) removed %v: shows %s at %d, ReadAt %s\noperations on %s:\n%s",
			wsKey(w.k), w.inc, off, len(got), removed,
			wsDescribe(binary.LittleEndian.Uint64(got[i:])), off+int64(i), wsDescribe(binary.LittleEndian.Uint64(want[i:])),
			wsKey(w.k), c.keyLog(w.k))
		return false
	}
	return true
}

// quietStore stores marked words through writable window w somewhere
// inside its file f and checks that ReadAt shows them; want, the window's
// bytes as ReadAt saw them, is updated to include them. Only a page a full
// region left unbacked (a hole: read-only zeros) may refuse the store.
func (c *wsTest) quietStore(rng *rand.Rand, w *wsWindow, f *dax.File, want []byte) bool {
	t := c.t
	size, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	off := w.w.Offset()
	end := min(off+w.w.Len(), size)
	if off >= end {
		return true
	}
	a := off + rng.Int63n((end-off+7)/8)*8
	n := min(end-a, (1+rng.Int63n(wsBS/8))*8)
	if n <= 0 {
		return true
	}
	got := w.w.Bytes()
	p := wsFill(w.k, 0xEE, w.inc, a, n)
	if err := catchFault(func() { copy(got[a-off:], p) }); err != nil {
		at := a + int64(firstDiff(got[a-off:a-off+n], p))
		if h, herr := f.SeekHole(at); herr != nil || h != at {
			pg := make([]byte, 4096)
			f.ReadAt(pg, at&^4095)
			st, _ := c.s.Stats()
			c.failf("store through writable window of %s at [%d,+%d) inside size %d faulted at %d, which is no hole (SeekHole %d, %v): %v; page zero %v, free %d\noperations on %s:\n%s",
				wsKey(w.k), a, n, size, at, h, herr, err, bytes.Equal(pg, make([]byte, 4096)), st.FreeBlocks, wsKey(w.k), c.keyLog(w.k))
			return false
		}
		c.unbacked.Add(1)
		if _, err := f.ReadAt(want, off); err != nil && err != io.EOF {
			t.Fatalf("read %s: %v", wsKey(w.k), err)
		}
		return true
	}
	back := make([]byte, n)
	if _, err := f.ReadAt(back, a); err != nil {
		t.Fatalf("read %s: %v", wsKey(w.k), err)
	}
	if !bytes.Equal(back, p) {
		c.failf("store through writable window of %s at [%d,+%d) did not land in the file: ReadAt shows %s",
			wsKey(w.k), a, n, wsDescribe(binary.LittleEndian.Uint64(back[firstDiff(back, p)/8*8:])))
		return false
	}
	copy(want[a-off:], p)
	return true
}

// closeUnderReaders closes the store while readers scan follow windows:
// they must never fault, and see only their file's words or zeros; after
// Close every window is stale and zero, and still closes.
func (c *wsTest) closeUnderReaders(seed int64) {
	rng := rand.New(rand.NewSource(seed))
	c.mapRound(rng)
	var done atomic.Bool
	var readers sync.WaitGroup
	for range 2 {
		r := rand.New(rand.NewSource(rng.Int63()))
		readers.Add(1)
		go func() { defer readers.Done(); c.reader(r, &done) }()
	}
	c.logf("close the store under the readers")
	err := c.s.Close()
	done.Store(true)
	readers.Wait()
	if err != nil {
		c.t.Fatalf("close under follow windows: %v", err)
	}
	for _, w := range c.wins {
		if !w.w.Stale() {
			c.t.Fatalf("window of %s not stale after the store closed", wsKey(w.k))
		}
		if b := w.w.Bytes(); !bytes.Equal(b, make([]byte, len(b))) {
			c.t.Fatalf("window of %s reads non-zero bytes after the store closed", wsKey(w.k))
		}
	}
}
