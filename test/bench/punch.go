package bench

// Truncate and punch of a large, fully written file, with nothing pinned
// and with 1% of its blocks pinned, against fallocate(PUNCH_HOLE) of a
// fully written file of the same size on the same medium. The memory of
// the reference-count table is measured on the same stores.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/daxstore/daxstore/dax"
)

// Subjects of the punch and memory figures.
const (
	subjPunch         = "daxstore PunchHole"
	subjTruncate      = "daxstore Truncate(0)"
	subjFallocate     = "fallocate(PUNCH_HOLE)"
	subjMemPerGiB     = "refcount table per GiB of region, nothing pinned"
	subjMemPerPin     = "refcount table per pinned block, 1% pinned"
	subjMemPerSparse  = "refcount table per pinned block, one pin per 2 MiB"
	pinEvery          = 100     // pin one block in pinEvery: 1%
	fillChunk         = 4 << 20 // bytes per write of a fill
	sparsePinDistance = 2 << 20 // bytes between pins of the sparse memory figure
)

func (r *runner) punchAll() error {
	if err := r.fallocatePeer(); err != nil {
		return fmt.Errorf("fallocate: %w", err)
	}
	for _, c := range []struct {
		subject string
		pinned  bool
	}{
		{subjPunch, false}, {subjPunch, true}, {subjTruncate, false}, {subjTruncate, true},
	} {
		if err := r.punchCase(c.subject, c.pinned); err != nil {
			return fmt.Errorf("%s: %w", c.subject, err)
		}
	}
	return nil
}

// chunk returns a fill buffer.
func chunk() []byte {
	b := make([]byte, fillChunk)
	fill(b, 42)
	return b
}

// fallocatePeer times fallocate(PUNCH_HOLE) of a fully written file.
func (r *runner) fallocatePeer() error {
	r.progress("fallocate(PUNCH_HOLE) of " + sizeName(r.cfg.PunchBytes))
	path := filepath.Join(r.dir, "fallocate")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	defer f.Close()
	buf := chunk()
	n := r.cfg.PunchBytes
	var times []time.Duration
	for range r.cfg.PunchRuns {
		for off := int64(0); off < n; off += fillChunk {
			if _, err := f.WriteAt(buf[:min(fillChunk, n-off)], off); err != nil {
				return err
			}
		}
		if err := f.Sync(); err != nil {
			return err
		}
		if err := r.ctx.Err(); err != nil {
			return err
		}
		start := time.Now()
		if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, n); err != nil {
			return err
		}
		times = append(times, time.Since(start))
	}
	r.add(Figure{Group: "punch", Subject: subjFallocate, Role: rolePeer, Size: n,
		Value: ms(median(times)), Unit: unitMs, Note: fmt.Sprintf("median of %d", len(times))})
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// punchCase times PunchHole of the whole file or Truncate(0), each on a
// fully written file, with nothing or 1% of the blocks pinned, on a fresh
// store.
func (r *runner) punchCase(subject string, pinned bool) (err error) {
	what := "nothing pinned"
	if pinned {
		what = "1% pinned"
	}
	r.progress(fmt.Sprintf("%s of %s, %s", subject, sizeName(r.cfg.PunchBytes), what))
	n := r.cfg.PunchBytes
	regionBytes := n + 64<<20
	s, done, err := r.scratchStore("punch", regionBytes)
	if err != nil {
		return err
	}
	var pins []dax.Pin
	defer func() {
		for _, p := range pins {
			p.Unpin()
		}
		if cerr := done(); err == nil {
			err = cerr
		}
	}()
	first := subject == subjPunch && !pinned
	if first {
		if err := r.memoryPerGiB(s, regionBytes); err != nil {
			return err
		}
	}
	f, err := s.Create("big")
	if err != nil {
		return err
	}
	defer f.Close()
	bs := s.BlockSize()
	buf := chunk()
	var times []time.Duration
	for run := range r.cfg.PunchRuns {
		for off := int64(0); off < n; off += fillChunk {
			if _, err := f.WriteAt(buf[:min(fillChunk, n-off)], off); err != nil {
				return err
			}
		}
		if err := r.ctx.Err(); err != nil {
			return err
		}
		if pinned {
			st, err := s.Stats()
			if err != nil {
				return err
			}
			before := st.RefTableBytes
			for b := int64(0); b < n/bs; b += pinEvery {
				p, err := f.Pin(b*bs, bs, dax.PinOptions{Label: "bench"})
				if err != nil {
					return err
				}
				pins = append(pins, p)
			}
			if run == 0 && subject == subjPunch {
				if st, err = s.Stats(); err != nil {
					return err
				}
				r.add(Figure{Group: "memory", Subject: subjMemPerPin, Role: roleDax,
					Value: float64(st.RefTableBytes-before) / float64(len(pins)), Unit: unitBytes,
					Note: fmt.Sprintf("%d pins, one block in %d of a %s file", len(pins), pinEvery, sizeName(n))})
			}
		}
		start := time.Now()
		if subject == subjPunch {
			err = f.PunchHole(0, n)
		} else {
			err = f.Truncate(0)
		}
		if err != nil {
			return err
		}
		times = append(times, time.Since(start))
		// The pin holders keep their bytes.
		for i, p := range pins {
			if i%97 == 0 {
				off := p.Offset() % fillChunk
				if got := p.Bytes(); len(got) != 1 || !bytes.Equal(got[0], buf[off:off+bs]) {
					return fmt.Errorf("pinned block at %d lost its bytes", p.Offset())
				}
			}
		}
		for _, p := range pins {
			if err := p.Unpin(); err != nil {
				return err
			}
		}
		pins = pins[:0]
	}
	r.add(Figure{Group: "punch", Subject: subject + ", " + what, Role: roleDax, Size: n,
		Value: ms(median(times)), Unit: unitMs, Note: punchNote(pinned, len(times), n/bs)})
	if first {
		return r.memorySparse(s, f, n)
	}
	return nil
}

