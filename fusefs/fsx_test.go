package fusefs_test

// The mount exerciser is fsx through system calls: one file of a mount,
// changed at random by read, write, mmap read and write (MAP_SHARED, msync),
// ftruncate, fallocate (allocate, punch, zero), fsync, and by the paths the
// kernel never sees: pins, pinned windows and follow windows of the mount
// process writing into the file's blocks, and WriteAt, Put, punch and
// truncate through the store's API. An in-memory model knows what every
// byte must read, and what every pin holds (a punch, zero-range or truncate
// over a pinned block gives the file another block and leaves the pin its
// bytes). After each operation the touched range is read back through
// read(2) and through a long-lived MAP_SHARED mapping, and the pins it
// touched are compared; every fsxFullEvery operations the whole file is,
// the windows, and the holes SEEK_HOLE/SEEK_DATA report. So a page the
// kernel caches past a change it was not told about (a missed or misplaced
// notification) fails the run, with the seed and the last operations.

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	fusefsxSeed = flag.Int64("fusefsx.seed", 0, "seed of TestMountFsx (0: time-based)")
	fusefsxOps  = flag.Int("fusefsx.ops", 10000, "operations of TestMountFsx (make stress runs 100000)")
)

const (
	fsxBS        = 4096
	fsxMaxSize   = 64 * fsxBS // the file stays below this
	fsxMaxLen    = 3 * fsxBS  // longest range one operation touches
	fsxFullEvery = 64         // whole-file check period, in operations
	fsxCheckEver = 1000       // Store.Check period, in operations
	fsxMaxPins   = 3
	fsxMaxWins   = 2
	fsxLogLen    = 50 // operations shown on failure
)

// xblock is one region block of the model. Its identity matters: a pin and
// the file share one *xblock until a break gives the file another one.
type xblock struct {
	data []byte // fsxBS bytes
	pins int
}

type xseg struct {
	b      *xblock
	lo, hi int64
}

type xpin struct {
	id     string
	off, n int64
	segs   []xseg
	window bool // a pinned window (MapPinned), which holds blocks as a pin does
}

// The control commands that store into, flush, read and drop a pin or a
// pinned window.
func (p *xpin) cmds() (write, flush, read, drop string) {
	if p.window {
		return "winwrite", "winflush", "winread %s 0 %d", "winclose"
	}
	return "pinwrite", "pinflush", "pinread %s %d", "unpin"
}

func (p *xpin) bytes() []byte {
	out := make([]byte, 0, p.n)
	for _, s := range p.segs {
		out = append(out, s.b.data[s.lo:s.hi]...)
	}
	return out
}

type xwin struct {
	id     string
	off, n int64
}

// xmodel is what the file must read.
type xmodel struct {
	size   int64
	blocks map[int64]*xblock // absent: a hole
}

func (m *xmodel) read(off, n int64) []byte {
	out := make([]byte, n)
	for i := int64(0); i < n; {
		b, in := (off+i)/fsxBS, (off+i)%fsxBS
		k := min(fsxBS-in, n-i)
		if blk := m.blocks[b]; blk != nil {
			copy(out[i:i+k], blk.data[in:in+k])
		}
		i += k
	}
	if off+n > m.size { // past the end reads nothing; the caller clips
		clear(out[max(0, m.size-off):])
	}
	return out
}

// write stores p at off into the file's blocks, in place: pins that share a
// block see it, as they see a WriteAt.
func (m *xmodel) write(off int64, p []byte) {
	for i := int64(0); i < int64(len(p)); {
		b, in := (off+i)/fsxBS, (off+i)%fsxBS
		k := min(fsxBS-in, int64(len(p))-i)
		blk := m.blocks[b]
		if blk == nil {
			blk = &xblock{data: make([]byte, fsxBS)}
			m.blocks[b] = blk
		}
		copy(blk.data[in:in+k], p[i:i+k])
		i += k
	}
	m.size = max(m.size, off+int64(len(p)))
}

