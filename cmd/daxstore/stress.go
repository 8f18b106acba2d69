package main

// stress: the pin/punch stress tool, for users to run against their own
// configuration (region on their fsdax mount, their block size, their
// policies), and crash torture with a killed child process.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/test/stress"
)

// stressFlags are stress's flags as given; toConfig checks and converts them.
type stressFlags struct {
	seed            int64
	duration        time.Duration
	ops             int
	workers         [10]int // per kind, in stressWorkerFlags order
	keys            int
	size            string
	blockSize       string
	valueMin        string
	valueMax        string
	policyMix       string
	hold            time.Duration
	longHold        time.Duration
	longHoldPercent int
	wakeBound       time.Duration
	checkEvery      time.Duration
	allocWait       time.Duration
	freeTarget      string
	noSync          bool
	adminWrites     bool
	crash           int
	killAfter       time.Duration
	keep            bool
	asJSON          bool
	crashChild      bool
}

// stressWorkerFlags names the worker-count flags and what they count.
var stressWorkerFlags = [10]struct{ name, usage string }{
	{"writers", "workers writing ranges of keys (WriteAt)"},
	{"putters", "workers replacing whole values (Put)"},
	{"readers", "workers reading and checking every word (ReadAt, Get)"},
	{"pinners", "workers pinning ranges, writing canaries, holding, verifying, unpinning"},
	{"truncaters", "workers truncating keys"},
	{"punchers", "workers punching holes"},
	{"zeroers", "workers zeroing ranges"},
	{"removers", "workers removing keys"},
	{"pressure", "workers keeping the region near full with filler keys"},
	{"windowers", "workers mapping follow and pinned windows, checking, storing through them, holding"},
}

