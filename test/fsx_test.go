package test

// The fsx exerciser exists to hammer ONE file with every operation that
// reads or changes its bytes (ReadAt, WriteAt, Truncate, PunchHole,
// ZeroRange, Allocate, Put, reads and stores through pins, and reads and
// stores through mapped windows, as fsx's mapread and mapwrite) and to check
// the whole file, and every pin, byte for byte against an in-memory model
// after each operation, with Check too. Its operation log is a line format
// that a failing run writes to a file and that -fsx.replay runs again
// exactly; FuzzFsx feeds the same exerciser from fuzz input.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daxstore/daxstore/dax"
)

var (
	fsxSeed   = flag.Int64("fsx.seed", 0, "seed of TestFsx (0: time-based)")
	fsxOps    = flag.Int("fsx.ops", 0, "operations per TestFsx configuration (0: 1000, or 200 with -short)")
	fsxReplay = flag.String("fsx.replay", "", "run the operations of this TestFsx log file instead of random ones")
)

// fsxKey is the one key the exerciser works on.
const fsxKey = "fsx"

// fsxMaxBlocks bounds the file offsets the generated operations aim at, in
// blocks; with fsxMaxPins and fsxPinBlocks it keeps a generated run far
// from ErrNoSpace (the model still predicts it, for replayed and fuzzed
// logs).
const (
	fsxMaxBlocks  = 24
	fsxMaxPins    = 6
	fsxPinBlocks  = 3
	fsxDataBlocks = 160 // data blocks of the region
)

// fsxConfigs are the configurations TestFsx runs, one subtest each.
var fsxConfigs = []struct {
	name string
	cfg  fsxConfig
}{
	{"512 byte blocks detaching pinned blocks", fsxConfig{512, dax.PolicyDetach}},
	{"4k blocks detaching pinned blocks", fsxConfig{4096, dax.PolicyDetach}},
	{"4k blocks failing over pinned blocks", fsxConfig{4096, dax.PolicyFail}},
}

// fsxBlock models one region block of the file or of a pin. Its identity
// matters: a pin and the file share one *fsxBlock until a break gives the
// file another block or drops it.
type fsxBlock struct {
	data  []byte // block-size bytes; nil while unwritten (reads as zeros)
	pins  int    // live pins holding it
	owned bool   // the file maps it
}

// fsxSeg is the part [lo, hi) of block b that a pin covers.
type fsxSeg struct {
	b      *fsxBlock
	lo, hi int64
}

// fsxPin models one live pin.
type fsxPin struct {
	id       int
	p        dax.Pin
	off, n   int64
	writable bool
	segs     []fsxSeg
	broken   bool          // some block of it was detached: OnBreak must have run once
	breaks   *atomic.Int32 // OnBreak calls seen
}

func (p *fsxPin) bytes() []byte {
	out := make([]byte, 0, p.n)
	for _, s := range p.segs {
		out = append(out, s.b.data[s.lo:s.hi]...)
	}
	return out
}

// fsx runs operations on one file of a fresh store and checks each against
// the model.
type fsx struct {
	t       testing.TB
	cfg     fsxConfig
	bs      int64
	dir     string
	opts    dax.Options
	s       *dax.Store
	f       *dax.File
	logName string // the log file is daxstore-fsx-<logName>.log
	rerun   string // how to run the same operations again, for failures

	size   int64
	blocks map[int64]*fsxBlock // file block -> its region block; absent: a hole
	// inline marks a value a Put stored in the journal record (at most
	// fsxInline bytes): data holds it, and blocks is empty.
	inline bool
	data   []byte
	pins   []*fsxPin      // live pins, oldest first
	wins   []*fsxWin      // long-lived read-only follow windows (mapopen), oldest first
	log    []string       // the config line, then every op started
	counts map[string]int // outcomes seen, to show what a run covered
}

