// Package bench measures daxstore against its peers and against the
// hardware limit, in one process, on one medium: durable Put and Get
// against bbolt, Pebble and plain files, Pin+Unpin latency and scaling,
// truncate and punch of a large file against fallocate(PUNCH_HOLE), the
// release→wakeup latency, the memory of the reference-count table, and
// windows (reads through one against the region mapping, Map+Close, a
// punch under a follow window), and reads and writes through a FUSE mount
// served by a `daxstore mount` child against tmpfs.
// `daxstore bench` runs it and prints the Report.
//
// daxstore itself is measured only through package dax's exported API, as an
// application would use it. The peers are set up durable, as daxstore is by
// default: bbolt with NoSync false (one Update per put), Pebble with
// Sync writes and the value inline, plain files with write, fsync and
// rename. The *ideal path* is the limit a Put cannot beat on this medium:
// copy the value into a prefaulted mapping of a region file, msync the
// covering pages and commit one 24-byte record to Pebble with Sync. The
// limit of a Get is one copy out of a prefaulted mapping.
//
// Besides the journal package, this package is the only code that imports
// Pebble, and only for the Pebble peer and the ideal path: they are the
// comparison, not part of the store.
//
// Every measurement of a value size uses fresh stores, databases and
// directories, created under Config.Path and removed afterwards.
package bench

import (
	"github.com/daxstore/daxstore/dax"

	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Default value sizes, in bytes.
var DefaultSizes = []int{4 << 10, 64 << 10, 1 << 20}

// Config says what to measure, where and for how long. The zero value means
// the defaults.
type Config struct {
	// Path is the directory under which every store, database and file of
	// the run is created (in a fresh temporary directory that is removed
	// at the end). Empty means /dev/shm when it is a writable directory,
	// else os.TempDir().
	Path string
	// Quick shortens every measurement so that the whole run takes less
	// than a minute; the figures are noisier.
	Quick bool
	// Sizes are the value sizes of the Put and Get measurements, in bytes
	// (default DefaultSizes).
	Sizes []int
	// SmallSizes are the value sizes of the small-value figures: Put
	// against Pebble and the space per value (default DefaultSmallSizes).
	// They run with the "put" part.
	SmallSizes []int
	// SpaceKeys is how many values the space figures write (default
	// 20000, or 5000 with Quick).
	SpaceKeys int
	// Duration is how long each throughput measurement runs (default 2s,
	// or 200ms with Quick).
	Duration time.Duration
	// PunchBytes is the size of the file that the truncate and punch
	// measurements empty (default 1 GiB).
	PunchBytes int64
	// PunchRuns is how many times each truncate and punch measurement is
	// repeated; the median is reported (default 3, or 1 with Quick).
	PunchRuns int
	// Wakeups is how many release→wakeup latencies are sampled (default
	// 2000, or 300 with Quick).
	Wakeups int
	// DiskPath is the directory on a disk under which the "journal on
	// disk" figures of the commit part keep their journals and Pebble its
	// database. Empty means /var/tmp when it is a writable directory that
	// is not tmpfs, else os.TempDir(). Regions stay under Path.
	DiskPath string
	// Only, when not empty, limits the run to these parts: "put" (Put and
	// Get), "pin", "punch" (truncate, punch and memory), "wakeup",
	// "commit" (readers beside a durable writer, concurrent Puts),
	// "region" (what an empty region costs, reserving its space, and the
	// extents of 1 GiB files written into an empty one), "window"
	// (reads through a window, Map+Close, a punch under a follow window)
	// and "mount" (sequential and 4 KiB random reads and writes through a
	// FUSE mount against tmpfs).
	Only []string
	// Exe is the daxstore binary whose `mount` command serves the mount
	// of the "mount" part, in a child process (a process must never mmap
	// files of a FUSE mount it serves, and the mount must outlive no
	// run). Empty skips that part, as do not being root and a missing
	// /dev/fuse; Report.Skipped says why.
	Exe string
}

// Parts are the parts of a run that Config.Only may name.
var Parts = []string{"put", "pin", "punch", "wakeup", "commit", "region", "window", "mount"}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Path == "" {
		c.Path = os.TempDir()
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() && writable("/dev/shm") {
			c.Path = "/dev/shm"
		}
	}
	if c.DiskPath == "" {
		c.DiskPath = defaultDiskPath()
	}
	if len(c.Sizes) == 0 {
		c.Sizes = DefaultSizes
	}
	if len(c.SmallSizes) == 0 {
		c.SmallSizes = DefaultSmallSizes
	}
	if c.SpaceKeys == 0 {
		c.SpaceKeys = 20000
		if c.Quick {
			c.SpaceKeys = 5000
		}
	}
	if c.Duration == 0 {
		c.Duration = 2 * time.Second
		if c.Quick {
			c.Duration = 200 * time.Millisecond
		}
	}
	if c.PunchBytes == 0 {
		c.PunchBytes = 1 << 30
	}
	if c.PunchRuns == 0 {
		c.PunchRuns = 3
		if c.Quick {
			c.PunchRuns = 1
		}
	}
	if c.Wakeups == 0 {
		c.Wakeups = 2000
		if c.Quick {
			c.Wakeups = 300
		}
	}
	return c
}