func (c *cli) stressCommand() *cobra.Command {
	var f stressFlags
	cmd := &cobra.Command{
		Use: "stress",
		Example: `  daxstore stress --duration 30s
  daxstore stress --seed 42 --ops 10000 --json
  daxstore stress --crash 20`,
		Short: "Hammer a store with pins, punches and writes, and check it never frees a referenced block",
		Long: `stress runs many workers at once against a fresh store: writers, putters,
readers, pinners, truncaters, punchers, zeroers and removers on a small set of
keys, a worker keeping the region near full, and windowers mapping follow
and pinned windows (File.Map) and storing through them. Every byte written is an
8-byte word naming its key and generation, so a read can tell the key's data,
zeros, another key's bytes, and bytes an earlier Put replaced apart. Pinners
write canaries through their pins and verify them after holding; Check runs
every second and at the end; Wait-policy operations must wake within
--wake-bound of the release they wait for; and once every pin is gone and the
store is reopened, no block may be busy or leaked.

It prints a summary (or --json) and exits 1 if it found any violation. The
same --seed replays the same operations per worker.

With --crash N it runs the workload in a child process instead, kills it with
SIGKILL at a random moment, reopens the store, and checks that every
acknowledged operation survived and nothing leaked - N times on one store.

The store goes to a temporary directory (in /dev/shm when it exists), removed
afterwards unless --keep; or to --dir, which must not hold a store yet, and
--region for a region on your own fsdax mount.`,
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.crashChild {
				return stress.RunChild(cmd.Context(), c.out)
			}
			return c.runStress(cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.Int64Var(&f.seed, "seed", 0, "seed of the workers' schedules (default: from the clock; printed)")
	fl.DurationVar(&f.duration, "duration", 10*time.Second, "how long to run (with --crash: unused)")
	fl.IntVar(&f.ops, "ops", 0, "operations per worker (instead of, or with, --duration)")
	for i, w := range stressWorkerFlags {
		fl.IntVar(&f.workers[i], w.name, 0, w.usage+" (default: a few)")
	}
	fl.IntVar(&f.keys, "keys", stress.DefaultKeys, "keys the workers share; few keys make operations collide")
	fl.StringVar(&f.size, "size", "64MiB", "region size")
	fl.StringVar(&f.blockSize, "block-size", "4096", "region block size")
	fl.StringVar(&f.valueMin, "value-min", "1KiB", "smallest write or Put")
	fl.StringVar(&f.valueMax, "value-max", "256KiB", "largest write or Put, and largest key")
	fl.StringVar(&f.policyMix, "policy-mix", stress.DefaultPolicies.String(), "weights of the break policies of truncate, punch, zero, remove and put")
	fl.DurationVar(&f.hold, "hold", stress.DefaultPinHold, "longest usual pin hold")
	fl.DurationVar(&f.longHold, "long-hold", stress.DefaultPinHoldLong, "longest long pin hold")
	fl.IntVar(&f.longHoldPercent, "long-hold-percent", stress.DefaultLongHold, "percent of pins held long")
	fl.DurationVar(&f.wakeBound, "wake-bound", stress.DefaultWakeBound, "a Wait-policy waiter must wake this soon after its release")
	fl.DurationVar(&f.checkEvery, "check-every", stress.DefaultCheckEvery, "run Check this often (it pauses every operation; 0: only at the end)")
	fl.DurationVar(&f.allocWait, "alloc-wait", stress.DefaultAllocWait, "how long an allocation waits for busy blocks (the store's AllocWait)")
	fl.StringVar(&f.freeTarget, "free-target", "", "free space the pressure workers keep (default: 1/32 of --size, at least twice --value-max)")
	fl.BoolVar(&f.noSync, "no-sync", false, "skip the journal sync of each commit (unsafe; not with --crash)")
	fl.BoolVar(&f.adminWrites, "admin-writes", false,
		"let put, rm, truncate, punch and zero of this user change the store through the admin socket meanwhile")
	fl.IntVar(&f.crash, "crash", 0, "crash torture: run N rounds of kill -9 and recovery instead")
	fl.DurationVar(&f.killAfter, "kill-after", stress.DefaultKillAfterMax, "with --crash: longest time before the kill")
	fl.BoolVar(&f.keep, "keep", false, "keep the temporary store")
	fl.BoolVar(&f.asJSON, "json", false, "print the report as JSON")
	fl.BoolVar(&f.crashChild, "crash-child", false, "run as the child of --crash (internal)")
	_ = fl.MarkHidden("crash-child")
	cmd.Annotations = map[string]string{reportsInterrupt: "yes"}
	return cmd
}

// toConfig checks the flags and builds the run's config.
func (f *stressFlags) toConfig(cmd *cobra.Command) (stress.Config, error) {
	fl := cmd.Flags()
	cfg := stress.Config{
		Seed: f.seed, Keys: f.keys, PinHold: f.hold, PinHoldLong: f.longHold,
		LongHoldPercent: f.longHoldPercent, WakeBound: f.wakeBound, AllocWait: f.allocWait,
		NoSync: f.noSync, AdminWrites: f.adminWrites, KillAfterMax: f.killAfter, CheckEvery: f.checkEvery,
	}
	if !fl.Changed("seed") {
		cfg.Seed = time.Now().UnixNano()
	}
	if f.ops < 0 {
		return cfg, errors.New("invalid --ops: must not be negative")
	}
	cfg.Ops = f.ops
	if f.crash == 0 && (!fl.Changed("ops") || fl.Changed("duration")) {
		if f.duration <= 0 {
			return cfg, fmt.Errorf("invalid --duration %s: must be positive", f.duration)
		}
		cfg.Duration = f.duration
	}
	if f.crash < 0 {
		return cfg, fmt.Errorf("invalid --crash %d: must be a number of rounds", f.crash)
	}
	counts := []*int{&cfg.Writers, &cfg.Putters, &cfg.Readers, &cfg.Pinners, &cfg.Truncaters,
		&cfg.Punchers, &cfg.Zeroers, &cfg.Removers, &cfg.Pressure, &cfg.Windowers}
	for i, w := range stressWorkerFlags {
		n := f.workers[i]
		switch {
		case n < 0:
			return cfg, fmt.Errorf("invalid --%s %d: must not be negative", w.name, n)
		case n == 0 && fl.Changed(w.name):
			*counts[i] = -1 // none, as asked
		default:
			*counts[i] = n
		}
	}
	if f.keys < 1 {
		return cfg, fmt.Errorf("invalid --keys %d: must be at least 1", f.keys)
	}
	if f.longHoldPercent < 0 || f.longHoldPercent > 100 {
		return cfg, fmt.Errorf("invalid --long-hold-percent %d: must be from 0 to 100", f.longHoldPercent)
	}
	if f.longHoldPercent == 0 {
		cfg.LongHoldPercent = -1 // none, as asked
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"hold", f.hold}, {"long-hold", f.longHold}, {"wake-bound", f.wakeBound}, {"alloc-wait", f.allocWait}, {"kill-after", f.killAfter}, {"check-every", f.checkEvery}} {
		if d.v < 0 {
			return cfg, fmt.Errorf("invalid --%s %s: must not be negative", d.name, d.v)
		}
	}
	if f.checkEvery == 0 {
		cfg.CheckEvery = -1 // only at the end
	}
	var err error
	if cfg.Size, err = parseSize("--size", f.size); err != nil {
		return cfg, err
	}
	bs, err := parseSize("--block-size", f.blockSize)
	if err != nil {
		return cfg, err
	}
	if bs < 512 || bs > 1<<20 || bs&(bs-1) != 0 {
		return cfg, fmt.Errorf("invalid --block-size %s: must be a power of two from 512 to 1MiB", f.blockSize)
	}
	cfg.BlockSize = uint32(bs)
	if cfg.ValueMin, err = parseSize("--value-min", f.valueMin); err != nil {
		return cfg, err
	}
	if cfg.ValueMax, err = parseSize("--value-max", f.valueMax); err != nil {
		return cfg, err
	}
	if cfg.ValueMin < 8 || cfg.ValueMax < cfg.ValueMin {
		return cfg, fmt.Errorf("invalid --value-min %s / --value-max %s: need 8 bytes <= min <= max", f.valueMin, f.valueMax)
	}
	if f.freeTarget != "" {
		if cfg.FreeTarget, err = parseSize("--free-target", f.freeTarget); err != nil {
			return cfg, err
		}
	}
	if cfg.Policies, err = stress.ParsePolicyMix(f.policyMix); err != nil {
		return cfg, fmt.Errorf("--policy-mix: %w", err)
	}
	return cfg, nil
}

// stressTempBase is where a temporary stress store goes: memory speed on
// tmpfs when there is one.
func stressTempBase() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if probe, err := os.MkdirTemp("/dev/shm", "daxstore-probe-"); err == nil {
			_ = os.Remove(probe)
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

func (c *cli) runStress(cmd *cobra.Command, f *stressFlags) error {
	cfg, err := f.toConfig(cmd)
	if err != nil {
		return err
	}
	cfg.RegionPath = c.region
	if cmd.Flags().Changed("dir") {
		cfg.Dir = c.dir
	} else {
		dir, err := os.MkdirTemp(stressTempBase(), "daxstore-stress-")
		if err != nil {
			return fmt.Errorf("stress: %w", err)
		}
		if f.keep {
			fmt.Fprintf(c.errOut, "daxstore: stress: keeping the store in %s\n", dir)
		} else {
			defer os.RemoveAll(dir)
		}
		cfg.Dir = dir
	}
	if f.crash > 0 {
		return c.runCrash(cmd.Context(), cfg, f)
	}
	line := newStressLine(c.errOut, cfg.Duration) // a run bounded by --ops only has no known length
	rep, err := stress.Run(cmd.Context(), cfg, line.update)
	line.done()
	if err != nil {
		return err
	}
	if f.asJSON {
		if err := writeJSON(c.out, rep); err != nil {
			return err
		}
	} else if err := printStressReport(c.out, rep); err != nil {
		return err
	}
	return stressVerdict(rep.Violations, rep.Seed, rep.Interrupted)
}

// stressVerdict is the command's error: violations (exit 1), or an
// interruption, or nil.
func stressVerdict(violations int, seed int64, interrupted bool) error {
	switch {
	case violations > 0:
		return fmt.Errorf("stress: %s found (replay with --seed %d)", plural(violations, "violation"), seed)
	case interrupted:
		return fmt.Errorf("stress: stopped early, no violation so far: %w", context.Canceled)
	}
	return nil
}

func (c *cli) runCrash(ctx context.Context, cfg stress.Config, f *stressFlags) error {
	cfg.ChildArgs = []string{"stress", "--crash-child"}
	if !f.asJSON {
		fmt.Fprintf(c.out, "crash torture: seed %d, %d rounds on %s\n", cfg.Seed, f.crash, cfg.Dir)
	}
	rep, err := stress.Crash(ctx, cfg, f.crash, func(rd stress.Round) {
		if f.asJSON {
			return
		}
		check := "check ok"
		if !rd.CheckOK {
			check = "CHECK FAILED"
		}
		fmt.Fprintf(c.out, "round %d: killed %v after %s: %d begun, %d acked, %d keys exact, %d word-checked, %s, %s\n",
			rd.Round, rd.KilledAfter.Round(time.Millisecond), rd.ArmedAt, rd.Begun, rd.Acked, rd.KeysExact, rd.KeysChecked,
			check, plural(rd.Violations, "violation"))
	})
	if err != nil {
		return err
	}
	if f.asJSON {
		if err := writeJSON(c.out, rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.out, "total: %s in %v, %d operations acknowledged, %d exact key states verified, %s\n",
			plural(len(rep.Rounds), "round"), rep.Elapsed.Round(time.Millisecond), rep.Acked, rep.KeysExact,
			plural(rep.Violations, "violation"))
		printViolations(c.out, rep.Violations, rep.ViolationKinds, rep.FirstViolations)
	}
	return stressVerdict(rep.Violations, rep.Seed, rep.Interrupted)
}

// printStressReport prints a run's summary for people.
func printStressReport(w io.Writer, r *stress.Report) error {
	fmt.Fprintf(w, "seed %d: %d operations in %v (%.0f/s) on %s\n", r.Seed, r.Ops,
		r.Elapsed.Round(time.Millisecond), float64(r.Ops)/max(r.Elapsed.Seconds(), 1e-9), r.Dir)
	tw := newTable(w)
	fmt.Fprintln(tw, "KIND\tOPS\tOK\tNO SPACE\tPINNED\tRACED\tWAIT TIMEOUTS\tUNEXPECTED")
	for _, k := range r.Kinds {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", k.Kind, k.Ops, k.OK, k.NoSpace, k.Pinned, k.Raced, k.WaitTimeouts, k.Unexpected)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	l := r.WakeLatency
	if l.Samples > 0 {
		fmt.Fprintf(w, "wake latency after release: %d samples, p50 %v, p90 %v, p99 %v, max %v\n",
			l.Samples, roundDur(l.P50), roundDur(l.P90), roundDur(l.P99), roundDur(l.Max))
	} else {
		fmt.Fprintln(w, "wake latency after release: no samples (no Wait-policy operation waited for a pin)")
	}
	fmt.Fprintf(w, "checks: %d (%v, every operation paused), %s\n", r.Checks, roundDur(r.CheckTime), r.CheckResult)
	fmt.Fprintf(w, "verified: %d canaries, %d words; %d pin breaks\n", r.Canaries, r.WordsChecked, r.Breaks)
	if r.Config.Windowers > 0 {
		fmt.Fprintf(w, "window stores: %d landed, %d faulted on a page a racing truncate or remove made read-only\n", r.WindowStores, r.WindowFaults)
	}
	fi := r.Final
	fmt.Fprintf(w, "after reopen: %d data blocks: %d free, %d used (keys own %d in %d files), %d busy; %d detached and %d released during the run\n",
		fi.DataBlocks, fi.FreeBlocks, fi.UsedBlocks, fi.FileBlocks, fi.Files, fi.BusyBlocks, fi.Detached, fi.Released)
	if r.Interrupted {
		fmt.Fprintln(w, "interrupted before the end")
	}
	printViolations(w, r.Violations, r.ViolationKinds, r.FirstViolations)
	return nil
}

// printViolations prints the verdict and the first violations.
func printViolations(w io.Writer, n int, kinds map[string]int, first []string) {
	if n == 0 {
		fmt.Fprintln(w, "violations: none")
		return
	}
	var parts []string
	for k, v := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(parts)
	fmt.Fprintf(w, "violations: %d (%s)\n", n, strings.Join(parts, ", "))
	for _, v := range first {
		fmt.Fprintf(w, "  %s\n", v)
	}
	if n > len(first) {
		fmt.Fprintf(w, "  ... and %d more\n", n-len(first))
	}
}

func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// formatCount shows a rate compactly: 950, 12.3k, 1.2M.
func formatCount(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
