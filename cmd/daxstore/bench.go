package main

// bench: daxstore against bbolt, Pebble, plain files and the hardware
// limit, in one process on one medium, with the verdict on each target.

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/test/bench"
)

func (c *cli) benchCommand() *cobra.Command {
	var (
		cfg        bench.Config
		asJSON     bool
		sizes      string
		smallSizes string
		punchSize  string
		cpuProfile string
		scale      bool
		scaleCfg   bench.ScaleConfig
		scaleKeys  string
		scaleValue string
	)
	cmd := &cobra.Command{
		Use: "bench",
		Example: `  daxstore bench --quick
  daxstore bench --json > bench.json`,
		Short: "Measure daxstore against bbolt, Pebble, plain files and the hardware limit",
		Long: `bench measures, in this process and on one medium for every system (a
temporary directory under --path, default /dev/shm):

  - durable Put of 4 KiB, 64 KiB and 1 MiB values: daxstore against bbolt
    (one Update per put), Pebble (Set with Sync) and plain files (write,
    fsync, rename), and the ideal path (copy into a prefaulted mapping,
    msync, one 24-byte record to Pebble with Sync);
  - durable Put of 64 B, 256 B and 1 KiB values against Pebble, and the
    space each value takes (journal plus region blocks in use, against
    Pebble's directory after a flush) with 20000 values;
  - Get: Store.Get and File.ReadAt (copying) and Pin (zero-copy) against the
    peers' reads and one copy out of a prefaulted mapping;
  - Pin+Unpin of one block, on one goroutine and on every core, and of a
    whole 1 GiB contiguous file (--punch-size); and what counting for
    metrics costs Pin+Unpin and a 4 KiB ReadAt (a store with metrics
    against one with Options.NoMetrics, medians of interleaved rounds;
    target: at most 2%);
  - truncate and punch of a 1 GiB file, with nothing and with 1% pinned,
    against fallocate(PUNCH_HOLE);
  - the release→wakeup latency, and the memory of the refcount table;
  - Get, Stat, ReadAt and Pin p99 while a durable writer Puts, on --path and
    with the journal on --disk-path (default /var/tmp), and concurrent
    durable Puts at 1, 2, 4 and 8 goroutines with the journal on disk
    against Pebble with sync writes there;
  - windows: a sequential read through a follow window against copying the
    same bytes out of the region mapping (steady state, and first touch of
    a fresh window), Map+Close of a 4 KiB window and of one as large as
    --punch-size against a bare mmap+munmap, and the p50/p99 of a 2 MiB
    PunchHole under a live follow window against the same punch with no
    window;
  - through a FUSE mount of a fresh store, served by a child 'daxstore
    mount': sequential read and write of a 64 MiB file (16 MiB with
    --quick, at most --punch-size) and 4 KiB random reads and writes, against the same calls on
    a file in tmpfs. Reads drop the file's cached pages first, so that they
    cross the FUSE hop. Skipped, with the reason, when not root or without
    /dev/fuse, or when the mount fails.

It prints every figure with its ratio to the best peer and to the limit,
then whether each target was met. A full run takes a few minutes; --quick
takes less than one. The store directory (--dir) is not used.

--scale measures instead how daxstore's costs grow with the number of keys:
at 10k, 100k and 1M keys of 512 bytes (--quick stops at 100k), the Open
time, peak RSS and Go heap of a fresh process that opens the store, the
time of 'daxstore get KEY' as a process, durable Put, Get and
random-overwrite rates (overwrites also at 1k keys, to compare), List of a
10-key prefix, Check and the longest Put of a concurrent writer during it;
and the Open time, RSS and heap of Pebble and bbolt holding the same keys
and values. The 1M-key run takes several minutes, most of it building the
stores.`,
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if scale {
				return c.benchScale(cmd, scaleCfg, cfg, scaleKeys, scaleValue, asJSON)
			}
			if cfg.Sizes, err = parseSizes(sizes); err != nil {
				return err
			}
			if smallSizes != "" {
				if cfg.SmallSizes, err = parseSizes(smallSizes); err != nil {
					return err
				}
			}
			if punchSize != "" {
				if cfg.PunchBytes, err = parseSize("punch size", punchSize); err != nil {
					return err
				}
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			if cfg.Exe, err = os.Executable(); err != nil {
				return fmt.Errorf("bench: find the daxstore binary for the mount: %w", err)
			}
			progress, stop := c.benchProgress()
			rep, err := bench.Run(cmd.Context(), cfg, progress)
			stop()
			if err != nil {
				return err
			}
			rep.Command = strings.Join(append([]string{"daxstore"}, c.args...), " ")
			if asJSON {
				return writeJSON(c.out, rep)
			}
			return rep.Format(c.out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Path, "path", "", "directory to run in (default /dev/shm, else $TMPDIR)")
	f.StringVar(&cfg.DiskPath, "disk-path", "", "directory on a disk for the journal-on-disk figures (default /var/tmp unless tmpfs, else $TMPDIR)")
	f.BoolVar(&cfg.Quick, "quick", false, "short measurements: the whole run takes less than a minute")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.DurationVar(&cfg.Duration, "duration", 0, "time per throughput figure (default 2s, or 200ms with --quick)")
	f.StringVar(&sizes, "sizes", "", "comma-separated value sizes for Put and Get (default 4KiB,64KiB,1MiB)")
	f.StringVar(&smallSizes, "small-sizes", "", "comma-separated small value sizes for Put and space against Pebble (default 64B,256B,1KiB)")
	f.StringVar(&punchSize, "punch-size", "", "size of the file that truncate and punch empty (default 1GiB)")
	f.IntVar(&cfg.PunchRuns, "punch-runs", 0, "runs of each truncate and punch figure, median reported (default 3, or 1 with --quick)")
	f.IntVar(&cfg.Wakeups, "wakeups", 0, "release→wakeup samples (default 2000, or 300 with --quick)")
	f.StringSliceVar(&cfg.Only, "only", nil, "run only these parts: "+strings.Join(bench.Parts, ", "))
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (see go tool pprof)")
	f.BoolVar(&scale, "scale", false, "measure how Open, memory, rates, List and Check grow with the number of keys")
	f.StringVar(&scaleKeys, "scale-keys", "", "comma-separated key counts for --scale (default 10000,100000,1000000)")
	f.StringVar(&scaleValue, "scale-value-size", "", "value size for --scale (default 512B)")
	cmd.Annotations = map[string]string{reportsInterrupt: "yes"}
	return cmd
}

// benchScale runs `bench --scale`.
func (c *cli) benchScale(cmd *cobra.Command, sc bench.ScaleConfig, cfg bench.Config, keys, value string, asJSON bool) error {
	sc.Path, sc.Quick, sc.Duration = cfg.Path, cfg.Quick, cfg.Duration
	for _, k := range strings.Split(keys, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		n, err := strconv.Atoi(k)
		if err != nil || n < 20 {
			return fmt.Errorf("invalid key count %q: must be a whole number of at least 20", k)
		}
		sc.Keys = append(sc.Keys, n)
	}
	if value != "" {
		n, err := parseSize("value size", value)
		if err != nil {
			return err
		}
		if n < 1 || n > 64<<10 {
			return fmt.Errorf("invalid value size %q: must be from 1 byte to 64KiB", value)
		}
		sc.ValueSize = int(n)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: find the daxstore binary for the child processes: %w", err)
	}
	sc.Exe = exe
	progress, stop := c.benchProgress()
	rep, err := bench.RunScale(cmd.Context(), sc, progress)
	stop()
	if err != nil {
		return err
	}
	rep.Command = strings.Join(append([]string{"daxstore"}, c.args...), " ")
	if asJSON {
		return writeJSON(c.out, rep)
	}
	return rep.Format(c.out)
}

// benchChildCommand is the child process of `bench --scale`: it opens one
// store or database and reports the Open time and Go heap, so that its RSS
// is that of a fresh process. It is not for people, so it is hidden.
func (c *cli) benchChildCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "bench-child open SYSTEM DIR",
		Hidden: true,
		Args:   argsBetween(3, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return bench.RunChild(args, c.out)
		},
	}
}

// parseSizes parses a comma-separated list of value sizes; empty means the
// defaults.
func parseSizes(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int
	for _, part := range strings.Split(s, ",") {
		n, err := parseSize("value size", part)
		if err != nil {
			return nil, err
		}
		if n < 1 || n > 1<<30 {
			return nil, fmt.Errorf("invalid value size %q: must be from 1 byte to 1GiB", part)
		}
		out = append(out, int(n))
	}
	return out, nil
}

// benchProgress shows what the benchmark measures now beside a spinner on
// a terminal; elsewhere it shows nothing. stop erases it.
func (c *cli) benchProgress() (progress bench.Progress, stop func()) {
	p := newProgress(c.errOut, -1, "daxstore bench")
	if p == nil {
		return nil, func() {}
	}
	return func(what string) { p.describe("daxstore bench: " + what + "...") }, p.done
}