// check reports why c cannot run.
func (c Config) check() error {
	for _, n := range c.Sizes {
		if n < 1 || n > 1<<30 {
			return fmt.Errorf("bench: value size %d out of range [1, 1 GiB]", n)
		}
	}
	for _, n := range c.SmallSizes {
		if n < 1 || n > 64<<10 {
			return fmt.Errorf("bench: small value size %d out of range [1, 64 KiB]", n)
		}
	}
	if c.SpaceKeys < 1 || c.SpaceKeys > 99999 {
		return fmt.Errorf("bench: %d space keys out of range [1, 99999]", c.SpaceKeys)
	}
	switch {
	case c.Duration < time.Millisecond:
		return fmt.Errorf("bench: duration %s is shorter than a millisecond", c.Duration)
	case c.PunchBytes < 1<<20 || c.PunchBytes > 1<<40:
		return fmt.Errorf("bench: punch size %d out of range [1 MiB, 1 TiB]", c.PunchBytes)
	case c.PunchRuns < 1:
		return fmt.Errorf("bench: %d punch runs", c.PunchRuns)
	case c.Wakeups < 1:
		return fmt.Errorf("bench: %d wakeups", c.Wakeups)
	}
	for _, p := range c.Only {
		if !slices.Contains(Parts, p) {
			return fmt.Errorf("bench: unknown part %q (parts are %s)", p, strings.Join(Parts, ", "))
		}
	}
	for _, d := range []struct{ what, path string }{{"path", c.Path}, {"disk path", c.DiskPath}} {
		st, err := os.Stat(d.path)
		if err != nil {
			return fmt.Errorf("bench: %s: %w", d.what, err)
		}
		if !st.IsDir() {
			return fmt.Errorf("bench: %s %s is not a directory", d.what, d.path)
		}
	}
	return nil
}

func writable(dir string) bool {
	f, err := os.CreateTemp(dir, ".daxstore-bench-probe-")
	if err != nil {
		return false
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return true
}

// Progress is told what the run is measuring now, for a progress line.
// It may be nil.
type Progress func(what string)

// runner is one run of the benchmarks.
type runner struct {
	ctx      context.Context
	cfg      Config
	dir      string // the run's temporary directory under cfg.Path
	progress Progress
	report   *Report
}

// Run runs every benchmark that cfg describes and returns the report, with
// each figure's ratio to the best peer and to the limit and a verdict on
// each target. It stops early, with ctx's error, when ctx ends. The
// temporary directory it creates under cfg.Path is removed before it
// returns.
func Run(ctx context.Context, cfg Config, progress Progress) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = func(string) {}
	}
	dir, err := os.MkdirTemp(cfg.Path, "daxstore-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)
	r := &runner{ctx: ctx, cfg: cfg, dir: dir, progress: progress, report: &Report{
		Machine: describeMachine(cfg.Path), Quick: cfg.Quick, Duration: cfg.Duration.String(),
		Started: time.Now(),
	}}
	steps := map[string]func() error{"put": r.kvAll, "pin": r.pinAll, "punch": r.punchAll, "wakeup": r.wakeup, "commit": r.commitAll, "region": r.regionAll, "window": r.windowAll, "mount": r.mountAll}
	for _, part := range Parts {
		if len(cfg.Only) > 0 && !slices.Contains(cfg.Only, part) {
			continue
		}
		step := steps[part]
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		runtime.GC()
		if err := step(); err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
				err = fmt.Errorf("%w (%w)", ctxErr, err)
			}
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	r.report.Elapsed = time.Since(r.report.Started).Round(time.Millisecond).String()
	r.report.Machine.LoadAfter = loadAverage()
	r.report.finish()
	return r.report, nil
}

// skip records that part could not run here, and why.
func (r *runner) skip(part, why string) {
	r.report.Skipped = append(r.report.Skipped, part+": "+why)
}

// sub returns a fresh, empty directory for one measurement.
func (r *runner) sub(name string) (string, error) {
	d, err := os.MkdirTemp(r.dir, name+"-")
	if err != nil {
		return "", err
	}
	return d, nil
}

// scratchStore opens a fresh store with a region of size bytes in a
// directory of its own. done closes it, removes the directory and returns
// the close error.
func (r *runner) scratchStore(name string, size int64) (s *dax.Store, done func() error, err error) {
	dir, err := r.sub(name)
	if err != nil {
		return nil, nil, err
	}
	s, err = dax.Open(dir, &dax.Options{Size: size, NoAdminSocket: true})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return s, func() error {
		defer os.RemoveAll(dir)
		return s.Close()
	}, nil
}
