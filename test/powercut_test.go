package test

// The power-cut test exists to prove crash consistency at the level of the
// persistence layer: a store runs on emulated media that keep only flushed
// cache lines (plus, in a torn cut, a random part of the unflushed ones) and
// on a journal filesystem that keeps only synced writes. The power is cut
// inside a random flush, the store is reopened, and every acknowledged
// operation must have survived exactly, the one in flight must have landed
// whole or not at all (or byte by byte where the API says so), and no block
// may have leaked or show another key's bytes.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daxstore/daxstore/dax"
	"github.com/daxstore/daxstore/internal/daxtest"
	"github.com/daxstore/daxstore/internal/powercut"
)

var (
	powercutSeed   = flag.Int64("powercut.seed", 0, "first seed of TestPowerCut (0: time-based)")
	powercutRounds = flag.Int("powercut.rounds", 0, "rounds of TestPowerCut (0: 250, or 40 with -short)")
)

const (
	pcKeys       = 6
	pcBlockSize  = 4096
	pcMaxSize    = 12 * pcBlockSize // files stay within this many bytes
	pcRegion     = 1 << 20          // 255 data blocks: room for every file, a Put's copy and the pins
	pcMaxPins    = 4
	pcCutsPerRun = 2   // power cuts per round, each followed by a reopen and a full check
	pcMaxOps     = 150 // operations per phase; the power is cut at the end if no flush cut it
	pcMaxFlushes = 40  // a cut lands inside one of this many flushes
)

// Every byte a key's data can hold is 0 or comes from the key's own
// alphabet, [32k+1, 32k+31], so a byte of another key or of a stale pin
// writer (alphabet pcStale) is told apart from the key's own bytes.
const pcStale = 7

func pcAlphabet(b byte) int {
	if b == 0 {
		return -1
	}
	return int(b-1) / 32
}

// pcBytes returns n bytes of key k's alphabet derived from seed.
func pcBytes(k int, seed int64, n int) []byte {
	r := rand.New(rand.NewSource(seed))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(32*k + 1 + r.Intn(31))
	}
	return p
}

func pcKey(k int) string { return fmt.Sprintf("k%d", k) }

// pcState is what one key holds.
type pcState struct {
	exists bool
	data   []byte
}

func (s pcState) clone() pcState { return pcState{s.exists, bytes.Clone(s.data)} }

// at is byte i of s, where bytes past the end read as zero.
func (s pcState) at(i int) byte {
	if i < len(s.data) {
		return s.data[i]
	}
	return 0
}

// How the operation in flight at the cut may have landed.
type pcMode int

const (
	// pcWhole: the key holds the state before or the state after, exactly.
	pcWhole pcMode = iota
	// pcBytewise: the key exists as before, its size is the size before or
	// after, and each byte is the byte before or after (zero past the end).
	pcBytewise
	// pcBytewiseGrow is pcBytewise for a write that grows the file: its data
	// is flushed before the size is committed, so the grown size implies
	// the exact state after.
	pcBytewiseGrow
)

// pcInFlight is the operation running when the power went: the key it
// changes, the key's state if it landed, and how it may land.
type pcInFlight struct {
	key   int
	after pcState
	mode  pcMode
}

// pcPin is a pin the workload holds.
type pcPin struct {
	key    int
	off, n int
	label  string
	pin    dax.Pin
	broken *atomic.Bool // OnBreak fired: some block left the file
}

// pcRound runs one seeded round: phases of random operations, each ended by
// a power cut, a reopen and a full check.
type pcRound struct {
	t    *testing.T
	seed int64
	rng  *rand.Rand
	dir  string
	sim  *powercut.Sim
	s    *dax.Store
	keys [pcKeys]pcState // the acknowledged state
	pins []*pcPin
	log  []string
	next int64 // source of content seeds and pin labels
	cov  *pcCoverage
}

