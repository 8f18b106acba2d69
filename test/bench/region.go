package bench

// Region space follows use: what a new, empty 64 GiB region costs (file
// space, which on tmpfs is RAM, and the process's RSS), and what reserving
// file space as the store goes costs Put, against a region preallocated at
// Open (dax.Options.Preallocate). How a large file lies in an empty region
// (its extents) is in extents.go.

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/daxstore/daxstore/dax"
)

// Subjects of the region figures.
const (
	subjInitSpace   = "file space after init of a 64 GiB region"
	subjInitRSS     = "RSS growth at init of a 64 GiB region, over a 1 MiB one"
	subjPutSparse   = "Put, fresh keys, region space reserved as used"
	subjPutPrealloc = "Put, fresh keys, region preallocated at Open"
)

// regionAll measures the region part.
func (r *runner) regionAll() error {
	r.progress("region: init of a 64 GiB region")
	if err := r.regionInit(64 << 30); err != nil {
		return err
	}
	if err := r.regionExtents(); err != nil {
		return err
	}
	return r.regionPut()
}

// regionInit creates a store with a region of size bytes and reports the
// file space of its region and the RSS it added, less what a store with a
// 1 MiB region adds (the journal, the tables of an open store).
func (r *runner) regionInit(size int64) error {
	grow := func(name string, size int64) (rss, space int64, err error) {
		dir, err := r.sub(name)
		if err != nil {
			return 0, 0, err
		}
		defer os.RemoveAll(dir)
		before, err := rssBytes()
		if err != nil {
			return 0, 0, err
		}
		region := filepath.Join(dir, "region")
		s, err := dax.Open(filepath.Join(dir, "s"), &dax.Options{Size: size, NoAdminSocket: true, RegionPath: region})
		if err != nil {
			return 0, 0, err
		}
		after, err := rssBytes()
		if err == nil {
			space, err = allocated(region)
		}
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		return after - before, space, err
	}
	// The small store first, so the large one does not pay for warming up
	// the process (Pebble's first caches, code pages).
	if _, _, err := grow("init-small", 1<<20); err != nil {
		return err
	}
	small, _, err := grow("init-small", 1<<20)
	if err != nil {
		return err
	}
	start := time.Now()
	large, space, err := grow("init-large", size)
	if err != nil {
		return err
	}
	took := time.Since(start)
	r.add(Figure{Group: "region", Subject: subjInitSpace, Role: roleDax, Size: size, Value: float64(space), Unit: unitBytes,
		Note: fmt.Sprintf("st_blocks of the region file on %s; init and close took %s", r.report.Machine.Filesystem, took.Round(time.Millisecond))})
	r.add(Figure{Group: "region", Subject: subjInitRSS, Role: roleDax, Size: size, Value: float64(large - small), Unit: unitBytes,
		Note: fmt.Sprintf("RSS grew by %s at init of 64 GiB, by %s at init of 1 MiB", formatBytes(float64(large)), formatBytes(float64(small)))})
	return nil
}

// regionPut times durable Puts of fresh keys that fill half of a 512 MiB
// region, so allocation walks through new space and crosses a chunk
// boundary every 8 MiB, on a sparse region and on a preallocated one,
// alternating; it reports the median of each.
func (r *runner) regionPut() error {
	const (
		regionSize = 512 << 20
		valueSize  = 64 << 10
	)
	fill := int64(256 << 20)
	runs := 5
	if r.cfg.Quick {
		fill, runs = 64<<20, 1
	}
	value := bytes.Repeat([]byte{0x5a}, valueSize)
	one := func(prealloc bool) (float64, error) {
		dir, err := r.sub("region-put")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(dir)
		s, err := dax.Open(dir, &dax.Options{Size: regionSize, NoAdminSocket: true, Preallocate: prealloc})
		if err != nil {
			return 0, err
		}
		n := int(fill / valueSize)
		start := time.Now()
		for i := range n {
			if err := r.ctx.Err(); err != nil {
				s.Close()
				return 0, err
			}
			if err := s.Put("k"+strconv.Itoa(i), value); err != nil {
				s.Close()
				return 0, err
			}
		}
		rate := float64(n) / time.Since(start).Seconds()
		return rate, s.Close()
	}
	var sparse, prealloc []float64
	for i := range runs {
		r.progress(fmt.Sprintf("region: Put into sparse and preallocated regions, run %d of %d", i+1, runs))
		for _, pre := range []bool{false, true} {
			rate, err := one(pre)
			if err != nil {
				return err
			}
			if pre {
				prealloc = append(prealloc, rate)
			} else {
				sparse = append(sparse, rate)
			}
		}
	}
	// On tmpfs, reserving space is allocating its RAM pages, the work
	// that a preallocated region did at Open; the store does it a chunk
	// ahead in the background, which hides it only when a core is idle.
	note := fmt.Sprintf("%d runs, median; %s of %s values per run into a %s region; the preallocated region's Open is not timed",
		runs, formatBytes(float64(fill)), sizeName(valueSize), sizeName(regionSize))
	r.add(Figure{Group: "region", Subject: subjPutSparse, Role: roleDax, Size: valueSize, Value: medianOf(sparse), Unit: unitOpsPerSec,
		HigherIsBetter: true, MBPerSec: medianOf(sparse) * valueSize / 1e6, Note: note})
	r.add(Figure{Group: "region", Subject: subjPutPrealloc, Role: roleDax, Size: valueSize, Value: medianOf(prealloc), Unit: unitOpsPerSec,
		HigherIsBetter: true, MBPerSec: medianOf(prealloc) * valueSize / 1e6, Note: note})
	return nil
}

// regionTargets judges goal 10 of the scale issue: region space follows
// use.
func (rep *Report) regionTargets() []Target {
	var out []Target
	if f := rep.find("region", subjInitSpace, 64<<30); f != nil {
		out = append(out, Target{Goal: "Init of a 64 GiB region takes ~0 file space (≤ 1 MiB; RAM on tmpfs)", Value: f.Value,
			Text: formatBytes(f.Value), Met: f.Value <= 1<<20})
	}
	if f := rep.find("region", subjInitRSS, 64<<30); f != nil {
		out = append(out, Target{Goal: "Init of a 64 GiB region takes ~0 RSS (≤ 16 MiB over a 1 MiB region)", Value: f.Value,
			Text: formatBytes(f.Value), Met: f.Value <= 16<<20})
	}
	if sp, pre := rep.find("region", subjPutSparse, 64<<10), rep.find("region", subjPutPrealloc, 64<<10); sp != nil && pre != nil && pre.Value > 0 {
		v := sp.Value / pre.Value
		out = append(out, Target{Goal: "Put with space reserved as used ≥ 0.9x a preallocated region", Value: v,
			Text: fmt.Sprintf("%.2fx preallocated", v), Met: v >= 0.9})
	}
	return append(out, rep.extentsTargets()...)
}

// medianOf returns the median of v, which must not be empty.
func medianOf(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// allocated returns the file space allocated to path (st_blocks).
func allocated(path string) (int64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Blocks * 512, nil
}

// rssBytes returns the process's resident set size (VmRSS), which counts
// the pages of a tmpfs region that the process has mapped too.
func rssBytes() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmRSS in /proc/self/status")
}
