package main

// pins: the outstanding pins and windows of the process holding the store,
// with their modes, labels, ages, how many of their blocks are detached
// (busy) and how many mappings each window takes.

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
		Use: "pins",
		Example: `  daxstore pins --dir /mnt/pmem/store
  daxstore pins --dir /mnt/pmem/store --json`,
		Short: "List the outstanding pins and windows",
		Long: `pins lists the pins and windows of the process holding the store, asked over
its admin socket. MODE is "pin", "pinned window" (holds its blocks as a pin
does) or "follow window" (follows the file and holds no blocks); PIECES is
how many mappings (VMAs) a window takes now, or how many slices (physically
contiguous runs) a pin has. Pins and windows do not outlive
their process, so a store that nobody holds has none.`,
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

// printPins draws the table of the pins and windows of snap and its totals.
func printPins(w io.Writer, snap *dax.Snapshot, now time.Time) error {
	var blocks, detached uint64
	var pins, windows, pieces int
	for _, p := range snap.Pins {
		blocks += p.Blocks
		detached += p.Detached
		if isWindow(p) {
			windows++
			pieces += p.Pieces
		} else {
			pins++
		}
	}
	if len(snap.Pins) == 0 {
		fmt.Fprintln(w, "no pins")
	} else {
		tw := newTable(w)
		fmt.Fprintln(tw, "ID\tKEY\tMODE\tOFFSET\tLENGTH\tLABEL\tWRITABLE\tAGE\tBLOCKS\tDETACHED\tPIECES")
		for _, p := range snap.Pins {
			label := p.Label
			if label == "" {
				label = "-"
			}
			// A holder that predates windows sends neither mode nor
			// pieces: its entries are pins.
			id, mode, pieces := fmt.Sprint(p.ID), p.Mode, fmt.Sprint(p.Pieces)
			if mode == "" {
				mode, pieces = pinMode, "-"
			}
			if p.ID == 0 {
				id = "-" // a follow window is no pin and has no pin id
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%d\t%d\t%s\n", id, displayKey(p.Key), mode, p.Offset, p.Length,
				label, yesNo(p.Writable), formatAge(now, p.Created), p.Blocks, p.Detached, pieces)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	held := plural(pins, "pin")
	if windows > 0 {
		held += fmt.Sprintf(" and %s (%s)", plural(windows, "window"), plural(pieces, "mapping"))
	}
	bs := snap.Stats.BlockSize
	_, err := fmt.Fprintf(w, "total: %s holding %s (%s), %d of them detached\n",
		held, plural(int(blocks), "block"), formatBytes(int64(blocks)*bs), detached)
	return err
}

// pinMode is PinInfo.Mode of a plain pin.
const pinMode = "pin"

// isWindow reports whether p describes a window rather than a plain pin.
func isWindow(p dax.PinInfo) bool { return p.Mode != "" && p.Mode != pinMode }