// pcCoverage counts what the rounds exercised, so a run shows that cuts
// land inside every kind of operation.
type pcCoverage struct {
	acked    int            // operations acknowledged before a cut
	inFlight map[string]int // cuts inside an operation, by its kind
	between  int            // cuts between operations
}

func TestPowerCut(t *testing.T) {
	rounds := *powercutRounds
	if rounds <= 0 {
		rounds = 250
		if testing.Short() {
			rounds = 40
		}
	}
	seed := *powercutSeed
	if seed == 0 {
		seed = time.Now().UnixNano() % 1e9
	}
	t.Logf("seed %d, %d rounds (rerun with -powercut.seed=%d -powercut.rounds=%d)", seed, rounds, seed, rounds)
	cov := &pcCoverage{inFlight: map[string]int{}}
	for i := range rounds {
		r := &pcRound{t: t, seed: seed + int64(i), dir: t.TempDir(), cov: cov}
		r.rng = rand.New(rand.NewSource(r.seed))
		r.run()
		if t.Failed() {
			return
		}
	}
	t.Logf("%d operations acknowledged; cuts between operations: %d; cuts inside: %v", cov.acked, cov.between, cov.inFlight)
}

// fatalf fails the test with the round's seed and operation log.
func (r *pcRound) fatalf(format string, args ...any) {
	r.t.Helper()
	log := r.log
	if len(log) > 300 {
		log = log[len(log)-300:]
	}
	r.t.Fatalf("round seed %d (rerun with -powercut.seed=%d -powercut.rounds=1): %s\noperation log (last %d):\n  %s",
		r.seed, r.seed, fmt.Sprintf(format, args...), len(log), strings.Join(log, "\n  "))
}

func (r *pcRound) logf(format string, args ...any) {
	r.log = append(r.log, fmt.Sprintf(format, args...))
}

func (r *pcRound) options() *dax.Options {
	return daxtest.WithPowerCut(&dax.Options{
		Size: pcRegion, BlockSize: pcBlockSize, NoAdminSocket: true,
		AllocWait:  -1,
		InodeCache: 1, // files not in use are read back from the journal
	}, r.sim)
}

func (r *pcRound) run() {
	r.sim = powercut.New(r.seed)
	s, err := dax.Open(r.dir, r.options())
	if err != nil {
		r.fatalf("open a new store: %v", err)
	}
	r.s = s
	for phase := range pcCutsPerRun {
		r.logf("-- phase %d", phase)
		inFlight := r.workload()
		r.powerCycle()
		r.verify(inFlight)
	}
	if err := r.s.Close(); err != nil {
		r.fatalf("close after the last check: %v", err)
	}
}

// workload arms a cut and runs random operations until it fires, and
// returns the operation that was running when it did (nil if none was).
// One phase in eight instead cuts between two operations, after a random
// number of them.
func (r *pcRound) workload() *pcInFlight {
	n, tear := 1+r.rng.Intn(pcMaxFlushes), []float64{0, 0.5, 1}[r.rng.Intn(3)]
	ops := pcMaxOps
	if r.rng.Intn(8) == 0 {
		ops = 1 + r.rng.Intn(40)
		r.logf("no cut armed: cut after %d operations, tear %v", ops, tear)
	} else {
		r.logf("arm: cut inside flush %d from now (flush %d so far), tear %v", n, r.sim.Flushes(), tear)
		r.sim.CutAfterFlushes(n, tear)
	}
	for range ops {
		op := r.step()
		if r.sim.Cut() {
			r.logf("   ^ in flight at the cut")
			r.cov.inFlight[strings.Fields(r.log[len(r.log)-2])[0]]++
			return op
		}
		r.cov.acked++
		if op != nil {
			r.keys[op.key] = op.after
			r.checkKey(op.key)
		}
	}
	r.logf("cut now, between operations, tear %v", tear)
	r.cov.between++
	r.sim.CutNow(tear)
	return nil
}

