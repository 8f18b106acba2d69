package main

// --watch: redraw an inspection every interval until interrupted, for busy
// and pins.

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
)

// inspectFlags are the flags of the inspection commands.
type inspectFlags struct {
	asJSON bool
	watch  time.Duration
}

func (f *inspectFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print the snapshot as JSON")
	cmd.Flags().DurationVar(&f.watch, "watch", 0, "redraw every DURATION (e.g. 1s) until interrupted")
}

// runInspect takes a snapshot with dax.Inspect, which asks the holder over
// its admin socket when another process holds the store and otherwise reads
// the journal without recovering, and draws it with draw; with --watch it
// does so every interval until the context is cancelled (SIGINT), which
// ends it successfully.
func (c *cli) runInspect(cmd *cobra.Command, f *inspectFlags, draw func(snap *dax.Snapshot) error) error {
	if cmd.Flags().Changed("watch") && f.watch <= 0 {
		return fmt.Errorf("invalid --watch %s: must be positive", f.watch)
	}
	if err := c.requireStore(); err != nil {
		return err
	}
	ctx := cmd.Context()
	frame := func() error {
		snap, err := dax.Inspect(ctx, c.dir)
		if err != nil {
			return err
		}
		if f.asJSON {
			return writeJSON(c.out, snap)
		}
		return draw(snap)
	}
	if f.watch == 0 {
		return frame()
	}
	redraw := !f.asJSON && isTerminal(c.out)
	for n := 0; ; n++ {
		if redraw {
			fmt.Fprint(c.out, "\x1b[H\x1b[2J")
		} else if n > 0 && !f.asJSON {
			fmt.Fprintln(c.out)
		}
		if !f.asJSON {
			fmt.Fprintf(c.out, "%s, every %s (Ctrl-C to stop)\n", time.Now().Format("15:04:05"), f.watch)
		}
		if err := frame(); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if n == 0 || errors.Is(err, dax.ErrNoStore) {
				return err
			}
			// The holder may be closing or restarting: show it and go on.
			fmt.Fprintln(c.out, errorLine(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(f.watch):
		}
	}
}

// describeSource says where a snapshot came from.
func describeSource(snap *dax.Snapshot) string {
	if snap.Live {
		return fmt.Sprintf("live view of the process holding the store (pid %d)", snap.Pid)
	}
	return "read from the journal: no process holds the store"
}
