package test

// The model test exists to prove that every operation of the public API does
// exactly what its documentation says, byte for byte and block for block:
// thousands of random operations from a seed run against an in-memory model
// of the store (file contents, block ownership, pins sharing blocks with
// their file until a layout break detaches them), with Check after every
// operation and the seed plus the last operations printed on failure.

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
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daxstore/daxstore/dax"
)

var (
	modelSeed = flag.Int64("model.seed", 0, "seed of TestModel (0: time-based)")
	modelOps  = flag.Int("model.ops", 0, "operations per TestModel configuration (0: 1500, or 300 with -short)")
)

// modelConfig is one store configuration the model test runs against.
type modelConfig struct {
	name         string
	blockSize    int64
	regionBlocks int64 // region size in blocks, superblock included
	maxBlocks    int64 // file offsets the operations aim at stay below this many blocks (mostly)
	keys         int
	noSync       bool // Options.NoSync: the same results, commits without fsync
	shm          bool // the region lives in /dev/shm (when there is one), as in emulation
	inlineLimit  int  // Options.InlineLimit: 0 is the default (2048)
}

var modelConfigs = []modelConfig{
	// Room to spare: long files, many pins, no ErrNoSpace.
	{name: "4k blocks with room and the region in shared memory", blockSize: 4096, regionBlocks: 1024, maxBlocks: 12, keys: 6, shm: true},
	// Tight regions: ErrNoSpace is frequent and must change nothing.
	// Inline values span several blocks' worth here, so moving one into
	// blocks can itself run out of space.
	{name: "512 byte blocks in a tight region", blockSize: 512, regionBlocks: 40, maxBlocks: 16, keys: 5, inlineLimit: 1000},
	{name: "4k blocks in a tight region without sync", blockSize: 4096, regionBlocks: 40, maxBlocks: 10, keys: 6, noSync: true},
}

func TestModel(t *testing.T) {
	seed := *modelSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	ops := *modelOps
	if ops == 0 {
		ops = 1500
		if testing.Short() {
			ops = 300
		}
	}
	t.Logf("seed %d (rerun with -model.seed=%d), %d operations per configuration", seed, seed, ops)
	for i, cfg := range modelConfigs {
		t.Run(cfg.name, func(t *testing.T) {
			h := newHarness(t, cfg, seed+int64(i))
			defer h.shutdown()
			for h.opN = 1; h.opN <= ops; h.opN++ {
				h.step()
			}
			h.reopen()
			t.Logf("outcomes: %v", h.counts)
		})
	}
}

// mblock is the model of one region block that a file or a pin holds. Its
// identity matters: a pin and its file share the same *mblock until a layout
// break gives the file another one or drops it.
type mblock struct {
	id        int
	data      []byte // block-size bytes; nil when unwritten
	unwritten bool   // allocated, reads as zeros, cannot be pinned
	pins      int    // live pins holding this block
	owned     bool   // some file maps it
}

// mfile is the model of one key.
type mfile struct {
	size   int64
	blocks map[int64]*mblock // file block -> region block; absent = hole
	// inline marks a value stored in the journal record (Put of at most
	// Options.InlineLimit bytes): data holds it, and blocks is empty.
	inline bool
	data   []byte
}

// seg is the part [lo, hi) of block b that a pin covers.
type seg struct {
	b      *mblock
	lo, hi int64
}

// mpin is the model of one live pin.
type mpin struct {
	p        dax.Pin
	key      string // key when pinned (for the log)
	off, n   int64
	writable bool
	segs     []seg
	broken   bool          // OnBreak must have been called (once)
	breaks   *atomic.Int32 // OnBreak calls seen
}

func (p *mpin) bytes() []byte {
	out := make([]byte, 0, p.n)
	for _, s := range p.segs {
		out = append(out, s.b.data[s.lo:s.hi]...)
	}
	return out
}

type harness struct {
	t      *testing.T
	cfg    modelConfig
	seed   int64
	rng    *rand.Rand
	dir    string
	opts   dax.Options
	s      *dax.Store
	bs     int64
	keys   []string
	files  map[string]*mfile
	handle map[string]*dax.File // open handle per key, opened lazily
	dead   []*dax.File          // handles whose key was removed
	pins   []*mpin
	log    []string
	counts map[string]int // outcomes seen, logged at the end to show what the run covered
	opN    int
	nextID int
	data   uint64 // data blocks of the region
	inline int64  // the largest inline value
	// rerun, when set, is the command line that replays this run (tests
	// built on the harness other than TestModel set it).
	rerun string
}

func newHarness(t *testing.T, cfg modelConfig, seed int64) *harness {
	h := &harness{
		t: t, cfg: cfg, seed: seed, rng: rand.New(rand.NewSource(seed)), dir: t.TempDir(),
		bs: cfg.blockSize, files: map[string]*mfile{}, handle: map[string]*dax.File{}, counts: map[string]int{},
		data: uint64(cfg.regionBlocks - 1), inline: int64(cfg.inlineLimit),
	}
	if h.inline == 0 {
		h.inline = 2048
	}
	h.opts = dax.Options{
		Size: cfg.regionBlocks * cfg.blockSize, BlockSize: uint32(cfg.blockSize),
		AllocWait:     -1, // fail at once: the model predicts ErrNoSpace exactly
		NoAdminSocket: true,
		NoSync:        cfg.noSync,
		InlineLimit:   cfg.inlineLimit,
		// Keep no file in memory that is not in use, so that every
		// operation on a key without an open handle reads it back from
		// the journal: the model then checks the journal's records too.
		InodeCache: 1,
	}
	if fi, err := os.Stat("/dev/shm"); cfg.shm && err == nil && fi.IsDir() {
		shm, err := os.MkdirTemp("/dev/shm", "daxmodel")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(shm) })
		h.opts.RegionPath = filepath.Join(shm, "region")
	}
	all := []string{"a", "dir/b", "ключ", "with space", "x.y.z", "long/" + strings.Repeat("x", 40), "k7", "k8"}
	h.keys = all[:cfg.keys]
	s, err := dax.Open(h.dir, &h.opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	h.s = s
	if got := s.BlockSize(); got != h.bs {
		t.Fatalf("block size %d, want %d", got, h.bs)
	}
	return h
}