func punchNote(pinned bool, runs int, blocks int64) string {
	note := fmt.Sprintf("median of %d", runs)
	if pinned {
		note += fmt.Sprintf(", %d of %d blocks pinned, one in %d", (blocks+pinEvery-1)/pinEvery, blocks, pinEvery)
	}
	return note
}

// memoryPerGiB reports the table of a fresh store that nothing has
// referenced yet.
func (r *runner) memoryPerGiB(s *dax.Store, regionBytes int64) error {
	st, err := s.Stats()
	if err != nil {
		return err
	}
	r.add(Figure{Group: "memory", Subject: subjMemPerGiB, Role: roleDax,
		Value: float64(st.RefTableBytes) / (float64(regionBytes) / (1 << 30)), Unit: unitBytes,
		Note: fmt.Sprintf("%s of table for a %s region", formatBytes(float64(st.RefTableBytes)), sizeName(regionBytes))})
	return nil
}

// memorySparse reports the table's growth per pin when pins are far apart,
// its worst case, on a store whose table nothing has referenced yet.
func (r *runner) memorySparse(s *dax.Store, f *dax.File, n int64) error {
	st, err := s.Stats()
	if err != nil {
		return err
	}
	before := st.RefTableBytes
	var pins []dax.Pin
	defer func() {
		for _, p := range pins {
			p.Unpin()
		}
	}()
	for off := int64(0); off < n; off += sparsePinDistance {
		p, err := f.Pin(off, s.BlockSize(), dax.PinOptions{Label: "bench"})
		if err != nil {
			return err
		}
		pins = append(pins, p)
	}
	if st, err = s.Stats(); err != nil {
		return err
	}
	r.add(Figure{Group: "memory", Subject: subjMemPerSparse, Role: roleDax,
		Value: float64(st.RefTableBytes-before) / float64(len(pins)), Unit: unitBytes,
		Note: fmt.Sprintf("%d pins, %s apart", len(pins), sizeName(sparsePinDistance))})
	return nil
}
