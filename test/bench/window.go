package bench

// Windows: reading a file through one contiguous mapping against copying
// the same bytes out of the region mapping itself, what Map+Close costs
// against a bare mmap+munmap, and how long a punch takes to return while a
// follow window over it has to be remapped, against the same punch with no
// window.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/daxstore/daxstore/dax"
)

// Groups and subjects of the window figures.
const (
	groupWindowRead  = "window read"
	groupWindowMap   = "window map"
	groupWindowPunch = "window punch"

	subjWindowRead       = "read through a window, steady state"
	subjWindowFirstTouch = "read through a window, first touch (Map+read+Close)"
	subjWindowReadLimit  = "copy from the region mapping (Pin slices)"
	subjWindowMap        = "Map+Close latency"
	subjWindowMapLimit   = "mmap+munmap of one file range"
	subjWindowPunchP50   = "PunchHole p50 under a follow window"
	subjWindowPunchP99   = "PunchHole p99 under a follow window"
	subjNoWindowPunchP50 = "PunchHole p50, no window"
	subjNoWindowPunchP99 = "PunchHole p99, no window"
	subjZapFloorP50      = "kernel floor: zero pages over 2 MiB of touched file pages, p50"
	subjZapFloorP99      = "kernel floor: zero pages over 2 MiB of touched file pages, p99"

	// windowReadGoal is the goal for the steady-state read: at
	// least this fraction of the copy out of the region mapping.
	windowReadGoal = 0.9
	// windowPunchGoalUs is the goal for the p99 of a 2 MiB punch
	// under a live follow window, in µs.
	windowPunchGoalUs = 50
	// windowPunchBytes is the size of each timed punch.
	windowPunchBytes = 2 << 20
	// windowPunchFile is the size of the file the punches cycle through:
	// a window over several 2 MiB slots, as a table or a ring buffer is.
	windowPunchFile = 16 << 20
	// windowReadChunk is the buffer a sequential reader copies into.
	windowReadChunk = 1 << 20
	// windowReadRounds is how many alternating rounds the read figures
	// take; each keeps its best.
	windowReadRounds = 3
)

// windowReadBytes is the size of the file the read figures stream through:
// larger than the last-level cache, so that both sides read memory.
func (r *runner) windowReadBytes() int64 {
	if r.cfg.Quick {
		return min(16<<20, r.cfg.PunchBytes)
	}
	return min(64<<20, r.cfg.PunchBytes)
}

// windowPunchSamples is how many punches each of the two punch figures
// times.
func (r *runner) windowPunchSamples() int {
	if r.cfg.Quick {
		return 100
	}
	return 400
}

func (r *runner) windowAll() error {
	if err := r.windowRead(); err != nil {
		return fmt.Errorf("window read: %w", err)
	}
	for _, n := range []int64{4 << 10, r.cfg.PunchBytes} {
		if err := r.windowMap(n); err != nil {
			return fmt.Errorf("window Map+Close of %s: %w", sizeName(n), err)
		}
	}
	if err := r.windowPunch(); err != nil {
		return fmt.Errorf("punch under a window: %w", err)
	}
	return nil
}

// copyOut copies src into buf, chunk by chunk, as a sequential reader
// streaming a file does, and returns a checksum of the last chunk so that
// the copies cannot be dropped.
func copyOut(buf, src []byte) uint64 {
	for len(src) > 0 {
		n := copy(buf, src)
		src = src[n:]
	}
	return uint64(buf[0])
}