// step runs one random operation and returns what it changes, or nil if it
// changes no key's content. Any error fails the round.
func (r *pcRound) step() *pcInFlight {
	k := r.rng.Intn(pcKeys)
	st := r.keys[k]
	key := pcKey(k)
	r.next++
	seed := r.seed*1000 + r.next
	switch x := r.rng.Intn(100); {
	case x < 18: // Put: atomic replace
		n := r.rng.Intn(pcMaxSize + 1)
		if r.rng.Intn(3) == 0 {
			n = r.rng.Intn(2049) // within the default inline limit: stored in the journal record
		}
		v := pcBytes(k, seed, n)
		r.logf("put %s len %d seed %d", key, len(v), seed)
		if err := r.s.Put(key, v); err != nil {
			r.fatalf("put %s: %v", key, err)
		}
		return &pcInFlight{key: k, after: pcState{true, v}, mode: pcWhole}
	case x < 22 && !st.exists: // Create
		r.logf("create %s", key)
		f, err := r.s.Create(key)
		if err != nil {
			r.fatalf("create %s: %v", key, err)
		}
		f.Close()
		return &pcInFlight{key: k, after: pcState{true, nil}, mode: pcWhole}
	case x >= 22 && x < 27 && st.exists: // Remove
		r.logf("remove %s", key)
		if err := r.s.Remove(key); err != nil {
			r.fatalf("remove %s: %v", key, err)
		}
		return &pcInFlight{key: k, after: pcState{}, mode: pcWhole}
	case !st.exists:
		return nil
	case x < 50: // WriteAt into holes, new blocks and written blocks
		off := r.rng.Intn(min(len(st.data)+pcBlockSize, pcMaxSize-1) + 1)
		n := 1 + r.rng.Intn(min(5*pcBlockSize/2, pcMaxSize-off))
		p := pcBytes(k, seed, n)
		r.logf("write %s off %d len %d seed %d (size %d)", key, off, n, seed, len(st.data))
		r.withFile(key, func(f *dax.File) error { _, err := f.WriteAt(p, int64(off)); return err })
		after := st.clone()
		if off+n > len(after.data) {
			after.data = append(after.data, make([]byte, off+n-len(after.data))...)
		}
		copy(after.data[off:], p)
		mode := pcBytewise
		if len(after.data) > len(st.data) {
			mode = pcBytewiseGrow
		}
		return &pcInFlight{key: k, after: after, mode: mode}
	case x < 57: // Truncate, shrinking or growing
		size := r.rng.Intn(pcMaxSize + 1)
		r.logf("truncate %s to %d (size %d)", key, size, len(st.data))
		r.withFile(key, func(f *dax.File) error { return f.Truncate(int64(size)) })
		after := st.clone()
		after.data = append(after.data, make([]byte, max(0, size-len(after.data)))...)[:size]
		return &pcInFlight{key: k, after: after, mode: pcBytewise}
	case x < 71: // PunchHole or ZeroRange, partial and whole blocks
		off := r.rng.Intn(len(st.data) + 1)
		n := 1 + r.rng.Intn(3*pcBlockSize)
		zero := x < 64
		name := map[bool]string{false: "punch", true: "zero"}[zero]
		r.logf("%s %s off %d len %d (size %d)", name, key, off, n, len(st.data))
		r.withFile(key, func(f *dax.File) error {
			if zero {
				return f.ZeroRange(int64(off), int64(n))
			}
			return f.PunchHole(int64(off), int64(n))
		})
		after := st.clone()
		clear(after.data[min(off, len(after.data)):min(off+n, len(after.data))])
		return &pcInFlight{key: k, after: after, mode: pcBytewise}
	case x < 77: // Allocate: unwritten blocks that read as zeros
		off := r.rng.Intn(pcMaxSize)
		n := 1 + r.rng.Intn(pcMaxSize-off)
		r.logf("allocate %s off %d len %d (size %d)", key, off, n, len(st.data))
		r.withFile(key, func(f *dax.File) error { return f.Allocate(int64(off), int64(n)) })
		after := st.clone()
		if off+n > len(after.data) {
			after.data = append(after.data, make([]byte, off+n-len(after.data))...)
		}
		return &pcInFlight{key: k, after: after, mode: pcBytewise}
	case x < 87 && len(st.data) > 0 && len(r.pins) < pcMaxPins: // Pin, canary, Flush
		return r.pinOp(k, seed)
	case x < 95 && len(r.pins) > 0: // a pin holder stores through its slices
		return r.scribble(seed)
	case len(r.pins) > 0: // Unpin
		i := r.rng.Intn(len(r.pins))
		p := r.pins[i]
		r.logf("unpin %s", p.label)
		if err := p.pin.Unpin(); err != nil {
			r.fatalf("unpin %s: %v", p.label, err)
		}
		r.pins = slices.Delete(r.pins, i, i+1)
	}
	return nil
}

