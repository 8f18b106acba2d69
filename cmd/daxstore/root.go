package main

// The root command: global flags, how commands find and open the store, and
// the rules every command shares about arguments.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
)

// defaultDir is the store directory when neither --dir nor $DAXSTORE_DIR
// names one.
const defaultDir = "daxstore-data"

// defaultWait is --wait's default: long enough for another short command
// on the same store to finish, short enough that a store held by a running
// application fails soon with the holder's pid.
const defaultWait = 5 * time.Second

// cli is one invocation: its global flags and its standard streams.
type cli struct {
	args []string // the command line, for error messages about it
	name string   // the command being run, for the progress line
	// reportsInterrupt is set for a command that, once interrupted, still
	// finishes a report worth waiting for (annotation reportsInterrupt).
	reportsInterrupt atomic.Bool
	dir              string          // --dir
	region           string          // --region
	wait             time.Duration   // --wait
	ctx              context.Context // the command's, for waits
	in               io.Reader
	out              io.Writer
	errOut           io.Writer
}

func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "daxstore",
		Short: "A key-file store whose data lives in a persistent-memory region",
		Long: `daxstore keeps named files ("keys") in a memory-mapped persistent-memory
region (a file on an fsdax mount, or any plain file as emulation) and journals
their metadata. Blocks that a pin still references are never reused: hole
punch, truncate, zero-range, remove and overwrite move them to the busy list
until the last pin drops. busy and pins show them, live, even while another
process holds the store.

Only init creates a store (demo, stress and bench make scratch stores of
their own). ls, get, stat, df, check, busy and pins open the store
read-only: they never change it and work where you may only read it. The
other commands need an existing store to themselves. While another process
holds the store, every command but init asks that process over its admin
socket (a "live view"); put, rm, truncate, punch and zero only if it
accepts writes (mount --admin-writes, stress --admin-writes).`,
		Example: `  daxstore init --dir ./store --size 64MiB
  echo hello | daxstore put --dir ./store greeting
  daxstore get --dir ./store greeting
  DAXSTORE_DIR=./store daxstore ls`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q (see 'daxstore --help')", args[0])
			}
			return cmd.Help()
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.PersistentFlags().StringVar(&c.dir, "dir", "", "store directory (default $DAXSTORE_DIR, else ./"+defaultDir+")")
	root.PersistentPreRun = func(cmd *cobra.Command, args []string) {
		c.name = cmd.Name()
		c.ctx = cmd.Context()
		c.reportsInterrupt.Store(cmd.Annotations[reportsInterrupt] != "")
		if c.dir == "" {
			c.dir = os.Getenv("DAXSTORE_DIR")
		}
		if c.dir == "" {
			c.dir = defaultDir
		}
	}
	root.PersistentFlags().StringVar(&c.region, "region", "",
		"region file; init creates it there and links DIR/region to it (default DIR/region)")
	root.PersistentFlags().DurationVar(&c.wait, "wait", defaultWait,
		"how long to wait while another process holds the store (0: fail at once)")
	root.SetFlagErrorFunc(c.flagError)
	root.AddCommand(
		c.initCommand(), c.putCommand(), c.getCommand(), c.lsCommand(),
		c.rmCommand(), c.truncateCommand(), c.punchCommand(), c.zeroCommand(),
		c.statCommand(), c.dfCommand(), c.checkCommand(),
		c.busyCommand(), c.pinsCommand(), c.metricsCommand(), c.demoCommand(), c.stressCommand(), c.mountCommand(),
	)
	root.AddCommand(c.benchCommand(), c.benchChildCommand())
	root.AddCommand(c.backupCommand())
	return root
}

// negativeNumber matches an argument that the flag parser would take for an
// unknown short flag although the user meant a negative number.
var negativeNumber = regexp.MustCompile(`^-[0-9.]`)

// flagError turns flag parsing errors into one-line usage errors, and a
// negative offset or size, which the flag parser sees as a flag, into the
// bad-value error it is.
func (c *cli) flagError(cmd *cobra.Command, err error) error {
	for _, a := range c.args {
		if a == "--" {
			break
		}
		if negativeNumber.MatchString(a) {
			return fmt.Errorf("%s: invalid value %q: offsets, lengths and sizes must not be negative", cmd.Name(), a)
		}
	}
	return usageErrorf("%s: %v (see 'daxstore %s --help')", cmd.Name(), err, cmd.Name())
}

// argsBetween accepts min to max positional arguments, and otherwise
// fails with a usage error that shows the command's synopsis.
func argsBetween(min, max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || len(args) > max {
			return usageErrorf("%s: wrong number of arguments (usage: daxstore %s)", cmd.Name(), cmd.Use)
		}
		return nil
	}
}