// windowRead times a sequential read of a whole contiguous file through a
// read-only follow window, open and already touched (steady state) and
// freshly mapped (first touch, Map and Close included), against the same
// copy out of the Pin slices of the same bytes, which are slices of the
// region mapping itself.
func (r *runner) windowRead() (err error) {
	n := r.windowReadBytes()
	r.progress("sequential read of " + sizeName(n) + " through a window")
	s, done, err := r.scratchStore("window-read", n+64<<20)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := done(); err == nil {
			err = cerr
		}
	}()
	f, err := writeLong(s, "long", n)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, windowReadChunk)
	p, err := f.Pin(0, n, dax.PinOptions{Label: "bench"})
	if err != nil {
		return err
	}
	defer p.Unpin()
	w, err := f.Map(0, n, dax.MapOptions{Label: "bench"})
	if err != nil {
		return err
	}
	defer w.Close()
	// Both sides must read the same bytes.
	at := int64(0)
	for _, b := range p.Bytes() {
		if got := w.Bytes(); int64(len(got)) != n || !bytes.Equal(got[at:at+int64(len(b))], b) {
			return fmt.Errorf("the window (%d bytes) does not read the pinned bytes at %d", len(got), at)
		}
		at += int64(len(b))
	}
	pieces := w.Pieces()
	// The three are measured in alternating rounds and each keeps its best
	// round, so that a burst of other load on the machine during one of
	// them does not decide the ratio.
	var limit, steady, first result
	d := r.cfg.Duration / windowReadRounds
	for range windowReadRounds {
		for _, m := range []struct {
			best *result
			warm int
			op   func(int) error
		}{
			{&limit, 1, func(int) error {
				var sum uint64
				for _, b := range p.Bytes() {
					sum += copyOut(buf, b)
				}
				sink.Add(sum)
				return nil
			}},
			{&steady, 1, func(int) error {
				sink.Add(copyOut(buf, w.Bytes()))
				return nil
			}},
			{&first, 0, func(int) error {
				fresh, err := f.Map(0, n, dax.MapOptions{Label: "bench"})
				if err != nil {
					return err
				}
				sink.Add(copyOut(buf, fresh.Bytes()))
				return fresh.Close()
			}},
		} {
			res, err := timed(r.ctx, d, m.warm, 2, m.op)
			if err != nil {
				return err
			}
			if m.best.ops == 0 || res.opsPerSec() > m.best.opsPerSec() {
				*m.best = res
			}
		}
	}
	note := fmt.Sprintf("%s file in %d run(s), window of %d piece(s), copied into a %s buffer",
		sizeName(n), len(p.Bytes()), pieces, sizeName(windowReadChunk))
	size := int(n)
	r.throughput(groupWindowRead, subjWindowReadLimit, roleLimit, size, limit)
	r.throughput(groupWindowRead, subjWindowRead, roleDax, size, steady)
	r.throughput(groupWindowRead, subjWindowFirstTouch, roleDax, size, first)
	r.report.Figures[len(r.report.Figures)-2].Note = note
	r.report.Figures[len(r.report.Figures)-1].Note = "a fresh window each time: its page faults and unmap are included"
	return nil
}

