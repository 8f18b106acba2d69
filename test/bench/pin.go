package bench

// Pin+Unpin of one block: the latency on one goroutine, and the throughput
// on every core, each goroutine on its own block or all on the same one;
// and Pin+Unpin of a long contiguous range, whose cost should follow its
// runs, not its blocks.

import (
	"fmt"
	"runtime"

	"github.com/daxstore/daxstore/dax"
)

// Subjects of the pin figures.
const (
	subjPinLatency  = "Pin+Unpin latency, 1 goroutine"
	subjPinOne      = "Pin+Unpin, 1 goroutine"
	subjPinDistinct = "Pin+Unpin, all cores, distinct blocks of distinct files"
	subjPinOneFile  = "Pin+Unpin, all cores, distinct blocks of one file"
	subjPinSame     = "Pin+Unpin, all cores, same block"
	subjPinLong     = "Pin+Unpin latency of a contiguous file, whole"
	subjPinLongOne  = "Pin+Unpin latency of a contiguous file, one block"
)

// pinSpacing is the distance in blocks between the blocks that the
// goroutines of the distinct-blocks measurement pin: 64 KiB apart, as
// separate buffers would be.
const pinSpacing = 16

func (r *runner) pinAll() (err error) {
	r.progress("pin+unpin")
	s, done, err := r.scratchStore("pin", 64<<20)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := done(); err == nil {
			err = cerr
		}
	}()
	bs := s.BlockSize()
	n := procs()
	value := make([]byte, int64(n*pinSpacing)*bs)
	fill(value, 7)
	if err := s.Put("pinned", value); err != nil {
		return err
	}
	f, err := s.Open("pinned")
	if err != nil {
		return err
	}
	defer f.Close()
	// One more file per goroutine, for the distinct-files figure, as
	// large as the spacing: pins of blocks closer than 16 apart share a
	// cache line of the reference counts (4 bytes each) and contend for
	// it, which is the hardware's business, not the store's.
	files := make([]*dax.File, n)
	for g := range files {
		key := fmt.Sprintf("pinned-%d", g)
		if err := s.Put(key, value[:pinSpacing*bs]); err != nil {
			return err
		}
		if files[g], err = s.Open(key); err != nil {
			return err
		}
		defer files[g].Close()
	}
	pinIn := func(f *dax.File, block int) error {
		p, err := f.Pin(int64(block)*bs, bs, dax.PinOptions{})
		if err != nil {
			return err
		}
		return p.Unpin()
	}
	pinUnpin := func(block int) error { return pinIn(f, block) }
	d := r.cfg.Duration
	runtime.GC()
	res, err := timed(r.ctx, d, 1000, 1000, func(int) error { return pinUnpin(0) })
	if err != nil {
		return fmt.Errorf("pin latency: %w", err)
	}
	r.add(Figure{Group: "pin", Subject: subjPinLatency, Role: roleDax, Value: res.nsPerOp(), Unit: unitNs})
	one, err := parallel(r.ctx, 1, d, func(int, int) error { return pinUnpin(0) })
	if err != nil {
		return fmt.Errorf("pin throughput: %w", err)
	}
	r.add(Figure{Group: "pin", Subject: subjPinOne, Role: roleDax, Value: one.opsPerSec(), Unit: unitOpsPerSec, HigherIsBetter: true})
	distinct, err := parallel(r.ctx, n, d, func(g, _ int) error { return pinIn(files[g], 0) })
	if err != nil {
		return fmt.Errorf("pin throughput on distinct files: %w", err)
	}
	r.add(Figure{Group: "pin", Subject: subjPinDistinct, Role: roleDax, Value: distinct.opsPerSec(), Unit: unitOpsPerSec,
		HigherIsBetter: true, Note: fmt.Sprintf("%d goroutines, each on the first block of its own %d KiB file", n, int64(pinSpacing)*bs>>10)})
	oneFile, err := parallel(r.ctx, n, d, func(g, _ int) error { return pinUnpin(g * pinSpacing) })
	if err != nil {
		return fmt.Errorf("pin throughput on distinct blocks: %w", err)
	}
	r.add(Figure{Group: "pin", Subject: subjPinOneFile, Role: roleDax, Value: oneFile.opsPerSec(), Unit: unitOpsPerSec,
		HigherIsBetter: true, Note: fmt.Sprintf("%d goroutines, one block each, %d KiB apart in one file", n, int64(pinSpacing)*bs>>10)})
	same, err := parallel(r.ctx, n, d, func(int, int) error { return pinUnpin(0) })
	if err != nil {
		return fmt.Errorf("pin throughput on one block: %w", err)
	}
	r.add(Figure{Group: "pin", Subject: subjPinSame, Role: roleDax, Value: same.opsPerSec(), Unit: unitOpsPerSec,
		HigherIsBetter: true, Note: fmt.Sprintf("%d goroutines, all on the same block", n)})
	if err := r.pinLong(); err != nil {
		return err
	}
	return r.metricsCost()
}

// pinLong times Pin+Unpin of a whole file of PunchBytes written in one
// contiguous run, and of one block of it, on a fresh store.
func (r *runner) pinLong() (err error) {
	n := r.cfg.PunchBytes
	r.progress(fmt.Sprintf("pin+unpin of %s", sizeName(n)))
	s, done, err := r.scratchStore("pinlong", n+64<<20)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := done(); err == nil {
			err = cerr
		}
	}()
	f, err := s.Create("long")
	if err != nil {
		return err
	}
	defer f.Close()
	buf := chunk()
	for off := int64(0); off < n; off += fillChunk {
		if _, err := f.WriteAt(buf[:min(fillChunk, n-off)], off); err != nil {
			return err
		}
	}
	p, err := f.Pin(0, n, dax.PinOptions{})
	if err != nil {
		return err
	}
	runs := len(p.Bytes())
	if err := p.Unpin(); err != nil {
		return err
	}
	pinUnpin := func(off, length int64) func(int) error {
		return func(int) error {
			p, err := f.Pin(off, length, dax.PinOptions{})
			if err != nil {
				return err
			}
			return p.Unpin()
		}
	}
	d := r.cfg.Duration
	whole, err := timed(r.ctx, d, 1, 3, pinUnpin(0, n))
	if err != nil {
		return fmt.Errorf("pin of %s: %w", sizeName(n), err)
	}
	bs := s.BlockSize()
	one, err := timed(r.ctx, d, 1000, 1000, pinUnpin(n/2/bs*bs, bs))
	if err != nil {
		return fmt.Errorf("pin of one block of %s: %w", sizeName(n), err)
	}
	note := fmt.Sprintf("%s file in %d physically contiguous run(s), %d blocks", sizeName(n), runs, n/bs)
	r.add(Figure{Group: "pin", Subject: subjPinLong, Role: roleDax, Size: n, Value: whole.nsPerOp(), Unit: unitNs, Note: note})
	r.add(Figure{Group: "pin", Subject: subjPinLongOne, Role: roleDax, Size: n, Value: one.nsPerOp(), Unit: unitNs, Note: note})
	return nil
}