// zero makes [off, end) read zeros, as punch and zero-range do: a pinned
// block is replaced in the file by a copy (the pin keeps its bytes), any
// other is zeroed in place.
func (m *xmodel) zero(off, end int64) {
	for pos := off; pos < end; {
		b, in := pos/fsxBS, pos%fsxBS
		k := min(fsxBS-in, end-pos)
		if blk := m.blocks[b]; blk != nil {
			if blk.pins > 0 {
				blk = &xblock{data: bytes.Clone(blk.data)}
				m.blocks[b] = blk
			}
			clear(blk.data[in : in+k])
		}
		pos += k
	}
}

func (m *xmodel) truncate(size int64) {
	if size < m.size {
		for b := range m.blocks {
			if b*fsxBS >= size {
				delete(m.blocks, b)
			}
		}
		m.zero(size, min(m.size, (size+fsxBS-1)/fsxBS*fsxBS))
	}
	m.size = size
}

// fsxRun is one run of the exerciser.
type fsxRun struct {
	t      *testing.T
	m      *mountProc
	seed   int64
	rng    *rand.Rand
	f      *os.File
	fd     int
	mapped []byte // MAP_SHARED, PROT_READ|PROT_WRITE, fsxMaxSize bytes, for the whole run
	model  xmodel
	pins   []*xpin
	wins   []*xwin
	zeroOK bool // the kernel passes FALLOC_FL_ZERO_RANGE to FUSE
	opN    int
	log    []string
	counts map[string]int
}

func (x *fsxRun) logf(format string, args ...any) {
	x.log = append(x.log, fmt.Sprintf("%6d ", x.opN)+fmt.Sprintf(format, args...))
	if len(x.log) > 4*fsxLogLen {
		x.log = append(x.log[:0], x.log[len(x.log)-fsxLogLen:]...)
	}
}

func (x *fsxRun) fatalf(format string, args ...any) {
	x.t.Helper()
	l := x.log
	if len(l) > fsxLogLen {
		l = l[len(l)-fsxLogLen:]
	}
	x.t.Fatalf("%s\nseed %d, operation %d; rerun with -run 'TestMountFsx' -fusefsx.seed=%d -fusefsx.ops=%d\nlast operations:\n%s\nmount log:\n%s",
		fmt.Sprintf(format, args...), x.seed, x.opN, x.seed, *fusefsxOps, strings.Join(l, "\n"), x.m.tail())
}

func (x *fsxRun) must(what string, err error) {
	x.t.Helper()
	if err != nil {
		x.fatalf("%s: %v", what, err)
	}
}

func (x *fsxRun) do(format string, args ...any) string {
	x.t.Helper()
	out, err := x.m.Do(format, args...)
	if err != nil {
		x.fatalf("control %.60q: %v", fmt.Sprintf(format, args...), err)
	}
	return out
}

// change is do for a command that changes the file behind the kernel's
// back; it then waits for the mount's notifier to pass the change on. That
// the change shows without this wait is TestMountShowsStoreChangesOnceTheyReturn's
// business: here a missed or misplaced notification must fail, a late one
// must not.
func (x *fsxRun) change(format string, args ...any) string {
	x.t.Helper()
	out := x.do(format, args...)
	x.do("sync")
	return out
}

func TestMountFsx(t *testing.T) {
	needFUSE(t)
	seed := *fusefsxSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d, %d operations", seed, *fusefsxOps)
	m := startMount(t, mountConfig{})
	x := &fsxRun{t: t, m: m, seed: seed, rng: rand.New(rand.NewSource(seed)), model: xmodel{blocks: map[int64]*xblock{}}, counts: map[string]int{}}
	path := filepath.Join(m.Mnt, "fsx")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	x.f, x.fd = f, int(f.Fd())
	t.Cleanup(func() { f.Close() })
	x.mapped, err = unix.Mmap(x.fd, 0, fsxMaxSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap of a mount file: %v", err)
	}
	t.Cleanup(func() { unix.Munmap(x.mapped) })
	// A load from a page wholly past the end of the file raises SIGBUS:
	// let it be a panic the test reports rather than a dead test binary.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			x.fatalf("panic: %v", r)
		}
	}()
	x.zeroOK = unix.Fallocate(x.fd, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, 0, 1) == nil
	if !x.zeroOK {
		t.Logf("this kernel does not pass FALLOC_FL_ZERO_RANGE to FUSE; zero-range runs through the store's API")
	}
	for x.opN = 0; x.opN < *fusefsxOps; x.opN++ {
		x.step()
		if x.opN%fsxFullEvery == fsxFullEvery-1 {
			x.verifyAll()
		}
		if x.opN%fsxCheckEver == fsxCheckEver-1 {
			x.do("check")
		}
	}
	x.verifyAll()
	x.do("check")
	for _, p := range x.pins {
		_, _, _, drop := p.cmds()
		x.do(drop+" %s", p.id)
	}
	for _, w := range x.wins {
		x.do("winclose %s", w.id)
	}
	x.do("check")
	t.Logf("operations: %v", x.counts)
	unix.Munmap(x.mapped)
	f.Close()
	m.Quit()
}