// writeLong creates key and writes n bytes into it in one contiguous run.
func writeLong(s *dax.Store, key string, n int64) (*dax.File, error) {
	f, err := s.Create(key)
	if err != nil {
		return nil, err
	}
	buf := chunk()
	for off := int64(0); off < n; off += fillChunk {
		if _, err := f.WriteAt(buf[:min(fillChunk, n-off)], off); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// windowMap times Map+Close of a read-only follow window over a whole
// written file of n bytes, against one mmap+munmap of a file range of the
// same size: the floor of any mapping.
func (r *runner) windowMap(n int64) (err error) {
	r.progress("Map+Close of a " + sizeName(n) + " window")
	s, done, err := r.scratchStore("window-map", n+64<<20)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := done(); err == nil {
			err = cerr
		}
	}()
	f, err := writeLong(s, "long", n)
	if err != nil {
		return err
	}
	defer f.Close()
	var pieces int
	d := r.cfg.Duration
	warm, minOps := 100, 1000
	if n > 64<<20 {
		warm, minOps = 1, 10
	}
	res, err := timed(r.ctx, d, warm, minOps, func(int) error {
		w, err := f.Map(0, n, dax.MapOptions{})
		if err != nil {
			return err
		}
		pieces = w.Pieces()
		return w.Close()
	})
	if err != nil {
		return err
	}
	limit, err := r.mmapFloor(n, d, warm, minOps)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	r.add(Figure{Group: groupWindowMap, Subject: subjWindowMapLimit, Role: roleLimit, Size: n, Value: limit.nsPerOp(), Unit: unitNs})
	r.add(Figure{Group: groupWindowMap, Subject: subjWindowMap, Role: roleDax, Size: n, Value: res.nsPerOp(), Unit: unitNs,
		Note: fmt.Sprintf("read-only follow window over a written file, %d piece(s) at %s", pieces, sizeName(n))})
	return nil
}

// mmapFloor times one MAP_SHARED mmap and munmap of n bytes of a file.
func (r *runner) mmapFloor(n int64, d time.Duration, warm, minOps int) (result, error) {
	path := filepath.Join(r.dir, "mmap-floor")
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return result{}, err
	}
	defer os.Remove(path)
	defer file.Close()
	if err := file.Truncate(n); err != nil {
		return result{}, err
	}
	fd := int(file.Fd())
	return timed(r.ctx, d, warm, minOps, func(int) error {
		m, err := unix.Mmap(fd, 0, int(n), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return err
		}
		return unix.Munmap(m)
	})
}

// windowPunch times PunchHole of 2 MiB slots of a file while a read-only
// follow window covers the whole file and has read the slot, and the same
// punches of a file with no window. Between punches (untimed) the slot is
// written again, which fills the hole, and read through the window, so
// that each punch has mapped, touched pages to replace.
func (r *runner) windowPunch() error {
	withWindow, err := r.punchSamples(true)
	if err != nil {
		return err
	}
	without, err := r.punchSamples(false)
	if err != nil {
		return err
	}
	floor, err := r.zapFloor()
	if err != nil {
		return fmt.Errorf("kernel floor: %w", err)
	}
	note := fmt.Sprintf("%d punches of %s each, cycling through a %s file", len(withWindow), sizeName(windowPunchBytes), sizeName(windowPunchFile))
	size := int64(windowPunchBytes)
	r.add(Figure{Group: groupWindowPunch, Subject: subjNoWindowPunchP50, Role: roleDax, Size: size, Count: int64(len(without)), Value: us(percentile(without, 50)), Unit: unitUs})
	r.add(Figure{Group: groupWindowPunch, Subject: subjNoWindowPunchP99, Role: roleDax, Size: size, Count: int64(len(without)), Value: us(percentile(without, 99)), Unit: unitUs})
	r.add(Figure{Group: groupWindowPunch, Subject: subjWindowPunchP50, Role: roleDax, Size: size, Count: int64(len(withWindow)), Value: us(percentile(withWindow, 50)), Unit: unitUs, Note: note})
	r.add(Figure{Group: groupWindowPunch, Subject: subjWindowPunchP99, Role: roleDax, Size: size, Count: int64(len(withWindow)), Value: us(percentile(withWindow, 99)), Unit: unitUs})
	r.add(Figure{Group: groupWindowPunch, Subject: subjZapFloorP50, Role: roleDax, Size: size, Count: int64(len(floor)), Value: us(percentile(floor, 50)), Unit: unitUs,
		Note: "one mmap(MAP_FIXED) of the zero page over 2 MiB of a shared file mapping whose pages were read: what replacing a follow window's pages costs the kernel at least"})
	r.add(Figure{Group: groupWindowPunch, Subject: subjZapFloorP99, Role: roleDax, Size: size, Count: int64(len(floor)), Value: us(percentile(floor, 99)), Unit: unitUs})
	return nil
}