func newFsx(t testing.TB, cfg fsxConfig, logName string) *fsx {
	x := &fsx{
		t: t, cfg: cfg, bs: cfg.blockSize, dir: t.TempDir(), logName: logName,
		blocks: map[int64]*fsxBlock{}, counts: map[string]int{}, log: []string{cfg.String()},
	}
	x.opts = dax.Options{
		Size: (fsxDataBlocks + 1) * cfg.blockSize, BlockSize: uint32(cfg.blockSize),
		InlineLimit: fsxInline,
		BreakPolicy: cfg.policy,
		AllocWait:   -1, // the model predicts ErrNoSpace exactly: never wait
		// The model test covers the admin socket; here it would only add a
		// listener per fuzz input.
		NoAdminSocket: true,
	}
	s, err := dax.Open(x.dir, &x.opts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	x.s = s
	if x.f, err = s.Create(fsxKey); err != nil {
		t.Fatalf("create %q: %v", fsxKey, err)
	}
	return x
}

// close releases what the run holds, whatever state it stopped in.
func (x *fsx) close() {
	for _, p := range x.pins {
		_ = p.p.Unpin()
	}
	x.pins = nil
	for _, w := range x.wins {
		_ = w.w.Close()
	}
	x.wins = nil
	if x.s != nil {
		_ = x.s.CloseWith(context.Background(), dax.CloseOptions{Force: true})
		x.s = nil
	}
}

// run applies ops one by one while next yields them, checking everything
// after each; a panic inside is reported with the log like any failure.
func (x *fsx) run(next func() (fsxOp, bool)) {
	x.t.Helper()
	defer func() {
		if r := recover(); r != nil {
			x.fatalf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	for {
		op, ok := next()
		if !ok {
			return
		}
		line := op.String()
		if back, err := parseFsxOp(line); err != nil || back != op {
			x.fatalf("log line %q does not parse back to the operation (%+v, %v): the log would not replay", line, back, err)
		}
		x.log = append(x.log, line)
		x.apply(op)
		x.verify()
	}
}

// fatalf fails the run with the last 100 operations, and writes the whole
// log to a file that -fsx.replay runs again.
func (x *fsx) fatalf(format string, args ...any) {
	x.t.Helper()
	path := filepath.Join(os.TempDir(), "daxstore-fsx-"+x.logName+".log")
	saved := "full log in " + path
	if err := os.WriteFile(path, []byte(strings.Join(x.log, "\n")+"\n"), 0o644); err != nil {
		saved = fmt.Sprintf("could not write the full log to %s: %v", path, err)
	}
	tail := x.log
	if len(tail) > 100 {
		tail = append([]string{"..."}, tail[len(tail)-100:]...)
	}
	x.t.Fatalf("op %d (%s): %s\nlast operations:\n%s\n%s\nrerun: %s\nreplay: go test ./test -run 'TestFsx' -fsx.replay=%s",
		len(x.log)-1, x.log[len(x.log)-1], fmt.Sprintf(format, args...), strings.Join(tail, "\n"), saved, x.rerun, path)
}

// expect fails unless err matches want (nil for success).
func (x *fsx) expect(what string, err, want error) {
	x.t.Helper()
	switch {
	case want == nil && err != nil:
		x.fatalf("%s: unexpected error: %v", what, err)
	case want != nil && !errors.Is(err, want):
		x.fatalf("%s: got error %v, want %v", what, err, want)
	case want != nil:
		x.counts[what+": "+want.Error()]++
	}
}

// --- the model ---

func (x *fsx) newBlock() *fsxBlock { return &fsxBlock{data: make([]byte, x.bs), owned: true} }

func (x *fsx) span(off, n int64) (fb, fe int64) { return off / x.bs, (off + n + x.bs - 1) / x.bs }

// read returns the model's bytes [off, off+n) of the file.
func (x *fsx) read(off, n int64) []byte {
	out := make([]byte, n)
	if x.inline {
		if off < int64(len(x.data)) {
			copy(out, x.data[off:])
		}
		return out
	}
	fb, fe := x.span(off, n)
	for b := fb; b < fe; b++ {
		m := x.blocks[b]
		if m == nil || m.data == nil {
			continue
		}
		base := b * x.bs
		lo, hi := max(base, off), min(base+x.bs, off+n)
		copy(out[lo-off:hi-off], m.data[lo-base:hi-base])
	}
	return out
}

// fsxInline is the stores' Options.InlineLimit: a few 512-byte blocks, and
// under one 4 KiB block, so that moving an inline value may run out of
// space in both configurations.
const fsxInline = 1500

// spill moves an inline value into new blocks, as the store does before
// WriteAt, Allocate, Pin or a Truncate past the limit. It reports false,
// changing nothing, when they do not fit.
func (x *fsx) spill() bool {
	if !x.inline {
		return true
	}
	if uint64((x.size+x.bs-1)/x.bs) > x.freeBlocks() {
		return false
	}
	for b := int64(0); b*x.bs < x.size; b++ {
		m := x.newBlock()
		copy(m.data, x.data[b*x.bs:])
		x.blocks[b] = m
	}
	x.inline, x.data = false, nil
	x.counts["inline moved into blocks"]++
	return true
}

// holes counts the unmapped blocks among file blocks [fb, fe).
func (x *fsx) holes(fb, fe int64) (n uint64) {
	for b := fb; b < fe; b++ {
		if x.blocks[b] == nil {
			n++
		}
	}
	return n
}

// pinCounts counts the blocks that pins hold (pinned) and, of those, the
// blocks the file no longer maps (busy).
func (x *fsx) pinCounts() (pinned, busy uint64) {
	seen := map[*fsxBlock]bool{}
	for _, p := range x.pins {
		for _, s := range p.segs {
			if !seen[s.b] {
				seen[s.b] = true
				pinned++
				if !s.b.owned {
					busy++
				}
			}
		}
	}
	return pinned, busy
}

func (x *fsx) freeBlocks() uint64 {
	_, busy := x.pinCounts()
	return fsxDataBlocks - uint64(len(x.blocks)) - busy
}

func pinnedFsxBlock(m *fsxBlock) bool { return m != nil && m.data != nil && m.pins > 0 }

// detach takes m away from the file: freed, or busy while pins hold it,
// and those pins see OnBreak.
func (x *fsx) detach(m *fsxBlock) {
	m.owned = false
	if m.pins == 0 {
		return
	}
	x.counts["detach pinned"]++
	for _, p := range x.pins {
		for _, s := range p.segs {
			if s.b == m {
				p.broken = true
			}
		}
	}
}

func (x *fsx) drop(b int64) {
	if m := x.blocks[b]; m != nil {
		delete(x.blocks, b)
		x.detach(m)
	}
}

// zeroPartial zeroes bytes [from, to) of file block b: in place, or, while
// a pin holds the block, in a copy that replaces it in the file so the pin
// keeps the old bytes.
func (x *fsx) zeroPartial(b, from, to int64) {
	m := x.blocks[b]
	if m == nil || m.data == nil {
		return
	}
	if m.pins == 0 {
		clear(m.data[from:to])
		return
	}
	x.counts["copy on write"]++
	c := &fsxBlock{data: bytes.Clone(m.data), owned: true}
	clear(c.data[from:to])
	x.detach(m)
	x.blocks[b] = c
}

// fsxPiece is bytes [from, to) of file block b; whole when that is all of it.
type fsxPiece struct {
	b, from, to int64
	whole       bool
}

func (x *fsx) pieces(off, end int64) []fsxPiece {
	var out []fsxPiece
	for b := off / x.bs; b*x.bs < end; b++ {
		base := b * x.bs
		lo, hi := max(off, base), min(end, base+x.bs)
		out = append(out, fsxPiece{b: b, from: lo - base, to: hi - base, whole: lo == base && hi == base+x.bs})
	}
	return out
}

func (x *fsx) pin(id int) *fsxPin {
	x.t.Helper()
	for _, p := range x.pins {
		if p.id == id {
			return p
		}
	}
	x.fatalf("the log names pin %d, which is not live", id)
	return nil
}

func badRange(off, n int64) bool {
	return off < 0 || n < 0 || off > dax.MaxFileSize || n > dax.MaxFileSize-off
}

// policy resolves an op's policy against the store's default.
func (x *fsx) policy(op fsxOp) dax.BreakPolicy {
	if op.policy == dax.PolicyDefault {
		return x.cfg.policy
	}
	return op.policy
}

// fsxBreakCtx bounds a Wait: the pins it would wait for belong to this
// goroutine, so it can only time out.
func fsxBreakCtx(p dax.BreakPolicy) (context.Context, context.CancelFunc) {
	if p == dax.PolicyWait {
		return context.WithTimeout(context.Background(), 2*time.Millisecond)
	}
	return context.Background(), func() {}
}

// breakErr returns the error a successful layout break returns: under Wait,
// detaching a pinned block means waiting until the context expires.
func breakErr(want error, policy dax.BreakPolicy, pinnedAffected bool) error {
	if want == nil && policy == dax.PolicyWait && pinnedAffected {
		return context.DeadlineExceeded
	}
	return want
}

// --- the operations ---

func (x *fsx) apply(op fsxOp) {
	x.t.Helper()
	x.counts[op.kind]++
	switch op.kind {
	case "write":
		x.write(op)
	case "read":
		x.readOp(op)
	case "truncate":
		x.truncate(op)
	case "punch", "zero":
		x.rangeBreak(op)
	case "allocate":
		x.allocate(op)
	case "put":
		x.put(op)
	case "pin":
		x.pinOp(op)
	case "pwrite":
		x.pwrite(op)
	case "pflush":
		x.expect("pin flush", x.pin(op.id).p.Flush(), nil)
	case "unpin":
		x.unpin(op)
	case "mapread":
		x.mapRead(op)
	case "mapwrite":
		x.mapWrite(op)
	case "mapopen":
		x.mapOpenLong(op)
	case "mapclose":
		x.mapCloseLong(op)
	case "reopen":
		x.reopen()
	default:
		x.fatalf("unknown operation %q", op.kind)
	}
}

func (x *fsx) write(op fsxOp) {
	if op.n < 0 || op.n > 1<<24 {
		x.fatalf("write length %d out of what the exerciser allows", op.n)
	}
	if badRange(op.off, op.n) {
		_, err := x.f.WriteAt(make([]byte, op.n), op.off)
		x.expect("write", err, dax.ErrInvalidRange)
		return
	}
	p := fsxBytes(op.seed, op.n)
	if op.n > 0 && !x.spill() {
		_, err := x.f.WriteAt(p, op.off)
		x.expect("write", err, dax.ErrNoSpace)
		return
	}
	fb, fe := x.span(op.off, op.n)
	var want error
	if op.n > 0 && x.holes(fb, fe) > x.freeBlocks() {
		want = dax.ErrNoSpace
	}
	got, err := x.f.WriteAt(p, op.off)
	x.expect("write", err, want)
	if want != nil || op.n == 0 {
		if got != 0 {
			x.fatalf("write returned %d bytes written, want 0", got)
		}
		return
	}
	if got != int(op.n) {
		x.fatalf("write returned %d, want %d", got, op.n)
	}
	for b := fb; b < fe; b++ {
		if m := x.blocks[b]; m == nil || m.data == nil {
			x.blocks[b] = x.newBlock() // new and unwritten blocks: zeros where p does not reach
		}
		base := b * x.bs
		lo, hi := max(base, op.off), min(base+x.bs, op.off+op.n)
		copy(x.blocks[b].data[lo-base:hi-base], p[lo-op.off:hi-op.off])
	}
	x.size = max(x.size, op.off+op.n)
}

func (x *fsx) readOp(op fsxOp) {
	if op.n < 0 || op.n > 1<<24 {
		x.fatalf("read length %d out of what the exerciser allows", op.n)
	}
	p := bytes.Repeat([]byte{0xEE}, int(op.n)) // a read must overwrite every byte it reports
	got, err := x.f.ReadAt(p, op.off)
	if op.off < 0 || op.off > dax.MaxFileSize {
		x.expect("read", err, dax.ErrInvalidRange)
		return
	}
	wantN := max(0, min(op.n, x.size-op.off))
	switch {
	case int64(got) != wantN:
		x.fatalf("read returned %d bytes, want %d (error %v)", got, wantN, err)
	case wantN < op.n && err != io.EOF:
		x.fatalf("short read returned error %v, want io.EOF", err)
	case wantN == op.n && op.n > 0 && err != nil:
		x.fatalf("full read returned error %v", err)
	case op.n == 0 && err != nil && err != io.EOF:
		x.fatalf("empty read returned error %v", err)
	}
	if want := x.read(op.off, wantN); !bytes.Equal(p[:wantN], want) {
		x.fatalf("read [%d,+%d): first difference at byte %d of the read", op.off, wantN, fsxDiff(p[:wantN], want))
	}
}

func (x *fsx) truncate(op fsxOp) {
	size, policy := op.off, x.policy(op)
	ctx, cancel := fsxBreakCtx(policy)
	defer cancel()
	if size < 0 || size > dax.MaxFileSize {
		x.expect("truncate", x.f.TruncateWith(ctx, size, dax.BreakOptions{Policy: op.policy}), dax.ErrInvalidRange)
		return
	}
	if x.inline {
		// Within the limit the bytes stay inline; past it they move into
		// blocks, which may not fit. No block is pinned.
		var want error
		if size > fsxInline && uint64((x.size+x.bs-1)/x.bs) > x.freeBlocks() {
			want = dax.ErrNoSpace
		}
		x.expect("truncate inline", x.f.TruncateWith(ctx, size, dax.BreakOptions{Policy: op.policy}), want)
		switch {
		case want != nil:
		case size <= fsxInline:
			data := make([]byte, size)
			copy(data, x.data)
			x.data, x.size = data, size
		default:
			x.spill()
			x.size = size
		}
		return
	}
	keep, tail := (size+x.bs-1)/x.bs, size%x.bs
	pinnedAffected := false
	var need uint64
	if size < x.size {
		for b, m := range x.blocks {
			if pinnedFsxBlock(m) && (b >= keep || (tail != 0 && b == keep-1)) {
				pinnedAffected = true
			}
		}
		if tail != 0 && pinnedFsxBlock(x.blocks[keep-1]) {
			need = 1 // the tail block is copied on write
		}
	}
	var want error
	switch {
	case policy == dax.PolicyFail && pinnedAffected:
		want = dax.ErrPinned
	case need > x.freeBlocks():
		want = dax.ErrNoSpace
	}
	err := x.f.TruncateWith(ctx, size, dax.BreakOptions{Policy: op.policy})
	if want == nil {
		if size < x.size {
			for b := range x.blocks {
				if b >= keep {
					x.drop(b)
				}
			}
			if tail != 0 {
				x.zeroPartial(keep-1, tail, x.bs)
			}
		}
		x.size = size
	}
	x.expect("truncate", err, breakErr(want, policy, pinnedAffected))
}

// rangeBreak is PunchHole or ZeroRange.
func (x *fsx) rangeBreak(op fsxOp) {
	policy := x.policy(op)
	ctx, cancel := fsxBreakCtx(policy)
	defer cancel()
	call := func() error {
		if op.kind == "punch" {
			return x.f.PunchHoleWith(ctx, op.off, op.n, dax.BreakOptions{Policy: op.policy})
		}
		return x.f.ZeroRangeWith(ctx, op.off, op.n, dax.BreakOptions{Policy: op.policy})
	}
	if badRange(op.off, op.n) {
		x.expect(op.kind, call(), dax.ErrInvalidRange)
		return
	}
	end := min(op.off+op.n, x.size)
	if x.inline {
		// Zeros in place: no block, so no pin, space or policy matters.
		x.expect(op.kind+" inline", call(), nil)
		if op.off < end {
			clear(x.data[op.off:end])
		}
		return
	}
	var ps []fsxPiece
	if op.off < end {
		ps = x.pieces(op.off, end)
	}
	var need uint64
	pinnedAffected := false
	for _, p := range ps {
		if pinnedFsxBlock(x.blocks[p.b]) {
			pinnedAffected = true
			if !p.whole || op.kind == "zero" {
				need++ // a copy of a partial block; a fresh block for a whole one zeroed
			}
		}
	}
	var want error
	switch {
	case policy == dax.PolicyFail && pinnedAffected:
		want = dax.ErrPinned
	case need > x.freeBlocks():
		want = dax.ErrNoSpace
	}
	err := call()
	if want == nil {
		for _, p := range ps {
			m := x.blocks[p.b]
			switch {
			case !p.whole:
				x.zeroPartial(p.b, p.from, p.to)
			case op.kind == "punch":
				x.drop(p.b)
			case m != nil && m.data != nil:
				x.drop(p.b)
				x.blocks[p.b] = &fsxBlock{owned: true} // unwritten: allocated, reads as zeros
			}
		}
	}
	x.expect(op.kind, err, breakErr(want, policy, pinnedAffected))
}

func (x *fsx) allocate(op fsxOp) {
	if badRange(op.off, op.n) {
		x.expect("allocate", x.f.Allocate(op.off, op.n), dax.ErrInvalidRange)
		return
	}
	if op.n > 0 && !x.spill() {
		x.expect("allocate", x.f.Allocate(op.off, op.n), dax.ErrNoSpace)
		return
	}
	fb, fe := x.span(op.off, op.n)
	var want error
	if op.n > 0 && x.holes(fb, fe) > x.freeBlocks() {
		want = dax.ErrNoSpace
	}
	x.expect("allocate", x.f.Allocate(op.off, op.n), want)
	if want != nil || op.n == 0 {
		return
	}
	for b := fb; b < fe; b++ {
		if x.blocks[b] == nil {
			x.blocks[b] = &fsxBlock{owned: true}
		}
	}
	x.size = max(x.size, op.off+op.n)
}

func (x *fsx) put(op fsxOp) {
	if op.n < 0 || op.n > 1<<24 {
		x.fatalf("put length %d out of what the exerciser allows", op.n)
	}
	policy := x.policy(op)
	value := fsxBytes(op.seed, op.n)
	// While the file has a window, a Put never makes it inline again.
	inline := op.n <= fsxInline && len(x.wins) == 0
	need := uint64((op.n + x.bs - 1) / x.bs)
	if inline {
		need = 0
	}
	pinnedAffected := false
	for _, m := range x.blocks {
		pinnedAffected = pinnedAffected || pinnedFsxBlock(m)
	}
	var want error
	switch {
	case need > x.freeBlocks():
		want = dax.ErrNoSpace
	case policy == dax.PolicyFail && pinnedAffected:
		want = dax.ErrPinned
	}
	ctx, cancel := fsxBreakCtx(policy)
	defer cancel()
	err := x.s.PutWith(ctx, fsxKey, value, dax.BreakOptions{Policy: op.policy})
	if want == nil {
		for b := range x.blocks {
			x.drop(b)
		}
		x.inline, x.data = inline, nil
		if x.inline {
			x.data = value
			x.counts["inline put"]++
		}
		for b := int64(0); b*x.bs < op.n && !x.inline; b++ {
			m := x.newBlock()
			copy(m.data, value[b*x.bs:])
			x.blocks[b] = m
		}
		x.size = op.n
	}
	x.expect("put", err, breakErr(want, policy, pinnedAffected))
}

func (x *fsx) pinOp(op fsxOp) {
	for _, p := range x.pins {
		if p.id == op.id {
			x.fatalf("the log pins id %d twice", op.id)
		}
	}
	var want error
	fb, fe := int64(0), int64(0)
	switch {
	case badRange(op.off, op.n) || op.n == 0 || op.off+op.n > x.size:
		want = dax.ErrInvalidRange
	case !x.spill():
		want = dax.ErrNoSpace
	default:
		fb, fe = x.span(op.off, op.n)
		if x.holes(fb, fe) > x.freeBlocks() {
			want = dax.ErrNoSpace
		}
	}
	label := fmt.Sprintf("fsx-pin-%d", op.id)
	mp := &fsxPin{id: op.id, off: op.off, n: op.n, writable: op.writable, breaks: new(atomic.Int32)}
	p, err := x.f.Pin(op.off, op.n, dax.PinOptions{Writable: op.writable, Label: label, OnBreak: func() { mp.breaks.Add(1) }})
	x.expect("pin", err, want)
	if want != nil {
		return
	}
	mp.p = p
	if p.Label() != label || p.Offset() != op.off || p.Len() != op.n {
		x.fatalf("pin reports %q [%d,+%d), want %q [%d,+%d)", p.Label(), p.Offset(), p.Len(), label, op.off, op.n)
	}
	for b := fb; b < fe; b++ {
		if m := x.blocks[b]; m == nil || m.data == nil {
			x.blocks[b] = x.newBlock() // holes and unwritten blocks are materialized as zeros
		}
		m := x.blocks[b]
		m.pins++
		base := b * x.bs
		mp.segs = append(mp.segs, fsxSeg{b: m, lo: max(base, op.off) - base, hi: min(base+x.bs, op.off+op.n) - base})
	}
	x.pins = append(x.pins, mp)
}

// pwrite stores bytes through a pin's slices: they reach the pin's blocks,
// and so the file while it still maps them.
func (x *fsx) pwrite(op fsxOp) {
	p := x.pin(op.id)
	if op.off < 0 || op.n < 0 || op.off+op.n > p.n {
		x.fatalf("pwrite [%d,+%d) outside pin %d of %d bytes", op.off, op.n, op.id, p.n)
	}
	data := fsxBytes(op.seed, op.n)
	a, b := op.off, op.off+op.n
	pos := int64(0)
	for _, s := range p.p.Bytes() {
		lo, hi := max(a, pos), min(b, pos+int64(len(s)))
		if lo < hi {
			copy(s[lo-pos:hi-pos], data[lo-a:hi-a])
		}
		pos += int64(len(s))
	}
	if pos != p.n {
		x.fatalf("pin %d slices cover %d bytes, want %d", op.id, pos, p.n)
	}
	pos = 0
	for _, s := range p.segs {
		lo, hi := max(a, pos), min(b, pos+s.hi-s.lo)
		if lo < hi {
			copy(s.b.data[s.lo+lo-pos:s.lo+hi-pos], data[lo-a:hi-a])
		}
		pos += s.hi - s.lo
	}
}

func (x *fsx) unpin(op fsxOp) {
	p := x.pin(op.id)
	x.expect("unpin", p.p.Unpin(), nil)
	for _, s := range p.segs {
		s.b.pins--
	}
	for i, q := range x.pins {
		if q == p {
			x.pins = append(x.pins[:i], x.pins[i+1:]...)
			break
		}
	}
	if b := p.p.Bytes(); b != nil {
		x.fatalf("Bytes after Unpin returned %d slices", len(b))
	}
	x.expect("second unpin", p.p.Unpin(), dax.ErrUnpinned)
}

// reopen closes the store and opens it again, which must change nothing;
// with pins out Close refuses and the store goes on.
func (x *fsx) reopen() {
	if len(x.pins) > 0 {
		x.expect("close with pins", x.s.Close(), dax.ErrPinned)
		return
	}
	x.expect("close file", x.f.Close(), nil)
	x.expect("close store", x.s.Close(), nil)
	x.staleWindows()
	s, err := dax.Open(x.dir, &x.opts)
	if err != nil {
		x.s = nil
		x.fatalf("reopen: %v", err)
	}
	x.s = s
	if x.f, err = s.Open(fsxKey); err != nil {
		x.fatalf("open %q after reopen: %v", fsxKey, err)
	}
}

// --- verification ---

// verify runs Check, then compares the whole file, every pin and the
// block counts with the model.
func (x *fsx) verify() {
	x.t.Helper()
	if err := x.s.Check(); err != nil {
		x.fatalf("check: %v", err)
	}
	if sz, err := x.f.Size(); err != nil || sz != x.size {
		x.fatalf("size %d (error %v), model has %d", sz, err, x.size)
	}
	if x.size > 1<<26 {
		x.fatalf("size %d out of what the exerciser reads back", x.size)
	}
	// Read the whole file and a bit past its end: every byte must match,
	// and the read must stop at the size with io.EOF.
	buf := bytes.Repeat([]byte{0xEE}, int(x.size+x.bs/2+1))
	n, err := x.f.ReadAt(buf, 0)
	if int64(n) != x.size || err != io.EOF {
		x.fatalf("reading the whole file: %d bytes, error %v; want %d bytes and io.EOF", n, err, x.size)
	}
	if want := x.read(0, x.size); !bytes.Equal(buf[:n], want) {
		i := fsxDiff(buf[:n], want)
		x.fatalf("file differs from the model at byte %d (block %d, offset %d in it): got % x, want % x",
			i, int64(i)/x.bs, int64(i)%x.bs, excerpt(buf[:n], i), excerpt(want, i))
	}
	if bytes.Count(buf[n:], []byte{0xEE}) != len(buf)-n {
		x.fatalf("read wrote past the end of the file into the buffer")
	}
	for _, p := range x.pins {
		var got []byte
		for _, b := range p.p.Bytes() {
			got = append(got, b...)
		}
		if want := p.bytes(); !bytes.Equal(got, want) {
			i := fsxDiff(got, want)
			x.fatalf("pin %d [%d,+%d): %d bytes, differ from its model at byte %d: got % x, want % x",
				p.id, p.off, p.n, len(got), i, excerpt(got, i), excerpt(want, i))
		}
		want := int32(0)
		if p.broken {
			want = 1
		}
		if got := p.breaks.Load(); got != want {
			x.fatalf("pin %d [%d,+%d): OnBreak called %d times, want %d", p.id, p.off, p.n, got, want)
		}
	}
	x.verifyWindows()
	x.verifyCounts()
}

// verifyCounts compares the file's block count, the pins and the store's
// block figures with the model. Released blocks return to free space
// asynchronously, so it waits (boundedly) for the figures to settle.
func (x *fsx) verifyCounts() {
	x.t.Helper()
	fi, err := x.s.Stat(fsxKey)
	if err != nil || fi.Size != x.size || fi.Blocks != uint64(len(x.blocks)) {
		x.fatalf("stat: %+v (error %v), model has size %d and %d blocks", fi, err, x.size, len(x.blocks))
	}
	var infos []dax.PinInfo
	for _, pi := range x.s.Pins() {
		if pi.Mode == "pin" {
			infos = append(infos, pi)
		}
	}
	if len(infos) != len(x.pins) {
		x.fatalf("Pins() lists %d pins, model has %d", len(infos), len(x.pins))
	}
	for _, pi := range infos {
		var p *fsxPin
		for _, q := range x.pins {
			if fmt.Sprintf("fsx-pin-%d", q.id) == pi.Label {
				p = q
			}
		}
		if p == nil {
			x.fatalf("Pins() lists unknown pin %+v", pi)
		}
		var detached uint64
		for _, s := range p.segs {
			if !s.b.owned {
				detached++
			}
		}
		if pi.Offset != p.off || pi.Length != p.n || pi.Writable != p.writable ||
			pi.Blocks != uint64(len(p.segs)) || pi.Detached != detached {
			x.fatalf("Pins() reports %+v, model has pin %d [%d,+%d) writable %v, %d blocks, %d detached",
				pi, p.id, p.off, p.n, p.writable, len(p.segs), detached)
		}
	}
	pinned, busy := x.pinCounts()
	want := dax.Stats{DataBlocks: fsxDataBlocks, FreeBlocks: x.freeBlocks(), UsedBlocks: uint64(len(x.blocks)),
		BusyBlocks: busy, Files: 1, Pins: len(x.pins), PinnedBlocks: pinned}
	var got dax.Stats
	for deadline := time.Now().Add(settlePatience); ; time.Sleep(100 * time.Microsecond) {
		st, err := x.s.Stats()
		if err != nil {
			x.fatalf("stats: %v", err)
		}
		got = dax.Stats{DataBlocks: st.DataBlocks, FreeBlocks: st.FreeBlocks, UsedBlocks: st.UsedBlocks,
			BusyBlocks: st.BusyBlocks, Files: st.Files, Pins: st.Pins, PinnedBlocks: st.PinnedBlocks}
		if (got == want && st.PendingRelease == 0) || time.Now().After(deadline) {
			break
		}
	}
	if got != want {
		x.fatalf("stats %+v, model wants %+v", got, want)
	}
}

func fsxDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// --- where the operations come from ---

// randomOp picks the next operation from rng, aimed at the model's state:
// offsets at and around block edges, ranges inside and across the end of
// the file, pins of live ranges, and now and then a per-call policy.
func (x *fsx) randomOp(rng *rand.Rand, nextID *int) fsxOp {
	bs := x.bs
	off := func() int64 {
		switch rng.Intn(6) {
		case 0:
			return rng.Int63n(fsxMaxBlocks) * bs
		case 1:
			return max(0, rng.Int63n(fsxMaxBlocks)*bs+rng.Int63n(9)-4)
		case 2:
			return rng.Int63n(x.size + 1)
		case 3:
			return x.size + rng.Int63n(2*bs)
		}
		return rng.Int63n(fsxMaxBlocks * bs)
	}
	length := func() int64 {
		switch rng.Intn(8) {
		case 0:
			return 0
		case 1:
			return rng.Int63n(fsxMaxBlocks*bs/2) + 1
		case 2:
			return bs * (1 + rng.Int63n(3))
		}
		return rng.Int63n(2*bs) + 1
	}
	policy := func() dax.BreakPolicy {
		switch rng.Intn(12) {
		case 0:
			return dax.PolicyFail
		case 1:
			return dax.PolicyDetach
		case 2:
			return dax.PolicyWait
		}
		return dax.PolicyDefault
	}
	var writable []*fsxPin
	for _, p := range x.pins {
		if p.writable {
			writable = append(writable, p)
		}
	}
	for {
		switch r := rng.Intn(100); {
		case r < 20:
			o := fsxOp{kind: "write", off: off(), n: length(), seed: rng.Int63n(1 << 20)}
			if rng.Intn(4) == 0 { // through a window: mapwrite, as fsx's
				o.kind, o.n = "mapwrite", max(1, o.n)
			}
			return o
		case r < 27:
			o := fsxOp{kind: "read", off: off(), n: length()}
			if rng.Intn(2) == 0 { // through a window: mapread, as fsx's
				o.kind, o.n = "mapread", max(1, o.n)
			}
			if rng.Intn(3) == 0 && x.size > 0 { // up to, or across, the end
				o.off = max(0, x.size-rng.Int63n(2*bs)-1)
			}
			return o
		case r < 35:
			var size int64
			switch rng.Intn(3) {
			case 0:
				size = rng.Int63n(x.size + 1)
			case 1:
				size = x.size + rng.Int63n(3*bs)
			default:
				size = off()
			}
			return fsxOp{kind: "truncate", off: size, policy: policy()}
		case r < 51:
			o := fsxOp{kind: "punch", off: off(), n: length(), policy: policy()}
			if r >= 43 {
				o.kind = "zero"
			}
			if rng.Intn(8) == 0 {
				o.n = dax.MaxFileSize - o.off // to the largest end: clipped to the size
			}
			return o
		case r < 56:
			return fsxOp{kind: "allocate", off: off(), n: length()}
		case r < 60:
			n := length()
			if rng.Intn(3) == 0 {
				n = rng.Int63n(fsxMaxBlocks*bs) + 1
			}
			return fsxOp{kind: "put", n: n, seed: rng.Int63n(1 << 20), policy: policy()}
		case r < 72:
			if len(x.pins) >= fsxMaxPins {
				return fsxOp{kind: "unpin", id: x.pins[rng.Intn(len(x.pins))].id}
			}
			*nextID++
			o := fsxOp{kind: "pin", id: *nextID, writable: rng.Intn(3) > 0}
			if x.size == 0 || rng.Intn(15) == 0 { // outside the file, or empty
				o.off = rng.Int63n(x.size + 1)
				o.n = x.size - o.off + rng.Int63n(2)
				return o
			}
			o.off = rng.Int63n(x.size)
			if rng.Intn(2) == 0 {
				o.off -= o.off % bs
			}
			o.n = 1 + rng.Int63n(min(x.size-o.off, fsxPinBlocks*bs))
			return o
		case r < 84:
			if len(writable) == 0 {
				continue
			}
			p := writable[rng.Intn(len(writable))]
			a := rng.Int63n(p.n)
			return fsxOp{kind: "pwrite", id: p.id, off: a, n: 1 + rng.Int63n(p.n-a), seed: rng.Int63n(1 << 20)}
		case r < 86:
			if len(x.pins) == 0 {
				continue
			}
			return fsxOp{kind: "pflush", id: x.pins[rng.Intn(len(x.pins))].id}
		case r < 87:
			// A long-lived window, kept for a while: mapopen or mapclose.
			if len(x.wins) > 0 && (len(x.wins) >= 2 || rng.Intn(2) == 0) {
				return fsxOp{kind: "mapclose", id: x.wins[rng.Intn(len(x.wins))].id}
			}
			if !x.windowsMap() {
				continue
			}
			*nextID++
			return fsxOp{kind: "mapopen", off: off(), n: max(1, length()), id: *nextID}
		case r < 99:
			if len(x.pins) == 0 {
				continue
			}
			return fsxOp{kind: "unpin", id: x.pins[rng.Intn(len(x.pins))].id}
		default:
			return fsxOp{kind: "reopen"}
		}
	}
}

// TestFsx runs random operations on one file in each configuration (or,
// with -fsx.replay, the operations of a log), checking the file and its
// pins against the model after every one.
func TestFsx(t *testing.T) {
	if *fsxReplay != "" {
		cfg, ops, err := readFsxLog(*fsxReplay)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("replaying %d operations of %s (%v)", len(ops), *fsxReplay, cfg)
		x := newFsx(t, cfg, "replay")
		defer x.close()
		x.rerun = "go test ./test -run 'TestFsx' -fsx.replay=" + *fsxReplay
		i := 0
		x.run(func() (fsxOp, bool) {
			if i == len(ops) {
				return fsxOp{}, false
			}
			i++
			return ops[i-1], true
		})
		t.Logf("outcomes: %v", x.counts)
		return
	}
	seed := *fsxSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	ops := *fsxOps
	if ops == 0 {
		ops = 1000
		if testing.Short() {
			ops = 200
		}
	}
	t.Logf("seed %d (rerun with -fsx.seed=%d), %d operations per configuration", seed, seed, ops)
	for i, c := range fsxConfigs {
		t.Run(c.name, func(t *testing.T) {
			cseed := seed + int64(i)
			x := newFsx(t, c.cfg, strconv.FormatInt(cseed, 10))
			defer x.close()
			x.rerun = fmt.Sprintf("go test ./test -run 'TestFsx/%s' -fsx.seed=%d -fsx.ops=%d",
				strings.ReplaceAll(c.name, " ", "_"), seed, ops)
			rng := rand.New(rand.NewSource(cseed))
			nextID, done := 0, 0
			x.run(func() (fsxOp, bool) {
				if done == ops {
					return fsxOp{}, false
				}
				done++
				return x.randomOp(rng, &nextID), true
			})
			t.Logf("outcomes: %v", x.counts)
		})
	}
}