// rangeIn picks [off, off+n) with off+n <= limit and n >= 1 (limit >= 1),
// short ones more often, block-aligned now and then.
func (x *fsxRun) rangeIn(limit int64) (off, n int64) {
	n = 1 + x.rng.Int63n(min(limit, fsxMaxLen))
	if x.rng.Intn(4) == 0 {
		n = min(n, 1+x.rng.Int63n(64))
	}
	off = x.rng.Int63n(limit - n + 1)
	if x.rng.Intn(4) == 0 {
		off = off / fsxBS * fsxBS
		if x.rng.Intn(2) == 0 {
			n = min((n+fsxBS-1)/fsxBS*fsxBS, limit-off)
		}
	}
	return off, n
}

func (x *fsxRun) data(n int64) []byte {
	b := make([]byte, n)
	x.rng.Read(b)
	return b
}

// step runs one random operation, applies it to the model and checks the
// range it touched.
func (x *fsxRun) step() {
	type op struct {
		name   string
		weight int
		fn     func() (off, n int64, ok bool)
	}
	ops := []op{
		{"read", 10, x.opRead},
		{"write", 12, x.opWrite},
		{"mapread", 8, x.opMapRead},
		{"mapwrite", 8, x.opMapWrite},
		{"truncate", 5, x.opTruncate},
		{"allocate", 2, x.opAllocate},
		{"punch", 6, x.opPunch},
		{"zero", 5, x.opZero},
		{"fsync", 2, x.opFsync},
		{"pin", 3, x.opPin},
		{"pinwrite", 5, x.opPinWrite},
		{"unpin", 2, x.opUnpin},
		{"map", 2, x.opMap},
		{"winwrite", 4, x.opWinWrite},
		{"winclose", 1, x.opWinClose},
		{"apiwrite", 4, x.opAPIWrite},
		{"apipunch", 2, x.opAPIPunch},
		{"apitruncate", 2, x.opAPITruncate},
		{"apiput", 1, x.opAPIPut},
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	for {
		r := x.rng.Intn(total)
		var o op
		for _, o = range ops {
			if r < o.weight {
				break
			}
			r -= o.weight
		}
		off, n, ok := o.fn()
		if !ok {
			continue // not possible in this state (no pin, empty file...)
		}
		x.counts[o.name]++
		x.verify(off, n)
		return
	}
}

// verify checks the size, bytes [off, off+n) through read(2) and through
// the mapping, and every pin.
func (x *fsxRun) verify(off, n int64) {
	x.t.Helper()
	var st unix.Stat_t
	x.must("fstat", unix.Fstat(x.fd, &st))
	if st.Size != x.model.size {
		x.fatalf("fstat size %d, model %d", st.Size, x.model.size)
	}
	end := min(off+n, x.model.size)
	if off < end {
		want := x.model.read(off, end-off)
		got := make([]byte, end-off)
		k, err := unix.Pread(x.fd, got, off)
		if err != nil || int64(k) != end-off {
			x.fatalf("pread [%d,%d): %d bytes, %v", off, end, k, err)
		}
		if i := firstDiff(got, want); i < len(want) {
			x.fatalf("read(2) at %d: %#x, model %#x (range [%d,%d))", off+int64(i), got[i], want[i], off, end)
		}
		if i := firstDiff(x.mapped[off:end], want); i < len(want) {
			x.fatalf("mmap at %d: %#x, model %#x (range [%d,%d))", off+int64(i), x.mapped[off+int64(i)], want[i], off, end)
		}
	}
	for _, p := range x.pins {
		if p.off >= off+n || off >= p.off+p.n {
			continue // only bytes the operation touched can have changed
		}
		_, _, read, _ := p.cmds()
		got, _ := hex.DecodeString(x.do(read, p.id, p.n))
		if want := p.bytes(); !bytes.Equal(got, want) {
			i := firstDiff(got, want)
			x.fatalf("pin %s [%d,+%d) at %d: holds %#x, model %#x", p.id, p.off, p.n, p.off+int64(i), got[i], want[i])
		}
	}
}

// verifyAll checks the whole file through read(2) and the mapping, and
// every window.
func (x *fsxRun) verifyAll() {
	x.t.Helper()
	x.verify(0, x.model.size)
	x.verifyHoles()
	for _, w := range x.wins {
		end := min(w.off+w.n, x.model.size)
		if w.off >= end {
			continue
		}
		got, _ := hex.DecodeString(x.do("winread %s 0 %d", w.id, end-w.off))
		if want := x.model.read(w.off, end-w.off); !bytes.Equal(got, want) {
			i := firstDiff(got, want)
			x.fatalf("window %s [%d,+%d) at %d: %#x, model %#x", w.id, w.off, w.n, w.off+int64(i), got[i], want[i])
		}
	}
}

// verifyHoles walks the file with SEEK_DATA and SEEK_HOLE, as a sparse
// copy does: every byte it would skip must read as zeros in the model, and
// the walk must end at the size.
func (x *fsxRun) verifyHoles() {
	x.t.Helper()
	for off := int64(0); off < x.model.size; {
		hole, err := unix.Seek(x.fd, off, unix.SEEK_HOLE)
		if err != nil || hole < off || hole > x.model.size {
			x.fatalf("SEEK_HOLE from %d: %d, %v (size %d)", off, hole, err, x.model.size)
		}
		if hole == x.model.size {
			return
		}
		data, err := unix.Seek(x.fd, hole, unix.SEEK_DATA)
		switch {
		case err == unix.ENXIO:
			data = x.model.size
		case err != nil || data <= hole || data > x.model.size:
			x.fatalf("SEEK_DATA from %d: %d, %v (size %d)", hole, data, err, x.model.size)
		}
		if z := x.model.read(hole, data-hole); !bytes.Equal(z, make([]byte, len(z))) {
			i := bytes.IndexFunc(z, func(r rune) bool { return r != 0 })
			x.fatalf("SEEK_HOLE/SEEK_DATA report a hole [%d,%d), but the model holds data at %d", hole, data, hole+int64(i))
		}
		off = data
	}
}

func (x *fsxRun) opRead() (int64, int64, bool) {
	if x.model.size == 0 {
		return 0, 0, false
	}
	off, n := x.rangeIn(x.model.size)
	x.logf("read %d %d", off, n)
	return off, n, true // verify reads it
}

func (x *fsxRun) opMapRead() (int64, int64, bool) {
	if x.model.size == 0 {
		return 0, 0, false
	}
	off, n := x.rangeIn(x.model.size)
	x.logf("mapread %d %d", off, n)
	want := x.model.read(off, n)
	if i := firstDiff(x.mapped[off:off+n], want); i < len(want) {
		x.fatalf("mapread at %d: %#x, model %#x", off+int64(i), x.mapped[off+int64(i)], want[i])
	}
	return off, n, true
}

func (x *fsxRun) opWrite() (int64, int64, bool) {
	off, n := x.rangeIn(fsxMaxSize)
	p := x.data(n)
	x.logf("write %d %d", off, n)
	k, err := unix.Pwrite(x.fd, p, off)
	if err != nil || int64(k) != n {
		x.fatalf("pwrite [%d,+%d): %d, %v", off, n, k, err)
	}
	x.model.write(off, p)
	return off, n, true
}

// opMapWrite stores through the shared mapping and msyncs, growing the file
// first when the range passes its end (as fsx does).
func (x *fsxRun) opMapWrite() (int64, int64, bool) {
	off, n := x.rangeIn(fsxMaxSize)
	p := x.data(n)
	if off+n > x.model.size {
		x.logf("mapwrite %d %d (ftruncate to %d first)", off, n, off+n)
		x.must("ftruncate before mapwrite", unix.Ftruncate(x.fd, off+n))
		x.model.truncate(off + n)
	} else {
		x.logf("mapwrite %d %d", off, n)
	}
	copy(x.mapped[off:off+n], p)
	lo := off / int64(os.Getpagesize()) * int64(os.Getpagesize())
	x.must("msync", unix.Msync(x.mapped[lo:off+n], unix.MS_SYNC))
	x.model.write(off, p)
	return off, n, true
}

func (x *fsxRun) opTruncate() (int64, int64, bool) {
	size := x.rng.Int63n(fsxMaxSize + 1)
	if x.rng.Intn(3) == 0 {
		size = size / fsxBS * fsxBS
	}
	x.logf("truncate %d (from %d)", size, x.model.size)
	x.must("ftruncate", unix.Ftruncate(x.fd, size))
	old := x.model.size
	x.model.truncate(size)
	return min(old, size), max(old, size) - min(old, size) + fsxBS, true
}

func (x *fsxRun) opAllocate() (int64, int64, bool) {
	off, n := x.rangeIn(fsxMaxSize)
	mode := uint32(0)
	if x.rng.Intn(2) == 0 {
		mode = unix.FALLOC_FL_KEEP_SIZE
	}
	x.logf("allocate %d %d mode %d", off, n, mode)
	x.must("fallocate", unix.Fallocate(x.fd, mode, off, n))
	if mode == 0 {
		x.model.size = max(x.model.size, off+n)
	}
	return off, n, true
}

func (x *fsxRun) opPunch() (int64, int64, bool) {
	off, n := x.rangeIn(fsxMaxSize)
	x.logf("punch %d %d", off, n)
	x.must("fallocate punch", unix.Fallocate(x.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n))
	x.model.zero(off, min(off+n, x.model.size))
	return off, n, true
}

func (x *fsxRun) opZero() (int64, int64, bool) {
	off, n := x.rangeIn(fsxMaxSize)
	if !x.zeroOK {
		x.logf("apizero %d %d", off, n)
		x.change("zero fsx %d %d", off, n)
		x.model.zero(off, min(off+n, x.model.size))
		return off, n, true
	}
	mode := uint32(unix.FALLOC_FL_ZERO_RANGE)
	if x.rng.Intn(2) == 0 {
		mode |= unix.FALLOC_FL_KEEP_SIZE
	}
	x.logf("zero %d %d mode %d", off, n, mode)
	x.must("fallocate zero", unix.Fallocate(x.fd, mode, off, n))
	if mode&unix.FALLOC_FL_KEEP_SIZE == 0 {
		x.model.size = max(x.model.size, off+n)
	}
	x.model.zero(off, min(off+n, x.model.size))
	return off, n, true
}

func (x *fsxRun) opFsync() (int64, int64, bool) {
	x.logf("fsync")
	x.must("fsync", unix.Fsync(x.fd))
	return 0, 0, true
}

// opPin pins a range of the file, writable, in the mount process. Holes in
// it become zeroed blocks of the file, which reads the same.
func (x *fsxRun) opPin() (int64, int64, bool) {
	if len(x.pins) >= fsxMaxPins || x.model.size == 0 {
		return 0, 0, false
	}
	off, n := x.rangeIn(x.model.size)
	p := &xpin{off: off, n: n, window: x.rng.Intn(3) == 0}
	if p.window {
		x.counts["pinned window"]++
		x.logf("map pinned %d %d", off, n)
		p.id = x.do("map fsx %d %d w pinned", off, n)
	} else {
		x.logf("pin %d %d", off, n)
		p.id = x.do("pin fsx %d %d w", off, n)
	}
	for pos := off; pos < off+n; {
		b, in := pos/fsxBS, pos%fsxBS
		k := min(fsxBS-in, off+n-pos)
		blk := x.model.blocks[b]
		if blk == nil {
			blk = &xblock{data: make([]byte, fsxBS)}
			x.model.blocks[b] = blk
		}
		blk.pins++
		p.segs = append(p.segs, xseg{blk, in, in + k})
		pos += k
	}
	x.pins = append(x.pins, p)
	return off, n, true
}

// opPinWrite stores through a pin and flushes it: where the pin's blocks
// are still the file's, read(2) and the mapping must show the bytes at once.
func (x *fsxRun) opPinWrite() (int64, int64, bool) {
	if len(x.pins) == 0 {
		return 0, 0, false
	}
	p := x.pins[x.rng.Intn(len(x.pins))]
	rel, n := x.rangeIn(p.n)
	d := x.data(n)
	write, flush, _, _ := p.cmds()
	x.logf("%s %s [%d,+%d) at %d %d", write, p.id, p.off, p.n, rel, n)
	x.do(write+" %s %d %x", p.id, rel, d)
	x.change(flush+" %s", p.id)
	for i := int64(0); i < n; {
		pos := rel + i
		for _, s := range p.segs {
			if pos < s.hi-s.lo {
				k := min(s.hi-s.lo-pos, n-i)
				copy(s.b.data[s.lo+pos:s.lo+pos+k], d[i:i+k])
				i += k
				break
			}
			pos -= s.hi - s.lo
		}
	}
	return p.off + rel, n, true
}

func (x *fsxRun) opUnpin() (int64, int64, bool) {
	if len(x.pins) == 0 {
		return 0, 0, false
	}
	i := x.rng.Intn(len(x.pins))
	p := x.pins[i]
	_, _, _, drop := p.cmds()
	x.logf("%s %s", drop, p.id)
	x.change(drop+" %s", p.id)
	for _, s := range p.segs {
		s.b.pins--
	}
	x.pins = append(x.pins[:i], x.pins[i+1:]...)
	return p.off, p.n, true
}

// opMap opens a writable follow window on a block-aligned range.
func (x *fsxRun) opMap() (int64, int64, bool) {
	if len(x.wins) >= fsxMaxWins {
		return 0, 0, false
	}
	off := x.rng.Int63n(fsxMaxSize/fsxBS) * fsxBS
	n := min(int64(1+x.rng.Intn(4))*fsxBS, fsxMaxSize-off)
	x.logf("map %d %d", off, n)
	w := &xwin{id: x.do("map fsx %d %d w", off, n), off: off, n: n}
	x.wins = append(x.wins, w)
	return off, n, true
}

// opWinWrite stores through a follow window inside the file and flushes.
func (x *fsxRun) opWinWrite() (int64, int64, bool) {
	if len(x.wins) == 0 {
		return 0, 0, false
	}
	w := x.wins[x.rng.Intn(len(x.wins))]
	end := min(w.off+w.n, x.model.size)
	if end <= w.off {
		return 0, 0, false
	}
	rel, n := x.rangeIn(end - w.off)
	d := x.data(n)
	x.logf("winwrite win %s [%d,+%d) at %d %d", w.id, w.off, w.n, rel, n)
	x.do("winwrite %s %d %x", w.id, rel, d)
	x.change("winflush %s", w.id)
	x.model.write(w.off+rel, d)
	return w.off + rel, n, true
}

func (x *fsxRun) opWinClose() (int64, int64, bool) {
	if len(x.wins) == 0 {
		return 0, 0, false
	}
	i := x.rng.Intn(len(x.wins))
	w := x.wins[i]
	x.logf("winclose %s", w.id)
	x.change("winclose %s", w.id)
	x.wins = append(x.wins[:i], x.wins[i+1:]...)
	return w.off, w.n, true
}

func (x *fsxRun) opAPIWrite() (int64, int64, bool) {
	off, n := x.rangeIn(fsxMaxSize)
	d := x.data(n)
	x.logf("apiwrite %d %d", off, n)
	x.change("write fsx %d %x", off, d)
	x.model.write(off, d)
	return off, n, true
}

func (x *fsxRun) opAPIPunch() (int64, int64, bool) {
	off, n := x.rangeIn(fsxMaxSize)
	x.logf("apipunch %d %d", off, n)
	x.change("punch fsx %d %d", off, n)
	x.model.zero(off, min(off+n, x.model.size))
	return off, n, true
}

func (x *fsxRun) opAPITruncate() (int64, int64, bool) {
	size := x.rng.Int63n(fsxMaxSize + 1)
	x.logf("apitruncate %d (from %d)", size, x.model.size)
	x.change("truncate fsx %d", size)
	old := x.model.size
	x.model.truncate(size)
	return min(old, size), max(old, size) - min(old, size) + fsxBS, true
}

// opAPIPut replaces the whole value: pins keep the old blocks.
func (x *fsxRun) opAPIPut() (int64, int64, bool) {
	n := x.rng.Int63n(8 * fsxBS)
	d := x.data(n)
	x.logf("apiput %d", n)
	x.change("put fsx %x", d)
	x.model = xmodel{blocks: map[int64]*xblock{}}
	x.model.write(0, d)
	return 0, fsxMaxSize, true
}

// TestMountShowsStoreChangesOnceTheyReturn is the exerciser's coherence rule
// on its own: once a change the kernel did not make (a pin's stores
// flushed, a window's flushed, a WriteAt, Truncate or Put through the API
// of the mount process) has returned, read(2), a MAP_SHARED mapping and
// fstat show it, though the kernel cached the file's pages and attributes
// just before.
func TestMountShowsStoreChangesOnceTheyReturn(t *testing.T) {
	needFUSE(t)
	m := startMount(t, mountConfig{})
	const size = 4 * fsxBS
	rng := rand.New(rand.NewSource(5))
	m.Must("put c %x", randBytes(rng, size))
	f, err := os.OpenFile(filepath.Join(m.Mnt, "c"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	mapped, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mapped) })
	pin := m.Must("pin c 0 %d w", size)
	win := m.Must("map c 0 %d w", size)
	for i := range 100 {
		// Fill the page cache and the attribute cache.
		before := make([]byte, size)
		if _, err := f.ReadAt(before, 0); err != nil {
			t.Fatal(err)
		}
		_ = mapped[size-1]
		want := bytes.Clone(before)
		d := randBytes(rng, 1+rng.Intn(100))
		off := rng.Intn(size - len(d))
		var how string
		switch i % 4 {
		case 0:
			how = "a pin's stores, flushed"
			m.Must("pinwrite %s %d %x", pin, off, d)
			m.Must("pinflush %s", pin)
		case 1:
			how = "a window's stores, flushed"
			m.Must("winwrite %s %d %x", win, off, d)
			m.Must("winflush %s", win)
		case 2:
			how = "WriteAt through the API"
			m.Must("write c %d %x", off, d)
		case 3:
			how = "Put through the API"
			rng.Read(want)
			m.Must("put c %x", want)
			// The pin keeps the old blocks; take the new ones.
			m.Must("unpin %s", pin)
			pin = m.Must("pin c 0 %d w", size)
		}
		if i%4 != 3 {
			copy(want[off:], d)
		}
		got := make([]byte, size)
		if _, err := f.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		if j := firstDiff(got, want); j < size {
			t.Fatalf("round %d: after %s returned, read(2) at %d gives %#x, want %#x", i, how, j, got[j], want[j])
		}
		if j := firstDiff(mapped, want); j < size {
			t.Fatalf("round %d: after %s returned, the mapping at %d gives %#x, want %#x", i, how, j, mapped[j], want[j])
		}
	}
	// Size changes through the API show in fstat at once.
	for i, n := range []int64{size / 2, size, 1, size} {
		var st unix.Stat_t
		unix.Fstat(int(f.Fd()), &st) // cache the attributes
		m.Must("truncate c %d", n)
		if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Size != n {
			t.Fatalf("truncate %d: after the API's Truncate returned fstat gives size %d (%v)", i, st.Size, err)
		}
	}
	m.Must("unpin %s", pin)
	m.Must("winclose %s", win)
	unix.Munmap(mapped)
	f.Close()
	m.Quit()
}