// withFile runs fn on an open handle of key; an error fails the round.
func (r *pcRound) withFile(key string, fn func(f *dax.File) error) {
	r.t.Helper()
	f, err := r.s.Open(key)
	if err != nil {
		r.fatalf("open %s: %v", key, err)
	}
	defer f.Close()
	if err := fn(f); err != nil {
		r.fatalf("%s: %v", r.log[len(r.log)-1], err)
	}
}

// pinOp pins a range of key k writable, stores canary bytes into the whole
// range through the pin and flushes them: a zero-copy write.
func (r *pcRound) pinOp(k int, seed int64) *pcInFlight {
	st := r.keys[k]
	off := r.rng.Intn(len(st.data))
	n := 1 + r.rng.Intn(min(len(st.data)-off, 2*pcBlockSize))
	p := &pcPin{key: k, off: off, n: n, label: fmt.Sprintf("pin%d", r.next), broken: new(atomic.Bool)}
	r.logf("pin %s off %d len %d as %s, canary seed %d", pcKey(k), off, n, p.label, seed)
	r.withFile(pcKey(k), func(f *dax.File) error {
		var err error
		p.pin, err = f.Pin(int64(off), int64(n), dax.PinOptions{
			Writable: true, Label: p.label, OnBreak: func() { p.broken.Store(true) },
		})
		return err
	})
	r.pins = append(r.pins, p)
	canary := pcBytes(k, seed, n)
	r.store(p, 0, canary)
	after := st.clone()
	copy(after.data[off:], canary)
	return &pcInFlight{key: k, after: after, mode: pcBytewise}
}

// scribble stores through a random pin and flushes. Through an intact pin
// that is a write to the file; through a pin whose blocks all left the file
// it is a stale writer, whose bytes (alphabet pcStale) must never show up in
// any key. A pin whose blocks left the file only in part is left alone,
// since which of its bytes the file still sees is not modelled.
func (r *pcRound) scribble(seed int64) *pcInFlight {
	p := r.pins[r.rng.Intn(len(r.pins))]
	from := r.rng.Intn(p.n)
	n := 1 + r.rng.Intn(p.n-from)
	if !p.broken.Load() {
		data := pcBytes(p.key, seed, n)
		r.logf("scribble through intact %s at %d len %d seed %d", p.label, from, n, seed)
		r.store(p, from, data)
		after := r.keys[p.key].clone()
		copy(after.data[p.off+from:], data)
		return &pcInFlight{key: p.key, after: after, mode: pcBytewise}
	}
	for _, pi := range r.s.Pins() {
		if pi.Label == p.label && pi.Detached == pi.Blocks {
			r.logf("stale scribble through detached %s at %d len %d seed %d", p.label, from, n, seed)
			r.store(p, from, pcBytes(pcStale, seed, n))
			return nil
		}
	}
	return nil
}

// store copies data into pin p's bytes at offset from, then flushes them.
func (r *pcRound) store(p *pcPin, from int, data []byte) {
	pos := 0 // offset in the pinned range of the current slice
	for _, b := range p.pin.Bytes() {
		lo, hi := max(from, pos), min(from+len(data), pos+len(b))
		if lo < hi {
			copy(b[lo-pos:hi-pos], data[lo-from:hi-from])
		}
		pos += len(b)
	}
	if pos != p.n {
		r.fatalf("%s: Bytes covers %d bytes, pinned %d", p.label, pos, p.n)
	}
	if err := p.pin.Flush(); err != nil {
		r.fatalf("flush %s: %v", p.label, err)
	}
}