// reportsInterrupt is the annotation of the commands that stop on SIGINT at
// their next check and then print what they found (stress, bench, demo), so
// run waits for them instead of giving up after interruptGrace.
const reportsInterrupt = "reports-interrupt"

// readOnlyCommands open the store read-only when no other process holds
// it: they never create, write, rename or remove anything, so they work on
// a store the user may only read, and never disturb one. Only init creates
// a store; demo, stress and bench make their own scratch stores; every other
// command opens an existing store for writing and fails where there is none.
var readOnlyCommands = map[string]bool{
	"ls": true, "get": true, "stat": true, "df": true, "check": true, "busy": true, "pins": true,
}

// requireStore fails unless c.dir holds a store: a quick check with the
// CLI's own advice. dax.Open with ReadOnly or MustExist makes the thorough
// one (an empty journal holds no store either).
func (c *cli) requireStore() error {
	_, err := os.Stat(filepath.Join(c.dir, "journal"))
	if errors.Is(err, fs.ErrNotExist) {
		if region := c.leftoverRegion(); region != "" {
			// init refuses while the region exists: do not send the user there.
			return fmt.Errorf("no store in %s: its journal is missing but the region %s remains, and its keys "+
				"cannot be read without the journal (restore the journal from a backup, or remove the region to start over)",
				c.dir, region)
		}
		return fmt.Errorf("no store in %s (create one with 'daxstore init --dir %s')", c.dir, c.dir)
	}
	if err != nil {
		return fmt.Errorf("store %s: %w", c.dir, err)
	}
	return nil
}

// leftoverRegion names the region file (or DIR/region's link to it) when
// one is there, else "".
func (c *cli) leftoverRegion() string {
	for _, p := range []string{c.region, filepath.Join(c.dir, "region")} {
		if p == "" {
			continue
		}
		if _, err := os.Lstat(p); err == nil {
			if target, err := os.Readlink(p); err == nil {
				return fmt.Sprintf("%s (linked to %s)", p, target)
			}
			return p
		}
	}
	return ""
}

// openStore opens the existing store in c.dir: read-only for the commands
// that only look, for writing otherwise; it never creates one.
func (c *cli) openStore() (*dax.Store, error) {
	return c.openStoreWaiting(c.wait)
}

// openStoreWaiting is openStore waiting at most wait for another
// process's lock.
func (c *cli) openStoreWaiting(wait time.Duration) (*dax.Store, error) {
	if err := c.requireStore(); err != nil {
		return nil, err
	}
	if c.wait < 0 {
		return nil, usageErrorf("%s: invalid --wait %v: must not be negative", c.name, c.wait)
	}
	ctx := c.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	return dax.OpenContext(ctx, c.dir, &dax.Options{RegionPath: c.region, ReadOnly: readOnlyCommands[c.name], MustExist: true,
		LockTimeout: wait})
}

// withStore opens the store, runs fn and closes the store again, with a
// progress line on a terminal if that takes more than a second. It returns
// fn's error, or else Close's.
func (c *cli) withStore(fn func(s *dax.Store) error) (err error) {
	return c.withStoreWaiting(c.wait, fn)
}

// withStoreWaiting is withStore waiting at most wait for another process's
// lock.
func (c *cli) withStoreWaiting(wait time.Duration, fn func(s *dax.Store) error) (err error) {
	stop := startProgress(c.errOut, c.name)
	defer stop()
	s, err := c.openStoreWaiting(wait)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := s.Close(); err == nil {
			err = cerr
		}
	}()
	return fn(s)
}

// snapshot returns the store's figures, busy extents and pins: from the
// store itself, opened read-only, when no other process holds it for
// writing, else live from the holder over its admin socket.
func (c *cli) snapshot(cmd *cobra.Command) (*dax.Snapshot, error) {
	if err := c.requireStore(); err != nil {
		return nil, err
	}
	s, err := dax.Open(c.dir, &dax.Options{RegionPath: c.region, ReadOnly: true})
	if errors.Is(err, dax.ErrLocked) {
		return dax.Inspect(cmd.Context(), c.dir)
	}
	if err != nil {
		return nil, err
	}
	snap, err := s.Snapshot()
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	// This process opened the store only to look: nobody else holds it.
	snap.Live, snap.Pid = false, 0
	return snap, nil
}

// displayKey shows a key in a table cell: as is when it is plain, quoted
// when it holds spaces or control characters that would break the columns.
func displayKey(k string) string {
	if k == "" || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '"' }) {
		return fmt.Sprintf("%q", k)
	}
	return k
}