func (h *harness) shutdown() {
	if h.s == nil {
		return
	}
	for _, p := range h.pins {
		_ = p.p.Unpin()
	}
	_ = h.s.Close()
}

func (h *harness) logf(format string, args ...any) {
	h.log = append(h.log, fmt.Sprintf("%5d ", h.opN)+fmt.Sprintf(format, args...))
	if len(h.log) > 60 {
		h.log = h.log[len(h.log)-50:]
	}
}

func (h *harness) fatalf(format string, args ...any) {
	h.t.Helper()
	if h.rerun != "" {
		h.t.Fatalf("%s\nconfig %q seed %d (rerun: %s), op %d\nlast operations:\n%s",
			fmt.Sprintf(format, args...), h.cfg.name, h.seed, h.rerun, h.opN, strings.Join(h.log, "\n"))
	}
	h.t.Fatalf("%s\nconfig %q seed %d (rerun: go test ./test -run 'TestModel' -model.seed=%d), op %d\nlast operations:\n%s",
		fmt.Sprintf(format, args...), h.cfg.name, h.seed, h.seed-int64(h.cfgIndex()), h.opN, strings.Join(h.log, "\n"))
}

func (h *harness) cfgIndex() int {
	for i, c := range modelConfigs {
		if c.name == h.cfg.name {
			return i
		}
	}
	return 0
}

// expectErr fails unless err matches want (nil for success).
func (h *harness) expectErr(op string, err, want error) {
	h.t.Helper()
	if want != nil {
		h.counts[want.Error()]++
	}
	switch {
	case want == nil && err != nil:
		h.fatalf("%s: unexpected error: %v", op, err)
	case want != nil && !errors.Is(err, want):
		h.fatalf("%s: got error %v, want %v", op, err, want)
	}
}

func (h *harness) newBlock() *mblock {
	h.nextID++
	return &mblock{id: h.nextID, data: make([]byte, h.bs), owned: true}
}

func (h *harness) newUnwritten() *mblock {
	h.nextID++
	return &mblock{id: h.nextID, unwritten: true, owned: true}
}

// span returns the file blocks [fb, fe) that bytes [off, off+n) touch.
func (h *harness) span(off, n int64) (fb, fe int64) {
	return off / h.bs, (off + n + h.bs - 1) / h.bs
}

// read returns the model's bytes [off, off+n) of f (holes and unwritten
// blocks read as zeros).
func (h *harness) read(f *mfile, off, n int64) []byte {
	out := make([]byte, n)
	if f.inline {
		if off < int64(len(f.data)) {
			copy(out, f.data[off:])
		}
		return out
	}
	fb, fe := h.span(off, n)
	for b := fb; b < fe; b++ {
		m := f.blocks[b]
		if m == nil || m.unwritten {
			continue
		}
		base := b * h.bs
		lo, hi := max(base, off), min(base+h.bs, off+n)
		copy(out[lo-off:hi-off], m.data[lo-base:hi-base])
	}
	return out
}

// spill moves an inline file's bytes into new blocks, as the store does
// before WriteAt, Allocate, Pin or a Truncate past the inline limit. It
// reports false, changing nothing, when they do not fit.
func (h *harness) spill(f *mfile) bool {
	if !f.inline {
		return true
	}
	if uint64((f.size+h.bs-1)/h.bs) > h.freeBlocks() {
		return false
	}
	for b := int64(0); b*h.bs < f.size; b++ {
		m := h.newBlock()
		copy(m.data, f.data[b*h.bs:])
		f.blocks[b] = m
	}
	f.inline, f.data = false, nil
	h.counts["inline moved into blocks"]++
	return true
}

// usedBlocks, busyBlocks and freeBlocks are what Stats must report.
func (h *harness) usedBlocks() uint64 {
	var n uint64
	for _, f := range h.files {
		n += uint64(len(f.blocks))
	}
	return n
}