// checkKey compares key k with the acknowledged state while the power is
// on, so that a model mistake shows up at its operation, not after a cut.
func (r *pcRound) checkKey(k int) {
	got, ok := r.read(k)
	want := r.keys[k]
	if ok != want.exists || !bytes.Equal(got, want.data) {
		r.fatalf("before any cut, %s: exists %v, %d bytes; model: exists %v, %d bytes%s",
			pcKey(k), ok, len(got), want.exists, len(want.data), pcDiff(k, got, want.data))
	}
}

// read returns key k's bytes, and whether it exists.
func (r *pcRound) read(k int) ([]byte, bool) {
	v, err := r.s.Get(pcKey(k))
	if errors.Is(err, dax.ErrNotFound) {
		return nil, false
	}
	if err != nil {
		r.fatalf("get %s: %v", pcKey(k), err)
	}
	return v, true
}

// powerCycle retires the store that saw the cut, restores power and opens
// what survived.
func (r *pcRound) powerCycle() {
	// Dropping the pins first lets the dead store unmap its region; a
	// forced close with pins would keep the mapping until the process ends.
	for _, p := range r.pins {
		_ = p.pin.Unpin()
	}
	r.pins = nil
	if err := r.s.CloseWith(context.Background(), dax.CloseOptions{Force: true}); err != nil {
		r.logf("close of the dead store: %v", err)
	}
	r.sim.Restart()
	s, err := dax.Open(r.dir, r.options())
	if err != nil {
		r.fatalf("open after the power cut: %v", err)
	}
	r.s = s
}

// verify checks the reopened store against the model, then adopts what it
// found as the acknowledged state.
func (r *pcRound) verify(op *pcInFlight) {
	if err := r.s.Check(); err != nil {
		r.fatalf("check after the power cut: %v", err)
	}
	st, err := r.s.Stats()
	if err != nil {
		r.fatalf("stats: %v", err)
	}
	if st.BusyBlocks != 0 || st.Pins != 0 || st.FreeBlocks+st.UsedBlocks != st.DataBlocks {
		r.fatalf("after the power cut: %d busy blocks, %d pins, free %d + used %d != %d data blocks",
			st.BusyBlocks, st.Pins, st.FreeBlocks, st.UsedBlocks, st.DataBlocks)
	}
	infos, err := r.s.List("")
	if err != nil {
		r.fatalf("list: %v", err)
	}
	listed := map[string]bool{}
	for _, fi := range infos {
		listed[fi.Key] = true
	}
	var maxUsed uint64 // every mapped block lies below its file's size
	for k := range pcKeys {
		got, ok := r.read(k)
		if ok != listed[pcKey(k)] {
			r.fatalf("after the power cut, Get finds %s = %v but List says %v", pcKey(k), ok, listed[pcKey(k)])
		}
		delete(listed, pcKey(k))
		if op != nil && op.key == k {
			r.checkInFlight(k, op, got, ok)
		} else if want := r.keys[k]; ok != want.exists || !bytes.Equal(got, want.data) {
			r.fatalf("after the power cut, acknowledged %s: exists %v, %d bytes; want exists %v, %d bytes%s",
				pcKey(k), ok, len(got), want.exists, len(want.data), pcDiff(k, got, want.data))
		}
		r.keys[k] = pcState{ok, got}
		maxUsed += uint64((len(got) + pcBlockSize - 1) / pcBlockSize)
	}
	if len(listed) > 0 {
		r.fatalf("after the power cut, List shows keys nobody created: %v", listed)
	}
	for k := range pcKeys {
		r.checkTail(k)
	}
	if st.UsedBlocks > maxUsed {
		r.fatalf("after the power cut, %d blocks are used but the files span only %d", st.UsedBlocks, maxUsed)
	}
	r.logf("verified: %d used, %d free blocks", st.UsedBlocks, st.FreeBlocks)
}

