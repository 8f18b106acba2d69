package main

// bench: daxstore against bbolt, Pebble, plain files and the hardware
// limit, in one process on one medium, with the verdict on each target.

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/test/bench"
)

func (c *cli) benchCommand() *cobra.Command {
	var (
		cfg        bench.Config
		asJSON     bool
		sizes      string
		punchSize  string
		cpuProfile string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure daxstore against bbolt, Pebble, plain files and the hardware limit",
		Long: `bench measures, in this process and on one medium for every system (a
temporary directory under --path, default /dev/shm):

  - durable Put of 4 KiB, 64 KiB and 1 MiB values: daxstore against bbolt
    (one Update per put), Pebble (Set with Sync) and plain files (write,
    fsync, rename), and the ideal path (copy into a prefaulted mapping,
    msync, one 24-byte record to Pebble with Sync);
  - Get: Store.Get and File.ReadAt (copying) and Pin (zero-copy) against the
    peers' reads and one copy out of a prefaulted mapping;
  - Pin+Unpin of one block, on one goroutine and on every core, and of a
    whole 1 GiB contiguous file (--punch-size);
  - truncate and punch of a 1 GiB file, with nothing and with 1% pinned,
    against fallocate(PUNCH_HOLE);
  - the release→wakeup latency, and the memory of the refcount table.

It prints every figure with its ratio to the best peer and to the limit,
then whether each target was met. A full run takes a few minutes; --quick
takes less than one. The store directory (--dir) is not used.`,
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if cfg.Sizes, err = parseSizes(sizes); err != nil {
				return err
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
	f.BoolVar(&cfg.Quick, "quick", false, "short measurements: the whole run takes less than a minute")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.DurationVar(&cfg.Duration, "duration", 0, "time per throughput figure (default 2s, or 200ms with --quick)")
	f.StringVar(&sizes, "sizes", "", "comma-separated value sizes for Put and Get (default 4KiB,64KiB,1MiB)")
	f.StringVar(&punchSize, "punch-size", "", "size of the file that truncate and punch empty (default 1GiB)")
	f.IntVar(&cfg.PunchRuns, "punch-runs", 0, "runs of each truncate and punch figure, median reported (default 3, or 1 with --quick)")
	f.IntVar(&cfg.Wakeups, "wakeups", 0, "release→wakeup samples (default 2000, or 300 with --quick)")
	f.StringSliceVar(&cfg.Only, "only", nil, "run only these parts: "+strings.Join(bench.Parts, ", "))
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (see go tool pprof)")
	cmd.Annotations = map[string]string{reportsInterrupt: "yes"}
	return cmd
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
