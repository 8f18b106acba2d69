package main

// pins: the outstanding pins of the process holding the store, with their
// labels, ages and how many of their blocks are detached (busy).

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
)

func (c *cli) pinsCommand() *cobra.Command {
	var f inspectFlags
	cmd := &cobra.Command{
		Use:   "pins",
		Short: "List the outstanding pins",
		Long: `pins lists the pins of the process holding the store, asked over its admin
socket. Pins do not outlive their process, so a store that nobody holds has
none.`,
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runInspect(cmd, &f, func(snap *dax.Snapshot) error {
				fmt.Fprintln(c.out, describeSource(snap))
				return printPins(c.out, snap, time.Now())
			})
		},
	}
	f.register(cmd)
	return cmd
}

// printPins draws the pin table of snap and its totals.
func printPins(w io.Writer, snap *dax.Snapshot, now time.Time) error {
	var blocks, detached uint64
	for _, p := range snap.Pins {
		blocks += p.Blocks
		detached += p.Detached
	}
	if len(snap.Pins) == 0 {
		fmt.Fprintln(w, "no pins")
	} else {
		tw := newTable(w)
		fmt.Fprintln(tw, "ID\tKEY\tOFFSET\tLENGTH\tLABEL\tWRITABLE\tAGE\tBLOCKS\tDETACHED")
		for _, p := range snap.Pins {
			label := p.Label
			if label == "" {
				label = "-"
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\t%s\t%d\t%d\n", p.ID, displayKey(p.Key), p.Offset, p.Length,
				label, yesNo(p.Writable), formatAge(now, p.Created), p.Blocks, p.Detached)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	bs := snap.Stats.BlockSize
	_, err := fmt.Fprintf(w, "total: %s holding %s (%s), %d of them detached\n",
		plural(len(snap.Pins), "pin"), plural(int(blocks), "block"), formatBytes(int64(blocks)*bs), detached)
	return err
}
