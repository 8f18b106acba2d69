package main

// busy: the blocks that layout-breaking operations detached from their files
// while pins still referenced them, who owned them and who holds them.

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
)

func (c *cli) busyCommand() *cobra.Command {
	var f inspectFlags
	cmd := &cobra.Command{
		Use: "busy",
		Example: `  daxstore busy --dir /mnt/pmem/store
  daxstore busy --dir /mnt/pmem/store --json`,
		Short: "List busy extents: blocks detached from files and still pinned",
		Long: `busy lists the busy extents: blocks that a truncate, punch, zero, remove or
overwrite detached from their file while pins still referenced them. They are
freed when their last pin drops. While another process holds the store, busy
asks it over the admin socket; otherwise it reads the journal, without
changing it, where any busy extent is a leftover of a dead process that the
next command that writes frees.`,
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runInspect(cmd, &f, func(snap *dax.Snapshot) error {
				fmt.Fprintln(c.out, describeSource(snap))
				return printBusy(c.out, snap, time.Now())
			})
		},
	}
	f.register(cmd)
	return cmd
}

// printBusy draws the busy-extent table of snap and its totals.
func printBusy(w io.Writer, snap *dax.Snapshot, now time.Time) error {
	bs := snap.Stats.BlockSize
	var blocks uint64
	for _, b := range snap.Busy {
		blocks += b.Blocks
	}
	if len(snap.Busy) == 0 {
		fmt.Fprintln(w, "no busy extents")
	} else {
		tw := newTable(w)
		header := "START\tBLOCKS\tOWNER KEY\tFILE OFFSET\tREASON\tAGE\tPINNED\tLABELS"
		if !snap.Live {
			header += "\tNOTE"
		}
		fmt.Fprintln(tw, header)
		for _, b := range snap.Busy {
			labels := "-"
			if len(b.Labels) > 0 {
				labels = strings.Join(b.Labels, ",")
			}
			if more := b.Pins - min(b.Pins, uint64(len(b.Labels))); more > 0 && len(b.Labels) > 0 {
				labels += fmt.Sprintf(" (+%d more pins)", more)
			}
			fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%s\t%s\t%d\t%s", b.Start, b.Blocks, displayKey(b.Key), b.FileOffset,
				b.Reason, formatAge(now, b.DetachedAt), b.PinnedBlocks, labels)
			if !snap.Live {
				note := "-"
				if b.Stale {
					note = "freed at next open"
				}
				fmt.Fprintf(tw, "\t%s", note)
			}
			fmt.Fprintln(tw)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "total: %s, %s (%s); %s\n", plural(len(snap.Busy), "extent"),
		plural(int(blocks), "block"), formatBytes(int64(blocks)*bs), plural(snap.Stats.Waiters, "waiter"))
	return err
}
