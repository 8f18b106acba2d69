package main

// df: how the region's data blocks divide into used, busy and free, and how
// many are pinned.

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
)

// dfReport is df's JSON output. Used, Busy and Free partition Data; Pinned
// overlaps Used and Busy.
type dfReport struct {
	Live      bool    `json:"live"` // from another process that holds the store
	Pid       int     `json:"pid,omitempty"`
	BlockSize int64   `json:"block_size"`
	Data      dfShare `json:"data"`
	Used      dfShare `json:"used"`
	Busy      dfShare `json:"busy"`
	Free      dfShare `json:"free"`
	Pins      int     `json:"pins"`
	Pinned    dfShare `json:"pinned"`
	// Windows are the open windows, follow and pinned, and WindowPieces
	// the mappings (VMAs) they take. A pinned window is a pin too, so it
	// counts in Pins as well.
	Windows      int `json:"windows"`
	WindowPieces int `json:"window_pieces"`
	// RegionFile is the file space the region takes on its filesystem.
	RegionFile int64 `json:"region_file_bytes"`
	// DAX and FlushMethod say how stores reach the media: MAP_SYNC and a
	// cache line flush on real fsdax, msync elsewhere (dax.Stats). Empty
	// when the store's own process did not say (an older daxstore).
	DAX         bool   `json:"dax"`
	FlushMethod string `json:"flush_method,omitempty"`
}

// dfShare is a number of blocks, their bytes, and their share of the data
// blocks in percent.
type dfShare struct {
	Blocks  uint64  `json:"blocks"`
	Bytes   int64   `json:"bytes"`
	Percent float64 `json:"percent"`
}

func newDFReport(snap *dax.Snapshot) dfReport {
	st := snap.Stats
	share := func(blocks uint64) dfShare {
		return dfShare{Blocks: blocks, Bytes: int64(blocks) * st.BlockSize, Percent: percent(blocks, st.DataBlocks)}
	}
	return dfReport{
		Live: snap.Live, Pid: snap.Pid, BlockSize: st.BlockSize,
		Data: share(st.DataBlocks), Used: share(st.UsedBlocks), Busy: share(st.BusyBlocks), Free: share(st.FreeBlocks),
		Pins: st.Pins, Pinned: share(st.PinnedBlocks), RegionFile: st.RegionFileBytes,
		Windows: st.Windows, WindowPieces: st.WindowPieces,
		DAX: st.DAX, FlushMethod: st.FlushMethod,
	}
}

func (c *cli) dfCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use: "df",
		Example: `  daxstore df --dir /mnt/pmem/store
  daxstore df --dir /mnt/pmem/store --json`,
		Short: "Show used, busy and free space",
		Long: `df shows how the region's data blocks divide into used (owned by keys),
busy (detached from keys, waiting for their last pin) and free, how many
blocks pins hold, and how stores reach the media: a CPU cache line flush on
a region mapped with MAP_SYNC on real fsdax, msync elsewhere. While another process holds the store the figures come live
from that process.`,
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			snap, err := c.snapshot(cmd)
			if err != nil {
				return err
			}
			r := newDFReport(snap)
			if asJSON {
				return writeJSON(c.out, r)
			}
			tw := newTable(c.out)
			fmt.Fprintf(tw, "\tBLOCKS\tBYTES\tSHARE\n")
			row := func(name string, s dfShare) {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%.1f%%\n", name, s.Blocks, formatBytes(s.Bytes), s.Percent)
			}
			row("data", r.Data)
			row("used", r.Used)
			row("busy", r.Busy)
			row("free", r.Free)
			row("pinned", r.Pinned)
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(c.out, "%s; %s (%s); block size %s; region file takes %s of its filesystem\n",
				plural(r.Pins, "pin"), plural(r.Windows, "window"), plural(r.WindowPieces, "mapping"),
				formatBytes(r.BlockSize), formatBytes(r.RegionFile))
			if r.FlushMethod != "" {
				fmt.Fprintf(c.out, "flush: %s\n", describeFlush(r.DAX, r.FlushMethod))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// describeFlush says how a region makes stores durable, for people.
func describeFlush(dax bool, method string) string {
	if dax {
		return method + " and sfence (DAX: mapped with MAP_SYNC)"
	}
	return method + " (not DAX)"
}