// checkTail proves that growing key k reads zeros past its current end: it
// grows the file to the end of its last block, reads, and truncates back
// (which zeroes that part of the block again).
func (r *pcRound) checkTail(k int) {
	st := r.keys[k]
	size := len(st.data)
	if !st.exists || size%pcBlockSize == 0 {
		return
	}
	end := size + pcBlockSize - size%pcBlockSize
	r.logf("check tail %s: truncate to %d and back to %d", pcKey(k), end, size)
	r.withFile(pcKey(k), func(f *dax.File) error { return f.Truncate(int64(end)) })
	got, _ := r.read(k)
	r.withFile(pcKey(k), func(f *dax.File) error { return f.Truncate(int64(size)) })
	if len(got) != end || !bytes.Equal(got[:size], st.data) {
		r.fatalf("after the power cut, %s changed while growing it to check its tail%s", pcKey(k), pcDiff(k, got, st.data))
	}
	tail := got[size:]
	if i := slices.IndexFunc(tail, func(b byte) bool { return b != 0 }); i >= 0 {
		r.fatalf("after the power cut, growing %s (size %d) exposes non-zero bytes from %d%s",
			pcKey(k), size, size+i, pcDiff(k, got, append(bytes.Clone(st.data), make([]byte, end-size)...)))
	}
	r.checkKey(k)
}

// checkInFlight checks key k, which op was changing at the cut.
func (r *pcRound) checkInFlight(k int, op *pcInFlight, got []byte, ok bool) {
	before, after := r.keys[k], op.after
	is := func(s pcState) bool { return ok == s.exists && bytes.Equal(got, s.data) }
	if is(before) || is(after) {
		return
	}
	what := fmt.Sprintf("after the power cut, %s (in flight): exists %v, %d bytes; before: exists %v, %d bytes; after: exists %v, %d bytes",
		pcKey(k), ok, len(got), before.exists, len(before.data), after.exists, len(after.data))
	switch {
	case op.mode == pcWhole:
		r.fatalf("%s: neither the old nor the new state%s", what, pcDiff(k, got, before.data))
	case !ok || !before.exists:
		r.fatalf("%s: the key's existence changed", what)
	case len(got) != len(before.data) && len(got) != len(after.data):
		r.fatalf("%s: size is neither", what)
	case op.mode == pcBytewiseGrow && len(got) == len(after.data) && len(got) != len(before.data):
		r.fatalf("%s: the grown size committed before the data%s", what, pcDiff(k, got, after.data))
	}
	for i, b := range got {
		if b != before.at(i) && b != after.at(i) {
			r.fatalf("%s: byte %d is %#x (alphabet %d), before %#x, after %#x%s", what, i, b, pcAlphabet(b),
				before.at(i), after.at(i), pcDiff(k, got, after.data))
		}
	}
}

// pcDiff describes where got differs from want, and whose bytes it holds
// there: zeros, the key's own, another key's, or a stale pin writer's.
func pcDiff(k int, got, want []byte) string {
	first := -1
	for i := range max(len(got), len(want)) {
		if i >= len(got) || i >= len(want) || got[i] != want[i] {
			first = i
			break
		}
	}
	if first < 0 {
		return ""
	}
	counts := map[string]int{}
	for i := first; i < len(got); i++ {
		if i < len(want) && got[i] == want[i] {
			continue
		}
		switch a := pcAlphabet(got[i]); {
		case a < 0:
			counts["zero"]++
		case a == k:
			counts["own"]++
		case a == pcStale:
			counts["STALE PIN WRITER"]++
		default:
			counts[fmt.Sprintf("KEY k%d", a)]++
		}
	}
	return fmt.Sprintf("; first difference at byte %d; differing bytes by origin: %v", first, counts)
}