func (h *harness) pinnedBlocks() (pinned, busy uint64) {
	seen := map[*mblock]bool{}
	for _, p := range h.pins {
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

func (h *harness) freeBlocks() uint64 {
	_, busy := h.pinnedBlocks()
	return h.data - h.usedBlocks() - busy
}

// detach takes block m away from its file: it is freed, or stays busy
// while pins hold it, and those pins see OnBreak.
func (h *harness) detach(m *mblock) {
	m.owned = false
	if m.pins == 0 {
		return
	}
	h.counts["detach pinned"]++
	for _, p := range h.pins {
		for _, s := range p.segs {
			if s.b == m {
				p.broken = true
			}
		}
	}
}

func (h *harness) dropBlock(f *mfile, b int64) {
	if m := f.blocks[b]; m != nil {
		delete(f.blocks, b)
		h.detach(m)
	}
}

func pinnedBlock(m *mblock) bool { return m != nil && !m.unwritten && m.pins > 0 }

// zeroPartial zeroes bytes [from, to) of file block b: in place, or, when a
// pin holds the block, in a copy that replaces it in the file.
func (h *harness) zeroPartial(f *mfile, b, from, to int64) {
	m := f.blocks[b]
	if m == nil || m.unwritten {
		return
	}
	if m.pins == 0 {
		clear(m.data[from:to])
		return
	}
	h.counts["copy on write"]++
	c := h.newBlock()
	copy(c.data, m.data)
	clear(c.data[from:to])
	h.detach(m)
	f.blocks[b] = c
}

// rangeBlocks splits [off, end) into whole blocks and partial pieces.
type piece struct {
	b, from, to int64 // bytes [from, to) of file block b
	whole       bool
}

func (h *harness) pieces(off, end int64) []piece {
	var out []piece
	for b := off / h.bs; b*h.bs < end; b++ {
		base := b * h.bs
		lo, hi := max(off, base), min(end, base+h.bs)
		out = append(out, piece{b: b, from: lo - base, to: hi - base, whole: lo == base && hi == base+h.bs})
	}
	return out
}

// --- random choices ---

func (h *harness) pickKey() string { return h.keys[h.rng.Intn(len(h.keys))] }

func (h *harness) existingKeys() []string {
	out := make([]string, 0, len(h.files))
	for k := range h.files {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// pickExisting returns a key that exists, or "" when none does.
func (h *harness) pickExisting() string {
	ks := h.existingKeys()
	if len(ks) == 0 {
		return ""
	}
	return ks[h.rng.Intn(len(ks))]
}

// randOff returns an offset: aligned, near a block edge, or anywhere, up
// to maxBlocks (and now and then past the file's end, making a hole).
func (h *harness) randOff(size int64) int64 {
	limit := h.cfg.maxBlocks * h.bs
	switch h.rng.Intn(6) {
	case 0:
		return h.rng.Int63n(h.cfg.maxBlocks) * h.bs
	case 1:
		return max(0, h.rng.Int63n(h.cfg.maxBlocks)*h.bs+h.rng.Int63n(9)-4)
	case 2:
		if size > 0 {
			return h.rng.Int63n(size + 1)
		}
	case 3:
		return size + h.rng.Int63n(3*h.bs)
	}
	return h.rng.Int63n(limit)
}

func (h *harness) randLen() int64 {
	switch h.rng.Intn(8) {
	case 0:
		return 0
	case 1:
		return h.rng.Int63n(h.cfg.maxBlocks*h.bs/2) + 1
	case 2:
		return h.bs * (1 + h.rng.Int63n(3))
	}
	return h.rng.Int63n(2*h.bs) + 1
}

func (h *harness) randBytes(n int64) []byte {
	p := make([]byte, n)
	h.rng.Read(p)
	return p
}

// randPolicy picks the break policy of a layout-breaking call.
func (h *harness) randPolicy() dax.BreakPolicy {
	switch h.rng.Intn(10) {
	case 0:
		return dax.PolicyFail
	case 1:
		return dax.PolicyWait
	case 2:
		return dax.PolicyDetach
	}
	return dax.PolicyDefault
}

// breakCtx is the context of a layout-breaking call: under Wait it expires
// quickly, because the pins it would wait for belong to this goroutine.
func breakCtx(p dax.BreakPolicy) (context.Context, context.CancelFunc) {
	if p == dax.PolicyWait {
		return context.WithTimeout(context.Background(), 2*time.Millisecond)
	}
	return context.Background(), func() {}
}

// file returns the open handle of an existing key.
func (h *harness) file(key string) *dax.File {
	if f := h.handle[key]; f != nil {
		return f
	}
	f, err := h.s.Open(key)
	if err != nil {
		h.fatalf("open %q: %v", key, err)
	}
	h.handle[key] = f
	return f
}

// --- the step ---

func (h *harness) step() {
	type op struct {
		weight int
		fn     func()
	}
	ops := []op{
		{20, h.opWrite}, {10, h.opRead}, {7, h.opTruncate}, {7, h.opPunch}, {6, h.opZero},
		{5, h.opAllocate}, {7, h.opPut}, {4, h.opGet}, {4, h.opRemove}, {3, h.opRename},
		{3, h.opCreate}, {8, h.opPin}, {6, h.opCanary}, {6, h.opUnpin}, {2, h.opBadInput},
		{1, h.opDeadHandle},
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	if h.rng.Intn(300) == 0 {
		h.reopen()
	} else {
		r := h.rng.Intn(total)
		for _, o := range ops {
			if r < o.weight {
				o.fn()
				break
			}
			r -= o.weight
		}
	}
	h.verify(h.opN%25 == 0)
}

// verify runs Check and compares the store with the model: every pin's
// bytes and OnBreak calls, the statistics, the file list, and (when full)
// every file's contents.
func (h *harness) verify(full bool) {
	h.t.Helper()
	if err := h.s.Check(); err != nil {
		h.fatalf("check: %v", err)
	}
	for _, p := range h.pins {
		var got []byte
		for _, b := range p.p.Bytes() {
			got = append(got, b...)
		}
		if want := p.bytes(); !bytes.Equal(got, want) {
			h.fatalf("pin %q [%d,+%d) on %q: bytes differ from the model at %d (got %d bytes)",
				p.p.Label(), p.off, p.n, p.key, firstDiff(got, want), len(got))
		}
		want := int32(0)
		if p.broken {
			want = 1
		}
		if got := p.breaks.Load(); got != want {
			h.fatalf("pin %q [%d,+%d) on %q: OnBreak called %d times, want %d", p.p.Label(), p.off, p.n, p.key, got, want)
		}
	}
	h.settle()
	h.verifyInspection()
	infos, err := h.s.List("")
	if err != nil {
		h.fatalf("list: %v", err)
	}
	keys := h.existingKeys()
	if len(infos) != len(keys) {
		h.fatalf("list: %d files, model has %d (%v)", len(infos), len(keys), keys)
	}
	for i, fi := range infos {
		f := h.files[keys[i]]
		if fi.Key != keys[i] || fi.Size != f.size || fi.Blocks != uint64(len(f.blocks)) {
			h.fatalf("list: %+v, model has key %q size %d blocks %d", fi, keys[i], f.size, len(f.blocks))
		}
	}
	if !full {
		return
	}
	for _, k := range keys {
		h.verifyFile(k)
	}
}

func (h *harness) verifyFile(key string) {
	h.t.Helper()
	f := h.files[key]
	got, err := h.s.Get(key)
	if err != nil {
		h.fatalf("get %q: %v", key, err)
	}
	if want := h.read(f, 0, f.size); !bytes.Equal(got, want) {
		h.fatalf("get %q: %d bytes, model has %d; first difference at %d", key, len(got), len(want), firstDiff(got, want))
	}
}

// settle waits until released pins' blocks are back in free space (the
// release is asynchronous), then compares the statistics with the model.
func (h *harness) settle() {
	h.t.Helper()
	pinned, busy := h.pinnedBlocks()
	want := dax.Stats{
		DataBlocks: h.data, FreeBlocks: h.freeBlocks(), UsedBlocks: h.usedBlocks(), BusyBlocks: busy,
		Files: len(h.files), Pins: len(h.pins), PinnedBlocks: pinned,
	}
	var st dax.Stats
	deadline := time.Now().Add(settlePatience)
	for {
		var err error
		st, err = h.s.Stats()
		if err != nil {
			h.fatalf("stats: %v", err)
		}
		if st.BusyBlocks == want.BusyBlocks && st.FreeBlocks == want.FreeBlocks && st.PendingRelease == 0 {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Microsecond)
	}
	got := dax.Stats{
		DataBlocks: st.DataBlocks, FreeBlocks: st.FreeBlocks, UsedBlocks: st.UsedBlocks, BusyBlocks: st.BusyBlocks,
		Files: st.Files, Pins: st.Pins, PinnedBlocks: st.PinnedBlocks,
	}
	if got != want {
		h.fatalf("stats %+v, model wants %+v", got, want)
	}
}

// verifyInspection compares Pins and Busy with the model: every pin with
// its range, its blocks and how many of them its file no longer owns, and
// busy extents that add up to the detached pinned blocks.
func (h *harness) verifyInspection() {
	h.t.Helper()
	infos := h.s.Pins()
	if len(infos) != len(h.pins) {
		h.fatalf("Pins() lists %d pins, model has %d", len(infos), len(h.pins))
	}
	byLabel := map[string]*mpin{}
	for _, p := range h.pins {
		byLabel[p.p.Label()] = p
	}
	for _, pi := range infos {
		p := byLabel[pi.Label]
		if p == nil {
			h.fatalf("Pins() lists unknown pin %+v", pi)
		}
		var detached uint64
		for _, s := range p.segs {
			if !s.b.owned {
				detached++
			}
		}
		if pi.Offset != p.off || pi.Length != p.n || pi.Writable != p.writable ||
			pi.Blocks != uint64(len(p.segs)) || pi.Detached != detached {
			h.fatalf("Pins() reports %+v, model has [%d,+%d) writable %v, %d blocks, %d detached",
				pi, p.off, p.n, p.writable, len(p.segs), detached)
		}
	}
	_, busy := h.pinnedBlocks()
	var blocks, pinned uint64
	for _, b := range h.s.Busy() {
		blocks += b.Blocks
		pinned += b.PinnedBlocks
		if len(b.Labels) == 0 || b.Reason == "" || b.Key == "" {
			h.fatalf("busy extent %+v lacks labels, reason or owner", b)
		}
	}
	if blocks != busy || pinned != busy {
		h.fatalf("Busy() lists %d blocks (%d pinned), model has %d detached pinned blocks", blocks, pinned, busy)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// --- operations ---

func (h *harness) opWrite() {
	key := h.pickExisting()
	if key == "" {
		h.opCreate()
		return
	}
	f := h.files[key]
	off, n := h.randOff(f.size), h.randLen()
	p := h.randBytes(n)
	if n > 0 && !h.spill(f) {
		h.logf("write %q [%d,+%d) into inline size %d, %d free: want %v", key, off, n, f.size, h.freeBlocks(), dax.ErrNoSpace)
		_, err := h.file(key).WriteAt(p, off)
		h.expectErr("write", err, dax.ErrNoSpace)
		return
	}
	fb, fe := h.span(off, n)
	var need uint64
	for b := fb; b < fe; b++ {
		if f.blocks[b] == nil {
			need++
		}
	}
	var want error
	if n > 0 && need > h.freeBlocks() {
		want = dax.ErrNoSpace
	}
	h.logf("write %q [%d,+%d) needs %d blocks, %d free: want %v", key, off, n, need, h.freeBlocks(), want)
	got, err := h.file(key).WriteAt(p, off)
	h.expectErr("write", err, want)
	if want != nil || n == 0 {
		if want == nil && got != 0 {
			h.fatalf("write of 0 bytes returned %d", got)
		}
		return
	}
	if got != int(n) {
		h.fatalf("write returned %d, want %d", got, n)
	}
	for b := fb; b < fe; b++ {
		if m := f.blocks[b]; m == nil || m.unwritten {
			f.blocks[b] = h.newBlock()
		}
		base := b * h.bs
		lo, hi := max(base, off), min(base+h.bs, off+n)
		copy(f.blocks[b].data[lo-base:hi-base], p[lo-off:hi-off])
	}
	f.size = max(f.size, off+n)
}

func (h *harness) opRead() {
	key := h.pickExisting()
	if key == "" {
		return
	}
	f := h.files[key]
	off, n := h.randOff(f.size), h.randLen()
	if h.rng.Intn(4) == 0 && f.size > 0 { // read right up to, or across, the end
		off = max(0, f.size-h.rng.Int63n(2*h.bs)-1)
	}
	h.logf("read %q [%d,+%d) of size %d", key, off, n, f.size)
	p := make([]byte, n)
	for i := range p {
		p[i] = 0xEE // a read must overwrite every byte it reports
	}
	got, err := h.file(key).ReadAt(p, off)
	wantN := max(0, min(n, f.size-off))
	if int64(got) != wantN {
		h.fatalf("read returned %d bytes, want %d (err %v)", got, wantN, err)
	}
	switch {
	case wantN < n && err != io.EOF:
		h.fatalf("short read returned error %v, want io.EOF", err)
	case wantN == n && n > 0 && err != nil:
		h.fatalf("full read returned error %v", err)
	case n == 0 && err != nil && err != io.EOF:
		h.fatalf("empty read returned error %v", err)
	}
	if want := h.read(f, off, wantN); !bytes.Equal(p[:wantN], want) {
		h.fatalf("read %q [%d,+%d): first difference at %d", key, off, wantN, firstDiff(p[:wantN], want))
	}
}

func (h *harness) opTruncate() {
	key := h.pickExisting()
	if key == "" {
		return
	}
	f := h.files[key]
	var size int64
	switch h.rng.Intn(4) {
	case 0:
		size = h.rng.Int63n(f.size + 1)
	case 1:
		size = f.size + h.rng.Int63n(3*h.bs)
	case 2:
		size = h.rng.Int63n(h.cfg.maxBlocks) * h.bs
	default:
		size = h.randOff(f.size)
	}
	policy := h.randPolicy()
	if f.inline {
		h.truncateInline(key, f, size, policy)
		return
	}
	keep, tail := (size+h.bs-1)/h.bs, size%h.bs
	var want error
	var pinnedAffected bool
	var need uint64
	if size < f.size {
		for b, m := range f.blocks {
			if pinnedBlock(m) && (b >= keep || (tail != 0 && b == keep-1)) {
				pinnedAffected = true
			}
		}
		if tail != 0 && pinnedBlock(f.blocks[keep-1]) {
			need = 1
		}
	}
	switch {
	case policy == dax.PolicyFail && pinnedAffected:
		want = dax.ErrPinned
	case need > h.freeBlocks():
		want = dax.ErrNoSpace
	}
	h.logf("truncate %q %d -> %d policy %v: want %v", key, f.size, size, policy, want)
	ctx, cancel := breakCtx(policy)
	defer cancel()
	err := h.file(key).TruncateWith(ctx, size, dax.BreakOptions{Policy: policy})
	if want == nil && size < f.size {
		for b := range f.blocks {
			if b >= keep {
				h.dropBlock(f, b)
			}
		}
		if tail != 0 {
			h.zeroPartial(f, keep-1, tail, h.bs)
		}
	}
	if want == nil {
		f.size = size
	}
	h.expectBreakErr("truncate", err, want, policy, pinnedAffected)
}

// truncateInline is Truncate of an inline file: within the limit the bytes
// stay inline; past it they move into blocks, which may not fit. No block
// is pinned, so no policy matters.
func (h *harness) truncateInline(key string, f *mfile, size int64, policy dax.BreakPolicy) {
	var want error
	if size > h.inline && uint64((f.size+h.bs-1)/h.bs) > h.freeBlocks() {
		want = dax.ErrNoSpace
	}
	h.logf("truncate inline %q %d -> %d policy %v: want %v", key, f.size, size, policy, want)
	ctx, cancel := breakCtx(policy)
	defer cancel()
	err := h.file(key).TruncateWith(ctx, size, dax.BreakOptions{Policy: policy})
	h.expectErr("truncate inline", err, want)
	switch {
	case want != nil:
	case size <= h.inline:
		data := make([]byte, size)
		copy(data, f.data)
		f.data, f.size = data, size
	default:
		h.spill(f)
		f.size = size
	}
}

// expectBreakErr checks the error of a layout-breaking call: under Wait,
// detaching a pinned block means waiting until the context expires, after
// the change is made.
func (h *harness) expectBreakErr(op string, err, want error, policy dax.BreakPolicy, pinnedAffected bool) {
	h.t.Helper()
	if want == nil && policy == dax.PolicyWait && pinnedAffected {
		want = context.DeadlineExceeded
	}
	h.expectErr(op, err, want)
}

func (h *harness) opPunch() { h.rangeBreak("punch") }
func (h *harness) opZero()  { h.rangeBreak("zero") }

// rangeBreak is PunchHole or ZeroRange of a random range.
func (h *harness) rangeBreak(op string) {
	key := h.pickExisting()
	if key == "" {
		return
	}
	f := h.files[key]
	off, n := h.randOff(f.size), h.randLen()
	if h.rng.Intn(8) == 0 {
		n = dax.MaxFileSize - off // to the largest end: clipped to the size
	}
	policy := h.randPolicy()
	end := min(off+n, f.size)
	if f.inline {
		// Zeros in place: no block, so no pin, space or policy matters.
		h.logf("%s inline %q [%d,+%d) of size %d policy %v", op, key, off, n, f.size, policy)
		ctx, cancel := breakCtx(policy)
		defer cancel()
		var err error
		if op == "punch" {
			err = h.file(key).PunchHoleWith(ctx, off, n, dax.BreakOptions{Policy: policy})
		} else {
			err = h.file(key).ZeroRangeWith(ctx, off, n, dax.BreakOptions{Policy: policy})
		}
		h.expectErr(op+" inline", err, nil)
		if off < end {
			clear(f.data[off:end]) // the model's own copy
		}
		return
	}
	var ps []piece
	if off < end {
		ps = h.pieces(off, end)
	}
	var need uint64
	pinnedAffected := false
	for _, p := range ps {
		m := f.blocks[p.b]
		if pinnedBlock(m) {
			pinnedAffected = true
			if !p.whole || op == "zero" {
				need++ // a copy for a partial block, a fresh block for zeroing a whole one
			}
		}
	}
	var want error
	switch {
	case policy == dax.PolicyFail && pinnedAffected:
		want = dax.ErrPinned
	case need > h.freeBlocks():
		want = dax.ErrNoSpace
	}
	h.logf("%s %q [%d,+%d) of size %d policy %v needs %d: want %v", op, key, off, n, f.size, policy, need, want)
	ctx, cancel := breakCtx(policy)
	defer cancel()
	var err error
	if op == "punch" {
		err = h.file(key).PunchHoleWith(ctx, off, n, dax.BreakOptions{Policy: policy})
	} else {
		err = h.file(key).ZeroRangeWith(ctx, off, n, dax.BreakOptions{Policy: policy})
	}
	if want == nil {
		for _, p := range ps {
			switch {
			case !p.whole:
				h.zeroPartial(f, p.b, p.from, p.to)
			case op == "punch":
				h.dropBlock(f, p.b)
			case f.blocks[p.b] != nil && !f.blocks[p.b].unwritten:
				h.dropBlock(f, p.b)
				f.blocks[p.b] = h.newUnwritten()
			}
		}
	}
	h.expectBreakErr(op, err, want, policy, pinnedAffected)
}

func (h *harness) opAllocate() {
	key := h.pickExisting()
	if key == "" {
		return
	}
	f := h.files[key]
	off, n := h.randOff(f.size), h.randLen()
	if n > 0 && !h.spill(f) {
		h.logf("allocate %q [%d,+%d) of inline size %d: want %v", key, off, n, f.size, dax.ErrNoSpace)
		h.expectErr("allocate", h.file(key).Allocate(off, n), dax.ErrNoSpace)
		return
	}
	fb, fe := h.span(off, n)
	var need uint64
	if n > 0 {
		for b := fb; b < fe; b++ {
			if f.blocks[b] == nil {
				need++
			}
		}
	}
	var want error
	if need > h.freeBlocks() {
		want = dax.ErrNoSpace
	}
	h.logf("allocate %q [%d,+%d) needs %d: want %v", key, off, n, need, want)
	err := h.file(key).Allocate(off, n)
	h.expectErr("allocate", err, want)
	if want != nil || n == 0 {
		return
	}
	for b := fb; b < fe; b++ {
		if f.blocks[b] == nil {
			f.blocks[b] = h.newUnwritten()
		}
	}
	f.size = max(f.size, off+n)
}

func (h *harness) opPut() {
	key := h.pickKey()
	n := h.randLen()
	if h.rng.Intn(3) == 0 {
		n = h.rng.Int63n(h.cfg.maxBlocks*h.bs) + 1
	}
	value := h.randBytes(n)
	policy := h.randPolicy()
	need := uint64((n + h.bs - 1) / h.bs)
	if n <= h.inline {
		need = 0
	}
	f := h.files[key]
	pinnedAffected := false
	if f != nil {
		for _, m := range f.blocks {
			pinnedAffected = pinnedAffected || pinnedBlock(m)
		}
	}
	var want error
	switch {
	case need > h.freeBlocks():
		want = dax.ErrNoSpace
	case policy == dax.PolicyFail && pinnedAffected:
		want = dax.ErrPinned
	}
	h.logf("put %q %d bytes (exists %v) policy %v needs %d, %d free: want %v", key, n, f != nil, policy, need, h.freeBlocks(), want)
	ctx, cancel := breakCtx(policy)
	defer cancel()
	err := h.s.PutWith(ctx, key, value, dax.BreakOptions{Policy: policy})
	if want == nil {
		if f == nil {
			f = &mfile{blocks: map[int64]*mblock{}}
			h.files[key] = f
		}
		for b := range f.blocks {
			h.dropBlock(f, b)
		}
		f.inline, f.data = n <= h.inline, nil
		if f.inline {
			f.data = bytes.Clone(value)
			h.counts["inline put"]++
		}
		for b := int64(0); b*h.bs < n && !f.inline; b++ {
			m := h.newBlock()
			copy(m.data, value[b*h.bs:])
			f.blocks[b] = m
		}
		f.size = n
	}
	h.expectBreakErr("put", err, want, policy, pinnedAffected)
}

func (h *harness) opGet() {
	key := h.pickKey()
	h.logf("get %q", key)
	if _, ok := h.files[key]; !ok {
		_, err := h.s.Get(key)
		h.expectErr("get", err, dax.ErrNotFound)
		return
	}
	h.verifyFile(key)
	fi, err := h.s.Stat(key)
	if err != nil || fi.Size != h.files[key].size || fi.Key != key {
		h.fatalf("stat %q: %+v %v, model size %d", key, fi, err, h.files[key].size)
	}
	if sz, err := h.file(key).Size(); err != nil || sz != h.files[key].size {
		h.fatalf("size %q: %d %v, model %d", key, sz, err, h.files[key].size)
	}
}

func (h *harness) opRemove() {
	key := h.pickKey()
	policy := h.randPolicy()
	f := h.files[key]
	var want error
	pinnedAffected := false
	if f == nil {
		want = dax.ErrNotFound
	} else {
		for _, m := range f.blocks {
			pinnedAffected = pinnedAffected || pinnedBlock(m)
		}
		if policy == dax.PolicyFail && pinnedAffected {
			want = dax.ErrPinned
		}
	}
	h.logf("remove %q policy %v: want %v", key, policy, want)
	ctx, cancel := breakCtx(policy)
	defer cancel()
	err := h.s.RemoveWith(ctx, key, dax.BreakOptions{Policy: policy})
	if want == nil {
		for b := range f.blocks {
			h.dropBlock(f, b)
		}
		delete(h.files, key)
		if hd := h.handle[key]; hd != nil {
			h.dead = append(h.dead, hd)
			delete(h.handle, key)
		}
	}
	h.expectBreakErr("remove", err, want, policy, pinnedAffected)
}

func (h *harness) opRename() {
	old, nw := h.pickKey(), h.pickKey()
	var want error
	switch {
	case h.files[old] == nil:
		want = dax.ErrNotFound
	case old == nw:
	case h.files[nw] != nil:
		want = dax.ErrExist
	}
	h.logf("rename %q -> %q: want %v", old, nw, want)
	err := h.s.Rename(old, nw)
	h.expectErr("rename", err, want)
	if want != nil || old == nw {
		return
	}
	h.files[nw] = h.files[old]
	delete(h.files, old)
	if hd := h.handle[old]; hd != nil {
		delete(h.handle, old)
		h.handle[nw] = hd
		if got := hd.Key(); got != nw {
			h.fatalf("renamed handle's Key() = %q, want %q", got, nw)
		}
	}
}

func (h *harness) opCreate() {
	key := h.pickKey()
	var want error
	if h.files[key] != nil {
		want = dax.ErrExist
	}
	h.logf("create %q: want %v", key, want)
	f, err := h.s.Create(key)
	h.expectErr("create", err, want)
	if want != nil {
		return
	}
	h.files[key] = &mfile{blocks: map[int64]*mblock{}}
	if old := h.handle[key]; old != nil {
		h.fatalf("handle of %q left behind", key)
	}
	h.handle[key] = f
}

func (h *harness) opPin() {
	key := h.pickExisting()
	if key == "" {
		return
	}
	f := h.files[key]
	var off, n int64
	invalid := f.size == 0 || h.rng.Intn(12) == 0
	if invalid {
		if h.rng.Intn(3) == 0 {
			off, n = h.rng.Int63n(f.size+1), 0
		} else {
			off = h.rng.Int63n(f.size + 1)
			n = f.size - off + 1 + h.rng.Int63n(h.bs)
		}
	} else {
		off = h.rng.Int63n(f.size)
		n = 1 + h.rng.Int63n(min(f.size-off, 3*h.bs))
	}
	spillFailed := !invalid && !h.spill(f)
	fb, fe := h.span(off, n)
	var need uint64
	for b := fb; b < fe; b++ {
		if f.blocks[b] == nil {
			need++
		}
	}
	var want error
	switch {
	case invalid:
		want = dax.ErrInvalidRange
	case spillFailed, need > h.freeBlocks():
		want = dax.ErrNoSpace
	}
	writable := h.rng.Intn(3) > 0
	h.nextID++
	label := fmt.Sprintf("pin%d", h.nextID)
	mp := &mpin{key: key, off: off, n: n, writable: writable, breaks: new(atomic.Int32)}
	h.logf("pin %q [%d,+%d) %s writable %v needs %d: want %v", key, off, n, label, writable, need, want)
	p, err := h.file(key).Pin(off, n, dax.PinOptions{Writable: writable, Label: label, OnBreak: func() { mp.breaks.Add(1) }})
	h.expectErr("pin", err, want)
	if want != nil {
		return
	}
	mp.p = p
	if p.Label() != label || p.Offset() != off || p.Len() != n {
		h.fatalf("pin reports %q [%d,+%d), want %q [%d,+%d)", p.Label(), p.Offset(), p.Len(), label, off, n)
	}
	for b := fb; b < fe; b++ {
		if m := f.blocks[b]; m == nil || m.unwritten {
			f.blocks[b] = h.newBlock()
		}
		m := f.blocks[b]
		m.pins++
		base := b * h.bs
		mp.segs = append(mp.segs, seg{b: m, lo: max(base, off) - base, hi: min(base+h.bs, off+n) - base})
	}
	h.pins = append(h.pins, mp)
}

// opCanary stores random bytes through a writable pin's slices: they reach
// the pin's blocks, and so the file while it still maps them.
func (h *harness) opCanary() {
	var ws []*mpin
	for _, p := range h.pins {
		if p.writable {
			ws = append(ws, p)
		}
	}
	if len(ws) == 0 {
		return
	}
	p := ws[h.rng.Intn(len(ws))]
	a := h.rng.Int63n(p.n)
	b := a + 1 + h.rng.Int63n(p.n-a)
	canary := h.randBytes(b - a)
	h.logf("canary into %s [%d,+%d) at pin bytes [%d,%d)", p.p.Label(), p.off, p.n, a, b)
	pos := int64(0)
	for _, s := range p.p.Bytes() {
		lo, hi := max(a, pos), min(b, pos+int64(len(s)))
		if lo < hi {
			copy(s[lo-pos:hi-pos], canary[lo-a:hi-a])
		}
		pos += int64(len(s))
	}
	if pos != p.n {
		h.fatalf("pin %s slices cover %d bytes, want %d", p.p.Label(), pos, p.n)
	}
	pos = 0
	for _, s := range p.segs {
		l := s.hi - s.lo
		lo, hi := max(a, pos), min(b, pos+l)
		if lo < hi {
			copy(s.b.data[s.lo+lo-pos:s.lo+hi-pos], canary[lo-a:hi-a])
		}
		pos += l
	}
	if h.rng.Intn(2) == 0 {
		if err := p.p.Flush(); err != nil {
			h.fatalf("flush pin %s: %v", p.p.Label(), err)
		}
	}
}

func (h *harness) opUnpin() {
	if len(h.pins) == 0 {
		return
	}
	i := h.rng.Intn(len(h.pins))
	h.unpin(i)
}

func (h *harness) unpin(i int) {
	p := h.pins[i]
	h.logf("unpin %s [%d,+%d) of %q", p.p.Label(), p.off, p.n, p.key)
	if err := p.p.Unpin(); err != nil {
		h.fatalf("unpin %s: %v", p.p.Label(), err)
	}
	for _, s := range p.segs {
		s.b.pins--
	}
	h.pins = append(h.pins[:i], h.pins[i+1:]...)
	if b := p.p.Bytes(); b != nil {
		h.fatalf("Bytes after Unpin returned %d slices", len(b))
	}
	if err := p.p.Unpin(); !errors.Is(err, dax.ErrUnpinned) {
		h.fatalf("second unpin: %v, want ErrUnpinned", err)
	}
	if err := p.p.Flush(); !errors.Is(err, dax.ErrUnpinned) {
		h.fatalf("flush after unpin: %v, want ErrUnpinned", err)
	}
}

// opBadInput makes a call with bad input: it must fail with the right error
// and change nothing (verify compares everything afterwards).
func (h *harness) opBadInput() {
	key := h.pickExisting()
	type bad struct {
		name string
		want error
		call func() error
	}
	cases := []bad{
		{"put empty key", dax.ErrInvalidKey, func() error { return h.s.Put("", []byte("x")) }},
		{"put key with NUL", dax.ErrInvalidKey, func() error { return h.s.Put("a\x00b", []byte("x")) }},
		{"create key too long", dax.ErrInvalidKey, func() error { _, err := h.s.Create(strings.Repeat("k", dax.MaxKeyLen+1)); return err }},
		{"get key not UTF-8", dax.ErrInvalidKey, func() error { _, err := h.s.Get("\xff\xfe"); return err }},
		{"rename to empty key", dax.ErrInvalidKey, func() error { return h.s.Rename(h.pickKey(), "") }},
		{"remove missing key", dax.ErrNotFound, func() error { return h.s.Remove("missing") }},
		{"open missing key", dax.ErrNotFound, func() error { _, err := h.s.Open("missing"); return err }},
	}
	if key != "" {
		f := h.file(key)
		cases = append(cases,
			bad{"write at negative offset", dax.ErrInvalidRange, func() error { _, err := f.WriteAt([]byte("x"), -1); return err }},
			bad{"write past the largest size", dax.ErrInvalidRange, func() error { _, err := f.WriteAt([]byte("xy"), dax.MaxFileSize-1); return err }},
			bad{"read at negative offset", dax.ErrInvalidRange, func() error { _, err := f.ReadAt(make([]byte, 3), -5); return err }},
			bad{"truncate to negative size", dax.ErrInvalidRange, func() error { return f.Truncate(-1) }},
			bad{"truncate past the largest size", dax.ErrInvalidRange, func() error { return f.Truncate(dax.MaxFileSize + 1) }},
			bad{"punch negative length", dax.ErrInvalidRange, func() error { return f.PunchHole(0, -1) }},
			bad{"zero at negative offset", dax.ErrInvalidRange, func() error { return f.ZeroRange(-1, 5) }},
			bad{"allocate past the largest size", dax.ErrInvalidRange, func() error { return f.Allocate(dax.MaxFileSize, 1) }},
			bad{"pin negative offset", dax.ErrInvalidRange, func() error { _, err := f.Pin(-1, 1, dax.PinOptions{}); return err }},
		)
	}
	c := cases[h.rng.Intn(len(cases))]
	h.logf("bad input: %s", c.name)
	h.expectErr(c.name, c.call(), c.want)
}

// opDeadHandle uses a handle whose key was removed, or a closed handle.
func (h *harness) opDeadHandle() {
	if len(h.dead) > 0 {
		f := h.dead[h.rng.Intn(len(h.dead))]
		h.logf("use handle of removed key %q", f.Key())
		_, err := f.ReadAt(make([]byte, 1), 0)
		h.expectErr("read removed", err, dax.ErrNotFound)
		_, err = f.WriteAt([]byte("zz"), 0)
		h.expectErr("write removed", err, dax.ErrNotFound)
		h.expectErr("truncate removed", f.Truncate(0), dax.ErrNotFound)
		_, err = f.Pin(0, 1, dax.PinOptions{})
		h.expectErr("pin removed", err, dax.ErrNotFound)
		_, err = f.Size()
		h.expectErr("size removed", err, dax.ErrNotFound)
	}
	key := h.pickExisting()
	if key == "" {
		return
	}
	h.logf("close handle of %q twice", key)
	f := h.file(key)
	delete(h.handle, key)
	h.expectErr("close", f.Close(), nil)
	h.expectErr("second close", f.Close(), dax.ErrClosed)
	_, err := f.ReadAt(make([]byte, 1), 0)
	h.expectErr("read closed handle", err, dax.ErrClosed)
}

// reopen closes the store and opens it again: Close refuses while pins are
// out, a second opener is locked out, and nothing changes across the reopen.
func (h *harness) reopen() {
	force := len(h.pins) > 0 && h.rng.Intn(2) == 0
	h.logf("reopen with %d pins (force %v)", len(h.pins), force)
	h.counts[fmt.Sprintf("reopen (forced %v)", force)]++
	if _, err := dax.Open(h.dir, &h.opts); !errors.Is(err, dax.ErrLocked) {
		h.fatalf("second open of a held store: %v, want ErrLocked", err)
	}
	if len(h.pins) > 0 {
		h.expectErr("close with pins", h.s.Close(), dax.ErrPinned)
		if err := h.s.Check(); err != nil {
			h.fatalf("check after refused close: %v", err)
		}
	}
	if force {
		// The pins die with the store; their busy blocks come back at Open.
		h.expectErr("forced close", h.s.CloseWith(context.Background(), dax.CloseOptions{Force: true}), nil)
		for _, p := range h.pins {
			if b := p.p.Bytes(); b != nil {
				h.fatalf("pin %s still has bytes after a forced close", p.p.Label())
			}
			h.expectErr("unpin after forced close", p.p.Unpin(), dax.ErrClosed)
			for _, s := range p.segs {
				s.b.pins--
			}
		}
		h.pins = nil
	} else {
		for len(h.pins) > 0 {
			h.unpin(len(h.pins) - 1)
		}
		h.expectErr("close", h.s.Close(), nil)
	}
	h.expectErr("second close", h.s.Close(), dax.ErrClosed)
	for key, f := range h.handle {
		_, err := f.ReadAt(make([]byte, 1), 0)
		h.expectErr("read after store close "+key, err, dax.ErrClosed)
	}
	h.handle = map[string]*dax.File{}
	h.dead = nil
	s, err := dax.Open(h.dir, &h.opts)
	if err != nil {
		h.fatalf("reopen: %v", err)
	}
	h.s = s
	h.verify(true)
}