// zapFloor returns the sorted times of replacing 2 MiB of a shared mapping
// of a file on the run's medium, every page read first, by the read-only
// zero page in one mmap(MAP_FIXED): the kernel's part of remapping a
// follow window over a punch, with no store around it. As in the store,
// the pages are written through a second mapping (the region's) before
// they are read through the one that is replaced. Between samples
// (untimed) the file is mapped back, written and read again.
func (r *runner) zapFloor() (samples []time.Duration, err error) {
	r.progress("zero-page remap of " + sizeName(windowPunchBytes) + " without a store")
	path := filepath.Join(r.dir, "zap-floor")
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer os.Remove(path)
	defer file.Close()
	buf := chunk()[:windowPunchBytes]
	for off := int64(0); off < windowPunchFile; off += windowPunchBytes {
		if _, err := file.WriteAt(buf, off); err != nil {
			return nil, err
		}
	}
	fd := int(file.Fd())
	region, err := unix.Mmap(fd, 0, windowPunchFile, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	defer unix.Munmap(region)
	m, err := unix.Mmap(fd, 0, windowPunchFile, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	defer unix.Munmap(m)
	base := unsafe.Pointer(unsafe.SliceData(m))
	slots := int64(windowPunchFile / windowPunchBytes)
	for i := range r.windowPunchSamples() {
		if err := r.ctx.Err(); err != nil {
			return nil, err
		}
		off := int64(i) % slots * windowPunchBytes
		at := unsafe.Add(base, off)
		if _, err := unix.MmapPtr(fd, off, at, windowPunchBytes, unix.PROT_READ, unix.MAP_SHARED|unix.MAP_FIXED); err != nil {
			return nil, err
		}
		copy(region[off:off+windowPunchBytes], buf)
		if !bytes.Equal(m[off:off+windowPunchBytes], buf) {
			return nil, fmt.Errorf("the mapping does not read the file at %d", off)
		}
		start := time.Now()
		if _, err := unix.MmapPtr(-1, 0, at, windowPunchBytes, unix.PROT_READ,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED|unix.MAP_NORESERVE); err != nil {
			return nil, err
		}
		samples = append(samples, time.Since(start))
	}
	slices.Sort(samples)
	return samples, nil
}

// punchSamples returns the sorted times of the punches of windowPunch, with
// or without the window.
func (r *runner) punchSamples(window bool) (samples []time.Duration, err error) {
	what := "no window"
	if window {
		what = "a follow window"
	}
	r.progress(fmt.Sprintf("PunchHole of %s under %s", sizeName(windowPunchBytes), what))
	s, done, err := r.scratchStore("window-punch", windowPunchFile+64<<20)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := done(); err == nil {
			err = cerr
		}
	}()
	f, err := writeLong(s, "table", windowPunchFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var w *dax.Window
	if window {
		if w, err = f.Map(0, windowPunchFile, dax.MapOptions{Label: "bench"}); err != nil {
			return nil, err
		}
		defer w.Close()
	}
	buf := chunk()[:windowPunchBytes]
	zeros := make([]byte, windowPunchBytes)
	slots := int64(windowPunchFile / windowPunchBytes)
	for i := range r.windowPunchSamples() {
		if err := r.ctx.Err(); err != nil {
			return nil, err
		}
		off := int64(i) % slots * windowPunchBytes
		if _, err := f.WriteAt(buf, off); err != nil {
			return nil, err
		}
		if w != nil {
			if !bytes.Equal(w.Bytes()[off:off+windowPunchBytes], buf) {
				return nil, fmt.Errorf("the window does not read the bytes just written at %d", off)
			}
		}
		start := time.Now()
		if err := f.PunchHole(off, windowPunchBytes); err != nil {
			return nil, err
		}
		samples = append(samples, time.Since(start))
		if w != nil && !bytes.Equal(w.Bytes()[off:off+windowPunchBytes], zeros) {
			return nil, fmt.Errorf("the window does not read zeros where %d was punched", off)
		}
	}
	slices.Sort(samples)
	return samples, nil
}
